"""RB_CLUSTERS parsing: every host form, routers, django-environ, and errors without secrets."""

from __future__ import annotations

from typing import Any

import environ
import pytest
from django.core.exceptions import ImproperlyConfigured

from django_rb import conf, get_cluster
from django_rb.cluster import BadHostSetup, BaseRouter, ConsistentHashingRouter, PartitionRouter
from django_rb.testing import RedisNode

PASSWORD = "env-s3cret"


class LastHostRouter(BaseRouter):
    """Sends every key to the last host, so a test can see the router is really used."""

    def get_host_for_key(self, key: Any) -> int:
        return len(self.cluster.hosts) - 1


@pytest.fixture(scope="module")
def secured_nodes(redis_nodes: Any) -> list[RedisNode]:
    return redis_nodes(2, password=PASSWORD)


def addresses(cluster: Any) -> list[str]:
    return [cluster.hosts[i].address for i in sorted(cluster.hosts)]


@pytest.mark.parametrize(
    "form", ["rb_dicts", "list_of_dicts", "url_list", "comma_string", "host_defaults"]
)
def test_every_hosts_form_builds_the_same_cluster(
    settings: Any, rb_nodes: list[RedisNode], form: str
) -> None:
    urls = [node.url() for node in rb_nodes]
    entry: dict[str, Any] = {
        "rb_dicts": {"hosts": {i: node.host_config() for i, node in enumerate(rb_nodes)}},
        "list_of_dicts": {"hosts": [node.host_config() for node in rb_nodes]},
        "url_list": {"hosts": urls},
        "comma_string": {"hosts": " , ".join(urls)},
        "host_defaults": {
            "hosts": {i: {"port": node.port} for i, node in enumerate(rb_nodes)},
            "host_defaults": {"host": "127.0.0.1", "db": 0},
        },
    }[form]
    settings.RB_CLUSTERS = {"default": entry}
    cluster = get_cluster()
    assert addresses(cluster) == [f"127.0.0.1:{node.port}/0" for node in rb_nodes]
    with cluster.all() as client:
        pings = client.ping()
    assert pings.value == {0: True, 1: True, 2: True, 3: True}


def test_django_environ_list_just_works(
    settings: Any, monkeypatch: pytest.MonkeyPatch, secured_nodes: list[RedisNode]
) -> None:
    """The README's example: hosts from one environment variable, passwords included."""
    monkeypatch.setenv("RB_HOSTS", ",".join(node.url(db=3) for node in secured_nodes))
    env = environ.Env()
    settings.RB_CLUSTERS = {
        "default": {
            "hosts": env.list("RB_HOSTS", default=["redis://127.0.0.1:6379/0"]),
            "router": env.str("RB_ROUTER", default="consistent_hashing"),
        }
    }
    cluster = get_cluster()
    assert addresses(cluster) == [f"127.0.0.1:{node.port}/3" for node in secured_nodes]
    assert all(cluster.hosts[i].password == PASSWORD for i in cluster.hosts)
    with cluster.all() as client:
        client.flushdb()
    with cluster.map() as client:
        for i in range(40):
            client.set(f"env:{i}", i)
    with cluster.all() as client:
        sizes = client.dbsize()
    assert sum(sizes.value.values()) == 40
    assert all(size > 0 for size in sizes.value.values())  # both nodes got keys


