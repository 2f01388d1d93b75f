"""Redis Cluster redirects inside one map() block: MOVED after a reshard, ASK during one,
TRYAGAIN's bounded retries, and a failover picked up mid-block."""

import time

import pytest
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from django_rb.cluster import ClusterRedirectError, HostError, RedisCluster


@pytest.fixture(scope="module")
def reshaped(redis_cluster_nodes):
    """A Redis Cluster of this module's own: its tests move slots around."""
    return redis_cluster_nodes(3, 0)


@pytest.fixture
def cluster(reshaped):
    reshaped.flush()
    cluster = RedisCluster(reshaped.startup_nodes())
    yield cluster
    cluster.disconnect_pools()


def keys_in_slot(slot_key, count):
    """``count`` keys hashed to the slot of ``slot_key`` (by hash tag)."""
    return [f"{{{slot_key}}}:{i}" for i in range(count)]


def other_master(setup, node):
    return next(m for m in setup.masters if m is not node)


def migrate_part(setup, tag, count, moved):
    """``count`` keys of ``tag``'s slot written, the slot put in migration to another master
    and the first ``moved`` keys moved there; returns keys, slot, source and target."""
    keys = keys_in_slot(tag, count)
    slot = key_slot(tag.encode())
    setup.client(setup.node_of_slot(slot)).mset({key: key for key in keys})
    target = other_master(setup, setup.node_of_slot(slot))
    source = setup.start_migration(slot, target)
    setup.move_keys(source, target, keys[:moved])
    return keys, slot, source, target


def shards_calls(setup):
    """How often the masters were asked for the topology (Redis 6.2 counts every CLUSTER
    subcommand as one: the client asks it CLUSTER SLOTS only, once SHARDS was refused)."""
    total = 0
    for node in setup.masters:
        info = setup.client(node).info("commandstats")
        total += info.get("cmdstat_cluster|shards", info.get("cmdstat_cluster", {})).get("calls", 0)
    return total


def reset_stats(setup):
    for node in setup.nodes:
        setup.client(node).config_resetstat()


def test_moved_slot_is_followed_in_the_same_block_and_the_map_read_once(cluster, reshaped):
    keys = keys_in_slot("moved", 30)
    slot = key_slot(b"moved")
    others = [f"other{i}" for i in range(100)]
    with cluster.map() as client:
        for key in keys + others:
            client.set(key, key)
        client.set("{moved}:n", 10)
    target = other_master(reshaped, reshaped.node_of_slot(slot))
    source = reshaped.start_migration(slot, target)
    reshaped.move_keys(source, target, [*keys, "{moved}:n"])
    reshaped.finish_migration(slot, target)
    reset_stats(reshaped)
    with cluster.map(auto_batch=False) as client:  # the map still names the old owner
        read = [client.get(key) for key in keys + others]
        counted = client.incr("{moved}:n")
    assert [p.value for p in read] == [k.encode() for k in keys + others]
    assert counted.value == 11  # redirected, never applied twice
    assert reshaped.client(target).get("{moved}:n") == b"11"
    assert shards_calls(reshaped) == 1  # one refresh for 31 MOVED replies
    assert cluster.slot_map.owners[slot].endswith(f":{target.port}")
    assert cluster.get_routing_client().get(keys[0]) == keys[0].encode()


def test_folded_gets_of_a_moved_slot_are_followed(cluster, reshaped):
    assert len(cluster.slot_map.masters) == 3  # read before the move
    keys, slot, _, target = migrate_part(reshaped, "folded", 20, 20)
    reshaped.finish_migration(slot, target)
    with cluster.map() as client:
        values = client.mget(keys)
    assert values.value == [k.encode() for k in keys]


def test_ask_during_a_migration_goes_to_the_target_with_asking(cluster, reshaped):
    assert len(cluster.slot_map.masters) == 3  # read before the migration starts
    keys, slot, source, target = migrate_part(reshaped, "half", 10, 5)  # ASK for 5 keys
    owner = source
    reset_stats(reshaped)
    try:
        with cluster.map(auto_batch=False) as client:
            read = [client.get(key) for key in keys]
            created = client.set("{half}:new", "n")  # absent on the source: ASK as well
        assert [p.value for p in read] == [k.encode() for k in keys]
        assert created.value is True
        asking = reshaped.client(target).info("commandstats").get("cmdstat_asking", {})
        assert asking.get("calls", 0) == 6
        assert shards_calls(reshaped) == 0  # ASK does not touch the slot map
        assert cluster.slot_map.owners[slot].endswith(f":{owner.port}")
    finally:
        reshaped.move_keys(source, target, keys[5:])
        reshaped.finish_migration(slot, target)


