"""Failures: dead and stalled nodes, timeouts, reconnects, connection release, host changes."""

import os
import signal
import threading
import time

import pytest
import redis

from django_rb.cluster import (
    Cluster,
    HostConnectionError,
    HostTimeoutError,
)
from django_rb.testing import cluster_hosts, healthy, keys_per_host


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


# -- rounds on one host (the engine's short path): the same failures, the same answers -------


def one_host(cluster, count=3, prefix="solo"):
    """``count`` keys that all live on host 1."""
    return keys_per_host(cluster, count, prefix)[1]


@pytest.mark.parametrize("clock", ["socket_timeout", "round's timeout"])
def test_one_host_round_on_a_stalled_node_times_out(three_nodes, clock):
    by_socket = clock == "socket_timeout"
    cluster = make_cluster(three_nodes, socket_timeout=0.3 if by_socket else 10)
    key = one_host(cluster)[0]
    with cluster.map() as client:  # a pooled connection to take
        client.set(key, "before")
    three_nodes[1].pause()
    try:
        started = time.monotonic()
        with pytest.raises(HostTimeoutError, match=f"no reply within (the )?{clock}") as info:
            with cluster.map(timeout=None if by_socket else 0.3) as client:
                stalled = client.get(key)
        elapsed = time.monotonic() - started
    finally:
        three_nodes[1].resume()
    assert 0.25 < elapsed < 2.0 and info.value.host_id == 1
    assert stalled.is_rejected and stalled.reason is info.value
    assert pools_idle(cluster) == dict.fromkeys(cluster.hosts, 0)
    with cluster.map() as client:  # the stalled connection was dropped, not reused half-read
        after = client.get(key)
    assert after.value == b"before"


def test_one_host_round_replaces_a_connection_holding_an_unread_reply(three_nodes):
    cluster = make_cluster(three_nodes)
    key = one_host(cluster)[0]
    with cluster.map() as client:
        client.set(key, "mine")
    pool = cluster.get_pool_for_host(1)
    conn = pool.get_connection()
    conn.send_command("ECHO", "left behind")  # its reply is never read
    pool.release(conn)
    time.sleep(0.05)  # the reply arrives
    with cluster.map() as client:
        value = client.get(key)
    assert value.value == b"mine"
    assert pool._created_connections == 1 and pools_idle(cluster)[1] == 0


def test_one_host_round_of_big_values_writes_and_reads_in_pieces(three_nodes):
    cluster = make_cluster(three_nodes)
    key = one_host(cluster)[0]
    big = bytes(range(256)) * (4 * 4096) + b"\r\n"  # 4 MiB: many writes, many reads
    with cluster.map() as client:
        stored = client.set(key, big)
    with cluster.map() as client:
        got = client.get(key)
    assert stored.value is True and got.value == big
    assert pools_idle(cluster) == dict.fromkeys(cluster.hosts, 0)


def test_one_host_round_on_a_dead_node_fails_fast_then_recovers(three_nodes):
    cluster = make_cluster(three_nodes)
    key = one_host(cluster)[0]
    with cluster.map() as client:
        client.set(key, "v")
    three_nodes[1].stop()
    started = time.monotonic()
    with pytest.raises(HostConnectionError) as info:
        with cluster.map() as client:
            lost = client.get(key)
    assert time.monotonic() - started < 2.0
    assert info.value.host_id == 1 and "pa55word" not in str(info.value)
    assert lost.is_rejected and lost.reason is info.value
    three_nodes[1].start()
    with cluster.map() as client:  # same port, empty again (no persistence)
        again = client.incr(key)
    assert again.value == 1


def test_keyboard_interrupt_in_a_one_host_round_leaks_no_connection(three_nodes):
    cluster = make_cluster(three_nodes)
    keys = one_host(cluster)

    def interrupt(_value):
        raise KeyboardInterrupt

    with cluster.map() as client:
        client.set(keys[0], "0")
    with pytest.raises(KeyboardInterrupt):
        with cluster.map() as client:
            first = client.incr(keys[0])
            first.done(interrupt)
            rest = [client.incr(key) for key in keys[1:]]
    assert first.value == 1 and pools_idle(cluster) == dict.fromkeys(cluster.hosts, 0)
    assert all(not p.is_pending for p in rest)
    with cluster.map() as client:
        again = client.get(keys[0])
    assert again.value == b"1"


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


