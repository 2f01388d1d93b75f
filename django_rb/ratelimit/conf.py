"""RB_RATELIMIT: read and validated in one place, for the decorators and the system checks.

``settings_problems()`` lists what is wrong (ids E101-E110); ``get_settings()`` gives the
validated values, cached until a setting changes, and raises ``ImproperlyConfigured`` naming the
first problem, so a check and a request never disagree about a setting.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from django_rb import conf as core_conf
from django_rb.conf import Problem

from .rates import BadRate, RateSpec, validate_spec

SETTING = "RB_RATELIMIT"

DEFAULTS: dict[str, Any] = {
    "CLUSTER": "default",
    "ENABLE": True,
    "FAIL_OPEN": True,
    "IP_META_KEY": "REMOTE_ADDR",
    "IPV6_MASK": 64,
    "VIEW": None,
    "RAISE": False,
    "PREFIX": "rl",
    "RATES": {},
    "TIMEOUT": None,
}


@dataclass(frozen=True)
class RateLimitSettings:
    """RB_RATELIMIT after validation, defaults filled in."""

    cluster: str = "default"
    enable: bool = True
    fail_open: bool = True
    ip_meta_key: str | Callable[[Any], str] = "REMOTE_ADDR"
    ipv6_mask: int = 64
    view: Callable[..., Any] | None = None
    raise_blocked: bool = False
    prefix: str = "rl"
    rates: Mapping[str, RateSpec] = field(default_factory=dict)
    timeout: float | None = None


def _raw() -> Any:
    return getattr(settings, SETTING, {})


def settings_problems() -> list[Problem]:
    """Everything wrong with RB_RATELIMIT, for ``manage.py check``."""
    return _read(_raw())[1]


def _problem(code: str, message: str, hint: str) -> Problem:
    return Problem(code, message, hint, SETTING)


def _read(value: Any) -> tuple[RateLimitSettings | None, list[Problem]]:
    if not isinstance(value, Mapping):
        return None, [
            _problem("E101", f"{SETTING} is a {type(value).__name__}, not a dict.", _DICT_HINT)
        ]
    problems: list[Problem] = []
    for name in value:
        if name not in DEFAULTS:
            close = difflib.get_close_matches(str(name), DEFAULTS, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(DEFAULTS)}."
            problems.append(_problem("E102", f"{SETTING} has an unknown key {name!r}.", hint))
    given = {**DEFAULTS, **value}
    readers = (
        _cluster,
        _flags,
        _ip_meta_key,
        _ipv6_mask,
        _view,
        _prefix,
        _rates,
        _timeout,
    )
    values: dict[str, Any] = {}
    for reader in readers:
        reader(given, values, problems)
    if any(p.is_error for p in problems):
        return None, problems
    return RateLimitSettings(**values), problems


_DICT_HINT = 'Write RB_RATELIMIT = {"CLUSTER": "default", "FAIL_OPEN": True, ...}.'


def _cluster(given: dict, values: dict, problems: list[Problem]) -> None:
    name = given["CLUSTER"]
    names = core_conf.cluster_names()
    values["cluster"] = name
    if not isinstance(name, str) or name not in names:
        shown = ", ".join(repr(n) for n in names) or "none"
        problems.append(
            _problem(
                "E103",
                f"CLUSTER {name!r} is not a cluster in RB_CLUSTERS.",
                f"Name one of the configured clusters: {shown}.",
            )
        )


def _flags(given: dict, values: dict, problems: list[Problem]) -> None:
    for key, attr in (("ENABLE", "enable"), ("FAIL_OPEN", "fail_open"), ("RAISE", "raise_blocked")):
        flag = given[key]
        values[attr] = flag
        if not isinstance(flag, bool):
            problems.append(
                _problem("E104", f"{key} is {flag!r}, not True or False.", f"Set {key} to a bool.")
            )


def _ip_meta_key(given: dict, values: dict, problems: list[Problem]) -> None:
    meta_key = given["IP_META_KEY"]
    values["ip_meta_key"] = meta_key
    hint = (
        "Name a request.META key ('REMOTE_ADDR', or 'HTTP_X_REAL_IP' behind a proxy that sets "
        "it), a callable (request) -> address, or the dotted path of one."
    )
    if callable(meta_key):
        return
    if not isinstance(meta_key, str) or not meta_key:
        problems.append(_problem("E105", f"IP_META_KEY is {meta_key!r}.", hint))
    elif "." in meta_key:
        try:
            values["ip_meta_key"] = import_string(meta_key)
        except ImportError as exc:
            problems.append(
                _problem("E105", f"IP_META_KEY {meta_key!r} does not import: {exc}", hint)
            )


def _ipv6_mask(given: dict, values: dict, problems: list[Problem]) -> None:
    mask = given["IPV6_MASK"]
    values["ipv6_mask"] = mask
    if type(mask) is not int or not 0 <= mask <= 128:
        problems.append(
            _problem(
                "E106",
                f"IPV6_MASK is {mask!r}, not a prefix length from 0 to 128.",
                "64 (the default) limits a whole /64, which one client usually holds.",
            )
        )


def _view(given: dict, values: dict, problems: list[Problem]) -> None:
    view = given["VIEW"]
    values["view"] = view
    if view is None or callable(view):
        return
    hint = "Give the dotted path of a view (request, exception) -> response, or None for a 429."
    if not isinstance(view, str):
        problems.append(_problem("E107", f"VIEW is {view!r}.", hint))
        return
    try:
        values["view"] = import_string(view)
    except ImportError as exc:
        problems.append(_problem("E107", f"VIEW {view!r} does not import: {exc}", hint))


def _prefix(given: dict, values: dict, problems: list[Problem]) -> None:
    prefix = given["PREFIX"]
    values["prefix"] = prefix
    if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
        problems.append(
            _problem(
                "E108", f"PREFIX is {prefix!r}.", "Use a short word without spaces, e.g. 'rl'."
            )
        )


def _rates(given: dict, values: dict, problems: list[Problem]) -> None:
    rates = given["RATES"]
    values["rates"] = rates
    hint = "RATES maps a group name to a rate such as '100/m' (or None for no limit)."
    if not isinstance(rates, Mapping):
        problems.append(_problem("E109", f"RATES is {rates!r}, not a dict.", hint))
        return
    for group, rate in rates.items():
        try:
            validate_spec(rate)
        except BadRate as exc:
            problems.append(_problem("E109", f"RATES[{group!r}]: {exc}", hint))


def _timeout(given: dict, values: dict, problems: list[Problem]) -> None:
    timeout = given["TIMEOUT"]
    values["timeout"] = timeout
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        problems.append(
            _problem(
                "E110",
                f"TIMEOUT is {timeout!r}, not a number of seconds above 0.",
                "It bounds each limiter round, so a stalled node cannot hang a view; "
                "None leaves it to the cluster's socket timeouts.",
            )
        )


_lock = threading.Lock()
_cached: RateLimitSettings | None = None


def get_settings() -> RateLimitSettings:
    """The validated settings (cached until RB_RATELIMIT or RB_CLUSTERS changes)."""
    global _cached
    cached = _cached
    if cached is not None:
        return cached
    with _lock:
        config, problems = _read(_raw())
        errors = [p for p in problems if p.is_error]
        if config is None:
            first = errors[0]
            raise ImproperlyConfigured(
                f"{SETTING}: {first.message} {first.hint} (django_rb.{first.code})"
            )
        _cached = config
        return config


def _forget(*, setting: str, **kwargs: Any) -> None:
    global _cached
    if setting in (SETTING, core_conf.SETTING):
        _cached = None


setting_changed.connect(_forget, dispatch_uid="django_rb.ratelimit.conf")
