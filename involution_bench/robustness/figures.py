"""A run's robustness figures: accuracy against severity and shift, and calibration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure


def robustness_figure(report: Mapping[str, Any], title: str):
    """Left: accuracy at each severity (0 is clean), a thin line per corruption and
    their mean; right: accuracy against a zero-filled translation."""
    figure = Figure(figsize=(12, 4.6), layout="constrained")
    severity_axes, shift_axes = figure.subplots(1, 2)
    clean = report["clean"]["accuracy"]
    corruptions = report.get("corruptions") or {}
    if corruptions:
        levels = [0, *corruptions["severities"]]
        palette = matplotlib.colormaps["tab20"]
        for index, (name, entry) in enumerate(corruptions["by_corruption"].items()):
            accuracy = [clean, *entry["accuracy"]]
            severity_axes.plot(levels, accuracy, lw=1.2, color=palette(index), label=name)
        mean = [clean, *corruptions["mean_accuracy_by_severity"]]
        severity_axes.plot(levels, mean, color="black", lw=2.5, marker="o", label="mean")
        severity_axes.set_title(
            f"{len(corruptions['names'])} corruptions: mean "
            f"{corruptions['mean_accuracy']:.3f} (clean {clean:.3f})"
        )
        severity_axes.set_xticks(levels, ["clean", *map(str, levels[1:])])
        severity_axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        severity_axes.set_title("corruptions: not measured")
    severity_axes.set_xlabel("severity")
    severity_axes.set_ylabel("test accuracy")

    translation = report["translation"]
    shift_axes.plot(translation["pixels"], translation["accuracy"], marker="o", color="C0")
    consistency, worst = report["consistency"], report["worst_of_k"]
    shift_axes.set_title(
        f"consistency {consistency['value']:.3f}, worst of {worst['k']} {worst['accuracy']:.3f}"
    )
    shift_axes.set_xlabel("translation (pixels, zeros shifted in)")
    shift_axes.set_ylabel("test accuracy")
    for axes in (severity_axes, shift_axes):
        axes.set_ylim(0, 1)
        axes.grid(alpha=0.3)
    figure.suptitle(f"{title}: {report['images']:,} test images")
    return figure


def reliability_figure(report: Mapping[str, Any], title: str):
    """Reliability diagrams (Guo et al. 2017): accuracy per confidence bin against the
    diagonal of perfect calibration, on clean images and pooled over corruptions."""
    panels = [("clean", report["clean"]["reliability"], report["clean"]["ece"])]
    corruptions = report.get("corruptions") or {}
    if corruptions:
        panels.append(("corrupted (pooled)", corruptions["reliability"], corruptions["mean_ece"]))
    figure = Figure(figsize=(5.2 * len(panels), 4.8), layout="constrained")
    axes_list = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, (label, bins, ece) in zip(axes_list, panels, strict=True):
        edges = np.array(bins["upper_edges"])
        width = edges[0]
        accuracy = [np.nan if value is None else value for value in bins["accuracy"]]
        axes.bar(edges - width / 2, accuracy, width=width, edgecolor="black", label="accuracy")
        axes.plot([0, 1], [0, 1], ls="--", color="grey", label="perfectly calibrated")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_xlabel("confidence (top softmax probability)")
        axes.set_ylabel("accuracy in the bin")
        axes.set_title(f"{label}: ECE {ece:.3f}, {sum(bins['count']):,} predictions")
        axes.legend(loc="upper left")
    figure.suptitle(title)
    return figure
