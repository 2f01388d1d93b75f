"""Promise: what a caller holds for a command that has not been answered yet.

Same surface as rb's (an ES6-like promise that can also be read directly through ``value`` and
``reason``), so code written against rb keeps working. The map() hot path creates one per key,
hence ``__slots__`` and callback lists created only when someone subscribes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # a bare ``Promise()`` is a ``Promise[Any]`` (PEP 696 default, for mypy)
    from typing_extensions import TypeVar as DefaultTypeVar

    T = DefaultTypeVar("T", default=Any)
else:
    T = TypeVar("T")
U = TypeVar("U")

PENDING = _PENDING = 0  # the public names are for the command buffer's settling fast path
RESOLVED = _RESOLVED = 1
_REJECTED = 2
_STATE_NAMES = {_PENDING: "pending", _RESOLVED: "resolved", _REJECTED: "rejected"}


class Promise(Generic[T]):
    """A value that arrives later; resolved or rejected exactly once.

    ``Promise[T]`` holds a ``T`` once resolved (``value`` is None before that, as in rb)."""

    __slots__ = ("value", "reason", "_state", "_callbacks", "_errbacks")

    def __init__(self) -> None:
        #: the value this promise holds once resolved
        self.value: T = None  # type: ignore[assignment]  # None until resolved, as in rb
        #: the exception this promise holds once rejected
        self.reason: Any = None
        self._state = _PENDING
        self._callbacks: list[Callable[[Any], Any]] | None = None
        self._errbacks: list[Callable[[Any], Any]] | None = None

    @staticmethod
    def resolved(value: U) -> Promise[U]:
        """A promise already resolved with ``value``."""
        p: Promise[U] = Promise()
        p.value = value
        p._state = _RESOLVED
        return p

    @staticmethod
    def rejected(reason: Any) -> Promise[Any]:
        """A promise already rejected with ``reason``."""
        p: Promise[Any] = Promise()
        p.reason = reason
        p._state = _REJECTED
        return p

    @staticmethod
    def all(iterable_or_dict: Iterable[Any] | Mapping[Any, Any]) -> Promise[Any]:
        """One promise for many: a list (or dict) of their values, or the first rejection."""
        if isinstance(iterable_or_dict, Mapping):
            return _all_of_dict(iterable_or_dict)
        return _all_of_list(iterable_or_dict)

    def resolve(self, value: T | Promise[T]) -> None:
        """Settle with ``value``; a promise as value is followed instead."""
        if self is value:
            raise TypeError("Cannot resolve promise with itself.")
        if isinstance(value, Promise):
            value.done(self.resolve, self.reject)
            return
        if self._state != _PENDING:
            raise RuntimeError("Promise is no longer pending.")
        self.value = value
        self._state = _RESOLVED
        callbacks = self._callbacks
        if callbacks is not None:
            self._callbacks = self._errbacks = None
            for callback in callbacks:
                callback(value)

    def reject(self, reason: Any) -> None:
        """Settle with an error."""
        if self._state != _PENDING:
            raise RuntimeError("Promise is no longer pending.")
        self.reason = reason
        self._state = _REJECTED
        errbacks = self._errbacks
        if errbacks is not None:
            self._callbacks = self._errbacks = None
            for errback in errbacks:
                errback(reason)

    @property
    def is_pending(self) -> bool:
        """Not settled yet."""
        return self._state == _PENDING

    @property
    def is_resolved(self) -> bool:
        """Settled with a value."""
        return self._state == _RESOLVED

    @property
    def is_rejected(self) -> bool:
        """Settled with an error."""
        return self._state == _REJECTED

    def done(
        self,
        on_success: Callable[[T], Any] | None = None,
        on_failure: Callable[[Any], Any] | None = None,
    ) -> Promise[T]:
        """Call back on settlement (at once if already settled); returns this promise."""
        state = self._state
        if state == _PENDING:
            if on_success is not None:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(on_success)
            if on_failure is not None:
                if self._errbacks is None:
                    self._errbacks = []
                self._errbacks.append(on_failure)
        elif state == _RESOLVED:
            if on_success is not None:
                on_success(self.value)
        elif on_failure is not None:
            on_failure(self.reason)
        return self

    def then(
        self,
        success: Callable[[T], Any] | None = None,
        failure: Callable[[Any], Any] | None = None,
    ) -> Promise[Any]:
        """A new promise for what ``success``/``failure`` return (or raise)."""
        chained: Promise[Any] = Promise()

        def settle(
            handler: Callable[[Any], Any] | None, passthrough: Callable[[Any], None]
        ) -> Callable[[Any], None]:
            def run(outcome: Any) -> None:
                if handler is None:
                    passthrough(outcome)
                    return
                try:
                    result = handler(outcome)
                except Exception as exc:
                    chained.reject(exc)
                else:
                    chained.resolve(result)

            return run

        self.done(settle(success, chained.resolve), settle(failure, chained.reject))
        return chained

    def __repr__(self) -> str:
        if self._state == _PENDING:
            shown = "(pending)"
        elif self._state == _REJECTED:
            shown = f"{self.reason!r} (rejected)"
        else:
            shown = repr(self.value)
        return f"<Promise {shown}>"


def _as_promise(value: Any) -> Promise[Any]:
    return value if isinstance(value, Promise) else Promise.resolved(value)


def _all_of_list(items: Iterable[Any]) -> Promise[Any]:
    promises = [_as_promise(item) for item in items]
    combined: Promise[list[Any]] = Promise()
    remaining = len(promises)
    if not remaining:
        combined.resolve([])
        return combined
    counter = [remaining]

    def on_success(_value: Any) -> None:
        counter[0] -= 1
        if counter[0] == 0:
            combined.resolve([p.value for p in promises])

    def on_failure(reason: Any) -> None:
        if combined._state == _PENDING:
            combined.reject(reason)

    for p in promises:
        p.done(on_success, on_failure)
    return combined


def _all_of_dict(items: Mapping[Any, Any]) -> Promise[Any]:
    keys = list(items)
    combined = _all_of_list(items[k] for k in keys)
    return combined.then(lambda values: dict(zip(keys, values, strict=True)))


def resolve_each(promises: list[Promise[Any]], values: list[Any]) -> None:
    """Resolve promise i with value i: the hot path of a folded MGET, so subscribers are rare.

    Every promise is settled even if a subscriber raises (even KeyboardInterrupt); the first
    such error is re-raised afterwards.
    """
    error: BaseException | None = None
    for promise, value in zip(promises, values, strict=True):
        if promise._callbacks is None and promise._state == _PENDING:
            promise.value = value
            promise._state = _RESOLVED
            continue
        try:
            promise.resolve(value)
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error


def reject_each(promises: list[Promise[Any]], reason: BaseException) -> None:
    """Reject every still-pending promise; the first error a subscriber raises is re-raised."""
    error: BaseException | None = None
    for promise in promises:
        if promise._state != _PENDING:
            continue
        try:
            promise.reject(reason)
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error
