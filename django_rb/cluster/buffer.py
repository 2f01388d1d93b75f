"""The command buffer: what one host must be sent, and whose promise each reply settles.

Free of I/O on purpose: the selector engine here, an asyncio engine and a Redis Cluster slot
router reuse it unchanged. Consecutive plain GETs (SETs, DELs) are gathered into a *run* as they
are queued, so ``encode()`` writes each run as one MGET (MSET, DEL script) without re-reading it;
``on_reply()`` takes replies in order and settles one promise per original command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from redis.client import EMPTY_RESPONSE, NEVER_DECODE

from .errors import UnsafeCommand
from .promise import PENDING, RESOLVED, Promise, reject_each, resolve_each
from .resp import ArgEncoder, ReplyError, error_from_reply, pack_pipeline

# Per-original-command results of a folded DEL run: one DEL per key, answered as one list.
DELETE_EACH_SCRIPT = (
    b"local n = {} for i, k in ipairs(KEYS) do n[i] = redis.call('DEL', k) end return n"
)

GETS = 1  # a run of GETs, sent as one MGET
SETS = 2  # a run of SETs, sent as one MSET
DELS = 3  # a run of DELs, sent as one script that answers one count per key

#: command name -> (run kind, arguments after the name)
BATCHABLE = {"GET": (GETS, 1), "SET": (SETS, 2), "DEL": (DELS, 1)}
_SINGLE_NAMES = {GETS: "GET", SETS: "SET", DELS: "DEL"}
_SINGLE_WORDS = {GETS: b"GET", SETS: b"SET", DELS: b"DEL"}
_IGNORED_OPTIONS = ("keys",)
_MAX_HEADS = 1024

#: Commands that change their connection for whoever uses it next (a pooled connection, or one
#: that concurrent rounds share): refused by the map() / fanout() clients, sync and async.
STATEFUL = frozenset(
    {"SELECT", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "AUTH", "HELLO", "RESET", "QUIT",
     "READONLY", "READWRITE", "ASKING", "MONITOR", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE",
     "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "CLIENT REPLY"}
)  # fmt: skip
#: Commands that hold their connection until the server has something to say; refused where
#: the rounds of several tasks share connections (the asyncio engine), with STATEFUL.
BLOCKING = frozenset(
    {"BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
     "WAIT", "WAITAOF", "XREAD BLOCK", "XREADGROUP BLOCK"}
)  # fmt: skip
SHARED_UNSAFE = STATEFUL | BLOCKING

#: Option naming a ``recover(error, promise) -> bool`` hook for a command's error reply: when it
#: returns True it has taken the promise over (e.g. queued a retry that settles it), so the
#: error is neither the promise's nor the round's. Not an identifier: no redis-py keyword clashes.
RECOVER = "django_rb:recover"


class Codec:
    """How a cluster's commands are encoded and its replies turned into Python values."""

    __slots__ = ("encoder", "callbacks", "decode_responses", "plain_utf8", "_heads")

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
        #: text is encoded as strict UTF-8, so ``str.encode()`` gives its bytes
        self.plain_utf8 = encoding_errors == "strict" and encoding.lower().replace("_", "-") in (
            "utf-8",
            "utf8",
        )
        #: what a client passes as the command name -> (NAME, its wire words), built once
        self._heads: dict[Any, tuple[str, tuple[bytes, ...]]] = {}

    def head(self, first: Any) -> tuple[str, tuple[bytes, ...]]:
        """The upper-case name and the wire words of a command name as a client spells it
        ("get", b"GET", "MEMORY USAGE"...), looked up once per spelling."""
        hit = self._heads.get(first)
        if hit is None:
            words = self.encoder.words((first,))
            name = first.decode() if isinstance(first, bytes) else str(first)
            hit = (name.upper(), words)
            if len(self._heads) < _MAX_HEADS:  # names are few; never grow without bound
                self._heads[first] = hit
        return hit

    def decode(self, value: Any) -> Any:
        """Bytes to text, recursively, for clients made with ``decode_responses=True``."""
        if isinstance(value, bytes):
            return value.decode(self.encoder.encoding, self.encoder.errors)
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        return value


class Run:
    """Consecutive foldable commands of one kind: their flat arguments and their promises."""

    __slots__ = ("kind", "args", "promises")

    def __init__(self, kind: int, args: list[bytes], promise: Promise) -> None:
        self.kind = kind
        self.args = args
        self.promises = [promise]


