"""RB_CLUSTERS and RBCache LOCATION: the one place where django_rb reads its settings.

Everything else (``get_cluster``, the system checks, the management commands) asks this module,
so a setting means the same thing everywhere. Reading a cluster entry yields either a
``ClusterConfig`` or a list of ``Problem``s; the checks turn problems into Django check
messages, ``get_cluster`` raises the first one as ``ImproperlyConfigured``. Host strings and
dicts are parsed by ``django_rb.cluster.hosts`` only; nothing here takes a URL apart.

Settings are read at call time, never cached, so ``override_settings`` is always honoured.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_rb.cluster.errors import BadHostSetup
from django_rb.cluster.hosts import (
    ENCODE_IN_PASSWORDS,
    HostInfo,
    assert_gapless,
    parse_hosts,
    split_host_urls,
)

if TYPE_CHECKING:
    from django_rb.cluster import Cluster

#: The Django setting holding all clusters.
SETTING = "RB_CLUSTERS"

#: Keys a cluster entry may have.
CLUSTER_KEYS = ("hosts", "router", "router_options", "pool_options", "host_defaults",
                "is_redis_cluster", "read_from_replicas")  # fmt: skip

#: Keys of an rb-style entry that make no sense with ``"is_redis_cluster": True``.
NOT_FOR_REDIS_CLUSTER = ("router", "router_options")

#: Short router names; anything else with a dot is an import path to a BaseRouter subclass.
ROUTER_ALIASES = {
    "partition": "django_rb.cluster.PartitionRouter",
    "consistent_hashing": "django_rb.cluster.ConsistentHashingRouter",
}

#: rb's Cluster default, so that keys placed by an rb deployment are found where they are.
DEFAULT_ROUTER = "partition"

#: The cache backend whose LOCATION names a cluster (or lists host URLs).
CACHE_BACKEND = "django_rb.cache.RBCache"

#: The cluster ``get_cluster()`` returns when no name is given.
DEFAULT_CLUSTER = "default"

_MISSING = object()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings; ``code`` is ``E0xx`` (error) or ``W0xx`` (warning)."""

    code: str
    message: str
    hint: str
    obj: str = SETTING

    @property
    def is_error(self) -> bool:
        return self.code.startswith("E")

    def __str__(self) -> str:
        return f"{self.obj}: ({self.code}) {self.message} {self.hint}"


@dataclass(frozen=True)
class ClusterConfig:
    """A validated RB_CLUSTERS entry, ready to become a ``Cluster``."""

    name: str
    hosts: Any = field(repr=False)  # as written in settings: may hold passwords
    parsed_hosts: dict[int, HostInfo] = field(repr=False)
    router_cls: type
    router_options: dict[str, Any]
    pool_options: dict[str, Any] = field(repr=False)
    host_defaults: dict[str, Any] = field(repr=False)
    #: a Redis Cluster (``"is_redis_cluster": True``): hosts are seeds, slots route keys
    is_redis_cluster: bool = False
    read_from_replicas: bool = False

    def __repr__(self) -> str:
        addresses = ", ".join(info.address for _, info in sorted(self.parsed_hosts.items()))
        return (
            f"<ClusterConfig {self.name!r} router={self.router_cls.__name__} hosts=[{addresses}]>"
        )

    def build(self) -> Cluster:
        """A new Cluster; the caller owns its pools (see ``django_rb.get_cluster``)."""
        from django_rb.cluster import Cluster, RedisCluster  # noqa: PLC0415  (first use only)

        if self.is_redis_cluster:
            return RedisCluster(
                self.hosts,
                pool_options=self.pool_options or None,
                host_defaults=self.host_defaults or None,
                read_from_replicas=self.read_from_replicas,
            )
        return Cluster(
            self.hosts,
            host_defaults=self.host_defaults or None,
            pool_options=self.pool_options or None,
            router_cls=self.router_cls,
            router_options=self.router_options or None,
        )


@dataclass(frozen=True)
class CacheLocation:
    """What an RBCache LOCATION means: a cluster by name, or its own hosts (URLs)."""

    cluster_name: str | None = None
    hosts: Any = None


# -- reading RB_CLUSTERS ----------------------------------------------------------------------


def clusters_setting() -> Any:
    """The raw RB_CLUSTERS value (``None`` when it is not set)."""
    return getattr(settings, SETTING, None)


