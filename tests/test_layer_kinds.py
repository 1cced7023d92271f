"""The layer-kind registry: every kind's shape rule, builder and MAC rule agree."""

from __future__ import annotations

import math

import keras
import pytest

from involution_bench.config import config_from_dict
from involution_bench.kinds import LAYER_KINDS, Shape
from involution_bench.models.build import build_model
from involution_bench.models.macs import layer_costs

IMAGE = Shape(9, 11, 4)


def kind_input(kind) -> Shape:
    return Shape(9, 11, 4, features=6) if kind.takes == "flat" else IMAGE


@pytest.mark.parametrize("name", LAYER_KINDS)
def test_shape_rule_builder_and_mac_rule_agree_on_a_built_model(name):
    kind = LAYER_KINDS[name]
    args = kind.arguments.model_validate(kind.example).model_dump(mode="json")
    start = kind_input(kind)
    predicted = kind.output_shape(start, args)

    inputs = keras.Input((start.features,) if start.flat else (9, 11, 4))
    layer = kind.layer_class()(**args)
    model = keras.Model(inputs, layer(inputs))
    built = tuple(model.output.shape[1:])
    expected = (
        (predicted.features,)
        if predicted.flat
        else (
            predicted.height,
            predicted.width,
            predicted.channels,
        )
    )
    assert built == expected, (name, built, expected)

    (cost,) = layer_costs(model)
    assert cost.output_shape == built
    multiplying = [
        weight
        for weight in layer.trainable_weights
        # biases and batch-norm's per-channel scale and shift are not multiply-adds
        if not weight.path.endswith(("bias", "gamma", "beta"))
    ]
    if multiplying:
        # Every multiplying weight is used at least once per image.
        assert cost.macs >= sum(math.prod(weight.shape) for weight in multiplying)
    else:
        assert cost.macs == 0


def test_every_kind_validates_and_builds_from_a_config():
    for name, kind in LAYER_KINDS.items():
        layers = [{"conv2d": {"filters": 4, "kernel_size": 3}}]
        layers += ["flatten"] if kind.takes == "flat" else []
        layers.append({name: kind.example})
        flat_after = kind.takes == "flat" or name in ("flatten", "global_avg_pool")
        layers += [] if flat_after else ["flatten"]
        layers.append({"dense": {"units": 10}})
        parsed = config_from_dict({"name": "one", "model": {"layers": layers}})
        model = build_model(parsed.layers, parsed.model.input_shape)
        assert any(type(layer) is kind.layer_class() for layer in model.layers), name
