"""tsdb on a real Redis Cluster: the same store, unchanged; multi-key reads stay in one slot."""

from __future__ import annotations

import time
from typing import Any

from django_rb.tsdb import TSDB

from .tsdb_model import ROLLUPS, Model


def test_every_kind_of_data_round_trips_on_redis_cluster(redis_cluster: Any) -> None:
    store = TSDB(redis_cluster, rollups=ROLLUPS, vnodes=16)
    now, model = time.time(), Model()
    items = [("m", k % 7, {"timestamp": now - k, "count": k}) for k in range(60)]
    store.incr_multi(items)
    for _, key, extra in items:
        model.incr("m", key, extra["timestamp"], extra["count"])
    keys = list(range(7))
    assert store.get_range("m", keys, now - 60, now, rollup=10) == model.range(
        "m", keys, now - 60, now, 10
    )
    store.record_multi([("m", k, [f"v{k}", "shared"]) for k in keys], timestamp=now)
    assert store.get_distinct_counts_totals("m", keys, now, now, rollup=10) == dict.fromkeys(
        keys, 2
    )
    assert store.get_distinct_counts_union("m", keys, now, now, rollup=10) == 8
    store.record_frequency_multi([("m", {k: {"x": k, "y": 1} for k in keys})], timestamp=now)
    assert store.get_most_frequent("m", [3], now, now, rollup=10) == {3: [("x", 3.0), ("y", 1.0)]}
    store.merge("m", 0, [5, 6], timestamp=now)
    assert store.get_distinct_counts_totals("m", [0, 5], now, now, rollup=10) == {0: 4, 5: 0}
    assert store.get_most_frequent("m", [0], now, now, rollup=10) == {0: [("x", 11.0), ("y", 3.0)]}
    store.delete(["m"], keys)
    assert store.get_sums("m", keys, now - 60, now, rollup=10) == dict.fromkeys(keys, 0)
