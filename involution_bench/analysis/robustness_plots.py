"""The comparison's robustness figures, one line (or column) per row of the table.

- `robustness-severity.png`: mean corruption accuracy at each severity (0 is
  clean), the band the 95% interval of the mean over seeds;
- `robustness-shift.png`: accuracy against a zero-filled translation, banded so;
- `robustness-corruptions.png`: a heat map of corruption x row, each cell the
  accuracy averaged over severities and seeds.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from involution_bench.analysis.measures import robustness_report
from involution_bench.analysis.plots import save_figure
from involution_bench.analysis.rows import Row, row_labels
from involution_bench.analysis.stats import mean_interval


def _reports(row: Row) -> list[dict[str, Any]]:
    return [report for run in row.runs if (report := robustness_report(run))]


def _band(series: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95% interval at each point over the runs' series (no band from one run)."""
    means, lows, highs = [], [], []
    for values in zip(*series, strict=True):
        interval = mean_interval(list(values))
        means.append(interval.mean)
        lows.append(interval.mean if interval.low is None else interval.low)
        highs.append(interval.mean if interval.high is None else interval.high)
    return np.array(means), np.array(lows), np.array(highs)


def _curve_figure(
    rows: Sequence[Row],
    series_of: Callable[[dict[str, Any]], tuple[list[float], list[float]] | None],
    xlabel: str,
    title: str,
) -> Figure:
    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.add_subplot()
    for row, label in zip(rows, row_labels(rows), strict=True):
        found = [series for report in _reports(row) if (series := series_of(report))]
        if not found:
            continue
        x = found[0][0]
        mean, low, high = _band([values for _, values in found])
        (line,) = axes.plot(x, mean, marker="o", label=label)
        axes.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("test accuracy")
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def _severity_series(report: dict[str, Any]):
    corruptions = report.get("corruptions")
    if not corruptions:
        return None
    levels = [0, *corruptions["severities"]]
    return levels, [report["clean"]["accuracy"], *corruptions["mean_accuracy_by_severity"]]


def _shift_series(report: dict[str, Any]):
    translation = report["translation"]
    return translation["pixels"], translation["accuracy"]


def severity_figure(rows: Sequence[Row]) -> Figure:
    return _curve_figure(
        rows,
        _severity_series,
        "corruption severity (0: clean)",
        "CIFAR-10-C-style corruptions: mean accuracy (band: 95% CI over seeds)",
    )


def shift_figure(rows: Sequence[Row]) -> Figure:
    return _curve_figure(
        rows,
        _shift_series,
        "translation (pixels, zeros shifted in)",
        "accuracy against translation (band: 95% CI over seeds)",
    )


def corruption_figure(rows: Sequence[Row]) -> Figure | None:
    """Corruption x row; each cell the accuracy averaged over severities and seeds."""
    labels, columns = [], []
    for row, label in zip(rows, row_labels(rows, with_group_size=False), strict=True):
        reports = [r for r in _reports(row) if r.get("corruptions")]
        if reports:
            labels.append(label)
            columns.append(
                {
                    name: statistics.fmean(
                        statistics.fmean(r["corruptions"]["by_corruption"][name]["accuracy"])
                        for r in reports
                        if name in r["corruptions"]["by_corruption"]
                    )
                    for name in reports[0]["corruptions"]["names"]
                }
            )
    if not columns:
        return None
    names = list(columns[0])
    grid = np.array([[column.get(name, np.nan) for column in columns] for name in names])
    figure = Figure(
        figsize=(2.2 + 1.5 * len(columns), 0.9 + 0.36 * len(names)), layout="constrained"
    )
    axes = figure.add_subplot()
    image = axes.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            colour = "white" if value < 0.5 else "black"
            axes.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8, color=colour)
    axes.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    axes.set_yticks(range(len(names)), names, fontsize=8)
    axes.set_title("accuracy per corruption (mean over severities and seeds)", fontsize=10)
    figure.colorbar(image, ax=axes, fraction=0.05)
    return figure


def plot_robustness(rows: Sequence[Row], out_dir: Path) -> list[Path]:
    written = [
        save_figure(severity_figure(rows), out_dir / "robustness-severity.png"),
        save_figure(shift_figure(rows), out_dir / "robustness-shift.png"),
    ]
    heat_map = corruption_figure(rows)
    if heat_map is not None:
        written.append(save_figure(heat_map, out_dir / "robustness-corruptions.png"))
    return written
