"""The asyncio engine under failure: dead and stalled nodes, amap(timeout=), full pools that
wait, cancelled rounds that leak nothing, logins (AUTH, SELECT, ACL users, unix sockets)."""

import asyncio
import gc
import os
import random
import subprocess
import time

import pytest
import redis

from django_rb.cluster import Cluster, HostConnectionError, HostTimeoutError
from django_rb.cluster.apool import AsyncPool
from django_rb.testing import cluster_hosts, find_redis_server, free_port, healthy, keys_per_host


@pytest.fixture
def three_nodes(redis_nodes):
    with healthy(redis_nodes(3, password="pa55word")) as nodes:
        yield nodes


@pytest.fixture(params=["pipelined", "exclusive"])
def sharing(request, monkeypatch):
    """Both pool strategies: rounds pipelined on shared connections (the default), and a
    connection of its own for every round (``rounds_per_connection = 1``)."""
    if request.param == "exclusive":
        monkeypatch.setattr(AsyncPool, "rounds_per_connection", 1)
    return request.param


def make_cluster(nodes, db=0, **pool_options):
    return Cluster(cluster_hosts(nodes, db), pool_options=pool_options or None)


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def pools_of(cluster):
    return cluster._loop_pools.for_loop()


def test_dead_node_fails_its_keys_only_and_names_the_host(three_nodes, arun):
    cluster = make_cluster(three_nodes)
    owners = keys_per_host(cluster, 5)
    for keys in owners.values():
        for key in keys:
            cluster.get_routing_client().set(key, key)
    three_nodes[1].stop()

    async def main():
        async with cluster.amap() as client:
            holder.update({key: client.get(key) for keys in owners.values() for key in keys})

    holder = {}
    started = time.monotonic()
    with pytest.raises(HostConnectionError) as info:
        arun(main())
    assert time.monotonic() - started < 2.0
    err = info.value
    assert isinstance(err, redis.ConnectionError) and err.host_id == 1
    assert "host 1 (127.0.0.1:" in str(err) and "pa55word" not in str(err)
    for key, promise in holder.items():
        if key in owners[1]:
            assert promise.is_rejected and promise.reason is err
        else:
            assert promise.value == key.encode()


def test_rounds_waiting_for_a_dead_nodes_connect_fail_together(three_nodes, arun, monkeypatch):
    # 50 tasks arrive while host 1's first connection is being opened: they wait for it, and
    # its failure fails them all at once (an error object each), not one connect per task
    from django_rb.cluster import apool

    connects = []
    real_open = apool.open_connection

    def counting_open(host, settings, deadline=None):
        connects.append(host.host_id)
        return real_open(host, settings, deadline)

    monkeypatch.setattr(apool, "open_connection", counting_open)
    cluster = make_cluster(three_nodes)
    key = keys_per_host(cluster, 1)[1][0]
    three_nodes[1].stop()

    async def get():
        async with cluster.amap() as client:
            client.get(key)

    async def main():
        started = time.monotonic()
        results = await asyncio.gather(*(get() for _ in range(50)), return_exceptions=True)
        pool = pools_of(cluster)[1]
        return results, time.monotonic() - started, pool.count, pool.in_use

    results, elapsed, count, in_use = arun(main())
    assert all(isinstance(r, HostConnectionError) and r.host_id == 1 for r in results)
    assert len({id(r) for r in results}) == 50  # no two tasks raise the same object
    assert connects == [1] and elapsed < 2.0 and count == 0 and in_use == 0


def test_a_configuration_error_fails_the_round_and_leaks_no_slot(rb_nodes, arun):
    # the async twin of test_failures' test: pool_options redis-py does not take raise as they
    # are (not as a dead node), every promise is settled, and no pool counts a connection for
    # it (each attempt counted one, and promises stayed pending)
    cluster = Cluster(cluster_hosts(rb_nodes), pool_options={"max_conections": 5})

    async def main():
        for _ in range(3):
            with pytest.raises(TypeError, match="max_conections") as info:
                async with cluster.amap() as client:
                    promises = [client.get(f"k{i}") for i in range(8)]
            assert not any(p.is_pending for p in promises)
            assert not isinstance(info.value, HostConnectionError)
            assert any(p.reason is info.value for p in promises)
        return [(p.count, p.in_use) for p in pools_of(cluster).values()]

    assert all(counts == (0, 0) for counts in arun(main()))


