"""get_cluster(): one Cluster per name per process, rebuilt on settings change, closed at exit."""

from __future__ import annotations

import json
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
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_rb import get_cluster
from django_rb.testing import RedisNode
from tests.django_support import raw_client, run_merged

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def own_nodes(redis_nodes: Any) -> list[RedisNode]:
    """Nodes only this module connects to, so connection counts are ours alone."""
    return redis_nodes(2)


def named_connections(node: RedisNode, name: str) -> int:
    probe = redis.Redis(port=node.port, socket_timeout=5)
    try:
        return sum(1 for client in probe.client_list() if client["name"] == name)
    finally:
        probe.close()


def wait_for_connections(node: RedisNode, name: str, count: int) -> int:
    """Connection closes reach the server asynchronously; wait a little for ``count``."""
    deadline = time.monotonic() + 5
    seen = named_connections(node, name)
    while seen != count and time.monotonic() < deadline:
        time.sleep(0.02)
        seen = named_connections(node, name)
    return seen


def test_same_object_every_call(rb_settings: Any) -> None:
    cluster = get_cluster()
    assert get_cluster() is cluster
    assert get_cluster("default") is cluster


def test_one_cluster_per_name(rb_settings: Any, rb_nodes: list[RedisNode]) -> None:
    rb_settings.RB_CLUSTERS = {
        "default": {"hosts": [rb_nodes[0].url()]},
        "tsdb": {"hosts": [rb_nodes[1].url(), rb_nodes[2].url()]},
    }
    default, tsdb = get_cluster("default"), get_cluster("tsdb")
    assert default is not tsdb
    assert len(default.hosts) == 1 and len(tsdb.hosts) == 2
    assert get_cluster("tsdb") is tsdb


def test_threads_share_one_cluster(rb_settings: Any, rb_nodes: list[RedisNode]) -> None:
    """Many threads asking for a not-yet-built cluster at once all get the same object.

    A tiny switch interval makes the interpreter swap threads every few bytecodes, so an
    unlocked check-then-build would hand out several clusters within a few rounds.
    """
    threads_count, rounds = 16, 20
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for round_number in range(rounds):
            # A new setting value each round: the cluster must be built again, concurrently.
            rb_settings.RB_CLUSTERS = {"default": {"hosts": [rb_nodes[round_number % 4].url()]}}
            barrier = threading.Barrier(threads_count)
            seen: list[Any] = []

            def worker(barrier: threading.Barrier = barrier, seen: list[Any] = seen) -> None:
                barrier.wait()
                seen.append(get_cluster())

            threads = [threading.Thread(target=worker) for _ in range(threads_count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(seen) == threads_count
            assert len({id(cluster) for cluster in seen}) == 1, f"round {round_number}"
    finally:
        sys.setswitchinterval(old_interval)


def test_override_settings_rebuilds(rb_settings: Any, own_nodes: list[RedisNode]) -> None:
    outer = get_cluster()
    with override_settings(RB_CLUSTERS={"default": {"hosts": [own_nodes[0].url(db=5)]}}):
        inner = get_cluster()
        assert inner is not outer
        assert [h.address for h in inner.hosts.values()] == [f"127.0.0.1:{own_nodes[0].port}/5"]
        inner.get_local_client(0).set("inside", "1")
        probe = redis.Redis(port=own_nodes[0].port, db=5)
        assert probe.get("inside") == b"1"
        probe.close()
    after = get_cluster()
    assert after is not inner
    assert len(after.hosts) == 4


def test_settings_change_disconnects_the_old_pools(
    settings: Any, own_nodes: list[RedisNode]
) -> None:
    name = "rb-old-pool"
    settings.RB_CLUSTERS = {
        "default": {"hosts": [own_nodes[1].url()], "pool_options": {"client_name": name}}
    }
    old = get_cluster()
    old.get_local_client(0).ping()
    assert wait_for_connections(own_nodes[1], name, 1) == 1
    settings.RB_CLUSTERS = {"default": {"hosts": [own_nodes[0].url()]}}
    assert wait_for_connections(own_nodes[1], name, 0) == 0
    assert get_cluster() is not old


def test_other_settings_do_not_rebuild(rb_settings: Any) -> None:
    cluster = get_cluster()
    with override_settings(USE_TZ=False):
        assert get_cluster() is cluster


def test_unknown_name(rb_settings: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"configured clusters: 'default'\.$"):
        get_cluster("nope")


def test_pools_are_closed_at_exit(own_nodes: list[RedisNode]) -> None:
    """A handler registered before django_rb's runs after it, and sees no open connection."""
    port = own_nodes[0].port
    script = textwrap.dedent(
        f"""
        import atexit, time
        import redis

        probe = redis.Redis(port={port}, socket_timeout=5)

        def named():
            return sum(1 for c in probe.client_list() if c["name"] == "rb-atexit")

        def report():  # registered first, so it runs last
            deadline = time.monotonic() + 3
            while named() and time.monotonic() < deadline:
                time.sleep(0.02)
            print("open after exit handlers:", named(), flush=True)

        atexit.register(report)

        import django
        from django.conf import settings

        settings.configure(
            INSTALLED_APPS=["django_rb"],
            RB_CLUSTERS={{"default": {{
                "hosts": ["redis://127.0.0.1:{port}/0"],
                "pool_options": {{"client_name": "rb-atexit"}},
            }}}},
        )
        django.setup()
        from django_rb import get_cluster

        get_cluster().get_local_client(0).ping()
        print("open while running:", named(), flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["open while running: 1", "open after exit handlers: 0"]


@pytest.fixture(scope="module")
def nodes(redis_nodes: Any) -> list[RedisNode]:
    """Three nodes of this module's own (tests may stop them; ``fresh`` restarts them)."""
    return redis_nodes(3)


@pytest.fixture
def fresh(settings: Any, nodes: list[RedisNode]) -> Iterator[list[RedisNode]]:
    for node in nodes:
        node.start()
        raw_client(node).flushall()
    settings.RB_CLUSTERS = {"default": {"hosts": [node.url() for node in nodes]}}
    yield nodes
    for node in nodes:
        node.start()


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
    """After a restart the pooled sockets are stale; the next rounds reconnect."""
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
    stdout, error = run_merged("rb_status", "--json")
    assert error is None and all(row["up"] for row in json.loads(stdout))
