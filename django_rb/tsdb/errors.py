"""The store's own exception, raised before anything is sent to Redis."""

from __future__ import annotations


class TSDBArgumentError(ValueError, TypeError):
    """A call's arguments cannot be stored or read (a naive datetime, an unknown rollup, an
    empty model, ...). Raised before any command is sent, so nothing was written. A subclass
    of both ValueError and TypeError, so either ``except`` catches it."""
