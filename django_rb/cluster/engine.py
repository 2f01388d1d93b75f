"""The selector engine: one thread, every host's pipeline written before any reply is read.

It only decides *when* sockets are ready. What to send and who gets each reply belongs to the
command buffers; connections come from (and always go back to) redis-py pools. A host without a
pooled connection is connected in the same loop as the others (non-blocking connect, TLS
handshake, then the login commands ahead of its queue), so a stalled host costs the round one
timeout, never one per host, and never delays a healthy host's writes.
"""

from __future__ import annotations

import functools
import inspect
import os
import select
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
from .connections import DEFERRED, LoginStep
from .dial import Dial
from .errors import HostConnectionError, HostTimeoutError
from .hosts import HostInfo
from .pool import ConnectionPool
from .resp import ReplyError, new_reader

READ_SIZE = 65536
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_OK = (b"OK", "OK")


#: poll() reports a hang-up or an error as such: the read or write that follows finds out which
_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLNVAL
_WRITABLE = select.POLLOUT | select.POLLHUP | select.POLLERR | select.POLLNVAL

_DIAL_ERRORS = (OSError, ValueError)  # ValueError: a socket closed under us, bad TLS options


class _Link:
    """One host's connection during a round: how far its connect got, bytes left to send, the
    reply reader, its deadline."""

    __slots__ = ("buffer", "host", "pool", "conn", "sock", "watched", "saved_timeout", "out",
                 "sent", "reader", "idle_timeout", "deadline", "connect_deadline", "events",
                 "dial", "login", "fd", "by_fd", "taken")  # fmt: skip

    def __init__(self, buffer: CommandBuffer, host: HostInfo, pool: Any, conn: Any) -> None:
        self.buffer = buffer
        self.host = host
        self.pool = pool
        self.conn = conn
        self.sock: Any = conn._sock
        self.watched: Any = None  # the socket the selector knows (TLS wraps replace it)
        self.saved_timeout: float | None = None
        self.out: bytes | memoryview = b""
        self.sent = 0
        self.reader = new_reader()
        self.idle_timeout: float | None = conn.socket_timeout
        self.deadline: float | None = None
        #: set while connecting (TCP, TLS, login): the one deadline for all of it
        self.connect_deadline: float | None = None
        self.events = 0
        self.dial: Dial | None = None
        self.login: list[LoginStep] = []  # login replies still owed, in order
        self.fd = -1  # the descriptor the selector watches for this link
        #: read and written by descriptor (os.read/os.write) rather than through the socket
        #: object: a plain socket in timeout mode is non-blocking at the OS level already, so
        #: the round needs no setblocking() there and back (two syscalls per host). The
        #: descriptor is asked of the socket at each call: one closed by another thread
        #: answers -1 (EBADF), never a number the OS has since given to another file.
        self.by_fd = False
        self.taken = False  # from ConnectionPool.take(): given back with give_back()

    @property
    def connecting(self) -> bool:
        return self.dial is not None or bool(self.login)


def checkout(pool: Any) -> Any:
    """A connection from a redis-py pool: pooled ones connected (stale ones are replaced), new
    ones of our classes left unconnected for the engine (see ``connections.DEFERRED``)."""
    token = DEFERRED.set(True)
    try:
        if _wants_command_name(pool.__class__):  # redis-py 5 and pools written for it
            return pool.get_connection("MAP")
        return pool.get_connection()
    finally:
        DEFERRED.reset(token)


