"""`invbench runs`: one line per run; a sweep's members under their sweep, by their values."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from involution_bench.analysis.rows import epochs_text
from involution_bench.runs import Run
from involution_bench.runs.sweep import member_of

RESULT_HEADERS = ("status", "epochs", "best val acc", "started")
LISTING_HEADERS = ("run", *RESULT_HEADERS)
MEMBER_HEADERS = ("member", *RESULT_HEADERS)


def listing_cells(runs: Iterable[Run], root: Path) -> list[list[str]]:
    """One line per run, in the order given: its folder below `root`, then its results."""
    return [[_below(run.path, root), *_results(run)] for run in runs]


def listing_groups(runs: Iterable[Run], root: Path) -> list[tuple[str | None, list[list[str]]]]:
    """(title, lines) per table: the runs that belong to no sweep first (title None, as
    `listing_cells`), then each sweep's members under its folder, each named by its
    member (`m03 kernel_size=5 seed=43`): a cut folder name would hide what tells them
    apart."""
    alone: list[Run] = []
    sweeps: dict[Path, list[list[str]]] = {}
    for run in runs:
        member = member_of(run.path)
        if member is None:
            alone.append(run)
        else:
            sweeps.setdefault(member[0], []).append([member[1], *_results(run)])
    groups: list[tuple[str | None, list[list[str]]]] = []
    if alone:
        groups.append((None, listing_cells(alone, root)))
    groups += [(_below(folder, root), lines) for folder, lines in sweeps.items()]
    return groups


def _below(path: Path, root: Path) -> str:
    folder = path.relative_to(root) if path.is_relative_to(root) else path
    return str(folder) if str(folder) != "." else path.name


def _results(run: Run) -> list[str]:
    best = run.summary.best_val_accuracy
    return [
        str(run.status),
        epochs_text(run),
        "-" if best is None else f"{best:.4f}",
        _started(run.summary.started_at),
    ]


def _started(stamp: str | None) -> str:
    """`2026-12-01T09:39:20+00:00` -> `2026-12-01 09:39` (UTC, as it was recorded)."""
    if not stamp:
        return "-"
    return stamp[:16].replace("T", " ")