def test_stalled_node_under_amap_timeout(three_nodes, arun):
    cluster = make_cluster(three_nodes, socket_timeout=10)
    owners = keys_per_host(cluster, 5)

    async def main():
        async with cluster.aall() as client:  # pooled connections: only the block's clock
            client.ping()
        three_nodes[2].pause()
        started = time.monotonic()
        try:
            async with cluster.amap(timeout=0.3) as client:
                holder.update({k: client.set(k, "1") for keys in owners.values() for k in keys})
        finally:
            holder["elapsed"] = time.monotonic() - started
            three_nodes[2].resume()

    holder = {}
    with pytest.raises(HostTimeoutError, match="the round's timeout") as info:
        arun(main())
    assert 0.25 < holder.pop("elapsed") < 2.0
    assert info.value.host_id == 2 and isinstance(info.value, redis.TimeoutError)
    assert all(holder[k].is_rejected for k in owners[2])
    assert all(holder[k].value is True for h in (0, 1) for k in owners[h])


def test_a_stalled_host_holds_one_slot_of_the_max_concurrency_window(three_nodes, arun):
    cluster = make_cluster(three_nodes, socket_timeout=10)
    owners = keys_per_host(cluster, 4)
    order = [2, 0, 1]  # the stalled host first: the hosts after it must not wait for it

    async def watch(peaks):
        while True:  # hosts in flight at once, seen between the loop's passes
            peaks.append(sum(pool.in_use for pool in pools_of(cluster).values()))
            await asyncio.sleep(0)

    async def block(holder, timeout, limit):
        async with cluster.amap(timeout=timeout, max_concurrency=limit) as client:
            holder.update({k: client.set(k, "1") for h in order for k in owners[h]})

    async def main():
        async with cluster.aall() as client:
            client.ping()
        fds_before = open_fds()
        three_nodes[2].pause()
        peaks, windowed, interrupted = [], {}, {}
        watcher = asyncio.ensure_future(watch(peaks))
        try:
            started = time.monotonic()
            with pytest.raises(HostTimeoutError, match="the round's timeout") as info:
                await block(windowed, 1.0, 2)
            elapsed = time.monotonic() - started
            # interrupted from outside, with hosts still waiting for a slot
            task = asyncio.ensure_future(block(interrupted, None, 1))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            watcher.cancel()
            three_nodes[2].resume()
        after = {}
        await block(after, 1.0, 1)
        fds = (fds_before, open_fds())  # the two stalled connections were dropped, then replaced
        in_use = [p.in_use for p in pools_of(cluster).values()]
        return info.value, elapsed, max(peaks), windowed, interrupted, after, in_use, fds

    error, elapsed, peak, windowed, interrupted, after, in_use, fds = arun(main())
    assert error.host_id == 2 and 0.95 < elapsed < 4.0  # (a loaded machine is slow)
    assert all(windowed[k].is_rejected for k in owners[2])
    assert all(windowed[k].value is True for h in (0, 1) for k in owners[h])
    assert 1 <= peak <= 2  # the cap held: the stalled host and at most one other at a time
    assert interrupted and all(p.is_rejected for p in interrupted.values())  # none pending
    assert all(p.value is True for p in after.values()) and len(after) == 12
    assert in_use == [0, 0, 0] and fds[1] <= fds[0] + 1


def test_socket_timeout_bounds_a_quiet_host_without_a_block_timeout(three_nodes, arun):
    cluster = make_cluster(three_nodes, socket_timeout=0.3)

    async def main():
        async with cluster.aall() as client:
            client.ping()
        three_nodes[0].pause()
        try:
            async with cluster.aall() as client:
                pings = client.ping()
        finally:
            three_nodes[0].resume()
            holder.append(pings)
        # the stalled connection was dropped, not handed back half-read: the next round is clean
        async with cluster.aall() as client:
            return client.ping()

    holder = []
    with pytest.raises(HostTimeoutError, match="socket_timeout"):
        arun(main())

    async def again():
        async with cluster.aall() as client:
            return client.echo("clean")

    assert arun(again()).value == {0: b"clean", 1: b"clean", 2: b"clean"}


