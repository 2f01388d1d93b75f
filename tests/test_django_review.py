"""Adversarial review of the Django layer: settings edge cases, passwords in every output path,
get_cluster under threads and restarts, the management commands, and the pytest plugin.

Every test guards behaviour found in review; several were bugs, fixed since.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from django_rb import conf, get_cluster
from django_rb.cluster import Cluster, ConsistentHashingRouter, PartitionRouter
from django_rb.cluster.hosts import parse_hosts
from django_rb.testing import RedisNode, RedisServerNotFound, find_redis_server, free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "rvw-T0pSecret"


def run(name: str, *args: str, **options: Any) -> tuple[str, CommandError | None]:
    """Run a command in-process: (stdout + stderr, the CommandError it raised or None)."""
    out = io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=out, no_color=True, **options)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def raw(node: RedisNode, db: int = 0) -> redis.Redis:
    return redis.Redis(port=node.port, db=db, password=node.password, socket_timeout=5)


def django_rb_errors() -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks(tags=["django_rb"]) if m.is_serious()]


def problems_text() -> str:
    return "\n".join(str(p) for p in conf.settings_problems() + conf.cache_problems())


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, reaped by nobody, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def nodes(redis_nodes: Any) -> list[RedisNode]:
    """Three nodes of this module's own (tests may stop them; ``fresh`` restarts them)."""
    return redis_nodes(3)


@pytest.fixture(scope="module")
def pw_node(redis_nodes: Any) -> RedisNode:
    (node,) = redis_nodes(1, password=SECRET)
    return node


@pytest.fixture
def fresh(settings: Any, nodes: list[RedisNode]) -> Iterator[list[RedisNode]]:
    for node in nodes:
        node.start()
        raw(node).flushall()
    settings.RB_CLUSTERS = {"default": {"hosts": [node.url() for node in nodes]}}
    yield nodes
    for node in nodes:
        node.start()


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
    _, error = run("rb_status")
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


# -- passwords ----------------------------------------------------------------------------------


def test_reprs_and_errors_never_show_a_password(settings: Any) -> None:
    hosts = [f"redis://user:{SECRET}@a:1/0", {"host": "b", "port": 1, "password": SECRET}]
    settings.RB_CLUSTERS = {"default": {"hosts": hosts, "host_defaults": {"password": SECRET}}}
    config = conf.get_cluster_config()
    cluster = get_cluster()
    shown = [repr(config), str(config), repr(cluster), str(cluster)]
    shown += [repr(h) for h in cluster.hosts.values()] + [repr(cluster.hosts)]
    assert all(SECRET not in text for text in shown)
    # every error path: duplicate host, bad port, bad db, unknown option, unknown setting
    bad = [
        [f"redis://:{SECRET}@a:1/0", f"redis://:{SECRET}@a:1/0"],
        [f"redis://:{SECRET}@a:port/0"],
        [f"redis://:{SECRET}@a:1/zero"],
        [f"redis://:{SECRET}@a:1/0?nope=1&password={SECRET}"],
        {0: {"host": "a", "password": SECRET, "pasword": SECRET}},
        f"redis://:{SECRET}@a:1/0,redis://:{SECRET}@b:1/0?db=x",
    ]
    for value in bad:
        settings.RB_CLUSTERS = {"default": {"hosts": value}}
        messages = django_rb_errors()
        assert messages, value
        with pytest.raises(ImproperlyConfigured) as info:
            get_cluster()
        texts = [str(info.value), problems_text()] + [f"{m.msg} {m.hint}" for m in messages]
        assert all(SECRET not in text for text in texts), value


def test_ssl_password_is_hidden_in_check_messages(settings: Any) -> None:
    url = f"rediss://cache:6390/0?ssl_password={SECRET}&ssl_cert_reqs=required&bogus=1"
    settings.RB_CLUSTERS = {"default": {"hosts": [url]}}
    settings.CACHES = {"default": {"BACKEND": "django_rb.cache.RBCache", "LOCATION": url}}
    text = problems_text()
    assert "RB_CLUSTERS['default']: (E005)" in text and "CACHES['default']: (E005)" in text
    assert SECRET not in text


