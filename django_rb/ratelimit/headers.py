"""The IETF RateLimit-Policy / RateLimit fields (httpapi draft 10) and Retry-After.

Both fields are Structured Field Lists: one item per limit in force, named after its group
(``"name#2"`` when two limits share a group). ``q`` is the bucket size and ``w`` the seconds an
empty bucket takes to refill; ``r`` is what remains and ``t`` the seconds until the remaining
quota grows (for a blocked limit: until the request's cost can be paid).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from .limiter import Decision

POLICY_FIELD = "RateLimit-Policy"
FIELD = "RateLimit"


def sf_string(text: str) -> str:
    """``text`` as a Structured Fields String (printable ASCII; anything else becomes ``?``)."""
    safe = "".join(c if " " <= c <= "~" else "?" for c in text)
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'


def seconds_until_more(decision: Decision) -> int:
    """The item's ``t``: whole seconds, rounded up."""
    if not decision.allowed:
        return max(1, math.ceil(decision.retry_after))
    limit, remaining, rate = decision.limit, decision.remaining, decision.rate
    if rate is None or limit is None or remaining is None or remaining >= limit:
        return 0
    next_token = decision.reset_after - (limit - remaining - 1) * rate.interval
    return max(0, math.ceil(next_token - 1e-9))


def named(decisions: Iterable[Decision]) -> list[tuple[str, Decision]]:
    """The limits in force with unique item names (limits of rate None are left out)."""
    seen: dict[str, int] = {}
    items = []
    for decision in decisions:
        if decision.unlimited:
            continue
        base = decision.name or "limit"
        seen[base] = seen.get(base, 0) + 1
        items.append((base if seen[base] == 1 else f"{base}#{seen[base]}", decision))
    return items


def field_values(decisions: Sequence[Decision]) -> dict[str, str]:
    """``{field name: value}`` for the limits in force; empty when there are none."""
    items = named(decisions)
    if not items:
        return {}
    policy = ", ".join(
        f"{sf_string(name)};q={d.limit};w={d.rate.window}" for name, d in items if d.rate
    )
    state = ", ".join(
        f"{sf_string(name)};r={d.remaining};t={seconds_until_more(d)}" for name, d in items
    )
    return {POLICY_FIELD: policy, FIELD: state}


def retry_after(decisions: Sequence[Decision]) -> int:
    """Retry-After for a blocked request: no earlier than any blocking limit's ``t``."""
    blocked = [seconds_until_more(d) for d in decisions if not d.allowed]
    return max(blocked, default=1)


def add_fields(response: Any, decisions: Sequence[Decision], blocked: bool = False) -> Any:
    """Set the fields on ``response`` (keeping any a view set itself); Retry-After if blocked."""
    for name, value in field_values(decisions).items():
        if name not in response:
            response[name] = value
    if blocked and "Retry-After" not in response:
        response["Retry-After"] = str(retry_after(decisions))
    return response
