"""Which arguments of a Redis command are keys, from Redis 7's own key specifications.

The router must send a command to the host owning its key, so it has to know which arguments
are keys. Rather than a hand-kept list, the answer comes from the table Redis publishes in
``COMMAND`` (generated into ``_keyspecs_table.py`` by ``scripts/gen_keyspecs.py``), read with the
same key-spec algorithm Redis uses: a *begin_search* step (a fixed index, or the first/last
occurrence of a keyword) followed by a *find_keys* step (a range, or a count read from an
argument such as EVAL's numkeys). The few commands whose specs Redis itself marks "unknown" or
"incomplete" (SORT, SORT_RO, MIGRATE) get hand-written finders that mirror the server.

``command_keys`` is on the hot path of every ``map()``: the common "one key at a fixed place"
command (GET, SET, HGET, EXPIRE, MEMORY USAGE...) is a single dict lookup and a length check.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from django_rb.cluster._keyspecs_table import COMMANDS, REDIS_VERSION
from django_rb.cluster.errors import UnroutableCommand

__all__ = [
    "REDIS_VERSION",
    "UnroutableCommand",
    "command_keys",
    "command_name",
    "fixed_key",
    "is_known",
    "routing_keys",
]

_ADVICE = (
    "use cluster.fanout()/all() to run it on every host, "
    "or a local client (cluster.get_local_client(host_id)) for one host"
)
_BYTES_LIKE = (bytes, bytearray, memoryview)
_NO_LIMIT = 1 << 62  # "no upper bound" for argument counts of variadic commands
# What Redis's string2ll accepts: no sign but "-", no spaces, no leading zeros.
_STRICT_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,18})")

# Compiled key spec: (begin kind, index|startfrom, keyword str, keyword bytes,
#                     find kind, lastkey|keynumidx, keystep|firstkey, limit|keystep)
_INDEX, _KEYWORD, _RANGE, _KEYNUM = 0, 1, 2, 3
_Spec = tuple[int, int, str, bytes, int, int, int, int]
_Finder = Callable[[Sequence[Any]], "list[int] | None"]


def _norm(word: Any) -> str:
    """Upper-case a command word ASCII-only, like Redis's strcasecmp (so 'ß' never becomes 'SS')."""
    if isinstance(word, str):
        return word.upper() if word.isascii() else word
    if isinstance(word, _BYTES_LIKE):
        return bytes(word).upper().decode("latin-1")
    return str(word).upper()


def _is_word(arg: Any, upper_str: str, upper_bytes: bytes) -> bool:
    """Whether an argument equals an (upper-case) option keyword, case-insensitively."""
    if isinstance(arg, str):
        return len(arg) == len(upper_str) and arg.isascii() and arg.upper() == upper_str
    if isinstance(arg, _BYTES_LIKE):
        return len(arg) == len(upper_bytes) and bytes(arg).upper() == upper_bytes
    return False


def _as_int(arg: Any) -> int | None:
    """A numkeys argument as Redis's command would parse it; None if Redis would reject it."""
    if isinstance(arg, int) and not isinstance(arg, bool):
        return arg
    if isinstance(arg, _BYTES_LIKE):
        arg = bytes(arg).decode("latin-1")
    if isinstance(arg, str) and _STRICT_INT.fullmatch(arg):
        return int(arg)
    return None


