"""django-redis's extra methods on RBCache: the same calls give django-redis's answers.

django-redis 7's own RedisCache (DefaultClient) runs on a node of its own as the witness;
RBCache runs over four nodes, so every helper is also routed. Multi-key set commands work
when their keys share a node and otherwise raise KeysOnSeveralNodes before sending anything.
"""

from __future__ import annotations

import datetime
import time

import pytest
import redis
from django.test import override_settings
from django_redis.cache import RedisCache as DjangoRedisCache

from django_rb.cache import KeysOnSeveralNodes, RBCache, get_client
from django_rb.testing import flush_nodes


@pytest.fixture
def witness(witness_node):
    witness_node.start()
    flush_nodes([witness_node])
    return DjangoRedisCache(witness_node.url(0), {})


@pytest.fixture
def cache(nodes):
    return RBCache([node.url(0) for node in nodes], {})


def both(cache, witness, name, *args, **kwargs):
    """Call ``name`` on both backends and check they agree; RBCache's answer."""
    mine = getattr(cache, name)(*args, **kwargs)
    theirs = getattr(witness, name)(*args, **kwargs)
    assert mine == theirs, (name, args, kwargs, mine, theirs)
    assert type(mine) is type(theirs), (name, mine, theirs)
    return mine


def keys_on(cache, count, same):
    """``count`` user keys all on one node (same=True) or on at least two nodes."""
    route = cache.cluster.get_router().get_host_for_key
    by_host = {}
    for i in range(1000):
        by_host.setdefault(route(cache.make_key(f"s{i}")), []).append(f"s{i}")
    if same:
        return next(keys for keys in by_host.values() if len(keys) >= count)[:count]
    return [keys[0] for keys in by_host.values()][:count]


def test_set_nx_xx_like_django_redis(cache, witness):
    assert both(cache, witness, "set", "a", 1, nx=True) is True
    assert both(cache, witness, "set", "a", 2, nx=True) is False
    assert both(cache, witness, "get", "a") == 1
    assert both(cache, witness, "set", "b", 1, xx=True) is False
    assert both(cache, witness, "get", "b") is None
    assert both(cache, witness, "set", "a", "x", xx=True) is True
    assert both(cache, witness, "get", "a") == "x"
    assert both(cache, witness, "set", "a", "y", timeout=0, nx=True) is False  # exists
    assert both(cache, witness, "set", "n", "y", timeout=0, nx=True) is True  # free
    assert both(cache, witness, "has_key", "n") is False
    assert both(cache, witness, "set", "a", "z", timeout=0, xx=True) is True  # deleted
    assert both(cache, witness, "has_key", "a") is False


def test_incr_ignore_key_check_creates_the_key(cache, witness):
    assert both(cache, witness, "incr", "c", 5, ignore_key_check=True) == 5
    assert both(cache, witness, "incr", "c", ignore_key_check=True) == 6
    assert both(cache, witness, "get", "c") == 6
    with pytest.raises(ValueError):
        cache.incr("other")
    assert cache.has_key("other") is False


def test_expiry_helpers(cache, witness):
    for backend in (cache, witness):
        backend.set("k", 1, timeout=None)
    assert both(cache, witness, "pexpire", "k", 20_000) is True
    assert 19_000 < cache.pttl("k") <= 20_000
    assert both(cache, witness, "pexpire", "missing", 1000) is False
    when = datetime.datetime.now() + datetime.timedelta(seconds=100)
    assert both(cache, witness, "expire_at", "k", when) is True
    assert 95 <= cache.ttl("k") <= 100
    assert both(cache, witness, "pexpire_at", "k", int((time.time() + 50) * 1000)) is True
    assert 45 <= cache.ttl("k") <= 50
    assert both(cache, witness, "expire_at", "missing", when) is False
    assert both(cache, witness, "persist", "k") is True
    assert both(cache, witness, "ttl", "k") is None


def test_hash_helpers(cache, witness):
    assert both(cache, witness, "hset", "h", "f1", {"v": 1}) == 1
    assert both(cache, witness, "hset", "h", mapping={"f2": 2, "f3": "three"}) == 2
    assert both(cache, witness, "hset", "h", "f1", "again") == 0
    assert both(cache, witness, "hlen", "h") == 3
    assert sorted(both(cache, witness, "hkeys", "h")) == ["f1", "f2", "f3"]
    assert both(cache, witness, "hexists", "h", "f2") is True
    assert both(cache, witness, "hdel", "h", "f2") == 1
    assert both(cache, witness, "hexists", "h", "f2") is False
    assert both(cache, witness, "hlen", "missing") == 0


