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
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any, NoReturn

import redis
from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from django_rb.cluster.scripts import ClusterScript

from . import limits
from .compressors import Compressor
from .serializers import Serializer
from .signing import BadSignature, Signer

logger = logging.getLogger("django_rb.cache")

#: Errors that mean "this node is unavailable"; the only ones IGNORE_EXCEPTIONS swallows.
NODE_ERRORS = (RedisConnectionError, RedisTimeoutError)

#: First byte of every non-integer value: serialized as is, or serialized then compressed.
#: Integers are stored as their digits (so INCR works) and can never start with either.
PLAIN = b"\x00"
COMPRESSED = b"\x01"

#: INCRBY only if the key exists, in one step on the node (Django: missing key -> ValueError).
INCR_IF_EXISTS = ClusterScript(
    None,  # type: ignore[arg-type]  (a bytes script needs no client to compute its sha)
    # the new value is returned as GET's string: a Lua number is a double, exact only to 2**53
    b"if redis.call('EXISTS', KEYS[1]) == 1 then "
    b"redis.call('INCRBY', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1]) end "
    b"return false",
)

#: PERSIST, answering whether the key exists (PERSIST alone says 0 for a key without expiry).
PERSIST_IF_EXISTS = ClusterScript(
    None,  # type: ignore[arg-type]
    b"redis.call('PERSIST', KEYS[1]) return redis.call('EXISTS', KEYS[1])",
)

#: What a read makes of a value that fails its signature check: not there.
MISS = object()

#: A get_many of this many keys or fewer, all on one node, skips the parallel round.
FEW_KEYS = 2

_last_logged: dict[Any, float] = {}
_log_lock = threading.Lock()


class KeyPlan:
    """One cache operation on one key: the command(s) to run on its node, and how to read
    the reply. The sync and async methods share it; only the engine call differs."""

    __slots__ = ("key", "default", "call", "read", "on_default", "on_refusal")

    def __init__(self, key: str, default: Any, call: Callable[[Any], Any],
                 read: Callable[[Any], Any], on_default: Callable[[Any], Any] | None = None,
                 on_refusal: Callable[[redis.ResponseError], BaseException] | None = None,
                 ) -> None:  # fmt: skip
        self.key = key
        #: the result when the node is unavailable and IGNORE_EXCEPTIONS is on
        self.default = default
        #: ``call(client)`` runs the command on a local client (sync or async) of the node
        self.call = call
        self.read = read
        #: applied to ``default`` instead of returning it as is (e.g. to raise)
        self.on_default = on_default
        #: the exception to raise for the node's error reply (the reply's own by default)
        self.on_refusal = on_refusal


