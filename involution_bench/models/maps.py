"""What generated kernels weigh: one map per layer whose kind draws one.

Each kind says what its map shows (`LayerKind.layer_map`): for involution,
the sum of the kernel generated at each position; for local self-attention,
the weight each position keeps on itself. See `involution_bench.kinds`.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from involution_bench.models.build import layer_kind, load_saved_model


def load_trained_model(path: Path) -> keras.Model:
    """A run's `model.keras`."""
    return load_saved_model(path, "no saved model (the run has not finished an epoch)")


def mapped_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers whose kind draws a map, in model order."""
    return [layer for layer in model.layers if (kind := layer_kind(layer)) and kind.layer_map]


def kernel_maps(model: keras.Model, images: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(title, `(N, H', W')` map) for each layer whose kind draws one, in model order."""
    layers = mapped_layers(model)
    if not layers:
        return []
    probe = keras.Model(model.input, [layer.input for layer in layers])
    layer_inputs = probe(images, training=False)
    if not isinstance(layer_inputs, list | tuple):
        layer_inputs = [layer_inputs]
    maps = []
    for layer, inputs in zip(layers, layer_inputs, strict=True):
        drawn = layer_kind(layer).layer_map
        values = keras.ops.convert_to_numpy(drawn.values(layer, inputs))
        maps.append((f"{layer.name}\n{drawn.title}", values))
    return maps
