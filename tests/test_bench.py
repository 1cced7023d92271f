"""The benchmark: its article baseline computes involution, and its tables hold up."""

from __future__ import annotations

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from conftest import tiny_config
from reference import involution_reference
from typer.testing import CliRunner

from involution_bench.bench import model as model_bench
from involution_bench.bench import op as bench
from involution_bench.bench.attention import AttentionShape
from involution_bench.bench.layers import bench_layers
from involution_bench.cli import app
from involution_bench.config import config_from_dict
from involution_bench.models.build import build_model, involution_op_layers
from involution_bench.models.macs import layer_costs, total_macs
from involution_bench.ops.article import article_attention, article_involution
from involution_bench.ops.batch_norm import BatchNormalization

runner = CliRunner()
TINY = bench.OpShape("tiny", batch=2, size=9, channels=8, kernel_size=3, groups=2, stride=2)


@pytest.mark.parametrize("shape", [(2, 7, 9, 4, 3, 1, 2), (1, 9, 6, 8, 7, 2, 4)], ids=str)
def test_article_formulation_computes_involution(shape):
    batch, height, width, channels, kernel_size, stride, groups = shape
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, height, width, channels))
    kernel = rng.normal(
        size=(batch, -(-height // stride), -(-width // stride), kernel_size**2, groups)
    )
    actual = article_involution(tf.constant(x), tf.constant(kernel), kernel_size, stride, groups)
    np.testing.assert_allclose(
        actual.numpy(), involution_reference(x, kernel, kernel_size, stride, groups), atol=1e-10
    )


def test_minimum_bytes_counts_three_passes_over_input_kernel_and_output():
    # x: 2*81*8, kernel: 2*25*9*2, output: 2*25*8 floats
    assert TINY.minimum_bytes() == 3 * 4 * (2 * 81 * 8 + 2 * 25 * 9 * 2 + 2 * 25 * 8)


def test_op_table_has_every_implementation_against_the_article():
    timings = bench.bench_op([TINY], repeats=2, warmup=1)
    names = [timing.implementation for timing in timings]
    assert names[0] == "article" and "slices" in names
    assert timings[0].speedup == 1.0
    assert sum(timing.default for timing in timings) == 1
    for timing in timings:
        assert timing.milliseconds > 0 and timing.gigabytes_per_second > 0
        assert timing.speedup == pytest.approx(timings[0].milliseconds / timing.milliseconds)


TINY_ATTENTION = AttentionShape(
    "tiny-attention", batch=2, size=6, channels=8, kernel_size=5, heads=2
)


def test_the_attention_baseline_computes_what_the_layer_does():
    from involution_bench.ops.local_attention import local_attention

    rng = np.random.default_rng(1)
    q, k, v = (tf.constant(rng.normal(size=(2, 7, 5, 6))) for _ in range(3))
    relative = tf.constant(rng.normal(size=(25, 2)))
    for implementation in ("slices", "native") if native_available() else ("slices",):
        for embedding in (None, relative):
            np.testing.assert_allclose(
                article_attention(q, k, v, embedding, 5, 3).numpy(),
                local_attention(q, k, v, 5, 3, embedding, implementation).numpy(),
                atol=1e-10,
            )


def test_op_table_times_attention_against_its_article_form():
    timings = bench.bench_op([TINY_ATTENTION], repeats=2, warmup=1)
    assert [t.implementation for t in timings][:2] == ["article", "slices"]
    assert {t.shape for t in timings} == {"tiny-attention"}
    assert sum(timing.default for timing in timings) == 1
    assert all(timing.milliseconds > 0 for timing in timings)


def native_available() -> bool:
    from involution_bench.ops.native import native_ops

    return native_ops() is not None


@pytest.mark.parametrize(
    ("layers", "variants"),
    [
        # the tiny model has an involution, then a convolution
        (None, ["article formulation, keras conv2d", "invbench"]),
        (
            [{"conv2d": {"filters": 4, "kernel_size": 3}}, "flatten", {"dense": {"units": 10}}],
            ["keras conv2d", "invbench"],
        ),
        (["flatten", {"dense": {"units": 10}}], ["keras defaults", "invbench"]),
        (  # an involution inside a residual block still gets the article baseline
            [
                {"residual": {"layers": [{"involution": {"kernel_size": 3}}]}},
                "flatten",
                {"dense": {"units": 10}},
            ],
            ["article formulation", "invbench"],
        ),
    ],
)
def test_model_table_compares_against_the_right_baseline(layers, variants):
    raw = tiny_config()
    if layers:
        raw["model"]["layers"] = layers
    config = config_from_dict(raw)
    timings = model_bench.bench_model(config, steps=2, warmup=1)
    assert [timing.variant for timing in timings] == variants
    assert timings[0].speedup == 1.0
    assert all(timing.train_images_per_second > 0 for timing in timings)
    # Both variants compute the same thing: the same multiply-adds as `info` counts.
    macs = total_macs(layer_costs(build_model(config.layers, config.model.input_shape)))
    for timing in timings:
        assert timing.macs_per_image == macs
        expected = 3 * macs * config.train.batch_size / (timing.step_milliseconds / 1e3) / 1e9
        assert timing.train_gmacs_per_second == pytest.approx(expected)


def test_models_of_several_configs_are_timed_in_turns(monkeypatch):
    """One step of every model per round: a drifting machine cannot tilt their ratio."""
    calls = []
    monkeypatch.setattr(keras.Model, "train_on_batch", lambda self, x, y: calls.append(id(self)))
    first, second = tiny_config("first"), tiny_config("second")
    second["model"]["layers"][0] = {"conv2d": {"filters": 3, "kernel_size": 3, "padding": "same"}}
    timings = model_bench.bench_models(
        [config_from_dict(first), config_from_dict(second)], steps=3, warmup=1
    )
    assert [(timing.config, timing.variant == "invbench") for timing in timings] == [
        ("first", False),
        ("first", True),
        ("second", False),
        ("second", True),
    ]
    assert [timing.speedup for timing in timings][::2] == [1.0, 1.0]  # each against its own
    assert len(calls) == 4 * (1 + 3)  # a warm-up turn, then three timed ones
    turns = [calls[index : index + 4] for index in range(0, len(calls), 4)]
    assert len(set(turns[0])) == 4  # every model once a turn...
    assert all(row == turns[0] for row in turns)  # ...in the same order


def test_rounds_keep_each_rounds_median_and_warm_up_once(monkeypatch):
    calls = []
    monkeypatch.setattr(keras.Model, "train_on_batch", lambda self, x, y: calls.append(id(self)))
    monkeypatch.setattr(keras.Model, "predict_on_batch", lambda self, x: None)
    timings = model_bench.bench_models([config_from_dict(tiny_config())], 2, 1, rounds=3)
    assert len(calls) == 2 * (1 + 3 * 2)  # one warm-up turn, then three rounds of two
    for timing in timings:
        assert len(timing.round_step_milliseconds) == 3
        assert timing.step_milliseconds == sorted(timing.round_step_milliseconds)[1]


def test_a_forced_xla_bench_model_runs_nothing_native_inside_xla():
    raw = tiny_config(jit_compile=True)
    raw["model"]["layers"] = [
        {"involution": {"kernel_size": 3, "groups": 1, "reduction_ratio": 1}},  # a 3-channel norm
        {"conv2d": {"filters": 4, "kernel_size": 1}},
        "batch_norm",  # 4 channels: the native kernel, outside XLA
        "flatten",
        {"dense": {"units": 10}},
    ]
    model, jit = model_bench.invbench_model(config_from_dict(raw))
    assert jit is True
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, BatchNormalization)]
    assert len(norms) == 2 and not any(norm.native for norm in norms)
    assert all(layer.implementation == "slices" for layer in involution_op_layers(model))
    timings = model_bench.bench_model(config_from_dict(raw), steps=1, warmup=1)
    assert timings[-1].jit_compile is True and timings[-1].step_milliseconds > 0


