"""Distinct counts: a HyperLogLog per (series, rollup, bucket, environment).

All of a series' HyperLogLogs sit on the node of its tag, so a total over buckets and
environments is one multi-key PFCOUNT there. A union over series on different nodes takes two
rounds: each series' node merges its part (in parallel) and hands back the registers, then one
node counts the union of those copies.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from redis.client import NEVER_DECODE

from .errors import TSDBArgumentError
from .keys import KeyNames
from .ledger import Cell, WriteLedger
from .query import Query, bucket_keys
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


class Record(NamedTuple):
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
    cells: dict[str, Cell] = {}
    for model, key, epoch, values in records:
        if values:
            for name, tag, expiry, cell in bucket_keys(
                "d", names, rollups, model, key, epoch, envs
            ):
                adds.setdefault(name, (tag, expiry, set()))[2].update(values)
                cells[name] = cell

    def queue(client: Any) -> WriteLedger:
        ledger = WriteLedger()
        for name, (tag, expiry, values) in adds.items():
            target = client.target_key(tag)
            ledger.track(target.pfadd(name, *values), cells[name])
            target.expireat(name, expiry)
        return ledger

    yield queue


def series_plan(query: Query) -> Plan[dict[Any, list[int]]]:
    """Each key's distinct count per bucket: one PFCOUNT per (key, bucket), one round."""

    def queue(client: Any) -> dict[Any, list[Any]]:
        out = {}
        for key in query.keys:
            tag = query.tag(key)
            target = client.target_key(tag)
            out[key] = [target.pfcount(*query.hyperloglogs(tag, (b,))) for b in query.buckets]
        return out

    promises = yield queue
    return {key: [p.value for p in row] for key, row in promises.items()}


def totals_plan(query: Query) -> Plan[dict[Any, int]]:
    """Each key's distinct count over the whole range: one multi-key PFCOUNT per key."""

    def queue(client: Any) -> dict[Any, Any]:
        out = {}
        for key in query.keys:
            tag = query.tag(key)
            out[key] = client.target_key(tag).pfcount(*query.hyperloglogs(tag))
        return out

    promises = yield queue
    return {key: p.value for key, p in promises.items()}


def union_plan(query: Query) -> Plan[int]:
    """The distinct count of all keys together, exact as HyperLogLogs go.

    One key: one PFCOUNT. Several: two rounds. First, on every series' node at once, PFMERGE
    its HyperLogLogs into a scratch key (60 s TTL), GET the registers and drop the scratch key;
    then, on one node, SET those registers as scratch keys next to each other and PFCOUNT them
    together (the union), dropping them in the same round.
    """
    if not query.keys:
        return 0
    if len(query.keys) == 1:
        totals = yield from totals_plan(query)
        return totals[query.keys[0]]
    names, token = query.names, uuid.uuid4().hex

    def merge_each(client: Any) -> list[Any]:
        registers = []
        for key in query.keys:
            tag = query.tag(key)
            scratch = names.temporary(tag, token)
            target = client.target_key(tag)
            target.pfmerge(scratch, *query.hyperloglogs(tag))
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
