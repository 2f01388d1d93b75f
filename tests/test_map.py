"""map(): promises, routing to the right node, auto-batching, cross-node emulation, scripts."""

import pytest
import redis
from redis.commands.core import Script

from django_rb.cluster import Cluster, ConsistentHashingRouter, Promise, UnroutableCommand
from django_rb.testing import cluster_hosts


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
