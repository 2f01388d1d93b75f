"""Failures: dead and stalled nodes, timeouts, reconnects, connection release, host changes."""

import time

import pytest
import redis

from django_rb.cluster import Cluster, HostConnectionError, HostTimeoutError
from django_rb.testing import cluster_hosts, healthy


def keys_by_host(cluster, count=200, prefix="k"):
    router = cluster.get_router()
    owners = {}
    for i in range(count):
        owners.setdefault(router.get_host_for_key(f"{prefix}{i}"), []).append(f"{prefix}{i}")
    return owners


@pytest.fixture
def three_nodes(redis_nodes):
    with healthy(redis_nodes(3, password="pa55word")) as nodes:
        yield nodes


def make_cluster(nodes, **pool_options):
    return Cluster(cluster_hosts(nodes), pool_options=pool_options or None)


def test_dead_node_fails_fast_and_names_the_host(three_nodes):
    cluster = make_cluster(three_nodes)
    owners = keys_by_host(cluster)
    with cluster.map() as client:
        for keys in owners.values():
            for key in keys:
                client.set(key, key)
    three_nodes[1].stop()
    started = time.monotonic()
    with pytest.raises(HostConnectionError) as info:
        with cluster.map() as client:
            promises = {key: client.get(key) for keys in owners.values() for key in keys}
    assert time.monotonic() - started < 2.0
    err = info.value
    assert isinstance(err, redis.ConnectionError) and err.host_id == 1
    assert "host 1 (127.0.0.1:" in str(err) and "pa55word" not in str(err)
    for key, promise in promises.items():
        if key in owners[1]:
            assert promise.is_rejected and promise.reason is err
        else:
            assert promise.value == key.encode()  # live nodes' answers arrive


def test_stalled_node_times_out_and_others_answer(three_nodes):
    cluster = make_cluster(three_nodes, socket_timeout=0.3)
    owners = keys_by_host(cluster)
    three_nodes[2].pause()
    try:
        started = time.monotonic()
        with pytest.raises(HostTimeoutError) as info:
            with cluster.map() as client:
                promises = {key: client.set(key, "1") for keys in owners.values() for key in keys}
        elapsed = time.monotonic() - started
    finally:
        three_nodes[2].resume()
    assert 0.25 < elapsed < 2.0
    assert info.value.host_id == 2 and isinstance(info.value, redis.TimeoutError)
    assert all(promises[k].is_rejected for k in owners[2])
    assert all(promises[k].value is True for h in (0, 1) for k in owners[h])
    # the stalled connection was dropped, not returned half-read: the next round is clean
    with cluster.map() as client:
        after = [client.get(k) for k in owners[2]]
    assert all(p.value in (None, b"1") for p in after)


def test_map_timeout_bounds_the_whole_round(three_nodes):
    cluster = make_cluster(three_nodes, socket_timeout=10)
    with cluster.all() as client:  # pooled connections exist: only the round's clock applies
        client.ping()
    three_nodes[0].pause()
    try:
        started = time.monotonic()
        with pytest.raises(HostTimeoutError, match="round's timeout"):
            with cluster.map(timeout=0.3) as client:
                for key in keys_by_host(cluster)[0]:
                    client.get(key)
        assert time.monotonic() - started < 1.5
    finally:
        three_nodes[0].resume()


def test_connecting_to_a_stalled_node_is_bounded_by_the_connect_timeout(three_nodes):
    cluster = make_cluster(three_nodes, socket_timeout=10, socket_connect_timeout=0.3)
    owners = keys_by_host(cluster)
    three_nodes[1].pause()
    try:
        started = time.monotonic()
        with pytest.raises(HostTimeoutError, match="host 1"):
            with cluster.map() as client:
                promises = {key: client.incr(key) for keys in owners.values() for key in keys}
        assert time.monotonic() - started < 1.5
    finally:
        three_nodes[1].resume()
    assert all(promises[k].value == 1 for h in (0, 2) for k in owners[h])


