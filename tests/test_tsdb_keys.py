"""tsdb arguments, rollups, settings and key layout: bad input raises and writes nothing."""

from __future__ import annotations

import enum
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_rb.testing import rb_clusters_setting
from django_rb.tsdb import TSDB, TSDBArgumentError, tsdb
from django_rb.tsdb.checks import check_tsdb

from .tsdb_model import ROLLUPS, all_keys, key_count, recent, store

__all__ = ["store"]  # fixtures

NOW = recent()

BAD_WRITES = [
    ("naive datetime", lambda s: s.incr("m", 1, datetime(2026, 1, 1)), "naive"),
    ("empty model", lambda s: s.incr("", 1, NOW), "empty"),
    ("model with a colon", lambda s: s.incr("a:b", 1, NOW), "holds"),
    ("model with a brace", lambda s: s.record("a{", 1, ["x"], NOW), "holds"),
    ("float key", lambda s: s.incr("m", 1.5, NOW), "string or an int"),
    ("bool key", lambda s: s.incr("m", True, NOW), "string or an int"),
    ("float count", lambda s: s.incr("m", 1, NOW, count=1.5), "count is an int"),
    ("string timestamp", lambda s: s.incr("m", 1, "yesterday"), "timestamp"),
    ("nan timestamp", lambda s: s.incr("m", 1, float("nan")), "finite"),
    ("bad item last", lambda s: s.incr_multi([("m", 1), ("m",)], NOW), "incr_multi item"),
    (
        "bad option",
        lambda s: s.incr_multi([("m", 1), ("m", 2, {"when": 1})], NOW),
        "options",
    ),
    ("values not a list", lambda s: s.record("m", 1, "abc", NOW), "single str"),
    ("bad value", lambda s: s.record_multi([("m", 1, ["a"]), ("m", 2, [1.5])], NOW), "value"),
    (
        "bad score",
        lambda s: s.record_frequency_multi([("m", {1: {"a": 1, "b": "x"}})], NOW),
        "not a number",
    ),
    ("bad env", lambda s: s.incr("m", 1, NOW, environment_id=1.5), "environment id"),
]

BAD_READS = [
    ("unknown rollup", lambda s: s.get_range("m", [1], NOW, NOW, rollup=5), "no rollup of 5"),
    ("start after end", lambda s: s.get_sums("m", [1], NOW + 10, NOW), "starts after"),
    ("naive start", lambda s: s.get_range("m", [1], datetime(2026, 1, 1), NOW), "naive"),
    ("keys a string", lambda s: s.get_range("m", "abc", NOW, NOW), "single str"),
    ("empty model", lambda s: s.get_distinct_counts_totals("", [1], NOW, NOW), "empty"),
    ("bad limit", lambda s: s.get_most_frequent("m", [1], NOW, NOW, limit=0), "limit"),
    ("empty envs", lambda s: s.get_range("m", [1], NOW, NOW, environment_ids=[]), "empty"),
    ("too many", lambda s: s.get_range("m", [1], 0, NOW, rollup=10), "coarser"),
    ("bad union", lambda s: s.get_distinct_counts_union("m", [1, 2], NOW, NOW, rollup=7), "rollup"),
    ("bad members", lambda s: s.get_frequency_series("m", [1], NOW, NOW), "given as"),
    ("self merge", lambda s: s.merge("m", 1, [1]), "among the sources"),
    ("bad delete", lambda s: s.delete(["m", ""], [1]), "empty"),
]


@pytest.mark.parametrize(("why", "call", "message"), BAD_WRITES, ids=[b[0] for b in BAD_WRITES])
def test_bad_writes_raise_and_write_nothing(
    store: TSDB, rb_cluster: Any, why: str, call: Any, message: str
) -> None:
    with pytest.raises(TSDBArgumentError, match=message):
        call(store)
    assert key_count(rb_cluster) == 0


@pytest.mark.parametrize(("why", "call", "message"), BAD_READS, ids=[b[0] for b in BAD_READS])
def test_bad_reads_and_maintenance_raise_before_sending(
    store: TSDB, rb_cluster: Any, monkeypatch: pytest.MonkeyPatch, why: str, call: Any, message: str
) -> None:
    store.incr("m", 1, NOW)
    before = key_count(rb_cluster)
    monkeypatch.setattr(rb_cluster, "fanout", lambda *a, **k: pytest.fail("a round was run"))
    with pytest.raises(TSDBArgumentError, match=message):
        call(store)
    monkeypatch.undo()
    assert key_count(rb_cluster) == before


def test_the_error_is_both_a_value_error_and_a_type_error() -> None:
    assert issubclass(TSDBArgumentError, ValueError) and issubclass(TSDBArgumentError, TypeError)


