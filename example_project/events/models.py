"""Projects live in the database; their counters live in Redis (tsdb)."""

from __future__ import annotations

from typing import Any

from django.db import models


class Project(models.Model):
    """A project events are sent to, like a Sentry project."""

    name: models.CharField[str, str] = models.CharField(max_length=100, unique=True)
    slug: models.SlugField[str, str] = models.SlugField(max_length=100, unique=True)
    platform: models.CharField[str, str] = models.CharField(max_length=50, default="python")
    created: models.DateTimeField[Any, Any] = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name
