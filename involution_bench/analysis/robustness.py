"""The comparison's robustness: each row's measures over seeds, against the baseline's.

For every row (a config over its seeds) and every measure of `measures.MEASURES`
(mean corruption accuracy, consistency, worst-of-k accuracy, clean ECE): the
mean ± sample std, the 95% interval of the mean, and against the baseline row
Welch's difference, its interval and p-value. With a baseline, each row also
gets the relative mCE of Hendrycks & Dietterich (2019), the baseline in
AlexNet's place: per corruption, the row's rise in error over its clean error,
summed over severities, divided by the baseline's; then the mean over
corruptions. Below 100% the row degrades less than the baseline.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from involution_bench.analysis.measures import MEASURES, measure, robustness_report
from involution_bench.analysis.rows import Row, sample_std
from involution_bench.analysis.stats import mean_interval, welch_difference

HEADERS = ("run", "measure", "mean ± std", "95% CI", "Δ", "Δ 95% CI", "p", "n")


def has_robustness(rows: Sequence[Row]) -> bool:
    return any(robustness_report(run) for row in rows for run in row.runs)


def measure_values(row: Row, key: str) -> list[float]:
    values = [measure(robustness_report(run), key) for run in row.runs]
    return [value for value in values if value is not None]


def _errors(row: Row) -> tuple[float, dict[str, list[float]]] | None:
    """The row's mean clean error and, per corruption, its mean error at each severity."""
    reports = [report for run in row.runs if (report := robustness_report(run))]
    reports = [report for report in reports if report.get("corruptions")]
    if not reports:
        return None
    clean = statistics.fmean(1 - report["clean"]["accuracy"] for report in reports)
    names = set.intersection(*(set(r["corruptions"]["by_corruption"]) for r in reports))
    by_corruption = {}
    for name in sorted(names):
        series = [r["corruptions"]["by_corruption"][name]["accuracy"] for r in reports]
        by_corruption[name] = [1 - statistics.fmean(values) for values in zip(*series, strict=True)]
    return clean, by_corruption


def relative_mce(row: Row, baseline: Row) -> float | None:
    """The relative mCE of `row` against `baseline`, as a fraction (1.0 is 100%),
    over the corruptions both have where the baseline degrades at all."""
    mine, theirs = _errors(row), _errors(baseline)
    if mine is None or theirs is None:
        return None
    ratios = []
    for name, errors in mine[1].items():
        if name not in theirs[1]:
            continue
        base_rise = sum(error - theirs[0] for error in theirs[1][name])
        if base_rise > 0:
            ratios.append(sum(error - mine[0] for error in errors) / base_rise)
    return statistics.fmean(ratios) if ratios else None


def mean_std_text(values: list[float]) -> str:
    """ "0.7180 ± 0.0068" (the sample std), "0.7180" from one value, "-" from none."""
    if not values:
        return "-"
    mean = statistics.fmean(values)
    return f"{mean:.4f} ± {sample_std(values):.4f}" if len(values) > 1 else f"{mean:.4f}"


def welch_text(values: list[float], base: list[float]) -> tuple[str, str]:
    """Welch's difference `values - base` as "+0.0120 [-0.0050, +0.0290]" and its
    p-value as "0.14"; without an interval (one value a side, or no spread) the
    difference alone and "-"; "-", "-" from no values."""
    if not values or not base:
        return "-", "-"
    versus = welch_difference(values, base)
    if versus.low is None or versus.p_value is None:
        return f"{versus.difference:+.4f}", "-"
    interval = f"[{versus.low:+.4f}, {versus.high:+.4f}]"
    return f"{versus.difference:+.4f} {interval}", f"{versus.p_value:.2g}"


def _worst_of_header(row: Row) -> str:
    """ "worst of 10" where the row's runs agree on k."""
    ks = {(robustness_report(run) or {}).get("worst_of_k", {}).get("k") for run in row.runs}
    ks.discard(None)
    return f"worst of {ks.pop()}" if len(ks) == 1 else "worst of k"


def _span(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"{low:.4f}\N{EN DASH}{high:.4f}"


def robustness_lines(rows: Sequence[Row], labels: Sequence[str]) -> list[list[str]]:
    """The long table: one line per row and measure, then the row's relative mCE when
    there is a baseline."""
    base = next((row for row in rows if row.is_baseline), None)
    lines = []
    for row, label in zip(rows, labels, strict=True):
        if not any(robustness_report(run) for run in row.runs):
            continue
        for key, (header, _) in MEASURES.items():
            values = measure_values(row, key)
            interval = mean_interval(values) if values else None
            delta = ["-", "-", "-"]
            if base is not None and row is base:
                delta = ["baseline", "-", "-"]
            elif base is not None and values and (base_values := measure_values(base, key)):
                versus = welch_difference(values, base_values)
                p = "-" if versus.p_value is None else f"{versus.p_value:.3g}"
                span = "-" if versus.low is None else f"[{versus.low:+.4f}, {versus.high:+.4f}]"
                delta = [f"{versus.difference:+.4f}", span, p]
            ci = _span(interval.low, interval.high) if interval else "-"
            if key == "worst_of_k":
                header = _worst_of_header(row)
            lines.append([label, header, mean_std_text(values), ci, *delta, str(len(values))])
        if base is not None and row is not base:
            value = relative_mce(row, base)
            shown = "-" if value is None else f"{100 * value:.1f}%"
            lines.append([label, "relative mCE", shown, "-", "-", "-", "-", str(row.size)])
    return lines


def robustness_fields(row: Row) -> dict[str, Any]:
    """Raw numbers per measure for files: mean, std, interval."""
    fields: dict[str, Any] = {}
    for key in MEASURES:
        values = measure_values(row, key)
        interval = mean_interval(values) if values else None
        fields[key] = {
            "mean": interval.mean if interval else None,
            "std": sample_std(values) if len(values) > 1 else None,
            "ci_low": interval.low if interval else None,
            "ci_high": interval.high if interval else None,
            "runs": len(values),
        }
    return fields
