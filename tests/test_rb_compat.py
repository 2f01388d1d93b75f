"""Keys land on the same host as with rb 1.11, for both routers and many host setups.

``tests/data/rb_routing.json`` was recorded by running the real rb 1.11 (see
``scripts/gen_routing_fixture.py``): host dicts exactly as rb got them, keys of every kind
(str, int, unicode, non-UTF-8 bytes, long, empty) and the host id rb's router chose for each.
Routing is pure computation, so no Redis server is involved here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from django_rb.cluster import BadHostSetup, Cluster, ConsistentHashingRouter, PartitionRouter

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
