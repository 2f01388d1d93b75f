"""RBCache through its public API on the four shared nodes: semantics, spreading, round trips.

Redis itself is the witness where the API cannot tell: a plain redis-py client per node reads
INFO commandstats (how many MGET/MSET/DEL each node served) and where each key landed.
"""

from __future__ import annotations

import sys
import types

import pytest
import redis
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from django_rb.cache import RBCache


def make_cache(nodes, **params):
    """An RBCache over ``nodes`` (URLs in LOCATION); ``params`` are CACHES keys."""
    return RBCache([node.url(0) for node in nodes], params)


def raw(node) -> redis.Redis:
    """A plain client on one node, to look at what is really stored there."""
    return redis.Redis(port=node.port)


def reset_stats(nodes) -> None:
    for node in nodes:
        raw(node).config_resetstat()


def calls(node, command: str) -> int:
    return raw(node).info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)


def one_delete_command(node) -> bool:
    """The node got one command for all its deletions: a multi-key DEL, or the core's script
    answering one count per key (the DELs it runs inside count as DEL calls too)."""
    return calls(node, "eval") == 1 or calls(node, "del") == 1


@pytest.fixture
def cache(nodes):
    return make_cache(nodes)


# -- Django semantics -------------------------------------------------------------------------


def test_basic_operations(cache):
    assert cache.get("missing") is None
    assert cache.get("missing", "fallback") == "fallback"
    assert cache.set("k", {"a": [1, 2]}) is True
    assert cache.get("k") == {"a": [1, 2]}
    assert cache.add("k", "other") is False
    assert cache.get("k") == {"a": [1, 2]}
    assert cache.add("new", "v") is True
    assert cache.has_key("new") and "new" in cache
    assert cache.delete("new") is True
    assert cache.delete("new") is False
    assert cache.has_key("new") is False
    cache.set("none", None)
    assert cache.get("none", "fallback") is None  # a stored None is a value, not a miss
    assert cache.get_or_set("gos", lambda: 7) == 7
    assert cache.get_or_set("gos", 8) == 7


def test_integers_are_stored_raw_and_incremented_on_the_node(cache, nodes):
    cache.set("n", 41)
    made = cache.make_key("n")
    node = nodes[cache.cluster.get_router().get_host_for_key(made)]
    assert raw(node).get(made) == b"41"  # digits, so INCRBY works on it
    assert cache.incr("n") == 42
    assert cache.decr("n", 10) == 32
    assert cache.get("n") == 32
    cache.set("flag", True)
    assert cache.get("flag") is True  # bools are not ints here
    with pytest.raises(ValueError, match="'absent' not found"):
        cache.incr("absent")
    assert cache.has_key("absent") is False  # incr never creates the key
    cache.set("text", "abc")
    with pytest.raises(redis.ResponseError) as info:  # what Django's RedisCache raises
        cache.incr("text")
    assert isinstance(info.value, ValueError)  # what Django's other backends raise
    assert str(info.value) == (
        "Cannot incr or decr key 'text' by 1: value is not an integer or out of range."
    )
    cache.set("n", 2**63 - 1)
    with pytest.raises(ValueError, match=r"^Cannot incr or decr key 'n' by 1: .* overflow\.$"):
        cache.incr("n")