def test_set_helpers(cache, witness):
    assert both(cache, witness, "sadd", "s", 1, "two", (3,), 4.5) == 4
    assert both(cache, witness, "sadd", "s", 1) == 0
    assert both(cache, witness, "scard", "s") == 4
    assert both(cache, witness, "smembers", "s") == {1, "two", (3,), 4.5}
    assert both(cache, witness, "sismember", "s", "two") is True
    assert both(cache, witness, "smismember", "s", 1, "nope", (3,)) == [True, False, True]
    assert both(cache, witness, "srem", "s", "two", "nope") == 1
    assert both(cache, witness, "sscan", "s") == {1, (3,), 4.5}
    assert sorted(map(repr, cache.sscan_iter("s", count=1))) == sorted(
        map(repr, witness.sscan_iter("s", count=1))
    )
    assert len(cache.srandmember("s", 2)) == 2 and cache.srandmember("s") in {1, (3,), 4.5}
    assert both(cache, witness, "srandmember", "missing") is None
    popped = cache.spop("s")
    assert popped in {1, (3,), 4.5} and cache.scard("s") == 2
    assert cache.spop("s", 5) == {1, (3,), 4.5} - {popped}
    assert cache.spop("s") is None
    assert both(cache, witness, "spop", "missing") is None
    assert both(cache, witness, "spop", "missing", 2) == set()
    assert both(cache, witness, "smembers", "missing") == set()


def test_sscan_match_refuses_compression_like_django_redis(nodes):
    compressed = RBCache([n.url(0) for n in nodes], {"OPTIONS": {"COMPRESSOR": "zlib"}})
    with pytest.raises(ValueError, match="compression is not supported"):
        compressed.sscan("s", match="a*")


def test_multi_key_set_commands_on_one_node(cache, witness):
    a, b, c = keys_on(cache, 3, same=True)
    for backend in (cache, witness):
        backend.sadd(a, 1, 2, 3)
        backend.sadd(b, 2, 3, 4)
    assert both(cache, witness, "sinter", a, b) == {2, 3}
    assert both(cache, witness, "sunion", a, b) == {1, 2, 3, 4}
    assert both(cache, witness, "sdiff", a, b) == {1}
    assert both(cache, witness, "sinterstore", c, a, b) == 2
    assert both(cache, witness, "smembers", c) == {2, 3}
    assert both(cache, witness, "sunionstore", c, a, b) == 4
    assert both(cache, witness, "sdiffstore", c, a, b) == 1
    assert both(cache, witness, "smembers", c) == {1}
    assert both(cache, witness, "smove", a, b, 1) is True
    assert both(cache, witness, "smembers", b) == {1, 2, 3, 4}


def test_multi_key_set_commands_across_nodes_say_why_and_send_nothing(cache, nodes):
    a, b = keys_on(cache, 2, same=False)
    cache.sadd(a, 1)
    cache.sadd(b, 2)
    for call in (
        lambda: cache.sinter(a, b),
        lambda: cache.sunion(a, b),
        lambda: cache.sdiff(a, b),
        lambda: cache.sdiffstore(a, a, b),
        lambda: cache.sinterstore(a, a, b),
        lambda: cache.sunionstore(a, a, b),
        lambda: cache.smove(a, b, 1),
    ):
        with pytest.raises(KeysOnSeveralNodes, match=r"on one node.*smembers") as info:
            call()
        assert repr(a) in str(info.value) and repr(b) in str(info.value)
    assert cache.smembers(a) == {1} and cache.smembers(b) == {2}  # nothing changed


def test_sorted_set_helpers(cache, witness):
    assert both(cache, witness, "zadd", "z", {"a": 1, "b": 2.5, 3: 3, ("t",): 10}) == 4
    assert both(cache, witness, "zadd", "z", {"a": 5}, nx=True) == 0
    assert both(cache, witness, "zadd", "z", {"a": 5}, xx=True, ch=True) == 1
    assert both(cache, witness, "zcard", "z") == 4
    assert both(cache, witness, "zcount", "z", 2, 5) == 3
    assert both(cache, witness, "zincrby", "z", 1.5, "b") == 4.0
    assert both(cache, witness, "zscore", "z", 3) == 3.0
    assert both(cache, witness, "zscore", "z", "nope") is None
    assert both(cache, witness, "zrank", "z", "b") == 1
    assert both(cache, witness, "zrange", "z", 0, -1) == [3, "b", "a", ("t",)]
    assert both(cache, witness, "zrange", "z", 0, 1, withscores=True) == [(3, 3.0), ("b", 4.0)]
    assert both(cache, witness, "zrange", "z", 0, 0, desc=True) == [("t",)]
    assert both(cache, witness, "zrevrange", "z", 0, 1) == [("t",), "a"]
    assert both(cache, witness, "zrangebyscore", "z", 4, 10, withscores=True) == [
        ("b", 4.0), ("a", 5.0), (("t",), 10.0)
    ]  # fmt: skip
    assert both(cache, witness, "zrangebyscore", "z", "-inf", "+inf", start=1, num=2) == [
        "b", "a"
    ]  # fmt: skip
    assert both(cache, witness, "zrevrangebyscore", "z", 10, 4, num=1, start=0) == [("t",)]
    assert both(cache, witness, "zpopmax", "z") == (("t",), 10.0)
    assert both(cache, witness, "zpopmin", "z", 2) == [(3, 3.0), ("b", 4.0)]
    assert both(cache, witness, "zrem", "z", "a", "nope") == 1
    assert both(cache, witness, "zpopmin", "z") is None
    assert both(cache, witness, "zpopmax", "z", 3) == []
    for backend in (cache, witness):
        backend.zadd("y", {f"m{i}": i for i in range(10)})
    assert both(cache, witness, "zremrangebyscore", "y", 2, 5) == 4
    assert both(cache, witness, "zcard", "y") == 6


