"""@ratelimit and is_ratelimited on real nodes: key types, IPv6, stacking, blocking modes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.utils.decorators import method_decorator
from django.views import View

from django_rb.ratelimit import (
    UNSAFE,
    BadRate,
    Ratelimited,
    ais_ratelimited,
    is_ratelimited,
    ratelimit,
)
from django_rb.ratelimit.keys import BadKey, mask_ip

from .ratelimit_support import delta, script_calls

factory = RequestFactory()


@pytest.fixture
def rl(rb_settings: Any) -> Iterator[Any]:
    """Settings with RB_RATELIMIT on the shared nodes."""
    rb_settings.RB_RATELIMIT = {"CLUSTER": "default"}
    yield rb_settings


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def get(path: str = "/", ip: str = "10.0.0.1", user: Any = None, **extra: Any) -> HttpRequest:
    request = factory.get(path, REMOTE_ADDR=ip, **extra)
    request.user = user or AnonymousUser()
    return request


def statuses(view: Any, requests: list[HttpRequest]) -> list[int]:
    return [view(request).status_code for request in requests]


def test_blocks_with_429_after_the_burst(rl: Any) -> None:
    view = ratelimit(key="ip", rate="3/m")(ok)
    assert statuses(view, [get() for _ in range(4)]) == [200, 200, 200, 429]
    blocked = view(get())
    assert int(blocked["Retry-After"]) == 20
    assert "RateLimit" in blocked and "RateLimit-Policy" in blocked
    assert view(get(ip="10.0.0.2")).status_code == 200  # another client, another bucket


def test_bad_rate_and_key_fail_at_decoration_time() -> None:
    with pytest.raises(BadRate):
        ratelimit(rate="10/fortnight")
    with pytest.raises(BadKey, match="not a known key"):
        ratelimit(key="ipaddress", rate="1/s")
    with pytest.raises(BadKey, match="prefixed kinds"):
        ratelimit(key="cookie:x", rate="1/s")
    with pytest.raises(BadRate, match="cost"):
        ratelimit(rate="1/s", cost=-2)
    with pytest.raises(BadRate, match="never be allowed"):
        ratelimit(rate="3/s", cost=4)
    with pytest.raises(TypeError, match="method"):
        ratelimit(rate="1/s", method=5)


def test_rate_none_never_limits(rl: Any, rb_nodes: list[Any]) -> None:
    view = ratelimit(rate=None)(ok)
    before = script_calls(rb_nodes)
    assert statuses(view, [get() for _ in range(5)]) == [200] * 5
    assert delta(before, script_calls(rb_nodes)) == [0, 0, 0, 0]


def test_zero_rate_always_blocks(rl: Any) -> None:
    assert ratelimit(rate="0/s")(ok)(get()).status_code == 429


def test_callable_rate_per_request(rl: Any) -> None:
    def rate(group: str, request: HttpRequest) -> str | None:
        return None if request.GET.get("vip") else "1/m"

    view = ratelimit(rate=rate)(ok)
    assert statuses(view, [get(), get()]) == [200, 429]
    assert view(get("/?vip=1")).status_code == 200
    bad = ratelimit(rate=lambda g, r: "lots")(ok)
    with pytest.raises(ImproperlyConfigured, match="does not parse"):
        bad(get())


def test_user_key(rl: Any) -> None:
    view = ratelimit(key="user", rate="1/m")(ok)
    alice, bob = User(pk=1, username="alice"), User(pk=2, username="bob")
    assert statuses(view, [get(user=alice), get(user=alice), get(user=bob)]) == [200, 429, 200]
    # every anonymous request shares one bucket
    assert statuses(view, [get(ip="10.1.1.1"), get(ip="10.2.2.2")]) == [200, 429]


def test_user_or_ip_key(rl: Any) -> None:
    view = ratelimit(key="user_or_ip", rate="1/m")(ok)
    alice = User(pk=1, username="alice")
    assert statuses(view, [get(user=alice, ip="10.0.0.9"), get(ip="10.0.0.9")]) == [200, 200]
    assert statuses(view, [get(ip="10.0.0.9"), get(user=alice)]) == [429, 429]
    assert view(get(ip="10.0.0.10")).status_code == 200


def test_header_get_and_post_keys(rl: Any) -> None:
    by_header = ratelimit(key="header:x-api-key", rate="1/m")(ok)
    assert statuses(
        by_header, [get(HTTP_X_API_KEY="a"), get(HTTP_X_API_KEY="a"), get(HTTP_X_API_KEY="b")]
    ) == [200, 429, 200]
    by_query = ratelimit(key="get:q", rate="1/m")(ok)
    assert statuses(by_query, [get("/?q=x"), get("/?q=x"), get("/?q=y")]) == [200, 429, 200]
    by_form = ratelimit(key="post:email", rate="1/m", method="POST")(ok)

    def post(email: str) -> HttpRequest:
        request = factory.post("/", {"email": email}, REMOTE_ADDR="10.0.0.1")
        request.user = AnonymousUser()
        return request

    assert statuses(by_form, [post("a@x"), post("a@x"), post("b@x")]) == [200, 429, 200]


def test_callable_and_dotted_keys(rl: Any) -> None:
    seen: list[str] = []

    def tenant(group: str, request: HttpRequest) -> str | None:
        seen.append(group)
        return request.GET.get("tenant")  # None: not limited

    view = ratelimit(key=tenant, rate="1/m", group="tenants")(ok)
    assert statuses(view, [get("/?tenant=t1"), get("/?tenant=t1"), get(), get()]) == [
        200,
        429,
        200,
        200,
    ]
    assert seen[0] == "tenants"
    dotted = ratelimit(key="tests.test_ratelimit_decorators.country_key", rate="1/m")(ok)
    assert statuses(dotted, [get(), get()]) == [200, 429]
    missing = ratelimit(key="tests.nowhere.key", rate="1/m")(ok)
    with pytest.raises(ImproperlyConfigured, match="does not import"):
        missing(get())


def country_key(group: str, request: HttpRequest) -> str:
    return "nl"


def test_ipv6_is_masked_to_the_prefix(rl: Any) -> None:
    view = ratelimit(key="ip", rate="1/m")(ok)
    assert view(get(ip="2001:db8:1:2::1")).status_code == 200
    assert view(get(ip="2001:db8:1:2:ffff::9")).status_code == 429  # same /64
    assert view(get(ip="2001:db8:1:3::1")).status_code == 200
    rl.RB_RATELIMIT = {"IPV6_MASK": 128}
    strict = ratelimit(key="ip", rate="1/m", group="strict")(ok)
    assert statuses(strict, [get(ip="2001:db8::1"), get(ip="2001:db8::2")]) == [200, 200]


def test_mask_ip() -> None:
    assert mask_ip("2001:db8:1:2:3:4:5:6", 64) == "2001:db8:1:2::/64"
    assert mask_ip("2001:db8:1:2:3:4:5:6", 48) == "2001:db8:1::/48"
    assert mask_ip("::ffff:192.0.2.7", 64) == "192.0.2.7"
    assert mask_ip("192.0.2.7", 64) == "192.0.2.7"
    assert mask_ip("not an address", 64) == mask_ip("another bad one", 64)


def test_ip_meta_key_setting_and_forwarded_for_ignored(rl: Any) -> None:
    view = ratelimit(key="ip", rate="1/m")(ok)
    first = get(ip="10.0.0.1", HTTP_X_FORWARDED_FOR="1.1.1.1")
    second = get(ip="10.0.0.1", HTTP_X_FORWARDED_FOR="2.2.2.2")
    assert statuses(view, [first, second]) == [200, 429]  # X-Forwarded-For is not trusted
    rl.RB_RATELIMIT = {"IP_META_KEY": "HTTP_X_REAL_IP"}
    proxied = ratelimit(key="ip", rate="1/m", group="proxied")(ok)
    assert statuses(proxied, [get(HTTP_X_REAL_IP="3.3.3.3"), get(HTTP_X_REAL_IP="4.4.4.4")]) == [
        200,
        200,
    ]
    with pytest.raises(ImproperlyConfigured, match="gave no address"):
        proxied(get())
    rl.RB_RATELIMIT = {"IP_META_KEY": lambda request: request.META["HTTP_X_CLIENT"]}
    by_callable = ratelimit(key="ip", rate="1/m", group="callable")(ok)
    assert statuses(by_callable, [get(HTTP_X_CLIENT="5.5.5.5"), get(HTTP_X_CLIENT="5.5.5.5")]) == [
        200,
        429,
    ]


def test_method_filter(rl: Any) -> None:
    view = ratelimit(rate="1/m", method=UNSAFE)(ok)

    def post() -> HttpRequest:
        request = factory.post("/", REMOTE_ADDR="10.0.0.1")
        request.user = AnonymousUser()
        return request

    assert statuses(view, [get(), get(), get()]) == [200, 200, 200]
    assert statuses(view, [post(), post()]) == [200, 429]


def test_stacked_decorators_are_one_round(rl: Any, rb_nodes: list[Any]) -> None:
    @ratelimit(key="ip", rate="100/m", group="g1")
    @ratelimit(key="ip", rate="2/m", group="g2")
    @ratelimit(key="header:x-api-key", rate="100/m", group="g3")
    @ratelimit(key="user_or_ip", rate="100/m", group="g4")
    @ratelimit(key="get:q", rate="100/m", group="g5")
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    before = script_calls(rb_nodes)
    response = view(get("/?q=1", HTTP_X_API_KEY="k"))
    calls = delta(before, script_calls(rb_nodes))
    assert response.status_code == 200
    assert sum(calls) == len([c for c in calls if c]) and max(calls) == 1  # one call per node
    assert view.__name__ == "view"
    assert view(get("/?q=1")).status_code == 200
    blocked = view(get("/?q=1"))
    assert blocked.status_code == 429
    names = blocked["RateLimit"]
    assert all(f'"g{i}"' in names for i in range(1, 6))


def test_same_group_and_key_with_two_rates(rl: Any) -> None:
    @ratelimit(rate="2/s", group="api")
    @ratelimit(rate="3/m", group="api")
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    assert statuses(view, [get() for _ in range(3)]) == [200, 200, 429]
    assert '"api#2"' in view(get())["RateLimit"]


def test_block_false_lets_the_view_decide(rl: Any) -> None:
    seen: list[tuple[bool, int]] = []

    @ratelimit(rate="1/m", block=False)
    def view(request: HttpRequest) -> HttpResponse:
        seen.append((request.limited, len(request.ratelimit)))  # type: ignore[attr-defined]
        return HttpResponse("ok")

    assert statuses(view, [get(), get()]) == [200, 200]
    assert seen == [(False, 1), (True, 1)]


def test_view_setting_renders_the_blocked_response(rl: Any) -> None:
    rl.RB_RATELIMIT = {"VIEW": "tests.test_ratelimit_decorators.slow_down"}
    view = ratelimit(rate="1/m")(ok)
    view(get())
    response = view(get())
    assert (response.status_code, response.content) == (429, b"slow down")
    assert response["Retry-After"] == "60"


def slow_down(request: HttpRequest, exception: Ratelimited) -> HttpResponse:
    assert exception.decisions and not exception.decisions[0].allowed
    return HttpResponse("slow down", status=429)


def test_raise_setting_raises_ratelimited(rl: Any) -> None:
    rl.RB_RATELIMIT = {"RAISE": True}
    view = ratelimit(rate="1/m")(ok)
    view(get())
    with pytest.raises(Ratelimited) as caught:
        view(get())
    from django.core.exceptions import PermissionDenied

    assert isinstance(caught.value, PermissionDenied)
    assert caught.value.decisions[0].retry_after == pytest.approx(60, abs=0.5)


def test_enable_false_turns_limits_off(rl: Any) -> None:
    rl.RB_RATELIMIT = {"ENABLE": False}
    seen: list[bool] = []

    @ratelimit(rate="0/s", block=False)
    def view(request: HttpRequest) -> HttpResponse:
        seen.append(request.limited)  # type: ignore[attr-defined]
        return HttpResponse("ok")

    assert ratelimit(rate="0/s")(ok)(get()).status_code == 200
    assert view(get()).status_code == 200
    assert seen == [False]


def test_rates_setting_overrides_a_group(rl: Any) -> None:
    rl.RB_RATELIMIT = {"RATES": {"search": "1/m"}}
    view = ratelimit(rate="100/m", group="search")(ok)
    assert statuses(view, [get(), get()]) == [200, 429]


class Dashboard(View):
    @method_decorator(ratelimit(rate="1/m"))
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("dash")


@method_decorator(
    [ratelimit(rate="1/m", group="cbv-a"), ratelimit(rate="5/m", group="cbv-b")], name="dispatch"
)
class Reports(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("reports")


def test_class_based_views(rl: Any, rb_nodes: list[Any]) -> None:
    view = Dashboard.as_view()
    assert statuses(view, [get(), get()]) == [200, 429]
    reports = Reports.as_view()
    before = script_calls(rb_nodes)
    first = reports(get())
    assert max(delta(before, script_calls(rb_nodes))) == 1  # a list of decorators: one round
    assert first.status_code == 200
    blocked = reports(get())
    assert blocked.status_code == 429
    assert '"cbv-a"' in blocked["RateLimit"] and '"cbv-b"' in blocked["RateLimit"]


def test_async_views(rl: Any, arun: Any) -> None:
    @ratelimit(rate="2/m", group="async")
    @ratelimit(rate="10/m", group="async-wide")
    async def view(request: HttpRequest) -> HttpResponse:
        await asyncio.sleep(0)
        return HttpResponse("async ok")

    assert asyncio.iscoroutinefunction(view)

    async def run() -> list[int]:
        return [(await view(get())).status_code for _ in range(3)]

    assert arun(run()) == [200, 200, 429]


def test_async_views_decide_on_the_event_loop(rl: Any, arun: Any) -> None:
    threads: dict[str, int] = {}

    def address(request: HttpRequest) -> str:
        threads["ip"] = threading.get_ident()
        return "10.9.9.9"

    def tenant(group: str, request: HttpRequest) -> str:
        threads["callable"] = threading.get_ident()
        return "t1"

    rl.RB_RATELIMIT = {"IP_META_KEY": address}

    @ratelimit(key="ip", rate="1/m", group="loop-ip")
    async def by_ip(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    @ratelimit(key=tenant, rate="1/m", group="loop-callable")
    async def by_tenant(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    async def run() -> list[int]:
        return [(await view(get())).status_code for view in (by_ip, by_ip, by_tenant, by_tenant)]

    assert arun(run()) == [200, 429, 200, 429]
    assert threads["ip"] == threading.get_ident()  # no thread hop for request-only keys
    assert threads["callable"] != threading.get_ident()  # user code may touch the database


def test_ais_ratelimited(rl: Any, arun: Any) -> None:
    async def run() -> list[bool]:
        return [await ais_ratelimited(get(), group="async-login", rate="1/m") for _ in range(2)]

    assert arun(run()) == [False, True]


def test_is_ratelimited(rl: Any) -> None:
    request = get()
    assert not is_ratelimited(request, group="login", rate="2/m")
    assert not is_ratelimited(get(), group="login", rate="2/m", increment=False)
    assert not is_ratelimited(get(), group="login", rate="2/m")
    over = get()
    assert is_ratelimited(over, group="login", rate="2/m", increment=False)
    assert over.limited  # type: ignore[attr-defined]
    assert over.ratelimit[0].remaining == 0  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="needs a group"):
        is_ratelimited(get(), rate="1/m")
    assert not is_ratelimited(get(), group="login", rate="2/m", method="POST")


def test_fail_open_lets_requests_through_and_warns(
    rl: Any, rb_nodes: list[Any], caplog: Any
) -> None:
    view = ratelimit(rate="1/m", group="open")(ok)
    for node in rb_nodes:
        node.stop()
    from django_rb.ratelimit import verdicts

    verdicts._throttle._last = float("-inf")
    with caplog.at_level("WARNING", logger="django_rb.ratelimit"):
        assert statuses(view, [get(), get(), get()]) == [200, 200, 200]
    warnings = [r for r in caplog.records if r.name == "django_rb.ratelimit"]
    assert len(warnings) == 1  # rate-limited: one per minute
    assert "FAIL_OPEN" in warnings[0].getMessage()


def test_fail_closed_answers_503(rl: Any, rb_nodes: list[Any]) -> None:
    rl.RB_RATELIMIT = {"FAIL_OPEN": False}
    view = ratelimit(rate="1/m", group="closed")(ok)
    assert view(get()).status_code == 200
    rb_nodes[0].stop()
    rb_nodes[1].stop()
    rb_nodes[2].stop()
    rb_nodes[3].stop()
    response = view(get())
    assert response.status_code == 503
    assert response["Retry-After"] == "1"


def test_one_dead_node_keeps_the_other_limits(rl: Any, rb_nodes: list[Any]) -> None:
    groups = [f"grp{i}" for i in range(12)]
    view = ok
    for group in groups:
        view = ratelimit(rate="1/m", group=group)(view)
    assert view(get()).status_code == 200
    rb_nodes[3].stop()
    response = view(get())  # the live nodes' limits still block
    assert response.status_code == 429


def test_a_stalled_node_never_hangs_the_view(rl: Any, rb_nodes: list[Any]) -> None:
    rl.RB_RATELIMIT = {"TIMEOUT": 0.3}
    view = ratelimit(rate="100/m", group="stalled")(ok)
    assert view(get()).status_code == 200  # connected
    for node in rb_nodes:
        node.pause()
    try:
        started = time.monotonic()
        assert view(get()).status_code == 200  # FAIL_OPEN
        assert time.monotonic() - started < 2.0
    finally:
        for node in rb_nodes:
            node.resume()


def test_fail_closed_under_a_stalled_node_answers_503_within_the_timeout(
    rl: Any, rb_nodes: list[Any]
) -> None:
    rl.RB_RATELIMIT = {"FAIL_OPEN": False, "TIMEOUT": 0.3}
    view = ratelimit(rate="100/m", group="stalled-closed")(ok)
    assert view(get()).status_code == 200
    for node in rb_nodes:
        node.pause()
    try:
        started = time.monotonic()
        response = view(get())
        assert time.monotonic() - started < 2.0
    finally:
        for node in rb_nodes:
            node.resume()
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert view(get()).status_code == 200  # the nodes are back: the limit answers again
