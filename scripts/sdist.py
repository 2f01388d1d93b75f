"""Fetch a package's source release with pip, for the scripts that run upstream test suites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def download_sdist(name: str, version: str, dest: str | Path) -> Path:
    """The ``.tar.gz`` of ``name==version`` downloaded into ``dest``; SystemExit if pip fails."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--no-binary", ":all:", f"{name}=={version}", "--dest", str(dest)],
        capture_output=True, text=True,
    )  # fmt: skip
    archives = sorted(Path(dest).glob("*.tar.gz"))
    if done.returncode != 0 or not archives:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"Could not download the {name} {version} source release.")
    return archives[0]
