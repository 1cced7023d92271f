"""Shared fixtures: a tiny CIFAR-10 copy in the official layout, and tiny configs."""

from __future__ import annotations

import copy
import json
import os
import pickle
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TRAIN_PER_BATCH = 16
TEST_IMAGES = 24


def make_batch(rng: np.random.Generator, count: int, label: str) -> dict:
    return {
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, count)],
        b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(count)],
    }


def write_cifar_folder(root: Path, seed: int = 0) -> Path:
    """`root/cifar-10-batches-py/` with 5 x 16 training and 24 test images."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for index in range(1, 6):
        batch = make_batch(rng, TRAIN_PER_BATCH, f"training batch {index} of 5")
        (folder / f"data_batch_{index}").write_bytes(pickle.dumps(batch, protocol=2))
    batch = make_batch(rng, TEST_IMAGES, "testing batch 1 of 1")
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    return root


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory) -> Path:
    return write_cifar_folder(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="session")
def cifar_archive_dir(cifar_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar_archive")
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(cifar_dir / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return root


TINY_MODEL = [
    {"involution": {"kernel_size": 3, "reduction_ratio": 1, "name": "inv_1"}},
    "relu",
    {"max_pool": {"pool_size": 4}},
    {"conv2d": {"filters": 4, "kernel_size": 3, "padding": "same"}},
    {"max_pool": {"pool_size": 4}},
    "flatten",
    {"dense": {"units": 10}},
]


def load_cifar10(folder: Path):
    """A CIFAR-10 copy in `folder`, through the dataset registry."""
    from involution_bench.data import load_dataset

    return load_dataset("cifar10", str(folder))


def tiny_config(name: str = "tiny", **train) -> dict:
    """The article's kind of config, in miniature; like configs/conv.yaml and inv.yaml it
    validates on the test set (`data.validation: test`): tests of the held-out split
    say so themselves."""
    return {
        "name": name,
        "seed": 7,
        "data": {"validation": "test"},
        "model": {"input_shape": [32, 32, 3], "layers": copy.deepcopy(TINY_MODEL)},
        "train": {"epochs": 2, "batch_size": 32, **train},
    }


def with_train(**train) -> dict:
    config = tiny_config()
    config["train"].update(train)
    return config


def with_layer(index: int, entry) -> dict:
    config = tiny_config()
    config["model"]["layers"][index] = entry
    return config


def assert_one_line_error(result, *fragments, exit_code: int = 2) -> None:
    """Exit code 2 (or `exit_code`: 1 for a failing disk) and a single line on stderr
    holding every fragment, no traceback."""
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def write_config(tmp_path):
    """Write a config mapping (or raw text) to a YAML file and return its path."""

    def write(content, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text)
        return path

    return write


def make_run(
    root: Path,
    folder: str,
    accuracies: list[float],
    *,
    name: str = "inv",
    seed: int = 1,
    status: str = "completed",
    planned: int = 3,
    learning_rate: float = 0.001,
    **summary,
) -> Path:
    """A run folder as training leaves it, written by the run folder's own writer, with
    a valid config and numbers derived from `accuracies`: chosen on a held-out split,
    and, once completed, tested with the best epoch's model (`validation=None` in
    `summary` makes it a run from before validation splits, chosen on test)."""
    from involution_bench.config import config_from_dict, dump_config
    from involution_bench.runs import RunSummary, RunWriter

    path = root / folder
    path.mkdir(parents=True)
    config = tiny_config(name)
    config["seed"] = seed
    config["data"] = {}  # the default protocol: chosen on a held-out split
    config["train"].update(epochs=planned, learning_rate=learning_rate)
    history = {
        "loss": [2 - a for a in accuracies],
        "accuracy": [a + 0.05 for a in accuracies],
        "val_loss": [2.1 - a for a in accuracies],
        "val_accuracy": accuracies,
        "epoch_seconds": [10.0] * len(accuracies),
        "train_seconds": [9.0] * len(accuracies),
    }
    numbers = {}
    if accuracies:
        best = max(range(len(accuracies)), key=accuracies.__getitem__)
        numbers = {
            "epochs_done": len(accuracies),
            "best_val_accuracy": accuracies[best],
            "best_epoch": best + 1,
            "final_val_accuracy": accuracies[-1],
            "final_val_loss": history["val_loss"][-1],
            "seconds_per_epoch": 10.0,
            "images_per_second": 5000.0,
        }
    if accuracies and status == "completed":  # tested once, at completion
        numbers.update(test_accuracy=accuracies[best], test_accuracy_last=accuracies[-1])
    base = {
        "name": name,
        "seed": seed,
        "status": status,
        "epochs_planned": planned,
        "parameters": {"total": 13080, "trainable": 13074, "non_trainable": 6},
        "macs_per_image": 65344,
        "validation": "split",
        "validation_images": 8,
        "started_at": f"2026-11-26T00:00:0{seed}+00:00",
    }
    writer = RunWriter(path, RunSummary(**{**base, **numbers, **summary}), 80, history)
    writer.write_config(dump_config(config_from_dict(config)))
    writer.save()
    return path


def make_sweep(root: Path, name: str, key: str, values: list, seeds=(42, 43)) -> Path:
    """A sweep folder as `invbench sweep` leaves it: `sweep.yaml` and one finished run per
    member, each member's config holding its value at `key` (a plain dotted key)."""
    import yaml

    from involution_bench.config import config_from_dict, dump_config
    from involution_bench.config.keys import apply_override

    folder = root / f"sweep-20261126-000000-{name}"
    members = []
    for seed in seeds:
        for value in values:
            index = len(members)
            member = f"m{index:02d}-{key.rsplit('.', 1)[-1]}={value}-seed={seed}"
            accuracies = [0.5, 0.6 + 0.01 * index + 0.001 * seed]
            run = make_run(
                folder / member,
                f"20261126-0000{index:02d}-{name}",
                accuracies,
                name=name,
                seed=seed,
                planned=2,
            )
            config = yaml.safe_load((run / "config.yaml").read_text())
            apply_override(config, f"{key}={value}")
            (run / "config.yaml").write_text(dump_config(config_from_dict(config)))
            members.append({"index": index, "folder": member, "seed": seed, "values": {key: value}})
    record = {"identity": "x", "grid": {key: values}, "repeat": len(seeds), "members": members}
    (folder / "sweep.yaml").write_text(yaml.safe_dump(record, sort_keys=False))
    return folder


