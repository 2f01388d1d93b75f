"""Shared by the management commands: one parallel round over every host, per-host results.

A fan-out block raises its first error when it ends, after every other command has settled.
The commands want every host's answer even when some hosts are down, so each host gets its own
targeted promises; the block's error is caught and each host's promises say how it went.
"""

from __future__ import annotations

import time
from argparse import ArgumentTypeError
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser
from redis.exceptions import RedisError

from django_rb import get_cluster
from django_rb.cluster.errors import HostError
from django_rb.cluster.hosts import HostInfo


@dataclass
class HostResult:
    """What one host answered in a round: ``values`` by command name, or ``error``."""

    host: HostInfo
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def add_cluster_arguments(parser: CommandParser) -> None:
    """``--cluster NAME`` and ``--timeout SECONDS``, which every django_rb command takes."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--cluster", default="default", help='Name in RB_CLUSTERS (default: "default").'
    )
    which.add_argument(
        "--cache",
        default=None,
        metavar="ALIAS",
        help="A CACHES alias using RBCache: its cluster (also one built from LOCATION URLs).",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=None,
        help="Seconds to wait for each host (default: the pools' socket timeout).",
    )


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not seconds > 0:
        raise ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return seconds


def cluster_for(options: dict[str, Any]) -> Any:
    """The cluster named by ``--cluster`` or ``--cache``; a settings problem is a CommandError."""
    try:
        if options.get("cache") is not None:
            return _cache_cluster(options["cache"])
        return get_cluster(options["cluster"])
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from exc


def target_label(options: dict[str, Any]) -> str:
    """How the commands name what they act on: ``cluster 'default'`` or ``cache 'sessions'``."""
    if options.get("cache") is not None:
        return f"cache {options['cache']!r}"
    return f"cluster {options['cluster']!r}"


def _cache_cluster(alias: str) -> Any:
    from django.conf import settings  # noqa: PLC0415
    from django.core.cache import caches  # noqa: PLC0415

    from django_rb.cache import RBCache  # noqa: PLC0415

    configured = getattr(settings, "CACHES", {}) or {}
    if alias not in configured:
        names = ", ".join(repr(name) for name in configured) or "none"
        raise CommandError(f"No cache named {alias!r} in CACHES; configured caches: {names}.")
    backend = caches[alias]
    if not isinstance(backend, RBCache):
        raise CommandError(
            f"Cache {alias!r} is a {type(backend).__name__}, not an RBCache; the django_rb "
            "commands reach only RBCache caches."
        )
    return backend.cluster


def per_host_round(
    cluster: Any,
    commands: Callable[[Any], dict[str, Any]],
    timeout: float | None = None,
) -> dict[int, HostResult]:
    """Send ``commands(client)`` to every host in one parallel round.

    ``commands`` gets a client targeting one host and returns ``{name: promise}``. The first
    promise's settle time (since the round started) is recorded as the host's ``seconds``.
    """
    promises: dict[int, dict[str, Any]] = {}
    settled: dict[int, float] = {}
    started = time.perf_counter()
    failure: BaseException | None = None
    try:
        with cluster.all(timeout=timeout) as client:
            for host_id in sorted(cluster.hosts):
                promises[host_id] = commands(client.target([host_id]))
                first = next(iter(promises[host_id].values()))
                first.done(
                    on_success=lambda _v, h=host_id: settled.setdefault(
                        h, time.perf_counter() - started
                    ),
                )
    except (HostError, RedisError) as exc:
        failure = exc
    results: dict[int, HostResult] = {}
    for host_id, named in promises.items():
        result = HostResult(cluster.hosts[host_id], seconds=settled.get(host_id))
        for name, promise in named.items():
            if promise.is_rejected:
                result.error = result.error or _describe(promise.reason)
            elif promise.is_resolved:
                result.values[name] = promise.value[host_id]  # target() answers {host_id: value}
            else:
                result.error = result.error or "no answer"
        results[host_id] = result
    if failure is not None and all(r.ok for r in results.values()):
        raise CommandError(f"The round failed: {_describe(failure)}") from failure
    return results


def _describe(error: Any) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())