def cluster_names() -> list[str]:
    """Names of the configured clusters, in settings order (empty if the setting is bad)."""
    value = clusters_setting()
    if not isinstance(value, Mapping):
        return []
    return [name for name in value if isinstance(name, str)]


def get_cluster_config(name: str = DEFAULT_CLUSTER) -> ClusterConfig:
    """The validated entry ``name``; ``ImproperlyConfigured`` saying what is wrong otherwise."""
    value = clusters_setting()
    top = _setting_problems(value)
    if top:
        raise ImproperlyConfigured(explain(top[0]))
    if name not in value:
        names = ", ".join(repr(n) for n in cluster_names()) or "none"
        raise ImproperlyConfigured(
            f"No cluster named {name!r} in {SETTING}; configured clusters: {names}."
        )
    config, problems = read_cluster(name, value[name])
    errors = [p for p in problems if p.is_error]
    if errors or config is None:
        raise ImproperlyConfigured(explain(errors[0]))
    return config


def settings_problems() -> list[Problem]:
    """Everything wrong with RB_CLUSTERS, for the system checks."""
    value = clusters_setting()
    problems = _setting_problems(value)
    if problems:
        return problems
    for name, entry in value.items():
        problems.extend(read_cluster(name, entry)[1])
    return problems


def _setting_problems(value: Any) -> list[Problem]:
    if value is None:
        return [
            Problem(
                "W001",
                f"{SETTING} is not set, so django_rb has no cluster to connect to.",
                f'Add {SETTING} = {{"default": {{"hosts": ["redis://127.0.0.1:7000/0"]}}}} '
                "to your settings (or silence django_rb.W001 if only URL-based caches are used).",
            )
        ]
    if not isinstance(value, Mapping):
        return [
            Problem(
                "E001",
                f"{SETTING} must be a dict of cluster name to cluster settings, "
                f"not {type(value).__name__}.",
                f'Write it as {SETTING} = {{"default": {{"hosts": [...]}}}}.',
            )
        ]
    if not value:
        return [
            Problem(
                "W001",
                f"{SETTING} is empty, so django_rb has no cluster to connect to.",
                f'Add a cluster, e.g. {SETTING} = {{"default": {{"hosts": [...]}}}}.',
            )
        ]
    return []


def read_cluster(
    name: Any, entry: Any, where: str | None = None, build: bool = True
) -> tuple[ClusterConfig | None, list[Problem]]:
    """Validate one RB_CLUSTERS entry: its config if usable, and every problem found.

    ``where`` names it in messages (an RBCache with URLs reads its OPTIONS as such an entry);
    ``build`` also builds its router and one unconnected connection, to catch option typos.
    """
    where = where or f"{SETTING}[{name!r}]"
    if not isinstance(name, str):
        problem = f"Cluster names must be strings, not {type(name).__name__}."
    elif not isinstance(entry, Mapping):
        problem = f"The cluster settings must be a dict, not {type(entry).__name__}."
    else:
        problem = None
    if problem is not None:
        hint = 'Each cluster is "name": {"hosts": [...], "router": ..., ...}.'
        return None, [Problem("E002", problem, hint, where)]
    problems: list[Problem] = []
    unknown = sorted(str(key) for key in entry if key not in CLUSTER_KEYS)
    if unknown:
        suggestions = [
            f"{key!r} -> {close[0]!r}"
            for key in unknown
            if (close := difflib.get_close_matches(key, CLUSTER_KEYS, n=1))
        ]
        problems.append(
            Problem(
                "E003",
                f"Unknown cluster settings: {', '.join(unknown)}.",
                f"Allowed: {', '.join(CLUSTER_KEYS)}."
                + (f" Did you mean {', '.join(suggestions)}?" if suggestions else ""),
                where,
            )
        )

    if entry.get("is_redis_cluster") not in (None, False):
        return _read_redis_cluster(name, entry, where, problems)
    if entry.get("read_from_replicas"):
        problems.append(
            Problem(
                "E305",
                '"read_from_replicas" is for Redis Cluster entries only.',
                'Add "is_redis_cluster": True, or remove it.',
                where,
            )  # fmt: skip
        )
    host_defaults = _dict_option(entry, "host_defaults", "E013", where, problems)
    pool_options = _dict_option(entry, "pool_options", "E012", where, problems)
    router_options = _dict_option(entry, "router_options", "E011", where, problems)
    router_cls = _router_class(entry.get("router") or DEFAULT_ROUTER, where, problems)
    hosts = entry.get("hosts")
    parsed = _hosts(hosts, host_defaults, where, problems)

    if problems or parsed is None or router_cls is None:
        return None, problems
    config = ClusterConfig(
        name=name,
        hosts=hosts,
        parsed_hosts=parsed,
        router_cls=router_cls,
        router_options=router_options,
        pool_options=pool_options,
        host_defaults=host_defaults,
    )
    if build:
        _try_build(config, where, problems)
    if any(p.is_error for p in problems):
        return None, problems
    return config, problems


