"""rb_status and rb_flushall against real nodes: healthy, stopped, stalled, password-protected."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError

from django_rb.testing import RedisNode, healthy

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "cmd-Pa55word"


class Terminal(io.StringIO):
    """Typed input that says it is a terminal (the commands only ask ``isatty()``)."""

    def isatty(self) -> bool:
        return True


def run(name: str, *args: str, **options: Any) -> tuple[str, str, CommandError | None]:
    """Run a command in-process: (stdout, stderr, the CommandError it raised or None)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err, no_color=True, **options)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc
    return out.getvalue(), err.getvalue(), None


def raw(node: RedisNode, db: int = 0) -> redis.Redis:
    """A plain redis-py client, independent of django_rb, to set up and inspect data."""
    return redis.Redis(port=node.port, db=db, password=node.password, socket_timeout=5)


def fill(nodes: list[RedisNode], counts: list[int], db: int = 0) -> None:
    for node, count in zip(nodes, counts, strict=True):
        client = raw(node, db)
        for i in range(count):
            client.set(f"k{i}", i)
        client.close()


def dbsizes(nodes: list[RedisNode], db: int = 0) -> list[int]:
    return [raw(node, db).dbsize() for node in nodes]


def table(stdout: str) -> dict[int, list[str]]:
    """rb_status rows by host id (cells split on runs of 2+ spaces)."""
    rows = {}
    for line in stdout.splitlines()[1:]:
        cells = [cell for cell in line.split("  ") if cell.strip()]
        if cells and cells[0].strip().isdigit():
            rows[int(cells[0])] = [cell.strip() for cell in cells]
    return rows


@pytest.fixture(scope="module")
def spare_nodes(redis_nodes: Any) -> list[RedisNode]:
    """Three nodes of this module's own, that tests may stop or pause."""
    return redis_nodes(3)


@pytest.fixture
def spare_settings(settings: Any, spare_nodes: list[RedisNode]) -> Iterator[Any]:
    """RB_CLUSTERS on the spare nodes, all running and empty; restarted after the test."""
    with healthy(spare_nodes):
        settings.RB_CLUSTERS = {"default": {"hosts": [node.url() for node in spare_nodes]}}
        yield settings


@pytest.fixture(scope="module")
def secured_nodes(redis_nodes: Any) -> list[RedisNode]:
    return redis_nodes(2, password=PASSWORD)


@pytest.fixture
def secured_settings(settings: Any, secured_nodes: list[RedisNode]) -> Iterator[Any]:
    for node in secured_nodes:
        node.start()
        raw(node).flushall()
    settings.RB_CLUSTERS = {"default": {"hosts": [node.url() for node in secured_nodes]}}
    yield settings
    for node in secured_nodes:
        node.start()


