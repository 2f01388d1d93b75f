"""The selector engine: one thread, every host's pipeline written before any reply is read.

It only decides *when* sockets are ready. What to send and who gets each reply belongs to the
command buffers; connections come from (and always go back to) redis-py pools.
"""

from __future__ import annotations

import functools
import inspect
import selectors
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .buffer import CommandBuffer
from .errors import HostConnectionError, HostTimeoutError
from .hosts import HostInfo
from .resp import new_reader

READ_SIZE = 65536
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _Link:
    """One host's connection during a round: bytes left to send, the reply reader, its deadline."""

    __slots__ = ("buffer", "host", "pool", "conn", "sock", "saved_timeout", "out", "sent",
                 "reader", "idle_timeout", "deadline", "events")  # fmt: skip

    def __init__(self, buffer: CommandBuffer, host: HostInfo, pool: Any, conn: Any) -> None:
        self.buffer = buffer
        self.host = host
        self.pool = pool
        self.conn = conn
        self.sock = conn._sock
        self.saved_timeout = self.sock.gettimeout()
        self.out = memoryview(buffer.encode())
        self.sent = 0
        self.reader = new_reader()
        self.idle_timeout = conn.socket_timeout
        self.deadline = None
        self.events = 0


def checkout(pool: Any) -> Any:
    """A connected connection from a redis-py pool (stale ones are replaced by the pool)."""
    if _wants_command_name(type(pool)):  # redis-py 5 and pools written for it
        return pool.get_connection("MAP")
    return pool.get_connection()


@functools.cache
def _wants_command_name(pool_cls: type) -> bool:
    parameter = inspect.signature(pool_cls.get_connection).parameters.get("command_name")
    return parameter is not None and parameter.default is inspect.Parameter.empty


class RoundErrors:
    """What went wrong during a round, in the order it happened; the first is raised later."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def add(self, error: BaseException) -> None:
        self.errors.append(error)

    @property
    def first(self) -> BaseException | None:
        return self.errors[0] if self.errors else None


def run_round(
    buffers: Iterable[CommandBuffer],
    hosts: dict[int, HostInfo],
    get_pool: Callable[[int], Any],
    timeout: float | None = None,
    errors: RoundErrors | None = None,
) -> RoundErrors:
    """Send every buffer's queue to its host and settle every promise; never raises for a host."""
    errors = errors if errors is not None else RoundErrors()
    start = time.monotonic()
    round_deadline = None if timeout is None else start + timeout
    links: list[_Link] = []
    selector = selectors.DefaultSelector()
    try:
        for buffer in buffers:
            if not buffer.has_queued:
                continue
            host = hosts.get(buffer.host_id)
            if host is None:
                error = HostConnectionError("the host was removed from the cluster", buffer.host_id)
                _settle_failure(buffer, error, errors)
                continue
            link = _open(buffer, host, get_pool, errors)
            if link is None:
                continue
            links.append(link)
            _write(link, errors)  # all hosts are written before any reply is read
        live = {}
        for link in links:
            if link.conn is None:
                continue
            link.events = selectors.EVENT_READ | (selectors.EVENT_WRITE if link.out else 0)
            link.deadline = _next_deadline(link, time.monotonic(), round_deadline)
            try:
                selector.register(link.sock, link.events, link)
            except (ValueError, OSError) as exc:  # closed under us by another thread
                _fail(link, HostConnectionError(f"connection unusable: {exc}", link.host), errors)
                continue
            live[link.sock] = link
        while live:
            wait = _wait_time(live.values(), time.monotonic())
            ready = selector.select(wait)
            now = time.monotonic()
            for key, mask in ready:
                link = key.data
                if mask & selectors.EVENT_WRITE and link.conn is not None:
                    _write(link, errors)
                if mask & selectors.EVENT_READ and link.conn is not None:
                    _read(link, errors)
                if link.conn is None:
                    selector.unregister(link.sock)
                    del live[link.sock]
                    continue
                link.deadline = _next_deadline(link, now, round_deadline)
                wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if link.out else 0)
                if wanted != link.events:
                    link.events = wanted
                    selector.modify(link.sock, wanted, link)
            for link in [
                lk for lk in live.values() if lk.deadline is not None and lk.deadline <= now
            ]:
                what = (
                    "the round's timeout" if link.deadline == round_deadline else "socket_timeout"
                )
                _fail(link, HostTimeoutError(f"no reply within {what}", link.host), errors)
                selector.unregister(link.sock)
                del live[link.sock]
    finally:
        selector.close()
        for link in links:  # an exception escaped (e.g. KeyboardInterrupt): leak nothing
            if link.conn is not None:
                _fail(link, HostConnectionError("the round was interrupted", link.host), errors)
    return errors


