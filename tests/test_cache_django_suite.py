"""Django's own BaseCacheTests, for the installed Django, against RBCache over three rb-style
nodes and over a Redis Cluster.

The suite runs in a subprocess (scripts/run_django_cache_tests.py) because it needs Django's
``cache`` test app installed, which this project's test settings are not. The source release
of the installed Django is downloaded into .django-tests/ on first use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "run_django_cache_tests.py"

#: The only skips allowed, and why: they are the ones Django's RedisCacheTests skips too.
#: Culling (MAX_ENTRIES / CULL_FREQUENCY) does not exist for Redis backends, so Django leaves
#: the "cull" and "zero_cull" aliases out for Redis and these tests skip themselves.
EXPECTED_SKIPS = {
    "test_cull": "Culling isn't implemented.",
    "test_zero_cull": "Culling isn't implemented.",
    "test_cull_delete_when_store_empty": "Culling isn't implemented.",
}


@pytest.mark.parametrize(
    ("via", "kind"),
    [("sync", "rb-style nodes"), ("async", "rb-style nodes"), ("sync", "Redis Cluster")],
)
def test_django_base_cache_tests_pass(redis_nodes, shared_redis_cluster, via, kind):
    """``async``: every operation the suite calls runs RBCache's native async twin instead;
    ``Redis Cluster``: LOCATION names an ``is_redis_cluster`` entry of RB_CLUSTERS."""
    extra = ["--via-async"] if via == "async" else []
    if kind == "Redis Cluster":
        shared_redis_cluster.flush()
        extra.append("--redis-cluster")
        location = ",".join(shared_redis_cluster.startup_nodes())
    else:
        location = ",".join(node.url(0) for node in redis_nodes(3))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--location", location, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        pytest.fail(f"Django's cache suite did not run:\n{output[-5000:]}")
    summary = json.loads(lines[-1])
    assert proc.returncode == 0, (
        f"Django {summary['django']} cache suite failed:\n{output[-10000:]}"
    )
    assert summary["skipped"] == EXPECTED_SKIPS
    assert summary["ran"] >= 50, summary  # the whole of BaseCacheTests, not a stray subset
