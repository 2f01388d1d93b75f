"""Bad input across the apps: a clear error before anything is sent, and nothing stored lost.

Key warnings (spaces, control characters, non-ASCII, over 250 bytes) are in
test_cache_semantics / test_cache; unknown and cross-node commands in test_map.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_rb.cache import RBCache, limits
from django_rb.cache.limits import ValueTooLarge
from django_rb.ratelimit.limiter import RateLimiter
from django_rb.testing import keys_per_host
from django_rb.tsdb import TSDB, TSDBArgumentError

from .tsdb_model import ROLLUPS, recent


@pytest.fixture
def cache(rb_nodes: list[Any], rb_cluster: Any) -> RBCache:
    return RBCache([node.url(0) for node in rb_nodes], {"OPTIONS": {"IGNORE_EXCEPTIONS": True}})


def command_count(rb_cluster: Any) -> int:
    """Commands the nodes have processed so far (INFO stats, which itself counts one each)."""
    with rb_cluster.all() as client:
        stats = client.info("stats")
    return sum(s["total_commands_processed"] for s in stats.value.values())


def test_a_value_over_the_limit_raises_before_sending_and_loses_nothing(
    cache: RBCache, rb_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert limits.MAX_VALUE_BYTES == 512 * 1024 * 1024  # Redis's proto-max-bulk-len default
    by_node = keys_per_host(cache.cluster, 2, stored=cache.make_key)
    keys = [key for found in by_node.values() for key in found]
    cache.set_many({key: "kept" for key in keys})
    monkeypatch.setattr(limits, "MAX_VALUE_BYTES", 1000)  # the same check, without 512 MB
    before = command_count(rb_cluster)
    big = "x" * 2000
    with pytest.raises(ValueTooLarge, match="over Redis's limit of 1,000 bytes"):
        cache.set_many({**{key: "new" for key in keys}, keys[-1]: big})
    with pytest.raises(ValueTooLarge):
        cache.set(keys[0], big)  # IGNORE_EXCEPTIONS is for nodes, never for bad values
    with pytest.raises(ValueTooLarge):
        cache.add(keys[0], big)
    assert command_count(rb_cluster) == before + len(by_node)  # only the INFO rounds
    assert cache.get_many(keys) == {key: "kept" for key in keys}
    cache.set(keys[0], "y" * 900)  # under the limit: stored
    assert cache.get(keys[0]) == "y" * 900


def test_empty_batches_are_no_ops(cache: RBCache, rb_cluster: Any) -> None:
    store = TSDB(rb_cluster, rollups=ROLLUPS)
    before = command_count(rb_cluster)
    assert cache.get_many([]) == {}
    assert cache.set_many({}) == []
    assert cache.delete_many([]) is None
    assert store.incr_multi([]) is None
    assert store.record_multi([]) is None
    assert store.get_sums("m", [], recent(), recent()) == {}
    assert RateLimiter(rb_cluster).consume_many([]) == []
    assert command_count(rb_cluster) == before + len(rb_cluster.hosts)  # only the INFO round


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.incr("m", None),
        lambda s: s.incr("m", 1.5),
        lambda s: s.incr("", 1),
        lambda s: s.incr("a b", 1),
        lambda s: s.incr("m", 1, count="3"),
        lambda s: s.incr_multi([("m", 1), ("m", None)]),
        lambda s: s.record("m", 1, None),
        lambda s: s.record("m", 1, "abc"),
        lambda s: s.record_frequency_multi([("m", {1: {"x": float("nan")}})]),
    ],
)
def test_bad_tsdb_writes_raise_and_write_nothing(rb_cluster: Any, call: Any) -> None:
    store = TSDB(rb_cluster, rollups=ROLLUPS)
    store.incr("m", 1, recent())
    before = command_count(rb_cluster)
    with pytest.raises(TSDBArgumentError):
        call(store)
    assert command_count(rb_cluster) == before + len(rb_cluster.hosts)
    assert store.get_sums("m", [1], recent(), recent(), rollup=10) == {1: 1}


def test_none_is_a_value_not_a_miss(cache: RBCache) -> None:
    cache.set("none", None)
    assert cache.get("none", "default") is None  # stored None, as Django's backends do
    assert cache.get_many(["none", "absent"]) == {"none": None}
    assert cache.has_key("none")
