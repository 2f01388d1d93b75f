"""Project settings read through RBCache: one ``get_many`` for a batch, the misses from SQL.

The ingest view looks a project up on every event, so the database is asked only when the
cache has not seen the project yet (or it was evicted); ``get_many`` costs one parallel
round however many projects a page shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.cache import caches

from .models import Project

#: Seconds a project's settings stay cached.
CACHE_SECONDS = 300


def _cache_key(project_id: int) -> str:
    return f"project:{project_id}"


def as_info(project: Project) -> dict[str, Any]:
    """What the views need of a project, as plain data (the cache stores JSON)."""
    return {
        "id": project.pk,
        "name": project.name,
        "slug": project.slug,
        "platform": project.platform,
    }


def get_projects(project_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """``{id: info}`` for the ids that exist: one cache round, one query for the misses."""
    ids = list(dict.fromkeys(int(pid) for pid in project_ids))
    cache = caches["default"]
    cached = cache.get_many([_cache_key(pid) for pid in ids])
    found = {pid: cached[_cache_key(pid)] for pid in ids if _cache_key(pid) in cached}
    missing = [pid for pid in ids if pid not in found]
    if missing:
        loaded = {p.pk: as_info(p) for p in Project.objects.filter(pk__in=missing)}
        if loaded:
            cache.set_many({_cache_key(pid): info for pid, info in loaded.items()}, CACHE_SECONDS)
        found.update(loaded)
    return {pid: found[pid] for pid in ids if pid in found}


def get_project(project_id: int) -> dict[str, Any] | None:
    """One project's info, or None when there is no such project."""
    return get_projects([project_id]).get(project_id)


def all_projects() -> dict[int, dict[str, Any]]:
    """Every project, ids from the database, details through the cache."""
    return get_projects(Project.objects.values_list("pk", flat=True))


def forget(project_id: int) -> None:
    """Drop a project from the cache after it changed."""
    caches["default"].delete(_cache_key(project_id))