def test_connects_to_every_host_run_concurrently(three_nodes, arun):
    cluster = make_cluster(three_nodes, socket_connect_timeout=0.4, socket_timeout=0.4)
    for node in three_nodes:  # accepted by the kernel, never answered: logins hang
        node.pause()
    try:
        started = time.monotonic()
        with pytest.raises(HostTimeoutError):

            async def main():
                async with cluster.aall() as client:
                    client.ping()

            arun(main())
        elapsed = time.monotonic() - started
    finally:
        for node in three_nodes:
            node.resume()
    assert elapsed < 1.0  # three serial logins would take 1.2 s


def test_full_pool_waits_instead_of_failing(rb_cluster, rb_nodes, arun, sharing):
    cluster = Cluster(cluster_hosts(rb_nodes), pool_options={"max_connections": 2})

    async def task(n):
        async with cluster.amap() as client:
            client.set(f"w{n}", n)
            promise = client.get(f"w{n}")
        return promise.value

    async def main():
        values = await asyncio.gather(*(task(n) for n in range(200)))
        return values, {h: (p.count, p.in_use) for h, p in pools_of(cluster).items()}

    values, counts = arun(main())
    assert values == [str(n).encode() for n in range(200)]
    assert all(count <= 2 and in_use == 0 for count, in_use in counts.values())


def test_full_pool_gives_up_at_the_block_deadline(three_nodes, arun, monkeypatch):
    monkeypatch.setattr(AsyncPool, "rounds_per_connection", 1)  # a connection per round
    cluster = make_cluster(three_nodes, max_connections=1, socket_timeout=5)
    key = keys_per_host(cluster, 1)[0][0]

    async def hog():
        async with cluster.amap(timeout=1.0) as client:
            client.get(key)

    async def main():
        async with cluster.amap() as client:
            client.get(key)  # one pooled connection to host 0
        three_nodes[0].pause()
        try:
            holding = asyncio.ensure_future(hog())
            await asyncio.sleep(0.05)
            started = time.monotonic()
            with pytest.raises(HostTimeoutError, match="stayed busy"):
                async with cluster.amap(timeout=0.2) as client:
                    client.get(key)
            waited = time.monotonic() - started
            with pytest.raises(HostTimeoutError):
                await holding
        finally:
            three_nodes[0].resume()
        return waited

    assert 0.15 < arun(main()) < 0.9


def test_a_round_behind_a_stalled_one_on_a_shared_connection_times_out_alone(three_nodes, arun):
    cluster = make_cluster(three_nodes, max_connections=1, socket_timeout=5)
    key = keys_per_host(cluster, 1)[0][0]
    cluster.get_routing_client().set(key, "v")

    async def get(timeout):
        async with cluster.amap(timeout=timeout) as client:
            promise = client.get(key)
        return promise

    async def main():
        await get(None)  # one pooled connection to host 0
        three_nodes[0].pause()
        try:
            holding = asyncio.ensure_future(get(1.0))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            with pytest.raises(HostTimeoutError, match="the round's timeout"):
                await get(0.2)  # pipelined behind it, on the same connection
            waited = time.monotonic() - started
            patient = asyncio.ensure_future(get(5.0))  # still waiting when the node is back
            with pytest.raises(HostTimeoutError, match="the round's timeout"):
                await holding
        finally:
            three_nodes[0].resume()
        promise = await patient  # the two given-up rounds' replies were skipped, not its own
        pool = pools_of(cluster)[0]
        return waited, promise.value, pool.count, pool.in_use

    waited, value, count, in_use = arun(main())
    assert 0.15 < waited < 0.9
    assert value == b"v" and count == 1 and in_use == 0


