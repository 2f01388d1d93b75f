"""Named errors of the cluster core; each says what went wrong and what to do instead."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hosts import HostInfo

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class UnroutableCommand(Exception):
    """A command cannot be sent to exactly one host: it has no key, or its keys span hosts."""


class UnsafeCommand(UnroutableCommand):
    """A command a map()/fanout() block must not send: it would change its connection for
    whoever uses it next (SELECT, MULTI, WATCH, AUTH, CLIENT REPLY...), or, where rounds of
    several tasks share a connection (the asyncio engine), hold it for all of them (BLPOP...)."""


class BadHostSetup(Exception):
    """The host configuration cannot work: ids with gaps, a URL that does not parse, ..."""


# Where rb raised a built-in exception, ours is also that type, so ``except RuntimeError`` (or
# ValueError, TypeError) written for rb keeps catching it.


class NoTargetHosts(UnroutableCommand, RuntimeError):
    """A fanout client was used before it was given hosts (rb: RuntimeError)."""


class MissingHostId(BadHostSetup, RuntimeError):
    """A host was given without a host id (rb: RuntimeError)."""


class BadHostId(BadHostSetup, ValueError):
    """A host id that is not an integer (rb: ValueError)."""


class DuplicateHostId(BadHostSetup, TypeError):
    """Two hosts with the same host id (rb: TypeError)."""


class UnsupportedHostSetting(BadHostSetup, TypeError):
    """A combination of host settings that cannot work, e.g. TLS over a unix socket
    (rb: TypeError)."""


class HostError(Exception):
    """An error that happened on one host: carries its ``host_id`` and names it by address,
    never with its password. Catch this to handle any one host's failure."""

    host_id: Any = None

    def __init__(self, message: str, host: HostInfo | int | None = None) -> None:
        self.host_id = getattr(host, "host_id", host)
        label = getattr(host, "label", None) or (f"host {host}" if host is not None else "")
        super().__init__(f"{label}: {message}" if label else message)


class HostConnectionError(HostError, RedisConnectionError):
    """A host could not be reached or dropped the connection (a redis ConnectionError)."""


class HostTimeoutError(HostError, RedisTimeoutError):
    """A host did not answer in time (a redis TimeoutError)."""
