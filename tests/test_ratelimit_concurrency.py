"""Many clients on one bucket: several processes x threads never admit more than the bucket
allows (burst + rate x elapsed, +1), and not much less either (at least 80% of it, or of the
requests made when a loaded machine let the clients make fewer than that)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

from django_rb.cluster import Cluster
from django_rb.ratelimit import RateLimiter
from django_rb.testing import cluster_hosts

PROCESSES = 3
THREADS = 4
RATE, BURST = "100/s", 20
PER_SECOND = 100
RUN_SECONDS = 1.5


def _hammer(hosts: dict[int, Any], key: str, ready: Any, results: Any) -> None:
    """In a child process: THREADS threads consume ``key`` until the run ends."""
    cluster = Cluster(hosts)
    limiter = RateLimiter(cluster)
    limiter.peek("warm-up", RATE)  # connect before the clock starts
    ready.wait(timeout=120)  # every process is up: start together, however slow spawning was
    start_at = time.time() + 0.05
    counts: list[tuple[int, int, float, float]] = []
    lock = threading.Lock()

    def run() -> None:
        allowed = attempts = 0
        while time.time() < start_at:
            time.sleep(0.001)
        first = time.time()
        last = first
        while time.time() < start_at + RUN_SECONDS:
            attempts += 1
            if limiter.consume(key, RATE, burst=BURST).allowed:
                allowed += 1
            last = time.time()
        with lock:
            counts.append((allowed, attempts, first, last))

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cluster.disconnect_pools()
    results.put(counts)


def test_processes_and_threads_on_one_key(rb_cluster: Cluster, rb_nodes: list[Any]) -> None:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ready = context.Barrier(PROCESSES + 1)
    children = [
        context.Process(target=_hammer, args=(cluster_hosts(rb_nodes), "hot", ready, results))
        for _ in range(PROCESSES)
    ]
    for child in children:
        child.start()
    ready.wait(timeout=120)
    counts = [row for _ in children for row in results.get(timeout=60)]
    for child in children:
        child.join(timeout=30)
    assert len(counts) == PROCESSES * THREADS
    admitted = sum(row[0] for row in counts)
    attempted = sum(row[1] for row in counts)
    elapsed = max(row[3] for row in counts) - min(row[2] for row in counts)
    ceiling = BURST + PER_SECOND * elapsed + 1
    assert admitted <= ceiling, (admitted, ceiling)
    # The floor: the bucket's allowance, or every request when the clients made fewer.
    assert admitted >= 0.8 * min(ceiling, attempted), (admitted, attempted, ceiling)
