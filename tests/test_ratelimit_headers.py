"""RateLimit-Policy / RateLimit / Retry-After, parsed with a Structured Fields parser, and
the middleware that adds them to every response of a limited view."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import http_sfv
import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from django_rb.ratelimit import Ratelimited, ratelimit
from django_rb.ratelimit.headers import field_values, sf_string
from django_rb.ratelimit.limiter import Decision
from django_rb.ratelimit.middleware import RateLimitMiddleware
from django_rb.ratelimit.rates import parse_rate

factory = RequestFactory()


@pytest.fixture
def rl(rb_settings: Any) -> Iterator[Any]:
    rb_settings.RB_RATELIMIT = {}
    yield rb_settings


def get() -> HttpRequest:
    request = factory.get("/", REMOTE_ADDR="10.0.0.1")
    request.user = AnonymousUser()
    return request


def parse(value: str) -> list[tuple[str, dict[str, Any]]]:
    parsed = http_sfv.List()
    parsed.parse(value.encode())
    return [(item.value, dict(item.params)) for item in parsed]


@ratelimit(rate="3/m", group="per-minute")
@ratelimit(rate="10/s", burst=20, group="per-second")
def limited(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def test_blocked_response_fields(rl: Any) -> None:
    for _ in range(3):
        assert limited(get()).status_code == 200
    response = limited(get())
    assert response.status_code == 429
    policy = parse(response["RateLimit-Policy"])
    state = dict(parse(response["RateLimit"]))
    assert policy == [("per-second", {"q": 20, "w": 2}), ("per-minute", {"q": 3, "w": 60})]
    assert state["per-minute"]["r"] == 0
    assert state["per-minute"]["t"] == 20  # a token every 20 s
    assert state["per-second"]["r"] in (16, 17)  # 17 when both buckets share a node
    retry_after = int(response["Retry-After"])
    assert retry_after >= max(params["t"] for params in state.values() if params["r"] == 0)
    assert retry_after == 20
    assert "RateLimit-Limit" not in response  # the pre-07 draft's fields are not sent


def test_middleware_adds_fields_to_allowed_responses(rl: Any) -> None:
    middleware = RateLimitMiddleware(limited)
    response = middleware(get())
    assert response.status_code == 200
    state = dict(parse(response["RateLimit"]))
    assert state["per-minute"] == {"r": 2, "t": 20}
    assert state["per-second"]["r"] == 19
    assert [name for name, _ in parse(response["RateLimit-Policy"])] == [
        "per-second",
        "per-minute",
    ]


def test_middleware_leaves_unlimited_views_alone(rl: Any) -> None:
    response = RateLimitMiddleware(lambda request: HttpResponse("plain"))(get())
    assert "RateLimit" not in response and "RateLimit-Policy" not in response


def test_middleware_turns_ratelimited_into_429(rl: Any) -> None:
    rl.RB_RATELIMIT = {"RAISE": True}
    view = ratelimit(rate="1/m", group="raised")(lambda request: HttpResponse("ok"))
    view(get())
    middleware = RateLimitMiddleware(view)
    request = get()
    with pytest.raises(Ratelimited) as caught:
        view(request)
    response = middleware.process_exception(request, caught.value)
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 60
    assert dict(parse(response["RateLimit"]))["raised"]["r"] == 0
    assert middleware.process_exception(request, ValueError("other")) is None


def test_async_middleware(rl: Any, arun: Any) -> None:
    @ratelimit(rate="5/m", group="async-mw")
    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    middleware = RateLimitMiddleware(view)
    assert asyncio.iscoroutinefunction(middleware)
    response = arun(middleware(get()))
    assert dict(parse(response["RateLimit"]))["async-mw"]["r"] == 4


def test_names_are_escaped_strings() -> None:
    assert sf_string('we"ird\\name') == '"we\\"ird\\\\name"'
    decision = Decision("k", parse_rate("1/s"), True, 1, 1, 0.0, 0.0, 'é"x')
    values = field_values([decision])
    assert parse(values["RateLimit"]) == [('?"x', {"r": 1, "t": 0})]


def test_unlimited_and_empty_lists_send_nothing() -> None:
    free = Decision("k", None, True, None, None, 0.0, 0.0, "free")
    assert field_values([free]) == {}
    assert field_values([]) == {}
