"""Opening one host's socket without blocking: TCP (each resolved address in turn), then TLS.

The engine owns the selector and the clock; a ``Dial`` only says which readiness it waits for
(``events``) and moves on when the engine reports it, so many hosts connect at once.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import ssl
from collections.abc import Iterator
from typing import Any

_IN_PROGRESS = (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK)


class Dial:
    """One host's connect in progress; ``step()`` on readiness until it returns True."""

    __slots__ = ("_candidates", "sock", "_tls", "_server_name", "_handshaking", "events")

    def __init__(
        self,
        candidates: Iterator[tuple[socket.socket, Any]],
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        self._candidates = candidates
        self._tls = tls
        self._server_name = server_name
        self._handshaking = False
        self.sock: socket.socket | None = None
        self.events = selectors.EVENT_WRITE
        self._connect_next(None)

    @property
    def fd(self) -> int:
        """The descriptor the engine watches (the same after TLS wraps the socket)."""
        return self.sock.fileno() if self.sock is not None else -1

    def step(self) -> bool:
        """Go on after the socket turned ready; True once connected (TLS included)."""
        sock = self.sock
        assert sock is not None
        if not self._handshaking:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._connect_next(OSError(code, os.strerror(code)))
                return False
            return self._connected()
        return self._handshake()

    def close(self) -> None:
        """Drop the socket (the connect failed or timed out)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _connect_next(self, error: OSError | None) -> None:
        """Start connecting the next resolved address; raise the last error when none is left."""
        self.close()
        for sock, address in self._candidates:
            self.sock = sock
            code = sock.connect_ex(address)
            if code == 0 or code in _IN_PROGRESS:  # done at once: step() finds that out
                self.events = selectors.EVENT_WRITE
                return
            error = OSError(code, os.strerror(code))
            self.close()
        raise error or OSError("the host name resolved to no address")

    def _connected(self) -> bool:
        if self._tls is None:
            return True
        assert self.sock is not None
        self.sock = self._tls.wrap_socket(
            self.sock, server_hostname=self._server_name, do_handshake_on_connect=False
        )
        self._handshaking = True
        return self._handshake()

    def _handshake(self) -> bool:
        sock = self.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self.events = selectors.EVENT_READ
            return False
        except ssl.SSLWantWriteError:
            self.events = selectors.EVENT_WRITE
            return False
        return True
