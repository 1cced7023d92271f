"""One layer test for every layer kind, in the manner of keras-hub's `run_layer_test`.

`run_layer_test` checks what every layer invbench builds must do: its config
round trip, symbolic against eager calls (shapes and values), its trainable
and non-trainable weight counts (as its kind declares them), save and reload
with identical outputs, one compiled training step, and a forward pass under
mixed precision.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np


def run_layer_test(
    layer_cls: type,
    init_kwargs: dict,
    input_shape: tuple[int, ...],
    expected_output_shape: tuple[int, ...],
    expected_num_trainable_weights: int,
    expected_num_non_trainable_weights: int,
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=input_shape).astype("float32")
    layer = layer_cls(**init_kwargs)

    # Config round trip: a layer made from the config has the same config.
    config = layer.get_config()
    assert layer_cls.from_config(config).get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert keras.saving.deserialize_keras_object(serialized).get_config() == config

    # Symbolic and eager calls agree, with the shape the rule predicts.
    symbolic = layer(keras.Input(input_shape[1:], batch_size=input_shape[0]))
    assert tuple(symbolic.shape) == expected_output_shape
    eager = keras.ops.convert_to_numpy(layer(inputs, training=False))
    assert eager.shape == expected_output_shape
    assert tuple(layer.compute_output_shape(input_shape)) == expected_output_shape
    assert np.all(np.isfinite(eager))

    # Weights: the expected number, and `build` made them all (a fresh layer
    # built from the config has the same shapes).
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    twin = layer_cls.from_config(config)
    twin.build(input_shape)
    assert [w.shape for w in twin.weights] == [w.shape for w in layer.weights]

    # Save and reload: identical outputs.
    model = keras.Sequential([keras.Input(input_shape[1:]), layer])
    path = tmp_path / f"{layer.name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(inputs, training=False)), eager, rtol=1e-6, atol=1e-6
    )

    # One compiled training step stays finite and moves the weights. (Not
    # necessarily every one: a bias just before batch norm gets no gradient.)
    targets = rng.normal(size=expected_output_shape).astype("float32")
    before = [keras.ops.convert_to_numpy(w) for w in layer.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    loss = model.train_on_batch(inputs, targets)
    assert np.isfinite(loss)
    after = [keras.ops.convert_to_numpy(w) for w in layer.trainable_weights]
    moved = [not np.allclose(old, new) for old, new in zip(before, after, strict=True)]
    assert any(moved) or not moved

    # Mixed precision: computes in bfloat16, keeps float32 variables.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = layer_cls.from_config({**config, "dtype": "mixed_bfloat16"})
        outputs = mixed(inputs)
        assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
        assert all(w.dtype == "float32" for w in mixed.weights)
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(outputs).astype("float32")))
    finally:
        keras.config.set_dtype_policy(previous)
