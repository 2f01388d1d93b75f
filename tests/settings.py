"""Django settings for the test suite; RB_CLUSTERS is pointed at test nodes by fixtures.

Hosts come from $RB_TEST_HOSTS through django-environ, the way a site would configure them;
the subprocess tests of the management commands set it to test nodes.
"""

import environ

env = environ.Env()

SECRET_KEY = "django-rb-tests"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_rb",
    "django_rb.ratelimit",
    "example_project.events",  # the example site's tests (tests/test_example*.py)
]
STATIC_URL = "/static/"  # the live server (browser test) serves static files under it
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
RB_CLUSTERS = {"default": {"hosts": env.list("RB_TEST_HOSTS", default=["redis://127.0.0.1:1/0"])}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
