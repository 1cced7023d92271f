"""The comparison: runs grouped into rows, each with its interval and, against a
baseline row, its Welch difference; a sweep's grid keys as columns of their own."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from involution_bench.analysis.rows import DEFAULT_METRIC, METRICS, Row, group_runs, make_row
from involution_bench.analysis.significance import with_significance
from involution_bench.config import config_values
from involution_bench.errors import InvbenchError
from involution_bench.runs import Run


def comparison(
    runs: Iterable[Run],
    group: bool = True,
    baseline: str | None = None,
    swept_keys: Sequence[str] = (),
    metric: str = DEFAULT_METRIC,
) -> list[Row]:
    """The table's rows: runs grouped over seeds, or one row per run, each with the
    95% interval of its `metric` (by default the test accuracy of each run's chosen
    model) and, given a baseline row (a run name or folder), its Welch difference
    from it. `swept_keys` (a sweep's grid) become columns of their own."""
    if metric not in METRICS:
        raise InvbenchError("--metric", f"must be one of {', '.join(METRICS)}, not {metric!r}")
    runs = list(runs)
    groups = group_runs(runs) if group else [(run,) for run in runs]
    rows = [make_row(members) for members in groups]
    rows = [
        replace(row, swept=swept_values(row.runs[0], swept_keys), metric=metric) for row in rows
    ]
    return with_significance(rows, baseline)


def swept_values(run: Run, keys: Sequence[str]) -> dict[str, Any]:
    """Each swept key's value in the run's config (None where the run has none)."""
    values = {}
    for key in keys:
        found = config_values(run.config or {}, key)
        values[key] = found[0] if len(set(map(repr, found))) == 1 else (found or None)
    return values
