"""Delete and merge: plans over all three kinds of data (counters, distinct, frequencies)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from redis.client import NEVER_DECODE

from . import counters, distinct, frequency
from .keys import KeyNames, counter_field, series_token, vnode_of
from .ledger import Cell
from .query import Query
from .rollups import Rollup
from .rounds import Plan, together

#: buckets to cover for each rollup
Window = Callable[[Rollup], range]


def drop_queue(
    names: KeyNames,
    models: Sequence[str],
    keys: Sequence[Any],
    rollups: Sequence[Rollup],
    window: Window,
    envs: tuple[str, ...],
    vnodes: int,
) -> Callable[[Any], None]:
    """A round that drops the series' counter fields, HyperLogLogs and sorted sets."""
    fields: dict[str, list[str]] = {}
    dels: list[tuple[str, list[str]]] = []
    for model in models:
        for rollup in rollups:
            query = Query(names, model, list(keys), rollup, window(rollup), envs)
            for name, names_here in counters.counter_fields(query, vnodes).items():
                fields.setdefault(name, []).extend(names_here)
            for key in keys:
                tag = query.tag(key)
                dels.append((tag, [*query.hyperloglogs(tag), *query.sorted_sets(tag)]))

    def queue(client: Any) -> None:
        counters.queue_hdel(client, fields)
        for tag, doomed in dels:
            client.target_key(tag).delete(*doomed)

    return queue


def merge_plan(
    names: KeyNames,
    model: str,
    destination: Any,
    sources: Sequence[Any],
    rollups: Sequence[Rollup],
    window: Window,
    envs: tuple[str, ...],
    vnodes: int,
    capacity: int,
) -> Plan[None]:
    """Fold the sources into the destination, in three rounds: read the sources; write the
    destination (counter HINCRBYs; registers copied next to the destination's HyperLogLogs as
    scratch keys with a TTL and PFMERGEd; ZINCRBYs), every key with its usual EXPIREAT; and only
    once that round succeeded, drop the sources. A failure before the last round leaves the
    sources whole (a re-run then counts again what the destination already got)."""
    token = uuid.uuid4().hex
    spans = [(rollup, window(rollup)) for rollup in rollups]
    cell_plans = [
        counters.cells_plan(Query(names, model, list(sources), rollup, buckets, (env,)), vnodes)
        for rollup, buckets in spans
        for env in envs
    ]
    cells, contents = yield from together(
        [together(cell_plans), contents_plan(names, model, sources, spans, envs)]
    )
    cell_totals = []
    for (rollup, buckets, env), rows in zip(
        ((r, b, e) for r, b in spans for e in envs), cells, strict=True
    ):
        cell_totals.append(
            (rollup, buckets, env, [sum(col) for col in zip(*rows.values(), strict=True)])
        )
    yield destination_writes(
        names, model, destination, cell_totals, contents, vnodes, token, capacity
    )
    yield drop_queue(names, [model], sources, rollups, window, envs, vnodes)


#: what the read round of a merge found in one (rollup, bucket, environment) of a source
Found = tuple[Rollup, int, str, Any, Any]


def contents_plan(
    names: KeyNames,
    model: str,
    sources: Sequence[Any],
    spans: Sequence[tuple[Rollup, range]],
    envs: tuple[str, ...],
) -> Plan[list[Found]]:
    """The sources' HyperLogLog registers (GET) and sorted sets (ZRANGE), one round."""

    def read(client: Any) -> list[Found]:
        found = []
        for source in sources:
            tag = names.tag(model, series_token(source))
            target = client.target_key(tag)
            for rollup, buckets in spans:
                for bucket in buckets:
                    for env in envs:
                        hll = names.distinct(tag, rollup.seconds, bucket, env)
                        registers = target.execute_command("GET", hll, **{NEVER_DECODE: True})
                        zset = names.frequency(tag, rollup.seconds, bucket, env)
                        members = target.zrange(zset, 0, -1, withscores=True)
                        found.append((rollup, bucket, env, registers, members))
        return found

    found = yield read
    return [(r, b, e, registers.value, members.value) for r, b, e, registers, members in found]


def destination_writes(
    names: KeyNames,
    model: str,
    destination: Any,
    cell_totals: Sequence[tuple[Rollup, range, str, list[int]]],
    contents: Sequence[Found],
    vnodes: int,
    token: str,
    capacity: int,
) -> Callable[[Any], None]:
    """The round writing what was read from the sources into the destination."""
    dest_token, dest_vnode = series_token(destination), vnode_of(destination, vnodes)
    tag = names.tag(model, dest_token)
    hashes = counters.HashWrites()
    for rollup, buckets, env, totals in cell_totals:
        for bucket, total in zip(buckets, totals, strict=True):
            if total:
                block = rollup.block_start(bucket)
                name = names.counter_hash(model, rollup.seconds, block * rollup.seconds, dest_vnode)
                field = counter_field(dest_token, bucket - block, env)
                cell = Cell(model, destination, rollup.seconds, bucket, env)
                hashes.add(name, rollup.block_expiry(block), field, total, cell)
    merges: dict[str, tuple[int, list[bytes]]] = {}
    sets: dict[str, tuple[str, int, dict[str, float]]] = {}
    for rollup, bucket, env, registers, members in contents:
        if registers is not None:
            name = names.distinct(tag, rollup.seconds, bucket, env)
            merges.setdefault(name, (rollup.expiry(bucket), []))[1].append(registers)
        if members:
            name = names.frequency(tag, rollup.seconds, bucket, env)
            scores = sets.setdefault(name, (tag, rollup.expiry(bucket), {}))[2]
            for member, score in members:
                text = frequency.text(member)
                scores[text] = scores.get(text, 0.0) + float(score)

    def queue(client: Any) -> None:
        # not a ledger: a failed merge round drops no source, so no write is lost
        hashes.queue(client)
        target = client.target_key(tag)
        index = 0
        for name, (expiry, registers) in merges.items():
            scratch = []
            for value in registers:
                scratch.append(names.temporary(tag, token, index))
                target.set(scratch[-1], value, px=distinct.TEMP_TTL_MS)
                index += 1
            target.pfmerge(name, *scratch)
            target.expireat(name, expiry)
            target.delete(*scratch)
        frequency.queue_increments(client, sets, capacity)

    return queue