def test_tryagain_is_retried_a_bounded_number_of_times_then_a_clear_error(cluster, reshaped):
    keys, slot, source, target = migrate_part(reshaped, "split", 4, 2)  # MGET: TRYAGAIN
    try:
        # Redis 7 answers TRYAGAIN; 6.2 keeps answering ASK, then TRYAGAIN on the target
        with pytest.raises(ClusterRedirectError, match="TRYAGAIN|ASK"):
            with cluster.map() as client:
                split = client.mget(keys)  # folded into one MGET of this slot
                fine = client.get("elsewhere")
        assert isinstance(split.reason, ClusterRedirectError)
        assert fine.is_resolved and fine.value is None  # other slots are unaffected
    finally:
        reshaped.move_keys(source, target, keys[2:])
        reshaped.finish_migration(slot, target)
    assert cluster.get_routing_client().mget(keys) == [k.encode() for k in keys]


def test_failover_is_picked_up_reads_retried_other_writes_rejected(redis_cluster_nodes):
    setup = redis_cluster_nodes(3, 1)
    master, replica = setup.masters[0], setup.replicas[0]
    cluster = RedisCluster(setup.startup_nodes(), pool_options={"socket_timeout": 0.5})
    try:
        keys = [k for k in (f"f{i}" for i in range(400)) if cluster.get_router()
                .get_host_for_key(k).endswith(f":{master.port}")][:20]  # fmt: skip
        spread = [f"s{i}" for i in range(50)]
        with cluster.map() as client:
            client.mset({key: key for key in keys + spread})
            client.set("{f1}:count", 1)
        setup.client(master).wait(1, 2000)
        master.pause()  # its connections stay open: commands are sent, never answered
        setup.client(replica).execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        setup.wait_ok(without=(master,))
        with pytest.raises(HostError):
            with cluster.map(auto_batch=False) as client:
                read = [client.get(key) for key in keys + spread]
                counted = client.incr("{f1}:count")
        assert [p.value for p in read] == [k.encode() for k in keys + spread]
        assert isinstance(counted.reason, HostError)  # may have run: not sent twice
        assert str(master.port) in str(counted.reason)
        assert cluster.slot_map.owners[key_slot(keys[0].encode())].endswith(f":{replica.port}")
        master.stop()
        with cluster.map() as client:
            again = client.mget(keys)
        assert again.value == [k.encode() for k in keys]
    finally:
        master.resume()
        cluster.disconnect_pools()


def test_local_clients_and_rbcache_follow_a_moved_slot(cluster, reshaped, settings):
    settings.RB_CLUSTERS = {"events": {"is_redis_cluster": True, "hosts": reshaped.startup_nodes()}}
    from django_rb.cache import RBCache

    cache = RBCache("events", {})
    cache.set("moving", "before")
    slot = key_slot(cache.make_key("moving").encode())
    stale = cache.cluster.get_local_client_for_key(cache.make_key("moving"))
    source = reshaped.node_of_slot(slot)
    other = other_master(reshaped, source)
    reshaped.start_migration(slot, other)
    reshaped.move_keys(source, other, [cache.make_key("moving")])
    reshaped.finish_migration(slot, other)
    assert stale.get(cache.make_key("moving")) is not None  # MOVED followed on the new owner
    assert cache.get("moving") == "before"
    cache.set("moving", "after")
    assert reshaped.client(other).exists(cache.make_key("moving")) == 1


def tag_owned_by(setup, node, prefix):
    """A hash tag (``prefix0``, ``prefix1``, ...) whose slot ``node`` owns."""
    i = 0
    while setup.node_of_slot(key_slot(f"{prefix}{i}".encode())) is not node:
        i += 1
    return f"{prefix}{i}"


