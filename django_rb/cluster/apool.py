"""Connection pools for the asyncio engine: one per host and event loop; rounds share
connections (pipelined), and a round that finds none free *waits*.

A loop opens one connection per host and pipelines the rounds of every task over it, up to
``AsyncPool.rounds_per_connection`` (64) rounds at once on one connection; past that it opens
another, up to ``max_connections``, and past that a round waits (first come, first served) for
a place on one, bounded by the block's timeout, or by ``socket_timeout`` when the block has
none: a burst is served late, never refused (redis.asyncio's pool raises
``MaxConnectionsError`` instead), and a pool that stays full past the deadline fails with a
``HostTimeoutError``. Rounds that arrive while the first connection is being opened wait for
it rather than each opening its own.

Connections belong to the loop that opened them (asyncio transports cannot change loops), so
each running loop gets its own pools; they go away with their loop.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import math
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from .aconnection import AsyncConnection, open_connection
from .atimer import EarliestTimer
from .errors import HostConnectionError, HostTimeoutError
from .hosts import HostInfo

#: Per host and loop when pool_options set no ``max_connections``.
DEFAULT_MAX_CONNECTIONS = 64

Waiter = tuple["asyncio.Future[AsyncConnection]", float | None]


class AsyncPool:
    """The connections to one host on one event loop."""

    #: How many rounds may be pipelined on one connection at once before another is opened
    #: (up to ``max_connections``). Redis answers a connection's commands in order and runs one
    #: command at a time however many connections there are, so rounds lose nothing by sharing
    #: one, while the event loop pays per connection: one write and a few reads per connection
    #: and loop pass instead of one write and one read per round. The bound keeps a round from
    #: queueing behind too many others (say, behind one big reply). 1 gives every round a
    #: connection of its own, as this pool did before it pipelined.
    rounds_per_connection = 64

    def __init__(self, host: HostInfo, settings: Callable[[], Any],
                 pool_options: Mapping[str, Any]) -> None:  # fmt: skip
        self.host = host
        #: an unconnected redis-py connection with the host's login, TLS and timeouts
        self.settings = settings
        self.pool_options = pool_options
        self.max_connections = int(pool_options.get("max_connections") or DEFAULT_MAX_CONNECTIONS)
        self.wait_timeout = pool_options.get("socket_timeout")
        #: open, logged-in connections, the first ones filled first
        self.conns: list[AsyncConnection] = []
        #: connections open or being opened
        self.count = 0
        self._opening: set[asyncio.Task[AsyncConnection]] = set()
        self.closed = False
        #: rounds waiting for a connection, first come first served, with their deadlines
        self._waiters: deque[Waiter] = deque()
        #: one timer at the earliest deadline in the queue, not one per waiter
        self._timer = EarliestTimer(self._expire_due)

    def __repr__(self) -> str:
        return (
            f"<AsyncPool {self.host.label} open={self.count} in_use={self.in_use} "
            f"max={self.max_connections}>"
        )

    @property
    def in_use(self) -> int:
        """Rounds holding one of the connections."""
        return sum(conn.rounds for conn in self.conns)

    @property
    def idle(self) -> list[AsyncConnection]:
        """Open connections that no round holds and that owe nothing."""
        return [conn for conn in self.conns if not conn.rounds and not conn.pending]

    def take(self) -> AsyncConnection | None:
        """A connection with room for one more round, without waiting; None if there is none.
        The caller gives it back with ``finished``."""
        limit = self.rounds_per_connection
        for conn in self.conns:
            if conn.rounds < limit and conn.usable:
                conn.rounds += 1
                return conn
        return None

    def acquire_soon(self, deadline: float | None) -> asyncio.Future[AsyncConnection]:
        """A future of a connection (with room for the round) for when ``take`` found none:
        a place in the queue, served by a connection opened for it or by the first one that
        has room again; given up at ``deadline`` (or after ``socket_timeout`` without one) with
        a ``HostTimeoutError``. No task per waiter: the queue shares one timer.

        The caller that stops waiting hands the future to ``abandon``, so that a connection
        arriving late goes back to the pool.
        """
        waiter: asyncio.Future[AsyncConnection] = asyncio.get_running_loop().create_future()
        if deadline is None and self.wait_timeout is not None:
            deadline = time.monotonic() + self.wait_timeout
        self._waiters.append((waiter, deadline))
        if deadline is not None:
            self._timer.arm(deadline)
        coming = len(self._opening) * self.rounds_per_connection  # places being opened
        if self.count < self.max_connections and coming < len(self._waiters):
            self._open()
        return waiter

    def abandon(self, future: asyncio.Future[AsyncConnection]) -> None:
        """The waiter of ``future`` is gone: a connection it was given goes back, and connects
        that nobody waits for any more are cancelled."""
        if not future.done():
            future.cancel()
            if not self._has_waiters():
                self._cancel_opening()
        elif not future.cancelled() and future.exception() is None:
            self.finished(future.result())

    def _has_waiters(self) -> bool:
        """Whether a round still waits (the queue's given-up entries are dropped on the way)."""
        waiters = self._waiters
        while waiters and waiters[0][0].done():
            waiters.popleft()
        return any(not waiter.done() for waiter, _ in waiters)

    def finished(self, conn: AsyncConnection) -> None:
        """A round is done with ``conn`` (whatever became of it): its place is free."""
        conn.rounds -= 1
        if conn.closed:
            return
        if self._waiters:
            self._serve(conn)
        elif self.closed and not conn.rounds:
            conn.close()

    def forget(self, conn: AsyncConnection) -> None:
        """A connection of the pool was closed: its slot is free for a waiter."""
        try:
            self.conns.remove(conn)
        except ValueError:
            return
        self.count -= 1
        if self._waiters and not self._opening and self.count < self.max_connections:
            self._open()

    def _serve(self, conn: AsyncConnection) -> None:
        """Give ``conn``'s free places to the longest waiters."""
        waiters = self._waiters
        limit = self.rounds_per_connection
        while waiters and conn.rounds < limit:
            waiter, _ = waiters.popleft()
            if not waiter.done():
                conn.rounds += 1
                waiter.set_result(conn)

    def _open(self) -> None:
        try:
            settings = self.settings()
        except Exception as exc:  # the settings cannot make a connection: not the host's fault
            if not self._opening and not self.conns:
                self._fail_waiters(exc)  # (raised as it is, like map() does, never retried)
            return
        self.count += 1
        task = asyncio.get_running_loop().create_task(open_connection(self.host, settings))
        self._opening.add(task)
        task.add_done_callback(self._opened)

    def _opened(self, task: asyncio.Task[AsyncConnection]) -> None:
        self._opening.discard(task)
        if task.cancelled():  # nobody waited for it; a round may have come since
            self.count -= 1
            if self._has_waiters() and not self._opening and self.count < self.max_connections:
                self._open()
            return
        failure = task.exception()
        if failure is not None:
            self.count -= 1
            if not self._opening and not self.conns:
                self._fail_waiters(failure)
            return
        conn = task.result()
        conn.pool = self
        self.conns.append(conn)
        if self.closed:
            conn.close()
            self._fail_waiters(HostConnectionError("the pool was closed", self.host))
        else:
            self._serve(conn)

    def _fail_waiters(self, error: BaseException) -> None:
        """Nothing is left to serve the queue (the host cannot be reached): every waiter gets
        ``error`` (a copy each, so that no two tasks raise the same exception object)."""
        waiters, self._waiters = self._waiters, deque()
        for waiter, _ in waiters:
            if not waiter.done():
                waiter.set_exception(copy.copy(error))

    def _cancel_opening(self) -> None:
        opening, self._opening = self._opening, set()  # no longer counted on to serve anyone
        for task in opening:
            task.cancel()

    def _expire_due(self) -> None:
        """Fail the waiters whose deadline has passed; re-arm for the next one."""
        now = time.monotonic()
        waiting: deque[Waiter] = deque()
        next_at = math.inf
        expired = False
        for waiter, deadline in self._waiters:
            if waiter.done():
                continue
            if deadline is not None and deadline <= now:
                waiter.set_exception(self.busy_error())
                expired = True
                continue
            waiting.append((waiter, deadline))
            if deadline is not None and deadline < next_at:
                next_at = deadline
        self._waiters = waiting
        if expired and not waiting:  # connects that nobody waits for any more
            self._cancel_opening()
        self._timer.arm(next_at)

    def busy_error(self) -> HostTimeoutError:
        if self._opening and not self.conns:
            return HostTimeoutError("connect timed out (the round's timeout)", self.host)
        return HostTimeoutError(
            f"all {self.max_connections} connections stayed busy until the deadline "
            "(raise max_connections in pool_options, or the block's timeout)",
            self.host,
        )

    def close(self) -> None:
        """Close the idle connections; busy ones are closed when their rounds are done."""
        self.closed = True
        for conn in self.idle:
            conn.close()


_pool_names = itertools.count()


class LoopPools:
    """Every host's AsyncPool, per running event loop.

    Each loop holds its own pools (in an attribute named for this cluster): a table of loops
    here would keep every loop alive through its connections' transports, while a loop that
    owns its pools takes them with it when it goes (a cycle the garbage collector breaks).
    """

    def __init__(self) -> None:
        self._attr = f"_django_rb_pools_{next(_pool_names)}"
        #: for a loop that takes no attributes (none of asyncio's or uvloop's)
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, AsyncPool]]
        self._by_loop = weakref.WeakKeyDictionary()

    def for_loop(self) -> dict[int, AsyncPool]:
        """The running loop's pools, ``{host_id: pool}``."""
        loop = asyncio.get_running_loop()
        pools = getattr(loop, self._attr, None)
        if pools is None:
            pools = self._by_loop.get(loop)
            if pools is None:
                pools = {}
                try:
                    setattr(loop, self._attr, pools)
                except AttributeError:
                    self._by_loop[loop] = pools
        return pools

    def get(self, host: HostInfo, settings: Callable[[], Any],
            pool_options: Mapping[str, Any]) -> AsyncPool:  # fmt: skip
        """The pool of ``host`` on the running loop, created on first use."""
        pools = self.for_loop()
        pool = pools.get(host.host_id)
        if pool is None or pool.host is not host:
            pool = pools[host.host_id] = AsyncPool(host, settings, pool_options)
        return pool

    def close_loop(self) -> None:
        """Close the running loop's idle connections and forget its pools."""
        pools = self.for_loop()
        loop = asyncio.get_running_loop()
        if getattr(loop, self._attr, None) is pools:
            delattr(loop, self._attr)
        self._by_loop.pop(loop, None)
        for pool in pools.values():
            pool.close()
