"""The middle layer: cache operations on finished keys, sent through the cluster core.

``RBCacheClient`` knows nothing of key prefixes, versions or Django's timeout conventions (the
backend resolves those); it turns values into bytes and back and talks to the nodes. Calls on
one key use a client on that key's node; calls on many keys make one parallel round through
``cluster.map()`` (one pipeline per node, every node written before any reply is read).

With ``ignore_exceptions`` a node that cannot be reached or does not answer in time is treated
as empty: its keys read as missing, writes to it report failure, and a warning is logged at
most once per ``log_interval`` seconds per node. Every other error is raised.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import redis
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .compressors import Compressor
from .serializers import Serializer

logger = logging.getLogger("django_rb.cache")

T = TypeVar("T")

#: Errors that mean "this node is unavailable"; the only ones IGNORE_EXCEPTIONS swallows.
NODE_ERRORS = (RedisConnectionError, RedisTimeoutError)

#: First byte of every non-integer value: serialized as is, or serialized then compressed.
#: Integers are stored as their digits (so INCR works) and can never start with either.
PLAIN = b"\x00"
COMPRESSED = b"\x01"

#: INCRBY only if the key exists, in one step on the node (Django: missing key -> ValueError).
INCR_IF_EXISTS = Script(
    None,  # type: ignore[arg-type]  (a bytes script needs no client to compute its sha)
    # the new value is returned as GET's string: a Lua number is a double, exact only to 2**53
    b"if redis.call('EXISTS', KEYS[1]) == 1 then "
    b"redis.call('INCRBY', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1]) end "
    b"return false",
)

_last_logged: dict[Any, float] = {}
_log_lock = threading.Lock()


class NotAnInteger(redis.ResponseError, ValueError):
    """incr/decr on a value that is not an integer (or that the step would overflow).

    A ResponseError like Django's RedisCache raises, and a ValueError like Django's other
    backends; its text is Redis's own words, without the script's sha.
    """


_SCRIPT_TAIL = re.compile(r"\s*script: [0-9a-f]{40}, on @user_script:\d+\.?$")


class UnreadableValue(ValueError):
    """A stored value is neither an integer nor in RBCache's format (another writer's data?)."""


def to_milliseconds(timeout: float | None) -> int | None:
    """Seconds (None = forever) to whole milliseconds for PX/PEXPIRE; <= 0 means expire now."""
    return None if timeout is None else int(timeout * 1000)


class RBCacheClient:
    """Encode, route and send; see the module docstring for the failure policy."""

    log_interval = 30.0

    def __init__(
        self,
        get_cluster: Callable[[], Any],
        serializer: Serializer,
        compressor: Compressor | None = None,
        compress_min_length: int = 1024,
        ignore_exceptions: bool = False,
        log_ignored_exceptions: bool = True,
    ) -> None:
        self._get_cluster = get_cluster
        self.serializer = serializer
        self.compressor = compressor
        self.compress_min_length = compress_min_length
        self.ignore_exceptions = ignore_exceptions
        self.log_ignored_exceptions = log_ignored_exceptions

    @property
    def cluster(self) -> Any:
        """The cluster, asked for on every call: a named one is replaced when RB_CLUSTERS
        changes (``get_cluster`` builds a new one), and this cache follows."""
        return self._get_cluster()

    # -- values ---------------------------------------------------------------------------

    def encode(self, value: Any) -> bytes | int:
        """Integers as they are (INCR must see digits); anything else tagged and serialized."""
        if type(value) is int:  # not bool, not IntEnum: those must come back as themselves
            return value
        data = self.serializer.dumps(value)
        if self.compressor is not None and len(data) > self.compress_min_length:
            packed = self.compressor.compress(data)
            if len(packed) < len(data):  # a compressor may hand back its input unchanged
                return COMPRESSED + packed
        return PLAIN + data

    def decode(self, data: bytes) -> Any:
        tag = data[:1]
        if tag == PLAIN:
            return self.serializer.loads(data[1:])
        if tag == COMPRESSED:
            if self.compressor is None:
                raise UnreadableValue(
                    "A cached value is compressed but this cache has no COMPRESSOR configured."
                )
            try:
                raw = self.compressor.decompress(data[1:])
            except Exception as exc:
                raise UnreadableValue(
                    "A cached value could not be decompressed; was it written with another "
                    f"COMPRESSOR? ({type(exc).__name__}: {exc})"
                ) from exc
            return self.serializer.loads(raw)
        try:
            return int(data)
        except ValueError:
            raise UnreadableValue(
                "A cached value was not written by RBCache (no format marker, not an integer)."
            ) from None

    # -- failure policy -------------------------------------------------------------------

    def _ignore(self, error: BaseException, host_id: Any = None) -> None:
        """Swallow a node error when so configured (logging it, rate-limited), else raise it."""
        if not (self.ignore_exceptions and isinstance(error, NODE_ERRORS)):
            raise error
        if not self.log_ignored_exceptions:
            return
        if host_id is None:
            host_id = getattr(error, "host_id", None)
        host = self.cluster.hosts.get(host_id) if host_id is not None else None
        key = host.address if host is not None else host_id  # one entry per server, not per
        # cluster object: clusters are rebuilt when settings change
        now = time.monotonic()
        with _log_lock:
            last = _last_logged.get(key)
            if last is not None and now - last < self.log_interval:
                return
            _last_logged[key] = now
        logger.warning(
            "Cache node %s unavailable, treated as empty (IGNORE_EXCEPTIONS): %s: %s",
            host_id, type(error).__name__, error,
        )  # fmt: skip

    def _on_key_node(self, key: str, default: T, call: Callable[[Any], T]) -> T:
        """Run ``call`` with a client on ``key``'s node; a node error gives ``default`` if ignored."""
        try:
            return call(self.cluster.get_local_client_for_key(key))
        except NODE_ERRORS as exc:
            host_id = getattr(exc, "host_id", None)
            if host_id is None:
                host_id = self.cluster.get_router().get_host_for_key(key)
            self._ignore(exc, host_id)
            return default

    def _round(self, queue: Callable[[Any], None], promises: Iterable[Any], mode: str = "map",
               **kwargs: Any) -> None:  # fmt: skip
        """One parallel round: ``queue(c)`` adds commands; afterwards check their promises.

        The core raises the first error once every promise has settled. Node errors may be
        ignored; then any other rejection (a command error elsewhere) is still raised.
        """
        try:
            with getattr(self.cluster, mode)(**kwargs) as c:
                queue(c)
        except Exception as exc:
            self._ignore(exc)
            # ignored: look at every rejection (once per node), since another may not be
            seen: set[Any] = set()
            for promise in promises:
                if promise.is_rejected:
                    reason = promise.reason
                    host_id = getattr(reason, "host_id", None)
                    if host_id not in seen or not isinstance(reason, NODE_ERRORS):
                        seen.add(host_id)
                        self._ignore(reason)

    # -- one key --------------------------------------------------------------------------

    def get(self, key: str, default: Any) -> Any:
        data = self._on_key_node(key, None, lambda client: client.get(key))
        return default if data is None else self.decode(data)

    def set(self, key: str, value: Any, timeout: float | None) -> bool:
        """Store; a timeout <= 0 deletes instead. False only when the node was unavailable."""
        data = self.encode(value)  # before any I/O: an unpicklable value raises either way
        px = to_milliseconds(timeout)
        if px is not None and px <= 0:
            return self._on_key_node(key, False, lambda client: client.delete(key) >= 0)
        return self._on_key_node(key, False, lambda client: bool(client.set(key, data, px=px)))

    def add(self, key: str, value: Any, timeout: float | None) -> bool:
        """SET NX. With a timeout <= 0 nothing is stored; True if the key was free."""
        data = self.encode(value)
        px = to_milliseconds(timeout)
        if px is not None and px <= 0:
            return self._on_key_node(key, False, lambda client: not client.exists(key))
        return self._on_key_node(
            key, False, lambda client: bool(client.set(key, data, px=px, nx=True))
        )

    def touch(self, key: str, timeout: float | None) -> bool:
        """New expiry (None = never); True if the key exists."""
        if timeout is None:

            def persist(client: Any) -> bool:
                # PERSIST answers 0 for a key without expiry too; EXISTS says if it is there
                pipe = client.pipeline(transaction=False)
                pipe.persist(key)
                pipe.exists(key)
                return bool(pipe.execute()[1])

            return self._on_key_node(key, False, persist)
        px = max(0, to_milliseconds(timeout))  # type: ignore[type-var]
        return self._on_key_node(key, False, lambda client: bool(client.pexpire(key, px)))

    def delete(self, key: str) -> bool:
        return self._on_key_node(key, False, lambda client: bool(client.delete(key)))

    def has_key(self, key: str) -> bool:
        return self._on_key_node(key, False, lambda client: bool(client.exists(key)))

    def incr(self, key: str, delta: int, name: str = "") -> int:
        """Atomic INCRBY of an existing key on its node; ValueError if missing (or unreachable)."""
        try:
            value = self._on_key_node(
                key, None, lambda client: INCR_IF_EXISTS(keys=[key], args=[delta], client=client)
            )
        except redis.ResponseError as exc:
            words = _SCRIPT_TAIL.sub("", str(exc))
            if "integer" not in words and "overflow" not in words:
                raise  # another refusal (out of memory, ...): Redis's words as they are
            raise NotAnInteger(
                f"Cannot incr or decr key '{name or key}' by {delta}: {words}."
            ) from None
        if value is None:
            raise ValueError(f"Key '{name or key}' not found.")
        return int(value)

    def ttl(self, key: str) -> int | None:
        """django-redis's answer: seconds left, None for no expiry, 0 for a missing key."""
        seconds = self._on_key_node(key, -2, lambda client: client.ttl(key))
        return _remaining(seconds)

    def pttl(self, key: str) -> int | None:
        """Like ``ttl`` in milliseconds."""
        ms = self._on_key_node(key, -2, lambda client: client.pttl(key))
        return _remaining(ms)

    def expire(self, key: str, timeout: float) -> bool:
        px = max(0, int(timeout * 1000))
        return self._on_key_node(key, False, lambda client: bool(client.pexpire(key, px)))

    def persist(self, key: str) -> bool:
        return self._on_key_node(key, False, lambda client: bool(client.persist(key)))

    def lock(self, key: str, **kwargs: Any) -> Any:
        """A redis-py Lock at ``key`` on its node (no I/O until acquired)."""
        return self.cluster.get_local_client_for_key(key).lock(key, **kwargs)

    # -- many keys: one parallel round each -----------------------------------------------

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Values of the keys found; keys on an ignored, unavailable node are simply absent."""
        promises: dict[str, Any] = {}

        def queue(c: Any) -> None:
            for key in keys:
                promises[key] = c.get(key)

        self._round(queue, promises.values())
        decode = self.decode
        found = {}
        for key, promise in promises.items():
            data = promise.value  # None for a missing key, and for an ignored failed node
            if data is not None:
                found[key] = decode(data)
        return found

    def set_many(self, data: Mapping[str, Any], timeout: float | None) -> list[str]:
        """Store every pair; returns the keys that could not be written (unavailable nodes)."""
        px = to_milliseconds(timeout)
        if px is not None and px <= 0:
            return self.delete_many(data)
        encoded = {key: self.encode(value) for key, value in data.items()}
        promises: dict[str, Any] = {}

        def queue(c: Any) -> None:
            # plain SETs become one MSET per node; with a timeout, one SET PX each (atomic,
            # unlike MSET + PEXPIRE)
            for key, value in encoded.items():
                promises[key] = c.set(key, value, px=px)

        self._round(queue, promises.values())
        return [key for key, promise in promises.items() if promise.is_rejected]

    def delete_many(self, keys: Iterable[str]) -> list[str]:
        """Delete every key; returns the keys that could not be reached."""
        promises: dict[str, Any] = {}

        def queue(c: Any) -> None:
            for key in keys:
                promises[key] = c.delete(key)

        self._round(queue, promises.values())
        return [key for key, promise in promises.items() if promise.is_rejected]

    def delete_found(self, found: Mapping[int, list[bytes]]) -> int:
        """Delete keys where SCAN found them (``{host_id: keys}``, which after a node was
        added is not always where they route now); how many were deleted."""
        promises: dict[int, Any] = {}

        def queue(c: Any) -> None:
            for host_id, keys in found.items():
                promises[host_id] = c.target([host_id]).delete(*keys)

        self._round(queue, promises.values(), mode="fanout", hosts=list(found))
        return sum(_per_host(p.value, h) for h, p in promises.items() if p.is_resolved)

    def clear(self) -> bool:
        """FLUSHDB (this cache's db) on every node; False if a node was unavailable."""
        promises: list[Any] = []
        self._round(lambda c: promises.append(c.flushdb()), promises, mode="all")
        return all(p.is_resolved for p in promises)

    def scan(self, pattern: str, count: int) -> Iterator[dict[int, list[bytes]]]:
        """SCAN every node in parallel; per round ``{host_id: matching keys}``, until all are done.

        Never KEYS: each node walks its keyspace in steps of about ``count``.
        """
        cursors: dict[int, int] = dict.fromkeys(self.cluster.hosts, 0)
        while cursors:
            promises = self._scan_round(cursors, pattern, count)
            batch: dict[int, list[bytes]] = {}
            for host_id, promise in promises.items():
                if not promise.is_resolved:  # an ignored, unavailable node: nothing from it
                    del cursors[host_id]
                    continue
                cursor, keys = _per_host(promise.value, host_id)
                if keys:
                    batch[host_id] = keys
                if int(cursor) == 0:
                    del cursors[host_id]
                else:
                    cursors[host_id] = int(cursor)
            if batch:
                yield batch

    def _scan_round(self, cursors: dict[int, int], pattern: str, count: int) -> dict[int, Any]:
        """One SCAN step on each unfinished node, all in one parallel round."""
        promises: dict[int, Any] = {}

        def queue(c: Any) -> None:
            for host_id, cursor in cursors.items():
                promises[host_id] = c.target([host_id]).scan(
                    cursor=cursor, match=pattern, count=count
                )

        self._round(queue, promises.values(), mode="fanout", hosts=list(cursors))
        return promises


def _remaining(value: int) -> int | None:
    if value == -1:
        return None
    return max(0, value)


def _per_host(value: Any, host_id: int) -> Any:
    """A fanout promise holds ``{host_id: result}``; take this host's result."""
    if isinstance(value, dict) and host_id in value:
        return value[host_id]
    return value
