"""RateLimiter: GCRA token buckets on the cluster, several limits decided in one map() round.

Every operation is built the same way, so an async engine can reuse it by swapping one call:
``plan()`` turns limits into one script call per node (limits on one node are decided together),
``queue()`` puts those calls on a map() client, ``read()`` turns the replies into decisions. A
lone limit (most requests) has nothing to group: ``lone_call()`` / ``lone_decision()`` do the
same for it with none of the grouping's bookkeeping.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, cast

from django_rb import get_cluster  # (Django-free until a name is looked up)
from django_rb.cluster.promise import Promise
from django_rb.cluster.scripts import ClusterScript

from .rates import BadRate, Rate, check_cost, parse_rate

#: The bucket script: one EVALSHA per node per round (EVAL with the body where not loaded).
BUCKET_LUA = importlib.resources.files(__package__).joinpath("bucket.lua").read_text()

#: Made once (given as bytes it needs no client's encoder); each call names its client.
_BUCKET = ClusterScript(cast(Any, None), BUCKET_LUA.encode())

_US = 1_000_000


class LimiterUnavailable(RuntimeError):
    """Some limits could not be decided (a node is down or stalled). ``decisions`` holds the
    ones that were, in request order with ``None`` for the rest; ``errors`` the causes."""

    def __init__(self, decisions: list[Decision | None], errors: list[BaseException]) -> None:
        self.decisions = decisions
        self.errors = errors
        undecided = sum(decision is None for decision in decisions)
        super().__init__(f"{undecided} of {len(decisions)} rate limits undecided: {errors[0]}")


class Decision(NamedTuple):
    """The answer for one limit; ``retry_after``/``reset_after`` are seconds.

    ``limit`` and ``remaining`` are None for a limit whose rate is None (never limited).
    Immutable; a named tuple because one is made per limit per request (a frozen dataclass
    costs three times as much to build).
    """

    key: str
    rate: Rate | None
    allowed: bool
    limit: int | None
    remaining: int | None
    retry_after: float
    reset_after: float
    name: str = ""

    @property
    def unlimited(self) -> bool:
        """True for a rate of None: nothing was counted."""
        return self.rate is None


class Limit(NamedTuple):
    """One limit to check: a bucket ``key`` with its ``rate``, charged ``cost`` tokens."""

    key: str
    rate: Rate | None
    cost: int = 1
    name: str = ""


class Plan:
    """The script calls of one operation: per node, which limits go into its call."""

    __slots__ = ("limits", "spend", "now_us", "by_host", "names", "known")

    def __init__(self, limits: list[Limit], spend: bool, now_us: bytes) -> None:
        self.limits = limits
        self.spend = spend
        self.now_us = now_us
        #: group (a host id; a Redis Cluster's (master, slot)) -> indexes into ``limits``: one
        #: script call each
        self.by_host: dict[Any, list[int]] = {}
        #: index into ``limits`` -> its bucket's Redis key (prefixed), for those asked of Redis
        self.names: dict[int, str] = {}
        #: decisions known without asking Redis (rate None or 0)
        self.known: dict[int, Decision] = {}


def as_limit(
    key: str, rate: str | Rate | None, burst: int | None = None, cost: int = 1, name: str = ""
) -> Limit:
    """A Limit from the public arguments, checking them now rather than in the script."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"A rate limit key is a non-empty string, not {key!r}.")
    cost = check_cost(cost)
    parsed = None if rate is None else parse_rate(rate, burst)
    if parsed is not None and not parsed.blocks_everything and cost > parsed.burst:
        raise BadRate(
            f"cost {cost} is more than the burst of {parsed} ({parsed.burst} tokens): "
            "such a request could never be allowed."
        )
    return Limit(key, parsed, cost, name)


def _now_word(now: float | None) -> bytes:
    """The script's "now": microseconds, or empty for the server's own clock (TIME)."""
    return b"" if now is None else b"%d" % round(now * _US)


def plan(limits: Sequence[Limit], prefix: str, router: Any, spend: bool, now: float | None) -> Plan:
    """Group limits by the node of their bucket; settle rates None and 0 without Redis."""
    result = Plan(list(limits), spend, _now_word(now))
    # keys that may share one script call: one node's (rb-style), one slot's (Redis Cluster)
    group_of = getattr(router, "get_batch_for_key", None) or router.get_host_for_key
    by_host, names = result.by_host, result.names
    for index, limit in enumerate(result.limits):
        rate = limit.rate
        if rate is None:
            result.known[index] = Decision(limit.key, None, True, None, None, 0.0, 0.0, limit.name)
        elif rate.blocks_everything:
            result.known[index] = Decision(
                limit.key, rate, False, 0, 0, float(rate.period), 0.0, limit.name
            )
        else:
            names[index] = name = f"{prefix}:{limit.key}"
            indexes = by_host.get(host_id := group_of(name))
            if indexes is None:
                by_host[host_id] = [index]
            else:
                indexes.append(index)
    if result.known and not all(d.allowed for d in result.known.values()):
        result.spend = False  # blocked whatever Redis says: spend nobody's tokens
    return result


