"""Async clients: ``async with cluster.amap()``, ``afanout()`` / ``aall()``, and awaitable
routing and local clients, all running their rounds on the asyncio engine.

The mapping and fanout clients are the sync ones (same queueing, routing, auto-batching and
promises); only the end of the block differs: it awaits ``arun_round`` instead of running the
selector loop. Each block has its own buffers, so any number of tasks may run their own
``amap()`` on one cluster at once without seeing each other's commands.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from redis import Redis

from .aio import arun_round
from .apool import AsyncPool, LoopPools
from .buffer import SHARED_UNSAFE, CommandBuffer
from .clients import FanoutClient, MappingClient, _ClusterClient
from .engine import RoundErrors
from .hosts import HostInfo
from .promise import Promise

if TYPE_CHECKING:
    from .cluster import Cluster


class _AsyncRounds:
    """What turns a mapping/fanout client into an async one: rounds are awaited at the end.

    ``max_concurrency`` caps how many hosts are talked to at once, as in ``map()``: where the
    sync client sends the queued hosts early, this one sets their buffers aside, and the
    block's end runs everything through a sliding window of that many hosts (the next host
    starts as soon as one is done; a host's later buffers run after its earlier ones).
    """

    #: rounds of several tasks share connections here: blocking commands are refused too
    _refused: frozenset[str] = SHARED_UNSAFE
    _cluster: Cluster
    _buffers: dict[int, CommandBuffer]
    _errors: RoundErrors
    _max_concurrency: int | None
    _held: list[CommandBuffer]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # the sync client's arguments, unchanged
        self._held = []

    def _flush(self, timeout: float | None = None) -> None:
        """Called when ``max_concurrency`` hosts are queued: set them aside for the window."""
        if self._buffers:
            self._held.extend(self._buffers.values())
            self._buffers.clear()

    def join(self, timeout: float | None = None) -> None:
        raise TypeError("An async client's round is awaited: use `async with cluster.amap()`.")

    async def ajoin(self, deadline: float | None = None) -> None:
        """Send everything queued, await every reply (or the deadline), raise the first error."""
        try:
            while self._held or self._buffers:  # a callback may queue more while one settles
                buffers = self._held
                buffers.extend(self._buffers.values())
                self._held = []
                self._buffers.clear()
                await self._arun_buffers(buffers, deadline)
        finally:
            errors = self._errors
            if errors.errors:
                self._errors = RoundErrors()
            self._held.clear()
            self._buffers.clear()
        if errors.first is not None:
            raise errors.first

    async def aprepare(self, deadline: float | None) -> None:
        """At the start of the block: what must be read before commands can be routed (a
        Redis Cluster's slot map, the first time), awaited rather than read blocking later."""

    async def _arun_buffers(self, buffers: list[CommandBuffer], deadline: float | None) -> None:
        """One round (a Redis Cluster's clients follow its redirects here too)."""
        cluster = self._cluster
        get_pool = cluster.get_async_pool_for_host
        await arun_round(
            buffers, cluster.hosts, get_pool, deadline, self._errors, self._max_concurrency
        )

    def cancel(self) -> None:
        """Forget what is queued and not yet sent; those promises stay pending."""
        self._buffers.clear()
        self._held.clear()


class AsyncMappingClient(_AsyncRounds, MappingClient):  # type: ignore[misc]
    """Inside ``async with cluster.amap()``: commands return promises at once; the block's end
    awaits one parallel round over the hosts involved."""


class AsyncFanoutClient(_AsyncRounds, FanoutClient):  # type: ignore[misc]
    """Inside ``async with cluster.afanout()`` / ``aall()``: promises of ``{host_id: value}``."""


class AMapManager:
    """The ``async with`` block: await the round on a clean exit, drop the queue on an error.

    ``timeout`` bounds the whole block from its start: connecting, waiting for a free
    connection and every reply of every round (callbacks may queue more rounds).
    """

    def __init__(self, client: AsyncMappingClient | AsyncFanoutClient,
                 timeout: float | None = None) -> None:  # fmt: skip
        self.client = client
        self.timeout = timeout
        self.deadline: float | None = None

    async def __aenter__(self) -> Any:
        if self.timeout is not None:
            self.deadline = time.monotonic() + self.timeout
        await self.client.aprepare(self.deadline)
        return self.client

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.client.cancel()
            return
        await self.client.ajoin(self.deadline)

    def __enter__(self) -> Any:
        raise TypeError("amap()/afanout()/aall() are async blocks: use `async with`.")

    def __exit__(self, *exc: Any) -> None:  # pragma: no cover - __enter__ always raises
        pass


class AsyncRoutingClient(_ClusterClient, Redis):  # type: ignore[misc]
    """Awaitable commands, each routed by its key: ``await client.get("k")``."""

    def __init__(self, cluster: Cluster, auto_batch: bool = True) -> None:
        self._setup(cluster)
        self.auto_batch = auto_batch

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run one command on its key's host and return the reply (or raise its error)."""
        async with self._cluster.amap(auto_batch=self.auto_batch) as client:
            promise = client.execute_command(*args, **options)
        return promise.value

    async def run_script(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """A registered script on the host of its keys, loaded there if it lacks it."""
        async with self._cluster.amap() as client:
            promise = client.run_script(script, keys, args)
        return promise.value

    def amap(self, timeout: float | None = None, max_concurrency: int = 64,
             auto_batch: bool | None = None) -> AMapManager:  # fmt: skip
        """``async with routing_client.amap() as c:`` — see ``Cluster.amap``."""
        batch = self.auto_batch if auto_batch is None else auto_batch
        return self._cluster.amap(timeout, max_concurrency, batch)


class AsyncLocalClient(_ClusterClient, Redis):  # type: ignore[misc]
    """Awaitable commands pinned to one host, keyed or not (``await local.dbsize()``)."""

    def __init__(self, cluster: Cluster, host_id: int) -> None:
        self._setup(cluster)
        self.host_id = host_id

    def __repr__(self) -> str:
        return f"<AsyncLocalClient host={self.host_id}>"

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run one command on this client's host and return the reply (or raise its error)."""
        client = AsyncFanoutClient(self._cluster, [self.host_id])
        promise = client.execute_command(*args, **options)
        await client.ajoin()
        return promise.value[self.host_id]

    async def run_script(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """A registered script on this host: EVALSHA, and EVAL with the body if it lacks it."""
        client = AsyncFanoutClient(self._cluster, [self.host_id])
        promise = client.run_script(script, keys, args)
        await client.ajoin()
        return promise.value[self.host_id]


class AsyncClusterMixin:
    """The async entry points of a cluster (``Cluster`` and friends inherit them)."""

    hosts: dict[int, HostInfo]
    codec: Any
    pool_options: dict[str, Any]
    #: what amap() / afanout() build (a Redis Cluster's follow redirects)
    async_mapping_client_class: type[Any]
    async_fanout_client_class: type[Any]

    def _queue_commands(self, client: Any, mapping: Mapping[Any, list[tuple]]) -> dict:
        raise NotImplementedError

    @property
    def _loop_pools(self) -> LoopPools:
        pools = self.__dict__.get("_async_loop_pools")
        if pools is None:
            pools = self.__dict__.setdefault("_async_loop_pools", LoopPools())
        return pools

    def get_async_pool_for_host(self, host: HostInfo) -> AsyncPool:
        """The asyncio pool of one host on the running event loop."""
        loop_pools = self._loop_pools
        pool = loop_pools.for_loop().get(host.host_id)
        if pool is not None and pool.host is host:  # (every round asks, once per host)
            return pool
        return loop_pools.get(host, lambda: self._connection_settings(host), self.pool_options)

    def _connection_settings(self, host: HostInfo) -> Any:
        """An unconnected connection of the host's sync pool: its login, TLS and timeouts."""
        pool = self.get_pool_for_host(host.host_id)  # type: ignore[attr-defined]
        return pool.connection_class(**pool.connection_kwargs)

    def amap(
        self, timeout: float | None = None, max_concurrency: int = 64, auto_batch: bool = True
    ) -> AMapManager:
        """``async with cluster.amap() as client:`` — map() for coroutines: promises at once,
        one parallel round awaited when the block ends, the first error raised after all
        promises settled; ``timeout`` bounds the whole block."""
        client = self.async_mapping_client_class(self, max_concurrency, auto_batch)
        return AMapManager(client, timeout)

    def afanout(self, hosts: Any = None, timeout: float | None = None,
                max_concurrency: int = 64, auto_batch: bool = True) -> AMapManager:  # fmt: skip
        """``async with cluster.afanout(hosts=[0, 1]) as client:`` — fanout() for coroutines."""
        client = self.async_fanout_client_class(self, hosts, max_concurrency, auto_batch)
        return AMapManager(client, timeout)

    def aall(
        self, timeout: float | None = None, max_concurrency: int = 64, auto_batch: bool = True
    ) -> AMapManager:
        """``afanout`` to every host."""
        return self.afanout("all", timeout, max_concurrency, auto_batch)

    async def aexecute_commands(
        self, mapping: Mapping[Any, list[tuple]], *args: Any, **kwargs: Any
    ) -> dict[Any, list[Promise]]:
        """``execute_commands`` awaited: lists of commands per routing key, one parallel round."""
        async with self.afanout(*args, **kwargs) as client:
            results = self._queue_commands(client, mapping)
        return results

    def get_async_routing_client(self, auto_batch: bool = True) -> AsyncRoutingClient:
        """Awaitable commands routed by key."""
        return AsyncRoutingClient(self, auto_batch)  # type: ignore[arg-type]

    def get_async_local_client(self, host_id: int) -> AsyncLocalClient:
        """Awaitable commands on one host."""
        if host_id not in self.hosts:
            raise LookupError(f"Host {host_id!r} does not exist")
        return AsyncLocalClient(self, host_id)  # type: ignore[arg-type]

    def get_async_local_client_for_key(self, key: Any) -> AsyncLocalClient:
        """The async local client of the host that holds ``key``."""
        router = self.get_router()  # type: ignore[attr-defined]
        return self.get_async_local_client(router.get_host_for_key(key))

    async def adisconnect_pools(self) -> None:
        """Close the running loop's idle connections (busy ones close when they come back)."""
        self._loop_pools.close_loop()


AsyncClusterMixin.async_mapping_client_class = AsyncMappingClient
AsyncClusterMixin.async_fanout_client_class = AsyncFanoutClient
