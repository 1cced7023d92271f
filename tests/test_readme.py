"""The README's quick tour, run as it stands in bash, on tiny data."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from involution_bench.data import DATA_DIR_ENV
from involution_bench.runs import find_runs, load_run

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def quick_tour() -> str:
    """The first bash block after the "A quick tour" heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## A quick tour", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert match, "the README has no quick-tour block"
    return match.group(1)


def test_the_quick_tour_runs_as_written(tmp_path, cifar_dir):
    script = quick_tour()
    assert "invbench train" in script and "invbench compare" in script
    binaries = Path(sys.executable).parent
    if not (binaries / "invbench").is_file():
        pytest.skip("invbench is not installed beside this Python")
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    environment = {
        **os.environ,
        "PATH": f"{binaries}{os.pathsep}{os.environ['PATH']}",
        DATA_DIR_ENV: str(cifar_dir),
    }
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Traceback" not in result.stderr

    tour = tmp_path / "runs" / "tour"
    runs = [load_run(path) for path in find_runs(tour)]
    assert sorted((run.name, run.summary.seed) for run in runs) == [
        ("article-conv", 42),
        ("article-conv", 43),
        ("article-inv", 42),
        ("article-inv", 43),
    ]
    assert all(run.status == "completed" and run.epochs_done == 2 for run in runs)
    for name in ("comparison.png", "comparison.md", "comparison.csv", "comparison.json"):
        assert (tour / "compare" / name).is_file()
    (inv_run,) = [run for run in runs if run.name == "article-inv" and run.summary.seed == 43]
    assert (inv_run.path / "kernels.png").is_file()
    assert "article-inv" in result.stdout

    (sweep,) = (tmp_path / "runs" / "tour-sweep").glob("sweep-*-article-inv")
    members = [load_run(path) for path in find_runs(sweep)]
    assert sorted((run.config["train"]["learning_rate"], run.summary.seed) for run in members) == [
        (0.001, 42),
        (0.001, 43),
        (0.003, 42),
        (0.003, 43),
    ]
    assert all(run.status == "completed" for run in members)
    assert "learning_rate" in result.stdout and "baseline" in result.stdout
