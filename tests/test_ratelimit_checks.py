"""RB_RATELIMIT system checks: ids, hints, and the same reading the decorators use."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_rb.ratelimit.conf import get_settings, settings_problems


def ids(value: Any) -> list[str]:
    with override_settings(RB_RATELIMIT=value):
        return [problem.code for problem in settings_problems()]


def test_defaults_are_clean() -> None:
    assert ids({}) == []
    with override_settings(RB_RATELIMIT={}):
        config = get_settings()
    assert (config.cluster, config.fail_open, config.ipv6_mask, config.prefix) == (
        "default",
        True,
        64,
        "rl",
    )


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("fast", "E101"),
        ({"FAIL_OPNE": True}, "E102"),
        ({"CLUSTER": "nope"}, "E103"),
        ({"ENABLE": "yes"}, "E104"),
        ({"FAIL_OPEN": 1}, "E104"),
        ({"IP_META_KEY": ""}, "E105"),
        ({"IP_META_KEY": "no.such.module.func"}, "E105"),
        ({"IPV6_MASK": 129}, "E106"),
        ({"IPV6_MASK": "64"}, "E106"),
        ({"IPV6_MASK": True}, "E106"),
        ({"VIEW": "no.such.view"}, "E107"),
        ({"VIEW": 3}, "E107"),
        ({"PREFIX": "r l"}, "E108"),
        ({"RATES": {"search": "10/fortnight"}}, "E109"),
        ({"RATES": ["10/s"]}, "E109"),
        ({"TIMEOUT": 0}, "E110"),
        ({"TIMEOUT": "1"}, "E110"),
    ],
)
def test_each_mistake_has_its_id(value: Any, code: str) -> None:
    assert ids(value) == [code]


def test_hints_help() -> None:
    with override_settings(RB_RATELIMIT={"FAIL_OPNE": True, "CLUSTER": "nope"}):
        problems = {p.code: p for p in settings_problems()}
    assert "FAIL_OPEN" in problems["E102"].hint
    assert "'default'" in problems["E103"].hint


def test_registered_under_the_django_rb_tag() -> None:
    with override_settings(RB_RATELIMIT={"IPV6_MASK": -1}):
        messages = checks.run_checks(tags=["django_rb"])
    found = [m for m in messages if m.id == "django_rb.E106"]
    assert len(found) == 1 and found[0].is_serious() and found[0].hint


def test_get_settings_refuses_bad_settings_and_follows_changes() -> None:
    with override_settings(RB_RATELIMIT={"IPV6_MASK": 200}):
        with pytest.raises(ImproperlyConfigured, match=r"IPV6_MASK.*django_rb.E106"):
            get_settings()
    with override_settings(RB_RATELIMIT={"PREFIX": "x"}):
        assert get_settings().prefix == "x"
    assert get_settings().prefix == "rl"
