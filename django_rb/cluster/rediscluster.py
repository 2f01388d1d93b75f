"""RedisCluster: the ``Cluster`` surface over a real Redis Cluster, routed by slot.

A slot router, not a second engine: the slot map (``CLUSTER SHARDS``, read at first use) names
the master of each key's slot, ``map()`` keeps one command buffer per master and runs them
through the same selector engine, and redirects become further rounds of the same block.
``hosts`` are the current masters keyed by ``"host:port"``; replicas are known too (for
``read_from_replicas``) but never targeted by ``fanout()`` / ``all()``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Collection, Generator, Mapping
from typing import Any

from redis.client import NEVER_DECODE
from redis.exceptions import AskError, MovedError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ._keyspecs_table import COMMANDS
from .aio import arun_round
from .aslotclients import AsyncSlotFanoutClient, AsyncSlotMappingClient
from .buffer import CommandBuffer, Run
from .clients import LocalClient, MapManager
from .cluster import Cluster
from .engine import run_round
from .errors import BadHostSetup, HostError, UnroutableCommand
from .hosts import HostInfo
from .keyspecs import command_keys
from .promise import Promise
from .redirects import MAX_REDIRECTS, ClusterRedirectError, retry_safe
from .router import BaseRouter
from .slotclients import SlotFanoutClient, SlotMappingClient, SlotRoutingClient
from .slots import SLOTS, SlotMap, key_slot, node_name, slot_map_queries


class SlotRouter(BaseRouter):
    """Key -> the master serving CRC16(key) mod 16384 (hash tags honoured), per the live map."""

    def __init__(self, cluster: RedisCluster) -> None:
        super().__init__(cluster)
        self.get_host_for_encoded_key = cluster.master_for_encoded_key

    def get_host_for_key(self, key: Any) -> Any:
        """The master that serves ``key``'s slot."""
        cluster: RedisCluster = self.cluster  # type: ignore[assignment]
        return cluster.master_for_encoded_key(cluster.codec.encoder.encode(key))

    def get_batch_for_key(self, key: Any) -> tuple[str, int]:
        """Keys with the same answer may share one multi-key command: same master, same slot
        (an app that batches per host asks this when the router has it)."""
        cluster: RedisCluster = self.cluster  # type: ignore[assignment]
        slot = key_slot(cluster.codec.encoder.encode(key))
        return cluster.slot_map.owners[slot] or cluster.any_master(), slot

    def get_host_for_command(self, command: str, args: tuple[Any, ...]) -> Any:
        """The master of the one slot all the command's keys are in."""
        cluster: RedisCluster = self.cluster  # type: ignore[assignment]
        slot, _ = cluster.slot_for_command((command, *args))
        return cluster.slot_map.owners[slot] or cluster.any_master()


class SlotLocalClient(LocalClient):
    """A node's own redis-py client that follows redirects as ``map()`` does: after MOVED (the
    slot was resharded away) it re-reads the slot map and sends the command to the new owner;
    after ASK (the slot is half-migrated and the key already moved) it sends ASKING and the
    command to the named node on one connection, leaving the slot map alone. When the node
    fails (a failover), the map is re-read and a read or idempotent write is sent once to the
    slot's new owner; other commands raise, and the next call goes to the new owner."""

    def __init__(self, cluster: RedisCluster, name: str) -> None:
        super().__init__(connection_pool=cluster.get_pool_for_host(name))  # type: ignore[arg-type]
        self._cluster = weakref.ref(cluster)
        self._name = name

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """As redis-py's, plus MOVED, ASK and a failover followed (a bounded number of times)."""
        client: LocalClient = self
        name, asking, failed_over = self._name, False, False
        for _ in range(MAX_REDIRECTS):
            try:
                if asking:
                    return _asking(client, args, options)
                return LocalClient.execute_command(client, *args, **options)
            except (RedisConnectionError, RedisTimeoutError):
                cluster = self._cluster()
                owner = None if cluster is None or failed_over else cluster.owner_after(args)
                if cluster is None or owner is None or owner == name:
                    raise
                client = cluster.get_local_client(owner)  # type: ignore[arg-type]
                name, asking, failed_over = owner, False, True
            except AskError as exc:  # MovedError is one too
                cluster = self._cluster()
                if cluster is None:
                    raise
                owner = cluster.learn_node(exc.host, exc.port)
                asking = not isinstance(exc, MovedError)
                if not asking:
                    cluster.refresh_slots()
                    cluster.note_moved(exc.slot_id, owner)
                client, name = cluster.get_local_client(owner), owner  # type: ignore[arg-type]
        raise ClusterRedirectError(
            f"{args[0]!r} was still redirected after {MAX_REDIRECTS} tries (the cluster is "
            "resharding): retry later"
        )