class CommandBuffer:
    """Pending commands of one host, then the promises waiting for its replies."""

    __slots__ = ("host_id", "codec", "auto_batch", "queue", "tail_run", "_waiting", "_next")

    def __init__(self, host_id: int, codec: Codec, auto_batch: bool = True) -> None:
        self.host_id = host_id
        self.codec = codec
        self.auto_batch = auto_batch
        #: what to send, in order: ``(NAME, wire words, options, promise)`` tuples and Runs
        self.queue: list[Any] = []
        #: the Run at the end of the queue, which the next foldable command may join
        self.tail_run: Run | None = None
        #: what was sent and is owed replies, in order: the queue's entries as encode() took them
        self._waiting: list[Any] = []
        self._next = 0

    def enqueue(self, args: tuple, options: Mapping[str, Any] | None = None,
                refused: frozenset[str] = STATEFUL) -> Promise:  # fmt: skip
        """Queue a command as a client passes it (name first); returns its promise.

        Arguments are encoded now, so a bad one raises here, at the caller, like redis-py;
        so does a command named in ``refused`` (``UnsafeCommand``).
        """
        codec = self.codec
        name, head = codec.head(args[0])
        words = head + tuple(map(codec.encoder.encode, args[1:]))
        if name in refused or name in _REFUSED_BY_WORDS:
            _refuse_unsafe(name, words, refused)
        if options:
            options = {k: v for k, v in options.items() if k not in _IGNORED_OPTIONS} or None
        promise: Promise[Any] = Promise()
        spec = BATCHABLE.get(name)
        if spec is not None and not options and len(words) == spec[1] + 1:
            self.add_to_run(spec[0], words[1:], promise)
        else:
            self.add_command(name, words, options or None, promise)
        return promise

    def add_command(self, name: str, words: tuple[bytes, ...],
                    options: Mapping[str, Any] | None, promise: Promise) -> None:  # fmt: skip
        """Queue one already-encoded command (``name`` upper-case, ``words`` incl. the name)."""
        self.queue.append((name, words, options, promise))
        self.tail_run = None

    def add_to_run(self, kind: int, args: tuple | list, promise: Promise) -> None:
        """Queue a foldable command (GETS: key; SETS: key, value; DELS: key), encoded args."""
        run = self.tail_run
        if run is not None and run.kind == kind:
            run.args.extend(args)
            run.promises.append(promise)
        elif self.auto_batch:
            self.tail_run = Run(kind, list(args), promise)
            self.queue.append(self.tail_run)
        else:
            self.queue.append((_SINGLE_NAMES[kind], (_SINGLE_WORDS[kind], *args), None, promise))

    @property
    def has_queued(self) -> bool:
        """Commands wait to be encoded."""
        return bool(self.queue)

    @property
    def expecting(self) -> int:
        """How many replies are still owed."""
        return len(self._waiting) - self._next

    def encode(self) -> bytes:
        """Move the queue into one pipeline of RESP commands; the queue's entries, in order,
        are then what the replies settle (``on_reply`` reads them as they are)."""
        queue, self.queue, self.tail_run = self.queue, [], None
        commands: list[Any] = []
        add = commands.append
        for entry in queue:
            if type(entry) is not Run:
                add(entry[1])
            elif len(entry.promises) == 1:  # a run of one is sent as the plain command
                add((_SINGLE_WORDS[entry.kind], *entry.args))
            else:
                add(_run_words(entry))
        if self._waiting:
            self._waiting.extend(queue)
        else:
            self._waiting = queue
        return pack_pipeline(commands)

    def on_reply(self, reply: Any) -> Exception | None:
        """Settle the promise(s) owed the next reply; an error reply rejects them and is returned."""
        waiting = self._waiting
        entry = waiting[self._next]
        self._next += 1
        if self._next == len(waiting):
            self._waiting = []
            self._next = 0
        codec = self.codec
        if type(entry) is not Run:  # (NAME, words, options, promise)
            if type(reply) is ReplyError and self.take_over(reply, entry, True):
                return None
            return _settle_one(codec, entry[3], entry[0], entry[2], reply)
        promises = entry.promises
        if len(promises) == 1:  # sent as the plain command
            if type(reply) is ReplyError and self.take_over(reply, entry, True):
                return None
            return _settle_one(codec, promises[0], _SINGLE_NAMES[entry.kind], None, reply)
        if isinstance(reply, ReplyError):
            if self.take_over(reply, entry, True):
                return None
            error = error_from_reply(reply)
            reject_each(promises, error)
            return error
        if entry.kind == GETS:
            if codec.decode_responses:
                return _resolve_decoded(codec, promises, reply)
            resolve_each(promises, reply)
        elif entry.kind == SETS:
            resolve_each(promises, [reply == b"OK"] * len(promises))
        else:
            resolve_each(promises, reply)
        return None

    def settle(self, reader: Any, errors: Any) -> None:
        """Settle the replies owed, in order, as far as ``reader`` holds them: a plain reply to
        a plain command (no options but a NOSCRIPT recovery, no response callback) here, the
        common case, anything else through ``on_reply``; error replies and subscribers'
        exceptions go to ``errors.add``. Replies past the last one owed stay in the reader
        (another round's, on a shared connection)."""
        gets = reader.gets
        callbacks = self.codec.callbacks
        inline = not self.codec.decode_responses
        waiting, i = self._waiting, self._next
        count = len(waiting)
        try:
            while i < count and (reply := gets()) is not False:
                entry = waiting[i]
                if (
                    inline
                    and type(reply) is not ReplyError
                    and type(entry) is not Run
                    and (
                        (options := entry[2]) is None or (len(options) == 1 and RECOVER in options)
                    )
                    and entry[0] not in callbacks
                ):  # (NAME, words, options, promise): the reply is the value
                    i += 1
                    promise = entry[3]
                    if promise._callbacks is None and promise._state == PENDING:
                        promise.value = reply
                        promise._state = RESOLVED
                        continue
                    try:
                        promise.resolve(reply)
                    except Exception as exc:  # a subscriber raised: the promise is settled
                        errors.add(exc)
                    continue
                self._next = i  # on_reply reads (and moves) it
                try:
                    error = self.on_reply(reply)
                except Exception as exc:  # a subscriber raised: the promise is settled
                    error = exc
                if error is not None:
                    errors.add(error)
                waiting, i = self._waiting, self._next  # on_reply moved on (or started over)
                count = len(waiting)
        finally:
            if i and i == len(waiting):
                self._waiting = []
                self._next = 0
            else:
                self._next = i

    def fail(self, error: BaseException) -> None:
        """Reject every promise still owed a reply or still queued (the host failed)."""
        sent = [(entry, True) for entry in self._waiting[self._next :]]
        unsent = [(entry, False) for entry in self.queue]
        self._waiting = []
        self._next = 0
        self.queue, self.tail_run = [], None
        owed: list[Promise] = []
        for entry, was_sent in sent + unsent:
            if not self.take_over(error, entry, was_sent):
                owed.extend(entry.promises if type(entry) is Run else [entry[3]])
        reject_each(owed, error)

    def take_over(self, error: BaseException, entry: Any, sent: bool) -> bool:
        """Hook for subclasses that re-send failed commands elsewhere (Redis Cluster redirects
        and failover): called with an error reply (a ``ReplyError``) or a host's failure, before
        the promises of ``entry`` (a queued ``(NAME, words, options, promise)`` tuple or a
        ``Run``) are rejected; ``sent`` says whether it may have reached the server. Returning
        True takes the command over: the buffer then leaves its promises alone."""
        return False


