"""RB_TSDB: the default store's settings, read and validated in one place.

``RB_TSDB = {"CLUSTER": "default", "ROLLUPS": [(10, 360), ...], "PREFIX": "ts", "VNODES": 64,
"FREQUENCY_CAPACITY": 1000, "TIMEOUT": None}``; every key is optional, and so is the setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from difflib import get_close_matches
from typing import Any

from django_rb import conf as core_conf
from django_rb.conf import Problem

from .errors import TSDBArgumentError

SETTING = "RB_TSDB"

#: RB_TSDB key -> TSDB() argument
OPTIONS = {
    "CLUSTER": "cluster",
    "ROLLUPS": "rollups",
    "PREFIX": "prefix",
    "VNODES": "vnodes",
    "FREQUENCY_CAPACITY": "frequency_capacity",
    "TIMEOUT": "timeout",
}


def tsdb_setting() -> Any:
    """The raw RB_TSDB value ({} when unset)."""
    from django.conf import settings  # noqa: PLC0415

    return getattr(settings, SETTING, {})


def store_options(value: Any) -> tuple[dict[str, Any], list[Problem]]:
    """TSDB() keyword arguments from an RB_TSDB value, and what is wrong with it."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        return {}, [
            Problem(
                "E201",
                f"{SETTING} must be a dict, not {type(value).__name__}.",
                f'Write it as {SETTING} = {{"CLUSTER": "default", "ROLLUPS": [(10, 360)]}}.',
                SETTING,
            )
        ]
    problems = []
    for key in value:
        if key not in OPTIONS:
            close = get_close_matches(str(key), OPTIONS, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(OPTIONS)}."
            problems.append(
                Problem("E202", f"{SETTING} has an unknown key {key!r}.", hint, SETTING)
            )
    options = {OPTIONS[k]: v for k, v in value.items() if k in OPTIONS}
    cluster = options.get("cluster", core_conf.DEFAULT_CLUSTER)
    if not isinstance(cluster, str) or cluster not in core_conf.cluster_names():
        known = ", ".join(core_conf.cluster_names()) or "none"
        problems.append(
            Problem(
                "E203",
                f"{SETTING}['CLUSTER'] names {cluster!r}, which is not a cluster in RB_CLUSTERS.",
                f"Name one of the configured clusters ({known}), or add it to RB_CLUSTERS.",
                SETTING,
            )
        )
    try:
        from .store import TSDB  # noqa: PLC0415

        TSDB(**{k: v for k, v in options.items() if k != "cluster"})
    except TSDBArgumentError as exc:
        problems.append(
            Problem("E204", f"{SETTING} has a bad value: {exc}", "See docs/tsdb.md.", SETTING)
        )
    return options, problems


def settings_problems() -> list[Problem]:
    """Everything wrong with RB_TSDB, for the system checks (ids E201-E204)."""
    return store_options(tsdb_setting())[1]
