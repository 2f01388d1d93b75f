"""fanout() / all(): every targeted host answers, results keyed by host id."""

import pytest

from django_rb.cluster import UnroutableCommand


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
