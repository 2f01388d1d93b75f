"""`make demo`: four throwaway redis-server nodes, and django_rb's core at work on them.

Shows where keys go (both routers), one map() round of many GETs, a fanout, and what a dead
node does to a round. The nodes are stopped (by pid) when the demo ends.
"""

from __future__ import annotations

import time

from django_rb.cluster import Cluster, ConsistentHashingRouter, HostConnectionError
from django_rb.testing import NodeRegistry, cluster_hosts


def main() -> None:
    registry = NodeRegistry()
    try:
        nodes = registry.start(4)
        print("Started 4 redis-server nodes on ports", ", ".join(str(n.port) for n in nodes))
        hosts = cluster_hosts(nodes)
        partition = Cluster(hosts)
        ketama = Cluster(hosts, router_cls=ConsistentHashingRouter)

        print("\nWhere keys live (same placement as getsentry/rb for the same hosts):")
        print(f"  {'key':<14}{'partition':>10}{'ketama':>8}")
        for key in ("user:1", "user:2", "session:abc", "counter", "feed:42", "é-unicode"):
            p = partition.get_router().get_host_for_key(key)
            k = ketama.get_router().get_host_for_key(key)
            print(f"  {key:<14}{p:>10}{k:>8}")

        keys = [f"item:{i}" for i in range(1000)]
        with partition.map() as client:
            for key in keys:
                client.set(key, "x" * 100)
        timings = []
        for _ in range(21):
            started = time.perf_counter()
            with partition.map() as client:
                promises = [client.get(key) for key in keys]
            timings.append((time.perf_counter() - started) * 1000)
        assert all(p.value == b"x" * 100 for p in promises)
        elapsed = sorted(timings)[len(timings) // 2]
        print(f"\nmap(): 1000 GETs over 4 nodes in {elapsed:.2f} ms, median of 21 "
              "(one MGET per node, all written before any reply is read)")  # fmt: skip

        with partition.all() as client:
            sizes = client.dbsize()
            versions = client.info("server")
        print("\nall(): keys per node", sizes.value)
        print("       versions", {h: info["redis_version"] for h, info in versions.value.items()})

        nodes[3].stop()
        try:
            with partition.map() as client:
                promises = {key: client.get(key) for key in keys[:40]}
        except HostConnectionError as exc:
            alive = sum(1 for p in promises.values() if p.is_resolved)
            print(f"\nNode 3 stopped: the round raised {type(exc).__name__}: {exc}")
            print(f"  ...after the other nodes answered: {alive} of 40 keys still came back")
        partition.disconnect_pools()
        ketama.disconnect_pools()
    finally:
        registry.stop_all()
        print("\nNodes stopped.")


if __name__ == "__main__":
    main()
