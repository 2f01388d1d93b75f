"""django-redis's hash, set and sorted-set helpers for RBCache, routed by their key.

Each helper has django-redis 7's signature, encodes members as django-redis does (set members
and hash values like cache values, sorted-set members always serialized) and returns what it
returns. Each runs as one command on its key's node through the core's local client for that
key (``RBCacheClient.on_key``). Commands over several keys (``sinter``, ``sdiffstore``, ...)
need every key on one node, since a node cannot read another's sets; otherwise they raise
``KeysOnSeveralNodes`` before sending anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .client import KeyPlan

if TYPE_CHECKING:
    from .client import RBCacheClient


class KeysOnSeveralNodes(ValueError):
    """A command over several keys whose keys live on different nodes."""


def run_plan(build: Callable[..., KeyPlan]) -> Callable[..., Any]:
    """The operation built by ``build`` (the plan: command and reading), on the selector
    engine. Its async twin (``arun_plan``) runs the very same plan on asyncio."""

    @functools.wraps(build)
    def operation(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._cache.run_key(build(self, *args, **kwargs))

    operation.__name__ = operation.__qualname__ = build.__name__.removeprefix("_plan_")
    return operation


def arun_plan(build: Callable[..., KeyPlan]) -> Callable[..., Any]:
    """The async twin of ``run_plan(build)``: the same plan, awaited on the asyncio engine."""

    @functools.wraps(build)
    async def operation(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._cache.arun_key(build(self, *args, **kwargs))

    operation.__name__ = operation.__qualname__ = "a" + build.__name__.removeprefix("_plan_")
    return operation


def _same(value: Any) -> Any:
    return value


class StructuresMixin:
    """Hash, set and sorted-set helpers; mixed into RBCache."""

    if TYPE_CHECKING:
        _cache: RBCacheClient

        def make_and_validate_key(self, key: Any, version: Any = None) -> str: ...

    def _plan(self, key: Any, version: Any, default: Any, method: str, *args: Any,
              read: Callable[[Any], Any] = _same, **kwargs: Any) -> KeyPlan:  # fmt: skip
        """redis-py's ``method(made_key, *args, **kwargs)`` on the key's node, read by ``read``;
        ``default`` when that node is unavailable and ignored."""
        made = key if version is _MADE else self.make_and_validate_key(key, version=version)
        return KeyPlan(made, default, lambda c: getattr(c, method)(made, *args, **kwargs), read)

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

    def _decoded_set(self, values: Any) -> set[Any]:
        return set(self._decode_all(values))

    # -- hashes ---------------------------------------------------------------------------

    def _plan_hset(self, key: Any, field: Any = None, value: Any = None,
                   mapping: Mapping[Any, Any] | None = None, version: Any = None) -> KeyPlan:  # fmt: skip
        """Set hash fields (values encoded like cache values); how many fields were added."""
        encode = self._cache.encode
        encoded = encode(value) if value is not None else None
        pairs = {f: encode(v) for f, v in mapping.items()} if mapping else None
        return self._plan(key, version, 0, "hset", field, encoded, pairs, read=int)

    def _plan_hdel(self, key: Any, field: Any, version: Any = None) -> KeyPlan:
        """Remove a field; how many were removed."""
        return self._plan(key, version, 0, "hdel", field, read=int)

    def _plan_hlen(self, key: Any, version: Any = None) -> KeyPlan:
        """How many fields the hash has."""
        return self._plan(key, version, 0, "hlen", read=int)

    def _plan_hkeys(self, key: Any, version: Any = None) -> KeyPlan:
        """The field names, as text."""

        def read(fields: Any) -> list[str]:
            return [f.decode() if isinstance(f, bytes) else f for f in fields]

        return self._plan(key, version, [], "hkeys", read=read)

    def _plan_hexists(self, key: Any, field: Any, version: Any = None) -> KeyPlan:
        """Whether the hash has the field."""
        return self._plan(key, version, False, "hexists", field, read=bool)

    # -- sets -----------------------------------------------------------------------------

    def _plan_sadd(self, key: Any, *values: Any, version: Any = None) -> KeyPlan:
        """Add members; how many were new."""
        members = [self._cache.encode(value) for value in values]
        return self._plan(key, version, 0, "sadd", *members, read=int)

    def _plan_srem(self, key: Any, *members: Any, version: Any = None) -> KeyPlan:
        """Remove members; how many were there."""
        encoded = [self._cache.encode(member) for member in members]
        return self._plan(key, version, 0, "srem", *encoded, read=int)

    def _plan_scard(self, key: Any, version: Any = None) -> KeyPlan:
        """How many members the set has."""
        return self._plan(key, version, 0, "scard", read=int)

    def _plan_smembers(self, key: Any, version: Any = None) -> KeyPlan:
        """Every member, as a set."""
        return self._plan(key, version, set(), "smembers", read=self._decoded_set)

    def _plan_sismember(self, key: Any, member: Any, version: Any = None) -> KeyPlan:
        """Whether ``member`` is in the set."""
        encoded = self._cache.encode(member)
        return self._plan(key, version, False, "sismember", encoded, read=bool)

    def _plan_smismember(self, key: Any, *members: Any, version: Any = None) -> KeyPlan:
        """For each member, whether it is in the set."""
        encoded = [self._cache.encode(member) for member in members]

        def read(answers: Any) -> list[bool]:
            return [bool(answer) for answer in answers]

        return self._plan(key, version, [False] * len(encoded), "smismember", *encoded, read=read)

    def _plan_spop(self, key: Any, count: int | None = None, version: Any = None) -> KeyPlan:
        """Remove and return one member (count None), else a set of up to ``count``."""
        return self._plan(key, version, None, "spop", count,
                          read=lambda result: self._one_or_many(result, set))  # fmt: skip

    def _plan_srandmember(self, key: Any, count: int | None = None, version: Any = None) -> KeyPlan:
        """One member (count None), else a list (Redis's SRANDMEMBER count semantics)."""
        return self._plan(key, version, None, "srandmember", count,
                          read=lambda result: self._one_or_many(result, list))  # fmt: skip

    def _one_or_many(self, result: Any, kind: Callable[[list[Any]], Any]) -> Any:
        if result is None:
            return None
        if isinstance(result, list | set):
            return kind(self._decode_all(result))
        return self._cache.decode(result)

    def _plan_smove(
        self, source: Any, destination: Any, member: Any, version: Any = None
    ) -> KeyPlan:
        """Move a member between two sets on one node (as django-redis: the destination is
        made with the default version)."""
        keys = [
            self.make_and_validate_key(source, version),
            self.make_and_validate_key(destination),
        ]
        self._same_node("smove", keys, [source, destination])
        encoded = self._cache.encode(member)
        return self._plan(keys[0], _MADE, False, "smove", keys[1], encoded, read=bool)

    def _plan_sscan(self, key: Any, match: str | None = None, count: int | None = 10,
                    version: Any = None) -> KeyPlan:  # fmt: skip
        """One SSCAN step's members (as django-redis: not the whole of a big set)."""
        pattern = self._scan_match(match)
        return self._plan(key, version, set(), "sscan", 0, match=pattern, count=count,
                          read=lambda reply: self._decoded_set(reply[1]))  # fmt: skip

    def sscan_iter(self, key: Any, match: str | None = None, count: int | None = 10,
                   version: Any = None) -> Iterator[Any]:  # fmt: skip
        """Every member, SSCAN step by step on the key's node."""
        pattern = self._scan_match(match)
        made = self.make_and_validate_key(key, version=version)
        cursor: int | None = None
        while cursor != 0:
            plan = self._plan(
                made, _MADE, (0, []), "sscan", cursor or 0, match=pattern, count=count
            )
            cursor, values = self._cache.run_key(plan)
            yield from self._decode_all(values)

    def _scan_match(self, match: str | None) -> Any:
        """django-redis matches on encoded members, which compression makes impossible."""
        if not match:
            return None
        if self._cache.compressor is not None:
            raise ValueError("Using match with compression is not supported.")
        return self._cache.encode(match)

    def _combine(self, command: str, keys: tuple[Any, ...], version: Any) -> KeyPlan:
        made = [self.make_and_validate_key(key, version=version) for key in keys]
        self._same_node(command, made, list(keys))
        return self._plan(made[0], _MADE, set(), command, *made[1:], read=self._decoded_set)

    def _combine_store(
        self, command: str, dest: Any, keys: tuple[Any, ...], dest_version: Any, version: Any
    ) -> KeyPlan:
        made = [self.make_and_validate_key(dest, dest_version)]
        made += [self.make_and_validate_key(key, version) for key in keys]
        self._same_node(command, made, [dest, *keys])
        return self._plan(made[0], _MADE, 0, command, *made[1:], read=int)

    def _plan_sdiff(self, *keys: Any, version: Any = None) -> KeyPlan:
        """Members of the first set that no other has (all keys on one node)."""
        return self._combine("sdiff", keys, version)

    def _plan_sinter(self, *keys: Any, version: Any = None) -> KeyPlan:
        """Members every set has (all keys on one node)."""
        return self._combine("sinter", keys, version)

    def _plan_sunion(self, *keys: Any, version: Any = None) -> KeyPlan:
        """Members any set has (all keys on one node)."""
        return self._combine("sunion", keys, version)

    def _plan_sdiffstore(self, dest: Any, *keys: Any, version_dest: Any = None,
                         version_keys: Any = None) -> KeyPlan:  # fmt: skip
        """``sdiff`` stored at ``dest``; its size."""
        return self._combine_store("sdiffstore", dest, keys, version_dest, version_keys)

    def _plan_sinterstore(self, dest: Any, *keys: Any, version: Any = None) -> KeyPlan:
        """``sinter`` stored at ``dest``; its size."""
        return self._combine_store("sinterstore", dest, keys, version, version)

    def _plan_sunionstore(self, destination: Any, *keys: Any, version: Any = None) -> KeyPlan:
        """``sunion`` stored at ``destination``; its size."""
        return self._combine_store("sunionstore", destination, keys, version, version)

    # -- sorted sets ----------------------------------------------------------------------

    def _plan_zadd(self, key: Any, mapping: Mapping[Any, float], nx: bool = False,
                   xx: bool = False, ch: bool = False, incr: bool = False, gt: bool = False,
                   lt: bool = False, version: Any = None) -> KeyPlan:  # fmt: skip
        """Add members with scores (members always serialized, never stored as digits)."""
        member = self._cache.encode_member
        encoded = {member(value): score for value, score in mapping.items()}
        return self._plan(key, version, 0, "zadd", encoded,
                          nx=nx, xx=xx, ch=ch, incr=incr, gt=gt, lt=lt)  # fmt: skip

    def _plan_zcard(self, key: Any, version: Any = None) -> KeyPlan:
        """How many members."""
        return self._plan(key, version, 0, "zcard", read=int)

    def _plan_zcount(self, key: Any, min: Any, max: Any, version: Any = None) -> KeyPlan:
        """How many members score between ``min`` and ``max``."""
        return self._plan(key, version, 0, "zcount", min, max, read=int)

    def _plan_zincrby(self, key: Any, amount: float, value: Any, version: Any = None) -> KeyPlan:
        """Add ``amount`` to a member's score; the new score."""
        return self._plan(key, version, None, "zincrby", amount, self._cache.encode_member(value))

    def _plan_zscore(self, key: Any, value: Any, version: Any = None) -> KeyPlan:
        """A member's score, None if it is not there."""
        return self._plan(key, version, None, "zscore", self._cache.encode_member(value))

    def _plan_zrank(self, key: Any, value: Any, withscore: bool = False,
                    version: Any = None) -> KeyPlan:  # fmt: skip
        """A member's rank from the lowest score (and its score with ``withscore``)."""
        member = self._cache.encode_member(value)
        if withscore:  # only then: Redis before 7.2 knows no WITHSCORE
            return self._plan(key, version, None, "zrank", member, withscore=True)
        return self._plan(key, version, None, "zrank", member)

    def _plan_zrem(self, key: Any, *values: Any, version: Any = None) -> KeyPlan:
        """Remove members; how many were there."""
        members = [self._cache.encode_member(value) for value in values]
        return self._plan(key, version, 0, "zrem", *members, read=int)

    def _plan_zremrangebyscore(self, key: Any, min: Any, max: Any, version: Any = None) -> KeyPlan:
        """Remove the members scoring between ``min`` and ``max``; how many."""
        return self._plan(key, version, 0, "zremrangebyscore", min, max, read=int)

    def _plan_zpopmax(self, key: Any, count: int | None = None, version: Any = None) -> KeyPlan:
        """Remove and return the highest: one (member, score) without count, else a list."""
        return self._plan(key, version, None if count is None else [], "zpopmax", count,
                          read=lambda result: self._popped(result, count))  # fmt: skip

    def _plan_zpopmin(self, key: Any, count: int | None = None, version: Any = None) -> KeyPlan:
        """Remove and return the lowest: one (member, score) without count, else a list."""
        return self._plan(key, version, None if count is None else [], "zpopmin", count,
                          read=lambda result: self._popped(result, count))  # fmt: skip

    def _popped(self, result: Any, count: int | None) -> Any:
        decoded = [(self._cache.decode(member), score) for member, score in result or []]
        if count is None:
            return decoded[0] if decoded else None
        return decoded

    def _members(self, withscores: bool) -> Callable[[Any], list[Any]]:
        decode = self._cache.decode

        def read(result: Any) -> list[Any]:
            if withscores:
                return [(decode(member), score) for member, score in result]
            return [decode(member) for member in result]

        return read

    def _plan_zrange(self, key: Any, start: int, end: int, desc: bool = False,
                     withscores: bool = False, score_cast_func: type = float,
                     version: Any = None) -> KeyPlan:  # fmt: skip
        """Members by rank."""
        return self._plan(key, version, [], "zrange", start, end, desc=desc, withscores=withscores,
                          score_cast_func=score_cast_func, read=self._members(withscores))  # fmt: skip

    def _plan_zrevrange(self, key: Any, start: int, end: int, withscores: bool = False,
                        score_cast_func: type = float, version: Any = None) -> KeyPlan:  # fmt: skip
        """Members by rank, highest first."""
        return self._plan(key, version, [], "zrevrange", start, end, withscores=withscores,
                          score_cast_func=score_cast_func, read=self._members(withscores))  # fmt: skip

    def _plan_zrangebyscore(self, key: Any, min: Any, max: Any, start: int | None = None,
                            num: int | None = None, withscores: bool = False,
                            score_cast_func: type = float, version: Any = None) -> KeyPlan:  # fmt: skip
        """Members scoring between ``min`` and ``max``."""
        return self._plan(key, version, [], "zrangebyscore", min, max, start=start, num=num,
                          withscores=withscores, score_cast_func=score_cast_func,
                          read=self._members(withscores))  # fmt: skip

    def _plan_zrevrangebyscore(self, key: Any, max: Any, min: Any, start: int | None = None,
                               num: int | None = None, withscores: bool = False,
                               score_cast_func: type = float, version: Any = None) -> KeyPlan:  # fmt: skip
        """Members scoring between ``max`` and ``min``, highest first."""
        return self._plan(key, version, [], "zrevrangebyscore", max, min, start=start, num=num,
                          withscores=withscores, score_cast_func=score_cast_func,
                          read=self._members(withscores))  # fmt: skip

    # -- the operations: each plan run on the selector engine, and its async twin -----------

    hset = run_plan(_plan_hset)
    ahset = arun_plan(_plan_hset)
    hdel = run_plan(_plan_hdel)
    ahdel = arun_plan(_plan_hdel)
    hlen = run_plan(_plan_hlen)
    ahlen = arun_plan(_plan_hlen)
    hkeys = run_plan(_plan_hkeys)
    ahkeys = arun_plan(_plan_hkeys)
    hexists = run_plan(_plan_hexists)
    ahexists = arun_plan(_plan_hexists)
    sadd = run_plan(_plan_sadd)
    asadd = arun_plan(_plan_sadd)
    srem = run_plan(_plan_srem)
    asrem = arun_plan(_plan_srem)
    scard = run_plan(_plan_scard)
    ascard = arun_plan(_plan_scard)
    smembers = run_plan(_plan_smembers)
    asmembers = arun_plan(_plan_smembers)
    sismember = run_plan(_plan_sismember)
    asismember = arun_plan(_plan_sismember)
    smismember = run_plan(_plan_smismember)
    asmismember = arun_plan(_plan_smismember)
    spop = run_plan(_plan_spop)
    aspop = arun_plan(_plan_spop)
    srandmember = run_plan(_plan_srandmember)
    asrandmember = arun_plan(_plan_srandmember)
    smove = run_plan(_plan_smove)
    asmove = arun_plan(_plan_smove)
    sscan = run_plan(_plan_sscan)
    asscan = arun_plan(_plan_sscan)
    sdiff = run_plan(_plan_sdiff)
    asdiff = arun_plan(_plan_sdiff)
    sinter = run_plan(_plan_sinter)
    asinter = arun_plan(_plan_sinter)
    sunion = run_plan(_plan_sunion)
    asunion = arun_plan(_plan_sunion)
    sdiffstore = run_plan(_plan_sdiffstore)
    asdiffstore = arun_plan(_plan_sdiffstore)
    sinterstore = run_plan(_plan_sinterstore)
    asinterstore = arun_plan(_plan_sinterstore)
    sunionstore = run_plan(_plan_sunionstore)
    asunionstore = arun_plan(_plan_sunionstore)
    zadd = run_plan(_plan_zadd)
    azadd = arun_plan(_plan_zadd)
    zcard = run_plan(_plan_zcard)
    azcard = arun_plan(_plan_zcard)
    zcount = run_plan(_plan_zcount)
    azcount = arun_plan(_plan_zcount)
    zincrby = run_plan(_plan_zincrby)
    azincrby = arun_plan(_plan_zincrby)
    zscore = run_plan(_plan_zscore)
    azscore = arun_plan(_plan_zscore)
    zrank = run_plan(_plan_zrank)
    azrank = arun_plan(_plan_zrank)
    zrem = run_plan(_plan_zrem)
    azrem = arun_plan(_plan_zrem)
    zremrangebyscore = run_plan(_plan_zremrangebyscore)
    azremrangebyscore = arun_plan(_plan_zremrangebyscore)
    zpopmax = run_plan(_plan_zpopmax)
    azpopmax = arun_plan(_plan_zpopmax)
    zpopmin = run_plan(_plan_zpopmin)
    azpopmin = arun_plan(_plan_zpopmin)
    zrange = run_plan(_plan_zrange)
    azrange = arun_plan(_plan_zrange)
    zrevrange = run_plan(_plan_zrevrange)
    azrevrange = arun_plan(_plan_zrevrange)
    zrangebyscore = run_plan(_plan_zrangebyscore)
    azrangebyscore = arun_plan(_plan_zrangebyscore)
    zrevrangebyscore = run_plan(_plan_zrevrangebyscore)
    azrevrangebyscore = arun_plan(_plan_zrevrangebyscore)


#: Marks a key that is already made (a multi-key command made them all first).
_MADE = object()
