"""What the tsdb tests compare against: a small pure-Python model of the expected data, and the
fixtures the tsdb test modules share (a store on the four session nodes, a round counter)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from django_rb.tsdb import TSDB

#: Short retentions would expire test data at once; these keep everything written near now.
ROLLUPS = [(10, 200), (60, 120), (3600, 48)]


def recent() -> int:
    """Ten minutes ago: ranges from there cross bucket edges and are all still retained."""
    return int(time.time()) - 600


class Model:
    """Counters, distinct sets and frequencies as plain dicts, bucketed like the store."""

    def __init__(self, rollups: Iterable[tuple[int, int]] = ROLLUPS) -> None:
        self.rollups = [seconds for seconds, _ in rollups]
        self.counts: Counter[tuple[Any, ...]] = Counter()
        self.sets: dict[tuple[Any, ...], set[str]] = defaultdict(set)
        self.scores: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)

    @staticmethod
    def _envs(env: Any) -> list[Any]:
        return [None] if env is None else [None, env]

    def incr(self, model: str, key: Any, epoch: float, count: int = 1, env: Any = None) -> None:
        for seconds in self.rollups:
            for e in self._envs(env):
                self.counts[(model, key, e, seconds, int(epoch // seconds))] += count

    def record(
        self, model: str, key: Any, values: Iterable[Any], epoch: float, env: Any = None
    ) -> None:
        for seconds in self.rollups:
            for e in self._envs(env):
                self.sets[(model, key, e, seconds, int(epoch // seconds))].update(
                    str(v) for v in values
                )

    def frequency(
        self, model: str, key: Any, scores: dict[str, float], epoch: float, env: Any = None
    ) -> None:
        for seconds in self.rollups:
            for e in self._envs(env):
                self.scores[(model, key, e, seconds, int(epoch // seconds))].update(scores)

    @staticmethod
    def buckets(start: float, end: float, seconds: int) -> range:
        return range(int(start // seconds), int(end // seconds) + 1)

    def range(self, model: str, keys: Iterable[Any], start: float, end: float, seconds: int,
              envs: Iterable[Any] | None = None) -> dict[Any, list[tuple[int, int]]]:  # fmt: skip
        envs = [None] if envs is None else list(envs)
        return {
            key: [
                (b * seconds, sum(self.counts[(model, key, e, seconds, b)] for e in envs))
                for b in self.buckets(start, end, seconds)
            ]
            for key in keys
        }

    def distinct(self, model: str, key: Any, start: float, end: float, seconds: int,
                 envs: Iterable[Any] | None = None) -> set[str]:  # fmt: skip
        envs = [None] if envs is None else list(envs)
        out: set[str] = set()
        for b in self.buckets(start, end, seconds):
            for e in envs:
                out |= self.sets.get((model, key, e, seconds, b), set())
        return out

    def totals(self, model: str, key: Any, start: float, end: float, seconds: int,
               envs: Iterable[Any] | None = None) -> Counter[str]:  # fmt: skip
        envs = [None] if envs is None else list(envs)
        out: Counter[str] = Counter()
        for b in self.buckets(start, end, seconds):
            for e in envs:
                out.update(self.scores.get((model, key, e, seconds, b), Counter()))
        return out


def close_to(got: int, exact: int) -> bool:
    """Within HyperLogLog error: small sets are near exact in Redis' sparse encoding."""
    return abs(got - exact) <= max(1, round(exact * 0.02))


@pytest.fixture
def store(rb_cluster: Any) -> TSDB:
    """A store on the four session nodes (flushed), with retentions that keep test data."""
    return TSDB(rb_cluster, rollups=ROLLUPS, vnodes=16)


@pytest.fixture
def rounds(rb_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of fanout blocks (parallel rounds) each store call ran, appended per block."""
    blocks: list[int] = []
    original = rb_cluster.fanout

    def counted(*args: Any, **kwargs: Any) -> Any:
        blocks.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(rb_cluster, "fanout", counted)
    return blocks


def all_keys(cluster: Any) -> dict[int, list[bytes]]:
    """Every key on every node."""
    with cluster.all() as client:
        found = client.keys("*")
    return {host: sorted(keys) for host, keys in found.value.items()}


def key_count(cluster: Any) -> int:
    """How many keys the nodes hold together."""
    return sum(len(keys) for keys in all_keys(cluster).values())


def command_calls(cluster: Any, command: str) -> int:
    """How often the nodes ran ``command`` since their stats were last reset."""
    with cluster.all() as client:
        stats = client.info("commandstats")
    return sum(
        info.get(f"cmdstat_{command.lower()}", {}).get("calls", 0) for info in stats.value.values()
    )


def reset_stats(cluster: Any) -> None:
    with cluster.all() as client:
        client.config_resetstat()


def iter_cells(series: dict[Any, list[tuple[int, Any]]]) -> Iterator[tuple[Any, int, Any]]:
    for key, points in series.items():
        for epoch, value in points:
            yield key, epoch, value


def expiries(cluster: Any) -> dict[bytes, float]:
    """Every key's expiry moment (epoch seconds, from PTTL on the node that holds it)."""
    found = all_keys(cluster)
    with cluster.fanout() as client:
        ttls = {
            name: client.target([host]).pttl(name)
            for host, names in found.items()
            for name in names
        }
    now = time.time()
    return {name: now + next(iter(p.value.values())) / 1000 for name, p in ttls.items()}
