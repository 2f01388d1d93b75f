"""`make demo`'s script end to end: nodes started, site served with data, and Ctrl-C (here
SIGTERM) stopping the server and every node it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from django_rb.conf import CLUSTER_KEYS
from django_rb.testing import free_port

ROOT = Path(__file__).resolve().parent.parent


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone as far as we care
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def demo_command(tmp_path: Path, port: int, mode: str) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    env.pop("RB_HOSTS", None)
    args = [sys.executable, "scripts/demo.py", "--port", str(port), "--burst", "1", "--mode", mode]
    return args, env


@pytest.mark.parametrize("mode", ["nodes", "redis-cluster"])
def test_demo_serves_the_site_and_stops_everything(tmp_path: Path, mode: str) -> None:
    port = free_port()
    args, env = demo_command(tmp_path, port, mode)
    if mode == "redis-cluster" and "is_redis_cluster" not in CLUSTER_KEYS:
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert "cannot name" in done.stdout and "a Redis Cluster yet" in done.stdout
        return
    demo = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    try:
        for line in demo.stdout:
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        output = "".join(lines)
        pids = [int(p) for p in re.search(r"\(pids ([\d, ]+)\)", output).group(1).split(", ")]
        assert len(pids) == (3 if mode == "redis-cluster" else 4)
        assert all(alive(pid) for pid in pids)
        assert re.search(r"\d+ events to 5 projects: \d+ accepted", output)
        assert f"http://127.0.0.1:{port}/projects/1/" in output
        page = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    page = response.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert page.count('<svg class="sparkline"') == 5
    finally:
        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=30)
    assert "Server and nodes stopped." in rest
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids)
