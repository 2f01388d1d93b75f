"""amap() / afanout() / aall() and the async routing and local clients: values, routing,
batching, errors, many tasks at once. Every test runs on asyncio's loop and on uvloop."""

import asyncio

import pytest
import redis

from django_rb.cluster import Promise, UnroutableCommand, UnsafeCommand
from django_rb.testing import keys_per_host


def test_amap_promises_settle_when_the_block_ends(rb_cluster, arun):
    async def main():
        async with rb_cluster.amap() as client:
            written = [client.set(f"k{i}", f"v{i}") for i in range(50)]
            counter = client.incr("counter", 5)
            assert all(p.is_pending for p in written + [counter])
        async with rb_cluster.amap() as client:
            read = {f"k{i}": client.get(f"k{i}") for i in range(50)}
            missing = client.get("nope")
            hashed = client.hset("h", mapping={"a": 1, "b": 2})
        return written, counter, read, missing, hashed

    written, counter, read, missing, hashed = arun(main())
    assert all(p.value is True for p in written) and counter.value == 5
    assert {k: p.value for k, p in read.items()} == {f"k{i}": f"v{i}".encode() for i in range(50)}
    assert missing.value is None and hashed.value == 2


def test_amap_writes_where_map_reads(rb_cluster, arun):
    keys = [f"user:{i}" for i in range(200)]

    async def write():
        async with rb_cluster.amap() as client:
            for key in keys:
                client.set(key, key.upper())

    arun(write())
    router = rb_cluster.get_router()
    for key in keys:  # each key is on the host the router names, as the sync engine puts it
        assert (
            rb_cluster.get_local_client(router.get_host_for_key(key)).get(key)
            == key.upper().encode()
        )
    with rb_cluster.map() as client:
        sync_read = [client.get(k) for k in keys]
    assert [p.value for p in sync_read] == [k.upper().encode() for k in keys]


def test_amap_folds_gets_into_one_mget_per_node(rb_cluster, arun):
    keys = [f"fold:{i}" for i in range(400)]
    for host_id in rb_cluster.hosts:
        rb_cluster.get_local_client(host_id).config_resetstat()

    async def main():
        async with rb_cluster.amap() as client:
            return [client.get(k) for k in keys]

    promises = arun(main())
    assert all(p.value is None for p in promises)
    for host_id in rb_cluster.hosts:
        stats = rb_cluster.get_local_client(host_id).info("commandstats")
        assert stats["cmdstat_mget"]["calls"] == 1 and "cmdstat_get" not in stats


def test_command_error_rejects_its_promise_and_is_raised_after_all_settle(rb_cluster, arun):
    rb_cluster.get_routing_client().set("text", "abc")

    async def main():
        async with rb_cluster.amap() as client:
            promises = [client.set(f"e{i}", i) for i in range(20)]
            bad = client.incr("text")
            after = client.get("e3")
            holder.extend([*promises, bad, after])

    holder: list[Promise] = []
    with pytest.raises(redis.ResponseError, match="not an integer"):
        arun(main())
    *promises, bad, after = holder
    assert bad.is_rejected and isinstance(bad.reason, redis.ResponseError)
    assert all(p.value is True for p in promises) and after.value == b"3"


def test_bad_argument_raises_at_the_call_and_nothing_is_sent(rb_cluster, arun):
    async def main():
        async with rb_cluster.amap() as client:
            client.set("sent", "no")
            client.set("bad", {"a": "dict"})

    with pytest.raises(redis.DataError):
        arun(main())
    assert rb_cluster.get_routing_client().get("sent") is None


@pytest.mark.parametrize(
    "command",
    [
        ("BLPOP", "queue", 1),
        ("BZPOPMIN", "zqueue", 1),
        ("XREAD", "COUNT", 1, "BLOCK", 100, "STREAMS", "stream", "$"),
        ("SELECT", 3),
        ("WATCH", "watched"),
        ("CLIENT", "REPLY", "OFF"),
    ],
    ids=lambda command: " ".join(str(word) for word in command[:2]),
)
def test_commands_that_would_hold_or_change_a_shared_connection_are_refused(
    rb_cluster, arun, command
):
    """Rounds of concurrent tasks share connections: a blocking command would stall every
    other task's round behind it, a state-changing one would change their connection."""
    rb_cluster.get_routing_client().set("shared", "v")

    keyless = command[0] in ("SELECT", "CLIENT")

    async def main():
        with pytest.raises(UnsafeCommand, match=command[0]):
            async with rb_cluster.aall() if keyless else rb_cluster.amap() as client:
                client.execute_command(*command)
        async with rb_cluster.amap() as client:  # nothing was sent, nothing changed
            after = client.get("shared")
            streamed = client.xread({"block": "0"}, count=1)  # a stream named "block" is no option
        return after.value, streamed.value

    assert arun(main()) == (b"v", [])


def test_a_callback_may_queue_more_commands_in_the_same_block(rb_cluster, arun):
    rb_cluster.get_routing_client().set("pointer", "target")
    rb_cluster.get_routing_client().set("target", "found")

    async def main():
        async with rb_cluster.amap() as client:
            first = client.get("pointer")
            second = first.then(lambda name: client.get(name.decode()))
        return second

    assert arun(main()).value == b"found"


