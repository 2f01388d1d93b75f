"""RedisCluster on a real Redis Cluster: slot routing, per-slot folding, masters-only fanout,
replica reads, the routing client's refusals."""

import pytest

from django_rb.cluster import BadHostSetup, RedisCluster, UnroutableCommand
from django_rb.cluster.slots import key_slot
from django_rb.testing import key_for_node


def stats(setup, node, command):
    """How often ``node`` ran ``command`` since its last CONFIG RESETSTAT (server-side truth)."""
    info = setup.client(node).info("commandstats")
    return info.get(f"cmdstat_{command}", {}).get("calls", 0)


def reset_stats(setup):
    for node in setup.nodes:
        setup.client(node).config_resetstat()


def port_of(name):
    return int(name.rsplit(":", 1)[1])


def test_keys_go_to_the_master_of_their_slot(redis_cluster, shared_redis_cluster):
    keys = [f"user:{i}" for i in range(200)] + ["{tag}a", "{tag}b", "x{}y", "{}z", "a{b}{c}"]
    keys += ["{", "}", "}{a}", "{a", "{{a}}", "a{b}c{d}", "{}{b}", "x{é}", "é"]
    probe = shared_redis_cluster.client(shared_redis_cluster.masters[0])
    router = redis_cluster.get_router()
    for key in keys:
        slot = probe.execute_command("CLUSTER", "KEYSLOT", key)
        data = key.encode()
        assert key_slot(data) == key_slot(bytearray(data)) == key_slot(memoryview(data)) == slot
        owner = shared_redis_cluster.node_of_slot(slot)
        assert port_of(router.get_host_for_key(key)) == owner.port
    with redis_cluster.map() as client:
        for key in keys:
            client.set(key, key)
    for key in keys:  # each key is on its owner: a plain client gets it there, no MOVED
        owner = shared_redis_cluster.node_of_slot(key_slot(key.encode()))
        assert shared_redis_cluster.client(owner).get(key) == key.encode()
    reset_stats(shared_redis_cluster)
    with redis_cluster.map() as client:  # GET's own path routes as SET's did: no redirect
        read = [client.get(key) for key in keys]
    assert [p.value for p in read] == [key.encode() for key in keys]
    for node in shared_redis_cluster.masters:  # the server counts the MOVED it answered
        assert "errorstat_MOVED" not in shared_redis_cluster.client(node).info("errorstats")


def test_hosts_are_the_masters_by_address(redis_cluster, shared_redis_cluster):
    assert sorted(port_of(name) for name in redis_cluster.hosts) == sorted(
        node.port for node in shared_redis_cluster.masters
    )
    assert "password" not in repr(redis_cluster)


def test_map_over_many_slots_gets_every_value(redis_cluster):
    with redis_cluster.map() as client:
        written = [client.set(f"k{i}", i) for i in range(1000)]
    with redis_cluster.map() as client:
        read = [client.get(f"k{i}") for i in range(1000)]
        missing = client.get("nothing-here")
        counted = client.incr("k7")
    assert all(p.value is True for p in written)
    assert [p.value for p in read] == [str(i).encode() for i in range(1000)]
    assert missing.value is None
    assert counted.value == 8


def test_gets_fold_per_slot_only(redis_cluster, shared_redis_cluster):
    same_slot = [f"{{t}}:{i}" for i in range(20)]
    spread = [f"spread{i}" for i in range(20)]
    with redis_cluster.map() as client:
        client.mset({key: key for key in same_slot + spread})
    reset_stats(shared_redis_cluster)
    with redis_cluster.map() as client:
        tagged = [client.get(key) for key in same_slot]
        loose = [client.get(key) for key in spread]
    assert [p.value for p in tagged + loose] == [k.encode() for k in same_slot + spread]
    owner = shared_redis_cluster.node_of_slot(key_slot(b"t"))
    assert stats(shared_redis_cluster, owner, "mget") == 1  # the 20 tagged keys: one MGET
    gets = sum(stats(shared_redis_cluster, n, "get") for n in shared_redis_cluster.masters)
    assert gets >= 15  # the spread keys are in 20 different slots: no cross-slot MGET


