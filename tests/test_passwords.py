"""No message ever holds any part of a credential: checks, exceptions, reprs, command output.

The password below is recognisable in every fragment a list split can cut it into
(django-environ's ``env.list`` splits on ",", Django's RedisCache LOCATION on ";" too, and a
"/" ends a URL's address early), so each fragment is looked for, not only the whole.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError

from django_rb import conf, get_cluster
from django_rb.cache import RBCache
from django_rb.cluster import Cluster
from django_rb.testing import RedisNode, free_port
from tests.django_support import (
    STATUS_KEYS,
    django_rb_errors,
    manage,
    problems_text,
    raw_client,
    write_settings,
)

PASSWORD = "Sup3rXq,Secr3tZk;Pa55Wv/W0rdJy"
FRAGMENTS = [part for part in re.split("[,;/]", PASSWORD)]
RBCACHE = "django_rb.cache.RBCache"
PORT = 7301


def url(port: int = PORT, password: str = PASSWORD) -> str:
    return f"redis://:{password}@127.0.0.1:{port}/0"


def leaks(text: str) -> list[str]:
    """The fragments of the password that ``text`` holds (none, hopefully)."""
    return [part for part in [PASSWORD, *FRAGMENTS] if part in text]


def everything_shown(settings: Any, cache_location: Any = None) -> str:
    """Checks, ``manage.py check``, get_cluster() and RBCache errors, reprs: all in one text."""
    texts = [str(p) for p in conf.settings_problems() + conf.cache_problems()]
    texts += [f"{m.msg} {m.hint} {m!r}" for m in checks.run_checks(tags=["django_rb"])]
    try:
        call_command("check")
    except SystemCheckError as exc:
        texts.append(str(exc))
    for name in conf.cluster_names():
        try:
            cluster = get_cluster(name)
            texts += [repr(cluster), repr(cluster.hosts)]
        except ImproperlyConfigured as exc:
            texts.append(f"{exc} {exc!r}")
    if cache_location is not None:
        cache = RBCache(cache_location, {})
        texts.append(repr(cache))
        with pytest.raises(ImproperlyConfigured) as info:
            cache.get("k")
        texts.append(f"{info.value} {info.value!r}")
    return "\n".join(texts)


def env_list(text: str) -> list[str]:
    """What django-environ's ``env.list("RB_HOSTS")`` makes of a comma-separated value."""
    return [part for part in text.split(",") if part]


def test_a_password_cut_by_env_list_shows_position_and_host_only(settings: Any) -> None:
    hosts = env_list(f"{url()},redis://127.0.0.1:{PORT + 1}/0")
    settings.RB_CLUSTERS = {"default": {"hosts": hosts}}
    text = everything_shown(settings)
    assert leaks(text) == []
    (message,) = [m for m in checks.run_checks(tags=["django_rb"]) if m.id == "django_rb.E005"]
    assert message.msg.startswith("Host #0 does not parse")
    assert "%2C" in message.hint and "%3B" in message.hint and "%25" in message.hint


def test_the_host_is_named_when_it_can_be_told_apart(settings: Any) -> None:
    settings.RB_CLUSTERS = {"default": {"hosts": [url(password="Pa55Wv,W0rdJy")]}}
    assert leaks(everything_shown(settings)) == []
    settings.RB_CLUSTERS = {"default": {"hosts": ["Pa55Wv", "W0rdJy@10.1.2.3:7301/0"]}}
    messages = [m.msg for m in checks.run_checks(tags=["django_rb"])]
    assert messages == [
        "Host #0 does not parse: it must start with redis://, rediss:// or unix:// (when it is "
        "the end of a password holding ',' or ';', percent-encode those as %2C and %3B)."
    ]
    settings.RB_CLUSTERS = {"default": {"hosts": ["redis://h:1/0", "W0rdJy@10.1.2.3:7301/0"]}}
    (message,) = checks.run_checks(tags=["django_rb"])
    assert message.msg.startswith("Host #1 (host 10.1.2.3) does not parse")
    assert "W0rdJy" not in str(message)


@pytest.mark.parametrize("separator", [",", ";"])
def test_a_cache_location_string_cut_inside_a_password(settings: Any, separator: str) -> None:
    location = f"{url()}{separator}redis://127.0.0.1:{PORT + 1}/0"
    settings.CACHES = {"default": {"BACKEND": RBCACHE, "LOCATION": location}}
    text = everything_shown(settings, cache_location=location)
    assert leaks(text) == []
    assert "django_rb.E005" in text


