"""Turning several runs into one table of results."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from involution_bench.runs import Run


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    format: str  # a format spec for numbers; values that are missing show as "-"


COLUMNS = (
    Column("name", "run", "s"),
    Column("status", "status", "s"),
    Column("epochs", "epochs", "s"),
    Column("parameters", "params", ",d"),
    Column("best_val_accuracy", "best val acc", ".4f"),
    Column("best_epoch", "best epoch", "d"),
    Column("final_val_accuracy", "final val acc", ".4f"),
    Column("final_val_loss", "final val loss", ".4f"),
    Column("seconds_per_epoch", "s/epoch", ".1f"),
    Column("images_per_second", "train img/s", ",.0f"),
)


def run_row(run: Run) -> dict[str, Any]:
    """One run's comparable numbers; what the run has not produced yet is None."""
    summary = run.summary
    return {
        "name": run.name,
        "status": run.status,
        "epochs": f"{run.epochs_done}/{summary.get('epochs_planned', '?')}",
        "parameters": (summary.get("parameters") or {}).get("total"),
        **{column.key: summary.get(column.key) for column in COLUMNS[4:]},
    }


def format_cell(value: Any, column: Column) -> str:
    if value is None:
        return "-"
    return format(value, column.format)


def comparison_rows(runs: Iterable[Run]) -> list[list[str]]:
    """The table's text cells, one list per run, in `COLUMNS` order."""
    return [
        [format_cell(row[column.key], column) for column in COLUMNS] for row in map(run_row, runs)
    ]
