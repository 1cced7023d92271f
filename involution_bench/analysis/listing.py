"""`invbench runs`: one line per run, sweep members named by their swept values."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from involution_bench.analysis.rows import epochs_text
from involution_bench.runs import Run
from involution_bench.runs.sweep import member_of

LISTING_HEADERS = ("run", "member", "status", "epochs", "best val acc", "started")


def listing_cells(runs: Iterable[Run], root: Path) -> list[list[str]]:
    """One line per run, in the order given. A sweep member's run shows as its sweep
    folder and its member (`m03 kernel_size=5 seed=43`), which a cut folder name
    would hide; another run shows as its folder below `root`."""
    cells = []
    for run in runs:
        summary = run.summary
        best = summary.best_val_accuracy
        member = member_of(run.path)
        shown = member[0] if member else run.path
        folder = shown.relative_to(root) if shown.is_relative_to(root) else shown
        cells.append(
            [
                str(folder) if str(folder) != "." else shown.name,
                member[1] if member else "-",
                str(run.status),
                epochs_text(run),
                "-" if best is None else f"{best:.4f}",
                _started(summary.started_at),
            ]
        )
    return cells


def _started(stamp: str | None) -> str:
    """`2026-12-01T09:39:20+00:00` -> `2026-12-01 09:39` (UTC, as it was recorded)."""
    if not stamp:
        return "-"
    return stamp[:16].replace("T", " ")
