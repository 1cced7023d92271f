"""train.distribute: TF_CONFIG handling, and mirrored training on two logical CPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from involution_bench.errors import ConfigError
from involution_bench.ops.native import native_ops
from involution_bench.train.distribute import TF_CONFIG_ENV, distribution, is_chief


@pytest.mark.parametrize(
    ("task_type", "index", "has_chief", "chief"),
    [
        ("chief", 0, True, True),
        ("worker", 0, True, False),  # a named chief outranks worker 0
        ("worker", 0, False, True),
        ("worker", 1, False, False),
        ("evaluator", 0, False, False),
    ],
)
def test_the_chief_is_found_as_tensorflow_finds_it(task_type, index, has_chief, chief):
    assert is_chief({"type": task_type, "index": index, "has_chief": has_chief}) is chief


@pytest.mark.parametrize(
    ("tf_config", "problem"),
    [
        (None, "not set"),
        ("{not json", "not a usable cluster description"),
        (json.dumps({"cluster": {"worker": ["a:1"]}}), "not a usable cluster description"),
        (
            json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}),
            "task index 3 is not in its cluster",
        ),
    ],
)
def test_multi_worker_needs_a_usable_tf_config(monkeypatch, tf_config, problem):
    if tf_config is None:
        monkeypatch.delenv(TF_CONFIG_ENV, raising=False)
    else:
        monkeypatch.setenv(TF_CONFIG_ENV, tf_config)
    with pytest.raises(ConfigError, match=problem) as caught:
        distribution("multi_worker")
    assert str(caught.value).startswith("TF_CONFIG: ")


def test_no_strategy_is_one_replica():
    dist = distribution("none")
    assert (dist.replicas, dist.is_chief, dist.devices) == (1, True, [])


PLAIN_MODEL = [  # no batch norm: its statistics are per replica, so would differ
    {"conv2d": {"filters": 4, "kernel_size": 3, "padding": "same"}},
    "relu",
    {"max_pool": {"pool_size": 4}},
    "flatten",
    {"dense": {"units": 10}},
]


# Runs in a fresh process: logical devices must be set before TensorFlow starts.
MIRRORED_SCRIPT = """
import json, sys
import keras
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
from pathlib import Path
from involution_bench.config import config_from_dict
from involution_bench.train.loop import train

spec = json.loads(sys.argv[1])
runs = Path(sys.argv[2])
plain_layers = spec["plain_layers"]

def config(name, layers, **train):
    options = {"epochs": 2, "optimizer": "sgd", "momentum": 0.9, **train}
    return config_from_dict({
        "name": name, "seed": 3, "model": {"input_shape": [32, 32, 3], "layers": layers},
        "train": options,
    })

results = {}
mirrored = train(config("mirrored", plain_layers, batch_size=8, learning_rate=0.01,
                        distribute="mirrored"), runs)
single = train(config("single", plain_layers, batch_size=16, learning_rate=0.02), runs)
involution = train(config("involution", spec["involution_layers"], batch_size=8,
                          distribute="mirrored", augment=True), runs)
for name, result in [("mirrored", mirrored), ("single", single), ("involution", involution)]:
    model = keras.saving.load_model(result.run_dir / "model.keras", safe_mode=True)
    results[name] = {
        "summary": result.summary.to_dict(),
        "history": json.loads((result.run_dir / "history.json").read_text()),
        "weights": [w.tolist() for w in model.get_weights()],
    }
