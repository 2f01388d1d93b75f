"""Timing loop shared by bench_map.py and rb_runner.py (stdlib only: it runs in both venvs).

Both sides measure with the same rules, so their medians compare fairly: a few warm-up runs,
then repeat until the cell has used ``min_time`` seconds (and at least ``min_reps`` runs) or
reached ``max_reps`` runs, and report the median in milliseconds.
"""

from __future__ import annotations

import gc
import statistics
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Budget:
    """How long to measure one cell."""

    min_time: float = 0.3
    min_reps: int = 5
    max_reps: int = 1000
    warmup: int = 3

    def as_dict(self) -> dict[str, Any]:
        return {
            "min_time": self.min_time,
            "min_reps": self.min_reps,
            "max_reps": self.max_reps,
            "warmup": self.warmup,
        }


def median_ms(run: Callable[[], Any], budget: Budget) -> float:
    """Median wall time of ``run()`` in ms under ``budget``."""
    for _ in range(budget.warmup):
        run()
    gc.collect()
    samples: list[float] = []
    clock = time.perf_counter
    started = clock()
    while True:
        t0 = clock()
        run()
        samples.append(clock() - t0)
        reps = len(samples)
        if reps >= budget.max_reps:
            break
        if reps >= budget.min_reps and clock() - started >= budget.min_time:
            break
    return statistics.median(samples) * 1000.0


def bench_key(i: int) -> str:
    """The i-th benchmark key."""
    return f"bench:key:{i:06d}"


def bench_hash_key(i: int) -> str:
    """The i-th benchmark hash (its field ``HASH_FIELD`` holds ``bench_value(i)``)."""
    return f"bench:hash:{i:06d}"


HASH_FIELD = "f"


def bench_value(i: int) -> bytes:
    """The 100-byte value stored under the i-th key (unique per key, so results are checkable)."""
    head = f"value-{i:06d}-".encode()
    return head + b"x" * (100 - len(head))


def rb_partition_host(key: str | bytes, host_count: int) -> int:
    """rb's PartitionRouter rule: Python 2's signed crc32 of the key, modulo the host count."""
    data = key.encode("utf-8") if isinstance(key, str) else key
    crc = zlib.crc32(data)
    if crc & 0x80000000:
        crc -= 1 << 32
    return crc % host_count
