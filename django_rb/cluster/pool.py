"""The default connection pool: redis-py's, with a lean checkout for the engine's rounds.

redis-py's ``get_connection()`` polls each connection it hands out for stale data and asks
the OS for the process id, and ``release()`` asks again and does bookkeeping for RESP3
features that django_rb never enables (it speaks RESP2 only): about five syscalls per host
per round, more than the round's own send and receive. The engine takes connections with
``take()`` instead and checks all of a round's idle connections for stale data in one poll
(``engine.run_round``); everyone else (local and routing clients) uses the ordinary methods.
Pools of other classes (``pool_cls``) are used through the ordinary methods only.
"""

from __future__ import annotations

import functools
import os
import socket
from typing import Any

from redis import ConnectionPool as RedisConnectionPool

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


class ConnectionPool(RedisConnectionPool):
    """redis-py's ``ConnectionPool`` plus ``take()`` / ``give_back()`` for the engine."""

    def take(self) -> Any:
        """An idle connection (or a new, unconnected one), not yet checked for stale data:
        the caller checks it, or gives it back disconnected."""
        if self.pid != _pid:
            self._checkpid()  # a forked child: redis-py resets the pool
        with self._lock:
            try:
                connection = self._available_connections.pop()
            except IndexError:
                connection = self.make_connection()
            self._in_use_connections.add(connection)
        return connection

    def disconnect(self, inuse_connections: bool = True) -> None:
        """Close the idle connections; with ``inuse_connections``, shut down the ones in use
        instead of closing them. Closing a socket another thread is reading or writing frees
        its descriptor number mid-call: a socket opened meanwhile (any thread's, to any node)
        can take the number, and the call then reads that socket's replies or writes into it
        (redis-py's ``disconnect`` does that). A shut-down socket keeps its number: its owner
        sees the connection end, fails that host, and closes it itself."""
        self._checkpid()
        with self._lock:  # idle ones cannot be taken while they are closed
            for connection in self._available_connections:
                connection.disconnect()
            if not inuse_connections:
                return
            for connection in self._in_use_connections:
                sock = connection._sock
                if sock is not None:
                    try:  # the OS call for any socket (an SSLSocket's would drop its state)
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
                    except OSError:  # already closed, or never connected
                        pass

    def give_back(self, connection: Any) -> None:
        """Return a connection that ``take()`` handed out."""
        if self.pid != _pid or connection.pid != self.pid:
            self.release(connection)  # across a fork: redis-py's rules
            return
        with self._lock:
            try:
                self._in_use_connections.remove(connection)
            except KeyError:
                return  # not ours (the pool was reset meanwhile)
            self._available_connections.append(connection)


@functools.cache
def shared_driver_info() -> Any:
    """One ``DriverInfo`` for every connection of the process (redis-py 7 and newer), or None.

    redis-py builds one per connection when none is given, and each reads redis-py's version
    from the installed package's metadata: about 0.35 ms per new connection, ten times the
    rest of making it. The name and version it reports (CLIENT SETINFO) are the same.
    """
    try:
        from redis.driver_info import DriverInfo  # noqa: PLC0415  (redis-py 7+)
    except ImportError:
        return None
    return DriverInfo()


def with_shared_driver_info(pool_options: dict[str, Any]) -> None:
    """Give ``pool_options`` the shared DriverInfo unless they say how to name the client."""
    if not {"driver_info", "lib_name", "lib_version"} & pool_options.keys():
        info = shared_driver_info()
        if info is not None:
            pool_options["driver_info"] = info