print(json.dumps(results))
"""


RESIDUAL_INVOLUTION_MODEL = [  # shaped so that "auto" picks the native kernel on CPU
    {"conv2d": {"filters": 8, "kernel_size": 3, "strides": 2, "padding": "same"}},
    {
        "residual": {
            "layers": [
                {"involution": {"kernel_size": 5, "reduction_ratio": 2}},
                "batch_norm",
                "relu",
            ]
        }
    },
    "global_avg_pool",
    {"dense": {"units": 10}},
]


def test_mirrored_on_two_cpus_matches_one_device_with_the_global_batch(tmp_path, cifar_dir):
    env = {**os.environ, "INVBENCH_DATA_DIR": str(cifar_dir)}
    layers = {"involution_layers": RESIDUAL_INVOLUTION_MODEL, "plain_layers": PLAIN_MODEL}
    spec = json.dumps(layers)
    process = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MIRRORED_SCRIPT), spec, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    results = json.loads(process.stdout.strip().splitlines()[-1])
    mirrored, single = results["mirrored"], results["single"]

    assert mirrored["summary"]["distribute"]["replicas"] == 2
    assert len(mirrored["summary"]["distribute"]["devices"]) == 2
    assert mirrored["summary"]["global_batch_size"] == single["summary"]["global_batch_size"] == 16
    # 8 images on each of 2 replicas at lr 0.01 x 2 is one device's step on 16 at lr 0.02.
    for key in ("loss", "val_loss", "val_accuracy"):
        assert mirrored["history"][key] == pytest.approx(single["history"][key], rel=1e-4)
    for ours, theirs in zip(mirrored["weights"], single["weights"], strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)

    involution = results["involution"]["summary"]
    assert involution["status"] == "completed" and involution["distribute"]["replicas"] == 2
    assert all(v == v for v in results["involution"]["history"]["loss"])  # no NaN
    if native_ops() is not None:
        assert involution["involution_op"] == "native"


WORKER_SCRIPT = """
import json, sys
from pathlib import Path
from involution_bench.config import config_from_dict
from involution_bench.train.loop import train

layers = json.loads(sys.argv[1])
config = config_from_dict({
    "name": "cluster", "seed": 3, "model": {"input_shape": [32, 32, 3], "layers": layers},
    "train": {"epochs": 2, "batch_size": 8, "optimizer": "sgd", "learning_rate": 0.01,
              "distribute": "multi_worker"},
})
result = train(config, Path(sys.argv[2]))
print(json.dumps({"run_dir": str(result.run_dir), "summary": result.summary.to_dict()}))
"""


def free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_two_workers_train_together_and_only_the_chief_writes(tmp_path, monkeypatch, cifar_dir):
    from involution_bench.config import config_from_dict
    from involution_bench.train.loop import train

    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "INVBENCH_DATA_DIR": str(cifar_dir),
            TF_CONFIG_ENV: json.dumps(tf_config),
        }
        runs = tmp_path / f"runs{index}"
        command = [sys.executable, "-c", textwrap.dedent(WORKER_SCRIPT), json.dumps(PLAIN_MODEL)]
        workers.append(
            subprocess.Popen(
                [*command, str(runs)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr[-3000:]
    chief, other = (json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs)

    for result in (chief, other):
        assert result["summary"]["distribute"]["replicas"] == 2  # one CPU on each worker
        assert result["summary"]["global_batch_size"] == 16
        assert result["summary"]["status"] == "completed"
    # Both workers hold the same synchronised model, which is the model one
    # device trains on the global batch at the scaled learning rate.
    monkeypatch.setenv("INVBENCH_DATA_DIR", str(cifar_dir))
    single = train(
        config_from_dict(
            {
                "name": "single",
                "seed": 3,
                "model": {"input_shape": [32, 32, 3], "layers": PLAIN_MODEL},
                "train": {"epochs": 2, "batch_size": 16, "optimizer": "sgd", "learning_rate": 0.02},
            }
        ),
        tmp_path / "single",
    )
    for key in ("final_val_loss", "final_val_accuracy", "best_val_accuracy"):
        assert chief["summary"][key] == pytest.approx(getattr(single.summary, key), rel=1e-4)
        assert other["summary"][key] == pytest.approx(getattr(single.summary, key), rel=1e-4)
    assert (tmp_path / "runs0").joinpath(chief["run_dir"]).is_dir()
    assert list((tmp_path / "runs0").iterdir()) == [Path(chief["run_dir"])]
    assert not Path(other["run_dir"]).exists()  # the scratch folder is gone
    assert not (tmp_path / "runs1").exists() or not list((tmp_path / "runs1").iterdir())