def test_a_cache_location_list_with_options_password(settings: Any) -> None:
    location = [f"redis://127.0.0.1:{PORT}/x", "redis://127.0.0.1:7302/0"]
    options = {"PASSWORD": PASSWORD, "max_conections": 3}
    settings.CACHES = {"default": {"BACKEND": RBCACHE, "LOCATION": location, "OPTIONS": options}}
    text = "\n".join(str(p) for p in conf.cache_problems())
    assert "E005" in text and "E012" not in text  # the db first; the rest once hosts parse
    assert leaks(text) == []
    cache = RBCache(location, {"OPTIONS": options})
    with pytest.raises(ImproperlyConfigured) as info:
        cache.get("k")
    assert leaks(f"{info.value} {info.value!r} {cache!r}") == []


@pytest.mark.parametrize("secret", ["Pa55Wv/W0rdJy", "1234/W0rdJy", "Pa55Wv?W0rdJy", "Pa#W0rdJy"])
def test_an_unencoded_delimiter_in_a_password_gets_the_real_explanation(
    settings: Any, secret: str
) -> None:
    settings.RB_CLUSTERS = {"default": {"hosts": [url(password=secret)]}}
    (message,) = checks.run_checks(tags=["django_rb"])
    assert message.id == "django_rb.E005"
    assert message.msg == (
        "Host #0 (host 127.0.0.1) does not parse: its password holds an unencoded '/', '?' "
        "or '#', which ends the address early; percent-encode them (',' %2C  ';' %3B  '/' "
        "%2F  '?' %3F  '#' %23  '@' %40  '%' %25)."
    )
    shown = everything_shown(settings)
    assert not [part for part in re.split("[/?#]", secret) if part in shown]


def test_commands_on_a_cut_password_show_no_fragment(settings: Any) -> None:
    settings.RB_CLUSTERS = {"default": {"hosts": env_list(f"{url()},{url(PORT + 1)}")}}
    for command in ("rb_status", "rb_flushall"):
        with pytest.raises((CommandError, SystemCheckError)) as info:
            call_command(command, "--noinput" if command == "rb_flushall" else "--json")
        assert leaks(f"{info.value} {info.value!r}") == [], command


def test_fragments_of_an_options_password_never_show_in_reprs(settings: Any) -> None:
    cache = RBCache(["redis://127.0.0.1:7301/0"], {"OPTIONS": {"PASSWORD": PASSWORD}})
    shown = [repr(cache.cluster), repr(cache.cluster.hosts), repr(cache._settings())]
    assert leaks(" ".join(shown)) == []


# -- from the Django-layer review: every output path, as processes too ---------------------------

SECRET = "rvw-T0pSecret"


@pytest.fixture(scope="module")
def pw_node(redis_nodes: Any) -> RedisNode:
    (node,) = redis_nodes(1, password=SECRET)
    return node


def test_reprs_and_errors_never_show_a_password(settings: Any) -> None:
    hosts = [f"redis://user:{SECRET}@a:1/0", {"host": "b", "port": 1, "password": SECRET}]
    settings.RB_CLUSTERS = {"default": {"hosts": hosts, "host_defaults": {"password": SECRET}}}
    config = conf.get_cluster_config()
    cluster = get_cluster()
    shown = [repr(config), str(config), repr(cluster), str(cluster)]
    shown += [repr(h) for h in cluster.hosts.values()] + [repr(cluster.hosts)]
    assert all(SECRET not in text for text in shown)
    # every error path: duplicate host, bad port, bad db, unknown option, unknown setting
    bad = [
        [f"redis://:{SECRET}@a:1/0", f"redis://:{SECRET}@a:1/0"],
        [f"redis://:{SECRET}@a:port/0"],
        [f"redis://:{SECRET}@a:1/zero"],
        [f"redis://:{SECRET}@a:1/0?nope=1&password={SECRET}"],
        {0: {"host": "a", "password": SECRET, "pasword": SECRET}},
        f"redis://:{SECRET}@a:1/0,redis://:{SECRET}@b:1/0?db=x",
    ]
    for value in bad:
        settings.RB_CLUSTERS = {"default": {"hosts": value}}
        messages = django_rb_errors()
        assert messages, value
        with pytest.raises(ImproperlyConfigured) as info:
            get_cluster()
        texts = [str(info.value), problems_text()] + [f"{m.msg} {m.hint}" for m in messages]
        assert all(SECRET not in text for text in texts), value