def subprocess_env(nodes: list[RedisNode]) -> dict[str, str]:
    """tests.settings reads the hosts from $RB_TEST_HOSTS through django-environ."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        PYTHONPATH=str(ROOT),
        RB_TEST_HOSTS=",".join(node.url() for node in nodes),
    )
    return env


def manage(nodes: list[RedisNode], *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=subprocess_env(nodes),
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


# -- rb_status ---------------------------------------------------------------------------------


def test_status_all_up(rb_settings: Any, rb_nodes: list[RedisNode]) -> None:
    fill(rb_nodes, [3, 0, 1, 2])
    version = raw(rb_nodes[0]).info("server")["redis_version"]
    stdout, _, error = run("rb_status")
    assert error is None
    lines = stdout.splitlines()
    assert lines[0].split() == [
        "ID", "ADDRESS", "DB", "STATUS", "RTT", "MS", "KEYS", "MEMORY", "VERSION", "ERROR"
    ]  # fmt: skip
    assert lines[-1] == "4 of 4 hosts up."
    rows = table(stdout)
    assert sorted(rows) == [0, 1, 2, 3]
    for host_id, node in enumerate(rb_nodes):
        ident, address, db, status, rtt, keys, memory, shown_version = rows[host_id]
        assert (ident, address, db, status) == (str(host_id), f"127.0.0.1:{node.port}", "0", "up")
        assert float(rtt) >= 0
        assert keys == str([3, 0, 1, 2][host_id])
        assert memory[-1] in "BKMG" and float(memory[:-1]) > 0
        assert shown_version == str(version)


def test_status_json(rb_settings: Any, rb_nodes: list[RedisNode]) -> None:
    fill(rb_nodes, [0, 5, 0, 1])
    stdout, _, error = run("rb_status", "--json")
    assert error is None
    rows = json.loads(stdout)
    assert [row["host_id"] for row in rows] == [0, 1, 2, 3]
    assert [row["keys"] for row in rows] == [0, 5, 0, 1]
    for row, node in zip(rows, rb_nodes, strict=True):
        assert row["address"] == f"127.0.0.1:{node.port}"
        assert row["db"] == 0 and row["up"] is True and row["error"] is None
        assert isinstance(row["rtt_ms"], float) and row["rtt_ms"] > 0
        assert isinstance(row["used_memory"], int) and row["used_memory"] > 0
        assert row["used_memory_human"] and row["version"]


def test_status_down_host_is_a_row_and_a_failure(
    spare_settings: Any, spare_nodes: list[RedisNode]
) -> None:
    fill(spare_nodes, [2, 0, 4])
    spare_nodes[1].stop()
    stdout, _, error = run("rb_status")
    assert error is not None
    assert str(error) == "1 of 3 hosts of cluster 'default' are down (host 1)."
    rows = table(stdout)
    assert rows[0][3] == "up" and rows[0][5] == "2"
    assert rows[2][3] == "up" and rows[2][5] == "4"
    down = rows[1]
    assert down[:7] == ["1", f"127.0.0.1:{spare_nodes[1].port}", "0", "down", "-", "-", "-"]
    assert "host 1" in down[-1] and str(spare_nodes[1].port) in down[-1]
    assert stdout.splitlines()[-1] == "2 of 3 hosts up."

    stdout, _, error = run("rb_status", "--json")
    assert error is not None
    rows_json = json.loads(stdout)
    assert [row["up"] for row in rows_json] == [True, False, True]
    assert rows_json[1]["keys"] is None and rows_json[1]["error"]


def test_status_stalled_host_times_out(spare_settings: Any, spare_nodes: list[RedisNode]) -> None:
    spare_nodes[2].pause()
    stdout, _, error = run("rb_status", "--json", "--timeout", "0.5")
    spare_nodes[2].resume()
    assert error is not None and "(host 2)" in str(error)
    rows = json.loads(stdout)
    assert [row["up"] for row in rows] == [True, True, False]


def test_status_never_shows_a_password(
    secured_settings: Any, secured_nodes: list[RedisNode]
) -> None:
    stdout, stderr, error = run("rb_status")
    assert error is None and stdout.count(" up ") == 2
    secured_nodes[0].stop()
    stdout, stderr, error = run("rb_status", "--json")
    assert error is not None
    assert PASSWORD not in stdout + stderr + str(error)


def test_status_wrong_password_is_a_down_row(settings: Any, secured_nodes: list[RedisNode]) -> None:
    settings.RB_CLUSTERS = {
        "default": {
            "hosts": [
                secured_nodes[0].url(),
                f"redis://:wrong-Pw@127.0.0.1:{secured_nodes[1].port}/0",
            ]
        }
    }
    stdout, _, error = run("rb_status", "--json")
    assert error is not None
    rows = json.loads(stdout)
    assert [row["up"] for row in rows] == [True, False]
    assert "wrong-Pw" not in stdout and PASSWORD not in stdout


def test_status_unknown_cluster(rb_settings: Any) -> None:
    _, _, error = run("rb_status", "--cluster", "tsdb")
    assert error is not None
    assert str(error) == "No cluster named 'tsdb' in RB_CLUSTERS; configured clusters: 'default'."


def test_status_named_cluster(rb_settings: Any, rb_nodes: list[RedisNode]) -> None:
    rb_settings.RB_CLUSTERS = {
        "default": {"hosts": [rb_nodes[0].url()]},
        "tsdb": {"hosts": [rb_nodes[2].url(db=4), rb_nodes[3].url(db=4)]},
    }
    stdout, _, error = run("rb_status", "--cluster", "tsdb", "--json")
    assert error is None
    assert [(row["address"], row["db"]) for row in json.loads(stdout)] == [
        (f"127.0.0.1:{rb_nodes[2].port}", 4),
        (f"127.0.0.1:{rb_nodes[3].port}", 4),
    ]


def test_status_exit_codes_as_a_process(spare_nodes: list[RedisNode]) -> None:
    for node in spare_nodes:
        node.start()
    done = manage(spare_nodes, "rb_status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "3 of 3 hosts up."
    spare_nodes[0].stop()
    try:
        done = manage(spare_nodes, "rb_status")
    finally:
        spare_nodes[0].start()
    assert done.returncode == 1
    assert "1 of 3 hosts of cluster 'default' are down (host 0)." in done.stderr


# -- rb_flushall -------------------------------------------------------------------------------


def test_flushall_noinput_flushes_only_the_cluster_db(
    rb_settings: Any, rb_nodes: list[RedisNode]
) -> None:
    fill(rb_nodes, [3, 1, 0, 2])
    fill(rb_nodes[:1], [1], db=1)  # another db on the same server: not part of the cluster
    stdout, _, error = run("rb_flushall", "--noinput")
    assert error is None
    assert dbsizes(rb_nodes) == [0, 0, 0, 0]
    assert raw(rb_nodes[0], db=1).get("k0") == b"0"
    lines = stdout.splitlines()
    assert lines[0] == "Cluster 'default' has 4 hosts:"
    assert lines[1] == f"  host 0  127.0.0.1:{rb_nodes[0].port}  db 0  3 keys"
    assert lines[4] == f"  host 3  127.0.0.1:{rb_nodes[3].port}  db 0  2 keys"
    assert f"host 0  127.0.0.1:{rb_nodes[0].port}  db 0: flushed (3 keys)" in lines
    assert f"host 2  127.0.0.1:{rb_nodes[2].port}  db 0: flushed (0 keys)" in lines
    assert lines[-1] == "Flushed 4 hosts of cluster 'default'."


def test_flushall_refuses_without_a_terminal(rb_settings: Any, rb_nodes: list[RedisNode]) -> None:
    fill(rb_nodes, [1, 1, 1, 1])
    stdout, _, error = run("rb_flushall", stdin=io.StringIO("yes\n"))
    assert error is not None and "pass --noinput" in str(error)
    assert stdout == ""
    assert dbsizes(rb_nodes) == [1, 1, 1, 1]


def test_flushall_asks_and_flushes_on_yes(rb_settings: Any, rb_nodes: list[RedisNode]) -> None:
    fill(rb_nodes, [2, 2, 0, 0])
    stdout, _, error = run("rb_flushall", stdin=Terminal("yes\n"))
    assert error is None
    assert "This deletes all 4 keys of cluster 'default'" in stdout
    assert "Type 'yes' to continue: " in stdout
    assert dbsizes(rb_nodes) == [0, 0, 0, 0]


@pytest.mark.parametrize("answer", ["no\n", "y\n", "YES please\n", ""])
def test_flushall_anything_but_yes_cancels(
    rb_settings: Any, rb_nodes: list[RedisNode], answer: str
) -> None:
    fill(rb_nodes, [1, 0, 0, 1])
    stdout, _, error = run("rb_flushall", stdin=Terminal(answer))
    assert error is not None and str(error) == "Flush cancelled; nothing was deleted."
    assert dbsizes(rb_nodes) == [1, 0, 0, 1]


def test_flushall_with_a_stopped_host_fails(
    spare_settings: Any, spare_nodes: list[RedisNode]
) -> None:
    fill(spare_nodes, [2, 2, 2])
    spare_nodes[2].stop()
    stdout, _, error = run("rb_flushall", "--noinput")
    assert error is not None
    assert str(error) == "1 of 3 hosts were not flushed (host 2)."
    assert dbsizes(spare_nodes[:2]) == [0, 0]
    lines = stdout.splitlines()
    assert lines[3].startswith(f"  host 2  127.0.0.1:{spare_nodes[2].port}  db 0  unreachable: ")
    assert any(
        line.startswith(f"host 2  127.0.0.1:{spare_nodes[2].port}  db 0: FAILED: ")
        for line in lines
    )
    spare_nodes[2].start()  # a fresh, empty server (no persistence): nothing to check there


def test_flushall_never_shows_a_password(
    secured_settings: Any, secured_nodes: list[RedisNode]
) -> None:
    fill(secured_nodes, [1, 1])
    stdout, stderr, error = run("rb_flushall", "--noinput")
    assert error is None and dbsizes(secured_nodes) == [0, 0]
    secured_nodes[1].stop()
    stdout2, stderr2, error = run("rb_flushall", "--noinput")
    assert error is not None
    assert PASSWORD not in stdout + stderr + stdout2 + stderr2 + str(error)


def test_flushall_as_a_process_without_a_terminal(spare_nodes: list[RedisNode]) -> None:
    for node in spare_nodes:
        node.start()
    fill(spare_nodes, [1, 1, 1])
    done = manage(spare_nodes, "rb_flushall", input="yes\n")
    assert done.returncode == 1
    assert "stdin is not a terminal" in done.stderr and "--noinput" in done.stderr
    assert dbsizes(spare_nodes) == [1, 1, 1]
    done = manage(spare_nodes, "rb_flushall", "--noinput", stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert dbsizes(spare_nodes) == [0, 0, 0]


def test_flushall_as_a_process_on_a_terminal(spare_nodes: list[RedisNode]) -> None:
    for node in spare_nodes:
        node.start()
    fill(spare_nodes, [1, 2, 3])
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "django", "rb_flushall"],
            cwd=ROOT,
            env=subprocess_env(spare_nodes),
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(terminal)
        os.write(controller, b"yes\n")
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        os.close(controller)
    assert proc.returncode == 0, stderr
    assert "This deletes all 6 keys of cluster 'default'" in stdout
    assert dbsizes(spare_nodes) == [0, 0, 0]


def test_status_on_a_unix_socket(settings: Any, redis_nodes: Any) -> None:
    (node,) = redis_nodes(1, unix_socket=True)
    settings.RB_CLUSTERS = {"default": {"hosts": f"unix://{node.socket_path}?db=2"}}
    stdout, _, error = run("rb_status", "--json")
    assert error is None
    (row,) = json.loads(stdout)
    assert (row["address"], row["db"], row["up"]) == (f"unix:{node.socket_path}", 2, True)


# -- --cache ALIAS: caches whose LOCATION lists URLs ------------------------------------------


@pytest.fixture
def url_cache(spare_settings: Any, spare_nodes: list[RedisNode]) -> Any:
    spare_settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sharded": {
            "BACKEND": "django_rb.cache.RBCache",
            "LOCATION": [node.url(3) for node in spare_nodes],
        },
    }
    return spare_settings


def test_status_and_flushall_reach_a_cache_with_url_locations(
    url_cache: Any, spare_nodes: list[RedisNode]
) -> None:
    from django.core.cache import caches

    caches["sharded"].set_many({f"k{i}": i for i in range(30)})
    fill(spare_nodes, [2, 2, 2], db=0)  # the cluster in RB_CLUSTERS (db 0) is not touched
    stdout, _, error = run("rb_status", "--cache", "sharded", "--json")
    assert error is None
    rows = json.loads(stdout)
    assert [row["db"] for row in rows] == [3, 3, 3]
    assert sum(row["keys"] for row in rows) == 30
    stdout, _, error = run("rb_flushall", "--cache", "sharded", "--noinput")
    assert error is None and "Flushed 3 hosts of cache 'sharded'." in stdout
    assert dbsizes(spare_nodes, db=3) == [0, 0, 0]
    assert dbsizes(spare_nodes, db=0) == [2, 2, 2]


def test_cache_option_names_what_is_wrong(url_cache: Any) -> None:
    _, _, error = run("rb_status", "--cache", "nope")
    assert error is not None and "No cache named 'nope'" in str(error)
    assert "'default', 'sharded'" in str(error)
    _, _, error = run("rb_flushall", "--cache", "default", "--noinput")
    assert error is not None and "LocMemCache, not an RBCache" in str(error)
    url_cache.CACHES = {"bad": {"BACKEND": "django_rb.cache.RBCache", "LOCATION": "a,b"}}
    _, _, error = run("rb_status", "--cache", "bad", skip_checks=True)
    assert error is not None and "django_rb.E015" in str(error)
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command("rb_status", "--cache", "x", "--cluster", "y")


# -- rb_flushall and arguments, from the Django-layer review ----------------------------------


def test_flushall_when_a_host_dies_between_listing_and_flush(
    spare_settings: Any, spare_nodes: list[RedisNode]
) -> None:
    for node in spare_nodes:
        raw(node).set("k", 1)

    class StopsANodeWhenAnswering(Terminal):
        def readline(self, *args: Any) -> str:
            spare_nodes[2].stop()
            return "yes\n"

    stdout, _, error = run("rb_flushall", stdin=StopsANodeWhenAnswering())
    assert error is not None and str(error) == "1 of 3 hosts were not flushed (host 2)."
    assert "This deletes all 3 keys of cluster 'default'" in stdout
    assert f"host 2  127.0.0.1:{spare_nodes[2].port}  db 0: FAILED: " in stdout
    assert stdout.count(": flushed (1 keys)") == 2
    assert [raw(node).dbsize() for node in spare_nodes[:2]] == [0, 0]


def test_flushall_unknown_cluster_touches_nothing(
    spare_settings: Any, spare_nodes: list[RedisNode]
) -> None:
    raw(spare_nodes[0]).set("k", 1)
    stdout, _, error = run("rb_flushall", "--cluster", "tsdb", "--noinput")
    assert error is not None
    assert str(error) == "No cluster named 'tsdb' in RB_CLUSTERS; configured clusters: 'default'."
    assert stdout == "" and raw(spare_nodes[0]).dbsize() == 1
    _, _, error = run("rb_flushall", "--cluster", "", "--noinput")
    assert error is not None and "No cluster named ''" in str(error)


def test_flushall_leaves_another_clusters_db_on_the_same_servers(
    spare_settings: Any, spare_nodes: list[RedisNode]
) -> None:
    spare_settings.RB_CLUSTERS = {
        "default": {"hosts": [node.url(0) for node in spare_nodes]},
        "other": {"hosts": [node.url(1) for node in spare_nodes]},
    }
    for node in spare_nodes:
        raw(node, 0).set("a", 1)
        raw(node, 1).set("b", 1)
    stdout, _, error = run("rb_flushall", "--cluster", "other", "--noinput")
    assert error is None and stdout.splitlines()[-1] == "Flushed 3 hosts of cluster 'other'."
    assert all("db 1" in line for line in stdout.splitlines()[1:4])
    assert [raw(n, 0).dbsize() for n in spare_nodes] == [1, 1, 1]
    assert [raw(n, 1).dbsize() for n in spare_nodes] == [0, 0, 0]


def test_status_invalid_timeout_and_cluster_arguments(
    spare_settings: Any, spare_nodes: list[RedisNode]
) -> None:
    with pytest.raises(CommandError, match="not a number of seconds"):
        call_command("rb_status", "--timeout", "soon", stdout=io.StringIO())
    for bad in ("0", "-1"):
        with pytest.raises(CommandError, match="must be more than 0 seconds"):
            call_command("rb_flushall", "--noinput", "--timeout", bad, stdout=io.StringIO())
    stdout, _, error = run("rb_status", "--cluster", "default", "--json", "--timeout", "2")
    assert error is None and len(json.loads(stdout)) == 3


# -- --timeout with a stalled node: the others are not held up ---------------------------------


def test_status_with_a_stalled_node_never_holds_up_the_healthy_ones(
    spare_settings: Any, spare_nodes: list[RedisNode]
) -> None:
    for _ in range(3):  # fresh pools each time: connecting is part of what is timed
        spare_settings.RB_CLUSTERS = {
            "default": {"hosts": [node.url() for node in spare_nodes], "pool_options": {}}
        }
        spare_nodes[1].pause()
        try:
            started = time.monotonic()
            stdout, _, error = run("rb_status", "--json", "--timeout", "0.1")
            took = time.monotonic() - started
        finally:
            spare_nodes[1].resume()
        rows = json.loads(stdout)
        assert [row["up"] for row in rows] == [True, False, True], rows
        assert error is not None and "(host 1)" in str(error)
        assert all(row["rtt_ms"] < 100 for row in (rows[0], rows[2])), rows  # not ~1 s
        assert took < 1.0
        spare_settings.RB_CLUSTERS = {"default": {"hosts": [n.url() for n in spare_nodes]}}


def test_status_with_a_tiny_timeout_treats_every_healthy_node_alike(
    spare_settings: Any, spare_nodes: list[RedisNode]
) -> None:
    outcomes = []
    for attempt in range(3):
        spare_settings.RB_CLUSTERS = {
            "default": {"hosts": [node.url() for node in spare_nodes], "router": "partition"}
            if attempt % 2
            else {"hosts": [node.url() for node in spare_nodes]}
        }
        stdout, _, _ = run("rb_status", "--json", "--timeout", "0.01")
        outcomes.append([row["up"] for row in json.loads(stdout)])
    # serial connects gave the first node the whole budget and the last ones none
    assert all(len(set(up)) == 1 for up in outcomes), outcomes
