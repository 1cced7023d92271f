"""Matplotlib figures for runs: the article's loss and accuracy panels.

Figures are drawn with the object-oriented API (no pyplot state, no GUI
backend) and written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from involution_bench.runs import Run, write_atomic

PANELS = {
    "loss": ("Loss", ("loss", "val_loss")),
    "accuracy": ("Accuracy", ("accuracy", "val_accuracy")),
}
SERIES_STYLE = {
    "loss": {"label": "train loss", "color": "tab:blue", "linestyle": "--"},
    "val_loss": {"label": "validation loss", "color": "tab:blue"},
    "accuracy": {"label": "train accuracy", "color": "tab:orange", "linestyle": "--"},
    "val_accuracy": {"label": "validation accuracy", "color": "tab:orange"},
}


def history_figure(history: Mapping[str, Sequence[float]], metric: str, title: str) -> Figure:
    """One panel: the train and validation curves of `metric` ("loss" or "accuracy")."""
    label, series = PANELS[metric]
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for key in series:
        values = list(history.get(key, []))
        epochs = range(1, len(values) + 1)
        axes.plot(epochs, values, marker="o", markersize=3, **SERIES_STYLE[key])
    axes.set_title(f"{label}: {title}")
    axes.set_xlabel("epoch")
    axes.set_ylabel(label.lower())
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, alpha=0.3)
    axes.legend()
    return figure


def save_figure(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    write_atomic(path, buffer.getvalue())
    return path


def plot_run(run: Run) -> list[Path]:
    """(Re)draw `loss.png` and `accuracy.png` in the run folder."""
    return [
        save_figure(history_figure(run.history, metric, run.name), run.path / f"{metric}.png")
        for metric in PANELS
    ]
