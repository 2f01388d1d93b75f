"""tsdb's async twins on four real nodes: the same plans on afanout(), the same results."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from typing import Any

import pytest

from django_rb.tsdb import TSDB, TSDBArgumentError

from .tsdb_model import Model, key_count, recent, store

__all__ = ["store"]  # fixtures

KEYS = [1, 2, "three", 40]


async def write_async(store: TSDB, base: int, model: Model) -> None:
    rng = random.Random(20)
    items = []
    for _ in range(100):
        key, epoch = rng.choice(KEYS), base + rng.uniform(0, 200)
        items.append(("m", key, {"timestamp": epoch, "count": 2}))
        model.incr("m", key, epoch, 2)
    await store.aincr_multi(items)
    await store.aincr("m", 1, base, count=5, environment_id=3)
    model.incr("m", 1, base, 5, 3)
    await store.arecord("m", 1, ["a", "b"], base)
    await store.arecord_multi([("m", 2, ["b", "c"]), ("m", "three", ["d"])], base + 50)
    await store.arecord_frequency_multi([("m", {1: {"x": 3, "y": 1}, 2: {"x": 1}})], base)


def reads(store: TSDB, base: int) -> list[tuple[str, tuple, dict]]:
    window = (base, base + 200)
    return [
        ("get_range", ("m", KEYS, *window), {"rollup": 10}),
        ("get_sums", ("m", KEYS, *window), {"rollup": 60, "environment_ids": [3]}),
        ("get_distinct_counts_series", ("m", KEYS, *window), {"rollup": 60}),
        ("get_distinct_counts_totals", ("m", KEYS, *window), {"rollup": 10}),
        ("get_distinct_counts_union", ("m", KEYS, *window), {"rollup": 10}),
        ("get_most_frequent", ("m", KEYS, *window), {"rollup": 10, "limit": 1}),
        ("get_most_frequent_series", ("m", KEYS, *window), {"rollup": 60}),
        ("get_frequency_series", ("m", {1: ["x"], 2: ["x", "y"]}, *window), {"rollup": 60}),
        ("get_frequency_totals", ("m", {1: ["x"], 2: ["x", "y"]}, *window), {"rollup": 10}),
    ]


def test_async_twins_write_and_read_what_the_sync_methods_do(
    store: TSDB, rb_cluster: Any, arun: Any
) -> None:
    base, model = recent(), Model()
    arun(write_async(store, base, model))
    assert store.get_range("m", KEYS, base, base + 200, rollup=10) == model.range(
        "m", KEYS, base, base + 200, 10
    )

    async def read_all() -> list[Any]:
        return [await getattr(store, "a" + name)(*a, **k) for name, a, k in reads(store, base)]

    sync = [getattr(store, name)(*a, **k) for name, a, k in reads(store, base)]
    assert arun(read_all()) == sync
    assert sync[4] >= 4 and sync[5][1] == [("x", 3.0)]  # the reads saw the async writes


def test_async_merge_and_delete(store: TSDB, rb_cluster: Any, arun: Any) -> None:
    base = recent()
    store.incr("m", 1, base)
    store.incr("m", 2, base, count=2)

    async def main() -> tuple[Any, Any]:
        await store.amerge("m", 1, [2], timestamp=base)
        merged = await store.aget_sums("m", [1, 2], base, base, rollup=10)
        await store.adelete(["m"], [1])
        return merged, await store.aget_sums("m", [1, 2], base, base, rollup=10)

    assert arun(main()) == ({1: 3, 2: 0}, {1: 0, 2: 0})


def test_async_calls_run_concurrently_each_in_its_own_rounds(
    store: TSDB, rb_cluster: Any, arun: Any
) -> None:
    base = recent()

    async def main() -> list[Any]:
        await asyncio.gather(*(store.aincr("m", k % 5, base) for k in range(100)))
        return await asyncio.gather(
            *(store.aget_sums("m", list(range(5)), base, base, rollup=10) for _ in range(20))
        )

    assert all(got == dict.fromkeys(range(5), 20) for got in arun(main()))


def test_async_bad_input_raises_before_anything_is_sent(
    store: TSDB, rb_cluster: Any, arun: Any
) -> None:
    with pytest.raises(TSDBArgumentError, match="naive"):
        arun(store.aincr("m", 1, datetime(2026, 1, 1)))
    assert key_count(rb_cluster) == 0
