"""Connecting: every host of a round connects at once, and map(timeout=) bounds the block.

Stalled hosts are real redis-server processes stopped with SIGSTOP (the kernel still accepts
their TCP connections, nothing answers); a black-holed host is a listening socket whose accept
queue is full, so its SYNs go unanswered.
"""

import socket
import threading
import time

import pytest
import redis

from django_rb.cluster import Cluster, HostConnectionError, HostTimeoutError
from django_rb.testing import cluster_hosts, healthy, keys_per_host

STALLED = (2, 5, 7)


@pytest.fixture
def eight_nodes(redis_nodes):
    with healthy(redis_nodes(8)) as nodes:
        yield nodes


@pytest.fixture
def black_hole():
    """An address that accepts no connection and refuses none: SYNs are dropped."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    port = listener.getsockname()[1]
    for _ in range(3):  # fill the accept queue (the first one fits, the rest hang)
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.05)
    try:
        yield port
    finally:
        for sock in [*fillers, listener]:
            sock.close()


def fill(cluster, keys):
    with cluster.map() as client:
        for key in keys:
            client.set(key, key)


def pause(nodes, which):
    for i in which:
        nodes[i].pause()


def resume(nodes, which):
    for i in which:
        nodes[i].resume()


@pytest.mark.parametrize(
    "pool_options",
    [None, {"socket_connect_timeout": 5, "socket_timeout": 5}],
    ids=["default-timeouts", "five-second-timeouts"],
)
def test_three_of_eight_stalled_cost_one_timeout_with_fresh_pools(eight_nodes, pool_options):
    seed = Cluster(cluster_hosts(eight_nodes))
    owners = keys_per_host(seed, 50, "st")  # 400 keys
    fill(seed, [k for keys in owners.values() for k in keys])
    cluster = Cluster(cluster_hosts(eight_nodes), pool_options=pool_options)  # fresh pools
    pause(eight_nodes, STALLED)
    try:
        started = time.monotonic()
        with pytest.raises(HostTimeoutError) as info:
            with cluster.map(timeout=1.0) as client:
                promises = {k: client.get(k) for keys in owners.values() for k in keys}
        elapsed = time.monotonic() - started
    finally:
        resume(eight_nodes, STALLED)
    assert elapsed <= 1.3, elapsed
    assert info.value.host_id in STALLED
    for host_id, keys in owners.items():
        for key in keys:
            promise = promises[key]
            if host_id in STALLED:
                reason = promise.reason
                assert isinstance(reason, HostTimeoutError) and reason.host_id == host_id
                port = eight_nodes[host_id].port
                assert f"host {host_id} (127.0.0.1:{port}/0)" in str(reason)
                assert "round's timeout" in str(reason)
            else:
                assert promise.value == key.encode()
    with cluster.map(timeout=1.0) as client:  # resumed: the next round is whole
        again = {k: client.get(k) for keys in owners.values() for k in keys}
    assert all(p.value == k.encode() for k, p in again.items())


def test_one_stalled_host_never_fails_the_healthy_ones(eight_nodes):
    cluster = Cluster(cluster_hosts(eight_nodes))
    owners = keys_per_host(cluster, 20, "one")
    fill(cluster, [k for keys in owners.values() for k in keys])
    cluster = Cluster(cluster_hosts(eight_nodes))  # round 1 connects every host afresh
    eight_nodes[3].pause()
    try:
        for _round in range(3):  # later rounds: healthy hosts pooled, host 3 connects again
            started = time.monotonic()
            with pytest.raises(HostTimeoutError) as info:
                with cluster.map(timeout=0.2) as client:
                    promises = {k: client.get(k) for keys in owners.values() for k in keys}
            assert time.monotonic() - started < 0.6  # was 1.0 s: the connect timeout
            assert info.value.host_id == 3
            for host_id, keys in owners.items():
                for key in keys:
                    if host_id == 3:
                        assert promises[key].is_rejected
                    else:
                        assert promises[key].value == key.encode(), (host_id, key)
    finally:
        eight_nodes[3].resume()


def test_max_concurrency_rounds_share_the_blocks_deadline(eight_nodes):
    cluster = Cluster(cluster_hosts(eight_nodes), pool_options={"socket_timeout": 5})
    owners = keys_per_host(cluster, 5, "mc")
    fill(cluster, [k for keys in owners.values() for k in keys])
    pause(eight_nodes, (1, 6))  # one stalled host in the first and one in the last round
    try:
        started = time.monotonic()
        with pytest.raises(HostTimeoutError):
            with cluster.map(timeout=0.8, max_concurrency=2) as client:  # four rounds
                promises = {k: client.get(k) for h in range(8) for k in owners[h]}
        elapsed = time.monotonic() - started
    finally:
        resume(eight_nodes, (1, 6))
    assert elapsed < 1.3, elapsed  # one timeout for the block, not one per round (1.6 s)
    for host_id in (1, 6):
        assert all(promises[k].is_rejected for k in owners[host_id])
    assert all(promises[k].value == k.encode() for k in owners[0])  # round 1's healthy host
    for key in owners[7]:  # the last round started after the block's clock ran out
        reason = promises[key].reason
        assert isinstance(reason, HostTimeoutError) and "not sent" in str(reason)


def test_a_later_round_only_gets_what_is_left_of_the_timeout(eight_nodes):
    cluster = Cluster(cluster_hosts(eight_nodes), pool_options={"socket_timeout": 5})
    owners = keys_per_host(cluster, 3, "left")
    eight_nodes[7].pause()  # in the last of two rounds
    try:
        started = time.monotonic()
        with pytest.raises(HostTimeoutError):
            with cluster.map(timeout=1.2, max_concurrency=4) as client:
                promises = {k: client.get(k) for h in range(8) for k in owners[h]}
                time.sleep(0.8)  # the block's own time counts too, after the first round
                client.get(owners[0][0])  # a new round on host 0, then the rest
        elapsed = time.monotonic() - started
    finally:
        eight_nodes[7].resume()
    assert elapsed < 1.7, elapsed  # a clock per round: at least 0.8 + 1.2
    assert all(promises[k].value is None for h in range(7) for k in owners[h])


def test_a_black_holed_host_costs_one_timeout(eight_nodes, black_hole):
    hosts = cluster_hosts(eight_nodes[:4])
    hosts[4] = {"host": "127.0.0.1", "port": black_hole}
    cluster = Cluster(hosts, pool_options={"socket_connect_timeout": 5})
    owners = keys_per_host(cluster, 10, "bh")
    started = time.monotonic()
    with pytest.raises(HostTimeoutError) as info:
        with cluster.map(timeout=0.4) as client:
            promises = {k: client.set(k, "1") for keys in owners.values() for k in keys}
    assert time.monotonic() - started < 1.0
    assert info.value.host_id == 4 and "could not connect" in str(info.value)
    assert all(promises[k].value is True for h in range(4) for k in owners[h])


def test_without_a_map_timeout_the_connect_timeout_applies_per_host(eight_nodes, black_hole):
    hosts = cluster_hosts(eight_nodes[:2])
    hosts[2] = {"host": "127.0.0.1", "port": black_hole}
    hosts[3] = eight_nodes[2].host_config()
    cluster = Cluster(hosts, pool_options={"socket_connect_timeout": 0.5, "socket_timeout": 5})
    eight_nodes[2].pause()  # host 3: TCP connects, the login gets no answer
    try:
        owners = keys_per_host(cluster, 5, "ct")
        started = time.monotonic()
        with pytest.raises(HostTimeoutError):
            with cluster.map() as client:
                promises = {k: client.incr(k) for keys in owners.values() for k in keys}
        elapsed = time.monotonic() - started
    finally:
        eight_nodes[2].resume()
    assert 0.45 < elapsed < 0.85, elapsed  # both at once: one connect timeout, not two
    for host_id in (2, 3):
        reason = promises[owners[host_id][0]].reason
        assert "connect timed out (socket_connect_timeout=0.5)" in str(reason)
        assert reason.host_id == host_id
    assert all(promises[k].value == 1 for h in (0, 1) for k in owners[h])


def test_a_refused_connect_fails_at_once_and_names_the_host(eight_nodes):
    dead = eight_nodes[0]
    hosts = cluster_hosts(eight_nodes[:2])
    cluster = Cluster(hosts)
    dead.stop()
    started = time.monotonic()
    with pytest.raises(HostConnectionError) as info:
        with cluster.map(timeout=2) as client:
            for keys in keys_per_host(cluster, 3, "rf").values():
                for key in keys:
                    client.get(key)
    assert time.monotonic() - started < 1.0
    assert (
        str(info.value) == f"host 0 (127.0.0.1:{dead.port}/0): connect failed: connection refused"
    )


def test_connections_made_by_a_round_are_pooled_for_everyone(eight_nodes):
    cluster = Cluster([node.url(db=3) for node in eight_nodes[:3]])
    with cluster.map() as client:
        client.set("pooled", "yes")
    owner = cluster.get_router().get_host_for_key("pooled")
    pool = cluster.get_pool_for_host(owner)
    assert len(pool._available_connections) == 1 and not pool._in_use_connections
    assert pool._available_connections[0]._sock is not None
    assert cluster.get_routing_client().get("pooled") == b"yes"  # reuses the round's socket
    assert cluster.get_pool_for_host(owner)._created_connections == 1
    assert redis.Redis(port=eight_nodes[owner].port, db=3).get("pooled") == b"yes"  # SELECTed
    cluster.disconnect_pools()
    with cluster.map() as client:
        after = client.get("pooled")
    assert after.value == b"yes"


def test_client_name_and_setinfo_are_sent_as_redis_py_sends_them(eight_nodes):
    node = eight_nodes[0]
    cluster = Cluster([node.url()], pool_options={"client_name": "django-rb-test"})
    with cluster.map() as client:
        client.set("named", "1")
    clients = redis.Redis(port=node.port).client_list()
    ours = [c for c in clients if c["name"] == "django-rb-test"]
    assert len(ours) == 1  # (Redis 7.0 refuses CLIENT SETINFO: ignored, as redis-py does)


def test_tls_nodes_through_map_routing_and_fanout(rb_tls_nodes):
    with healthy(rb_tls_nodes):  # flushed (over TLS)
        cluster = Cluster([node.url(db=1) for node in rb_tls_nodes])
        owners = keys_per_host(cluster, 20, "tls")
        fill(cluster, [k for keys in owners.values() for k in keys])
        cluster = Cluster([node.url(db=1) for node in rb_tls_nodes])  # fresh pools again
        with cluster.map(timeout=2) as client:
            got = {k: client.get(k) for keys in owners.values() for k in keys}
        assert all(p.value == k.encode() for k, p in got.items())
        assert cluster.get_routing_client().get(owners[1][0]) == owners[1][0].encode()
        with cluster.all() as client:
            sizes = client.dbsize()
        assert sizes.value == {0: 20, 1: 20}


def test_tls_with_an_untrusted_certificate_fails_clearly(rb_tls_nodes):
    node = rb_tls_nodes[0]
    cluster = Cluster([f"rediss://127.0.0.1:{node.port}/0"])  # the test CA is not trusted
    with pytest.raises(HostConnectionError, match="TLS failed: .*certificate verify failed"):
        with cluster.map() as client:
            client.get("k")


def test_acl_user_over_tls(redis_nodes):
    nodes = redis_nodes(2, tls=True, password="admin-pw", users={"app": "app-pw"})
    cluster = Cluster([node.url(db=2, username="app") for node in nodes])
    with cluster.map() as client:
        promises = [client.incr(f"acl{i}") for i in range(10)]
    assert [p.value for p in promises] == [1] * 10


@pytest.fixture(scope="module")
def acl_node(redis_nodes):
    """No password for the default user; an ACL user "app"."""
    return redis_nodes(1, users={"app": "app-secret"})[0]


def test_acl_user_login(acl_node):
    cluster = Cluster([acl_node.url(db=4, username="app")])
    with cluster.map() as client:
        client.set("who", "app")
    whoami = cluster.get_local_client(0).acl_whoami()
    assert whoami == "app"
    assert redis.Redis(port=acl_node.port, db=4).get("who") == b"app"


def test_wrong_password_fails_clearly_and_runs_nothing(acl_node):
    url = f"redis://app:not-the-secret@127.0.0.1:{acl_node.port}/0"
    cluster = Cluster([url])
    with pytest.raises(HostConnectionError) as info:
        with cluster.map() as client:
            promise = client.set("must-not-exist", "1")
    message = str(info.value)
    assert "login failed (AUTH): WRONGPASS" in message and "not-the-secret" not in message
    assert "not-the-secret" not in repr(info.value)
    assert promise.reason is info.value
    # the queue waited for AUTH: it never ran as the (password-less) default user
    assert redis.Redis(port=acl_node.port).exists("must-not-exist") == 0
    assert not cluster.get_pool_for_host(0)._in_use_connections


def test_threads_connecting_one_fresh_cluster_at_once(eight_nodes):
    cluster = Cluster(cluster_hosts(eight_nodes))
    owners = keys_per_host(cluster, 10, "thr")
    keys = [k for ks in owners.values() for k in ks]
    fill(Cluster(cluster_hosts(eight_nodes)), keys)
    results, failures = [], []
    start = threading.Barrier(8)

    def work(use_routing_client):
        try:
            start.wait(timeout=10)
            for _ in range(5):
                if use_routing_client:  # the blocking path, in parallel with deferred connects
                    results.append([cluster.get_routing_client().get(k) for k in keys[:8]])
                    continue
                with cluster.map(timeout=5) as client:
                    promises = [client.get(k) for k in keys]
                results.append([p.value for p in promises])
        except Exception as exc:  # reported below, with the thread's own traceback text
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i % 4 == 0,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures
    assert len(results) == 40
    for values in results:
        assert values == [k.encode() for k in keys[: len(values)]]
    for host_id in cluster.hosts:  # every connection went back to its pool
        assert not cluster.get_pool_for_host(host_id)._in_use_connections


def test_a_pooled_connection_holding_an_unread_reply_is_replaced(eight_nodes):
    """The round takes idle connections without redis-py's per-checkout poll and checks them
    all in one poll: one with data nobody read (a reply left behind) must not answer the
    round's commands with it."""
    cluster = Cluster([node.url() for node in eight_nodes[:4]])
    fill(cluster, [f"left{i}" for i in range(20)])
    for host_id in cluster.hosts:
        pool = cluster.get_pool_for_host(host_id)
        conn = pool.get_connection()
        conn.send_command("ECHO", "left behind")  # its reply is never read
        pool.release(conn)
    time.sleep(0.05)  # the replies arrive
    with cluster.map() as client:
        values = [client.get(f"left{i}") for i in range(20)]
    assert [p.value for p in values] == [f"left{i}".encode() for i in range(20)]
    for host_id in cluster.hosts:
        pool = cluster.get_pool_for_host(host_id)
        assert not pool._in_use_connections and pool._created_connections == 1
    cluster.disconnect_pools()


