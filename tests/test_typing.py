"""What a type checker sees of map(): a typed client whose commands return Promise, not Any."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SNIPPET = """
from django_rb.cluster import Cluster, Promise

cluster = Cluster({0: {"port": 1}})
with cluster.map() as client:
    reveal_type(client)
    reveal_type(client.hget("h", "f"))
    reveal_type(client.get("k"))
    reveal_type(client.execute_command("GET", "k"))
with cluster.all() as fanout:
    reveal_type(fanout)
reveal_type(Promise.resolved(3))
reveal_type(Promise.resolved(3).value)
"""
EXPECTED = [
    "django_rb.cluster.clients.MappingClient",
    "django_rb.cluster.promise.Promise[Any]",
    "django_rb.cluster.promise.Promise[Any]",
    "django_rb.cluster.promise.Promise[Any]",
    "django_rb.cluster.clients.FanoutClient",
    "django_rb.cluster.promise.Promise[int]",
    "int",
]


def test_map_client_and_promises_are_typed(tmp_path):
    pytest.importorskip("mypy")
    source = tmp_path / "uses_map.py"
    source.write_text(SNIPPET)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir", str(tmp_path / "c"),
         "--config-file", str(REPO / "pyproject.toml"), str(source)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    revealed = [line.split('Revealed type is "')[1].rstrip('"') for line in
                proc.stdout.splitlines() if "Revealed type is" in line]  # fmt: skip
    assert revealed == EXPECTED, proc.stdout + proc.stderr
