"""`invbench bench peer`: the PyTorch peer computes what the Keras model computes."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import tiny_config
from typer.testing import CliRunner

from involution_bench.cli import app
from involution_bench.config import config_from_dict, load_config
from involution_bench.models import build_model

torch = pytest.importorskip("torch")

from involution_bench.bench import peer  # noqa: E402
from involution_bench.bench.peer_modules import build_peer, copy_weights  # noqa: E402

runner = CliRunner()

# Every kind the peer builds, named so that copy_weights can pair them: odd and even
# sizes, TensorFlow's one-sided "same" padding at stride 2, both residual forms.
NAMED_LAYERS = [
    {"conv2d": {"filters": 6, "kernel_size": 3, "strides": 2, "padding": "same", "name": "stem"}},
    {"batch_norm": {"name": "stem_bn", "momentum": 0.9}},
    "relu",
    {
        "residual": {
            "layers": [
                {"conv2d": {"filters": 4, "kernel_size": 1, "use_bias": False, "name": "a1"}},
                {"batch_norm": {"name": "a1_bn"}},
                "relu",
                {
                    "conv2d": {
                        "filters": 8,
                        "kernel_size": 3,
                        "strides": 2,
                        "padding": "same",
                        "name": "a2",
                    }
                },
            ],
            "shortcut": [
                {"conv2d": {"filters": 8, "kernel_size": 1, "strides": 2, "name": "skip"}}
            ],
        }
    },
    "relu",
    {
        "residual": {
            "layers": [
                {"conv2d": {"filters": 8, "kernel_size": 3, "padding": "same", "name": "b1"}}
            ]
        }
    },
    {"max_pool": {"pool_size": 2}},
    "flatten",
    {"dense": {"units": 12, "activation": "relu", "name": "hidden"}},
    {"dense": {"units": 10, "name": "logits"}},
]


def named_layers():
    """NAMED_LAYERS with every default filled in, as a checked config holds them."""
    raw = tiny_config()
    raw["model"]["layers"] = NAMED_LAYERS
    return config_from_dict(raw).layers


@pytest.mark.parametrize("input_shape", [(15, 16, 3), (16, 16, 3)], ids=str)
@pytest.mark.parametrize("training", [False, True])
def test_the_peer_with_copied_weights_gives_the_keras_models_logits(input_shape, training):
    layers = named_layers()  # any input size: odd and even
    model = build_model(layers, input_shape)
    rng = np.random.default_rng(0)
    for weight in model.weights:  # statistics away from 0 and 1, so that they matter
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    network = build_peer(layers, input_shape)
    copy_weights(model, network)
    images = rng.normal(size=(4, *input_shape)).astype("float32")
    expected = model(images, training=training).numpy()
    network.train(training)
    with torch.no_grad():
        logits = network(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_the_resnets_peer_has_its_trainable_parameters():
    config = load_config("configs/resnet.yaml")
    model = build_model(config.layers, config.model.input_shape, config.name)
    keras_count = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    assert sum(p.numel() for p in peer.peer_model(config).parameters()) == keras_count == 92_074


def test_bench_peer_times_invbench_and_both_pytorch_layouts(write_config):
    raw = tiny_config(batch_size=8, optimizer="sgd", momentum=0.9, nesterov=True)
    raw["model"]["layers"] = NAMED_LAYERS
    path = write_config(raw)
    result = runner.invoke(app, ["bench", "peer", "-c", str(path), "--repeats", "1"])
    assert result.exit_code == 0, result.output
    for framework in ("invbench", "pytorch channels_last", "pytorch nchw"):
        assert framework in result.stdout
    assert "TensorFlow" in result.stdout and "PyTorch" in result.stdout
    assert "by round" not in result.stdout
    arguments = ["bench", "peer", "-c", str(path), "--repeats", "1", "--rounds", "2", "--json"]
    rows = json.loads(runner.invoke(app, arguments).stdout)
    assert [row["framework"] for row in rows] == [
        "invbench",
        *(f"pytorch {layout}" for layout in ("channels_last", "nchw")),
    ]
    for row in rows:
        rounds = row["round_against_invbench"]
        assert len(rounds) == 2 and row["against_invbench"] == pytest.approx(sum(rounds) / 2)
    assert rows[0]["round_against_invbench"] == [1.0, 1.0]
    table = runner.invoke(app, arguments[:-1], env={"COLUMNS": "100"})
    assert table.exit_code == 0, table.output
    assert "by round" in table.stdout and "pytorch channels_last" in table.stdout


def test_a_network_without_a_peer_is_one_line_naming_the_file(write_config):
    raw = tiny_config()
    raw["model"]["layers"] = [
        {"involution": {"kernel_size": 3}},
        "flatten",
        {"dense": {"units": 10}},
    ]
    path = write_config(raw)
    result = runner.invoke(app, ["bench", "peer", "-c", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {path}: layer kind 'involution' has no PyTorch peer"
    ]


def test_without_pytorch_the_command_says_to_install_it(write_config, monkeypatch):
    import involution_bench.bench

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    monkeypatch.delitem(sys.modules, "involution_bench.bench.peer_modules")
    monkeypatch.delattr(involution_bench.bench, "peer_modules")
    raw = tiny_config()
    raw["model"]["layers"] = NAMED_LAYERS
    result = runner.invoke(app, ["bench", "peer", "-c", str(write_config(raw))])
    assert result.exit_code == 2
    assert "PyTorch is not installed" in result.output and "Traceback" not in result.output
