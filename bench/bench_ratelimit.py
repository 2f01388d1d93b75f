"""Benchmark: rate-limit decisions per second from one thread, one limit and three stacked.

Run from the repository root (see docs/benchmarks.md)::

    .venv/bin/python bench/bench_ratelimit.py            # loopback table, then 250 us delay
    .venv/bin/python bench/bench_ratelimit.py --quick    # a fast smoke run
    .venv/bin/python bench/bench_ratelimit.py --no-peers # django_rb's rows only, no venv

django_rb runs over 3 nodes (and over 1, for reference); the peers run on one node of the same
servers: django-ratelimit 4.1 on Django's RedisCache, limits 5.x (moving window and sliding
window counter) and throttled-py 3.x (GCRA and token bucket). The peers live in their own
virtualenv, ``.rbbench/rlvenv`` (built on first use with this checkout installed into it, then
this script re-runs itself there), so they never enter the project's test dependencies.
The nodes are started on free ports (never 6379) and stopped by pid at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from timing import Budget, median_ms  # noqa: E402

VENV = os.path.join(ROOT, ".rbbench", "rlvenv")
PEERS = ["django-ratelimit>=4.1,<4.2", "limits[redis]>=5,<6", "throttled-py[redis]>=3,<4"]
#: django_rb.testing (which starts the nodes) imports pytest
PEER_CHECK = "import django_ratelimit, limits, throttled, django_rb, pytest"

RATE_COUNT = 10_000  # per second: never reached by one thread, so every decision is "allowed"
RATE = f"{RATE_COUNT}/s"
BATCH = 50  # decisions per timed run

#: a row: (label, algorithm, one-limit decision, three-limit decision)
Row = tuple[str, str, Callable[[], Any], Callable[[], Any]]


def notice(message: str) -> None:
    print(f"NOTICE: {message}", flush=True)


# -- the peers' virtualenv ---------------------------------------------------------------------


def peers_importable() -> bool:
    try:
        exec(PEER_CHECK, {})  # noqa: S102  (a fixed import line)
    except ImportError:
        return False
    return True


def ensure_peer_python() -> str | None:
    """.rbbench/rlvenv's interpreter, built with this checkout and the peers when missing."""
    python = os.path.join(VENV, "bin", "python")
    if os.path.exists(python) and _runs(python, PEER_CHECK):
        return python
    print(f"Creating {os.path.relpath(VENV, ROOT)} with {' '.join(PEERS)} ...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", VENV],
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-e", f"{ROOT}[hiredis]", "pytest", *PEERS],
    ]  # fmt: skip
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            notice(f"could not build the peers' venv: {tail}")
            return None
    return python if _runs(python, PEER_CHECK) else None


def _runs(python: str, code: str) -> bool:
    return subprocess.run([python, "-c", code], capture_output=True, timeout=120).returncode == 0


# -- Django, configured once for both django_rb's decorators and django-ratelimit --------------


def configure_django(ports: list[int]) -> None:
    import django  # noqa: PLC0415
    from django.conf import settings  # noqa: PLC0415

    settings.configure(
        SECRET_KEY="bench",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        RB_CLUSTERS=clusters_setting(ports),
        RB_RATELIMIT={"CLUSTER": "default"},
        CACHES=caches_setting(ports),
        RATELIMIT_USE_CACHE="default",
    )
    django.setup()


def clusters_setting(ports: list[int]) -> dict[str, Any]:
    return {"default": {"hosts": [f"redis://127.0.0.1:{p}/0" for p in ports]}}


def caches_setting(ports: list[int]) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{ports[0]}/0",
        }
    }


# -- the rows ----------------------------------------------------------------------------------

KEYS = ("bench:ip:10.0.0.1", "bench:user:42", "bench:apikey:k1")


