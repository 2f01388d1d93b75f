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
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from .aconnection import AsyncConnection, open_connection
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
        self._waiters: deque[asyncio.Future[AsyncConnection | None]] = deque()

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

    async def acquire(self, deadline: float | None) -> AsyncConnection:
        """A connection: idle, new, or the next one released (waited for until ``deadline``)."""
        while True:
            conn = self.take_idle()
            if conn is not None:
                return conn
            if self.count < self.max_connections:
                self.count += 1
                try:
                    return await open_connection(self.host, self.settings(), deadline)
                except BaseException:
                    self._forget_one()
                    raise
            conn = await self._wait(deadline)
            if conn is not None:
                return conn

    async def _wait(self, deadline: float | None) -> AsyncConnection | None:
        """The next released connection, or None when a slot was freed (open a new one)."""
        if deadline is None and self.wait_timeout is not None:
            deadline = time.monotonic() + self.wait_timeout
        waiter: asyncio.Future[AsyncConnection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            if deadline is None:
                return await waiter
            async with asyncio.timeout(deadline - time.monotonic()):
                return await waiter
        except TimeoutError:
            raise HostTimeoutError(
                f"all {self.max_connections} connections stayed busy until the deadline "
                "(raise max_connections in pool_options, or the block's timeout)",
                self.host,
            ) from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed one just as we gave up
                handed = waiter.result()
                if handed is not None:
                    self.release(handed)
                else:
                    self._wake_one(None)
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
            try:
                self._waiters.remove(waiter)
            except ValueError:
                pass

    def release(self, conn: AsyncConnection) -> None:
        """Back to the pool: to the longest waiter first; a broken one is dropped."""
        if self.closed or not conn.usable:
            self.discard(conn)
            return
        if not self._wake_one(conn):
            self.idle.append(conn)

    def discard(self, conn: AsyncConnection) -> None:
        """Close a connection that cannot be trusted and free its slot."""
        conn.close()
        self._forget_one()

    def _forget_one(self) -> None:
        self.count -= 1
        self._wake_one(None)

    def _wake_one(self, conn: AsyncConnection | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def close(self) -> None:
        """Close the idle connections; busy ones are closed when their round gives them back."""
        self.closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()
            self.count -= 1


class LoopPools:
    """Every host's AsyncPool, per running event loop."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, AsyncPool]]
        self._by_loop = weakref.WeakKeyDictionary()

    def for_loop(self) -> dict[int, AsyncPool]:
        """The running loop's pools, ``{host_id: pool}``."""
        loop = asyncio.get_running_loop()
        pools = self._by_loop.get(loop)
        if pools is None:
            pools = self._by_loop[loop] = {}
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
        loop = asyncio.get_running_loop()
        for pool in self._by_loop.pop(loop, {}).values():
            pool.close()
