"""The wire layer: command encoding, and the pure-Python reader used when hiredis is absent."""

import pytest
import redis

from django_rb.cluster import engine
from django_rb.cluster.resp import (
    ArgEncoder,
    PyReader,
    ReplyError,
    pack,
    pack_pipeline,
)


def test_pack_matches_the_resp_spec():
    assert pack((b"GET", b"k")) == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    assert pack((b"MGET", b"a", b"")) == b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$0\r\n\r\n"
    long = b"x" * 5000
    assert pack((long,)) == b"*1\r\n$5000\r\n" + long + b"\r\n"


def test_encoder_follows_redis_py_types():
    enc = ArgEncoder()
    assert enc.words(("MEMORY USAGE", "k")) == (b"MEMORY", b"USAGE", b"k")
    assert enc.words((b"SET", 1, 2.5, b"\xff", "é")) == (
        b"SET",
        b"1",
        b"2.5",
        b"\xff",
        "é".encode(),
    )
    with pytest.raises(redis.DataError):
        enc.encode(True)
    with pytest.raises(redis.DataError):
        enc.encode(None)


def test_py_reader_reads_every_reply_type_byte_by_byte():
    wire = (
        b"+OK\r\n-ERR bad thing\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*-1\r\n"
        b"*3\r\n$1\r\na\r\n*2\r\n:1\r\n$0\r\n\r\n$-1\r\n"
    )
    reader = PyReader()
    replies = []
    for i in range(len(wire)):
        reader.feed(wire[i : i + 1])
        while (reply := reader.gets()) is not False:
            replies.append(reply)
    assert replies[0] == b"OK"
    assert isinstance(replies[1], ReplyError) and str(replies[1]) == "ERR bad thing"
    assert replies[2:] == [42, b"hello", None, None, [b"a", [1, b""], None]]


def test_map_works_with_the_pure_python_reader(rb_cluster, monkeypatch):
    monkeypatch.setattr(engine, "new_reader", PyReader)
    with rb_cluster.map() as client:
        for i in range(300):
            client.set(f"py{i}", "v" * i)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        with rb_cluster.map() as client:
            values = [client.get(f"py{i}") for i in range(300)]
            bad = client.lpush("py5", "x")
            client.hset("h", mapping={"a": "1"})
            mapping = client.hgetall("h")
    assert [p.value for p in values] == [b"v" * i for i in range(300)]
    assert bad.is_rejected and mapping.value == {b"a": b"1"}


@pytest.mark.parametrize(
    "commands",
    [
        [],
        [(b"GET", b"k")],
        [(b"SET", b"k", b"x" * 5000), (b"GET", b"")],  # a word past the size table
        [(b"MGET", *[b"k%d" % i for i in range(15)])],  # just under the slice path
        [(b"MGET", *[b"k%d" % i for i in range(200)]), (b"PING",)],  # more words than arrays
        [(b"MSET", *([b"v" * 4097] * 20)), (b"HGET", b"h", b"f")],  # long run, big words
        # two- and three-word commands take their own path; words at the size table's edge
        [(b"GET", b"k" * 4095), (b"GET", b"k" * 4096), (b"INCR", b"")] * 2,
        [(b"SET", b"k", b"v" * 4095), (b"SET", b"k", b"v" * 4096), (b"HGET", b"h" * 4096, b"")],
    ],
    ids=[
        "none",
        "one",
        "big-word",
        "fifteen-words",
        "long-run",
        "long-run-big-words",
        "two-words-at-the-edge",
        "three-words-at-the-edge",
    ],
)
def test_pack_pipeline_is_every_command_packed_in_order(commands):
    assert pack_pipeline(commands) == b"".join(pack(words) for words in commands)
    reader = PyReader()  # and the server-side view: arrays of exactly these words
    reader.feed(pack_pipeline(commands))
    assert [tuple(reader.gets()) for _ in commands] == [tuple(c) for c in commands]