def test_django_environ_default_when_unset(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.delenv("RB_HOSTS", raising=False)
    env = environ.Env()
    settings.RB_CLUSTERS = {
        "default": {"hosts": env.list("RB_HOSTS", default=["redis://127.0.0.1:6379/0"])}
    }
    config = conf.get_cluster_config()
    assert [h.address for h in config.parsed_hosts.values()] == ["127.0.0.1:6379/0"]


@pytest.mark.parametrize(
    ("router", "expected"),
    [
        (None, PartitionRouter),
        ("partition", PartitionRouter),
        ("consistent_hashing", ConsistentHashingRouter),
        ("tests.test_conf.LastHostRouter", LastHostRouter),
        (LastHostRouter, LastHostRouter),
    ],
)
def test_router_choices(settings: Any, router: Any, expected: type) -> None:
    entry: dict[str, Any] = {"hosts": ["redis://127.0.0.1:7001/0", "redis://127.0.0.1:7002/0"]}
    if router is not None:
        entry["router"] = router
    settings.RB_CLUSTERS = {"default": entry}
    assert conf.get_cluster_config().router_cls is expected
    assert type(get_cluster().get_router()) is expected


def test_custom_router_places_keys(settings: Any, rb_nodes: list[RedisNode]) -> None:
    settings.RB_CLUSTERS = {
        "default": {
            "hosts": [node.url() for node in rb_nodes[:2]],
            "router": "tests.test_conf.LastHostRouter",
        }
    }
    cluster = get_cluster()
    cluster.get_local_client(1).flushdb()
    with cluster.map() as client:
        client.set("routed", "here")
    assert cluster.get_local_client(1).get("routed") == b"here"


def test_pool_options_reach_the_connections(settings: Any, rb_nodes: list[RedisNode]) -> None:
    settings.RB_CLUSTERS = {
        "default": {
            "hosts": [rb_nodes[0].url()],
            "pool_options": {"client_name": "django-rb-conf-test"},
        }
    }
    client = get_cluster().get_local_client(0)
    assert client.client_getname() == "django-rb-conf-test"


def test_unknown_cluster_name_lists_the_configured_ones(settings: Any) -> None:
    settings.RB_CLUSTERS = {
        "default": {"hosts": ["redis://127.0.0.1:7001/0"]},
        "tsdb": {"hosts": ["redis://127.0.0.1:7002/0"]},
    }
    with pytest.raises(ImproperlyConfigured) as caught:
        get_cluster("ratelimit")
    assert str(caught.value) == (
        "No cluster named 'ratelimit' in RB_CLUSTERS; configured clusters: 'default', 'tsdb'."
    )


def test_bad_entry_raises_with_its_check_id_and_no_password(settings: Any) -> None:
    settings.RB_CLUSTERS = {"default": {"hosts": ["redis://:hunter2@127.0.0.1:nope/0"]}}
    with pytest.raises(ImproperlyConfigured) as caught:
        get_cluster()
    text = str(caught.value)
    assert "(django_rb.E005)" in text and "RB_CLUSTERS['default']" in text
    assert "hunter2" not in text


def test_missing_setting_raises(settings: Any) -> None:
    del settings.RB_CLUSTERS
    with pytest.raises(ImproperlyConfigured, match=r"RB_CLUSTERS is not set"):
        get_cluster()


def test_config_repr_has_no_password(settings: Any) -> None:
    settings.RB_CLUSTERS = {
        "default": {
            "hosts": ["redis://:hunter2@127.0.0.1:7001/0", {"port": 7002, "password": "x-pw-x"}],
            "host_defaults": {"password": "hunter2"},
        }
    }
    config = conf.get_cluster_config()
    shown = repr(config)
    assert shown == (
        "<ClusterConfig 'default' router=PartitionRouter hosts=[127.0.0.1:7001/0, localhost:7002/0]>"
    )
    assert config.parsed_hosts[1].password == "x-pw-x"  # defaults do not override a host's own


@pytest.mark.parametrize(
    ("location", "cluster_name", "hosts"),
    [
        ("sessions", "sessions", None),
        (" sessions ", "sessions", None),
        (["sessions"], "sessions", None),
        ("redis://127.0.0.1:7001/0", None, ["redis://127.0.0.1:7001/0"]),
        ("redis://a:1/0, redis://b:2/0", None, ["redis://a:1/0", "redis://b:2/0"]),
        ("redis://a:1/0;redis://b:2/0", None, ["redis://a:1/0", "redis://b:2/0"]),
        (["redis://a:1/0", "redis://b:2/0"], None, ["redis://a:1/0", "redis://b:2/0"]),
        (("unix:///tmp/r.sock?db=2",), None, ["unix:///tmp/r.sock?db=2"]),
    ],
)
def test_parse_cache_location(location: Any, cluster_name: str | None, hosts: Any) -> None:
    parsed = conf.parse_cache_location(location)
    assert (parsed.cluster_name, parsed.hosts) == (cluster_name, hosts)


@pytest.mark.parametrize("location", [None, "", [], "a,b", ["a", "b"], 6379])
def test_parse_cache_location_refuses(location: Any) -> None:
    with pytest.raises(BadHostSetup):
        conf.parse_cache_location(location)
