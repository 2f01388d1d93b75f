"""fanout() / all(): every targeted host answers, results keyed by host id."""

import pytest

from django_rb.cluster import (
    UnroutableCommand,
)


def test_all_returns_a_dict_per_host(rb_cluster):
    with rb_cluster.map() as client:
        for i in range(100):
            client.set(f"f{i}", i)
    with rb_cluster.all() as client:
        sizes = client.dbsize()
        pongs = client.ping()
    assert set(sizes.value) == set(rb_cluster.hosts)
    assert sum(sizes.value.values()) == 100
    assert pongs.value == dict.fromkeys(rb_cluster.hosts, True)


def test_fanout_to_chosen_hosts(rb_cluster):
    with rb_cluster.fanout(hosts=[0, 2]) as client:
        written = client.set("everywhere", "x")
    assert written.value == {0: True, 2: True}
    present = {h: rb_cluster.get_local_client(h).get("everywhere") for h in rb_cluster.hosts}
    assert present == {0: b"x", 1: None, 2: b"x", 3: None}


def test_target_and_target_key(rb_cluster):
    with rb_cluster.map() as client:
        client.set("tk", "v")
    with rb_cluster.fanout() as client:
        one = client.target([1]).dbsize()
        by_key = client.target_key("tk").get("tk")
        info = client.target([0, 3]).info("server")
    assert set(one.value) == {1}
    assert by_key.value == b"v"  # a single value, not a dict
    assert set(info.value) == {0, 3} and "redis_version" in info.value[0]
    with pytest.raises(TypeError):
        client.target([0]).target([1])


def test_untargeted_fanout_raises(rb_cluster):
    with rb_cluster.fanout() as client, pytest.raises(UnroutableCommand, match="no target"):
        client.ping()


def test_fanout_with_per_host_arguments(rb_cluster):
    with rb_cluster.map() as client:
        for i in range(60):
            client.set(f"scan:{i}", i)
    cursors = dict.fromkeys(rb_cluster.hosts, 0)
    found = set()
    while cursors:
        with rb_cluster.fanout() as client:
            pages = {h: client.target([h]).scan(cursor=c, match="scan:*", count=10)
                     for h, c in cursors.items()}  # fmt: skip
        cursors = {}
        for h, page in pages.items():
            cursor, keys = page.value[h]
            found.update(keys)
            if cursor:
                cursors[h] = cursor
    assert found == {f"scan:{i}".encode() for i in range(60)}


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
