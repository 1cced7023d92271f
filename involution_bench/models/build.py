"""Turning a validated model spec (a list of layer entries) into a `keras.Model`.

Each entry's Keras layer comes from its kind's builder in `involution_bench.kinds`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras

from involution_bench.config import RESIDUAL, layer_pairs
from involution_bench.errors import RunError
from involution_bench.kinds import LAYER_KINDS, LayerKind
from involution_bench.ops.batch_norm import BatchNormalization
from involution_bench.ops.conv2d import Conv2D


def layer_builders() -> dict[str, Callable[..., keras.layers.Layer]]:
    """Kind name -> Keras layer class, for every registered kind."""
    return {name: kind.layer_class() for name, kind in LAYER_KINDS.items()}


def build_model(
    layers: Sequence[tuple[str, dict[str, Any]]],
    input_shape: Sequence[int],
    name: str = "model",
    builders: dict[str, Callable[..., keras.layers.Layer]] | None = None,
) -> keras.Model:
    """A functional model applying `layers` (kind, arguments) in order.

    The arguments are those `layer_kinds` validates; they are named as the
    Keras constructors name them, so they pass straight through. `builders`
    replaces some kinds' classes (the benchmark swaps in the article's
    involution this way).
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    outputs = _apply_layers(layers, inputs, {**layer_builders(), **(builders or {})})
    return keras.Model(inputs, outputs, name=name)


def _apply_layers(layers, tensor, builders):
    """One flat functional graph: a residual block adds its branch to its shortcut."""
    for kind, args in layers:
        if kind == RESIDUAL:
            branch = _apply_layers(layer_pairs(args["layers"]), tensor, builders)
            shortcut = args["shortcut"]
            skip = _apply_layers(layer_pairs(shortcut), tensor, builders) if shortcut else tensor
            tensor = keras.layers.Add()([branch, skip])
        else:
            tensor = builders[kind](**args)(tensor)
    return tensor


def load_saved_model(path: Path, missing: str) -> keras.Model:
    """A saved `.keras` model, loaded in safe mode (no code from lambdas).

    `missing` says what it means that the file is not there.
    """
    if not path.is_file():
        raise RunError(str(path), missing)
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # Keras raises many kinds for a damaged archive
        raise RunError(str(path), f"cannot be loaded ({type(exc).__name__}: {exc})") from None


@functools.cache
def _kinds_by_class() -> dict[type, LayerKind]:
    return {cls: kind for kind in LAYER_KINDS.values() for cls in kind.layer_classes()}


def layer_kind(layer: keras.layers.Layer) -> LayerKind | None:
    """The registered kind a built layer is of: the most specific class wins (an
    `ArticleInvolution` is an involution)."""
    by_class = _kinds_by_class()
    for cls in type(layer).__mro__:
        if cls in by_class:
            return by_class[cls]
    return None


def involution_op_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers that run the involution kernels (native or slices): those whose kind
    says so (involution, and local self-attention, whose logits and aggregation are
    involution's maths)."""
    found = []
    for layer in model.layers:
        kind = layer_kind(layer)
        if kind is not None and kind.involution_op:
            found.append(layer)
    return found


def uses_native_involution(model: keras.Model) -> bool:
    """Whether any layer will run the native kernel, which XLA cannot compile."""
    return any(layer.resolved_implementation() == "native" for layer in involution_op_layers(model))


def resolve_jit_compile(setting: bool | str, model: keras.Model) -> bool | str:
    """What `train.jit_compile` means for this model on this machine.

    "auto": off where an involution or attention layer runs the native kernel, which XLA cannot
    compile; otherwise Keras' own "auto": off on CPU-only machines, where XLA
    slows this project's models (docs/benchmarks.md, "XLA on the CPU"; the
    pure-TF involution op compiles itself with XLA either way), and on where
    there is a GPU.
    """
    if setting != "auto":
        return bool(setting)
    return False if uses_native_involution(model) else "auto"


def prepare_for_xla(model: keras.Model) -> None:
    """Make every involution and attention layer use the op XLA can compile (pure
    TensorFlow), every batch norm, the involution layers' own included, the
    fused kernel rather than the native one, and every strided 1x1 convolution
    a convolution rather than a native subsample."""
    for layer in involution_op_layers(model):
        layer.implementation = "slices"
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, (BatchNormalization, Conv2D)):
            layer.native = False


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Total, trainable and non-trainable (e.g. batch-norm statistics) parameters."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    non_trainable = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    return {
        "total": trainable + non_trainable,
        "trainable": trainable,
        "non_trainable": non_trainable,
    }
