"""Benchmark: fetch N keys spread over K Redis nodes, django_rb map() against the alternatives.

Run from the repository root with the project's venv (see docs/benchmarks.md)::

    .venv/bin/python bench/bench_map.py             # plain tables, then --delay-us 250 tables
    .venv/bin/python bench/bench_map.py --quick     # a fast smoke run
    .venv/bin/python bench/bench_map.py --delay-us 500 --json out.json

It starts its own redis-server nodes on free ports (never 6379) and stops them by pid at the
end. rb 1.11 runs in its own virtualenv (``.rbbench/rbvenv``, created on first use) as a
subprocess against the same nodes; if that venv cannot be built its rows stay blank.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import hiredis
import redis
from stalled import measure_stalled, print_stalled
from timing import (
    HASH_FIELD,
    Budget,
    bench_hash_key,
    bench_key,
    bench_value,
    median_ms,
    rb_partition_host,
)

from django_rb.testing import NodeRegistry, RedisNode

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RB_VENV = os.path.join(ROOT, ".rbbench", "rbvenv")
RB_REQUIREMENTS = ["rb==1.11.0", "redis<5", "hiredis"]
VALUE_SIZE = 100

PLAIN_K = (1, 4, 8)
PLAIN_N = (10, 100, 1000)
QUICK_K = (1, 4)
QUICK_N = (10, 1000)
DELAY_K = (1, 2, 4, 8)
QUICK_DELAY_K = (1, 8)
DELAY_N = 1000
RATIO_CELL = (4, 1000)

# Row labels, in table order.
DJ_PARTITION = "django_rb map() partition"
DJ_KETAMA = "django_rb map() ketama"
NAIVE = "naive GET per key"
SEQ_PIPES = "pipelines, node after node"
THREAD_PIPES = "pipelines, thread per node"
RAW_FLOOR = "raw MGET floor (hiredis)"
RB_PARTITION = "rb 1.11 map() partition"
RB_KETAMA = "rb 1.11 map() ketama"
PLAIN_ROWS = (
    DJ_PARTITION,
    DJ_KETAMA,
    NAIVE,
    SEQ_PIPES,
    THREAD_PIPES,
    RAW_FLOOR,
    RB_PARTITION,
    RB_KETAMA,
)
DELAY_ROWS = (DJ_PARTITION, DJ_KETAMA, SEQ_PIPES, THREAD_PIPES, RAW_FLOOR, RB_PARTITION)
RB_ROUTER_ROWS = {"partition": RB_PARTITION, "ketama": RB_KETAMA}

# The per-command table: commands that no auto-batching folds, N = 1000 over K = 4.
PER_COMMAND_CELL = (4, 1000)
HGETS = "1,000 HGETs"
UNBATCHED_GETS = "1,000 GETs, auto_batch=False"
FOLDED_GETS = "1,000 GETs, folded (reference)"
PER_COMMAND_ROWS = (HGETS, UNBATCHED_GETS, FOLDED_GETS)
PC_DJANGO_RB = "django_rb map()"
PC_RB = "rb 1.11 map()"
PC_FLOOR = "hand-packed floor"
PER_COMMAND_COLUMNS = (PC_DJANGO_RB, PC_RB, PC_FLOOR)

Fetcher = Callable[[list[str]], list[Any]]


def cell_name(k: int, n: int) -> str:
    return f"K={k},N={n}"


def notice(message: str) -> None:
    print(f"NOTICE: {message}", file=sys.stderr, flush=True)


# -- the ways to fetch ------------------------------------------------------------------------


class Method:
    """One way of fetching keys from K nodes; ``fetch(keys)`` returns values in key order."""

    def fetch(self, keys: list[str]) -> list[Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections and threads."""


class DjangoRbMap(Method):
    """django_rb's rb-compatible ``cluster.map()``: one promise per GET."""

    def __init__(self, ports: list[int], ketama: bool = False) -> None:
        from django_rb.cluster import Cluster, ConsistentHashingRouter  # noqa: PLC0415

        hosts = {i: {"host": "127.0.0.1", "port": port} for i, port in enumerate(ports)}
        router_cls = ConsistentHashingRouter if ketama else None
        self.cluster = Cluster(hosts, router_cls=router_cls)

    def fetch(self, keys: list[str]) -> list[Any]:
        with self.cluster.map() as client:
            promises = [client.get(key) for key in keys]
        return [p.value for p in promises]

    def close(self) -> None:
        self.cluster.disconnect_pools()


