"""A run's robustness measures, read from its `robustness.json` for the comparison.

The file is read once per version (path and modification time), and only by
the commands that show robustness: `runs` never opens it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from involution_bench.runs import Run
from involution_bench.runs.files import ROBUSTNESS_FILE
from involution_bench.runs.storage import read_json

# key -> (header, where in robustness.json)
MEASURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "corruption_accuracy": ("corruption acc", ("corruptions", "mean_accuracy")),
    "consistency": ("consistency", ("consistency", "value")),
    "worst_of_k": ("worst of k", ("worst_of_k", "accuracy")),
    "ece": ("ECE", ("clean", "ece")),
    "corruption_ece": ("corruption ECE", ("corruptions", "mean_ece")),
}


@functools.lru_cache(maxsize=4096)
def _read(path: str, modified: int) -> dict[str, Any] | None:
    try:
        report = read_json(Path(path))
    except Exception:  # a torn or foreign file counts as none
        return None
    return report if isinstance(report, dict) else None


def robustness_report(run: Run) -> dict[str, Any] | None:
    path = run.path / ROBUSTNESS_FILE
    try:
        modified = path.stat().st_mtime_ns
    except OSError:
        return None
    return _read(str(path), modified)


def measure(report: dict[str, Any] | None, key: str) -> float | None:
    value: Any = report
    for part in MEASURES[key][1]:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return float(value) if isinstance(value, int | float) else None


def robustness_value(run: Run, key: str) -> float | None:
    return measure(robustness_report(run), key)
