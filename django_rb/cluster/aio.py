"""The asyncio engine: one round over many hosts, every host written before any reply is read.

The selector engine's twin for event loops. It drives the same command buffers (what to send,
whose promise each reply settles); ``AsyncConnection`` parses replies as they arrive, and the
round waits on one future until every host is done, failed or past its deadline. Hosts that
need a connection connect (and log in) concurrently; hosts whose pool has a connection with
room start at once (rounds of many tasks are pipelined on shared connections: ``apool``).
Whatever ends a round early (cancellation, a timeout around it) leaves the replies it was
owed on a connection other rounds hold to be read and dropped, drops a connection it alone
held (it may hold part of a reply) and gives the untouched ones back, so nothing leaks and
nobody else's replies shift.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .aconnection import AsyncConnection, Flusher, Slot
from .apool import AsyncPool
from .atimer import EarliestTimer
from .buffer import CommandBuffer
from .engine import RoundErrors, _settle_failure
from .errors import HostConnectionError, HostTimeoutError
from .hosts import HostInfo


class _Link(Slot):
    """One host in one round: its buffer, and the pool and connection that serve it."""

    __slots__ = ("round", "pool", "conn", "started", "finished")

    def __init__(self, round_: _Round, buffer: CommandBuffer, pool: AsyncPool,
                 conn: AsyncConnection) -> None:  # fmt: skip
        self.buffer = buffer
        self.errors = round_.errors
        self.skip = 0
        self.round = round_
        self.pool = pool
        self.conn = conn
        self.started = False
        self.finished = False

    def replied(self, conn: AsyncConnection, error: BaseException | None) -> None:
        if self.finished:
            return
        self.finished = True
        if error is not None:
            _settle_failure(self.buffer, error, self.errors)
        self.pool.finished(conn)
        self.round.link_done()

    def give_up(self, error: BaseException) -> None:
        """The round stops waiting for this host: what was written is left to the connection
        (dropped, or its replies skipped), what was not goes back; the promises get ``error``."""
        if self.started:
            self.conn.abandon(self)
            self.replied(self.conn, error)
        else:
            self.finished = True
            self.pool.finished(self.conn)
            _settle_failure(self.buffer, error, self.errors)

    def due(self, deadline: float | None) -> tuple[float, bool]:
        """When this host times out, and whether the round's deadline is what ends it."""
        idle = self.pool.wait_timeout
        if idle is None:
            return (deadline, True) if deadline is not None else (float("inf"), False)
        quiet_until = self.conn.last_activity + idle
        if deadline is not None and deadline <= quiet_until:
            return deadline, True
        return quiet_until, False


class _Clock:
    """The timeouts of every round on one event loop, on one timer at the earliest due time,
    and the loop's ``Flusher`` of pipelined writes.

    A timer per round would cost more than the rest of a small round's bookkeeping, and most
    rounds end long before any timeout (``socket_timeout`` is seconds, a round sub-ms).
    """

    def __init__(self) -> None:
        self.rounds: set[_Round] = set()
        self.timer = EarliestTimer(self._check_all)
        self.flusher = Flusher()

    def watch(self, round_: _Round, due: float) -> None:
        self.rounds.add(round_)
        self.timer.arm(due)

    def _check_all(self) -> None:
        now = time.monotonic()
        next_due = math.inf
        for round_ in list(self.rounds):
            due = round_.check(now)
            if due == math.inf:
                self.rounds.discard(round_)
            elif due < next_due:
                next_due = due
        self.timer.arm(next_due)


_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Clock]
_clocks = weakref.WeakKeyDictionary()
#: the last loop asked about and its clock (a weak-key lookup costs a weakref per call)
_last_clock: list[Any] = [None, None]


def _clock_of(loop: asyncio.AbstractEventLoop) -> _Clock:
    last_loop, clock = _last_clock
    if last_loop is not None and last_loop() is loop:
        return clock
    clock = _clocks.get(loop)
    if clock is None:
        clock = _clocks[loop] = _Clock()
    _last_clock[:] = [weakref.ref(loop), clock]
    return clock


