"""tsdb top-N frequencies (a sorted set per bucket) on four real nodes, against the model."""

from __future__ import annotations

import random

from django_rb.tsdb import TSDB

from .tsdb_model import ROLLUPS, Model, expiries, recent, rounds, store

__all__ = ["rounds", "store"]  # fixtures


def ranked(counter: dict, limit: int | None = None) -> list[tuple[str, float]]:
    order = sorted(((m, float(s)) for m, s in counter.items()), key=lambda p: (-p[1], p[0]))
    return order[:limit] if limit else order


def fill(store: TSDB, model: Model, keys: list, base: int) -> None:
    rng = random.Random(11)
    for _ in range(60):
        epoch = base + rng.uniform(0, 300)
        request = {
            key: {f"m{rng.randint(0, 12)}": rng.randint(1, 5) for _ in range(3)}
            for key in rng.sample(keys, 2)
        }
        store.record_frequency_multi([("tags", request)], timestamp=epoch)
        for key, scores in request.items():
            model.frequency("tags", key, scores, epoch)


def test_most_frequent_is_highest_first_and_limited(store: TSDB, rounds: list[int]) -> None:
    model, base, keys = Model(), recent(), [1, 2, "x"]
    fill(store, model, keys, base)
    for seconds in (10, 60, 3600):
        for limit in (None, 3):
            rounds.clear()
            got = store.get_most_frequent(
                "tags", keys, base, base + 300, rollup=seconds, limit=limit
            )
            assert rounds == [1]
            for key in keys:
                assert got[key] == ranked(
                    model.totals("tags", key, base, base + 300, seconds), limit
                )


def test_most_frequent_series_per_bucket(store: TSDB) -> None:
    model, base, keys = Model(), recent(), [1, 2, "x"]
    fill(store, model, keys, base)
    got = store.get_most_frequent_series("tags", keys, base, base + 300, rollup=60, limit=2)
    for key in keys:
        expected = [
            (b * 60, dict(ranked(model.totals("tags", key, b * 60, b * 60, 60), 2)))
            for b in model.buckets(base, base + 300, 60)
        ]
        assert got[key] == expected
        assert all(list(scores) == list(dict(ranked(scores))) for _, scores in got[key])


def test_frequency_series_and_totals_of_given_members(store: TSDB) -> None:
    model, base, keys = Model(), recent(), [1, 2, "x"]
    fill(store, model, keys, base)
    wanted = {1: ["m1", "m2", "absent"], "x": ["m3"]}
    series = store.get_frequency_series("tags", wanted, base, base + 300, rollup=10)
    totals = store.get_frequency_totals("tags", wanted, base, base + 300, rollup=10)
    for key, members in wanted.items():
        for epoch, scores in series[key]:
            bucket = model.totals("tags", key, epoch, epoch, 10)
            assert scores == {m: float(bucket[m]) for m in members}
        whole = model.totals("tags", key, base, base + 300, 10)
        assert totals[key] == {m: float(whole[m]) for m in members}


def test_sets_are_trimmed_to_the_capacity_keeping_the_highest(rb_cluster: object) -> None:
    store = TSDB(rb_cluster, rollups=ROLLUPS, frequency_capacity=3)
    base = recent()
    store.record_frequency_multi([("m", {1: {"a": 1, "b": 5, "c": 3, "d": 4, "e": 2}})], base)
    assert store.get_most_frequent("m", [1], base, base, rollup=10) == {
        1: [("b", 5.0), ("d", 4.0), ("c", 3.0)]
    }


def test_environments_and_float_scores(store: TSDB) -> None:
    base = recent()
    store.record_frequency_multi([("m", {1: {"a": 1.5}})], base, environment_id=1)
    store.record_frequency_multi([("m", {1: {"a": 1, "b": 2}})], base, environment_id=2)
    read = store.get_most_frequent
    assert read("m", [1], base, base, rollup=10) == {1: [("a", 2.5), ("b", 2.0)]}
    assert read("m", [1], base, base, rollup=10, environment_ids=[1]) == {1: [("a", 1.5)]}
    assert read("m", [1], base, base, rollup=10, environment_ids=[2]) == {
        1: [("b", 2.0), ("a", 1.0)]
    }


def test_every_sorted_set_expires_at_its_buckets_end_plus_retention(
    store: TSDB, rb_cluster: object
) -> None:
    base = recent()
    store.record_frequency_multi([("m", {"k": {"a": 1}})], base)
    found = expiries(rb_cluster)
    assert len(found) == len(ROLLUPS)
    for name, moment in found.items():
        seconds, bucket = (int(p) for p in name.split(b":")[4:6])
        kept = dict(ROLLUPS)[seconds]
        assert abs((bucket + 1) * seconds + seconds * kept - moment) < 5
