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
from django_rb.testing import flush_nodes, healthy, keys_per_host

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


def test_stalled_node_set_many_returns_exactly_its_keys_and_lands_the_rest(nodes):
    cache = make_cache(
        nodes, SOCKET_TIMEOUT=0.4, IGNORE_EXCEPTIONS=True, LOG_IGNORED_EXCEPTIONS=False
    )
    by_node = keys_by_node(cache, 5)
    before = {key: "old" for keys in by_node.values() for key in keys}
    cache.set_many(before)
    after = {key: f"new {key}" for key in before}
    nodes[0].pause()
    try:
        started = time.monotonic()
        failed = cache.set_many(after)
        assert time.monotonic() - started < 3
        # the live nodes' keys are read back new, in the same get_many as the stalled misses
        assert cache.get_many(list(after)) == {
            k: v for k, v in after.items() if k not in by_node[0]
        }
    finally:
        nodes[0].resume()
    assert sorted(failed) == sorted(by_node[0])
    # the stalled node may have applied the write once it woke: either value, never garbage
    assert all(cache.get(k) in ("old", after[k]) for k in by_node[0])


# -- more from the cache review ------------------------------------------------------------


@pytest.fixture(scope="module")
def unlogged(redis_nodes):
    """Nodes of their own: the warning rate limit is per node address, so nodes no other
    test has logged about are needed to count the warnings."""
    return redis_nodes(3, password=PASSWORD)


@pytest.fixture
def fresh_nodes(unlogged):
    with healthy(unlogged):
        yield unlogged


def test_stalled_node_many_calls_return_within_the_timeout_with_live_keys(fresh_nodes, caplog):
    caplog.set_level(logging.WARNING, logger="django_rb.cache")
    cache = make_cache(fresh_nodes, SOCKET_TIMEOUT=0.3, IGNORE_EXCEPTIONS=True)
    by_node = keys_by_node(cache, 4)
    everything = {key: f"v{key}" for keys in by_node.values() for key in keys}
    cache.set_many(everything)
    fresh_nodes[1].pause()
    try:
        for call, check in (
            (lambda: cache.get_many(list(everything)),
             lambda r: r == {k: v for k, v in everything.items() if k not in by_node[1]}),
            (lambda: cache.set_many({k: "n" for k in everything}),
             lambda r: sorted(r) == sorted(by_node[1])),
            (lambda: sorted(cache.iter_keys("key*")),
             lambda r: r == sorted(k for k in everything if k not in by_node[1])),
            (lambda: cache.delete_many(by_node[0]), lambda r: r is None),
            (lambda: cache.delete_pattern("key*"),
             lambda r: r == len(everything) - len(by_node[1]) - len(by_node[0])),
            (lambda: cache.clear(), lambda r: r is False),
            (lambda: cache.ttl(by_node[1][0]), lambda r: r == 0),
            (lambda: cache.has_key(by_node[1][0]), lambda r: r is False),
        ):  # fmt: skip
            started = time.monotonic()
            result = call()
            assert time.monotonic() - started < 1.5
            assert check(result), result
    finally:
        fresh_nodes[1].resume()
    logs = [r for r in caplog.records if r.name == "django_rb.cache"]
    assert len(logs) == 1  # rate-limited: one node, one line
    assert PASSWORD not in caplog.text


def test_warnings_are_rate_limited_per_node(fresh_nodes, caplog):
    caplog.set_level(logging.WARNING, logger="django_rb.cache")
    cache = make_cache(fresh_nodes, IGNORE_EXCEPTIONS=True)
    by_node = keys_by_node(cache, 2)
    fresh_nodes[0].stop()
    fresh_nodes[2].stop()
    for _ in range(5):
        cache.get_many([k for keys in by_node.values() for k in keys])
        cache.get(by_node[0][0])
        cache.set(by_node[2][0], 1)
        assert cache.add(by_node[2][1], 1) is False
    logs = [r.getMessage() for r in caplog.records if r.name == "django_rb.cache"]
    assert len(logs) == 2, logs
    assert any("node 0" in m for m in logs) and any("node 2" in m for m in logs)
    assert PASSWORD not in caplog.text


