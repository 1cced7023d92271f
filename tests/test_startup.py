"""First contact: a CLI that answers without TensorFlow, a quiet terminal, damaged runs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer.main
from conftest import make_run, tiny_config
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.data import DATA_DIR_ENV
from involution_bench.system.quiet import filtered_stderr, is_chatter

runner = CliRunner()
INVBENCH = Path(sys.executable).with_name("invbench")


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def test_importing_the_cli_loads_neither_tensorflow_nor_keras():
    result = python("""
        import sys
        import involution_bench, involution_bench.cli
        print([name for name in ("tensorflow", "keras") if name in sys.modules])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_commands_that_read_runs_and_configs_never_load_tensorflow(tmp_path):
    make_run(tmp_path / "runs", "20261126-000001-inv", [0.3, 0.4], seed=1)
    make_run(tmp_path / "runs", "20261126-000002-inv", [0.35, 0.45], seed=2)
    result = python(f"""
        import json, sys
        from pathlib import Path
        from typer.testing import CliRunner
        from involution_bench.cli import app
        runner = CliRunner()
        listed = runner.invoke(app, ["runs", {str(tmp_path / "runs")!r}])
        compared = runner.invoke(
            app, ["compare", {str(tmp_path / "runs")!r}, "--out", {str(tmp_path / "out")!r},
                  "--format", "json"]
        )
        runs = sorted(str(path) for path in Path({str(tmp_path / "runs")!r}).iterdir())
        differed = runner.invoke(app, ["diff", *runs])
        shown = runner.invoke(app, ["config", "configs/inv.yaml"])
        print(json.dumps({{
            "codes": [listed.exit_code, compared.exit_code, differed.exit_code, shown.exit_code],
            "rows": len(json.loads(compared.stdout)),
            "loaded": [name for name in ("tensorflow", "keras") if name in sys.modules],
        }}))
    """)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"codes": [0, 0, 0, 0], "rows": 1, "loaded": []}


def command_paths(command=None, prefix=()) -> list[tuple[str, ...]]:
    """Every command and subcommand of the app, as the words a user types."""
    command = command or typer.main.get_command(app)
    paths = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        paths += command_paths(sub, (*prefix, name))
    return paths


def test_the_installed_script_and_every_help_answer_quietly():
    if not INVBENCH.is_file():
        pytest.skip("invbench is not installed beside this Python")
    paths = command_paths()
    assert {("train",), ("runs",), ("compare",), ("bench", "cli")} <= set(paths)
    for path in paths:
        result = subprocess.run([INVBENCH, *path, "--help"], capture_output=True, text=True)
        assert result.returncode == 0, (path, result.stderr)
        assert "Usage: invbench" in result.stdout
        assert result.stderr == "", path


def test_training_prints_only_invbench_lines_on_stderr(tmp_path, cifar_dir, write_config):
    """TensorFlow's start-up chatter stays off the terminal of a real `invbench train`."""
    path = write_config(tiny_config(epochs=1))
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    command = ["train", "-q", "-c", str(path), "--runs-dir", str(tmp_path / "runs")]
    result = subprocess.run(
        [sys.executable, "-c", "from involution_bench.cli import app; app()", *command],
        capture_output=True,
        text=True,
        env={**environment, DATA_DIR_ENV: str(cifar_dir)},
    )
    assert result.returncode == 0, result.stderr
    assert "best val_accuracy" in result.stdout
    foreign = [line for line in result.stderr.splitlines() if not line.startswith("invbench: ")]
    assert foreign == []


def test_chatter_is_held_back_and_real_errors_pass(capfd):
    chatter = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795956458.318671    2238 port.cc:153] oneDNN custom operations are on.\n"
        "I0000 00:00:1795956458.318962    2238 cudart_stub.cc:31] Could not find cuda drivers\n"
        "E0000 00:00:1795956469.372627    2256 cuda_platform.cc:52] failed call to cuInit: x\n"
    )
    real = "E0000 00:00:1795956469.372627    2256 op_kernel.cc:1] Invalid argument: real\n"
    with filtered_stderr():
        os.write(2, (chatter + real + "a plain Python warning\n").encode())
    err = capfd.readouterr().err
    assert err == real + "a plain Python warning\n"
    assert all(is_chatter(line) for line in chatter.splitlines())


