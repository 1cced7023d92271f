"""The comparison table, seed groups and curves, from hand-made run folders."""

from __future__ import annotations

import csv
import io
import json
import statistics

import numpy as np
import pytest
import yaml
from conftest import make_run

from involution_bench.analysis.compare import comparison
from involution_bench.analysis.listing import listing_cells
from involution_bench.analysis.rows import Stat, mean_curves, row_labels
from involution_bench.analysis.tables import headers, table_cells, to_csv, to_json, to_markdown
from involution_bench.errors import InvbenchError
from involution_bench.runs import load_run


def cells_by_header(cells: list[str]) -> dict[str, str]:
    return dict(zip(headers(), cells, strict=True))


@pytest.fixture
def mixed_runs(tmp_path):
    """A completed run, a shorter failed one, one still running, one with no epoch yet."""
    return [
        load_run(make_run(tmp_path, "a", [0.3, 0.5, 0.4], name="done")),
        load_run(make_run(tmp_path, "b", [0.2], name="broke", status="failed", error="Boom")),
        load_run(make_run(tmp_path, "c", [0.1, 0.2], name="going", status="running", planned=5)),
        load_run(make_run(tmp_path, "d", [], name="fresh", status="running")),
    ]


def test_every_run_is_shown_for_what_it_is(mixed_runs):
    done, broke, going, fresh = map(cells_by_header, table_cells(comparison(mixed_runs)))
    assert done == {
        "run": "done",
        "status": "completed",
        "epochs": "3/3",
        "seeds": "1",
        "params": "13,080",
        "trainable": "13,074",
        "MACs/image": "65,344",
        "validated on": "split",
        "test acc": "0.5000",  # the best epoch's model, tested once
        "test acc (last)": "0.4000",
        "best val acc": "0.5000",
        "best epoch": "2",
        "final val acc": "0.4000",
        "final val loss": "1.7000",
        "s/epoch": "10.0",
        "train img/s": "5,000",
        # no robustness.json: no robustness measures
        "corruption acc": "-",
        "consistency": "-",
        "worst of k": "-",
        "ECE": "-",
        "corruption ECE": "-",
        "test acc 95% CI": "-",  # one seed: no interval
        "n": "1",
    }
    assert (broke["status"], broke["epochs"], broke["best val acc"]) == ("failed", "1/3", "0.2000")
    assert (going["status"], going["epochs"], going["final val acc"]) == (
        "running",
        "2/5",
        "0.2000",
    )
    assert (fresh["status"], fresh["epochs"], fresh["best val acc"]) == ("running", "0/3", "-")


def test_runs_differing_only_in_seed_form_one_row_with_mean_and_spread(tmp_path):
    runs = [
        load_run(make_run(tmp_path, "s1", [0.5, 0.60], seed=1, planned=2)),
        load_run(make_run(tmp_path, "other", [0.9, 0.95], seed=1, planned=2, learning_rate=0.1)),
        load_run(make_run(tmp_path, "s2", [0.5, 0.64], seed=2, planned=2)),
        load_run(make_run(tmp_path, "s3", [0.7, 0.56], seed=3, planned=2)),
    ]
    grouped, other = comparison(runs)
    assert grouped.size == 3 and other.size == 1  # a different learning rate is another config
    best = grouped.values["best_val_accuracy"]
    assert best.mean == pytest.approx(statistics.fmean([0.60, 0.64, 0.70]))
    assert best.std == pytest.approx(statistics.stdev([0.60, 0.64, 0.70]))
    assert best.count == 3
    assert grouped.values["parameters"] == Stat(13080, 0.0, 3)
    cells = cells_by_header(table_cells([grouped])[0])
    assert cells["seeds"] == "1, 2, 3"
    assert cells["n"] == "3"
    assert cells["best val acc"] == f"{best.mean:.4f} ± {best.std:.4f}"
    assert cells["best epoch"] == "1.7 ± 0.6"  # epochs 2, 2, 1
    assert cells["params"] == "13,080"  # no spread to show
    assert [row.size for row in comparison(runs, group=False)] == [1, 1, 1, 1]


def test_a_group_says_how_many_of_its_runs_have_a_value(tmp_path):
    runs = [
        load_run(make_run(tmp_path, "s1", [0.5, 0.6], seed=1)),
        load_run(make_run(tmp_path, "s2", [], seed=2, status="running")),
    ]
    (row,) = comparison(runs)
    cells = cells_by_header(table_cells([row])[0])
    assert cells["status"] in ("completed 1, running 1", "running 1, completed 1")
    assert cells["best val acc"] == "0.6000 (1 of 2)"


