"""The apps unchanged on a Redis Cluster: the rate limiter's, tsdb's and RBCache's own tests,
collected again here with their cluster fixture pointing at a RedisCluster.

Not re-run here: tests whose assertions are about rb-style host ids or node processes
(``keys_on``/``keys_per_host`` pick keys per host id 0..3, ``nodes``/``rb_nodes`` stop or
inspect the four rb nodes); Django's whole BaseCacheTests runs on a Redis Cluster in
test_cache_django_suite.py.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from django_rb.cache import RBCache

from . import (
    test_cache,
    test_ratelimit_limiter,
    test_tsdb_counters,
    test_tsdb_distinct,
    test_tsdb_frequency,
    test_tsdb_maintenance,
)
from .test_ratelimit_limiter import limiter
from .tsdb_model import rounds, store

__all__ = ["limiter", "rounds", "store"]  # fixtures the collected tests use

NODE_SPECIFIC_HELPERS = ("keys_on(", "keys_per_host(")
NODE_FIXTURES = {"nodes", "rb_nodes", "redis_nodes", "rb_settings"}


def _portable(test: Any) -> bool:
    """A test that says nothing about rb-style host ids or node processes."""
    parameters = set(inspect.signature(test).parameters)
    source = inspect.getsource(test)
    return not parameters & NODE_FIXTURES and not any(h in source for h in NODE_SPECIFIC_HELPERS)


def _collect(*modules: Any) -> list[str]:
    names = []
    for module in modules:
        for name, test in vars(module).items():
            if name.startswith("test_") and callable(test) and _portable(test):
                alias = f"{name}__{module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}"
                globals()[alias] = test
                names.append(alias)
    return names


COLLECTED = _collect(
    test_ratelimit_limiter,
    test_tsdb_counters,
    test_tsdb_distinct,
    test_tsdb_frequency,
    test_tsdb_maintenance,
    test_cache,
)


@pytest.fixture
def rb_cluster(redis_cluster: Any) -> Any:
    """The apps' tests ask for ``rb_cluster``: here it is a RedisCluster (3 masters)."""
    return redis_cluster


@pytest.fixture
def cache(settings: Any, shared_redis_cluster: Any) -> RBCache:
    """An RBCache whose LOCATION names a Redis Cluster in RB_CLUSTERS, flushed."""
    shared_redis_cluster.flush()
    settings.RB_CLUSTERS = {
        "events": {"is_redis_cluster": True, "hosts": shared_redis_cluster.startup_nodes()}
    }
    return RBCache("events", {})


def test_a_representative_part_of_every_suite_is_collected() -> None:
    for suite in ("ratelimit_limiter", "tsdb_counters", "tsdb_distinct", "cache"):
        assert sum(name.endswith(f"__{suite}") for name in COLLECTED) >= 4, suite
