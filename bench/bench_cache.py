"""Benchmark: get_many / set_many through Django cache backends, RBCache against the usual ones.

Run from the repository root with the project's venv (see docs/benchmarks.md)::

    .venv/bin/python bench/bench_cache.py            # the full table
    .venv/bin/python bench/bench_cache.py --quick    # a fast smoke run
    .venv/bin/python bench/bench_cache.py --check    # exit 1 if a target is missed

Backends, in one run, on redis-server nodes this script starts on free ports (never 6379):

* RBCache over 4 nodes (one parallel round per call through django_rb's core),
* Django's RedisCache on 1 node,
* django-redis (DefaultClient) on 1 node,
* django-redis ShardClient over the same 4 nodes as RBCache,

and, for the reads, two floors that no cache backend can beat: one hand-encoded MGET per node
on raw sockets (keys pre-routed, no key making, no decoding), over the same 4 nodes and over
the one node. On this 2-CPU machine the floor itself can cost several times more for 4 nodes
than for 1 (every node woken is a process the two CPUs must schedule), which bounds how close
RBCache can come to a one-node backend for a batch that touches every node. A second table
puts every node behind its own bench/delay_proxy.py process (250 µs each way; one process per
node, as each node would have its own link, so one proxy's work is not serialised over four).

Values are 100-byte strings; rows for a single key (get, set) and N = 10, 100, 1000 keys
(get_many, set_many, delete_many); every figure is the median of repeated calls, in ms, the
backends taking turns pass after pass. Targets (issue 23): get/set within 1.1x of
django-redis, get_many(10) within 1.1x of the fastest one-node backend, get_many(100) and
set_many(100) at least as fast as it (goal 1.5x), get_many(1000) at least 1.6x faster, and
at least 20x faster than ShardClient.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from django_rb.testing import NodeRegistry  # noqa: E402

VALUE_SIZE = 100
SIZES = (100, 1000)
RB = "RBCache, 4 nodes"
DJANGO = "Django RedisCache, 1 node"
DJREDIS = "django-redis DefaultClient, 1 node"
SHARD = "django-redis ShardClient, 4 nodes"
ROWS = (RB, DJANGO, DJREDIS, SHARD)
SINGLE_NODE = (DJANGO, DJREDIS)
FLOOR4 = "floor: raw MGET per node, 4 nodes"
FLOOR1 = "floor: raw MGET, 1 node"
FLOORS = (FLOOR4, FLOOR1)
DELAY_US = 250
#: the cells of the delayed table (RBCache and django-redis behind the proxy)
DELAYED_CELLS = [("get", 1), ("get_many", 10), ("get_many", 100), ("set_many", 100)]
DELAYED_ROWS = (f"{RB}, delayed", f"{DJREDIS}, delayed")


def caches_setting(shard_urls: list[str], single_url: str) -> dict[str, dict[str, Any]]:
    """One alias per backend; each has its own key prefix so that none reads another's keys."""
    return {
        RB: {
            "BACKEND": "django_rb.cache.RBCache",
            "LOCATION": shard_urls,
            "KEY_PREFIX": "rb",
        },
        DJANGO: {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": single_url,
            "KEY_PREFIX": "dj",
        },
        DJREDIS: {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": single_url,
            "KEY_PREFIX": "djr",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        },
        SHARD: {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": shard_urls,
            "KEY_PREFIX": "shard",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.ShardClient"},
        },
    }


#: (operation, N) cells of the table; N = 1 is the single-key call.
CELLS = [("get", 1), ("set", 1)] + [
    (op, n) for n in (10, 100, 1000) for op in ("get_many", "set_many", "delete_many")
]

#: (what, operation, N, baseline rows, target ratio baseline / RBCache, goal)
TARGETS = [
    ("get", 1, (DJREDIS,), 1 / 1.1, None),
    ("set", 1, (DJREDIS,), 1 / 1.1, None),
    ("get_many", 10, SINGLE_NODE, 1 / 1.1, None),
    ("get_many", 100, SINGLE_NODE, 1.0, 1.5),
    ("set_many", 100, SINGLE_NODE, 1.0, 1.5),
    ("get_many", 1000, SINGLE_NODE, 1.6, None),
]


