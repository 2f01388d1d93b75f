"""tsdb counters on four real nodes: incr / incr_multi / get_range / get_sums against the model."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from django_rb.cluster import HostError
from django_rb.tsdb import TSDB

from .tsdb_model import (
    ROLLUPS,
    Model,
    all_keys,
    command_calls,
    expiries,
    recent,
    reset_stats,
    rounds,
    store,
)

__all__ = ["rounds", "store"]  # fixtures


def test_random_increments_match_the_model_in_every_rollup(store: TSDB) -> None:
    rng = random.Random(18)
    model = Model()
    base = recent()
    keys = [1, 2, 17, "alpha", "beta/γ", -5]
    items = []
    for _ in range(400):
        key, epoch, count = rng.choice(keys), base + rng.uniform(0, 500), rng.randint(1, 9)
        items.append(("events", key, {"timestamp": epoch, "count": count}))
        model.incr("events", key, epoch, count)
    store.incr_multi(items[:200])
    for _model, key, extra in items[200:]:
        store.incr("events", key, extra["timestamp"], extra["count"])
    for seconds, _kept in ROLLUPS:
        got = store.get_range("events", keys, base, base + 500, rollup=seconds)
        assert got == model.range("events", keys, base, base + 500, seconds)
        sums = store.get_sums("events", keys, base, base + 500, rollup=seconds)
        assert sums == {k: sum(c for _, c in v) for k, v in got.items()}
    assert sum(store.get_sums("events", keys, base, base + 500, rollup=10).values()) == sum(
        extra["count"] for _, _, extra in items
    )


def test_range_is_zero_filled_from_starts_bucket_to_ends_bucket_inclusive(store: TSDB) -> None:
    base = recent() // 60 * 60
    store.incr("m", 5, base + 25, count=3)
    got = store.get_range("m", [5, 6], base + 9, base + 41, rollup=10)
    assert got == {
        5: [(base, 0), (base + 10, 0), (base + 20, 3), (base + 30, 0), (base + 40, 0)],
        6: [(base, 0), (base + 10, 0), (base + 20, 0), (base + 30, 0), (base + 40, 0)],
    }
    # the edges: a count at 29.999 is in the 20 bucket, at 30 in the 30 bucket
    store.incr("m", 5, base + 29.999)
    store.incr("m", 5, base + 30)
    assert store.get_range("m", [5], base + 20, base + 30, rollup=10) == {
        5: [(base + 20, 4), (base + 30, 1)]
    }


def test_bucket_times_are_integer_epochs_and_aware_datetimes_work(store: TSDB) -> None:
    moment = datetime.fromtimestamp(recent() // 3600 * 3600 + 7, tz=timezone(timedelta(hours=5)))
    store.incr("m", "k", moment)
    got = store.get_range("m", ["k"], moment, moment, rollup=3600)
    ((epoch, count),) = got["k"]
    assert type(epoch) is int and epoch == int(moment.timestamp()) // 3600 * 3600
    assert count == 1


def test_int_and_str_keys_are_different_series(store: TSDB) -> None:
    base = recent()
    store.incr("m", 5, base, count=2)
    store.incr("m", "5", base, count=7)
    assert store.get_sums("m", [5, "5"], base, base, rollup=10) == {5: 2, "5": 7}


def test_models_are_separate(store: TSDB) -> None:
    base = recent()
    store.incr_multi([("a", 1), ("b", 1, 4)], timestamp=base)
    assert store.get_sums("a", [1], base, base, rollup=60) == {1: 1}
    assert store.get_sums("b", [1], base, base, rollup=60) == {1: 4}


def test_environments_count_both_series(store: TSDB) -> None:
    base = recent()
    model = Model()
    for key, env, count in [(1, None, 2), (1, 7, 3), (1, 8, 5), (2, 7, 11)]:
        store.incr("m", key, base, count=count, environment_id=env)
        model.incr("m", key, base, count, env)
    for envs in (None, [7], [8], [7, 8], [None]):
        expected = model.range("m", [1, 2], base, base, 10, envs)
        assert store.get_range("m", [1, 2], base, base, rollup=10, environment_ids=envs) == expected
    assert store.get_sums("m", [1, 2], base, base, rollup=10) == {1: 10, 2: 11}


def test_get_range_is_one_round_of_one_hmget_per_hash(
    store: TSDB, rounds: list[int], rb_cluster: object
) -> None:
    base = recent() // 600 * 600  # 10-s buckets: 200 kept, so a hash spans 34 buckets
    keys = list(range(40))
    store.incr_multi([("m", k) for k in keys], timestamp=base)
    reset_stats(rb_cluster)
    rounds.clear()
    got = store.get_range("m", keys, base, base + 590, rollup=10)
    assert rounds == [1]
    rounds.clear()
    assert all(points[0] == (base, 1) for points in got.values())
    blocks = len({(base // 10 + i) // 34 for i in range(60)})
    assert command_calls(rb_cluster, "hmget") == 16 * blocks  # 40 keys fill all 16 vnodes
    assert command_calls(rb_cluster, "hget") == 0


def test_incr_multi_is_one_round_with_counts_added_client_side(
    store: TSDB, rounds: list[int], rb_cluster: object
) -> None:
    base = recent()
    reset_stats(rb_cluster)
    rounds.clear()
    store.incr_multi([("m", 1)] * 500 + [("m", 2, 3)] * 500, timestamp=base)
    assert rounds == [1]
    rounds.clear()
    # two series, three rollups: one HINCRBY per (series, rollup)
    assert command_calls(rb_cluster, "hincrby") == 2 * len(ROLLUPS)
    assert store.get_sums("m", [1, 2], base, base, rollup=10) == {1: 500, 2: 1500}


def test_a_models_buckets_spread_over_every_node(store: TSDB, rb_cluster: object) -> None:
    store.incr_multi([("hot", k) for k in range(200)], timestamp=recent())
    per_node = all_keys(rb_cluster)
    assert all(any(k.startswith(b"ts:c:hot:") for k in keys) for keys in per_node.values())


def test_every_counter_hash_expires_at_its_last_buckets_end_plus_retention(
    store: TSDB, rb_cluster: object
) -> None:
    base = recent()
    store.incr("m", 3, base)
    found = expiries(rb_cluster)
    assert len(found) == len(ROLLUPS)
    for name, moment in found.items():
        seconds, block_start = (int(p) for p in name.split(b":")[3:5])
        kept = dict(ROLLUPS)[seconds]
        span = -(-kept // 6)
        assert abs(block_start + span * seconds + seconds * kept - moment) < 5


def test_optimal_rollup_is_used_when_none_is_given(store: TSDB) -> None:
    base = recent()
    store.incr("m", 1, base, count=2)
    got = store.get_range("m", [1], base, base)
    assert got == {1: [(base // 10 * 10, 2)]}


def test_one_dead_node_fails_the_read_with_its_name_and_the_next_read_works(
    store: TSDB, rb_nodes: list, rb_cluster: object
) -> None:
    base = recent()
    store.incr_multi([("m", k) for k in range(50)], timestamp=base)
    rb_nodes[2].stop()
    with pytest.raises(HostError, match="127.0.0.1"):
        store.get_range("m", list(range(50)), base, base, rollup=10)
    rb_nodes[2].start()
    got = store.get_sums("m", list(range(50)), base, base, rollup=10)
    assert sorted(set(got.values())) in ([0, 1], [1])  # the restarted node lost its share
