"""The optimizer and learning-rate schedule a config's `train` section asks for."""

from __future__ import annotations

from typing import Any

import keras

from involution_bench.config import TrainConfig

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}


def learning_rate_schedule(train: TrainConfig, steps_per_epoch: int, replicas: int = 1):
    """The configured learning rate: a number, or a schedule over optimizer steps.

    With several replicas it is scaled by their count (see distribute.py).
    """
    peak = train.learning_rate * replicas
    if train.schedule == "constant":
        return peak
    warmup = train.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak,
        decay_steps=(train.epochs - train.warmup_epochs) * steps_per_epoch,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(
    train: TrainConfig, steps_per_epoch: int, replicas: int = 1
) -> keras.optimizers.Optimizer:
    schedule = learning_rate_schedule(train, steps_per_epoch, replicas)
    options: dict[str, Any] = {"learning_rate": schedule}
    if train.weight_decay is not None:
        options["weight_decay"] = train.weight_decay
    if train.optimizer == "sgd":
        options.update(momentum=train.momentum, nesterov=train.nesterov)
    return OPTIMIZERS[train.optimizer](**options)
