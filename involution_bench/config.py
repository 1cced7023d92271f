"""Experiment configs: the YAML schema, its validation and `--set` overrides.

A config has five sections: `name`, `seed`, `data`, `model` and `train`. The
model is a list of layer entries, each either a bare kind (`- relu`) or a
mapping with one key naming the kind and its arguments
(`- conv2d: {filters: 32, kernel_size: 3}`). Everything is checked here,
before any TensorFlow work, and every problem becomes a `ConfigError` that
names the file, the key and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError

from involution_bench.errors import ConfigError
from involution_bench.layer_kinds import LAYER_KINDS, Shape, ShapeProblem
from involution_bench.schema import (
    Float,
    PositiveFloat,
    PositiveInt,
    Section,
    config_error,
    did_you_mean,
)

# What the data can feed: CIFAR-10's images and classes (data.py checks every
# file it reads against these), so configs are checked before anything runs.
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10


# ---- sections ----


class DataConfig(Section):
    dir: str | None = None
    limit_train: PositiveInt | None = None
    limit_test: PositiveInt | None = None


class ModelConfig(Section):
    # height, width, channels
    input_shape: Annotated[list[PositiveInt], Field(min_length=3, max_length=3)] = Field(
        default_factory=lambda: list(IMAGE_SHAPE)
    )
    # Entries are checked kind by kind in `_normalize_layers`.
    layers: list[Any] = Field(min_length=1)


class EarlyStoppingConfig(Section):
    # Stop once best val accuracy has not risen by more than min_delta for `patience` epochs.
    patience: PositiveInt
    min_delta: Annotated[Float, Field(ge=0)] = 0.0


class TrainConfig(Section):
    epochs: PositiveInt = 20
    batch_size: PositiveInt = 256
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    learning_rate: PositiveFloat = 1e-3
    # SGD only (Keras' defaults: no momentum, no Nesterov).
    momentum: Annotated[Float, Field(ge=0, lt=1)] = 0.0
    nesterov: bool = False
    # Decoupled weight decay; null keeps the optimizer's own (AdamW: 0.004, others: none).
    weight_decay: Annotated[Float, Field(ge=0)] | None = None
    # The learning rate over training: constant, or a linear warmup over
    # `warmup_epochs` then a cosine decay to zero at the last step.
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: Annotated[int, Field(ge=0)] = 0
    # Random crop after 4-pixel zero padding, and random horizontal flips, of
    # training images (seeded by seed, epoch and batch, so resumes repeat them).
    augment: bool = False
    # Cross-entropy targets (1 - e) * one_hot + e / 10 instead of one-hot.
    label_smoothing: Annotated[Float, Field(ge=0, lt=1)] = 0.0
    # Compute precision; variables stay float32 ("mixed_float16" adds loss scaling).
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = "float32"
    # TensorBoard logs (losses, metrics, learning rate per epoch) in RUN/tensorboard/.
    tensorboard: bool = False
    # XLA: "auto" turns it on only where it pays (see models.resolve_jit_compile).
    jit_compile: Literal["auto"] | bool = "auto"
    # Data-parallel training with tf.distribute (see distribute.py): batch_size
    # is then per replica, and the learning rate scales with the replica count.
    distribute: Literal["none", "mirrored", "multi_worker"] = "none"
    # Op determinism: identical histories from identical configs (slower on GPU).
    deterministic: bool = False
    # Keep the model of the best validation accuracy so far as RUN/best.keras.
    keep_best: bool = True
    # Off by default: every run trains its planned epochs.
    early_stopping: EarlyStoppingConfig | None = None


class ExperimentConfig(Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)]
    seed: Annotated[int, Field(ge=0)] = 42
    data: DataConfig = DataConfig()
    model: ModelConfig
    train: TrainConfig = TrainConfig()

    @property
    def layers(self) -> list[tuple[str, dict[str, Any]]]:
        """The model's layers as (kind, arguments) pairs, defaults filled in."""
        return layer_pairs(self.model.layers)


def layer_pairs(entries: list[dict[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Normalized layer entries as (kind, arguments) pairs. A residual block's
    arguments keep their inner `layers` and `shortcut` as entries."""
    return [next(iter(entry.items())) for entry in entries]


# ---- loading ----


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Read, validate and resolve a YAML config, applying `a.b=value` overrides."""
    source = str(path)
    raw = _read_yaml(Path(path))
    config = _validate(raw, source)
    overrides = list(overrides)
    if not overrides:
        return config
    resolved = config_to_dict(config)
    for override in overrides:
        _apply_override(resolved, override)
    return _validate(resolved, f"{source} (with --set)")


def config_from_dict(raw: Any, source: str = "<config>") -> ExperimentConfig:
    """Validate a config given as plain data (what `config.yaml` holds)."""
    return _validate(raw, source)


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Plain data for YAML: every key, defaults included, so a run can be repeated."""
    return config.model_dump(mode="json")


def flatten_config(tree: Any, prefix: str = "") -> dict[str, Any]:
    """`{"train": {"epochs": 3}}` -> `{"train.epochs": 3}`; list items by index, as
    `--set` names them (`model.layers.0.conv2d.filters`)."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten_config(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def dump_config(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), None, "no such file") from None
    except IsADirectoryError:
        raise ConfigError(str(path), None, "is a folder, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), None, f"cannot be read ({exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(str(path), where, f"invalid YAML: {problem}") from None


def _validate(raw: Any, source: str) -> ExperimentConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError(source, None, "must be a YAML mapping with name, model, ...")
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, source, ExperimentConfig) from None
    layers = _normalize_layers(config.model.layers, source)
    config = config.model_copy(update={"model": config.model.model_copy(update={"layers": layers})})
    _check_shapes(config, source)
    _check_training(config, source)
    return config


def _check_training(config: ExperimentConfig, source: str) -> None:
    train = config.train
    if train.optimizer != "sgd":
        for key, value in (("momentum", train.momentum), ("nesterov", train.nesterov)):
            if value:
                raise ConfigError(
                    source, f"train.{key}", f"only applies to optimizer sgd, not {train.optimizer}"
                )
    if train.nesterov and not train.momentum:
        raise ConfigError(source, "train.nesterov", "needs train.momentum above 0")
    if train.warmup_epochs and train.schedule != "cosine":
        raise ConfigError(source, "train.warmup_epochs", "only applies to schedule cosine")
    if train.warmup_epochs >= train.epochs and train.schedule == "cosine" and train.warmup_epochs:
        raise ConfigError(
            source,
            "train.warmup_epochs",
            f"{train.warmup_epochs} leaves no epoch of the {train.epochs} to decay",
        )


RESIDUAL = "residual"
RESIDUAL_KEYS = ("layers", "shortcut")


def _normalize_layers(
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
        "layers": _normalize_layers(inner, source, f"{key}.layers"),
        "shortcut": None
        if shortcut is None
        else _normalize_layers(shortcut, source, f"{key}.shortcut"),
    }


def _check_shapes(config: ExperimentConfig, source: str) -> None:
    """Walk the layer shapes: catch impossible models here rather than deep in Keras."""
    if tuple(config.model.input_shape) != IMAGE_SHAPE:
        raise ConfigError(
            source,
            "model.input_shape",
            f"{config.model.input_shape} cannot be fed by CIFAR-10, whose images are "
            f"{list(IMAGE_SHAPE)} (height, width, channels)",
        )
    final = _walk_shapes(config.layers, Shape(*config.model.input_shape), source, "model.layers")
    if final.features != NUM_CLASSES:
        raise ConfigError(
            source,
            "model.layers",
            f"must end in {NUM_CLASSES} outputs (one per CIFAR-10 class), "
            f"not {final.features if final.flat else 'an image'}",
        )


def _walk_shapes(pairs, shape: Shape, source: str, prefix: str) -> Shape:
    """The shape after `pairs`, each layer's by its kind's rule in `layer_kinds`."""
    for index, (kind_name, args) in enumerate(pairs):
        key = f"{prefix}[{index}].{kind_name}"
        if kind_name == RESIDUAL:
            shape = _residual_shape(args, shape, source, key)
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
    return shape


def _residual_shape(args: dict[str, Any], shape: Shape, source: str, key: str) -> Shape:
    after = _walk_shapes(layer_pairs(args["layers"]), shape, source, f"{key}.layers")
    skip = shape
    if args["shortcut"]:
        skip = _walk_shapes(layer_pairs(args["shortcut"]), shape, source, f"{key}.shortcut")
    if after != skip:
        raise ConfigError(
            source,
            key,
            f"its layers give {after.describe()} but its shortcut gives {skip.describe()};"
            " they must match to be added",
        )
    return after


def _apply_override(resolved: dict[str, Any], override: str) -> None:
    path, sep, value_text = override.partition("=")
    if not sep or not path:
        raise ConfigError("--set", override, "must look like key.path=value")
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError:
        raise ConfigError("--set", path, f"value {value_text!r} is not valid YAML") from None
    parts = path.split(".")
    node: Any = resolved
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError("--set", here, f"list index must be 0..{len(node) - 1}")
            part = int(part)
        elif isinstance(node, dict):
            if part not in node:
                raise ConfigError("--set", here, f"no such key{did_you_mean(part, node)}")
        else:
            raise ConfigError("--set", here, "goes below a value that has no keys")
        if last:
            node[part] = value
        else:
            node = node[part]
