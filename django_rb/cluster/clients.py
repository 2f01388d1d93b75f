"""Clients: the redis-py command surface, routed (RoutingClient), batched (MappingClient),
broadcast (FanoutClient) or pinned to one host (LocalClient). rb's names and semantics."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from redis import Redis
from redis.commands.core import Script
from redis.connection import Encoder
from redis.exceptions import NoScriptError

from .buffer import DELS, GETS, RECOVER, SETS, STATEFUL, CommandBuffer
from .direct import _REDIS_PY, DirectCommands
from .engine import RoundErrors, run_round
from .errors import NoTargetHosts, UnroutableCommand
from .keyspecs import fixed_key
from .promise import Promise
from .scripts import ClusterScript

if TYPE_CHECKING:
    from .cluster import Cluster

_QUICK_SET_OPTIONS = {"ex", "px", "nx", "xx", "keepttl"}


def _quick_set_words(key: bytes, value: bytes, given: dict[str, Any]) -> tuple | None:
    """SET's words for integer EX/PX and NX/XX/KEEPTTL flags; None for anything redis-py
    must check or convert itself (timedeltas, conflicting options)."""
    if ("ex" in given and "px" in given) or ("nx" in given and "xx" in given):
        return None
    words = [b"SET", key, value]
    for option, word in (("ex", b"EX"), ("px", b"PX")):
        if option in given:
            seconds = given[option]
            if type(seconds) is not int or seconds <= 0:
                return None
            words += (word, b"%d" % seconds)
    for option, word in (("nx", b"NX"), ("xx", b"XX"), ("keepttl", b"KEEPTTL")):
        if option in given:
            if given[option] is not True:
                return None
            words.append(word)
    return tuple(words)


class _ClusterClient:
    """What the cluster's clients share instead of redis-py's ``Redis.__init__`` (which builds
    a pool they never use and costs ~60 µs): the cluster's encoder and pool settings for the
    redis-py helpers that ask, and a clear refusal of what needs a dedicated connection."""

    _cluster: Cluster

    def _setup(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self.connection_pool = None
        self.response_callbacks = cluster.codec.callbacks

    def get_encoder(self) -> Encoder:
        """redis-py's encoder with the cluster's encoding settings (for Script, ACL helpers...)."""
        encoder = self._cluster.codec.encoder
        return Encoder(encoder.encoding, encoder.errors, self._cluster.codec.decode_responses)

    def get_connection_kwargs(self) -> dict[str, Any]:
        """The settings every host's pool is built with."""
        return dict(self._cluster.pool_options)

    def register_script(self, script: Any) -> ClusterScript:
        """A Lua script run as EVALSHA; a host that lacks it gets it loaded, in the same
        ``map()`` block (one more round for those calls only) or the same routing call."""
        return ClusterScript(cast(Redis, self), script)  # mixed into Redis subclasses only

    def __repr__(self) -> str:
        return f"<{type(self).__name__} hosts={sorted(self._cluster.hosts)}>"

    def __del__(self) -> None:  # Redis.__del__ would close a pool we do not own
        pass

    def close(self) -> None:
        """Nothing to close: connections belong to the cluster's pools."""

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        raise NotImplementedError(
            "Manual pipelines are not supported: cluster.map() pipelines per host for you; "
            "for MULTI/EXEC on one host use cluster.get_local_client_for_key(key).pipeline()."
        )

    def pubsub(self, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "Pub/sub needs a dedicated connection: use "
            "cluster.get_local_client_for_key(channel).pubsub()."
        )


class LocalClient(Redis):
    """A plain redis-py client on one host's pool: immediate results, every command allowed."""

    def __init__(self, connection_pool: Any = None, **kwargs: Any) -> None:
        if connection_pool is None:
            raise TypeError("A local client needs the connection pool of its host.")
        super().__init__(connection_pool=connection_pool, **kwargs)


