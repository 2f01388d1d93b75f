"""The map() / fanout() / routing clients on a Redis Cluster.

They are the rb-style clients with three changes: keys are routed by slot, GET / SET / DEL runs
fold only within one slot (the server refuses an MGET across slots, even on one node), and each
block's rounds follow redirects (``redirects.follow_redirects``). Same buffers, same engine.
"""

from __future__ import annotations

from binascii import crc_hqx
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .buffer import _SINGLE_NAMES, _SINGLE_WORDS, BATCHABLE, GETS, Codec, CommandBuffer, Run
from .clients import FanoutClient, MappingClient, RoutingClient
from .engine import RoundErrors, run_round
from .errors import HostError, UnroutableCommand
from .promise import Promise
from .redirects import ASK, MOVED, ClusterRedirectError, Redirect, Redirects, follow_redirects
from .slots import OPEN_BRACE, SLOT_MASK, key_slot

if TYPE_CHECKING:
    from .rediscluster import RedisCluster

#: how many encoded arguments each folded command of a Run takes
_RUN_WIDTH = {kind: width for kind, width in BATCHABLE.values()}


class SlotBuffer(CommandBuffer):
    """A master's (or replica's) buffer: runs never mix slots; redirected commands are handed
    to the block's ``Redirects`` instead of rejecting their promises."""

    __slots__ = ("tail_slot", "redirects", "single", "single_slot")

    def __init__(self, host_id: Any, codec: Codec, auto_batch: bool, redirects: Redirects) -> None:
        super().__init__(host_id, codec, auto_batch)
        self.tail_slot = -1
        self.redirects = redirects
        #: the last plain GET / SET / DEL queued and its slot: while it ends the queue, a
        #: neighbour of the same slot turns it into a Run (most neighbours are of other slots:
        #: no Run is built). Two attributes, not a tuple: one fewer object per command.
        self.single: Any = None
        self.single_slot = -1

    def add_to_run(self, kind: int, args: tuple | list, promise: Promise) -> None:
        """As the base's, but a foldable command is queued plain until a second one of the
        same slot follows it: plain entries cost less to queue and to settle than runs of one."""
        run = self.tail_run
        if run is not None and run.kind == kind:
            run.args.extend(args)
            run.promises.append(promise)
            return
        if not self.auto_batch:
            super().add_to_run(kind, args, promise)
            return
        queue = self.queue
        name = _SINGLE_NAMES[kind]
        first = self.single
        if (
            self.single_slot == self.tail_slot and queue and queue[-1] is first and first[0] == name
        ):  # a second one of this slot: the two become a Run
            run = self.tail_run = queue[-1] = Run(kind, [*first[1][1:], *args], first[3])
            run.promises.append(promise)
            self.single = None
            return
        entry = self.single = (name, (_SINGLE_WORDS[kind], *args), None, promise)
        queue.append(entry)
        self.tail_run = None
        self.single_slot = self.tail_slot

    def take_over(self, error: BaseException, entry: Any, sent: bool) -> bool:
        """Redirects and retryable failures go to the next round."""
        return self.redirects.take(error, entry, sent)

    def for_slot(self, slot: int) -> SlotBuffer:
        """This buffer, ready for a command on ``slot`` (a run of another slot is closed)."""
        if slot != self.tail_slot:
            self.tail_run = None
            self.tail_slot = slot
        return self

    def requeue(self, entry: Any, slot: int) -> None:
        """Queue a handed-back entry again, exactly as it was encoded."""
        self.for_slot(slot)
        if type(entry) is Run:
            width = _RUN_WIDTH[entry.kind]
            for i, promise in enumerate(entry.promises):
                self.add_to_run(entry.kind, entry.args[i * width : (i + 1) * width], promise)
        else:
            self.add_command(*entry)


