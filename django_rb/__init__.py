"""django_rb: client-side sharding over many independent Redis nodes, for Django.

``get_cluster(name)`` gives the process-wide ``Cluster`` for an ``RB_CLUSTERS`` entry. The
cluster core (``django_rb.cluster``) has no Django imports; this module only imports Django
when ``get_cluster`` is first called, so the core stays usable on its own.
"""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_rb.cluster import Cluster

__version__ = "0.1.0"

__all__ = ["__version__", "get_cluster"]

_lock = threading.Lock()
_clusters: dict[str, Cluster] = {}
_hooked = False


def get_cluster(name: str = "default") -> Cluster:
    """The ``Cluster`` for ``RB_CLUSTERS[name]``: built once per process, shared by all threads.

    Its connection pools live as long as the process (closed at exit), so callers must not
    disconnect it. When RB_CLUSTERS changes (``override_settings``, pytest-django's
    ``settings``), the next call builds a fresh cluster. Raises ``ImproperlyConfigured`` for
    an unknown name (listing the configured ones) or a bad entry.
    """
    cluster = _clusters.get(name)
    if cluster is not None:
        return cluster
    with _lock:
        _hook()
        cluster = _clusters.get(name)
        if cluster is None:
            from django_rb import conf  # noqa: PLC0415  (Django loads on first use only)

            cluster = conf.get_cluster_config(name).build()
            _clusters[name] = cluster
    return cluster


def _hook() -> None:
    """Once per process: drop clusters when RB_CLUSTERS changes, close pools at exit."""
    global _hooked
    if _hooked:
        return
    from django.core.signals import setting_changed  # noqa: PLC0415

    setting_changed.connect(_on_setting_changed, dispatch_uid="django_rb.get_cluster")
    atexit.register(_close_all)
    _hooked = True


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "RB_CLUSTERS":
        _close_all(inuse_connections=False)


def _close_all(inuse_connections: bool = True) -> None:
    """Forget every cluster and close its connections. On a settings change only the idle
    ones: a round running in another thread finishes on the connections it holds."""
    with _lock:
        old = list(_clusters.values())
        _clusters.clear()
    for cluster in old:
        cluster.disconnect_pools(inuse_connections=inuse_connections)
