"""RBCache's edge cases through its public API: values, incr, timeouts, keys, dbs, named
clusters, threads, asyncio and locks.

Where Django's own RedisCache defines the behaviour, it runs on a node of its own as the
witness: the same calls must give the same answers.
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
import uuid
import warnings

import pytest
import redis
from django.core.cache import CacheKeyWarning, caches
from django.core.cache.backends.redis import RedisCache

from django_rb.cache import RBCache
from django_rb.cache.client import UnreadableValue
from django_rb.testing import flush_nodes, keys_per_host, rb_clusters_setting

PASSWORD = "rev-Pa55word-9931"


@pytest.fixture
def witness(witness_node):
    witness_node.start()
    flush_nodes([witness_node])
    return RedisCache(witness_node.url(0), {})


def make_cache(nodes, db=0, **params):
    return RBCache([node.url(db) for node in nodes], params)


def fresh_pool(**options):
    """OPTIONS with a pool of its own (client_name differs): a fresh cluster, a fresh log limit."""
    return {"POOL_OPTIONS": {"client_name": f"rev-{uuid.uuid4().hex[:8]}"}, **options}


@pytest.fixture
def cache(nodes):
    return make_cache(nodes)


def raw(node, db=0) -> redis.Redis:
    return redis.Redis(port=node.port, db=db, password=node.password)


def keys_by_node(cache, count: int = 3) -> dict[int, list[str]]:
    return keys_per_host(cache.cluster, count, stored=cache.make_key)


def outcome(call, *args, **kwargs):
    """The result of a call, or its exception's class: what two backends must agree on (a
    subclass of redis's ResponseError, such as RBCache's NotAnInteger, counts as one)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheKeyWarning)
            return ("ok", call(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - the class is the answer
        return (
            "raised",
            redis.ResponseError if isinstance(exc, redis.ResponseError) else type(exc),
        )


class Color(enum.IntEnum):
    RED = 1


# -- the same answers as Django's RedisCache ----------------------------------------------------

VALUES = [
    0,
    1,
    -1,
    2**31,
    2**53 - 1,
    2**63 - 1,
    2**63,
    -(2**63),
    2**100,
    -(2**100),
    1.5,
    -0.0,
    float("inf"),
    True,
    False,
    None,
    b"",
    b"\x00\x01raw bytes",
    b"12",
    "",
    "12",
    "héllo ☃",
    [1, 2, [3]],
    {"n": 1},
    (1, 2),
    {1, 2},
    "x" * 200_000,
    Color.RED,
]


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:20] for v in VALUES])
def test_values_and_incr_agree_with_django_redis_cache(cache, witness, value):
    for backend in (cache, witness):
        backend.set("v", value)
        backend.set("w", value, timeout=None)
    assert cache.get("v") == witness.get("v")
    assert type(cache.get("v")) is type(witness.get("v"))
    assert cache.get_many(["v", "w", "none"]) == witness.get_many(["v", "w", "none"])
    for delta in (1, -1, 5, -(2**62), 2**62):
        mine = outcome(cache.incr, "v", delta)
        theirs = outcome(witness.incr, "v", delta)
        if mine[0] == "ok" and theirs[0] == "ok" and abs(theirs[1]) > 2**53:
            continue  # see test_incr_returns_the_exact_value_above_2_53
        assert mine == theirs, (value, delta)
        assert cache.get("v") == witness.get("v")
    assert outcome(cache.decr, "v", 3)[0] == outcome(witness.decr, "v", 3)[0]
    assert cache.get("v") == witness.get("v")


def test_incr_returns_the_exact_value_above_2_53(cache, witness):
    for backend in (cache, witness):
        backend.set("n", 2**60)
    assert witness.incr("n") == 2**60 + 1
    assert cache.get("n") == 2**60  # sanity
    assert cache.incr("n") == 2**60 + 1  # observed: 2**60 (1152921504606846976)


def test_incr_near_2_63_keeps_its_sign(cache, witness):
    for backend in (cache, witness):
        backend.set("n", 2**63 - 2)
    assert witness.incr("n") == 2**63 - 1
    assert cache.incr("n") == 2**63 - 1  # observed: -9223372036854775808


def test_incr_stores_the_exact_value_above_2_53(cache):
    cache.set("n", 2**62)
    cache.incr("n", 3)
    assert cache.get("n") == 2**62 + 3
    cache.set("m", 2**53 - 2)
    assert cache.incr("m") == 2**53 - 1  # exact up to 2**53