def test_a_dropped_connection_frees_its_slot_for_the_next_waiter(three_nodes, arun, sharing):
    cluster = make_cluster(three_nodes, max_connections=1, socket_timeout=5)
    key = keys_per_host(cluster, 1)[0][0]

    async def get(timeout):
        async with cluster.amap(timeout=timeout) as client:
            promise = client.get(key)
        return promise

    async def main():
        await get(None)  # the one pooled connection to host 0
        three_nodes[0].pause()
        try:
            holding = asyncio.ensure_future(get(None))
            await asyncio.sleep(0.05)  # it has written to the stalled node
            waiting = asyncio.ensure_future(get(3.0))
            await asyncio.sleep(0.05)  # queued for the pool's only slot, or pipelined behind
            # exclusive: its connection may hold half a reply, dropped, the slot freed;
            # pipelined: its reply, when it comes, is skipped
            holding.cancel()
        finally:
            three_nodes[0].resume()
        with pytest.raises(asyncio.CancelledError):
            await holding
        pool = pools_of(cluster)[0]
        return await waiting, pool.count, pool.in_use

    promise, count, in_use = arun(main())
    assert promise.value is None  # answered
    assert count == 1 and in_use == 0


def test_a_cancelled_round_keeps_a_connection_another_round_holds_unwritten(three_nodes, arun):
    # B holds host 0's connection while it waits for host 1's to open; A, the only round
    # written to it, is cancelled: the connection must stay for B (closing it failed B's host 0)
    cluster = make_cluster(three_nodes, socket_timeout=5, socket_connect_timeout=0.4)
    owners = keys_per_host(cluster, 1)
    key0, key1 = owners[0][0], owners[1][0]
    cluster.get_routing_client().set(key0, "zero")

    async def main():
        async with cluster.amap() as client:
            client.get(key0)  # a pooled connection to host 0 only
        three_nodes[0].pause()
        three_nodes[1].pause()  # host 1's login will hang
        try:
            first = asyncio.ensure_future(get_one())
            await asyncio.sleep(0.05)  # A has written to host 0
            second = asyncio.ensure_future(get_both(holder))
            await asyncio.sleep(0.05)  # B holds host 0's connection, waits for host 1's
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            three_nodes[0].resume()
            with pytest.raises(HostTimeoutError) as info:
                await second
        finally:
            three_nodes[0].resume()
            three_nodes[1].resume()
        return info.value

    async def get_one():
        async with cluster.amap() as client:
            client.get(key0)

    async def get_both(holder):
        async with cluster.amap(timeout=3.0) as client:  # host 1's connect fails first
            holder[0] = client.get(key0)
            holder[1] = client.get(key1)

    holder = {}
    error = arun(main())
    assert error.host_id == 1
    assert holder[0].value == b"zero" and holder[1].is_rejected


def test_cancelled_rounds_on_a_shared_connection_shift_nobody_elses_replies(rb_cluster, rb_nodes,
                                                                           arun, sharing):  # fmt: skip
    # one connection per host, 60 tasks pipelined on it (or queued for it), a third of them
    # cancelled mid-flight: every other task must see exactly its own values
    cluster = Cluster(cluster_hosts(rb_nodes), pool_options={"max_connections": 1})
    owners = keys_per_host(cluster, 2)
    keys = [key for ks in owners.values() for key in ks]
    values = {n: {key: b"%d:" % n + key.encode() + b"x" * 30_000 * (n % 3) for key in keys}
              for n in range(60)}  # fmt: skip
    with cluster.map() as client:
        for n, pairs in values.items():
            for key, value in pairs.items():
                client.set(f"{n}:{key}", value)
    rng = random.Random(11)

    async def task(n):
        async with cluster.amap() as client:
            promises = {key: client.get(f"{n}:{key}") for key in keys}
        return {key: p.value for key, p in promises.items()}

    async def main():
        await task(0)  # one pooled connection per host
        fds = open_fds()
        for _ in range(5):
            tasks = [asyncio.ensure_future(task(n)) for n in range(60)]
            await asyncio.sleep(rng.random() * 0.003)
            doomed = [t for n, t in enumerate(tasks) if n % 3 == 1]
            for t in doomed:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for n, result in enumerate(results):
                if not isinstance(result, BaseException):
                    assert result == values[n], n
                else:
                    assert n % 3 == 1 and isinstance(result, asyncio.CancelledError)
        last = await task(59)
        pools = pools_of(cluster)
        return fds, open_fds(), last, {h: (p.count, p.in_use) for h, p in pools.items()}

    fds_before, fds_after, last, counts = arun(main())
    assert last == values[59]
    assert all(in_use == 0 and count == 1 for count, in_use in counts.values())
    assert fds_after <= fds_before + 4


