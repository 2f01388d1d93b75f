"""tsdb under a dead or stalled node: live nodes' writes land, every lost write is named."""

from __future__ import annotations

from typing import Any

import pytest

from django_rb.cluster import HostError
from django_rb.tsdb import TSDB, LostWrite, TSDBWritesLost

from .tsdb_model import ROLLUPS, Model, close_to, recent, store

__all__ = ["store"]  # fixtures

KEYS = list(range(40)) + [f"user-{i}" for i in range(20)]


def landed_and_lost(
    store: TSDB, model: Model, lost: list[LostWrite], base: int, lost_read_zero: bool = True
) -> None:
    """Every cell reads its model count unless it was reported lost, then (for a node that
    was restarted empty) it reads 0."""
    lost_cells = {(w.model, w.key, w.rollup, w.epoch, w.environment) for w in lost}
    for seconds, _kept in ROLLUPS:
        for env in (None, "7"):
            got = store.get_range(
                "events", KEYS, base, base + 120, rollup=seconds,
                environment_ids=None if env is None else [7],
            )  # fmt: skip
            want = model.range("events", KEYS, base, base + 120, seconds, envs=[env])
            for key in KEYS:
                for (epoch, count), (_, expected) in zip(got[key], want[key], strict=True):
                    if ("events", key, seconds, epoch, env) in lost_cells:
                        assert expected > 0 and (count == 0 or not lost_read_zero)
                    else:
                        assert count == expected


def write_counts(store: TSDB, base: int) -> tuple[Model, list[Any]]:
    model = Model()
    items = [("events", key, {"timestamp": base + (i * 7) % 120, "count": i % 5 + 1})
             for i, key in enumerate(KEYS)]  # fmt: skip
    for _, key, extra in items:
        model.incr("events", key, extra["timestamp"], extra["count"], env="7")
    return model, items


def test_incr_under_a_dead_node_names_every_lost_write_and_lands_the_rest(
    store: TSDB, rb_nodes: list[Any]
) -> None:
    base = recent()
    model, items = write_counts(store, base)
    rb_nodes[2].stop()
    with pytest.raises(TSDBWritesLost) as info:
        store.incr_multi(items, environment_id=7)
    err = info.value
    assert isinstance(err, HostError) and err.host_id == 2 and err.host_ids == [2]
    assert isinstance(err.__cause__, HostError) and "127.0.0.1:" in str(err)
    assert err.lost and all(w.host_id == 2 for w in err.lost)
    assert {w.environment for w in err.lost} == {None, "7"}
    assert set(err.series) == {("events", w.key) for w in err.lost}
    assert f"{len(err.lost)} of " in str(err) and "tsdb writes lost" in str(err)
    rb_nodes[2].start()  # back, empty: what it held is gone, exactly the cells reported
    landed_and_lost(store, model, err.lost, base)


def test_incr_under_a_stalled_node_times_out_and_names_its_writes(
    rb_cluster: Any, rb_nodes: list[Any]
) -> None:
    store = TSDB(rb_cluster, rollups=ROLLUPS, vnodes=16, timeout=0.5)
    base = recent()
    model, items = write_counts(store, base)
    rb_nodes[1].pause()
    try:
        with pytest.raises(TSDBWritesLost) as info:
            store.incr_multi(items, environment_id=7)
    finally:
        rb_nodes[1].resume()
    assert info.value.host_ids == [1] and info.value.lost
    # a stalled node may still apply what it read before the timeout: the report is of writes
    # not confirmed; everything not reported landed exactly
    landed_and_lost(store, model, info.value.lost, base, lost_read_zero=False)


def test_record_and_frequencies_under_a_dead_node_name_their_lost_series(
    store: TSDB, rb_nodes: list[Any]
) -> None:
    base = recent()
    rb_nodes[0].stop()
    with pytest.raises(TSDBWritesLost) as info:
        store.record_multi([("seen", key, ["a", "b", "c"]) for key in KEYS], timestamp=base)
    lost_keys = {w.key for w in info.value.lost}
    assert lost_keys and lost_keys < set(KEYS)
    assert {w.rollup for w in info.value.lost} == {s for s, _ in ROLLUPS}
    with pytest.raises(TSDBWritesLost) as freq:
        store.record_frequency_multi([("seen", {key: {"x": 2.0}}) for key in KEYS], timestamp=base)
    # a series' distinct sets and frequencies sit on the node of its tag: the same series fail
    assert {w.key for w in freq.value.lost} == lost_keys
    rb_nodes[0].start()
    totals = store.get_distinct_counts_totals("seen", KEYS, base, base, rollup=10)
    assert {k for k, n in totals.items() if n == 0} == lost_keys
    assert all(close_to(totals[k], 3) for k in KEYS if k not in lost_keys)
    top = store.get_most_frequent("seen", KEYS, base, base, rollup=60)
    assert {k for k, v in top.items() if not v} == lost_keys
    assert all(top[k] == [("x", 2.0)] for k in KEYS if k not in lost_keys)


def test_async_incr_under_a_dead_node_names_the_same_lost_writes(
    store: TSDB, rb_nodes: list[Any], arun: Any
) -> None:
    base = recent()
    model, items = write_counts(store, base)
    rb_nodes[3].stop()
    with pytest.raises(TSDBWritesLost) as info:
        arun(store.aincr_multi(items, environment_id=7))
    assert info.value.host_ids == [3]
    rb_nodes[3].start()
    landed_and_lost(store, model, info.value.lost, base)


def test_reads_and_merges_under_a_dead_node_raise_the_host_error(
    store: TSDB, rb_nodes: list[Any]
) -> None:
    base = recent()
    store.incr_multi([("m", k) for k in KEYS], timestamp=base)
    rb_nodes[1].stop()
    with pytest.raises(HostError) as info:
        store.get_sums("m", KEYS, base, base, rollup=10)
    assert not isinstance(info.value, TSDBWritesLost)  # a read loses nothing
    with pytest.raises(HostError) as merged:
        store.merge("m", 0, list(range(1, 40)), timestamp=base)
    assert not isinstance(merged.value, TSDBWritesLost)  # sources are kept when a round fails


def test_the_lost_writes_report_never_shows_a_password(redis_nodes: Any) -> None:
    from django_rb.cluster import Cluster
    from django_rb.testing import cluster_hosts, healthy

    secret = "tsdb-Secret-31"
    with healthy(redis_nodes(2, password=secret)) as nodes:
        store = TSDB(Cluster(cluster_hosts(nodes)), rollups=ROLLUPS)
        nodes[1].stop()
        with pytest.raises(TSDBWritesLost) as info:
            store.incr_multi([("m", key) for key in KEYS])
        shown = [
            str(info.value),
            repr(info.value),
            str(info.value.__cause__),
            repr(info.value.lost),
        ]
        assert all(secret not in text for text in shown)
        assert "127.0.0.1:" in shown[0]
