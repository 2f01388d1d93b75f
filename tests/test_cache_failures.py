"""A dead or stalled node, with and without IGNORE_EXCEPTIONS, on nodes these tests own.

The nodes have a password, so that every message and log line can be checked for leaks.
"""

from __future__ import annotations

import logging
import time
import uuid

import pytest
import redis

from django_rb.cache import RBCache
from django_rb.testing import healthy, keys_per_host

PASSWORD = "pw-Secret-4711"


@pytest.fixture(scope="module")
def trio(redis_nodes):
    return redis_nodes(3, password=PASSWORD)


@pytest.fixture
def nodes(trio):
    with healthy(trio):
        yield trio


def make_cache(nodes, **options):
    # a fresh pool per test (client_name differs), so that the log rate limit starts over
    pool = {"client_name": f"t-{uuid.uuid4().hex[:8]}"}
    return RBCache([node.url(0) for node in nodes], {"OPTIONS": {"POOL_OPTIONS": pool, **options}})


def keys_by_node(cache, count: int = 12) -> dict[int, list[str]]:
    """``count`` user keys for each node, found by asking the cache's router."""
    return keys_per_host(cache.cluster, count, stored=cache.make_key)


def cache_logs(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "django_rb.cache"]


# -- a dead node ------------------------------------------------------------------------------


def test_dead_node_raises_without_ignore_exceptions(nodes):
    cache = make_cache(nodes)
    by_node = keys_by_node(cache)
    cache.set_many({key: key for keys in by_node.values() for key in keys})
    nodes[1].stop()
    dead, live = by_node[1][0], by_node[0][0]
    assert cache.get(live) == live
    with pytest.raises(redis.ConnectionError) as single:
        cache.get(dead)
    with pytest.raises(redis.ConnectionError) as many:
        cache.get_many([live, dead])
    assert getattr(many.value, "host_id", None) == 1  # the core names the host
    with pytest.raises(redis.ConnectionError):
        cache.set_many({live: 1, dead: 2})
    with pytest.raises(redis.ConnectionError):
        cache.set(dead, 1)
    with pytest.raises(redis.ConnectionError):
        cache.clear()
    for error in (single.value, many.value):
        assert PASSWORD not in str(error) and PASSWORD not in repr(error)


def test_dead_node_fails_open_per_node_with_ignore_exceptions(nodes, caplog):
    caplog.set_level(logging.WARNING, logger="django_rb.cache")
    cache = make_cache(nodes, IGNORE_EXCEPTIONS=True)
    by_node = keys_by_node(cache)
    everything = {key: f"value of {key}" for keys in by_node.values() for key in keys}
    cache.set_many(everything)
    nodes[1].stop()
    dead_keys = by_node[1]
    live = {k: v for k, v in everything.items() if k not in dead_keys}
    dead = dead_keys[0]

    started = time.monotonic()
    assert cache.get_many(list(everything)) == live  # the dead node's keys read as missing
    assert time.monotonic() - started < 2
    assert cache.get(dead) is None
    assert cache.get(dead, "fallback") == "fallback"
    assert cache.has_key(dead) is False
    assert cache.set(dead, 1) is False
    assert cache.set(by_node[0][0], 1) is True
    assert cache.add(dead, 1) is False
    assert cache.touch(dead, 10) is False
    assert cache.delete(dead) is False
    assert cache.ttl(dead) == 0
    with pytest.raises(ValueError):
        cache.incr(dead)  # missing, as far as anyone can tell
    assert sorted(cache.set_many(everything)) == sorted(dead_keys)  # only those failed
    assert cache.set_many(everything, timeout=30) != []
    assert cache.delete_many(list(everything)[:5]) is None
    assert cache.get_or_set(dead, "computed") == "computed"
    assert sorted(cache.iter_keys("key*")) == sorted(
        k for k in live if k not in list(everything)[:5]
    )
    assert cache.clear() is False  # not every node could be flushed
    assert cache.get_many(list(everything)) == {}  # the live ones were

    logs = cache_logs(caplog)
    assert len(logs) == 1, [r.getMessage() for r in logs]  # rate-limited: one per node
    message = logs[0].getMessage()
    assert "node 1" in message and "IGNORE_EXCEPTIONS" in message
    assert PASSWORD not in caplog.text

    nodes[1].start()  # back on the same port: the same cache object recovers
    assert cache.set(dead, "again") is True
    assert cache.get(dead) == "again"


