"""Counters: plans that add to and read the hashes of (model, rollup, block, virtual node).

A write adds its counts up client-side first, so each (hash, field) costs one HINCRBY and each
hash one EXPIREAT. A read asks each hash once, with one HMGET for every cell it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .keys import KeyNames, counter_field, series_token, vnode_of
from .ledger import Cell, WriteLedger
from .query import Query
from .rollups import Rollup
from .rounds import Plan


class Increment(NamedTuple):
    """One validated write: ``count`` added to ``key`` of ``model`` at ``epoch``."""

    model: str
    key: Any
    epoch: float
    amount: int


class HashWrites:
    """HINCRBYs gathered per counter hash, each hash with its EXPIREAT."""

    def __init__(self) -> None:
        self.hashes: dict[str, tuple[int, dict[str, int]]] = {}
        self.cells: dict[tuple[str, str], Cell] = {}

    def add(self, name: str, expiry: int, field: str, count: int, cell: Cell) -> None:
        entry = self.hashes.get(name)
        if entry is None:
            entry = self.hashes[name] = (expiry, {})
        fields = entry[1]
        fields[field] = fields.get(field, 0) + count
        self.cells[name, field] = cell

    def queue(self, client: Any) -> WriteLedger:
        """HINCRBY every non-zero field, then EXPIREAT, on each hash's node."""
        ledger = WriteLedger()
        for name, (expiry, fields) in self.hashes.items():
            target = client.target_key(name)
            for field, count in fields.items():
                if count:
                    ledger.track(target.hincrby(name, field, count), self.cells[name, field])
            target.expireat(name, expiry)
        return ledger


def incr_plan(
    names: KeyNames,
    rollups: Sequence[Rollup],
    vnodes: int,
    increments: Iterable[Increment],
    envs: Sequence[str],
) -> Plan[None]:
    """Add every increment to every rollup, for the all-environments series and ``envs``."""
    # the same cell written many times is added up here first: one HINCRBY per cell and rollup
    cells: dict[tuple[str, Any, int, int], int] = {}
    for model, key, epoch, count in increments:
        for rollup in rollups:
            cell = (model, key, int(epoch // rollup.seconds), rollup.seconds)
            cells[cell] = cells.get(cell, 0) + count
    by_seconds = {rollup.seconds: rollup for rollup in rollups}
    placed: dict[Any, tuple[str, int]] = {}
    writes = HashWrites()
    for (model, key, bucket, seconds), count in cells.items():
        rollup = by_seconds[seconds]
        where = placed.get(key)
        if where is None:
            where = placed[key] = (series_token(key), vnode_of(key, vnodes))
        token, vnode = where
        block = rollup.block_start(bucket)
        name = names.counter_hash(model, seconds, block * seconds, vnode)
        expiry = rollup.block_expiry(block)
        for env in envs:
            origin = Cell(model, key, seconds, bucket, env)
            writes.add(name, expiry, counter_field(token, bucket - block, env), count, origin)
    yield writes.queue


@dataclass(frozen=True)
class Block:
    """The buckets of a range that one counter hash holds: positions ``first..`` in the range."""

    start: int  # bucket index of the hash's first bucket
    first: int  # position in the range of the first bucket read from this hash
    offsets: range  # offsets of the buckets read, inside the hash


def blocks_of(rollup: Rollup, buckets: range) -> list[Block]:
    """Split a range of buckets by the counter hash each falls in."""
    blocks = []
    position = 0
    bucket = buckets.start
    while bucket < buckets.stop:
        start = rollup.block_start(bucket)
        last = min(start + rollup.span, buckets.stop)
        blocks.append(Block(start, position, range(bucket - start, last - start)))
        position += last - bucket
        bucket = last
    return blocks


def cells_plan(query: Query, vnodes: int) -> Plan[dict[Any, list[int]]]:
    """Each key's count per bucket of the range, summed over the environments: one round, one
    HMGET per counter hash (a virtual node's block of buckets)."""
    names, model, rollup, envs = query.names, query.model, query.rollup, query.envs
    by_vnode: dict[int, list[str]] = {}
    members: dict[int, list[Any]] = {}
    for key in query.keys:
        vnode = vnode_of(key, vnodes)
        by_vnode.setdefault(vnode, []).append(series_token(key))
        members.setdefault(vnode, []).append(key)
    blocks = blocks_of(rollup, query.buckets)

    def queue(client: Any) -> list[tuple[list[Any], Block, Any]]:
        reads = []
        for vnode, tokens in by_vnode.items():
            for block in blocks:
                name = names.counter_hash(
                    model, rollup.seconds, block.start * rollup.seconds, vnode
                )
                fields = [
                    counter_field(token, offset, env)
                    for token in tokens
                    for offset in block.offsets
                    for env in envs
                ]
                reads.append((members[vnode], block, client.target_key(name).hmget(name, fields)))
        return reads

    reads = yield queue
    rows: dict[Any, list[int]] = {key: [0] * len(query.buckets) for key in query.keys}
    for keys_here, block, promise in reads:
        values = iter(promise.value)
        for key in keys_here:
            row = rows[key]
            for position in range(block.first, block.first + len(block.offsets)):
                for _env in envs:
                    value = next(values)
                    if value is not None:
                        row[position] += int(value)
    return rows


def counter_fields(query: Query, vnodes: int) -> dict[str, list[str]]:
    """The fields holding the keys' buckets, per counter hash (for HDEL)."""
    names, rollup = query.names, query.rollup
    fields: dict[str, list[str]] = {}
    for key in query.keys:
        token, vnode = series_token(key), vnode_of(key, vnodes)
        for block in blocks_of(rollup, query.buckets):
            start = block.start * rollup.seconds
            name = names.counter_hash(query.model, rollup.seconds, start, vnode)
            fields.setdefault(name, []).extend(
                counter_field(token, offset, env) for offset in block.offsets for env in query.envs
            )
    return fields


def queue_hdel(client: Any, fields: dict[str, list[str]]) -> None:
    """One HDEL per counter hash."""
    for name, names in fields.items():
        client.target_key(name).hdel(name, *names)