def test_ssl_password_is_hidden_in_host_repr() -> None:
    cluster = Cluster([f"rediss://cache:6390/0?ssl_password={SECRET}"])
    assert SECRET not in repr(cluster.hosts[0]) + repr(cluster.hosts)


def test_pair_with_a_url_as_host_id_does_not_leak(settings: Any) -> None:
    # A list of two URLs wrapped in a tuple (e.g. env.tuple(...) inside a list) is read as
    # rb's (host_id, config) pair; the "host id" is then quoted in E005 with its password.
    hosts = [(f"redis://:{SECRET}@a:1/0", f"redis://:{SECRET}@b:1/0")]
    settings.RB_CLUSTERS = {"default": {"hosts": hosts}}
    text = problems_text()
    assert "E005" in text
    assert SECRET not in text


def test_status_and_flushall_as_processes_never_show_a_password(
    tmp_path: Path, pw_node: RedisNode
) -> None:
    pw_node.start()
    raw(pw_node).set("k", 1)
    dead = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    module = write_settings(tmp_path, {"default": {"hosts": [pw_node.url(), dead]}})
    status = manage(tmp_path, module, "rb_status", "--json")
    flush = manage(tmp_path, module, "rb_flushall", "--noinput", stdin=subprocess.DEVNULL)
    assert status.returncode == 1 and flush.returncode == 1
    rows = json.loads(status.stdout)  # only JSON on stdout, the CommandError goes to stderr
    assert [row["up"] for row in rows] == [True, False]
    assert [sorted(row) for row in rows] == [sorted(STATUS_KEYS)] * 2
    assert rows[0]["keys"] == 1 and isinstance(rows[0]["used_memory"], int)
    assert "1 of 2 hosts of cluster 'default' are down (host 1)." in status.stderr
    assert "1 of 2 hosts were not flushed (host 1)." in flush.stderr
    assert raw(pw_node).dbsize() == 0
    for text in (status.stdout, status.stderr, flush.stdout, flush.stderr):
        assert SECRET not in text


def test_manage_py_check_as_a_process_hides_the_password(tmp_path: Path) -> None:
    module = write_settings(
        tmp_path,
        {"default": {"hosts": [f"redis://:{SECRET}@a:99999/0", f"redis://u:{SECRET}@b:1/x"]}},
    )
    done = manage(tmp_path, module, "check", "--tag", "django_rb")
    assert done.returncode == 1
    assert "django_rb.E005" in done.stderr
    assert SECRET not in done.stdout + done.stderr
    # a command that requires system checks refuses to run on the same settings
    done = manage(tmp_path, module, "rb_status")
    assert done.returncode == 1 and "SystemCheckError" in done.stderr
    assert SECRET not in done.stdout + done.stderr


STATUS_KEYS = (
    "host_id", "address", "db", "up", "rtt_ms", "keys",
    "used_memory", "used_memory_human", "version", "error",
)  # fmt: skip


def write_settings(tmp_path: Path, clusters: dict[str, Any], extra: str = "") -> str:
    module = "rvw_settings"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            f"""
            SECRET_KEY = "x"
            INSTALLED_APPS = ["django_rb"]
            RB_CLUSTERS = {clusters!r}
            """
        )
        + extra
    )
    return module


def manage(tmp_path: Path, module: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE=module, PYTHONPATH=str(tmp_path))
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


# -- settings that pass the checks but fail later ---------------------------------------------


def test_router_options_the_router_does_not_take(settings: Any) -> None:
    settings.RB_CLUSTERS = {"default": {"hosts": ["redis://a:1/0"], "router_options": {"x": 1}}}
    assert [m.id for m in django_rb_errors()] == ["django_rb.E011"]
    _, error = run("rb_status")  # a clear command error, not a traceback from the router
    assert error is not None and "router_options" in str(error)