class _PerNodeClients(Method):
    """A redis-py client per node; keys routed like rb's partition router."""

    def __init__(self, ports: list[int]) -> None:
        self.clients = [redis.Redis(host="127.0.0.1", port=port) for port in ports]

    def groups(self, keys: list[str]) -> dict[int, list[int]]:
        """Key positions per node index."""
        count = len(self.clients)
        out: dict[int, list[int]] = {}
        for pos, key in enumerate(keys):
            out.setdefault(rb_partition_host(key, count), []).append(pos)
        return out

    def node_pipeline(self, node: int, keys: list[str], positions: list[int]) -> list[Any]:
        pipe = self.clients[node].pipeline(transaction=False)
        for pos in positions:
            pipe.get(keys[pos])
        return pipe.execute()

    def close(self) -> None:
        for client in self.clients:
            client.close()
            client.connection_pool.disconnect()


class NaiveGet(_PerNodeClients):
    """One blocking GET round trip per key."""

    def fetch(self, keys: list[str]) -> list[Any]:
        count = len(self.clients)
        clients = self.clients
        return [clients[rb_partition_host(key, count)].get(key) for key in keys]


class SequentialPipelines(_PerNodeClients):
    """One non-transactional pipeline per node, the nodes one after another."""

    def fetch(self, keys: list[str]) -> list[Any]:
        out: list[Any] = [None] * len(keys)
        for node, positions in self.groups(keys).items():
            for pos, value in zip(
                positions, self.node_pipeline(node, keys, positions), strict=True
            ):
                out[pos] = value
        return out


class ThreadedPipelines(_PerNodeClients):
    """The Nydus way: per-node pipelines run at once on a thread pool, one thread per node."""

    def __init__(self, ports: list[int]) -> None:
        super().__init__(ports)
        self.pool = ThreadPoolExecutor(max_workers=len(ports))

    def fetch(self, keys: list[str]) -> list[Any]:
        out: list[Any] = [None] * len(keys)
        jobs = [
            (positions, self.pool.submit(self.node_pipeline, node, keys, positions))
            for node, positions in self.groups(keys).items()
        ]
        for positions, future in jobs:
            for pos, value in zip(positions, future.result(), strict=True):
                out[pos] = value
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        super().close()


class _RawSockets(Method):
    """A plain socket per node, registered with a selector: what the floors write to."""

    def __init__(self, ports: list[int]) -> None:
        self.socks: list[socket.socket] = []
        self.selector = selectors.DefaultSelector()
        for node, port in enumerate(ports):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.socks.append(sock)
            self.selector.register(sock, selectors.EVENT_READ, node)

    def group(self, keys: list[str]) -> tuple[list[bytes], dict[int, list[int]]]:
        """The keys as bytes, and their positions per node (rb's partition rule)."""
        count = len(self.socks)
        positions: dict[int, list[int]] = {}
        encoded = [key.encode() for key in keys]
        for pos, key in enumerate(encoded):
            positions.setdefault(rb_partition_host(key, count), []).append(pos)
        return encoded, positions

    def close(self) -> None:
        self.selector.close()
        for sock in self.socks:
            sock.close()


class RawMgetFloor(_RawSockets):
    """The floor: one hand-encoded MGET per node, all sent before any read, hiredis parsing."""

    @staticmethod
    def encode_mget(keys: Iterable[bytes], count: int) -> bytes:
        parts = [b"*%d\r\n$4\r\nMGET\r\n" % (count + 1)]
        for key in keys:
            parts.append(b"$%d\r\n%s\r\n" % (len(key), key))
        return b"".join(parts)

    def fetch(self, keys: list[str]) -> list[Any]:
        encoded, positions = self.group(keys)
        readers: dict[int, hiredis.Reader] = {}
        for node, pos_list in positions.items():
            self.socks[node].sendall(
                self.encode_mget((encoded[p] for p in pos_list), len(pos_list))
            )
            readers[node] = hiredis.Reader()
        out: list[Any] = [None] * len(keys)
        while readers:
            for selkey, _events in self.selector.select():
                node = selkey.data
                reader = readers.get(node)
                if reader is None:
                    continue
                data = self.socks[node].recv(1 << 20)
                if not data:
                    raise ConnectionError(f"node {node} closed the connection")
                reader.feed(data)
                reply = reader.gets()
                if reply is False:
                    continue
                for pos, value in zip(positions[node], reply, strict=True):
                    out[pos] = value
                del readers[node]
        return out