def test_ssl_password_is_hidden_in_check_messages(settings: Any) -> None:
    url = f"rediss://cache:6390/0?ssl_password={SECRET}&ssl_cert_reqs=required&bogus=1"
    settings.RB_CLUSTERS = {"default": {"hosts": [url]}}
    settings.CACHES = {"default": {"BACKEND": "django_rb.cache.RBCache", "LOCATION": url}}
    text = problems_text()
    assert "RB_CLUSTERS['default']: (E005)" in text and "CACHES['default']: (E005)" in text
    assert SECRET not in text


def test_ssl_password_is_hidden_in_host_repr() -> None:
    cluster = Cluster([f"rediss://cache:6390/0?ssl_password={SECRET}"])
    assert SECRET not in repr(cluster.hosts[0]) + repr(cluster.hosts)


def test_pair_with_a_url_as_host_id_does_not_leak(settings: Any) -> None:
    # A list of two URLs wrapped in a tuple (e.g. env.tuple(...) inside a list) is read as
    # rb's (host_id, config) pair; the "host id" is then quoted in E005 with its password.
    hosts = [(f"redis://:{SECRET}@a:1/0", f"redis://:{SECRET}@b:1/0")]
    settings.RB_CLUSTERS = {"default": {"hosts": hosts}}
    text = problems_text()
    assert "E005" in text
    assert SECRET not in text


def test_status_and_flushall_as_processes_never_show_a_password(
    tmp_path: Path, pw_node: RedisNode
) -> None:
    pw_node.start()
    raw_client(pw_node).set("k", 1)
    dead = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    module = write_settings(tmp_path, {"default": {"hosts": [pw_node.url(), dead]}})
    status = manage(tmp_path, module, "rb_status", "--json")
    flush = manage(tmp_path, module, "rb_flushall", "--noinput", stdin=subprocess.DEVNULL)
    assert status.returncode == 1 and flush.returncode == 1
    rows = json.loads(status.stdout)  # only JSON on stdout, the CommandError goes to stderr
    assert [row["up"] for row in rows] == [True, False]
    assert [sorted(row) for row in rows] == [sorted(STATUS_KEYS)] * 2
    assert rows[0]["keys"] == 1 and isinstance(rows[0]["used_memory"], int)
    assert "1 of 2 hosts of cluster 'default' are down (host 1)." in status.stderr
    assert "1 of 2 hosts were not flushed (host 1)." in flush.stderr
    assert raw_client(pw_node).dbsize() == 0
    for text in (status.stdout, status.stderr, flush.stdout, flush.stderr):
        assert SECRET not in text


def test_manage_py_check_as_a_process_hides_the_password(tmp_path: Path) -> None:
    module = write_settings(
        tmp_path,
        {"default": {"hosts": [f"redis://:{SECRET}@a:99999/0", f"redis://u:{SECRET}@b:1/x"]}},
    )
    done = manage(tmp_path, module, "check", "--tag", "django_rb")
    assert done.returncode == 1
    assert "django_rb.E005" in done.stderr
    assert SECRET not in done.stdout + done.stderr
    # a command that requires system checks refuses to run on the same settings
    done = manage(tmp_path, module, "rb_status")
    assert done.returncode == 1 and "SystemCheckError" in done.stderr
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "location",
    [
        [{"host": "h", "password": "s3cret-loc"}],  # settings instead of a URL
        "redis:/:s3cret-loc@host/0",  # a mistyped scheme: not a URL, not a name
        "redis://:s3cret-loc@host:port/0",  # a URL that does not parse
    ],
)
def test_cache_location_mistakes_never_show_the_password(settings: Any, location: Any) -> None:
    from django_rb.cache import RBCache

    settings.CACHES = {"default": {"BACKEND": "django_rb.cache.RBCache", "LOCATION": location}}
    assert "s3cret-loc" not in problems_text()
    assert [m.id for m in django_rb_errors()] in (["django_rb.E015"], ["django_rb.E005"])
    with pytest.raises(Exception) as info:
        RBCache(location, {}).get("k")
    assert "s3cret-loc" not in str(info.value)
