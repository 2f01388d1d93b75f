"""System checks: every id fires on its bad setting, with a hint, and never shows a password."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_rb.cluster import BaseRouter
from tests.test_cache import BAD_SETTINGS

GOOD = ["redis://127.0.0.1:7001/0", "redis://127.0.0.1:7002/0"]
RBCACHE = "django_rb.cache.RBCache"


class TinyRouter(BaseRouter):
    """A valid custom router, importable as tests.test_checks.TinyRouter."""

    def get_host_for_key(self, key: Any) -> int:
        return 0


def rb_messages() -> list[checks.CheckMessage]:
    """What ``manage.py check --tag django_rb`` reports (through Django's registry)."""
    return checks.run_checks(tags=["django_rb"])


def single(check_id: str) -> checks.CheckMessage:
    """The one message with ``check_id``; fails listing all messages otherwise."""
    messages = rb_messages()
    found = [m for m in messages if m.id == check_id]
    assert len(found) == 1, f"expected one {check_id}, got: {[str(m) for m in messages]}"
    message = found[0]
    assert message.hint, f"{check_id} has no hint"
    return message


def cluster(**entry: Any) -> dict[str, Any]:
    return {"default": {"hosts": GOOD, **entry}}


def test_valid_settings_have_no_messages(settings: Any) -> None:
    settings.RB_CLUSTERS = {
        "default": {"hosts": GOOD},
        "dicts": {
            "hosts": {0: {"host": "127.0.0.1", "port": 7003}, 1: {"port": 7004}},
            "router": "consistent_hashing",
            "router_options": {},
            "pool_options": {"max_connections": 5},
            "host_defaults": {"host": "127.0.0.1"},
        },
        "string": {"hosts": ",".join(GOOD), "router": "tests.test_checks.TinyRouter"},
    }
    settings.CACHES = {
        "default": {"BACKEND": RBCACHE, "LOCATION": "dicts"},
        "urls": {"BACKEND": RBCACHE, "LOCATION": GOOD},
        "url_string": {"BACKEND": RBCACHE, "LOCATION": ";".join(GOOD)},
        "one_name_in_a_list": {"BACKEND": RBCACHE, "LOCATION": ["string"]},
        "other": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "x"},
    }
    assert rb_messages() == []


def test_w001_missing_setting(settings: Any) -> None:
    del settings.RB_CLUSTERS
    message = single("django_rb.W001")
    assert message.level == checks.WARNING
    assert "RB_CLUSTERS is not set" in message.msg


def test_w001_empty_setting(settings: Any) -> None:
    settings.RB_CLUSTERS = {}
    assert "RB_CLUSTERS is empty" in single("django_rb.W001").msg


def test_e001_not_a_dict(settings: Any) -> None:
    settings.RB_CLUSTERS = GOOD
    message = single("django_rb.E001")
    assert message.level == checks.ERROR
    assert "must be a dict" in message.msg and "not list" in message.msg


def test_e002_entry_not_a_dict(settings: Any) -> None:
    settings.RB_CLUSTERS = {"default": GOOD}
    message = single("django_rb.E002")
    assert message.msg == "The cluster settings must be a dict, not list."
    assert message.obj == "RB_CLUSTERS['default']"


def test_e002_name_not_a_string(settings: Any) -> None:
    settings.RB_CLUSTERS = {0: {"hosts": GOOD}}
    assert single("django_rb.E002").msg == "Cluster names must be strings, not int."


def test_e003_unknown_keys_with_suggestion(settings: Any) -> None:
    settings.RB_CLUSTERS = cluster(pool_option={}, colour="blue")
    message = single("django_rb.E003")
    assert message.msg == "Unknown cluster settings: colour, pool_option."
    assert "'pool_option' -> 'pool_options'" in message.hint


@pytest.mark.parametrize("hosts", [None, [], "", {}])
def test_e004_no_hosts(settings: Any, hosts: Any) -> None:
    settings.RB_CLUSTERS = {"default": {} if hosts is None else {"hosts": hosts}}
    assert single("django_rb.E004").msg == "The cluster has no hosts."


def test_e004_only_commas(settings: Any) -> None:
    settings.RB_CLUSTERS = {"default": {"hosts": " , ,"}}
    assert single("django_rb.E004").msg == "The cluster has no hosts."