def test_helpers_route_by_their_key(cache, nodes):
    names = [f"set{i}" for i in range(40)]
    for name in names:
        cache.sadd(name, name)
    counts = [redis.Redis(port=node.port).dbsize() for node in nodes]
    assert sum(counts) == 40 and all(count > 0 for count in counts)  # spread over every node
    for name in names:
        node = nodes[cache.cluster.get_router().get_host_for_key(cache.make_key(name))]
        assert redis.Redis(port=node.port).exists(cache.make_key(name)) == 1


def test_get_client_is_the_keys_node(cache, nodes):
    cache.set("where", 1)
    client = cache.get_client("where")
    made = cache.make_key("where")
    assert client.get(made) == b"1"
    host = cache.cluster.get_router().get_host_for_key(made)
    assert client.connection_pool.connection_kwargs["port"] == nodes[host].port
    location = [node.url(0) for node in nodes]
    caches_setting = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "rb": {"BACKEND": "django_rb.cache.RBCache", "LOCATION": location},
    }
    with override_settings(CACHES=caches_setting):
        assert get_client("rb", "where").get(made) == b"1"
        with pytest.raises(TypeError, match="not an RBCache"):
            get_client("default", "where")


def test_async_twins_answer_like_the_sync_methods(cache, arun):
    async def scenario():
        assert await cache.aset("a", 1, nx=True) is True
        assert await cache.aset("a", 2, nx=True) is False
        assert await cache.aincr("n", 3, ignore_key_check=True) == 3
        assert await cache.aexpire("a", 100) is True
        assert 95 <= await cache.attl("a") <= 100
        assert await cache.apexpire("a", 50_000) is True
        assert 45_000 <= await cache.apttl("a") <= 50_000
        assert await cache.apersist("a") is True
        assert await cache.aexpire_at("a", int(time.time()) + 30) is True
        assert await cache.apexpire_at("a", int(time.time() * 1000) + 30_000) is True
        assert await cache.asadd("s", 1, 2) == 2
        assert await cache.asmembers("s") == {1, 2}
        assert await cache.ahset("h", "f", "v") == 1
        assert await cache.ahkeys("h") == ["f"]
        assert await cache.azadd("z", {"m": 1.0}) == 1
        assert await cache.azrange("z", 0, -1, withscores=True) == [("m", 1.0)]
        assert sorted(await cache.akeys("*")) == ["a", "h", "n", "s", "z"]
        assert sorted([key async for key in cache.aiter_keys("*")]) == ["a", "h", "n", "s", "z"]
        assert await cache.adelete_pattern("*") == 5
        assert await cache.akeys("*") == []

    arun(scenario())


def test_a_dead_node_with_ignore_exceptions_gives_empty_answers(redis_nodes):
    pair = redis_nodes(2)
    flush_nodes(pair)
    cache = RBCache([n.url(0) for n in pair], {"OPTIONS": {"IGNORE_EXCEPTIONS": True,
                                                            "LOG_IGNORED_EXCEPTIONS": False}})  # fmt: skip
    (key,) = [
        k
        for k in keys_on(cache, 2, same=False)
        if cache._cache.hosts_of([cache.make_key(k)]) == [1]
    ]
    pair[1].stop()
    try:
        assert cache.smembers(key) == set()
        assert cache.sadd(key, 1) == 0
        assert cache.zrange(key, 0, -1) == []
        assert cache.zpopmax(key) is None
        assert cache.hkeys(key) == []
        assert cache.expire_at(key, int(time.time()) + 5) is False
    finally:
        pair[1].start()
