"""Building Keras models from configs: the article's parameter counts and layer order."""

from __future__ import annotations

import numpy as np
import pytest

from involution_bench.config import load_config
from involution_bench.models.build import build_model, parameter_counts
from involution_bench.ops import Involution


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


def spatial_operators(entries):
    """(kind, stride) of each spatial operator (involution, attention or 3x3 convolution),
    residual blocks included."""
    found = []
    for kind, args in (next(iter(entry.items())) for entry in entries):
        if kind == "residual":
            found += spatial_operators(args["layers"]) + spatial_operators(args["shortcut"] or [])
        elif kind in ("involution", "local_attention") or (
            kind == "conv2d" and args["kernel_size"] == 3
        ):
            found.append((kind, args.get("stride", args.get("strides"))))
    return found


def test_the_rednet_pair_differs_only_in_its_spatial_operator():
    rednet, resnet = load_config("configs/rednet.yaml"), load_config("configs/resnet.yaml")
    assert rednet.train == resnet.train and rednet.seed == resnet.seed
    involutions = spatial_operators(rednet.model.layers)[1:]  # after the 3x3 stem
    convolutions = spatial_operators(resnet.model.layers)[1:]
    assert [kind for kind, _ in involutions] == ["involution"] * 4
    assert [kind for kind, _ in convolutions] == ["conv2d"] * 4
    assert [stride for _, stride in involutions] == [stride for _, stride in convolutions]
    rednet_model = build_model(rednet.layers, rednet.model.input_shape)
    resnet_model = build_model(resnet.layers, resnet.model.input_shape)
    # Same widths at every layer: one model's output shapes are the other's.
    assert [layer.output.shape for layer in rednet_model.layers] == [
        layer.output.shape for layer in resnet_model.layers
    ]
    # Group channels 16, as in the RedNet paper.
    for layer in rednet_model.layers:
        if isinstance(layer, Involution):
            assert layer.channels // layer.groups == 16 and layer.kernel_size == 7


def test_rednet_is_within_a_third_of_the_article_cnn():
    from involution_bench.models.macs import layer_costs, total_macs

    def size(path):
        config = load_config(path)
        model = build_model(config.layers, config.model.input_shape)
        return model.count_params(), total_macs(layer_costs(model))

    (cnn_params, cnn_macs), (params, macs) = size("configs/conv.yaml"), size("configs/rednet.yaml")
    assert params * 3 <= cnn_params and macs * 3 <= cnn_macs


EQUAL_MACS = [f"configs/equal-macs/{name}.yaml" for name in ("conv", "involution", "attention")]


def test_the_equal_budget_trio_differs_in_operator_and_widths_only():
    from involution_bench.models.macs import layer_costs, total_macs

    resnet = load_config("configs/resnet.yaml")
    configs = [load_config(path) for path in EQUAL_MACS]
    macs = []
    for config, operator in zip(configs, ["conv2d", "involution", "local_attention"], strict=True):
        assert config.train == resnet.train and config.seed == resnet.seed
        operators = spatial_operators(config.model.layers)[1:]  # after the 3x3 stem
        assert [kind for kind, _ in operators] == [operator] * 4
        assert [stride for _, stride in operators] == [1, 2, 1, 2]
        model = build_model(config.layers, config.model.input_shape)
        macs.append(total_macs(layer_costs(model)))
    # The convolution variant is the ResNet itself: its 4.15 M is the budget.
    assert configs[0].model.layers == resnet.model.layers and macs[0] == 4_154_624
    # Every variant within 5% of the budget, and of one another.
    assert all(abs(value / macs[0] - 1) <= 0.05 for value in macs), macs
    assert max(macs) / min(macs) <= 1.05, macs


QUARTER_MACS = [f"configs/quarter-macs/{name}.yaml" for name in ("conv", "involution", "attention")]


def widths_removed(entries):
    """The layer list with every width-like argument (filters, groups, heads) and
    the name dropped: what is left is the skeleton."""
    skeleton = []
    for kind, args in (
        next(iter(entry.items())) if isinstance(entry, dict) else (entry, None) for entry in entries
    ):
        if kind == "residual":
            args = {
                "layers": widths_removed(args["layers"]),
                "shortcut": widths_removed(args["shortcut"] or []),
            }
        elif isinstance(args, dict):
            args = {k: v for k, v in args.items() if k not in ("filters", "groups", "heads")}
        skeleton.append((kind, args))
    return skeleton


def test_the_quarter_budget_trio_is_the_full_one_with_other_widths():
    from involution_bench.models.macs import layer_costs, total_macs

    macs = []
    for quarter_path, full_path in zip(QUARTER_MACS, EQUAL_MACS, strict=True):
        quarter, full = load_config(quarter_path), load_config(full_path)
        assert quarter.train == full.train and quarter.seed == full.seed
        assert widths_removed(quarter.model.layers) == widths_removed(full.model.layers)
        assert quarter.model.layers != full.model.layers
        model = build_model(quarter.layers, quarter.model.input_shape)
        macs.append(total_macs(layer_costs(model)))
    # About a quarter of the 4.15 M budget, every operator within 5% of the convolution.
    assert 0.2 <= macs[0] / 4_154_624 <= 0.3, macs
    assert all(abs(value / macs[0] - 1) <= 0.05 for value in macs), macs
