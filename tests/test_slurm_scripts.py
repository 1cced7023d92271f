"""`invbench slurm` without a cluster: the batch scripts it writes, and its errors."""

from __future__ import annotations

import subprocess

from conftest import assert_one_line_error, tiny_config
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.data import DATA_DIR_ENV

runner = CliRunner()


def test_dry_run_writes_the_array_and_the_comparison(
    write_config, tmp_path, monkeypatch, cifar_dir
):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    config = write_config(tiny_config())
    result = runner.invoke(
        app,
        ["slurm", "-c", str(config), "--grid", "train.learning_rate=0.001,0.003", "--repeat", "2",
         "--tasks", "3", "--runs-dir", str(tmp_path / "runs"), "--sbatch=--time=1:00:00",
         "--baseline", "learning_rate=0.001", "--dry-run"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (sweep,) = (tmp_path / "runs").glob("sweep-*-tiny")
    array = (sweep / "slurm" / "sweep.sbatch").read_text()
    compare = (sweep / "slurm" / "compare.sbatch").read_text()
    assert "#SBATCH --array=0-2" in array and "#SBATCH --requeue" in array
    assert "#SBATCH --time=1:00:00" in array and "#SBATCH --time=1:00:00" in compare
    assert '--shard "$((SLURM_ARRAY_TASK_ID + 1))/3"' in array
    assert "--grid=train.learning_rate=0.001,0.003" in array and str(config.resolve()) in array
    assert "scontrol requeue" in array
    assert f"compare {sweep} --out {sweep}/compare --baseline learning_rate=0.001" in compare
    assert f"sbatch --dependency=afterok:$array {sweep}/slurm/compare.sbatch" in result.stdout
    for script in (array, compare):  # valid bash
        assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0

    # The array's tasks find the same sweep folder again: `sweep` with its arguments.
    again = runner.invoke(
        app,
        ["slurm", "-c", str(config), "--grid", "train.learning_rate=0.001,0.003", "--repeat", "2",
         "--tasks", "2", "--runs-dir", str(tmp_path / "runs"), "--dry-run"],
    )  # fmt: skip
    assert again.exit_code == 0 and len(list((tmp_path / "runs").glob("sweep-*"))) == 1


def test_without_sbatch_it_says_where_to_run(write_config, tmp_path, monkeypatch, cifar_dir):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch on it
    config = write_config(tiny_config())
    result = runner.invoke(
        app, ["slurm", "-c", str(config), "--tasks", "2", "--runs-dir", str(tmp_path / "runs")]
    )
    assert_one_line_error(result, "sbatch", "not installed")
    assert not (tmp_path / "runs").exists()  # nothing made before it could be submitted
