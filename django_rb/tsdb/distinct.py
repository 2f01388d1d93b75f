"""Distinct counts: a HyperLogLog per (series, rollup, bucket, environment).

All of a series' HyperLogLogs sit on the node of its tag, so a total over buckets and
environments is one multi-key PFCOUNT there. A union over series on different nodes takes two
rounds: each series' node merges its part (in parallel) and hands back the registers, then one
node counts the union of those copies.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.client import NEVER_DECODE

from .errors import TSDBArgumentError
from .keys import KeyNames, series_token
from .rollups import Rollup
from .rounds import Plan

#: Scratch keys of unions and merges expire after this long if a call dies halfway.
TEMP_TTL_MS = 60_000


def member_values(values: Any) -> list[str | bytes]:
    """The values of a ``record`` call as PFADD elements (ints as their digits)."""
    if isinstance(values, (str, bytes, int)) or not isinstance(values, Iterable):
        raise TSDBArgumentError(
            "The values to record are a list (or other iterable) of strings, bytes or ints, "
            f"not a single {type(values).__name__}."
        )
    out: list[str | bytes] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (str, bytes, int)):
            raise TSDBArgumentError(
                f"A value to record is a string, bytes or an int, not {type(value).__name__}."
            )
        out.append(str(value) if isinstance(value, int) else value)
    return out


@dataclass(frozen=True)
class Record:
    """One validated ``record``: ``values`` seen by ``key`` of ``model`` at ``epoch``."""

    model: str
    key: Any
    epoch: float
    values: list[str | bytes]


def record_plan(
    names: KeyNames, rollups: Sequence[Rollup], records: Iterable[Record], envs: Sequence[str]
) -> Plan[None]:
    """PFADD every record's values to its bucket of every rollup, with EXPIREAT."""
    adds: dict[str, tuple[str, int, set[str | bytes]]] = {}
    for record in records:
        if not record.values:
            continue
        tag = names.tag(record.model, series_token(record.key))
        for rollup in rollups:
            bucket = rollup.bucket(record.epoch)
            for env in envs:
                name = names.distinct(tag, rollup.seconds, bucket, env)
                entry = adds.get(name)
                if entry is None:
                    entry = adds[name] = (tag, rollup.expiry(bucket), set())
                entry[2].update(record.values)

    def queue(client: Any) -> None:
        for name, (tag, expiry, values) in adds.items():
            target = client.target_key(tag)
            target.pfadd(name, *values)
            target.expireat(name, expiry)

    yield queue


def bucket_keys(
    names: KeyNames, tag: str, rollup: Rollup, bucket: int, envs: Sequence[str]
) -> list[str]:
    """The HyperLogLogs of one bucket of one series, one per environment."""
    return [names.distinct(tag, rollup.seconds, bucket, env) for env in envs]


def series_plan(
    names: KeyNames,
    model: str,
    keys: Sequence[Any],
    rollup: Rollup,
    buckets: range,
    envs: Sequence[str],
) -> Plan[dict[Any, list[int]]]:
    """Each key's distinct count per bucket: one PFCOUNT per (key, bucket), one round."""

    def queue(client: Any) -> dict[Any, list[Any]]:
        out = {}
        for key in keys:
            tag = names.tag(model, series_token(key))
            target = client.target_key(tag)
            out[key] = [target.pfcount(*bucket_keys(names, tag, rollup, b, envs)) for b in buckets]
        return out

    promises = yield queue
    return {key: [p.value for p in row] for key, row in promises.items()}


def all_keys(
    names: KeyNames, tag: str, rollup: Rollup, buckets: range, envs: Sequence[str]
) -> list[str]:
    """Every HyperLogLog of a series in a range."""
    return [names.distinct(tag, rollup.seconds, b, env) for b in buckets for env in envs]


def totals_plan(
    names: KeyNames,
    model: str,
    keys: Sequence[Any],
    rollup: Rollup,
    buckets: range,
    envs: Sequence[str],
) -> Plan[dict[Any, int]]:
    """Each key's distinct count over the whole range: one multi-key PFCOUNT per key."""

    def queue(client: Any) -> dict[Any, Any]:
        out = {}
        for key in keys:
            tag = names.tag(model, series_token(key))
            out[key] = client.target_key(tag).pfcount(*all_keys(names, tag, rollup, buckets, envs))
        return out

    promises = yield queue
    return {key: p.value for key, p in promises.items()}


def union_plan(
    names: KeyNames,
    model: str,
    keys: Sequence[Any],
    rollup: Rollup,
    buckets: range,
    envs: Sequence[str],
) -> Plan[int]:
    """The distinct count of all keys together, exact as HyperLogLogs go.

    One key: one PFCOUNT. Several: two rounds. First, on every series' node at once, PFMERGE
    its HyperLogLogs into a scratch key (60 s TTL), GET the registers and drop the scratch key;
    then, on one node, SET those registers as scratch keys next to each other and PFCOUNT them
    together (the union), dropping them in the same round.
    """
    if len(keys) == 1:
        totals = yield from totals_plan(names, model, keys, rollup, buckets, envs)
        return totals[keys[0]]
    token = uuid.uuid4().hex

    def merge_each(client: Any) -> list[Any]:
        registers = []
        for key in keys:
            tag = names.tag(model, series_token(key))
            scratch = names.temporary(tag, token)
            target = client.target_key(tag)
            target.pfmerge(scratch, *all_keys(names, tag, rollup, buckets, envs))
            target.pexpire(scratch, TEMP_TTL_MS)
            registers.append(target.execute_command("GET", scratch, **{NEVER_DECODE: True}))
            target.delete(scratch)
        return registers

    registers = yield merge_each
    copies = yield from count_copies(names, token, [p.value for p in registers])
    return copies


def count_copies(names: KeyNames, token: str, registers: Sequence[bytes | None]) -> Plan[int]:
    """PFCOUNT of HyperLogLog registers copied next to each other on one node (one round)."""
    present = [r for r in registers if r is not None]
    if not present:
        return 0
    tag = names.tag("tmp", token)

    def count(client: Any) -> Any:
        target = client.target_key(tag)
        scratch = [names.temporary(tag, token, i) for i in range(len(present))]
        for name, value in zip(scratch, present, strict=True):
            target.set(name, value, px=TEMP_TTL_MS)
        total = target.pfcount(*scratch)
        target.delete(*scratch)
        return total

    total = yield count
    return int(total.value)