def move_slot(setup, tag, keys, target):
    """The slot of ``tag`` (with ``keys``) given to ``target`` behind the client's back."""
    slot = key_slot(tag.encode())
    source = setup.start_migration(slot, target)
    setup.move_keys(source, target, keys)
    setup.finish_migration(slot, target)


def test_one_deadline_bounds_a_block_whose_redirects_go_to_a_stalled_node(reshaped):
    """MOVED to a node that stalls, and that node's own reads retried: each is a further
    round, yet map(timeout=T) returns after about T, not one T per round."""
    reshaped.flush()
    timeout = 1.0
    cluster = RedisCluster(reshaped.startup_nodes(), pool_options={"socket_timeout": timeout})
    stalled, source, healthy = reshaped.masters
    tag = tag_owned_by(reshaped, source, "stallmove")
    moving = keys_in_slot(tag, 10)
    own = keys_in_slot(tag_owned_by(reshaped, stalled, "stallown"), 10)
    fine = keys_in_slot(tag_owned_by(reshaped, healthy, "stallfine"), 10)
    try:
        with cluster.map() as client:
            client.mset({key: key for key in moving + own + fine})
        move_slot(reshaped, tag, moving, stalled)  # the client's map still names the source
        stalled.pause()
        started = time.monotonic()
        with pytest.raises(HostError):
            with cluster.map(timeout=timeout, auto_batch=False) as client:
                read = {key: client.get(key) for key in moving + own + fine}
        elapsed = time.monotonic() - started
    finally:
        stalled.resume()
        cluster.disconnect_pools()
    # three rounds reach the stalled node (MOVED there, then each lost command retried once):
    # a clock per round would take 3 T or more
    assert elapsed < timeout * 2.2, f"the block took {elapsed:.2f}s for a {timeout}s timeout"
    assert [read[key].value for key in fine] == [key.encode() for key in fine]
    for key in moving + own:  # redirected or retried to the stalled node, past the deadline
        assert isinstance(read[key].reason, HostError), key
    assert cluster.slot_map.owners[key_slot(tag.encode())].endswith(f":{stalled.port}")


def test_local_clients_follow_ask_during_a_migration(cluster, reshaped):
    assert len(cluster.slot_map.masters) == 3  # read before the migration starts
    keys, slot, source, target = migrate_part(reshaped, "localask", 6, 3)  # ASK for 3 keys
    source_name = cluster.slot_map.owners[slot]
    reset_stats(reshaped)
    try:
        by_key = cluster.get_local_client_for_key(keys[0])
        by_name = cluster.get_local_client(source_name)
        assert [by_key.get(key) for key in keys] == [k.encode() for k in keys]
        assert by_name.get(keys[1]) == keys[1].encode()
        assert by_key.set("{localask}:new", "n") is True  # absent on the source: ASK
        assert by_name.hset("{localask}:h", "f", "v") == 1
        asking = reshaped.client(target).info("commandstats").get("cmdstat_asking", {})
        assert asking.get("calls", 0) == 6  # keys[0:3] by key, keys[1], the SET, the HSET
        check = reshaped.client(target).pipeline(transaction=False)
        check.execute_command("ASKING").get("{localask}:new")
        assert check.execute()[1] == b"n"  # written on the target, as ASK said
        assert shards_calls(reshaped) == 0  # ASK does not touch the slot map
        assert cluster.slot_map.owners[slot] == source_name
        with pytest.raises(ResponseError, match="WRONGTYPE"):  # the node's own error stays
            by_key.lpush("{localask}:h", "x")
    finally:
        reshaped.move_keys(source, target, keys[3:])
        reshaped.finish_migration(slot, target)


def wait_until_unowned(reshaped, slot, within=5.0):
    """Until no master's CLUSTER SLOTS names an owner for ``slot``."""
    deadline = time.monotonic() + within
    while True:
        owned = [
            node
            for node in reshaped.masters
            for start, end, *_ in reshaped.client(node).execute_command("CLUSTER", "SLOTS")
            if start <= slot <= end
        ]
        if not owned:
            return
        assert time.monotonic() < deadline, f"slot {slot} still owned by {owned}"
        time.sleep(0.05)


