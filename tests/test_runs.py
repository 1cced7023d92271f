"""Run folders: unique names, atomic writes, reading runs back."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from involution_bench.errors import RunError
from involution_bench.runs import (
    create_run_dir,
    find_runs,
    load_run,
    newest_run,
    write_json,
)

MOMENT = datetime(2026, 11, 26, 12, 30, 5)


def make_run(root, name, stamp=MOMENT, history=None):
    run_dir = create_run_dir(root, name, now=stamp)
    write_json(run_dir / "summary.json", {"name": name, "status": "completed", "epochs_planned": 2})
    write_json(run_dir / "history.json", history or {"val_accuracy": [0.1, 0.2]})
    return run_dir


def test_run_folders_are_unique_within_one_second(tmp_path):
    first = create_run_dir(tmp_path, "inv", now=MOMENT)
    second = create_run_dir(tmp_path, "inv", now=MOMENT)
    third = create_run_dir(tmp_path, "inv", now=MOMENT)
    assert first.name == "20261126-123005-inv"
    assert second.name == "20261126-123005-inv-2"
    assert third.name == "20261126-123005-inv-3"
    assert all(path.is_dir() for path in (first, second, third))


def test_write_json_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"a": list(range(1000))})
    write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_load_run_reads_summary_history_and_config(tmp_path):
    run_dir = make_run(tmp_path, "conv")
    assert load_run(run_dir).config is None  # a run without its config still loads
    (run_dir / "config.yaml").write_text("name: conv\nseed: 3\n")
    run = load_run(run_dir)
    assert run.name == "conv" and run.status == "completed" and run.epochs_done == 2
    assert run.config == {"name": "conv", "seed": 3}


def test_not_a_run_folder(tmp_path):
    with pytest.raises(RunError, match="not a run folder"):
        load_run(tmp_path)
    with pytest.raises(RunError, match="no such folder"):
        load_run(tmp_path / "missing")


def test_damaged_summary(tmp_path):
    run_dir = make_run(tmp_path, "conv")
    (run_dir / "summary.json").write_text("{broken")
    with pytest.raises(RunError, match=r"summary.json: cannot be read"):
        load_run(run_dir)


def test_find_runs_oldest_first_and_newest(tmp_path):
    late = make_run(tmp_path / "b", "late", stamp=datetime(2026, 11, 27))
    early = make_run(tmp_path / "a", "early", stamp=datetime(2026, 11, 25))
    (tmp_path / "not-a-run").mkdir()
    assert find_runs(tmp_path) == [early, late]
    assert find_runs(late) == [late]
    assert newest_run(tmp_path) == late
    with pytest.raises(RunError, match="holds no runs yet"):
        newest_run(tmp_path / "not-a-run")


def test_unwritable_root_is_explained(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunError, match="cannot create the output folder"):
        create_run_dir(blocker / "runs", "x")


def test_export_copies_each_runs_small_files_and_compare_reads_them(tmp_path):
    from conftest import make_sweep
    from typer.testing import CliRunner

    from involution_bench.cli import app

    sweep = make_sweep(tmp_path / "runs", "rednet", "model.layers.0.involution.kernel_size", [3, 7])
    (next(sweep.glob("m00-*/*")) / "model.keras").write_bytes(b"not copied")
    runner = CliRunner()
    exported = runner.invoke(app, ["export", str(tmp_path / "runs"), "--to", str(tmp_path / "res")])
    assert exported.exit_code == 0, exported.output
    copied = sorted(p.relative_to(tmp_path / "res") for p in (tmp_path / "res").rglob("*.*"))
    assert len(copied) == 4 * 3 + 1 and not any(p.suffix == ".keras" for p in copied)
    args = ["--out", str(tmp_path / "c"), "-f", "json"]
    original = runner.invoke(app, ["compare", str(tmp_path / "runs"), *args])
    again = runner.invoke(app, ["compare", str(tmp_path / "res"), *args])
    strip = [{k: v for k, v in row.items() if k != "runs"} for row in json.loads(original.stdout)]
    assert strip == [
        {k: v for k, v in row.items() if k != "runs"} for row in json.loads(again.stdout)
    ]

    # --completed leaves out a member still training.
    running = next(sweep.glob("m01-*/*")) / "summary.json"
    running.write_text(json.dumps({**json.loads(running.read_text()), "status": "running"}))
    only = tmp_path / "only"
    exported = runner.invoke(
        app, ["export", str(tmp_path / "runs"), "--to", str(only), "--completed"]
    )
    assert exported.exit_code == 0, exported.output
    members = sorted(p.parent.parent.name for p in only.rglob("summary.json"))
    everyone = sorted(p.name for p in sweep.glob("m*"))
    assert members == [name for name in everyone if name != running.parent.parent.name]
