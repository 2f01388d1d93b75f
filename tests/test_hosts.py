"""Host settings: dicts, lists, URLs; ids; and never a password in a repr or message."""

import pytest

from django_rb.cluster import BadHostSetup, Cluster
from django_rb.cluster.hosts import parse_host_url, parse_hosts, redact_url


def test_dict_hosts_with_defaults():
    hosts = parse_hosts({0: {"port": 7000}, 1: {"port": 7001, "db": 3}}, {"host": "10.0.0.9"})
    assert hosts[0].host == "10.0.0.9" and hosts[0].port == 7000 and hosts[0].db == 0
    assert hosts[1].db == 3


def test_url_forms():
    cfg = parse_host_url("redis://alice:s%40cret@cache-1:6380/4")
    assert cfg == {
        "username": "alice",
        "password": "s@cret",
        "host": "cache-1",
        "port": 6380,
        "db": 4,
    }
    tls = parse_host_url("rediss://:pw@h?ssl_cert_reqs=none&ssl_check_hostname=false")
    assert tls["ssl"] is True and "port" not in tls and "db" not in tls  # defaults fill them
    assert tls["ssl_options"] == {"cert_reqs": "none", "check_hostname": False}
    unix = parse_host_url("unix:///run/redis.sock?db=2")
    assert parse_hosts(["rediss://h"])[0].port == 6379 and parse_hosts(["unix:///s"])[0].db == 0
    assert unix == {"unix_socket_path": "/run/redis.sock", "db": 2}


def test_list_and_comma_string_number_hosts_by_position():
    hosts = parse_hosts("redis://a:1/0, redis://b:2/1")
    assert [(h.host_id, h.host, h.port, h.db) for h in hosts.values()] == [
        (0, "a", 1, 0),
        (1, "b", 2, 1),
    ]
    listed = parse_hosts([{"host_id": 1, "port": 2}, {"host_id": 0, "port": 1}])
    assert sorted(listed) == [0, 1] and listed[1].port == 2


@pytest.mark.parametrize(
    "bad, message",
    [
        ("http://x:1/0", "must start with"),
        ("redis://x:notaport/0", "does not parse"),
        ("redis://x:1/zero", "must be a number"),
        ("redis://x:1/0?bogus=1", "unknown options: bogus"),
        ("unix://", "no socket path"),
    ],
)
def test_bad_urls_are_named(bad, message):
    with pytest.raises(BadHostSetup, match=message):
        parse_host_url(bad)


def test_bad_host_ids():
    with pytest.raises(BadHostSetup, match="integers"):
        parse_hosts({"a": {"port": 1}})
    with pytest.raises(BadHostSetup, match="share the host id"):
        parse_hosts([{"host_id": 0}, {"host_id": 0}])
    with pytest.raises(BadHostSetup, match="unknown settings: prot"):
        parse_hosts({0: {"prot": 1}})


def test_gaps_are_refused_by_the_router():
    cluster = Cluster({0: {"port": 1}, 2: {"port": 2}})
    with pytest.raises(BadHostSetup, match="without gaps; missing 1"):
        cluster.get_router()
    with pytest.raises(BadHostSetup, match="No hosts"):
        Cluster({}).get_router()


def test_password_never_shown():
    cluster = Cluster(["redis://u:hunter2@127.0.0.1:1/0"])
    host = cluster.hosts[0]
    assert host.password == "hunter2"
    for text in (repr(host), repr(cluster), host.label, host.address):
        assert "hunter2" not in text
    assert redact_url("redis://u:hunter2@h:1/0") == "redis://u:***@h:1/0"
    with pytest.raises(BadHostSetup) as info:
        parse_host_url("redis://u:hunter2@h:1/x")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("password", ["p@ss", "p:ss", "p%2Fss"])
def test_passwords_with_at_colon_or_encoded_delimiters_parse(password):
    cfg = parse_host_url(f"redis://u:{password}@127.0.0.1:6379/1")
    expected = password.replace("%2F", "/")
    assert (cfg["username"], cfg["password"], cfg["port"], cfg["db"]) == ("u", expected, 6379, 1)
    assert password not in redact_url(f"redis://u:{password}@h:1/0")


@pytest.mark.parametrize("password", ["pa/ss", "p?ss", "p#ss"])
def test_unencoded_url_delimiters_in_a_password_fail_without_leaking(password):
    # like redis-py's from_url: such characters must be percent-encoded; guessing where the
    # credentials end could silently pick the wrong host
    with pytest.raises(BadHostSetup, match="percent-encode") as info:
        parse_host_url(f"redis://u:{password}@127.0.0.1:6379/1")
    assert password not in str(info.value) and f":{password[:2]}" not in str(info.value)
    assert password not in redact_url(f"redis://u:{password}@h:1/0")


def test_an_at_sign_after_the_host_is_not_taken_for_credentials():
    cfg = parse_host_url("rediss://cache:6380/0?ssl_ca_path=/etc/a@b&password=x@y")
    assert (cfg["host"], cfg["port"], cfg["password"]) == ("cache", 6380, "x@y")
    assert cfg["ssl_options"] == {"ca_path": "/etc/a@b"}
    assert "secret" not in redact_url("redis://h:1/0?password=secret&db=1")
    assert "s3cret" not in redact_url("redis:/:s3cret@host/0")  # not even a URL


def test_host_defaults_fill_what_a_url_leaves_out():
    hosts = parse_hosts("redis://a,redis://b:7000/2", {"db": 3, "port": 6390, "password": "pw"})
    assert [(h.port, h.db, h.password) for h in hosts.values()] == [
        (6390, 3, "pw"),
        (7000, 2, "pw"),
    ]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"port": "abc"}, "port must be a whole number from 1 to 65535"),
        ({"port": 70000}, "port must be a whole number"),
        ({"db": "x"}, "db must be a whole number of 0 or more"),
        ({"db": -1}, "db must be a whole number"),
        ({"ssl": True, "ssl_options": {"cert_reqs": "bogus"}}, "cert_reqs must be one of"),
    ],
)
def test_bad_host_values_are_refused(settings, message):
    with pytest.raises(BadHostSetup, match=message):
        parse_hosts({0: settings})


def test_unordered_hosts_are_refused_and_generators_read_once():
    with pytest.raises(BadHostSetup, match="stable"):
        parse_hosts({"redis://a:1/0", "redis://b:1/0"})
    assert len(parse_hosts(url for url in ("redis://a:1/0", "redis://b:1/0"))) == 2


def test_ipv6_and_tls_secrets_in_what_is_shown():
    host = parse_hosts(["rediss://[::1]:6380/1?ssl_password=SECRET"])[0]
    assert host.host == "::1" and host.address == "rediss://[::1]:6380/1"
    assert "SECRET" not in repr(host)
    assert "SECRET" not in redact_url("rediss://h:1/0?ssl_password=SECRET&db=1")
    with pytest.raises(BadHostSetup) as info:
        parse_hosts([("redis://:SECRET@a:1/0", "redis://b:1/0")])
    assert "SECRET" not in str(info.value)
