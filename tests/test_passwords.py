"""No message ever holds any part of a credential: checks, exceptions, reprs, command output.

The password below is recognisable in every fragment a list split can cut it into
(django-environ's ``env.list`` splits on ",", Django's RedisCache LOCATION on ";" too, and a
"/" ends a URL's address early), so each fragment is looked for, not only the whole.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError

from django_rb import conf, get_cluster
from django_rb.cache import RBCache

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
