"""From a request and its limit specs to one verdict, in one consume_many round.

Shared by ``@ratelimit``, ``is_ratelimited`` and the middleware: which limits apply to this
request (method, rate, key), the round itself, what a node failure means (``FAIL_OPEN``), and
the responses for a blocked request (429, the ``VIEW`` setting, or ``Ratelimited``) or an
unavailable limiter (503).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpResponse

from .conf import RateLimitSettings, get_settings
from .headers import add_fields
from .keys import PURE_KEYS, PURE_PREFIXES, KeyFunction
from .limiter import Decision, Limit, LimiterUnavailable, RateLimiter
from .rates import BadRate, RateSpec, parse_rate

logger = logging.getLogger("django_rb.ratelimit")

#: ``method=ALL``: every HTTP method counts.
ALL = None
#: ``method=UNSAFE``: only methods that change state.
UNSAFE = ("DELETE", "PATCH", "POST", "PUT")


class Ratelimited(PermissionDenied):
    """Raised for a blocked request when ``RB_RATELIMIT["RAISE"]`` is True; ``decisions``
    holds every limit's answer (the middleware turns it into a 429)."""

    def __init__(self, decisions: Sequence[Decision] = ()) -> None:
        self.decisions = list(decisions)
        super().__init__("Rate limit exceeded.")


@dataclass(frozen=True)
class Spec:
    """One limit as declared on a view (by ``@ratelimit`` or ``is_ratelimited``)."""

    group: str
    key: KeyFunction
    key_label: str
    rate: RateSpec
    burst: int | None = None
    methods: frozenset[str] | None = None
    cost: int = 1
    block: bool = True

    @property
    def pure(self) -> bool:
        """Deciding this spec reads only the request itself (no user, no callables), so an
        async view may run it on the event loop."""
        pure_key = self.key_label in PURE_KEYS or self.key_label.startswith(PURE_PREFIXES)
        rate = get_settings().rates.get(self.group, self.rate)
        return pure_key and not callable(rate)

    def limit_for(self, request: Any, config: RateLimitSettings) -> Limit | None:
        """This request's limit, or None when it does not apply (method, rate None, key None)."""
        if self.methods is not None and request.method not in self.methods:
            return None
        rate_spec = config.rates.get(self.group, self.rate)
        if callable(rate_spec):
            rate_spec = rate_spec(self.group, request)
        if rate_spec is None:
            return None
        value = self.key(self.group, request)
        if value is None:
            return None
        try:
            rate = parse_rate(rate_spec, self.burst)
        except BadRate as exc:
            raise ImproperlyConfigured(f"ratelimit group {self.group!r}: {exc}") from exc
        if not rate.blocks_everything and self.cost > rate.burst:
            raise ImproperlyConfigured(
                f"ratelimit group {self.group!r}: cost {self.cost} exceeds the burst of {rate}."
            )
        return Limit(
            bucket_key(self.group, self.key_label, value, rate), rate, self.cost, self.group
        )


def bucket_key(group: str, key_label: str, value: Any, rate: Any) -> str:
    """``group:digest``: the digest keeps any client-sent value short and free of odd bytes;
    the rate is part of it, so two limits with one key and different rates stay apart."""
    raw = f"{key_label}\n{value}\n{rate}".encode("utf-8", "surrogatepass")
    return f"{group}:{hashlib.blake2b(raw, digest_size=12).hexdigest()}"


@dataclass
class Verdict:
    """What the limits say about one request."""

    decisions: list[Decision] = field(default_factory=list)
    #: some limit is over (``request.limited``)
    limited: bool = False
    #: some limit with ``block=True`` is over
    blocked: bool = False
    #: some node could not answer and FAIL_OPEN is False
    unavailable: bool = False


#: What a round answered: a decision per applying limit (None where its node failed), and
#: the failure when there was one.
Answers = tuple[list[Decision | None], LimiterUnavailable | None]


def applying(request: Any, specs: Sequence[Spec]) -> list[tuple[Spec, Limit]]:
    """The limits this request is subject to (none when ENABLE is False)."""
    config = get_settings()
    if not config.enable:
        return []
    return [(spec, limit) for spec in specs if (limit := spec.limit_for(request, config))]


