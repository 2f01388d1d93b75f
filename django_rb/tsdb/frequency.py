"""Top-N frequencies: a sorted set per (series, rollup, bucket, environment).

Writes ZINCRBY each member and trim the set to the store's capacity (the lowest scores go, as a
count-min sketch would forget the long tail); reads ZUNION the buckets on the series' node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from .errors import TSDBArgumentError
from .keys import KeyNames
from .ledger import Cell, WriteLedger
from .query import Query, bucket_keys
from .rollups import Rollup
from .rounds import Plan


def member_scores(scores: Any) -> dict[str, float]:
    """``{member: score}`` validated: members strings or ints, scores finite numbers."""
    if not isinstance(scores, Mapping):
        raise TSDBArgumentError(
            f"Frequencies are given as {{member: score}}, not {type(scores).__name__}."
        )
    out: dict[str, float] = {}
    for member, score in scores.items():
        if isinstance(member, bool) or not isinstance(member, (str, int)):
            raise TSDBArgumentError(f"A member is a string or an int, not {member!r}.")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or score != score:
            raise TSDBArgumentError(f"The score of {member!r} is not a number: {score!r}.")
        out[str(member)] = out.get(str(member), 0.0) + score
    return out


class Frequencies(NamedTuple):
    """One validated series' scores at one moment."""

    model: str
    key: Any
    epoch: float
    scores: dict[str, float]


def record_plan(
    names: KeyNames,
    rollups: Sequence[Rollup],
    items: Iterable[Frequencies],
    envs: Sequence[str],
    capacity: int,
) -> Plan[None]:
    """ZINCRBY every member in its bucket of every rollup, trim to ``capacity``, EXPIREAT."""
    sets: dict[str, tuple[str, int, dict[str, float]]] = {}
    cells: dict[str, Cell] = {}
    for model, key, epoch, scores in items:
        for name, tag, expiry, cell in bucket_keys("f", names, rollups, model, key, epoch, envs):
            summed = sets.setdefault(name, (tag, expiry, {}))[2]
            for member, score in scores.items():
                summed[member] = summed.get(member, 0.0) + score
            cells[name] = cell

    def queue(client: Any) -> WriteLedger:
        ledger = WriteLedger()
        for name, last in queue_increments(client, sets, capacity).items():
            ledger.track(last, cells[name])
        return ledger

    yield queue


def queue_increments(
    client: Any, sets: Mapping[str, tuple[str, int, Mapping[str, float]]], capacity: int
) -> dict[str, Any]:
    """ZINCRBY each member, keep the ``capacity`` highest, EXPIREAT (per sorted set); returns
    each set's last command's promise (a node failure rejects it with everything before it)."""
    last = {}
    for name, (tag, expiry, scores) in sets.items():
        target = client.target_key(tag)
        for member, score in scores.items():
            target.zincrby(name, score, member)
        target.zremrangebyrank(name, 0, -capacity - 1)
        last[name] = target.expireat(name, expiry)
    return last


def text(value: Any) -> str:
    """A member as returned by Redis (bytes unless the cluster decodes) as text."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def ranked(pairs: Iterable[tuple[Any, float]], limit: int | None) -> list[tuple[str, float]]:
    """Members highest score first (ties by member), at most ``limit``."""
    order = sorted(((text(m), float(s)) for m, s in pairs), key=lambda p: (-p[1], p[0]))
    return order if limit is None else order[:limit]


def most_frequent_plan(query: Query, limit: int | None) -> Plan[dict[Any, list[tuple[str, float]]]]:
    """Each key's members over the whole range, highest first: one ZUNION per key."""

    def queue(client: Any) -> dict[Any, Any]:
        out = {}
        for key in query.keys:
            tag = query.tag(key)
            out[key] = client.target_key(tag).zunion(query.sorted_sets(tag), withscores=True)
        return out

    promises = yield queue
    return {key: ranked(p.value, limit) for key, p in promises.items()}


def most_frequent_series_plan(
    query: Query, limit: int | None
) -> Plan[dict[Any, list[dict[str, float]]]]:
    """Each key's members per bucket, highest first: one ZUNION per (key, bucket)."""

    def queue(client: Any) -> dict[Any, list[Any]]:
        out = {}
        for key in query.keys:
            tag = query.tag(key)
            target = client.target_key(tag)
            out[key] = [
                target.zunion(query.sorted_sets(tag, (b,)), withscores=True) for b in query.buckets
            ]
        return out

    promises = yield queue
    return {key: [dict(ranked(p.value, limit)) for p in row] for key, row in promises.items()}


def scores_plan(
    query: Query, members: Mapping[Any, Sequence[str]]
) -> Plan[dict[Any, list[dict[str, float]]]]:
    """The given members' scores per bucket, summed over the environments: one ZMSCORE per
    sorted set (``query.keys`` are ``members``' keys)."""

    def queue(client: Any) -> dict[Any, list[list[Any]]]:
        out = {}
        for key, wanted in members.items():
            tag = query.tag(key)
            target = client.target_key(tag)
            out[key] = [
                [target.zmscore(name, list(wanted)) for name in query.sorted_sets(tag, (b,))]
                if wanted
                else []
                for b in query.buckets
            ]
        return out

    promises = yield queue
    result: dict[Any, list[dict[str, float]]] = {}
    for key, rows in promises.items():
        wanted = members[key]
        result[key] = series = []
        for per_env in rows:
            scores = dict.fromkeys(wanted, 0.0)
            for promise in per_env:
                for member, score in zip(wanted, promise.value, strict=True):
                    if score is not None:
                        scores[member] += float(score)
            series.append(scores)
    return result