def pools_idle(cluster):
    """Per host: how many connections are still checked out of its pool (0 once a round ends)."""
    return {h: len(cluster.get_pool_for_host(h)._in_use_connections) for h in cluster.hosts}


def server_clients(nodes):
    counts = []
    for node in nodes:
        admin = redis.Redis(port=node.port, password=node.password)
        counts.append(len(admin.client_list()) - 1)
        admin.close()
    return counts


def test_repeated_rounds_do_not_leak_connections(redis_nodes):
    nodes = redis_nodes(3)
    cluster = Cluster(cluster_hosts(nodes))
    for i in range(60):
        with cluster.map() as client:
            for j in range(30):
                client.set(f"r{j}", i)
                client.incr(f"c{j}")
        with cluster.all() as client:
            client.dbsize()
        with pytest.raises(redis.ResponseError):
            with cluster.map() as client:
                client.get("r0")
                client.lpush("r1", "x")
        with cluster.fanout() as client:
            client.target_key("r3").get("r3")
        cluster.execute_commands({"r5": [("GET", "r5")]})
    assert pools_idle(cluster) == dict.fromkeys(cluster.hosts, 0)
    assert all(n <= 1 for n in server_clients(nodes)), server_clients(nodes)
    cluster.disconnect_pools()
    assert server_clients(nodes) == [0, 0, 0]


@pytest.fixture
def four_nodes(redis_nodes):
    with healthy(redis_nodes(4, password="s3cr3t-pw")) as nodes:
        yield nodes


def test_node_killed_while_a_big_pipeline_is_in_flight(four_nodes):
    cluster = Cluster(cluster_hosts(four_nodes))
    big = b"z" * 200_000
    victim = four_nodes[2]
    killer = threading.Timer(0.05, victim.stop)
    promises = {}
    killer.start()
    try:
        with pytest.raises(redis.ConnectionError) as info:
            with cluster.map() as client:
                for i in range(300):  # ~60 MB: still writing when the node dies
                    promises[f"big{i}"] = client.set(f"big{i}", big)
                for i in range(50):
                    promises[f"after{i}"] = client.incr(f"after{i}")
                time.sleep(0.1)  # the node is dead before anything is sent
    finally:
        killer.join()
    router = cluster.get_router()
    assert info.value.host_id == 2 and "s3cr3t-pw" not in str(info.value)
    assert not any(p.is_pending for p in promises.values())
    for key, promise in promises.items():
        if router.get_host_for_key(key) == 2:
            assert promise.is_rejected and isinstance(promise.reason, HostConnectionError)
        else:
            assert promise.is_resolved, (key, promise)
    assert pools_idle(cluster) == dict.fromkeys(cluster.hosts, 0)
    victim.start()
    with cluster.map() as client:  # the host is back: its fresh connection works
        again = [client.incr(f"after{i}") for i in range(50)]
    assert [p.value for p in again] == [
        1 if router.get_host_for_key(f"after{i}") == 2 else 2 for i in range(50)
    ]


def test_node_dies_during_the_write(four_nodes):
    """SIGKILL-like death while the kernel buffer is full: the write or read fails, no hang."""
    cluster = Cluster(cluster_hosts(four_nodes), pool_options={"socket_timeout": 2})
    with cluster.all() as client:
        client.ping()
    big = b"w" * 1_000_000
    victim = four_nodes[1]
    victim.pause()  # the node stops reading: our socket buffer fills up

    def sigkill():  # no graceful shutdown that could still drain and answer the pipeline
        process, victim.process = victim.process, None
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    killer = threading.Timer(0.3, sigkill)
    killer.start()
    started = time.monotonic()
    try:
        with pytest.raises(redis.ConnectionError):
            with cluster.map() as client:
                ps = [client.set(k, big) for k in keys_per_host(cluster, 30, "w")[1]]
                ok = [client.set(k, "1") for k in keys_per_host(cluster, 5, "o")[0]]
    finally:
        killer.join()
    assert time.monotonic() - started < 2.0
    assert all(p.is_rejected for p in ps) and all(p.value is True for p in ok)
    assert pools_idle(cluster) == dict.fromkeys(cluster.hosts, 0)