def _read_redis_cluster(
    name: str, entry: Mapping[str, Any], where: str, problems: list[Problem]
) -> tuple[ClusterConfig | None, list[Problem]]:
    """An entry with ``"is_redis_cluster"``: seeds, no router, db 0 only (ids E301-E304)."""
    from django_rb.cluster import SlotRouter  # noqa: PLC0415

    for key in ("is_redis_cluster", "read_from_replicas"):
        if key in entry and not isinstance(entry[key], bool):
            problems.append(
                Problem(
                    "E301",
                    f'"{key}" must be True or False, not {entry[key]!r}.',
                    f'Write "{key}": True.',
                    where,
                )  # fmt: skip
            )
    given = [key for key in NOT_FOR_REDIS_CLUSTER if key in entry]
    if given:
        problems.append(
            Problem(
                "E302",
                f"{', '.join(given)} cannot be used with is_redis_cluster: the cluster's slots "
                "decide where each key lives.",
                f"Remove {', '.join(repr(k) for k in given)}, or drop is_redis_cluster for "
                "rb-style nodes.",
                where,
            )
        )
    host_defaults = _dict_option(entry, "host_defaults", "E013", where, problems)
    pool_options = _dict_option(entry, "pool_options", "E012", where, problems)
    hosts = entry.get("hosts")
    parsed = _hosts(hosts, host_defaults, where, problems)
    for info in (parsed or {}).values():
        if info.db != 0 or info.unix_socket_path is not None:
            what = f"db {info.db}" if info.db != 0 else "a unix socket"
            problems.append(
                Problem(
                    "E303" if info.db != 0 else "E304",
                    f"Seed {info.endpoint} uses {what}; a Redis Cluster has only db 0, "
                    "reached over TCP.",
                    'Write the seeds as "redis://host:port" (or rediss://), without a db.',
                    where,
                )
            )
    if any(p.is_error for p in problems) or parsed is None:
        return None, problems
    config = ClusterConfig(
        name=name,
        hosts=hosts,
        parsed_hosts=parsed,
        router_cls=SlotRouter,
        router_options={},
        pool_options=pool_options,
        host_defaults=host_defaults,
        is_redis_cluster=True,
        read_from_replicas=bool(entry.get("read_from_replicas", False)),
    )
    _try_build(config, where, problems)
    return (None if any(p.is_error for p in problems) else config), problems


def _try_build(config: ClusterConfig, where: str, problems: list[Problem]) -> None:
    """Build the cluster, its router and one (unconnected) connection, so that options the
    router or redis-py do not take are reported now rather than at the first request."""
    try:
        cluster = config.build()
    except BadHostSetup as exc:
        problems.append(Problem("E012", f'"pool_options": {exc}', _POOL_HINT, where))
        return
    try:
        try:
            if not config.is_redis_cluster:  # its router needs no check, its slots a network
                cluster.get_router()
        except Exception as exc:  # a router that refuses its options, whatever it raises
            problems.append(
                Problem(
                    "E011",
                    f'The router does not take these "router_options": {exc}',
                    f"Pass only keyword arguments {config.router_cls.__name__} accepts.",
                    where,
                )
            )
        try:
            cluster.get_pool_for_host(_first_host_id(cluster)).make_connection()
        except TypeError as exc:
            problems.append(
                Problem(
                    "E012",
                    f'"pool_options" has a setting redis-py does not take: {exc}',
                    _POOL_HINT,
                    where,
                )  # fmt: skip
            )
    finally:
        cluster.disconnect_pools()


def _first_host_id(cluster: Any) -> Any:
    """A host to try a connection on, without asking any server (a Redis Cluster's seed)."""
    seeds = getattr(cluster, "seeds", None)
    return seeds[0] if seeds is not None else min(cluster.hosts)


_POOL_HINT = (
    "pool_options are redis-py ConnectionPool / Connection keyword arguments "
    "(max_connections, socket_timeout, socket_connect_timeout, health_check_interval, ...)."
)


