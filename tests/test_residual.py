"""Residual blocks in model specs: validation, shapes, parameters and MACs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import tiny_config

from involution_bench.config import config_from_dict, load_config
from involution_bench.errors import ConfigError
from involution_bench.models.build import build_model, involution_op_layers
from involution_bench.models.macs import layer_costs, total_macs

BLOCK = {
    "residual": {
        "layers": [
            {"conv2d": {"filters": 8, "kernel_size": 1, "name": "reduce"}},
            {"involution": {"kernel_size": 3, "groups": 2, "reduction_ratio": 2, "name": "inv"}},
            {"conv2d": {"filters": 16, "kernel_size": 1, "strides": 2, "name": "expand"}},
        ],
        "shortcut": [{"conv2d": {"filters": 16, "kernel_size": 1, "strides": 2, "name": "proj"}}],
    }
}
IDENTITY_BLOCK = {
    "residual": {"layers": [{"conv2d": {"filters": 16, "kernel_size": 3, "padding": "same"}}]}
}


def residual_config(*blocks) -> dict:
    config = tiny_config()
    config["model"]["layers"] = [
        {"conv2d": {"filters": 16, "kernel_size": 3, "padding": "same", "name": "stem"}},
        *blocks,
        "global_avg_pool",
        {"dense": {"units": 10, "name": "logits"}},
    ]
    return config


def test_a_residual_block_adds_its_branch_to_its_projection():
    config = config_from_dict(residual_config(BLOCK, IDENTITY_BLOCK))
    kind, args = config.layers[1]
    assert kind == "residual" and args["shortcut"][0]["conv2d"]["strides"] == 2
    model = build_model(config.layers, config.model.input_shape)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 2
    assert tuple(adds[0].output.shape) == (None, 16, 16, 16)
    assert [layer.name for layer in involution_op_layers(model)] == ["inv"]
    # stem 3*3*3*16+16, reduce 16*8+8, inv (8->4: 36, bn 16, span 4->18: 90), expand 8*16+16,
    # proj 16*16+16, identity conv 3*3*16*16+16, logits 16*10+10
    expected = 448 + 136 + 36 + 16 + 90 + 144 + 272 + 2320 + 170
    assert model.count_params() == expected
    x = np.zeros((2, 32, 32, 3), "float32")
    assert model(x).shape == (2, 10)


def test_residual_macs_count_both_branches():
    config = config_from_dict(residual_config(BLOCK))
    costs = {cost.name: cost.macs for cost in layer_costs(build_model(config.layers, (32, 32, 3)))}
    assert costs["reduce"] == 32 * 32 * 8 * 16
    assert costs["inv"] == 32 * 32 * (8 * 4 + 4 * 18 + 9 * 8)
    assert costs["expand"] == 16 * 16 * 16 * 8
    assert costs["proj"] == 16 * 16 * 16 * 16
    assert total_macs(list(layer_costs(build_model(config.layers, (32, 32, 3))))) == sum(
        costs.values()
    )


@pytest.mark.parametrize(
    ("block", "key", "problem"),
    [
        (
            {"residual": {"layers": [{"conv2d": {"filters": 8, "kernel_size": 1}}]}},
            "model.layers[1].residual",
            "its layers give 32x32x8 but its shortcut gives 32x32x16",
        ),
        ({"residual": {"layers": []}}, "model.layers[1].residual.layers", "non-empty list"),
        ({"residual": {"layer": []}}, "model.layers[1].residual.layer", "did you mean 'layers'"),
        (
            {"residual": {"layers": [{"involution": {"kernel_size": 2}}]}},
            "model.layers[1].residual.layers[0].involution.kernel_size",
            "must be odd",
        ),
        (
            {"residual": {"layers": ["relu"], "shortcut": ["relu6"]}},
            "model.layers[1].residual.shortcut[0]",
            "unknown layer kind",
        ),
    ],
)
def test_bad_residual_blocks_are_named(block, key, problem):
    with pytest.raises(ConfigError) as caught:
        config_from_dict(residual_config(block), source="net.yaml")
    message = str(caught.value)
    assert key in message and problem in message


def test_set_reaches_inside_a_residual_block(write_config):
    path = write_config(residual_config(BLOCK))
    key = "model.layers.1.residual.layers.1.involution.kernel_size=5"
    config = load_config(path, [key])
    assert config.layers[1][1]["layers"][1]["involution"]["kernel_size"] == 5