class MappingClient(_ClusterClient, DirectCommands, Redis):  # type: ignore[misc]
    """Inside ``cluster.map()``: every command returns a Promise; nothing is sent until the block
    ends, then each host gets one pipeline, all hosts in parallel."""

    #: what ``execute_command`` refuses (``UnsafeCommand``): commands that would change a
    #: pooled connection for its next user; async clients refuse blocking ones too
    _refused: frozenset[str] = STATEFUL

    def __init__(
        self,
        cluster: Cluster,
        max_concurrency: int | None = None,
        auto_batch: bool = True,
        timeout: float | None = None,
    ) -> None:
        self._setup(cluster)
        self._codec = cluster.codec
        self._router = router = cluster.get_router()
        self._route = router.get_host_for_key
        self._encode = self._codec.encoder.encode
        self._plain_utf8 = self._codec.plain_utf8
        #: route on the encoded key when the router allows it (one encode serves both)
        self._route_bytes = router.get_host_for_encoded_key if self._plain_utf8 else None
        #: the direct methods' routing; None where a subclass routes commands its own way
        #: (e.g. by slot and replica on a Redis Cluster), which they then go through
        own_routing = type(self).execute_command is MappingClient.execute_command
        self._route_direct = self._route_bytes if own_routing else None
        self._max_concurrency = max_concurrency
        self.auto_batch = auto_batch
        self.timeout = timeout
        self._buffers: dict[int, CommandBuffer] = {}
        self._errors = RoundErrors()
        self._deadline: float | None = None  # set by the block's first round, shared by all

    # -- the generic path -------------------------------------------------------------------

    def execute_command(self, *args: Any, **options: Any) -> Promise:
        """Queue any keyed command on the host its keys live on."""
        route = self._route_bytes
        fixed = fixed_key(args[0])
        if route is not None and fixed is not None and len(args) in fixed[0]:
            # one key at a known place: route on its bytes, skip the router's general search
            key = args[fixed[1]]
            kind = type(key)
            if kind is str or kind is bytes:
                host_id = route(key.encode() if kind is str else key)
                buffer = self._buffers.get(host_id) or self._buffer(host_id)
                return buffer.enqueue(args, options, self._refused)
        host_id = self._router.get_host_for_command(args[0], args[1:])
        return self._buffer(host_id).enqueue(args, options, self._refused)

    def _buffer(self, host_id: int) -> CommandBuffer:
        buffer = self._buffers.get(host_id)
        if buffer is None:
            if self._max_concurrency is not None and len(self._buffers) >= self._max_concurrency:
                self._flush()
            if host_id not in self._cluster.hosts:
                raise UnroutableCommand(f"There is no host {host_id!r} in this cluster.")
            buffer = self._buffers[host_id] = CommandBuffer(host_id, self._codec, self.auto_batch)
        return buffer

    # -- hot paths: encode the key once, route on the bytes, join the host's tail run -------

    def _key_bytes(self, name: Any) -> bytes:
        if type(name) is str and self._plain_utf8:
            return name.encode()
        if type(name) is bytes:
            return name
        return self._encode(name)

    def _route_key(self, name: Any, data: bytes) -> int:
        route = self._route_bytes
        return route(data) if route is not None else self._route(name)

    def _keyed(self, name: str, head: bytes, key: Any, rest: tuple[Any, ...]) -> Promise:
        """The direct methods' path: ``head key *rest`` on the key's host, routed on its bytes."""
        route = self._route_direct
        kind = type(key)
        if route is None or (kind is not str and kind is not bytes):
            return self.execute_command(name, key, *rest)
        data = key.encode() if kind is str else key
        host_id = route(data)
        buffer = self._buffers.get(host_id) or self._buffer(host_id)
        promise = Promise()
        if len(rest) == 1:  # (a direct route implies plain utf-8, so str.encode() is right)
            arg = rest[0]
            words: tuple[bytes, ...] = (
                head, data, arg.encode() if type(arg) is str else self._encode(arg)
            )  # fmt: skip
        else:
            words = (head, data, *map(self._encode, rest))
        buffer.queue.append((name, words, None, promise))  # CommandBuffer.add_command, inlined
        buffer.tail_run = None
        return promise

    def hget(self, name: Any, key: Any) -> Promise:  # type: ignore[override]
        """HGET, the hottest read of hash-based apps (tsdb): ``_keyed`` inlined for str keys."""
        route = self._route_direct
        if route is None or type(name) is not str or type(key) is not str:
            return self._keyed("HGET", b"HGET", name, (key,))
        data = name.encode()
        host_id = route(data)
        buffer = self._buffers.get(host_id) or self._buffer(host_id)
        promise: Promise = Promise()
        buffer.queue.append(("HGET", (b"HGET", data, key.encode()), None, promise))
        buffer.tail_run = None
        return promise

    def _evalsha1(self, sha: Any, key: Any, args: tuple[Any, ...]) -> Promise:
        """EVALSHA of a one-key script on the key's host."""
        route = self._route_direct
        kind = type(key)
        if route is None or (kind is not str and kind is not bytes):
            return self.execute_command("EVALSHA", sha, 1, key, *args)
        data = key.encode() if kind is str else key
        host_id = route(data)
        buffer = self._buffers.get(host_id) or self._buffer(host_id)
        promise = Promise()
        encode = self._encode
        words = (b"EVALSHA", encode(sha), b"1", data, *map(encode, args))
        buffer.add_command("EVALSHA", words, None, promise)
        return promise

    def _add_to_run(self, kind: int, name: Any, data: bytes, args: tuple) -> Promise:
        host_id = self._route_key(name, data)
        buffer = self._buffers.get(host_id) or self._buffer(host_id)
        promise = Promise()
        buffer.add_to_run(kind, args, promise)
        return promise

    def get(self, name: Any) -> Promise:  # type: ignore[override]
        """GET, folded with its neighbours into one MGET per host."""
        route = self._route_bytes
        if route is not None and type(name) is str:  # the common case, kept short
            data = name.encode()
            host_id = route(data)
        else:
            data = self._key_bytes(name)
            host_id = self._route_key(name, data)
        buffer = self._buffers.get(host_id) or self._buffer(host_id)
        promise = Promise()
        run = buffer.tail_run
        if run is not None and run.kind == GETS:
            run.args.append(data)
            run.promises.append(promise)
        elif buffer.auto_batch:
            buffer.add_to_run(GETS, (data,), promise)
        else:  # unfolded: CommandBuffer.add_command, inlined
            buffer.queue.append(("GET", (b"GET", data), None, promise))
        return promise

    def set(self, name: Any, value: Any, *args: Any, **kwargs: Any) -> Promise:  # type: ignore[override]
        """SET; plain ones fold into one MSET per host, EX/PX/NX/XX/KEEPTTL skip redis-py's
        general path (which costs microseconds per key)."""
        given = {k: v for k, v in kwargs.items() if v is not None and v is not False}
        if not args and given.keys() <= _QUICK_SET_OPTIONS:
            data = self._key_bytes(name)
            if not given:
                return self._add_to_run(SETS, name, data, (data, self._encode(value)))
            words = _quick_set_words(data, self._encode(value), given)
            if words is not None:
                host_id = self._route_key(name, data)
                buffer = self._buffers.get(host_id) or self._buffer(host_id)
                promise = Promise()
                buffer.add_command("SET", words, None, promise)
                return promise
        return _REDIS_PY.set(self, name, value, *args, **kwargs)

    def delete(self, *names: Any) -> Promise:  # type: ignore[override]
        """DEL; keys on several hosts are split and their counts added up."""
        if len(names) == 1:
            data = self._key_bytes(names[0])
            return self._add_to_run(DELS, names[0], data, (data,))
        return self._split_count("DEL", names)

    def unlink(self, *names: Any) -> Promise:  # type: ignore[override]
        """UNLINK, split per host like delete()."""
        return self._split_count("UNLINK", names)

    def exists(self, *names: Any) -> Promise:  # type: ignore[override]
        """EXISTS over keys on any hosts: the number that exist."""
        return self._split_count("EXISTS", names)

    def touch(self, *names: Any) -> Promise:  # type: ignore[override]
        """TOUCH over keys on any hosts: the number that exist."""
        return self._split_count("TOUCH", names)

    def _split_count(self, command: str, names: Iterable[Any]) -> Promise:
        parts = [self.execute_command(command, name) for name in names]
        return Promise.all(parts).then(sum)

    def mget(self, keys: Any, *args: Any) -> Promise:  # type: ignore[override]
        """MGET across hosts: one GET per key (folded back into MGETs per host)."""
        if isinstance(keys, (str, bytes, int, float)) or not isinstance(keys, Iterable):
            names = [keys, *args]
        else:
            names = [*keys, *args]
        return Promise.all([self.get(name) for name in names])

    def mset(self, *args: Any, **kwargs: Any) -> Promise:  # type: ignore[override]
        """MSET across hosts (arguments as for ``dict()``): one SET per key, folded back into
        MSETs per host; resolves to None, as rb's did."""
        pairs = dict(*args, **kwargs)
        return Promise.all([self.set(k, v) for k, v in pairs.items()]).then(lambda _: None)

    def run_script(self, script: ClusterScript, keys: list[Any], args: list[Any]) -> Promise:
        """Queue a script on the host of its keys (see ``register_script``)."""
        host_id = script_host(self._router, script, keys, args)
        return self._queue_evalsha(host_id, script, (len(keys), *keys, *args))

    def _queue_evalsha(self, host_id: int, script: ClusterScript, words: tuple) -> Promise:
        """EVALSHA on one host; a NOSCRIPT reply queues EVAL with the body there instead.
        ``words`` (numkeys, keys, args) are encoded here, once for both."""
        encode = self._encode
        tail = tuple([w if type(w) is bytes else encode(w) for w in words])  # most are bytes

        def recover(error: Exception, promise: Promise) -> bool:
            if not isinstance(error, NoScriptError):
                return False
            retry: Promise = Promise()
            body = (b"EVAL", encode(script.script), *tail)
            self._buffer(host_id).add_command("EVAL", body, None, retry)
            retry.done(promise.resolve, promise.reject)
            return True

        promise: Promise = Promise()
        buffer = self._buffers.get(host_id) or self._buffer(host_id)
        buffer.add_command("EVALSHA", (b"EVALSHA", encode(script.sha), *tail), {RECOVER: recover},
                           promise)  # fmt: skip
        return promise

    def lock(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "A lock needs immediate replies: use cluster.get_routing_client().lock(name) "
            "or cluster.get_local_client_for_key(name).lock(name)."
        )

    # -- rounds -------------------------------------------------------------------------------

    def _flush(self, timeout: float | None = None) -> None:
        """Run rounds until nothing is queued (a callback may queue more while one settles);
        the timeout runs from the first round and bounds them all, early flushes included."""
        deadline = self._start_clock(timeout)
        cluster = self._cluster
        while self._buffers:
            buffers = list(self._buffers.values())
            self._buffers.clear()
            run_round(buffers, cluster.hosts, cluster.get_pool_for_host, None, self._errors,
                      deadline)  # fmt: skip

    def _start_clock(self, timeout: float | None) -> float | None:
        """The block's deadline: set when its first round starts, shared by all its rounds."""
        timeout = self.timeout if timeout is None else timeout
        if timeout is not None and self._deadline is None and self._buffers:
            self._deadline = time.monotonic() + timeout
        return self._deadline

    def join(self, timeout: float | None = None) -> None:
        """Send what is queued, wait for every reply (or the timeout), raise the first error."""
        self._flush(timeout)
        errors, self._errors = self._errors, RoundErrors()
        self._deadline = None  # a reused client's next join gets a clock of its own
        if errors.first is not None:
            raise errors.first

    def cancel(self) -> None:
        """Forget what is queued and not yet sent; those promises stay pending."""
        self._buffers.clear()
        self._deadline = None