def test_incr_is_atomic_under_threads(cache):
    import threading

    cache.set("counter", 0)
    threads = [
        threading.Thread(target=lambda: [cache.incr("counter") for _ in range(200)])
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("counter") == 1600


def test_timeouts(cache, nodes):
    cache.set("default", 1)  # TIMEOUT defaults to 300 s
    assert 295 <= cache.ttl("default") <= 300
    cache.set("forever", 1, timeout=None)
    assert cache.ttl("forever") is None
    cache.set("fraction", 1, timeout=2.5)
    assert 2000 < cache.pttl("fraction") <= 2500  # milliseconds are kept, not truncated
    cache.set("zero", 1, timeout=0)
    assert cache.has_key("zero") is False
    cache.set("forever", 2, timeout=-1)  # negative: expire now, even an existing key
    assert cache.has_key("forever") is False
    assert cache.add("zero", 1, timeout=0) is True
    assert cache.has_key("zero") is False
    cache.set("kept", 1)
    assert cache.add("kept", 2, timeout=0) is False
    assert cache.get("kept") == 1
    assert cache.set_many({"a": 1, "b": 2}, timeout=0) == []
    assert cache.get_many(["a", "b"]) == {}
    assert cache.set_many({"a": 1, "b": 2}, timeout=None) == []
    assert cache.ttl("a") is None and cache.ttl("b") is None
    assert cache.set_many({"a": 1, "b": 2}, timeout=60) == []
    assert 55 <= cache.ttl("a") <= 60 and 55 <= cache.ttl("b") <= 60


def test_default_timeout_from_settings(nodes):
    cache = make_cache(nodes, TIMEOUT=None)
    cache.set("k", 1)
    assert cache.ttl("k") is None
    cache = make_cache(nodes, TIMEOUT=20)
    cache.set("k", 1)
    assert 15 <= cache.ttl("k") <= 20


def test_touch(cache):
    cache.set("k", 1, timeout=100)
    assert cache.touch("k", 10) is True
    assert 5 <= cache.ttl("k") <= 10
    assert cache.touch("k", None) is True
    assert cache.ttl("k") is None
    assert cache.touch("k", None) is True  # already persistent: still there, so True
    assert cache.touch("missing", 10) is False
    assert cache.touch("missing", None) is False
    assert cache.touch("k", 0) is True
    assert cache.has_key("k") is False


def test_django_redis_extras(cache):
    assert cache.ttl("missing") == 0
    assert cache.pttl("missing") == 0
    cache.set("k", 1, timeout=None)
    assert cache.ttl("k") is None
    assert cache.persist("k") is False  # nothing to remove
    assert cache.expire("k", 30) is True
    assert 25 <= cache.ttl("k") <= 30
    assert cache.persist("k") is True
    assert cache.ttl("k") is None
    assert cache.expire("missing", 30) is False


def test_versions_prefix_and_key_function(nodes):
    cache = make_cache(nodes, KEY_PREFIX="site1", VERSION=3)
    other = make_cache(nodes, KEY_PREFIX="site2")
    cache.set("k", "v")
    assert other.get("k") is None
    assert cache.get("k", version=1) is None
    assert cache.make_key("k") == "site1:3:k"
    assert cache.incr_version("k") == 4
    assert cache.get("k") is None
    assert cache.get("k", version=4) == "v"
    assert cache.decr_version("k", version=4) == 3
    assert cache.get("k") == "v"
    custom = make_cache(nodes, KEY_FUNCTION=lambda key, prefix, version: f"custom/{key}")
    custom.set("x", 1)
    assert (
        raw(nodes[custom.cluster.get_router().get_host_for_key("custom/x")]).get("custom/x") == b"1"
    )


def test_key_validation_warns(cache):
    from django.core.cache import CacheKeyWarning

    with pytest.warns(CacheKeyWarning):
        cache.set("key with spaces", 1)
    with pytest.warns(CacheKeyWarning):
        assert cache.get("key with spaces") == 1  # a warning only: Redis takes any key


# -- sharding and round trips -----------------------------------------------------------------


def test_keys_spread_over_every_node_where_the_router_says(cache, nodes):
    data = {f"key{i}": i for i in range(400)}
    assert cache.set_many(data) == []
    router = cache.cluster.get_router()
    sizes = [raw(node).dbsize() for node in nodes]
    assert sum(sizes) == 400
    assert all(size > 50 for size in sizes), sizes  # 4 nodes, about 100 each
    for key in ("key0", "key1", "key399"):
        made = cache.make_key(key)
        assert raw(nodes[router.get_host_for_key(made)]).exists(made) == 1
    assert cache.get_many(list(data) + ["absent"]) == data


def test_get_many_is_one_mget_per_node(cache, nodes):
    keys = [f"k{i}" for i in range(200)]
    cache.set_many(dict.fromkeys(keys, "v"))
    reset_stats(nodes)
    assert len(cache.get_many(keys)) == 200
    for node in nodes:
        assert calls(node, "mget") == 1
        assert calls(node, "get") == 0


def test_set_many_and_delete_many_are_one_round(cache, nodes):
    keys = [f"k{i}" for i in range(200)]
    reset_stats(nodes)
    assert cache.set_many(dict.fromkeys(keys, "v"), timeout=None) == []
    assert [calls(node, "mset") for node in nodes] == [1, 1, 1, 1]
    reset_stats(nodes)
    assert cache.set_many(dict.fromkeys(keys, "v"), timeout=60) == []
    assert sum(calls(node, "set") for node in nodes) == 200  # SET PX each, pipelined per node
    assert all(55 <= cache.ttl(key) <= 60 for key in keys[:5])
    reset_stats(nodes)
    assert cache.delete_many(keys[:100]) is None
    assert all(one_delete_command(node) for node in nodes)
    assert len(cache.get_many(keys)) == 100


def test_many_calls_with_nothing(cache):
    assert cache.get_many([]) == {}
    assert cache.set_many({}) == []
    assert cache.delete_many([]) is None


def test_clear_flushes_this_db_on_every_node_only(nodes):
    cache = make_cache(nodes)
    cache.set_many({f"k{i}": i for i in range(100)})
    other_db = [redis.Redis(port=node.port, db=1) for node in nodes]
    for client in other_db:
        client.set("other-db", 1)
    assert cache.clear() is True
    assert sum(raw(node).dbsize() for node in nodes) == 0
    assert all(client.get("other-db") == b"1" for client in other_db)
    for client in other_db:
        client.flushdb()


# -- iter_keys / delete_pattern / lock --------------------------------------------------------


def test_iter_keys_scans_every_node_in_batches_never_keys(cache, nodes):
    cache.set_many({f"user:{i}": i for i in range(300)})
    cache.set_many({f"other:{i}": i for i in range(50)})
    reset_stats(nodes)
    found = cache.iter_keys("user:*", itersize=20)
    assert isinstance(found, types.GeneratorType)
    assert sorted(found) == sorted(f"user:{i}" for i in range(300))
    for node in nodes:
        assert calls(node, "keys") == 0
        assert calls(node, "scan") > 1  # several small steps, not one big answer
    assert sorted(cache.keys("other:1*")) == sorted(
        f"other:{i}" for i in range(50) if str(i).startswith("1")
    )


def test_glob_characters_in_the_prefix_match_only_themselves(nodes):
    tricky = make_cache(nodes, KEY_PREFIX="a*[b]?\\")
    # keys these would match if the prefix were taken as a glob
    lookalike = make_cache(nodes, KEY_PREFIX="aXXb?\\")
    lookalike2 = make_cache(nodes, KEY_PREFIX="a*bZ\\")
    tricky.set_many({f"k{i}": i for i in range(30)})
    lookalike.set_many({f"k{i}": i for i in range(30)})
    lookalike2.set_many({f"k{i}": i for i in range(30)})
    assert sorted(tricky.iter_keys("k*")) == sorted(f"k{i}" for i in range(30))
    assert tricky.delete_pattern("k1*") == 11
    assert tricky.get_many([f"k{i}" for i in range(30)]) == {
        f"k{i}": i for i in range(30) if not str(i).startswith("1")
    }
    assert len(lookalike.get_many([f"k{i}" for i in range(30)])) == 30
    assert len(lookalike2.get_many([f"k{i}" for i in range(30)])) == 30


def test_async_scans_find_and_delete_what_the_sync_ones_do(cache, arun):
    # no node fixture: the same test runs on a Redis Cluster (test_rediscluster_apps)
    cache.set_many({f"s:{i}": i for i in range(60)} | {"other": 1})
    cache.set("s:old", 1, version=3)

    async def scans():
        walked = [key async for key in cache.aiter_keys("s:*", itersize=5)]
        return walked, await cache.akeys("s:*", version=3), await cache.akeys("s:1*")

    walked, old, ones = arun(scans())
    assert (
        sorted(walked)
        == sorted(cache.iter_keys("s:*", itersize=5))
        == sorted(f"s:{i}" for i in range(60))
    )
    assert old == ["s:old"] and sorted(ones) == sorted(cache.keys("s:1*"))
    assert cache.delete_pattern("s:1*") == 11
    assert arun(cache.adelete_pattern("s:*", itersize=7)) == 49
    assert cache.keys("s:*") == [] and cache.get("other") == 1 and cache.keys("s:*", version=3)


def test_delete_pattern_counts_and_respects_version(nodes):
    cache = make_cache(nodes, VERSION=2)
    cache.set_many({f"s:{i}": i for i in range(120)})
    cache.set_many({f"s:{i}": i for i in range(10)}, version=1)
    assert cache.delete_pattern("s:*", itersize=7) == 120
    assert list(cache.iter_keys("s:*")) == []
    assert sorted(cache.iter_keys("s:*", version=1)) == sorted(f"s:{i}" for i in range(10))
    assert cache.delete_pattern("nothing*") == 0


def test_lock_lives_at_the_cache_key_on_its_node(cache, nodes):
    lock = cache.lock("job", timeout=10, blocking_timeout=0.2)
    assert lock.acquire() is True
    made = cache.make_key("job")
    node = nodes[cache.cluster.get_router().get_host_for_key(made)]
    assert raw(node).exists(made) == 1
    assert 0 < raw(node).pttl(made) <= 10000
    assert cache.lock("job", blocking_timeout=0.2).acquire() is False  # taken
    lock.release()
    assert raw(node).exists(made) == 0
    with cache.lock("job", timeout=5):
        assert raw(node).exists(made) == 1


# -- async ------------------------------------------------------------------------------------


def test_async_many_calls_are_one_round(cache, nodes, arun):
    keys = [f"a{i}" for i in range(100)]

    async def scenario():
        reset_stats(nodes)
        assert await cache.aset_many(dict.fromkeys(keys, "v"), timeout=None) == []
        assert [calls(node, "mset") for node in nodes] == [1, 1, 1, 1]
        reset_stats(nodes)
        assert len(await cache.aget_many(keys)) == 100
        assert [calls(node, "mget") for node in nodes] == [1, 1, 1, 1]
        reset_stats(nodes)
        await cache.adelete_many(keys[:50])
        assert all(one_delete_command(node) for node in nodes)
        assert len(await cache.aget_many(keys)) == 50
        await cache.aset("n", 1)
        assert await cache.aincr("n", 5) == 6
        assert await cache.adecr("n") == 5
        assert await cache.ahas_key("n") is True
        assert await cache.aget_or_set("g", "x") == "x"
        assert await cache.aincr_version("n") == 2
        assert await cache.aget("n", version=2) == 5
        assert await cache.atouch("n", 30, version=2) is True
        assert await cache.adelete("n", version=2) is True
        assert await cache.aclear() is True
        assert await cache.aget_many(keys) == {}

    arun(scenario())


# -- configuration ----------------------------------------------------------------------------


def test_location_forms(nodes):
    urls = [node.url(0) for node in nodes]
    for location in (urls, ",".join(urls), ";".join(urls), tuple(urls)):
        cache = RBCache(location, {})
        assert len(cache.cluster.hosts) == 4
        cache.set("k", location.__class__.__name__)
        assert cache.get("k") == location.__class__.__name__


def test_same_location_shares_one_cluster_between_instances(nodes):
    # Django makes a backend instance per thread; they share the cluster and its pools
    assert make_cache(nodes).cluster is make_cache(nodes).cluster
    assert make_cache(nodes).cluster is not make_cache(nodes, OPTIONS={"SOCKET_TIMEOUT": 2}).cluster


def test_named_cluster_from_rb_clusters(rb_settings):
    from django_rb import get_cluster

    rb_settings.CACHES = {"default": {"BACKEND": "django_rb.cache.RBCache", "LOCATION": "default"}}
    cache = caches["default"]
    assert cache.cluster is get_cluster("default")
    cache.set_many({f"k{i}": i for i in range(50)})
    assert cache.get_many(["k1", "k49"]) == {"k1": 1, "k49": 49}


def test_named_cluster_follows_rb_clusters_changes(rb_settings, redis_nodes):
    from django_rb.testing import rb_clusters_setting

    rb_settings.CACHES = {"default": {"BACKEND": "django_rb.cache.RBCache", "LOCATION": "default"}}
    cache = caches["default"]
    cache.set("where", "first")
    other = redis_nodes(2)
    rb_settings.RB_CLUSTERS = rb_clusters_setting(other)  # CACHES unchanged: same instance
    assert caches["default"] is cache
    assert cache.get("where") is None
    cache.set("where", "second")
    assert sum(raw(node).dbsize() for node in other) == 1


def test_options_and_their_django_redis_names(nodes):
    cache = make_cache(
        nodes,
        OPTIONS={
            "SOCKET_TIMEOUT": 1.5,
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "CONNECTION_POOL_KWARGS": {"max_connections": 50},
            "POOL_OPTIONS": {"health_check_interval": 30},
            "retry_on_timeout": False,  # Django RedisCache habit: lowercase goes to the pool
        },
    )
    pool = cache.cluster.get_pool_for_host(0)
    kwargs = pool.connection_kwargs
    assert kwargs["socket_timeout"] == 1.5
    assert kwargs["socket_connect_timeout"] == 0.5
    assert kwargs["health_check_interval"] == 30
    assert pool.max_connections == 50
    cache.set("k", 1)
    assert cache.get("k") == 1


def test_router_option(nodes):
    cache = make_cache(nodes, OPTIONS={"ROUTER": "consistent_hashing"})
    from django_rb.cluster import ConsistentHashingRouter

    assert isinstance(cache.cluster.get_router(), ConsistentHashingRouter)
    cache.set_many({f"k{i}": i for i in range(100)})
    assert len(cache.get_many([f"k{i}" for i in range(100)])) == 100


URL = "redis://127.0.0.1:7001/0"

#: (LOCATION, OPTIONS, words of the error, its check id): each a settings mistake that once
#: made RBCache() raise, crashing ``manage.py check`` (Django's checks build every cache).
BAD_SETTINGS = [
    ("", {}, "LOCATION is empty", "E015"),
    (["one", "two"], {}, "one cluster name", "E015"),
    ("default,other", {}, "one cluster name", "E015"),
    ("default", {"SOCKET_TIMEOUT": 1}, "cannot set SOCKET_TIMEOUT", "E017"),
    ("default", {"socket_timeout": 1}, "cannot set socket_timeout", "E017"),
    (URL, {"CLIENT_CLASS": "x.Y"}, "does not know the OPTIONS CLIENT_CLASS.*ShardClient", "E016"),
    (URL, {"SERIALIZER": "yaml"}, "Unknown SERIALIZER 'yaml'", "E019"),
    (URL, {"SERIALIZER": "no.such.Module"}, "cannot be imported", "E019"),
    (URL, {"COMPRESSOR": "brotli"}, "Unknown COMPRESSOR 'brotli'", "E019"),
    (URL, {"COMPRESS_MIN_LENGTH": "big"}, "must be an integer", "E020"),
    (URL, {"db": 3}, "db number in each LOCATION URL", "E018"),
    (URL, {"decode_responses": True}, "decode_responses", "E020"),
    (URL, {"PICKLE_VERSION": 99}, "PICKLE_VERSION", "E019"),
    (URL, {"parser_class": "no.such.Parser"}, "parser_class 'no.such.Parser' cannot be", "E019"),
    (URL, {"max_conections": 5}, "redis-py does not take", "E012"),
    (URL, {"ROUTER": "sharding"}, "Unknown router 'sharding'", "E008"),
    ([URL, URL], {}, "Hosts 0 and 1 are the same server", "E007"),
]


@pytest.mark.parametrize(("location", "options", "message", "code"), BAD_SETTINGS)
def test_bad_settings_raise_on_first_use_with_the_check_id(location, options, message, code):
    cache = RBCache(location, {"OPTIONS": options})  # building it never raises
    with pytest.raises(ImproperlyConfigured, match=message) as info:
        cache.get("k")
        cache.set("k", 1)  # pool option typos surface only when a connection is made
    assert f"(django_rb.{code})" in str(info.value)
    with pytest.raises(ImproperlyConfigured, match=message):
        cache.get_many(["k"])  # every use, not only the first


def test_missing_zstandard_raises_on_first_use(monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import zstandard -> ImportError
    cache = RBCache(URL, {"OPTIONS": {"COMPRESSOR": "zstd"}})
    with pytest.raises(ImproperlyConfigured, match=r"pip install zstandard.*django_rb\.E019"):
        cache.get("k")


def test_parser_class_is_imported_like_django_rediscache(nodes):
    cache = make_cache(nodes, OPTIONS={"parser_class": "redis.connection._RESP2Parser"})
    cache.set("p", 1)
    assert cache.get("p") == 1
    pool = cache.cluster.get_pool_for_host(0)
    assert pool.connection_kwargs["parser_class"] is redis.connection._RESP2Parser


def test_single_key_warnings_are_djangos_and_a_subclass_validate_key_still_runs(nodes):
    from django.core.cache import CacheKeyWarning

    cache = make_cache(nodes)
    with pytest.warns(CacheKeyWarning, match="longer than 250"):
        cache.set("k" * 300, 1)
    with pytest.warns(CacheKeyWarning, match="characters that will cause errors"):
        assert cache.get("with space") is None
    seen = []

    class Strict(RBCache):
        def validate_key(self, key):
            seen.append(key)

    strict = Strict([node.url(0) for node in nodes], {})
    strict.set("plain", 1)
    assert strict.get("plain") == 1
    assert seen == [strict.make_key("plain")] * 2


def test_get_many_of_a_few_keys_on_one_node_is_one_mget_there(nodes, arun):
    cache = make_cache(nodes)
    route = cache.cluster.get_router().get_host_for_key
    by_host = {}
    for i in range(200):
        by_host.setdefault(route(cache.make_key(f"f{i}")), []).append(f"f{i}")
    host, (a, b) = next((h, keys[:2]) for h, keys in by_host.items() if len(keys) >= 2)
    cache.set_many({a: "A", b: 2})
    reset_stats(nodes)
    assert cache.get_many([a, b, a]) == {a: "A", b: 2}
    assert cache.get_many([a, "missing-on-some-node"]) == {a: "A"}  # maybe two nodes: a round
    assert calls(nodes[host], "mget") >= 1
    assert arun(cache.aget_many([b, a])) == {a: "A", b: 2}
    ignoring = make_cache(nodes, OPTIONS={"IGNORE_EXCEPTIONS": True, "LOG_IGNORED_EXCEPTIONS": False,
                                          "SOCKET_TIMEOUT": 0.5})  # fmt: skip
    nodes[host].stop()
    assert ignoring.get_many([a, b]) == {}
    with pytest.raises(redis.ConnectionError):
        cache.get_many([a, b])


def test_batch_keys_are_exactly_djangos_keys(nodes):
    for params in ({}, {"KEY_PREFIX": "p:x", "VERSION": 7}):
        cache = make_cache(nodes, **params)
        keys = ["a", "ключ", 5, 2.5, ("t",), "", "x" * 40]
        for version in (None, 3, "v"):
            made = cache.make_and_validate_keys(keys, version=version)
            assert made == {cache.make_key(key, version=version): key for key in keys}
