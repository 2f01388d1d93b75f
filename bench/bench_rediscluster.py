"""1,000 GETs over 3 masters: django_rb on a Redis Cluster vs redis-py's RedisCluster, and vs
django_rb over 3 plain (rb-style) nodes, all in one run. Prints a table of medians and ratios.

    .venv/bin/python bench/bench_rediscluster.py [--keys 1000] [--min-time 1.0]

Starts its own servers (a 3-master Redis Cluster and 3 plain nodes) on free loopback ports and
stops them at the end. 1,000 random keys fall in ~970 slots, so on a Redis Cluster almost no
GETs fold into MGETs: the rows show the per-command path. Figures come from whatever machine
runs this (a shared, noisy one for the numbers in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from redis.cluster import ClusterNode  # noqa: E402
from redis.cluster import RedisCluster as RedisPyCluster  # noqa: E402
from redis.crc import key_slot  # noqa: E402
from timing import Budget, bench_key, median_ms  # noqa: E402

from django_rb.cluster import Cluster, RedisCluster  # noqa: E402
from django_rb.testing import NodeRegistry, cluster_hosts, start_redis_cluster  # noqa: E402


def map_gets(cluster: Any, keys: list[str], auto_batch: bool = True) -> Callable[[], Any]:
    def run() -> list[Any]:
        with cluster.map(auto_batch=auto_batch) as client:
            promises = [client.get(key) for key in keys]
        return [p.value for p in promises]

    return run


def redispy_pipeline(client: RedisPyCluster, keys: list[str]) -> Callable[[], Any]:
    def run() -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
        return pipe.execute()

    return run


def redispy_mget(client: RedisPyCluster, keys: list[str]) -> Callable[[], Any]:
    return lambda: client.mget_nonatomic(keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--min-time", type=float, default=1.0)
    args = parser.parse_args(argv)
    budget = Budget(min_time=args.min_time, min_reps=10)
    keys = [bench_key(i) for i in range(args.keys)]
    registry = NodeRegistry()
    try:
        setup = start_redis_cluster(registry, masters=3, replicas=0)
        plain_nodes = registry.start(3)
        ours = RedisCluster(setup.startup_nodes())
        plain = Cluster(cluster_hosts(plain_nodes))
        theirs = RedisPyCluster(startup_nodes=[ClusterNode("127.0.0.1", setup.masters[0].port)])
        for cluster in (ours, plain):
            with cluster.map() as client:
                for key in keys:
                    client.set(key, key)
        slots = len({key_slot(key.encode()) for key in keys})
        expected = [key.encode() for key in keys]
        rows: list[tuple[str, Callable[[], Any]]] = [
            ("django_rb map(), Redis Cluster", map_gets(ours, keys)),
            ("redis-py RedisCluster pipeline", redispy_pipeline(theirs, keys)),
            ("redis-py RedisCluster mget_nonatomic", redispy_mget(theirs, keys)),
            ("django_rb map(), 3 plain nodes, auto_batch=False", map_gets(plain, keys, False)),
            ("django_rb map(), 3 plain nodes (folded MGETs)", map_gets(plain, keys)),
        ]
        results = {}
        for name, run in rows:
            assert run() == expected, name
            results[name] = median_ms(run, budget)
        base = results["django_rb map(), Redis Cluster"]
        print(f"{args.keys} GETs over 3 masters ({slots} distinct slots), median ms")
        print(f"| {'method':<50} | {'ms':>8} | {'vs django_rb on Redis Cluster':>30} |")
        print(f"| {'-' * 50} | {'-' * 8}: | {'-' * 30}: |")
        for name, ms in results.items():
            print(f"| {name:<50} | {ms:8.2f} | {ms / base:29.2f}x |")
        theirs.close()
        ours.disconnect_pools()
        plain.disconnect_pools()
    finally:
        registry.stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