class RawPipelineFloor(_RawSockets):
    """The per-command floor: one pipeline of single hand-encoded commands per node (``GET key``
    or ``HGET key f``), all nodes written before any read, hiredis parsing the replies."""

    def __init__(self, ports: list[int], command: bytes, field: bytes | None = None) -> None:
        super().__init__(ports)
        self.command = command
        self.field = field

    def encode(self, keys: Iterable[bytes]) -> bytes:
        name = b"$%d\r\n%s\r\n" % (len(self.command), self.command)
        if self.field is None:
            head = b"*2\r\n" + name
        else:
            head = b"*3\r\n" + name
            tail = b"$%d\r\n%s\r\n" % (len(self.field), self.field)
        parts = []
        for key in keys:
            parts.append(head + b"$%d\r\n%s\r\n" % (len(key), key))
            if self.field is not None:
                parts.append(tail)
        return b"".join(parts)

    def fetch(self, keys: list[str]) -> list[Any]:
        encoded, positions = self.group(keys)
        readers: dict[int, tuple[hiredis.Reader, list[Any]]] = {}
        for node, pos_list in positions.items():
            self.socks[node].sendall(self.encode(encoded[p] for p in pos_list))
            readers[node] = (hiredis.Reader(), [])
        out: list[Any] = [None] * len(keys)
        while readers:
            for selkey, _events in self.selector.select():
                node = selkey.data
                if node not in readers:
                    continue
                reader, replies = readers[node]
                data = self.socks[node].recv(1 << 20)
                if not data:
                    raise ConnectionError(f"node {node} closed the connection")
                reader.feed(data)
                while (reply := reader.gets()) is not False:
                    replies.append(reply)
                if len(replies) == len(positions[node]):
                    for pos, value in zip(positions[node], replies, strict=True):
                        out[pos] = value
                    del readers[node]
        return out


class DjangoRbHget(DjangoRbMap):
    """django_rb's map() with one HGET per key (``keys`` are the hash names)."""

    def fetch(self, keys: list[str]) -> list[Any]:
        with self.cluster.map() as client:
            promises = [client.hget(key, HASH_FIELD) for key in keys]
        return [p.value for p in promises]


class DjangoRbUnbatched(DjangoRbMap):
    """django_rb's map(auto_batch=False): one GET per key on the wire."""

    def fetch(self, keys: list[str]) -> list[Any]:
        with self.cluster.map(auto_batch=False) as client:
            promises = [client.get(key) for key in keys]
        return [p.value for p in promises]


def per_command_methods(
    django_rb_ok: bool,
) -> dict[tuple[str, str], tuple[Callable[[list[int]], Method], Callable[[int], str]]]:
    """(workload row, column) -> (factory taking the K ports, the i-th key of that workload)."""
    field = HASH_FIELD.encode()
    methods: dict[tuple[str, str], tuple[Callable[[list[int]], Method], Callable[[int], str]]] = {
        (HGETS, PC_FLOOR): (lambda ports: RawPipelineFloor(ports, b"HGET", field), bench_hash_key),
        (UNBATCHED_GETS, PC_FLOOR): (lambda ports: RawPipelineFloor(ports, b"GET"), bench_key),
        (FOLDED_GETS, PC_FLOOR): (RawMgetFloor, bench_key),
    }
    if django_rb_ok:
        methods[(HGETS, PC_DJANGO_RB)] = (DjangoRbHget, bench_hash_key)
        methods[(UNBATCHED_GETS, PC_DJANGO_RB)] = (DjangoRbUnbatched, bench_key)
        methods[(FOLDED_GETS, PC_DJANGO_RB)] = (DjangoRbMap, bench_key)
    return methods


def measure_per_command(
    django_rb_ok: bool, ports: list[int], budget: Budget
) -> dict[str, dict[str, float | None]]:
    """Median ms per workload row and column (rb's column is filled in by measure_rb)."""
    k, n = PER_COMMAND_CELL
    table: dict[str, dict[str, float | None]] = {row: {} for row in PER_COMMAND_ROWS}
    for (row, column), (factory, key_of) in per_command_methods(django_rb_ok).items():
        keys = [key_of(i) for i in range(n)]
        expected = [bench_value(i) for i in range(n)]
        method = factory(ports[:k])
        try:
            if method.fetch(keys) != expected:
                notice(f"{column} returned wrong values for {row}")
                table[row][column] = None
                continue
            table[row][column] = median_ms(lambda m=method, ks_=keys: m.fetch(ks_), budget)
        finally:
            method.close()
    print("  measured the per-command workloads", flush=True)
    return table


def in_process_methods(django_rb_ok: bool) -> dict[str, Callable[[list[int]], Method]]:
    """Row label -> factory taking the K node ports."""
    methods: dict[str, Callable[[list[int]], Method]] = {}
    if django_rb_ok:
        methods[DJ_PARTITION] = DjangoRbMap
        methods[DJ_KETAMA] = lambda ports: DjangoRbMap(ports, ketama=True)
    methods[NAIVE] = NaiveGet
    methods[SEQ_PIPES] = SequentialPipelines
    methods[THREAD_PIPES] = ThreadedPipelines
    methods[RAW_FLOOR] = RawMgetFloor
    return methods


# -- setup: nodes, data, the rb venv ----------------------------------------------------------


def load_data(nodes: list[RedisNode], count: int) -> None:
    """Write keys 0..count-1 (100-byte values) to every node, so any routing finds them."""
    mapping = {bench_key(i): bench_value(i) for i in range(count)}
    for node in nodes:
        client = redis.Redis(host="127.0.0.1", port=node.port)
        client.flushall()
        client.mset(mapping)
        pipe = client.pipeline(transaction=False)
        for i in range(count):
            pipe.hset(bench_hash_key(i), HASH_FIELD, bench_value(i))
        pipe.execute()
        if client.dbsize() != 2 * count:
            raise RuntimeError(f"node on port {node.port} did not take the data")
        client.close()


def rb_python(args: argparse.Namespace) -> str | None:
    """An interpreter with rb 1.11 importable: --rb-python, or .rbbench/rbvenv (made if missing)."""
    if args.no_rb:
        return None
    check = "import rb, redis; assert rb.__version__ == '1.11.0', rb.__version__"
    if args.rb_python:
        candidates = [args.rb_python]
    else:
        candidates = [os.path.join(RB_VENV, "bin", "python")]
    python = candidates[0]
    if _runs(python, check):
        return python
    if args.rb_python:
        notice(f"{python} cannot import rb 1.11; rb's rows stay blank.")
        return None
    print(
        f"Creating {os.path.relpath(RB_VENV, ROOT)} with {' '.join(RB_REQUIREMENTS)} ...",
        flush=True,
    )
    base = _which_python3()
    steps = [
        [base, "-m", "venv", RB_VENV],
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *RB_REQUIREMENTS],
    ]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            notice(f"could not build the rb venv ({' '.join(step[:3])}...): {' | '.join(tail)}")
            notice("rb's rows stay blank.")
            return None
    if _runs(python, check):
        return python
    notice("the rb venv was built but cannot import rb 1.11; rb's rows stay blank.")
    return None


def _which_python3() -> str:
    from shutil import which  # noqa: PLC0415

    return which("python3") or sys.executable


def _runs(python: str, code: str) -> bool:
    if not os.path.exists(python):
        return False
    proc = subprocess.run([python, "-c", code], capture_output=True, timeout=120)
    return proc.returncode == 0


def django_rb_available() -> bool:
    try:
        from django_rb.cluster import Cluster, ConsistentHashingRouter  # noqa: F401, PLC0415
    except ImportError as exc:
        notice(f"django_rb.cluster is not usable yet ({exc}); django_rb's rows stay blank.")
        return False
    return True