def test_pool_options_protocol_3(settings: Any) -> None:
    settings.RB_CLUSTERS = {
        "default": {"hosts": ["redis://a:1/0"], "pool_options": {"protocol": 3}}
    }
    assert [m.id for m in django_rb_errors()] == ["django_rb.E012"]
    with pytest.raises(ImproperlyConfigured, match="protocol"):
        get_cluster()


def test_pool_options_unknown_kwarg(settings: Any, fresh: list[RedisNode]) -> None:
    settings.RB_CLUSTERS["default"]["pool_options"] = {"max_conections": 5}
    errors = django_rb_errors()
    assert [m.id for m in errors] == ["django_rb.E012"] and "max_conections" in errors[0].msg
    _, error = run("rb_status", "--json")  # refused up front instead of every host "down"
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


# -- get_cluster under threads and restarts -----------------------------------------------------


def flip_settings_under_threads(
    nodes: list[RedisNode], io_rounds: bool
) -> tuple[list[list[int]], list[BaseException], list[int]]:
    """Four threads call get_cluster() (and run a PING round on it when ``io_rounds``) while
    the main thread flips RB_CLUSTERS 40 times; returns the host ports each call saw, the
    threads' exceptions, and the ports of get_cluster() once the flipping is over."""
    for node in nodes:
        node.start()
    a = {"default": {"hosts": [nodes[0].url()]}}
    b = {"default": {"hosts": [nodes[1].url(), nodes[2].url()]}}
    stop = threading.Event()
    seen: list[list[int]] = []
    failures: list[BaseException] = []

    def worker() -> None:
        while not stop.is_set():
            try:
                cluster = get_cluster()
                seen.append([h.port for h in cluster.hosts.values()])
                if io_rounds:
                    with cluster.all(timeout=5) as client:
                        client.ping()
                else:
                    time.sleep(0.0005)
            except BaseException as exc:  # noqa: BLE001
                failures.append(exc)
                return

    with override_settings(RB_CLUSTERS=a):
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            for i in range(40):
                with override_settings(RB_CLUSTERS=b if i % 2 else a):
                    time.sleep(0.005)
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
        final = [h.port for h in get_cluster().hosts.values()]
    return seen, failures, final


def test_get_cluster_under_threads_while_settings_flip(nodes: list[RedisNode]) -> None:
    seen, failures, final = flip_settings_under_threads(nodes, io_rounds=False)
    ports_a, ports_b = [nodes[0].port], [nodes[1].port, nodes[2].port]
    assert not failures, failures
    assert seen and all(ports in (ports_a, ports_b) for ports in seen)
    assert ports_b in seen and ports_a in seen
    assert final == ports_a


def test_in_flight_rounds_survive_a_settings_change(nodes: list[RedisNode]) -> None:
    # README: "in-flight users reconnect if needed". Observed: the rounds running while
    # _close_all() disconnects the pools fail with OSError(9, 'Bad file descriptor'),
    # AttributeError('NoneType' ... 'gettimeout'), ValueError('Invalid file descriptor: -1')
    # or HostTimeoutError, all against healthy servers.
    _, failures, _ = flip_settings_under_threads(nodes, io_rounds=True)
    assert not failures, failures


def test_get_cluster_after_a_node_restarts(fresh: list[RedisNode]) -> None:
    cluster = get_cluster()
    with cluster.map() as client:
        for i in range(30):
            client.set(f"k{i}", i)
    fresh[1].stop()
    fresh[1].start()  # same port, empty (no persistence); pooled sockets are stale
    assert get_cluster() is cluster
    with cluster.map() as client:
        values = [client.get(f"k{i}") for i in range(30)]
    lost = [i for i, p in enumerate(values) if p.value is None]
    assert lost and all(cluster.get_router().get_host_for_key(f"k{i}") == 1 for i in lost)
    stdout, error = run("rb_status", "--json")
    assert error is None and all(row["up"] for row in json.loads(stdout))


