"""RBCache: Django's cache API over a sharded set of Redis nodes.

Settings::

    CACHES = {
        "default": {
            "BACKEND": "django_rb.cache.RBCache",
            # a cluster name from RB_CLUSTERS, or node URLs (a list or a comma-separated string)
            "LOCATION": "default",
            "OPTIONS": {"SERIALIZER": "pickle", "COMPRESSOR": "zstd", "IGNORE_EXCEPTIONS": True},
        }
    }

This layer does what Django's backends do (keys, versions, validation, timeout conventions)
and leaves values and I/O to ``RBCacheClient``. docs/cache.md lists every option.
"""

from __future__ import annotations

import atexit
import re
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    MEMCACHE_MAX_KEY_LENGTH,
    BaseCache,
    default_key_func,
)
from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import cached_property

from django_rb import get_cluster

from .client import KeyPlan, RBCacheClient, abuild
from .conf import DEFAULT_SCAN_COUNT, CacheSettings, first_error_text, read_cache_settings
from .structures import StructuresMixin

_GLOB_SPECIAL = re.compile(r"([*?[\]\\])")

#: What Django's validate_key warns about besides length (memcached's forbidden characters).
_MEMCACHE_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")

# Clusters built from LOCATION URLs, shared by every thread's instance of the same cache
# (Django makes one backend instance per thread; each having its own pools would multiply the
# connections by the number of threads).
_own_clusters: dict[str, Any] = {}
_own_clusters_lock = threading.Lock()


@atexit.register
def _close_own_clusters() -> None:
    """Like get_cluster()'s clusters, the caches' own ones close their pools at exit."""
    with _own_clusters_lock:
        for cluster in _own_clusters.values():
            cluster.disconnect_pools()


def glob_escape(text: str) -> str:
    """Escape SCAN/KEYS glob characters so that ``text`` matches only itself."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def user_keys(batch: dict[int, list[Any]], reverse: Any) -> Iterator[str]:
    """The user keys of one SCAN round's ``{host_id: stored keys}``."""
    for keys in batch.values():
        for key in keys:
            yield reverse(key.decode() if isinstance(key, bytes) else key)


def default_reverse_key(key: str) -> str:
    """The user's key back from ``prefix:version:key`` (Django's default key function)."""
    return key.split(":", 2)[2]


