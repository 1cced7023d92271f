"""A run's robustness measures, read from its `robustness.json` for the comparison.

The file is read once per run (`Run.robustness`), and only by the commands
that show robustness: `runs` never opens it.
"""

from __future__ import annotations

from typing import Any

from involution_bench.runs import Run

# key -> (header, where in robustness.json)
MEASURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "corruption_accuracy": ("corruption acc", ("corruptions", "mean_accuracy")),
    "consistency": ("consistency", ("consistency", "value")),
    "worst_of_k": ("worst of k", ("worst_of_k", "accuracy")),
    "ece": ("ECE", ("clean", "ece")),
    "corruption_ece": ("corruption ECE", ("corruptions", "mean_ece")),
}


def robustness_report(run: Run) -> dict[str, Any] | None:
    return run.robustness


def measure(report: dict[str, Any] | None, key: str) -> float | None:
    value: Any = report
    for part in MEASURES[key][1]:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return float(value) if isinstance(value, int | float) else None


def robustness_value(run: Run, key: str) -> float | None:
    return measure(robustness_report(run), key)