def test_tensorflow_retracing_warnings_are_held_back_and_its_other_warnings_pass(caplog):
    import tensorflow as tf

    from involution_bench.system.quiet import import_tensorflow

    import_tensorflow()
    import_tensorflow()  # twice: one filter, not two
    logger = tf.get_logger()
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logger.warning(
            "5 out of the last 5 calls to <function f at 0x7f> triggered tf.function retracing."
        )
        logger.warning("a real TensorFlow warning")
    assert [record.getMessage() for record in caplog.records] == ["a real TensorFlow warning"]
    assert len(logging.getLogger("tensorflow").filters) == 1


def test_a_failed_import_shows_everything_it_printed(capfd):
    chatter = "I0000 00:00:1795956458.318671    2238 port.cc:153] oneDNN custom operations\n"
    with pytest.raises(ImportError), filtered_stderr():
        os.write(2, chatter.encode())
        raise ImportError("libsomething.so: cannot open shared object file")
    assert capfd.readouterr().err == chatter


def test_a_damaged_run_is_listed_unreadable_and_hides_nothing(tmp_path):
    runs_dir = tmp_path / "runs"
    make_run(runs_dir, "20261126-000001-good", [0.3, 0.4], name="good")
    damaged = make_run(runs_dir, "20261126-000002-damaged", [0.2], name="damaged")
    (damaged / "summary.json").write_text('{"name": "damaged", "sta')  # cut off mid-write

    listed = runner.invoke(app, ["runs", str(runs_dir)])
    assert listed.exit_code == 0, listed.output
    assert "good" in listed.stdout and "unreadable" in listed.stdout
    (reason,) = listed.stderr.strip().splitlines()
    assert reason.startswith(f"unreadable: {damaged}: ") and "cannot be read" in reason

    compared = runner.invoke(
        app, ["compare", str(runs_dir), "--out", str(tmp_path / "out"), "--format", "json"]
    )
    assert compared.exit_code == 0, compared.output
    rows = {row["name"]: row for row in json.loads(compared.stdout)}
    assert rows["good"]["status"] == "completed"
    assert rows["good"]["best_val_accuracy"] == 0.4
    assert rows["20261126-000002-damaged"]["status"] == "unreadable"
    assert "unreadable: " in compared.stderr
    for kind in ("table", "markdown", "csv"):
        shown = runner.invoke(app, ["compare", str(runs_dir), "-f", kind, "--out", str(tmp_path)])
        assert shown.exit_code == 0 and "unreadable" in shown.stdout, shown.output


def test_bench_cli_times_the_commands_that_must_answer_at_once():
    result = runner.invoke(app, ["bench", "cli", "--repeats", "1", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["command"] for row in rows] == ["invbench --help", "invbench runs"]
    for row in rows:
        assert 0 < row["min_seconds"] <= row["median_seconds"] <= row["max_seconds"]
        assert row["machine"]["cpu"] and row["machine"]["vector_isa"]


def test_saved_models_load_whichever_of_keras_and_invbench_is_imported_first(tmp_path):
    path = tmp_path / "model.keras"
    saved = python(f"""
        import keras
        from involution_bench import Involution, SmoothedSparseCrossentropy
        inputs = keras.Input((9, 9, 4))
        model = keras.Model(inputs, Involution(kernel_size=3, groups=2, reduction_ratio=2)(inputs))
        model.compile(loss=SmoothedSparseCrossentropy(0.1))
        model.save({str(path)!r})
    """)
    assert saved.returncode == 0, saved.stderr
    for imports in (
        "import involution_bench\nimport keras",
        "import keras\nimport involution_bench",
    ):
        loaded = python(
            imports + f"\nmodel = keras.saving.load_model({str(path)!r}, safe_mode=True)\n"
            "print(type(model.layers[1]).__name__, type(model.loss).__name__)"
        )
        assert loaded.returncode == 0, loaded.stderr
        assert loaded.stdout.split() == ["Involution", "SmoothedSparseCrossentropy"]


def test_bench_cli_answers_in_a_folder_without_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INVBENCH_RUNS_DIR", raising=False)
    result = runner.invoke(app, ["bench", "cli", "--repeats", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert [row["command"] for row in json.loads(result.stdout)] == [
        "invbench --help",
        "invbench runs",
    ]
    assert not (tmp_path / "runs").exists()
