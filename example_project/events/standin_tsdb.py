"""A stand-in for ``django_rb.tsdb`` (issue 18) with the few calls the site makes.

It exists only until the tsdb app lands on main: same method names and shapes, so swapping
it for ``django_rb.tsdb.tsdb`` is one import in ``stats.py``. Counters are hashes per bucket
(field = series key), distinct users HyperLogLogs per hour, top messages sorted sets per hour;
every call is one ``map()`` round. Distinct totals over several buckets are summed (an upper
bound): the site only asks for the current hour.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django_rb import get_cluster

#: (bucket seconds, buckets kept) for counters.
ROLLUPS = [(10, 360), (3600, 24 * 7)]
#: Distinct sets and frequencies are kept per hour.
SET_ROLLUP = 3600
SET_RETENTION = 24
#: Members kept per top-messages set.
FREQUENCY_CAPACITY = 100


def _epoch(timestamp: datetime | float | None) -> float:
    if timestamp is None:
        return time.time()
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise ValueError("naive datetime: give an aware one (or epoch seconds)")
        return timestamp.timestamp()
    return float(timestamp)


def _buckets(start: Any, end: Any, rollup: int) -> list[int]:
    first = int(_epoch(start) // rollup) * rollup
    last = int(_epoch(end) // rollup) * rollup
    if first > last:
        raise ValueError("start is after end")
    return list(range(first, last + rollup, rollup))


class StandInTSDB:
    """The subset of TSDB the example site uses."""

    prefix = "exts"

    def _counter_key(self, model: str, rollup: int, bucket: int) -> str:
        return f"{self.prefix}:c:{model}:{rollup}:{bucket}"

    def _set_key(self, kind: str, model: str, key: Any, bucket: int) -> str:
        return f"{self.prefix}:{kind}:{model}:{bucket}:{key}"

    def incr_multi(
        self, items: Sequence[tuple[Any, ...]], timestamp: Any = None, count: int = 1
    ) -> None:
        """Count ``(model, key)`` or ``(model, key, count)`` in every rollup, one round."""
        now = _epoch(timestamp)
        with get_cluster().map() as client:
            for item in items:
                model, key = item[0], item[1]
                amount = item[2] if len(item) > 2 else count
                for rollup, kept in ROLLUPS:
                    bucket = int(now // rollup) * rollup
                    name = self._counter_key(model, rollup, bucket)
                    client.hincrby(name, str(key), amount)
                    client.expireat(name, bucket + rollup * (kept + 1))

    def record(self, model: str, key: Any, values: Iterable[Any], timestamp: Any = None) -> None:
        """Add ``values`` to the series' distinct set of the current hour."""
        bucket = int(_epoch(timestamp) // SET_ROLLUP) * SET_ROLLUP
        name = self._set_key("h", model, key, bucket)
        with get_cluster().map() as client:
            client.pfadd(name, *[str(v) for v in values])
            client.expireat(name, bucket + SET_ROLLUP * (SET_RETENTION + 1))

    def record_frequency_multi(
        self, requests: Sequence[tuple[str, dict[Any, dict[str, float]]]], timestamp: Any = None
    ) -> None:
        """Sentry's shape ``[(model, {key: {member: score}})]``, capped sets, one round."""
        bucket = int(_epoch(timestamp) // SET_ROLLUP) * SET_ROLLUP
        with get_cluster().map() as client:
            for model, by_key in requests:
                for key, members in by_key.items():
                    name = self._set_key("f", model, key, bucket)
                    for member, score in members.items():
                        client.zincrby(name, score, member)
                    client.zremrangebyrank(name, 0, -FREQUENCY_CAPACITY - 1)
                    client.expireat(name, bucket + SET_ROLLUP * (SET_RETENTION + 1))

    def get_range(
        self, model: str, keys: Sequence[Any], start: Any, end: Any, rollup: int | None = None
    ) -> dict[Any, list[tuple[int, int]]]:
        """``{key: [(bucket, count), ...]}`` zero-filled: one HMGET per bucket, one round."""
        rollup = rollup or ROLLUPS[0][0]
        if rollup not in dict(ROLLUPS):
            raise ValueError(f"unknown rollup {rollup}")
        buckets = _buckets(start, end, rollup)
        fields = [str(key) for key in keys]
        with get_cluster().map() as client:
            promises = [
                client.hmget(self._counter_key(model, rollup, bucket), fields) for bucket in buckets
            ]
        series: dict[Any, list[tuple[int, int]]] = {key: [] for key in keys}
        for bucket, promise in zip(buckets, promises, strict=True):
            for key, value in zip(keys, promise.value, strict=True):
                series[key].append((bucket, int(value or 0)))
        return series

    def get_sums(
        self, model: str, keys: Sequence[Any], start: Any, end: Any, rollup: int | None = None
    ) -> dict[Any, int]:
        """Totals of ``get_range``."""
        ranges = self.get_range(model, keys, start, end, rollup)
        return {key: sum(count for _, count in points) for key, points in ranges.items()}

    def get_distinct_counts_totals(
        self, model: str, keys: Sequence[Any], start: Any, end: Any, rollup: int | None = None
    ) -> dict[Any, int]:
        """Distinct values per key (summed over hour buckets: exact for one hour)."""
        buckets = _buckets(start, end, SET_ROLLUP)
        with get_cluster().map() as client:
            promises = {
                key: [client.pfcount(self._set_key("h", model, key, b)) for b in buckets]
                for key in keys
            }
        return {key: sum(p.value for p in found) for key, found in promises.items()}

    def get_most_frequent(
        self,
        model: str,
        keys: Sequence[Any],
        start: Any,
        end: Any,
        rollup: int | None = None,
        limit: int | None = None,
    ) -> dict[Any, list[tuple[str, float]]]:
        """``{key: [(member, score), ...]}`` highest first, hour sets merged here."""
        buckets = _buckets(start, end, SET_ROLLUP)
        with get_cluster().map() as client:
            promises = {
                key: [
                    client.zrange(self._set_key("f", model, key, b), 0, -1, withscores=True)
                    for b in buckets
                ]
                for key in keys
            }
        result: dict[Any, list[tuple[str, float]]] = {}
        for key, found in promises.items():
            totals: dict[str, float] = {}
            for promise in found:
                for member, score in promise.value:
                    text = member.decode() if isinstance(member, bytes) else str(member)
                    totals[text] = totals.get(text, 0.0) + score
            ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
            result[key] = ranked[:limit] if limit is not None else ranked
        return result


tsdb = StandInTSDB()
