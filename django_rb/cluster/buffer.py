"""The command buffer: what one host must be sent, and whose promise each reply settles.

Free of I/O on purpose: the selector engine here, an asyncio engine and a Redis Cluster slot
router reuse it unchanged. ``encode()`` turns the queue into one RESP pipeline (folding runs of
plain GET/SET/DEL into one command each), ``on_reply()`` takes replies in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from redis.client import EMPTY_RESPONSE, NEVER_DECODE

from .promise import Promise, reject_each, resolve_each
from .resp import ArgEncoder, ReplyError, error_from_reply, pack, pack_batch

# Per-original-command results of a folded DEL run: one DEL per key, answered as one list.
DELETE_EACH_SCRIPT = (
    b"local n = {} for i, k in ipairs(KEYS) do n[i] = redis.call('DEL', k) end return n"
)

_ONE = 0  # one command, one promise
_GETS = 1  # an MGET answering a run of GETs
_SETS = 2  # an MSET answering a run of SETs
_DELS = 3  # a script answering a run of DELs, one count per key

_BATCHABLE = {"GET": (_GETS, 1), "SET": (_SETS, 2), "DEL": (_DELS, 1)}
_IGNORED_OPTIONS = ("keys",)


class Codec:
    """How a cluster's commands are encoded and its replies turned into Python values."""

    __slots__ = ("encoder", "callbacks", "decode_responses")

    def __init__(
        self,
        callbacks: Mapping[str, Callable[..., Any]],
        encoding: str = "utf-8",
        encoding_errors: str = "strict",
        decode_responses: bool = False,
    ) -> None:
        self.encoder = ArgEncoder(encoding, encoding_errors)
        self.callbacks = {name.upper(): cb for name, cb in callbacks.items()}
        self.decode_responses = decode_responses

    def decode(self, value: Any) -> Any:
        """Bytes to text, recursively, for clients made with ``decode_responses=True``."""
        if isinstance(value, bytes):
            return value.decode(self.encoder.encoding, self.encoder.errors)
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        return value


class CommandBuffer:
    """Pending commands of one host, then the promises waiting for its replies."""

    __slots__ = ("host_id", "codec", "auto_batch", "queue", "_waiting", "_next")

    def __init__(self, host_id: int, codec: Codec, auto_batch: bool = True) -> None:
        self.host_id = host_id
        self.codec = codec
        self.auto_batch = auto_batch
        #: (upper-case command name, wire words incl. the name, options or None, promise);
        #: clients may append to it directly on their hot paths
        self.queue: list[tuple[str, tuple[bytes, ...], dict | None, Promise]] = []
        self._waiting: list[tuple] = []
        self._next = 0

    def enqueue(self, args: tuple, options: Mapping[str, Any] | None = None) -> Promise:
        """Queue a command as a client passes it (name first); returns its promise.

        Arguments are encoded now, so a bad one raises here, at the caller, like redis-py.
        """
        words = self.codec.encoder.words(args)
        name = args[0]
        if not isinstance(name, str):
            name = name.decode() if isinstance(name, bytes) else str(name)
        if options:
            options = {k: v for k, v in options.items() if k not in _IGNORED_OPTIONS} or None
        promise = Promise()
        self.queue.append((name.upper(), words, options or None, promise))
        return promise

    @property
    def has_queued(self) -> bool:
        """Commands wait to be encoded."""
        return bool(self.queue)

    @property
    def expecting(self) -> int:
        """How many replies are still owed."""
        return len(self._waiting) - self._next

    def encode(self) -> bytes:
        """Move the queue into one pipeline of RESP commands and remember who waits for what."""
        queue, self.queue = self.queue, []
        out: list[bytes] = []
        waiting = self._waiting
        i, count = 0, len(queue)
        while i < count:
            name, words, options, promise = queue[i]
            spec = _BATCHABLE.get(name) if self.auto_batch and options is None else None
            if spec is not None and len(words) == spec[1] + 1:
                j = i + 1
                while j < count:
                    entry = queue[j]
                    if entry[0] != name or entry[2] is not None or len(entry[1]) != len(words):
                        break
                    j += 1
                if j - i > 1:
                    run = queue[i:j]
                    out.append(_encode_run(spec[0], run))
                    waiting.append((spec[0], [entry[3] for entry in run], None))
                    i = j
                    continue
            out.append(pack(words))
            waiting.append((_ONE, promise, (name, options)))
            i += 1
        return b"".join(out)

    def on_reply(self, reply: Any) -> Exception | None:
        """Settle the promise(s) owed the next reply; an error reply rejects them and is returned."""
        kind, target, extra = self._waiting[self._next]
        self._next += 1
        if self._next == len(self._waiting):
            self._waiting.clear()
            self._next = 0
        if kind == _ONE:
            return _settle_one(self.codec, target, extra, reply)
        if isinstance(reply, ReplyError):
            error = error_from_reply(reply)
            reject_each(target, error)
            return error
        if kind == _GETS:
            resolve_each(target, self.codec.decode(reply) if self.codec.decode_responses else reply)
        elif kind == _SETS:
            resolve_each(target, [reply == b"OK"] * len(target))
        else:
            resolve_each(target, reply)
        return None

    def fail(self, error: BaseException) -> None:
        """Reject every promise still owed a reply or still queued (the host failed)."""
        owed = [p for kind, t, _ in self._waiting[self._next :] for p in ([t] if kind == _ONE else t)]
        owed += [entry[3] for entry in self.queue]
        self._waiting.clear()
        self._next = 0
        self.queue = []
        reject_each(owed, error)


def _encode_run(kind: int, run: list[tuple]) -> bytes:
    if kind == _GETS:
        return pack_batch(b"MGET", [entry[1][1] for entry in run])
    if kind == _SETS:
        return pack_batch(b"MSET", [arg for entry in run for arg in entry[1][1:]])
    keys = [entry[1][1] for entry in run]
    return pack_batch(b"EVAL", [DELETE_EACH_SCRIPT, b"%d" % len(keys), *keys])


def _settle_one(codec: Codec, promise: Promise, extra: tuple, reply: Any) -> Exception | None:
    name, options = extra
    if isinstance(reply, ReplyError):
        if options and EMPTY_RESPONSE in options:
            promise.resolve(options[EMPTY_RESPONSE])
            return None
        error = error_from_reply(reply)
        promise.reject(error)
        return error
    if options:
        options = dict(options)
        options.pop(EMPTY_RESPONSE, None)
        never_decode = options.pop(NEVER_DECODE, False)
    else:
        options = {}
        never_decode = False
    if codec.decode_responses and not never_decode:
        reply = codec.decode(reply)
    callback = codec.callbacks.get(name)
    if callback is not None:
        try:
            reply = callback(reply, **options)
        except Exception as exc:  # a reply the callback cannot shape is that command's error
            promise.reject(exc)
            return exc
    promise.resolve(reply)
    return None
