"""The full study's tables and figures, on a small study made from a real run's files.

Each fake member is a copy of a committed held-out run (config, summary,
history, robustness) renamed into one of the study's six configs and given
its own test accuracy, consistency and epoch times, so the tables' numbers
can be checked against plain computations of those values.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from involution_bench.analysis import full_study

SOURCE = next(
    (Path(__file__).resolve().parent.parent / "results" / "protocol" / "held-out").glob(
        "sweep-*-article-conv/m00-*/*/"
    )
)
SEEDS = (42, 43, 44)
# name -> (MACs per image, test accuracies by seed)
MEMBERS = {
    "equal-conv": (4_154_624, (0.80, 0.81, 0.79)),
    "equal-involution": (4_075_008, (0.78, 0.80, 0.77)),
    "equal-attention": (4_068_608, (0.70, 0.72, 0.71)),
    "quarter-conv": (1_094_272, (0.70, 0.69, 0.72)),
    "quarter-involution": (1_099_296, (0.69, 0.70, 0.68)),
    "quarter-attention": (1_069_440, (0.62, 0.64, 0.60)),
}


def fake_member(root: Path, name: str, seed: int, accuracy: float, macs: int, **changes):
    run = root / f"sweep-20261201-000000-{name}" / f"m{seed - 42:02d}-seed={seed}" / f"run-{name}"
    run.mkdir(parents=True)
    config = (SOURCE / "config.yaml").read_text()
    config = config.replace("name: article-conv", f"name: {name}", 1)
    (run / "config.yaml").write_text(config.replace("seed: 42", f"seed: {seed}", 1))
    summary = json.loads((SOURCE / "summary.json").read_text())
    summary.update(name=name, seed=seed, test_accuracy=accuracy, macs_per_image=macs, **changes)
    (run / "summary.json").write_text(json.dumps(summary))
    history = json.loads((SOURCE / "history.json").read_text())
    history["train_seconds"] = [macs / 1e6 + seed - 42] * len(history["train_seconds"])
    (run / "history.json").write_text(json.dumps(history))
    robustness = json.loads((SOURCE / "robustness.json").read_text())
    robustness["consistency"]["value"] = accuracy - 0.1
    (run / "robustness.json").write_text(json.dumps(robustness))
    return run


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("full-study")
    for name, (macs, accuracies) in MEMBERS.items():
        for seed, accuracy in zip(SEEDS, accuracies, strict=True):
            fake_member(root, name, seed, accuracy, macs)
    # A member still training is left out of every table.
    fake_member(root, "equal-conv", 45, 0.1, 4_154_624, status="running")
    return root


def table_rows(text: str) -> list[list[str]]:
    return [line.strip("| ").split(" | ") for line in text.splitlines()[2:]]


def test_the_accuracy_table_gives_each_operator_against_its_budgets_convolution(study):
    rows = table_rows(full_study.accuracy_table(study))
    assert [(row[0], row[1]) for row in rows] == [
        (budget, operator)
        for budget in ("4.15 M", "1.09 M")
        for operator in ("convolution", "involution", "self-attention")
    ]
    for row, (name, (macs, accuracies)) in zip(rows, MEMBERS.items(), strict=True):
        assert row[2] == f"{macs / 1e6:.2f} M" and row[4] == "3"
        mean, std = statistics.fmean(accuracies), statistics.stdev(accuracies)
        assert row[5] == f"{mean:.4f} ± {std:.4f}"
        half = stats.t.ppf(0.975, 2) * std / np.sqrt(3)
        assert row[6] == f"[{mean - half:.4f}, {mean + half:.4f}]"
        base = MEMBERS[name.split("-")[0] + "-conv"][1]
        if name.endswith("-conv"):
            assert row[7:9] == ["(baseline)", "-"]
        else:
            p_value = stats.ttest_ind(accuracies, base, equal_var=False).pvalue
            assert row[8] == f"{p_value:.2g}"
            assert row[7].startswith(f"{mean - statistics.fmean(base):+.4f} [")
        # train s/epoch: each run's epochs took macs/1e6 + (seed - 42) seconds.
        assert row[9] == f"{macs / 1e6 + 1:.1f}"


def test_the_robustness_table_compares_each_measure_with_the_convolution(study):
    rows = table_rows(full_study.robustness_table(study))
    assert len(rows) == 6 and rows[0][-1] == "100%"
    equal_conv = [a - 0.1 for a in MEMBERS["equal-conv"][1]]
    equal_inv = [a - 0.1 for a in MEMBERS["equal-involution"][1]]
    p_value = stats.ttest_ind(equal_inv, equal_conv, equal_var=False).pvalue
    consistency = rows[1][3]
    assert consistency == (
        f"{statistics.fmean(equal_inv):.4f} ± {statistics.stdev(equal_inv):.4f} (p {p_value:.2g})"
    )
    assert "(p" not in rows[0][3]  # the baseline is not tested against itself


def test_the_figures_are_written(study, tmp_path):
    written = full_study.write_figures(study, tmp_path)
    assert [path.name for path in written] == ["full-study-macs.png", "full-study-time.png"]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in written)


def test_a_budget_without_its_convolution_is_left_out(tmp_path):
    fake_member(tmp_path, "quarter-involution", 42, 0.7, 1_099_296)
    fake_member(tmp_path, "equal-conv", 42, 0.8, 4_154_624)
    assert list(full_study.study_rows(tmp_path)) == ["equal"]


def test_the_remaining_members_are_named(study):
    names = list(MEMBERS)
    remaining = full_study.remaining_members(study, names, seeds=5)
    # Seeds 45 and 46 of every config remain (seed 45 of equal-conv is only running).
    assert remaining == [f"{name} {seed}" for seed in (45, 46) for name in names]


def test_the_progress_line_counts_the_completed_runs(study, tmp_path):
    line = full_study.progress_text(study)
    assert line.startswith("18 of 30 runs have completed")
    assert "equal-conv 45" in line and "quarter-attention 46" in line
    assert full_study.progress_text(tmp_path / "none").startswith("0 of 30 runs")
    assert full_study.accuracy_table(tmp_path / "none").count("\n") == 2  # the header alone


def test_the_tables_say_what_compare_prints(study, tmp_path):
    # The published numbers against `invbench compare --format json` on the same folders.
    from typer.testing import CliRunner

    from involution_bench.cli import app

    sweeps = sorted(str(path) for path in study.glob("sweep-*-quarter-*"))
    result = CliRunner().invoke(
        app,
        ["compare", *sweeps, "--baseline", "quarter-conv", "-f", "json", "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    printed = {row["name"]: row for row in json.loads(result.stdout)}
    table = table_rows(full_study.accuracy_table(study))[3:]
    for line, name in zip(
        table, ("quarter-conv", "quarter-involution", "quarter-attention"), strict=True
    ):
        row = printed[name]
        accuracy = row["test_accuracy"]
        assert line[5] == f"{accuracy['mean']:.4f} ± {accuracy['std']:.4f}"
        assert line[6] == f"[{row['test_accuracy_ci_low']:.4f}, {row['test_accuracy_ci_high']:.4f}]"
        if name != "quarter-conv":
            assert line[8] == f"{row['p_value']:.2g}"
            low, high = row["difference_ci_low"], row["difference_ci_high"]
            assert line[7] == f"{row['difference']:+.4f} [{low:+.4f}, {high:+.4f}]"
        assert line[3] == f"{round(row['parameters']['mean']):,}"
