"""The full study's tables and figures: three operators at two budgets, from `results/`.

`make full-study` trains convolution, involution and local self-attention at
4.15 M multiply-adds per image (configs/equal-macs) and at 1.09 M
(configs/quarter-macs), 20 epochs and 5 seeds each, every run chosen on a
held-out validation split and tested once, with its robustness. This module
reads the runs' committed small files and renders:

- the accuracy table: per budget and operator, the test accuracy of the
  validation-chosen model (mean ± std, 95% CI), Welch's difference from the
  budget's convolution with its p-value, multiply-adds, parameters and
  training seconds per epoch;
- the robustness table: corruption accuracy, shift consistency, worst of
  10 translations, clean ECE and relative mCE, each against the budget's
  convolution;
- the figures: test accuracy against multiply-adds (one line per operator
  through its two budgets, 95% intervals as bars) and validation accuracy
  against cumulative training seconds (each run's own epoch times).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from involution_bench.analysis.compare import comparison
from involution_bench.analysis.plots import save_figure
from involution_bench.analysis.robustness import (
    mean_std_text,
    measure_values,
    relative_mce,
    welch_text,
)
from involution_bench.analysis.rows import Row, metric_value
from involution_bench.analysis.stats import mean_interval
from involution_bench.analysis.tables import markdown_lines
from involution_bench.runs import find_runs, read_run

STUDY = "full-study"


@dataclass(frozen=True)
class Budget:
    prefix: str  # the configs' name prefix: "equal" for equal-conv, ...
    title: str


BUDGETS = (Budget("equal", "4.15 M"), Budget("quarter", "1.09 M"))
OPERATORS = {"conv": "convolution", "involution": "involution", "attention": "self-attention"}
COLOURS = {"conv": "tab:blue", "involution": "tab:orange", "attention": "tab:green"}
ROBUSTNESS_COLUMNS = {
    "corruption_accuracy": "corruption accuracy",
    "consistency": "consistency",
    "worst_of_k": "worst of 10",
    "ece": "ECE (clean)",
}


def study_rows(root: Path) -> dict[str, list[Row]]:
    """Per budget prefix: its rows, convolution first, each against the convolution."""
    if not root.is_dir():
        return {}  # nothing trained yet
    runs = [read_run(path) for path in find_runs(root)]
    found = {}
    for budget in BUDGETS:
        names = [f"{budget.prefix}-{operator}" for operator in OPERATORS]
        mine = [run for run in runs if run.summary.name in names and _finished(run)]
        if not any(run.summary.name == names[0] for run in mine):
            continue  # no convolution yet: nothing to compare against
        rows = comparison(mine, baseline=names[0])
        found[budget.prefix] = sorted(rows, key=lambda row: names.index(row.values["name"]))
    return found


def _finished(run) -> bool:
    return run.summary.status == "completed"


def operator_of(row: Row) -> str:
    return row.values["name"].split("-", 1)[1]


def _accuracies(row: Row) -> list[float]:
    return [v for run in row.runs if (v := metric_value(run, "test_accuracy")) is not None]


def train_seconds_per_epoch(row: Row) -> float:
    """The mean over seeds of each run's mean training seconds per epoch."""
    return statistics.fmean(statistics.fmean(run.history["train_seconds"]) for run in row.runs)


def accuracy_table(root: Path) -> str:
    lines = [
        [
            "budget",
            "operator",
            "MACs/image",
            "parameters",
            "seeds",
            "test accuracy",
            "95% CI",
            "Δ against convolution, 95% CI",
            "p",
            "train s/epoch",
        ],
        ["---", "---", *["---:"] * 8],
    ]
    by_budget = study_rows(root)  # every run read once
    for budget in BUDGETS:
        rows = by_budget.get(budget.prefix, [])
        base = _accuracies(rows[0]) if rows else []
        for row in rows:
            values = _accuracies(row)
            interval = mean_interval(values)
            span = "-" if interval.low is None else f"[{interval.low:.4f}, {interval.high:.4f}]"
            summary = row.runs[0].summary
            versus = ("(baseline)", "-") if row.is_baseline else welch_text(values, base)
            lines.append(
                [
                    budget.title,
                    OPERATORS[operator_of(row)],
                    f"{summary.macs_per_image / 1e6:.2f} M",
                    f"{summary.parameters['total']:,}",
                    str(len(values)),
                    mean_std_text(values),
                    span,
                    *versus,
                    f"{train_seconds_per_epoch(row):.1f}",
                ]
            )
    return markdown_lines(lines)