def test_hundred_cancelled_rounds_leak_nothing(rb_cluster, arun, sharing):
    big = b"x" * 200_000  # replies arrive in many pieces: cancels land mid-reply too
    owners = keys_per_host(rb_cluster, 3)
    keys = [key for ks in owners.values() for key in ks]
    with rb_cluster.map() as client:
        for key in keys:
            client.set(key, big)
    rng = random.Random(7)

    async def round_():
        async with rb_cluster.amap() as client:
            return [client.get(key) for key in keys]

    async def main():
        await round_()  # warm the pools
        fds = open_fds()
        cancelled = 0
        for _ in range(100):
            task = asyncio.ensure_future(round_())
            await asyncio.sleep(rng.random() * 0.004)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                cancelled += 1
        promises = await round_()  # later rounds still get whole, correct replies
        pools = pools_of(rb_cluster)
        return fds, open_fds(), cancelled, promises, [p.in_use for p in pools.values()], pools

    fds_before, fds_after, cancelled, promises, in_use, pools = arun(main())
    assert cancelled > 20  # most cancels hit a round in flight
    assert all(p.value == big for p in promises)
    assert in_use == [0, 0, 0, 0]
    # a dropped connection is replaced on demand; none accumulate
    assert fds_after <= fds_before + 4 and all(p.count <= 4 for p in pools.values())


def test_asyncio_timeout_around_a_block_leaks_nothing(three_nodes, arun, sharing):
    cluster = make_cluster(three_nodes)

    async def main():
        async with cluster.aall() as client:
            client.ping()
        fds = open_fds()
        three_nodes[1].pause()
        try:
            for _ in range(20):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.01):
                        async with cluster.aall() as client:
                            pings = client.ping()
                assert pings.is_rejected  # settled, not left pending
        finally:
            three_nodes[1].resume()
        async with cluster.aall() as client:
            after = client.ping()
        return fds, open_fds(), after, [p.in_use for p in pools_of(cluster).values()]

    fds_before, fds_after, after, in_use = arun(main())
    assert after.value == {0: True, 1: True, 2: True}
    assert in_use == [0, 0, 0] and fds_after <= fds_before + 1


def test_a_closed_loop_takes_its_pools_and_connections_with_it(rb_cluster, arun):
    # asyncio.run() per call (what async_to_sync may do): no adisconnect_pools() in sight
    async def one():
        async with rb_cluster.amap() as client:
            promises = [client.set(f"loop:{h}", h) for h in range(8)]
        return [p.value for p in promises]

    def live_loops():
        gc.collect()
        return sum(isinstance(o, asyncio.AbstractEventLoop) for o in gc.get_objects())

    arun(one())
    loops, fds = live_loops(), open_fds()
    for _ in range(20):
        assert arun(one()) == [True] * 8
    assert live_loops() <= loops and open_fds() <= fds


def test_login_with_password_and_db(three_nodes, arun):
    cluster = make_cluster(three_nodes, db=3)

    async def main():
        async with cluster.amap() as client:
            client.set("in-db-3", "yes")

    arun(main())
    admin = redis.Redis(port=three_nodes[0].port, password="pa55word", db=3)
    router = cluster.get_router()
    owner = three_nodes[router.get_host_for_key("in-db-3")]
    assert redis.Redis(port=owner.port, password="pa55word", db=3).get("in-db-3") == b"yes"
    assert admin.ping()


def test_wrong_password_fails_login_without_showing_it(three_nodes, arun):
    hosts = cluster_hosts(three_nodes)
    hosts[0]["password"] = "not-the-secret"
    cluster = Cluster(hosts)

    async def main():
        async with cluster.aall() as client:
            client.ping()

    with pytest.raises(HostConnectionError, match="login failed") as info:
        arun(main())
    assert info.value.host_id == 0 and "not-the-secret" not in str(info.value)


def test_acl_user_login(three_nodes, arun):
    node = three_nodes[0]
    admin = redis.Redis(port=node.port, password="pa55word")
    admin.acl_setuser(
        "app", enabled=True, passwords=["+app-secret"], keys=["*"], commands=["+@all"]
    )
    cluster = Cluster([f"redis://app:app-secret@127.0.0.1:{node.port}/0"])

    async def main():
        client = cluster.get_async_routing_client()
        await client.set("acl", "ok")
        return await cluster.get_async_local_client(0).execute_command("ACL WHOAMI")

    try:
        assert arun(main()) == "app"
    finally:
        admin.acl_deluser("app")


