"""Runs that survive: SIGKILL then resume, SIGINT/SIGTERM, NaN, dead processes, determinism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import sigint_as_a_terminal_delivers_it, start_training, tiny_config, wait_for_epochs
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.data import DATA_DIR_ENV
from involution_bench.runs import load_run

runner = CliRunner()
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


@pytest.fixture(autouse=True)
def offline_data(monkeypatch, cifar_dir):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))


def deterministic_config(epochs: int) -> dict:
    # Batches of 8: 10 steps an epoch, so a signal can land inside one.
    return tiny_config(epochs=epochs, batch_size=8, deterministic=True)


def run_history(run_dir) -> dict:
    return json.loads((run_dir / "history.json").read_text())


def test_killed_mid_epoch_then_resumed_ends_as_if_never_stopped(write_config, tmp_path):
    path = write_config(deterministic_config(epochs=4))
    reference = runner.invoke(
        app, ["train", "-q", "-c", str(path), "--runs-dir", str(tmp_path / "ref")]
    )
    assert reference.exit_code == 0, reference.output
    (reference_dir,) = (tmp_path / "ref").iterdir()

    runs_dir = tmp_path / "runs"
    process = start_training(path, runs_dir)
    run_dir = wait_for_epochs(runs_dir, 1, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = len(run_history(run_dir)["val_accuracy"])
    assert 1 <= kept < 4
    assert load_run(run_dir).status == "died"  # not "running" forever

    resumed = runner.invoke(app, ["train", "--resume", str(run_dir), "-q"])
    assert resumed.exit_code == 0, resumed.output
    history, expected = run_history(run_dir), run_history(reference_dir)
    for key in METRICS:
        assert len(history[key]) == 4
        # Weights, optimizer state and data order came back: the same curves.
        np.testing.assert_allclose(history[key], expected[key], rtol=1e-5, atol=1e-6)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_done"] == 4
    assert [entry["from_epoch"] for entry in summary["resumed"]] == [kept]
    assert not (run_dir / "checkpoints").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_interrupts_cleanly_with_a_resume_hint(signum, write_config, tmp_path):
    path = write_config(deterministic_config(epochs=200))
    runs_dir = tmp_path / "runs"
    process = start_training(path, runs_dir)
    run_dir = wait_for_epochs(runs_dir, 1, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"resume with: invbench train --resume {run_dir}" in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_done"] >= 1
    assert (run_dir / "model.keras").is_file()
    assert "Traceback" not in stderr


def test_resume_refusals(write_config, tmp_path):
    path = write_config(tiny_config(epochs=1))
    runs_dir = tmp_path / "runs"
    assert (
        runner.invoke(app, ["train", "-q", "-c", str(path), "--runs-dir", str(runs_dir)]).exit_code
        == 0
    )
    (run_dir,) = runs_dir.iterdir()
    done = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert done.exit_code == 2 and "is already completed (1 epochs)" in done.stderr

    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    changed = runner.invoke(
        app, ["train", "--resume", str(run_dir), "--set", "train.learning_rate=0.1"]
    )
    assert changed.exit_code == 2
    assert "train.learning_rate: differs from the run's config" in changed.stderr
    # Planned for two, stopped after one: ending at one is a shorter run, not a finished one.
    planned = {**summary, "status": "interrupted", "epochs_planned": 2}
    (run_dir / "summary.json").write_text(json.dumps(planned))
    shorter = runner.invoke(app, ["train", "--resume", str(run_dir), "--set", "train.epochs=1"])
    assert shorter.exit_code == 2 and "is not more than the 1 done" in shorter.stderr
    both = runner.invoke(app, ["train", "--resume", str(run_dir), "-c", str(path)])
    assert both.exit_code == 2 and "give --config FILE" in both.stderr

    # Another replica count would change the global batch and learning rate.
    moved = {**summary, "status": "interrupted", "distribute": {"kind": "none", "replicas": 2}}
    (run_dir / "summary.json").write_text(json.dumps(moved))
    elsewhere = runner.invoke(app, ["train", "--resume", str(run_dir), "--set", "train.epochs=2"])
    assert elsewhere.exit_code == 2
    assert "was trained on 2 replicas and this machine has 1" in elsewhere.stderr
    config_file = run_dir / "config.yaml"
    config_file.write_text(
        config_file.read_text().replace("distribute: none", "distribute: multi_worker")
    )
    cluster = runner.invoke(app, ["train", "--resume", str(run_dir), "--set", "train.epochs=2"])
    assert cluster.exit_code == 2 and "multi_worker, which cannot be resumed" in cluster.stderr


def test_resume_can_lengthen_a_stopped_run(write_config, tmp_path):
    path = write_config(tiny_config(epochs=1))
    runs_dir = tmp_path / "runs"
    runner.invoke(app, ["train", "-q", "-c", str(path), "--runs-dir", str(runs_dir)])
    (run_dir,) = runs_dir.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    # A completed run has no checkpoint left; an interrupted one keeps its last.
    (run_dir / "checkpoints").mkdir()
    (run_dir / "model.keras").rename(run_dir / "checkpoints" / "epoch-0001.keras")
    result = runner.invoke(
        app, ["train", "--resume", str(run_dir), "--set", "train.epochs=3", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert len(run_history(run_dir)["val_accuracy"]) == 3
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["epochs"] == 3


def test_non_finite_loss_fails_the_run_naming_epoch_and_batch(write_config, tmp_path):
    config = tiny_config(epochs=3, optimizer="sgd", learning_rate=1e30)
    path = write_config(config)
    runs_dir = tmp_path / "runs"
    result = runner.invoke(app, ["train", "-q", "-c", str(path), "--runs-dir", str(runs_dir)])
    assert result.exit_code == 1, result.output
    (run_dir,) = runs_dir.iterdir()
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {run_dir}: loss became ")
    assert " at epoch " in line and ", batch " in line and line.endswith("marked failed")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "NonFiniteLoss" in summary["error"]


def test_a_run_whose_process_died_reads_died(tmp_path):
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    run_dir = tmp_path / "20261126-000000-ghost"
    run_dir.mkdir()
    summary = {
        "name": "ghost",
        "status": "running",
        "pid": int(finished.stdout),
        "host": os.uname().nodename,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    assert load_run(run_dir).status == "died"
    listed = runner.invoke(app, ["runs", str(tmp_path)])
    assert "died" in listed.stdout
    alive = {**summary, "pid": os.getpid()}
    (run_dir / "summary.json").write_text(json.dumps(alive))
    assert load_run(run_dir).status == "running"


def test_deterministic_runs_repeat_exactly(write_config, tmp_path):
    path = write_config(deterministic_config(epochs=2))
    for name in ("a", "b"):
        result = runner.invoke(
            app, ["train", "-q", "-c", str(path), "--runs-dir", str(tmp_path / name)]
        )
        assert result.exit_code == 0, result.output
    (first,), (second,) = (tmp_path / "a").iterdir(), (tmp_path / "b").iterdir()
    for key in METRICS:
        assert run_history(first)[key] == run_history(second)[key]


def interrupted_run(write_config, runs_dir):
    """A real run stopped by SIGINT after its first epoch, as a user leaves one."""
    process = start_training(write_config(deterministic_config(epochs=200)), runs_dir)
    run_dir = wait_for_epochs(runs_dir, 1, process)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert load_run(run_dir).status == "interrupted"
    return run_dir


def start_resume(run_dir, epochs: int) -> subprocess.Popen:
    command = "from involution_bench.cli import app; app()"
    arguments = ["train", "-q", "--resume", str(run_dir), "--set", f"train.epochs={epochs}"]
    return subprocess.Popen(
        [sys.executable, "-c", command, *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_a_terminal_delivers_it,
    )


def test_two_resumes_at_once_train_the_run_once(write_config, tmp_path):
    run_dir = interrupted_run(write_config, tmp_path / "runs")
    done = load_run(run_dir).epochs_done
    planned = done + 3
    first, second = start_resume(run_dir, planned), start_resume(run_dir, planned)
    outcomes = [(process.wait(timeout=300), *process.communicate()) for process in (first, second)]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes == [0, 2], outcomes
    (refusal,) = [stderr for code, _, stderr in outcomes if code == 2]
    # Refused by the lock while the other trains, or as completed if it was that quick.
    assert "is being trained by process " in refusal or "is already completed" in refusal
    assert len(refusal.strip().splitlines()) == 1 and "Traceback" not in refusal
    history = run_history(run_dir)
    assert all(len(history[key]) == planned for key in METRICS)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_done"] == planned
    assert [entry["from_epoch"] for entry in summary["resumed"]] == [done]
    assert not (run_dir / ".lock").exists()


def test_a_held_lock_names_its_process_and_a_dead_holder_blocks_nothing(write_config, tmp_path):
    run_dir = interrupted_run(write_config, tmp_path / "runs")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from pathlib import Path;"
            "from involution_bench.runs import RunLock;"
            f"lock = RunLock(Path({str(run_dir)!r})).acquire(); print('locked', flush=True);"
            "time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    refused = runner.invoke(app, ["train", "--resume", str(run_dir), "-q"])
    assert refused.exit_code == 2
    assert f"is being trained by process {holder.pid} on " in refused.stderr
    holder.kill()  # the OS drops its lock; its lock file stays behind
    holder.wait()
    assert (run_dir / ".lock").exists()
    planned = load_run(run_dir).epochs_done + 1
    resumed = runner.invoke(
        app, ["train", "--resume", str(run_dir), "-q", "--set", f"train.epochs={planned}"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert load_run(run_dir).status == "completed"


def test_a_run_folder_from_before_the_house_lists_compares_and_resumes(
    tmp_path, cifar_dir, monkeypatch
):
    """tests/fixtures/run-before-house: a run interrupted after its first epoch by the
    code of 97bd3b7 (flat modules), on the tests' tiny CIFAR-10 copy."""
    import shutil

    run = tmp_path / "runs" / "20261201-100431-before-house"
    shutil.copytree(Path(__file__).parent / "fixtures" / "run-before-house", run)
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    listed = runner.invoke(app, ["runs", str(tmp_path / "runs")])
    assert listed.exit_code == 0 and "interrupted" in listed.stdout, listed.output
    compared = runner.invoke(app, ["compare", str(run), "--out", str(tmp_path / "c"), "-f", "json"])
    assert compared.exit_code == 0, compared.output
    assert json.loads(compared.stdout)[0]["status"] == "interrupted"
    resumed = runner.invoke(app, ["train", "--resume", str(run), "-q"])
    assert resumed.exit_code == 0, resumed.output
    finished = load_run(run)
    assert finished.status == "completed" and finished.epochs_done == 2
    assert finished.summary.resumed[-1]["from_epoch"] == 1