def test_mean_curves_average_the_runs_that_reached_each_epoch(tmp_path):
    runs = [
        load_run(make_run(tmp_path, "long", [0.2, 0.4, 0.6])),
        load_run(make_run(tmp_path, "short", [0.4], seed=2)),
    ]
    means, spreads = mean_curves(runs)["val_accuracy"]
    assert means == pytest.approx([0.3, 0.4, 0.6])
    assert spreads == pytest.approx([statistics.stdev([0.2, 0.4]), 0.0, 0.0])


def test_markdown_csv_and_json_carry_the_same_rows(mixed_runs, tmp_path):
    rows = comparison(mixed_runs)
    markdown = to_markdown(rows).splitlines()
    assert markdown[0] == "| " + " | ".join(headers()) + " |"
    assert len(markdown) == 2 + len(rows)
    assert "| done | completed | 3/3 | 1 | 13,080 |" in markdown[2]

    records = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert [r["name"] for r in records] == ["done", "broke", "going", "fresh"]
    assert float(records[0]["best_val_accuracy"]) == 0.5
    assert records[3]["best_val_accuracy"] == "" and records[3]["best_val_accuracy_count"] == "0"

    payload = json.loads(to_json(rows))
    assert payload[0]["best_val_accuracy"] == 0.5
    assert payload[1]["status"] == "failed"
    assert payload[0]["runs"] == [str(tmp_path / "a")]


def test_rows_with_the_same_name_get_distinct_labels(tmp_path):
    runs = [
        load_run(make_run(tmp_path, "x", [0.5])),
        load_run(make_run(tmp_path, "y", [0.5], learning_rate=0.1)),
        load_run(make_run(tmp_path, "z", [0.5], name="conv")),
        load_run(make_run(tmp_path, "z2", [0.5], name="conv", seed=2)),
    ]
    assert row_labels(comparison(runs)) == ["inv (x)", "inv (y)", "conv, mean of 2"]


def test_listing_names_folders_relative_to_the_root(mixed_runs, tmp_path):
    first = listing_cells(mixed_runs, tmp_path)[0]
    assert first == ["a", "completed", "3/3", "0.5000", "2026-11-26 00:00"]


def test_a_key_added_since_an_older_run_does_not_split_its_seeds(tmp_path):
    from conftest import tiny_config

    from involution_bench.analysis.rows import group_key

    def run_with(folder, seed, **train):
        path = make_run(tmp_path, folder, [0.5, 0.6], seed=seed, planned=2)
        config = tiny_config(**train)
        config["seed"] = seed
        (path / "config.yaml").write_text(yaml.safe_dump(config))
        return load_run(path)

    newer = run_with("newer", 1, label_smoothing=0.0)
    older = run_with("older", 2)  # written before train.label_smoothing existed
    assert "label_smoothing" not in older.config["train"]
    smoothed = run_with("smoothed", 3, label_smoothing=0.1)
    assert group_key(older) == group_key(newer) != group_key(smoothed)


# Student's t quantile t(0.975, 2), from a printed table.
T_975_2 = 4.302652729911275


def seed_group(root, name: str, bests: list[float], **extra) -> list:
    """Runs of one config over seeds 1, 2, ..., whose best val accuracies are `bests`."""
    return [
        load_run(make_run(root, f"{name}{seed}", [best - 0.1, best], name=name, seed=seed, **extra))
        for seed, best in enumerate(bests, start=1)
    ]


def test_each_group_gets_the_student_t_interval_of_its_mean(tmp_path):
    (row,) = comparison(seed_group(tmp_path, "inv", [0.70, 0.72, 0.74]))
    # mean 0.72, sample std 0.02, n 3: 0.72 -/+ t(0.975, 2) * 0.02 / sqrt(3)
    half = T_975_2 * 0.02 / 3**0.5
    assert row.interval.mean == pytest.approx(0.72)
    assert (row.interval.low, row.interval.high) == pytest.approx((0.72 - half, 0.72 + half))
    assert cells_by_header(table_cells([row])[0])["test acc 95% CI"] == (
        f"[{0.72 - half:.4f}, {0.72 + half:.4f}]"
    )


def test_a_difference_from_the_baseline_follows_welch(tmp_path):
    stats = pytest.importorskip("scipy.stats")
    base = seed_group(tmp_path, "conv", [0.60, 0.61, 0.63], learning_rate=0.1)
    better = seed_group(tmp_path, "inv", [0.70, 0.72, 0.75])
    same = seed_group(tmp_path, "inv2", [0.59, 0.62, 0.64], learning_rate=0.2)
    rows = comparison([*base, *better, *same], baseline="conv")
    by_name = {row.values["name"]: row for row in rows}
    assert by_name["conv"].is_baseline and by_name["conv"].versus is None
    for name, values in (("inv", [0.70, 0.72, 0.75]), ("inv2", [0.59, 0.62, 0.64])):
        reference = stats.ttest_ind(values, [0.60, 0.61, 0.63], equal_var=False)
        interval = reference.confidence_interval(0.95)
        versus = by_name[name].versus
        assert versus.difference == pytest.approx(np.mean(values) - np.mean([0.60, 0.61, 0.63]))
        assert versus.p_value == pytest.approx(reference.pvalue)
        assert (versus.low, versus.high) == pytest.approx((interval.low, interval.high))
    assert by_name["inv"].versus.verdict() == "higher"
    assert by_name["inv2"].versus.verdict() == "within noise"

    cells = dict(zip(headers(rows), table_cells(rows)[2], strict=True))
    assert cells["vs baseline"] == "within noise" and cells["Δ test acc"].startswith("+")
    assert dict(zip(headers(rows), table_cells(rows)[0], strict=True))["Δ test acc"] == ("baseline")
    (record,) = [r for r in csv.DictReader(io.StringIO(to_csv(rows))) if r["name"] == "inv"]
    assert float(record["p_value"]) == pytest.approx(by_name["inv"].versus.p_value)
    assert record["within_noise"] == "False"
    payload = {entry["name"]: entry for entry in json.loads(to_json(rows))}
    assert payload["inv2"]["within_noise"] is True and payload["conv"]["baseline"] is True
    assert "| vs baseline |" in to_markdown(rows).splitlines()[0]


def test_a_baseline_that_names_no_row_is_refused(tmp_path):
    runs = seed_group(tmp_path, "inv", [0.70, 0.72])
    with pytest.raises(InvbenchError, match="no row or run is named 'cnn'"):
        comparison(runs, baseline="cnn")


def test_compare_baseline_through_the_cli(tmp_path):
    from typer.testing import CliRunner

    from involution_bench.cli import app

    seed_group(tmp_path / "runs", "conv", [0.60, 0.61, 0.63], learning_rate=0.1)
    seed_group(tmp_path / "runs", "inv", [0.70, 0.72, 0.75])
    out = tmp_path / "out"
    arguments = ["compare", str(tmp_path / "runs"), "--out", str(out), "--baseline", "conv"]
    shown = CliRunner().invoke(app, arguments)
    assert shown.exit_code == 0, shown.output
    assert "higher" in shown.stdout and "baseline" in shown.stdout
    saved = {entry["name"]: entry for entry in json.loads((out / "comparison.json").read_text())}
    assert saved["inv"]["p_value"] < 0.05 and saved["conv"]["baseline"] is True
    assert "| vs baseline |" in (out / "comparison.md").read_text()


def test_a_one_epoch_comparison_figure_shows_its_points_at_epoch_1(tmp_path):
    from involution_bench.analysis.plots import comparison_figure
    from involution_bench.analysis.rows import mean_curves

    rows = comparison([load_run(make_run(tmp_path, "a", [0.3], planned=1))])
    figure = comparison_figure(row_labels(rows), [mean_curves(row.runs) for row in rows])
    for axes in figure.axes:
        assert list(axes.get_xticks()) == [1]
        assert all(line.get_marker() == "o" for line in axes.get_lines())


def test_the_pareto_front_keeps_what_nothing_beats_on_cost_and_accuracy():
    from involution_bench.analysis.plots import pareto_front

    points = [(10, 0.5), (5, 0.4), (20, 0.45), (30, 0.7), (5, 0.3), (40, 0.7)]
    assert pareto_front(points) == [(5, 0.4), (10, 0.5), (30, 0.7)]


def test_the_tradeoff_figure_has_a_labelled_point_per_row_on_three_costs(tmp_path):
    from involution_bench.analysis.plots import tradeoff_figure

    runs = [
        *seed_group(tmp_path, "conv", [0.60, 0.61, 0.63], learning_rate=0.1),
        *seed_group(tmp_path, "inv", [0.70, 0.72, 0.75], macs_per_image=99_999),
    ]
    figure = tradeoff_figure(comparison(runs))
    assert [axes.get_xlabel() for axes in figure.axes] == [
        "multiply-adds per image",
        "parameters",
        "training seconds per epoch",
    ]
    for axes in figure.axes:
        assert sorted(text.get_text() for text in axes.texts) == ["conv", "inv"]
    macs_axes = figure.axes[0]
    assert macs_axes.get_xscale() == "linear"  # 65,344 to 99,999: within a decade
    front = [line for line in macs_axes.get_lines() if line.get_label() == "Pareto front"]
    assert len(front) == 1 and list(front[0].get_xdata()) == [65344, 99_999]