@pytest.mark.parametrize(
    ("rollups", "message"),
    [
        ([(10, 0)], "positive ints"),
        ([(10, 5), (10, 6)], "given twice"),
        ([], "At least one"),
        ("10,360", "list of"),
        ([(10,)], "pair"),
    ],
)
def test_bad_rollups_are_refused(rollups: Any, message: str) -> None:
    with pytest.raises(TSDBArgumentError, match=message):
        TSDB(object(), rollups=rollups)


def test_rollups_are_sorted_and_reported() -> None:
    store = TSDB(object(), rollups=[(3600, 24), (10, 6)])
    assert store.get_rollups() == {10: 6, 3600: 24}
    assert TSDB(object()).get_rollups() == {10: 360, 3600: 168, 86400: 90}


def test_normalize_aligns_to_the_utc_epoch() -> None:
    store = TSDB(object())
    moment = datetime(2026, 3, 4, 17, 30, 5, tzinfo=UTC)
    midnight = int(datetime(2026, 3, 4, tzinfo=UTC).timestamp())
    assert store.normalize_to_epoch(moment, 86400) == midnight
    assert store.normalize_to_rollup(moment, 86400) == midnight // 86400
    assert store.normalize_to_rollup(125.5, 10) == 12


def test_optimal_rollup_is_the_finest_whose_retention_still_holds_start() -> None:
    store = TSDB(object())
    now = time.time()
    assert store.get_optimal_rollup(now - 600, now) == 10
    assert store.get_optimal_rollup(now - 3590, now) == 10
    assert store.get_optimal_rollup(now - 3 * 3600, now) == 3600
    assert store.get_optimal_rollup(now - 10 * 86400, now) == 86400
    # a short window far back: Sentry would pick 10 s by its length alone, whose data is gone
    assert store.get_optimal_rollup(now - 200 * 86400, now - 200 * 86400 + 60) == 86400


def test_enum_models_stand_for_their_values(store: TSDB) -> None:
    class Model(enum.Enum):
        EVENTS = "project.events"

    store.incr(Model.EVENTS, 1, NOW)
    assert store.get_sums("project.events", [1], NOW, NOW, rollup=10) == {1: 1}


def test_string_keys_of_any_length_cost_a_fixed_size_field(store: TSDB, rb_cluster: Any) -> None:
    long_key = "x" * 10_000
    store.incr("m", long_key, NOW)
    assert store.get_sums("m", [long_key], NOW, NOW, rollup=10) == {long_key: 1}
    for name in (n for found in all_keys(rb_cluster).values() for n in found):
        with rb_cluster.fanout() as client:
            fields = client.target_key(name).hkeys(name)
        assert all(len(f) < 40 for f in fields.value)


def test_settings_checks_name_each_mistake(settings: Any, rb_nodes: list) -> None:
    settings.RB_CLUSTERS = rb_clusters_setting(rb_nodes)
    settings.RB_TSDB = {"ROLLUPS": [(10, 360)], "CLUSTER": "default"}
    assert check_tsdb() == []
    settings.RB_TSDB = ["no"]
    assert [m.id for m in check_tsdb()] == ["django_rb.E201"]
    settings.RB_TSDB = {"ROLLUP": [(10, 360)]}
    (message,) = check_tsdb()
    assert message.id == "django_rb.E202" and "ROLLUPS" in message.hint
    settings.RB_TSDB = {"CLUSTER": "nope"}
    assert [m.id for m in check_tsdb()] == ["django_rb.E203"]
    settings.RB_TSDB = {"ROLLUPS": [(10, -1)], "VNODES": 0}
    assert [m.id for m in check_tsdb()] == ["django_rb.E204"]


def test_the_default_store_follows_rb_tsdb(settings: Any, rb_nodes: list, rb_cluster: Any) -> None:
    settings.RB_CLUSTERS = rb_clusters_setting(rb_nodes)
    settings.RB_TSDB = {"ROLLUPS": ROLLUPS, "PREFIX": "dflt"}
    tsdb.incr("m", 1, NOW)
    assert tsdb.get_sums("m", [1], NOW, NOW, rollup=10) == {1: 1}
    assert tsdb.get_rollups() == dict(ROLLUPS)
    settings.RB_TSDB = {"ROLLUPS": [(60, 10)], "PREFIX": "dflt"}
    assert tsdb.get_rollups() == {60: 10}
    settings.RB_TSDB = {"CLUSTER": "missing"}
    with pytest.raises(ImproperlyConfigured, match="E203"):
        tsdb.get_rollups()


def test_the_app_config_registers_the_checks() -> None:
    from django.core.checks import registry

    import django_rb.tsdb
    from django_rb.tsdb.apps import TSDBConfig

    try:
        TSDBConfig("django_rb.tsdb", django_rb.tsdb).ready()
        assert check_tsdb in registry.registry.get_checks()
    finally:  # other tests count the registered checks' messages
        registry.registry.registered_checks.discard(check_tsdb)
