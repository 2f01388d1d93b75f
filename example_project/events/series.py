"""What the site counts and how the dashboards read it back: every read is one tsdb call.

The store is ``django_rb.tsdb.tsdb`` once that app is installed, else the stand-in with the
same calls (``standin_tsdb``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

try:
    from django_rb.tsdb import tsdb as store  # issue 18
except ImportError:  # until the tsdb app lands on main
    from .standin_tsdb import tsdb as store

EVENTS = "project.events"
LEVELS = "project.level"
RELEASES = "project.release"
LIMITED = "project.limited"
USERS = "project.users"
MESSAGES = "project.messages"

#: Levels an event may carry, in the order the charts show them.
LEVEL_NAMES = ("debug", "info", "warning", "error", "fatal")

FINE, COARSE = 10, 3600
#: Points of each chart: an hour in 10 s buckets, a day in hours.
HOUR_POINTS, DAY_POINTS = 360, 24


def window(rollup: int, points: int, now: float | None = None) -> tuple[int, int]:
    """(start, end) epoch seconds covering exactly ``points`` buckets up to now."""
    end = int((time.time() if now is None else now) // rollup) * rollup
    return end - (points - 1) * rollup, end


def level_key(project_id: int, level: str) -> str:
    return f"{project_id}:{level}"


def release_key(project_id: int, release: str) -> str:
    return f"{project_id}:{release}"


def record_event(project_id: int, event: dict[str, str], timestamp: float | None = None) -> None:
    """Count one accepted event: totals, level, release, distinct user, top message."""
    store.incr_multi(
        [
            (EVENTS, project_id),
            (LEVELS, level_key(project_id, event["level"])),
            (RELEASES, release_key(project_id, event["release"])),
        ],
        timestamp=timestamp,
    )
    store.record(USERS, project_id, [event["user"]], timestamp=timestamp)
    store.record_frequency_multi(
        [(MESSAGES, {project_id: {event["message"]: 1.0}})], timestamp=timestamp
    )


def record_limited(project_id: int) -> None:
    """Count one event the rate limits turned away."""
    store.incr_multi([(LIMITED, project_id)])


def sparklines(project_ids: list[int]) -> dict[int, list[tuple[int, int]]]:
    """Every project's last hour in 10 s buckets: one get_range for the whole list."""
    start, end = window(FINE, HOUR_POINTS)
    return store.get_range(EVENTS, project_ids, start, end, rollup=FINE)


@dataclass
class Dashboard:
    """Everything a project page shows."""

    hour: list[tuple[int, int]]
    day: list[tuple[int, int]]
    levels: list[tuple[str, int]]
    distinct_users: int
    top_messages: list[tuple[str, float]]
    limited: int
    accepted_day: int


def dashboard(project_id: int) -> Dashboard:
    """One project's charts, each from one tsdb call."""
    hour_start, hour_end = window(FINE, HOUR_POINTS)
    day_start, day_end = window(COARSE, DAY_POINTS)
    hour = store.get_range(EVENTS, [project_id], hour_start, hour_end, rollup=FINE)[project_id]
    day = store.get_range(EVENTS, [project_id], day_start, day_end, rollup=COARSE)[project_id]
    level_keys = [level_key(project_id, level) for level in LEVEL_NAMES]
    level_sums = store.get_sums(LEVELS, level_keys, day_start, day_end, rollup=COARSE)
    now_hour = window(COARSE, 1)
    users = store.get_distinct_counts_totals(USERS, [project_id], *now_hour)[project_id]
    top = store.get_most_frequent(MESSAGES, [project_id], *now_hour, limit=10)[project_id]
    limited = store.get_sums(LIMITED, [project_id], day_start, day_end, rollup=COARSE)
    return Dashboard(
        hour=hour,
        day=day,
        levels=[(name, level_sums[key]) for name, key in zip(LEVEL_NAMES, level_keys, strict=True)],
        distinct_users=users,
        top_messages=top,
        limited=limited[project_id],
        accepted_day=sum(count for _, count in day),
    )


def as_json(board: Dashboard) -> dict[str, Any]:
    """The dashboard as JSON-ready data (the page embeds nothing else)."""
    return {
        "accepted_day": board.accepted_day,
        "limited": board.limited,
        "distinct_users": board.distinct_users,
        "levels": dict(board.levels),
    }
