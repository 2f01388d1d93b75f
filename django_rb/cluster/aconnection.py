"""One asyncio connection to a host: a Protocol that feeds replies straight into CommandBuffers.

No streams and no per-reply task: ``data_received`` parses with the same reader as the selector
engine (hiredis when installed) and settles promises as bytes arrive. Rounds of several tasks
may be *pipelined* on one connection: each round's commands are written whole, in order, and
the replies are matched to the rounds in the same order (a queue of slots); each round is
told once, when its buffer owes nothing more. A round that stops waiting (cancelled, or past
its deadline) while others share the connection leaves its slot behind: its replies are read
and dropped when they come, so nobody else's are shifted. Connecting and logging in (AUTH,
SELECT, CLIENT SETNAME, TLS) happen together under the connect timeout, with the same login
commands and TLS context as the selector engine (taken from the host's sync connection
settings).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .buffer import CommandBuffer
from .engine import RoundErrors
from .errors import HostConnectionError, HostTimeoutError
from .hosts import HostInfo
from .resp import new_reader

if TYPE_CHECKING:
    from .apool import AsyncPool


class Slot:
    """One round's place in a connection's queue: the buffer its replies settle.

    ``skip`` is 0 while the round waits; a round that stopped waiting sets it to the number
    of replies it was still owed, which the connection then reads and drops.
    """

    __slots__ = ("buffer", "errors", "skip")

    buffer: CommandBuffer
    errors: RoundErrors
    skip: int

    def replied(self, conn: AsyncConnection, error: BaseException | None) -> None:
        """Every reply is in (``error`` None), or the connection failed with ``error``."""
        raise NotImplementedError


class Flusher:
    """Writes that wait for the end of the loop's current pass, one write per connection.

    A round that finds a connection already busy does not write at once: the rounds of every
    task that run in the same pass of the loop then go out in one ``send`` per connection
    (and come back in a few reads) instead of one each.
    """

    __slots__ = ("dirty",)

    def __init__(self) -> None:
        self.dirty: list[AsyncConnection] = []

    def add(self, conn: AsyncConnection) -> None:
        if not self.dirty:
            asyncio.get_running_loop().call_soon(self.flush)
        self.dirty.append(conn)

    def flush(self) -> None:
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            conn.flush()


class AsyncConnection(asyncio.Protocol):
    """A connection, and the rounds it owes replies to, oldest first."""

    def __init__(self, host: HostInfo) -> None:
        self.host = host
        self.transport: asyncio.Transport | None = None
        self.reader = new_reader()
        #: the pool it belongs to once logged in (None while logging in)
        self.pool: AsyncPool | None = None
        #: rounds written (or about to be) and owed replies, in the order they were written
        self.pending: deque[Slot] = deque()
        #: payloads waiting for the loop's flush (see ``Flusher``)
        self.out: list[bytes] = []
        #: rounds holding this connection (claimed, whether written yet or not)
        self.rounds = 0
        self.closed = False
        #: when bytes last arrived, or when it started owing replies after owing none
        self.last_activity = 0.0

    def __repr__(self) -> str:
        return f"<AsyncConnection {self.host.label} rounds={self.rounds} owed={len(self.pending)}>"

    # -- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.closed:  # given up on (cancelled) before the loop finished connecting
            transport.abort()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        pending = self.pending
        if not pending:  # bytes nobody asked for: this connection cannot be trusted
            self.close()
            return
        self.last_activity = time.monotonic()
        reader = self.reader
        reader.feed(data)
        gets = reader.gets
        try:
            while pending:
                slot = pending[0]
                skip = slot.skip
                if skip:  # a round that stopped waiting: its replies are dropped
                    while skip:
                        if gets() is False:
                            slot.skip = skip
                            return
                        skip -= 1
                    pending.popleft()
                    continue
                buffer = slot.buffer
                buffer.settle(reader, slot.errors)
                if buffer.expecting:  # the rest of its replies are still on their way
                    return
                pending.popleft()
                slot.replied(self, None)
            if gets() is not False:  # a reply nobody is owed
                raise ValueError("more replies than commands")
        except Exception as exc:  # the reply stream itself is broken
            self.fail(HostConnectionError(f"protocol error: {exc}", self.host))

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "connection closed by the server"
        self.fail(HostConnectionError(reason, self.host))

    # -- rounds -------------------------------------------------------------------------------

    def start(self, slot: Slot, flusher: Flusher | None = None) -> None:
        """Send the slot's buffer; ``slot.replied`` is called when every reply is in (or the
        connection failed). With a ``flusher`` the bytes go out at the end of the loop's pass,
        together with the other rounds written to this connection in that pass."""
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            slot.replied(self, HostConnectionError("connection closed by the server", self.host))
            return
        payload = slot.buffer.encode()
        pending = self.pending
        if not pending:
            self.last_activity = time.monotonic()
        pending.append(slot)
        out = self.out
        if out or flusher is not None:
            if not out:
                flusher.add(self)  # type: ignore[union-attr]  # (out is empty: flusher given)
            out.append(payload)
        else:
            transport.write(payload)

    def flush(self) -> None:
        out, self.out = self.out, []
        transport = self.transport
        if out and transport is not None and not self.closed:
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def abandon(self, slot: Slot) -> None:
        """``slot``'s round stops waiting (it still holds its claim): if other rounds hold this
        connection, the slot's replies will be read and dropped; otherwise the connection is
        closed (it may hold half a reply). The caller settles the round's promises."""
        pending = self.pending
        if self.rounds > 1:
            owed = slot.buffer.expecting
            if owed:
                slot.skip = owed
            elif slot in pending:
                pending.remove(slot)
            return
        pending.clear()
        self.close()

    def fail(self, error: BaseException) -> None:
        """Close the connection and fail every round still waiting on it."""
        self.close()
        pending, self.pending = self.pending, deque()
        self.out = []
        for slot in pending:
            if not slot.skip:
                slot.replied(self, error)

    def close(self) -> None:
        """Drop the connection at once (no goodbye: a stalled server would not read it)."""
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        if self.pool is not None:
            self.pool.forget(self)

    @property
    def usable(self) -> bool:
        """Open and not closing."""
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

    def settle(self, reader: Any, errors: Any) -> None:
        """Take the login's replies as far as ``reader`` holds them (CommandBuffer.settle)."""
        while self.expecting and (reply := reader.gets()) is not False:
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


class _Login(Slot):
    """The handshake's place in the connection's queue."""

    __slots__ = ("done",)

    def __init__(self, login: _LoginReplies, done: asyncio.Future[BaseException | None]) -> None:
        self.buffer = login  # type: ignore[assignment]  # CommandBuffer's shape
        self.errors = RoundErrors()
        self.skip = 0
        self.done = done

    def replied(self, conn: AsyncConnection, error: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_result(error)


async def _log_in(conn: AsyncConnection, login: _LoginReplies) -> None:
    done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    conn.start(_Login(login, done))
    failure = await done
    if failure is not None:
        raise failure
    refusal = login.refusal()
    if refusal is not None:
        raise HostConnectionError(refusal, conn.host)
