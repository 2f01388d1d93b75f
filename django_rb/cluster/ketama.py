"""A ketama consistent-hash ring laid out point for point as rb's, so keys land where rb put them."""

from __future__ import annotations

import struct
from bisect import bisect
from collections.abc import Hashable, Mapping

try:  # CPython's built-in md5 is ~40% cheaper to call than OpenSSL's for short keys
    from _md5 import md5
except ImportError:  # pragma: no cover - builds without it
    from hashlib import md5

_first_word = struct.Struct("<I").unpack_from

#: ring points per node (rb: 40 md5 digests per node, 4 points per digest, all weights 1)
DIGESTS_PER_NODE = 40


def key_bytes(key: object) -> bytes:
    """The bytes a key hashes as: utf-8 for text, decimal text for ints, bytes as they are."""
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, int):
        return str(key).encode("ascii")
    if isinstance(key, float):
        return repr(key).encode("ascii")
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"Cannot route a key of type {type(key).__name__}: use str, bytes or int.")


def _point(digest: bytes, index: int) -> int:
    """The index-th 32-bit little-endian word of a digest."""
    return int.from_bytes(digest[index * 4 : index * 4 + 4], "little")


class Ketama:
    """A ring mapping 32-bit md5 points to node values; ``get_node`` walks clockwise."""

    def __init__(self, nodes: Mapping[str, Hashable]) -> None:
        """``nodes`` maps the text hashed for each node (its name on the ring) to what to return."""
        ring: dict[int, Hashable] = {}
        for name, value in nodes.items():
            for i in range(DIGESTS_PER_NODE):
                digest = md5(f"{name}-{i}-salt".encode()).digest()
                for word in range(4):
                    ring[_point(digest, word)] = value
        self._points = sorted(ring)
        self._values = [ring[p] for p in self._points]

    def get_node(self, key: object) -> Hashable | None:
        """The node for ``key``, or None on an empty ring."""
        points = self._points
        if not points:
            return None
        pos = bisect(
            points, _first_word(md5(key if type(key) is bytes else key_bytes(key)).digest())[0]
        )
        return self._values[pos if pos < len(points) else 0]
