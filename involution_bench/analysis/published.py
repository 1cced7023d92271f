"""The README's and the docs' result tables, generated from the committed `results/`.

A generated table sits between markers in its page:

    <!-- results-table: NAME (generated from results/ by `make docs`; a test checks it) -->
    | ... |
    <!-- /results-table -->

`make docs` rewrites every marked table from the run folders in `results/`
(`python -m involution_bench.analysis.published README.md docs/*.md`), and
`tests/test_published.py` fails when a page's table differs from what the
results give: the numbers cannot drift from the runs behind them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from involution_bench.analysis import full_study
from involution_bench.analysis.compare import comparison
from involution_bench.analysis.measures import robustness_report
from involution_bench.analysis.robustness import (
    mean_std_text,
    measure_values,
    relative_mce,
    welch_text,
)
from involution_bench.analysis.rows import Row, metric_value
from involution_bench.analysis.tables import markdown_lines
from involution_bench.runs import find_runs, read_run

MARKER = re.compile(
    r"(<!-- results-table: (?P<name>[a-z0-9-]+)[^\n]*-->\n)(?P<body>.*?)(<!-- /results-table -->)",
    re.S,
)
MEASURE_TITLES = {
    "corruption_accuracy": "corruption accuracy ({sets} CIFAR-10-C-style sets)",
    "consistency": "consistency (two circular shifts, up to 3 px)",
    "worst_of_k": "worst of 10 translations (up to 3 px)",
    "ece": "ECE, clean (15 bins; lower is better)",
    "corruption_ece": "ECE, corrupted (mean over the sets)",
}


def load_rows(root: Path, baseline: str) -> list[Row]:
    return comparison([read_run(path) for path in find_runs(root)], baseline=baseline)


def robustness_table(rows: list[Row]) -> str:
    """Measures down, rows across (the baseline first), then each other row's Welch
    difference from the baseline and its p-value."""
    base = next(row for row in rows if row.is_baseline)
    others = [row for row in rows if row is not base]
    names = [row.values["name"] for row in (base, *others)]
    header = [
        "measure",
        *(
            f"`{name}` ({len(row.runs)} seeds)"
            for name, row in zip(names, (base, *others), strict=True)
        ),
    ]
    for name in names[1:]:
        header += [f"Δ {name} against {names[0]}, 95% CI", "p"]
    lines = [header, ["---", *["---:"] * (len(header) - 1)]]

    def values_of(row: Row, key: str) -> list[float]:
        if key == "test_accuracy":
            return [v for run in row.runs if (v := metric_value(run, key)) is not None]
        return measure_values(row, key)

    report = next(r for row in rows for run in row.runs if (r := robustness_report(run)))
    corruptions = report.get("corruptions") or {}
    sets = f"{len(corruptions.get('names', ()))} x {len(corruptions.get('severities', ()))}"
    for key, title in (("test_accuracy", "clean test accuracy"), *MEASURE_TITLES.items()):
        line = [
            title.format(sets=sets),
            *(mean_std_text(values_of(row, key)) for row in (base, *others)),
        ]
        for row in others:
            line += welch_text(values_of(row, key), values_of(base, key))
        lines.append(line)
    mce = ["relative mCE (the baseline's is 100%)", "100%"]
    for row in others:
        value = relative_mce(row, base)
        mce.append("-" if value is None else f"{100 * value:.1f}%")
    lines.append([*mce, *["-"] * (len(header) - len(mce))])
    return markdown_lines(lines)


# name -> what renders it from the results root
TABLES: dict[str, Callable[[Path], str]] = {
    "robustness-article-pair": lambda root: robustness_table(
        load_rows(root / "protocol" / "held-out", "article-conv")
    ),
    "full-study-progress": lambda root: full_study.progress_text(root / full_study.STUDY),
    "full-study-accuracy": lambda root: full_study.accuracy_table(root / full_study.STUDY),
    "full-study-robustness": lambda root: full_study.robustness_table(root / full_study.STUDY),
}


def replace_tables(text: str, results: Path) -> str:
    """`text` with every marked table made anew from `results`."""

    def fresh(match: re.Match) -> str:
        return match.group(1) + TABLES[match.group("name")](results) + match.group(4)

    return MARKER.sub(fresh, text)


def marked_tables(text: str) -> dict[str, str]:
    return {match.group("name"): match.group("body") for match in MARKER.finditer(text)}


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:]:
        page = Path(name)
        page.write_text(replace_tables(page.read_text(encoding="utf-8"), Path("results")), "utf-8")
        print(page)
