"""Connection pools for the asyncio engine: one per host and event loop, and they *wait*.

redis.asyncio's pool raises ``MaxConnectionsError`` as soon as ``max_connections`` are in use,
so a burst of concurrent requests fails instead of queueing. Here a round that finds the pool
full waits (first come, first served) for a connection to come back, bounded by the block's
timeout, or by ``socket_timeout`` when the block has none: a burst is served late, never
refused, and a pool that stays full past the deadline fails with a ``HostTimeoutError``.

Connections belong to the loop that opened them (asyncio transports cannot change loops), so
each running loop gets its own pools; they go away with their loop.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from .aconnection import AsyncConnection, open_connection
from .atimer import EarliestTimer
from .errors import HostTimeoutError
from .hosts import HostInfo

#: Per host and loop when pool_options set no ``max_connections``.
DEFAULT_MAX_CONNECTIONS = 64


class AsyncPool:
    """The connections to one host on one event loop."""

    def __init__(self, host: HostInfo, settings: Callable[[], Any],
                 pool_options: Mapping[str, Any]) -> None:  # fmt: skip
        self.host = host
        #: an unconnected redis-py connection with the host's login, TLS and timeouts
        self.settings = settings
        self.pool_options = pool_options
        self.max_connections = int(pool_options.get("max_connections") or DEFAULT_MAX_CONNECTIONS)
        self.wait_timeout = pool_options.get("socket_timeout")
        self.idle: list[AsyncConnection] = []
        #: connections open or being opened, idle ones included
        self.count = 0
        self.closed = False
        #: rounds waiting for a connection, first come first served, with their deadlines
        self._waiters: deque[tuple[asyncio.Future[AsyncConnection], float | None]] = deque()
        #: one timer at the earliest deadline in the queue, not one per waiter
        self._timer = EarliestTimer(self._expire_due)

    def __repr__(self) -> str:
        return (
            f"<AsyncPool {self.host.label} open={self.count} idle={len(self.idle)} "
            f"max={self.max_connections}>"
        )

    @property
    def in_use(self) -> int:
        """Connections handed out and not back yet."""
        return self.count - len(self.idle)

    def take_idle(self) -> AsyncConnection | None:
        """An idle open connection, without waiting; None if there is none."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.usable:
                return conn
            self.count -= 1  # closed by the server while idle
        return None

    def acquire_soon(self, deadline: float | None) -> asyncio.Future[AsyncConnection]:
        """A future of a connection, without a task when the pool is full: a new connection
        being opened (a task), or a place in the queue for the next one released, given up
        at ``deadline`` (or after ``socket_timeout`` without one) with a ``HostTimeoutError``.

        Call after ``take_idle`` found none. The caller that stops waiting hands the future to
        ``abandon``, so that a connection arriving late goes back to the pool.
        """
        if self.count < self.max_connections:
            return self._open(deadline)
        waiter: asyncio.Future[AsyncConnection] = asyncio.get_running_loop().create_future()
        if deadline is None and self.wait_timeout is not None:
            deadline = time.monotonic() + self.wait_timeout
        self._waiters.append((waiter, deadline))
        if deadline is not None:
            self._timer.arm(deadline)
        return waiter

    def abandon(self, future: asyncio.Future[AsyncConnection]) -> None:
        """The waiter of ``future`` is gone: its connection, now or when it comes, goes back."""
        if not future.done():
            future.add_done_callback(self._give_back)
            future.cancel()
        else:
            self._give_back(future)

    def _give_back(self, future: asyncio.Future[AsyncConnection]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.release(future.result())

    def _open(self, deadline: float | None) -> asyncio.Task[AsyncConnection]:
        self.count += 1
        task = asyncio.get_running_loop().create_task(
            open_connection(self.host, self.settings(), deadline)
        )
        task.add_done_callback(self._opened)
        return task

    def _opened(self, task: asyncio.Task[AsyncConnection]) -> None:
        if task.cancelled() or task.exception() is not None:
            self._forget_one()

    def _expire_due(self) -> None:
        """Fail the waiters whose deadline has passed; re-arm for the next one."""
        now = time.monotonic()
        waiting: deque[tuple[asyncio.Future[AsyncConnection], float | None]] = deque()
        next_at = math.inf
        for waiter, deadline in self._waiters:
            if waiter.done():
                continue
            if deadline is not None and deadline <= now:
                waiter.set_exception(self.busy_error())
                continue
            waiting.append((waiter, deadline))
            if deadline is not None and deadline < next_at:
                next_at = deadline
        self._waiters = waiting
        self._timer.arm(next_at)

    def busy_error(self) -> HostTimeoutError:
        return HostTimeoutError(
            f"all {self.max_connections} connections stayed busy until the deadline "
            "(raise max_connections in pool_options, or the block's timeout)",
            self.host,
        )

    def release(self, conn: AsyncConnection) -> None:
        """Back to the pool: to the longest waiter first; a broken one is dropped."""
        if self.closed or not conn.usable:
            self.discard(conn)
            return
        waiter = self._next_waiter()
        if waiter is None:
            self.idle.append(conn)
        else:
            waiter[0].set_result(conn)

    def discard(self, conn: AsyncConnection) -> None:
        """Close a connection that cannot be trusted and free its slot."""
        conn.close()
        self._forget_one()

    def _forget_one(self) -> None:
        """A slot is free: the longest waiter gets a new connection opened for it."""
        self.count -= 1
        waiter = self._next_waiter()
        if waiter is not None:
            opening = self._open(waiter[1])
            opening.add_done_callback(functools.partial(self._hand_over, waiter[0]))

    def _next_waiter(self) -> tuple[asyncio.Future[AsyncConnection], float | None] | None:
        """The longest waiter still waiting, out of the queue, and its deadline; None if
        nobody waits."""
        waiters = self._waiters
        while waiters:
            waiter, deadline = waiters.popleft()
            if not waiter.done():
                return waiter, deadline
        return None

    def _hand_over(self, waiter: asyncio.Future[AsyncConnection],
                   task: asyncio.Task[AsyncConnection]) -> None:  # fmt: skip
        """The connection opened for a waiter: to it, or back if it stopped waiting."""
        if task.cancelled():
            if not waiter.done():
                waiter.cancel()
            return
        failure = task.exception()
        if waiter.done():
            if failure is None:
                self.release(task.result())
        elif failure is not None:
            waiter.set_exception(failure)
        else:
            waiter.set_result(task.result())

    def close(self) -> None:
        """Close the idle connections; busy ones are closed when their round gives them back."""
        self.closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()
            self.count -= 1


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