def test_incr_overflow_and_negative(cache):
    cache.set("n", 2**63 - 2)
    cache.incr("n")  # its return value: see test_incr_near_2_63_returns_the_wrong_sign
    assert cache.get("n") == 2**63 - 1
    with pytest.raises(redis.ResponseError, match="overflow"):
        cache.incr("n")
    assert cache.get("n") == 2**63 - 1  # unchanged by the failed step
    cache.set("d", 2)
    assert cache.decr("d", 5) == -3
    assert cache.incr("d", -4) == -7
    assert cache.decr("d", -10) == 3
    assert cache.get("d") == 3
    cache.set("big", 2**64)
    with pytest.raises(redis.ResponseError):
        cache.incr("big")
    assert cache.get("big") == 2**64
    with pytest.raises(ValueError):
        cache.decr("missing")
    assert "missing" not in cache


TIMEOUT_SEQUENCE = [
    ("set", ("a", 1), {"timeout": 0}),
    ("has_key", ("a",), {}),
    ("set", ("a", 1), {"timeout": -5}),
    ("has_key", ("a",), {}),
    ("set", ("a", 1), {"timeout": None}),
    ("add", ("a", 2), {"timeout": 0}),
    ("get", ("a",), {}),
    ("add", ("b", 2), {"timeout": 0}),
    ("has_key", ("b",), {}),
    ("add", ("b", 2), {"timeout": -1}),
    ("has_key", ("b",), {}),
    ("add", ("b", 2), {"timeout": None}),
    ("get", ("b",), {}),
    ("touch", ("missing", 10), {}),
    ("touch", ("missing", None), {}),
    ("touch", ("missing", 0), {}),
    ("touch", ("b", None), {}),
    ("touch", ("b", 0), {}),
    ("has_key", ("b",), {}),
    ("set_many", ({"c": 1, "d": 2},), {"timeout": 0}),
    ("get_many", (["c", "d"],), {}),
    ("set_many", ({"c": 1, "d": 2},), {}),
    ("set_many", ({"c": 1, "d": 2},), {"timeout": -1}),
    ("get_many", (["c", "d"],), {}),
    ("delete_many", (["c", "nope", "a"],), {}),
    ("get_many", (["a", "b", "c", "d"],), {}),
    ("delete", ("nope",), {}),
    ("get_or_set", ("g", None), {}),
    ("get_or_set", ("g", 5), {}),
    ("get_or_set", ("h", lambda: [1]), {}),
    ("get_or_set", ("h", lambda: [2]), {}),
    ("get_or_set", ("t0", "x"), {"timeout": 0}),
    ("has_key", ("t0",), {}),
    ("get", ("missing", "dflt"), {}),
    ("incr", ("missing",), {}),
    ("incr_version", ("missing",), {}),
    ("set", ("v", "val"), {}),
    ("incr_version", ("v",), {}),
    ("get", ("v",), {"version": 2}),
    ("decr_version", ("v",), {"version": 2}),
    ("get", ("v",), {}),
    ("has_key", ("v",), {"version": 2}),
    ("set", ("f", 1), {"timeout": 3.7}),
    ("get", ("f",), {}),
]


def test_sequence_agrees_with_django_redis_cache(cache, witness):
    for method, args, kwargs in TIMEOUT_SEQUENCE:
        mine = outcome(getattr(cache, method), *args, **kwargs)
        theirs = outcome(getattr(witness, method), *args, **kwargs)
        if method == "set":  # RBCache documents True where Django returns None
            assert mine == ("ok", True) and theirs == ("ok", None)
            continue
        if (method, args) == ("touch", ("b", None)):
            # Django's RedisCache answers PERSIST's 0 for a key that had no expiry; RBCache says
            # whether the key exists (Django's documented meaning, and tests/test_cache.py's)
            assert mine == ("ok", True) and theirs == ("ok", False)
            continue
        assert mine == theirs, (method, args, kwargs)


def test_fractional_timeouts_are_kept_and_tiny_ones_expire_now(cache):
    cache.set("half", 1, timeout=0.4)
    assert cache.get("half") == 1
    assert 0 < cache.pttl("half") <= 400
    cache.set("tiny", 1, timeout=0.0004)  # under a millisecond: expire now, not "forever"
    assert "tiny" not in cache
    assert cache.set_many({"t1": 1}, timeout=0.0004) == []
    assert cache.get_many(["t1"]) == {}
    assert cache.add("t2", 1, timeout=0.0004) is True
    assert "t2" not in cache
    cache.set("k", 1)
    assert cache.touch("k", 0.0004) is True
    assert "k" not in cache
    time.sleep(0.5)
    assert cache.get("half") is None