class RBCache(StructuresMixin, BaseCache):
    """Django cache backend sharding keys over many Redis nodes through django_rb's core."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(params)
        # A settings mistake never raises here: Django's own checks build every cache, so
        # raising would crash `manage.py check` before it could report the mistake. The
        # first use raises it instead, with the check's words and id.
        config, problems = read_cache_settings(server, params.get("OPTIONS"))
        self._server, self._options = server, params.get("OPTIONS")
        self._config = config
        self._setup_error = first_error_text(problems)
        self.reverse_key_func = config.reverse_key_func if config is not None else None
        self._scan_count = config.scan_count if config is not None else DEFAULT_SCAN_COUNT

    def _settings(self) -> CacheSettings:
        """The validated settings; ImproperlyConfigured (as the check says it) if they are bad."""
        if self._config is None:
            raise ImproperlyConfigured(self._setup_error)
        return self._config

    # -- the cluster and the client --------------------------------------------------------

    @property
    def cluster(self) -> Any:
        """The core Cluster this cache talks through.

        A named one comes from ``get_cluster`` on every call (a cheap lookup), so that the
        cache follows RB_CLUSTERS when a test overrides it; one built from URLs is kept.
        """
        name = self._settings().cluster_name
        if name is not None:
            return get_cluster(name)
        return self._own_cluster

    @cached_property
    def _own_cluster(self) -> Any:
        """The cluster of the LOCATION URLs, shared with every instance of the same cache."""
        from django_rb.cluster import Cluster

        config = self._settings()
        router, host_defaults = config.router_cls, config.host_defaults
        # the identity of a shared cluster; it may hold a password, so it is never shown
        identity = repr((config.hosts, sorted(config.pool_options.items()), config.pool_cls,
                         router, sorted(host_defaults.items())))  # fmt: skip
        with _own_clusters_lock:
            cluster = _own_clusters.get(identity)
            if cluster is None:
                # once per process: what only building it shows (a pool option typo, ...)
                error = first_error_text(
                    read_cache_settings(self._server, self._options, deep=True)[1]
                )
                if error is not None:
                    raise ImproperlyConfigured(error)
                cluster = Cluster(
                    config.hosts,
                    host_defaults=host_defaults or None,
                    pool_cls=config.pool_cls,
                    pool_options=config.pool_options or None,
                    router_cls=router,
                )
                _own_clusters[identity] = cluster
        return cluster

    @cached_property
    def _cache(self) -> RBCacheClient:
        config = self._settings()
        return RBCacheClient(
            lambda: self.cluster,
            serializer=config.serializer,
            compressor=config.compressor,
            compress_min_length=config.compress_min_length,
            ignore_exceptions=config.ignore_exceptions,
            log_ignored_exceptions=config.log_ignored_exceptions,
            signer=config.signer,
        )

    def make_and_validate_key(self, key: Any, version: Any = None) -> str:
        """Django's key, with Django's warnings: ``validate_key`` runs only when a warning is
        due (or a subclass has its own), so the common key costs one regex search."""
        made = self.make_key(key, version=version)
        if (
            len(made) > MEMCACHE_MAX_KEY_LENGTH
            or _MEMCACHE_BAD_CHARS.search(made)
            or type(self).validate_key is not BaseCache.validate_key
        ):
            self.validate_key(made)
        return made

    def make_and_validate_keys(self, keys: Iterable[Any], version: Any = None) -> dict[str, Any]:
        """``{made key: key}`` with Django's key warnings, checked for the whole batch at once.

        Same warnings as calling ``make_and_validate_key`` per key (that is what happens when
        one is due, or when a subclass has its own ``validate_key``); this only skips a regex
        call per key in the common case, which for 1000 keys costs more than the round trip.
        """
        make_key = self.make_key
        if self.key_func is default_key_func and type(self).make_key is BaseCache.make_key:
            # Django's default key, "prefix:version:key", without a call per key
            head = f"{self.key_prefix}:{self.version if version is None else version}:"
            made = {head + k if type(k) is str else make_key(k, version): k for k in keys}
        else:
            made = {make_key(key, version): key for key in keys}
        if made and (
            type(self).validate_key is not BaseCache.validate_key
            or max(map(len, made)) > MEMCACHE_MAX_KEY_LENGTH
            or _MEMCACHE_BAD_CHARS.search("".join(made))
        ):
            for key in made:
                self.validate_key(key)
        return made

    def get_backend_timeout(self, timeout: Any = DEFAULT_TIMEOUT) -> float | None:
        """Seconds for Redis (fractions kept), None for never; 0 for "expire now"."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return None if timeout is None else max(0, timeout)

    # -- Django's cache API ----------------------------------------------------------------

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._cache.add(key, value, self.get_backend_timeout(timeout))

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        return self._cache.get(key, default)

    def set(  # type: ignore[override]
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None,
        nx: bool = False, xx: bool = False,
    ) -> bool:  # fmt: skip
        """Store the value; False only when its node was unavailable (IGNORE_EXCEPTIONS).

        django-redis's ``nx=True`` stores only a new key and ``xx=True`` only over an
        existing one; both then say whether they stored it.
        """
        key = self.make_and_validate_key(key, version=version)
        if nx or xx:
            return self._cache.run_key(self._conditional_set_plan(key, value, timeout, nx))
        return self._cache.set(key, value, self.get_backend_timeout(timeout))

    def _conditional_set_plan(self, key: str, value: Any, timeout: Any, nx: bool) -> KeyPlan:
        build = self._cache.add_plan if nx else self._cache.replace_plan
        return build(key, value, self.get_backend_timeout(timeout))

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._cache.touch(key, self.get_backend_timeout(timeout))

    def delete(self, key: Any, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._cache.delete(key)

    def has_key(self, key: Any, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._cache.has_key(key)

    def incr(
        self, key: Any, delta: int = 1, version: Any = None, ignore_key_check: bool = False
    ) -> int:
        """Atomic on the key's node. ValueError if the key is missing (unless
        ``ignore_key_check``, django-redis's: then a missing key starts from 0);
        ``NotAnInteger`` (a redis ResponseError and a ValueError) for a non-integer value."""
        made = self.make_and_validate_key(key, version=version)
        return self._cache.incr(made, delta, name=key, must_exist=not ignore_key_check)

    def get_many(self, keys: Iterable[Any], version: Any = None) -> dict[Any, Any]:
        """One parallel round over the nodes the keys live on."""
        key_map = self.make_and_validate_keys(keys, version=version)
        if not key_map:
            return {}
        found = self._cache.get_many(key_map)
        return {key_map[made]: value for made, value in found.items()}

    def set_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> list[Any]:
        """One parallel round; returns the keys that could not be stored (unavailable nodes)."""
        if not data:
            return []
        key_map = self.make_and_validate_keys(data, version=version)
        safe_data = {made: data[key] for made, key in key_map.items()}
        failed = self._cache.set_many(safe_data, self.get_backend_timeout(timeout))
        return [key_map[made] for made in failed]

    def delete_many(self, keys: Iterable[Any], version: Any = None) -> None:
        """One parallel round (one DEL per node)."""
        made = self.make_and_validate_keys(keys, version=version)
        if made:
            self._cache.delete_many(made)

    def clear(self) -> bool:
        """FLUSHDB of this cache's db on every node, all in parallel."""
        return self._cache.clear()

    def close(self, **kwargs: Any) -> None:
        """Nothing to do: connections stay pooled for the next request (as with RedisCache)."""

    # -- django-redis extras ---------------------------------------------------------------

    def ttl(self, key: Any, version: Any = None) -> int | None:
        """Seconds until ``key`` expires; None if it never does; 0 if it does not exist."""
        return self._cache.ttl(self.make_and_validate_key(key, version=version))

    def pttl(self, key: Any, version: Any = None) -> int | None:
        """Like ``ttl`` in milliseconds."""
        return self._cache.pttl(self.make_and_validate_key(key, version=version))

    def expire(self, key: Any, timeout: Any, version: Any = None) -> bool:
        """Set a new timeout in seconds (None: never expire); True if the key exists."""
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        if timeout is None:
            return self._cache.touch(key, None)
        return self._cache.expire(key, timeout)

    def persist(self, key: Any, version: Any = None) -> bool:
        """Remove the key's timeout; True if it had one (Redis PERSIST)."""
        return self._cache.persist(self.make_and_validate_key(key, version=version))

    def _pexpire_plan(self, key: Any, timeout: Any, version: Any) -> KeyPlan:
        if timeout is DEFAULT_TIMEOUT:  # as django-redis: the default timeout, read as ms
            timeout = self.default_timeout
        made = self.make_and_validate_key(key, version=version)
        return self._cache.pexpire_plan(made, int(timeout))

    def pexpire(self, key: Any, timeout: Any, version: Any = None) -> bool:
        """A new timeout in milliseconds; True if the key exists (django-redis's)."""
        return self._cache.run_key(self._pexpire_plan(key, timeout, version))

    def expire_at(self, key: Any, when: Any, version: Any = None) -> bool:
        """Expire at ``when``: a datetime or a unix time in seconds; True if the key exists."""
        made = self.make_and_validate_key(key, version=version)
        return self._cache.run_key(self._cache.expire_at_plan(made, when))

    def pexpire_at(self, key: Any, when: Any, version: Any = None) -> bool:
        """Expire at ``when``: a datetime or a unix time in milliseconds."""
        made = self.make_and_validate_key(key, version=version)
        return self._cache.run_key(self._cache.expire_at_plan(made, when, milliseconds=True))

    def get_client(self, key: Any, version: Any = None) -> Any:
        """A redis-py client on the node that holds this cache key (django-redis's
        ``get_redis_connection``, for one node): raw commands, your own encoding."""
        made = self.make_and_validate_key(key, version=version)
        return self.cluster.get_local_client_for_key(made)

    def make_pattern(self, pattern: str, version: Any = None) -> str:
        """A SCAN pattern over this cache's keys: prefix and version match only themselves."""
        if version is None:
            version = self.version
        return self.key_func(pattern, glob_escape(self.key_prefix), glob_escape(str(version)))

    def iter_keys(
        self, pattern: str, version: Any = None, itersize: int | None = None
    ) -> Iterator[str]:
        """The user keys matching a glob ``pattern``, lazily; SCAN on every node in parallel."""
        search = self.make_pattern(pattern, version=version)
        reverse = self._reverse_key(version)
        for batch in self._cache.scan(search, itersize or self._scan_count):
            yield from user_keys(batch, reverse)

    def _reverse_key(self, version: Any) -> Any:
        """Stored key -> user key: REVERSE_KEY_FUNCTION if given; with Django's default
        KEY_FUNCTION, strip the known ``prefix:version:`` (a prefix may hold colons)."""
        if self.reverse_key_func is not None:
            return self.reverse_key_func
        if self.key_func is default_key_func:
            head = len(self.make_key("", version=version))
            return lambda key: key[head:]
        return default_reverse_key

    def keys(self, pattern: str, version: Any = None) -> list[str]:
        """All matching user keys as a list (SCAN, never KEYS)."""
        return list(self.iter_keys(pattern, version=version))

    def delete_pattern(self, pattern: str, version: Any = None, itersize: int | None = None) -> int:
        """Delete every key matching ``pattern``; returns how many were deleted."""
        search = self.make_pattern(pattern, version=version)
        deleted = 0
        for batch in self._cache.scan(search, itersize or self._scan_count):
            deleted += self._cache.delete_found(batch)
        return deleted

    def lock(self, key: Any, version: Any = None, timeout: float | None = None,
             sleep: float = 0.1, blocking: bool = True, blocking_timeout: float | None = None,
             thread_local: bool = True) -> Any:  # fmt: skip
        """A redis-py Lock stored at this cache key, on the node that key maps to."""
        return self._cache.lock(
            self.make_and_validate_key(key, version=version),
            timeout=timeout,
            sleep=sleep,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
            thread_local=thread_local,
        )

    # -- async: natively on the asyncio engine, no thread hop; the same plans as the sync
    # methods (django_rb.cache.client), only the engine call differs. Django's BaseCache
    # builds aget_or_set, adecr, aincr_version and adecr_version from these.

    async def aadd(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return await self._cache.aadd(key, value, self.get_backend_timeout(timeout))

    async def aget(self, key: Any, default: Any = None, version: Any = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        return await self._cache.aget(key, default)

    async def aset(  # type: ignore[override]
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None,
        nx: bool = False, xx: bool = False,
    ) -> bool:  # fmt: skip
        key = self.make_and_validate_key(key, version=version)
        if nx or xx:
            plan = await abuild(self._conditional_set_plan, key, value, timeout, nx)
            return await self._cache.arun_key(plan)
        return await self._cache.aset(key, value, self.get_backend_timeout(timeout))

    async def atouch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return await self._cache.atouch(key, self.get_backend_timeout(timeout))

    async def adelete(self, key: Any, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return await self._cache.adelete(key)

    async def ahas_key(self, key: Any, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return await self._cache.ahas_key(key)

    async def aincr(
        self, key: Any, delta: int = 1, version: Any = None, ignore_key_check: bool = False
    ) -> int:
        made = self.make_and_validate_key(key, version=version)
        return await self._cache.aincr(made, delta, name=key, must_exist=not ignore_key_check)

    async def aget_many(self, keys: Iterable[Any], version: Any = None) -> dict[Any, Any]:
        """One parallel round, awaited (Django's BaseCache would await one aget per key)."""
        key_map = self.make_and_validate_keys(keys, version=version)
        if not key_map:
            return {}
        found = await self._cache.aget_many(key_map)
        return {key_map[made]: value for made, value in found.items()}

    async def aset_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> list[Any]:
        if not data:
            return []
        key_map = self.make_and_validate_keys(data, version=version)
        safe_data = {made: data[key] for made, key in key_map.items()}
        failed = await self._cache.aset_many(safe_data, self.get_backend_timeout(timeout))
        return [key_map[made] for made in failed]

    async def adelete_many(self, keys: Iterable[Any], version: Any = None) -> None:
        made = self.make_and_validate_keys(keys, version=version)
        if made:
            await self._cache.adelete_many(made)

    async def aclear(self) -> bool:
        return await self._cache.aclear()

    async def attl(self, key: Any, version: Any = None) -> int | None:
        return await self._cache.attl(self.make_and_validate_key(key, version=version))

    async def apttl(self, key: Any, version: Any = None) -> int | None:
        return await self._cache.apttl(self.make_and_validate_key(key, version=version))

    async def aexpire(self, key: Any, timeout: Any, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        if timeout is None:
            return await self._cache.atouch(key, None)
        return await self._cache.aexpire(key, timeout)

    async def apersist(self, key: Any, version: Any = None) -> bool:
        return await self._cache.apersist(self.make_and_validate_key(key, version=version))

    async def apexpire(self, key: Any, timeout: Any, version: Any = None) -> bool:
        return await self._cache.arun_key(self._pexpire_plan(key, timeout, version))

    async def aexpire_at(self, key: Any, when: Any, version: Any = None) -> bool:
        made = self.make_and_validate_key(key, version=version)
        return await self._cache.arun_key(self._cache.expire_at_plan(made, when))

    async def apexpire_at(self, key: Any, when: Any, version: Any = None) -> bool:
        made = self.make_and_validate_key(key, version=version)
        return await self._cache.arun_key(self._cache.expire_at_plan(made, when, milliseconds=True))

    # SCAN-based: the same SCAN rounds as the sync methods, each awaited (ScanWalk).

    async def aiter_keys(
        self, pattern: str, version: Any = None, itersize: int | None = None
    ) -> AsyncIterator[str]:
        """Async ``iter_keys``: one SCAN round over every node per batch, awaited."""
        search = self.make_pattern(pattern, version=version)
        reverse = self._reverse_key(version)
        async for batch in self._cache.ascan(search, itersize or self._scan_count):
            for key in user_keys(batch, reverse):
                yield key

    async def akeys(self, pattern: str, version: Any = None) -> list[str]:
        return [key async for key in self.aiter_keys(pattern, version=version)]

    async def adelete_pattern(
        self, pattern: str, version: Any = None, itersize: int | None = None
    ) -> int:
        search = self.make_pattern(pattern, version=version)
        deleted = 0
        async for batch in self._cache.ascan(search, itersize or self._scan_count):
            deleted += await self._cache.adelete_found(batch)
        return deleted
