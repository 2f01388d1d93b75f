"""RB_CLUSTERS parsing: every host form, routers, django-environ, and errors without secrets."""

from __future__ import annotations

from typing import Any

import environ
import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from django_rb import conf, get_cluster
from django_rb.cluster import BadHostSetup, BaseRouter, ConsistentHashingRouter, PartitionRouter
from django_rb.cluster.hosts import parse_hosts
from django_rb.testing import RedisNode
from tests.django_support import django_rb_errors, problems_text, run_merged

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


# -- RB_CLUSTERS edge cases ---------------------------------------------------------------------


def test_hosts_as_a_tuple_is_the_same_as_a_list(settings: Any) -> None:
    urls = ("redis://10.0.0.1:6380/0", "redis://10.0.0.2:6380/1")
    settings.RB_CLUSTERS = {"default": {"hosts": urls}}
    assert problems_text() == ""
    config = conf.get_cluster_config()
    assert {i: h.address for i, h in config.parsed_hosts.items()} == {
        0: "10.0.0.1:6380/0",
        1: "10.0.0.2:6380/1",
    }


def test_hosts_dict_with_string_ids_is_a_clear_e005(settings: Any) -> None:
    settings.RB_CLUSTERS = {"default": {"hosts": {"0": {"host": "a"}, "1": {"host": "b"}}}}
    assert [m.id for m in django_rb_errors()] == ["django_rb.E005"]
    with pytest.raises(ImproperlyConfigured, match=r"integers.*django_rb\.E005"):
        get_cluster()


def test_router_as_a_class_and_alias_and_blank(settings: Any) -> None:
    settings.RB_CLUSTERS = {
        "cls": {"hosts": ["redis://a:1/0"], "router": ConsistentHashingRouter},
        "none": {"hosts": ["redis://a:1/0"], "router": None},
    }
    assert problems_text() == ""
    assert get_cluster("cls").router_cls is ConsistentHashingRouter
    assert get_cluster("none").router_cls is PartitionRouter


def test_router_class_that_is_not_a_base_router(settings: Any) -> None:
    settings.RB_CLUSTERS = {"default": {"hosts": ["redis://a:1/0"], "router": dict}}
    assert [m.id for m in django_rb_errors()] == ["django_rb.E010"]


def test_url_query_db_wins_over_path_db_like_redis_py() -> None:
    (host,) = parse_hosts(["redis://a:1/2?db=3"]).values()
    assert host.db == redis.ConnectionPool.from_url("redis://a:1/2?db=3").connection_kwargs["db"]
    assert host.db == 3


def test_ipv6_url_parses_and_duplicates_are_e007(settings: Any) -> None:
    (host,) = parse_hosts(["redis://[::1]:6380/2"]).values()
    assert (host.host, host.port, host.db) == ("::1", 6380, 2)
    settings.RB_CLUSTERS = {"default": {"hosts": ["redis://[::1]:6380/0", "redis://[::1]:6380"]}}
    assert [m.id for m in django_rb_errors()] == ["django_rb.E007"]
    settings.RB_CLUSTERS = {"default": {"hosts": ["redis://[::1:6380/0"]}}
    assert [m.id for m in django_rb_errors()] == ["django_rb.E005"]


@pytest.mark.parametrize("value", ["none", "optional", "required"])
def test_rediss_ssl_cert_reqs_reach_the_pool(settings: Any, value: str) -> None:
    settings.RB_CLUSTERS = {
        "default": {"hosts": [f"rediss://cache:6390/0?ssl_cert_reqs={value}&ssl_check_hostname=no"]}
    }
    assert problems_text() == ""
    kwargs = get_cluster().get_pool_for_host(0).connection_kwargs
    assert kwargs["ssl_cert_reqs"] == value and kwargs["ssl_check_hostname"] is False


def test_empty_dict_and_unset_raise_with_w001(settings: Any) -> None:
    settings.RB_CLUSTERS = {}
    with pytest.raises(ImproperlyConfigured, match=r"django_rb\.W001"):
        get_cluster()
    del settings.RB_CLUSTERS
    _, error = run_merged("rb_status")
    assert error is not None and "django_rb.W001" in str(error)