def _open(buffer: CommandBuffer, host: HostInfo, get_pool: Callable[[int], Any],
          errors: RoundErrors) -> _Link | None:  # fmt: skip
    pool = get_pool(host.host_id)
    try:
        conn = checkout(pool)
    except RedisTimeoutError as exc:
        _settle_failure(buffer, HostTimeoutError(f"connect timed out ({exc})", host), errors)
        return None
    except (RedisConnectionError, OSError) as exc:
        _settle_failure(buffer, HostConnectionError(_reason(exc), host), errors)
        return None
    except RedisError as exc:  # the login itself was refused: a bad db, NOPERM on SELECT, ...
        _settle_failure(buffer, HostConnectionError(f"login failed: {_reason(exc)}", host), errors)
        return None
    except Exception as exc:  # not the node's fault (e.g. pool_options redis-py does not take)
        _settle_failure(buffer, exc, errors)
        return None
    try:
        link = _Link(buffer, host, pool, conn)
        link.sock.setblocking(False)
    except Exception as exc:  # the socket was closed under us (another thread disconnected)
        conn.disconnect()
        pool.release(conn)
        _settle_failure(buffer, HostConnectionError(f"connection unusable: {exc}", host), errors)
        return None
    return link


def _write(link: _Link, errors: RoundErrors) -> None:
    out = link.out
    try:
        while link.sent < len(out):
            link.sent += link.sock.send(out[link.sent :])
    except _WOULD_BLOCK:
        pass  # the kernel buffer is full: the selector says when it drains
    except OSError as exc:
        _fail(link, HostConnectionError(f"write failed: {_reason(exc)}", link.host), errors)
        return
    if link.sent >= len(out):
        link.out = b""


def _read(link: _Link, errors: RoundErrors) -> None:
    sock, reader, buffer = link.sock, link.reader, link.buffer
    try:
        while True:
            data = sock.recv(READ_SIZE)
            if not data:
                _fail(link, HostConnectionError("connection closed by the server", link.host),
                      errors)  # fmt: skip
                return
            reader.feed(data)
            if len(data) < READ_SIZE and not isinstance(sock, ssl.SSLSocket):
                break
    except _WOULD_BLOCK:
        pass
    except OSError as exc:
        _fail(link, HostConnectionError(f"read failed: {_reason(exc)}", link.host), errors)
        return
    try:
        while True:
            reply = reader.gets()
            if reply is False:
                break
            try:
                error = buffer.on_reply(reply)
            except Exception as exc:  # a subscriber raised: the promise is settled; go on
                error = exc
            if error is not None:
                errors.add(error)
    except Exception as exc:  # the reply stream itself is broken
        _fail(link, HostConnectionError(f"protocol error: {exc}", link.host), errors)
        return
    if not buffer.expecting and not link.out:
        _finish(link)


def _finish(link: _Link) -> None:
    """All replies are in: the connection goes back to its pool, clean and blocking again."""
    conn, link.conn = link.conn, None
    try:
        link.sock.settimeout(link.saved_timeout)
    except OSError:  # closed under us after its last reply: the pool reconnects it
        conn.disconnect()
    link.pool.release(conn)


def _fail(link: _Link, error: BaseException, errors: RoundErrors) -> None:
    """The host failed: drop the connection (it may hold half a reply) and reject what it owed."""
    conn, link.conn = link.conn, None
    if conn is not None:
        try:
            conn.disconnect()
        finally:
            link.pool.release(conn)
    _settle_failure(link.buffer, error, errors)


def _settle_failure(buffer: CommandBuffer, error: BaseException, errors: RoundErrors) -> None:
    errors.add(error)
    try:
        buffer.fail(error)
    except Exception as exc:
        errors.add(exc)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, socket.timeout):
        return "timed out"
    return text


def _next_deadline(link: _Link, now: float, round_deadline: float | None) -> float | None:
    idle = None if link.idle_timeout is None else now + link.idle_timeout
    if round_deadline is None:
        return idle
    if idle is None:
        return round_deadline
    return min(idle, round_deadline)


def _wait_time(links: Iterable[_Link], now: float) -> float | None:
    deadlines = [link.deadline for link in links if link.deadline is not None]
    if not deadlines:
        return None
    return max(0.0, min(deadlines) - now)
