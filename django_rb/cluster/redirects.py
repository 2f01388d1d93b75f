"""Redis Cluster redirects, followed as further rounds of the same ``map()`` block.

A cluster buffer hands back (``CommandBuffer.take_over``) each command answered with MOVED,
ASK, TRYAGAIN or CLUSTERDOWN, or lost with its node; ``Redirects`` records why, and
``follow_redirects`` runs the next round with just those commands until none is left. Nothing
here touches a socket: the caller passes the function that runs a list of buffers (the selector
engine's ``run_round``; an asyncio engine passes its own) and the one that re-routes commands.
A command whose reply arrived is never sent again; only its redirect is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from ._keyspecs_table import COMMANDS
from .buffer import DELS, GETS, SETS, Run
from .engine import RoundErrors
from .errors import HostError
from .promise import reject_each

MOVED, ASK, TRYAGAIN, CLUSTERDOWN, FAILED = "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "FAILED"

#: How often one command may be redirected (MOVED / ASK / TRYAGAIN / CLUSTERDOWN) in a block.
MAX_REDIRECTS = 8
#: How often a command lost with its node (a failover) is re-sent: once, as the issue asks.
MAX_FAILOVER_RETRIES = 1
#: Sleep before the n-th TRYAGAIN / CLUSTERDOWN / failover retry: BACKOFF * n, capped.
BACKOFF = 0.02
MAX_BACKOFF = 0.2

#: Writes that leave the same data when applied twice, so a command in flight when its node died
#: may be re-sent to the new owner. Reads (commands Redis flags readonly) are re-sent too.
IDEMPOTENT_WRITES = frozenset(
    {"SET", "SETEX", "PSETEX", "MSET", "DEL", "UNLINK", "HSET", "HMSET", "HDEL", "SADD",
     "SREM", "ZREM", "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "RESTORE"}
)  # fmt: skip
_SET_NOT_IDEMPOTENT = (b"GET", b"NX", b"XX", b"KEEPTTL")


class ClusterRedirectError(ResponseError):
    """A command kept being redirected (MOVED / ASK / TRYAGAIN / CLUSTERDOWN) past the limit:
    the cluster is resharding or has lost a slot's master for longer than a block may wait."""


@dataclass
class Redirect:
    """One command handed back by a buffer, and where the reply said it should go."""

    how: str
    entry: Any  # the buffer's queue entry: a (NAME, words, options, promise) tuple or a Run
    slot: int | None
    target: tuple[str, int] | None
    error: BaseException


def parse_redirect(text: str) -> tuple[str, int | None, tuple[str, int] | None] | None:
    """``("MOVED", 3999, ("127.0.0.1", 7001))`` for a redirect reply's text, else None."""
    word, _, rest = text.partition(" ")
    if word in (MOVED, ASK):
        slot, _, address = rest.partition(" ")
        host, _, port = address.rpartition(":")
        return word, int(slot), (host.strip("[]"), int(port))
    if word in (TRYAGAIN, CLUSTERDOWN):
        return word, None, None
    return None


def entry_promises(entry: Any) -> list[Any]:
    """The promise(s) a queue entry settles."""
    return list(entry.promises) if type(entry) is Run else [entry[3]]


def retry_safe(entry: Any) -> bool:
    """May this command, possibly executed already, be sent again (a read or idempotent)?"""
    if type(entry) is Run:
        return entry.kind in (GETS, SETS, DELS)
    name, words = entry[0], entry[1]
    if name == "SET":
        return not any(word.upper() in _SET_NOT_IDEMPOTENT for word in words[3:])
    spec = COMMANDS.get(name)
    return name in IDEMPOTENT_WRITES or (spec is not None and "readonly" in spec[1])


