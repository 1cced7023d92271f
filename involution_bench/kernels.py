"""What involution kernels attend to: per-position kernel sums, as the article draws them.

For each involution layer, the map at a position is the sum of the K*K
values (over all groups) of the kernel the layer generated there: large
where the layer weighs its neighbourhood heavily.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from involution_bench.models import involution_layers, load_saved_model


def load_trained_model(path: Path) -> keras.Model:
    """A run's `model.keras`."""
    return load_saved_model(path, "no saved model (the run has not finished an epoch)")


def kernel_maps(model: keras.Model, images: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(layer name, `(N, H', W')` kernel sums) for each involution layer, in model order."""
    layers = involution_layers(model)
    if not layers:
        return []
    probe = keras.Model(model.input, [layer.input for layer in layers])
    layer_inputs = probe(images, training=False)
    if not isinstance(layer_inputs, list | tuple):
        layer_inputs = [layer_inputs]
    maps = []
    for layer, inputs in zip(layers, layer_inputs, strict=True):
        kernel = layer.generate_kernel(inputs, training=False)  # (N, H', W', K*K, G)
        maps.append((layer.name, keras.ops.convert_to_numpy(keras.ops.sum(kernel, axis=(3, 4)))))
    return maps