class _SlotRounds:
    """What map() and fanout() share on a Redis Cluster: slot buffers, redirect rounds."""

    _cluster: Any  # the RedisCluster (typed loosely: the rb-style clients declare a Cluster)
    _codec: Codec
    _buffers: dict[Any, CommandBuffer]
    _errors: RoundErrors
    _max_concurrency: int | None
    _start_clock: Any  # MappingClient's: the block's deadline, set by its first round
    auto_batch: bool
    timeout: float | None

    def _start_rounds(self) -> None:
        self._redirects = Redirects(self._errors, self._cluster.slot_of_entry)
        #: the slot owners the block's GETs are routed by (a SlotMap is immutable; a round's
        #: MOVED or refresh makes a new one, so this is dropped after every round)
        self._owners: tuple[str, ...] | None = None

    def _new_buffer(self, host_id: str) -> SlotBuffer:
        buffer = SlotBuffer(host_id, self._codec, self.auto_batch, self._redirects)
        if host_id not in self._cluster.hosts:  # a replica: reads need READONLY first
            buffer.add_command("READONLY", (b"READONLY",), None, Promise())
        return buffer

    def _buffer(self, host_id: Any) -> CommandBuffer:
        buffer = self._buffers.get(host_id)
        if buffer is None:
            if self._max_concurrency is not None and len(self._buffers) >= self._max_concurrency:
                self._flush()
            if host_id not in self._cluster.nodes:
                raise UnroutableCommand(f"There is no node {host_id!r} in this Redis Cluster.")
            buffer = self._buffers[host_id] = self._new_buffer(host_id)
        return buffer

    def _flush(self, timeout: float | None = None) -> None:
        """Run rounds until nothing is queued, each followed by its redirect rounds; one
        deadline (from the first round) bounds them all, slot-map refreshes included."""
        deadline = self._start_clock(timeout)
        cluster, redirects = self._cluster, self._redirects
        redirects.errors = self._errors

        def run(buffers: Sequence[CommandBuffer]) -> None:
            round_errors = RoundErrors()
            run_round(buffers, cluster.nodes, cluster.get_pool_for_host, None, round_errors,
                      deadline)  # fmt: skip
            self._keep_errors(round_errors)

        def refresh() -> None:
            try:
                cluster.refresh_slots(deadline, redirects.failed_hosts)
            except HostError:
                pass  # no node answered in time: the old map stands, re-sent commands fail alone

        while self._buffers:
            buffers = list(self._buffers.values())
            self._buffers.clear()
            follow_redirects(buffers, run, redirects, self._reroute, refresh)
        self._owners = None

    def _keep_errors(self, round_errors: RoundErrors) -> None:
        """A round's errors, but those of failures whose commands all moved on (the re-sent
        commands settle on their own, and their errors are kept then)."""
        for error in round_errors.errors:
            if self._redirects.keep_error(error):
                self._errors.add(error)

    def _reroute(self, batch: list[Redirect]) -> list[SlotBuffer]:
        """Queue handed-back commands where the cluster now says their slot lives."""
        cluster = self._cluster
        buffers: dict[str, SlotBuffer] = {}
        for redirect in batch:
            slot = redirect.slot
            assert slot is not None  # Redirects only keeps commands whose slot is known
            if redirect.target is not None:
                target = cluster.learn_node(*redirect.target)
                if redirect.how == MOVED:
                    cluster.note_moved(slot, target)
            else:
                target = cluster.slot_map.owners[slot]
            if not target:
                error = ClusterRedirectError(f"slot {slot} is served by no master (CLUSTERDOWN)")
                redirects = self._redirects
                redirects._reject(redirect.entry, error)
                continue
            buffer = buffers.get(target)
            if buffer is None:
                buffer = buffers[target] = SlotBuffer(
                    target, self._codec, self.auto_batch, self._redirects
                )
            if redirect.how == ASK:  # the next command on this connection may use the slot
                buffer.add_command("ASKING", (b"ASKING",), None, Promise())
            buffer.requeue(redirect.entry, slot)
        return list(buffers.values())