def _dict_option(
    entry: Mapping[str, Any], key: str, code: str, where: str, problems: list[Problem]
) -> dict[str, Any]:
    value = entry.get(key)
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    problems.append(
        Problem(
            code,
            f'"{key}" must be a dict, not {type(value).__name__}.',
            f'Write it as "{key}": {{...}}, or leave it out.',
            where,
        )
    )
    return {}


def resolve_router(value: Any, where: str = "ROUTER") -> type:
    """A router class from a short name, a dotted path or a class; the default when None."""
    problems: list[Problem] = []
    router_cls = _router_class(value or DEFAULT_ROUTER, where, problems)
    if router_cls is None:
        raise ImproperlyConfigured(explain(problems[0]))
    return router_cls


def _router_class(value: Any, where: str, problems: list[Problem]) -> type | None:
    from django_rb.cluster import BaseRouter  # noqa: PLC0415

    path = value
    if isinstance(value, str):
        path = ROUTER_ALIASES.get(value, value)
        if "." not in path:
            problems.append(
                Problem(
                    "E008",
                    f"Unknown router {value!r}.",
                    f"Use {' or '.join(repr(a) for a in ROUTER_ALIASES)}, or the dotted path "
                    "of a django_rb.cluster.BaseRouter subclass.",
                    where,
                )
            )
            return None
        try:
            value = import_string(path)
        except ImportError as exc:
            problems.append(
                Problem(
                    "E009",
                    f"Router {path!r} cannot be imported: {exc}",
                    "Check the dotted path (module.ClassName) and that the module imports.",
                    where,
                )
            )
            return None
    if not (isinstance(value, type) and issubclass(value, BaseRouter)):
        problems.append(
            Problem(
                "E010",
                f"Router {path!r} is not a django_rb.cluster.BaseRouter subclass.",
                f"Use {' or '.join(repr(a) for a in ROUTER_ALIASES)}, or subclass BaseRouter.",
                where,
            )
        )
        return None
    return value


def _hosts(
    hosts: Any, host_defaults: dict[str, Any], where: str, problems: list[Problem]
) -> dict[int, HostInfo] | None:
    example = 'e.g. "hosts": ["redis://10.0.0.1:6379/0", "redis://10.0.0.2:6379/0"]'
    if hosts is not None and not isinstance(hosts, str | list | tuple | Mapping):
        problems.append(
            Problem(
                "E005",
                f"The hosts must be a list, a dict or a comma-separated string, not "
                f"{type(hosts).__name__} (host ids follow their order, which must be stable).",
                f"Write them as a list, {example}.",
                where,
            )
        )
        return None
    if hosts is None or (isinstance(hosts, str | list | tuple | Mapping) and not hosts):
        problems.append(
            Problem("E004", "The cluster has no hosts.", f"Add them, {example}.", where)
        )
        return None
    try:
        parsed = parse_hosts(hosts, host_defaults)
    except BadHostSetup as exc:
        problems.append(
            Problem(
                "E005",
                str(exc),
                "Hosts are a list of redis://, rediss:// or unix:// URLs, one comma-separated "
                f"string of them, or rb-style {{host_id: {{...}}}} dicts ({example}). {_ENCODE_HINT}",
                where,
            )
        )
        return None
    if not parsed:
        problems.append(
            Problem("E004", "The cluster has no hosts.", f"Add them, {example}.", where)
        )
        return None
    try:
        assert_gapless(parsed)
    except BadHostSetup as exc:
        problems.append(
            Problem(
                "E006",
                str(exc),
                "Number the hosts 0, 1, 2, ... (routers map keys onto that range, as rb did); "
                "a list of URLs is numbered by position.",
                where,
            )
        )
    seen: dict[str, int] = {}
    for host_id, info in sorted(parsed.items()):
        first = seen.setdefault(info.address, host_id)
        if first != host_id:
            problems.append(
                Problem(
                    "E007",
                    f"Hosts {first} and {host_id} are the same server and db ({info.address}).",
                    "Each host must be its own keyspace: a shared one takes a double share of "
                    "keys, is counted and flushed twice, and strands keys when later split. Use "
                    "another db number to run several hosts on one server.",
                    where,
                )
            )
    return parsed


_ENCODE_HINT = (
    "A password in a URL must percent-encode these characters: "
    f"{ENCODE_IN_PASSWORDS} (a ',' or ';' splits a list of URLs, as django-environ's "
    "env.list does, and cuts the password in two)."
)


