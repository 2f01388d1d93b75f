"""The stalled-hosts row: 3 of 8 hosts stopped (SIGSTOP), fresh pools, ``map(timeout=1.0)``.

``bench_map.py`` calls ``measure_stalled()``. Each timing runs in a child interpreter (this file
run as a script) so the same round can be timed against an older django_rb (``git archive`` of
a revision, put first on ``PYTHONPATH``) and against this tree, side by side in one run; the
child times only the ``with`` block, and the parent stops and resumes the nodes by pid.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STALLED = (2, 5, 7)  # of 8 hosts
KEYS = 400
TIMEOUT = 1.0
#: The pool options of the two rows (None: django_rb's defaults, 1 s connect / 3 s socket).
POOL_OPTIONS: dict[str, dict[str, Any] | None] = {
    "default pool timeouts": None,
    "socket_connect_timeout=5, socket_timeout=5": {
        "socket_connect_timeout": 5,
        "socket_timeout": 5,
    },
}


def _child(ports: list[int], pool_options: dict[str, Any] | None) -> dict[str, Any]:
    """In the child: one fresh cluster, one block of GETs; how long it took, what arrived."""
    from django_rb.cluster import Cluster  # noqa: PLC0415  (from PYTHONPATH: old or new code)

    cluster = Cluster([f"redis://127.0.0.1:{port}/0" for port in ports], pool_options=pool_options)
    keys = [f"stall:{i}" for i in range(KEYS)]
    router = cluster.get_router()
    live = sum(1 for key in keys if router.get_host_for_key(key) not in STALLED)
    started = time.perf_counter()
    try:
        with cluster.map(timeout=TIMEOUT) as client:
            promises = [client.get(key) for key in keys]
    except Exception:  # the stalled hosts' error, raised after everything settled
        pass
    elapsed = time.perf_counter() - started
    answered = sum(1 for p in promises if p.is_resolved)
    return {"seconds": elapsed, "answered": answered, "live": live}


def _run_child(code_dir: str, ports: list[int], pool_options: dict[str, Any] | None) -> dict:
    env = {**os.environ, "PYTHONPATH": code_dir}
    request = json.dumps({"ports": ports, "pool_options": pool_options})
    done = subprocess.run(
        [sys.executable, __file__, request], env=env, cwd=code_dir, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the stalled-hosts child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def export_revision(rev: str) -> str | None:
    """The ``django_rb`` package of git revision ``rev`` in a temporary folder (None: no git)."""
    try:
        archive = subprocess.run(
            ["git", "archive", rev, "django_rb"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    folder = tempfile.mkdtemp(prefix="django-rb-old-")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def measure_stalled(nodes: list[Any], baseline: str | None, reps: int) -> dict[str, Any]:
    """Median seconds per row, for the baseline revision (when given) and this tree."""
    ports = [node.port for node in nodes[:8]]
    codes = {"this tree": ROOT}
    if baseline:
        folder = export_revision(baseline)
        if folder is not None:
            codes = {f"before ({baseline})": folder, **codes}
    table: dict[str, dict[str, Any]] = {}
    for label, options in POOL_OPTIONS.items():
        row = table[label] = {}
        for name, code_dir in codes.items():
            runs = []
            for _ in range(reps):
                for i in STALLED:
                    nodes[i].pause()
                try:
                    runs.append(_run_child(code_dir, ports, options))
                finally:
                    for i in STALLED:
                        nodes[i].resume()
            row[name] = {
                "seconds": statistics.median(r["seconds"] for r in runs),
                "answered": min(r["answered"] for r in runs),
                "live": runs[0]["live"],
            }
    return {"keys": KEYS, "stalled": list(STALLED), "timeout": TIMEOUT, "rows": table}


def print_stalled(result: dict[str, Any]) -> None:
    """The table: one row per pool setting, one column per code version."""
    rows = result["rows"]
    columns = list(next(iter(rows.values())))
    print(
        f"\n{len(STALLED)} of 8 hosts stalled (SIGSTOP), fresh pools, map(timeout={TIMEOUT}) "
        f"of {KEYS} GETs: median seconds (values that arrived / keys on live hosts)"
    )
    width = max(len(label) for label in rows) + 2
    print("".ljust(width) + "".join(c.rjust(26) for c in columns))
    for label, row in rows.items():
        cells = "".join(
            f"{row[c]['seconds']:.2f} s ({row[c]['answered']}/{row[c]['live']})".rjust(26)
            for c in columns
        )
        print(label.ljust(width) + cells)
    if len(columns) == 2:
        for label, row in rows.items():
            old, new = (row[c]["seconds"] for c in columns)
            print(f"  {label}: {old / new:.1f}x faster")


if __name__ == "__main__":  # the child
    request = json.loads(sys.argv[1])
    print(json.dumps(_child(request["ports"], request["pool_options"])))
