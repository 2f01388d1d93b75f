"""System checks for RB_RATELIMIT (ids E101-E110), through django_rb's check machinery."""

from __future__ import annotations

from django_rb.checks import problems_check, register_checks

from . import conf

#: RB_RATELIMIT: ids E101-E110.
check_ratelimit = problems_check(conf.settings_problems, "check_ratelimit")


def register() -> None:
    """Register the checks; called from ``RateLimitConfig.ready()``."""
    register_checks(check_ratelimit)