def explain(problem: Problem) -> str:
    """A problem as one line for an exception: message, hint and id, as the check shows it."""
    return f"{problem.obj}: {problem.message} {problem.hint} (django_rb.{problem.code})"


# -- RBCache LOCATION -------------------------------------------------------------------------


def parse_cache_location(location: Any) -> CacheLocation:
    """Read an RBCache LOCATION the way ``django_rb.cache.RBCache`` does.

    LOCATION is a string (parts separated by "," or ";", like Django's RedisCache) or a list.
    Parts containing "://" are host URLs; otherwise it must be exactly one plain word, a
    cluster name. Raises ``BadHostSetup`` when empty, when it mixes several names, or when
    it is of another type.
    """
    if isinstance(location, str):
        parts = split_host_urls(location)
    elif isinstance(location, list | tuple):
        strange = [type(part).__name__ for part in location if not isinstance(part, str)]
        if strange:  # never str() them: a dict of host settings may hold a password
            raise BadHostSetup(f"LOCATION items must be strings (host URLs), not {strange[0]}.")
        parts = [part.strip() for part in location if part.strip()]
    elif location is None:
        parts = []
    else:
        raise BadHostSetup(
            f"LOCATION must be a cluster name or host URLs, not {type(location).__name__}."
        )
    if not parts:
        raise BadHostSetup("LOCATION is empty; RBCache needs a cluster name or host URLs.")
    if any("://" in part for part in parts):
        return CacheLocation(hosts=parts)
    if len(parts) > 1:
        raise BadHostSetup(
            f"LOCATION names {len(parts)} clusters; it is either one cluster name or host URLs."
        )
    if not re.fullmatch(r"[\w.-]+", parts[0]):  # not echoed: it may be a mistyped URL
        raise BadHostSetup(
            "LOCATION is neither host URLs (redis://, rediss://, unix://) nor a cluster name "
            "(letters, digits, '_', '.', '-')."
        )
    return CacheLocation(cluster_name=parts[0])


def _is_rbcache(backend: Any) -> bool:
    """BACKEND names RBCache by any path (``django_rb.cache.backend.RBCache``) or a subclass."""
    if backend == CACHE_BACKEND:
        return True
    if not isinstance(backend, str) or "." not in backend:
        return False
    try:
        from django_rb.cache import RBCache  # noqa: PLC0415

        cls = import_string(backend)
    except ImportError:
        return False
    return isinstance(cls, type) and issubclass(cls, RBCache)


def cache_problems() -> list[Problem]:
    """Problems with the LOCATION and OPTIONS of every CACHES entry that uses RBCache."""
    from django_rb.cache.conf import read_cache_settings  # noqa: PLC0415  (an app above us)

    caches = getattr(settings, "CACHES", None)
    if not isinstance(caches, Mapping):
        return []
    names = cluster_names()
    problems = []
    for alias, cache in caches.items():
        if not isinstance(cache, Mapping) or not _is_rbcache(cache.get("BACKEND")):
            continue
        where = f"CACHES[{alias!r}]"
        options = cache.get("OPTIONS")
        if options is not None and not isinstance(options, Mapping):
            problems.append(Problem("E016", f"OPTIONS must be a dict, not {type(options).__name__}.",
                                    "Write it as OPTIONS: {...}.", where))  # fmt: skip
            options = None
        _, found = read_cache_settings(cache.get("LOCATION"), options, where, deep=True)
        problems.extend(found)
        try:
            name = parse_cache_location(cache.get("LOCATION")).cluster_name
        except BadHostSetup:  # already reported as E015
            name = None
        if name is not None and name not in names:
            configured = ", ".join(repr(n) for n in names) or "none"
            problems.append(
                Problem(
                    "E014",
                    f"LOCATION names cluster {name!r}, which is not in "
                    f"{SETTING} (configured: {configured}).",
                    f"Add {name!r} to {SETTING}, or point LOCATION at a "
                    "configured cluster or at redis:// URLs.",
                    where,
                )
            )
    return problems


__all__ = [
    "CACHE_BACKEND",
    "CLUSTER_KEYS",
    "DEFAULT_CLUSTER",
    "DEFAULT_ROUTER",
    "ROUTER_ALIASES",
    "SETTING",
    "CacheLocation",
    "ClusterConfig",
    "Problem",
    "cache_problems",
    "cluster_names",
    "clusters_setting",
    "explain",
    "get_cluster_config",
    "parse_cache_location",
    "read_cluster",
    "settings_problems",
]
