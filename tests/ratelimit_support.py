"""Helpers shared by the rate limiter's test modules (real nodes, read with plain redis-py)."""

from __future__ import annotations

from typing import Any

import redis

from django_rb.ratelimit.limiter import BUCKET_LUA
from django_rb.testing import RedisNode


def script_calls(nodes: list[RedisNode]) -> list[int]:
    """EVAL + EVALSHA calls each node has served so far (from INFO commandstats). Loads the
    bucket script first, so a node's first call is not an EVALSHA answered NOSCRIPT + EVAL."""
    counts = []
    for node in nodes:
        client = redis.Redis(port=node.port, socket_timeout=5)
        try:
            client.script_load(BUCKET_LUA)
            stats = client.info("commandstats")
        finally:
            client.close()
        counts.append(
            sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("eval", "evalsha"))
        )
    return counts


def delta(before: list[int], after: list[int]) -> list[int]:
    return [b - a for a, b in zip(before, after, strict=True)]


def keys_on(
    cluster: Any, host_id: int, count: int, prefix: str, rl_prefix: str = "rl"
) -> list[str]:
    """``count`` limiter keys whose buckets live on ``host_id``."""
    router = cluster.get_router()
    found: list[str] = []
    i = 0
    while len(found) < count:
        key = f"{prefix}{i}"
        if router.get_host_for_key(f"{rl_prefix}:{key}") == host_id:
            found.append(key)
        i += 1
    return found