def test_interleaved_medians_take_one_call_of_each_per_round():
    from involution_bench.bench.timing import interleaved_medians

    order = []
    medians = interleaved_medians(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, warmup=2
    )
    assert order == ["a", "b"] * 5
    assert set(medians) == {"a", "b"} and all(value >= 0 for value in medians.values())


def test_cli_bench_op_json_and_unknown_shape(monkeypatch):
    monkeypatch.setattr(bench, "ALL_OP_SHAPES", {"tiny": TINY})
    result = runner.invoke(app, ["bench", "op", "--repeats", "2", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {row["shape"] for row in rows} == {"tiny"}
    bad = runner.invoke(app, ["bench", "op", "--shape", "huge"])
    assert bad.exit_code == 2
    assert "--shape: unknown shape 'huge' (known: tiny)" in bad.stderr


def test_cli_bench_model_table_pairs_configs_with_their_ratio(write_config):
    path = write_config(yaml.safe_load(yaml.safe_dump(tiny_config())))
    conv = tiny_config("conv")
    conv["model"]["layers"][0] = {"conv2d": {"filters": 3, "kernel_size": 3, "padding": "same"}}
    other = write_config(conv, name="conv.yaml")
    arguments = ["bench", "model", "-c", str(path), "-c", str(other), "--repeats", "2"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "article formulation" in result.stdout and "invbench" in result.stdout
    assert "MACs/" in result.stdout and "GMAC/s" in result.stdout
    assert "conv against tiny: " in result.stdout and "x the multiply-adds" in result.stdout
    assert "(rounds: " not in result.stdout
    in_rounds = runner.invoke(app, [*arguments, "--rounds", "2"])
    assert in_rounds.exit_code == 0, in_rounds.output
    assert re.search(
        r"conv against tiny: [\d.]+x the step time .* \(rounds: [\d.]+, [\d.]+\)",
        " ".join(in_rounds.stdout.split()),
    )
    as_json = runner.invoke(app, [*arguments, "--rounds", "2", "--json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert all(len(row["round_step_milliseconds"]) == 2 for row in rows)


def test_bench_model_without_baselines_times_only_invbench_in_turns(monkeypatch, write_config):
    """--no-baselines: one model per config, no speedup (nothing to set it against),
    and the ratio between configs still printed."""
    calls = []
    real_step = keras.Model.train_on_batch

    def counted(self, x, y):
        calls.append(self.name)
        return real_step(self, x, y)

    monkeypatch.setattr(keras.Model, "train_on_batch", counted)
    first, second = tiny_config("first"), tiny_config("second")
    second["model"]["layers"][0] = {"conv2d": {"filters": 3, "kernel_size": 3, "padding": "same"}}
    timings = model_bench.bench_models(
        [config_from_dict(first), config_from_dict(second)], 2, 1, baselines=False
    )
    assert [(timing.config, timing.variant, timing.speedup) for timing in timings] == [
        ("first", "invbench", None),
        ("second", "invbench", None),
    ]
    assert len(calls) == 2 * (1 + 2) and calls[:2] == ["first", "second"]  # in turns
    assert model_bench.pair_ratios(timings)[0].config == "second"

    path = write_config(first)
    other = write_config(second, name="second.yaml")
    arguments = ["bench", "model", "-c", str(path), "-c", str(other), "--repeats", "1"]
    result = runner.invoke(app, [*arguments, "--no-baselines"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 2 and all("│ invbench │" in row and "│ —" in row for row in rows)
    assert "baseline" not in result.stdout and "second against first: " in result.stdout
    as_json = runner.invoke(app, [*arguments, "--no-baselines", "--json"])
    assert [row["speedup"] for row in json.loads(as_json.stdout)] == [None, None]


def test_the_model_table_fits_100_columns_without_cutting_a_name_or_a_number(
    monkeypatch, write_config
):
    def timings(configs, steps, warmup=3, rounds=1, baselines=True):
        rows = []
        for name, macs in [("resnet", 4_154_624), ("equal-attention", 4_068_608)]:
            for variant, step in [
                ("keras conv2d, keras batch norm, keras sgd", 136.3),
                ("invbench", 24.6),
            ]:
                images = 128 / step * 1e3
                row = (name, variant, False, step, images, 15_668.0, 1.48, macs, 64.9, (step,))
                rows.append(model_bench.ModelTiming(*row))
        return rows

    monkeypatch.setattr(model_bench, "bench_models", timings)
    arguments = ["bench", "model", "-c", str(write_config(tiny_config()))]
    result = runner.invoke(app, arguments, env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line and line[0] in "┏┃│└"]
    assert len(lines) == 8 and all(len(line) <= 100 for line in lines)  # two header lines
    table = "\n".join(lines)
    assert "…" not in table
    assert "equal-attention" in table and "4,068,608" in table and "136.3" in table


def test_pair_ratios_put_step_time_beside_multiply_adds():
    def timing(config, variant, milliseconds, macs):
        return model_bench.ModelTiming(config, variant, False, milliseconds, 1, 1, 1, macs, 1)

    timings = [
        timing("resnet", "keras defaults", 80, 4_000_000),
        timing("resnet", "invbench", 100, 4_000_000),
        timing("rednet", "article formulation", 400, 2_400_000),
        timing("rednet", "invbench", 120, 2_400_000),
    ]
    assert model_bench.pair_ratios(timings) == [("rednet", "resnet", 1.2, 0.6, (1.2,))]
    assert model_bench.pair_ratios(timings[:2]) == []


def test_pair_ratios_pair_the_rounds_and_give_their_median():
    def timing(config, variant, rounds, macs):
        median = sorted(rounds)[1]
        return model_bench.ModelTiming(config, variant, False, median, 1, 1, 1, macs, 1, rounds)

    timings = [
        timing("resnet", "invbench", (20.0, 40.0, 30.0), 4_000_000),
        # The machine slowed in round 2: each round's ratio is 1.1, the medians' 1.1 too.
        timing("rednet", "invbench", (22.0, 44.0, 33.0), 2_400_000),
        timing("attention", "invbench", (50.0, 60.0, 45.0), 4_000_000),
    ]
    rednet, attention = model_bench.pair_ratios(timings)
    assert rednet.round_ratios == pytest.approx((1.1, 1.1, 1.1))
    assert rednet.time_ratio == pytest.approx(1.1)
    # Unpaired medians would give 50 / 30 = 1.67; the rounds' ratios are 2.5, 1.5, 1.5.
    assert attention.round_ratios == pytest.approx((2.5, 1.5, 1.5))
    assert attention.time_ratio == pytest.approx(1.5)


def test_op_table_in_bfloat16_moves_half_the_bytes():
    timings = bench.bench_op([TINY, TINY_ATTENTION], repeats=2, warmup=1, dtype="bfloat16")
    assert {timing.dtype for timing in timings} == {"bfloat16"}
    assert {timing.shape for timing in timings} == {"tiny", "tiny-attention"}
    assert TINY.minimum_bytes(2) * 2 == TINY.minimum_bytes()
    for timing in timings:
        shape = TINY if timing.shape == "tiny" else TINY_ATTENTION
        expected = shape.minimum_bytes(2) / (timing.milliseconds / 1e3) / 1e9
        assert timing.gigabytes_per_second == pytest.approx(expected)


def test_layer_table_times_every_single_input_layer_and_shares_sum_to_one():
    config = config_from_dict(tiny_config())
    timings = bench_layers(config, repeats=2, warmup=1)
    model = build_model(config.layers, config.model.input_shape)
    costs = {cost.kind: cost.macs for cost in layer_costs(model)}
    single_input = [
        layer
        for layer in model.layers
        if not isinstance(layer.input, list) and type(layer).__name__ != "InputLayer"
    ]
    assert [timing.kind for timing in timings] == [type(layer).__name__ for layer in single_input]
    assert all(timing.milliseconds > 0 for timing in timings)
    assert sum(timing.share for timing in timings) == pytest.approx(1.0)
    involution = next(timing for timing in timings if timing.kind == "Involution")
    assert involution.macs_per_image == costs["Involution"] > 0
    assert involution.input_shape == (32, 32, 3)


def test_layer_table_runs_in_mixed_precision():
    config = config_from_dict(tiny_config(precision="mixed_bfloat16"))
    timings = bench_layers(config, repeats=1, warmup=1)
    assert {timing.kind for timing in timings} >= {"Involution"}


def test_cli_bench_layers_says_where_the_step_goes(write_config):
    raw = tiny_config()
    raw["model"]["layers"][-2] = "global_avg_pool"  # Keras' longest default layer name
    path = write_config(raw)
    other = write_config({**raw, "name": "other"}, name="other.yaml")  # its names get "_1"
    arguments = ["bench", "layers", "-c", str(path), "-c", str(other), "--repeats", "1"]
    result = runner.invoke(app, arguments, env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "(fwd+bwd)" in result.stdout and "Involution" in result.stdout
    table = [line for line in result.stdout.splitlines() if line and line[0] in "┏┃│└"]
    assert all(len(line) <= 100 for line in table) and "…" not in "\n".join(table)
    assert "global_average_pooling2d_1" in result.stdout
    assert "tiny: " in result.stdout and "ms over its layers: " in result.stdout
    rows = json.loads(
        runner.invoke(app, ["bench", "layers", "-c", str(path), "--repeats", "1", "--json"]).stdout
    )
    assert {row["config"] for row in rows} == {"tiny"} and all("machine" in row for row in rows)


def test_bench_model_steps_with_the_configs_optimizer_and_loss(monkeypatch):
    raw = tiny_config(optimizer="sgd", momentum=0.9, label_smoothing=0.1)
    config = config_from_dict(raw)
    compiled = []
    original = keras.Model.compile

    def compile_(self, *args, **kwargs):
        optimizer = type(kwargs["optimizer"])
        compiled.append((optimizer.__module__, optimizer.__name__, type(kwargs["loss"]).__name__))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "compile", compile_)
    timings = model_bench.bench_model(config, steps=1, warmup=1)
    # The baseline steps with Keras' own SGD, invbench with its fused one.
    assert [module.split(".")[0] for module, _, _ in compiled] == ["keras", "involution_bench"]
    assert [name for _, name, _ in compiled] == ["SGD", "SGD"]
    assert {loss for _, _, loss in compiled} == {"SmoothedSparseCrossentropy"}
    assert timings[0].variant.endswith("keras sgd")
