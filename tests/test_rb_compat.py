"""rb 1.11 compatibility: keys land on the same host as with rb, and rb code keeps working.

``tests/data/rb_routing.json`` was recorded by running the real rb 1.11 (see
``scripts/gen_routing_fixture.py``): host dicts exactly as rb got them, keys of every kind
(str, int, unicode, non-UTF-8 bytes, long, empty) and the host id rb's router chose for each.
Routing is pure computation, so no Redis server is involved in those tests; the behaviours
further down (errors rb users catch, signatures, connections after error replies) run against
real nodes.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import pathlib
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import redis

from django_rb.cluster import (
    BadHostSetup,
    Cluster,
    ConsistentHashingRouter,
    FanoutClient,
    MappingClient,
    PartitionRouter,
    Promise,
    RoutingClient,
    UnroutableCommand,
)

FIXTURE = Path(__file__).parent / "data" / "rb_routing.json"
ROUTERS: dict[str, type] = {
    "PartitionRouter": PartitionRouter,
    "ConsistentHashingRouter": ConsistentHashingRouter,
}


@cache
def fixture() -> dict[str, Any]:
    """The recorded rb placements (loaded once)."""
    with FIXTURE.open(encoding="utf-8") as fh:
        return json.load(fh)


def decode_key(value: Any) -> str | int | bytes:
    """Undo the fixture's key encoding: str as is, {"int": n}, {"b64": ...}."""
    if isinstance(value, str):
        return value
    if "int" in value:
        return int(value["int"])
    return base64.b64decode(value["b64"])