def pin_cpus(nodes: list[RedisNode]) -> dict[str, list[int]] | None:
    """Pin this process (and so rb's runner) to one CPU and the servers to the others.

    Left to the scheduler, a client and a server sometimes share a CPU and sometimes not, and a
    round trip costs quite different times in the two cases. Pinning removes that choice; on a
    busy two-CPU machine it can cost more than it saves, hence opt-in (``--pin``).
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    client, servers = cpus[:1], cpus[1:]
    for node in nodes:
        if node.pid is not None:
            os.sched_setaffinity(node.pid, set(servers))
    os.sched_setaffinity(0, set(client))
    return {"client": client, "servers": servers}


# -- measuring --------------------------------------------------------------------------------


def measure_in_process(
    methods: dict[str, Callable[[list[int]], Method]],
    ports: list[int],
    combos: list[tuple[int, int]],
    budget: Budget,
) -> dict[str, dict[str, float | None]]:
    """Median ms per method and cell; a method that returns wrong values gets None."""
    table: dict[str, dict[str, float | None]] = {}
    ks = sorted({k for k, _n in combos})
    for label, factory in methods.items():
        row: dict[str, float | None] = {}
        for k in ks:
            method = factory(ports[:k])
            try:
                for kk, n in combos:
                    if kk != k:
                        continue
                    keys = [bench_key(i) for i in range(n)]
                    expected = [bench_value(i) for i in range(n)]
                    if method.fetch(keys) != expected:
                        notice(f"{label} returned wrong values at {cell_name(k, n)}")
                        row[cell_name(k, n)] = None
                        continue
                    row[cell_name(k, n)] = median_ms(
                        lambda m=method, ks_=keys: m.fetch(ks_), budget
                    )
            finally:
                method.close()
        table[label] = row
        print(f"  measured {label}", flush=True)
    return table


def measure_rb(
    python: str,
    ports: list[int],
    combos: list[tuple[int, int]],
    routers: list[str],
    budget: Budget,
    per_command: bool = False,
) -> dict[str, dict[str, float | None]]:
    """Run bench/rb_runner.py in the rb venv; rows keyed like the in-process ones."""
    job: dict[str, Any] = {
        "ports": ports,
        "combos": combos,
        "routers": routers,
        "budget": budget.as_dict(),
    }
    if per_command:
        job["per_command"] = list(PER_COMMAND_CELL)
    proc = subprocess.run(
        [python, os.path.join(HERE, "rb_runner.py")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        notice(f"rb runner failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
        return {}
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    for what, message in answer.get("errors", {}).items():
        notice(f"rb {what}: {message}")
    print(f"  measured rb {answer.get('rb_version')} ({', '.join(routers)})", flush=True)
    rows = {RB_ROUTER_ROWS[r]: dict(answer["results"].get(r, {})) for r in routers}
    if per_command:
        rows[PC_RB] = dict(answer["results"].get("per_command", {}))
    return rows


# -- delay proxy ------------------------------------------------------------------------------


class DelayProxy:
    """bench/delay_proxy.py as a subprocess in front of the given ports."""

    def __init__(self, ports: list[int], delay_us: float) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                os.path.join(HERE, "delay_proxy.py"),
                "--delay-us",
                str(delay_us),
                "--watch-stdin",
                *map(str, ports),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the delay proxy did not start")
        self.ports: list[int] = json.loads(line)["ports"]

    def stop(self) -> None:
        """Stop it by its pid."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def round_trip_us(port: int, count: int = 200) -> float:
    """Median PING round trip to a port, in microseconds."""
    import statistics  # noqa: PLC0415

    samples = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            t0 = time.perf_counter()
            sock.sendall(b"PING\r\n")
            if sock.recv(64) != b"+PONG\r\n":
                raise RuntimeError("unexpected PING reply")
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


# -- output -----------------------------------------------------------------------------------


def print_table(
    title: str, rows: Iterable[str], table: dict[str, dict[str, float | None]], cells: list[str]
) -> None:
    label_width = max(len(r) for r in (*PLAIN_ROWS, *rows)) + 2
    width = max(10, max(len(c) for c in cells) + 2)
    print()
    print(title)
    print("-" * (label_width + width * len(cells)))
    print("method".ljust(label_width) + "".join(c.rjust(width) for c in cells))
    for label in rows:
        row = table.get(label, {})
        shown = []
        for cell in cells:
            value = row.get(cell)
            shown.append(("-" if value is None else f"{value:.3f}").rjust(width))
        print(label.ljust(label_width) + "".join(shown))
    print("(median ms per fetch of all N keys; '-' = not measured)")


