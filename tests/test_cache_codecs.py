"""Serializers and compressors: ours, django-redis's classes by dotted path, and what is stored."""

from __future__ import annotations

import datetime
import decimal
import lzma
import threading
import zlib

import pytest
import redis

from django_rb.cache import RBCache
from django_rb.cache.client import UnreadableValue


def make_cache(nodes, **options):
    return RBCache([node.url(0) for node in nodes], {"OPTIONS": options})


def stored(cache, nodes, key) -> bytes:
    """The bytes Redis holds for a cache key (read with a plain client on its node)."""
    made = cache.make_key(key)
    node = nodes[cache.cluster.get_router().get_host_for_key(made)]
    return redis.Redis(port=node.port).get(made)


PLAIN_VALUES = {
    "str": "héllo",
    "int": 7,
    "negative": -12,
    "big": 2**80,
    "float": 1.5,
    "bool": True,
    "none": None,
    "list": [1, "two", None],
    "dict": {"a": {"b": [1, 2]}},
    "empty": "",
}


@pytest.mark.parametrize(
    "serializer",
    [
        "pickle",
        "json",
        "msgpack",
        "django_rb.cache.serializers.JSONSerializer",
        "django_redis.serializers.json.JSONSerializer",
        "django_redis.serializers.pickle.PickleSerializer",
        "django_redis.serializers.msgpack.MSGPackSerializer",
    ],
)
def test_serializers_round_trip(nodes, serializer):
    cache = make_cache(nodes, SERIALIZER=serializer)
    assert cache.set_many(PLAIN_VALUES) == []
    assert cache.get_many(list(PLAIN_VALUES)) == PLAIN_VALUES
    for key, value in PLAIN_VALUES.items():
        assert cache.get(key) == value
        assert type(cache.get(key)) is type(value)
    cache.set("n", 10)
    assert cache.incr("n", 5) == 15  # ints bypass every serializer


def test_pickle_keeps_python_types(nodes):
    cache = make_cache(nodes)
    value = {
        "when": datetime.date(2024, 1, 2),
        "tuple": (1, 2),
        "set": {3},
        "d": decimal.Decimal("1.1"),
    }
    cache.set("k", value)
    assert cache.get("k") == value


def test_json_is_plain_json_after_the_marker(nodes):
    cache = make_cache(nodes, SERIALIZER="json")
    cache.set("k", {"when": datetime.date(2024, 1, 2), "n": [1]})
    assert cache.get("k") == {"when": "2024-01-02", "n": [1]}  # Django's encoder, JSON types
    assert stored(cache, nodes, "k") == b'\x00{"when":"2024-01-02","n":[1]}'


def test_pickle_version_option(nodes):
    cache = make_cache(nodes, PICKLE_VERSION=2)
    cache.set("k", "v")
    assert stored(cache, nodes, "k")[1:3] == b"\x80\x02"  # protocol 2 header


def test_integers_stored_as_digits_whatever_the_serializer(nodes):
    for serializer in ("pickle", "json", "msgpack"):
        cache = make_cache(nodes, SERIALIZER=serializer, COMPRESSOR="zlib", COMPRESS_MIN_LENGTH=0)
        cache.set("n", 123456789)
        assert stored(cache, nodes, "n") == b"123456789"


@pytest.mark.parametrize(
    ("compressor", "decompress"),
    [
        ("zlib", zlib.decompress),
        ("django_rb.cache.compressors.ZlibCompressor", zlib.decompress),
        ("django_redis.compressors.zlib.ZlibCompressor", zlib.decompress),
        ("zstd", None),
        ("django_redis.compressors.lzma.LzmaCompressor", lzma.decompress),
    ],
)
def test_compressors_only_compress_long_values_and_mark_them(nodes, compressor, decompress):
    cache = make_cache(nodes, COMPRESSOR=compressor, COMPRESS_MIN_LENGTH=100)
    long_value = "abc" * 1000
    short_value = "abc" * 10
    cache.set_many({"long": long_value, "short": short_value})
    assert cache.get_many(["long", "short"]) == {"long": long_value, "short": short_value}
    assert cache.get("long") == long_value

    long_bytes = stored(cache, nodes, "long")
    assert long_bytes[:1] == b"\x01"  # marked compressed
    assert len(long_bytes) < 300
    if decompress is not None:
        assert b"abcabc" in decompress(long_bytes[1:])
    short_bytes = stored(cache, nodes, "short")
    assert short_bytes[:1] == b"\x00"  # under COMPRESS_MIN_LENGTH: stored as serialized
    assert b"abcabc" in short_bytes


def test_incompressible_values_are_stored_plain(nodes):
    import os

    cache = make_cache(nodes, COMPRESSOR="zlib", COMPRESS_MIN_LENGTH=10)
    noise = os.urandom(5000)
    cache.set("noise", noise)
    assert stored(cache, nodes, "noise")[:1] == b"\x00"  # compressing made it longer
    assert cache.get("noise") == noise