def test_e005_bad_url_hides_the_password(settings: Any) -> None:
    settings.RB_CLUSTERS = cluster(hosts=[GOOD[0], "redis://:hunter2@127.0.0.1:notaport/0"])
    message = single("django_rb.E005")
    assert message.msg == "Host #1 (host 127.0.0.1) does not parse: the port is not a number."
    assert "hunter2" not in str(message)


@pytest.mark.parametrize("secret", ["hun/ter2", "hun?ter2", "hun#ter2"])
def test_e005_password_with_unencoded_url_delimiters_is_not_shown(
    settings: Any, secret: str
) -> None:
    settings.RB_CLUSTERS = cluster(hosts=f"{GOOD[0]},redis://user:{secret}@127.0.0.1:7003/0")
    message = single("django_rb.E005")
    assert "percent-encode" in message.msg or "percent-encode" in (message.hint or "")
    assert "hun" not in str(message) and "ter2" not in str(message)


def test_e005_wrong_scheme_and_unknown_host_setting(settings: Any) -> None:
    settings.RB_CLUSTERS = {
        "a": {"hosts": ["http://127.0.0.1:7001/0"]},
        "b": {"hosts": {0: {"host": "127.0.0.1", "prot": 7001, "password": "hunter2"}}},
    }
    messages = [m for m in rb_messages() if m.id == "django_rb.E005"]
    assert len(messages) == 2
    a, b = sorted(messages, key=lambda m: m.obj)
    assert "must start with redis://, rediss:// or unix://" in a.msg
    assert "unknown settings: prot" in b.msg
    assert "hunter2" not in str(b)


def test_e006_host_ids_with_gaps(settings: Any) -> None:
    settings.RB_CLUSTERS = {"default": {"hosts": {0: {"port": 7001}, 2: {"port": 7002}}}}
    message = single("django_rb.E006")
    assert "missing 1" in message.msg
    assert "0, 1, 2" in message.hint


def test_e007_duplicate_hosts(settings: Any) -> None:
    settings.RB_CLUSTERS = cluster(
        hosts=[GOOD[0], GOOD[1], "redis://:pw@127.0.0.1:7001/0", "redis://127.0.0.1:7001/1"]
    )
    message = single("django_rb.E007")
    assert message.msg == "Hosts 0 and 2 are the same server and db (127.0.0.1:7001/0)."
    assert message.level == checks.ERROR


def test_e008_unknown_router_name(settings: Any) -> None:
    settings.RB_CLUSTERS = cluster(router="ketama")
    message = single("django_rb.E008")
    assert message.msg == "Unknown router 'ketama'."
    assert "'partition' or 'consistent_hashing'" in message.hint


def test_e009_router_path_does_not_import(settings: Any) -> None:
    settings.RB_CLUSTERS = cluster(router="myproject.routing.NoSuchRouter")
    message = single("django_rb.E009")
    assert "Router 'myproject.routing.NoSuchRouter' cannot be imported" in message.msg


def test_e010_router_is_not_a_base_router(settings: Any) -> None:
    settings.RB_CLUSTERS = cluster(router="collections.OrderedDict")
    message = single("django_rb.E010")
    assert message.msg == (
        "Router 'collections.OrderedDict' is not a django_rb.cluster.BaseRouter subclass."
    )


@pytest.mark.parametrize(
    ("key", "check_id"),
    [("router_options", "E011"), ("pool_options", "E012"), ("host_defaults", "E013")],
)
def test_options_that_are_not_dicts(settings: Any, key: str, check_id: str) -> None:
    settings.RB_CLUSTERS = cluster(**{key: "max_connections=5"})
    assert single(f"django_rb.{check_id}").msg == f'"{key}" must be a dict, not str.'


def test_e014_cache_names_an_unknown_cluster(settings: Any) -> None:
    settings.RB_CLUSTERS = {"default": {"hosts": GOOD}, "tsdb": {"hosts": GOOD}}
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": {"BACKEND": RBCACHE, "LOCATION": "sessions"},
    }
    message = single("django_rb.E014")
    assert message.obj == "CACHES['sessions']"
    assert message.msg == (
        "LOCATION names cluster 'sessions', which is not in RB_CLUSTERS "
        "(configured: 'default', 'tsdb')."
    )


