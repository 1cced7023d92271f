"""invbench's SGD against Keras' own: the same weights, in far fewer ops per step."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from involution_bench.train.optimizers import SGD


def schedule():
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=10, warmup_target=0.1, warmup_steps=2
    )


def weights(seed: int = 0, copies: int = 1) -> list[keras.Variable]:
    rng = np.random.default_rng(seed)
    shapes = [(3, 3, 4, 8), (8,), (5,), (8, 10)] * copies
    return [keras.Variable(rng.normal(size=shape).astype("float32")) for shape in shapes]


def train(optimizer, variables, steps: int = 6) -> None:
    step = tf.function(lambda grads: optimizer.apply(grads, variables))
    rng = np.random.default_rng(1)
    for _ in range(steps):
        step([tf.constant(rng.normal(size=v.shape).astype("float32")) for v in variables])


@pytest.mark.parametrize(
    "options",
    [
        {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
        {"momentum": 0.9, "nesterov": False, "weight_decay": 5e-4},
        {"momentum": 0.5, "nesterov": True},
        {"momentum": 0.0, "weight_decay": 1e-3},
    ],
    ids=str,
)
def test_the_weights_and_momenta_are_keras_own_bit_for_bit(options):
    ours, theirs = weights(), weights()
    optimizer, keras_optimizer = (
        SGD(learning_rate=schedule(), **options),
        keras.optimizers.SGD(learning_rate=schedule(), **options),
    )
    train(optimizer, ours)
    train(keras_optimizer, theirs)
    for mine, keras_weight in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(mine.numpy(), keras_weight.numpy())
    for mine, keras_state in zip(optimizer.variables, keras_optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(keras_state))
    assert int(optimizer.iterations) == 6


def graph_ops(optimizer, variables) -> list[str]:
    optimizer.build(variables)
    step = tf.function(lambda grads: optimizer.apply(grads, variables))
    grads = [tf.zeros(v.shape) for v in variables]
    return [op.type for op in step.get_concrete_function(grads).graph.get_operations()]


def test_the_schedule_is_evaluated_once_for_weight_decay_not_once_per_weight():
    options = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
    variables = weights(copies=4)  # a small model's 16 weights
    ours = graph_ops(SGD(learning_rate=schedule(), **options), variables)
    keras_ops = graph_ops(keras.optimizers.SGD(learning_rate=schedule(), **options), variables)
    # CosineDecay's warm-up branch is one `If` per evaluation.
    assert keras_ops.count("StatelessIf") == len(variables) + 1
    assert ours.count("StatelessIf") == 2  # weight decay's evaluation, then the update's
    assert ours.count("ResourceApplyKerasMomentum") == len(variables)
    assert len(ours) < len(keras_ops) / 2


def test_a_model_trained_with_it_reloads_with_its_state_in_a_fresh_process(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=SGD(0.1, momentum=0.9, nesterov=True), loss="mse")
    rng = np.random.default_rng(2)
    model.train_on_batch(rng.normal(size=(8, 4)), rng.normal(size=(8, 3)))
    path = tmp_path / "model.keras"
    model.save(path)
    momenta = np.concatenate([np.ravel(v) for v in model.optimizer.variables[1:]])
    np.save(tmp_path / "momenta.npy", momenta)
    code = f"""
        import numpy as np, keras, involution_bench
        model = keras.saving.load_model({str(path)!r}, safe_mode=True)
        optimizer = model.optimizer
        assert type(optimizer).__module__ == "involution_bench.train.optimizers", type(optimizer)
        assert int(optimizer.iterations) == 1 and optimizer.nesterov
        momenta = np.concatenate([np.ravel(v) for v in optimizer.variables[1:]])
        np.testing.assert_array_equal(momenta, np.load({str(tmp_path / "momenta.npy")!r}))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