class RoundPlan:
    """A cache operation over many keys: what to queue in one parallel round, then how to
    read the settled promises; ``mode`` is the round's kind (map, fanout, all)."""

    __slots__ = ("queue", "promises", "read", "mode", "options")

    def __init__(self, queue: Callable[[Any], None], promises: Callable[[], Iterable[Any]],
                 read: Callable[[], Any], mode: str = "map", **options: Any) -> None:  # fmt: skip
        self.queue = queue
        self.promises = promises
        self.read = read
        self.mode = mode
        self.options = options


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
        signer: Signer | None = None,
    ) -> None:
        self._get_cluster = get_cluster
        self.serializer = serializer
        self.compressor = compressor
        self.compress_min_length = compress_min_length
        self.ignore_exceptions = ignore_exceptions
        self.log_ignored_exceptions = log_ignored_exceptions
        self.signer = signer

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
        return limits.checked_size(self.encode_member(value))

    def encode_member(self, value: Any) -> bytes:
        """Always serialized, even an int (django-redis's sorted-set members are); signed
        when the cache has a SIGNING_KEY."""
        tag, data = PLAIN, self.serializer.dumps(value)
        if self.compressor is not None and len(data) > self.compress_min_length:
            packed = self.compressor.compress(data)
            if len(packed) < len(data):  # a compressor may hand back its input unchanged
                tag, data = COMPRESSED, packed
        if self.signer is not None:
            return self.signer.sign(tag, data)
        return tag + data

    def decode_found(self, data: bytes) -> Any:
        """``decode`` for a read: a value with a bad signature is a miss (``MISS``), logged."""
        try:
            return self.decode(data)
        except BadSignature as exc:
            logger.warning("Cache value ignored (read as a miss): %s", exc)
            return MISS

    def decode(self, data: bytes) -> Any:
        tag = data[:1]
        if self.signer is not None and tag in (PLAIN, COMPRESSED):
            data = tag + self.signer.verify(tag, data[1:])  # before any unpickling
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

    # -- running plans: the only place that differs between the sync and async methods ------

    def _run_key(self, plan: KeyPlan) -> Any:
        """Run a one-key plan on a client of its node; a node error gives its default if ignored."""
        try:
            reply = plan.call(self.cluster.get_local_client_for_key(plan.key))
        except NODE_ERRORS as exc:
            return self._key_node_failed(plan, exc)
        except redis.ResponseError as exc:
            _refused(plan, exc)
        return plan.read(reply)

    async def _arun_key(self, plan: KeyPlan) -> Any:
        """``_run_key`` on the asyncio engine (the plan's call returns an awaitable there)."""
        try:
            reply = await plan.call(self.cluster.get_async_local_client_for_key(plan.key))
        except NODE_ERRORS as exc:
            return self._key_node_failed(plan, exc)
        except redis.ResponseError as exc:
            _refused(plan, exc)
        return plan.read(reply)

    def run_key(self, plan: KeyPlan) -> Any:
        """Run a one-key plan built outside this class (the backend's extra helpers)."""
        return self._run_key(plan)

    async def arun_key(self, plan: KeyPlan) -> Any:
        """``run_key`` on the asyncio engine."""
        return await self._arun_key(plan)

    def hosts_of(self, keys: Iterable[str]) -> list[int]:
        """The node each key routes to (and, on a Redis Cluster, its slot: keys of several
        slots cannot share a multi-key command even on one node)."""
        router = self.cluster.get_router()
        route = getattr(router, "get_batch_for_key", None) or router.get_host_for_key
        return [route(key) for key in keys]

    def _key_node_failed(self, plan: KeyPlan, exc: BaseException) -> Any:
        host_id = getattr(exc, "host_id", None)
        if host_id is None:
            host_id = self.cluster.get_router().get_host_for_key(plan.key)
        self._ignore(exc, host_id)
        if plan.on_default is not None:
            return plan.on_default(plan.default)
        return plan.default

    def _run(self, plan: RoundPlan) -> Any:
        """Run a many-key plan as one parallel round (``map()``, ``fanout()`` or ``all()``)."""
        try:
            with getattr(self.cluster, plan.mode)(**plan.options) as c:
                plan.queue(c)
        except Exception as exc:
            self._round_failed(plan, exc)
        return plan.read()

    async def _arun(self, plan: RoundPlan) -> Any:
        """``_run`` on the asyncio engine (``amap()``, ``afanout()`` or ``aall()``)."""
        try:
            async with getattr(self.cluster, "a" + plan.mode)(**plan.options) as c:
                plan.queue(c)
        except Exception as exc:
            self._round_failed(plan, exc)
        return plan.read()

    def _round_failed(self, plan: RoundPlan, exc: Exception) -> None:
        """The core raised the first error once every promise settled. Node errors may be
        ignored; then any other rejection (a command error elsewhere) is still raised."""
        self._ignore(exc)
        # ignored: look at every rejection (once per node), since another may not be
        seen: set[Any] = set()
        for promise in plan.promises():
            if promise.is_rejected:
                reason = promise.reason
                host_id = getattr(reason, "host_id", None)
                if host_id not in seen or not isinstance(reason, NODE_ERRORS):
                    seen.add(host_id)
                    self._ignore(reason)

    # -- one key: plans --------------------------------------------------------------------

    def get_plan(self, key: str, default: Any) -> KeyPlan:
        def read(data: Any) -> Any:
            value = MISS if data is None else self.decode_found(data)
            return default if value is MISS else value

        return KeyPlan(key, default, lambda client: client.get(key), read)

    def set_plan(self, key: str, value: Any, timeout: float | None) -> KeyPlan:
        """Store; a timeout <= 0 deletes instead. False only when the node was unavailable."""
        data = self.encode(value)  # before any I/O: an unpicklable value raises either way
        px = to_milliseconds(timeout)
        if px is not None and px <= 0:
            return KeyPlan(key, False, lambda client: client.delete(key), lambda n: n >= 0)
        return KeyPlan(key, False, lambda client: client.set(key, data, px=px), bool)

    def replace_plan(self, key: str, value: Any, timeout: float | None) -> KeyPlan:
        """SET XX (django-redis's ``set(xx=True)``): only over an existing key; True if
        stored. With a timeout <= 0 the key is deleted (True if it was there)."""
        data = self.encode(value)
        px = to_milliseconds(timeout)
        if px is not None and px <= 0:
            return KeyPlan(key, False, lambda client: client.delete(key), bool)
        return KeyPlan(key, False, lambda client: client.set(key, data, px=px, xx=True), bool)

    def add_plan(self, key: str, value: Any, timeout: float | None) -> KeyPlan:
        """SET NX. With a timeout <= 0 nothing is stored; True if the key was free."""
        data = self.encode(value)
        px = to_milliseconds(timeout)
        if px is not None and px <= 0:
            return KeyPlan(key, False, lambda client: client.exists(key), lambda n: not n)
        return KeyPlan(key, False, lambda client: client.set(key, data, px=px, nx=True), bool)

    def touch_plan(self, key: str, timeout: float | None) -> KeyPlan:
        """New expiry (None = never); True if the key exists."""
        if timeout is None:
            # PERSIST answers 0 for a key without expiry too: the script says if it is there
            return KeyPlan(
                key, False, lambda client: PERSIST_IF_EXISTS(keys=[key], client=client), bool
            )
        px = max(0, to_milliseconds(timeout))  # type: ignore[type-var]
        return self.expire_plan(key, px / 1000)

    def delete_plan(self, key: str) -> KeyPlan:
        return KeyPlan(key, False, lambda client: client.delete(key), bool)

    def has_key_plan(self, key: str) -> KeyPlan:
        return KeyPlan(key, False, lambda client: client.exists(key), bool)

    def incr_plan(self, key: str, delta: int, name: str = "", must_exist: bool = True) -> KeyPlan:
        """Atomic INCRBY of an existing key on its node; ValueError if missing (or unreachable).

        ``must_exist=False`` (django-redis's ``ignore_key_check``): a plain INCRBY, which
        starts a missing key from 0.
        """

        def read(value: Any) -> int:
            if value is None:
                raise ValueError(f"Key '{name or key}' not found.")
            return int(value)

        def call(client: Any) -> Any:
            if not must_exist:
                return client.incrby(key, delta)
            return INCR_IF_EXISTS(keys=[key], args=[delta], client=client)

        def refusal(exc: redis.ResponseError) -> BaseException:
            words = _SCRIPT_TAIL.sub("", str(exc))
            if "integer" not in words and "overflow" not in words:
                return exc  # another refusal (out of memory, ...): Redis's words as they are
            return NotAnInteger(f"Cannot incr or decr key '{name or key}' by {delta}: {words}.")

        return KeyPlan(key, None, call, read, on_default=read, on_refusal=refusal)

    def ttl_plan(self, key: str) -> KeyPlan:
        """django-redis's answer: seconds left, None for no expiry, 0 for a missing key."""
        return KeyPlan(key, 0, lambda client: client.ttl(key), _remaining)

    def pttl_plan(self, key: str) -> KeyPlan:
        """Like ``ttl`` in milliseconds."""
        return KeyPlan(key, 0, lambda client: client.pttl(key), _remaining)

    def expire_plan(self, key: str, timeout: float) -> KeyPlan:
        px = max(0, int(timeout * 1000))
        return KeyPlan(key, False, lambda client: client.pexpire(key, px), bool)

    def pexpire_plan(self, key: str, milliseconds: int) -> KeyPlan:
        """A new timeout in ms; True if the key exists."""
        return KeyPlan(key, False, lambda client: client.pexpire(key, milliseconds), bool)

    def expire_at_plan(self, key: str, when: Any, milliseconds: bool = False) -> KeyPlan:
        """Expire at ``when`` (a datetime, or unix time in s, or in ms with ``milliseconds``)."""
        if milliseconds:
            return KeyPlan(key, False, lambda client: client.pexpireat(key, when), bool)
        return KeyPlan(key, False, lambda client: client.expireat(key, when), bool)

    def persist_plan(self, key: str) -> KeyPlan:
        return KeyPlan(key, False, lambda client: client.persist(key), bool)

    def lock(self, key: str, **kwargs: Any) -> Any:
        """A redis-py Lock at ``key`` on its node (no I/O until acquired)."""
        return self.cluster.get_local_client_for_key(key).lock(key, **kwargs)

    # -- many keys: one parallel round each -----------------------------------------------

    def get_many_plan(self, keys: Iterable[str]) -> RoundPlan:
        """Values of the keys found; keys on an ignored, unavailable node are simply absent."""
        promises: dict[str, Any] = {}

        def queue(c: Any) -> None:
            get = c.get
            for key in keys:
                promises[key] = get(key)

        def read() -> dict[str, Any]:
            decode = self.decode_found
            # an unsigned plain value is what decode() would unpickle: one call, not three
            loads = self.serializer.loads if self.signer is None else None
            found = {}
            for key, promise in promises.items():
                data = promise.value  # None for a missing key, and for an ignored failed node
                if data is not None:
                    if loads is not None and data[:1] == PLAIN:
                        found[key] = loads(data[1:])
                        continue
                    value = decode(data)
                    if value is not MISS:
                        found[key] = value
            return found

        return RoundPlan(queue, promises.values, read)

    def set_many_plan(self, data: Mapping[str, Any], timeout: float | None) -> RoundPlan:
        """Store every pair; reads as the keys that could not be written (unavailable nodes)."""
        px = to_milliseconds(timeout)
        if px is not None and px <= 0:
            return self.delete_many_plan(data)
        encoded = {key: self.encode(value) for key, value in data.items()}
        promises: dict[str, Any] = {}

        def queue(c: Any) -> None:
            # plain SETs become one MSET per node; with a timeout, one SET PX each (atomic,
            # unlike MSET + PEXPIRE)
            for key, value in encoded.items():
                promises[key] = c.set(key, value, px=px)

        return RoundPlan(queue, promises.values, lambda: _rejected_keys(promises))

    def delete_many_plan(self, keys: Iterable[str]) -> RoundPlan:
        """Delete every key; reads as the keys that could not be reached."""
        promises: dict[str, Any] = {}

        def queue(c: Any) -> None:
            for key in keys:
                promises[key] = c.delete(key)

        return RoundPlan(queue, promises.values, lambda: _rejected_keys(promises))

    def clear_plan(self) -> RoundPlan:
        """FLUSHDB (this cache's db) on every node; False if a node was unavailable."""
        promises: list[Any] = []
        return RoundPlan(
            lambda c: promises.append(c.flushdb()),
            lambda: promises,
            lambda: all(p.is_resolved for p in promises),
            mode="all",
        )

    # -- the operations: each runs its plan, on the selector engine or on asyncio -------------

    def get(self, key: str, default: Any) -> Any:
        return self._run_key(self.get_plan(key, default))

    async def aget(self, key: str, default: Any) -> Any:
        return await self._arun_key(self.get_plan(key, default))

    def set(self, key: str, value: Any, timeout: float | None) -> bool:
        return self._run_key(self.set_plan(key, value, timeout))

    async def aset(self, key: str, value: Any, timeout: float | None) -> bool:
        return await self._arun_key(await abuild(self.set_plan, key, value, timeout))

    def add(self, key: str, value: Any, timeout: float | None) -> bool:
        return self._run_key(self.add_plan(key, value, timeout))

    async def aadd(self, key: str, value: Any, timeout: float | None) -> bool:
        return await self._arun_key(await abuild(self.add_plan, key, value, timeout))

    def touch(self, key: str, timeout: float | None) -> bool:
        return self._run_key(self.touch_plan(key, timeout))

    async def atouch(self, key: str, timeout: float | None) -> bool:
        return await self._arun_key(self.touch_plan(key, timeout))

    def delete(self, key: str) -> bool:
        return self._run_key(self.delete_plan(key))

    async def adelete(self, key: str) -> bool:
        return await self._arun_key(self.delete_plan(key))

    def has_key(self, key: str) -> bool:
        return self._run_key(self.has_key_plan(key))

    async def ahas_key(self, key: str) -> bool:
        return await self._arun_key(self.has_key_plan(key))

    def incr(self, key: str, delta: int, name: str = "", must_exist: bool = True) -> int:
        return self._run_key(self.incr_plan(key, delta, name, must_exist))

    async def aincr(self, key: str, delta: int, name: str = "", must_exist: bool = True) -> int:
        return await self._arun_key(self.incr_plan(key, delta, name, must_exist))

    def ttl(self, key: str) -> int | None:
        return self._run_key(self.ttl_plan(key))

    async def attl(self, key: str) -> int | None:
        return await self._arun_key(self.ttl_plan(key))

    def pttl(self, key: str) -> int | None:
        return self._run_key(self.pttl_plan(key))

    async def apttl(self, key: str) -> int | None:
        return await self._arun_key(self.pttl_plan(key))

    def expire(self, key: str, timeout: float) -> bool:
        return self._run_key(self.expire_plan(key, timeout))

    async def aexpire(self, key: str, timeout: float) -> bool:
        return await self._arun_key(self.expire_plan(key, timeout))

    def persist(self, key: str) -> bool:
        return self._run_key(self.persist_plan(key))

    async def apersist(self, key: str) -> bool:
        return await self._arun_key(self.persist_plan(key))

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        few = self.few_keys_plan(keys)
        if few is not None:
            return self._run_key(few)
        return self._run(self.get_many_plan(keys))

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        few = self.few_keys_plan(keys)
        if few is not None:
            return await self._arun_key(few)
        return await self._arun(self.get_many_plan(keys))

    def few_keys_plan(self, keys: Iterable[str]) -> KeyPlan | None:
        """For a get_many of up to ``FEW_KEYS`` keys on one node: one MGET on that node's
        connection, without setting up a parallel round; None for anything else."""
        if not isinstance(keys, list | tuple | dict) or not 0 < len(keys) <= FEW_KEYS:
            return None
        names = list(keys)
        if len(set(self.hosts_of(names))) != 1:
            return None
        decode = self.decode_found

        def read(values: Any) -> dict[str, Any]:
            found = {k: decode(v) for k, v in zip(names, values, strict=True) if v is not None}
            return {k: v for k, v in found.items() if v is not MISS}

        return KeyPlan(names[0], {}, lambda client: client.mget(names), read)

    def set_many(self, data: Mapping[str, Any], timeout: float | None) -> list[str]:
        return self._run(self.set_many_plan(data, timeout))

    async def aset_many(self, data: Mapping[str, Any], timeout: float | None) -> list[str]:
        return await self._arun(await abuild(self.set_many_plan, data, timeout))

    def delete_many(self, keys: Iterable[str]) -> list[str]:
        return self._run(self.delete_many_plan(keys))

    async def adelete_many(self, keys: Iterable[str]) -> list[str]:
        return await self._arun(self.delete_many_plan(keys))

    def clear(self) -> bool:
        return self._run(self.clear_plan())

    async def aclear(self) -> bool:
        return await self._arun(self.clear_plan())

    def delete_found_plan(self, found: Mapping[int, list[bytes]]) -> RoundPlan:
        """Delete keys where SCAN found them (``{host_id: keys}``, which after a node was
        added is not always where they route now): one DEL per node, or per slot on a Redis
        Cluster; reads as how many were deleted."""
        promises: list[tuple[int, Any]] = []
        # on a Redis Cluster one DEL may name keys of one slot only
        slot_of = getattr(self.cluster.get_router(), "get_batch_for_key", None)

        def queue(c: Any) -> None:
            for host_id, keys in found.items():
                groups: Iterable[list[bytes]] = [keys]
                if slot_of is not None:
                    by_slot: dict[Any, list[bytes]] = {}
                    for key in keys:
                        by_slot.setdefault(slot_of(key)[1], []).append(key)
                    groups = by_slot.values()
                for group in groups:
                    promises.append((host_id, c.target([host_id]).delete(*group)))

        def sent() -> list[Any]:
            return [promise for _, promise in promises]

        def read() -> int:
            return sum(_per_host(p.value, h) for h, p in promises if p.is_resolved)

        return RoundPlan(queue, sent, read, "fanout", hosts=list(found))

    def delete_found(self, found: Mapping[int, list[bytes]]) -> int:
        return self._run(self.delete_found_plan(found))

    async def adelete_found(self, found: Mapping[int, list[bytes]]) -> int:
        return await self._arun(self.delete_found_plan(found))

    def scan(self, pattern: str, count: int) -> Iterator[dict[int, list[bytes]]]:
        """SCAN every node in parallel; per round ``{host_id: matching keys}``, until all are done.

        Never KEYS: each node walks its keyspace in steps of about ``count``.
        """
        walk = ScanWalk(self.cluster.hosts, pattern, count)
        while walk.cursors:
            batch = self._run(walk.step_plan())
            if batch:
                yield batch

    async def ascan(self, pattern: str, count: int) -> AsyncIterator[dict[int, list[bytes]]]:
        """``scan`` on the asyncio engine: the same steps, each round awaited."""
        walk = ScanWalk(self.cluster.hosts, pattern, count)
        while walk.cursors:
            batch = await self._arun(walk.step_plan())
            if batch:
                yield batch


