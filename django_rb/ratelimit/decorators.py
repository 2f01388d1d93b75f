"""``@ratelimit`` and ``is_ratelimited``: django-ratelimit's surface on GCRA buckets.

Stacked ``@ratelimit`` decorators fold into one wrapper holding every spec, so a request costs
one ``consume_many`` round however many limits a view has. Arguments are checked when the
decorator is built (at import time): a bad rate or key type never waits for a request.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from .keys import resolve_key
from .limiter import as_limit
from .rates import Rate, RateSpec, check_cost, validate_spec
from .verdicts import ALL, Spec, adecide, decide, respond

View = TypeVar("View", bound=Callable[..., Any])

_ATTRIBUTE = "_rb_ratelimit"


@dataclass(frozen=True)
class _Stack:
    """The specs of one wrapper and the view it wraps (to fold later decorators in)."""

    view: Callable[..., Any]
    specs: tuple[_Pending, ...]
    wrapper: Any = None


@dataclass(frozen=True)
class _Pending:
    """A spec whose group may still default to the view's dotted name."""

    group: str | None
    spec_args: dict[str, Any]

    def build(self, view: Callable[..., Any]) -> Spec:
        group = self.group or f"{view.__module__}.{view.__qualname__}"
        return Spec(group=group, **self.spec_args)


def _methods(method: Any) -> frozenset[str] | None:
    if method is ALL:
        return None
    if isinstance(method, str):
        return frozenset([method.upper()])
    if isinstance(method, Iterable):
        return frozenset(m.upper() for m in method)
    raise TypeError(f"method={method!r}: give ALL, UNSAFE, a method name or a list of them.")


def _pending(
    key: Any, rate: RateSpec, burst: int | None, method: Any, group: str | None, block: bool,
    cost: int,
) -> _Pending:  # fmt: skip
    validate_spec(rate, burst)
    if isinstance(rate, str | Rate):  # a fixed rate: check the cost against it now too
        as_limit("check", rate, burst, cost)
    key_function, key_label = resolve_key(key)
    spec_args = {
        "key": key_function,
        "key_label": key_label,
        "rate": rate,
        "burst": burst,
        "methods": _methods(method),
        "cost": check_cost(cost),
        "block": bool(block),
    }
    if group is not None and (not isinstance(group, str) or not group):
        raise ValueError(f"group={group!r}: a group is a non-empty string.")
    return _Pending(group, spec_args)


def ratelimit(
    key: Any = "ip",
    rate: RateSpec = None,
    burst: int | None = None,
    method: Any = ALL,
    group: str | None = None,
    block: bool = True,
    cost: int = 1,
) -> Callable[[View], View]:
    """Limit a view (function, ``method_decorator``-wrapped method, or ``async def``); blocked
    requests get a 429 with Retry-After and the RateLimit fields."""
    pending = _pending(key, rate, burst, method, group, block, cost)

    def decorator(view: View) -> View:
        stack = getattr(view, _ATTRIBUTE, None)
        if isinstance(stack, _Stack) and stack.wrapper is view:
            inner, pendings = stack.view, (*stack.specs, pending)  # fold into one round
        else:
            inner, pendings = view, (pending,)
        specs = tuple(p.build(inner) for p in pendings)
        wrapper = _wrap(inner, specs)
        setattr(wrapper, _ATTRIBUTE, _Stack(inner, pendings, wrapper))
        return wrapper  # type: ignore[return-value]

    return decorator


def _wrap(view: Callable[..., Any], specs: tuple[Spec, ...]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
            verdict = await adecide(request, specs)
            if verdict.unavailable or verdict.blocked:
                return respond(request, verdict, lambda: None)
            return await view(request, *args, **kwargs)

        return async_wrapper

    @functools.wraps(view)
    def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
        verdict = decide(request, specs)
        return respond(request, verdict, lambda: view(request, *args, **kwargs))

    return wrapper


def is_ratelimited(
    request: Any,
    group: str | None = None,
    key: Any = "ip",
    rate: RateSpec = None,
    method: Any = ALL,
    increment: bool = True,
    burst: int | None = None,
    cost: int = 1,
) -> bool:
    """Check (and with ``increment`` spend) a limit outside a decorator; True when over it.

    ``group`` defaults to the resolved view's dotted name. Sets ``request.limited`` and adds
    the decision to ``request.ratelimit`` (so the middleware can send the fields).
    """
    return decide(
        request, [_one_spec(request, group, key, rate, method, burst, cost)], increment
    ).limited


async def ais_ratelimited(
    request: Any,
    group: str | None = None,
    key: Any = "ip",
    rate: RateSpec = None,
    method: Any = ALL,
    increment: bool = True,
    burst: int | None = None,
    cost: int = 1,
) -> bool:
    """``is_ratelimited`` for async views, on the asyncio engine."""
    spec = _one_spec(request, group, key, rate, method, burst, cost)
    return (await adecide(request, [spec], increment)).limited


def _one_spec(
    request: Any, group: str | None, key: Any, rate: RateSpec, method: Any, burst: int | None,
    cost: int,
) -> Spec:  # fmt: skip
    if group is None:
        match = getattr(request, "resolver_match", None)
        group = getattr(match, "_func_path", None)
        if not group:
            raise ValueError("is_ratelimited() needs a group outside a resolved view.")
    return Spec(group=group, **_pending(key, rate, burst, method, group, True, cost).spec_args)
