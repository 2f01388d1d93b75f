"""Bounded soaks: 100,000 mixed cache / rate limit / tsdb operations from 4 threads while nodes
fail under them. On 4 rb-style nodes of their own one node is restarted and another stalled for
a second; on a Redis Cluster (3 masters, one with a replica) a master is killed and its replica
takes over (CLUSTER FAILOVER TAKEOVER), and later another master is stalled for a second.

An operation is one cache key read or written, one rate-limit check or one tsdb increment;
about a fifth of the calls are batches of up to 10 (``get_many``, ``set_many``, ``consume_many``,
``incr_multi``), which makes 100,000 operations about 33,500 calls.

What must hold: the fail-open paths (cache with IGNORE_EXCEPTIONS, a FAIL_OPEN rate-limited view)
never raise; a cache read is a miss or the value written, never another; ``set_many``,
``consume_many`` and tsdb writes fail only on the faulty nodes' keys (``LimiterUnavailable``,
``TSDBWritesLost``); every tsdb counter on a node that stayed up is exact against a model, and
on a faulty node never more than was sent; file descriptors and pool sizes are flat at the end.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from redis.crc import key_slot

from django_rb import get_cluster
from django_rb.cache import RBCache
from django_rb.ratelimit import ratelimit
from django_rb.ratelimit.limiter import LimiterUnavailable, RateLimiter
from django_rb.testing import healthy, rb_clusters_setting
from django_rb.tsdb import TSDB, TSDBWritesLost
from django_rb.tsdb.keys import vnode_of

THREADS = 4
OPERATIONS = 100_000  # in all threads
BATCH = 10
RESTARTED, STALLED = 0, 1  # rb soak: node indexes; 2 and 3 stay up
ROLLUPS = [(10, 100), (3600, 24)]
TSDB_KEYS = list(range(64))
CACHE_KEYS = [f"soak-{i}" for i in range(200)]
BUCKETS = [f"soak-bucket-{i}" for i in range(100)]
# Every socket's timeout (idle and connect), the view's limiter round too. The tsdb store and
# the limiter the threads call have no round timeout: a round bounded as a whole gives up on
# commands not yet sent when a thread of a loaded machine waited that long for the CPU, even on
# healthy nodes; a socket timeout only fires on a node that really kept silent that long.
TIMEOUT = 0.5

factory = RequestFactory()

Cell = tuple[int, int, int]  # tsdb key, rollup seconds, bucket start epoch


def value_of(key: str) -> str:
    return f"value of {key}"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def pool_sizes(*clusters: Any, hosts: Any = None) -> list[tuple[int, int]]:
    """(connections made, connections in use) of every host pool (of ``hosts`` if given)."""
    sizes = []
    for cluster in clusters:
        for host_id in sorted(cluster.hosts if hosts is None else hosts):
            pool = cluster.get_pool_for_host(host_id)
            sizes.append((pool._created_connections, len(pool._in_use_connections)))
    return sizes


def cell_key(store: TSDB, cell: Cell) -> str:
    """The Redis key of the hash holding one counter cell (the layout in docs/tsdb.md)."""
    key, seconds, epoch = cell
    rollup = next(r for r in store.rollups if r.seconds == seconds)
    block = rollup.block_start(epoch // seconds)
    return store.names.counter_hash("soak", seconds, block * seconds, vnode_of(key, store.vnodes))


@dataclass
class Write:
    """One tsdb write call: when it ran, what it added per cell, which cells it lost."""

    start: float
    end: float
    cells: Counter[Cell]
    lost: set[Cell]
    why: str = ""  # the error, when it lost some


@dataclass
class Apps:
    """What the threads call, and which Redis keys live where a fault may strike."""

    cache: RBCache
    store: TSDB
    limiter: RateLimiter
    view: Callable[[HttpRequest], HttpResponse]
    fault_of: Callable[[str], str]  # a Redis key -> the fault its node suffers ("" for none)
    done: list[int] = field(default_factory=lambda: [0])  # operations finished, all threads

    def faulty(self, name: str) -> bool:
        return self.fault_of(name) != ""

    def faulty_cache_key(self, key: str) -> bool:
        return self.faulty(self.cache.make_key(key))


class Worker(threading.Thread):
    """One thread's share of the mix; records its tsdb writes and every surprise."""

    def __init__(self, seed: int, apps: Apps, share: int):
        super().__init__(daemon=True)
        self.rng = random.Random(seed)
        self.apps, self.share = apps, share
        self.writes: list[Write] = []
        self.surprises: list[str] = []
        self.calls = self.operations = 0
        self.batch = BATCH  # the last batches shrink so that the share comes out exact
        self.base = int(time.time()) - 30

    def run(self) -> None:
        done = 0
        while done < self.share:
            self.batch = min(BATCH, self.share - done)
            try:
                ops = self.step()
            except Exception as error:  # noqa: BLE001  (anything raised is a finding)
                self.surprises.append(f"{type(error).__name__}: {error}")
                ops = 1
            done += ops
            self.calls += 1
            self.apps.done[0] += ops  # a race on += only ever undercounts: fine here
        self.operations = done

    def step(self) -> int:
        """One call of the mix; returns how many operations it made."""
        rng, cache = self.rng, self.apps.cache
        roll = rng.random()
        if roll < 0.18:
            key = rng.choice(CACHE_KEYS)
            cache.set(key, value_of(key))
        elif roll < 0.34:
            key = rng.choice(CACHE_KEYS)
            got = cache.get(key)
            if got not in (None, value_of(key)):
                self.surprises.append(f"{key} read {got!r}")
        elif roll < 0.41:
            self.get_many()
            return self.batch
        elif roll < 0.45:
            self.set_many()
            return self.batch
        elif roll < 0.65:
            status = self.apps.view(self.request()).status_code
            if status not in (200, 429):
                self.surprises.append(f"rate-limited view answered {status}")
        elif roll < 0.68:
            self.consume_many()
            return self.batch
        elif roll < 0.92:
            self.incr([rng.choice(TSDB_KEYS)])
        else:
            self.incr(rng.sample(TSDB_KEYS, self.batch))
            return self.batch
        return 1

    def get_many(self) -> None:
        keys = self.rng.sample(CACHE_KEYS, self.batch)
        for key, got in self.apps.cache.get_many(keys).items():
            if got != value_of(key):
                self.surprises.append(f"{key} read {got!r} in get_many")

    def set_many(self) -> None:
        keys = self.rng.sample(CACHE_KEYS, self.batch)
        failed = self.apps.cache.set_many({key: value_of(key) for key in keys})
        healthy = [k for k in failed if k not in keys or not self.apps.faulty_cache_key(k)]
        if healthy:
            self.surprises.append(f"set_many failed keys of healthy nodes {healthy}")

    def consume_many(self) -> None:
        limiter = self.apps.limiter
        buckets = self.rng.sample(BUCKETS, self.batch)
        try:
            decisions = limiter.consume_many([(bucket, "500/s") for bucket in buckets])
        except LimiterUnavailable as unavailable:
            undecided = [
                b for b, d in zip(buckets, unavailable.decisions, strict=True) if d is None
            ]
            healthy = [b for b in undecided if not self.apps.faulty(f"{limiter.prefix}:{b}")]
            if healthy:
                self.surprises.append(f"limits of healthy nodes undecided {healthy}")
            return
        if len(decisions) != len(buckets):
            self.surprises.append(f"{len(decisions)} decisions for {len(buckets)} limits")

    def request(self) -> HttpRequest:
        return factory.get(
            "/", REMOTE_ADDR=f"10.0.{self.rng.randint(0, 3)}.{self.rng.randint(1, 50)}"
        )

    def incr(self, keys: list[int]) -> None:
        """``incr`` for one key, ``incr_multi`` for several (each at its own time)."""
        items, cells = [], Counter[Cell]()
        for key in keys:
            count, epoch = self.rng.randint(1, 3), self.base + self.rng.randint(0, 20)
            items.append(("soak", key, {"timestamp": epoch, "count": count}))
            for seconds, _kept in ROLLUPS:
                cells[key, seconds, epoch // seconds * seconds] += count
        lost: set[Cell] = set()
        why, start = "", time.monotonic()
        try:
            if len(items) == 1:
                _, key, extra = items[0]
                self.apps.store.incr("soak", key, **extra)
            else:
                self.apps.store.incr_multi(items)
        except TSDBWritesLost as error:
            lost = {(w.key, w.rollup, w.epoch) for w in error.lost}
            why = f"{error.host_ids}: {error.__cause__}"
            unknown = lost - set(cells)
            if unknown:
                self.surprises.append(f"lost cells never written {sorted(unknown)[:3]}")
        self.writes.append(Write(start, time.monotonic(), cells, lost, why))


class Soak:
    """The threads, started together; the test waits for milestones and inflicts faults."""

    def __init__(self, apps: Apps) -> None:
        self.apps = apps
        self.workers = [Worker(seed, apps, OPERATIONS // THREADS) for seed in range(THREADS)]
        self.started = time.monotonic()
        for worker in self.workers:
            worker.start()

    def wait_for(self, operations: int) -> None:
        while self.apps.done[0] < operations and any(w.is_alive() for w in self.workers):
            time.sleep(0.01)

    def finish(self) -> float:
        """Join the threads; the seconds the soak took."""
        for worker in self.workers:
            worker.join(timeout=240)
        assert not any(w.is_alive() for w in self.workers), "a worker hung"
        surprises = [s for w in self.workers for s in w.surprises]
        assert surprises == [], surprises[:10]
        assert sum(w.operations for w in self.workers) == OPERATIONS
        return time.monotonic() - self.started

    @property
    def writes(self) -> list[Write]:
        return [write for worker in self.workers for write in worker.writes]

    def stored(self) -> dict[Cell, int]:
        """Every counter cell written, as the store reads it now."""
        store, cells = self.apps.store, {c for w in self.writes for c in w.cells}
        got = {}
        for seconds, _kept in ROLLUPS:
            epochs = [epoch for _, s, epoch in cells if s == seconds]
            points = store.get_range("soak", TSDB_KEYS, min(epochs), max(epochs), rollup=seconds)
            for key, series in points.items():
                got.update({(key, seconds, epoch): count for epoch, count in series})
        return got


def check_counters(
    run: Soak, fault_of: Callable[[str], str], keeps: Callable[[str, Write], bool]
) -> None:
    """Every tsdb cell against the model. ``fault_of`` names the fault that struck the node
    holding a Redis key ("" for none); ``keeps(fault, write)`` says whether that node must
    hold a confirmed write. A node that stayed up holds exactly what was sent and lost
    nothing; a faulty one at least what it must keep, never more than was sent (nothing
    applied twice)."""
    store, writes = run.apps.store, run.writes
    fault = {c: fault_of(cell_key(store, c)) for w in writes for c in w.cells}
    lost_on_stable = [w.why for w in writes if any(not fault[c] for c in w.lost)]
    assert lost_on_stable == []  # only the faulty nodes ever lost a write
    sent, kept = Counter[Cell](), Counter[Cell]()
    for write in writes:
        sent.update(write.cells)
        kept.update({c: n for c, n in write.cells.items()
                     if c not in write.lost and keeps(fault[c], write)})  # fmt: skip
    got = run.stored()
    stable = [cell for cell in sent if not fault[cell]]
    assert {cell: got.get(cell, 0) for cell in stable} == {cell: sent[cell] for cell in stable}
    assert len(stable) > 40  # the stable nodes did hold part of the counters
    outside = {c: (kept[c], got.get(c, 0), sent[c]) for c in sent
               if fault[c] and not kept[c] <= got.get(c, 0) <= sent[c]}  # fmt: skip
    assert outside == {}, list(outside.items())[:5]  # cell: (must keep, read, sent)
    for name in set(fault.values()) - {""}:  # each faulty node kept some confirmed writes
        assert sum(n for c, n in kept.items() if fault[c] == name) > 0, name


def check_cache(apps: Apps) -> None:
    """Every key on a node that stayed up reads the value written (each was written many
    times, and every write is the same value)."""
    stable = [key for key in CACHE_KEYS if not apps.faulty_cache_key(key)]
    assert len(stable) > len(CACHE_KEYS) // 5
    assert apps.cache.get_many(stable) == {key: value_of(key) for key in stable}


def make_apps(cache: RBCache, cluster: Any, fault_of: Callable[[str], str]) -> Apps:
    @ratelimit(rate="200/s", group="soak", key="ip")
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    store = TSDB(cluster, rollups=ROLLUPS, vnodes=16)
    limiter = RateLimiter(cluster, prefix="rl-soak")
    return Apps(cache, store, limiter, view, fault_of)


def assert_nothing_leaked(pools_end: Any, fds_warm: int, pools_warm: Any) -> None:
    """No connection still checked out, none made beyond a thread's worth per pool, and no
    descriptors beyond the warm state's but for connections the pools made since (a socket
    broken by a fault was closed, not left open)."""
    assert all(in_use == 0 for _, in_use in pools_end), pools_end
    assert all(made <= THREADS + 1 for made, _ in pools_end), (pools_warm, pools_end)
    grown = sum(made for made, _ in pools_end) - sum(made for made, _ in pools_warm)
    assert open_fds() <= fds_warm + grown + 2, (fds_warm, grown, open_fds())


CACHE_OPTIONS = {"IGNORE_EXCEPTIONS": True, "LOG_IGNORED_EXCEPTIONS": False,
                 "SOCKET_TIMEOUT": TIMEOUT, "SOCKET_CONNECT_TIMEOUT": TIMEOUT}  # fmt: skip


# -- rb-style nodes: one restarted, one stalled -------------------------------------------------


@pytest.fixture(scope="module")
def soak_nodes(redis_nodes: Any) -> list[Any]:
    return redis_nodes(4)


@pytest.fixture
def soak(settings: Any, soak_nodes: list[Any]) -> Iterator[list[Any]]:
    with healthy(soak_nodes):
        settings.RB_CLUSTERS = rb_clusters_setting(
            soak_nodes, pool_options={"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT}
        )
        settings.RB_RATELIMIT = {"CLUSTER": "default", "FAIL_OPEN": True, "TIMEOUT": TIMEOUT}
        yield soak_nodes


def test_soak_with_a_restart_and_a_stall(soak: list[Any]) -> None:
    """The restarted node must hold every confirmed write sent after it was back (it came
    back empty); the stalled one every confirmed write (a stall loses nothing)."""
    cache = RBCache([node.url(0) for node in soak], {"OPTIONS": CACHE_OPTIONS})
    cluster = get_cluster("default")
    router = cluster.get_router()
    assert cache.cluster.get_router().get_host_for_key("x") == router.get_host_for_key("x")
    faults = {RESTARTED: "restarted", STALLED: "stalled"}

    def fault_of(name: str) -> str:
        return faults.get(router.get_host_for_key(name), "")

    apps = make_apps(cache, cluster, fault_of)
    run = Soak(apps)
    run.wait_for(OPERATIONS // 10)  # warmed up: every pool has its connections
    fds_warm, pools_warm = open_fds(), pool_sizes(cache.cluster, cluster)
    run.wait_for(OPERATIONS // 3)
    soak[RESTARTED].stop()
    time.sleep(0.3)
    soak[RESTARTED].start()
    back = time.monotonic()
    run.wait_for(OPERATIONS * 2 // 3)
    soak[STALLED].pause()
    time.sleep(1.0)
    soak[STALLED].resume()
    at_resume = apps.done[0]
    elapsed = run.finish()
    assert at_resume < OPERATIONS  # both faults happened while the threads were running

    check_counters(run, fault_of, lambda fault, w: fault == "stalled" or w.start > back)
    check_cache(apps)
    assert_nothing_leaked(pool_sizes(cache.cluster, cluster), fds_warm, pools_warm)
    assert elapsed < 240


# -- Redis Cluster: a master killed, its replica takes over ------------------------------------


def test_soak_on_redis_cluster_with_a_failover(settings: Any, redis_cluster_nodes: Any) -> None:
    """A master is killed and, half a second later, its replica takes over; later another
    master stalls for a second. What the failover may lose, precisely: a write confirmed
    before the checkpoint (a WAIT on the master: the replica holds everything applied before
    it) or sent after the kill (only the new master can apply it) is never lost; one
    confirmed in between may be (asynchronous replication); one reported lost may or may not
    have landed. The stalled master loses nothing confirmed; the third one is exact."""
    setup = redis_cluster_nodes(3, 1)
    master, replica, stalled = setup.masters[0], setup.replicas[0], setup.masters[1]
    pool_options = {"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT}
    settings.RB_CLUSTERS = {
        "default": {"is_redis_cluster": True, "hosts": setup.startup_nodes(),
                    "pool_options": pool_options},
    }  # fmt: skip
    settings.RB_RATELIMIT = {"CLUSTER": "default", "FAIL_OPEN": True, "TIMEOUT": TIMEOUT}
    cluster = get_cluster("default")
    cache = RBCache("default", {"OPTIONS": {"IGNORE_EXCEPTIONS": True,
                                            "LOG_IGNORED_EXCEPTIONS": False}})  # fmt: skip
    assert cache.cluster is cluster
    owners = cluster.slot_map.owners  # before the failover
    faults = {f"127.0.0.1:{master.port}": "failed", f"127.0.0.1:{stalled.port}": "stalled"}
    assert set(faults) <= set(owners)

    def fault_of(name: str) -> str:  # by the slot's owner before the failover
        return faults.get(owners[key_slot(name.encode())], "")

    apps = make_apps(cache, cluster, fault_of)
    probe, promote = setup.client(master), setup.client(replica)  # opened before the warm count
    probe.ping(), promote.ping()
    run = Soak(apps)
    run.wait_for(OPERATIONS // 10)
    masters_warm = sorted(cluster.hosts)
    fds_warm, pools_warm = open_fds(), pool_sizes(cluster, hosts=masters_warm)
    run.wait_for(OPERATIONS // 3)
    checkpoint = time.monotonic()
    probe.set("{soak-probe}", 1)  # any key: WAIT covers all the master applied before it
    assert probe.wait(1, 2000) == 1
    master.kill()
    killed = time.monotonic()
    time.sleep(0.5)  # a dead master, no failover yet (well within the node timeout)
    promote.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
    setup.wait_ok(without=(master,))
    run.wait_for(OPERATIONS * 2 // 3)
    stalled.pause()
    time.sleep(1.0)
    stalled.resume()
    at_resume = apps.done[0]
    elapsed = run.finish()
    assert at_resume < OPERATIONS
    probe.close(), promote.close()

    def keeps(fault: str, write: Write) -> bool:
        return fault == "stalled" or write.end < checkpoint or write.start > killed

    check_counters(run, fault_of, keeps)
    check_cache(apps)
    assert f"127.0.0.1:{master.port}" not in cluster.hosts
    assert f"127.0.0.1:{replica.port}" in cluster.hosts
    hosts = sorted({*masters_warm, *cluster.hosts})
    assert_nothing_leaked(pool_sizes(cluster, hosts=hosts), fds_warm, pools_warm)
    assert elapsed < 240