def test_compression_can_be_turned_on_and_old_values_still_read(nodes):
    before = make_cache(nodes)
    before.set("old", "x" * 5000)
    after = make_cache(nodes, COMPRESSOR="zstd", COMPRESS_MIN_LENGTH=10)
    assert after.get("old") == "x" * 5000
    after.set("new", "y" * 5000)
    with pytest.raises(UnreadableValue, match="no COMPRESSOR"):
        before.get("new")


def test_values_from_other_writers_are_refused_clearly(nodes):
    cache = make_cache(nodes)
    made = cache.make_key("foreign")
    node = nodes[cache.cluster.get_router().get_host_for_key(made)]
    redis.Redis(port=node.port).set(made, b"\x80\x05pickled by someone else")
    with pytest.raises(UnreadableValue, match="not written by RBCache"):
        cache.get("foreign")


def test_unpicklable_values_raise_before_any_io(nodes):
    import pickle

    class Unpicklable:
        def __getstate__(self):
            raise pickle.PickleError("no")

    cache = make_cache(nodes, IGNORE_EXCEPTIONS=True)
    with pytest.raises(pickle.PickleError):
        cache.set("k", Unpicklable())
    with pytest.raises(pickle.PickleError):
        cache.set_many({"a": 1, "k": Unpicklable()})
    assert cache.get("a") is None  # nothing of that set_many was written


# -- serializers and compressors --------------------------------------------------------------


def test_json_rejects_non_json_values_and_stores_nothing(nodes):
    cache = make_cache(nodes, **{"SERIALIZER": "json"})
    cache.set("keep", "old")
    with pytest.raises(TypeError):
        cache.set("keep", object())
    assert cache.get("keep") == "old"
    with pytest.raises(TypeError):
        cache.set_many({"a": 1, "b": "fine", "keep": object()})
    assert cache.get_many(["a", "b", "keep"]) == {"keep": "old"}  # all or nothing
    with pytest.raises(TypeError):
        cache.add("new", {1, 2})
    assert "new" not in cache
    cache.set("ints", {"1": 1, "n": [1, 2.5, None, True]})
    assert cache.get("ints") == {"1": 1, "n": [1, 2.5, None, True]}


@pytest.mark.parametrize("compressor", ["zlib", "zstd"])
def test_compression_threshold_is_exact(nodes, compressor):
    cache = make_cache(
        nodes, **{"SERIALIZER": "json", "COMPRESSOR": compressor, "COMPRESS_MIN_LENGTH": 100}
    )

    def stored(key):
        made = cache.make_key(key)
        return redis.Redis(port=nodes[cache.cluster.get_router().get_host_for_key(made)].port).get(
            made
        )

    at = "a" * 98  # json adds two quotes: exactly 100 bytes serialized
    above = "a" * 99
    cache.set_many({"at": at, "above": above})
    assert stored("at")[:1] == b"\x00"
    assert stored("above")[:1] == b"\x01"
    assert cache.get_many(["at", "above"]) == {"at": at, "above": above}


def test_values_written_compressed_after_compression_is_turned_off(nodes):
    on = make_cache(nodes, **{"COMPRESSOR": "zstd"})
    off = make_cache(nodes)
    on.set_many({"big": "y" * 10_000, "small": "s", "n": 3})
    assert off.get("small") == "s" and off.get("n") == 3
    with pytest.raises(UnreadableValue, match="no COMPRESSOR"):
        off.get("big")
    with pytest.raises(UnreadableValue):
        off.get_many(["big", "small"])


def test_msgpack_and_django_redis_codecs_interoperate(nodes):
    ours = make_cache(nodes, **{"SERIALIZER": "msgpack", "COMPRESSOR": "zlib"})
    theirs = make_cache(
        nodes,
        **{
            "SERIALIZER": "django_redis.serializers.msgpack.MSGPackSerializer",
            "COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor",
        },
    )
    value = {"b": b"\x00\xff", "l": [1, -2, 3.5], "s": "é" * 3000}
    ours.set("v", value)
    assert theirs.get("v") == value
    theirs.set("w", value)
    assert ours.get("w") == value
    theirs.set("n", 5)
    assert ours.incr("n") == 6


def test_huge_values_round_trip_compressed_across_threads(nodes):
    cache = make_cache(nodes, **{"COMPRESSOR": "zstd"})
    errors = []

    def work(i):
        try:
            for j in range(5):
                value = {"i": i, "data": f"{i}-{j}-" * 200_000}
                cache.set(f"h{i}", value)
                assert cache.get(f"h{i}") == value
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    raw_size = len(cache.get("h0")["data"])
    made = cache.make_key("h0")
    assert (
        len(
            redis.Redis(port=nodes[cache.cluster.get_router().get_host_for_key(made)].port).get(
                made
            )
        )
        < raw_size
    )