def test_a_baseline_run_folder_may_be_spelled_any_way(tmp_path, monkeypatch):
    # Two groups with one name (the same config in two precisions, say): only a
    # folder tells them apart, and a shell glob's trailing slash or an absolute
    # path must still name it.
    base = seed_group(tmp_path / "a", "conv", [0.60, 0.61], learning_rate=0.1)
    runs = [*base, *seed_group(tmp_path / "b", "conv", [0.70, 0.72])]
    monkeypatch.chdir(tmp_path)
    folder = base[0].path
    for spelling in (f"{folder.relative_to(tmp_path)}/", str(folder.resolve())):
        rows = comparison(runs, baseline=spelling)
        (chosen,) = [row for row in rows if row.is_baseline]
        assert folder in [run.path for run in chosen.runs]


def test_compare_of_a_sweep_fits_a_100_column_terminal_without_cutting_a_cell(tmp_path):
    from conftest import make_sweep
    from typer.testing import CliRunner

    from involution_bench.cli import app

    sweep = make_sweep(tmp_path, "equal-attention", "model.layers.0.involution.kernel_size", [3, 5])
    result = CliRunner().invoke(
        app,
        ["compare", str(sweep), "--baseline", "kernel_size=3", "--out", str(tmp_path / "c")],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 100
    assert "…" not in result.stdout
    header = next(line for line in lines if "kernel_size" in line)
    for column in ("run", "params", "MACs", "test acc", "95% CI", "Δ", "p", "vs baseline"):
        assert column in header
    (row,) = [
        line for line in lines if line.lstrip().startswith("equal-attention") and " 5 " in line
    ]
    assert row.split() == [
        "equal-attention",
        "5",
        "13.1",
        "K",
        "65.3",
        "K",
        "0.6625",
        "±",
        "0.0148",
        "0.5291\N{EN DASH}0.7959",
        "+0.0100",
        "0.57",
        "within",
        "noise",
    ]


def test_runs_names_each_sweep_member_by_its_values(tmp_path):
    from conftest import make_sweep
    from typer.testing import CliRunner

    from involution_bench.cli import app

    sweep = make_sweep(tmp_path, "rednet", "model.layers.0.involution.kernel_size", [3, 7])
    result = CliRunner().invoke(app, ["runs", str(tmp_path)], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    for member in (
        "m00 kernel_size=3 seed=42",
        "m01 kernel_size=7 seed=42",
        "m02 kernel_size=3 seed=43",
        "m03 kernel_size=7 seed=43",
    ):
        assert member in result.stdout
    assert sweep.name in result.stdout
    assert max(map(len, result.stdout.splitlines())) <= 100 and "…" not in result.stdout


def test_the_columns_help_names_every_column_key():
    import typer.main

    from involution_bench.analysis.tables import TERMINAL_COLUMNS
    from involution_bench.cli import app

    command = typer.main.get_command(app).commands["compare"]
    option = next(param for param in command.params if "--columns" in param.opts)
    named = {word.strip(" .") for word in option.help.split(":", 1)[1].split(",")}
    assert named == set(TERMINAL_COLUMNS)


def test_the_comparison_bands_stay_in_range_and_a_loss_spike_takes_a_log_scale():
    from involution_bench.analysis.plots import comparison_figure, history_figure

    def curves(first_val_loss):
        return {
            "loss": ([2.0, 1.0, 0.8], [0.5, 0.1, 0.1]),
            "val_loss": ([first_val_loss, 1.2, 0.9], [90.0, 0.1, 0.1]),  # one seed's spike
            "accuracy": ([0.3, 0.5, 0.6], [0.05, 0.05, 0.05]),
            "val_accuracy": ([0.9, 0.95, 0.99], [0.2, 0.2, 0.2]),
        }

    spiked = comparison_figure(["inv"], [curves(56.0)])
    loss_axes, accuracy_axes = spiked.axes[:2]
    assert loss_axes.get_yscale() == "log" and accuracy_axes.get_yscale() == "linear"
    for axes, (low, high) in ((loss_axes, (0.0, np.inf)), (accuracy_axes, (0.0, 1.0))):
        bands = [path.vertices[:, 1] for band in axes.collections for path in band.get_paths()]
        assert len(bands) == 2  # train and validation
        assert all(np.all((band >= low) & (band <= high)) for band in bands)
    assert max(band.max() for band in bands) == 1.0  # 0.99 + 0.2, cut at 1
    calm = comparison_figure(["inv"], [curves(3.0)])
    assert calm.axes[0].get_yscale() == "linear"
    history = {"loss": [2.0, 1.0, 0.8], "val_loss": [164.9, 5.8, 0.9]}  # one run's loss.png
    assert history_figure(history, "loss", "inv").axes[0].get_yscale() == "log"
    history["val_loss"][0] = 2.5
    assert history_figure(history, "loss", "inv").axes[0].get_yscale() == "linear"
