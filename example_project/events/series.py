"""What the site counts and how the dashboards read it back, on ``django_rb.tsdb``.

An accepted event's writes (counters, distinct user, top message) go out together in one
round, and so do all of a dashboard's reads: the tsdb calls' plans are run side by side with
``rounds.together``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django_rb.tsdb import tsdb
from django_rb.tsdb.rounds import together

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
    """Count one accepted event (totals, level, release, distinct user, top message): one
    round for all of it."""
    store = tsdb.get()
    counters = [
        (EVENTS, project_id),
        (LEVELS, level_key(project_id, event["level"])),
        (RELEASES, release_key(project_id, event["release"])),
    ]
    messages = [(MESSAGES, {project_id: {event["message"]: 1.0}})]
    store.run(
        together(
            [
                store.plan_incr_multi(counters, timestamp=timestamp),
                store.plan_record(USERS, project_id, [event["user"]], timestamp=timestamp),
                store.plan_record_frequency_multi(messages, timestamp=timestamp),
            ]
        )
    )


def record_limited(project_id: int) -> None:
    """Count one event the rate limits turned away."""
    tsdb.incr_multi([(LIMITED, project_id)])


def sparklines(project_ids: list[int]) -> dict[int, list[tuple[int, int]]]:
    """Every project's last hour in 10 s buckets: one get_range for the whole list."""
    start, end = window(FINE, HOUR_POINTS)
    return dict(tsdb.get_range(EVENTS, project_ids, start, end, rollup=FINE))


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
    """One project's charts and figures, every read in one round."""
    store = tsdb.get()
    hour_window = window(FINE, HOUR_POINTS)
    day_window = window(COARSE, DAY_POINTS)
    this_hour = window(COARSE, 1)
    level_keys = [level_key(project_id, level) for level in LEVEL_NAMES]
    one = [project_id]
    hour, day, levels, users, top, limited = store.run(
        together(
            [
                store.plan_get_range(EVENTS, one, *hour_window, rollup=FINE),
                store.plan_get_range(EVENTS, one, *day_window, rollup=COARSE),
                store.plan_get_sums(LEVELS, level_keys, *day_window, rollup=COARSE),
                store.plan_get_distinct_counts_totals(USERS, one, *this_hour, rollup=COARSE),
                store.plan_get_most_frequent(MESSAGES, one, *this_hour, rollup=COARSE, limit=10),
                store.plan_get_sums(LIMITED, one, *day_window, rollup=COARSE),
            ]
        )
    )
    return Dashboard(
        hour=hour[project_id],
        day=day[project_id],
        levels=[(name, levels[key]) for name, key in zip(LEVEL_NAMES, level_keys, strict=True)],
        distinct_users=users[project_id],
        top_messages=top[project_id],
        limited=limited[project_id],
        accepted_day=sum(count for _, count in day[project_id]),
    )


def as_json(board: Dashboard) -> dict[str, Any]:
    """The dashboard as JSON-ready data (the page embeds nothing else)."""
    return {
        "accepted_day": board.accepted_day,
        "limited": board.limited,
        "distinct_users": board.distinct_users,
        "levels": dict(board.levels),
    }
