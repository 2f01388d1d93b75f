"""tsdb delete and merge on four real nodes: every kind of data, every rollup, environments."""

from __future__ import annotations

import time

import pytest

from django_rb.cluster import HostError
from django_rb.tsdb import TSDB, TSDBArgumentError

from .tsdb_model import ROLLUPS, key_count, rounds, store

__all__ = ["rounds", "store"]  # fixtures


def write_everything(store: TSDB, key: object, moment: float, env: object = None) -> None:
    store.incr("m", key, moment, count=3, environment_id=env)
    store.record("m", key, [f"{key}-a", f"{key}-b"], moment, environment_id=env)
    store.record_frequency_multi([("m", {key: {"x": 2, f"only-{key}": 1}})], moment, env)


def snapshot(
    store: TSDB, keys: list, start: float, end: float, seconds: int, envs: object = None
) -> tuple:
    return (
        store.get_sums("m", keys, start, end, rollup=seconds, environment_ids=envs),
        store.get_distinct_counts_totals(
            "m", keys, start, end, rollup=seconds, environment_ids=envs
        ),
        store.get_most_frequent("m", keys, start, end, rollup=seconds, environment_ids=envs),
    )


def test_delete_drops_every_kind_in_every_rollup(store: TSDB, rb_cluster: object) -> None:
    now = time.time()
    for key in (1, 2, "s"):
        write_everything(store, key, now)
    store.delete(["m"], [1, "s"])
    for seconds, _ in ROLLUPS:
        sums, distinct, frequent = snapshot(store, [1, 2, "s"], now, now, seconds)
        assert sums == {1: 0, 2: 3, "s": 0}
        assert distinct == {1: 0, 2: 2, "s": 0}
        assert frequent == {1: [], 2: [("x", 2.0), ("only-2", 1.0)], "s": []}


def test_delete_in_a_range_keeps_the_rest(store: TSDB) -> None:
    now = time.time() // 60 * 60 - 60
    store.incr("m", 1, now)
    store.incr("m", 1, now + 30)
    store.delete(["m"], [1], start=now, end=now + 5)
    assert store.get_range("m", [1], now, now + 30, rollup=10)[1] == [
        (now, 0), (now + 10, 0), (now + 20, 0), (now + 30, 1)
    ]  # fmt: skip
    # coarser rollups drop their whole bucket holding the range: both counts were in it
    assert store.get_sums("m", [1], now, now, rollup=60) == {1: 0}


def test_delete_covers_the_listed_environments(store: TSDB) -> None:
    now = time.time()
    write_everything(store, 1, now, env=5)
    write_everything(store, 1, now, env=6)
    store.delete(["m"], [1], environment_ids=[5])
    assert store.get_sums("m", [1], now, now, rollup=10, environment_ids=[5]) == {1: 0}
    assert store.get_sums("m", [1], now, now, rollup=10, environment_ids=[6]) == {1: 3}
    assert store.get_sums("m", [1], now, now, rollup=10) == {1: 0}


def test_merge_folds_every_kind_into_the_destination(
    store: TSDB, rb_cluster: object, rounds: list[int]
) -> None:
    now = time.time()
    for key in (1, 2, 3):
        write_everything(store, key, now, env=9)
    write_everything(store, 1, now - 3600 * 2)  # an older hourly bucket
    rounds.clear()
    store.merge("m", 1, [2, 3], timestamp=now, environment_ids=[9])
    assert rounds == [1, 1, 1]
    for envs in (None, [9]):
        sums, distinct, frequent = snapshot(store, [1, 2, 3], now, now, 10, envs)
        assert sums == {1: 9, 2: 0, 3: 0}
        assert distinct == {1: 6, 2: 0, 3: 0}
        assert frequent == {
            1: [("x", 6.0), ("only-1", 1.0), ("only-2", 1.0), ("only-3", 1.0)],
            2: [],
            3: [],
        }
    hourly = store.get_sums("m", [1], now - 3600 * 2, now, rollup=3600)
    assert hourly == {1: 12}
    before = key_count(rb_cluster)
    assert before > 0 and all(b":tmp:" not in n for n in _names(rb_cluster))


def test_merge_writes_the_destination_before_dropping_sources(
    store: TSDB, rb_cluster: object, rb_nodes: list
) -> None:
    now = time.time()
    router = rb_cluster.get_router()  # type: ignore[attr-defined]
    # a destination whose series lives on node 0 and sources that live elsewhere
    dest = next(
        k for k in range(1000) if router.get_host_for_key(store.names.tag("m", str(k))) == 0
    )
    sources = [
        k for k in range(1000, 2000) if router.get_host_for_key(store.names.tag("m", str(k))) != 0
    ][:3]
    for key in sources:
        write_everything(store, key, now)
    before = snapshot(store, sources, now, now, 10)
    rb_nodes[0].stop()
    try:
        with pytest.raises(HostError):
            store.merge("m", dest, sources, timestamp=now)
    finally:
        rb_nodes[0].start()
    sums, distinct, frequent = snapshot(store, sources, now, now, 10)
    # whatever lived on the stopped node is gone with it; the sources elsewhere are whole
    assert distinct == before[1] and frequent == before[2]
    assert all(sums[k] in (0, 3) for k in sources)


def test_merge_refuses_a_destination_among_its_sources(store: TSDB, rb_cluster: object) -> None:
    store.incr("m", 1, time.time())
    with pytest.raises(TSDBArgumentError, match="among the sources"):
        store.merge("m", 1, [1, 2])
    assert store.get_sums("m", [1], time.time(), time.time(), rollup=10) == {1: 1}


def _names(cluster: object) -> list[bytes]:
    from .tsdb_model import all_keys

    return [n for names in all_keys(cluster).values() for n in names]