def bench_keys(n: int) -> list[str]:
    return [f"bench:{i:06d}" for i in range(n)]


def floor_workload(floor: Any, make_key: Callable[[str], str], op: str,
                   n: int) -> Callable[[], Any] | None:  # fmt: skip
    """A floor's read of the keys a backend stored on the floor's nodes (``make_key``: that
    backend's), or None: floors only read. Checked once, so a floor never times misses."""
    if op not in ("get", "get_many"):
        return None
    keys = [make_key(key) for key in bench_keys(n)]
    if any(value is None for value in floor.fetch(keys)):
        raise SystemExit(f"{type(floor).__name__}: the floor does not find the {n} keys.")
    return lambda: floor.fetch(keys)


def workload(cache: Any, op: str, n: int) -> Callable[[], Any]:
    """The call to time, on data stored beforehand (and checked, so a broken backend fails)."""
    keys = bench_keys(n)
    data = {key: key.ljust(VALUE_SIZE, "x")[:VALUE_SIZE] for key in keys}
    cache.set_many(data)
    got = cache.get_many(keys)
    if got != data:
        raise SystemExit(f"{cache!r}: get_many returned {len(got)} of {n} keys correctly.")
    key, value = keys[0], data[keys[0]]
    calls = {
        "get": lambda: cache.get(key),
        "set": lambda: cache.set(key, value),
        "get_many": lambda: cache.get_many(keys),
        "set_many": lambda: cache.set_many(data),
        # deleting keys that are gone costs the same round; the first pass deletes them
        "delete_many": lambda: cache.delete_many(keys),
    }
    return calls[op]


def measure_cell(
    caches: Any, rows: Any, op: str, n: int, budget_s: float, passes: int, min_runs: int,
    floors: dict[str, tuple[Any, str]] | None = None,
) -> dict[str, float]:  # fmt: skip
    """Median ms of ``op(n)`` per backend; the backends take turns, pass after pass, so a
    burst of noise on the shared machine hits all of them rather than one."""
    calls: dict[str, Callable[[], Any]] = {row: workload(caches[row], op, n) for row in rows}
    for row, (floor, alias) in (floors or {}).items():  # alias: the backend whose keys it reads
        call = floor_workload(floor, caches[alias].make_key, op, n)
        if call is not None:
            calls[row] = call
    samples: dict[str, list[float]] = {row: [] for row in calls}
    for call in calls.values():
        call()  # warm-up: connections, scripts
    for _ in range(passes):
        for row, call in calls.items():
            deadline = time.perf_counter() + budget_s / passes
            runs = 0
            while runs < min_runs or time.perf_counter() < deadline:
                start = time.perf_counter()
                call()
                samples[row].append((time.perf_counter() - start) * 1000)
                runs += 1
    return {row: statistics.median(times) for row, times in samples.items()}