def test_max_concurrency_splits_rounds_and_loses_nothing(rb_cluster, arun):
    owners = keys_per_host(rb_cluster, 10)

    async def main():
        async with rb_cluster.amap(max_concurrency=1) as client:
            for keys in owners.values():
                for key in keys:
                    client.set(key, key)
        async with rb_cluster.amap(max_concurrency=2) as client:
            return {key: client.get(key) for keys in owners.values() for key in keys}

    read = arun(main())
    assert {k: p.value for k, p in read.items()} == {k: k.encode() for k in read}
    assert len(read) == 40


def test_max_concurrency_window_keeps_each_hosts_commands_in_order(rb_cluster, arun):
    # the block comes back to every host after the cap was reached: each host then has
    # several buffers, which must run one after the other, like map()'s early sends
    owners = keys_per_host(rb_cluster, 1)
    keys = [keys[0] for keys in owners.values()]

    async def main(limit):
        async with rb_cluster.amap(max_concurrency=limit) as client:
            sets = [client.set(key, "a") for key in keys]
            appends = [client.append(key, step) for step in "bcd" for key in keys]
            values = [client.get(key) for key in keys]
        return [p.value for p in sets + appends + values]

    def sync(limit):
        with rb_cluster.map(max_concurrency=limit) as client:
            promises = [client.set(key, "a") for key in keys]
            promises += [client.append(key, step) for step in "bcd" for key in keys]
            promises += [client.get(key) for key in keys]
        return [p.value for p in promises]

    expected = [True] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [b"abcd"] * 4
    for limit in (0, 1, 2, 3):  # 0: one host at a time, as map() does it
        assert arun(main(limit)) == expected == sync(limit)


def test_hundred_tasks_with_their_own_blocks_see_only_their_own_replies(rb_cluster, arun):
    async def task(n):
        async with rb_cluster.amap() as client:
            for i in range(20):
                client.set(f"t{n}:{i}", f"{n}-{i}")
        await asyncio.sleep(0)
        async with rb_cluster.amap() as client:
            promises = [client.get(f"t{n}:{i}") for i in range(20)]
            await asyncio.sleep(0.001 * (n % 3))  # interleave the blocks' lifetimes
        return [p.value for p in promises]

    async def main():
        return await asyncio.gather(*(task(n) for n in range(100)))

    results = arun(main())
    assert results == [[f"{n}-{i}".encode() for i in range(20)] for n in range(100)]


def test_an_error_inside_the_block_sends_nothing(rb_cluster, arun):
    async def main():
        async with rb_cluster.amap() as client:
            client.set("never", "1")
            raise KeyError("boom")

    with pytest.raises(KeyError):
        arun(main())
    assert rb_cluster.get_routing_client().get("never") is None


def test_amap_needs_async_with(rb_cluster):
    with pytest.raises(TypeError, match="async with"):
        with rb_cluster.amap():
            pass


def test_afanout_and_aall(rb_cluster, arun):
    async def main():
        async with rb_cluster.aall() as client:
            client.set("everywhere", "1")
            sizes = client.dbsize()
        async with rb_cluster.afanout(hosts=[0, 2]) as client:
            pings = client.ping()
            on_key = client.target_key("k1").get("everywhere")
        return sizes, pings, on_key

    sizes, pings, on_key = arun(main())
    assert sizes.value == {0: 1, 1: 1, 2: 1, 3: 1}
    assert pings.value == {0: True, 2: True} and on_key.value == b"1"


def test_afanout_without_targets_is_refused(rb_cluster, arun):
    async def main():
        async with rb_cluster.afanout() as client:
            client.ping()

    with pytest.raises(UnroutableCommand):
        arun(main())


def test_aexecute_commands(rb_cluster, arun):
    async def main():
        return await rb_cluster.aexecute_commands(
            {"a": [("SET", "a", "1"), ("GET", "a")], "b": [("INCRBY", "b", 3)]}
        )

    results = arun(main())
    assert [p.value for p in results["a"]] == [True, b"1"] and results["b"][0].value == 3


def test_async_routing_client(rb_cluster, arun):
    client = rb_cluster.get_async_routing_client()

    async def main():
        assert await client.set("r", "1") is True
        assert await client.incr("r", 2) == 3
        assert await client.get("r") == b"3"
        with pytest.raises(redis.ResponseError):
            await client.hget("r", "field")  # WRONGTYPE
        with pytest.raises(UnroutableCommand):
            await client.dbsize()  # no key: no host
        async with client.amap() as batch:
            promise = batch.get("r")
        return promise.value

    assert arun(main()) == b"3"
    assert rb_cluster.get_local_client_for_key("r").get("r") == b"3"


def test_async_local_client(rb_cluster, arun):
    owners = keys_per_host(rb_cluster, 3)

    async def main():
        local = rb_cluster.get_async_local_client(2)
        for key in owners[2]:
            await local.set(key, "x")
        by_key = rb_cluster.get_async_local_client_for_key(owners[1][0])
        return await local.dbsize(), await by_key.dbsize(), by_key.host_id

    assert arun(main()) == (3, 0, 1)
    with pytest.raises(LookupError):
        rb_cluster.get_async_local_client(99)
