"""OPTIONS SIGNING_KEY: values are signed, and nothing unsigned or tampered is ever unpickled."""

from __future__ import annotations

import logging
import pickle

import pytest
import redis
from django.core import checks

from django_rb.cache import RBCache
from django_rb.cache.client import PLAIN

KEY = "sig-K3y-for-tests"
CALLS: list[str] = []


def record(text: str) -> str:
    """What a hostile pickle calls when it is loaded."""
    CALLS.append(text)
    return text


class Hostile:
    def __reduce__(self):
        return (record, ("code ran",))


def make_cache(nodes, **options):
    return RBCache([node.url(0) for node in nodes], {"OPTIONS": options})


def write_raw(cache, nodes, key, data: bytes) -> None:
    """Store ``data`` as the value of cache key ``key``, as anyone who can reach Redis could."""
    made = cache.make_key(key)
    node = nodes[cache.cluster.get_router().get_host_for_key(made)]
    redis.Redis(port=node.port).set(made, data)


@pytest.fixture(autouse=True)
def no_calls():
    CALLS.clear()
    yield
    CALLS.clear()


def test_signed_values_round_trip_and_integers_still_count(nodes):
    cache = make_cache(nodes, SIGNING_KEY=KEY, COMPRESSOR="zlib", COMPRESS_MIN_LENGTH=10)
    values = {"a": {"n": [1, 2]}, "b": "x" * 500, "c": 3, "d": b"\x00"}
    assert cache.set_many(values) == []
    assert cache.get_many(list(values)) == values
    assert cache.get("b") == "x" * 500 and cache.get_many(["a"]) == {"a": {"n": [1, 2]}}
    assert cache.incr("c") == 4
    assert cache.sadd("s", "m") == 1 and cache.smembers("s") == {"m"}


def test_an_unsigned_hostile_pickle_is_a_miss_and_never_runs(nodes, caplog):
    unsigned = make_cache(nodes)
    write_raw(unsigned, nodes, "evil", PLAIN + pickle.dumps(Hostile()))
    assert unsigned.get("evil") == "code ran"  # the danger, without a signing key
    assert CALLS == ["code ran"]
    CALLS.clear()
    signed = make_cache(nodes, SIGNING_KEY=KEY)
    caplog.set_level(logging.WARNING, logger="django_rb.cache")
    assert signed.get("evil") is None
    assert signed.get("evil", "fallback") == "fallback"
    assert signed.get_many(["evil"]) == {}
    assert signed.get_many(["evil", "other"]) == {}
    assert CALLS == []
    assert "signature does not match" in caplog.text and KEY not in caplog.text


def test_values_signed_with_another_key_or_tampered_are_misses(nodes):
    mine = make_cache(nodes, SIGNING_KEY=KEY)
    theirs = make_cache(nodes, SIGNING_KEY="another-key")
    theirs.set("v", {"from": "them"})
    assert mine.get("v") is None
    mine.set("w", "mine")
    made = mine.make_key("w")
    node = nodes[mine.cluster.get_router().get_host_for_key(made)]
    stored = redis.Redis(port=node.port).get(made)
    redis.Redis(port=node.port).set(made, stored[:-1] + bytes([stored[-1] ^ 1]))
    assert mine.get("w") is None
    unsigned = make_cache(nodes)
    unsigned.set("u", "plain")
    assert mine.get("u") is None and mine.get_many(["u", "v", "w"]) == {}


def test_a_bad_signing_key_setting_is_a_check_error_without_the_key(settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "signed": {"BACKEND": "django_rb.cache.RBCache", "LOCATION": ["redis://127.0.0.1:7001/0"],
                   "OPTIONS": {"SIGNING_KEY": ["not", "text"]}},
    }  # fmt: skip
    (message,) = [m for m in checks.run_checks(tags=["django_rb"]) if m.id == "django_rb.E020"]
    assert "SIGNING_KEY must be a non-empty str or bytes" in message.msg
    assert "text" not in str(message)  # the value itself is never shown


def test_the_signing_key_is_in_no_repr(nodes):
    cache = make_cache(nodes, SIGNING_KEY=KEY)
    shown = f"{cache._settings()!r} {cache._cache.signer!r} {cache!r}"
    assert KEY not in shown
