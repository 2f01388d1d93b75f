"""Rate limiting on the cluster: GCRA token buckets, several limits decided in one round.

``RateLimiter`` works without Django settings (give it a cluster); ``@ratelimit``,
``is_ratelimited`` and ``RateLimitMiddleware`` read ``RB_RATELIMIT``.
"""

from __future__ import annotations

from .decorators import ais_ratelimited, is_ratelimited, ratelimit
from .limiter import Decision, Limit, LimiterUnavailable, RateLimiter
from .rates import BadRate, Rate, parse_rate
from .verdicts import ALL, UNSAFE, Ratelimited

__all__ = [
    "ALL",
    "UNSAFE",
    "ais_ratelimited",
    "BadRate",
    "Rate",
    "Decision",
    "Limit",
    "LimiterUnavailable",
    "RateLimiter",
    "Ratelimited",
    "is_ratelimited",
    "parse_rate",
    "ratelimit",
]