def robustness_table(root: Path) -> str:
    lines = [
        ["budget", "operator", *ROBUSTNESS_COLUMNS.values(), "relative mCE"],
        ["---", "---", *["---:"] * (len(ROBUSTNESS_COLUMNS) + 1)],
    ]
    by_budget = study_rows(root)
    for budget in BUDGETS:
        rows = by_budget.get(budget.prefix, [])
        for row in rows:
            cells = []
            for key in ROBUSTNESS_COLUMNS:
                values = measure_values(row, key)
                text = mean_std_text(values)
                if not row.is_baseline and len(values) > 1:
                    base = measure_values(rows[0], key)
                    p_value = welch_text(values, base)[1]
                    text += f" (p {p_value})" if p_value != "-" else ""
                cells.append(text)
            mce = relative_mce(row, rows[0])
            mce_text = "100%" if row.is_baseline else "-" if mce is None else f"{100 * mce:.1f}%"
            lines.append([budget.title, OPERATORS[operator_of(row)], *cells, mce_text])
    return markdown_lines(lines)


def macs_figure(root: Path) -> Figure:
    """Test accuracy against multiply-adds: one line per operator through its budgets."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    by_budget = study_rows(root)
    for operator, title in OPERATORS.items():
        points = []
        for budget in BUDGETS:
            for row in by_budget.get(budget.prefix, []):
                if operator_of(row) == operator:
                    interval = mean_interval(_accuracies(row))
                    macs = row.runs[0].summary.macs_per_image
                    points.append((macs, interval))
        if not points:
            continue
        x = [macs for macs, _ in points]
        y = [interval.mean for _, interval in points]
        errors = [[0, 0] if i.low is None else [i.mean - i.low, i.high - i.mean] for _, i in points]
        axes.errorbar(
            x, y, yerr=np.array(errors).T, marker="o", capsize=4, label=title,
            color=COLOURS[operator],
        )  # fmt: skip
    axes.set_xscale("log")
    axes.set_xlabel("multiply-adds per image")
    axes.set_ylabel("test accuracy (validation-chosen model)")
    axes.set_title("Accuracy against compute: mean over seeds, 95% intervals")
    axes.legend()
    axes.grid(alpha=0.3)
    return figure


def time_figure(root: Path) -> Figure:
    """Validation accuracy against cumulative training seconds, per config: the mean
    over seeds at each epoch, with a band of ± one standard deviation."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    styles = {"equal": "-", "quarter": "--"}
    by_budget = study_rows(root)
    for budget in BUDGETS:
        for row in by_budget.get(budget.prefix, []):
            epochs = min(len(run.history["train_seconds"]) for run in row.runs)
            seconds = np.array(
                [np.cumsum(run.history["train_seconds"][:epochs]) for run in row.runs]
            )
            accuracy = np.array([run.history["val_accuracy"][:epochs] for run in row.runs])
            x, y = seconds.mean(axis=0), accuracy.mean(axis=0)
            spread = accuracy.std(axis=0, ddof=1) if len(row.runs) > 1 else np.zeros_like(y)
            operator = operator_of(row)
            axes.plot(
                x, y, styles[budget.prefix], color=COLOURS[operator],
                label=f"{OPERATORS[operator]}, {budget.title} MACs",
            )  # fmt: skip
            axes.fill_between(x, y - spread, y + spread, color=COLOURS[operator], alpha=0.15)
    axes.set_xlabel("cumulative training seconds (each run's own epochs; one run at a time)")
    axes.set_ylabel("validation accuracy (5,000 held-out images)")
    axes.set_title("Accuracy against training time, mean over seeds ± std")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    return figure


def write_figures(root: Path, folder: Path) -> list[Path]:
    return [
        save_figure(macs_figure(root), folder / "full-study-macs.png"),
        save_figure(time_figure(root), folder / "full-study-time.png"),
    ]


PLANNED = tuple(f"{budget.prefix}-{operator}" for budget in BUDGETS for operator in OPERATORS)
PLANNED_SEEDS = 5


def progress_text(root: Path) -> str:
    """One line: how many of the planned runs have completed, and which remain."""
    total = len(PLANNED) * PLANNED_SEEDS
    if root.is_dir():
        remaining = remaining_members(root, PLANNED, PLANNED_SEEDS)
    else:
        remaining = [f"{name} {seed}" for seed in range(42, 42 + PLANNED_SEEDS) for name in PLANNED]
    done = total - len(remaining)
    if not remaining:
        return f"All {total} runs have completed.\n"
    return (
        f"{done} of {total} runs have completed; the tables and figures hold those. "
        f"Remaining (config, seed): {', '.join(remaining)}.\n"
    )


def remaining_members(root: Path, planned: Sequence[str], seeds: int) -> list[str]:
    """`name seed` of every planned member without a completed run below `root`."""
    done = {
        (run.summary.name, run.summary.seed)
        for run in (read_run(path) for path in find_runs(root))
        if _finished(run)
    }
    return [
        f"{name} {seed}"
        for seed in range(42, 42 + seeds)
        for name in planned
        if (name, seed) not in done
    ]


if __name__ == "__main__":  # make docs: python -m involution_bench.analysis.full_study RESULTS DOCS
    import sys

    study_root, figures = Path(sys.argv[1]), Path(sys.argv[2])
    if study_root.is_dir():
        for path in write_figures(study_root, figures):
            print(path)
