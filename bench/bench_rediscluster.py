"""1,000 GETs over 3 masters: django_rb on a Redis Cluster vs redis-py's RedisCluster, and vs
django_rb over 3 plain (rb-style) nodes, all in one run. Prints a table of medians and ratios.

    .venv/bin/python bench/bench_rediscluster.py [--keys 1000] [--min-time 1.0] [--delay-us 250]

Starts its own servers (a 3-master Redis Cluster and 3 plain nodes) on free loopback ports and
stops them at the end. 1,000 random keys fall in ~970 slots, so on a Redis Cluster almost no
GETs fold into MGETs: the rows show the per-command path. Two floors show what the machine
itself costs: hand-encoded single GETs on raw sockets to the cluster's masters (no promises,
no client), and one hand-encoded MGET per plain node. Every row is measured ``--passes`` times,
the rows interleaved, and each cell is the median of its passes. Then the same rows again with every
node behind bench/delay_proxy.py (``--delay-us`` each way): the cluster's nodes announce the
proxy's ports (``cluster-announce-port``), so the slot map, and every client, goes through it;
the "round trips" column divides each median by a PING's round trip through the proxy, to show
how many sequential waits each method costs. Figures come from whatever machine runs this (a
shared, noisy one for the numbers in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_map import DelayProxy, RawMgetFloor, RawPipelineFloor, round_trip_us  # noqa: E402
from redis.cluster import ClusterNode  # noqa: E402
from redis.cluster import RedisCluster as RedisPyCluster  # noqa: E402
from redis.crc import key_slot  # noqa: E402
from timing import Budget, bench_key, median_ms  # noqa: E402

from django_rb.cluster import Cluster, RedisCluster  # noqa: E402
from django_rb.testing import (  # noqa: E402
    NodeRegistry,
    RedisClusterNodes,
    RedisNode,
    start_redis_cluster,
)

OURS = "django_rb map(), Redis Cluster"
FLOOR = "floor: raw sockets, single GETs, Redis Cluster"
MGET_FLOOR = "floor: raw sockets, one MGET per plain node"


class ClusterGetFloor(RawPipelineFloor):
    """The per-command floor on a Redis Cluster: hand-encoded GETs, one pipeline per master
    (keys grouped by the slot map), every master written before any read, hiredis parsing."""

    def __init__(self, cluster: RedisCluster) -> None:
        names = list(cluster.hosts)
        super().__init__([int(name.rsplit(":", 1)[1]) for name in names], b"GET")
        index = {name: i for i, name in enumerate(names)}
        self.owner_of = [index[owner] for owner in cluster.slot_map.owners]

    def group(self, keys: list[str]) -> tuple[list[bytes], dict[int, list[int]]]:
        positions: dict[int, list[int]] = {}
        encoded = [key.encode() for key in keys]
        for pos, key in enumerate(encoded):
            positions.setdefault(self.owner_of[key_slot(key)], []).append(pos)
        return encoded, positions


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


def announce_proxy(setup: RedisClusterNodes, proxied: dict[int, int]) -> None:
    """Make every node announce its proxy's port (its bus port stays), and wait until every
    node's slot map names only proxy ports."""
    for node in setup.masters:
        client = setup.client(node)
        client.config_set("cluster-announce-bus-port", node.port + 10000)
        client.config_set("cluster-announce-port", proxied[node.port])
    wanted = sorted(proxied[node.port] for node in setup.masters)
    deadline = time.monotonic() + 30
    while True:
        views = [
            sorted(int(owner[1]) for _, _, owner, *_ in slot_ranges(setup, node))
            for node in setup.masters
        ]
        if all(view == wanted for view in views):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the nodes did not learn each other's announced ports in time")
        time.sleep(0.05)


def slot_ranges(setup: RedisClusterNodes, node: RedisNode) -> Any:
    """CLUSTER SLOTS as ``node`` sees it."""
    return setup.client(node).execute_command("CLUSTER", "SLOTS")


def build_rows(
    seed_port: int, plain_ports: list[int]
) -> tuple[list[tuple[str, Callable[[], Any]]], list[Any]]:
    """The rows of one table, on the cluster reached through ``seed_port`` and plain nodes on
    ``plain_ports``; and the clients to close afterwards."""
    ours = RedisCluster([f"redis://127.0.0.1:{seed_port}/0"])
    plain = Cluster({i: {"host": "127.0.0.1", "port": port} for i, port in enumerate(plain_ports)})
    theirs = RedisPyCluster(startup_nodes=[ClusterNode("127.0.0.1", seed_port)])
    floor, mget_floor = ClusterGetFloor(ours), RawMgetFloor(plain_ports)
    rows: list[tuple[str, Callable[[], Any]]] = [
        (OURS, map_gets(ours, KEYS)),
        ("redis-py RedisCluster pipeline", redispy_pipeline(theirs, KEYS)),
        ("redis-py RedisCluster mget_nonatomic", redispy_mget(theirs, KEYS)),
        ("django_rb map(), 3 plain nodes, auto_batch=False", map_gets(plain, KEYS, False)),
        ("django_rb map(), 3 plain nodes (folded MGETs)", map_gets(plain, KEYS)),
        (FLOOR, lambda: floor.fetch(KEYS)),
        (MGET_FLOOR, lambda: mget_floor.fetch(KEYS)),
    ]
    return rows, [ours, plain, theirs, floor, mget_floor]


