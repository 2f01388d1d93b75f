"""Record where rb 1.11 places keys, as a JSON fixture for tests/test_rb_compat.py.

This script imports the real ``rb`` package, so it runs in a throwaway virtualenv that has it
(rb needs redis-py older than 5)::

    python3 -m venv /tmp/rbv
    /tmp/rbv/bin/pip install rb==1.11.0 "redis<5"
    /tmp/rbv/bin/python scripts/gen_routing_fixture.py            # writes tests/data/rb_routing.json

No Redis server is needed: routing is pure computation over the host settings. For each host
setup and each of rb's two routers it records the host dicts exactly as rb received them
(``host_defaults`` already applied), the keys, and the host id rb's router picked per key.
Keys are stored so that JSON can carry them back unchanged: ``"text"`` as a JSON string,
``{"int": n}`` for integers and ``{"b64": "..."}`` for bytes (which may not be UTF-8).

The output is deterministic (seeded), so re-running it gives the same file.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import string
import sys
from typing import Any

ROUTERS = ("PartitionRouter", "ConsistentHashingRouter")
KEYS_PER_SETUP = 2000
DEFAULT_OUT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data", "rb_routing.json"
)

WORDS = (
    "user session cache feed post comment like follow event counter token lock queue "
    "timeline inbox profile avatar score rank bucket shard node slot page view stat"
).split()
UNICODE_PARTS = ("ключ", "键", "clé", "Schlüssel", "κλειδί", "🔑", "مفتاح", "キー", "ñandú", "é")


def _tcp_hosts(count: int, port0: int, **extra: Any) -> dict[int, dict[str, Any]]:
    return {i: {"host": "127.0.0.1", "port": port0 + i, **extra} for i in range(count)}


def host_setups() -> list[dict[str, Any]]:
    """The host setups: each a name, rb's ``hosts`` argument and its ``host_defaults``."""
    setups: list[dict[str, Any]] = [
        {
            "name": "one-host",
            "hosts": {0: {"host": "127.0.0.1", "port": 6380}},
            "host_defaults": None,
        },
        {"name": "two-hosts-defaults-only", "hosts": {0: {}, 1: {}}, "host_defaults": None},
        {
            "name": "three-hosts-db-and-password",
            "hosts": {
                0: {"port": 7000, "db": 1},
                1: {"port": 7001, "db": 2},
                2: {"port": 7002, "db": 3},
            },
            "host_defaults": {"host": "10.0.0.5", "password": "s3cret"},
        },
        {"name": "four-hosts-localhost", "hosts": _tcp_hosts(4, 6380), "host_defaults": None},
        {
            "name": "four-hosts-same-port-different-dbs",
            "hosts": {i: {"db": i} for i in range(4)},
            "host_defaults": {"host": "redis.internal", "port": 6390},
        },
        {
            "name": "five-hosts-mixed-addresses",
            "hosts": {
                0: {"host": "10.1.0.1", "port": 6379},
                1: {"host": "10.1.0.2", "port": 6380, "db": 5},
                2: {"host": "cache-3.example.org", "port": 16379, "password": "pa:ss@word/ü"},
                3: {"host": "::1", "port": 6381},
                4: {"host": "10.1.0.5", "port": 6379, "db": 15, "password": ""},
            },
            "host_defaults": None,
        },
        {
            "name": "eight-hosts-unix-sockets",
            "hosts": {i: {"unix_socket_path": f"/var/run/redis/node{i}.sock"} for i in range(8)},
            "host_defaults": {"db": 2},
        },
        {
            "name": "eight-hosts-ssl",
            "hosts": _tcp_hosts(8, 6400),
            "host_defaults": {
                "ssl": True,
                "ssl_options": {"ca_certs": "/etc/ssl/ca.pem", "cert_reqs": "required"},
                "password": "tls-pass",
            },
        },
        {
            "name": "sixteen-hosts",
            "hosts": {
                i: {"host": f"10.2.{i // 4}.{i % 4 + 1}", "port": 6379 + (i % 3)} for i in range(16)
            },
            "host_defaults": {"db": 0},
        },
        {
            "name": "sixteen-hosts-unordered-ids",
            "hosts": {
                i: {"port": 7100 + i}
                for i in (5, 0, 15, 3, 9, 1, 12, 7, 2, 14, 4, 11, 6, 13, 8, 10)
            },
            "host_defaults": {"host": "127.0.0.2", "password": "x"},
        },
        {
            "name": "three-hosts-mixed-transports",
            "hosts": {
                0: {"host": "127.0.0.1", "port": 6500},
                1: {"unix_socket_path": "/tmp/redis-b.sock", "db": 1},
                2: {
                    "host": "secure.example.org",
                    "port": 6501,
                    "ssl": True,
                    "ssl_options": {"check_hostname": True},
                },
            },
            "host_defaults": None,
        },
        {
            "name": "five-hosts-ssl-no-options",
            "hosts": _tcp_hosts(5, 6600, ssl=True),
            "host_defaults": {"db": 7},
        },
    ]
    return setups