def test_ignored_errors_can_go_unlogged(nodes, caplog):
    caplog.set_level(logging.WARNING, logger="django_rb.cache")
    cache = make_cache(nodes, IGNORE_EXCEPTIONS=True, LOG_IGNORED_EXCEPTIONS=False)
    by_node = keys_by_node(cache, 2)
    nodes[2].stop()
    assert cache.get_many(by_node[2]) == {}
    assert cache.get(by_node[2][0]) is None
    assert cache_logs(caplog) == []


def test_command_errors_are_never_ignored(nodes):
    cache = make_cache(nodes, IGNORE_EXCEPTIONS=True)
    by_node = keys_by_node(cache, 2)
    cache.set(by_node[0][0], "text")
    with pytest.raises(redis.ResponseError):
        cache.incr(by_node[0][0])
    nodes[1].stop()  # while another node is down and ignored
    assert cache.get(by_node[1][0]) is None
    with pytest.raises(redis.ResponseError):
        cache.incr(by_node[0][0])


def test_command_errors_are_raised_from_a_round_where_a_node_error_was_ignored(nodes):
    cache = make_cache(nodes, IGNORE_EXCEPTIONS=True)
    by_node = keys_by_node(cache, 2)
    full = redis.Redis(port=nodes[0].port, password=PASSWORD)
    full.config_set("maxmemory-policy", "noeviction")
    full.config_set("maxmemory", 1)  # node 0 refuses writes: OOM, a command error
    try:
        nodes[1].stop()
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            cache.set_many({by_node[0][0]: 1, by_node[1][0]: 2, by_node[2][0]: 3})
    finally:
        full.config_set("maxmemory", 0)
    assert cache.get(by_node[2][0]) == 3  # the healthy node was written all the same


# -- a stalled node ---------------------------------------------------------------------------


def test_stalled_node_times_out_without_ignore_exceptions(nodes):
    cache = make_cache(nodes, SOCKET_TIMEOUT=0.5)
    by_node = keys_by_node(cache, 3)
    cache.set_many({key: key for keys in by_node.values() for key in keys})
    nodes[2].pause()
    try:
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            cache.get_many([by_node[0][0], by_node[2][0]])
        with pytest.raises(redis.TimeoutError):
            cache.get(by_node[2][1])
        assert time.monotonic() - started < 5
        assert cache.get(by_node[0][1]) == by_node[0][1]
    finally:
        nodes[2].resume()
    assert cache.get(by_node[2][2]) == by_node[2][2]  # no stale reply mixed into a new call


def test_stalled_node_fails_open_with_ignore_exceptions(nodes, caplog):
    caplog.set_level(logging.WARNING, logger="django_rb.cache")
    cache = make_cache(nodes, SOCKET_TIMEOUT=0.5, IGNORE_EXCEPTIONS=True)
    by_node = keys_by_node(cache, 3)
    everything = {key: key for keys in by_node.values() for key in keys}
    cache.set_many(everything)
    nodes[2].pause()
    try:
        started = time.monotonic()
        found = cache.get_many(list(everything))
        assert time.monotonic() - started < 3
        assert found == {k: v for k, v in everything.items() if k not in by_node[2]}
        assert cache.set(by_node[2][0], "x") is False
        assert len(cache_logs(caplog)) == 1
        assert "TimeoutError" in cache_logs(caplog)[0].getMessage()
    finally:
        nodes[2].resume()
    assert cache.get(by_node[2][1]) == by_node[2][1]
