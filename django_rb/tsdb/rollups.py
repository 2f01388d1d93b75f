"""Rollups and time: which bucket a moment falls in, and when a bucket's keys expire.

Buckets are aligned to the UTC epoch: bucket ``b`` of a rollup of ``s`` seconds covers
``[b * s, (b + 1) * s)``, so daily buckets start at midnight UTC.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import TSDBArgumentError

#: Sentry's defaults: 10 s for an hour, hourly for a week, daily for 90 days.
DEFAULT_ROLLUPS: tuple[tuple[int, int], ...] = ((10, 360), (3600, 24 * 7), (86400, 90))

#: A counter hash holds this fraction of a rollup's retention (so it outlives its oldest bucket
#: by at most a sixth of the retention, and a chart reads few hashes per virtual node).
HASHES_PER_RETENTION = 6

#: A read may not ask for more buckets than this (a coarser rollup answers such a range).
MAX_BUCKETS_PER_READ = 100_000


@dataclass(frozen=True)
class Rollup:
    """One resolution: ``seconds`` per bucket, ``kept`` buckets retained."""

    seconds: int
    kept: int

    @property
    def retention(self) -> int:
        """How long a bucket is kept after it ends, in seconds."""
        return self.seconds * self.kept

    @property
    def span(self) -> int:
        """Buckets per counter hash."""
        return max(1, math.ceil(self.kept / HASHES_PER_RETENTION))

    def bucket(self, epoch: float) -> int:
        """The index of the bucket holding ``epoch``."""
        return int(epoch // self.seconds)

    def expiry(self, bucket: int) -> int:
        """EXPIREAT of a key holding one bucket: its end plus the retention."""
        return (bucket + 1) * self.seconds + self.retention

    def block_start(self, bucket: int) -> int:
        """The first bucket of the counter hash holding ``bucket``."""
        return bucket - bucket % self.span

    def block_expiry(self, block_start: int) -> int:
        """EXPIREAT of a counter hash: its last bucket's end plus the retention."""
        return self.expiry(block_start + self.span - 1)

    def buckets(self, start: float, end: float) -> range:
        """The bucket indexes from ``start``'s bucket to ``end``'s, inclusive."""
        first, last = self.bucket(start), self.bucket(end)
        if last - first >= MAX_BUCKETS_PER_READ:
            raise TSDBArgumentError(
                f"The range spans {last - first + 1} buckets of {self.seconds} s; at most "
                f"{MAX_BUCKETS_PER_READ} are read at once. Ask for a coarser rollup."
            )
        return range(first, last + 1)

    def retained(self, now: float) -> range:
        """The buckets still kept at ``now`` (the current one included)."""
        current = self.bucket(now)
        return range(current - self.kept + 1, current + 1)


def parse_rollups(value: Any) -> tuple[Rollup, ...]:
    """Validated rollups, finest first, from ``[(bucket_seconds, buckets_kept), ...]``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TSDBArgumentError(
            "Rollups are a list of (bucket_seconds, buckets_kept) pairs, "
            f"e.g. [(10, 360), (3600, 168)], not {type(value).__name__}."
        )
    rollups: dict[int, Rollup] = {}
    for item in value:
        pair = tuple(item) if isinstance(item, (tuple, list)) else None
        if pair is None or len(pair) != 2 or not all(_positive_int(n) for n in pair):
            raise TSDBArgumentError(
                f"The rollup {item!r} is not a pair of positive ints (bucket_seconds, "
                "buckets_kept), e.g. (10, 360)."
            )
        if pair[0] in rollups:
            raise TSDBArgumentError(f"The rollup of {pair[0]} s is given twice.")
        rollups[pair[0]] = Rollup(pair[0], pair[1])
    if not rollups:
        raise TSDBArgumentError("At least one rollup is needed, e.g. [(10, 360)].")
    return tuple(rollups[seconds] for seconds in sorted(rollups))


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def to_epoch(timestamp: Any, now: float | None = None) -> float:
    """Epoch seconds from an aware datetime, an int or a float; None means now."""
    kind = type(timestamp)
    if (kind is float or kind is int) and math.isfinite(timestamp):  # the common case first
        return float(timestamp)
    if timestamp is None:
        return time.time() if now is None else now
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None or timestamp.tzinfo.utcoffset(timestamp) is None:
            raise TSDBArgumentError(
                f"The datetime {timestamp.isoformat()} is naive, so its moment is unknown. "
                "Pass an aware one (django.utils.timezone.now(), or tzinfo=datetime.timezone.utc)."
            )
        return timestamp.timestamp()
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        raise TSDBArgumentError(
            "A timestamp is an aware datetime or epoch seconds (int or float), "
            f"not {type(timestamp).__name__}."
        )
    if not math.isfinite(timestamp):
        raise TSDBArgumentError(f"The timestamp {timestamp!r} is not a finite number.")
    return float(timestamp)


def find_rollup(rollups: Sequence[Rollup], seconds: Any) -> Rollup:
    """The configured rollup of ``seconds`` (an error listing the configured ones if none)."""
    for rollup in rollups:
        if rollup.seconds == seconds and not isinstance(seconds, bool):
            return rollup
    configured = ", ".join(str(r.seconds) for r in rollups)
    raise TSDBArgumentError(f"There is no rollup of {seconds!r} s; configured: {configured}.")


def optimal_rollup(rollups: Sequence[Rollup], start: float, now: float) -> Rollup:
    """The finest rollup whose retained buckets, counted back from now, still hold ``start``
    (the coarsest if none does)."""
    for rollup in rollups:
        if rollup.bucket(start) >= rollup.retained(now).start:
            return rollup
    return rollups[-1]


def window(start: Any, end: Any) -> tuple[float, float]:
    """A read's ``(start, end)`` as epoch seconds, checked to be in order."""
    first, last = to_epoch(start), to_epoch(end)
    if first > last:
        raise TSDBArgumentError(f"The range starts after it ends ({start!r} > {end!r}).")
    return first, last
