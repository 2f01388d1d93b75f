"""One asyncio connection to a host: a Protocol that feeds replies straight into a CommandBuffer.

No streams and no per-reply task: ``data_received`` parses with the same reader as the selector
engine (hiredis when installed) and settles promises as bytes arrive; the round is told once,
when the buffer owes nothing more. Connecting and logging in (AUTH, SELECT, CLIENT SETNAME, TLS)
happen together under the connect timeout, with the same login commands and TLS context as
the selector engine (taken from the host's sync connection settings).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .buffer import CommandBuffer
from .engine import RoundErrors
from .errors import HostConnectionError, HostTimeoutError
from .hosts import HostInfo
from .resp import new_reader

#: Called once per round when a connection is done: ``(connection, error or None)``.
OnDone = Callable[["AsyncConnection", BaseException | None], None]


class AsyncConnection(asyncio.Protocol):
    """A connection's state between rounds and the buffer it serves during one."""

    def __init__(self, host: HostInfo) -> None:
        self.host = host
        self.transport: asyncio.Transport | None = None
        self.reader = new_reader()
        self.buffer: CommandBuffer | None = None
        self.on_done: OnDone | None = None
        self.errors: RoundErrors | None = None
        self.closed = False
        self.last_activity = 0.0

    # -- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.closed:  # given up on (cancelled) before the loop finished connecting
            transport.abort()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        if buffer is None:  # bytes nobody asked for: this connection cannot be trusted
            self.close()
            return
        self.last_activity = time.monotonic()
        reader = self.reader
        reader.feed(data)
        errors = self.errors
        try:
            while buffer.expecting:
                reply = reader.gets()
                if reply is False:
                    return
                try:
                    error = buffer.on_reply(reply)
                except Exception as exc:  # a subscriber raised: its promise is settled; go on
                    error = exc
                if error is not None and errors is not None:
                    errors.add(error)
        except Exception as exc:  # the reply stream itself is broken
            self.finish(HostConnectionError(f"protocol error: {exc}", self.host))
            return
        self.finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.buffer is not None:
            reason = f"connection lost: {exc}" if exc else "connection closed by the server"
            self.finish(HostConnectionError(reason, self.host))

    # -- rounds -------------------------------------------------------------------------------

    def start(self, buffer: CommandBuffer, on_done: OnDone, errors: RoundErrors) -> None:
        """Send the buffer's queue; ``on_done`` is called when every reply is in (or it failed)."""
        self.buffer = buffer
        self.on_done = on_done
        self.errors = errors
        self.last_activity = time.monotonic()
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            self.finish(HostConnectionError("connection closed by the server", self.host))
            return
        transport.write(buffer.encode())

    def finish(self, error: BaseException | None) -> None:
        """The round is over for this connection; a failed one is closed (it may hold half a
        reply) and must not be reused."""
        on_done = self.on_done
        self.buffer = self.on_done = self.errors = None
        if error is not None:
            self.close()
        if on_done is not None:
            on_done(self, error)

    def close(self) -> None:
        """Drop the connection at once (no goodbye: a stalled server would not read it)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def usable(self) -> bool:
        """Idle, open and not half-way through anything."""
        transport = self.transport
        return not self.closed and transport is not None and not transport.is_closing()


class _LoginReplies:
    """The handshake in CommandBuffer's shape: the sync connection's pipelined login commands
    (AUTH, CLIENT SETNAME / SETINFO, SELECT: the one place that says what a login is), then
    one reply per step, judged once all are in."""

    has_queued = True

    def __init__(self, payload: bytes, steps: list[Any]) -> None:
        self.payload = payload
        self.steps = steps
        self.replies: list[Any] = []

    @property
    def expecting(self) -> int:
        return len(self.steps) - len(self.replies)

    def encode(self) -> bytes:
        return self.payload

    def on_reply(self, reply: Any) -> None:
        self.replies.append(reply)

    def fail(self, error: BaseException) -> None:
        """Nothing to reject: the caller raises ``error``."""

    def refusal(self) -> str | None:
        """Why the login failed, if a step that must succeed did not (no credential in it)."""
        for step, reply in zip(self.steps, self.replies, strict=True):
            if step.required and reply not in _OK:
                text = str(reply) if isinstance(reply, Exception) else repr(reply)
                return f"login failed ({step.name}): {text}"
        return None


_OK = (b"OK", "OK")


async def open_connection(host: HostInfo, settings: Any,
                          deadline: float | None = None) -> AsyncConnection:  # fmt: skip
    """Connect and log in within ``socket_connect_timeout`` (and before ``deadline``, a
    ``time.monotonic()`` value); a HostError names what failed.

    ``settings`` is an unconnected redis-py connection of the host's sync pool (django_rb's
    connection classes): its login commands, TLS context and timeouts are used as they are, so
    both engines log in alike.
    """
    if not hasattr(settings, "login"):
        raise TypeError(
            f"{type(settings).__name__} cannot tell the asyncio engine how to log in: use "
            "django_rb's connection classes (the default) in the pool's connection_class."
        )
    limit = settings.socket_connect_timeout or settings.socket_timeout
    what = f"after {limit} s"
    if deadline is not None and (limit is None or deadline - time.monotonic() < limit):
        limit, what = max(0.0, deadline - time.monotonic()), "the round's timeout"
    loop = asyncio.get_running_loop()
    made: list[AsyncConnection] = []  # known even when a cancel lands inside create_connection

    def protocol() -> AsyncConnection:
        made.append(AsyncConnection(host))
        return made[-1]

    try:
        async with asyncio.timeout(limit):
            if host.unix_socket_path is not None:
                _, conn = await loop.create_unix_connection(protocol, host.unix_socket_path)
            else:
                tls = settings.tls_context()
                _, conn = await loop.create_connection(
                    protocol,
                    host.host,
                    int(host.port),
                    ssl=tls,
                    server_hostname=settings.tls_server_name() if tls is not None else None,
                )
            payload, steps = settings.login()
            if steps:
                await _log_in(conn, _LoginReplies(payload, steps))
    except TimeoutError:
        _close_all(made)
        raise HostTimeoutError(f"connect timed out ({what})", host) from None
    except HostConnectionError:
        _close_all(made)
        raise
    except OSError as exc:
        _close_all(made)
        raise HostConnectionError(exc.strerror or type(exc).__name__, host) from None
    except BaseException:  # cancelled mid-connect: nothing half-open stays behind
        _close_all(made)
        raise
    return conn


def _close_all(made: list[AsyncConnection]) -> None:
    for conn in made:
        conn.close()


async def _log_in(conn: AsyncConnection, login: _LoginReplies) -> None:
    done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def on_done(_conn: AsyncConnection, error: BaseException | None) -> None:
        if not done.done():
            done.set_result(error)

    conn.start(login, on_done, RoundErrors())  # type: ignore[arg-type]
    failure = await done
    if failure is not None:
        raise failure
    refusal = login.refusal()
    if refusal is not None:
        raise HostConnectionError(refusal, conn.host)
