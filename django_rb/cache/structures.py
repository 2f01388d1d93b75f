"""django-redis's hash, set and sorted-set helpers for RBCache, routed by their key.

Each helper has django-redis 7's signature, encodes members as django-redis does (set members
and hash values like cache values, sorted-set members always serialized) and returns what it
returns. Each runs as one command on its key's node through the core's local client for that
key (``RBCacheClient.on_key``). Commands over several keys (``sinter``, ``sdiffstore``, ...)
need every key on one node, since a node cannot read another's sets; otherwise they raise
``KeysOnSeveralNodes`` before sending anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

if TYPE_CHECKING:
    from .client import RBCacheClient


class KeysOnSeveralNodes(ValueError):
    """A command over several keys whose keys live on different nodes."""


def async_twin(name: str) -> Callable[..., Any]:
    """``a<name>``: the sync method run in a worker thread, as Django's BaseCache does.

    One implementation per operation: the twin calls the very same method, so it builds the
    same command and reads the reply the same way.
    """

    async def twin(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await sync_to_async(getattr(self, name), thread_sensitive=True)(*args, **kwargs)

    twin.__name__ = twin.__qualname__ = f"a{name}"
    twin.__doc__ = f"Async ``{name}`` (same arguments and answer)."
    return twin


class StructuresMixin:
    """Hash, set and sorted-set helpers; mixed into RBCache."""

    if TYPE_CHECKING:
        _cache: RBCacheClient

        def make_and_validate_key(self, key: Any, version: Any = None) -> str: ...

    def _key(self, key: Any, version: Any) -> str:
        return self.make_and_validate_key(key, version=version)

    def _same_node(self, command: str, keys: list[str], names: list[Any]) -> None:
        """Refuse a multi-key command whose keys live on different nodes, naming them."""
        hosts = self._cache.hosts_of(keys)
        if len(set(hosts)) > 1:
            where = ", ".join(
                f"{name!r} on node {host}" for name, host in zip(names, hosts, strict=True)
            )
            raise KeysOnSeveralNodes(
                f"{command} needs all its keys on one node, but RBCache shards keys over "
                f"nodes: {where}. Read each set (smembers) and combine them in Python, or "
                "keep such sets in a cache whose LOCATION is a single node."
            )

    def _decode_all(self, values: Any) -> list[Any]:
        decode = self._cache.decode
        return [decode(value) for value in values]

    # -- hashes ---------------------------------------------------------------------------

    def hset(self, key: Any, field: Any = None, value: Any = None,
             mapping: Mapping[Any, Any] | None = None, version: Any = None) -> int:  # fmt: skip
        """Set hash fields (values encoded like cache values); how many fields were added."""
        encode = self._cache.encode
        return int(
            self._cache.on_key(
                self._key(key, version),
                0,
                "hset",
                field,
                encode(value) if value is not None else None,
                {f: encode(v) for f, v in mapping.items()} if mapping else None,
            )  # fmt: skip
        )

    def hdel(self, key: Any, field: Any, version: Any = None) -> int:
        """Remove a field; how many were removed."""
        return int(self._cache.on_key(self._key(key, version), 0, "hdel", field))

    def hlen(self, key: Any, version: Any = None) -> int:
        return int(self._cache.on_key(self._key(key, version), 0, "hlen"))

    def hkeys(self, key: Any, version: Any = None) -> list[str]:
        """The field names, as text."""
        fields = self._cache.on_key(self._key(key, version), [], "hkeys")
        return [f.decode() if isinstance(f, bytes) else f for f in fields]

    def hexists(self, key: Any, field: Any, version: Any = None) -> bool:
        return bool(self._cache.on_key(self._key(key, version), False, "hexists", field))

    # -- sets -----------------------------------------------------------------------------

    def sadd(self, key: Any, *values: Any, version: Any = None) -> int:
        encode = self._cache.encode
        members = [encode(value) for value in values]
        return int(self._cache.on_key(self._key(key, version), 0, "sadd", *members))

    def srem(self, key: Any, *members: Any, version: Any = None) -> int:
        encode = self._cache.encode
        encoded = [encode(member) for member in members]
        return int(self._cache.on_key(self._key(key, version), 0, "srem", *encoded))

    def scard(self, key: Any, version: Any = None) -> int:
        return int(self._cache.on_key(self._key(key, version), 0, "scard"))

    def smembers(self, key: Any, version: Any = None) -> set[Any]:
        return set(self._decode_all(self._cache.on_key(self._key(key, version), [], "smembers")))

    def sismember(self, key: Any, member: Any, version: Any = None) -> bool:
        encoded = self._cache.encode(member)
        return bool(self._cache.on_key(self._key(key, version), False, "sismember", encoded))

    def smismember(self, key: Any, *members: Any, version: Any = None) -> list[bool]:
        encoded = [self._cache.encode(member) for member in members]
        answers = self._cache.on_key(
            self._key(key, version), [0] * len(encoded), "smismember", *encoded
        )
        return [bool(answer) for answer in answers]

    def spop(self, key: Any, count: int | None = None, version: Any = None) -> Any:
        """One member (count None), else a set of up to ``count``; None from an empty set."""
        result = self._cache.on_key(self._key(key, version), None, "spop", count)
        return self._one_or_many(result, set)

    def srandmember(self, key: Any, count: int | None = None, version: Any = None) -> Any:
        """One member (count None), else a list (Redis's SRANDMEMBER count semantics)."""
        result = self._cache.on_key(self._key(key, version), None, "srandmember", count)
        return self._one_or_many(result, list)

    def _one_or_many(self, result: Any, kind: Callable[[list[Any]], Any]) -> Any:
        if result is None:
            return None
        if isinstance(result, list | set):
            return kind(self._decode_all(result))
        return self._cache.decode(result)

    def smove(self, source: Any, destination: Any, member: Any, version: Any = None) -> bool:
        """Move a member between two sets on one node (django-redis: the destination is made
        with the default version)."""
        keys = [self._key(source, version), self._key(destination, None)]
        self._same_node("smove", keys, [source, destination])
        encoded = self._cache.encode(member)
        return bool(self._cache.on_key(keys[0], False, "smove", keys[1], encoded))

    def sscan(self, key: Any, match: str | None = None, count: int | None = 10,
              version: Any = None) -> set[Any]:  # fmt: skip
        """One SSCAN step's members (as django-redis: not the whole set for big sets)."""
        pattern = self._scan_match(match)
        _, values = self._cache.on_key(
            self._key(key, version), (0, []), "sscan", 0, match=pattern, count=count
        )
        return set(self._decode_all(values))

    def sscan_iter(self, key: Any, match: str | None = None, count: int | None = 10,
                   version: Any = None) -> Iterator[Any]:  # fmt: skip
        """Every member, SSCAN step by step on the key's node."""
        pattern = self._scan_match(match)
        made = self._key(key, version)
        cursor: int | None = None
        while cursor != 0:
            cursor, values = self._cache.on_key(
                made, (0, []), "sscan", cursor or 0, match=pattern, count=count
            )
            yield from self._decode_all(values)

    def _scan_match(self, match: str | None) -> Any:
        """django-redis matches on encoded members, which compression makes impossible."""
        if not match:
            return None
        if self._cache.compressor is not None:
            raise ValueError("Using match with compression is not supported.")
        return self._cache.encode(match)

    def _combine(self, command: str, keys: tuple[Any, ...], version: Any) -> set[Any]:
        made = [self._key(key, version) for key in keys]
        self._same_node(command, made, list(keys))
        return set(self._decode_all(self._cache.on_key(made[0], [], command, *made[1:])))

    def _combine_store(
        self, command: str, dest: Any, keys: tuple[Any, ...], dest_version: Any, version: Any
    ) -> int:
        made = [self._key(dest, dest_version)] + [self._key(key, version) for key in keys]
        self._same_node(command, made, [dest, *keys])
        return int(self._cache.on_key(made[0], 0, command, *made[1:]))

    def sdiff(self, *keys: Any, version: Any = None) -> set[Any]:
        return self._combine("sdiff", keys, version)

    def sinter(self, *keys: Any, version: Any = None) -> set[Any]:
        return self._combine("sinter", keys, version)

    def sunion(self, *keys: Any, version: Any = None) -> set[Any]:
        return self._combine("sunion", keys, version)

    def sdiffstore(self, dest: Any, *keys: Any, version_dest: Any = None,
                   version_keys: Any = None) -> int:  # fmt: skip
        return self._combine_store("sdiffstore", dest, keys, version_dest, version_keys)

    def sinterstore(self, dest: Any, *keys: Any, version: Any = None) -> int:
        return self._combine_store("sinterstore", dest, keys, version, version)

    def sunionstore(self, destination: Any, *keys: Any, version: Any = None) -> int:
        return self._combine_store("sunionstore", destination, keys, version, version)

    # -- sorted sets ----------------------------------------------------------------------

    def zadd(self, key: Any, mapping: Mapping[Any, float], nx: bool = False, xx: bool = False,
             ch: bool = False, incr: bool = False, gt: bool = False, lt: bool = False,
             version: Any = None) -> Any:  # fmt: skip
        """Add members with scores (members always serialized, never stored as digits)."""
        member = self._cache.encode_member
        encoded = {member(value): score for value, score in mapping.items()}
        return self._cache.on_key(self._key(key, version), 0, "zadd", encoded,
                                  nx=nx, xx=xx, ch=ch, incr=incr, gt=gt, lt=lt)  # fmt: skip

    def zcard(self, key: Any, version: Any = None) -> int:
        return int(self._cache.on_key(self._key(key, version), 0, "zcard"))

    def zcount(self, key: Any, min: Any, max: Any, version: Any = None) -> int:
        return int(self._cache.on_key(self._key(key, version), 0, "zcount", min, max))

    def zincrby(self, key: Any, amount: float, value: Any, version: Any = None) -> Any:
        member = self._cache.encode_member(value)
        return self._cache.on_key(self._key(key, version), None, "zincrby", amount, member)

    def zscore(self, key: Any, value: Any, version: Any = None) -> float | None:
        member = self._cache.encode_member(value)
        return self._cache.on_key(self._key(key, version), None, "zscore", member)

    def zrank(self, key: Any, value: Any, withscore: bool = False, version: Any = None) -> Any:
        member = self._cache.encode_member(value)
        return self._cache.on_key(
            self._key(key, version), None, "zrank", member, withscore=withscore
        )

    def zrem(self, key: Any, *values: Any, version: Any = None) -> int:
        members = [self._cache.encode_member(value) for value in values]
        return int(self._cache.on_key(self._key(key, version), 0, "zrem", *members))

    def zremrangebyscore(self, key: Any, min: Any, max: Any, version: Any = None) -> int:
        return int(self._cache.on_key(self._key(key, version), 0, "zremrangebyscore", min, max))

    def zpopmax(self, key: Any, count: int | None = None, version: Any = None) -> Any:
        return self._popped(self._cache.on_key(self._key(key, version), [], "zpopmax", count),
                            count)  # fmt: skip

    def zpopmin(self, key: Any, count: int | None = None, version: Any = None) -> Any:
        return self._popped(self._cache.on_key(self._key(key, version), [], "zpopmin", count),
                            count)  # fmt: skip

    def _popped(self, result: Any, count: int | None) -> Any:
        """django-redis's shape: one (member, score) or None without count, else a list."""
        decoded = [(self._cache.decode(member), score) for member, score in result or []]
        if count is None:
            return decoded[0] if decoded else None
        return decoded

    def _members(self, result: Any, withscores: bool) -> list[Any]:
        decode = self._cache.decode
        if withscores:
            return [(decode(member), score) for member, score in result]
        return [decode(member) for member in result]

    def zrange(self, key: Any, start: int, end: int, desc: bool = False,
               withscores: bool = False, score_cast_func: type = float,
               version: Any = None) -> list[Any]:  # fmt: skip
        result = self._cache.on_key(self._key(key, version), [], "zrange", start, end, desc=desc,
                                    withscores=withscores, score_cast_func=score_cast_func)  # fmt: skip
        return self._members(result, withscores)

    def zrevrange(self, key: Any, start: int, end: int, withscores: bool = False,
                  score_cast_func: type = float, version: Any = None) -> list[Any]:  # fmt: skip
        result = self._cache.on_key(self._key(key, version), [], "zrevrange", start, end,
                                    withscores=withscores, score_cast_func=score_cast_func)  # fmt: skip
        return self._members(result, withscores)

    def zrangebyscore(self, key: Any, min: Any, max: Any, start: int | None = None,
                      num: int | None = None, withscores: bool = False,
                      score_cast_func: type = float, version: Any = None) -> list[Any]:  # fmt: skip
        result = self._cache.on_key(self._key(key, version), [], "zrangebyscore", min, max,
                                    start=start, num=num, withscores=withscores,
                                    score_cast_func=score_cast_func)  # fmt: skip
        return self._members(result, withscores)

    def zrevrangebyscore(self, key: Any, max: Any, min: Any, start: int | None = None,
                         num: int | None = None, withscores: bool = False,
                         score_cast_func: type = float, version: Any = None) -> list[Any]:  # fmt: skip
        result = self._cache.on_key(self._key(key, version), [], "zrevrangebyscore", max, min,
                                    start=start, num=num, withscores=withscores,
                                    score_cast_func=score_cast_func)  # fmt: skip
        return self._members(result, withscores)

    # -- async twins ----------------------------------------------------------------------

    ahset = async_twin("hset")
    ahdel = async_twin("hdel")
    ahlen = async_twin("hlen")
    ahkeys = async_twin("hkeys")
    ahexists = async_twin("hexists")
    asadd = async_twin("sadd")
    asrem = async_twin("srem")
    ascard = async_twin("scard")
    asmembers = async_twin("smembers")
    asismember = async_twin("sismember")
    asmismember = async_twin("smismember")
    aspop = async_twin("spop")
    asrandmember = async_twin("srandmember")
    asmove = async_twin("smove")
    asscan = async_twin("sscan")
    asdiff = async_twin("sdiff")
    asinter = async_twin("sinter")
    asunion = async_twin("sunion")
    asdiffstore = async_twin("sdiffstore")
    asinterstore = async_twin("sinterstore")
    asunionstore = async_twin("sunionstore")
    azadd = async_twin("zadd")
    azcard = async_twin("zcard")
    azcount = async_twin("zcount")
    azincrby = async_twin("zincrby")
    azscore = async_twin("zscore")
    azrank = async_twin("zrank")
    azrem = async_twin("zrem")
    azremrangebyscore = async_twin("zremrangebyscore")
    azpopmax = async_twin("zpopmax")
    azpopmin = async_twin("zpopmin")
    azrange = async_twin("zrange")
    azrevrange = async_twin("zrevrange")
    azrangebyscore = async_twin("zrangebyscore")
    azrevrangebyscore = async_twin("zrevrangebyscore")
