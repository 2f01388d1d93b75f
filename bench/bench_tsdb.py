"""Benchmark: the tsdb's incr_multi and get_range against Sentry's layout and a naive loop.

Run from the repository root with the project's venv (see docs/benchmarks.md)::

    .venv/bin/python bench/bench_tsdb.py            # the full table
    .venv/bin/python bench/bench_tsdb.py --quick    # a fast smoke run
    .venv/bin/python bench/bench_tsdb.py --check    # exit 1 if a target is missed

On 4 redis-server nodes this script starts on free ports (never 6379), in one run:

* ``incr_multi`` of 10,000 increments over 100 series (3 rollups), and
* ``get_range`` of 100 keys x 60 buckets (10 s rollup),

each three ways: django_rb.tsdb; (a) Sentry's layout read its way (a hash per bucket and
virtual node, one HINCRBY per cell and rollup on write, one HGET per key per bucket on read,
all in one ``map()``); (b) a naive loop of one command per cell on the routing client. Then
``get_range`` again with every node behind bench/delay_proxy.py (250 us each way), to show
round trips. Medians in milliseconds. Targets: get_range at least 5x faster than (a) and 50x
faster than (b).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench_map import DelayProxy  # noqa: E402

from django_rb.cluster import Cluster  # noqa: E402
from django_rb.testing import NodeRegistry  # noqa: E402
from django_rb.tsdb import TSDB  # noqa: E402

ROLLUPS = [(10, 360), (3600, 24 * 7), (86400, 90)]
SERIES, INCREMENTS, BUCKETS, VNODES = 100, 10_000, 60, 64
MODEL = "bench.events"


def median_ms(call: Callable[[], Any], budget_s: float, min_runs: int = 3) -> float:
    """Median wall time in ms: at least ``min_runs``, then until the budget is spent."""
    call()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < min_runs or (time.perf_counter() < deadline and len(times) < 500):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


class SentryLayout:
    """Sentry's RedisTSDB counters: hash ``(model, rollup, bucket start, key % 64)``, field
    the key; writes added up client-side, reads one HGET per (key, bucket)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    @staticmethod
    def hash_key(rollup: int, bucket: int, key: int) -> str:
        return f"sentry:{MODEL}:{rollup}:{bucket * rollup}:{key % VNODES}"

    def incr_multi(self, items: list[tuple[int, float]]) -> None:
        cells: dict[tuple[str, int], int] = {}
        expiries: dict[str, int] = {}
        for key, epoch in items:
            for rollup, kept in ROLLUPS:
                bucket = int(epoch // rollup)
                name = self.hash_key(rollup, bucket, key)
                cells[(name, key)] = cells.get((name, key), 0) + 1
                expiries[name] = bucket * rollup + rollup * kept
        with self.cluster.map() as client:
            for (name, key), count in cells.items():
                client.hincrby(name, key, count)
            for name, expiry in expiries.items():
                client.expireat(name, expiry)

    def get_range(self, keys: list[int], start: float, end: float) -> dict[int, list[int]]:
        buckets = range(int(start // 10), int(end // 10) + 1)
        with self.cluster.map() as client:
            cells = {k: [client.hget(self.hash_key(10, b, k), k) for b in buckets] for k in keys}
        return {k: [int(p.value or 0) for p in row] for k, row in cells.items()}


class NaiveLoop(SentryLayout):
    """The same layout, one command per cell on the routing client."""

    def incr_multi(self, items: list[tuple[int, float]]) -> None:
        client = self.cluster.get_routing_client()
        for key, epoch in items:
            for rollup, _kept in ROLLUPS:
                client.hincrby(self.hash_key(rollup, int(epoch // rollup), key), key, 1)

    def get_range(self, keys: list[int], start: float, end: float) -> dict[int, list[int]]:
        client = self.cluster.get_routing_client()
        buckets = range(int(start // 10), int(end // 10) + 1)
        return {
            k: [int(client.hget(self.hash_key(10, b, k), k) or 0) for b in buckets] for k in keys
        }


def workload(now: float) -> tuple[list[int], list[tuple[int, float]], float, float]:
    keys = list(range(1, SERIES + 1))
    start = (now // 10 - BUCKETS) * 10
    items = [(keys[i % SERIES], start + (i * 7919 % (BUCKETS * 10))) for i in range(INCREMENTS)]
    return keys, items, start, start + (BUCKETS - 1) * 10


def measure(cluster: Cluster, budget: float, naive: bool) -> dict[str, dict[str, float]]:
    store = TSDB(cluster, rollups=ROLLUPS, vnodes=VNODES)
    sentry, loop = SentryLayout(cluster), NaiveLoop(cluster)
    keys, items, start, end = workload(time.time())
    with cluster.all() as client:
        client.flushdb()
    ours_items = [(MODEL, key, {"timestamp": epoch}) for key, epoch in items]
    store.incr_multi(ours_items)
    sentry.incr_multi(items)
    ours = store.get_range(MODEL, keys, start, end, rollup=10)
    theirs = sentry.get_range(keys, start, end)
    if {k: [c for _, c in v] for k, v in ours.items()} != theirs:
        raise SystemExit("tsdb and Sentry's layout disagree on the counts")
    if sum(sum(row) for row in theirs.values()) != INCREMENTS:
        raise SystemExit("the counts do not add up to the increments written")
    out: dict[str, dict[str, float]] = {"incr_multi": {}, "get_range": {}}
    out["incr_multi"]["tsdb"] = median_ms(lambda: store.incr_multi(ours_items), budget)
    out["incr_multi"]["sentry"] = median_ms(lambda: sentry.incr_multi(items), budget)
    out["get_range"]["tsdb"] = median_ms(
        lambda: store.get_range(MODEL, keys, start, end, rollup=10), budget
    )
    out["get_range"]["sentry"] = median_ms(lambda: sentry.get_range(keys, start, end), budget)
    if naive:
        out["incr_multi"]["naive"] = median_ms(lambda: loop.incr_multi(items), 0, min_runs=1)
        out["get_range"]["naive"] = median_ms(
            lambda: loop.get_range(keys, start, end), budget, min_runs=1
        )
    return out


ROWS = {
    "tsdb": "django_rb.tsdb",
    "sentry": "(a) Sentry's layout, one map()",
    "naive": "(b) naive loop",
}


def print_table(title: str, results: dict[str, dict[str, float]]) -> None:
    ops = list(results)
    print(f"\n{title}\n")
    print("| method | " + " | ".join(f"{op} ms" for op in ops) + " |")
    print("| --- | " + " | ".join("---:" for _ in ops) + " |")
    for row, label in ROWS.items():
        if all(row in results[op] for op in ops):
            print(f"| {label} | " + " | ".join(f"{results[op][row]:.2f}" for op in ops) + " |")
    for op in ops:
        tsdb_ms = results[op]["tsdb"]
        ratios = ", ".join(
            f"{results[op][row] / tsdb_ms:.1f}x vs {ROWS[row][:3]}"
            for row in ("sentry", "naive")
            if row in results[op]
        )
        print(f"\n{op}: tsdb is {ratios}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short budgets, no naive rows")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--delay-us", type=float, default=250.0)
    args = parser.parse_args(argv)
    budget = 0.3 if args.quick else 1.5
    registry = NodeRegistry()
    proxy = None
    try:
        nodes = registry.start(4)
        direct = Cluster({i: {"host": "127.0.0.1", "port": n.port} for i, n in enumerate(nodes)})
        plain = measure(direct, budget, naive=not args.quick)
        print_table(f"4 nodes on loopback, {SERIES} series, {BUCKETS} buckets", plain)
        proxy = DelayProxy([n.port for n in nodes], args.delay_us)
        delayed = Cluster({i: {"host": "127.0.0.1", "port": p} for i, p in enumerate(proxy.ports)})
        slow = measure(delayed, budget, naive=not args.quick)
        print_table(f"4 nodes behind the delay proxy ({args.delay_us:.0f} us each way)", slow)
        direct.disconnect_pools()
        delayed.disconnect_pools()
    finally:
        if proxy is not None:
            proxy.stop()
        registry.stop_all()
    ok = plain["get_range"]["sentry"] / plain["get_range"]["tsdb"] >= 5
    if "naive" in plain["get_range"]:
        ok = ok and plain["get_range"]["naive"] / plain["get_range"]["tsdb"] >= 50
    print(f"\ntargets (get_range >= 5x (a), >= 50x (b)): {'met' if ok else 'MISSED'}")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    raise SystemExit(main())