@pytest.mark.parametrize("pool_cls", [redis.ConnectionPool, redis.BlockingConnectionPool])
def test_pools_of_other_classes_serve_rounds(eight_nodes, pool_cls):
    """``pool_cls`` as rb takes it: redis-py's own pools are used through their ordinary
    checkout, connections connected by them and released to them."""
    cluster = Cluster([node.url() for node in eight_nodes[:4]], pool_cls=pool_cls)
    fill(cluster, [f"other{i}" for i in range(20)])
    with cluster.map() as client:
        values = [client.get(f"other{i}") for i in range(20)]
    assert [p.value for p in values] == [f"other{i}".encode() for i in range(20)]
    for host_id in cluster.hosts:
        pool = cluster.get_pool_for_host(host_id)
        assert type(pool) is pool_cls
        conn = pool.get_connection()  # the round's connection, back in the pool and connected
        assert conn._sock is not None
        pool.release(conn)
    cluster.disconnect_pools()


def test_connections_with_a_custom_connect_hook_are_connected_by_redis_py(eight_nodes):
    """``redis_connect_func`` replaces redis-py's login: the engine cannot reproduce it, so
    such connections are connected (and, when stale, reconnected) by redis-py's checkout."""
    hooked = []

    def connect_hook(connection):
        hooked.append(connection.port)
        connection.on_connect()

    cluster = Cluster([node.url() for node in eight_nodes[:2]],
                      pool_options={"redis_connect_func": connect_hook})  # fmt: skip
    fill(cluster, [f"hook{i}" for i in range(10)])
    assert sorted(set(hooked)) == sorted(node.port for node in eight_nodes[:2])
    for node in eight_nodes[:2]:  # every pooled connection goes stale
        admin = redis.Redis(port=node.port)
        admin.client_kill_filter(_type="normal", skipme=True)
        admin.close()
    before = len(hooked)
    with cluster.map() as client:
        values = [client.get(f"hook{i}") for i in range(10)]
    assert [p.value for p in values] == [f"hook{i}".encode() for i in range(10)]
    assert len(hooked) == before + 2  # reconnected through the hook, once per node
    cluster.disconnect_pools()


