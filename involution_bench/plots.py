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

from involution_bench.compare import Row, mean_curves, row_labels
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


def comparison_figure(
    labels: Sequence[str],
    curves: Sequence[Mapping[str, tuple[Sequence[float], Sequence[float]]]],
) -> Figure:
    """The article's two panels with every run (or seed group) in its own colour.

    `curves[i][key]` is (mean, spread) per epoch for the history `key`; train
    curves are dashed, validation solid, and a spread draws a shaded band.
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
                    low = [m - s for m, s in zip(means, spreads, strict=True)]
                    high = [m + s for m, s in zip(means, spreads, strict=True)]
                    axes.fill_between(epochs, low, high, color=colour, alpha=0.18, linewidth=0)
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if max((len(c["val_loss"][0]) for c in curves), default=0) <= 1:
            axes.set_xlim(0.5, 1.5)  # one whole epoch to mark: the locator would add fractions
            axes.set_xticks([1])
        axes.grid(True, alpha=0.3)
    handles, texts = panels[0].get_legend_handles_labels()
    figure.legend(handles, texts, loc="outside lower center", ncols=min(4, len(texts)))
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


def plot_comparison(rows: Sequence[Row], path: Path) -> Path:
    """Every row's curves overlaid; a group of seeds draws its mean and a ±1 std band."""
    curves = [mean_curves(row.runs) for row in rows]
    return save_figure(comparison_figure(row_labels(rows), curves), path)


def kernel_figure(
    images: Sequence, captions: Sequence[str], maps: Sequence[tuple[str, Sequence]]
) -> Figure:
    """One row per image: the image, then each involution layer's kernel-sum heat map."""
    rows, columns = len(images), 1 + len(maps)
    figure = Figure(figsize=(2.1 * columns, 2.2 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for row, (image, caption) in enumerate(zip(images, captions, strict=True)):
        grid[row, 0].imshow(image)
        grid[row, 0].set_title(caption, fontsize=9)
        for column, (layer_name, layer_maps) in enumerate(maps, start=1):
            grid[row, column].imshow(layer_maps[row], cmap="viridis")
            if row == 0:
                grid[row, column].set_title(f"{layer_name}\nkernel sum", fontsize=9)
    for axes in grid.flat:
        axes.set_axis_off()
    return figure


def image_grid_figure(images: Sequence, captions: Sequence[str], columns: int = 5) -> Figure:
    """The article's grid of training images titled by class."""
    rows = -(-len(images) // columns)
    figure = Figure(figsize=(2 * columns, 2.15 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes, image, caption in zip(grid.flat, images, captions, strict=False):
        axes.imshow(image)
        axes.set_title(caption, fontsize=10)
    for axes in grid.flat:
        axes.set_axis_off()
    return figure