def django_rb_rows(ports: list[int]) -> list[Row]:
    from django_rb.cluster import Cluster  # noqa: PLC0415
    from django_rb.ratelimit import RateLimiter, ratelimit  # noqa: PLC0415

    rows: list[Row] = []
    for label, hosts in (("3 nodes", ports), ("1 node", ports[:1])):
        limiter = RateLimiter(Cluster([f"redis://127.0.0.1:{p}/0" for p in hosts]))
        three = [(key, RATE) for key in KEYS]
        rows.append(
            (
                f"django_rb RateLimiter, {label}",
                "GCRA, 1 script/node",
                lambda limiter=limiter: _allowed(limiter.consume(KEYS[0], RATE).allowed),
                lambda limiter=limiter, three=three: _allowed(
                    all(d.allowed for d in limiter.consume_many(three))
                ),
            )
        )
    rows.append(
        (
            "django_rb @ratelimit view, 3 nodes",
            "GCRA, 1 script/node",
            *view_decisions(ratelimit, "b"),
        )
    )
    return rows


FLOOR = "floor: raw sockets, hand-encoded EVALSHA"


class RawScriptFloor:
    """What the machine itself costs: the bucket script's EVALSHA, encoded in advance, on one
    raw socket per node; three limits are one call on each of 3 nodes, all written before any
    reply is read (django_rb's round, minus every line of Python but the socket calls)."""

    def __init__(self, ports: list[int]) -> None:
        import hiredis  # noqa: PLC0415

        from django_rb.cluster.resp import pack  # noqa: PLC0415
        from django_rb.ratelimit.limiter import _BUCKET  # noqa: PLC0415
        from django_rb.ratelimit.rates import parse_rate  # noqa: PLC0415

        self.socks = [socket.create_connection(("127.0.0.1", port)) for port in ports[:3]]
        self.readers = [hiredis.Reader() for _ in self.socks]
        words = parse_rate(RATE).script_words
        self.calls = [
            pack((b"EVALSHA", _BUCKET.sha.encode(), b"1", f"rlfloor:{key}".encode(), b"", b"1",
                  *words, b"1"))
            for key in KEYS
        ]  # fmt: skip
        for sock, reader in zip(self.socks, self.readers, strict=True):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(pack((b"SCRIPT", b"LOAD", _BUCKET.script)))
            self._reply(sock, reader)

    @staticmethod
    def _reply(sock: socket.socket, reader: Any) -> Any:
        reply = reader.gets()
        while reply is False:
            reader.feed(sock.recv(65536))
            reply = reader.gets()
        if isinstance(reply, Exception):
            raise reply
        return reply

    def one(self) -> bool:
        self.socks[0].sendall(self.calls[0])
        return _allowed(self._reply(self.socks[0], self.readers[0])[0] == 1)

    def three(self) -> bool:
        for sock, call in zip(self.socks, self.calls, strict=True):
            sock.sendall(call)
        replies = [self._reply(s, r) for s, r in zip(self.socks, self.readers, strict=True)]
        return _allowed(all(reply[0] == 1 for reply in replies))

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def floor_row(ports: list[int]) -> tuple[Row, RawScriptFloor]:
    floor = RawScriptFloor(ports)
    return (FLOOR, "GCRA, 1 script/node", floor.one, floor.three), floor


