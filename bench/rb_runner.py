"""Time rb 1.11's own ``cluster.map()`` GETs; run by bench_map.py inside the rb virtualenv.

rb needs redis-py older than 5, so it cannot share a process with django_rb. bench_map.py
starts this script with the rb venv's interpreter, sends a JSON job on stdin and reads one
JSON object from stdout::

    job    = {"ports": [...], "combos": [[K, N], ...], "routers": ["partition", "ketama"],
              "budget": {...}, "host": "127.0.0.1"}
    result = {"rb_version": "1.11.0", "results": {"partition": {"K=4,N=1000": ms, ...},
              "per_command": {"hget": ms, "get_unbatched": ms}}, "errors": {...}}

The keys and values are the same as the parent's (``timing.bench_key``/``bench_value``), and
the timing loop is the same code (``timing.median_ms``), so the medians compare directly.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import HASH_FIELD, Budget, bench_hash_key, bench_key, bench_value, median_ms  # noqa: E402


def cell_name(k: int, n: int) -> str:
    return f"K={k},N={n}"


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Measure every (router, K, N) cell of the job with rb."""
    import rb  # noqa: PLC0415  (only in the rb venv)

    routers = {"partition": rb.PartitionRouter, "ketama": rb.ConsistentHashingRouter}
    budget = Budget(**job["budget"])
    host = job.get("host", "127.0.0.1")
    results: dict[str, dict[str, float]] = {}
    errors: dict[str, str] = {}
    for router_name in job["routers"]:
        results[router_name] = {}
        for k in sorted({k for k, _n in job["combos"]}):
            hosts = {i: {"host": host, "port": port} for i, port in enumerate(job["ports"][:k])}
            cluster = rb.Cluster(hosts, router_cls=routers[router_name])
            for kk, n in job["combos"]:
                if kk != k:
                    continue
                keys = [bench_key(i) for i in range(n)]
                expected = [bench_value(i) for i in range(n)]

                def fetch(keys: list[str] = keys, cluster: Any = cluster) -> list[Any]:
                    with cluster.map() as client:
                        promises = [client.get(key) for key in keys]
                    return [p.value for p in promises]

                name = cell_name(k, n)
                if fetch() != expected:
                    errors[f"{router_name} {name}"] = "rb returned wrong values"
                    continue
                results[router_name][name] = median_ms(fetch, budget)
            cluster.disconnect_pools()
    if job.get("per_command"):
        results["per_command"] = per_command(rb, job, budget, errors)
    return {
        "rb_version": getattr(rb, "__version__", "?"),
        "python": sys.version.split()[0],
        "results": results,
        "errors": errors,
    }


def per_command(rb: Any, job: dict[str, Any], budget: Budget, errors: dict[str, str]) -> dict:
    """rb's map() for commands no auto-batching folds: N HGETs, and N GETs with
    auto_batch=False, over the first K ports (partition router)."""
    k, n = job["per_command"]
    host = job.get("host", "127.0.0.1")
    hosts = {i: {"host": host, "port": port} for i, port in enumerate(job["ports"][:k])}
    cluster = rb.Cluster(hosts)
    keys = [bench_key(i) for i in range(n)]
    hashes = [bench_hash_key(i) for i in range(n)]
    expected = [bench_value(i) for i in range(n)]

    def hgets() -> list[Any]:
        with cluster.map() as client:
            promises = [client.hget(h, HASH_FIELD) for h in hashes]
        return [p.value for p in promises]

    def unbatched_gets() -> list[Any]:
        with cluster.map(auto_batch=False) as client:
            promises = [client.get(key) for key in keys]
        return [p.value for p in promises]

    out: dict[str, float] = {}
    for name, fetch in (("hget", hgets), ("get_unbatched", unbatched_gets)):
        if fetch() != expected:
            errors[f"per-command {name}"] = "rb returned wrong values"
            continue
        out[name] = median_ms(fetch, budget)
    cluster.disconnect_pools()
    return out


def main() -> int:
    job = json.load(sys.stdin)
    json.dump(run_job(job), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