def test_default_timeout_zero_means_expire_now(nodes):
    cache = make_cache(nodes, TIMEOUT=0)
    cache.set("k", 1)
    assert cache.get("k") is None
    assert cache.set("k", 1, timeout=10) is True
    assert cache.get("k") == 1


def test_expire_and_persist_edge_cases(cache):
    cache.set("k", 1, timeout=None)
    assert cache.expire("k", 0) is True  # like EXPIRE 0: gone
    assert "k" not in cache
    cache.set("k", 1)
    assert cache.expire("k", None) is True
    assert cache.ttl("k") is None
    assert cache.expire("missing", None) is False
    assert cache.persist("missing") is False
    cache.set("k", 1, timeout=2.5)
    assert cache.ttl("k") in (2, 3)
    assert 2000 < cache.pttl("k") <= 2500


# -- keys -------------------------------------------------------------------------------------


def test_unicode_and_odd_keys(cache, nodes):
    odd = ["ключ", "日本語", "emoji 🎉", "tab\tkey", "nl\nkey", "ctl\x01key", "x" * 300]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cache.set_many({key: key for key in odd}) == []
        assert cache.get_many(odd) == {key: key for key in odd}
    warned = [w for w in caught if issubclass(w.category, CacheKeyWarning)]
    assert len(warned) >= 5  # one per bad key, per call
    for key in ("ключ", "日本語"):
        made = cache.make_key(key)
        host = cache.cluster.get_router().get_host_for_key(made)
        assert raw(nodes[host]).get(made) is not None
    assert sorted(cache.iter_keys("ключ*")) == ["ключ"]
    assert cache.delete_pattern("日*") == 1
    assert cache.get("日本語") is None
    with pytest.warns(CacheKeyWarning):
        assert cache.delete("ctl\x01key") is True
    with pytest.warns(CacheKeyWarning), pytest.raises(redis.ResponseError):
        cache.incr("nl\nkey")  # warns, then redis refuses to INCR a string


def test_non_string_keys_come_back_as_given(cache):
    cache.set_many({1: "one", 2.5: "two", ("t",): "tuple"})
    assert cache.get_many([1, 2.5, ("t",), 3]) == {1: "one", 2.5: "two", ("t",): "tuple"}
    assert cache.get(1) == "one"


def test_iter_keys_with_a_colon_in_the_prefix(nodes):
    cache = make_cache(nodes, KEY_PREFIX="site:eu")
    cache.set_many({"user:1": 1, "user:2": 2})
    assert sorted(cache.iter_keys("user:*")) == ["user:1", "user:2"]  # observed: ['1:user:1', ...]


def test_delete_pattern_with_a_colon_in_the_prefix_still_deletes(nodes):
    cache = make_cache(nodes, KEY_PREFIX="site:eu")
    other = make_cache(nodes, KEY_PREFIX="site")
    cache.set_many({f"user:{i}": i for i in range(20)})
    other.set_many({f"user:{i}": i for i in range(20)})
    assert cache.delete_pattern("user:*") == 20
    assert len(other.get_many([f"user:{i}" for i in range(20)])) == 20


def test_key_function_and_reverse_key_function_with_iter_keys(nodes):
    cache = make_cache(
        nodes,
        KEY_PREFIX="p",
        VERSION=7,
        KEY_FUNCTION=lambda key, prefix, version: f"{prefix}|v{version}|{key}",
        OPTIONS={"REVERSE_KEY_FUNCTION": lambda made: made.split("|", 2)[2]},
    )
    cache.set_many({f"a:{i}": i for i in range(50)})
    cache.set_many({f"a:{i}": i for i in range(5)}, version=8)
    assert sorted(cache.iter_keys("a:*")) == sorted(f"a:{i}" for i in range(50))
    assert sorted(cache.iter_keys("a:*", version=8)) == sorted(f"a:{i}" for i in range(5))
    assert cache.delete_pattern("a:1*", version=7) == 11
    assert len(cache.keys("a:*")) == 39


