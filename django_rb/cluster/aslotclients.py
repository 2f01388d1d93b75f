"""``amap()`` / ``afanout()`` on a Redis Cluster: the slot clients, their rounds awaited.

Queueing, slot routing and re-routing are the sync slot clients' (``slotclients``); the rounds
follow redirects through the same engine-free ``redirect_rounds`` as ``map()``, each round on
the asyncio engine and each back-off an ``asyncio.sleep``. Re-reading the slot map after a
MOVED is the one blocking call left (a CLUSTER SHARDS on a plain connection, once per round
that needs it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .aclients import _AsyncRounds
from .aio import arun_round
from .buffer import CommandBuffer
from .engine import RoundErrors
from .redirects import redirect_rounds
from .slotclients import SlotFanoutClient, SlotMappingClient


class _AsyncSlotRounds(_AsyncRounds):
    """Each round of the block is followed by its redirect rounds, all awaited."""

    async def _arun_buffers(self, buffers: list[CommandBuffer], deadline: float | None) -> None:
        cluster: Any = self._cluster  # a RedisCluster
        redirects = self._redirects  # type: ignore[attr-defined]
        redirects.errors = self._errors
        for step in redirect_rounds(buffers, redirects, self._reroute):  # type: ignore[attr-defined]
            if isinstance(step, float):
                await asyncio.sleep(step)
                continue
            round_errors = RoundErrors()
            get_pool = cluster.get_async_pool_for_host
            await arun_round(
                step, cluster.nodes, get_pool, deadline, round_errors, self._max_concurrency
            )
            for error in round_errors.errors:  # a redirect followed is not an error
                if redirects.keep_error(error):
                    self._errors.add(error)


class AsyncSlotMappingClient(_AsyncSlotRounds, SlotMappingClient):  # type: ignore[misc]
    """``RedisCluster.amap()``'s client: promises, one pipeline per node, redirects followed."""


class AsyncSlotFanoutClient(_AsyncSlotRounds, SlotFanoutClient):  # type: ignore[misc]
    """``RedisCluster.afanout()`` / ``aall()``: every command to each targeted master."""