def test_no_password_in_errors_without_ignore_exceptions(fresh_nodes):
    cache = make_cache(fresh_nodes, SOCKET_TIMEOUT=0.3)
    by_node = keys_by_node(cache, 2)
    fresh_nodes[1].stop()
    errors = []
    for call in (
        lambda: cache.get(by_node[1][0]),
        lambda: cache.get_many(by_node[1]),
        lambda: cache.set_many({by_node[1][0]: 1}),
        lambda: cache.incr(by_node[1][0]),
        lambda: list(cache.iter_keys("*")),
        lambda: cache.clear(),
        lambda: cache.lock(by_node[1][0], blocking_timeout=0.1).acquire(),
    ):
        with pytest.raises(redis.ConnectionError) as info:
            call()
        errors.append(info.value)
    for error in errors:
        text = f"{error} {error!r} {error.__cause__!r} {error.__context__!r}"
        assert PASSWORD not in text


def test_wrong_password_location_does_not_leak(fresh_nodes):
    url = f"redis://:{PASSWORD}@127.0.0.1:99999/0"
    with pytest.raises(Exception) as info:  # noqa: B017 - any error, as long as it is discreet
        RBCache(url, {}).get("k")
    assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value)


def test_node_comes_back_with_no_stale_replies_in_many_calls(fresh_nodes):
    cache = make_cache(fresh_nodes, SOCKET_TIMEOUT=0.3, IGNORE_EXCEPTIONS=True)
    by_node = keys_by_node(cache, 6)
    cache.set_many({k: f"v-{k}" for keys in by_node.values() for k in keys})
    fresh_nodes[2].pause()
    try:
        assert cache.get_many(by_node[2][:3]) == {}
        assert cache.get(by_node[2][0]) is None
    finally:
        fresh_nodes[2].resume()
    time.sleep(0.1)  # the node now answers the abandoned requests
    later = by_node[2][3:]
    assert cache.get_many(later) == {k: f"v-{k}" for k in later}
    assert cache.get(later[1]) == f"v-{later[1]}"


def test_delete_pattern_deletes_what_iter_keys_lists_after_a_node_is_added(redis_nodes):
    four = redis_nodes(4)
    flush_nodes(four)
    before = make_cache(four[:3])
    after = make_cache(four)  # the cluster grew by one node: most keys now route elsewhere
    before.set_many({f"k{i}": i for i in range(100)})
    assert len(after.keys("k*")) == 100  # SCAN lists every stored key
    assert after.delete_pattern("k*") == 100  # observed: about 25
    assert after.keys("k*") == []  # observed: the other ~75 are still listed


def test_stalled_node_without_ignore_exceptions_raises_timeouts_from_scans_and_clear(nodes):
    cache = make_cache(nodes, SOCKET_TIMEOUT=0.3)
    by_node = keys_by_node(cache, 2)
    cache.set_many({k: 1 for keys in by_node.values() for k in keys})
    nodes[0].pause()
    try:
        for call in (
            lambda: list(cache.iter_keys("*")),
            lambda: cache.delete_pattern("*"),
            lambda: cache.clear(),
            lambda: cache.incr(by_node[0][0]),
            lambda: cache.set_many({by_node[0][0]: 2}, timeout=None),
        ):
            started = time.monotonic()
            with pytest.raises(redis.TimeoutError):
                call()
            assert time.monotonic() - started < 1.5
    finally:
        nodes[0].resume()


def test_dead_node_with_ignore_exceptions_plain_mset_path(nodes, arun):
    cache = make_cache(nodes, IGNORE_EXCEPTIONS=True, LOG_IGNORED_EXCEPTIONS=False)
    by_node = keys_by_node(cache, 5)
    nodes[2].stop()
    data = {
        k: (i if i % 2 else f"s{i}") for i, k in enumerate(k for ks in by_node.values() for k in ks)
    }
    assert sorted(cache.set_many(data, timeout=None)) == sorted(by_node[2])
    assert cache.get_many(list(data)) == {k: v for k, v in data.items() if k not in by_node[2]}
    assert cache.set(by_node[2][0], 1, timeout=0) is False
    assert cache.touch(by_node[2][0], None) is False
    assert cache.expire(by_node[2][0], 10) is False
    assert cache.persist(by_node[2][0]) is False
    assert cache.pttl(by_node[2][0]) == 0

    async def scenario():
        assert await cache.aget_many(list(data)) == {
            k: v for k, v in data.items() if k not in by_node[2]
        }
        assert sorted(await cache.aset_many(data)) == sorted(by_node[2])

    arun(scenario())