def peer_rows(ports: list[int]) -> list[Row]:
    from django_ratelimit import __version__ as dr_version  # noqa: PLC0415
    from django_ratelimit.decorators import ratelimit as dr_ratelimit  # noqa: PLC0415
    from limits import __version__ as limits_version  # noqa: PLC0415
    from limits import parse, storage, strategies  # noqa: PLC0415
    from throttled import RedisStore, Throttled, per_sec  # noqa: PLC0415
    from throttled import __version__ as throttled_version  # noqa: PLC0415

    url = f"redis://127.0.0.1:{ports[0]}/0"
    rows: list[Row] = [
        (
            f"django-ratelimit {dr_version} view, RedisCache",
            "fixed window",
            *view_decisions(dr_ratelimit, "p"),
        )
    ]
    store = storage.RedisStorage(url)
    item = parse(f"{RATE_COUNT}/second")
    for name, cls in (
        ("moving window", strategies.MovingWindowRateLimiter),
        ("sliding window counter", strategies.SlidingWindowCounterRateLimiter),
    ):
        limiter = cls(store)
        rows.append(
            (
                f"limits {limits_version}",
                name,
                lambda limiter=limiter: _allowed(limiter.hit(item, KEYS[0])),
                lambda limiter=limiter: _allowed(all([limiter.hit(item, key) for key in KEYS])),
            )
        )
    throttled_store = RedisStore(server=url)
    for using in ("gcra", "token_bucket"):
        throttle = Throttled(using=using, quota=per_sec(RATE_COUNT), store=throttled_store)
        rows.append(
            (
                f"throttled-py {throttled_version}",
                using.replace("_", " "),
                lambda throttle=throttle: _allowed(not throttle.limit(KEYS[0]).limited),
                lambda throttle=throttle: _allowed(
                    all([not throttle.limit(key).limited for key in KEYS])
                ),
            )
        )
    return rows


def view_decisions(
    decorator: Callable[..., Any], prefix: str
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """One request through a view with one limit, and through one with three stacked."""
    from django.contrib.auth.models import AnonymousUser  # noqa: PLC0415
    from django.http import HttpResponse  # noqa: PLC0415
    from django.test import RequestFactory  # noqa: PLC0415

    factory = RequestFactory()

    def view(request: Any) -> Any:
        return HttpResponse("ok")

    one_view = decorator(key="ip", rate=RATE, group=f"{prefix}1")(view)
    three_view = view
    for i, key in enumerate(("user_or_ip", "header:x-api-key", "ip")):
        three_view = decorator(key=key, rate=RATE, group=f"{prefix}3{i}")(three_view)
    return (
        lambda: _status(one_view(_request(factory, AnonymousUser))),
        lambda: _status(three_view(_request(factory, AnonymousUser))),
    )


def _request(factory: Any, anonymous: Any) -> Any:
    request = factory.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_API_KEY="k1")
    request.user = anonymous()
    return request


def _allowed(ok: bool) -> bool:
    if not ok:
        raise RuntimeError("a benchmark decision was refused: the rate is too low for this run")
    return ok


def _status(response: Any) -> bool:
    return _allowed(response.status_code == 200)


# -- measuring ---------------------------------------------------------------------------------


def per_decision_us(decide: Callable[[], Any], budget: Budget) -> float:
    """Median microseconds per decision, timed over runs of BATCH decisions."""

    def run() -> None:
        for _ in range(BATCH):
            decide()

    return median_ms(run, budget) * 1000.0 / BATCH


def measure(rows: list[Row], budget: Budget, passes: int) -> dict[str, tuple[float, float]]:
    """Every cell ``passes`` times, rows interleaved, and the median of each cell's passes:
    load from other processes on a shared machine then falls on every row alike."""
    samples: dict[str, tuple[list[float], list[float]]] = {
        f"{label}|{algorithm}": ([], []) for label, algorithm, _one, _three in rows
    }
    for _ in range(passes):
        for label, algorithm, one, three in rows:
            ones, threes = samples[f"{label}|{algorithm}"]
            ones.append(per_decision_us(one, budget))
            threes.append(per_decision_us(three, budget))
    return {
        name: (statistics.median(ones), statistics.median(threes))
        for name, (ones, threes) in samples.items()
    }


def print_table(title: str, rows: list[Row], results: dict[str, tuple[float, float]]) -> None:
    print(f"\n{title}\n")
    header = (
        "| implementation | algorithm | 1 limit µs | 1 limit /s | 3 limits µs | 3 limits /s "
        "| 3 limits / 1 limit |"
    )
    print(header)
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for label, algorithm, _one, _three in rows:
        one_us, three_us = results[f"{label}|{algorithm}"]
        print(
            f"| {label} | {algorithm} | {one_us:.0f} | {1e6 / one_us:,.0f} | {three_us:.0f} "
            f"| {1e6 / three_us:,.0f} | {three_us / one_us:.2f}x |"
        )


