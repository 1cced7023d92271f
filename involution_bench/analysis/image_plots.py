"""Matplotlib figures of images: the data grid, kernel maps and confusion matrices.

Object-oriented API only, like `plots`, whose `save_figure` and `png_bytes` write them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


def confusion_figure(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str
) -> Figure:
    """Counts of true (rows) against predicted (columns) classes, each row's share as colour."""
    counts = np.asarray(matrix)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(8.2, 7), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    for (row, column), count in np.ndenumerate(counts):
        colour = "white" if shares[row, column] > 0.5 else "black"
        axes.text(column, row, str(count), ha="center", va="center", fontsize=8, color=colour)
    figure.colorbar(image, ax=axes, label="share of the true class", shrink=0.8)
    return figure


def kernel_figure(
    images: Sequence, captions: Sequence[str], maps: Sequence[tuple[str, Sequence]]
) -> Figure:
    """One row per image: the image, then each layer's heat map (titled by `maps`)."""
    rows, columns = len(images), 1 + len(maps)
    figure = Figure(figsize=(2.1 * columns, 2.2 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for row, (image, caption) in enumerate(zip(images, captions, strict=True)):
        grid[row, 0].imshow(image)
        grid[row, 0].set_title(caption, fontsize=9)
        for column, (title, layer_maps) in enumerate(maps, start=1):
            grid[row, column].imshow(layer_maps[row], cmap="viridis")
            if row == 0:
                grid[row, column].set_title(title, fontsize=9)
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
