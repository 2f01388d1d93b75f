"""Host descriptions: the one place where host settings (dicts or URLs) are parsed.

A ``HostInfo`` is what the rest of the core knows about a node. Its repr never shows a
password. ``rb_host_description`` reproduces the string rb hashed into its ketama ring, so
consistent hashing places keys exactly where rb did.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import (
    BadHostId,
    BadHostSetup,
    DuplicateHostId,
    MissingHostId,
    UnsupportedHostSetting,
)

#: Settings a host accepts (rb's, plus ``username`` for ACL users).
HOST_FIELDS = (
    "host",
    "port",
    "unix_socket_path",
    "db",
    "username",
    "password",
    "ssl",
    "ssl_options",
)

#: Query parameters of a rediss:// URL that become ``ssl_options`` (redis-py's ssl_* names).
SSL_QUERY_OPTIONS = {
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_ca_data",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_password",
    "ssl_check_hostname",
    "ssl_min_version",
    "ssl_ciphers",
}

URL_SCHEMES = ("redis", "rediss", "unix")

#: What redis-py accepts for ``ssl_cert_reqs`` given as text.
CERT_REQS = ("none", "optional", "required")


class HostInfo:
    """One node of a cluster: where it is and how to log in (``host_id`` is its identity)."""

    __slots__ = HOST_FIELDS + ("host_id",)

    def __init__(
        self,
        host_id: int,
        host: str = "localhost",
        port: int = 6379,
        unix_socket_path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        ssl: bool = False,
        ssl_options: dict[str, Any] | None = None,
    ) -> None:
        self.host_id = host_id
        self.host = host
        self.port = port
        self.unix_socket_path = unix_socket_path
        self.db = db
        self.username = username
        self.password = password
        self.ssl = ssl
        self.ssl_options = ssl_options

    @property
    def endpoint(self) -> str:
        """Where the server is, without db or credentials: ``[::1]:6380``, ``unix:/x.sock``."""
        if self.unix_socket_path is not None:
            return f"unix:{self.unix_socket_path}"
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"{'rediss://' if self.ssl else ''}{host}:{self.port}"

    @property
    def address(self) -> str:
        """Where the node is, without credentials: ``127.0.0.1:6380/2`` or ``unix:/x.sock/0``."""
        return f"{self.endpoint}/{self.db}"

    @property
    def label(self) -> str:
        """How errors name this host."""
        return f"host {self.host_id} ({self.address})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HostInfo):
            return NotImplemented
        return self.host_id == other.host_id

    def __hash__(self) -> int:
        return hash(self.host_id)

    def __repr__(self) -> str:
        shown = []
        for name in sorted(self.__slots__):
            value = getattr(self, name)
            if name == "password" and value is not None:
                value = "***"
            elif name == "ssl_options" and isinstance(value, dict) and "password" in value:
                value = {**value, "password": "***"}
            shown.append(f"{name}={value!r}")
        return f"<HostInfo {' '.join(shown)}>"


def rb_host_description(host: HostInfo) -> str:
    """The exact text rb 1.11 hashed for a host on its ketama ring (password included).

    rb printed its HostInfo as ``<HostInfo k=v ...>`` over its attributes sorted by name; it had
    no ``username``, so one appears here only when set. Never log or show this string.
    """
    fields = {
        "db": host.db,
        "host": host.host,
        "host_id": host.host_id,
        "password": host.password,
        "port": host.port,
        "ssl": host.ssl,
        "ssl_options": host.ssl_options,
        "unix_socket_path": host.unix_socket_path,
    }
    if host.username is not None:
        fields["username"] = host.username
    shown = " ".join(f"{k}={v!r}" for k, v in sorted(fields.items()))
    return f"<HostInfo {shown}>"


def redact_url(url: str) -> str:
    """A host URL with its password replaced, safe for messages and logs.

    Conservative on purpose: everything up to the *last* ``@`` counts as credentials, so even
    a URL that does not parse (an unencoded ``/`` or ``?`` in a password) cannot leak one.
    """
    if not isinstance(url, str):
        return f"<{type(url).__name__}>"
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" in rest:
        credentials, _, location = rest.rpartition("@")
        user, colon, _secret = credentials.partition(":")
        shown = f"{user}:***" if colon and not set("/?#") & set(user) else "***"
        rest = f"{shown}@{location}"
    return re.sub(r"(?i)([?&](?:ssl_)?password=)[^&#]*", r"\1***", f"{scheme}{sep}{rest}")


def _bool_option(value: str) -> bool | str:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    return value


#: A host part that is safe to quote: a name, an IPv4 address or a bracketed IPv6 one.
_PLAIN_HOST = re.compile(r"([\w.-]+|\[[0-9A-Fa-f:.]+\])(?::\d+)?")

#: What a password must percent-encode in a URL, and how.
ENCODE_IN_PASSWORDS = "',' %2C  ';' %3B  '/' %2F  '?' %3F  '#' %23  '@' %40  '%' %25"


def url_host(url: str) -> str | None:
    """The host named by ``url`` when it can be told apart from any credentials, else None.

    Only the text after the last ``@`` (or, without one, a plain ``host[:port]``) is ever
    returned, so no part of a password can be quoted through it.
    """
    rest = url.partition("://")[2] if "://" in url else url
    netloc = re.split("[/?#]", rest, maxsplit=1)[0]
    if "@" in netloc:
        after = netloc.rpartition("@")[2]
    elif "@" in rest:  # a '/', '?' or '#' in the password cut the credentials short
        after = re.split("[/?#]", rest.rpartition("@")[2], maxsplit=1)[0]
    elif "://" not in url:  # not even a URL: perhaps the end of a password cut at a ','
        return None
    else:  # no credentials to step over: only a plain host[:digits] is surely not one
        match = _PLAIN_HOST.fullmatch(netloc)
        return match.group(1) if match else None
    match = _PLAIN_HOST.match(after)  # after an '@' a bad port is no secret
    return match.group(1) if match and after[match.end(1) : match.end(1) + 1] in ("", ":") else None


def _cut_password(url: str) -> bool:
    """True when an ``@`` follows a '/', '?' or '#' with none in the address part before it:
    the sign of an unencoded delimiter in a password."""
    rest = url.partition("://")[2]
    netloc = re.split("[/?#]", rest, maxsplit=1)[0]
    return "@" not in netloc and "@" in rest


def _url_error(url: str, where: str, problem: str) -> BadHostSetup:
    """A BadHostSetup naming the URL by position and host only: never by its text."""
    host = url_host(url)
    named = f"{where} (host {host})" if host else where
    if _cut_password(url):
        problem = (
            "its password holds an unencoded '/', '?' or '#', which ends the address early; "
            f"percent-encode them ({ENCODE_IN_PASSWORDS})"
        )
    return BadHostSetup(f"{named} does not parse: {problem}.")


def parse_host_url(url: str, where: str = "A host URL") -> dict[str, Any]:
    """Turn ``redis://``, ``rediss://`` or ``unix://`` into host settings (``BadHostSetup`` if bad).

    Errors name the URL as ``where`` (its position in a list) and its host when that is
    clear, never by its text: a URL that does not parse may have been cut inside a password.
    """
    if not isinstance(url, str):
        raise BadHostSetup(f"A host URL must be a string, not {type(url).__name__}.")
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # its text may quote part of a password: say it in our own words
        raise _url_error(url, where, "the port is not a number") from None
    if parts.scheme not in URL_SCHEMES:
        raise _url_error(
            url,
            where,
            "it must start with redis://, rediss:// or unix:// (when it is the end of a "
            "password holding ',' or ';', percent-encode those as %2C and %3B)",
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    cfg: dict[str, Any] = {}
    if parts.username:
        cfg["username"] = unquote(parts.username)
    if parts.password is not None:
        cfg["password"] = unquote(parts.password)
    if "password" in query:
        cfg["password"] = query.pop("password")
    if "username" in query:
        cfg["username"] = query.pop("username")

    if parts.scheme == "unix":
        if not parts.path:
            raise _url_error(url, where, "it names no socket path")
        cfg["unix_socket_path"] = unquote(parts.path)
        db = query.pop("db", None)
    else:
        if not parts.hostname:
            raise _url_error(url, where, "it names no host")
        cfg["host"] = unquote(parts.hostname)
        if port is not None:
            cfg["port"] = port
        db = query.pop("db", parts.path.lstrip("/") or None)
        if parts.scheme == "rediss":
            cfg["ssl"] = True
            ssl_options = {
                name[len("ssl_") :]: _bool_option(query.pop(name))
                for name in sorted(SSL_QUERY_OPTIONS & set(query))
            }
            if ssl_options:
                cfg["ssl_options"] = ssl_options
    if db is not None:  # unset: host_defaults, else 0
        try:
            cfg["db"] = int(db)
        except ValueError:
            raise _url_error(url, where, "the db must be a number") from None
    if query:
        names = ", ".join(sorted(query))
        raise _url_error(url, where, f"it has unknown options: {names}")
    return cfg


def _host_config(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        return parse_host_url(value, where)
    if isinstance(value, Mapping):
        cfg = dict(value)
        unknown = set(cfg) - set(HOST_FIELDS) - {"host_id"}
        if unknown:
            raise BadHostSetup(f"{where} has unknown settings: {', '.join(sorted(unknown))}.")
        return cfg
    raise BadHostSetup(f"{where} must be a dict of settings or a URL, not {type(value).__name__}.")


def _id_where(host_id: Any, fallback: str) -> str:
    """How a message names a host by its id: only an int is quoted (an id may be a URL)."""
    if isinstance(host_id, int) and not isinstance(host_id, bool):
        return f"Host {host_id}"
    return f"Host {fallback} (its id is a {type(host_id).__name__})"


def split_host_urls(text: str) -> list[str]:
    """One string of URLs separated by "," or ";" (Django's RedisCache takes either)."""
    return [part.strip() for part in re.split("[,;]", text) if part.strip()]


def iter_host_configs(hosts: Any) -> Iterator[dict[str, Any]]:
    """Yield one settings dict (with ``host_id``) per host, from any accepted form.

    Accepted: ``{host_id: dict | url}``, a list of dicts (with ``host_id``, or numbered by
    position) or URLs (numbered by position), or one comma-separated string of URLs.
    """
    if isinstance(hosts, str):
        hosts = split_host_urls(hosts)
    if isinstance(hosts, Mapping):
        items: Iterable[tuple[Any, Any]] = hosts.items()
        for host_id, value in items:
            cfg = _host_config(value, _id_where(host_id, "in the dict"))
            cfg["host_id"] = host_id
            yield cfg
        return
    if not isinstance(hosts, Iterable) or isinstance(hosts, (set, frozenset)):
        raise BadHostSetup(
            f"Hosts must be a dict, a list or a comma-separated string, not {type(hosts).__name__}"
            " (host ids follow the order, so it must be a stable one)."
        )
    for position, value in enumerate(hosts):
        if isinstance(value, tuple) and len(value) == 2:  # rb accepted (host_id, config) pairs
            host_id, value = value
            cfg = _host_config(value, _id_where(host_id, f"#{position}"))
            cfg["host_id"] = host_id
        else:
            cfg = _host_config(value, f"Host #{position}")
            cfg.setdefault("host_id", position)
        yield cfg


def parse_hosts(hosts: Any, host_defaults: Mapping[str, Any] | None = None) -> dict[int, HostInfo]:
    """All hosts as ``{host_id: HostInfo}``; ids must be integers without duplicates."""
    result: dict[int, HostInfo] = {}
    for cfg in iter_host_configs(hosts):
        for key, value in (host_defaults or {}).items():
            cfg.setdefault(key, value)
        host = make_host(**cfg)
        if host.host_id in result:
            raise DuplicateHostId(f"Two hosts share the host id {host.host_id!r}.")
        result[host.host_id] = host
    return result


def make_host(host_id: Any = None, **settings: Any) -> HostInfo:
    """Build a HostInfo, checking the id and the settings."""
    if host_id is None:
        raise MissingHostId("A host needs a host_id.")
    if isinstance(host_id, bool) or not isinstance(host_id, int):
        raise BadHostId(f"Host ids must be integers, not {type(host_id).__name__}.")
    unknown = set(settings) - set(HOST_FIELDS)
    if unknown:
        raise BadHostSetup(f"Host {host_id} has unknown settings: {', '.join(sorted(unknown))}.")
    if settings.get("ssl") and settings.get("unix_socket_path"):
        raise UnsupportedHostSetting(f"Host {host_id}: TLS is not supported over unix sockets.")
    _check_number(host_id, "port", settings.get("port"), 1, 65535)
    _check_number(host_id, "db", settings.get("db"), 0, None)
    cert_reqs = (settings.get("ssl_options") or {}).get("cert_reqs")
    if isinstance(cert_reqs, str) and cert_reqs.lower() not in CERT_REQS:
        raise BadHostSetup(
            f"Host {host_id}: ssl cert_reqs must be one of {', '.join(CERT_REQS)}, "
            f"not {cert_reqs!r}."
        )
    return HostInfo(host_id=int(host_id), **settings)


def _check_number(host_id: int, name: str, value: Any, low: int, high: int | None) -> None:
    """Ports and dbs may be ints or digit strings (kept as given: rb hashed them as given)."""
    if value is None:
        return
    try:
        number = int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number < low or (high is not None and number > high):
        limit = f"from {low} to {high}" if high is not None else f"of {low} or more"
        raise BadHostSetup(f"Host {host_id}: {name} must be a whole number {limit}, not {value!r}.")


def assert_gapless(hosts: Mapping[int, Any]) -> None:
    """Routers number hosts 0..n-1, as rb did; anything else is a setup error."""
    if not hosts:
        raise BadHostSetup("No hosts were configured.")
    missing = [i for i in range(len(hosts)) if i not in hosts]
    if missing:
        raise BadHostSetup(
            f"Host ids must run from 0 to {len(hosts) - 1} without gaps; "
            f"missing {missing[0]} (have {sorted(hosts)})."
        )
