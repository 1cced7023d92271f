"""The README's and the docs' generated result tables equal what the committed results/
give, so that no number can drift from the runs behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from involution_bench.analysis.measures import MEASURES
from involution_bench.analysis.published import (
    MEASURE_TITLES,
    TABLES,
    marked_tables,
    replace_tables,
)

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKED = [
    (page, name, body)
    for page in PAGES
    for name, body in marked_tables(page.read_text(encoding="utf-8")).items()
]


def test_the_readme_has_generated_tables_and_every_one_is_known():
    assert any(page.name == "README.md" for page, _, _ in MARKED)
    assert {name for _, name, _ in MARKED} <= set(TABLES)


@pytest.mark.parametrize("page, name, body", MARKED, ids=lambda v: getattr(v, "name", v))
def test_a_generated_table_is_what_the_results_give(page, name, body):
    assert body == TABLES[name](ROOT / "results"), f"{page.name}: run `make docs`"


def test_replacing_rewrites_only_between_the_markers():
    text = (
        "before\n<!-- results-table: robustness-article-pair (x) -->\n"
        "stale\n<!-- /results-table -->\nafter\n"
    )
    fresh = replace_tables(text, ROOT / "results")
    assert fresh.startswith(
        "before\n<!-- results-table: robustness-article-pair (x) -->\n| measure"
    )
    assert fresh.endswith("<!-- /results-table -->\nafter\n") and "stale" not in fresh


def test_every_robustness_measure_has_a_title():
    assert set(MEASURE_TITLES) == set(MEASURES)