def limiter() -> RateLimiter:
    """The limiter the settings describe."""
    config = get_settings()
    return RateLimiter(config.cluster, config.prefix, config.timeout)


def decide(request: Any, specs: Sequence[Spec], spend: bool = True) -> Verdict:
    """Decide every spec that applies to ``request`` in one round and record it on the
    request (``request.limited``, ``request.ratelimit``)."""
    found = applying(request, specs)
    answers: Answers = ([], None)
    if found:
        try:
            answers = (list(limiter().run([limit for _, limit in found], spend)), None)
        except LimiterUnavailable as exc:
            answers = (exc.decisions, exc)
    return conclude(request, found, answers)


async def adecide(request: Any, specs: Sequence[Spec], spend: bool = True) -> Verdict:
    """``decide`` on the asyncio engine; the specs' key and rate functions run in one thread
    hop only when some may touch the database (user keys, callables)."""
    if all(spec.pure for spec in specs):
        found = applying(request, specs)
    else:
        found = await sync_to_async(applying)(request, specs)
    answers: Answers = ([], None)
    if found:
        try:
            answers = (list(await limiter().arun([limit for _, limit in found], spend)), None)
        except LimiterUnavailable as exc:
            answers = (exc.decisions, exc)
    return conclude(request, found, answers)


def conclude(request: Any, found: list[tuple[Spec, Limit]], answers: Answers) -> Verdict:
    """The verdict from a round's answers (FAIL_OPEN for failed nodes), recorded on the
    request."""
    decisions, failure = answers
    verdict = Verdict()
    if failure is not None:
        _warn_unavailable(failure)
        verdict.unavailable = not get_settings().fail_open
    for (spec, _limit), decision in zip(found, decisions, strict=True):
        if decision is None:
            continue  # its node failed: FAIL_OPEN lets it through
        verdict.decisions.append(decision)
        if not decision.allowed:
            verdict.limited = True
            verdict.blocked = verdict.blocked or spec.block
    verdict.limited = verdict.limited or verdict.unavailable
    request.limited = getattr(request, "limited", False) or verdict.limited
    request.ratelimit = [*getattr(request, "ratelimit", ()), *verdict.decisions]
    return verdict


def blocked_response(request: Any, decisions: Sequence[Decision]) -> Any:
    """The answer to a blocked request: 429 with the fields, the VIEW setting's response, or
    ``Ratelimited`` raised when RAISE is set."""
    config = get_settings()
    if config.raise_blocked:
        raise Ratelimited(decisions)
    return render_blocked(request, Ratelimited(decisions), config)


def render_blocked(request: Any, exc: Ratelimited, config: RateLimitSettings | None = None) -> Any:
    """The 429 (or the VIEW's response) for ``exc``, with Retry-After and the fields."""
    config = config or get_settings()
    if config.view is not None:
        response = config.view(request, exc)
    else:
        response = HttpResponse(
            "Too many requests.\n", status=429, content_type="text/plain; charset=utf-8"
        )
    return add_fields(response, exc.decisions, blocked=True)


def unavailable_response() -> HttpResponse:
    """FAIL_OPEN is False and a node holding a limit did not answer."""
    response = HttpResponse(
        "Rate limiter unavailable.\n", status=503, content_type="text/plain; charset=utf-8"
    )
    response["Retry-After"] = "1"
    return response


def respond(request: Any, verdict: Verdict, view: Callable[[], Any]) -> Any:
    """Run ``view`` unless the verdict blocks the request."""
    if verdict.unavailable:
        return unavailable_response()
    if verdict.blocked:
        return blocked_response(request, verdict.decisions)
    return view()


class _WarningThrottle:
    """At most one warning per ``interval`` seconds per process, counting the ones skipped."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._skipped = 0

    def __call__(self, message: str) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.interval:
                self._skipped += 1
                return
            skipped, self._skipped, self._last = self._skipped, 0, now
        more = f" ({skipped} more since the last warning)" if skipped else ""
        logger.warning("%s%s", message, more)


_throttle = _WarningThrottle()


def _warn_unavailable(exc: LimiterUnavailable) -> None:
    mode = "letting requests through (FAIL_OPEN)" if get_settings().fail_open else "answering 503"
    _throttle(f"Rate limits undecided, {mode}: {exc}")