class FanoutClient(MappingClient):
    """Inside ``cluster.fanout()`` / ``all()``: each command goes to every targeted host and
    returns a promise of ``{host_id: value}``."""

    # the mapping client's per-key shortcuts do not apply: every command is broadcast
    # (redis-py's methods, whose stubs promise plain results: hence the ignores)
    get = Redis.get  # type: ignore[assignment]
    set = Redis.set  # type: ignore[assignment]
    delete = Redis.delete  # type: ignore[assignment]
    unlink = Redis.unlink  # type: ignore[assignment]
    exists = Redis.exists  # type: ignore[assignment]
    touch = Redis.touch  # type: ignore[assignment]
    mget = Redis.mget  # type: ignore[assignment]
    mset = Redis.mset  # type: ignore[assignment]
    hget = DirectCommands.hget  # through _keyed, which broadcasts here

    def __init__(
        self,
        cluster: Cluster,
        hosts: Any = None,
        max_concurrency: int | None = None,
        auto_batch: bool = True,
        timeout: float | None = None,
    ) -> None:
        super().__init__(cluster, max_concurrency, auto_batch, timeout)
        self._target_hosts = hosts
        self._singular = False
        self._retargeted = False

    def target(self, hosts: Any) -> FanoutClient:
        """This client aimed at other hosts for the next calls (same round, same buffers)."""
        if self._retargeted:
            raise TypeError("Cannot use target more than once.")
        view = copy.copy(self)
        view._target_hosts = hosts
        view._retargeted = True
        view._singular = False
        return view

    def target_key(self, key: Any) -> FanoutClient:
        """Aimed at the host that holds ``key``; promises then hold that host's value alone."""
        view = self.target([self._router.get_host_for_key(key)])
        view._singular = True
        return view

    def _targets(self) -> list[int]:
        hosts = self._target_hosts
        if hosts == "all":
            return list(self._cluster.hosts)
        if hosts is None:
            raise NoTargetHosts(
                "This fanout client has no target hosts: pass hosts=[...] or 'all' to "
                "cluster.fanout(), or call client.target(hosts) / client.target_key(key)."
            )
        return list(hosts)

    def _keyed(self, name: str, head: bytes, key: Any, rest: tuple[Any, ...]) -> Promise:
        return self.execute_command(name, key, *rest)  # broadcast, like every fanout command

    def _evalsha1(self, sha: Any, key: Any, args: tuple[Any, ...]) -> Promise:
        return self.execute_command("EVALSHA", sha, 1, key, *args)

    def _checked_targets(self) -> list[int]:
        hosts = self._targets()
        unknown = [host_id for host_id in hosts if host_id not in self._cluster.hosts]
        if unknown:  # checked before anything is queued, so no host runs half a fanout
            raise UnroutableCommand(f"There is no host {unknown[0]!r} in this cluster.")
        return hosts

    def execute_command(self, *args: Any, **options: Any) -> Promise:
        """Queue the command on every target host."""
        hosts = self._checked_targets()
        if self._singular and len(hosts) == 1:
            return self._buffer(hosts[0]).enqueue(args, options, self._refused)
        refused = self._refused
        return Promise.all({h: self._buffer(h).enqueue(args, options, refused) for h in hosts})

    def run_script(self, script: ClusterScript, keys: list[Any], args: list[Any]) -> Promise:
        """Queue a script on every target host, loaded where a host lacks it."""
        hosts = self._checked_targets()
        words = (len(keys), *keys, *args)
        if self._singular and len(hosts) == 1:
            return self._queue_evalsha(hosts[0], script, words)
        return Promise.all({h: self._queue_evalsha(h, script, words) for h in hosts})


