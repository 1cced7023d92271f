"""Building Keras models from configs: the article's parameter counts and layer order."""

from __future__ import annotations

import numpy as np
import pytest

from involution_bench.config import load_config
from involution_bench.layers import Involution
from involution_bench.models import build_model, parameter_counts


@pytest.mark.parametrize(
    ("path", "total", "non_trainable"),
    [("configs/conv.yaml", 319_178, 0), ("configs/inv.yaml", 13_080, 6)],
)
def test_article_models_have_the_articles_parameter_counts(path, total, non_trainable):
    config = load_config(path)
    model = build_model(config.layers, config.model.input_shape, config.name)
    counts = parameter_counts(model)
    assert counts == {
        "total": total,
        "trainable": total - non_trainable,
        "non_trainable": non_trainable,
    }
    assert counts["total"] == model.count_params()
    assert model.output_shape == (None, 10)


def test_layers_follow_the_config_in_order():
    config = load_config("configs/inv.yaml")
    model = build_model(config.layers, config.model.input_shape, config.name)
    involutions = [layer for layer in model.layers if isinstance(layer, Involution)]
    assert [layer.name for layer in involutions] == ["inv_1", "inv_2", "inv_3"]
    assert all(layer.reduce.filters == 1 and layer.kernel_size == 3 for layer in involutions)
    logits = model(np.zeros((2, 32, 32, 3), "float32"))
    assert logits.shape == (2, 10)


def test_every_layer_kind_builds():
    layers = [
        (
            "conv2d",
            {
                "filters": 8,
                "kernel_size": 3,
                "strides": 1,
                "padding": "same",
                "activation": "relu",
                "use_bias": True,
                "name": None,
            },
        ),
        ("batch_norm", {"momentum": 0.9, "epsilon": 1e-3, "name": None}),
        (
            "involution",
            {"kernel_size": 3, "stride": 2, "groups": 2, "reduction_ratio": 4, "name": None},
        ),
        ("relu", {"name": None}),
        ("avg_pool", {"pool_size": 2, "strides": None, "padding": "valid", "name": None}),
        ("max_pool", {"pool_size": 2, "strides": 1, "padding": "same", "name": None}),
        ("dropout", {"rate": 0.1, "name": None}),
        ("global_avg_pool", {"name": None}),
        ("dense", {"units": 10, "activation": None, "use_bias": False, "name": "logits"}),
    ]
    model = build_model(layers, (16, 16, 3))
    assert model.get_layer("logits").output.shape == (None, 10)
    assert model(np.zeros((1, 16, 16, 3), "float32")).shape == (1, 10)
