"""System checks (``manage.py check``) for RB_CLUSTERS and RBCache, tagged ``django_rb``.

The checks only translate ``django_rb.conf`` problems into Django messages, so a check and
``get_cluster`` can never disagree about a setting. Later parts of django_rb (a rate limiter,
a tsdb) add theirs the same way: read and validate their settings in a ``conf`` function that
returns ``Problem``s, wrap it with ``problems_check(...)``, and call ``register_checks`` with
the result from their AppConfig's ``ready()``. Each part keeps its own id range
(documented in docs/django.md) so ids stay unique.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.core import checks

from django_rb import conf

#: Tag of every django_rb check: ``manage.py check --tag django_rb``.
TAG = "django_rb"

#: A Django check function.
CheckFunction = Callable[..., list[checks.CheckMessage]]


def to_message(problem: conf.Problem) -> checks.CheckMessage:
    """A Django Error (``E`` codes) or Warning (``W`` codes) with the id ``django_rb.<code>``."""
    level = checks.Error if problem.is_error else checks.Warning
    return level(problem.message, hint=problem.hint, obj=problem.obj, id=f"{TAG}.{problem.code}")


def problems_check(source: Callable[[], Iterable[conf.Problem]], name: str) -> CheckFunction:
    """Make a Django check function out of a function that lists settings problems."""

    def check(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[checks.CheckMessage]:
        return [to_message(problem) for problem in source()]

    check.__name__ = check.__qualname__ = name
    check.__doc__ = source.__doc__
    return check


#: RB_CLUSTERS: ids E001-E013, W001.
check_clusters = problems_check(conf.settings_problems, "check_clusters")

#: CACHES entries using RBCache: ids E014-E015.
check_caches = problems_check(conf.cache_problems, "check_caches")


def register_checks(*functions: CheckFunction, tags: Sequence[str] = ()) -> None:
    """Register check functions under the ``django_rb`` tag (and ``tags``); idempotent."""
    for function in functions:
        checks.register(function, TAG, *tags)


def register() -> None:
    """Register the core checks; called from ``DjangoRbConfig.ready()``."""
    register_checks(check_clusters)
    register_checks(check_caches, tags=(checks.Tags.caches,))