def test_iter_keys_finds_thousands_exactly_once_over_four_nodes(cache, nodes):
    expected = {f"item:{i}" for i in range(5000)}
    assert cache.set_many(dict.fromkeys(expected, 1)) == []
    cache.set_many({f"other:{i}": 1 for i in range(500)})
    assert all(raw(node).dbsize() > 1000 for node in nodes)
    for itersize in (7, 100, None):
        found = list(cache.iter_keys("item:*", itersize=itersize))
        assert len(found) == len(expected)
        assert set(found) == expected
    assert cache.delete_pattern("item:*", itersize=333) == 5000
    assert cache.keys("item:*") == []
    assert len(cache.keys("other:*")) == 500


def test_iter_keys_is_lazy(cache, nodes):
    cache.set_many({f"k{i}": i for i in range(2000)})
    for node in nodes:
        raw(node).config_resetstat()
    gen = cache.iter_keys("k*", itersize=10)
    first = next(gen)
    assert first.startswith("k")
    scans = sum(
        raw(node).info("commandstats").get("cmdstat_scan", {}).get("calls", 0) for node in nodes
    )
    assert scans <= 4  # one round so far, not the whole keyspace
    gen.close()


# -- clear and databases ----------------------------------------------------------------------


def test_clear_leaves_another_cache_on_another_db_alone(nodes):
    db0 = make_cache(nodes, db=0)
    db1 = make_cache(nodes, db=1)
    db0.set_many({f"k{i}": 0 for i in range(40)})
    db1.set_many({f"k{i}": 1 for i in range(40)})
    assert db0.clear() is True
    assert db0.get_many([f"k{i}" for i in range(40)]) == {}
    assert db1.get_many([f"k{i}" for i in range(40)]) == {f"k{i}": 1 for i in range(40)}
    assert db1.clear() is True


# -- named clusters ---------------------------------------------------------------------------


def test_named_cluster_through_caches_follows_override_settings(rb_settings, redis_nodes):
    from django.test import override_settings

    rb_settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "rb": {"BACKEND": "django_rb.cache.RBCache", "LOCATION": "default", "KEY_PREFIX": "x"},
    }
    cache = caches["rb"]
    cache.set("where", "outer")
    other = redis_nodes(1)
    with override_settings(RB_CLUSTERS=rb_clusters_setting(other)):
        assert cache.get("where") is None
        cache.set("where", "inner")
        assert raw(other[0]).get(cache.make_key("where")) is not None
        assert sorted(cache.iter_keys("*")) == ["where"]
    assert cache.get("where") == "outer"
    assert sorted(cache.iter_keys("*")) == ["where"]


# -- concurrency and async --------------------------------------------------------------------


def test_incr_and_decr_from_threads_over_many_keys(cache):
    keys = [f"c{i}" for i in range(16)]
    cache.set_many(dict.fromkeys(keys, 0))

    def work(n):
        for i in range(100):
            key = keys[(n + i) % len(keys)]
            cache.incr(key, 3)
            cache.decr(key, 1)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(cache.get_many(keys).values()) == 8 * 100 * 2


def test_async_api_under_asyncio_run(cache):
    async def scenario():
        assert await cache.aset_many({f"a{i}": i for i in range(100)}, timeout=30) == []
        assert await cache.aget_many([f"a{i}" for i in range(100)] + ["zz"]) == {
            f"a{i}": i for i in range(100)
        }
        await cache.aset("n", 0)
        results = await asyncio.gather(*(cache.aincr("n") for _ in range(50)))
        assert sorted(results) == list(range(1, 51))
        assert await cache.aget("n") == 50
        with pytest.raises(ValueError):
            await cache.aincr("missing")
        assert await cache.aget_or_set("g", lambda: "computed") == "computed"
        assert await cache.aadd("g", "other") is False
        assert await cache.ahas_key("g") is True
        await cache.adelete_many([f"a{i}" for i in range(50)])
        assert len(await cache.aget_many([f"a{i}" for i in range(100)])) == 50
        assert await cache.atouch("g", None) is True
        assert await cache.aincr_version("g") == 2
        assert await cache.adecr_version("g", version=2) == 1
        assert await cache.aclear() is True
        assert await cache.aget_many(["g", "n"]) == {}

    asyncio.run(scenario())


# -- locks ------------------------------------------------------------------------------------


