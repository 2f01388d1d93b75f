"""Redis Cluster's key space: the slot a key hashes to, and which node serves each slot.

A ``SlotMap`` is an immutable snapshot read from ``CLUSTER SHARDS`` (Redis 7) or ``CLUSTER
SLOTS`` (older servers); a refresh builds a new one, so a round that holds the old one is never
disturbed. Nodes are named ``"host:port"``, the ids ``RedisCluster.hosts`` is keyed by.
"""

from __future__ import annotations

from binascii import crc_hqx
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from .errors import BadHostSetup

#: How many slots a Redis Cluster has.
SLOT_COUNT = 16384
#: ``crc & SLOT_MASK`` is ``crc % SLOT_COUNT``
SLOT_MASK = SLOT_COUNT - 1

OPEN_BRACE = ord("{")  # ``int in bytes`` is a memchr; ``b"{" in bytes`` costs 8x more


def key_slot(key: bytes | bytearray | memoryview) -> int:
    """The slot of an encoded key: CRC16 (XMODEM, as ``crc_hqx``) of the key, or of its hash
    tag, the text between the first ``{`` and the first ``}`` after it when not empty."""
    if OPEN_BRACE in key:
        key = bytes(key)
        start = key.index(b"{")
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) & SLOT_MASK


__all__ = ["SLOT_COUNT", "SlotMap", "key_slot", "node_name", "slot_map_queries"]


def node_name(host: str, port: int) -> str:
    """The id of a node: ``127.0.0.1:7000``, ``[::1]:7000``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class SlotMap:
    """Who serves each slot: ``owners[slot]`` is a master's name ("" while uncovered)."""

    owners: tuple[str, ...]
    #: every known node's ``(host, port)``, masters and replicas
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: master name -> names of its healthy replicas
    replicas: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def masters(self) -> list[str]:
        """The masters that own at least one slot, in slot order."""
        return list(dict.fromkeys(owner for owner in self.owners if owner))

    def moved(self, slot: int, name: str, address: tuple[str, int]) -> SlotMap:
        """A copy where ``slot`` belongs to ``name`` (a MOVED reply the map did not know yet)."""
        owners = list(self.owners)
        owners[slot] = name
        return SlotMap(tuple(owners), {**self.addresses, name: address}, self.replicas)


#: The topology commands: CLUSTER SHARDS (Redis 7), CLUSTER SLOTS (older servers).
SHARDS = (b"CLUSTER", b"SHARDS")
SLOTS = (b"CLUSTER", b"SLOTS")


def slot_map_queries(
    default_host: str, tls: bool = False, shards: bool = True
) -> Generator[tuple[bytes, ...], Any, SlotMap]:
    """Read the topology from one node, engine-free: yields the command to run there, is sent
    its reply (or thrown its error reply) and returns the map. The selector engine and asyncio
    drive it alike (``RedisCluster.refresh_slots`` / ``arefresh_slots``). ``shards=False``
    goes straight to CLUSTER SLOTS (a server that refused CLUSTER SHARDS before)."""
    if not shards:
        return _from_slots((yield SLOTS), default_host)
    try:
        reply = yield SHARDS
    except ResponseError as exc:
        if "cluster support disabled" in str(exc).lower():
            raise BadHostSetup(
                "The seed node is not in cluster mode (cluster support disabled): use an "
                "rb-style cluster for it, or point startup_nodes at a Redis Cluster."
            ) from exc
        reply = yield SLOTS  # Redis 6.2 has no CLUSTER SHARDS
        return _from_slots(reply, default_host)
    return _from_shards(reply, default_host, tls)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: Any) -> dict[str, Any]:
    """A RESP2 flat ``[name, value, ...]`` list (or redis-py's dict of it) as a dict."""
    if isinstance(flat, dict):
        return {_text(name): value for name, value in flat.items()}
    items = list(flat)
    return {_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _host(fields: dict[str, Any], default_host: str) -> str:
    for name in ("endpoint", "ip"):
        value = _text(fields.get(name, b""))
        if value and value != "?":
            return value
    return default_host


def _from_shards(reply: Any, default_host: str, tls: bool) -> SlotMap:
    owners = [""] * SLOT_COUNT
    addresses: dict[str, tuple[str, int]] = {}
    replicas: dict[str, tuple[str, ...]] = {}
    for shard in reply:
        shard_fields = _pairs(shard)
        master = None
        healthy_replicas = []
        for node in shard_fields.get("nodes") or []:
            fields = _pairs(node)
            port_field = "tls-port" if tls and "tls-port" in fields else "port"
            if port_field not in fields:
                continue
            name_host = _host(fields, default_host)
            port = int(fields[port_field])
            name = node_name(name_host, port)
            role = _text(fields.get("role", b""))
            health = _text(fields.get("health", b"online"))
            if role == "master":
                master = name
                addresses[name] = (name_host, port)
            elif health == "online":
                healthy_replicas.append(name)
                addresses[name] = (name_host, port)
        if master is None:
            continue
        replicas[master] = tuple(healthy_replicas)
        ranges = [int(v) for v in shard_fields.get("slots") or []]
        for start, end in zip(ranges[::2], ranges[1::2], strict=True):
            owners[start : end + 1] = [master] * (end - start + 1)
    return SlotMap(tuple(owners), addresses, replicas)


def _from_slots(reply: Any, default_host: str) -> SlotMap:
    owners = [""] * SLOT_COUNT
    addresses: dict[str, tuple[str, int]] = {}
    replicas: dict[str, tuple[str, ...]] = {}
    for start, end, master_node, *replica_nodes in reply:
        names = []
        for node in (master_node, *replica_nodes):
            host = _text(node[0]) or default_host
            port = int(node[1])
            name = node_name(host, port)
            addresses[name] = (host, port)
            names.append(name)
        owners[int(start) : int(end) + 1] = [names[0]] * (int(end) - int(start) + 1)
        replicas[names[0]] = tuple(dict.fromkeys(replicas.get(names[0], ()) + tuple(names[1:])))
    return SlotMap(tuple(owners), addresses, replicas)
