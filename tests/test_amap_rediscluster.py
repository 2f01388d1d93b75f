"""amap() / afanout() / the async routing client on a real Redis Cluster: slot routing, per-slot
folding, masters-only fanout, MOVED and ASK followed inside one async block."""

import asyncio
import time

import pytest
from redis.crc import key_slot

from django_rb.cluster import RedisCluster
from tests.test_rediscluster_redirects import keys_in_slot as tagged
from tests.test_rediscluster_redirects import move_slot, other_master, tag_owned_by

#: How long a stalled node makes a refresh wait (its socket timeout): well above the pauses a
#: loaded machine gives a process, well below the cluster's node timeout (3 s).
STALL = 1.5
STALL_OPTIONS = {"socket_timeout": STALL, "socket_connect_timeout": STALL}


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


def test_amap_routes_by_slot_and_aall_reaches_the_masters(cluster, reshaped, arun):
    keys = [f"user:{i}" for i in range(200)] + tagged("tag", 10)

    async def main():
        async with cluster.amap() as client:
            for key in keys:
                client.set(key, key)
        async with cluster.amap() as client:
            read = [client.get(key) for key in keys]
        async with cluster.aall() as client:
            sizes = client.dbsize()
        routed = cluster.get_async_routing_client()
        return read, sizes, await routed.get("{tag}:3"), await routed.incr("{tag}:n")

    read, sizes, one, counted = arun(main())
    assert [p.value for p in read] == [k.encode() for k in keys]
    assert sorted(sizes.value) == sorted(cluster.slot_map.masters)
    assert sum(sizes.value.values()) == len(keys) and min(sizes.value.values()) > 0
    assert one == b"{tag}:3" and counted == 1
    for key in keys[:20]:  # each key is on its slot's master, as the sync client reads it
        node = reshaped.node_of_slot(key_slot(key.encode()))
        assert reshaped.client(node).get(key) == key.encode()


def test_max_concurrency_window_on_a_redis_cluster(cluster, arun):
    keys = [f"w:{i}" for i in range(30)]  # over every master, the block coming back to each

    async def main():
        async with cluster.amap(max_concurrency=1) as client:
            sets = [client.set(key, "a") for key in keys]
            appends = [client.append(key, "b") for key in keys]
        async with cluster.amap(max_concurrency=2) as client:
            return [p.value for p in sets + appends], [client.get(key) for key in keys]

    written, read = arun(main())
    assert written == [True] * 30 + [2] * 30
    assert [p.value for p in read] == [b"ab"] * 30


def test_moved_slot_is_followed_inside_the_async_block(cluster, reshaped, arun):
    keys = tagged("moved", 30)
    slot = key_slot(b"moved")
    others = [f"other{i}" for i in range(50)]
    with cluster.map() as client:
        for key in keys + others:
            client.set(key, key)
        client.set("{moved}:n", 10)
    target = other_master(reshaped, reshaped.node_of_slot(slot))
    source = reshaped.start_migration(slot, target)
    reshaped.move_keys(source, target, [*keys, "{moved}:n"])
    reshaped.finish_migration(slot, target)

    async def main():
        async with cluster.amap(auto_batch=False) as client:  # the map names the old owner
            read = [client.get(key) for key in keys + others]
            counted = client.incr("{moved}:n")
        return read, counted

    read, counted = arun(main())
    assert [p.value for p in read] == [k.encode() for k in keys + others]
    assert counted.value == 11  # redirected, never applied twice
    assert reshaped.client(target).get("{moved}:n") == b"11"
    assert cluster.slot_map.owners[slot].endswith(f":{target.port}")


def test_ask_during_a_migration_is_followed(cluster, reshaped, arun):
    keys = tagged("half", 10)
    slot = key_slot(b"half")
    reshaped.client(reshaped.node_of_slot(slot)).mset({key: key for key in keys})
    assert len(cluster.slot_map.masters) == 3  # read before the migration starts
    target = other_master(reshaped, reshaped.node_of_slot(slot))
    source = reshaped.start_migration(slot, target)
    reshaped.move_keys(source, target, keys[:5])

    async def main():
        async with cluster.amap(auto_batch=False) as client:
            return [client.get(key) for key in keys]

    try:
        read = arun(main())
        assert [p.value for p in read] == [k.encode() for k in keys]
        asking = reshaped.client(target).info("commandstats").get("cmdstat_asking", {})
        assert asking.get("calls", 0) >= 5
    finally:
        reshaped.move_keys(source, target, keys[5:])
        reshaped.finish_migration(slot, target)


async def ticking(block):
    """Await ``block()`` while another task ticks every 10 ms: its result, how long it took
    and how often the other task ran meanwhile (a blocked loop runs it about never; a machine
    that stalls every process for a while only takes some ticks away)."""
    ticks = 0
    done = asyncio.Event()

    async def tick():
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    started = time.monotonic()
    try:
        result = await block()
    finally:
        elapsed = time.monotonic() - started
        done.set()
        await ticker
    return result, elapsed, ticks


def ticking_while_paused(node, cluster, block, arun):
    """Run ``block`` (counting another task's ticks) while ``node`` is stopped."""
    node.pause()
    try:
        return arun(ticking(block))
    finally:
        node.resume()
        cluster.disconnect_pools()


def test_the_slot_map_refresh_after_moved_is_awaited_not_blocking(reshaped, arun):
    """The first node a refresh asks stalls: the loop keeps running other tasks meanwhile."""
    reshaped.flush()
    cluster = RedisCluster(reshaped.startup_nodes(), pool_options=STALL_OPTIONS)
    asked_first = reshaped.node_of_slot(0)  # a refresh asks the masters in slot order
    source, target = [m for m in reshaped.masters if m is not asked_first]
    tag = tag_owned_by(reshaped, source, "arefresh")
    keys = tagged(tag, 10)
    with cluster.map() as client:
        client.mset({key: key for key in keys})
    move_slot(reshaped, tag, keys, target)  # the client's map still names the source

    async def block():
        async with cluster.amap(auto_batch=False) as client:
            return [client.get(key) for key in keys]

    read, elapsed, ticks = ticking_while_paused(asked_first, cluster, block, arun)
    assert [p.value for p in read] == [k.encode() for k in keys]
    assert elapsed >= STALL * 0.8  # the refresh did wait for the stalled node, then asked another
    assert ticks >= 20, f"another task ran {ticks} times in {elapsed:.2f}s: the loop was blocked"
    assert cluster.slot_map.owners[key_slot(tag.encode())].endswith(f":{target.port}")


def test_the_first_slot_map_is_read_on_the_loop(reshaped, arun):
    """A fresh cluster's first amap() reads the map awaited: a stalled first seed costs the
    block its socket timeout, never the other tasks of the loop."""
    stalled, good = reshaped.masters[0], reshaped.masters[1]
    cluster = RedisCluster([stalled.url(), good.url()], pool_options=STALL_OPTIONS)
    keys = [f"first{i}" for i in range(30)]

    async def block():
        async with cluster.amap() as client:
            return [client.set(key, key) for key in keys if cluster.get_router()
                    .get_host_for_key(key) != f"127.0.0.1:{stalled.port}"]  # fmt: skip

    written, elapsed, ticks = ticking_while_paused(stalled, cluster, block, arun)
    assert written and all(p.value is True for p in written)
    assert elapsed >= STALL * 0.8  # the stalled seed was asked first
    assert ticks >= 20, f"another task ran {ticks} times in {elapsed:.2f}s: the loop was blocked"
    assert len(cluster.slot_map.masters) == 3
