"""Lua scripts for the cluster's clients: sent as EVALSHA, loaded only where a host lacks them.

A redis-py ``Script`` recovers from NOSCRIPT by catching an exception, which a promise never
raises; and its SCRIPT LOAD has no key, so a routing client cannot place it. ``ClusterScript``
hands the call to the client it runs on instead: inside ``map()`` / ``fanout()`` the client
queues EVALSHA and, on a NOSCRIPT reply, queues EVAL with the body on the same host (one more
round for those commands only); the routing client picks the host by the keys and lets that
host's plain client do redis-py's own load-and-retry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from redis.commands.core import Script


class ClusterScript(Script):
    """A script registered on a cluster client; call it with ``client=`` any cluster client
    (a mapping client inside a block, the routing client, a local client)."""

    def __call__(
        self,
        keys: Sequence[Any] | None = None,
        args: Iterable[Any] | None = None,
        client: Any = None,
    ) -> Any:
        client = client if client is not None else self.registered_client
        run = getattr(client, "run_script", None)
        if run is None:  # a plain redis-py client: its own EVALSHA / load / retry
            return Script.__call__(self, keys, args, client)
        return run(self, list(keys or ()), list(args or ()))
