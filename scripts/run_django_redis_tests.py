#!/usr/bin/env python
"""Run django-redis's own backend tests (test_backend.py, test_backend_sorted_sets.py) on RBCache.

Usage::

    python scripts/run_django_redis_tests.py --location redis://127.0.0.1:7001/1,redis://...

The tests come from the source release of the installed django-redis, fetched once with
``pip download`` into ``.django-redis-tests/`` (gitignored). They run on a copy, with one
settings module (``rbcache``: every alias an RBCache over ``--location``, the unreachable one
on a closed port) instead of django-redis's twelve, and two rewrites of lines that look
inside django-redis's client, which RBCache does not have: ``isinstance(cache.client, X)``
(asked to skip ShardClient/HerdClient-only tests) becomes False, and
``cache.client._serializer`` becomes RBCache's serializer. Nothing else is changed.

The last line printed is a JSON summary ({"passed": [...], "failed": [...]}, test names) for
tests/test_cache_django_redis_suite.py.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from sdist import download_sdist  # noqa: E402

DEFAULT_CACHE_DIR = ROOT / ".django-redis-tests"
TEST_FILES = ("test_backend.py", "test_backend_sorted_sets.py")

SETTINGS = """
SECRET_KEY = "django-rb-django-redis-suite"
_URLS = {urls!r}
CACHES = {{
    "default": {{"BACKEND": "django_rb.cache.RBCache", "LOCATION": _URLS}},
    "doesnotexist": {{"BACKEND": "django_rb.cache.RBCache", "LOCATION": "redis://127.0.0.1:1/1"}},
    "sample": {{"BACKEND": "django_rb.cache.RBCache", "LOCATION": _URLS}},
    "with_prefix": {{"BACKEND": "django_rb.cache.RBCache", "LOCATION": _URLS,
                     "KEY_PREFIX": "test-prefix"}},
}}
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"]
USE_TZ = False
"""


def fetch_tests(version: str, cache_dir: Path) -> Path:
    """The ``tests`` folder of django-redis ``version``; downloaded on first use."""
    target = cache_dir / f"django-redis-{version}" / "tests"
    if (target / "test_backend.py").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        archive_path = download_sdist("django-redis", version, tmp)
        with tarfile.open(archive_path) as archive:
            members = [m for m in archive.getmembers() if m.name.split("/")[1:2] == ["tests"]]
            archive.extractall(Path(tmp) / "x", members=members, filter="data")
        (top,) = list((Path(tmp) / "x").iterdir())
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(top / "tests"), target)
    return target


def prepare(source: Path, work: Path, urls: list[str]) -> None:
    """A copy of the tests with RBCache settings and the two client rewrites."""
    tests = work / "tests"
    shutil.copytree(source, tests)
    (tests / "settings" / "rbcache.py").write_text(SETTINGS.format(urls=urls))
    conftest = (tests / "conftest.py").read_text()
    conftest = conftest.replace("from xdist.scheduler import LoadScopeScheduling\n", "")
    conftest = re.sub(r"class FixtureScheduling.*?return FixtureScheduling\(config, log\)\n",
                      "", conftest, flags=re.S)  # fmt: skip
    conftest = re.sub(r"settings = \[\n.*?\n        \]", 'settings = ["rbcache"]', conftest,
                      flags=re.S)  # fmt: skip
    (tests / "conftest.py").write_text(conftest)
    for name in TEST_FILES:
        path = tests / name
        text = re.sub(r"isinstance\(\s*cache\.client,\s*[^)]*\)", "False", path.read_text())
        path.write_text(text.replace("cache.client._serializer", "cache._cache.serializer"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--location", required=True, help="comma-separated redis:// URLs")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = parser.parse_args(argv)
    urls = [url for url in args.location.split(",") if url]
    source = fetch_tests(importlib.metadata.version("django-redis"), args.cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepare(source, work, urls)
        report = work / "report.xml"
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:django",
             "-p", "no:randomly", f"--junitxml={report}", *(f"tests/{n}" for n in TEST_FILES)],
            cwd=work, timeout=600,
        )  # fmt: skip
        outcomes: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}
        for case in ET.parse(report).getroot().iter("testcase"):
            name = case.get("name", "").removesuffix("[rbcache]")
            if case.find("failure") is not None or case.find("error") is not None:
                outcomes["failed"].append(name)
            elif case.find("skipped") is not None:
                outcomes["skipped"].append(name)
            else:
                outcomes["passed"].append(name)
    print(json.dumps({key: sorted(set(names)) for key, names in outcomes.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
