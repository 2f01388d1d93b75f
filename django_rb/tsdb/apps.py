"""``INSTALLED_APPS += ["django_rb.tsdb"]`` registers the RB_TSDB checks."""

from __future__ import annotations

from django.apps import AppConfig


class TSDBConfig(AppConfig):
    """Registers the checks in ``ready()``; importing django_rb.tsdb has no side effects."""

    name = "django_rb.tsdb"
    label = "django_rb_tsdb"
    verbose_name = "django-rb time series"

    def ready(self) -> None:
        from . import checks  # noqa: PLC0415  (needs the app registry)

        checks.register()