def queue(work: Plan, client: Any) -> dict[int, Promise]:
    """One bucket script call per node on a map() client; promises by host id."""
    promises = {}
    mode = b"1" if work.spend else b"0"
    limits, names = work.limits, work.names
    for host_id, indexes in work.by_host.items():
        keys = []
        argv: list[Any] = [work.now_us, mode]
        for index in indexes:
            limit = limits[index]
            rate = limit.rate
            assert rate is not None
            keys.append(names[index])
            argv += rate.script_words
            argv.append(b"%d" % limit.cost)
        promises[host_id] = client.run_script(_BUCKET, keys, argv)
    return promises


def read(work: Plan, promises: dict[int, Promise]) -> list[Decision]:
    """Decisions in the order of the limits; raises LimiterUnavailable for failed nodes."""
    limits, known = work.limits, work.known
    decisions: list[Decision | None] = (
        [known.get(i) for i in range(len(limits))] if known else [None] * len(limits)
    )
    errors: list[BaseException] = []
    for host_id, indexes in work.by_host.items():
        promise = promises.get(host_id)
        if promise is None or not promise.is_resolved:
            errors.append(_reason(promise, host_id))
            continue
        reply = promise.value
        at = 0  # four integers per limit: allowed, remaining, retry and reset microseconds
        for index in indexes:
            key, rate, _cost, name = limits[index]
            assert rate is not None
            decisions[index] = Decision(
                key, rate, reply[at] == 1, rate.burst, reply[at + 1], reply[at + 2] / _US,
                reply[at + 3] / _US, name,
            )  # fmt: skip
            at += 4
    if errors:
        raise LimiterUnavailable(decisions, errors)
    return cast(list[Decision], decisions)  # every limit is known or was decided


def lone_call(limit: Limit, prefix: str, spend: bool, now: float | None) -> tuple | None:
    """The script call (keys, args) deciding one limit alone: ``plan`` and ``queue`` for the
    commonest request, one limit, with nothing to group. None when Redis need not be asked
    (rate None or 0: ``plan`` settles those)."""
    rate = limit.rate
    if rate is None or rate.blocks_everything:
        return None
    mode = b"1" if spend else b"0"
    return [f"{prefix}:{limit.key}"], [_now_word(now), mode, *rate.script_words, b"%d" % limit.cost]


def lone_decision(limit: Limit, promise: Promise) -> Decision:
    """``read`` for ``lone_call``'s reply; raises LimiterUnavailable if it has none."""
    if not promise.is_resolved:
        raise LimiterUnavailable([None], [_reason(promise, None)])
    reply = promise.value
    rate = limit.rate
    assert rate is not None
    return Decision(
        limit.key, rate, reply[0] == 1, rate.burst, reply[1], reply[2] / _US, reply[3] / _US,
        limit.name,
    )  # fmt: skip


def _reason(promise: Promise | None, host_id: Any) -> BaseException:
    if promise is not None and promise.is_rejected and isinstance(promise.reason, BaseException):
        return promise.reason
    where = "its node" if host_id is None else f"host {host_id}"
    return TimeoutError(f"{where}: no answer from the rate limit script")