def print_targets(results: dict[str, tuple[float, float]]) -> None:
    ours = results["django_rb RateLimiter, 3 nodes|GCRA, 1 script/node"]
    alone = results["django_rb RateLimiter, 1 node|GCRA, 1 script/node"]
    floor = results[f"{FLOOR}|GCRA, 1 script/node"]
    print()
    print(
        f"the machine's floor: one call on each of 3 nodes in parallel costs "
        f"{floor[1] / floor[0]:.2f}x one call on one node ({floor[1]:.0f} µs vs {floor[0]:.0f})"
    )
    peers = {k: v for k, v in results.items() if not k.startswith(("django_rb", "floor"))}
    if not peers:
        return
    fastest_one = min(peers.items(), key=lambda kv: kv[1][0])
    fastest_three = min(peers.items(), key=lambda kv: kv[1][1])
    print(
        f"one limit: django_rb {ours[0]:.0f} µs (3 nodes), {alone[0]:.0f} µs (1 node, the "
        f"peers' server) vs fastest peer {fastest_one[1][0]:.0f} µs "
        f"({fastest_one[0].replace('|', ', ')}): {fastest_one[1][0] / ours[0]:.2f}x, "
        f"{fastest_one[1][0] / alone[0]:.2f}x"
    )
    print(f"three limits cost {ours[1] / ours[0]:.2f}x one limit (django_rb, 3 nodes)")
    print(
        f"three limits: django_rb {ours[1]:.0f} µs vs fastest peer {fastest_three[1][1]:.0f} µs "
        f"({fastest_three[0].replace('|', ', ')}): {fastest_three[1][1] / ours[1]:.2f}x"
    )


def run(args: argparse.Namespace) -> None:
    from django.test import override_settings  # noqa: PLC0415

    from django_rb.testing import NodeRegistry  # noqa: PLC0415

    registry = NodeRegistry()
    proxies: list[Any] = []
    try:
        ports = [node.port for node in registry.start(3)]
        configure_django(ports)
        budget = Budget(min_time=0.05 if args.quick else args.min_time, max_reps=100_000)
        print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {RATE} limits")
        plans = [("loopback", ports)]
        if args.delay_us:
            from bench_map import DelayProxy  # noqa: PLC0415

            proxy = DelayProxy(ports, args.delay_us)
            proxies.append(proxy)
            plans.append(
                (f"every node behind the delay proxy ({args.delay_us:g} µs each way)", proxy.ports)
            )
        for title, plan_ports in plans:
            with override_settings(
                RB_CLUSTERS=clusters_setting(plan_ports), CACHES=caches_setting(plan_ports)
            ):
                rows = django_rb_rows(plan_ports)
                if not args.no_peers:
                    rows += peer_rows(plan_ports)
                row, floor = floor_row(plan_ports)
                rows.append(row)
                try:
                    results = measure(rows, budget, 1 if args.quick else args.passes)
                finally:
                    floor.close()
                print_table(f"Decisions from one thread, {title}:", rows, results)
                print_targets(results)
    finally:
        for proxy in proxies:
            proxy.stop()
        registry.stop_all()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.05 s per cell")
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per cell and pass")
    parser.add_argument("--delay-us", type=float, default=250.0, help="0: no delayed table")
    parser.add_argument("--passes", type=int, default=5, help="interleaved passes per cell")
    parser.add_argument("--no-peers", action="store_true", help="django_rb's rows only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.no_peers and not peers_importable():
        python = ensure_peer_python()
        if python is None:
            notice("running without the peers (--no-peers).")
            args.no_peers = True
        else:
            os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])
    run(args)


if __name__ == "__main__":
    main()
