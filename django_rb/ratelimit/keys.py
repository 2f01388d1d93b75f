"""Request keys: who a limit counts (``"ip"``, ``"user"``, ``"header:x-api-key"``, ...).

``resolve_key`` turns the decorator's ``key`` into a function ``(group, request) -> value`` once,
at decoration time, so an unknown key type fails on import rather than on a request. The client
address comes only from ``IP_META_KEY`` (X-Forwarded-For is never trusted unless named there),
and IPv6 addresses are reduced to their ``IPV6_MASK`` prefix: one client usually holds a /64.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .conf import get_settings

#: ``(group, request) -> value``; None means "do not limit this request".
KeyFunction = Callable[[str, Any], Any]

#: The bucket every unparsable client address shares (so garbage cannot buy fresh buckets).
UNPARSABLE = "unparsable-address"


class BadKey(ValueError):
    """A decorator ``key`` that names no known kind of key."""


@lru_cache(maxsize=4096)
def mask_ip(address: str, ipv6_mask: int) -> str:
    """The address as counted: IPv4 as is, IPv6 as its /``ipv6_mask`` network."""
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return UNPARSABLE
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        network = ipaddress.IPv6Network((parsed.packed, ipv6_mask), strict=False)
        return str(network)
    return str(parsed)


def client_ip(request: Any) -> str:
    """The request's client address from ``IP_META_KEY``, IPv6 masked."""
    config = get_settings()
    meta_key = config.ip_meta_key
    address = meta_key(request) if callable(meta_key) else request.META.get(meta_key)
    if not address:
        raise ImproperlyConfigured(
            f"RB_RATELIMIT IP_META_KEY {meta_key!r} gave no address for this request: set it "
            "to the request.META key your proxy fills in, or to a callable."
        )
    return mask_ip(str(address), config.ipv6_mask)


def _ip(group: str, request: Any) -> str:
    return client_ip(request)


def _user(group: str, request: Any) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return "anonymous"  # every anonymous request shares one bucket


def _user_or_ip(group: str, request: Any) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{client_ip(request)}"


def _header(name: str) -> KeyFunction:
    meta_name = name.upper().replace("-", "_")
    if meta_name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        meta_name = f"HTTP_{meta_name}"

    def header(group: str, request: Any) -> str:
        return request.META.get(meta_name, "")

    return header


def _query(attribute: str, name: str) -> KeyFunction:
    def query(group: str, request: Any) -> str:
        return getattr(request, attribute).get(name, "")

    return query


def _dotted(path: str) -> KeyFunction:
    found: list[KeyFunction] = []

    def dotted(group: str, request: Any) -> Any:
        if not found:  # imported on first use: views import before their key modules may
            try:
                found.append(import_string(path))
            except ImportError as exc:
                raise ImproperlyConfigured(
                    f"ratelimit key {path!r} does not import: {exc}"
                ) from exc
        return found[0](group, request)

    return dotted


_NAMED: dict[str, KeyFunction] = {"ip": _ip, "user": _user, "user_or_ip": _user_or_ip}
_PREFIXED: dict[str, Callable[[str], KeyFunction]] = {
    "header": _header,
    "get": lambda name: _query("GET", name),
    "post": lambda name: _query("POST", name),
}


#: Key kinds that read only the request (safe on an event loop): no user, no callables.
PURE_KEYS = frozenset(["ip"])
PURE_PREFIXES = ("header:", "get:", "post:")


def resolve_key(key: Any) -> tuple[KeyFunction, str]:
    """The key function and a stable label for ``key`` (part of the bucket's name)."""
    if callable(key):
        label = f"{getattr(key, '__module__', '')}.{getattr(key, '__qualname__', repr(key))}"
        return key, label
    if not isinstance(key, str):
        raise BadKey(f"ratelimit key={key!r}: give a string such as 'ip' or a callable.")
    if key in _NAMED:
        return _NAMED[key], key
    kind, colon, name = key.partition(":")
    if colon:
        if kind not in _PREFIXED or not name:
            raise BadKey(
                f"ratelimit key={key!r}: the prefixed kinds are 'header:NAME', 'get:NAME' "
                "and 'post:NAME'."
            )
        return _PREFIXED[kind](name), key
    if "." in key:
        return _dotted(key), key
    raise BadKey(
        f"ratelimit key={key!r} is not a known key: use 'ip', 'user', 'user_or_ip', "
        "'header:NAME', 'get:NAME', 'post:NAME', a callable (group, request) or a dotted path."
    )
