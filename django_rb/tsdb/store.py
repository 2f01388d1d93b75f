"""TSDB: the time-series store's API (Sentry's names), each call one parallel round.

Each ``plan_<method>`` validates its arguments and builds a plan (see ``rounds``); the public
``<method>`` runs that plan on the sync engine. The plans are engine-free, so async twins run
the same plans on ``afanout``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from django_rb import get_cluster  # (Django-free until a name is looked up)

from . import arguments, counters, distinct, frequency, maintenance
from .errors import TSDBArgumentError
from .keys import KeyNames, model_name, series_token
from .query import Query
from .rollups import (
    DEFAULT_ROLLUPS,
    Rollup,
    find_rollup,
    optimal_rollup,
    parse_rollups,
    to_epoch,
    window,
)
from .rounds import Plan, arun, finished, one_round, run

#: Members kept per frequency sorted set (per series, bucket and environment).
DEFAULT_FREQUENCY_CAPACITY = 1000

Series = dict[Any, list[tuple[int, Any]]]

P = ParamSpec("P")
R = TypeVar("R")


def runs(plan_method: Callable[Concatenate[TSDB, P], Plan[R]]) -> Callable[Concatenate[TSDB, P], R]:
    """The public method of a ``plan_*`` method: build the plan, run it on the sync engine."""

    @functools.wraps(plan_method)
    def method(self: TSDB, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.run(plan_method(self, *args, **kwargs))

    method.__name__ = method.__qualname__ = plan_method.__name__.removeprefix("plan_")
    return method


def aruns(
    plan_method: Callable[Concatenate[TSDB, P], Plan[R]],
) -> Callable[Concatenate[TSDB, P], Coroutine[Any, Any, R]]:
    """The async twin of a ``plan_*`` method: the same plan, awaited on the asyncio engine."""

    @functools.wraps(plan_method)
    async def method(self: TSDB, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.arun(plan_method(self, *args, **kwargs))

    method.__name__ = method.__qualname__ = "a" + plan_method.__name__.removeprefix("plan_")
    return method


class TSDB:
    """Counters, distinct counts and top-N frequencies per (model, key), in rollups.

    ``cluster`` is a ``Cluster``, an ``RB_CLUSTERS`` name, or None for "default" (looked up
    through ``django_rb.get_cluster`` on each call, so it follows settings changes).
    """

    def __init__(
        self,
        cluster: Any = None,
        rollups: Any = None,
        prefix: str = "ts",
        vnodes: int = 64,
        frequency_capacity: int = DEFAULT_FREQUENCY_CAPACITY,
        timeout: float | None = None,
    ) -> None:
        self._cluster = cluster
        self.rollups = parse_rollups(DEFAULT_ROLLUPS if rollups is None else rollups)
        self.names = KeyNames(prefix)
        self.vnodes = _positive(vnodes, "vnodes")
        self.frequency_capacity = _positive(frequency_capacity, "frequency_capacity")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise TSDBArgumentError(f"timeout is a positive number of seconds, not {timeout!r}.")
        self.timeout = timeout

    def __repr__(self) -> str:
        rollups = ", ".join(f"{r.seconds}s x {r.kept}" for r in self.rollups)
        return f"<TSDB prefix={self.names.prefix!r} rollups=[{rollups}] vnodes={self.vnodes}>"

    @property
    def cluster(self) -> Any:
        """The cluster the store's keys live on."""
        if self._cluster is None or isinstance(self._cluster, str):
            return get_cluster(self._cluster or "default")
        return self._cluster

    def run(self, plan: Plan[R]) -> R:
        """Run a plan built by a ``plan_*`` method on the sync engine."""
        return run(self.cluster, plan, self.timeout)

    async def arun(self, plan: Plan[R]) -> R:
        """Run a plan built by a ``plan_*`` method on the asyncio engine."""
        return await arun(self.cluster, plan, self.timeout)

    # -- time and rollups ----------------------------------------------------------------------

    def get_rollups(self) -> dict[int, int]:
        """``{bucket_seconds: buckets_kept}``, finest first."""
        return {r.seconds: r.kept for r in self.rollups}

    def normalize_to_rollup(self, timestamp: Any, rollup: int) -> int:
        """The index of the bucket of ``rollup`` seconds holding ``timestamp``."""
        return Rollup(_positive(rollup, "rollup"), 1).bucket(to_epoch(timestamp))

    def normalize_to_epoch(self, timestamp: Any, rollup: int) -> int:
        """The start (epoch seconds) of the bucket holding ``timestamp``."""
        return self.normalize_to_rollup(timestamp, rollup) * rollup

    def get_optimal_rollup(self, start: Any, end: Any = None) -> int:
        """The finest rollup whose retained buckets, counted back from now, still hold
        ``start`` (the coarsest when none does)."""
        first, _last = window(start, end)
        return optimal_rollup(self.rollups, first, time.time()).seconds

    def _query(
        self, model: Any, keys: Any, start: Any, end: Any, rollup: Any, environment_ids: Any
    ) -> Query:
        """A read's arguments, validated."""
        name, keys = model_name(model), arguments.series_keys(keys)
        first, last = window(start, end)
        chosen = (
            optimal_rollup(self.rollups, first, time.time())
            if rollup is None
            else find_rollup(self.rollups, rollup)
        )
        envs = arguments.read_envs(environment_ids)
        return Query(self.names, name, keys, chosen, chosen.buckets(first, last), envs)

    def _retained(self, timestamp: Any) -> maintenance.Window:
        now = to_epoch(timestamp)
        return lambda rollup: rollup.retained(now)

    # -- counters ------------------------------------------------------------------------------

    def plan_incr(
        self,
        model: Any,
        key: Any,
        timestamp: Any = None,
        count: int = 1,
        environment_id: Any = None,
    ) -> Plan[None]:
        """Add ``count`` to the series in every rollup (one round)."""
        return self.plan_incr_multi([(model, key, count)], timestamp, count, environment_id)

    def plan_incr_multi(
        self, items: Any, timestamp: Any = None, count: int = 1, environment_id: Any = None
    ) -> Plan[None]:
        """Many increments in one round; counts of one cell are added up client-side first."""
        writes = arguments.increments(items, timestamp, count, time.time())
        envs = arguments.write_envs(environment_id)
        return counters.incr_plan(self.names, self.rollups, self.vnodes, writes, envs)

    def plan_get_range(
        self,
        model: Any,
        keys: Any,
        start: Any,
        end: Any,
        rollup: int | None = None,
        environment_ids: Any = None,
    ) -> Plan[Series]:
        """``{key: [(bucket_epoch, count), ...]}`` from ``start``'s bucket to ``end``'s,
        zero-filled; one round, one HMGET per counter hash."""
        query = self._query(model, keys, start, end, rollup, environment_ids)
        return _with_epochs(counters.cells_plan(query, self.vnodes), query.epochs)

    def plan_get_sums(
        self,
        model: Any,
        keys: Any,
        start: Any,
        end: Any,
        rollup: int | None = None,
        environment_ids: Any = None,
    ) -> Plan[dict[Any, int]]:
        """``{key: total}`` over the range (one round)."""
        series = self.plan_get_range(model, keys, start, end, rollup, environment_ids)

        def plan() -> Plan[dict[Any, int]]:
            got = yield from series
            return {key: sum(count for _, count in points) for key, points in got.items()}

        return plan()

    # -- distinct counts -----------------------------------------------------------------------

    def plan_record(
        self,
        model: Any,
        key: Any,
        values: Any,
        timestamp: Any = None,
        environment_id: Any = None,
    ) -> Plan[None]:
        """Add ``values`` to the series' distinct sets in every rollup (one round)."""
        return self.plan_record_multi([(model, key, values)], timestamp, environment_id)

    def plan_record_multi(
        self, items: Any, timestamp: Any = None, environment_id: Any = None
    ) -> Plan[None]:
        """Many ``(model, key, values)`` in one round."""
        records = arguments.records(items, timestamp, time.time())
        envs = arguments.write_envs(environment_id)
        return distinct.record_plan(self.names, self.rollups, records, envs)

    def plan_get_distinct_counts_series(
        self,
        model: Any,
        keys: Any,
        start: Any,
        end: Any = None,
        rollup: int | None = None,
        environment_ids: Any = None,
    ) -> Plan[Series]:
        """``{key: [(bucket_epoch, distinct_count), ...]}`` (one round, a PFCOUNT per cell)."""
        query = self._query(model, keys, start, end, rollup, environment_ids)
        return _with_epochs(distinct.series_plan(query), query.epochs)

    def plan_get_distinct_counts_totals(
        self,
        model: Any,
        keys: Any,
        start: Any,
        end: Any = None,
        rollup: int | None = None,
        environment_ids: Any = None,
    ) -> Plan[dict[Any, int]]:
        """``{key: distinct_count}`` over the range (one round, a PFCOUNT per key)."""
        return distinct.totals_plan(self._query(model, keys, start, end, rollup, environment_ids))

    def plan_get_distinct_counts_union(
        self,
        model: Any,
        keys: Any,
        start: Any,
        end: Any = None,
        rollup: int | None = None,
        environment_ids: Any = None,
    ) -> Plan[int]:
        """The distinct count of all the keys together: one round for one key; two rounds
        (all series' nodes in parallel, then one node) for several."""
        return distinct.union_plan(self._query(model, keys, start, end, rollup, environment_ids))

    # -- frequencies ---------------------------------------------------------------------------

    def plan_record_frequency_multi(
        self, requests: Any, timestamp: Any = None, environment_id: Any = None
    ) -> Plan[None]:
        """``[(model, {key: {member: score}})]``: ZINCRBY each, trimmed to the capacity."""
        items = arguments.frequencies(requests, timestamp, time.time())
        envs = arguments.write_envs(environment_id)
        return frequency.record_plan(self.names, self.rollups, items, envs, self.frequency_capacity)

    def plan_get_most_frequent(
        self,
        model: Any,
        keys: Any,
        start: Any,
        end: Any = None,
        rollup: int | None = None,
        limit: int | None = None,
        environment_ids: Any = None,
    ) -> Plan[dict[Any, list[tuple[str, float]]]]:
        """``{key: [(member, score), ...]}`` highest first (ties by member), one ZUNION per key."""
        query = self._query(model, keys, start, end, rollup, environment_ids)
        return frequency.most_frequent_plan(query, arguments.limit_of(limit))

    def plan_get_most_frequent_series(
        self,
        model: Any,
        keys: Any,
        start: Any,
        end: Any = None,
        rollup: int | None = None,
        limit: int | None = None,
        environment_ids: Any = None,
    ) -> Plan[Series]:
        """``{key: [(bucket_epoch, {member: score}), ...]}``, each bucket's top ``limit``."""
        query = self._query(model, keys, start, end, rollup, environment_ids)
        inner = frequency.most_frequent_series_plan(query, arguments.limit_of(limit))
        return _with_epochs(inner, query.epochs)

    def plan_get_frequency_series(
        self,
        model: Any,
        items: Any,
        start: Any,
        end: Any = None,
        rollup: int | None = None,
        environment_ids: Any = None,
    ) -> Plan[Series]:
        """``{key: [(bucket_epoch, {member: score}), ...]}`` for ``items = {key: [member]}``."""
        members = arguments.members_by_key(items)
        query = self._query(model, list(members), start, end, rollup, environment_ids)
        return _with_epochs(frequency.scores_plan(query, members), query.epochs)

    def plan_get_frequency_totals(
        self,
        model: Any,
        items: Any,
        start: Any,
        end: Any = None,
        rollup: int | None = None,
        environment_ids: Any = None,
    ) -> Plan[dict[Any, dict[str, float]]]:
        """``{key: {member: total}}`` over the range for ``items = {key: [member]}``."""
        series = self.plan_get_frequency_series(model, items, start, end, rollup, environment_ids)

        def plan() -> Plan[dict[Any, dict[str, float]]]:
            got = yield from series
            totals: dict[Any, dict[str, float]] = {}
            for key, points in got.items():
                sums = totals[key] = {}
                for _, scores in points:
                    for member, score in scores.items():
                        sums[member] = sums.get(member, 0.0) + score
            return totals

        return plan()

    # -- maintenance ---------------------------------------------------------------------------

    def plan_delete(
        self,
        models: Any,
        keys: Any,
        start: Any = None,
        end: Any = None,
        environment_ids: Any = None,
    ) -> Plan[None]:
        """Drop the series' counters, distinct sets and frequencies (all rollups) in the range,
        by default everything retained; the all-environments series and ``environment_ids``'
        (one round)."""
        names = [model_name(m) for m in _as_list(models)]
        keys = arguments.series_keys(keys)
        envs = _with_all(arguments.read_envs(environment_ids))
        if start is None and end is None:
            span = self._retained(None)
        else:
            first, last = window(start, end)
            span = lambda rollup: rollup.buckets(first, last)  # noqa: E731
        return one_round(
            maintenance.drop_queue(self.names, names, keys, self.rollups, span, envs, self.vnodes)
        )

    def plan_merge(
        self,
        model: Any,
        destination: Any,
        sources: Any,
        timestamp: Any = None,
        environment_ids: Any = None,
    ) -> Plan[None]:
        """Fold the sources' counters, distinct sets and frequencies into the destination in
        every retained bucket, then drop the sources. Three rounds: read the sources, write
        the destination, drop the sources (only after the destination's round succeeded)."""
        name = model_name(model)
        series_token(destination)
        sources = arguments.series_keys(sources)
        if destination in sources:
            raise TSDBArgumentError(
                f"The destination {destination!r} is among the sources: it would be dropped."
            )
        envs = _with_all(arguments.read_envs(environment_ids))
        if not sources:
            return finished(None)
        return maintenance.merge_plan(
            self.names,
            name,
            destination,
            sources,
            self.rollups,
            self._retained(timestamp),
            envs,
            self.vnodes,
            self.frequency_capacity,
        )

    incr = runs(plan_incr)
    incr_multi = runs(plan_incr_multi)
    get_range = runs(plan_get_range)
    get_sums = runs(plan_get_sums)
    record = runs(plan_record)
    record_multi = runs(plan_record_multi)
    get_distinct_counts_series = runs(plan_get_distinct_counts_series)
    get_distinct_counts_totals = runs(plan_get_distinct_counts_totals)
    get_distinct_counts_union = runs(plan_get_distinct_counts_union)
    record_frequency_multi = runs(plan_record_frequency_multi)
    get_most_frequent = runs(plan_get_most_frequent)
    get_most_frequent_series = runs(plan_get_most_frequent_series)
    get_frequency_series = runs(plan_get_frequency_series)
    get_frequency_totals = runs(plan_get_frequency_totals)
    delete = runs(plan_delete)
    merge = runs(plan_merge)

    # the async twins: the same plans on `async with cluster.afanout()` blocks
    aincr = aruns(plan_incr)
    aincr_multi = aruns(plan_incr_multi)
    aget_range = aruns(plan_get_range)
    aget_sums = aruns(plan_get_sums)
    arecord = aruns(plan_record)
    arecord_multi = aruns(plan_record_multi)
    aget_distinct_counts_series = aruns(plan_get_distinct_counts_series)
    aget_distinct_counts_totals = aruns(plan_get_distinct_counts_totals)
    aget_distinct_counts_union = aruns(plan_get_distinct_counts_union)
    arecord_frequency_multi = aruns(plan_record_frequency_multi)
    aget_most_frequent = aruns(plan_get_most_frequent)
    aget_most_frequent_series = aruns(plan_get_most_frequent_series)
    aget_frequency_series = aruns(plan_get_frequency_series)
    aget_frequency_totals = aruns(plan_get_frequency_totals)
    adelete = aruns(plan_delete)
    amerge = aruns(plan_merge)


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TSDBArgumentError(f"{what} is a positive int, not {value!r}.")
    return value


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def _with_all(envs: tuple[str, ...]) -> tuple[str, ...]:
    """Maintenance always covers the all-environments series."""
    return envs if "" in envs else ("", *envs)


def _with_epochs(inner: Plan[dict[Any, list[Any]]], epochs: list[int]) -> Plan[Series]:
    rows = yield from inner
    return {key: list(zip(epochs, row, strict=True)) for key, row in rows.items()}