def test_unix_socket_host(redis_nodes, arun):
    node = redis_nodes(1, unix_socket=True)[0]
    cluster = Cluster([f"unix://{node.socket_path}?db=2"])

    async def main():
        client = cluster.get_async_routing_client()
        await client.set("u", "1")

    arun(main())
    assert redis.Redis(unix_socket_path=node.socket_path, db=2).get("u") == b"1"


def test_removed_host_fails_its_commands(rb_cluster, rb_nodes, arun):
    cluster = Cluster(cluster_hosts(rb_nodes))

    async def main():
        async with cluster.afanout(hosts=[0, 3]) as client:
            holder.append(client.ping())
            cluster.remove_host(3)

    holder = []
    with pytest.raises(HostConnectionError, match="removed"):
        arun(main())
    assert holder[0].is_rejected
    assert cluster.get_local_client(0).ping()  # host 0 answered: only host 3 failed


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory):
    """A TLS-only redis-server with a password and a self-signed certificate for 127.0.0.1."""
    workdir = tmp_path_factory.mktemp("tls")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file",
         str(cert), "--tls-auth-clients", "no", "--requirepass", "tls-pw", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    admin = redis.Redis(port=port, password="tls-pw", ssl=True, ssl_ca_certs=str(cert))
    try:
        for _ in range(100):
            try:
                admin.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield port, cert, admin
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_tls_login_with_password_and_db(tls_node, arun):
    port, cert, admin = tls_node
    verified = Cluster(
        [f"rediss://:tls-pw@127.0.0.1:{port}/2?ssl_ca_certs={cert}&ssl_check_hostname=yes"]
    )
    unverified = Cluster([f"rediss://:tls-pw@127.0.0.1:{port}/2?ssl_cert_reqs=none"])

    async def main():
        async with verified.amap() as client:
            client.set("tls", "yes")
        routed = unverified.get_async_routing_client()
        return await routed.get("tls")

    assert arun(main()) == b"yes"
    assert (
        redis.Redis(port=port, password="tls-pw", db=2, ssl=True, ssl_ca_certs=str(cert)).get("tls")
        == b"yes"
    )


def test_tls_with_an_unknown_certificate_fails_that_host(tls_node, arun):
    port, _cert, _admin = tls_node
    cluster = Cluster([f"rediss://:tls-pw@127.0.0.1:{port}/0"])  # the system CAs do not know it

    async def main():
        async with cluster.aall() as client:
            client.ping()

    with pytest.raises(HostConnectionError) as info:
        arun(main())
    assert info.value.host_id == 0 and "tls-pw" not in str(info.value)


def test_rounds_cancelled_while_connecting_leak_nothing(three_nodes, arun, sharing):
    cluster = make_cluster(three_nodes, socket_connect_timeout=5, socket_timeout=5)

    async def main():
        await ping_all()  # the loop's own descriptors exist, one pooled connection per node
        await cluster.adisconnect_pools()
        await asyncio.sleep(0.01)
        fds = open_fds()
        three_nodes[2].pause()  # TCP is accepted by the kernel, the login never answered
        try:
            for _ in range(30):
                task = asyncio.ensure_future(ping_all())
                await asyncio.sleep(0.005)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
        finally:
            three_nodes[2].resume()
        await asyncio.sleep(0.05)  # connects that completed after the cancel are back
        pools = pools_of(cluster)
        counts = {h: (p.count, p.in_use) for h, p in pools.items()}
        pongs = await ping_all()
        return fds, open_fds(), counts, pongs

    async def ping_all():
        async with cluster.aall() as client:
            return client.ping()

    fds_before, fds_after, counts, pongs = arun(main())
    assert pongs.value == {0: True, 1: True, 2: True}
    assert counts[2] == (0, 0)  # every half-open login to the paused node was closed
    assert all(in_use == 0 and count <= 1 for count, in_use in counts.values())
    assert fds_after <= fds_before + 3  # one pooled connection per node, nothing else