def make_keys(rng: random.Random, count: int) -> list[Any]:
    """A mix of key types: ascii words, ints, unicode, bytes (some not UTF-8), long, empty."""
    keys: list[Any] = ["", b"", 0, -1]
    while len(keys) < count:
        kind = rng.random()
        if kind < 0.35:
            word = ":".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))
            keys.append(f"{word}:{rng.randint(0, 10**6)}")
        elif kind < 0.50:
            keys.append(
                rng.choice(
                    (rng.randint(0, 1000), rng.randint(-(2**40), 2**40), rng.randint(0, 2**70))
                )
            )
        elif kind < 0.62:
            keys.append(
                "".join(rng.choice(UNICODE_PARTS) for _ in range(rng.randint(1, 4)))
                + str(rng.randint(0, 999))
            )
        elif kind < 0.74:
            keys.append(
                bytes(rng.randrange(256) for _ in range(rng.randint(1, 24)))
            )  # often not UTF-8
        elif kind < 0.84:
            keys.append(f"b:{rng.choice(WORDS)}:{rng.randint(0, 10**5)}".encode())
        elif kind < 0.855:
            size = rng.choice((100, 250, 600))
            keys.append(
                "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(size))
            )
        elif kind < 0.86:
            keys.append(bytes(rng.randrange(256) for _ in range(rng.choice((128, 400)))))
        else:
            keys.append("".join(rng.choice(string.printable) for _ in range(rng.randint(1, 12))))
    return keys


def encode_key(key: Any) -> Any:
    """JSON form of a key: str as is, ints as {"int": n}, bytes as {"b64": ...}."""
    if isinstance(key, bool):
        raise TypeError("bool keys are not recorded")
    if isinstance(key, int):
        return {"int": key}
    if isinstance(key, bytes):
        return {"b64": base64.b64encode(key).decode("ascii")}
    if isinstance(key, str):
        return key
    raise TypeError(f"unsupported key type {type(key).__name__}")


def applied_hosts(
    hosts: dict[int, dict[str, Any]], defaults: dict[str, Any] | None
) -> dict[int, dict[str, Any]]:
    """The per-host dicts with ``host_defaults`` filled in (what rb's add_host receives)."""
    merged = {}
    for host_id, cfg in hosts.items():
        full = dict(cfg)
        for key, value in (defaults or {}).items():
            full.setdefault(key, value)
        merged[host_id] = full
    return merged


def _host_id(picked: Any) -> int:
    """rb's ketama router hands back the HostInfo itself, its partition router an int."""
    return int(getattr(picked, "host_id", picked))


def build(seed: int, keys_per_setup: int) -> dict[str, Any]:
    """Compute the whole fixture with rb."""
    import rb  # noqa: PLC0415  (only available in the rb venv)

    routers = {name: getattr(rb, name) for name in ROUTERS}
    records = []
    for index, setup in enumerate(host_setups()):
        hosts = applied_hosts(setup["hosts"], setup["host_defaults"])
        for router_name in ROUTERS:
            rng = random.Random(f"{seed}:{index}:{router_name}")
            keys = make_keys(rng, keys_per_setup)
            cluster = rb.Cluster(
                setup["hosts"],
                host_defaults=setup["host_defaults"],
                router_cls=routers[router_name],
            )
            router = cluster.get_router()
            host_ids = [_host_id(router.get_host_for_key(key)) for key in keys]
            # The fixture stores the merged dicts: they must place keys as rb's defaults did.
            merged_cluster = rb.Cluster(hosts, router_cls=routers[router_name])
            check = merged_cluster.get_router()  # the router keeps only a weakref to its cluster
            if [_host_id(check.get_host_for_key(key)) for key in keys] != host_ids:
                raise SystemExit(f"{setup['name']}: merged host dicts route differently")
            records.append(
                {
                    "name": setup["name"],
                    "router": router_name,
                    "host_count": len(hosts),
                    "host_defaults": setup["host_defaults"],
                    "raw_hosts": {str(k): v for k, v in setup["hosts"].items()},
                    "hosts": {str(k): v for k, v in hosts.items()},
                    "keys": [encode_key(k) for k in keys],
                    "host_ids": host_ids,
                }
            )
    return {
        "generator": "scripts/gen_routing_fixture.py",
        "rb_version": getattr(rb, "__version__", "unknown"),
        "python": sys.version.split()[0],
        "seed": seed,
        "key_encoding": {"str": "JSON string", "int": {"int": "n"}, "bytes": {"b64": "base64"}},
        "setups": records,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="where to write the JSON")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--keys", type=int, default=KEYS_PER_SETUP, help="keys per setup")
    args = parser.parse_args(argv)
    try:
        import rb  # noqa: F401, PLC0415
    except ImportError:
        print(
            'rb is not importable here: run with a venv that has `pip install rb==1.11.0 "redis<5"`.',
            file=sys.stderr,
        )
        return 2
    data = build(args.seed, args.keys)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, separators=(",", ":"))
        fh.write("\n")
    size = os.path.getsize(args.out)
    print(f"wrote {args.out}: {len(data['setups'])} setups, {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