def _asking(client: LocalClient, args: tuple, options: dict[str, Any]) -> Any:
    """ASKING, then the command, on one connection of ``client``'s node (what ASK asks for)."""
    with client.pipeline(transaction=False) as pipe:
        pipe.execute_command("ASKING")
        pipe.execute_command(*args, **options)
        _, reply = pipe.execute(raise_on_error=False)
    if isinstance(reply, Exception):
        raise reply
    return reply


class RedisCluster(Cluster):
    """A Redis Cluster behind the ``Cluster`` API; share it for the process lifetime.

    ``startup_nodes`` are seed URLs or host dicts (one reachable seed is enough); their
    username, password and TLS settings apply to every node found. ``read_from_replicas``
    sends read-only commands to replicas (READONLY on their connections).
    """

    async_mapping_client_class = AsyncSlotMappingClient
    async_fanout_client_class = AsyncSlotFanoutClient

    def __init__(
        self,
        startup_nodes: Any,
        pool_options: Mapping[str, Any] | None = None,
        host_defaults: Mapping[str, Any] | None = None,
        pool_cls: type | None = None,
        read_from_replicas: bool = False,
    ) -> None:
        super().__init__(
            startup_nodes,
            host_defaults=host_defaults,
            pool_cls=pool_cls,
            pool_options=pool_options,
            router_cls=SlotRouter,
        )
        if not self._seeds:
            raise BadHostSetup("A Redis Cluster needs at least one startup node.")
        for seed in self._seeds:
            if seed.db != 0:
                raise BadHostSetup(f"{seed.label}: Redis Cluster has only db 0.")
            if seed.unix_socket_path is not None:
                raise BadHostSetup(f"{seed.label}: Redis Cluster nodes are reached over TCP.")
        self.read_from_replicas = read_from_replicas
        self._template = self._seeds[0]
        self._slot_map: SlotMap | None = None
        self._masters: tuple[SlotMap, dict[str, HostInfo]] | None = None
        self._refresh_lock = threading.Lock()
        self._shards = True  # ask CLUSTER SHARDS (False once a server refused it)
        #: every known node, masters and replicas, by name (the engine's ``hosts`` for a round)
        self.nodes: dict[Any, HostInfo] = {}
        self._replica_turn = 0

    # -- what the base class keeps in ``hosts``: here the seeds, then the masters -----------

    @property  # type: ignore[override]
    def hosts(self) -> dict[str, HostInfo]:
        """The current masters, keyed by ``"host:port"``."""
        slot_map = self.slot_map
        cached = self._masters
        if cached is not None and cached[0] is slot_map:
            return cached[1]
        masters = {name: self.nodes[name] for name in slot_map.masters}
        self._masters = (slot_map, masters)
        return masters

    @hosts.setter
    def hosts(self, seeds: dict[int, HostInfo]) -> None:
        self._seeds = list(seeds.values())

    def __repr__(self) -> str:
        shown = ", ".join(seed.endpoint for seed in self._seeds)
        return f"<RedisCluster seeds=[{shown}]>"

    def add_host(self, *args: Any, **kwargs: Any) -> None:
        raise BadHostSetup(
            "A Redis Cluster's nodes come from the servers (CLUSTER SHARDS): add a node with "
            "CLUSTER MEET and move slots to it; django_rb follows on its own."
        )

    def remove_host(self, host_id: Any) -> bool:
        raise BadHostSetup("A Redis Cluster's nodes come from the servers (CLUSTER SHARDS).")

    def _make_local_client(self, host_id: Any) -> LocalClient:
        return SlotLocalClient(self, host_id)

    def _host_info(self, host_id: Any) -> HostInfo | None:
        return self.nodes.get(host_id)

    # -- the slot map -------------------------------------------------------------------------

    @property
    def slot_map(self) -> SlotMap:
        """Who serves each slot (read from the cluster at first use)."""
        slot_map = self._slot_map
        if slot_map is None:
            self.refresh_slots()
            slot_map = self._slot_map
            assert slot_map is not None
        return slot_map

    @property
    def has_slot_map(self) -> bool:
        """Whether the slot map was read already (else the first use reads it)."""
        return self._slot_map is not None

    def refresh_slots(self, deadline: float | None = None, last: Collection[str] = ()) -> SlotMap:
        """Re-read the slot map from the first node that answers (masters, then seeds, the
        nodes named in ``last``, e.g. ones that just failed, at the end), on the selector
        engine; ``deadline`` (a block's, ``time.monotonic()`` based) bounds it all."""
        with self._refresh_lock:
            rounds = self._refresh_rounds(last)
            try:
                buffer = next(rounds)
                while True:
                    run_round([buffer], self.nodes, self.get_pool_for_host, None, None, deadline)
                    buffer = rounds.send(None)
            except StopIteration as done:
                return done.value

    async def arefresh_slots(
        self, deadline: float | None = None, last: Collection[str] = ()
    ) -> SlotMap:
        """``refresh_slots`` on the asyncio engine: the event loop is never blocked."""
        rounds = self._refresh_rounds(last)
        try:
            buffer = next(rounds)
            while True:
                await arun_round([buffer], self.nodes, self.get_async_pool_for_host, deadline)
                buffer = rounds.send(None)
        except StopIteration as done:
            return done.value

    def _refresh_rounds(self, last: Collection[str]) -> Generator[CommandBuffer, None, SlotMap]:
        """The refresh, engine-free: yields a one-command buffer for the caller's engine to
        run, reads its reply once it has, and asks the next node when one fails."""
        known = list(self._slot_map.masters) if self._slot_map is not None else []
        candidates = known + [self._add_seed(seed) for seed in self._seeds]
        candidates.sort(key=lambda name: name in last)  # (a stable sort: the order stays)
        failures = []
        for name in dict.fromkeys(candidates):
            info = self.nodes[name]
            queries = slot_map_queries(info.host, info.ssl, self._shards)
            try:
                words = next(queries)
                while True:
                    if words == SLOTS:
                        self._shards = False  # refused once: never asked again (Redis 6.2)
                    buffer = CommandBuffer(name, self.codec, False)  # type: ignore[arg-type]
                    promise: Promise[Any] = Promise()
                    buffer.add_command("CLUSTER", words, {NEVER_DECODE: True}, promise)
                    yield buffer
                    if promise.is_resolved:
                        words = queries.send(promise.value)
                    else:
                        words = queries.throw(promise.reason)
            except StopIteration as done:
                slot_map: SlotMap = done.value
            except BadHostSetup:
                raise
            except Exception as exc:  # a dead or stalled node: ask the next one
                failures.append(f"{info.endpoint}: {type(exc).__name__}: {exc}")
                continue
            for node, (host, port) in slot_map.addresses.items():
                self._add_node(node, host, port)
            self._slot_map = slot_map
            return slot_map
        raise HostError(f"No Redis Cluster node answered CLUSTER SHARDS ({'; '.join(failures)}).")

    @property
    def seeds(self) -> list[str]:
        """The names of the startup nodes (known as nodes, never asked anything here)."""
        return [self._add_seed(seed) for seed in self._seeds]

    def _add_seed(self, seed: HostInfo) -> str:
        return self._add_node(node_name(seed.host, seed.port), seed.host, seed.port)

    def _add_node(self, name: str, host: str, port: int) -> str:
        if name not in self.nodes:
            seed = self._template
            node_id: Any = name  # HostInfo's ids are ints for rb-style clusters, names here
            self.nodes[name] = HostInfo(
                node_id, host=host, port=port, username=seed.username, password=seed.password,
                ssl=seed.ssl, ssl_options=seed.ssl_options,
            )  # fmt: skip
        return name

    def learn_node(self, host: str, port: int) -> str:
        """The name of the node a redirect points at (known from then on)."""
        return self._add_node(node_name(host, port), host, port)

    def owner_after(self, args: tuple) -> str | None:
        """After a node failed under a local client's command: the map re-read, the master
        now serving the command's slot if the command may be sent again (a read or an
        idempotent write, as in ``map()``), else None."""
        try:
            slot, _ = self.slot_for_command(args)
            self.refresh_slots()
        except (UnroutableCommand, HostError):
            return None
        name, head = self.codec.head(args[0])
        entry = (name, head + tuple(map(self.codec.encoder.encode, args[1:])))
        return (self.slot_map.owners[slot] or None) if retry_safe(entry) else None

    def note_moved(self, slot: int, name: str) -> None:
        """A MOVED reply the freshly read map still contradicts: trust the reply."""
        slot_map = self.slot_map
        if slot_map.owners[slot] != name:
            info = self.nodes[name]
            self._slot_map = slot_map.moved(slot, name, (info.host, info.port))

    # -- routing --------------------------------------------------------------------------------

    def master_for_encoded_key(self, data: bytes) -> str:
        """The master serving an encoded key's slot."""
        return self.slot_map.owners[key_slot(data)] or self.any_master()

    def any_master(self) -> str:
        """Some master, for a slot no one serves (it answers CLUSTERDOWN, which is retried)."""
        masters = self.slot_map.masters
        if not masters:
            raise HostError("The Redis Cluster serves no slot at all.")
        return masters[0]

    def replica_for(self, master: str) -> str:
        """A healthy replica of ``master`` (turn by turn), or the master when it has none."""
        replicas = self.slot_map.replicas.get(master) or ()
        if not replicas:
            return master
        self._replica_turn += 1
        return replicas[self._replica_turn % len(replicas)]

    def slot_for_command(self, args: tuple | list) -> tuple[int, bool]:
        """The one slot a command's keys are in, and whether it only reads."""
        keys = command_keys(args)
        name = str(args[0]).upper() if not isinstance(args[0], bytes) else args[0].decode()
        if not keys:
            raise UnroutableCommand(
                f"{name!r} has no key, so no node can be chosen for it. Send it to every "
                "master with cluster.all() / cluster.fanout(), or to one with a local client."
            )
        encode = self.codec.encoder.encode
        slots = {key_slot(encode(key)) for key in keys}
        if len(slots) > 1:
            raise UnroutableCommand(
                f"{name!r} names keys in {len(slots)} slots of the Redis Cluster, which refuses "
                "that (CROSSSLOT). Put them in one slot with a hash tag ({user1}:a, {user1}:b), "
                "or issue one command per key inside cluster.map()."
            )
        spec = COMMANDS.get(name.upper())
        return slots.pop(), spec is not None and "readonly" in spec[1]

    def slot_of_entry(self, entry: Any) -> int | None:
        """The slot of a buffer entry (a handed-back command), None for keyless ones."""
        if type(entry) is Run:
            return key_slot(entry.args[0])
        try:
            keys = command_keys(entry[1])
        except UnroutableCommand:
            return None
        return key_slot(keys[0]) if keys else None

    # -- clients ------------------------------------------------------------------------------

    def get_routing_client(self, auto_batch: bool = True) -> SlotRoutingClient:
        """Immediate results, each command sent to the master of its slot (redirects followed)."""
        return SlotRoutingClient(self, auto_batch=auto_batch)

    def map(
        self, timeout: float | None = None, max_concurrency: int = 64, auto_batch: bool = True
    ) -> MapManager:
        """As ``Cluster.map``: one pipeline per master, redirects followed inside the block."""
        return MapManager(SlotMappingClient(self, max_concurrency, auto_batch), timeout)

    def fanout(self, hosts: Any = None, timeout: float | None = None, max_concurrency: int = 64,
               auto_batch: bool = True) -> MapManager:  # fmt: skip
        """As ``Cluster.fanout``, over masters (``hosts`` are ``"host:port"`` names or "all")."""
        return MapManager(SlotFanoutClient(self, hosts, max_concurrency, auto_batch), timeout)
