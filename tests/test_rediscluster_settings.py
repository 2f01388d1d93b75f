"""RB_CLUSTERS entries with is_redis_cluster: get_cluster(), system checks, RBCache on top."""

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from django_rb import conf, get_cluster
from django_rb.checks import check_clusters
from django_rb.cluster import RedisCluster


def ids(messages):
    return [m.id for m in messages]


def test_get_cluster_returns_a_redis_cluster(settings, shared_redis_cluster):
    settings.RB_CLUSTERS = {
        "events": {"is_redis_cluster": True, "hosts": shared_redis_cluster.startup_nodes()},
        "replicas": {
            "is_redis_cluster": True,
            "read_from_replicas": True,
            "hosts": shared_redis_cluster.startup_nodes(),
            "pool_options": {"socket_timeout": 2},
        },
    }
    shared_redis_cluster.flush()
    cluster = get_cluster("events")
    assert isinstance(cluster, RedisCluster)
    cluster.get_routing_client().set("k", "v")
    assert get_cluster("events").get_routing_client().get("k") == b"v"
    assert get_cluster("replicas").read_from_replicas is True
    assert check_clusters() == []


@pytest.mark.parametrize(
    ("entry", "code"),
    [
        ({"is_redis_cluster": True, "hosts": []}, "django_rb.E004"),
        ({"is_redis_cluster": "yes", "hosts": ["redis://127.0.0.1:7000"]}, "django_rb.E301"),
        (
            {"is_redis_cluster": True, "hosts": ["redis://127.0.0.1:7000"], "router": "partition"},
            "django_rb.E302",
        ),
        ({"is_redis_cluster": True, "hosts": ["redis://127.0.0.1:7000/2"]}, "django_rb.E303"),
        ({"is_redis_cluster": True, "hosts": ["unix:///tmp/r.sock"]}, "django_rb.E304"),
        ({"read_from_replicas": True, "hosts": ["redis://127.0.0.1:7000/0"]}, "django_rb.E305"),
        (
            {"is_redis_cluster": True, "hosts": ["redis://127.0.0.1:7000"],
             "pool_options": {"max_conections": 3}},
            "django_rb.E012",
        ),
    ],
)  # fmt: skip
def test_checks_report_what_cannot_work(settings, entry, code):
    settings.RB_CLUSTERS = {"events": entry}
    messages = check_clusters()
    assert code in ids(messages)
    assert all(m.hint for m in messages)
    with pytest.raises(ImproperlyConfigured, match=code.split(".")[1]):
        conf.get_cluster_config("events")


def test_checks_do_not_contact_the_servers(settings):
    # nothing listens there; a check must not wait for it or report it
    settings.RB_CLUSTERS = {"events": {"is_redis_cluster": True, "hosts": ["redis://127.0.0.1:1"]}}
    assert check_clusters() == []


def test_passwords_stay_out_of_errors_and_reprs(settings):
    settings.RB_CLUSTERS = {
        "events": {"is_redis_cluster": True, "hosts": ["redis://:s3cr3t@127.0.0.1:7000/4"]}
    }
    messages = check_clusters()
    assert "django_rb.E303" in ids(messages)
    assert all("s3cr3t" not in str(m) for m in messages)
    cluster = RedisCluster(["redis://:s3cr3t@127.0.0.1:1"])
    assert "s3cr3t" not in repr(cluster)
    with pytest.raises(Exception) as caught:
        cluster.get_routing_client().get("x")
    assert "s3cr3t" not in str(caught.value)


def test_rbcache_clear_flushes_every_master(settings, shared_redis_cluster):
    settings.RB_CLUSTERS = {
        "events": {"is_redis_cluster": True, "hosts": shared_redis_cluster.startup_nodes()}
    }
    settings.CACHES = {"default": {"BACKEND": "django_rb.cache.RBCache", "LOCATION": "events"}}
    shared_redis_cluster.flush()
    cache = caches["default"]
    cache.set_many({f"c{i}": i for i in range(300)})
    sizes = [shared_redis_cluster.client(n).dbsize() for n in shared_redis_cluster.masters]
    assert sum(sizes) == 300 and all(sizes)
    assert cache.clear() is True
    assert [shared_redis_cluster.client(n).dbsize() for n in shared_redis_cluster.masters] == [
        0
    ] * 3


def test_rb_status_and_rb_flushall_list_the_masters(settings, shared_redis_cluster):
    from io import StringIO

    from django.core.management import call_command

    shared_redis_cluster.flush()
    settings.RB_CLUSTERS = {
        "default": {"is_redis_cluster": True, "hosts": shared_redis_cluster.startup_nodes()}
    }
    with get_cluster().map() as client:
        client.mset({f"s{i}": i for i in range(30)})
    status = StringIO()
    call_command("rb_status", stdout=status)
    assert "3 of 3 hosts up." in status.getvalue()
    for node in shared_redis_cluster.masters:
        assert f"127.0.0.1:{node.port}" in status.getvalue()
    flushed = StringIO()
    call_command("rb_flushall", "--noinput", stdout=flushed)
    assert "Flushed 3 hosts" in flushed.getvalue()
    assert sum(shared_redis_cluster.client(n).dbsize() for n in shared_redis_cluster.masters) == 0
