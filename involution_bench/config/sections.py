"""The config's sections, field by field: what each key means and what it may hold.

A config has five sections: `name`, `seed`, `data`, `model` and `train`.
Unknown keys are errors (a typo never passes silently). The model's layer
entries are checked kind by kind in `config.layers`, against the registry in
`involution_bench.kinds`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr

from involution_bench.schema import Float, PositiveFloat, PositiveInt, Section

# CIFAR's images; a folder dataset resizes its images to the config's shape.
DEFAULT_INPUT_SHAPE = (32, 32, 3)


class DataConfig(Section):
    # A dataset of the registry (involution_bench.data): cifar10, cifar100 or folder.
    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")] = "cifar10"
    # An offline copy (CIFAR) or the folder of images (folder); CIFAR falls back
    # to $INVBENCH_DATA_DIR, then to Keras' download.
    dir: str | None = None
    # The images a run chooses on (best epoch, best.keras, early stopping): a count of
    # training images held out, stratified by class; unset: the dataset's val/ or a
    # tenth of the training images; "test": the test set, as the source article does.
    validation: PositiveInt | Literal["test"] | None = None
    # The split's own seed: every model and seed of a study sees the same split.
    split_seed: Annotated[int, Field(ge=0)] = 0
    limit_train: PositiveInt | None = None
    limit_test: PositiveInt | None = None


class ModelConfig(Section):
    # height, width, channels
    input_shape: Annotated[list[PositiveInt], Field(min_length=3, max_length=3)] = Field(
        default_factory=lambda: list(DEFAULT_INPUT_SHAPE)
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
    # Cross-entropy targets (1 - e) * one_hot + e / C (C classes) instead of one-hot.
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
    # After the completion test, the robustness suite (shifts, corruptions, calibration)
    # on the chosen model: RUN/robustness.json, as `invbench robustness` writes it.
    robustness: bool = False
    # Off by default: every run trains its planned epochs.
    early_stopping: EarlyStoppingConfig | None = None


class ExperimentConfig(Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)]
    seed: Annotated[int, Field(ge=0)] = 42
    data: DataConfig = DataConfig()
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    # The file the config was read from, for error messages; not part of the config.
    _source: str = PrivateAttr(default="<config>")

    @property
    def source(self) -> str:
        return self._source

    # Two configs are equal when their keys are, wherever they were read from.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExperimentConfig) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(self.model_dump_json())

    @property
    def layers(self) -> list[tuple[str, dict[str, Any]]]:
        """The model's layers as (kind, arguments) pairs, defaults filled in."""
        return layer_pairs(self.model.layers)


def layer_pairs(entries: list[dict[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Normalized layer entries as (kind, arguments) pairs. A residual block's
    arguments keep their inner `layers` and `shortcut` as entries."""
    return [next(iter(entry.items())) for entry in entries]