class _Round:
    """The hosts of one round and the one future that says they are all done."""

    def __init__(self, loop: asyncio.AbstractEventLoop, errors: RoundErrors,
                 deadline: float | None) -> None:  # fmt: skip
        self.loop = loop
        self.errors = errors
        self.deadline = deadline
        self.links: list[_Link] = []
        self.remaining = 0
        self.waiter: asyncio.Future[None] | None = None

    def start_all(self) -> None:
        """Write every host's pipeline in one go, before the loop can deliver any reply: now
        if every connection is idle, else all of them in the loop's flush at the end of this
        pass, with the other rounds that share those connections."""
        links = self.links
        self.remaining = len(links)
        flusher = None
        for link in links:
            conn = link.conn
            if conn.pending or conn.out:
                flusher = _clock_of(self.loop).flusher
                break
        for link in links:
            link.started = True
            link.conn.start(link, flusher)

    def link_done(self) -> None:
        self.remaining -= 1
        waiter = self.waiter
        if not self.remaining and waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until every host is done; a quiet host past its timeout fails alone."""
        if not self.remaining:
            return
        self.waiter = self.loop.create_future()
        due = self.check(time.monotonic())
        if due == math.inf:
            await self.waiter
            return
        clock = _clock_of(self.loop)
        clock.watch(self, due)
        try:
            await self.waiter
        finally:
            clock.rounds.discard(self)

    def check(self, now: float) -> float:
        """Fail the hosts past their timeout; when the next one is due (inf: none, or done)."""
        next_due = math.inf
        for link in self.links:
            if link.finished:
                continue
            due, by_round = link.due(self.deadline)
            if due <= now:
                conn = link.conn
                if by_round:  # this round gives up; others on the connection may not
                    link.give_up(HostTimeoutError("no reply within the round's timeout", conn.host))
                else:  # the host has been quiet too long: every round on it fails
                    conn.fail(HostTimeoutError("no reply within socket_timeout", conn.host))
            elif due < next_due:
                next_due = due
        return next_due if self.remaining else math.inf

    def abandon(self, error: BaseException) -> None:
        """The round ended early: leave what was written to its connection (skipped, or dropped
        with it), return what sent nothing; every promise still owed is rejected."""
        for link in self.links:
            if not link.finished:
                link.give_up(error)


async def arun_round(
    buffers: Iterable[CommandBuffer],
    hosts: dict[int, HostInfo],
    get_pool: Callable[[HostInfo], AsyncPool],
    deadline: float | None = None,
    errors: RoundErrors | None = None,
    max_concurrency: int | None = None,
) -> RoundErrors:
    """Send every buffer's queue to its host and settle every promise; never raises for a host.

    ``deadline`` (``time.monotonic()`` based) bounds connecting, waiting for a free connection
    and every reply; without one each host is bounded by its pool's connect and socket timeouts.
    More buffers than ``max_concurrency`` go through a sliding window (``_arun_window``).
    """
    errors = errors if errors is not None else RoundErrors()
    if max_concurrency is not None:
        buffers = list(buffers)
        if len(buffers) > max_concurrency:
            await _arun_window(buffers, hosts, get_pool, deadline, errors, max_concurrency)
            return errors
    loop = asyncio.get_running_loop()
    round_ = _Round(loop, errors, deadline)
    to_open: list[tuple[CommandBuffer, AsyncPool]] = []
    try:
        for buffer in buffers:  # (inside the try: a connection taken is given back if it raises)
            if not buffer.has_queued:
                continue
            host = hosts.get(buffer.host_id)
            if host is None:
                error = HostConnectionError("the host was removed from the cluster", buffer.host_id)
                _settle_failure(buffer, error, errors)
                continue
            pool = get_pool(host)
            conn = pool.take()
            if conn is None:
                to_open.append((buffer, pool))
            else:
                round_.links.append(_Link(round_, buffer, pool, conn))
        if to_open:
            await _connect_all(round_, to_open)
        round_.start_all()
        await round_.wait()
    finally:
        if any(not link.finished for link in round_.links):
            round_.abandon(HostConnectionError("the round was interrupted (cancelled)"))
    return errors


async def _arun_window(
    buffers: list[CommandBuffer],
    hosts: dict[int, HostInfo],
    get_pool: Callable[[HostInfo], AsyncPool],
    deadline: float | None,
    errors: RoundErrors,
    limit: int,
) -> None:
    """At most ``limit`` hosts at once, each slot taking the next host as soon as it is free:
    a slow or stalled host holds one slot, never the hosts queued after it.

    Like ``map()``'s early sends, a host's buffers run one after the other, in order (a host
    may have several when the block came back to it after the cap was reached). The first
    ``limit`` hosts are written in one loop pass, before any reply is read. If the window is
    interrupted, the slots' rounds drop or return their connections and every buffer not yet
    sent is rejected, so no promise stays pending.
    """
    chains: dict[int, deque[CommandBuffer]] = {}
    for buffer in buffers:
        if buffer.has_queued:
            chains.setdefault(buffer.host_id, deque()).append(buffer)
    waiting = deque(chains.values())

    async def slot() -> None:
        while waiting:
            chain = waiting.popleft()
            while chain:
                await arun_round([chain.popleft()], hosts, get_pool, deadline, errors)

    loop = asyncio.get_running_loop()
    # (a cap below 1 means one host at a time, as in map(), which flushes before each new host)
    tasks = [loop.create_task(slot()) for _ in range(max(1, min(limit, len(waiting))))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)  # let each round drop or give back its connection
        raise
    finally:
        interrupted = HostConnectionError("the round was interrupted (cancelled)")
        for chain in chains.values():
            for buffer in chain:  # what no slot sent (nothing, once the window is done)
                _settle_failure(buffer, interrupted, errors)


async def _connect_all(round_: _Round, to_open: list[tuple[CommandBuffer, AsyncPool]]) -> None:
    """Connections for the hosts that had no idle one: opened (and logged in) all at once, or,
    where a pool is full, waited for in its queue (a future each, no task)."""
    futures = [pool.acquire_soon(round_.deadline) for _, pool in to_open]
    try:
        await asyncio.wait(futures)
    except BaseException:
        interrupted = HostConnectionError("the round was interrupted (cancelled)")
        for future, (buffer, pool) in zip(futures, to_open, strict=True):
            pool.abandon(future)  # a connection that still arrives goes back to its pool
            _settle_failure(buffer, interrupted, round_.errors)
        raise
    for future, (buffer, pool) in zip(futures, to_open, strict=True):
        failure = future.exception()
        if failure is None:
            round_.links.append(_Link(round_, buffer, pool, future.result()))
        else:
            _settle_failure(buffer, failure, round_.errors)