def test_a_slot_served_by_no_master_is_rejected_clearly_others_answer(cluster, reshaped):
    assert len(cluster.slot_map.masters) == 3  # read while the slot is served
    slot = key_slot(b"down")
    owner = reshaped.node_of_slot(slot)
    with cluster.map() as client:
        client.set("{down}:1", "1")
        client.set("served", "s")
    try:
        # the owner first: a node that still claimed the slot would teach it back to the others
        # by gossip, and the client would then be sent there and answered CLUSTERDOWN
        for node in sorted(reshaped.masters, key=lambda node: node is not owner):
            reshaped.client(node).config_set("cluster-require-full-coverage", "no")
            reshaped.client(node).execute_command("CLUSTER", "DELSLOTS", slot)
        wait_until_unowned(reshaped, slot)
        with pytest.raises(ClusterRedirectError, match="served by no master"):
            with cluster.map() as client:
                lost = client.get("{down}:1")
                fine = client.get("served")
        assert isinstance(lost.reason, ClusterRedirectError)
        assert f"slot {slot}" in str(lost.reason)
        assert fine.value == b"s"
    finally:
        reshaped.client(owner).execute_command("CLUSTER", "ADDSLOTS", slot)
        for node in reshaped.masters:
            reshaped.client(node).config_set("cluster-require-full-coverage", "yes")
        reshaped.wait_ok()
    assert cluster.get_routing_client().get("{down}:1") == b"1"


def test_local_clients_and_rbcache_pick_up_a_failover(redis_cluster_nodes, settings):
    setup = redis_cluster_nodes(3, 1)
    master, replica = setup.masters[0], setup.replicas[0]
    options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    settings.RB_CLUSTERS = {
        "events": {"is_redis_cluster": True, "hosts": [setup.masters[1].url()],
                   "pool_options": options}
    }  # fmt: skip
    from django_rb.cache import RBCache

    cache = RBCache("events", {})
    cluster = cache.cluster
    name = next(f"fo{i}" for i in range(1000) if cluster.get_router().get_host_for_key(
        cache.make_key(f"fo{i}")).endswith(f":{master.port}"))  # fmt: skip
    old_master = cluster.get_router().get_host_for_key(cache.make_key(name))
    counter = f"{{{cache.make_key(name)}}}:n"
    try:
        cache.set(name, "before")
        cluster.get_local_client(old_master).set(counter, 1)
        setup.client(master).wait(1, 2000)
        master.stop()
        setup.client(replica).execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        setup.wait_ok(without=(master,))
        assert cache.get(name) == "before"  # a read: re-sent to the promoted replica
        assert old_master not in cluster.hosts
        stale = cluster.get_local_client(old_master)
        with pytest.raises(RedisConnectionError):
            stale.incr(counter)  # may have run: never sent twice
        assert cluster.get_local_client_for_key(counter).incr(counter) == 2
        cache.set(name, "after")
        assert setup.client(replica).exists(cache.make_key(name)) == 1
    finally:
        cluster.disconnect_pools()


def test_a_block_without_timeout_asks_a_stalled_node_for_the_map_last(reshaped):
    """Reads lost with a stalled master are retried once; the slot-map refresh before the
    retry asks the other masters first, so the block costs two socket timeouts, not three."""
    reshaped.flush()
    stall = 1.0
    options = {"socket_timeout": stall, "socket_connect_timeout": stall}
    cluster = RedisCluster(reshaped.startup_nodes(), pool_options=options)
    stalled = reshaped.node_of_slot(0)  # the first master a refresh would ask
    keys = keys_in_slot(tag_owned_by(reshaped, stalled, "askedlast"), 5)
    try:
        with cluster.map() as client:
            client.mset({key: key for key in keys})
        stalled.pause()
        started = time.monotonic()
        with pytest.raises(HostError):
            with cluster.map(auto_batch=False) as client:
                read = [client.get(key) for key in keys]
        elapsed = time.monotonic() - started
    finally:
        stalled.resume()
        cluster.disconnect_pools()
    assert all(isinstance(p.reason, HostError) for p in read)
    assert stall * 1.8 <= elapsed < stall * 2.6, f"the block took {elapsed:.2f}s"