def predict_in_fresh_process(model, inputs: np.ndarray, tmp_path: Path, layer: str, module: str):
    """`model` saved, then loaded in a new Python (`import involution_bench` only) and
    run on `inputs`; its layer `layer` must come back as a class of `module`."""
    import textwrap

    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "inputs.npy", inputs)
    code = f"""
        import numpy as np, keras, involution_bench
        model = keras.saving.load_model({str(path)!r}, safe_mode=True)
        assert type(model.get_layer({layer!r})).__module__ == {module!r}
        inputs = np.load({str(tmp_path / "inputs.npy")!r})
        np.save({str(tmp_path / "out.npy")!r}, model.predict(inputs, verbose=0))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return np.load(tmp_path / "out.npy")


def sigint_as_a_terminal_delivers_it() -> None:
    """A child's SIGINT at its default, so Python makes it a KeyboardInterrupt: a
    harness run in the background (or by a CI runner) ignores SIGINT, and its children
    would inherit that and train through Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_training(config_path, runs_dir) -> subprocess.Popen:
    """`invbench train` in a real child process, as a user would run it."""
    command = "from involution_bench.cli import app; app()"
    arguments = ["train", "-q", "-c", str(config_path), "--runs-dir", str(runs_dir)]
    return subprocess.Popen(
        [sys.executable, "-c", command, *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        preexec_fn=sigint_as_a_terminal_delivers_it,
    )


def wait_for_epochs(runs_dir, count: int, process: subprocess.Popen, timeout: float = 120):
    """The run folder, once its history holds `count` epochs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        for history in runs_dir.glob("*/history.json"):
            try:
                if len(json.loads(history.read_text())["val_accuracy"]) >= count:
                    return history.parent
            except (json.JSONDecodeError, KeyError):
                pass  # never torn (atomic writes), but it may not exist yet
        time.sleep(0.05)
    raise AssertionError("training did not get that far")
