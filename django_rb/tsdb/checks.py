"""System checks for RB_TSDB (ids django_rb.E201-E204)."""

from __future__ import annotations

from django_rb.checks import problems_check, register_checks

from . import conf

check_tsdb = problems_check(conf.settings_problems, "check_tsdb")


def register() -> None:
    """Register the RB_TSDB checks; called from ``TSDBConfig.ready()``."""
    register_checks(check_tsdb)
