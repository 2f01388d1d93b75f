"""One event-loop timer kept at the earliest of many due times.

The asyncio engine has many things that may time out (rounds, waiters for a busy pool) and
almost none that do: one timer per thing would fill the loop's timer heap (each push and pop
compares in Python) with timers that never fire. One timer at the earliest due time, re-armed
by whoever it calls, costs a comparison per new due time instead.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable


class EarliestTimer:
    """Calls ``callback`` once the earliest armed due time (``time.monotonic()``) has passed;
    the callback re-arms it for whatever is still due later.

    It keeps no handle: a timer superseded by an earlier one fires later and does nothing.
    Holding the handle (to cancel it) would hold its event loop, and the per-loop objects
    that own these timers would keep a closed loop alive.
    """

    __slots__ = ("callback", "at")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.at = math.inf

    def arm(self, due: float) -> None:
        """Make sure the callback runs by ``due`` (in the running loop); inf: never."""
        if due >= self.at:
            return
        self.at = due
        loop = asyncio.get_running_loop()
        loop.call_at(loop.time() + due - time.monotonic(), self._fire, due)

    def _fire(self, due: float) -> None:
        if due != self.at:  # an earlier timer took over from this one
            return
        self.at = math.inf
        self.callback()