def test_host_defaults_fill_password_but_not_over_the_url(settings: Any) -> None:
    settings.RB_CLUSTERS = {
        "default": {
            "hosts": ["redis://:own@a:1/0", "redis://b:1/0"],
            "host_defaults": {"password": "dflt", "username": "u"},
        }
    }
    hosts = conf.get_cluster_config().parsed_hosts
    assert (hosts[0].password, hosts[1].password) == ("own", "dflt")
    assert hosts[1].username == "u"


# -- settings that pass the checks but fail later ---------------------------------------------


def test_router_options_the_router_does_not_take(settings: Any) -> None:
    settings.RB_CLUSTERS = {"default": {"hosts": ["redis://a:1/0"], "router_options": {"x": 1}}}
    assert [m.id for m in django_rb_errors()] == ["django_rb.E011"]
    _, error = run_merged("rb_status")  # a clear command error, not a traceback from the router
    assert error is not None and "router_options" in str(error)


def test_pool_options_protocol_3(settings: Any) -> None:
    settings.RB_CLUSTERS = {
        "default": {"hosts": ["redis://a:1/0"], "pool_options": {"protocol": 3}}
    }
    assert [m.id for m in django_rb_errors()] == ["django_rb.E012"]
    with pytest.raises(ImproperlyConfigured, match="protocol"):
        get_cluster()


def test_pool_options_unknown_kwarg(settings: Any) -> None:
    settings.RB_CLUSTERS = {
        "default": {"hosts": ["redis://127.0.0.1:1/0"], "pool_options": {"max_conections": 5}}
    }
    errors = django_rb_errors()
    assert [m.id for m in errors] == ["django_rb.E012"] and "max_conections" in errors[0].msg
    _, error = run_merged("rb_status", "--json")  # refused up front instead of every host "down"
    assert error is not None and "max_conections" in str(error)


@pytest.mark.parametrize("kind", ["set", "generator"])
def test_unordered_or_one_shot_hosts_are_refused(settings: Any, kind: str) -> None:
    urls = ["redis://a:1/0", "redis://b:1/0", "redis://c:1/0"]
    # a set's order (so every key's placement) changes with PYTHONHASHSEED between processes;
    # a generator is consumed by the check, then get_cluster() finds no hosts
    hosts = set(urls) if kind == "set" else (url for url in urls)
    settings.RB_CLUSTERS = {"default": {"hosts": hosts}}
    assert [m.id for m in django_rb_errors()] == ["django_rb.E005"]


@pytest.mark.parametrize(
    "hosts",
    [
        {0: {"host": "a", "port": "abc"}},
        {0: {"host": "a", "port": 1, "db": "x"}},
        ["redis://a:1/-1"],
        ["rediss://a:1/0?ssl_cert_reqs=bogus"],
    ],
)
def test_bad_host_values_are_e005(settings: Any, hosts: Any) -> None:
    settings.RB_CLUSTERS = {"default": {"hosts": hosts}}
    assert [m.id for m in django_rb_errors()] == ["django_rb.E005"]


def test_host_defaults_db_and_port_fill_urls_without_them(settings: Any) -> None:
    settings.RB_CLUSTERS = {
        "default": {"hosts": "redis://a,redis://b", "host_defaults": {"db": 3, "port": 6390}}
    }
    hosts = conf.get_cluster_config().parsed_hosts
    assert [(h.port, h.db) for h in hosts.values()] == [(6390, 3), (6390, 3)]


@pytest.mark.parametrize("backend", ["django_rb.cache.backend.RBCache"])
def test_cache_check_sees_the_backend_by_any_path(settings: Any, backend: str) -> None:
    settings.RB_CLUSTERS = {"default": {"hosts": ["redis://a:1/0"]}}
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": "nope"}}
    assert [m.id for m in django_rb_errors()] == ["django_rb.E014"]


def test_ipv6_address_is_shown_with_brackets() -> None:
    (host,) = parse_hosts(["redis://[::1]:6380/0"]).values()
    assert host.address == "[::1]:6380/0"  # observed "::1:6380/0": which part is the port?
