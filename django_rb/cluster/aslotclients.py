"""``amap()`` / ``afanout()`` on a Redis Cluster: the slot clients, their rounds awaited.

Queueing, slot routing and re-routing are the sync slot clients' (``slotclients``); the rounds
follow redirects through the same engine-free ``redirect_rounds`` as ``map()``, each round on
the asyncio engine, each back-off an ``asyncio.sleep`` and each slot-map refresh after a MOVED
the same CLUSTER SHARDS reading as the sync one, awaited (``RedisCluster.arefresh_slots``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .aclients import _AsyncRounds
from .aio import arun_round
from .buffer import CommandBuffer
from .engine import RoundErrors
from .errors import HostError
from .redirects import Refresh, redirect_rounds
from .slotclients import SlotFanoutClient, SlotMappingClient


class _AsyncSlotRounds(_AsyncRounds):
    """Each round of the block is followed by its redirect rounds, all awaited."""

    async def aprepare(self, deadline: float | None) -> None:
        """The slot map, read on the loop at the cluster's first block."""
        cluster: Any = self._cluster
        if not cluster.has_slot_map:
            await cluster.arefresh_slots(deadline)

    async def _arun_buffers(self, buffers: list[CommandBuffer], deadline: float | None) -> None:
        cluster: Any = self._cluster  # a RedisCluster
        redirects = self._redirects  # type: ignore[attr-defined]
        redirects.errors = self._errors
        for step in redirect_rounds(buffers, redirects, self._reroute):  # type: ignore[attr-defined]
            if isinstance(step, Refresh):
                try:
                    await cluster.arefresh_slots(deadline, redirects.failed_hosts)
                except HostError:
                    pass  # no node answered in time: the old map stands, as in map()
            elif isinstance(step, float):
                await asyncio.sleep(step)
            else:
                round_errors = RoundErrors()
                get_pool = cluster.get_async_pool_for_host
                await arun_round(
                    step, cluster.nodes, get_pool, deadline, round_errors, self._max_concurrency
                )
                self._keep_errors(round_errors)  # type: ignore[attr-defined]
        self._owners = None  # the map may have changed: later GETs look it up again


class AsyncSlotMappingClient(_AsyncSlotRounds, SlotMappingClient):  # type: ignore[misc]
    """``RedisCluster.amap()``'s client: promises, one pipeline per node, redirects followed."""


class AsyncSlotFanoutClient(_AsyncSlotRounds, SlotFanoutClient):  # type: ignore[misc]
    """``RedisCluster.afanout()`` / ``aall()``: every command to each targeted master."""
