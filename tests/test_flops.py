"""Multiply-accumulate counts against values worked out by hand."""

from __future__ import annotations

import keras
import pytest

from involution_bench.config import load_config
from involution_bench.models.build import build_model
from involution_bench.models.macs import layer_costs, layer_macs, total_macs
from involution_bench.ops import Involution


def costs_of(layer: keras.layers.Layer, input_shape=(8, 8, 4)):
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, layer(inputs))
    (cost,) = layer_costs(model)
    return cost


@pytest.mark.parametrize(
    ("layer", "macs", "output_shape"),
    [
        # 8*8 outputs x 6 filters x (3*3 taps x 4 channels)
        (keras.layers.Conv2D(6, 3, padding="same"), 8 * 8 * 6 * 9 * 4, (8, 8, 6)),
        # valid padding and stride 2: 3*3 outputs
        (keras.layers.Conv2D(6, 3, strides=2), 3 * 3 * 6 * 9 * 4, (3, 3, 6)),
        # grouped: each filter sees 4/2 channels
        (keras.layers.Conv2D(6, 1, groups=2), 8 * 8 * 6 * 2, (8, 8, 6)),
        # a dense layer on an image acts per position
        (keras.layers.Dense(5), 8 * 8 * 5 * 4, (8, 8, 5)),
        # reduce 4->2: 64*4*2; span 2->9*2: 64*2*18; apply: 64 * 9 * 4
        (
            Involution(kernel_size=3, groups=2, reduction_ratio=2),
            64 * 4 * 2 + 64 * 2 * 18 + 64 * 9 * 4,
            (8, 8, 4),
        ),
        # stride 2: everything on the 4x4 pooled grid, K=5, r=4 -> 1 hidden
        (
            Involution(kernel_size=5, stride=2, reduction_ratio=4),
            16 * 4 * 1 + 16 * 1 * 25 + 16 * 25 * 4,
            (4, 4, 4),
        ),
        (keras.layers.ReLU(), 0, (8, 8, 4)),
        (keras.layers.MaxPooling2D(2), 0, (4, 4, 4)),
        (keras.layers.AveragePooling2D(2), 0, (4, 4, 4)),
        (keras.layers.BatchNormalization(), 0, (8, 8, 4)),
        (keras.layers.Flatten(), 0, (256,)),
        (keras.layers.Dropout(0.5), 0, (8, 8, 4)),
        (keras.layers.GlobalAveragePooling2D(), 0, (4,)),
    ],
)
def test_each_layer_kind_counts_its_multiply_adds(layer, macs, output_shape):
    cost = costs_of(layer)
    assert cost.macs == macs
    assert cost.output_shape == output_shape
    assert cost.parameters == layer.count_params()


def test_a_layer_without_a_rule_is_an_error_not_a_zero():
    layer = keras.layers.Conv1D(2, 3)
    with pytest.raises(ValueError, match="no multiply-accumulate rule"):
        layer_macs(layer, (None, 8, 4), (None, 6, 2))


@pytest.mark.parametrize(
    ("path", "macs"),
    [
        # 32*32*32*27 + 16*16*64*288 + 8*8*64*576 + 4096*64 + 64*10
        ("configs/conv.yaml", 8_225_408),
        # three involutions (C=3, hidden 1, K=3) on 32², 16², 8²: (3 + 9 + 27) MACs
        # per position, then 192*64 + 64*10
        ("configs/inv.yaml", (1024 + 256 + 64) * 39 + 192 * 64 + 640),
    ],
)
def test_article_models_macs_per_image(path, macs):
    config = load_config(path)
    costs = layer_costs(build_model(config.layers, config.model.input_shape))
    assert total_macs(costs) == macs
    assert sum(cost.parameters for cost in costs) in (319_178, 13_080)
