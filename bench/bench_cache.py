"""Benchmark: get_many / set_many through Django cache backends, RBCache against the usual ones.

Run from the repository root with the project's venv (see docs/benchmarks.md)::

    .venv/bin/python bench/bench_cache.py            # the full table
    .venv/bin/python bench/bench_cache.py --quick    # a fast smoke run
    .venv/bin/python bench/bench_cache.py --check    # exit 1 if a target is missed

Backends, in one run, on redis-server nodes this script starts on free ports (never 6379):

* RBCache over 4 nodes (one parallel round per call through django_rb's core),
* Django's RedisCache on 1 node,
* django-redis (DefaultClient) on 1 node,
* django-redis ShardClient over the same 4 nodes as RBCache.

Values are 100-byte strings; keys N = 100 and 1000; every figure is the median of repeated
calls, in milliseconds. Targets: RBCache get_many(1000) faster than the fastest single-node
backend, and at least 20x faster than ShardClient.
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


def median_ms(call: Callable[[], Any], budget_s: float, min_runs: int, max_runs: int) -> float:
    """Median wall time of ``call`` in ms: at least ``min_runs``, then until the budget is spent."""
    call()  # warm-up: connections, script loading
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() < deadline):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(cache: Any, n: int, budget_s: float, min_runs: int, max_runs: int) -> dict[str, float]:
    keys = [f"bench:{i:06d}" for i in range(n)]
    data = {key: key.ljust(VALUE_SIZE, "x")[:VALUE_SIZE] for key in keys}
    cache.set_many(data)
    got = cache.get_many(keys)
    if got != data:
        raise SystemExit(f"{cache!r}: get_many returned {len(got)} of {n} keys correctly.")
    return {
        "get_many": median_ms(lambda: cache.get_many(keys), budget_s, min_runs, max_runs),
        "set_many": median_ms(lambda: cache.set_many(data), budget_s, min_runs, max_runs),
    }


def print_table(results: dict[str, dict[int, dict[str, float]]]) -> None:
    columns = [(op, n) for op in ("get_many", "set_many") for n in SIZES]
    header = f"| {'backend':<36} |" + "".join(f" {op}({n}) ms |" for op, n in columns)
    print(header)
    print("|" + "-" * 38 + "|" + "".join("-" * (len(f" {op}({n}) ms ")) + "|" for op, n in columns))
    for row in ROWS:
        cells = ""
        for op, n in columns:
            width = len(f" {op}({n}) ms ") - 2
            cells += f" {results[row][n][op]:>{width}.3f} |"
        print(f"| {row:<36} |{cells}")


def ratios(results: dict[str, dict[int, dict[str, float]]]) -> list[tuple[str, float, float]]:
    """(what, ratio, target): ratios > 1 mean RBCache is faster."""
    n = max(SIZES)
    rb_get = results[RB][n]["get_many"]
    fastest_single = min(results[row][n]["get_many"] for row in SINGLE_NODE)
    out = [
        (
            f"fastest single-node get_many({n}) / RBCache get_many({n})",
            fastest_single / rb_get,
            1.0,
        ),
        (
            f"ShardClient get_many({n}) / RBCache get_many({n})",
            results[SHARD][n]["get_many"] / rb_get,
            20.0,
        ),
    ]
    for row in (DJANGO, DJREDIS, SHARD):
        for op in ("get_many", "set_many"):
            out.append(
                (f"{row} {op}({n}) / RBCache", results[row][n][op] / results[RB][n][op], 0.0)
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short time budget per cell")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    budget, min_runs, max_runs = (0.3, 5, 50) if args.quick else (2.0, 15, 1000)

    import django
    import redis
    from django.conf import settings

    # django-redis's ShardClient warns about its own internal calls on every key
    warnings.filterwarnings("ignore", message=".*on sharded client should not specify client")

    registry = NodeRegistry()
    try:
        shard_nodes = registry.start(4)
        (single,) = registry.start(1)
        settings.configure(
            CACHES=caches_setting([node.url(0) for node in shard_nodes], single.url(0)),
            USE_TZ=True,
        )
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
        results: dict[str, dict[int, dict[str, float]]] = {}
        for row in ROWS:
            results[row] = {}
            for n in SIZES:
                results[row][n] = measure(caches[row], n, budget, min_runs, max_runs)
        print()
        print_table(results)
        print()
        missed = False
        for what, value, target in ratios(results):
            verdict = ""
            if target:
                ok = value > target if target == 1.0 else value >= target
                missed |= not ok
                verdict = f"  (target {'>' if target == 1.0 else '>='} {target:g}x: {'met' if ok else 'MISSED'})"
            print(f"{what}: {value:.1f}x{verdict}")
        return 1 if (missed and args.check) else 0
    finally:
        registry.stop_all()


if __name__ == "__main__":
    sys.exit(main())
