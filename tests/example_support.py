"""The example site's test fixture, shared by tests/test_example*.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command


@pytest.fixture(name="example_site")
def example_site_fixture(rb_settings: Any, db: Any) -> Iterator[Any]:
    """The example site on the shared test nodes: its URLs, RBCache on the cluster, its limits
    (generous unless a test lowers them), and seeded projects."""
    rb_settings.ROOT_URLCONF = "example_project.urls"
    rb_settings.CACHES = {
        "default": {
            "BACKEND": "django_rb.cache.RBCache",
            "LOCATION": "default",
            "OPTIONS": {"SERIALIZER": "json"},
        }
    }
    rb_settings.EXAMPLE_PROJECT_RATE = "1000/s"
    rb_settings.EXAMPLE_IP_RATE = "1000/s"
    rb_settings.MIDDLEWARE = ["django_rb.ratelimit.middleware.RateLimitMiddleware"]
    rb_settings.RB_RATELIMIT = {"VIEW": "example_project.events.views.limited"}
    call_command("seed_projects", "--count", "3", verbosity=0)
    yield rb_settings
