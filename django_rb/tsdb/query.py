"""What a read covers: one model's series over a range of one rollup, in some environments."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .keys import KeyNames, series_token
from .ledger import Cell
from .rollups import Rollup


@dataclass(frozen=True)
class Query:
    """A validated read (``envs`` holds "" for the all-environments series)."""

    names: KeyNames
    model: str
    keys: list[Any]
    rollup: Rollup
    buckets: range
    envs: tuple[str, ...]

    @property
    def epochs(self) -> list[int]:
        """The start of each bucket, in epoch seconds."""
        return [bucket * self.rollup.seconds for bucket in self.buckets]

    def tag(self, key: Any) -> str:
        """Where a series' HyperLogLogs and sorted sets live."""
        return self.names.tag(self.model, series_token(key))

    def hyperloglogs(self, tag: str, buckets: Iterable[int] | None = None) -> list[str]:
        """A series' HyperLogLogs in ``buckets`` (default: the whole range), every env."""
        seconds, envs = self.rollup.seconds, self.envs
        chosen = self.buckets if buckets is None else buckets
        return [self.names.distinct(tag, seconds, b, env) for b in chosen for env in envs]

    def sorted_sets(self, tag: str, buckets: Iterable[int] | None = None) -> list[str]:
        """A series' sorted sets in ``buckets`` (default: the whole range), every env."""
        seconds, envs = self.rollup.seconds, self.envs
        chosen = self.buckets if buckets is None else buckets
        return [self.names.frequency(tag, seconds, b, env) for b in chosen for env in envs]


def bucket_keys(
    kind: str,
    names: KeyNames,
    rollups: Sequence[Rollup],
    model: str,
    key: Any,
    epoch: float,
    envs: Sequence[str],
) -> Iterator[tuple[str, str, int, Cell]]:
    """Where a write of one series at ``epoch`` goes: ``(key name, tag, EXPIREAT, cell)`` of
    its HyperLogLog (``kind`` "d") or sorted set ("f") in every rollup and environment."""
    tag = names.tag(model, series_token(key))
    for rollup in rollups:
        bucket = rollup.bucket(epoch)
        for env in envs:
            name = names.bucket(kind, tag, rollup.seconds, bucket, env)
            yield name, tag, rollup.expiry(bucket), Cell(model, key, rollup.seconds, bucket, env)