class _Command:
    """One compiled table entry (a plain command or one container's subcommand)."""

    __slots__ = ("name", "min_argc", "max_argc", "specs", "finder", "problem", "subcommands")

    def __init__(self, name: str, arity: int, raw_specs: tuple, sub_names: tuple) -> None:
        self.name = name
        self.min_argc = abs(arity)
        self.max_argc = arity if arity > 0 else _NO_LIMIT
        self.finder: _Finder | None = _FINDERS.get(name)
        self.problem: str | None = None
        self.subcommands: dict[str, _Command] | None = {} if sub_names else None
        specs: list[_Spec] = []
        for begin, find, key_flags in raw_specs:
            if "not_key" in key_flags:  # e.g. SPUBLISH's shard channel: looks like a key, isn't
                continue
            if begin[0] == "unknown" or find[0] == "unknown" or "incomplete" in key_flags:
                if self.finder is None:
                    self.problem = f"Redis describes the keys of {name} only partially"
                continue
            if begin[0] == "index":
                head: tuple = (_INDEX, begin[1], "", b"")
            else:
                keyword = begin[1].upper()
                head = (_KEYWORD, begin[2], keyword, keyword.encode("latin-1"))
            kind = _RANGE if find[0] == "range" else _KEYNUM
            specs.append((*head, kind, find[1], find[2], find[3]))
        self.specs: tuple[_Spec, ...] = tuple(specs)

    def single_key_index(self) -> int | None:
        """argv index of the key if the command always has exactly one, at a fixed place."""
        if self.finder is not None or self.problem is not None or len(self.specs) != 1:
            return None
        begin, pos, _, _, kind, lastkey, _, _ = self.specs[0]
        if begin == _INDEX and kind == _RANGE and lastkey == 0 and pos < self.min_argc:
            return pos
        return None

    def positions(self, argv: Sequence[Any], lenient: bool = False) -> list[int] | None:
        """argv indexes of the keys; None or [] when Redis would reject the arguments.

        ``lenient``: a wrong argument count still gives the keys found where the key spec puts
        them (how rb routed ``SADD key`` without members: to the key's host, which replies
        with the arity error).
        """
        argc = len(argv)
        if argc < self.min_argc or argc > self.max_argc:
            if not lenient or self.finder is not None or self.problem is not None:
                return None
            return _spec_positions(self.specs, argv)
        if self.problem is not None:
            raise UnroutableCommand(f"{self.problem}, so django_rb cannot route it: {_ADVICE}.")
        if self.finder is not None:
            return self.finder(argv)
        return _spec_positions(self.specs, argv)


def _spec_positions(specs: tuple[_Spec, ...], argv: Sequence[Any]) -> list[int] | None:
    """Redis 7's key-spec search (getKeysUsingKeySpecs), spec by spec, in spec order."""
    argc = len(argv)
    found: list[int] = []
    for begin, where, kw_str, kw_bytes, kind, a, b, c in specs:
        if begin == _INDEX:
            first = where
        else:
            # Search forwards from startfrom, or backwards from argc+startfrom when negative;
            # an absent keyword just means the optional part was not given.
            if where > 0:
                candidates = range(where, argc - 1)
            else:
                candidates = range(argc + where, 1, -1)
            first = 0
            for i in candidates:
                if _is_word(argv[i], kw_str, kw_bytes):
                    first = i + 1
                    break
            if not first:
                continue
        if kind == _RANGE:
            lastkey, step, limit = a, b, c
            if lastkey >= 0:
                last = first + lastkey
            elif limit:  # e.g. XREAD STREAMS k1 k2 id1 id2: keys are 1/limit of the rest
                last = first + (argc - first) // limit + lastkey
            else:
                last = argc + lastkey
        else:
            numkeys_at, firstkey, step = a, b, c
            if first + numkeys_at >= argc:
                return None
            numkeys = _as_int(argv[first + numkeys_at])
            if numkeys is None or numkeys < 0:
                return None
            first += firstkey
            last = first + numkeys - 1
        if first >= argc or last >= argc or last < first:
            return None  # out of bounds: a syntax error Redis would reply with
        found.extend(range(first, last + 1, step))
    return found


def _upper_at(argv: Sequence[Any], i: int) -> str:
    return _norm(argv[i]) if isinstance(argv[i], (str, *_BYTES_LIKE)) else ""


def _sort_positions(argv: Sequence[Any]) -> list[int]:
    """SORT key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA] [STORE dest]: key, last dest.

    BY/GET patterns are not keys of this command. As in Redis, options are scanned one word
    at a time, skipping LIMIT's and BY/GET's arguments, and the last STORE wins.
    """
    store = 0
    i = 2
    while i < len(argv):
        word = _upper_at(argv, i)
        if word == "LIMIT":
            i += 2
        elif word in ("GET", "BY"):
            i += 1
        elif word == "STORE" and i + 1 < len(argv):
            store = i + 1
        i += 1
    return [1, store] if store else [1]


