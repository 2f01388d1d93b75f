"""RBCache LOCATION and OPTIONS: read once here, by the backend and by the system checks alike.

``read_cache_settings`` never raises for a settings mistake: it returns every ``Problem`` it
finds (ids E014-E021, see docs/django.md). The backend keeps the first error and raises it on
first use, so that ``manage.py check`` (which builds every cache) can report them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.cache.backends.base import get_key_func
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_rb import conf
from django_rb.cluster.errors import BadHostSetup
from django_rb.cluster.hosts import HOST_FIELDS

from .compressors import Compressor, get_compressor
from .serializers import Serializer, get_serializer
from .signing import Signer

#: Options that only make sense for a cache that owns its cluster (URLs in LOCATION).
CLUSTER_OPTIONS = frozenset(
    {
        "POOL_OPTIONS",
        "CONNECTION_POOL_KWARGS",
        "SOCKET_TIMEOUT",
        "SOCKET_CONNECT_TIMEOUT",
        "PASSWORD",
        "ROUTER",
    }
)

#: Options of this backend. django-redis's spellings are accepted too.
KNOWN_OPTIONS = CLUSTER_OPTIONS | {
    "SERIALIZER",
    "COMPRESSOR",
    "COMPRESS_MIN_LENGTH",
    "COMPRESS_LEVEL",
    "PICKLE_VERSION",
    "IGNORE_EXCEPTIONS",
    "LOG_IGNORED_EXCEPTIONS",
    "REVERSE_KEY_FUNCTION",
    "SCAN_COUNT",
    "SIGNING_KEY",
    # read by Django's BaseCache; meaningless for Redis (no culling), accepted like RedisCache
    "MAX_ENTRIES",
    "CULL_FREQUENCY",
}

#: django-redis options that have no meaning here, and what replaces each.
DJANGO_REDIS_REPLACED = {
    "CLIENT_CLASS": "RBCache is its own client: drop CLIENT_CLASS (django-redis's ShardClient "
    "is what RBCache replaces; DefaultClient's replicas have no equivalent, every URL is a shard)",
    "CONNECTION_POOL_CLASS": 'use the lowercase "pool_class" option (a dotted path)',
    "USERNAME": "put the user in each LOCATION URL (redis://user:password@host:6379/0)",
    "REPLICA_READ_ONLY": "there are no replicas: every LOCATION URL is a shard; drop it",
    "CONNECTION_FACTORY": "RBCache's pools come from django_rb's core; use the lowercase "
    '"pool_class" option to pick the pool class',
    "CACHE_HERD_TIMEOUT": "HerdClient has no equivalent; drop it",
    "PARSER_CLASS": 'use the lowercase "parser_class" option (a dotted path)',
    "SENTINELS": "Sentinel is not supported: list the nodes' URLs in LOCATION",
    "SENTINEL_KWARGS": "Sentinel is not supported: list the nodes' URLs in LOCATION",
    "REDIS_CLIENT_CLASS": "RBCache talks through django_rb's core; drop it",
    "REDIS_CLIENT_KWARGS": "use CONNECTION_POOL_KWARGS or POOL_OPTIONS",
    "CLOSE_CONNECTION": "connections stay pooled, like Django's RedisCache; drop it",
}

#: Lowercase OPTIONS that Django's RedisCache imports when given as dotted paths.
DOTTED_OPTIONS = ("pool_class", "parser_class")

#: What to write instead of a per-node setting in OPTIONS.
HOST_SETTING_HINTS = {
    "db": "put the db number in each LOCATION URL (redis://host:6379/2)",
    "password": "use OPTIONS PASSWORD, or put it in each LOCATION URL (percent-encoded)",
    "username": "put it in each LOCATION URL (redis://user:password@host:6379/0)",
}

DEFAULT_COMPRESS_MIN_LENGTH = 1024
DEFAULT_SCAN_COUNT = 1000


@dataclass(frozen=True)
class CacheSettings:
    """A usable RBCache configuration (what the backend needs, already resolved)."""

    cluster_name: str | None
    hosts: list[str] | None = field(repr=False)
    pool_options: dict[str, Any] = field(repr=False)
    pool_cls: Any
    router_cls: type | None
    host_defaults: dict[str, Any] = field(repr=False)
    serializer: Serializer
    compressor: Compressor | None
    compress_min_length: int
    scan_count: int
    ignore_exceptions: bool
    log_ignored_exceptions: bool
    reverse_key_func: Callable[[str], str] | None
    signer: Signer | None = field(default=None, repr=False)


def read_cache_settings(
    location: Any, options: Mapping[str, Any] | None, where: str = "RBCache", deep: bool = False
) -> tuple[CacheSettings | None, list[conf.Problem]]:
    """Validate a LOCATION and its OPTIONS: the settings if usable, and every problem found.

    ``deep`` also builds the cluster's router and a connection (no I/O), as the checks do for
    RB_CLUSTERS entries, so that pool option typos show at ``manage.py check``.
    """
    options = dict(options or {})
    problems: list[conf.Problem] = []

    def problem(code: str, message: str, hint: str) -> None:
        problems.append(conf.Problem(code, message, hint, where))

    try:
        parsed = conf.parse_cache_location(location)
    except BadHostSetup as exc:
        problem("E015", str(exc), _LOCATION_HINT)
        parsed = None

    for name in sorted(n for n in options if n.isupper() and n not in KNOWN_OPTIONS):
        replaced = DJANGO_REDIS_REPLACED.get(name)
        hint = (
            f"{name} is a django-redis option: {replaced}." if replaced else _OPTIONS_HINT
        )  # fmt: skip
        problem("E016", f"RBCache does not know the OPTIONS {name}.", hint)

    lowercase = {name: value for name, value in options.items() if not name.isupper()}
    for name in sorted(set(HOST_FIELDS) & set(lowercase)):
        hint = HOST_SETTING_HINTS.get(name, "say where the nodes are in LOCATION URLs")
        problem("E018", f"OPTIONS {name!r} is a per-node setting.", f"For RBCache, {hint}.")
    if "serializer" in lowercase:
        problem("E016", 'RBCache takes OPTIONS "SERIALIZER", not "serializer".', _OPTIONS_HINT)
        del lowercase["serializer"]
    pool = _pool_options(options, lowercase, problem)

    if parsed is not None and parsed.cluster_name is not None:
        given = sorted(n for n in options if n in CLUSTER_OPTIONS or not n.isupper())
        if given:
            problem(
                "E017",
                f"LOCATION {parsed.cluster_name!r} is a shared cluster from RB_CLUSTERS, so "
                f"the cache's OPTIONS cannot set {', '.join(given)}.",
                f"Set them in RB_CLUSTERS[{parsed.cluster_name!r}] (pool_options, router, "
                "host_defaults), or give this cache its own host URLs as LOCATION.",
            )

    pool_cls = _dotted(pool.pop("pool_class", None), "pool_class", problem)
    if "parser_class" in pool:
        pool["parser_class"] = _dotted(pool["parser_class"], "parser_class", problem)

    serializer = _codec(get_serializer, "SERIALIZER", options, problem)
    compressor = _codec(get_compressor, "COMPRESSOR", options, problem)
    min_length = _int(options, "COMPRESS_MIN_LENGTH", DEFAULT_COMPRESS_MIN_LENGTH, problem)
    scan_count = _int(options, "SCAN_COUNT", DEFAULT_SCAN_COUNT, problem)
    reverse = options.get("REVERSE_KEY_FUNCTION")
    try:
        reverse_key_func = get_key_func(reverse) if reverse else None
    except ImportError as exc:
        problem("E019", f"REVERSE_KEY_FUNCTION cannot be imported: {exc}", _DOTTED_HINT)
        reverse_key_func = None

    signer = None
    signing_key = options.get("SIGNING_KEY")
    if signing_key is not None:
        if isinstance(signing_key, str | bytes) and signing_key:
            signer = Signer(signing_key)
        else:  # never echoed: it is a secret
            problem("E020", f"OPTIONS SIGNING_KEY must be a non-empty str or bytes, not "
                    f"{type(signing_key).__name__}.",
                    "Use a long random secret, e.g. read from the environment.")  # fmt: skip

    router_cls = None
    host_defaults: dict[str, Any] = {}
    if options.get("PASSWORD") is not None:
        host_defaults["password"] = options["PASSWORD"]
    if parsed is not None and parsed.hosts is not None:
        entry = {
            "hosts": parsed.hosts,
            "router": options.get("ROUTER"),
            "pool_options": {k: v for k, v in pool.items() if k != "parser_class"},
            "host_defaults": host_defaults,
        }
        config, cluster_problems = conf.read_cluster(where, entry, where=where, build=deep)
        problems.extend(cluster_problems)
        router_cls = config.router_cls if config is not None else None

    if any(p.is_error for p in problems) or parsed is None:
        return None, problems
    return CacheSettings(
        cluster_name=parsed.cluster_name,
        hosts=parsed.hosts,
        pool_options=pool,
        pool_cls=pool_cls,
        router_cls=router_cls,
        host_defaults=host_defaults,
        serializer=serializer,
        compressor=compressor,
        compress_min_length=min_length,
        scan_count=scan_count,
        ignore_exceptions=bool(options.get("IGNORE_EXCEPTIONS", False)),
        log_ignored_exceptions=bool(options.get("LOG_IGNORED_EXCEPTIONS", True)),
        reverse_key_func=reverse_key_func,
        signer=signer,
    ), problems


def first_error_text(problems: list[conf.Problem]) -> str | None:
    """The text the backend raises on first use: the same words and id as the check."""
    errors = [p for p in problems if p.is_error]
    return conf.explain(errors[0]) if errors else None


_LOCATION_HINT = (
    "Set LOCATION to one cluster name from RB_CLUSTERS, or to redis:// URLs "
    "(a list, or one string separated by commas)."
)
_OPTIONS_HINT = "docs/cache.md lists RBCache's OPTIONS; docs/moving-from-django-redis.md maps "
_OPTIONS_HINT += "django-redis's."
_DOTTED_HINT = "Check the dotted path (module.Name) and that the module imports."


def _pool_options(
    options: dict[str, Any], lowercase: dict[str, Any], problem: Callable[[str, str, str], None]
) -> dict[str, Any]:
    """redis-py pool settings from every spelling users bring along.

    Ours (POOL_OPTIONS), django-redis's (CONNECTION_POOL_KWARGS, SOCKET_TIMEOUT,
    SOCKET_CONNECT_TIMEOUT) and Django RedisCache's (lowercase keys go to the pool).
    """
    pool: dict[str, Any] = {}
    for name in ("CONNECTION_POOL_KWARGS", "POOL_OPTIONS"):
        value = options.get(name)
        if value is None:
            continue
        if isinstance(value, Mapping):
            pool.update(value)
        else:
            problem("E020", f"OPTIONS {name} must be a dict, not {type(value).__name__}.",
                    f"Write it as {name}: {{...}}, or leave it out.")  # fmt: skip
    pool.update({k: v for k, v in lowercase.items() if k not in HOST_FIELDS})
    if "SOCKET_TIMEOUT" in options:
        pool["socket_timeout"] = options["SOCKET_TIMEOUT"]
    if "SOCKET_CONNECT_TIMEOUT" in options:
        pool["socket_connect_timeout"] = options["SOCKET_CONNECT_TIMEOUT"]
    if pool.get("decode_responses"):
        problem("E020", "RBCache stores bytes, so decode_responses must stay off.",
                "Remove decode_responses from the cache's OPTIONS.")  # fmt: skip
    return pool


def _dotted(value: Any, name: str, problem: Callable[[str, str, str], None]) -> Any:
    """Import a dotted-path option the way Django's RedisCache does; None if it fails."""
    if not isinstance(value, str):
        return value
    try:
        return import_string(value)
    except ImportError as exc:
        problem("E019", f"OPTIONS {name} {value!r} cannot be imported: {exc}", _DOTTED_HINT)
        return None


def _codec(
    loader: Callable[[Any, dict[str, Any]], Any],
    name: str,
    options: dict[str, Any],
    problem: Callable[[str, str, str], None],
) -> Any:
    try:
        return loader(options.get(name), options)
    except ImproperlyConfigured as exc:
        problem("E019", str(exc), f"docs/cache.md lists the {name} choices and what they need.")
        return None


def _int(
    options: dict[str, Any], name: str, default: int, problem: Callable[[str, str, str], None]
) -> int:
    value = options.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        problem("E020", f"OPTIONS {name} must be an integer, not {type(value).__name__}.",
                f"Write it as a whole number, e.g. {name}: {default}.")  # fmt: skip
        return default