#: commands refused only for some of their words: ``CLIENT REPLY ...``, ``XREAD ... BLOCK``
_REFUSED_BY_WORDS = frozenset({"CLIENT", "XREAD", "XREADGROUP"})


def _refuse_unsafe(name: str, words: tuple[bytes, ...], refused: frozenset[str]) -> None:
    if name == "CLIENT":
        if len(words) < 2 or words[1].upper() != b"REPLY":
            return
        name = "CLIENT REPLY"
    elif name in ("XREAD", "XREADGROUP"):
        options = words[1 : words.index(b"STREAMS")] if b"STREAMS" in words else words[1:]
        if b"BLOCK" not in [word.upper() for word in options]:
            return
        name = f"{name} BLOCK"
    if name not in refused:
        return
    if name in BLOCKING:
        reason = (
            "it would hold the connection that concurrent tasks' rounds share until the "
            "server answers; give it a connection of its own (a redis.asyncio client, or "
            "cluster.get_local_client_for_key(key) in a thread)"
        )
    else:
        reason = (
            "it would change the connection for whoever uses it next; use a dedicated "
            "client for it: cluster.get_local_client(host_id) (or get_local_client_for_key)"
        )
    raise UnsafeCommand(f"{name} is not sent inside map()/fanout() blocks: {reason}.")


def _run_words(run: Run) -> list[bytes]:
    if run.kind == GETS:
        return [b"MGET", *run.args]
    if run.kind == SETS:
        return [b"MSET", *run.args]
    return [b"EVAL", DELETE_EACH_SCRIPT, b"%d" % len(run.args), *run.args]


def _settle_one(codec: Codec, promise: Promise, name: str, options: Mapping[str, Any] | None,
                reply: Any) -> Exception | None:  # fmt: skip
    if isinstance(reply, ReplyError):
        if options and EMPTY_RESPONSE in options:
            promise.resolve(options[EMPTY_RESPONSE])
            return None
        error = error_from_reply(reply)
        recover = options.get(RECOVER) if options else None
        if recover is not None and recover(error, promise):
            return None
        promise.reject(error)
        return error
    never_decode = False
    if options:
        options = dict(options)
        options.pop(EMPTY_RESPONSE, None)
        options.pop(RECOVER, None)
        never_decode = options.pop(NEVER_DECODE, False)
    try:
        if codec.decode_responses and not never_decode:
            reply = codec.decode(reply)
        callback = codec.callbacks.get(name)
        if callback is not None:
            reply = callback(reply, **(options or {}))
    except Exception as exc:  # a reply that cannot be decoded or shaped is that command's error
        promise.reject(exc)
        return exc
    promise.resolve(reply)
    return None


def _resolve_decoded(codec: Codec, promises: list[Promise], values: list) -> Exception | None:
    """Settle a folded GET run as text; a value that is not valid text fails its own key only."""
    try:
        texts = codec.decode(values)
    except UnicodeDecodeError:
        texts = None
    if texts is not None:
        resolve_each(promises, texts)
        return None
    first_error = None
    for promise, value in zip(promises, values, strict=True):
        try:
            text = codec.decode(value)
        except UnicodeDecodeError as exc:
            first_error = first_error or exc
            reject_each([promise], exc)
        else:
            resolve_each([promise], [text])
    return first_error
