"""Rates: ``"10/s"``, ``"100/5m"``, ``"0/s"`` parsed in one place, so a bad one fails early.

A rate is a count of requests per period; the limiter turns it into a token bucket that refills
one token every ``period / count`` seconds and holds ``burst`` tokens (the count by default).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

#: Seconds per unit letter (and the spelled-out names people write).
UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


class BadRate(ValueError):
    """A rate that does not parse or a burst/cost that cannot work with it."""


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``period`` seconds; ``burst`` is the bucket size (default count)."""

    count: int
    period: int
    burst: int

    @property
    def interval(self) -> float:
        """Seconds between two tokens (the GCRA emission interval); 0-count rates have none."""
        return self.period / self.count if self.count else float("inf")

    @cached_property
    def interval_us(self) -> str:
        """The interval in microseconds as the bucket script reads it."""
        return f"{self.interval * 1_000_000:.3f}"

    @cached_property
    def script_words(self) -> tuple[bytes, bytes]:
        """The interval and the burst as the bucket script's arguments, encoded once."""
        return self.interval_us.encode(), b"%d" % self.burst

    @cached_property
    def blocks_everything(self) -> bool:
        """``"0/s"``: no request is ever allowed."""
        return self.count == 0 or self.burst == 0

    @property
    def window(self) -> int:
        """Seconds an empty bucket takes to fill up again (the policy's ``w``)."""
        if self.blocks_everything:
            return self.period
        return max(1, round(self.burst * self.interval))

    def __str__(self) -> str:
        text = f"{self.count}/{_period_text(self.period)}"
        return text if self.burst == self.count else f"{text} burst {self.burst}"


#: What decorators and settings accept as a rate: text, a Rate, None (no limit) or a callable
#: ``(group, request) -> rate`` decided per request.
RateSpec = str | Rate | None | Callable[[str, Any], Any]


def _period_text(period: int) -> str:
    for letter, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
        if period % seconds == 0:
            count = period // seconds
            return letter if count == 1 else f"{count}{letter}"
    return "s" if period == 1 else f"{period}s"


@lru_cache(maxsize=1024)
def _parse_text(text: str, burst: int | None) -> Rate:
    match = _RATE_RE.match(text.lower())
    if not match:
        raise BadRate(
            f"Rate {text!r} does not parse: write COUNT/PERIOD such as '10/s', '100/m', "
            "'1000/h', '5000/d', '100/5m' or '3/10s'."
        )
    count, multiple, unit = match.groups()
    if unit not in UNITS:
        raise BadRate(f"Rate {text!r}: unknown unit {unit!r}; use s, m, h or d.")
    period = (int(multiple) if multiple else 1) * UNITS[unit]
    if period <= 0:
        raise BadRate(f"Rate {text!r}: the period must be longer than zero.")
    return Rate(int(count), period, int(count) if burst is None else _check_burst(burst, text))


def parse_rate(value: str | Rate, burst: int | None = None) -> Rate:
    """A ``Rate`` from text such as ``"100/5m"``; ``burst`` overrides the bucket size."""
    if isinstance(value, Rate):
        rate = value
        if burst is not None and burst != rate.burst:
            rate = Rate(rate.count, rate.period, _check_burst(burst, value))
        return rate
    if not isinstance(value, str):
        raise BadRate(f"A rate is text like '10/s' or None, not {type(value).__name__}.")
    if burst is not None and type(burst) is not int:
        _check_burst(burst, value)  # unhashable or odd: say so before the cache sees it
    return _parse_text(value, burst)


def _check_burst(burst: Any, rate: Any) -> int:
    if type(burst) is not int or burst < 0:
        raise BadRate(f"burst={burst!r} for rate {rate!r}: a burst is a whole number >= 0.")
    return burst


def check_cost(cost: Any) -> int:
    """The cost of a request: a whole number of tokens, 0 or more."""
    if type(cost) is not int or cost < 0:
        raise BadRate(f"cost={cost!r}: a cost is a whole number of tokens >= 0.")
    return cost


def validate_spec(spec: Any, burst: int | None = None) -> None:
    """Fail now (at decoration or check time) for a rate that can never work."""
    if spec is None or callable(spec):
        if burst is not None:
            _check_burst(burst, spec)
        return
    parse_rate(spec, burst)
