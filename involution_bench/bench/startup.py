"""How long the command line takes to answer: `invbench bench cli`.

Each command runs in a fresh process, as a user would start it, so the time
includes Python's start-up and every import. The median over the repeats is
the figure to quote; TensorFlow's import alone takes seconds, which is why
the commands timed here must never load it.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from involution_bench.errors import InvbenchError

# Commands a user runs many times a day; none of them needs TensorFlow.
DEFAULT_COMMANDS = (("--help",), ("runs",))
RUNS_DIR_ENV = "INVBENCH_RUNS_DIR"  # as the CLI's --runs-dir reads it


@dataclass(frozen=True)
class StartupTiming:
    command: str
    median_seconds: float
    min_seconds: float
    max_seconds: float
    repeats: int

    def to_dict(self) -> dict:
        return asdict(self)


def invbench_executable() -> list[str]:
    """The installed `invbench` script beside this Python, else the module run by this Python."""
    script = Path(sys.executable).with_name("invbench")
    if script.is_file():
        return [str(script)]
    found = shutil.which("invbench")
    if found:
        return [found]
    return [sys.executable, "-c", "from involution_bench.cli import app; app()"]


def time_command(
    arguments: tuple[str, ...], repeats: int, cwd: Path | None = None
) -> StartupTiming:
    command = [*invbench_executable(), *arguments]
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
        seconds.append(time.perf_counter() - start)
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            reason = lines[-1] if lines else f"exit code {result.returncode}"
            raise InvbenchError(f"invbench {' '.join(arguments)}", f"failed: {reason}")
    return StartupTiming(
        command="invbench " + " ".join(arguments),
        median_seconds=statistics.median(seconds),
        min_seconds=min(seconds),
        max_seconds=max(seconds),
        repeats=repeats,
    )


def bench_startup(
    commands: tuple[tuple[str, ...], ...] = DEFAULT_COMMANDS, repeats: int = 10
) -> list[StartupTiming]:
    """Each command timed here; where there is no runs folder to list, in a scratch
    folder holding an empty one, so `invbench runs` answers as it would on a new
    checkout instead of failing."""
    if Path(os.environ.get(RUNS_DIR_ENV) or "runs").is_dir():
        return [time_command(arguments, repeats) for arguments in commands]
    with tempfile.TemporaryDirectory(prefix="invbench-bench-cli-") as scratch:
        (Path(scratch) / "runs").mkdir()
        return [time_command(arguments, repeats, cwd=Path(scratch)) for arguments in commands]
