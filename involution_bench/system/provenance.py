"""Provenance: what a run was trained with, so its numbers can be placed and repeated."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from involution_bench.system.machine import cpu_description


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def process_info() -> dict[str, Any]:
    """Who is training the run, so a run whose process died is not shown running forever."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def environment_info(
    native_build: str | None = None, gpus: list[str] | None = None
) -> dict[str, Any]:
    """Versions, machine and code a run was trained with, so its numbers can be placed.

    `gpus` names the GPUs training saw (the caller asks TensorFlow).
    """
    versions = {}
    for package in ("tensorflow", "keras"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        **versions,
        "platform": platform.platform(),
        **cpu_description(),
        "gpus": gpus or [],
        "native_build": native_build,
        "git_commit": _git(["rev-parse", "HEAD"]),
        # Uncommitted changes mean the commit alone does not say what code ran.
        "git_dirty": None if (status := _git(["status", "--porcelain"])) is None else bool(status),
        "command": sys.argv,
    }


def _git(arguments: list[str]) -> str | None:
    """A git command's output in invbench's own checkout; None outside one."""
    try:
        result = subprocess.run(
            ["git", *arguments],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