def test_e014_when_rb_clusters_is_missing(settings: Any) -> None:
    del settings.RB_CLUSTERS
    settings.CACHES = {"default": {"BACKEND": RBCACHE, "LOCATION": "default"}}
    assert "(configured: none)" in single("django_rb.E014").msg


def test_e015_cache_location_urls_do_not_parse(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": RBCACHE, "LOCATION": "redis://:hunter2@127.0.0.1:notaport/0"}
    }
    message = single("django_rb.E005")  # the same check as an RB_CLUSTERS entry's hosts
    assert message.obj == "CACHES['default']"
    assert message.msg == "Host #0 (host 127.0.0.1) does not parse: the port is not a number."
    assert "hunter2" not in str(message)


def test_e015_cache_location_url_with_a_bad_port_hides_the_password(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": RBCACHE, "LOCATION": [GOOD[0], "redis://:hun/ter2@127.0.0.1:x/0"]}
    }
    message = single("django_rb.E005")
    assert "ter2" not in str(message) and "hun" not in str(message)
    assert "unencoded '/', '?' or '#'" in message.msg


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (None, "LOCATION is empty; RBCache needs a cluster name or host URLs."),
        (" ; ", "LOCATION is empty; RBCache needs a cluster name or host URLs."),
        ("default,tsdb", "LOCATION names 2 clusters; it is either one cluster name or host URLs."),
        (7001, "LOCATION must be a cluster name or host URLs, not int."),
    ],
)
def test_e015_unusable_cache_location(settings: Any, location: Any, expected: str) -> None:
    cache: dict[str, Any] = {"BACKEND": RBCACHE}
    if location is not None:
        cache["LOCATION"] = location
    settings.CACHES = {"default": cache}
    assert single("django_rb.E015").msg == expected


def test_manage_py_check_fails_on_errors(settings: Any) -> None:
    """The checks are registered by the app config, so a plain ``check`` runs them."""
    settings.RB_CLUSTERS = cluster(router="ketama")
    with pytest.raises(SystemCheckError) as caught:
        call_command("check")
    assert "(django_rb.E008) Unknown router 'ketama'." in str(caught.value)


def test_manage_py_check_passes_on_good_settings(settings: Any) -> None:
    settings.RB_CLUSTERS = cluster()
    call_command("check", "--tag", "django_rb")


def test_silencing_a_check(settings: Any) -> None:
    """Ids are stable, so SILENCED_SYSTEM_CHECKS can target them."""
    settings.RB_CLUSTERS = cluster(hosts=[GOOD[0], GOOD[0]])
    settings.SILENCED_SYSTEM_CHECKS = ["django_rb.E007"]
    call_command("check", "--tag", "django_rb")


@pytest.mark.parametrize(("location", "options", "words", "code"), BAD_SETTINGS)
def test_manage_py_check_reports_each_cache_mistake_without_crashing(
    settings: Any, location: Any, options: Any, words: str, code: str
) -> None:
    settings.RB_CLUSTERS = cluster()
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sharded": {"BACKEND": RBCACHE, "LOCATION": location, "OPTIONS": options},
    }
    with pytest.raises(SystemCheckError) as info:  # not ImproperlyConfigured from a backend
        call_command("check")
    assert f"django_rb.{code}" in str(info.value)
    assert re.search(words, str(info.value), flags=re.S)
    (found,) = [m for m in rb_messages() if m.id == f"django_rb.{code}"]
    assert found.obj == "CACHES['sharded']" and found.hint


def test_hints_name_the_right_fix_for_db_and_client_class(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "db": {"BACKEND": RBCACHE, "LOCATION": GOOD, "OPTIONS": {"db": 2}},
        "client": {"BACKEND": RBCACHE, "LOCATION": GOOD,
                   "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"}},
    }  # fmt: skip
    by_obj = {m.obj: m for m in rb_messages()}
    db_hint = by_obj["CACHES['db']"].hint
    assert "db number in each LOCATION URL" in db_hint and "PASSWORD" not in db_hint
    client = by_obj["CACHES['client']"]
    assert client.id == "django_rb.E016"
    assert "django-redis option" in client.hint and "drop CLIENT_CLASS" in client.hint