# -- rb_flushall ------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_flushall_when_a_host_dies_between_listing_and_flush(fresh: list[RedisNode]) -> None:
    for node in fresh:
        raw(node).set("k", 1)

    class StopsANodeWhenAnswering(Terminal):
        def readline(self, *args: Any) -> str:
            fresh[2].stop()
            return "yes\n"

    stdout, error = run("rb_flushall", stdin=StopsANodeWhenAnswering())
    assert error is not None and str(error) == "1 of 3 hosts were not flushed (host 2)."
    assert "This deletes all 3 keys of cluster 'default'" in stdout
    assert f"host 2  127.0.0.1:{fresh[2].port}  db 0: FAILED: " in stdout
    assert stdout.count(": flushed (1 keys)") == 2
    assert [raw(node).dbsize() for node in fresh[:2]] == [0, 0]


def test_flushall_unknown_cluster_touches_nothing(fresh: list[RedisNode]) -> None:
    raw(fresh[0]).set("k", 1)
    stdout, error = run("rb_flushall", "--cluster", "tsdb", "--noinput")
    assert error is not None
    assert str(error) == "No cluster named 'tsdb' in RB_CLUSTERS; configured clusters: 'default'."
    assert stdout == "" and raw(fresh[0]).dbsize() == 1
    _, error = run("rb_flushall", "--cluster", "", "--noinput")
    assert error is not None and "No cluster named ''" in str(error)


def test_flushall_leaves_another_clusters_db_on_the_same_servers(
    settings: Any, fresh: list[RedisNode]
) -> None:
    settings.RB_CLUSTERS = {
        "default": {"hosts": [node.url(0) for node in fresh]},
        "other": {"hosts": [node.url(1) for node in fresh]},
    }
    for node in fresh:
        raw(node, 0).set("a", 1)
        raw(node, 1).set("b", 1)
    stdout, error = run("rb_flushall", "--cluster", "other", "--noinput")
    assert error is None and stdout.splitlines()[-1] == "Flushed 3 hosts of cluster 'other'."
    assert all("db 1" in line for line in stdout.splitlines()[1:4])
    assert [raw(n, 0).dbsize() for n in fresh] == [1, 1, 1]
    assert [raw(n, 1).dbsize() for n in fresh] == [0, 0, 0]


def test_status_invalid_timeout_and_cluster_arguments(fresh: list[RedisNode]) -> None:
    with pytest.raises(CommandError, match="not a number of seconds"):
        call_command("rb_status", "--timeout", "soon", stdout=io.StringIO())
    for bad in ("0", "-1"):
        with pytest.raises(CommandError, match="must be more than 0 seconds"):
            call_command("rb_flushall", "--noinput", "--timeout", bad, stdout=io.StringIO())
    stdout, error = run("rb_status", "--cluster", "default", "--json", "--timeout", "2")
    assert error is None and len(json.loads(stdout)) == 3


# -- the pytest plugin ----------------------------------------------------------------------------


NESTED_TEST = """
import os, time

def test_nodes(redis_nodes):
    nodes = redis_nodes(2)
    with open(os.environ["RVW_PIDFILE"], "w") as f:
        f.write(" ".join(str(n.pid) for n in nodes))
    {body}
"""


def nested_pytest(tmp_path: Path, body: str, *args: str) -> tuple[subprocess.Popen, Path]:
    (tmp_path / "test_nested.py").write_text(NESTED_TEST.format(body=body))
    pidfile = tmp_path / "pids"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["RVW_PIDFILE"] = str(pidfile)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_nested.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, pidfile