class Redirects:
    """What the buffers of one block handed back, round by round."""

    def __init__(self, errors: RoundErrors, slot_of: Callable[[Any], int | None]) -> None:
        self.errors = errors
        self.slot_of = slot_of
        self.pending: list[Redirect] = []
        self._tries: dict[tuple[int, bool], int] = {}
        self._absorbed: set[int] = set()
        self._kept: set[int] = set()
        #: the nodes that failed in this block: a slot-map refresh asks them last
        self.failed_hosts: set[Any] = set()

    def take(self, error: BaseException, entry: Any, sent: bool) -> bool:
        """A buffer's ``take_over``: claim redirected commands and retryable failures."""
        if isinstance(error, HostError):
            return self._take_failure(error, entry, sent)
        parsed = parse_redirect(str(error))
        if parsed is None:
            return False
        how, slot, target = parsed
        if self._spent(entry, MAX_REDIRECTS):
            message = f"{error} (still redirected after {MAX_REDIRECTS} tries; the cluster is "
            message += "resharding or a slot has no master: retry later)"
            self._reject(entry, ClusterRedirectError(message))
            return True
        slot = self.slot_of(entry) if slot is None else slot
        self.pending.append(Redirect(how, entry, slot, target, error))
        return True

    def _take_failure(self, error: BaseException, entry: Any, sent: bool) -> bool:
        self.failed_hosts.add(getattr(error, "host_id", None))
        slot = self.slot_of(entry)
        if (
            slot is None
            or (sent and not retry_safe(entry))
            or self._spent(entry, MAX_FAILOVER_RETRIES, True)
        ):
            self._kept.add(id(error))
            return False
        self._absorbed.add(id(error))
        self.pending.append(Redirect(FAILED, entry, slot, None, error))
        return True

    def _spent(self, entry: Any, limit: int, failure: bool = False) -> bool:
        key = (id(entry_promises(entry)[0]), failure)
        tries = self._tries.get(key, 0)
        if tries >= limit:
            return True
        self._tries[key] = tries + 1
        return False

    def _reject(self, entry: Any, error: BaseException) -> None:
        self.errors.add(error)
        try:
            reject_each(entry_promises(entry), error)
        except Exception as exc:  # a subscriber raised: the promise is settled all the same
            self.errors.add(exc)

    def keep_error(self, error: BaseException) -> bool:
        """Whether a round's error still matters (not a failure whose commands all moved on)."""
        return id(error) not in self._absorbed or id(error) in self._kept

    def drain(self) -> list[Redirect]:
        batch, self.pending = self.pending, []
        return batch


class Refresh:
    """A step of ``redirect_rounds``: re-read the slot map now (on the driver's own engine)."""


REFRESH = Refresh()


def follow_redirects(
    buffers: Sequence[Any],
    run_buffers: Callable[[Sequence[Any]], None],
    redirects: Redirects,
    reroute: Callable[[list[Redirect]], Sequence[Any]],
    refresh: Callable[[], None],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run ``buffers``, then the commands they handed back, re-routed, until none is left."""
    for step in redirect_rounds(buffers, redirects, reroute):
        if isinstance(step, Refresh):
            refresh()
        elif isinstance(step, float):
            sleep(step)
        else:
            run_buffers(step)


def redirect_rounds(
    buffers: Sequence[Any],
    redirects: Redirects,
    reroute: Callable[[list[Redirect]], Sequence[Any]],
) -> Iterator[Sequence[Any] | float | Refresh]:
    """The rounds of one block, engine-free: each step is the buffers to run next, the seconds
    to sleep before a retry that must wait, or ``REFRESH``: re-read the slot map before the
    next re-routing. The sync engine and asyncio drive it alike.

    ``reroute(batch)`` queues a batch on the right nodes and returns their buffers. A refresh
    comes at most once per round (after a MOVED, CLUSTERDOWN or a lost node), never once per
    reply.
    """
    yield buffers
    rounds = 0
    while redirects.pending:
        batch = redirects.drain()
        rounds += 1
        hows = {redirect.how for redirect in batch}
        if hows & {TRYAGAIN, CLUSTERDOWN, FAILED}:
            yield float(min(BACKOFF * rounds, MAX_BACKOFF))
        if hows & {MOVED, CLUSTERDOWN, FAILED}:
            yield REFRESH
        yield reroute(batch)