def test_neighbours_fold_only_with_their_own_kind_and_slot(redis_cluster, shared_redis_cluster):
    reset_stats(shared_redis_cluster)
    with redis_cluster.map() as client:
        written = [client.set("{a}:1", "1"), client.set("{a}:2", "2")]  # one MSET
        first = client.get("{a}:1")
        third = client.set("{a}:3", "3")  # another kind after the GET: both stay plain
        other = client.get("{b}:1")
        second = client.get("{a}:2")  # a slot between them: no MGET either
        deleted = [client.delete("{a}:3"), client.delete("{a}:9")]  # one folded DEL
    assert [p.value for p in written] == [True, True] and third.value is True
    assert (first.value, other.value, second.value) == (b"1", None, b"2")
    assert [p.value for p in deleted] == [1, 0]
    owner = shared_redis_cluster.node_of_slot(key_slot(b"a"))
    assert stats(shared_redis_cluster, owner, "mset") == 1
    assert stats(shared_redis_cluster, owner, "set") == 1
    assert stats(shared_redis_cluster, owner, "mget") == 0
    assert stats(shared_redis_cluster, owner, "get") >= 2
    assert stats(shared_redis_cluster, owner, "eval") == 1


def test_mget_mset_delete_span_slots_as_one_promise(redis_cluster):
    keys = [f"many{i}" for i in range(100)]
    with redis_cluster.map() as client:
        client.mset({key: f"v-{key}" for key in keys})
    with redis_cluster.map() as client:
        values = client.mget(keys)
        deleted = client.delete(*keys[:50])
        exists = client.exists(*keys)
    assert values.value == [f"v-{key}".encode() for key in keys]
    assert deleted.value == 50
    assert exists.value == 50


def test_execute_commands_runs_each_list_on_its_slot_master(redis_cluster, arun):
    results = redis_cluster.execute_commands(
        {"{u1}": [("SET", "{u1}:a", "1"), ("GET", "{u1}:a")], "{u2}": [("INCR", "{u2}:n")]}
    )
    assert [p.value for p in results["{u1}"]] == [True, b"1"]
    assert [p.value for p in results["{u2}"]] == [1]
    again = arun(redis_cluster.aexecute_commands({"{u2}": [("INCR", "{u2}:n")]}))
    assert [p.value for p in again["{u2}"]] == [2]


def test_falsy_replies_are_settled_once(redis_cluster, shared_redis_cluster):
    with redis_cluster.map() as client:
        client.set("empty", "")
        client.set("zero", 0)
    reset_stats(shared_redis_cluster)
    with redis_cluster.map() as client:
        empty, zero, none = client.get("empty"), client.get("zero"), client.get("absent")
        counter = client.incr("counter")
    assert (empty.value, zero.value, none.value, counter.value) == (b"", b"0", None, 1)
    total = sum(stats(shared_redis_cluster, n, "incrby") for n in shared_redis_cluster.masters)
    assert total == 1


def test_routing_client_runs_commands_on_the_right_master(redis_cluster):
    client = redis_cluster.get_routing_client()
    assert client.set("{u1}:name", "ann") is True
    assert client.get("{u1}:name") == b"ann"
    client.rpush("{u1}:list", "a", "b")
    assert client.lrange("{u1}:list", 0, -1) == [b"a", b"b"]
    assert client.rpoplpush("{u1}:list", "{u1}:other") == b"b"  # two keys, one slot
    with pytest.raises(Exception, match="WRONGTYPE"):
        client.incr("{u1}:list")


def test_routing_client_refuses_cross_slot_and_keyless_commands(redis_cluster):
    client = redis_cluster.get_routing_client()
    assert key_slot(b"a") != key_slot(b"b")
    with pytest.raises(UnroutableCommand, match="slots"):
        client.rpoplpush("a", "b")
    with pytest.raises(UnroutableCommand, match="no key"):
        client.execute_command("DBSIZE")
    with redis_cluster.map() as mapping, pytest.raises(UnroutableCommand, match="slots"):
        mapping.sunion("a", "b")


def test_all_and_fanout_target_masters(redis_cluster, shared_redis_cluster):
    with redis_cluster.map() as client:
        for i in range(300):
            client.set(f"n{i}", i)
    with redis_cluster.all() as client:
        sizes = client.dbsize()
    assert set(sizes.value) == set(redis_cluster.hosts)
    assert sum(sizes.value.values()) == 300
    some = sorted(redis_cluster.hosts)[:2]
    with redis_cluster.fanout(hosts=some) as client:
        pings = client.ping()
    assert pings.value == dict.fromkeys(some, True)
    with redis_cluster.all() as client:
        client.flushdb()
    with redis_cluster.all() as client:
        sizes = client.dbsize()
    assert sum(sizes.value.values()) == 0


