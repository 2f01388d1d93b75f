"""redis-py connection classes that the engine can connect without blocking.

While ``DEFERRED`` is set (the engine's pool checkout) a connection of these classes that
has no socket yet is handed out unconnected: the engine opens the socket non-blocking, drives
TLS and the login commands through its selector loop with every other host's, then ``adopt()``s
the socket, and from then on it is an ordinary pooled redis-py connection. Everywhere else
(local and routing clients) they connect as redis-py does, except that the login handshake is
bounded by the *connect* timeout, so a node that accepts TCP but answers nothing cannot hold a
caller for the whole socket timeout.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection

from .resp import ArgEncoder, pack

if TYPE_CHECKING:
    from redis.connection import AbstractConnection as _Base
else:
    _Base = object

#: True while the engine checks a connection out (per thread / task: a ContextVar)
DEFERRED: ContextVar[bool] = ContextVar("django_rb_deferred_connect", default=False)


class LoginStep:
    """One command of the login handshake and whether the connection is unusable if it fails."""

    __slots__ = ("name", "required")

    def __init__(self, name: str, required: bool) -> None:
        self.name = name
        self.required = required


class _Deferrable(_Base):
    """Mixin: connect later (engine) or now with a bounded login (everyone else)."""

    def can_defer(self) -> bool:
        """Whether the engine can reproduce this connection's login (custom hooks cannot)."""
        return self.redis_connect_func is None

    def connect(self) -> None:
        if self._sock is None and DEFERRED.get() and self.can_defer():
            return  # the engine opens it, in parallel with the round's other hosts
        super().connect()

    def can_read(self, timeout: float = 0) -> bool:
        if self._sock is None and DEFERRED.get() and self.can_defer():
            return False  # not connected yet: nothing stale to find
        return super().can_read(timeout)

    # -- the blocking path: login bounded by socket_connect_timeout ---------------------------

    def _bounded(self, login: Any, *args: Any, **kwargs: Any) -> Any:
        sock = self._sock
        limit = self.socket_connect_timeout
        if sock is None or limit is None:
            return login(*args, **kwargs)
        sock.settimeout(limit)
        try:
            return login(*args, **kwargs)
        finally:
            if self._sock is not None:
                self._sock.settimeout(self.socket_timeout)

    def on_connect(self) -> None:  # redis-py 5 logs in here
        self._bounded(super().on_connect)

    def on_connect_check_health(self, *args: Any, **kwargs: Any) -> None:  # redis-py 6 and newer
        self._bounded(super().on_connect_check_health, *args, **kwargs)

    # -- the engine's path ---------------------------------------------------------------------

    def new_socket(self) -> Iterator[tuple[socket.socket, Any]]:
        """Non-blocking sockets to try in turn, each with the address to connect it to."""
        raise NotImplementedError  # pragma: no cover - each concrete class says how

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context to wrap the connected socket with (None: plain)."""
        return None

    def tls_server_name(self) -> str | None:
        """The name the server's certificate is checked against."""
        return None

    def login(self) -> tuple[bytes, list[LoginStep]]:
        """What redis-py's login (RESP2) would send for this connection, pipelined, and how to
        judge each reply: AUTH, CLIENT SETNAME, CLIENT SETINFO, SELECT, as configured."""
        encoder = ArgEncoder(self.encoder.encoding, self.encoder.encoding_errors)
        commands: list[tuple[Any, ...]] = []
        steps: list[LoginStep] = []

        def add(label: str, required: bool, *words: Any) -> None:
            commands.append(tuple(encoder.encode(w) for w in words))
            steps.append(LoginStep(label, required))  # the label never holds a credential

        credentials = self._credentials()
        if credentials:
            add("AUTH", True, "AUTH", *credentials)
        if self.client_name:
            add("CLIENT SETNAME", True, "CLIENT", "SETNAME", self.client_name)
        lib_name, lib_version = self._driver_names()
        if lib_name:
            add("CLIENT SETINFO", False, "CLIENT", "SETINFO", "LIB-NAME", lib_name)
        if lib_version:
            add("CLIENT SETINFO", False, "CLIENT", "SETINFO", "LIB-VER", lib_version)
        if self.db:
            add("SELECT", True, "SELECT", self.db)
        return b"".join(pack(words) for words in commands), steps

    def _credentials(self) -> tuple[Any, ...]:
        provider = self.credential_provider
        if provider is not None:
            return tuple(provider.get_credentials())
        if self.username:
            return (self.username, self.password or "")
        if self.password:
            return (self.password,)
        return ()

    def _driver_names(self) -> tuple[str | None, str | None]:
        info = getattr(self, "driver_info", None)  # redis-py 7 and newer
        if info is not None:
            return info.formatted_name, info.lib_version
        if hasattr(self, "driver_info"):  # driver_info=None switches CLIENT SETINFO off
            return None, None
        return getattr(self, "lib_name", None), getattr(self, "lib_version", None)

    def adopt(self, sock: socket.socket) -> None:
        """Take over a socket the engine connected: an ordinary connected redis-py connection
        from now on (pooled, reusable, closed by ``disconnect()``)."""
        sock.settimeout(self.socket_timeout)
        self._sock = sock  # type: ignore[assignment]  # redis-py types it as always None
        reset = getattr(self, "_reset_himport_state", None)  # redis-py 8 session state
        if reset is not None:
            reset()
        self._parser.on_connect(self)
        callbacks = [ref for ref in self._connect_callbacks if ref()]
        self._connect_callbacks = callbacks
        for ref in callbacks:
            callback = ref()
            if callback is not None:
                callback(self)


