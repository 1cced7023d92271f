"""Thousands of runs at a glance: `runs` reads summaries only, `compare` parses one
config per group and draws a readable figure however many rows it has."""

from __future__ import annotations

import builtins
import io
import json
import pathlib

from typer.testing import CliRunner

from involution_bench.analysis import rows as rows_module
from involution_bench.cli import app
from involution_bench.runs.fleet import write_fleet

runner = CliRunner()


def opened_files(monkeypatch) -> list[str]:
    """Every file name opened from here on, whichever way it is opened."""
    names: list[str] = []
    real_open, real_io_open = builtins.open, io.open

    def recording(file, *args, **kwargs):
        names.append(pathlib.Path(str(file)).name)
        return real_open(file, *args, **kwargs)

    def recording_io(file, *args, **kwargs):
        names.append(pathlib.Path(str(file)).name)
        return real_io_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", recording)
    monkeypatch.setattr(io, "open", recording_io)
    return names


def test_runs_reads_neither_the_history_nor_the_model_nor_the_config(tmp_path, monkeypatch):
    write_fleet(tmp_path / "runs", 30, seeds_per_group=10)
    for folder in (tmp_path / "runs").iterdir():
        (folder / "model.keras").write_bytes(b"a model")
    names = opened_files(monkeypatch)
    result = runner.invoke(app, ["runs", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert names.count("summary.json") == 30
    assert not {"history.json", "model.keras", "config.yaml", "best.keras"} & set(names)
    assert result.stdout.count("completed 20/20") == 30  # epochs from the summary


def test_compare_parses_one_config_per_group(tmp_path, monkeypatch):
    write_fleet(tmp_path / "runs", 40, seeds_per_group=10)
    parsed = []
    real = rows_module.current_schema
    monkeypatch.setattr(rows_module, "_CONFIG_KEYS", {})
    monkeypatch.setattr(
        rows_module, "current_schema", lambda config: parsed.append(1) or real(config)
    )
    result = runner.invoke(
        app, ["compare", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 4 and all(len(row["runs"]) == 10 for row in rows)
    assert len(parsed) == 4


def test_compare_without_groups_draws_the_best_rows_and_says_so(tmp_path):
    write_fleet(tmp_path / "runs", 30, seeds_per_group=10)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["compare", str(tmp_path / "runs"), "--no-group", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "UserWarning" not in result.output  # axes never collapse under a legend
    assert len(json.loads((out / "comparison.json").read_text())) == 30  # all rows in files
    assert (out / "comparison.png").stat().st_size > 20_000
    assert (out / "tradeoff.png").stat().st_size > 20_000
