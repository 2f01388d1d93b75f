"""Benchmark: django_rb's asyncio engine against sync map(), redis.asyncio and a hand floor,
and RBCache's native aget_many against the thread-hop paths, all in one run.

Run from the repository root with the project's venv (see docs/benchmarks.md)::

    .venv/bin/python bench/bench_async.py           # both tables (about 30 s)
    .venv/bin/python bench/bench_async.py --quick   # a fast smoke run

Table 1: 1,000 GETs over 4 nodes on loopback. Table 2: 200 concurrent ``aget_many(20)``
calls, the 4 nodes behind bench/delay_proxy.py (250 µs each way). It starts its own
redis-server nodes on free ports (never 6379) and stops them (and the proxy) by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import hiredis
import redis
import redis.asyncio
from bench_map import DelayProxy, RawMgetFloor, load_data
from timing import bench_key, bench_value, rb_partition_host

from django_rb.cluster import Cluster
from django_rb.cluster.apool import AsyncPool
from django_rb.testing import NodeRegistry

try:
    import uvloop
except ImportError:  # its row stays blank
    uvloop = None

NODES = 4
KEYS = 1000
CONCURRENT = 200
PER_CALL = 20
DELAY_US = 250


#: the median process CPU time (ms) of each amedian_ms() run's samples, last one last
CPU_MS: list[float] = []


async def amedian_ms(run: Callable[[], Awaitable[Any]], min_time: float, min_reps: int = 5,
                     max_reps: int = 2000, warmup: int = 3) -> float:  # fmt: skip
    """Median wall time of ``await run()`` in ms (same rules as timing.median_ms); the median
    CPU time of this process per run goes to ``CPU_MS``."""
    for _ in range(warmup):
        await run()
    gc.collect()
    samples: list[float] = []
    cpu: list[float] = []
    clock, cpu_clock = time.perf_counter, time.process_time
    started = clock()
    while len(samples) < max_reps:
        t0, c0 = clock(), cpu_clock()
        await run()
        samples.append(clock() - t0)
        cpu.append(cpu_clock() - c0)
        if len(samples) >= min_reps and clock() - started >= min_time:
            break
    CPU_MS.append(statistics.median(cpu) * 1000.0)
    return statistics.median(samples) * 1000.0


def median_ms(run: Callable[[], Any], min_time: float) -> float:
    """The sync rows, timed by the same rules inside the same process."""

    async def wrapped() -> Any:
        return run()

    return asyncio.run(amedian_ms(wrapped, min_time))


# -- table 1: 1,000 GETs over 4 nodes ---------------------------------------------------------


def by_node(keys: list[str]) -> dict[int, list[str]]:
    """Keys grouped by node with rb's partition rule (django_rb's default router)."""
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(rb_partition_host(key, NODES), []).append(key)
    return groups


async def raw_mget_floor(ports: list[int], groups: dict[int, list[str]], min_time: float) -> float:
    """By hand: a stream per node, one MGET each written before any read, hiredis, gathered."""
    streams = [await asyncio.open_connection("127.0.0.1", port) for port in ports]
    payloads = {
        node: RawMgetFloor.encode_mget((k.encode() for k in keys), len(keys))
        for node, keys in groups.items()
    }

    async def read_one(node: int) -> list[Any]:
        reader = hiredis.Reader()
        stream = streams[node][0]
        while True:
            reader.feed(await stream.read(1 << 20))
            reply = reader.gets()
            if reply is not False:
                return reply

    async def fetch() -> list[Any]:
        for node, payload in payloads.items():
            streams[node][1].write(payload)
        return await asyncio.gather(*(read_one(node) for node in payloads))

    check(sum(await fetch(), []), sum(groups.values(), []))
    try:
        return await amedian_ms(fetch, min_time)
    finally:
        for _, writer in streams:
            writer.close()


async def redis_py_pipelines(ports: list[int], groups: dict[int, list[str]],
                             min_time: float) -> float:  # fmt: skip
    """redis.asyncio: a pipeline of GETs per node (pre-routed), executed with gather."""
    clients = [redis.asyncio.Redis(host="127.0.0.1", port=port) for port in ports]

    async def fetch() -> list[Any]:
        pipes = []
        for node, keys in groups.items():
            pipe = clients[node].pipeline(transaction=False)
            for key in keys:
                pipe.get(key)
            pipes.append(pipe.execute())
        return sum(await asyncio.gather(*pipes), [])

    check(await fetch(), sum(groups.values(), []))
    try:
        return await amedian_ms(fetch, min_time)
    finally:
        for client in clients:
            await client.aclose()


async def django_rb_amap(cluster: Cluster, keys: list[str], min_time: float) -> float:
    async def fetch() -> list[Any]:
        async with cluster.amap() as client:
            promises = [client.get(key) for key in keys]
        return [p.value for p in promises]

    check(await fetch(), keys)
    return await amedian_ms(fetch, min_time)


def check(values: list[Any], keys: list[str]) -> None:
    expected = [bench_value(int(key.rsplit(":", 1)[1])) for key in keys]
    if values != expected:
        raise RuntimeError("a method returned wrong values; its timing would mean nothing")


def table_gets(ports: list[int], min_time: float) -> dict[str, float | None]:
    keys = [bench_key(i) for i in range(KEYS)]
    groups = by_node(keys)
    hosts = {i: {"host": "127.0.0.1", "port": port} for i, port in enumerate(ports)}
    cluster = Cluster(hosts)
    rows: dict[str, float | None] = {}

    def sync_map() -> list[Any]:
        with cluster.map() as client:
            promises = [client.get(key) for key in keys]
        return [p.value for p in promises]

    check(sync_map(), keys)
    rows["django_rb amap() (asyncio loop)"] = asyncio.run(django_rb_amap(cluster, keys, min_time))
    if uvloop is not None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            rows["django_rb amap() (uvloop)"] = runner.run(
                django_rb_amap(Cluster(hosts), keys, min_time)
            )
    else:
        rows["django_rb amap() (uvloop)"] = None
    rows["django_rb sync map()"] = median_ms(sync_map, min_time)
    rows["redis.asyncio pipelines, gathered"] = asyncio.run(
        redis_py_pipelines(ports, groups, min_time)
    )
    rows["hand floor: asyncio MGET per node"] = asyncio.run(raw_mget_floor(ports, groups, min_time))
    cluster.disconnect_pools()
    return rows


# -- table 2: 200 concurrent aget_many(20) behind the delay proxy ------------------------------


def configure_django(proxied: list[int]) -> None:
    import django
    from django.conf import settings

    settings.configure(
        USE_TZ=True,
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "rb": {
                "BACKEND": "django_rb.cache.RBCache",
                "LOCATION": [f"redis://127.0.0.1:{port}/0" for port in proxied],
                "OPTIONS": {"SERIALIZER": "json"},
            },
            "rb_few": {  # the same nodes, fewer connections per node and loop
                "BACKEND": "django_rb.cache.RBCache",
                "LOCATION": [f"redis://127.0.0.1:{port}/0" for port in proxied],
                "OPTIONS": {"SERIALIZER": "json", "POOL_OPTIONS": {"max_connections": 8}},
            },
            "django_redis": {  # Django's own RedisCache: BaseCache.aget_many, aget per key
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": f"redis://127.0.0.1:{proxied[0]}/0",
                "KEY_PREFIX": "django",  # its own format: never read by RBCache
            },
        },
    )
    django.setup()


#: table 2's median process CPU ms per batch of calls, by row
CONCURRENT_CPU: dict[str, float] = {}


def table_concurrent(min_time: float) -> dict[str, float | None]:
    from asgiref.sync import sync_to_async
    from django.core.cache import caches

    rb, plain = caches["rb"], caches["django_redis"]
    keys = [f"page:{i}" for i in range(CONCURRENT + PER_CALL)]
    rb.set_many({key: key for key in keys}, timeout=None)
    plain.set_many({key: key for key in keys}, timeout=None)

    def calls(aget_many: Callable[[list[str]], Awaitable[dict]]) -> Callable[[], Awaitable[Any]]:
        async def run() -> None:
            results = await asyncio.gather(
                *(aget_many(keys[n : n + PER_CALL]) for n in range(CONCURRENT))
            )
            if any(len(found) != PER_CALL for found in results):
                raise RuntimeError("a call missed keys; its timing would mean nothing")

        return run

    rows: dict[str, float | None] = {}
    cpu: dict[str, float] = {}

    def timed(name: str, ms: float) -> None:
        rows[name] = ms
        cpu[name] = CPU_MS[-1]

    timed("RBCache aget_many, native", asyncio.run(amedian_ms(calls(rb.aget_many), min_time)))
    few = caches["rb_few"]
    timed(
        "RBCache aget_many, native, max_connections=8",
        asyncio.run(amedian_ms(calls(few.aget_many), min_time)),
    )
    pipelined = AsyncPool.rounds_per_connection
    AsyncPool.rounds_per_connection = 1  # the pools' strategy before they pipelined
    try:
        timed(
            "RBCache aget_many, native, a connection per round",
            asyncio.run(amedian_ms(calls(rb.aget_many), min_time)),
        )
    finally:
        AsyncPool.rounds_per_connection = pipelined
    hop = sync_to_async(rb.get_many, thread_sensitive=True)
    timed(
        "RBCache get_many, one thread hop per call",
        asyncio.run(amedian_ms(calls(hop), min_time, min_reps=3)),
    )
    timed(
        "Django RedisCache (BaseCache.aget_many: a hop per key)",
        asyncio.run(amedian_ms(calls(plain.aget_many), 0.0, min_reps=1, warmup=1)),  # ~20 s
    )
    CONCURRENT_CPU.update(cpu)
    return rows


# -- output -----------------------------------------------------------------------------------


def print_rows(title: str, rows: dict[str, float | None], base: str,
               cpu: dict[str, float] | None = None) -> None:  # fmt: skip
    print(f"\n{title}\n")
    extra = " CPU ms per batch |" if cpu else ""
    print(f"| method | median ms | vs {base} |{extra}")
    print("| --- | ---: | ---: |" + (" ---: |" if cpu else ""))
    base_ms = rows[base]
    for name, ms in rows.items():
        cells = f" {cpu[name]:.1f} |" if cpu and name in cpu else (" - |" if cpu else "")
        if ms is None:
            print(f"| {name} | - | - |{cells}")
            continue
        ratio = f"{ms / base_ms:.2f}x" if base_ms else "-"
        print(f"| {name} | {ms:.3f} | {ratio} |{cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="0.1 s per cell")
    parser.add_argument("--min-time", type=float, default=None, help="seconds per cell")
    args = parser.parse_args(argv)
    min_time = args.min_time or (0.1 if args.quick else 1.0)

    print(
        f"Python {platform.python_version()}, redis-py {redis.__version__}, hiredis "
        f"{hiredis.__version__}, uvloop {getattr(uvloop, '__version__', 'absent')}, "
        f"{os.cpu_count()} CPUs (shared, noisy), {NODES} nodes on 127.0.0.1"
    )
    registry = NodeRegistry()
    proxy = None
    try:
        nodes = registry.start(NODES)
        ports = [node.port for node in nodes]
        load_data(nodes, KEYS)
        gets = table_gets(ports, min_time)
        print_rows(
            f"{KEYS:,} GETs over {NODES} nodes (values {len(bench_value(0))} bytes)",
            gets,
            "django_rb amap() (asyncio loop)",
        )
        amap_ms = gets["django_rb amap() (asyncio loop)"] or 0.0
        for other in ("redis.asyncio pipelines, gathered", "django_rb sync map()"):
            other_ms = gets[other] or 0.0
            print(f"\n{other} / amap(): {other_ms / amap_ms:.2f}x", end="")
        print()

        proxy = DelayProxy(ports, DELAY_US)
        configure_django(proxy.ports)
        concurrent = table_concurrent(min_time)
        print_rows(
            f"{CONCURRENT} concurrent aget_many({PER_CALL}), {NODES} nodes behind a "
            f"{DELAY_US} µs-each-way delay proxy",
            concurrent,
            "RBCache aget_many, native",
            CONCURRENT_CPU,
        )
        native = concurrent["RBCache aget_many, native"] or 0.0
        hop_ms = concurrent["RBCache get_many, one thread hop per call"] or 0.0
        print(f"\nthread hop / native: {hop_ms / native:.2f}x (target: 4x)")
    finally:
        if proxy is not None:
            proxy.stop()
        registry.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
