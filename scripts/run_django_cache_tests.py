#!/usr/bin/env python
"""Run Django's own ``BaseCacheTests`` against RBCache.

Usage::

    python scripts/run_django_cache_tests.py --location redis://127.0.0.1:7001/0,redis://...

The tests come from the Django source release matching the installed Django: its sdist is
fetched once with ``pip download`` into ``.django-tests/`` (gitignored) and only
``tests/cache`` is unpacked. The suite runs as Django runs its own RedisCacheTests: the same
cache aliases (minus the culling ones, which Redis backends exclude), the same expected
``incr()`` error, with Django's test runner (so the ``cache`` test app's models get a database).

The last line printed is a JSON summary (ran, failures, errors, skipped) for
tests/test_cache_django_suite.py; the exit status is 0 only if everything passed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
import unittest
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from sdist import download_sdist  # noqa: E402

DEFAULT_CACHE_DIR = ROOT / ".django-tests"


def fetch_cache_tests(version: str, cache_dir: Path) -> Path:
    """The ``tests`` folder of Django ``version`` holding ``cache/``; downloaded on first use."""
    target = cache_dir / f"django-{version}"
    tests_dir = target / "tests"
    if (tests_dir / "cache" / "tests.py").is_file():
        return tests_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        archive_path = download_sdist("Django", version, tmp)
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(archive_path) as archive:
            members = [
                m for m in archive.getmembers()
                if m.name.split("/")[1:3] == ["tests", "cache"] and (m.isfile() or m.isdir())
            ]  # fmt: skip
            if not members:
                raise SystemExit(f"The Django {version} source release has no tests/cache.")
            if hasattr(tarfile, "data_filter"):
                archive.extractall(unpacked, members=members, filter="data")
            else:  # pragma: no cover - Pythons without extraction filters
                archive.extractall(unpacked, members=members)
        (top,) = list(unpacked.iterdir())
        staged = Path(tmp) / "staged"
        shutil.move(str(top), staged)
        try:
            os.replace(staged, target)  # atomic: a concurrent run may have won the race
        except OSError:
            if not (tests_dir / "cache" / "tests.py").is_file():
                raise
    return tests_dir


def configure(location: list[str], redis_cluster: bool = False) -> None:
    from django.conf import settings

    clusters = {}
    if redis_cluster:  # the URLs are a Redis Cluster's seeds; the cache names that cluster
        clusters = {"default": {"is_redis_cluster": True, "hosts": location}}
        location = ["default"]
    settings.configure(
        RB_CLUSTERS=clusters,
        SECRET_KEY="django-rb-cache-suite",
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "cache"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CACHES={"default": {"BACKEND": "django_rb.cache.RBCache", "LOCATION": location}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )


#: With --via-async, each sync method the suite calls runs its async twin instead.
ASYNC_TWINS = {
    name: f"a{name}"
    for name in (
        "add", "get", "set", "touch", "delete", "has_key", "incr", "decr", "get_many",
        "set_many", "delete_many", "clear", "get_or_set", "incr_version", "decr_version",
    )
}  # fmt: skip


def async_routed_backend() -> type:
    """RBCache whose sync methods run the async ones through asgiref's ``async_to_sync`` (as
    a sync caller of async code would), so that BaseCacheTests exercises the async methods."""
    from asgiref.sync import async_to_sync

    from django_rb.cache import RBCache

    def twin(async_name: str) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            return async_to_sync(getattr(self, async_name))(*args, **kwargs)

        return call

    attrs = {
        name: twin(async_name)
        for name, async_name in ASYNC_TWINS.items()
        if _is_async_native(RBCache, async_name)
    }
    return type("AsyncRoutedRBCache", (RBCache,), attrs)


def _is_async_native(backend: type, async_name: str) -> bool:
    """False where the twin only hops to the sync method (Django 6's ``aincr_version`` does),
    which the routed sync method would send straight back: a loop, and nothing async tested."""
    import inspect

    method = getattr(backend, async_name)
    return async_name in backend.__dict__ or "sync_to_async" not in inspect.getsource(method)


def build_test_case(via_async: bool = False) -> type:
    """RBCacheTests: BaseCacheTests set up the way Django sets up RedisCacheTests."""
    import redis
    from cache import tests as django_tests  # Django's tests/cache/tests.py
    from django.test import TestCase, override_settings

    backend = "django_rb.cache.RBCache"
    if via_async:
        globals()["AsyncRoutedRBCache"] = async_routed_backend()
        backend = f"{__name__}.AsyncRoutedRBCache"
    params = {"BACKEND": backend, "LOCATION": _location()}
    # Django excludes the culling aliases for Redis (no MAX_ENTRIES there); so do we, and the
    # cull tests then skip themselves exactly as they do for RedisCacheTests.
    excluded = getattr(django_tests, "redis_excluded_caches", {"cull", "zero_cull"})
    attrs = {
        # RedisCacheTests' one override of BaseCacheTests: INCRBY on a non-integer is redis's
        # ResponseError, not TypeError. RBCache increments atomically on the node, the same way.
        "incr_decr_type_error": redis.ResponseError,
        "__module__": __name__,
    }
    # Any test RedisCacheTests overrides is specific to Django's RedisCache: skip it here.
    redis_tests = getattr(django_tests, "RedisCacheTests", None)
    for name in sorted(vars(redis_tests) if redis_tests else ()):
        if name.startswith("test_") and hasattr(django_tests.BaseCacheTests, name):
            attrs[name] = unittest.skip("overridden by Django's RedisCacheTests")(
                getattr(django_tests.BaseCacheTests, name)
            )
    case = type("RBCacheTests", (django_tests.BaseCacheTests, TestCase), attrs)
    return override_settings(
        CACHES=django_tests.caches_setting_for_tests(base=params, exclude=excluded)
    )(case)


def _location() -> list[str]:
    from django.conf import settings

    return settings.CACHES["default"]["LOCATION"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--location", required=True, help="comma-separated redis:// URLs")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("-k", dest="pattern", help="only tests whose name contains this")
    parser.add_argument("-v", "--verbosity", type=int, default=1)
    parser.add_argument("--redis-cluster", action="store_true", help="LOCATION is a Redis Cluster")
    parser.add_argument(
        "--via-async", action="store_true", help="run every operation through its async twin"
    )
    args = parser.parse_args(argv)

    import django

    version = django.get_version()
    if not all(part.isdigit() for part in version.split(".")):
        raise SystemExit(f"Django {version} is not a release; its tests cannot be downloaded.")
    tests_dir = fetch_cache_tests(version, args.cache_dir)
    sys.path.insert(0, str(tests_dir))
    configure([url.strip() for url in args.location.split(",") if url.strip()], args.redis_cluster)
    django.setup()

    from django.test.runner import DiscoverRunner

    case = build_test_case(args.via_async)
    suite = unittest.TestLoader().loadTestsFromTestCase(case)
    if args.pattern:
        suite = unittest.TestSuite(t for t in suite if args.pattern in t.id())
    runner = DiscoverRunner(verbosity=args.verbosity, interactive=False)
    runner.setup_test_environment()
    old_config = runner.setup_databases()
    try:
        result = runner.run_suite(suite)
    finally:
        runner.teardown_databases(old_config)
        runner.teardown_test_environment()
    summary = {
        "django": version,
        "ran": result.testsRun,
        "failures": [test.id() for test, _ in result.failures],
        "errors": [test.id() for test, _ in result.errors],
        "unexpected_successes": [test.id() for test in result.unexpectedSuccesses],
        "skipped": {test.id().rsplit(".", 1)[-1]: reason for test, reason in result.skipped},
    }
    print(json.dumps(summary))
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
