"""Django settings for the test suite; RB_CLUSTERS is pointed at test nodes by fixtures."""

SECRET_KEY = "django-rb-tests"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_rb",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
RB_CLUSTERS = {"default": {"hosts": ["redis://127.0.0.1:1/0"]}}  # replaced by fixtures
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
