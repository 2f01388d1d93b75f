"""Helpers shared by the Django-layer test modules: commands in-process and as processes,
plain clients, the check messages, and whether a pid still runs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import redis
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError

from django_rb import conf
from django_rb.testing import RedisNode


def run_merged(name: str, *args: str, **options: Any) -> tuple[str, CommandError | None]:
    """Run a command in-process: (stdout + stderr, the CommandError it raised or None)."""
    out = io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=out, no_color=True, **options)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def raw_client(node: RedisNode, db: int = 0) -> redis.Redis:
    return redis.Redis(port=node.port, db=db, password=node.password, socket_timeout=5)


def django_rb_errors() -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks(tags=["django_rb"]) if m.is_serious()]


def problems_text() -> str:
    return "\n".join(str(p) for p in conf.settings_problems() + conf.cache_problems())


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, reaped by nobody, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


STATUS_KEYS = (
    "host_id", "address", "db", "up", "rtt_ms", "keys",
    "used_memory", "used_memory_human", "version", "error",
)  # fmt: skip


def write_settings(tmp_path: Path, clusters: dict[str, Any], extra: str = "") -> str:
    """A settings module in ``tmp_path`` with these RB_CLUSTERS; its module name."""
    module = "rvw_settings"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            f"""
            SECRET_KEY = "x"
            INSTALLED_APPS = ["django_rb"]
            RB_CLUSTERS = {clusters!r}
            """
        )
        + extra
    )
    return module


def manage(tmp_path: Path, module: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    """``python -m django ...`` with that settings module, as a process."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE=module, PYTHONPATH=str(tmp_path))
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )
