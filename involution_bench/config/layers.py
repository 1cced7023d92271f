"""The model's layer entries: each checked against its kind, and the shapes walked.

An entry is a bare kind (`- relu`) or a mapping with one key naming the kind
and its arguments (`- conv2d: {filters: 32, kernel_size: 3}`); `residual`
holds `layers` and an optional `shortcut`, added together. Walking the
shapes with each kind's rule catches an impossible model here, with the key
of the layer at fault, rather than deep in Keras.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from involution_bench.config.sections import ExperimentConfig, layer_pairs
from involution_bench.data import DATASETS
from involution_bench.errors import ConfigError
from involution_bench.kinds import LAYER_KINDS, Shape, ShapeProblem
from involution_bench.schema import config_error, did_you_mean

RESIDUAL = "residual"
RESIDUAL_KEYS = ("layers", "shortcut")


def normalize_layers(
    entries: list[Any], source: str, prefix: str = "model.layers"
) -> list[dict[str, dict[str, Any]]]:
    normalized = []
    for index, entry in enumerate(entries):
        key = f"{prefix}[{index}]"
        if isinstance(entry, str):
            kind, args = entry, {}
        elif isinstance(entry, Mapping) and len(entry) == 1:
            kind, args = next(iter(entry.items()))
            args = {} if args is None else args
        else:
            raise ConfigError(
                source, key, "must be a layer kind, or a mapping with one key: the kind"
            )
        if kind == RESIDUAL:
            normalized.append({RESIDUAL: _normalize_residual(args, source, f"{key}.{RESIDUAL}")})
            continue
        if kind not in LAYER_KINDS:
            raise ConfigError(
                source, key, f"unknown layer kind {kind!r}{did_you_mean(kind, LAYER_KINDS)}"
            )
        if not isinstance(args, Mapping):
            raise ConfigError(source, f"{key}.{kind}", "arguments must be a mapping")
        schema = LAYER_KINDS[kind].arguments
        try:
            parsed = schema.model_validate(args)
        except ValidationError as exc:
            raise config_error(exc, source, schema, prefix=(f"{key}.{kind}",)) from None
        normalized.append({kind: parsed.model_dump(mode="json")})
    return normalized


def _normalize_residual(args: Any, source: str, key: str) -> dict[str, Any]:
    """`{layers: [...], shortcut: [...] | null}`: output = layers(x) + shortcut(x)."""
    if not isinstance(args, Mapping):
        raise ConfigError(source, key, "needs a mapping with layers (and an optional shortcut)")
    for name in args:
        if name not in RESIDUAL_KEYS:
            raise ConfigError(
                source, f"{key}.{name}", f"unknown key{did_you_mean(name, RESIDUAL_KEYS)}"
            )
    inner, shortcut = args.get("layers"), args.get("shortcut")
    if not isinstance(inner, list) or not inner:
        raise ConfigError(source, f"{key}.layers", "must be a non-empty list of layers")
    if shortcut is not None and (not isinstance(shortcut, list) or not shortcut):
        raise ConfigError(source, f"{key}.shortcut", "must be a non-empty list of layers, or null")
    return {
        "layers": normalize_layers(inner, source, f"{key}.layers"),
        "shortcut": None
        if shortcut is None
        else normalize_layers(shortcut, source, f"{key}.shortcut"),
    }


def walk_shapes(pairs, shape: Shape, source: str, prefix: str, seen=None) -> Shape:
    """The shape after `pairs`, each layer's by its kind's rule in `kinds`.

    `seen`, a list, gets (key, shape after it) for each layer, in order."""
    for index, (kind_name, args) in enumerate(pairs):
        key = f"{prefix}[{index}].{kind_name}"
        if kind_name == RESIDUAL:
            shape = _residual_shape(args, shape, source, key)
            if seen is not None:
                seen.append((key, kind_name, shape))
            continue
        kind = LAYER_KINDS[kind_name]
        if kind.takes == "image" and shape.flat:
            raise ConfigError(source, key, "needs an image-shaped input, but it is flat here")
        if kind.takes == "flat" and not shape.flat:
            raise ConfigError(source, key, "needs a flat input: add flatten or global_avg_pool")
        try:
            shape = kind.output_shape(shape, args)
        except ShapeProblem as exc:
            where = f"{key}.{exc.argument}" if exc.argument else key
            raise ConfigError(source, where, str(exc)) from None
        if shape.height < 1 or shape.width < 1:
            raise ConfigError(source, key, "shrinks the image to nothing")
        if seen is not None:
            seen.append((key, kind_name, shape))
    return shape


def _residual_shape(args: dict[str, Any], shape: Shape, source: str, key: str) -> Shape:
    after = walk_shapes(layer_pairs(args["layers"]), shape, source, f"{key}.layers")
    skip = shape
    if args["shortcut"]:
        skip = walk_shapes(layer_pairs(args["shortcut"]), shape, source, f"{key}.shortcut")
    if after != skip:
        raise ConfigError(
            source,
            key,
            f"its layers give {after.describe()} but its shortcut gives {skip.describe()};"
            " they must match to be added",
        )
    return after


def kind_names(pairs) -> list[str]:
    """The kinds a model uses, residual blocks' included, each once, in order."""
    names: dict[str, None] = {}
    for kind, args in pairs:
        if kind == RESIDUAL:
            inner = layer_pairs(args["layers"]) + layer_pairs(args["shortcut"] or [])
            names.update(dict.fromkeys(kind_names(inner)))
        else:
            names[kind] = None
    return list(names)


def model_output(config: ExperimentConfig) -> tuple[Shape, str]:
    """The model's output shape, and the key of the layer that sets its size."""
    seen: list[tuple[str, str, Shape]] = []
    start = Shape(*config.model.input_shape)
    shape = walk_shapes(config.layers, start, config.source, "model.layers", seen)
    key, features = "model.layers", None
    for layer_key, kind, after in seen:
        if after.features != features:
            key = f"{layer_key}.units" if kind == "dense" else layer_key
            features = after.features
    return shape, key


def check_classes(config: ExperimentConfig, classes: int) -> None:
    """The model must end in one output per class of its dataset."""
    dataset = DATASETS[config.data.name].title
    shape, key = model_output(config)
    if shape.features != classes:
        have = shape.features if shape.flat else "an image"
        raise ConfigError(
            config.source,
            key,
            f"must end in {classes} outputs (one per class of {dataset}), not {have}",
        )