class RateLimiter:
    """Token buckets (GCRA, one key per bucket) on a cluster, decided by the node's clock.

    ``cluster`` is a name in ``RB_CLUSTERS``, a cluster object, or None for the
    ``RB_RATELIMIT["CLUSTER"]`` setting. ``timeout`` (seconds) bounds each round; without one,
    rounds are bounded by the cluster's socket timeouts.
    """

    def __init__(
        self, cluster: Any = None, prefix: str = "rl", timeout: float | None = None
    ) -> None:
        self._cluster = cluster
        self.prefix = prefix
        self.timeout = timeout

    @property
    def cluster(self) -> Any:
        """The cluster, looked up per call when given by name (it follows settings changes)."""
        if self._cluster is None or isinstance(self._cluster, str):
            return get_cluster(self._cluster or _settings().cluster)
        return self._cluster

    def consume(
        self,
        key: str,
        rate: str | Rate | None,
        burst: int | None = None,
        cost: int = 1,
        now: float | None = None,
    ) -> Decision:
        """Spend ``cost`` tokens of ``key``'s bucket if it holds them; one round trip."""
        return self.run([as_limit(key, rate, burst, cost)], spend=True, now=now)[0]

    def peek(
        self, key: str, rate: str | Rate | None, burst: int | None = None, now: float | None = None
    ) -> Decision:
        """What ``consume(key, rate, burst)`` would answer, without spending anything."""
        return self.run([as_limit(key, rate, burst, 1)], spend=False, now=now)[0]

    def consume_many(
        self, limits: Iterable[tuple[Any, ...] | Limit], now: float | None = None
    ) -> list[Decision]:
        """Decide ``[(key, rate, burst, cost), ...]`` in one parallel round (one script call
        per node); limits on one node spend nothing unless all of them allow the request."""
        return self.run([_to_limit(item) for item in limits], spend=True, now=now)

    def run(self, limits: Sequence[Limit], spend: bool, now: float | None = None) -> list[Decision]:
        """Decide prepared limits in one round (spending tokens when ``spend``)."""
        cluster = self.cluster
        if len(limits) == 1 and (call := lone_call(limits[0], self.prefix, spend, now)):
            promise = None
            try:
                with cluster.map(timeout=self.timeout) as client:
                    promise = client.run_script(_BUCKET, *call)
            except Exception:
                if promise is None:  # failed before anything was sent: a bug, not a node
                    raise
            return [lone_decision(limits[0], promise)]
        work = plan(limits, self.prefix, cluster.get_router(), spend, now)
        promises: dict[int, Promise] = {}
        if work.by_host:  # one node or many: a map() round costs fewer syscalls than redis-py
            try:
                with cluster.map(timeout=self.timeout) as client:
                    promises = queue(work, client)
            except Exception:
                if not promises:  # failed before anything was sent: a bug, not a node
                    raise
                # else each promise says how its node fared; read() reports the failed ones
        return read(work, promises)

    def reset(self, key: str) -> None:
        """Forget ``key``'s bucket: it is full again."""
        with self.cluster.map(timeout=self.timeout) as client:
            client.delete(f"{self.prefix}:{key}")

    # -- async twins: the same plan/queue/read, awaited on the asyncio engine ----------------

    async def aconsume(
        self,
        key: str,
        rate: str | Rate | None,
        burst: int | None = None,
        cost: int = 1,
        now: float | None = None,
    ) -> Decision:
        """``consume`` for coroutines (no thread hop)."""
        return (await self.arun([as_limit(key, rate, burst, cost)], spend=True, now=now))[0]

    async def apeek(
        self, key: str, rate: str | Rate | None, burst: int | None = None, now: float | None = None
    ) -> Decision:
        """``peek`` for coroutines."""
        return (await self.arun([as_limit(key, rate, burst, 1)], spend=False, now=now))[0]

    async def aconsume_many(
        self, limits: Iterable[tuple[Any, ...] | Limit], now: float | None = None
    ) -> list[Decision]:
        """``consume_many`` for coroutines: one awaited round, one script call per node."""
        return await self.arun([_to_limit(item) for item in limits], spend=True, now=now)

    async def arun(
        self, limits: Sequence[Limit], spend: bool, now: float | None = None
    ) -> list[Decision]:
        """``run`` on the asyncio engine (``async with cluster.amap()``)."""
        cluster = self.cluster
        if len(limits) == 1 and (call := lone_call(limits[0], self.prefix, spend, now)):
            promise = None
            try:
                async with cluster.amap(timeout=self.timeout) as client:
                    promise = client.run_script(_BUCKET, *call)
            except Exception:
                if promise is None:
                    raise
            return [lone_decision(limits[0], promise)]
        work = plan(limits, self.prefix, cluster.get_router(), spend, now)
        promises: dict[int, Promise] = {}
        if work.by_host:
            try:
                async with cluster.amap(timeout=self.timeout) as client:
                    promises = queue(work, client)
            except Exception:
                if not promises:
                    raise
        return read(work, promises)

    async def areset(self, key: str) -> None:
        """``reset`` for coroutines."""
        async with self.cluster.amap(timeout=self.timeout) as client:
            client.delete(f"{self.prefix}:{key}")


@functools.cache
def _settings_reader() -> Any:
    """``conf.get_settings``, imported at the first call: Django only when a limiter names no
    cluster (an import statement in ``cluster`` itself cost 3 µs per decision)."""
    from .conf import get_settings  # noqa: PLC0415

    return get_settings


def _settings() -> Any:
    """The RB_RATELIMIT settings."""
    return _settings_reader()()


def _to_limit(item: tuple[Any, ...] | Limit) -> Limit:
    if isinstance(item, Limit):
        return item
    if not isinstance(item, tuple | list) or not 2 <= len(item) <= 4:
        raise ValueError(f"A limit is (key, rate[, burst[, cost]]), not {item!r}.")
    return as_limit(*item)