@functools.cache
def _wants_command_name(pool_cls: Any) -> bool:
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
    deadline: float | None = None,
) -> RoundErrors:
    """Send every buffer's queue to its host and settle every promise; never raises for a host.

    ``deadline`` (a ``time.monotonic()`` instant, shared by the rounds of one block) or else
    ``timeout`` bounds the round; connecting is bounded by it and by socket_connect_timeout.
    """
    errors = errors if errors is not None else RoundErrors()
    if deadline is None and timeout is not None:
        deadline = time.monotonic() + timeout
    if (
        type(buffers) is list
        and len(buffers) == 1
        and _run_alone(buffers[0], hosts, get_pool, deadline, errors)
    ):
        return errors
    links: list[_Link] = []
    live: dict[int, _Link] = {}
    poller = select.poll()  # unlike epoll, no descriptor to create and no syscall to register
    try:
        for buffer in buffers:
            if not buffer.has_queued:
                continue
            host = hosts.get(buffer.host_id)
            if host is None:
                removed = HostConnectionError(
                    "the host was removed from the cluster", buffer.host_id
                )
                _settle_failure(buffer, removed, errors)
                continue
            if deadline is not None and time.monotonic() >= deadline:
                late = HostTimeoutError("not sent: the round's timeout ran out earlier", host)
                _settle_failure(buffer, late, errors)
                continue
            link = _take(buffer, host, get_pool, errors)
            if link is not None:
                links.append(link)
        _drop_stale(poller, live, links)
        for link in links:
            if link.sock is None:
                _start_dial(link, deadline, errors)
            elif _prepare(link, errors):
                _write(link, errors)  # pooled hosts are written before any reply is read
        _drive(poller, live, links, deadline, errors)
    finally:
        for link in links:  # an exception escaped (e.g. KeyboardInterrupt): leak nothing
            if link.conn is not None:
                _fail(link, HostConnectionError("the round was interrupted", link.host), errors)
    return errors


def _drive(poller: Any, live: dict[int, _Link], links: list[_Link],
           deadline: float | None, errors: RoundErrors) -> None:  # fmt: skip
    """Wait on the links until each is done, failed or past its deadline."""
    now = time.monotonic()
    for link in links:  # (one that failed since the stale check is forgotten here)
        _watch(poller, live, link, now, deadline, errors)
    while live:
        ready = poller.poll(_wait_ms(live.values(), time.monotonic()))
        now = time.monotonic()
        for fd, mask in ready:
            found = live.get(fd)
            if found is None:
                continue
            link = found
            if link.dial is not None:
                _advance_dial(link, errors)
            elif mask & _WRITABLE and link.conn is not None:
                _write(link, errors)
            if mask & _READABLE and link.conn is not None and link.dial is None:
                _read(link, errors)
            _watch(poller, live, link, now, deadline, errors)
        for link in [lk for lk in live.values() if lk.deadline is not None and lk.deadline <= now]:
            _fail(link, _timeout_error(link, deadline), errors)
            _watch(poller, live, link, now, deadline, errors)


def _run_alone(buffer: CommandBuffer, hosts: dict[int, HostInfo], get_pool: Callable[[int], Any],
               deadline: float | None, errors: RoundErrors) -> bool:  # fmt: skip
    """The commonest round (one host, an idle pooled connection) without the bookkeeping for
    many: the same stale check, write, wait and read as the general loop, and the same
    failures. False, before anything is sent, where the round needs more (no idle
    connection, stale data, a pool of another class, the round's time already spent): the
    general loop then does it all. A short write or a reply in pieces continues there."""
    host = hosts.get(buffer.host_id)
    if host is None or not buffer.has_queued:
        return False
    if deadline is not None and time.monotonic() >= deadline:
        return False
    pool = get_pool(host.host_id)
    if not isinstance(pool, ConnectionPool):
        return False
    try:
        conn = pool.take()
    except Exception:  # the general loop's checkout reports it
        return False
    sock = conn._sock
    saved_timeout = None if sock is None else sock.gettimeout()
    fd = sock.fileno() if saved_timeout and type(sock) is socket.socket else -1
    if fd < 0 or not _deferrable(conn):
        pool.give_back(conn)
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if poller.poll(0):  # stale (see _drop_stale): the general loop reconnects it
        pool.give_back(conn)
        return False
    link = _Link(buffer, host, pool, conn)
    link.taken = link.by_fd = True
    link.saved_timeout = saved_timeout
    link.watched, link.fd, link.events = sock, fd, select.POLLIN
    live = {fd: link}
    try:
        link.out = memoryview(buffer.encode())
        _write(link, errors)
        if link.conn is None or link.out:  # failed, or a short write: POLLOUT is wanted
            _drive(poller, live, [link], deadline, errors)
            return True
        now = time.monotonic()
        link.deadline = _next_deadline(link, now, deadline)
        wait = None if link.deadline is None else max(0.0, link.deadline - now) * 1000.0
        if not poller.poll(wait):
            _fail(link, _timeout_error(link, deadline), errors)
            return True
        _read(link, errors)
        if link.conn is not None:  # more of the reply to come
            _drive(poller, live, [link], deadline, errors)
    finally:
        if link.conn is not None:  # an exception escaped (e.g. KeyboardInterrupt)
            _fail(link, HostConnectionError("the round was interrupted", link.host), errors)
    return True