def print_table(results: dict[tuple[str, int], dict[str, float]], rows: Any, cells: Any) -> None:
    names = [f"{op}({n})" for op, n in cells]
    print("| backend | " + " | ".join(f"{name} ms" for name in names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for row in rows:
        shown = [results[cell].get(row) for cell in cells]
        text = " | ".join("—" if ms is None else f"{ms:.3f}" for ms in shown)
        print(f"| {row} | {text} |")


def ratios(results: dict[tuple[str, int], dict[str, float]]) -> list[tuple[str, float, float, Any]]:
    """(what, ratio, target, goal): a ratio > 1 means RBCache is faster."""
    out = []
    for op, n, baselines, target, goal in TARGETS:
        fastest = min(baselines, key=lambda row: results[(op, n)][row])
        ratio = results[(op, n)][fastest] / results[(op, n)][RB]
        out.append((f"{fastest} {op}({n}) / RBCache {op}({n})", ratio, target, goal))
    n = 1000
    out.append((f"ShardClient get_many({n}) / RBCache", results[("get_many", n)][SHARD]
                / results[("get_many", n)][RB], 20.0, None))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short time budget per cell")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--delay-us", type=float, default=DELAY_US, help="0: no delayed table")
    args = parser.parse_args(argv)
    budget, passes, min_runs = (0.2, 2, 3) if args.quick else (1.2, 4, 5)
    import django
    import redis
    from bench_map import DelayProxy, RawMgetFloor  # noqa: PLC0415
    from django.conf import settings

    # django-redis's ShardClient warns about its own internal calls on every key
    warnings.filterwarnings("ignore", message=".*on sharded client should not specify client")

    registry = NodeRegistry()
    proxies: list[Any] = []
    floors: dict[str, tuple[Any, str]] = {}
    try:
        shard_nodes = registry.start(4)
        (single,) = registry.start(1)
        setting = caches_setting([node.url(0) for node in shard_nodes], single.url(0))
        if args.delay_us:
            for node in [*shard_nodes, single]:
                proxies.append(DelayProxy([node.port], args.delay_us))
            urls = [f"redis://127.0.0.1:{proxy.ports[0]}/0" for proxy in proxies]
            delayed = caches_setting(urls[:4], urls[4])
            setting.update((f"{row}, delayed", delayed[row]) for row in (RB, DJREDIS))
        settings.configure(CACHES=setting, USE_TZ=True)
        django.setup()
        from django.core.cache import caches

        try:
            import hiredis

            parser_name = f"hiredis {hiredis.__version__}"
        except ImportError:
            parser_name = "pure-Python parser"
        print(
            f"Python {platform.python_version()}, Django {django.get_version()}, "
            f"redis-py {redis.__version__} ({parser_name}), values {VALUE_SIZE} bytes, "
            f"medians in ms, all nodes on 127.0.0.1"
        )
        floors = {
            FLOOR4: (RawMgetFloor([node.port for node in shard_nodes]), RB),
            FLOOR1: (RawMgetFloor([single.port]), DJREDIS),  # django-redis's keys live there
        }
        results = {
            (op, n): measure_cell(caches, ROWS, op, n, budget, passes, min_runs, floors)
            for op, n in CELLS
        }
        print()
        print_table(results, (*ROWS, *FLOORS), CELLS)
        print()
        for n in (1, 10, 100, 1000):
            op = "get" if n == 1 else "get_many"
            cell = results[(op, n)]
            print(f"* {op}({n}): RBCache costs {cell[RB] / cell[FLOOR4]:.2f}x its floor "
                  f"(4 nodes); django-redis {cell[DJREDIS] / cell[FLOOR1]:.2f}x its floor "
                  f"(1 node); the 4-node floor is {cell[FLOOR4] / cell[FLOOR1]:.2f}x "
                  "the 1-node floor")  # fmt: skip
        print()
        if proxies:
            print(f"Every node behind its own delay proxy ({args.delay_us:g} µs each way):")
            print()
            ports = [proxy.ports[0] for proxy in proxies]
            delayed_floors = {
                f"{FLOOR4}, delayed": (RawMgetFloor(ports[:4]), RB),
                f"{FLOOR1}, delayed": (RawMgetFloor(ports[4:]), DJREDIS),
            }
            floors.update(delayed_floors)  # closed with the others
            delayed_results = {
                (op, n): measure_cell(
                    caches, DELAYED_ROWS, op, n, budget, passes, min_runs, delayed_floors
                )
                for op, n in DELAYED_CELLS
            }
            print_table(delayed_results, (*DELAYED_ROWS, *delayed_floors), DELAYED_CELLS)
            print()
            floor4, floor1 = delayed_floors
            for op, n in DELAYED_CELLS:
                cell = delayed_results[(op, n)]
                ratio = cell[DELAYED_ROWS[1]] / cell[DELAYED_ROWS[0]]
                line = f"* delayed {op}({n}): django-redis / RBCache {ratio:.2f}x"
                if floor4 in cell:
                    line += f"; 1-node floor / 4-node floor {cell[floor1] / cell[floor4]:.2f}x"
                print(line)
            print()
        missed = False
        for what, value, target, goal in ratios(results):
            ok = value >= target
            missed |= not ok
            wanted = f"target >= {target:.2f}x" + (f", goal {goal:g}x" if goal else "")
            print(f"* {what}: {value:.2f}x  ({wanted}: {'met' if ok else 'MISSED'})")
        return 1 if (missed and args.check) else 0
    finally:
        for floor, _alias in floors.values():
            floor.close()
        for proxy in proxies:
            proxy.stop()
        registry.stop_all()


if __name__ == "__main__":
    sys.exit(main())
