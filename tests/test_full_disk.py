"""A full disk and an unwritable folder: one line naming the path and the cause, the run
marked failed with that reason, nothing torn or temporary left, and `--resume`
finishing the run once there is room again."""

from __future__ import annotations

import errno
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import assert_one_line_error, tiny_config
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.data import DATA_DIR_ENV
from involution_bench.runs import RunFolder, load_run

runner = CliRunner()


@pytest.fixture(autouse=True)
def offline_data(monkeypatch, cifar_dir):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))


@contextmanager
def mounted_tmpfs(path: Path, options: str):
    """A small tmpfs at `path` (root only); skips the test where it cannot be had."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def assert_one_line_failure(result, *fragments) -> None:
    """A failed write: exit code 1, one line naming the file and the cause."""
    assert_one_line_error(result, *fragments, exit_code=1)


def leftovers(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if ".tmp" in path.name]


def train(config_path, runs_dir, *extra):
    return runner.invoke(
        app, ["train", "-q", "-c", str(config_path), "--runs-dir", str(runs_dir), *extra]
    )


def check_failed_then_resume(run_dir: Path, config_path, fragment: str) -> None:
    run = load_run(run_dir)
    assert run.status == "failed" and fragment in run.summary.error
    assert not leftovers(run_dir)
    done = run.epochs_done
    result = runner.invoke(app, ["train", "-q", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    run = load_run(run_dir)
    assert run.status == "completed" and run.epochs_done == 3 > done
    assert run.history["val_accuracy"] and len(run.history["loss"]) == 3
    assert (run_dir / "model.keras").is_file() and not leftovers(run_dir)


def test_a_disk_that_fills_during_training(write_config, tmp_path):
    config = write_config(tiny_config(epochs=3, batch_size=8))
    with mounted_tmpfs(tmp_path / "disk", "size=1m") as disk:
        runs_dir = disk / "runs"
        ballast = disk / "ballast"
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        ballast.write_bytes(b"\0" * (free - 96 * 1024))  # room for the small files only
        result = train(config, runs_dir)
        assert_one_line_failure(result, str(runs_dir), "No space left on device")
        (run_dir,) = runs_dir.iterdir()
        ballast.unlink()  # room again
        check_failed_then_resume(run_dir, config, "No space left on device")


def test_an_injected_enospc_names_the_file_keras_did_not(write_config, tmp_path, monkeypatch):
    """Keras' own full-disk error names no file; the run folder's writer adds it."""
    config = write_config(tiny_config(epochs=3, batch_size=8))
    save_model = RunFolder.save_model

    def failing(self, name, save):
        if name == "checkpoints/epoch-0002.keras":

            def full(path):
                Path(path).write_bytes(b"half a model")  # torn: must not survive
                raise OSError(errno.ENOSPC, "No space left on device")

            return save_model(self, name, full)
        return save_model(self, name, save)

    monkeypatch.setattr(RunFolder, "save_model", failing)
    result = train(config, tmp_path / "runs")
    assert_one_line_failure(result, "checkpoints/epoch-0002.keras", "No space left on device")
    monkeypatch.setattr(RunFolder, "save_model", save_model)
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert load_run(run_dir).epochs_done == 1
    check_failed_then_resume(run_dir, config, "epoch-0002.keras: No space left on device")


def test_a_runs_folder_without_write_permission(write_config, tmp_path):
    """Found before any work starts: a bad path, exit 2, as a missing one is."""
    config = write_config(tiny_config(epochs=1, batch_size=8))
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount then
        with mounted_tmpfs(tmp_path / "readonly", "ro,size=1m") as runs_dir:
            result = train(config, runs_dir)
            assert_one_line_error(result, str(runs_dir), "not writable (read-only file system)")
            assert not list(runs_dir.iterdir())
        return
    runs_dir = tmp_path / "readonly"
    runs_dir.mkdir()
    runs_dir.chmod(0o555)
    try:
        result = train(config, runs_dir)
        assert_one_line_error(result, str(runs_dir), "not writable (permission denied)")
    finally:
        runs_dir.chmod(0o755)
