"""Time series on the cluster core: counters, distinct counts and top-N frequencies in rollups.

``from django_rb.tsdb import tsdb`` is the store configured by ``RB_TSDB`` (built on first use,
rebuilt when the setting changes); ``TSDB(...)`` makes others.
"""

from __future__ import annotations

import threading
from typing import Any

from .errors import TSDBArgumentError
from .ledger import LostWrite, TSDBWritesLost
from .rollups import DEFAULT_ROLLUPS
from .store import TSDB

__all__ = ["DEFAULT_ROLLUPS", "TSDB", "LostWrite", "TSDBArgumentError", "TSDBWritesLost", "tsdb"]


class DefaultStore:
    """The RB_TSDB store, built on first use; attribute access goes to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._store: TSDB | None = None

    def get(self) -> TSDB:
        """The store for the current RB_TSDB (ImproperlyConfigured if that is unusable)."""
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is None:
                self._store = _build()
            return self._store

    def reset(self, **kwargs: Any) -> None:
        """Forget the store (the next use reads RB_TSDB again)."""
        self._store = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    def __repr__(self) -> str:
        return "<default TSDB (RB_TSDB)>"


def _build() -> TSDB:
    from django.core.exceptions import ImproperlyConfigured  # noqa: PLC0415
    from django.core.signals import setting_changed  # noqa: PLC0415

    from . import conf  # noqa: PLC0415

    setting_changed.connect(_on_setting_changed, dispatch_uid="django_rb.tsdb.default")
    options, problems = conf.store_options(conf.tsdb_setting())
    errors = [p for p in problems if p.is_error]
    if errors:
        raise ImproperlyConfigured(str(errors[0]))
    return TSDB(**options)


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "RB_TSDB":
        tsdb.reset()


#: The store configured by RB_TSDB.
tsdb: Any = DefaultStore()