def script_host(router: Any, script: ClusterScript, keys: list[Any], args: list[Any]) -> Any:
    """The host a script call goes to: its one key's (the common call, and one slot on a
    Redis Cluster), else the one host (slot) all its keys share."""
    if len(keys) == 1:
        return router.get_host_for_key(keys[0])
    return router.get_host_for_command("EVALSHA", (script.sha, len(keys), *keys, *args))


C = TypeVar("C", bound=MappingClient)


class MapManager(Generic[C]):
    """The ``with cluster.map() as client:`` block: join on a clean exit, drop on an error."""

    def __init__(self, client: C, timeout: float | None = None) -> None:
        self.client = client
        if timeout is not None:  # one clock for every round of the block (see _flush)
            client.timeout = timeout

    def __enter__(self) -> C:
        return self.client

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.client.cancel()
            return
        self.client.join()


class RoutingClient(_ClusterClient, Redis):  # type: ignore[misc]
    """Immediate results, each command sent to the host its key lives on (thread safe)."""

    #: what ``get_mapping_client()`` / ``get_fanout_client()`` build (RedisCluster swaps them)
    mapping_client_class: type[MappingClient] = MappingClient
    fanout_client_class: type[FanoutClient] = FanoutClient

    def __init__(self, cluster: Cluster, auto_batch: bool = True) -> None:
        self._setup(cluster)  # commands run on the hosts' local clients
        self.auto_batch = auto_batch

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run one command on its key's host and return the reply."""
        host_id = self._cluster.get_router().get_host_for_command(args[0], args[1:])
        return self._cluster.get_local_client(host_id).execute_command(*args, **options)

    def run_script(self, script: ClusterScript, keys: list[Any], args: list[Any]) -> Any:
        """Run a script on the host of its keys; that host's client loads it on NOSCRIPT."""
        host_id = script_host(self._cluster.get_router(), script, keys, args)
        local = self._cluster.get_local_client(host_id)
        return Script.__call__(script, keys, args, local)

    def lock(self, name: Any, *args: Any, **kwargs: Any) -> Any:
        """A redis-py Lock on the host that holds ``name``."""
        return self._cluster.get_local_client_for_key(name).lock(name, *args, **kwargs)

    def get_mapping_client(
        self, max_concurrency: int = 64, auto_batch: bool | None = None
    ) -> MappingClient:
        """A promise-returning client; prefer ``map()``, which joins for you."""
        batch = self.auto_batch if auto_batch is None else auto_batch
        return self.mapping_client_class(self._cluster, max_concurrency, batch)

    def get_fanout_client(
        self, hosts: Any, max_concurrency: int = 64, auto_batch: bool | None = None
    ) -> FanoutClient:
        """A broadcasting client; prefer ``fanout()``, which joins for you."""
        batch = self.auto_batch if auto_batch is None else auto_batch
        return self.fanout_client_class(self._cluster, hosts, max_concurrency, batch)

    def map(
        self,
        timeout: float | None = None,
        max_concurrency: int = 64,
        auto_batch: bool | None = None,
    ) -> MapManager[MappingClient]:
        """``with routing_client.map() as c:`` — see Cluster.map."""
        return MapManager(self.get_mapping_client(max_concurrency, auto_batch), timeout)

    def fanout(self, hosts: Any = None, timeout: float | None = None, max_concurrency: int = 64,
               auto_batch: bool | None = None) -> MapManager[FanoutClient]:  # fmt: skip
        """``with routing_client.fanout(hosts) as c:`` — see Cluster.fanout."""
        return MapManager(self.get_fanout_client(hosts, max_concurrency, auto_batch), timeout)
