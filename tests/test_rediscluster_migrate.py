"""manage.py rb_migrate: rb-style nodes copied into a Redis Cluster, TTLs kept, nothing deleted."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_rb.testing import healthy


@pytest.fixture
def clusters(settings, rb_nodes, shared_redis_cluster):
    shared_redis_cluster.flush()
    with healthy(rb_nodes):
        settings.RB_CLUSTERS = {
            "default": {"hosts": [node.url(0) for node in rb_nodes]},
            "events": {"is_redis_cluster": True, "hosts": shared_redis_cluster.startup_nodes()},
        }
        from django_rb import get_cluster

        yield get_cluster("default"), get_cluster("events")


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("rb_migrate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fill(source, count):
    with source.map() as client:
        for i in range(count):
            client.set(f"plain{i}", f"v{i}")
        client.set("ttl", "t", ex=1000)
        client.hset("hash", mapping={"a": 1, "b": 2})
        client.rpush("list", "x", "y", "z")
        client.zadd("zset", {"m": 1.5})


def test_copies_every_key_with_its_ttl_and_deletes_nothing(clusters):
    source, target = clusters
    fill(source, 1200)
    out, err = run("--from", "default", "--to", "events", "--batch", "100")
    assert "1204 keys scanned, 1204 copied" in out
    assert "nothing was deleted" in out
    assert "1204/1204 keys" in err  # the progress bar reached the end
    routed = target.get_routing_client()
    assert routed.get("plain7") == b"v7"
    assert 990 < routed.ttl("ttl") <= 1000
    assert routed.ttl("plain7") == -1
    assert routed.hgetall("hash") == {b"a": b"1", b"b": b"2"}
    assert routed.lrange("list", 0, -1) == [b"x", b"y", b"z"]
    assert routed.zscore("zset", "m") == 1.5
    with source.all() as client:
        sizes = client.dbsize()
    assert sum(sizes.value.values()) == 1204  # the source keeps everything


def test_dry_run_counts_and_writes_nothing(clusters):
    source, target = clusters
    fill(source, 50)
    out, _ = run("--from", "default", "--to", "events", "--dry-run")
    assert "54 keys scanned, 54 would copy" in out
    with target.all() as client:
        sizes = client.dbsize()
    assert sum(sizes.value.values()) == 0


def test_existing_keys_are_kept_unless_replace(clusters):
    source, target = clusters
    fill(source, 10)
    target.get_routing_client().set("plain1", "newer")
    out, _ = run("--from", "default", "--to", "events")
    assert "13 copied, 1 already on the target" in out
    assert target.get_routing_client().get("plain1") == b"newer"
    out, _ = run("--from", "default", "--to", "events", "--replace", "--match", "plain1")
    assert "1 copied" in out
    assert target.get_routing_client().get("plain1") == b"v1"


def test_bad_arguments_and_a_dead_node_are_reported(clusters, rb_nodes):
    source, _ = clusters
    with pytest.raises(CommandError, match="same cluster"):
        run("--from", "events", "--to", "events")
    with pytest.raises(CommandError, match="No cluster named"):
        run("--from", "nope", "--to", "events")
    fill(source, 20)
    rb_nodes[1].stop()
    with pytest.raises(CommandError, match="failed; nothing was deleted"):
        run("--from", "default", "--to", "events")


#: commands that remove or change data on a source node; a copy sends none of them there
WRITES = {"del", "unlink", "flushdb", "flushall", "expire", "pexpire", "expireat", "getdel",
          "restore", "set", "rename", "move", "copy", "swapdb", "persist"}  # fmt: skip


def sent_commands(client):
    return {name.removeprefix("cmdstat_").split("|")[0] for name in client.info("commandstats")}


def test_a_replace_copy_sends_no_write_to_the_source_and_no_delete_to_the_target(
    clusters, rb_nodes, shared_redis_cluster
):
    import redis

    source, target = clusters
    fill(source, 30)
    target.get_routing_client().set("unrelated", "kept")
    plain = [redis.Redis(port=node.port) for node in rb_nodes]
    target_nodes = [shared_redis_cluster.client(node) for node in shared_redis_cluster.nodes]
    for client in plain + target_nodes:
        client.config_resetstat()
    out, _ = run("--from", "default", "--to", "events", "--replace")
    assert "34 copied" in out
    for client in plain:
        assert not sent_commands(client) & WRITES, sent_commands(client)
    for client in target_nodes:
        assert not sent_commands(client) & (WRITES - {"restore"})
    assert target.get_routing_client().get("unrelated") == b"kept"
    assert sum(client.dbsize() for client in plain) == 34
