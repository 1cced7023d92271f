"""The comparison table rendered: cells for the terminal, Markdown, CSV and JSON files.

`compare.py` builds the rows (runs grouped over seeds, with their statistics);
this module only turns them into text.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from involution_bench.compare import (
    COLUMNS,
    NUMERIC_COLUMNS,
    Row,
    Stat,
    format_cell,
    run_seed,
    swept_labels,
)
from involution_bench.runs import write_atomic
from involution_bench.significance import (
    significance_cells,
    significance_fields,
    significance_headers,
)


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


def to_markdown(rows: Sequence[Row]) -> str:
    header = headers(rows)
    text_columns = 4 + len(swept_labels(rows))
    lines = [header, ["---" if i < text_columns else "---:" for i in range(len(header))]]
    lines += table_cells(rows)
    return "".join(
        "| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |\n" for line in lines
    )


def to_csv(rows: Sequence[Row]) -> str:
    """Raw numbers: each numeric column with its `_std` and `_count` beside it."""
    swept = list(rows[0].swept) if rows else []
    fields = ["name", *swept, "status", "epochs", "seeds", "n"]
    for column in NUMERIC_COLUMNS:
        fields += [column.key, f"{column.key}_std", f"{column.key}_count"]
    fields += list(significance_fields(Row((), {})))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        record = {key: row.values[key] for key in ("name", "status", "epochs", "seeds")}
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
