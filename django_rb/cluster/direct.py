"""Direct methods for the hot commands of a mapping client: straight to the host's buffer.

redis-py's methods reach ``execute_command`` through keyword handling, ``*args`` packing and
(in django_rb) the key search of the router; for one HGET that is most of its cost inside
``map()``. The plain forms of the commands apps issue thousands of times per block (HGET, HSET,
HINCRBY, INCRBY, EXPIRE, EVALSHA, ZADD, ...) are written here as the wire words they become,
routed on the key's bytes; any other form (options, timedeltas, a key that is not str or
bytes) goes through redis-py's own method, so behaviour never differs, only speed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis import Redis
from redis.commands.helpers import list_or_args

from .promise import Promise

#: redis-py's own methods, for the forms not written here (untyped: its overloads describe
#: redis-py's clients, whose results are not promises)
_REDIS_PY: Any = Redis


class DirectCommands:
    """Mixed into a client before ``Redis``; the client provides ``_keyed`` and ``_evalsha1``."""

    def _keyed(self, name: str, head: bytes, key: Any, rest: tuple[Any, ...]) -> Promise:
        """Queue ``NAME key *rest`` on the key's host."""
        raise NotImplementedError

    def _evalsha1(self, sha: Any, key: Any, args: tuple[Any, ...]) -> Promise:
        """Queue ``EVALSHA sha 1 key *args`` on the key's host."""
        raise NotImplementedError

    # -- hashes ---------------------------------------------------------------------------------

    def hget(self, name: Any, key: Any) -> Promise:
        """HGET."""
        return self._keyed("HGET", b"HGET", name, (key,))

    def hset(
        self,
        name: Any,
        key: Any = None,
        value: Any = None,
        mapping: Mapping[Any, Any] | None = None,
        items: list[Any] | None = None,
    ) -> Promise:
        """HSET of one field directly; other forms through redis-py."""
        if key is not None and mapping is None and items is None:
            return self._keyed("HSET", b"HSET", name, (key, value))
        return _REDIS_PY.hset(self, name, key, value, mapping, items)

    def hincrby(self, name: Any, key: Any, amount: int = 1) -> Promise:
        """HINCRBY."""
        return self._keyed("HINCRBY", b"HINCRBY", name, (key, amount))

    def hmget(self, name: Any, keys: Any, *args: Any) -> Promise:
        """HMGET of a list of fields (or fields as arguments)."""
        return self._keyed("HMGET", b"HMGET", name, tuple(list_or_args(keys, args)))

    def hdel(self, name: Any, *keys: Any) -> Promise:
        """HDEL."""
        return self._keyed("HDEL", b"HDEL", name, keys)

    # -- counters and expiry --------------------------------------------------------------------

    def incrby(self, name: Any, amount: int = 1) -> Promise:
        """INCRBY (``incr`` is the same command in redis-py)."""
        return self._keyed("INCRBY", b"INCRBY", name, (amount,))

    incr = incrby

    def decrby(self, name: Any, amount: int = 1) -> Promise:
        """DECRBY (``decr`` too)."""
        return self._keyed("DECRBY", b"DECRBY", name, (amount,))

    decr = decrby

    def expire(self, name: Any, time: Any, nx: bool = False, xx: bool = False,
               gt: bool = False, lt: bool = False) -> Promise:  # fmt: skip
        """EXPIRE with whole seconds directly; timedeltas and flags through redis-py."""
        if type(time) is int and not (nx or xx or gt or lt):
            return self._keyed("EXPIRE", b"EXPIRE", name, (time,))
        return _REDIS_PY.expire(self, name, time, nx, xx, gt, lt)

    def expireat(self, name: Any, when: Any, nx: bool = False, xx: bool = False,
                 gt: bool = False, lt: bool = False) -> Promise:  # fmt: skip
        """EXPIREAT with a unix time directly; datetimes and flags through redis-py."""
        if type(when) is int and not (nx or xx or gt or lt):
            return self._keyed("EXPIREAT", b"EXPIREAT", name, (when,))
        return _REDIS_PY.expireat(self, name, when, nx, xx, gt, lt)

    def setex(self, name: Any, time: Any, value: Any) -> Promise:
        """SETEX with whole seconds directly; timedeltas through redis-py."""
        if type(time) is int:
            return self._keyed("SETEX", b"SETEX", name, (time, value))
        return _REDIS_PY.setex(self, name, time, value)

    # -- sets, sorted sets, hyperloglogs ----------------------------------------------------------

    def sadd(self, name: Any, *values: Any) -> Promise:
        """SADD."""
        return self._keyed("SADD", b"SADD", name, values)

    def srem(self, name: Any, *values: Any) -> Promise:
        """SREM."""
        return self._keyed("SREM", b"SREM", name, values)

    def sismember(self, name: Any, value: Any) -> Promise:
        """SISMEMBER."""
        return self._keyed("SISMEMBER", b"SISMEMBER", name, (value,))

    def zadd(self, name: Any, mapping: Mapping[Any, Any], nx: bool = False, xx: bool = False,
             ch: bool = False, incr: bool = False, gt: bool = False,
             lt: bool = False) -> Promise:  # fmt: skip
        """ZADD of members and scores directly; any flag through redis-py."""
        if mapping and not (nx or xx or ch or incr or gt or lt):
            pairs: list[Any] = []
            for member, score in mapping.items():
                pairs += (score, member)
            return self._keyed("ZADD", b"ZADD", name, tuple(pairs))
        return _REDIS_PY.zadd(self, name, mapping, nx, xx, ch, incr, gt, lt)

    def zincrby(self, name: Any, amount: float, value: Any) -> Promise:
        """ZINCRBY."""
        return self._keyed("ZINCRBY", b"ZINCRBY", name, (amount, value))

    def zscore(self, name: Any, value: Any) -> Promise:
        """ZSCORE."""
        return self._keyed("ZSCORE", b"ZSCORE", name, (value,))

    def pfadd(self, name: Any, *values: Any) -> Promise:
        """PFADD."""
        return self._keyed("PFADD", b"PFADD", name, values)

    # -- lists ------------------------------------------------------------------------------------

    def lpush(self, name: Any, *values: Any) -> Promise:
        """LPUSH."""
        return self._keyed("LPUSH", b"LPUSH", name, values)

    def rpush(self, name: Any, *values: Any) -> Promise:
        """RPUSH."""
        return self._keyed("RPUSH", b"RPUSH", name, values)

    # -- scripts ----------------------------------------------------------------------------------

    def evalsha(self, sha: Any, numkeys: int, *keys_and_args: Any) -> Promise:
        """EVALSHA of a one-key script directly (the rate limiter's and tsdb's kind); other key
        counts through the general path, which checks that all keys share a host."""
        if numkeys == 1 and type(numkeys) is int and keys_and_args:
            return self._evalsha1(sha, keys_and_args[0], keys_and_args[1:])
        return _REDIS_PY.evalsha(self, sha, numkeys, *keys_and_args)
