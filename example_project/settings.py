"""Settings of the example site, read with django-environ from the environment or a ``.env``.

``RB_HOSTS`` (comma-separated ``redis://`` URLs) names the shard nodes (with
``RB_REDIS_CLUSTER=1``: seeds of a Redis Cluster); ``make demo`` starts local nodes and sets
them when RB_HOSTS is not already set.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # a missing file is fine: the environment wins anyway

SECRET_KEY = env.str("SECRET_KEY", default="django-rb-example-not-secret")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "django_rb",
    "django_rb.ratelimit",
    "django_rb.tsdb",
    "example_project.events",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django_rb.ratelimit.middleware.RateLimitMiddleware",  # RateLimit fields on allowed answers
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
STATIC_URL = "static/"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}

# never 6379: a throwaway local node of its own unless RB_HOSTS says otherwise
_shards = {"hosts": env.list("RB_HOSTS", default=["redis://127.0.0.1:7000/0"])}
if env.bool("RB_REDIS_CLUSTER", default=False):  # RB_HOSTS are seeds of a Redis Cluster
    _shards["is_redis_cluster"] = True
else:
    _shards["router"] = "consistent_hashing"
RB_CLUSTERS = {"default": _shards}
CACHES = {
    "default": {
        "BACKEND": "django_rb.cache.RBCache",
        "LOCATION": "default",
        "OPTIONS": {"SERIALIZER": "json"},
    },
}

#: Limits on the ingest endpoint (rates as django_rb.ratelimit spells them).
EXAMPLE_PROJECT_RATE = env.str("EXAMPLE_PROJECT_RATE", default="30/s")
EXAMPLE_IP_RATE = env.str("EXAMPLE_IP_RATE", default="150/s")
RB_RATELIMIT = {"VIEW": "example_project.events.views.limited"}
