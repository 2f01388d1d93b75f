"""register_script on the cluster's clients: EVALSHA, and a load on NOSCRIPT in the same call."""

import pytest
import redis
from redis.commands.core import Script

from django_rb.cluster import (
    Cluster,
)
from django_rb.testing import cluster_hosts, keys_per_host

ECHO = "return {KEYS[1], ARGV[1]}"
INCR_BY = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


def calls(cluster, command):
    """How many times all nodes together ran ``command`` since the last reset (server's count)."""
    total = 0
    for host_id in cluster.hosts:
        stats = cluster.get_local_client(host_id).info("commandstats")
        total += stats.get(f"cmdstat_{command}", {}).get("calls", 0)
    return total


def flush_scripts_and_stats(cluster):
    for host_id in cluster.hosts:
        local = cluster.get_local_client(host_id)
        local.script_flush()
        local.config_resetstat()


@pytest.fixture
def keys(rb_cluster):
    """Three keys on every one of the four hosts."""
    per_host = keys_per_host(rb_cluster, 3, prefix="sc")
    return [key for host_keys in per_host.values() for key in host_keys]


def test_map_sends_evalsha_and_loads_where_a_host_lacks_the_script(rb_cluster, keys):
    flush_scripts_and_stats(rb_cluster)
    with rb_cluster.map() as client:
        script = client.register_script(ECHO)
        cold = [script(keys=[key], args=[i]) for i, key in enumerate(keys)]
    assert [p.value for p in cold] == [[k.encode(), b"%d" % i] for i, k in enumerate(keys)]
    # every call tried EVALSHA first; each NOSCRIPT was answered by one EVAL, nothing more
    assert calls(rb_cluster, "evalsha") == len(keys)
    assert calls(rb_cluster, "eval") == len(keys)

    for host_id in rb_cluster.hosts:
        rb_cluster.get_local_client(host_id).config_resetstat()
    with rb_cluster.map() as client:
        warm = [client.register_script(ECHO)(keys=[key], args=["w"]) for key in keys]
    assert [p.value for p in warm] == [[k.encode(), b"w"] for k in keys]
    assert calls(rb_cluster, "evalsha") == len(keys)
    assert calls(rb_cluster, "eval") == 0  # cached now: no body sent


def test_script_flush_between_blocks_is_recovered_each_time(rb_cluster, keys):
    script = rb_cluster.get_routing_client().register_script(INCR_BY)
    for round_number in range(1, 4):
        flush_scripts_and_stats(rb_cluster)
        with rb_cluster.map() as client:
            results = [script(keys=[key], args=[2], client=client) for key in keys]
        assert [p.value for p in results] == [2 * round_number] * len(keys)
        assert calls(rb_cluster, "eval") == len(keys)


def test_only_the_hosts_that_lack_the_script_get_the_body(rb_cluster, keys):
    with rb_cluster.map() as client:
        script = client.register_script(INCR_BY)
        for key in keys:
            script(keys=[key], args=[1])
    flush_scripts_and_stats(rb_cluster)
    rb_cluster.get_local_client(0).script_load(INCR_BY)  # host 0 has it, the others do not
    with rb_cluster.map() as client:
        results = [script(keys=[key], args=[1], client=client) for key in keys]
    assert [p.value for p in results] == [2] * len(keys)
    assert calls(rb_cluster, "eval") == len(keys) - 3  # host 0's three keys went by sha alone


def test_callbacks_and_chains_see_the_retried_value(rb_cluster, keys):
    flush_scripts_and_stats(rb_cluster)
    seen = []
    with rb_cluster.map() as client:
        script = client.register_script(INCR_BY)
        doubled = script(keys=[keys[0]], args=[5]).then(lambda v: v * 2)
        script(keys=[keys[1]], args=[7]).done(seen.append)
    assert doubled.value == 10
    assert seen == [7]


def test_a_failing_script_rejects_its_own_promise_with_the_server_error(rb_cluster, keys):
    routing = rb_cluster.get_routing_client()
    routing.set(keys[0], "not a list")
    flush_scripts_and_stats(rb_cluster)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE") as info:
        with rb_cluster.map() as client:
            push = client.register_script("return redis.call('LPUSH', KEYS[1], 'x')")
            failed = push(keys=[keys[0]])
            fine = push(keys=[keys[1]])
            other = client.incr(keys[2])
    assert "NOSCRIPT" not in str(info.value)
    assert failed.is_rejected and "WRONGTYPE" in str(failed.reason)
    assert (fine.value, other.value) == (1, 1)


def test_a_script_that_does_not_compile_reports_the_compile_error(rb_cluster, keys):
    flush_scripts_and_stats(rb_cluster)
    with pytest.raises(redis.ResponseError) as info:
        with rb_cluster.map() as client:
            broken = client.register_script("return this is not lua")(keys=[keys[0]])
    assert "NOSCRIPT" not in str(info.value)
    assert broken.is_rejected and "NOSCRIPT" not in str(broken.reason)


def test_routing_client_script_loads_on_its_key_s_host(rb_cluster, keys):
    routing = rb_cluster.get_routing_client()
    script = routing.register_script(INCR_BY)
    for expected in (3, 6):
        flush_scripts_and_stats(rb_cluster)  # every call finds the script missing
        assert [script(keys=[key], args=[3]) for key in keys] == [expected] * len(keys)
    router = rb_cluster.get_router()
    for key in keys:  # each value is on the host its key routes to
        assert rb_cluster.get_local_client(router.get_host_for_key(key)).get(key) == b"6"


def test_fanout_script_runs_on_every_target_host_after_a_flush(rb_cluster):
    flush_scripts_and_stats(rb_cluster)
    with rb_cluster.all() as client:
        everywhere = client.register_script("return 7")()
    with rb_cluster.fanout(hosts=[1, 2]) as client:
        some = client.register_script("return ARGV[1]")(args=["x"])
    assert everywhere.value == {h: 7 for h in rb_cluster.hosts}
    assert some.value == {1: b"x", 2: b"x"}


def test_script_text_decoded_for_decode_responses_clusters(rb_nodes, rb_cluster):
    cluster = Cluster(cluster_hosts(rb_nodes), pool_options={"decode_responses": True})
    try:
        flush_scripts_and_stats(cluster)
        with cluster.map() as client:
            echoed = client.register_script(ECHO)(keys=["txt"], args=["é"])
        assert echoed.value == ["txt", "é"]
    finally:
        cluster.disconnect_pools()


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