def report_per_command(table: dict[str, dict[str, float | None]]) -> dict[str, Any]:
    """Print the per-command table (rows: workloads; columns: who) and its two ratios."""
    k, _n = PER_COMMAND_CELL
    print_table(
        f"Commands no auto-batching folds, over K={k} nodes, plain loopback (ms)",
        PER_COMMAND_ROWS,
        table,
        list(PER_COMMAND_COLUMNS),
    )
    over_rb = ratio(table, (HGETS, PC_RB), (HGETS, PC_DJANGO_RB))
    unfolded = ratio(table, (UNBATCHED_GETS, PC_DJANGO_RB), (FOLDED_GETS, PC_DJANGO_RB))
    print(
        f"rb / django_rb for 1,000 HGETs: {fmt_ratio(over_rb)} (target >= 2.5x); "
        f"django_rb unfolded / folded GETs: {fmt_ratio(unfolded)} (target <= 2x)"
    )
    return {
        "rows": table,
        "rb_over_django_rb_hget": over_rb,
        "django_rb_unfolded_over_folded_get": unfolded,
    }


def ratio(
    table: dict[str, dict[str, float | None]], num: tuple[str, str], den: tuple[str, str]
) -> float | None:
    a = table.get(num[0], {}).get(num[1])
    b = table.get(den[0], {}).get(den[1])
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="django_rb map() benchmark against the alternatives."
    )
    parser.add_argument(
        "--quick", action="store_true", help="fast smoke run: fewer cells, short budgets"
    )
    parser.add_argument(
        "--delay-us",
        type=float,
        default=None,
        help="run only the delayed-network tables with this one-way delay (default run: plain, then 250)",
    )
    parser.add_argument("--no-delay", action="store_true", help="skip the delayed-network tables")
    parser.add_argument("--json", metavar="PATH", help="also write all results to this JSON file")
    parser.add_argument(
        "--rb-python",
        metavar="PATH",
        help="an interpreter that has rb 1.11 (skips building .rbbench/rbvenv)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin the client (and rb's runner) to one CPU and the servers to the others",
    )
    parser.add_argument("--no-rb", action="store_true", help="leave rb's rows blank")
    parser.add_argument(
        "--stalled", action="store_true", help="run only the stalled-hosts table (bench/stalled.py)"
    )
    parser.add_argument("--no-stalled", action="store_true", help="skip the stalled-hosts table")
    parser.add_argument(
        "--stalled-baseline",
        metavar="REV",
        help="also time the stalled-hosts rows with django_rb as of this git revision",
    )
    parser.add_argument(
        "--min-time", type=float, default=None, help="seconds per cell (default 0.3, --quick 0.05)"
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    quick = args.quick
    budget = Budget(
        min_time=args.min_time if args.min_time is not None else (0.05 if quick else 0.3),
        min_reps=3 if quick else 5,
        max_reps=200 if quick else 1000,
        warmup=2 if quick else 3,
    )
    plain_mode = args.delay_us is None and not args.stalled
    delay_us = 250.0 if args.delay_us is None else args.delay_us
    delay_mode = not args.no_delay and delay_us > 0 and not args.stalled
    stalled_mode = args.stalled or not (args.no_stalled or args.delay_us is not None)
    ks, ns = (QUICK_K, QUICK_N) if quick else (PLAIN_K, PLAIN_N)
    delay_ks = QUICK_DELAY_K if quick else DELAY_K
    max_k = max((*ks, *delay_ks, 8 if stalled_mode else 1))

    results: dict[str, Any] = {
        "meta": {
            "python": sys.version.split()[0],
            "redis_py": redis.__version__,
            "hiredis": getattr(hiredis, "__version__", "?"),
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "budget": budget.as_dict(),
            "quick": quick,
            "value_size": VALUE_SIZE,
        }
    }
    dj_ok = django_rb_available()
    rb_py = rb_python(args)
    results["meta"]["rb_python"] = rb_py

    registry = NodeRegistry()
    proxy: DelayProxy | None = None
    try:
        nodes = registry.start(max_k)
        ports = [node.port for node in nodes]
        assert 6379 not in ports
        load_data(nodes, max((*ns, DELAY_N)))
        pinned = pin_cpus(nodes) if args.pin else None
        results["meta"]["cpu_pinning"] = pinned
        print(f"Started {len(nodes)} redis-server nodes on ports {ports}; data loaded.", flush=True)

        if plain_mode:
            combos = [(k, n) for k in ks for n in ns]
            cells = [cell_name(k, n) for k, n in combos]
            print("\nPlain loopback: measuring ...", flush=True)
            table = measure_in_process(in_process_methods(dj_ok), ports, combos, budget)
            per_command = measure_per_command(dj_ok, ports, budget)
            if rb_py:
                table.update(
                    measure_rb(rb_py, ports, combos, ["partition", "ketama"], budget, True)
                )
                rb_rows = table.pop(PC_RB, {})
                per_command[HGETS][PC_RB] = rb_rows.get("hget")
                per_command[UNBATCHED_GETS][PC_RB] = rb_rows.get("get_unbatched")
            print_table("Fetch N keys over K nodes, plain loopback (ms)", PLAIN_ROWS, table, cells)
            k, n = RATIO_CELL
            cell = cell_name(k, n)
            part = ratio(table, (RB_PARTITION, cell), (DJ_PARTITION, cell))
            keta = ratio(table, (RB_KETAMA, cell), (DJ_KETAMA, cell))
            print(
                f"rb map / django_rb map at N={n}, K={k}: partition {fmt_ratio(part)} (target >= 3x), "
                f"ketama {fmt_ratio(keta)} (target >= 2.5x)"
            )
            results["plain"] = {"cells": cells, "rows": table}
            results["per_command"] = report_per_command(per_command)
            results["ratios"] = {
                "rb_over_django_rb_partition_K4_N1000": part,
                "rb_over_django_rb_ketama_K4_N1000": keta,
            }

        if delay_mode:
            proxy = DelayProxy(ports, delay_us)
            if pinned:
                os.sched_setaffinity(proxy.proc.pid, set(pinned["servers"]))
            rtt = round_trip_us(proxy.ports[0])
            combos = [(k, DELAY_N) for k in delay_ks]
            cells = [cell_name(k, n) for k, n in combos]
            print(
                f"\nDelayed network ({delay_us:g} us each way, measured PING round trip {rtt:.0f} us): measuring ...",
                flush=True,
            )
            methods = {
                label: f for label, f in in_process_methods(dj_ok).items() if label in DELAY_ROWS
            }
            table = measure_in_process(methods, proxy.ports, combos, budget)
            if rb_py:
                table.update(measure_rb(rb_py, proxy.ports, combos, ["partition"], budget))
            print_table(
                f"Fetch N={DELAY_N} keys over K nodes, {delay_us:g} us delay each way (ms)",
                DELAY_ROWS,
                table,
                cells,
            )
            lo, hi = cell_name(delay_ks[0], DELAY_N), cell_name(delay_ks[-1], DELAY_N)
            scale = {label: ratio(table, (label, hi), (label, lo)) for label in DELAY_ROWS}
            print(
                f"django_rb map() K={delay_ks[-1]} / K={delay_ks[0]}: {fmt_ratio(scale[DJ_PARTITION])} (target <= 1.3x); "
                f"raw floor: {fmt_ratio(scale[RAW_FLOOR])}; node-after-node pipelines: {fmt_ratio(scale[SEQ_PIPES])}"
            )
            results["delay"] = {
                "delay_us": delay_us,
                "ping_rtt_us": rtt,
                "cells": cells,
                "rows": table,
                "k_scaling": scale,
            }
        if stalled_mode:
            print("\nStalled hosts: measuring ...", flush=True)
            results["stalled"] = measure_stalled(nodes, args.stalled_baseline, 1 if quick else 3)
            print_stalled(results["stalled"])
    finally:
        if proxy is not None:
            proxy.stop()
        registry.stop_all()
    elapsed = time.monotonic() - started
    results["meta"]["elapsed_s"] = round(elapsed, 1)
    print(f"\nDone in {elapsed:.0f} s; nodes stopped.")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwind so the nodes are stopped

    signal.signal(signal.SIGTERM, terminate)
    results = run(args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
            fh.write("\n")
        print(f"Results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
