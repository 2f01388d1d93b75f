"""Redis key names for the time-series store, and the checks that make them unambiguous.

Three kinds of data, three layouts:

* counters: one hash per (model, rollup, block of buckets, virtual node); the field is
  ``<series>:<bucket offset>`` (``:<environment>`` appended for an environment's series). A
  model's series spread over ``vnodes`` hashes, so a hot model never pins one node, and a chart's
  cells are read with one HMGET per hash.
* distinct counts: one HyperLogLog per (model, series, rollup, bucket, environment);
* frequencies: one sorted set per (model, series, rollup, bucket, environment).

The last two are named with a hash tag ``{<model>:<series>}`` and always placed through the
fanout client's ``target_key(tag)``: every bucket and environment of a series then sits on one
node (one multi-key PFCOUNT / ZUNION reads them), whether the router hashes whole keys (rb's
routers) or only the tag (Redis Cluster's CRC16 slots).
"""

from __future__ import annotations

import enum
from binascii import crc32
from hashlib import blake2b
from typing import Any

from .errors import TSDBArgumentError

#: characters a model name may not hold: they would blur key names or hash tags
_FORBIDDEN_IN_MODEL = frozenset("{}: \t\r\n")


def model_name(model: Any) -> str:
    """The model as it appears in key names (an enum member stands for its value)."""
    value = model.value if isinstance(model, enum.Enum) else model
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TSDBArgumentError(
            f"A model is a short string such as 'project.events' (or an enum of them), "
            f"not {type(value).__name__}."
        )
    name = str(value)
    if not name:
        raise TSDBArgumentError("The model name is empty; give a short string such as 'events'.")
    bad = _FORBIDDEN_IN_MODEL.intersection(name)
    if bad:
        raise TSDBArgumentError(
            f"The model name {name!r} holds {''.join(sorted(bad))!r}; "
            "use letters, digits, dots, dashes or underscores."
        )
    return name


def series_token(key: Any, what: str = "series key") -> str:
    """A series key (or environment id) as it appears in keys and fields: an int as its digits,
    a string as a short digest (so any text, however long, costs 17 bytes)."""
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise TSDBArgumentError(f"A {what} is a string or an int, not {type(key).__name__}.")
    if isinstance(key, int):
        return str(key)
    return "h" + blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def vnode_of(key: Any, vnodes: int) -> int:
    """The virtual node of a series: the int modulo ``vnodes``, or a string's crc32 modulo it."""
    if isinstance(key, int):
        return key % vnodes
    return crc32(key.encode("utf-8", "surrogatepass")) % vnodes


class KeyNames:
    """Key names for one store: its prefix, applied the same way by every operation."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        if not isinstance(prefix, str) or not prefix or _FORBIDDEN_IN_MODEL.intersection(prefix):
            raise TSDBArgumentError(
                f"The key prefix must be a non-empty string without braces, colons or "
                f"spaces, not {prefix!r}."
            )
        self.prefix = prefix

    def counter_hash(self, model: str, rollup: int, block_start: int, vnode: int) -> str:
        """The hash holding a block of buckets of one model's series in one virtual node."""
        return f"{self.prefix}:c:{model}:{rollup}:{block_start}:{vnode}"

    def tag(self, model: str, token: str) -> str:
        """The placement key of a series' HyperLogLogs, sorted sets and temporary keys."""
        return f"{{{self.prefix}:{model}:{token}}}"

    @staticmethod
    def bucket(kind: str, tag: str, rollup: int, bucket: int, env: str) -> str:
        """One bucket of one series: its HyperLogLog (``kind`` "d") or sorted set ("f");
        ``env`` is "" for the all-environments series."""
        return f"{tag}:{kind}:{rollup}:{bucket}:{env}"

    def distinct(self, tag: str, rollup: int, bucket: int, env: str) -> str:
        """One bucket's HyperLogLog of one series."""
        return self.bucket("d", tag, rollup, bucket, env)

    def frequency(self, tag: str, rollup: int, bucket: int, env: str) -> str:
        """One bucket's sorted set of one series' member scores."""
        return self.bucket("f", tag, rollup, bucket, env)

    def temporary(self, tag: str, token: str, index: int = 0) -> str:
        """A scratch key next to ``tag``'s data (unions, merges); always written with a TTL."""
        return f"{tag}:tmp:{token}:{index}"


def counter_field(token: str, offset: int, env: str) -> str:
    """The hash field of one series' bucket (``env`` is "" for all environments)."""
    return f"{token}:{offset}:{env}" if env else f"{token}:{offset}"