def test_read_from_replicas_sends_reads_to_the_replica(shared_redis_cluster):
    shared_redis_cluster.flush()
    replica = shared_redis_cluster.replicas[0]
    master = shared_redis_cluster.masters[0]
    key = key_for_node(shared_redis_cluster, master, "replicated")
    cluster = RedisCluster(shared_redis_cluster.startup_nodes(), read_from_replicas=True)
    try:
        cluster.get_routing_client().set(key, "v")
        shared_redis_cluster.client(master).wait(1, 2000)  # the replica has the write
        reset_stats(shared_redis_cluster)
        written = key_for_node(shared_redis_cluster, master, "written")
        with cluster.map() as client:
            value = client.get(key)
            length = client.strlen(key)
            # another key: hosts of one round run in parallel, so a write to the read key could
            # reach the replica first (replica connections are made while the master is written)
            client.set(written, "w")
        assert (value.value, length.value) == (b"v", 1)
        assert stats(shared_redis_cluster, replica, "get") == 1
        assert stats(shared_redis_cluster, replica, "strlen") == 1
        assert stats(shared_redis_cluster, replica, "readonly") == 1
        assert stats(shared_redis_cluster, master, "set") == 1
        assert stats(shared_redis_cluster, master, "get") == 0
    finally:
        cluster.disconnect_pools()


def test_bad_setups_are_refused_with_a_clear_error(redis_nodes, shared_redis_cluster):
    with pytest.raises(BadHostSetup, match="db 0"):
        RedisCluster([shared_redis_cluster.masters[0].url(db=1)])
    with pytest.raises(BadHostSetup, match="at least one"):
        RedisCluster([])
    (plain,) = redis_nodes(1)
    cluster = RedisCluster([plain.url()])
    with pytest.raises(BadHostSetup, match="not in cluster mode"):
        cluster.get_routing_client().get("x")
    with pytest.raises(BadHostSetup, match="CLUSTER MEET"):
        cluster.add_host(host="127.0.0.1", port=1)


def test_registered_scripts_run_on_the_slot_master(redis_cluster, shared_redis_cluster):
    body = "return redis.call('INCRBY', KEYS[1], ARGV[1]) + redis.call('INCRBY', KEYS[2], 0)"
    for node in shared_redis_cluster.masters:
        shared_redis_cluster.client(node).script_flush()
    with redis_cluster.map() as client:
        script = client.register_script(body)
        first = script(keys=["{s}:a", "{s}:b"], args=[5])
        others = [script(keys=[f"{{s{i}}}:a", f"{{s{i}}}:b"], args=[i]) for i in range(20)]
    assert first.value == 5
    assert [p.value for p in others] == list(range(20))
    routed = redis_cluster.get_routing_client().register_script(body)
    assert routed(keys=["{s}:a", "{s}:b"], args=[2]) == 7


def test_a_cluster_behind_tls_and_acl_logins_works_end_to_end(redis_cluster_nodes, arun):
    """rediss:// seeds with an ACL user: every node found (and a MOVED's new owner, and the
    slot-map reads on both engines) gets the seed's TLS settings and login."""
    setup = redis_cluster_nodes(3, 0, password="n0de-secret", tls=True, users={"app": "app-pw"})
    cluster = RedisCluster([setup.masters[0].url(username="app")])
    keys = [f"secure{i}" for i in range(100)]
    try:
        with cluster.map() as client:
            written = [client.set(key, key) for key in keys]
        assert all(p.value is True for p in written)
        assert sorted(port_of(name) for name in cluster.hosts) == sorted(
            node.port for node in setup.masters
        )
        slot = key_slot(b"tlsmove")
        target = next(m for m in setup.masters if m is not setup.node_of_slot(slot))
        setup.start_migration(slot, target)
        setup.finish_migration(slot, target)  # an empty slot: nothing to move, MOVED from now
        with cluster.map() as client:
            moved = client.set("{tlsmove}:k", "v")
            read = [client.get(key) for key in keys]
        assert moved.value is True and setup.client(target).get("{tlsmove}:k") == b"v"
        assert [p.value for p in read] == [k.encode() for k in keys]
        assert cluster.get_local_client_for_key("secure1").get("secure1") == b"secure1"

        async def main():
            fresh = RedisCluster([setup.masters[1].url(username="app")])
            try:
                async with fresh.amap() as client:  # its first map read on the loop, over TLS
                    return [client.get(key) for key in keys]
            finally:
                await fresh.adisconnect_pools()

        assert [p.value for p in arun(main())] == [k.encode() for k in keys]
        assert "app-pw" not in repr(cluster) and "app-pw" not in repr(cluster.nodes)
    finally:
        cluster.disconnect_pools()