class ScanWalk:
    """Where a SCAN of every node stands (a cursor per unfinished node), as rounds to run:
    ``scan`` and ``ascan`` run the same plans, only the engine call differs."""

    def __init__(self, host_ids: Iterable[int], pattern: str, count: int) -> None:
        self.cursors: dict[int, int] = dict.fromkeys(host_ids, 0)
        self.pattern = pattern
        self.count = count

    def step_plan(self) -> RoundPlan:
        """One SCAN step on each unfinished node, all in one parallel round; it reads as
        ``{host_id: matching keys}`` and moves the cursors on (a finished node drops out, and
        so does an unavailable one whose error was ignored: nothing more from it)."""
        cursors = self.cursors
        promises: dict[int, Any] = {}

        def queue(c: Any) -> None:
            for host_id, cursor in cursors.items():
                promises[host_id] = c.target([host_id]).scan(
                    cursor=cursor, match=self.pattern, count=self.count
                )

        def read() -> dict[int, list[bytes]]:
            batch: dict[int, list[bytes]] = {}
            for host_id, promise in promises.items():
                if not promise.is_resolved:
                    del cursors[host_id]
                    continue
                cursor, keys = _per_host(promise.value, host_id)
                if keys:
                    batch[host_id] = keys
                if int(cursor) == 0:
                    del cursors[host_id]
                else:
                    cursors[host_id] = int(cursor)
            return batch

        return RoundPlan(queue, promises.values, read, "fanout", hosts=list(cursors))


def _refused(plan: KeyPlan, exc: redis.ResponseError) -> NoReturn:
    """Raise what the plan makes of the node's error reply."""
    error = plan.on_refusal(exc) if plan.on_refusal is not None else exc
    if error is exc:
        raise exc
    raise error from None


async def abuild(build: Callable[..., Any], *args: Any) -> Any:
    """Build a plan in the async caller; a value that needs sync-only work to serialize
    (a lazy queryset reads the database when pickled) is built in a thread, as Django would."""
    try:
        return build(*args)
    except SynchronousOnlyOperation:
        return await sync_to_async(build, thread_sensitive=True)(*args)


def _rejected_keys(promises: Mapping[str, Any]) -> list[str]:
    return [key for key, promise in promises.items() if promise.is_rejected]


def _remaining(value: int) -> int | None:
    if value == -1:
        return None
    return max(0, value)


def _per_host(value: Any, host_id: int) -> Any:
    """A fanout promise holds ``{host_id: result}``; take this host's result."""
    if isinstance(value, dict) and host_id in value:
        return value[host_id]
    return value
