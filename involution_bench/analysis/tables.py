"""The comparison table rendered: cells for the terminal, Markdown, CSV and JSON files.

`analysis.compare` builds the rows (runs grouped over seeds, with their
statistics); this module only turns them into text. The files and `--wide`
hold every column; the terminal shows by default what a reader needs to
judge a comparison (`DEFAULT_COLUMNS`), compact enough for 100 columns.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from involution_bench.analysis.rows import (
    COLUMNS,
    DEFAULT_METRIC,
    NUMERIC_COLUMNS,
    Row,
    Stat,
    column_of,
    format_cell,
    human_count,
    run_seed,
    swept_labels,
)
from involution_bench.analysis.significance import (
    metric_header,
    significance_cells,
    significance_fields,
    significance_headers,
)
from involution_bench.errors import InvbenchError
from involution_bench.runs import write_atomic


def headers(rows: Sequence[Row] = ()) -> list[str]:
    """Column headers: a sweep's keys follow the run name; the baseline columns
    appear when a row is the baseline."""
    first, *rest = (column.header for column in COLUMNS)
    return [first, *swept_labels(rows), *rest, *significance_headers(rows), "n"]


def table_cells(rows: Sequence[Row]) -> list[list[str]]:
    """Text cells, one list per row, in `headers(rows)` order."""
    with_baseline = any(row.is_baseline for row in rows)
    cells = []
    for row in rows:
        first, *rest = (format_cell(row.values[c.key], c, row.size) for c in COLUMNS)
        swept = ["-" if value is None else str(value) for value in row.swept.values()]
        cells.append([first, *swept, *rest, *significance_cells(row, with_baseline), str(row.size)])
    return cells


@dataclass(frozen=True)
class TerminalColumn:
    """A column `compare --columns` can name."""

    key: str
    header: str
    cell: Callable[[Row], str]
    needs_baseline: bool = False  # shown only when a row is the baseline


def _value(key: str) -> Callable[[Row], str]:
    shown = column_of(key)
    return lambda row: format_cell(row.values[key], shown, row.size)


def _counted(key: str) -> Callable[[Row], str]:
    """A count in a few characters (1.23 M); a seed group's is the same for every seed."""

    def cell(row: Row) -> str:
        value = row.values[key]
        value = getattr(value, "mean", value)
        return "-" if value is None else human_count(value)

    return cell


def _significance(index: int) -> Callable[[Row], str]:
    """A cell of the baseline columns; the baseline row says so in the verdict's."""

    def cell(row: Row) -> str:
        cells = significance_cells(row, with_baseline=True)
        if row.is_baseline:
            return "baseline" if index == 4 else "-"
        return cells[index]

    return cell


def _interval(row: Row) -> str:
    """The 95% interval as its bounds joined by an en dash, in the fewest characters."""
    interval = row.interval
    if interval is None or interval.low is None:
        return "-"
    return f"{interval.low:.4f}\N{EN DASH}{interval.high:.4f}"


METRIC_HEADER = "metric"  # replaced by the rows' metric's own header (test acc)
TERMINAL_COLUMNS = {
    column.key: column
    for column in (
        TerminalColumn("name", "run", lambda row: row.values["name"]),
        TerminalColumn("status", "status", _value("status")),
        TerminalColumn("epochs", "epochs", _value("epochs")),
        TerminalColumn("seeds", "seeds", _value("seeds")),
        TerminalColumn("params", "params", _counted("parameters")),
        TerminalColumn("macs", "MACs", _counted("macs_per_image")),
        TerminalColumn("validated", "validated on", _value("validated_on")),
        TerminalColumn("metric", METRIC_HEADER, lambda row: _value(row.metric)(row)),
        TerminalColumn("test", "test acc", _value("test_accuracy")),
        TerminalColumn("test_last", "test acc (last)", _value("test_accuracy_last")),
        TerminalColumn("best", "best val acc", _value("best_val_accuracy")),
        TerminalColumn("ci", "95% CI", _interval),
        TerminalColumn("best_epoch", "best epoch", _value("best_epoch")),
        TerminalColumn("final", "final val acc", _value("final_val_accuracy")),
        TerminalColumn("final_loss", "final val loss", _value("final_val_loss")),
        TerminalColumn("seconds", "s/epoch", _value("seconds_per_epoch")),
        TerminalColumn("images", "train img/s", _value("images_per_second")),
        TerminalColumn("corrupted", "corruption acc", _value("corruption_accuracy")),
        TerminalColumn("consistency", "consistency", _value("consistency")),
        TerminalColumn("worst", "worst of k", _value("worst_of_k")),
        TerminalColumn("ece", "ECE", _value("ece")),
        TerminalColumn("ece_corrupted", "corruption ECE", _value("corruption_ece")),
        TerminalColumn("delta", "Δ", _significance(1), needs_baseline=True),
        TerminalColumn("delta_ci", "Δ 95% CI", _significance(2), needs_baseline=True),
        TerminalColumn("p", "p", _significance(3), needs_baseline=True),
        TerminalColumn("verdict", "vs baseline", _significance(4), needs_baseline=True),
        TerminalColumn("n", "n", lambda row: str(row.size)),
    )
}
# What a reader needs to judge a comparison; a sweep's keys follow the run name.
DEFAULT_COLUMNS = ("name", "params", "macs", "metric", "ci", "delta", "p", "verdict")


