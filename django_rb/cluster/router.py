"""Routers answer one question: which host holds this key. Nothing else lives here."""

from __future__ import annotations

import weakref
from binascii import crc32
from typing import TYPE_CHECKING, Any

from .errors import UnroutableCommand
from .hosts import assert_gapless, rb_host_description
from .ketama import Ketama, key_bytes
from .keyspecs import routing_keys

if TYPE_CHECKING:
    from .cluster import Cluster


class BaseRouter:
    """Subclass and implement ``get_host_for_key`` for a custom placement."""

    def __init__(self, cluster: Cluster) -> None:
        # a weak reference: the cluster caches its router, and a cycle would delay collection
        self._cluster = weakref.ref(cluster)

    @property
    def cluster(self) -> Cluster:
        """The cluster this router belongs to."""
        cluster = self._cluster()
        if cluster is None:
            raise RuntimeError("The cluster of this router is gone.")
        return cluster

    def get_key(self, command: str, args: tuple[Any, ...]) -> Any:
        """The one key a command works on (``UnroutableCommand`` if none or several)."""
        keys = routing_keys((command, *args))
        if len(keys) == 1:
            return keys[0]
        if not keys:
            raise _no_key(command)
        raise UnroutableCommand(
            f"{command!r} names {len(keys)} keys; a routing client sends a command to one host. "
            "Split it per key inside cluster.map(), or use a local client."
        )

    def get_host_for_command(self, command: str, args: tuple[Any, ...]) -> int:
        """The host a command must go to; all its keys must live there."""
        keys = routing_keys((command, *args))
        if not keys:
            raise _no_key(command)
        host_id = self.get_host_for_key(keys[0])
        for key in keys[1:]:
            other = self.get_host_for_key(key)
            if other != host_id:
                raise UnroutableCommand(
                    f"{command!r} names keys on different hosts ({keys[0]!r} on {host_id}, "
                    f"{key!r} on {other}). Issue one command per key inside cluster.map() "
                    "(mget/mset/delete are split for you there)."
                )
        return host_id

    def get_host_for_key(self, key: Any) -> int:
        """The host id for ``key``."""
        raise NotImplementedError

    #: Optional fast path: a callable giving the host for a key's utf-8 bytes (the same host as
    #: for the key itself). Routers that hash the utf-8 form set it; clients then encode a key
    #: once for both routing and the wire. None for routers that look at keys as objects.
    get_host_for_encoded_key: Any = None


def _no_key(command: str) -> UnroutableCommand:
    return UnroutableCommand(
        f"{command!r} has no key, so no host can be chosen for it. Send it to every "
        "host with cluster.all() / cluster.fanout(), or to one with a local client."
    )


class PartitionRouter(BaseRouter):
    """rb's default: the key's signed (Python 2 style) crc32, modulo the host count."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster)
        assert_gapless(cluster.hosts)
        count = len(cluster.hosts)

        def host_for_bytes(data: bytes) -> int:
            # crc32 signed as Python 2 returned it (rb kept that, so placements never moved),
            # then Python's modulo; one closure, called per key on map()'s hot path
            value = crc32(data)
            return (value - ((value & 0x80000000) << 1)) % count

        self._host_for_bytes = host_for_bytes

        if type(self).get_host_for_key is PartitionRouter.get_host_for_key:  # not overridden
            self.get_host_for_encoded_key = host_for_bytes

    def get_host_for_key(self, key: Any) -> int:
        """crc32 placement, identical to rb's for str, bytes and int keys."""
        return self._host_for_bytes(key if type(key) is bytes else key_bytes(key))


class ConsistentHashingRouter(BaseRouter):
    """rb's ketama ring: adding a host moves only about 1/N of the keys."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster)
        assert_gapless(cluster.hosts)
        hosts = cluster.hosts
        self._ring = Ketama({rb_host_description(hosts[i]): i for i in sorted(hosts)})
        if type(self).get_host_for_key is ConsistentHashingRouter.get_host_for_key:
            self.get_host_for_encoded_key = self._ring.get_node

    def get_host_for_key(self, key: Any) -> int:
        """The host the ring assigns to ``key``."""
        host_id = self._ring.get_node(key)
        if host_id is None:
            raise UnroutableCommand("No host was found for the key on the ring.")
        return host_id  # type: ignore[return-value]
