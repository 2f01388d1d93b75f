"""Django cache backend over a django_rb cluster: ``"BACKEND": "django_rb.cache.RBCache"``."""

from __future__ import annotations

from typing import Any

from .backend import RBCache
from .client import NotAnInteger
from .structures import KeysOnSeveralNodes

__all__ = ["KeysOnSeveralNodes", "NotAnInteger", "RBCache", "get_client"]


def get_client(alias: str, key: Any, version: Any = None) -> Any:
    """A redis-py client on the node holding ``key`` of the RBCache ``CACHES[alias]``.

    What django-redis's ``get_redis_connection(alias)`` gives for one node: raw commands
    there, with the cache key as ``caches[alias].make_key(key)`` makes it.
    """
    from django.core.cache import caches  # noqa: PLC0415

    backend = caches[alias]
    if not isinstance(backend, RBCache):
        raise TypeError(f"Cache {alias!r} is a {type(backend).__name__}, not an RBCache.")
    return backend.get_client(key, version=version)
