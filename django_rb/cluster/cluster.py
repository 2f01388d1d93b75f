"""The Cluster: hosts, their connection pools, the router, and the ways to talk to them."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from functools import cache
from hashlib import sha1
from typing import Any

from redis import ConnectionPool, Redis

from .aclients import AsyncClusterMixin
from .buffer import Codec
from .clients import FanoutClient, LocalClient, MapManager, MappingClient, RoutingClient
from .connections import TCPConnection, TLSConnection, UnixConnection
from .errors import BadHostSetup, DuplicateHostId
from .hosts import HostInfo, make_host, parse_hosts
from .pool import ConnectionPool as EnginePool
from .pool import with_shared_driver_info
from .promise import Promise
from .router import BaseRouter, PartitionRouter

#: Finite by default, so a dead or stalled node fails fast instead of hanging a request.
DEFAULT_POOL_OPTIONS: dict[str, Any] = {
    "socket_timeout": 3.0,
    "socket_connect_timeout": 1.0,
}


@cache
def _resp2_callbacks() -> dict[str, Any]:
    """redis-py's reply shaping for RESP2, taken once from a client that never connects."""
    client = Redis(connection_pool=ConnectionPool(protocol=2))
    return dict(client.response_callbacks)


class Cluster(AsyncClusterMixin):
    """Many independent Redis hosts behind one object; share it for the process lifetime.

    ``hosts`` is ``{host_id: settings}``, a list of settings dicts or URLs, or a
    comma-separated string of URLs; ``host_defaults`` fill in missing settings. The router
    (``PartitionRouter`` by default, as in rb) decides where each key lives.
    """

    def __init__(
        self,
        hosts: Any,
        host_defaults: Mapping[str, Any] | None = None,
        pool_cls: type | None = None,
        pool_options: Mapping[str, Any] | None = None,
        router_cls: type[BaseRouter] | None = None,
        router_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self.pool_cls = pool_cls or EnginePool
        self.pool_options = {**DEFAULT_POOL_OPTIONS, **(pool_options or {})}
        with_shared_driver_info(self.pool_options)
        protocol = self.pool_options.setdefault("protocol", 2)
        if str(protocol) != "2":
            raise BadHostSetup(
                f"pool_options protocol={protocol!r}: map() and fanout() speak RESP2; "
                "leave protocol unset (django_rb uses 2)."
            )
        self.router_cls = router_cls or PartitionRouter
        self.router_options = dict(router_options or {})
        self.host_defaults = dict(host_defaults or {})
        self.hosts: dict[int, HostInfo] = parse_hosts(hosts, self.host_defaults)
        self._hosts_age = 0
        self._router: tuple[BaseRouter, int] | None = None
        self._pools: dict[int, Any] = {}
        self._local_clients: dict[int, LocalClient] = {}
        self.codec = Codec(
            _resp2_callbacks(),
            encoding=self.pool_options.get("encoding", "utf-8"),
            encoding_errors=self.pool_options.get("encoding_errors", "strict"),
            decode_responses=bool(self.pool_options.get("decode_responses", False)),
        )

    def __repr__(self) -> str:
        shown = ", ".join(f"{h.host_id}: {h.address}" for h in self.hosts.values())
        return f"<Cluster {self.router_cls.__name__} {{{shown}}}>"

    # -- hosts --------------------------------------------------------------------------------

    def add_host(
        self,
        host_id: int | None = None,
        host: str = "localhost",
        port: int = 6379,
        unix_socket_path: str | None = None,
        db: int = 0,
        password: str | None = None,
        ssl: bool = False,
        ssl_options: dict[str, Any] | None = None,
        username: str | None = None,
    ) -> None:
        """Add a host, with rb's parameters (the router is rebuilt, so keys may move)."""
        info = make_host(
            host_id, host=host, port=port, unix_socket_path=unix_socket_path, db=db,
            password=password, ssl=ssl, ssl_options=ssl_options, username=username,
        )  # fmt: skip
        with self._lock:
            if info.host_id in self.hosts:
                raise DuplicateHostId(f"Two hosts share the host id {info.host_id!r}.")
            self.hosts[info.host_id] = info
            self._hosts_age += 1

    def remove_host(self, host_id: int) -> bool:
        """Remove a host and close its pool; True if it existed."""
        with self._lock:
            existed = self.hosts.pop(host_id, None) is not None
            self._local_clients.pop(host_id, None)
            pool = self._pools.pop(host_id, None)
            if pool is not None:
                pool.disconnect()
            self._hosts_age += 1
            return existed

    def disconnect_pools(self, inuse_connections: bool = True) -> None:
        """Close pooled connections (they reconnect on next use); ones in use by rounds in
        other threads are shut down, and those rounds fail for their hosts (see
        ``ConnectionPool.disconnect``); with ``inuse_connections=False`` only idle ones are
        closed, so rounds in other threads go on."""
        with self._lock:
            for pool in self._pools.values():
                pool.disconnect(inuse_connections=inuse_connections)
            if inuse_connections:
                self._pools.clear()
                self._local_clients.clear()

    # -- routing and pools --------------------------------------------------------------------

    def get_router(self) -> BaseRouter:
        """The router for the current hosts (rebuilt after hosts change)."""
        cached = self._router
        if cached is not None and cached[1] == self._hosts_age:
            return cached[0]
        with self._lock:
            router = self.router_cls(self, **self.router_options)
            self._router = (router, self._hosts_age)
            return router

    def get_pool_for_host(self, host_id: int | HostInfo) -> Any:
        """The redis-py connection pool of one host, created on first use."""
        if isinstance(host_id, HostInfo):
            host_id = host_id.host_id
        pool = self._pools.get(host_id)
        if pool is not None:
            return pool
        with self._lock:
            pool = self._pools.get(host_id)
            if pool is None:
                host = self._host_info(host_id)
                if host is None:
                    raise LookupError(f"Host {host_id!r} does not exist")
                pool = self._pools[host_id] = self.pool_cls(**self._pool_kwargs(host))
            return pool

    def _host_info(self, host_id: Any) -> HostInfo | None:
        """The host a pool is made for (a Redis Cluster also knows replicas besides ``hosts``)."""
        return self.hosts.get(host_id)

    def _pool_kwargs(self, host: HostInfo) -> dict[str, Any]:
        kwargs = dict(self.pool_options)
        kwargs.update(db=host.db, password=host.password)
        if host.username is not None:
            kwargs["username"] = host.username
        if host.unix_socket_path is not None:
            kwargs.update(path=host.unix_socket_path, connection_class=UnixConnection)
            for tcp_only in ("socket_keepalive", "socket_keepalive_options"):
                kwargs.pop(tcp_only, None)
        else:
            kwargs.update(host=host.host, port=host.port)
            kwargs.setdefault("connection_class", TCPConnection)
            if host.ssl:
                kwargs["connection_class"] = TLSConnection
                kwargs.update((f"ssl_{k}", v) for k, v in (host.ssl_options or {}).items())
        return kwargs

    # -- clients ------------------------------------------------------------------------------

    def get_local_client(self, host_id: int) -> LocalClient:
        """A plain redis-py client on one host (immediate results, any command)."""
        client = self._local_clients.get(host_id)
        if client is None:
            client = self._local_clients[host_id] = self._make_local_client(host_id)
        return client

    def _make_local_client(self, host_id: Any) -> LocalClient:
        """The client ``get_local_client`` hands out (a Redis Cluster's follows MOVED)."""
        return LocalClient(connection_pool=self.get_pool_for_host(host_id))

    def get_local_client_for_key(self, key: Any) -> LocalClient:
        """The local client of the host that holds ``key``."""
        return self.get_local_client(self.get_router().get_host_for_key(key))

    def get_routing_client(self, auto_batch: bool = True) -> RoutingClient:
        """A client that routes each command by its key and returns results immediately."""
        return RoutingClient(self, auto_batch=auto_batch)

    def map(
        self, timeout: float | None = None, max_concurrency: int = 64, auto_batch: bool = True
    ) -> MapManager[MappingClient]:
        """``with cluster.map() as client:`` — commands return promises, sent in one parallel
        round when the block ends; the first error is raised after everything settled."""
        return MapManager(MappingClient(self, max_concurrency, auto_batch), timeout)

    def fanout(self, hosts: Any = None, timeout: float | None = None, max_concurrency: int = 64,
               auto_batch: bool = True) -> MapManager[FanoutClient]:  # fmt: skip
        """``with cluster.fanout(hosts=[0, 1]) as client:`` — every command goes to each host;
        promises hold ``{host_id: value}``."""
        return MapManager(FanoutClient(self, hosts, max_concurrency, auto_batch), timeout)

    def all(
        self, timeout: float | None = None, max_concurrency: int = 64, auto_batch: bool = True
    ) -> MapManager[FanoutClient]:
        """``fanout`` to every host."""
        return self.fanout("all", timeout, max_concurrency, auto_batch)

    def execute_commands(
        self, mapping: Mapping[Any, list[tuple]], *args: Any, **kwargs: Any
    ) -> dict[Any, list[Promise]]:
        """Run lists of commands on the host of each routing key, in one parallel round.

        A command is ``(name, *args)`` or ``(script, keys, args)`` for a redis-py ``Script``
        (anything with ``.script``); scripts are loaded where needed in the same round.
        """
        with self.fanout(*args, **kwargs) as client:
            results = self._queue_commands(client, mapping)
        return results

    def _queue_commands(
        self, client: Any, mapping: Mapping[Any, list[tuple]]
    ) -> dict[Any, list[Promise]]:
        """Queue ``execute_commands``' lists on a fanout client (sync or async alike)."""
        results: dict[Any, list[Promise]] = {}
        loaded: set[tuple[int, str]] = set()
        for key, commands in mapping.items():
            targeted = client.target_key(key)
            host_id = self.get_router().get_host_for_key(key)
            results[key] = promises = []
            for command in commands:
                if not _is_script(command[0]):
                    promises.append(targeted.execute_command(*command))
                    continue
                script, keys, argv = command[0], list(command[1]), list(command[2])
                sha = _script_sha(script)
                if (host_id, sha) not in loaded:
                    loaded.add((host_id, sha))
                    targeted.execute_command("SCRIPT LOAD", script.script)
                promises.append(targeted.execute_command("EVALSHA", sha, len(keys), *keys, *argv))
        return results


def _is_script(value: Any) -> bool:
    return hasattr(value, "script") and not isinstance(value, (str, bytes))


def _script_sha(script: Any) -> str:
    sha = getattr(script, "sha", None)
    if not sha:
        body = script.script
        sha = sha1(body.encode() if isinstance(body, str) else body).hexdigest()
        script.sha = sha
    return sha