def test_every_node_restarted_between_rounds(four_nodes):
    cluster = Cluster(cluster_hosts(four_nodes))
    with cluster.map() as client:
        for i in range(100):
            client.set(f"rs{i}", i)
    with cluster.all() as client:  # a pooled connection per host
        client.ping()
    for node in four_nodes:
        node.stop()
        node.start()
    with cluster.map() as client:  # every pooled connection is stale; none surfaces an error
        written = [client.set(f"rs{i}", i) for i in range(100)]
    with cluster.all() as client:
        sizes = client.dbsize()
    assert all(p.value is True for p in written)
    assert sum(sizes.value.values()) == 100


def test_round_after_remove_host_and_add_host(four_nodes):
    cluster = Cluster(cluster_hosts(four_nodes))
    with cluster.all() as client:
        client.flushdb()
    with cluster.map() as client:
        client.set("moving", "1")
    cluster.remove_host(3)
    with cluster.map() as client:
        written = [client.set(f"m{i}", i) for i in range(40)]
    with cluster.all() as client:
        sizes = client.dbsize()
    assert all(p.value is True for p in written)
    assert set(sizes.value) == {0, 1, 2}
    cluster.add_host(3, **four_nodes[3].host_config())
    with cluster.map() as client:
        read = [client.get(f"m{i}") for i in range(40)]
    router = cluster.get_router()
    old = {}
    for h in (0, 1, 2):
        with redis.Redis(port=four_nodes[h].port, password="s3cr3t-pw") as plain:
            old.update({f"m{i}": h for i in range(40) if plain.exists(f"m{i}")})
    assert len(old) == 40
    for i, p in enumerate(read):
        still_there = router.get_host_for_key(f"m{i}") == old[f"m{i}"]
        assert p.value == (str(i).encode() if still_there else None)
    assert any(h == 3 for h in map(router.get_host_for_key, old))
    with cluster.all() as client:
        client.flushdb()


@pytest.mark.parametrize(
    "bad",
    [{"db": 99}, {"password": "unexpected-pw"}],
    ids=["db-out-of-range", "password-on-open-node"],
)
def test_misconfigured_host_fails_alone(rb_nodes, bad):
    hosts = cluster_hosts(rb_nodes, db=10)
    hosts[1].update(bad)
    cluster = Cluster(hosts)
    try:
        keys = {h: keys_per_host(cluster, 5, "mis")[h] for h in cluster.hosts}
        promises = {}
        with pytest.raises(Exception) as info:
            with cluster.map() as client:
                for ks in keys.values():
                    promises.update({k: client.set(k, "1") for k in ks})
        assert getattr(info.value, "host_id", None) == 1, repr(info.value)
        assert "unexpected-pw" not in str(info.value)
        for h, ks in keys.items():
            for k in ks:
                assert promises[k].is_rejected if h == 1 else promises[k].value is True, (h, k)
        assert pools_idle(cluster) == dict.fromkeys(cluster.hosts, 0)
    finally:
        for h in (0, 2, 3):
            cluster.get_local_client(h).flushdb()
        cluster.disconnect_pools()


def test_full_socket_buffer_does_not_spin(four_nodes):
    cluster = Cluster(cluster_hosts(four_nodes), pool_options={"socket_timeout": 5})
    with cluster.all() as client:
        client.ping()
    four_nodes[0].pause()
    big = b"s" * 1_000_000
    try:
        cpu, wall = time.process_time(), time.monotonic()
        with pytest.raises(HostTimeoutError):
            with cluster.map(timeout=1.0) as client:
                for key in keys_per_host(cluster, 40, "spin")[0]:
                    client.set(key, big)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    finally:
        four_nodes[0].resume()
    assert 0.9 < wall < 2.0
    assert cpu < 0.5 * wall, (cpu, wall)


