"""The comparison table's statistics: each row's 95% interval, and its difference
from a baseline row (`compare --baseline ROW`), on the row's metric (by default
the test accuracy of each run's chosen model).

The numbers come from `stats.py`; this module attaches them to table rows
and renders them as cells (table, Markdown) and as raw fields (CSV, JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from involution_bench.analysis.rows import DEFAULT_METRIC, Row, column_of, metric_value
from involution_bench.analysis.stats import mean_interval, welch_difference
from involution_bench.errors import InvbenchError


def metric_header(metric: str) -> str:
    return column_of(metric).header


def interval_header(metric: str) -> str:
    return f"{metric_header(metric)} 95% CI"


def baseline_headers(metric: str) -> tuple[str, ...]:
    return (f"Δ {metric_header(metric)}", "Δ 95% CI", "p", "vs baseline")


def metric_values(row: Row) -> list[float]:
    values = [metric_value(run, row.metric) for run in row.runs]
    return [value for value in values if value is not None]


def with_significance(rows: Sequence[Row], baseline: str | None = None) -> list[Row]:
    """Rows with their interval, and, given a baseline, their Welch difference from it."""
    rows = [
        replace(row, interval=mean_interval(values) if (values := metric_values(row)) else None)
        for row in rows
    ]
    if baseline is None:
        return rows
    base = find_baseline(rows, baseline)
    base_values = metric_values(base)
    if not base_values:
        raise InvbenchError(
            "--baseline", f"{baseline!r} has no {metric_header(base.metric)} to compare with"
        )
    marked = []
    for row in rows:
        if row is base:
            marked.append(replace(row, is_baseline=True))
        elif values := metric_values(row):
            marked.append(replace(row, versus=welch_difference(values, base_values)))
        else:
            marked.append(row)
    return marked


def find_baseline(rows: Sequence[Row], wanted: str) -> Row:
    """The row named `wanted`, the one holding a run folder of that name or path, or
    in a sweep the one whose swept key has that value (`kernel_size=7`)."""
    by_name = [row for row in rows if row.values["name"] == wanted] or _by_swept_value(rows, wanted)
    by_folder = [row for row in rows if any(_is_folder(run.path, wanted) for run in row.runs)]
    found = by_name or by_folder
    if len(found) == 1:
        return found[0]
    names = ", ".join(sorted({row.values["name"] for row in rows}))
    if not found:
        raise InvbenchError("--baseline", f"no row or run is named {wanted!r} (rows: {names})")
    raise InvbenchError(
        "--baseline", f"{wanted!r} names {len(found)} rows; give one run folder instead"
    )


def _is_folder(path: Path, wanted: str) -> bool:
    """`wanted` names this run folder: by its name, or as a path in any spelling
    (relative or absolute, with or without a trailing slash)."""
    if wanted == path.name:
        return True
    return Path(wanted).expanduser().resolve() == path.resolve()


def _by_swept_value(rows: Sequence[Row], wanted: str) -> list[Row]:
    key, sep, value_text = wanted.partition("=")
    if not sep:
        return []
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError:
        return []
    return [
        row
        for row in rows
        if any(
            (name == key or name.rsplit(".", 1)[-1] == key) and swept == value
            for name, swept in row.swept.items()
        )
    ]


def significance_headers(rows: Sequence[Row]) -> list[str]:
    with_baseline = any(row.is_baseline for row in rows)
    metric = rows[0].metric if rows else DEFAULT_METRIC
    return [interval_header(metric), *(baseline_headers(metric) if with_baseline else ())]


def significance_cells(row: Row, with_baseline: bool) -> list[str]:
    interval = row.interval
    cells = [_span(interval.low, interval.high, ".4f") if interval else "-"]
    if not with_baseline:
        return cells
    if row.is_baseline:
        return [*cells, "baseline", "-", "-", "-"]
    versus = row.versus
    if versus is None:
        return [*cells, "-", "-", "-", "-"]
    return [
        *cells,
        f"{versus.difference:+.4f}",
        _span(versus.low, versus.high, "+.4f"),
        "-" if versus.p_value is None else f"{versus.p_value:.3g}",
        versus.verdict(),
    ]


def significance_fields(row: Row) -> dict[str, Any]:
    """Raw numbers for CSV and JSON; None where a value does not exist."""
    interval, versus = row.interval, row.versus
    return {
        "metric": row.metric,
        f"{row.metric}_ci_low": interval.low if interval else None,
        f"{row.metric}_ci_high": interval.high if interval else None,
        "baseline": row.is_baseline,
        "difference": versus.difference if versus else None,
        "difference_ci_low": versus.low if versus else None,
        "difference_ci_high": versus.high if versus else None,
        "p_value": versus.p_value if versus else None,
        "within_noise": versus.within_noise if versus else None,
    }


def _span(low: float | None, high: float | None, spec: str) -> str:
    if low is None or high is None:
        return "-"
    return f"[{low:{spec}}, {high:{spec}}]"