def _watch(poller: Any, live: dict[int, _Link], link: _Link, now: float,
           round_deadline: float | None, errors: RoundErrors) -> None:  # fmt: skip
    """Keep the poller's view of a link current: what it waits for, on which socket, until
    when; a link that is done or failed is forgotten."""
    if link.watched is not None and (link.conn is None or link.watched is not link.sock):
        _forget(poller, live, link)
    if link.conn is None:
        return
    link.deadline = _next_deadline(link, now, round_deadline)
    if link.dial is not None:
        wanted = select.POLLOUT if link.dial.events == selectors.EVENT_WRITE else select.POLLIN
    else:
        wanted = select.POLLIN | select.POLLOUT if link.out else select.POLLIN
    if link.watched is not None and wanted == link.events:
        return
    try:
        fd = link.sock.fileno()
        if fd < 0:
            raise OSError("the socket is closed")
        poller.register(fd, wanted)  # registering again replaces the events
    except (ValueError, OSError, KeyError) as exc:  # closed under us by another thread
        _forget(poller, live, link)  # else the loop would go on waiting for it
        _fail(link, HostConnectionError(f"connection unusable: {exc}", link.host), errors)
        return
    link.watched, link.fd, link.events = link.sock, fd, wanted
    live[fd] = link


def _forget(poller: Any, live: dict[int, _Link], link: _Link) -> None:
    """Stop watching a link's descriptor (by the number it was registered under)."""
    if link.watched is not None and live.get(link.fd) is link:
        del live[link.fd]
        try:
            poller.unregister(link.fd)
        except (KeyError, ValueError):
            pass
    link.watched = None


def _take(buffer: CommandBuffer, host: HostInfo, get_pool: Callable[[int], Any],
          errors: RoundErrors) -> _Link | None:  # fmt: skip
    """The host's connection for this round, or None (the buffer's promises are rejected)."""
    pool = get_pool(host.host_id)
    try:
        conn, taken = _checkout(pool)
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
    link = _Link(buffer, host, pool, conn)
    link.taken = taken
    return link


def _checkout(pool: Any) -> tuple[Any, bool]:
    """A connection and whether it came from ``take()`` (unchecked for stale data, and given
    back with ``give_back()``)."""
    if isinstance(pool, ConnectionPool):
        conn = pool.take()
        if _deferrable(conn):  # the engine can connect it (again, if it turns out stale)
            return conn, True
        pool.give_back(conn)  # a connection only redis-py knows how to connect
    return checkout(pool), False


def _deferrable(conn: Any) -> bool:
    can_defer = getattr(conn, "can_defer", None)
    return can_defer is not None and bool(can_defer())