def _sort_ro_positions(argv: Sequence[Any]) -> list[int]:
    """SORT_RO has no STORE: only the sorted key (BY/GET patterns are not its keys)."""
    return [1]


def _migrate_positions(argv: Sequence[Any]) -> list[int] | None:
    """MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw|AUTH2 user pw] [KEYS k...].

    With KEYS (which needs "" as the key argument) the keys follow it; AUTH/AUTH2 arguments
    are skipped so a password spelled "KEYS" is not taken for the keyword.
    """
    argc = len(argv)
    i = 6
    while i < argc - 1:
        word = _upper_at(argv, i)
        if word == "AUTH":
            i += 2
        elif word == "AUTH2":
            i += 3
        elif word == "KEYS":
            return list(range(i + 1, argc)) if argv[3] in ("", b"") else None
        else:
            i += 1
    return [3]


_FINDERS: dict[str, _Finder] = {
    "SORT": _sort_positions,
    "SORT_RO": _sort_ro_positions,
    "MIGRATE": _migrate_positions,
}


def _compile() -> tuple[
    dict[str, _Command], dict[Any, tuple[range, int]], dict[Any, _Command], dict[Any, str]
]:
    """Build the lookup structures once, at import.

    Returns the commands by normalized name (containers hold their subcommands), the fast
    single-key table keyed by the literal spellings a client sends as ``args[0]`` ("GET",
    "get", b"GET", b"get", "MEMORY USAGE", ...), the one-word commands and the names keyed
    the same way.
    """
    commands: dict[str, _Command] = {}
    fast: dict[Any, tuple[range, int]] = {}
    spelled: dict[Any, _Command] = {}
    names: dict[Any, str] = {}
    for name in sorted(COMMANDS):  # sorted: containers come before "CONTAINER SUB"
        arity, _flags, raw_specs, sub_names = COMMANDS[name]
        command = _Command(name, arity, raw_specs, sub_names)
        container, _, sub = name.partition(" ")
        if sub:
            subcommands = commands[container].subcommands
            assert subcommands is not None
            subcommands[sub] = command
        else:
            commands[name] = command
        if command.subcommands is not None:
            continue  # which entry applies depends on the next argument
        words = len(name.split())
        spellings = (name, name.lower(), name.encode(), name.lower().encode())
        for spelling in spellings:
            names[spelling] = name
            if words == 1:
                spelled[spelling] = command
        index = command.single_key_index()
        if index is not None:
            # args[0] holds ``words`` argv entries, so args is that many minus one shorter.
            lengths = range(command.min_argc - words + 1, command.max_argc - words + 2)
            for spelling in spellings:
                fast[spelling] = (lengths, index - words + 1)
    return commands, fast, spelled, names


_COMMANDS, _FAST, _SPELLED, _NAMES = _compile()


def _unknown(name: str, container: _Command | None = None) -> UnroutableCommand:
    if container is not None and container.subcommands is not None:
        known = ", ".join(sorted(container.subcommands))
        what = f"{name!r} ({container.name} has no such subcommand; it has {known})"
    else:
        what = repr(name)
    return UnroutableCommand(
        f"Unknown Redis command {what}: django_rb cannot tell which of its arguments are keys "
        f"(its key table is from Redis {REDIS_VERSION}), so it cannot pick a host; {_ADVICE}."
    )


