"""A small TCP proxy that holds every chunk for a fixed delay in each direction.

Run as a subprocess by bench_map.py: ``python bench/delay_proxy.py --delay-us 250 PORT...``
listens on one free loopback port per target port, prints ``{"ports": [...]}`` on one line
once it accepts connections, and forwards bytes both ways, each chunk no earlier than
``delay`` after it arrived (so a request/reply round trip gains about twice the delay, like a
network link would add). Chunks keep their order; bandwidth is not limited.

It is single-threaded and uses ``select.select``, whose timeout has microsecond resolution
(epoll's is one millisecond, too coarse for 250 us). It stops on SIGTERM, or with
``--watch-stdin`` when its stdin closes (the parent died).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import select
import signal
import socket
import sys
import time
from typing import Any

CHUNK = 256 * 1024
MAX_PENDING = 8 * 1024 * 1024  # stop reading a side that is this far ahead of its writer


class Direction:
    """Bytes flowing from ``src`` to ``dst``, each chunk released at its due time."""

    __slots__ = ("src", "dst", "pending", "pending_bytes", "outbuf", "eof")

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src = src
        self.dst = dst
        self.pending: collections.deque[tuple[float, bytes]] = collections.deque()
        self.pending_bytes = 0
        self.outbuf = bytearray()
        self.eof = False

    def release_due(self, now: float) -> None:
        """Move chunks whose delay has passed to the output buffer."""
        while self.pending and self.pending[0][0] <= now:
            _due, data = self.pending.popleft()
            self.pending_bytes -= len(data)
            self.outbuf += data

    def flush(self) -> bool:
        """Write what can be written now; False if the peer is gone."""
        if not self.outbuf:
            return True
        try:
            sent = self.dst.send(self.outbuf)
        except BlockingIOError:
            return True
        except OSError:
            return False
        del self.outbuf[:sent]
        return True

    @property
    def done(self) -> bool:
        return self.eof and not self.pending and not self.outbuf


class Proxy:
    """Listeners for each target plus all live connection pairs."""

    def __init__(self, targets: list[tuple[str, int]], delay: float) -> None:
        self.delay = delay
        self.listeners: dict[socket.socket, tuple[str, int]] = {}
        self.directions: list[Direction] = []
        for target in targets:
            lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind(("127.0.0.1", 0))
            lsock.listen(128)
            lsock.setblocking(False)
            self.listeners[lsock] = target
        self.stopping = False
        self.stdin: int | None = None

    @property
    def ports(self) -> list[int]:
        return [lsock.getsockname()[1] for lsock in self.listeners]

    def accept(self, lsock: socket.socket) -> None:
        try:
            client, _addr = lsock.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection(self.listeners[lsock], timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.directions.append(Direction(client, upstream))
        self.directions.append(Direction(upstream, client))

    def close_pair(self, broken: Direction) -> None:
        """Drop both directions that share ``broken``'s sockets."""
        socks = {broken.src, broken.dst}
        keep = []
        for direction in self.directions:
            if direction.src in socks:
                continue
            keep.append(direction)
        self.directions = keep
        for sock in socks:
            sock.close()

    def run(self) -> None:
        while not self.stopping:
            now = time.monotonic()
            timeout: float | None = None
            readers: list[Any] = (
                [*self.listeners, self.stdin] if self.stdin is not None else list(self.listeners)
            )
            writers: list[socket.socket] = []
            for direction in self.directions:
                if direction.pending:
                    wait = direction.pending[0][0] - now
                    timeout = wait if timeout is None else min(timeout, wait)
                if direction.outbuf:
                    writers.append(direction.dst)
                if not direction.eof and direction.pending_bytes < MAX_PENDING:
                    readers.append(direction.src)
            if timeout is not None:
                timeout = max(timeout, 0.0)
            try:
                readable, writable, _ = select.select(readers, writers, [], timeout)
            except InterruptedError:
                continue
            now = time.monotonic()
            ready = set(readable)
            if self.stdin is not None and self.stdin in ready and not os.read(self.stdin, 4096):
                break  # whoever started us is gone
            for lsock in self.listeners:
                if lsock in ready:
                    self.accept(lsock)
            broken: list[Direction] = []
            for direction in list(self.directions):
                if direction.src in ready and not direction.eof:
                    try:
                        data = direction.src.recv(CHUNK)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        data = b""
                    if data:
                        direction.pending.append((now + self.delay, data))
                        direction.pending_bytes += len(data)
                    elif data is not None:
                        direction.eof = True
                direction.release_due(time.monotonic())
                if (direction.outbuf or direction.dst in writable) and not direction.flush():
                    broken.append(direction)
                elif direction.done:
                    broken.append(direction)
            for direction in broken:
                if direction in self.directions:
                    self.close_pair(direction)

    def close(self) -> None:
        for direction in self.directions:
            direction.src.close()
        for lsock in self.listeners:
            lsock.close()


def tighten_timer_slack() -> None:
    """Ask Linux for 1 us timer slack (default 50 us) so short select() timeouts end on time."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK, in nanoseconds
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Delay every chunk by a fixed time each way.")
    parser.add_argument("--delay-us", type=float, default=250.0)
    parser.add_argument("--host", default="127.0.0.1", help="where the targets listen")
    parser.add_argument(
        "--watch-stdin", action="store_true", help="exit when stdin closes (parent died)"
    )
    parser.add_argument("ports", type=int, nargs="+", help="target ports to put behind the proxy")
    args = parser.parse_args(argv)
    tighten_timer_slack()
    proxy = Proxy([(args.host, port) for port in args.ports], args.delay_us / 1e6)

    def stop(_signum: int, _frame: Any) -> None:
        proxy.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.watch_stdin:
        proxy.stdin = sys.stdin.fileno()
    print(json.dumps({"ports": proxy.ports, "pid": os.getpid()}), flush=True)
    try:
        proxy.run()
    finally:
        proxy.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