def parse_columns(text: str) -> tuple[str, ...]:
    """`--columns name,best,p` -> the keys, each checked."""
    keys = tuple(key.strip() for key in text.split(",") if key.strip())
    for key in keys:
        if key not in TERMINAL_COLUMNS:
            known = ", ".join(TERMINAL_COLUMNS)
            raise InvbenchError("--columns", f"unknown column {key!r} (known: {known})")
    if not keys:
        raise InvbenchError("--columns", "names no column")
    return keys


def default_columns(rows: Sequence[Row]) -> tuple[str, ...]:
    """`DEFAULT_COLUMNS`, with after the name what must not go unseen: what a row was
    validated on where some row chose on the test set, and status and epochs where a
    row has a run that is not completed (running, failed, unreadable...)."""
    first, *rest = DEFAULT_COLUMNS
    extra = []
    if any(row.chosen_on_test for row in rows):
        extra.append("validated")
    if any(row.values["status"] != "completed" for row in rows):
        extra += ["status", "epochs"]
    return (first, *extra, *rest)


def terminal_table(
    rows: Sequence[Row], columns: Sequence[str] | None = None
) -> tuple[list[str], list[list[str]]]:
    """(headers, cells) of the chosen columns (by default `default_columns`); a sweep's
    keys come after the run name, the baseline's columns only when a row is the baseline."""
    columns = default_columns(rows) if columns is None else columns
    with_baseline = any(row.is_baseline for row in rows)
    chosen = [
        TERMINAL_COLUMNS[key]
        for key in columns
        if with_baseline or not TERMINAL_COLUMNS[key].needs_baseline
    ]
    swept = swept_labels(rows)
    header: list[str] = []
    for column in chosen:
        if column.header == METRIC_HEADER:
            header.append(metric_header(rows[0].metric) if rows else METRIC_HEADER)
        else:
            header.append(column.header)
        if column.key == "name":
            header += swept
    cells = []
    for row in rows:
        line: list[str] = []
        for column in chosen:
            line.append(column.cell(row))
            if column.key == "name":
                line += ["-" if value is None else str(value) for value in row.swept.values()]
        cells.append(line)
    return header, cells


def to_markdown(rows: Sequence[Row]) -> str:
    header = headers(rows)
    text_columns = 4 + len(swept_labels(rows))
    lines = [header, ["---" if i < text_columns else "---:" for i in range(len(header))]]
    lines += table_cells(rows)
    return markdown_lines(lines)


def markdown_lines(lines: Sequence[Sequence[str]]) -> str:
    """A Markdown table from its lines of cells (header and alignment included)."""
    return "".join(
        "| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |\n" for line in lines
    )


def to_csv(rows: Sequence[Row]) -> str:
    """Raw numbers: each numeric column with its `_std` and `_count` beside it."""
    swept = list(rows[0].swept) if rows else []
    fields = ["name", *swept, "status", "epochs", "seeds", "validated_on", "n"]
    for column in NUMERIC_COLUMNS:
        fields += [column.key, f"{column.key}_std", f"{column.key}_count"]
    metric = rows[0].metric if rows else DEFAULT_METRIC
    fields += list(significance_fields(Row((), {}, metric=metric)))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        record = {
            key: row.values[key] for key in ("name", "status", "epochs", "seeds", "validated_on")
        }
        record.update({key: json.dumps(value) for key, value in row.swept.items()})
        record["n"] = row.size
        for column in NUMERIC_COLUMNS:
            value = row.values[column.key]
            if isinstance(value, Stat):
                record.update(
                    {
                        column.key: value.mean,
                        f"{column.key}_std": value.std,
                        f"{column.key}_count": value.count,
                    }
                )
            else:
                record.update({column.key: value, f"{column.key}_count": int(value is not None)})
        record.update(significance_fields(row))
        writer.writerow(record)
    return buffer.getvalue()


def to_json(rows: Sequence[Row]) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, Stat):
            return {"mean": value.mean, "std": value.std, "count": value.count}
        return value

    payload = [
        {
            **{key: plain(value) for key, value in row.values.items()},
            "swept": row.swept,
            **significance_fields(row),
            "seeds": [run_seed(run) for run in row.runs],
            "runs": [str(run.path) for run in row.runs],
        }
        for row in rows
    ]
    return json.dumps(payload, indent=2) + "\n"


TABLE_WRITERS = {"md": to_markdown, "csv": to_csv, "json": to_json}


def write_tables(rows: Sequence[Row], out_dir: Path, stem: str = "comparison") -> list[Path]:
    """The table as Markdown, CSV and JSON files in `out_dir`."""
    paths = []
    for suffix, render in TABLE_WRITERS.items():
        path = out_dir / f"{stem}.{suffix}"
        write_atomic(path, render(rows))
        paths.append(path)
    return paths
