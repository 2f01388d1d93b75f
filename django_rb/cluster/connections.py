"""redis-py connection classes whose login handshake is bounded by the *connect* timeout.

redis-py waits for the replies to AUTH/SELECT/HELLO with the socket timeout; a node that
accepts TCP but answers nothing (stalled, SIGSTOPped, overloaded) would then hold a round for
the whole socket timeout before any other host is written. Connecting is cut short instead.
"""

from __future__ import annotations

from typing import Any

from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection


class _BoundedHandshake:
    """Mixin: log in under ``socket_connect_timeout``, then restore the socket timeout.

    redis-py 5 logs in through ``on_connect``; newer versions through
    ``on_connect_check_health``. Both are wrapped; nesting is harmless.
    """

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

    def on_connect(self) -> None:
        return self._bounded(super().on_connect)

    def on_connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        return self._bounded(super().on_connect_check_health, *args, **kwargs)


class TCPConnection(_BoundedHandshake, Connection):
    """A plain TCP connection."""


class TLSConnection(_BoundedHandshake, SSLConnection):
    """A TLS connection (``rediss://`` hosts)."""


class UnixConnection(_BoundedHandshake, UnixDomainSocketConnection):
    """A unix-socket connection."""