def test_two_locks_on_one_key_exclude_each_other_and_timeouts_release(cache):
    first = cache.lock("job", timeout=0.5)
    second = cache.lock("job", timeout=5, blocking_timeout=0.1)
    assert first.acquire(blocking=False) is True
    assert second.acquire() is False
    started = time.monotonic()
    waiting = cache.lock("job", timeout=5, blocking_timeout=3)
    assert waiting.acquire() is True  # the first one's timeout let it go
    assert 0.2 < time.monotonic() - started < 2
    assert first.owned() is False
    with pytest.raises(redis.exceptions.LockError):
        first.release()
    waiting.release()
    assert cache.lock("job", version=2, blocking_timeout=0.1).acquire() is True
    assert cache.lock("job", blocking_timeout=0.1).acquire() is True  # version 1 was free


def test_lock_excludes_across_threads(cache):
    inside = []
    overlap = []

    def work():
        for _ in range(10):
            with cache.lock("crit", timeout=5, sleep=0.001):
                inside.append(1)
                if len(inside) > 1:
                    overlap.append(1)
                time.sleep(0.001)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlap == []


def test_incr_after_a_node_restart_reloads_its_script(nodes):
    cache = make_cache(nodes)
    cache.set("n", 1)
    assert cache.incr("n") == 2
    made = cache.make_key("n")
    node = nodes[cache.cluster.get_router().get_host_for_key(made)]
    raw(node).script_flush()
    assert cache.incr("n") == 3
    node.stop()
    node.start()  # empty, and without the script
    cache.set("n", 10)
    assert cache.incr("n") == 11


@pytest.mark.parametrize(
    "compressor",
    [
        "django_redis.compressors.gzip.GzipCompressor",
        "django_redis.compressors.lzma.LzmaCompressor",
        "django_redis.compressors.zlib.ZlibCompressor",
        "django_redis.compressors.identity.IdentityCompressor",
    ],
)
def test_django_redis_compressors_round_trip(nodes, compressor):
    cache = make_cache(
        nodes, OPTIONS={"COMPRESSOR": compressor, "SERIALIZER": "pickle", "PICKLE_VERSION": -1}
    )
    values = {"small": "s", "big": "b" * 50_000, "n": 3, "bytes": b"\x00" * 5000}
    assert cache.set_many(values) == []
    assert cache.get_many(list(values)) == values
    assert cache.incr("n") == 4


def test_many_calls_take_iterators(cache):
    cache.set_many({f"k{i}": i for i in range(10)})
    assert cache.get_many(f"k{i}" for i in range(5)) == {f"k{i}": i for i in range(5)}
    cache.delete_many(iter(["k0", "k1", "absent"]))
    assert cache.get_many(iter([f"k{i}" for i in range(10)])) == {f"k{i}": i for i in range(2, 10)}


def test_get_or_set_with_callables_and_failing_callables(cache, witness):
    for backend in (cache, witness):
        assert backend.get_or_set("a", lambda: None) is None
        assert backend.has_key("a") is True
        assert backend.get_or_set("a", lambda: 1) is None
        with pytest.raises(ZeroDivisionError):
            backend.get_or_set("b", lambda: 1 / 0)
        assert backend.has_key("b") is False
        assert backend.get_or_set("c", 7, timeout=None) == 7
        assert backend.get_or_set("d", 7, version=3) == 7
        assert backend.get("d", version=3) == 7
        assert backend.get("d") is None
    assert cache.ttl("c") is None


def test_unix_socket_location_with_a_db(redis_nodes):
    node = redis_nodes(1, unix_socket=True)[0]
    cache = RBCache(f"unix://{node.socket_path}?db=2", {})
    assert cache.set_many({"a": 1, "b": "x"}) == []
    assert cache.get_many(["a", "b"]) == {"a": 1, "b": "x"}
    assert cache.incr("a") == 2
    assert sorted(cache.iter_keys("*")) == ["a", "b"]
    assert redis.Redis(unix_socket_path=node.socket_path, db=2).dbsize() == 2
    assert cache.clear() is True
    assert redis.Redis(unix_socket_path=node.socket_path, db=2).dbsize() == 0


def test_a_value_compressed_by_another_compressor_is_unreadable_not_a_crash(nodes):

    writer = make_cache(nodes, OPTIONS={"COMPRESSOR": "zlib", "COMPRESS_MIN_LENGTH": 10})
    writer.set("big", "x" * 5000)
    reader = make_cache(nodes, OPTIONS={"COMPRESSOR": "zstd", "COMPRESS_MIN_LENGTH": 10})
    with pytest.raises(UnreadableValue, match="another COMPRESSOR"):
        reader.get("big")