def _resolve(args: Sequence[Any]) -> tuple[_Command, list]:
    """The table entry for ``args`` and the argv Redis will see (``args[0]`` split on spaces)."""
    if not args:
        raise UnroutableCommand("Empty command: there is no command name to route.")
    head = args[0]
    if isinstance(head, str):
        words: list[Any] = head.split()
    elif isinstance(head, _BYTES_LIKE):
        words = bytes(head).split()
    else:
        raise UnroutableCommand(f"Command name {head!r} is neither str nor bytes.")
    if not words:
        raise UnroutableCommand(f"Blank command name {head!r}: there is nothing to route.")
    argv = [*words, *args[1:]]
    name = _norm(words[0])
    command = _COMMANDS.get(name)
    if command is None:
        raise _unknown(name)
    if command.subcommands is not None and len(argv) > 1:
        sub = _norm(argv[1])
        found = command.subcommands.get(sub)
        if found is None:
            raise _unknown(f"{name} {sub}", command)
        command = found
    return command, argv


def fixed_key(head: Any) -> tuple[range, int] | None:
    """For a command that always names one key at a fixed place (GET, HGET, EXPIRE, EVALSHA
    is not one): the argument counts Redis accepts and the key's index, both counted in the
    ``args`` a client passes (name first); None for every other command or spelling."""
    try:
        return _FAST.get(head)
    except TypeError:  # an unhashable name: the slow path explains
        return None


def command_keys(args: tuple | list) -> list:
    """The key arguments of a command, in order, as the very objects found in ``args``.

    ``args`` is what redis-py hands to ``execute_command``: the command name first (str or
    bytes, any case, possibly "CONTAINER SUB" in one string), then the arguments. Commands
    without keys, and argument lists Redis would reject (wrong arity, a numkeys that is not an
    integer or exceeds the arguments), give ``[]``. A command Redis 7 does not know raises
    ``UnroutableCommand`` because nothing can be said about where it should go.
    """
    try:
        hit = _FAST.get(args[0])
    except (IndexError, TypeError):  # empty args, unhashable name: the slow path explains
        hit = None
    if hit is not None and len(args) in hit[0]:
        return [args[hit[1]]]
    return _other_keys(args)


def routing_keys(args: tuple | list) -> list:
    """``command_keys``, except that a known command with a wrong argument count still gives
    the keys at their places, so it goes to that key's host and the server's own arity error
    comes back (as with rb) instead of a claim that the command has no key."""
    return command_keys(args) or _other_keys(args, lenient=True)


def _other_keys(args: Sequence[Any], lenient: bool = False) -> list:
    """Everything but the single-fixed-key case: MGET, EVAL, XREAD, keyless, odd spellings."""
    try:
        command = _SPELLED.get(args[0])
    except (IndexError, TypeError):
        command = None
    if command is None:
        command, args = _resolve(args)
    # else: a one-word name, so args is already the argv Redis will see.
    positions = command.positions(args, lenient)
    if not positions:
        return []
    return [args[i] for i in positions]


def command_name(args: tuple | list) -> str:
    """The command's upper-case name, subcommands joined by a space: "GET", "MEMORY USAGE".

    Redis itself writes subcommands as "memory|usage"; a space is what redis-py callers write.
    This never raises for unknown commands (it is meant for messages and lookups): they are
    simply upper-cased, and a known container's unknown subcommand is appended as given.
    """
    try:
        name = _NAMES.get(args[0])
    except (IndexError, TypeError):
        name = None
    if name is not None:
        return name
    if not args:
        return ""
    head = args[0]
    if isinstance(head, str):
        words: list[Any] = head.split()
    else:
        words = bytes(head).split() if isinstance(head, _BYTES_LIKE) else [head]
    name = _norm(words[0]) if words else ""
    command = _COMMANDS.get(name)
    if command is None or command.subcommands is None:
        return name
    rest = [*words[1:], *args[1:]]
    return f"{name} {_norm(rest[0])}" if rest else name


def is_known(name: str) -> bool:
    """Whether Redis 7 has this command: "get", "MEMORY USAGE", "memory|usage" or a container."""
    if isinstance(name, _BYTES_LIKE):
        name = bytes(name).decode("latin-1")
    words = name.replace("|", " ").split()
    if not words or len(words) > 2:
        return False
    command = _COMMANDS.get(_norm(words[0]))
    if command is None or len(words) == 1:
        return command is not None
    return command.subcommands is not None and _norm(words[1]) in command.subcommands