def test_default_timeouts_are_finite():
    cluster = Cluster(["redis://127.0.0.1:1/0"])
    pool = cluster.get_pool_for_host(0)
    assert pool.connection_kwargs["socket_timeout"] > 0
    assert pool.connection_kwargs["socket_connect_timeout"] > 0


def test_idle_connections_closed_by_the_server_are_replaced(three_nodes):
    cluster = make_cluster(three_nodes)
    with cluster.map() as client:
        for i in range(30):
            client.set(f"idle{i}", i)
    admin = redis.Redis(port=three_nodes[0].port, password="pa55word")
    killed = admin.client_kill_filter(_type="normal", skipme=True)
    admin.close()
    assert killed >= 1
    with cluster.map() as client:  # no error: the stale pooled connection is reconnected
        values = [client.get(f"idle{i}") for i in range(30)]
    assert [int(p.value) for p in values] == list(range(30))


def test_connections_return_to_their_pools_on_every_path(three_nodes):
    cluster = make_cluster(three_nodes)
    for _ in range(5):
        with cluster.map() as client:
            client.set("s", "x")
        with pytest.raises(redis.ResponseError):
            with cluster.map() as client:
                client.lpush("s", "1")
        with cluster.all() as client:
            client.ping()
    for host_id in cluster.hosts:
        pool = cluster.get_pool_for_host(host_id)
        assert len(pool._in_use_connections) == 0
        assert len(pool._available_connections) <= 1


def test_remove_and_add_host(three_nodes):
    cluster = make_cluster(three_nodes)
    assert cluster.get_router().get_host_for_key("x") in (0, 1, 2)
    cluster.get_pool_for_host(2)
    assert cluster.remove_host(2) is True
    assert cluster.remove_host(2) is False
    assert sorted(cluster.hosts) == [0, 1]
    assert {cluster.get_router().get_host_for_key(f"k{i}") for i in range(50)} == {0, 1}
    with pytest.raises(LookupError):
        cluster.get_pool_for_host(2)
    with cluster.all() as client:
        pongs = client.ping()
    assert set(pongs.value) == {0, 1}
    cluster.add_host(2, **three_nodes[2].host_config())
    assert {cluster.get_router().get_host_for_key(f"k{i}") for i in range(50)} == {0, 1, 2}


def test_acl_username_and_wrong_password(three_nodes):
    node = three_nodes[0]
    admin = redis.Redis(port=node.port, password="pa55word")
    admin.acl_setuser(
        "app", enabled=True, passwords=["+app-secret"], keys=["*"], commands=["+@all"]
    )
    admin.close()
    cluster = Cluster([f"redis://app:app-secret@127.0.0.1:{node.port}/0"])
    with cluster.map() as client:
        ok = client.set("acl", "1")
    assert ok.value is True
    wrong = Cluster([f"redis://app:not-it@127.0.0.1:{node.port}/0"])
    with pytest.raises(redis.ConnectionError) as info:
        with wrong.map() as client:
            client.get("acl")
    assert "not-it" not in str(info.value)


def test_unix_socket_host(redis_nodes):
    node = redis_nodes(1, unix_socket=True)[0]
    cluster = Cluster([f"unix://{node.socket_path}?db=3"])
    with cluster.map() as client:
        client.set("u", "1")
    with cluster.map() as client:
        got = client.get("u")
    assert got.value == b"1"
    assert redis.Redis(unix_socket_path=node.socket_path, db=3).get("u") == b"1"


def test_flushdb_touches_only_its_db(redis_nodes):
    node = redis_nodes(1)[0]
    other_db = redis.Redis(port=node.port, db=5)
    other_db.set("keep", "1")
    cluster = Cluster([node.url(db=4)])
    with cluster.map() as client:
        client.set("gone", "1")
    with cluster.all() as client:
        client.flushdb()
    assert other_db.get("keep") == b"1"
    assert redis.Redis(port=node.port, db=4).dbsize() == 0