def _drop_stale(poller: Any, live: dict[int, _Link], links: list[_Link]) -> None:
    """One poll over every idle connection the round took: one that is readable before it
    was sent anything holds stale data or was closed by the server, so it is disconnected
    and connected afresh in the round (what redis-py's checkout does, one syscall per host).
    The round's own poller does it: the fresh connections stay registered for their replies."""
    for link in links:
        if link.taken and link.sock is not None:
            try:
                fd = link.sock.fileno()
            except OSError:
                fd = -1
            if fd < 0:  # closed under us (another thread disconnected the pool)
                link.conn.disconnect()
                link.sock = None
                continue
            poller.register(fd, select.POLLIN)
            link.watched, link.fd, link.events = link.sock, fd, select.POLLIN
            live[fd] = link
    if not live:
        return
    for fd, _events in poller.poll(0):
        link = live[fd]
        _forget(poller, live, link)  # before the descriptor closes: its number may come back
        link.conn.disconnect()
        link.sock = None


def _start_dial(link: _Link, round_deadline: float | None, errors: RoundErrors) -> None:
    """A new connection: connect it alongside the other hosts (TCP, TLS, login)."""
    conn = link.conn
    limit = conn.socket_connect_timeout
    connect_deadline = None if limit is None else time.monotonic() + limit
    if round_deadline is not None:
        connect_deadline = min(connect_deadline or round_deadline, round_deadline)
    link.connect_deadline = connect_deadline
    try:
        link.dial = Dial(conn.new_socket(), conn.tls_context(), conn.tls_server_name())
    except _DIAL_ERRORS as exc:
        _fail(link, HostConnectionError(_connect_reason(exc), link.host), errors)
        return
    link.sock = link.dial.sock


def _prepare(link: _Link, errors: RoundErrors) -> bool:
    """A pooled connection: ready its socket for non-blocking I/O and encode the queue."""
    sock = link.sock
    try:
        link.saved_timeout = sock.gettimeout()
        if link.saved_timeout and type(sock) is socket.socket:
            if sock.fileno() < 0:
                raise OSError("the socket is closed")
            link.by_fd = True
        else:
            sock.setblocking(False)
    except Exception as exc:  # the socket was closed under us (another thread disconnected)
        _fail(link, HostConnectionError(f"connection unusable: {exc}", link.host), errors)
        return False
    link.out = memoryview(link.buffer.encode())
    return True


def _advance_dial(link: _Link, errors: RoundErrors) -> None:
    """The connecting socket turned ready: go on; once connected, adopt it and log in."""
    dial = link.dial
    assert dial is not None
    try:
        done = dial.step()
    except _DIAL_ERRORS as exc:
        _fail(link, HostConnectionError(_connect_reason(exc), link.host), errors)
        return
    link.sock = dial.sock
    if not done:
        return
    link.dial = None
    conn = link.conn
    try:
        conn.adopt(dial.sock)
        link.saved_timeout = link.sock.gettimeout()
        link.sock.setblocking(False)
        payload, link.login = conn.login()
    except Exception as exc:  # e.g. a credential provider that raised
        _fail(link, HostConnectionError(f"login failed: {_reason(exc)}", link.host), errors)
        return
    if not link.login:
        link.connect_deadline = None
        payload = link.buffer.encode()
    elif not any(step.required for step in link.login):  # nothing to wait for: pipeline it
        payload += link.buffer.encode()
    # else AUTH/SELECT must succeed first, or the queue could run as another user or in db 0
    link.out = memoryview(payload)
    _write(link, errors)


def _write(link: _Link, errors: RoundErrors) -> None:
    out = link.out
    sock, by_fd = link.sock, link.by_fd
    try:
        while link.sent < len(out):
            if by_fd:
                link.sent += os.write(sock.fileno(), out[link.sent :])
            else:
                link.sent += sock.send(out[link.sent :])
    except _WOULD_BLOCK:
        pass  # the kernel buffer is full: the selector says when it drains
    except OSError as exc:
        _fail(link, HostConnectionError(f"write failed: {_reason(exc)}", link.host), errors)
        return
    if link.sent >= len(out):
        link.out = b""


