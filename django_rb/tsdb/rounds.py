"""How an operation meets the core: a plan of rounds, run by a sync or an async engine.

An operation is a generator (a *plan*). Each ``yield`` hands over one round: a function that
queues commands on a fanout client (placing each through ``client.target_key(...)``) and returns
what holds the replies. The engine runs that function inside one ``cluster.fanout()`` block, so
every host is written before any reply is read, and sends the result back into the plan once the
block has settled. Whatever the plan returns is the operation's result. The plans know nothing of
the engine, so the async twins only swap ``run`` for ``arun``. A write round returns a
``WriteLedger``; when a node fails in that round, the engine raises ``TSDBWritesLost`` naming
every write that did not land (the other nodes' writes did).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

from django_rb.cluster.errors import HostError

from .ledger import WriteLedger

T = TypeVar("T")

#: One round: queue commands on the client, return what to read once the round has settled.
Round = Callable[[Any], Any]

#: An operation: yields rounds, receives what each returned, returns the result.
Plan = Generator[Round, Any, T]


def run(cluster: Any, plan: Plan[T], timeout: float | None = None) -> T:
    """Run ``plan`` on the sync engine: one ``cluster.fanout()`` block per round."""
    try:
        step = next(plan)
        while True:
            pending = None
            try:
                with cluster.fanout(timeout=timeout) as client:
                    pending = step(client)
            except HostError as error:
                _raise_lost_writes(pending, error)
            step = plan.send(pending)
    except StopIteration as done:
        return done.value


async def arun(cluster: Any, plan: Plan[T], timeout: float | None = None) -> T:
    """Run ``plan`` on the asyncio engine: one ``cluster.afanout()`` block per round."""
    try:
        step = next(plan)
        while True:
            pending = None
            try:
                async with cluster.afanout(timeout=timeout) as client:
                    pending = step(client)
            except HostError as error:
                _raise_lost_writes(pending, error)
            step = plan.send(pending)
    except StopIteration as done:
        return done.value


def _raise_lost_writes(pending: Any, error: HostError) -> None:
    """A round failed on a node: for a write round, raise the report of the writes that did
    not land (``TSDBWritesLost``); otherwise the node's error itself."""
    lost = pending.failure(error) if isinstance(pending, WriteLedger) else None
    if lost is None:
        raise error
    raise lost from error


def one_round(queue: Round) -> Plan[None]:
    """A plan of one round whose replies need no reading (writes)."""
    yield queue


def finished(value: T) -> Plan[T]:
    """A plan of no rounds (nothing to read or write)."""
    return value
    yield  # pragma: no cover  (makes this a generator)


def together(plans: list[Plan[Any]]) -> Plan[list[Any]]:
    """Run plans side by side: their first rounds in one round, their second in the next, ...;
    the result is the list of their results."""
    results: list[Any] = [None] * len(plans)
    steps: dict[int, Round] = {}
    for index, plan in enumerate(plans):
        try:
            steps[index] = next(plan)
        except StopIteration as done:
            results[index] = done.value
    while steps:

        def queue(client: Any, current: dict[int, Round] = steps) -> dict[int, Any]:
            return {index: step(client) for index, step in current.items()}

        pending = yield queue
        steps = {}
        for index, value in pending.items():
            try:
                steps[index] = plans[index].send(value)
            except StopIteration as done:
                results[index] = done.value
    return results
