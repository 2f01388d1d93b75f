"""RESP2 on the wire: encoding commands, and reading replies incrementally.

Replies are read with hiredis when it is installed; ``PyReader`` is the pure-Python fallback
with the same ``feed``/``gets`` surface, so the engine never blocks on a partial reply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from redis.exceptions import DataError, ResponseError

try:  # the fast parser, used automatically when installed
    import hiredis
except ImportError:  # pragma: no cover - exercised only where hiredis is absent
    hiredis = None  # type: ignore[assignment]

try:
    from redis._parsers import BaseParser as _RedisParser

    _parse_error = _RedisParser.parse_error
except (ImportError, AttributeError):  # pragma: no cover - older/newer redis-py layouts

    def _parse_error(message: str) -> Exception:
        return ResponseError(message)


class ReplyError(Exception):
    """An error reply as read off the wire, before it becomes redis-py's exception class."""


def error_from_reply(reply: Exception) -> Exception:
    """redis-py's exception for an error reply (ResponseError, NoScriptError, ...)."""
    return _parse_error(str(reply))


def new_reader() -> Any:
    """A fresh incremental reply reader: hiredis if available, else ``PyReader``."""
    if hiredis is not None:
        return hiredis.Reader(replyError=ReplyError)
    return PyReader()


class ArgEncoder:
    """Turns command arguments into bytes the way redis-py does (same types, same errors)."""

    __slots__ = ("encoding", "errors")

    def __init__(self, encoding: str = "utf-8", errors: str = "strict") -> None:
        self.encoding = encoding
        self.errors = errors

    def encode(self, value: Any) -> bytes:
        """bytes pass through; str is encoded; int and float become their decimal text."""
        kind = type(value)
        if kind is bytes:
            return value
        if kind is str:
            return value.encode(self.encoding, self.errors)
        if kind is int:
            return b"%d" % value
        if isinstance(value, (bytes, memoryview, bytearray)):
            return bytes(value)
        if isinstance(value, bool):
            raise DataError(
                "Invalid input of type: 'bool'. Convert to a bytes, string, int or float first."
            )
        if isinstance(value, int):
            return b"%d" % value
        if isinstance(value, float):
            return repr(value).encode()
        if isinstance(value, str):
            return value.encode(self.encoding, self.errors)
        raise DataError(
            f"Invalid input of type: '{type(value).__name__}'. "
            "Convert to a bytes, string, int or float first."
        )

    def words(self, args: tuple | list) -> tuple[bytes, ...]:
        """A command as client code passes it, as wire words ("MEMORY USAGE" becomes two)."""
        first = args[0]
        if isinstance(first, bytes):
            first = first.decode()
        head = tuple(word.encode() for word in str(first).split())
        encode = self.encode
        return head + tuple([encode(arg) for arg in args[1:]])


_HEADS = [b"$%d" % size for size in range(4096)]


def _bulk_strings(items: list[bytes]) -> bytes:
    """Items as consecutive RESP bulk strings (``$len\\r\\ndata\\r\\n`` each), in one join."""
    parts: list[bytes] = [b""] * (2 * len(items) + 1)
    parts[0:-1:2] = [_HEADS[n] if n < 4096 else b"$%d" % n for n in map(len, items)]
    parts[1:-1:2] = items
    return b"\r\n".join(parts)


def pack(words: tuple[bytes, ...] | list[bytes]) -> bytes:
    """Encoded words as one RESP array (one command on the wire)."""
    return b"*%d\r\n" % len(words) + _bulk_strings(list(words))


_ARRAYS = [b"*%d" % size for size in range(64)]


def pack_pipeline(commands: Iterable[Sequence[bytes]]) -> bytes:
    """Many commands (each a sequence of encoded words) as one pipeline: every line of every
    command goes into one list and one ``join`` makes the bytes (about 4x faster than packing
    each command on its own, which is what the per-command path of map() spends most on)."""
    lines: list[bytes] = []
    add, extend = lines.append, lines.extend
    heads, arrays = _HEADS, _ARRAYS
    for words in commands:
        count = len(words)
        if count == 2:  # GET key, INCR key...: the per-command path's commonest shapes
            a, b = words
            size_a, size_b = len(a), len(b)
            if size_a < 4096 and size_b < 4096:
                extend((arrays[2], heads[size_a], a, heads[size_b], b))
                continue
        elif count == 3:  # HGET key field, SET key value...
            a, b, c = words
            size_a, size_b, size_c = len(a), len(b), len(c)
            if size_a < 4096 and size_b < 4096 and size_c < 4096:
                extend((arrays[3], heads[size_a], a, heads[size_b], b, heads[size_c], c))
                continue
        if count < 16:
            add(arrays[count])
            for word in words:
                size = len(word)
                add(heads[size] if size < 4096 else b"$%d" % size)
                add(word)
        else:  # a folded run (MGET of many keys): interleave with slices, at C speed
            add(b"*%d" % count)
            pairs: list[bytes] = [b""] * (2 * count)
            pairs[0::2] = [heads[n] if n < 4096 else b"$%d" % n for n in map(len, words)]
            pairs[1::2] = words
            lines += pairs
    add(b"")  # the join then ends the last line too
    return b"\r\n".join(lines)


class PyReader:
    """Incremental RESP2 reader: ``feed`` bytes, ``gets`` a reply or False when incomplete."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes | bytearray | memoryview, offset: int = 0, length: int = -1) -> None:
        """Append received bytes."""
        if length < 0:
            self._buf += data[offset:]
        else:
            self._buf += data[offset : offset + length]

    def gets(self) -> Any:
        """The next complete reply, or False if more bytes are needed."""
        try:
            reply, pos = self._parse(self._pos)
        except _Incomplete:
            return False
        self._pos = pos
        if pos > 65536 and pos * 2 > len(self._buf):  # drop what was consumed now and then
            del self._buf[:pos]
            self._pos = 0
        return reply

    def _line(self, pos: int) -> tuple[bytes, int]:
        end = self._buf.find(b"\r\n", pos)
        if end < 0:
            raise _Incomplete
        return bytes(self._buf[pos:end]), end + 2

    def _parse(self, pos: int) -> tuple[Any, int]:
        line, pos = self._line(pos)
        if not line:
            raise ValueError("Protocol error: empty reply line")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest, pos
        if kind == b"-":
            return ReplyError(rest.decode("utf-8", "replace")), pos
        if kind == b":":
            return int(rest), pos
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None, pos
            if len(self._buf) < pos + size + 2:
                raise _Incomplete
            return bytes(self._buf[pos : pos + size]), pos + size + 2
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None, pos
            items = []
            for _ in range(count):
                item, pos = self._parse(pos)
                items.append(item)
            return items, pos
        raise ValueError(f"Protocol error: unexpected reply type {kind!r}")


class _Incomplete(Exception):
    """More bytes are needed to finish the reply."""