def int_keys(hosts: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """JSON object keys are strings; rb's host ids are ints."""
    return {int(host_id): dict(cfg) for host_id, cfg in hosts.items()}


def host_id_of(picked: Any) -> int:
    """rb's ketama router returned its HostInfo, the partition router an int: compare ids."""
    return int(getattr(picked, "host_id", picked))


def setup_ids() -> list[str]:
    return [f"{s['name']}-{s['router']}" for s in fixture()["setups"]]


def mismatches(cluster: Any, setup: dict[str, Any]) -> list[tuple[Any, int, int]]:
    """(key, rb's host id, ours) for every key the cluster places elsewhere than rb did."""
    router = cluster.get_router()
    wrong = []
    for raw, expected in zip(setup["keys"], setup["host_ids"], strict=True):
        key = decode_key(raw)
        got = host_id_of(router.get_host_for_key(key))
        if got != expected:
            wrong.append((key, expected, got))
    return wrong


def describe(setup: dict[str, Any], wrong: list[tuple[Any, int, int]]) -> str:
    shown = ", ".join(f"{k!r:.60} rb={e} ours={g}" for k, e, g in wrong[:5])
    return (
        f"{setup['name']} / {setup['router']} ({setup['host_count']} hosts): "
        f"{len(wrong)} of {len(setup['keys'])} keys placed differently from rb, e.g. {shown}"
    )


# -- the fixture itself covers what it claims --------------------------------------------------


def test_fixture_covers_host_counts_routers_and_key_kinds() -> None:
    setups = fixture()["setups"]
    assert {s["host_count"] for s in setups} >= {1, 2, 3, 4, 5, 8, 16}
    for router in ROUTERS:
        assert {s["host_count"] for s in setups if s["router"] == router} >= {1, 2, 3, 4, 5, 8, 16}
    all_hosts = [cfg for s in setups for cfg in s["hosts"].values()]
    for field in ("password", "db", "unix_socket_path", "ssl", "ssl_options"):
        assert any(field in cfg for cfg in all_hosts), field
    for setup in setups:
        assert len(setup["keys"]) == len(setup["host_ids"]) >= 1000
        assert set(setup["host_ids"]) == set(range(setup["host_count"]))
        keys = [decode_key(k) for k in setup["keys"]]
        kinds = Counter(type(k).__name__ for k in keys)
        assert kinds["str"] and kinds["int"] and kinds["bytes"], kinds
        assert "" in keys and b"" in keys
        assert any(isinstance(k, str) and not k.isascii() for k in keys)
        assert any(isinstance(k, bytes) and not _is_utf8(k) for k in keys)
        assert any(len(k) >= 100 for k in keys if isinstance(k, str | bytes))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_fixture_catches_unsigned_crc32() -> None:
    """rb used Python 2's signed crc32; with 3 or 5 hosts an unsigned modulo lands elsewhere."""
    checked = 0
    for setup in fixture()["setups"]:
        count = setup["host_count"]
        if setup["router"] != "PartitionRouter" or count & (count - 1) == 0:
            continue
        differ = 0
        for raw, expected in zip(setup["keys"], setup["host_ids"], strict=True):
            key = decode_key(raw)
            data = key if isinstance(key, bytes) else str(key).encode("utf-8")
            differ += binascii.crc32(data) % count != expected
        assert differ > len(setup["keys"]) // 4, setup["name"]
        checked += 1
    assert checked >= 2


# -- django_rb places every key where rb did ---------------------------------------------------


@pytest.mark.parametrize("index", range(len(fixture()["setups"])), ids=setup_ids())
def test_same_host_as_rb(index: int) -> None:
    setup = fixture()["setups"][index]
    cluster = Cluster(int_keys(setup["hosts"]), router_cls=ROUTERS[setup["router"]])
    wrong = mismatches(cluster, setup)
    assert not wrong, describe(setup, wrong)


@pytest.mark.parametrize("index", range(len(fixture()["setups"])), ids=setup_ids())
def test_same_host_as_rb_through_host_defaults(index: int) -> None:
    """The same hosts given the way rb got them: partial dicts plus ``host_defaults``."""
    setup = fixture()["setups"][index]
    cluster = Cluster(
        int_keys(setup["raw_hosts"]),
        host_defaults=setup["host_defaults"],
        router_cls=ROUTERS[setup["router"]],
    )
    wrong = mismatches(cluster, setup)
    assert not wrong, describe(setup, wrong)


def test_partition_router_is_the_default() -> None:
    setup = next(
        s for s in fixture()["setups"] if s["router"] == "PartitionRouter" and s["host_count"] == 5
    )
    wrong = mismatches(Cluster(int_keys(setup["hosts"])), setup)
    assert not wrong, describe(setup, wrong)


# -- host ids must run 0..n-1 -----------------------------------------------------------------


@pytest.mark.parametrize("router_cls", list(ROUTERS.values()), ids=list(ROUTERS))
@pytest.mark.parametrize(
    "host_ids",
    [(0, 2), (1, 2), (0, 1, 3), (0, 1, 2, 3, 5)],
    ids=["0-2", "no-0", "0-1-3", "missing-4"],
)
def test_host_ids_with_a_gap_are_rejected(router_cls: type, host_ids: tuple[int, ...]) -> None:
    hosts = {i: {"host": "127.0.0.1", "port": 7000 + i} for i in host_ids}
    with pytest.raises(BadHostSetup):
        # rb raised when the router was built; raising already in Cluster() is fine too.
        cluster = Cluster(hosts, router_cls=router_cls)
        cluster.get_router().get_host_for_key("key")


@pytest.mark.parametrize("router_cls", list(ROUTERS.values()), ids=list(ROUTERS))
def test_gapless_ids_in_any_order_are_accepted(router_cls: type) -> None:
    hosts = {i: {"host": "127.0.0.1", "port": 7000 + i} for i in (2, 0, 1)}
    cluster = Cluster(hosts, router_cls=router_cls)
    assert host_id_of(cluster.get_router().get_host_for_key("key")) in {0, 1, 2}


# -- commands Redis rejects still go to their key's host -----------------------------------------


def rejected_calls(cluster: Any, command: str) -> dict[int, int]:
    """Per host: how often the server refused ``command`` for its arguments (INFO's count)."""
    found = {}
    for host_id in cluster.hosts:
        stats = cluster.get_local_client(host_id).info("commandstats")
        found[host_id] = stats.get(f"cmdstat_{command}", {}).get("rejected_calls", 0)
    return found


def reset_stats(cluster: Any) -> None:
    for host_id in cluster.hosts:
        cluster.get_local_client(host_id).config_resetstat()


def test_wrong_arity_on_the_routing_client_returns_the_server_error(rb_cluster: Any) -> None:
    routing = rb_cluster.get_routing_client()
    reset_stats(rb_cluster)
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        routing.sadd("arity-key")  # SADD without members
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        routing.execute_command("GET", "arity-key", "extra")
    owner = rb_cluster.get_router().get_host_for_key("arity-key")
    expected = {h: int(h == owner) for h in rb_cluster.hosts}
    assert rejected_calls(rb_cluster, "sadd") == expected
    assert rejected_calls(rb_cluster, "get") == expected


def test_wrong_arity_inside_map_rejects_its_promise_only(rb_cluster: Any) -> None:
    reset_stats(rb_cluster)
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        with rb_cluster.map() as client:
            bad = client.sadd("arity-key")
            good = client.sadd("arity-other", "m")
            hget = client.execute_command("HGET", "arity-hash")
    assert isinstance(bad.reason, redis.ResponseError)
    assert isinstance(hget.reason, redis.ResponseError)
    assert good.value == 1
    owner = rb_cluster.get_router().get_host_for_key("arity-key")
    assert rejected_calls(rb_cluster, "sadd") == {h: int(h == owner) for h in rb_cluster.hosts}


@pytest.mark.parametrize(
    "command",
    [("PING",), ("SADD",), ("FLUSHDB",), ("NOSUCHCOMMAND", "key"), ("EVAL", "return 1", "x")],
    ids=["keyless", "no-key-given", "keyless-admin", "unknown", "bad-numkeys"],
)
def test_commands_without_a_key_are_still_refused(rb_cluster: Any, command: tuple) -> None:
    with pytest.raises(UnroutableCommand):
        rb_cluster.get_routing_client().execute_command(*command)
    with rb_cluster.map() as client, pytest.raises(UnroutableCommand):
        client.execute_command(*command)


def all_connections_idle(cluster: Any) -> bool:
    """Every connection each pool made is back in it (rb leaked them after error replies)."""
    pools = [cluster.get_pool_for_host(h) for h in cluster.hosts]
    return all(
        not pool._in_use_connections
        and len(pool._available_connections) == pool._created_connections
        for pool in pools
    )


def test_connections_are_released_after_error_replies(rb_cluster: Any) -> None:
    routing = rb_cluster.get_routing_client()
    routing.set("str-key", "v")
    with pytest.raises(redis.ResponseError):
        routing.sadd("arity-key")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        routing.lpush("str-key", "x")
    assert all_connections_idle(rb_cluster)

    mapping = routing.get_mapping_client()  # rb's unmanaged mapping client
    mapping.sadd("arity-key")
    mapping.lpush("str-key", "x")
    for i in range(20):
        mapping.incr(f"counter{i}")
    with pytest.raises(redis.ResponseError):
        mapping.join()
    assert all_connections_idle(rb_cluster)

    with pytest.raises(redis.ResponseError):
        with rb_cluster.map() as client:  # the managed one
            client.sadd("arity-key")
            client.lpush("str-key", "x")
            for i in range(20):
                client.incr(f"counter{i}")
    assert all_connections_idle(rb_cluster)
    assert routing.get("counter0") == b"2"  # the good commands ran in both rounds


# -- where rb raised a built-in exception, ours is that type too ---------------------------------


def test_fanout_without_target_is_a_runtime_error(rb_cluster: Any) -> None:
    with rb_cluster.fanout() as client:
        with pytest.raises(RuntimeError, match="no target hosts") as info:
            client.get("k")
    assert isinstance(info.value, UnroutableCommand)
    fanout = rb_cluster.get_routing_client().get_fanout_client(None)
    with pytest.raises(RuntimeError):
        fanout.ping()


def test_host_setup_errors_are_rb_s_builtin_types_too() -> None:
    cluster = Cluster({0: {"host": "127.0.0.1", "port": 1}})
    cases = [
        (RuntimeError, lambda: cluster.add_host(None, "127.0.0.1", 2)),
        (ValueError, lambda: cluster.add_host("one", "127.0.0.1", 2)),
        (ValueError, lambda: Cluster({"a": {"host": "127.0.0.1"}})),
        (TypeError, lambda: cluster.add_host(0, "127.0.0.1", 3)),
        (TypeError, lambda: Cluster([{"host_id": 0}, {"host_id": 0, "port": 2}])),
        (TypeError, lambda: cluster.add_host(1, unix_socket_path="/tmp/x.sock", ssl=True)),
    ]
    for builtin, make in cases:
        with pytest.raises(builtin) as info:
            make()
        assert isinstance(info.value, BadHostSetup), info.value
    assert list(cluster.hosts) == [0]  # nothing was half added
    with pytest.raises(LookupError):
        cluster.get_pool_for_host(7)


# -- rb 1.11 compatibility -----------------------------------------------------------------------


def test_mapping_mset_accepts_rb_s_arguments(rb_cluster):
    with rb_cluster.map() as client:
        both = client.mset({"ma": "1"}, mb="2")
        only_kwargs = client.mset(mc="3")
    assert (both.value, only_kwargs.value) == (None, None)
    assert rb_cluster.get_routing_client().get("mb") == b"2"


def test_mapping_mget_with_a_non_iterable_key(rb_cluster):
    with rb_cluster.map() as client:
        client.set(1, "one")
    with rb_cluster.map() as client:
        got = client.mget(1, 2)
    assert got.value == [b"one", None]


def test_mapping_mget_forms(rb_cluster):
    with rb_cluster.map() as client:
        client.mset({"g1": "1", "g2": "2"})
    with rb_cluster.map() as client:
        listed = client.mget(["g1", "g2"])
        starred = client.mget("g1", "g2", "g3")
        from_gen = client.mget(k for k in ("g2", "g1"))
        empty = client.mget([])
    assert listed.value == [b"1", b"2"] and starred.value == [b"1", b"2", None]
    assert from_gen.value == [b"2", b"1"] and empty.value == []


def test_add_host_positional_arguments_as_in_rb():
    cluster = Cluster({0: {"host": "127.0.0.1", "port": 1}})
    cluster.add_host(1, "127.0.0.1", 2, None, 3)
    assert (cluster.hosts[1].port, cluster.hosts[1].db) == (2, 3)


RB_SIGNATURES = json.loads(
    (pathlib.Path(__file__).parent / "data" / "rb_signatures.json").read_text()
)["signatures"]
CLASSES = {
    "Cluster": Cluster, "RoutingClient": RoutingClient, "MappingClient": MappingClient,
    "FanoutClient": FanoutClient, "Promise": Promise,
}  # fmt: skip


@pytest.mark.parametrize("method", sorted(RB_SIGNATURES))
def test_public_signatures_match_rb(method):
    """rb's parameters, in rb's order, with rb's defaults (recorded from rb 1.11 itself);
    ours may only add keyword parameters with defaults after them (e.g. add_host's username)."""
    cls, name = method.split(".")
    params = inspect.signature(getattr(CLASSES[cls], name)).parameters.values()
    ours = [[p.name, str(p.kind), repr(p.default)] for p in params]
    theirs = RB_SIGNATURES[method]
    assert ours[: len(theirs)] == theirs
    assert all(extra[2] != repr(inspect.Parameter.empty) for extra in ours[len(theirs) :])