def _tcp_sockets(conn: Any) -> Iterator[tuple[socket.socket, Any]]:
    """One socket per address the host name resolves to, set up as redis-py sets them up."""
    for family, kind, proto, _name, address in socket.getaddrinfo(
        conn.host, conn.port, conn.socket_type, socket.SOCK_STREAM
    ):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if conn.socket_keepalive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                for option, value in conn.socket_keepalive_options.items():
                    sock.setsockopt(socket.IPPROTO_TCP, option, value)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        yield sock, address


class TCPConnection(_Deferrable, Connection):
    """A plain TCP connection."""

    def new_socket(self) -> Iterator[tuple[socket.socket, Any]]:
        return _tcp_sockets(self)


class TLSConnection(_Deferrable, SSLConnection):
    """A TLS connection (``rediss://`` hosts)."""

    def can_defer(self) -> bool:
        ocsp = self.ssl_validate_ocsp or self.ssl_validate_ocsp_stapled
        return not ocsp and super().can_defer()  # OCSP checks need blocking sockets

    def new_socket(self) -> Iterator[tuple[socket.socket, Any]]:
        return _tcp_sockets(self)

    def tls_context(self) -> ssl.SSLContext | None:
        context = ssl.create_default_context()
        context.check_hostname = bool(self.check_hostname)
        context.verify_mode = self.cert_reqs
        for flag in getattr(self, "ssl_include_verify_flags", None) or ():
            context.verify_flags |= flag
        for flag in getattr(self, "ssl_exclude_verify_flags", None) or ():
            context.verify_flags &= ~flag
        if self.certfile or self.keyfile:
            context.load_cert_chain(self.certfile, self.keyfile, self.certificate_password)
        if self.ca_certs is not None or self.ca_path is not None or self.ca_data is not None:
            context.load_verify_locations(self.ca_certs, self.ca_path, self.ca_data)
        min_version = getattr(self, "ssl_min_version", None)  # newer redis-py options
        if min_version is not None:
            context.minimum_version = min_version
        ciphers = getattr(self, "ssl_ciphers", None)
        if ciphers:
            context.set_ciphers(ciphers)
        return context

    def tls_server_name(self) -> str | None:
        return str(self.host)


class UnixConnection(_Deferrable, UnixDomainSocketConnection):
    """A unix-socket connection."""

    def new_socket(self) -> Iterator[tuple[socket.socket, Any]]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        yield sock, self.path
