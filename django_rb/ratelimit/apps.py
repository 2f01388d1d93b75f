"""``INSTALLED_APPS += ["django_rb.ratelimit"]`` registers the rate limiter's system checks."""

from __future__ import annotations

from django.apps import AppConfig


class RateLimitConfig(AppConfig):
    """Registers the checks in ``ready()``; the limiter itself needs no app."""

    name = "django_rb.ratelimit"
    label = "django_rb_ratelimit"
    verbose_name = "django-rb rate limiting"

    def ready(self) -> None:
        from . import checks  # noqa: PLC0415  (needs the app registry)

        checks.register()