def measure(
    rows: list[tuple[str, Callable[[], Any]]], budget: Budget, passes: int
) -> dict[str, float]:
    """Each row's median, ``passes`` times with the rows interleaved (so a noisy spell of the
    machine falls on every row alike), and the median of each row's passes."""
    expected = [key.encode() for key in KEYS]
    for name, run in rows:
        assert run() == expected, name
    samples: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _ in range(passes):
        for name, run in rows:
            samples[name].append(median_ms(run, budget))
    return {name: statistics.median(values) for name, values in samples.items()}


def close(clients: list[Any]) -> None:
    for client in clients:
        if isinstance(client, RedisPyCluster | RawPipelineFloor | RawMgetFloor):
            client.close()
        else:
            client.disconnect_pools()


def print_table(results: dict[str, float], direct: dict[str, float] | None = None,
                rtt_ms: float = 0.0) -> None:  # fmt: skip
    """One table; with ``direct``, a column of what the proxy added, in PING round trips
    (about 1 for a method that waits on every node at once, more for each sequential wait)."""
    base = results[OURS]
    extra = f" {'added by the proxy, round trips':>31} |" if direct else ""
    print(f"| {'method':<50} | {'ms':>8} | {'vs django_rb on Redis Cluster':>30} |{extra}")
    rule = f" {'-' * 30}: |" if direct else ""
    print(f"| {'-' * 50} | {'-' * 7}: | {'-' * 29}: |{rule}")
    for name, ms in results.items():
        extra = f" {(ms - direct[name]) / rtt_ms:31.1f} |" if direct else ""
        print(f"| {name:<50} | {ms:8.2f} | {ms / base:29.2f}x |{extra}")


def print_targets(results: dict[str, float]) -> None:
    """The issue's two targets, and how far the machine's own floors are from them."""
    ours, folded = results[OURS], results["django_rb map(), 3 plain nodes (folded MGETs)"]
    pipeline = results["redis-py RedisCluster pipeline"]
    print()
    print(f"redis-py's cluster pipeline / django_rb on Redis Cluster: {pipeline / ours:.2f}x")
    print(f"django_rb on Redis Cluster / rb-style folded map(): {ours / folded:.2f}x")
    print(
        f"the raw single-GET floor on Redis Cluster / rb-style folded map(): "
        f"{results[FLOOR] / folded:.2f}x; django_rb / that floor: {ours / results[FLOOR]:.2f}x"
    )


KEYS: list[str] = []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--delay-us", type=float, default=250.0)
    parser.add_argument("--passes", type=int, default=5, help="interleaved passes per row")
    args = parser.parse_args(argv)
    budget = Budget(min_time=args.min_time / args.passes, min_reps=10)
    KEYS[:] = [bench_key(i) for i in range(args.keys)]
    registry = NodeRegistry()
    proxy = None
    try:
        setup = start_redis_cluster(registry, masters=3, replicas=0)
        plain_nodes: list[RedisNode] = registry.start(3)
        plain_ports = [node.port for node in plain_nodes]
        rows, clients = build_rows(setup.masters[0].port, plain_ports)
        for cluster in clients[:2]:
            with cluster.map() as client:
                for key in KEYS:
                    client.set(key, key)
        slots = len({key_slot(key.encode()) for key in KEYS})
        direct = measure(rows, budget, args.passes)
        close(clients)
        print(f"{args.keys} GETs over 3 masters ({slots} distinct slots), median ms")
        print()
        print_table(direct)
        print_targets(direct)

        real = [node.port for node in setup.masters] + plain_ports
        proxy = DelayProxy(real, args.delay_us)
        proxied = dict(zip(real, proxy.ports, strict=True))
        announce_proxy(setup, proxied)
        rtt_ms = round_trip_us(proxy.ports[0]) / 1000
        rows, clients = build_rows(proxied[setup.masters[0].port], proxy.ports[3:])
        delayed = measure(rows, budget, args.passes)
        close(clients)
        print()
        print(
            f"The same, every node behind the delay proxy ({args.delay_us:.0f} us each way; "
            f"a PING's round trip through it: {rtt_ms:.2f} ms)"
        )
        print()
        print_table(delayed, direct, rtt_ms)
        print_targets(delayed)
    finally:
        if proxy is not None:
            proxy.stop()
        registry.stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
