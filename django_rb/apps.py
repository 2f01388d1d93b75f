"""Django app config: ``INSTALLED_APPS += ["django_rb"]`` registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig


class DjangoRbConfig(AppConfig):
    """Registers the checks in ``ready()`` so importing django_rb stays free of side effects."""

    name = "django_rb"
    verbose_name = "django-rb"

    def ready(self) -> None:
        from django_rb import checks  # noqa: PLC0415  (needs the app registry)

        checks.register()