def _read(link: _Link, errors: RoundErrors) -> None:
    sock, reader, buffer, by_fd = link.sock, link.reader, link.buffer, link.by_fd
    try:
        while True:
            data = os.read(sock.fileno(), READ_SIZE) if by_fd else sock.recv(READ_SIZE)
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
        while link.login:
            reply = reader.gets()
            if reply is False:
                break
            if not _logged_in(link, reply, errors):
                return
        if not link.login:
            buffer.settle(reader, errors)
            if not buffer.expecting and reader.gets() is not False:
                raise ValueError("more replies than commands")
    except Exception as exc:  # the reply stream itself is broken
        _fail(link, HostConnectionError(f"protocol error: {exc}", link.host), errors)
        return
    if not buffer.expecting and not link.out and not link.login:
        _finish(link)


def _logged_in(link: _Link, reply: Any, errors: RoundErrors) -> bool:
    """Check one login reply; after the last, send the queue if it waited. False: failed."""
    step = link.login.pop(0)
    if step.required and reply not in _OK:
        text = reply if isinstance(reply, ReplyError) else f"unexpected reply {reply!r}"
        error = HostConnectionError(f"login failed ({step.name}): {text}", link.host)
        _fail(link, error, errors)
        return False
    if not link.login:
        link.connect_deadline = None
        if link.buffer.has_queued:
            link.out, link.sent = memoryview(link.buffer.encode()), 0
            _write(link, errors)
    return link.conn is not None


def _finish(link: _Link) -> None:
    """All replies are in: the connection goes back to its pool, clean and blocking again."""
    conn, link.conn = link.conn, None
    if not link.by_fd:  # else it never left timeout mode
        try:
            link.sock.settimeout(link.saved_timeout)
        except OSError:  # closed under us after its last reply: the pool reconnects it
            conn.disconnect()
    _release(link, conn)


def _release(link: _Link, conn: Any) -> None:
    if link.taken:
        link.pool.give_back(conn)
    else:
        link.pool.release(conn)


def _fail(link: _Link, error: BaseException, errors: RoundErrors) -> None:
    """The host failed: drop the connection (it may hold half a reply) and reject what it owed."""
    conn, link.conn = link.conn, None
    if link.dial is not None:
        link.dial.close()
        link.dial = None
    if conn is not None:
        try:
            conn.disconnect()
        finally:
            _release(link, conn)
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


def _connect_reason(exc: BaseException) -> str:
    """Why a connect failed, in words that never quote a credential."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name: {exc.strerror or exc}"
    strerror = getattr(exc, "strerror", None)
    if strerror:
        return f"connect failed: {strerror[0].lower()}{strerror[1:]}"
    return f"connect failed: {_reason(exc)}"


def _timeout_error(link: _Link, round_deadline: float | None) -> HostTimeoutError:
    """Which clock ran out, said for the host it ran out on."""
    if link.connecting:
        if link.deadline == round_deadline:
            return HostTimeoutError("could not connect within the round's timeout", link.host)
        limit = link.conn.socket_connect_timeout if link.conn is not None else None
        return HostTimeoutError(f"connect timed out (socket_connect_timeout={limit})", link.host)
    what = "the round's timeout" if link.deadline == round_deadline else "socket_timeout"
    return HostTimeoutError(f"no reply within {what}", link.host)


def _next_deadline(link: _Link, now: float, round_deadline: float | None) -> float | None:
    if link.connecting:
        return link.connect_deadline  # already capped by the round's deadline
    idle = None if link.idle_timeout is None else now + link.idle_timeout
    if round_deadline is None:
        return idle
    if idle is None:
        return round_deadline
    return min(idle, round_deadline)


def _wait_ms(links: Iterable[_Link], now: float) -> float | None:
    """How long poll() may wait, in its unit (milliseconds): until the nearest deadline."""
    deadlines = [link.deadline for link in links if link.deadline is not None]
    if not deadlines:
        return None
    return max(0.0, min(deadlines) - now) * 1000.0
