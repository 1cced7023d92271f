"""Matplotlib figures for runs: loss and accuracy panels, comparisons and trade-offs.

Figures are drawn with the object-oriented API (no pyplot state, no GUI
backend) and written atomically. Figures of images (the data grid, kernel maps,
confusion matrices) are in `image_plots`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator

from involution_bench.analysis.rows import Row, column_of, mean_curves, row_labels
from involution_bench.runs import ACCURACY_PLOT, LOSS_PLOT, Run, RunFolder, write_atomic

PANELS = {
    "loss": ("Loss", ("loss", "val_loss")),
    "accuracy": ("Accuracy", ("accuracy", "val_accuracy")),
}
# Where each panel's values can lie: a ±1 std band is cut to it (no loss is negative).
METRIC_RANGE = {"loss": (0.0, np.inf), "accuracy": (0.0, 1.0)}
# Loss curves spanning more than this factor take a log scale: one seed's first-epoch
# spike would otherwise flatten every later epoch into the axis.
LOG_LOSS_SPAN = 20.0
SERIES_STYLE = {
    "loss": {"label": "train loss", "color": "tab:blue", "linestyle": "--"},
    "val_loss": {"label": "validation loss", "color": "tab:blue"},
    "accuracy": {"label": "train accuracy", "color": "tab:orange", "linestyle": "--"},
    "val_accuracy": {"label": "validation accuracy", "color": "tab:orange"},
}


def _scale_for(axes, metric: str, values: Sequence[float]) -> None:
    """A log scale for loss curves that span more than LOG_LOSS_SPAN."""
    positive = [value for value in values if value > 0]
    if metric == "loss" and positive and max(positive) > LOG_LOSS_SPAN * min(positive):
        axes.set_yscale("log")


def history_figure(history: Mapping[str, Sequence[float]], metric: str, title: str) -> Figure:
    """One panel: the train and validation curves of `metric` ("loss" or "accuracy")."""
    label, series = PANELS[metric]
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for key in series:
        values = list(history.get(key, []))
        epochs = range(1, len(values) + 1)
        axes.plot(epochs, values, marker="o", markersize=3, **SERIES_STYLE[key])
    _scale_for(axes, metric, [value for key in series for value in history.get(key, [])])
    axes.set_title(f"{label}: {title}")
    axes.set_xlabel("epoch")
    axes.set_ylabel(label.lower())
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, alpha=0.3)
    axes.legend()
    return figure


def comparison_figure(
    labels: Sequence[str],
    curves: Sequence[Mapping[str, tuple[Sequence[float], Sequence[float]]]],
) -> Figure:
    """The article's two panels with every run (or seed group) in its own colour.

    `curves[i][key]` is (mean, spread) per epoch for the history `key`; train
    curves are dashed, validation solid, and a spread draws a shaded band, cut to
    the metric's range (METRIC_RANGE).
    """
    figure = Figure(figsize=(13, 5.2), layout="constrained")
    panels = figure.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(labels))]
    for axes, (metric, (title, keys)) in zip(panels, PANELS.items(), strict=True):
        for label, run_curves, colour in zip(labels, curves, colours, strict=True):
            for key, linestyle, part in zip(
                keys, ("--", "-"), ("train", "validation"), strict=True
            ):
                means, spreads = run_curves[key]
                epochs = range(1, len(means) + 1)
                axes.plot(
                    epochs,
                    means,
                    color=colour,
                    linestyle=linestyle,
                    marker="o",  # a run of one epoch is a point, not an invisible line
                    markersize=3,
                    label=f"{label}: {part}",
                )
                if any(spreads):
                    low = np.clip(np.subtract(means, spreads), *METRIC_RANGE[metric])
                    high = np.clip(np.add(means, spreads), *METRIC_RANGE[metric])
                    axes.fill_between(epochs, low, high, color=colour, alpha=0.18, linewidth=0)
        _scale_for(axes, metric, [m for c in curves for key in keys for m in c[key][0]])
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if max((len(c["val_loss"][0]) for c in curves), default=0) <= 1:
            axes.set_xlim(0.5, 1.5)  # one whole epoch to mark: the locator would add fractions
            axes.set_xticks([1])
        axes.grid(True, alpha=0.3)
    handles, texts = panels[0].get_legend_handles_labels()
    # As many columns as fit across the figure (about 170 characters of legend).
    widest = max((len(text) for text in texts), default=1)
    columns = max(1, min(4, len(texts), LEGEND_CHARACTERS // (widest + 6)))
    figure.legend(handles, texts, loc="outside lower center", ncols=columns)
    return figure


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def save_figure(figure: Figure, path: Path) -> Path:
    """A figure outside a run folder (a comparison's): written whole, or not at all."""
    write_atomic(path, png_bytes(figure))
    return path


# The run folder's file of each history panel.
PANEL_FILES = {"loss": LOSS_PLOT, "accuracy": ACCURACY_PLOT}


def plot_run(run: Run) -> list[Path]:
    """(Re)draw `loss.png` and `accuracy.png` in the run folder."""
    folder = RunFolder(run.path)
    return [
        folder.write_bytes(
            PANEL_FILES[metric], png_bytes(history_figure(run.history, metric, run.name))
        )
        for metric in PANELS
    ]


MAX_CURVES = 10  # rows a comparison figure draws: beyond that no curve can be told apart
NAMED_POINTS = 5  # trade-off points named beside them; more are numbered, named below


def shown_rows(rows: Sequence[Row]) -> list[Row]:
    """The rows a figure draws: all of them, or past `MAX_CURVES` the baseline and the
    rows of highest metric (mean), in table order."""
    if len(rows) <= MAX_CURVES:
        return list(rows)

    def score(row: Row) -> float:
        if row.is_baseline:
            return float("inf")
        value = _mean(row.values[row.metric])
        return float("-inf") if value is None else value

    chosen = {id(row) for row in sorted(rows, key=score, reverse=True)[:MAX_CURVES]}
    return [row for row in rows if id(row) in chosen]


def plot_comparison(rows: Sequence[Row], path: Path) -> Path:
    """Every row's curves overlaid; a group of seeds draws its mean and a ±1 std band.
    Past `MAX_CURVES` rows, only the baseline and the best by the metric, as the title
    says (every row stays in the tables)."""
    shown = shown_rows(rows)
    figure = comparison_figure(row_labels(shown), [mean_curves(row.runs) for row in shown])
    if len(shown) < len(rows):
        metric = column_of(rows[0].metric).header
        figure.suptitle(
            f"the {len(shown)} rows of highest {metric} of {len(rows):,} "
            "(every row is in comparison.md, .csv and .json)"
        )
    return save_figure(figure, path)


LEGEND_CHARACTERS = 170  # the comparison figure's width, in legend characters

# (summary field, axis label, log scale) of each trade-off panel's cost axis
TRADEOFF_PANELS = (
    ("macs_per_image", "multiply-adds per image", True),
    ("parameters", "parameters", True),
    ("seconds_per_epoch", "training seconds per epoch", False),
)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other beats on both counts (less cost, more accuracy), by cost."""
    front: list[tuple[float, float]] = []
    for cost, accuracy in sorted(points, key=lambda point: (point[0], -point[1])):
        if not front or accuracy > front[-1][1]:
            front.append((cost, accuracy))
    return front


def tradeoff_figure(rows: Sequence[Row]) -> Figure:
    """Each row's metric (mean, 95% interval as error bars) against each cost,
    with the Pareto front drawn and every point labelled. Costs that span more
    than a decade get a log axis."""
    labels = row_labels(rows, with_group_size=False)
    figure = Figure(figsize=(16, 5.4), layout="constrained")
    panels = figure.subplots(1, len(TRADEOFF_PANELS), sharey=True)
    marked = {id(row) for row in shown_rows(rows)}
    if len(marked) < len(rows):
        metric = column_of(rows[0].metric).header
        figure.suptitle(
            f"{len(rows):,} rows (grey); the {len(marked)} of highest {metric} marked, "
            "with their 95% intervals"
        )
    # Past a few points, names would cover each other: points carry numbers, and a
    # legend below the panels names them.
    numbered = len(marked) > NAMED_POINTS
    numbers = {id(row): n for n, row in enumerate((r for r in rows if id(r) in marked), 1)}
    for panel, (axes, (key, axis_label, log_scale)) in enumerate(
        zip(panels, TRADEOFF_PANELS, strict=True)
    ):
        points, placed = [], []
        if len(marked) < len(rows):  # every row as a point, in one call
            everything = [(_mean(row.values[key]), _mean(row.values[row.metric])) for row in rows]
            everything = [(x, y) for x, y in everything if x is not None and y is not None]
            if everything:
                axes.scatter(*zip(*everything, strict=True), s=6, color="0.6", zorder=1)
        for index, (row, label) in enumerate(zip(rows, labels, strict=True)):
            if id(row) not in marked:
                continue
            cost, accuracy = _mean(row.values[key]), _mean(row.values[row.metric])
            if cost is None or accuracy is None:
                continue
            interval = row.interval
            error = None
            if interval is not None and interval.low is not None:
                error = [[accuracy - interval.low], [interval.high - accuracy]]
            number = numbers[id(row)]
            axes.errorbar(
                cost,
                accuracy,
                yerr=error,
                fmt="o",
                color=f"C{index % 10}",
                capsize=4,
                zorder=3,
                label=f"{number}: {label}" if numbered and panel == 0 else None,
            )
            points.append((cost, accuracy))
            placed.append(str(number) if numbered else label)
        _label_points(axes, points, placed)
        front = pareto_front(points)
        if len(front) > 1:
            axes.step(
                *zip(*front, strict=True),
                where="post",
                color="0.4",
                linestyle=":",
                label="Pareto front",
                zorder=2,
            )
            axes.legend(loc="lower right", fontsize=8)
        # A log axis only pays across a decade; within one its labels crowd together.
        costs = [cost for cost, _ in points]
        if log_scale and costs and max(costs) > 10 * min(costs):
            axes.set_xscale("log")
        axes.xaxis.set_major_formatter(EngFormatter(sep=" "))
        axes.set_xlabel(axis_label)
        axes.grid(True, alpha=0.3, which="both")
        axes.margins(x=0.15, y=0.12)
    metric = column_of(rows[0].metric).header if rows else "accuracy"
    panels[0].set_ylabel(f"{metric} (mean, 95% CI)")
    if numbered:
        handles, texts = panels[0].get_legend_handles_labels()
        named = [(h, t) for h, t in zip(handles, texts, strict=True) if t[:1].isdigit()]
        figure.legend(*zip(*named, strict=True), loc="outside lower center", ncols=2, fontsize=8)
    return figure


def _label_points(axes, points: list[tuple[float, float]], labels: list[str]) -> None:
    """Each point's label above and right of it; labels of points close together (a
    label spans about half the panel) are stacked downwards, one line each."""
    if not points:
        return
    xs, ys = zip(*points, strict=True)
    # Spans as the panel shows them: points nearly equal in both are close, not apart.
    x_span = max(max(xs) - min(xs), 0.3 * max(map(abs, xs))) or 1.0
    y_span = max(max(ys) - min(ys), 0.05) or 1.0
    placed: list[tuple[float, float]] = []
    for (x, y), label in zip(points, labels, strict=True):
        nearby = sum(
            abs(x - other_x) < 0.5 * x_span and abs(y - other_y) < 0.1 * y_span
            for other_x, other_y in placed
        )
        placed.append((x, y))
        offset = (6, 6 - 12 * nearby)
        axes.annotate(label, (x, y), textcoords="offset points", xytext=offset, fontsize=8)


def plot_tradeoff(rows: Sequence[Row], path: Path) -> Path:
    return save_figure(tradeoff_figure(rows), path)


def _mean(value) -> float | None:
    """A cell's number: a single run's value, or a seed group's mean."""
    if value is None:
        return None
    return float(getattr(value, "mean", value))