class SlotMappingClient(_SlotRounds, MappingClient):  # type: ignore[misc]
    """``RedisCluster.map()``'s client: promises, one pipeline per node, redirects followed."""

    def __init__(
        self,
        cluster: RedisCluster,
        max_concurrency: int | None = None,
        auto_batch: bool = True,
        timeout: float | None = None,
    ) -> None:
        super().__init__(cluster, max_concurrency, auto_batch, timeout)
        self._start_rounds()
        self._replicas = cluster.read_from_replicas

    def _slot_buffer(self, slot: int, readonly: bool) -> SlotBuffer:
        cluster = self._cluster
        host_id = cluster.slot_map.owners[slot] or cluster.any_master()
        if readonly and self._replicas:
            host_id = cluster.replica_for(host_id)
        buffer = self._buffers.get(host_id) or self._buffer(host_id)
        return buffer.for_slot(slot)  # type: ignore[attr-defined]

    def execute_command(self, *args: Any, **options: Any) -> Promise:
        """Queue a command on the node serving its keys' slot (all in one slot)."""
        slot, readonly = self._cluster.slot_for_command(args)
        return self._slot_buffer(slot, readonly).enqueue(args, options, self._refused)

    def get(self, name: Any) -> Promise:  # type: ignore[override]
        """GET, folded with neighbours of the same slot into one MGET (``_slot_buffer`` and
        the plain case of ``SlotBuffer.add_to_run`` inlined: 1,000 random keys are ~1,000
        slots, so this is the per-command path)."""
        data = name.encode() if type(name) is str and self._plain_utf8 else self._key_bytes(name)
        slot = crc_hqx(data, 0) & SLOT_MASK if OPEN_BRACE not in data else key_slot(data)
        buffer: Any
        if self._replicas:
            buffer = self._slot_buffer(slot, True)
        else:
            owners = self._owners
            if owners is None:  # the block's first command, or the first after a round
                owners = self._owners = self._cluster.slot_map.owners
            host_id = owners[slot] or self._cluster.any_master()
            buffer = self._buffers.get(host_id) or self._buffer(host_id)
            if slot != buffer.tail_slot:  # SlotBuffer.for_slot, inlined
                buffer.tail_run = None
                buffer.tail_slot = slot
        promise = Promise()
        queue = buffer.queue
        if (
            buffer.tail_run is None
            and (buffer.single_slot != slot or not queue or queue[-1] is not buffer.single)
            and buffer.auto_batch
        ):  # no neighbour of its slot to join
            entry = buffer.single = ("GET", (b"GET", data), None, promise)
            queue.append(entry)
            buffer.single_slot = slot
        else:
            buffer.add_to_run(GETS, (data,), promise)
        return promise

    def _add_to_run(self, kind: int, name: Any, data: bytes, args: tuple) -> Promise:
        promise = Promise()
        self._slot_buffer(key_slot(data), False).add_to_run(kind, args, promise)
        return promise


class SlotFanoutClient(_SlotRounds, FanoutClient):  # type: ignore[misc]
    """``RedisCluster.fanout()`` / ``all()``: every command to each targeted master."""

    def __init__(
        self,
        cluster: RedisCluster,
        hosts: Any = None,
        max_concurrency: int | None = None,
        auto_batch: bool = True,
        timeout: float | None = None,
    ) -> None:
        # broadcast GETs of different keys would fold across slots: never fold here
        super().__init__(cluster, hosts, max_concurrency, False, timeout)
        self._start_rounds()


class SlotRoutingClient(RoutingClient):
    """Immediate results on a Redis Cluster: each command is a one-command ``map()`` block,
    so MOVED / ASK / failover are followed exactly as there."""

    _cluster: Any
    mapping_client_class = SlotMappingClient
    fanout_client_class = SlotFanoutClient

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run one command on the node serving its slot and return the reply."""
        client = SlotMappingClient(self._cluster, None, False)
        promise = client.execute_command(*args, **options)
        client.join()
        return promise.value

    def run_script(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """Run a registered script on the master of its keys' slot (loaded there if needed)."""
        client = SlotMappingClient(self._cluster, None, False)
        promise = client.run_script(script, keys, args)
        client.join()
        return promise.value

    def lock(self, name: Any, *args: Any, **kwargs: Any) -> Any:
        """A redis-py Lock on the master that holds ``name`` (not moved along by a reshard)."""
        return self._cluster.get_local_client_for_key(name).lock(name, *args, **kwargs)