def test_keyboard_interrupt_in_a_callback_leaks_no_connection(rb_cluster):
    def interrupt(_value):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with rb_cluster.map() as client:
            ps = [client.incr(f"ki{i}") for i in range(40)]
            ps[0].done(interrupt)
    assert pools_idle(rb_cluster) == dict.fromkeys(rb_cluster.hosts, 0)
    assert ps[0].is_resolved
    with rb_cluster.map() as client:
        again = [client.get(f"ki{i}") for i in range(40)]
    assert all(p.value in (None, b"1") for p in again)


def test_max_concurrency_flush_obeys_the_map_timeout(four_nodes):
    cluster = Cluster(cluster_hosts(four_nodes), pool_options={"socket_timeout": 5})
    with cluster.all() as client:
        client.ping()
    four_nodes[0].pause()
    try:
        started = time.monotonic()
        with pytest.raises(HostTimeoutError):
            with cluster.map(timeout=0.3, max_concurrency=1) as client:
                client.get(keys_per_host(cluster, 1)[0][0])
                client.get(keys_per_host(cluster, 1)[1][0])  # second host: flushes host 0 first
        elapsed = time.monotonic() - started
    finally:
        four_nodes[0].resume()
    assert elapsed < 2.0


def test_remove_host_while_a_block_is_open_settles_everything(rb_nodes):
    cluster = Cluster(cluster_hosts(rb_nodes))
    promises = []
    with pytest.raises(Exception) as info:
        with cluster.map() as client:
            promises += [client.get(k) for k in keys_per_host(cluster, 2)[0]]
            promises += [client.get(k) for k in keys_per_host(cluster, 2)[3]]
            cluster.remove_host(3)
    cluster.disconnect_pools()
    assert not isinstance(info.value, KeyError)
    assert not any(p.is_pending for p in promises)


def test_keyboard_interrupt_in_a_callback_settles_the_rest_of_its_run(rb_cluster):
    def interrupt(_value):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with rb_cluster.map() as client:
            ps = [client.get(k) for k in keys_per_host(rb_cluster, 10, "kr")[0]]
            ps[0].done(interrupt)
    assert not any(p.is_pending for p in ps)


def test_a_configuration_error_is_not_mistaken_for_a_dead_node(rb_nodes):
    cluster = Cluster(cluster_hosts(rb_nodes), pool_options={"max_conections": 5})
    with pytest.raises(TypeError, match="max_conections") as info:
        with cluster.map() as client:
            promise = client.get("k")
    assert not isinstance(info.value, HostConnectionError)
    assert promise.is_rejected and promise.reason is info.value


def test_pools_disconnected_by_another_thread_mid_round_never_cross_replies(three_nodes):
    """disconnect_pools() closes sockets that rounds in other threads are using: those rounds
    fail for the hosts hit (a HostConnectionError) or succeed, never hang, and never read a
    reply meant for another connection (sockets are read by descriptor: a closed one must not
    be confused with a file that reused its number)."""
    cluster = make_cluster(three_nodes)
    expected = {f"x{t}:{i}": f"{t}:{i}".encode() for t in range(4) for i in range(60)}
    with cluster.map() as client:
        for key, value in expected.items():
            client.set(key, value)
    stop = threading.Event()
    problems: list[str] = []
    rounds = [0]

    def reader(t: int) -> None:
        keys = [f"x{t}:{i}" for i in range(60)]
        while not stop.is_set():
            try:
                with cluster.map(timeout=2.0) as client:
                    promises = {key: client.get(key) for key in keys}
            except (HostConnectionError, HostTimeoutError):
                continue
            except Exception as exc:  # e.g. a reply of the wrong length: someone else's
                problems.append(f"round raised {exc!r}")
                continue
            for key, promise in promises.items():
                if promise.value != expected[key]:
                    problems.append(f"{key}: {promise.value!r}")
            rounds[0] += 1

    threads = [threading.Thread(target=reader, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        cluster.disconnect_pools()
        with open(os.devnull, "rb") as _:  # a file opened meanwhile may take a freed number
            time.sleep(0.002)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert problems == []
    assert rounds[0] > 0
    with cluster.map() as client:  # and the cluster still works
        values = {key: client.get(key) for key in expected}
    assert {key: p.value for key, p in values.items()} == expected
