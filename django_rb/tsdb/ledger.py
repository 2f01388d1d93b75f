"""Which writes of a round were lost when a node failed, so none is dropped silently.

A write round hands the engine a ``WriteLedger``: every queued write command's promise next to
the cell it writes (model, series key, rollup, bucket, environment). The core writes to every
live node before it raises a node's error; the engine then turns that error into
``TSDBWritesLost``, which lists exactly the cells whose commands were rejected.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from django_rb.cluster.errors import HostError

#: how many lost cells the exception's message names (all of them are in ``.lost``)
NAMED_IN_MESSAGE = 5


class Cell(NamedTuple):
    """What one write command adds to: a series' bucket of one rollup in one environment
    (``environment`` is "" for the all-environments series)."""

    model: str
    key: Any
    rollup: int
    bucket: int
    environment: str


class LostWrite(NamedTuple):
    """A write that did not land: ``epoch`` is its bucket's start; ``environment`` is None for
    the all-environments series, else the environment id as it appears in key names (an int
    id's digits); ``host_id`` is the node that failed."""

    model: str
    key: Any
    rollup: int
    epoch: int
    environment: str | None
    host_id: Any

    def describe(self) -> str:
        env = "" if self.environment is None else f" env {self.environment}"
        return f"{self.model} {self.key!r} @{self.rollup}s {self.epoch}{env}"


class TSDBWritesLost(HostError):
    """A write call's commands failed on one or more nodes. Writes to the other nodes landed;
    ``lost`` lists every cell that did not (``series`` the ``(model, key)`` pairs touched,
    ``host_ids`` the failed nodes). The original host error is ``__cause__``."""

    def __init__(self, lost: list[LostWrite], cause: HostError, total: int) -> None:
        self.lost = lost
        self.host_ids = sorted({write.host_id for write in lost}, key=repr)
        self.series = sorted({(write.model, write.key) for write in lost}, key=repr)
        named = ", ".join(write.describe() for write in lost[:NAMED_IN_MESSAGE])
        more = f" and {len(lost) - NAMED_IN_MESSAGE} more" if len(lost) > NAMED_IN_MESSAGE else ""
        super().__init__(f"{len(lost)} of {total} tsdb writes lost ({cause}); lost: {named}{more}")
        self.host_id = cause.host_id


class WriteLedger:
    """The promises of one write round, each with the cell its command writes."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[tuple[Any, Cell]] = []

    def track(self, promise: Any, cell: Cell) -> None:
        self.entries.append((promise, cell))

    def lost(self) -> list[LostWrite]:
        """Every cell whose command was rejected by a failed node, in queue order."""
        out = []
        for promise, cell in self.entries:
            reason = getattr(promise, "reason", None)
            if promise.is_rejected and isinstance(reason, HostError):
                model, key, rollup, bucket, env = cell
                out.append(
                    LostWrite(model, key, rollup, bucket * rollup, env or None, reason.host_id)
                )
        return out

    def failure(self, error: HostError) -> TSDBWritesLost | None:
        """``TSDBWritesLost`` naming the lost cells of this failed round (None if, oddly, no
        tracked write was rejected: the engine then raises the core's error as it is)."""
        lost = self.lost()
        return TSDBWritesLost(lost, error, len(self.entries)) if lost else None