def wait_for_pids(pidfile: Path, proc: subprocess.Popen) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if pidfile.exists() and pidfile.read_text().strip():
            return [int(p) for p in pidfile.read_text().split()]
        time.sleep(0.05)
    if pidfile.exists() and pidfile.read_text().strip():
        return [int(p) for p in pidfile.read_text().split()]
    raise AssertionError(f"nested session wrote no pids: {proc.communicate()[0]}")


def leftover(pids: list[int]) -> list[int]:
    """Nodes still running; they are stopped here (by pid) so nothing outlives this test."""
    time.sleep(0.2)
    remaining = [pid for pid in pids if alive(pid)]
    for pid in remaining:
        os.kill(pid, signal.SIGKILL)
    return remaining


def test_plugin_stops_nodes_when_a_test_fails(tmp_path: Path) -> None:
    proc, pidfile = nested_pytest(tmp_path, 'assert False, "boom"')
    output = proc.communicate(timeout=60)[0]
    pids = wait_for_pids(pidfile, proc)
    assert proc.returncode == 1 and "1 failed" in output
    assert len(pids) == 2 and leftover(pids) == []


def test_plugin_stops_nodes_on_ctrl_c(tmp_path: Path) -> None:
    proc, pidfile = nested_pytest(tmp_path, "time.sleep(60)")
    pids = wait_for_pids(pidfile, proc)
    assert all(alive(pid) for pid in pids)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 2  # pytest's "interrupted"
    assert leftover(pids) == []


def test_plugin_stops_nodes_on_sigterm(tmp_path: Path) -> None:
    # what a CI job timeout or `timeout 600 pytest` sends; atexit handlers do not run on it
    proc, pidfile = nested_pytest(tmp_path, "time.sleep(60)")
    pids = wait_for_pids(pidfile, proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert leftover(pids) == []


def test_plugin_by_its_documented_module_name(tmp_path: Path) -> None:
    # the README calls the plugin `django_rb.testing`; `-p django_rb.testing` (or
    # pytest_plugins = ["django_rb.testing"]) fails with "Plugin already registered under a
    # different name" because the pytest11 entry point is named `django_rb`
    proc, pidfile = nested_pytest(tmp_path, "pass", "-p", "django_rb.testing")
    output = proc.communicate(timeout=60)[0]
    pids = [int(p) for p in pidfile.read_text().split()] if pidfile.exists() else []
    leftover(pids)
    assert proc.returncode == 0, output


def test_redis_server_env_not_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "redis-server"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    monkeypatch.setenv("RB_REDIS_SERVER", str(script))
    with pytest.raises(RedisServerNotFound, match="RB_REDIS_SERVER=.*not an executable file"):
        find_redis_server()
    monkeypatch.setenv("RB_REDIS_SERVER", str(tmp_path / "missing"))
    with pytest.raises(RedisServerNotFound, match="RB_REDIS_SERVER"):
        find_redis_server()


def test_redis_server_env_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RB_REDIS_SERVER", str(tmp_path))
    with pytest.raises(RedisServerNotFound):  # observed: returns the directory; Popen then
        find_redis_server()  # raises PermissionError


@pytest.mark.parametrize(
    "location",
    [
        [{"host": "h", "password": "s3cret-loc"}],  # settings instead of a URL
        "redis:/:s3cret-loc@host/0",  # a mistyped scheme: not a URL, not a name
        "redis://:s3cret-loc@host:port/0",  # a URL that does not parse
    ],
)
def test_cache_location_mistakes_never_show_the_password(settings: Any, location: Any) -> None:
    from django_rb.cache import RBCache

    settings.CACHES = {"default": {"BACKEND": "django_rb.cache.RBCache", "LOCATION": location}}
    assert "s3cret-loc" not in problems_text()
    assert [m.id for m in django_rb_errors()] in (["django_rb.E015"], ["django_rb.E005"])
    with pytest.raises(Exception) as info:
        RBCache(location, {}).get("k")
    assert "s3cret-loc" not in str(info.value)
