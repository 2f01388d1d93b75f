"""Rates: the grammar, bucket sizes, and errors that name the mistake."""

from __future__ import annotations

import pytest

from django_rb.ratelimit import BadRate, Rate, parse_rate
from django_rb.ratelimit.rates import validate_spec


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [
        ("10/s", 10, 1),
        ("100/m", 100, 60),
        ("1000/h", 1000, 3600),
        ("5000/d", 5000, 86400),
        ("100/5m", 100, 300),
        ("3/10s", 3, 10),
        (" 7 / 2h ", 7, 7200),
        ("5/minute", 5, 60),
        ("0/s", 0, 1),
    ],
)
def test_grammar(text: str, count: int, period: int) -> None:
    rate = parse_rate(text)
    assert (rate.count, rate.period, rate.burst) == (count, period, count)


def test_burst_defaults_to_count_and_can_be_set() -> None:
    assert parse_rate("10/s").burst == 10
    assert parse_rate("10/s", burst=25).burst == 25
    assert parse_rate(Rate(10, 1, 10), burst=3) == Rate(10, 1, 3)


def test_interval_and_window() -> None:
    rate = parse_rate("100/5m")
    assert rate.interval == 3.0
    assert rate.window == 300
    assert parse_rate("10/s", burst=20).window == 2  # an empty bucket of 20 refills in 2 s


def test_zero_rate_blocks_everything() -> None:
    assert parse_rate("0/s").blocks_everything
    assert parse_rate("5/s", burst=0).blocks_everything
    assert not parse_rate("1/d").blocks_everything


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ten/s", "does not parse"),
        ("10", "does not parse"),
        ("10/", "does not parse"),
        ("10/w", "unknown unit 'w'"),
        ("10/0s", "longer than zero"),
        ("-1/s", "does not parse"),
    ],
)
def test_bad_text_names_the_mistake(text: str, says: str) -> None:
    with pytest.raises(BadRate, match=says):
        parse_rate(text)


def test_bad_types_and_bursts() -> None:
    with pytest.raises(BadRate, match="not int"):
        parse_rate(10)  # type: ignore[arg-type]
    with pytest.raises(BadRate, match="burst"):
        parse_rate("10/s", burst=-1)
    with pytest.raises(BadRate, match="burst"):
        parse_rate("10/s", burst=2.5)  # type: ignore[arg-type]


def test_validate_spec_accepts_none_and_callables() -> None:
    validate_spec(None)
    validate_spec(lambda group, request: "1/s")
    with pytest.raises(BadRate):
        validate_spec("1/x")


def test_text_round_trip() -> None:
    assert str(parse_rate("100/5m")) == "100/5m"
    assert str(parse_rate("10/s", burst=20)) == "10/s burst 20"
    assert parse_rate(str(parse_rate("3/10s"))) == parse_rate("3/10s")