def test_connections_share_one_driver_info_and_name_redis_py(eight_nodes):
    """redis-py would build a DriverInfo per connection, reading its version from package
    metadata each time; the cluster's pools share one, which names the client as redis-py's
    own would (CLIENT SETINFO)."""
    redis_driver_info = pytest.importorskip("redis.driver_info")  # redis-py 7 and newer
    cluster = Cluster([node.url() for node in eight_nodes[:2]])
    fill(cluster, [f"named{i}" for i in range(10)])
    conns = []
    for host_id in cluster.hosts:
        pool = cluster.get_pool_for_host(host_id)
        conns.append(pool.get_connection())
        conns.append(pool.get_connection())  # a second, new connection
        for conn in conns[-2:]:
            pool.release(conn)
    infos = {id(conn.driver_info) for conn in conns}
    assert len(infos) == 1
    own = redis_driver_info.DriverInfo()
    assert (conns[0].driver_info.formatted_name, conns[0].driver_info.lib_version) == (
        own.formatted_name,
        own.lib_version,
    )
    mine = redis_driver_info.DriverInfo(name="mine")
    named = Cluster([eight_nodes[0].url()], pool_options={"driver_info": mine})
    assert named.get_pool_for_host(0).get_connection().driver_info is mine  # settings win
    cluster.disconnect_pools()
    named.disconnect_pools()
