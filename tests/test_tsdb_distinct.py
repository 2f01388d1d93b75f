"""tsdb distinct counts (HyperLogLog) on four real nodes, against exact sets."""

from __future__ import annotations

import random
import time

from django_rb.tsdb import TSDB

from .tsdb_model import Model, all_keys, close_to, expiries, key_count, recent, rounds, store

__all__ = ["rounds", "store"]  # fixtures


def fill(store: TSDB, model: Model, keys: list, base: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    items = []
    for _ in range(120):
        key, epoch = rng.choice(keys), base + rng.uniform(0, 300)
        values = [f"user{rng.randint(0, 400)}" for _ in range(rng.randint(1, 6))]
        store.record("users", key, values, epoch)
        model.record("users", key, values, epoch)
        items.append((key, epoch))
    extra = [("users", k, [f"late{i}" for i in range(30)]) for k in keys]
    store.record_multi(extra, timestamp=base + 150)
    for _, key, values in extra:
        model.record("users", key, values, base + 150)


def test_series_and_totals_are_within_hll_error(store: TSDB) -> None:
    model, base, keys = Model(), recent(), [1, 2, "three"]
    fill(store, model, keys, base)
    for seconds in (10, 60, 3600):
        series = store.get_distinct_counts_series("users", keys, base, base + 300, rollup=seconds)
        for key in keys:
            points = series[key]
            assert [e for e, _ in points] == [
                b * seconds for b in model.buckets(base, base + 300, seconds)
            ]
            for epoch, got in points:
                exact = len(model.distinct("users", key, epoch, epoch, seconds))
                assert close_to(got, exact), (key, epoch, got, exact)
        totals = store.get_distinct_counts_totals("users", keys, base, base + 300, rollup=seconds)
        for key in keys:
            assert close_to(
                totals[key], len(model.distinct("users", key, base, base + 300, seconds))
            )


def test_union_across_nodes_is_exact_as_hll_goes_in_two_rounds(
    store: TSDB, rb_cluster: object, rounds: list[int]
) -> None:
    model, base = Model(), recent()
    keys = list(range(12))
    fill(store, model, keys, base, seed=3)
    homes = {
        host for host, names in all_keys(rb_cluster).items() if any(b":d:" in n for n in names)
    }
    assert len(homes) >= 3  # the series really live on different nodes
    before = key_count(rb_cluster)
    rounds.clear()
    got = store.get_distinct_counts_union("users", keys, base, base + 300, rollup=60)
    assert rounds == [1, 1]
    exact = set().union(*(model.distinct("users", k, base, base + 300, 60) for k in keys))
    assert close_to(got, len(exact))
    assert key_count(rb_cluster) == before  # scratch keys are gone
    # one key: one round, the same as its total
    rounds.clear()
    one = store.get_distinct_counts_union("users", [4], base, base + 300, rollup=60)
    assert rounds == [1]
    assert one == store.get_distinct_counts_totals("users", [4], base, base + 300, rollup=60)[4]
    assert store.get_distinct_counts_union("users", [], base, base + 300, rollup=60) == 0


def test_environments_union_per_bucket(store: TSDB) -> None:
    base = recent()
    store.record("m", 1, ["a", "b"], base, environment_id=1)
    store.record("m", 1, ["b", "c"], base, environment_id=2)
    store.record("m", 1, ["d"], base)
    read = store.get_distinct_counts_totals
    assert read("m", [1], base, base, rollup=10) == {1: 4}
    assert read("m", [1], base, base, rollup=10, environment_ids=[1]) == {1: 2}
    assert read("m", [1], base, base, rollup=10, environment_ids=[1, 2]) == {1: 3}
    assert (
        store.get_distinct_counts_union("m", [1, 2], base, base, rollup=10, environment_ids=[2])
        == 2
    )


def test_every_hyperloglog_expires_at_its_buckets_end_plus_retention(
    store: TSDB, rb_cluster: object
) -> None:
    base = recent()
    store.record("m", "k", ["x"], base, environment_id=3)
    found = expiries(rb_cluster)
    assert len(found) == 3 * 2  # rollups x (all, environment 3)
    for name, moment in found.items():
        seconds, bucket = (int(p) for p in name.split(b":")[4:6])
        kept = {10: 200, 60: 120, 3600: 48}[seconds]
        assert abs((bucket + 1) * seconds + seconds * kept - moment) < 5


def test_record_of_no_values_writes_nothing(store: TSDB, rb_cluster: object) -> None:
    store.record("m", 1, [], recent())
    assert key_count(rb_cluster) == 0


class NoDeletes:
    """A fanout client whose targeted ``delete`` is lost: a call that dies before dropping
    its scratch keys."""

    def __init__(self, client: object) -> None:
        self.client = client

    def target_key(self, key: object) -> object:
        target = self.client.target_key(key)  # type: ignore[attr-defined]
        target.delete = lambda *names: None
        return target


def test_union_scratch_keys_expire_even_if_never_dropped(store: TSDB, rb_cluster: object) -> None:
    base = recent()
    store.record_multi([("m", k, [f"v{k}"]) for k in range(6)], timestamp=base)
    plan = store.plan_get_distinct_counts_union("m", list(range(6)), base, base, rollup=10)
    step = next(plan)
    with rb_cluster.fanout() as client:  # type: ignore[attr-defined]
        pending = step(NoDeletes(client))
    step = plan.send(pending)
    with rb_cluster.fanout() as client:  # type: ignore[attr-defined]
        pending = step(NoDeletes(client))
    scratch = {n: t for n, t in expiries(rb_cluster).items() if b":tmp:" in n}
    assert len(scratch) == 6 + 6  # one per series on its node, then the copies on one node
    assert all(0 < moment - time.time() <= 60 for moment in scratch.values())
