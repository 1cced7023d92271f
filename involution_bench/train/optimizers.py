"""The optimizer and learning-rate schedule a config's `train` section asks for."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from involution_bench.config import TrainConfig


@keras.saving.register_keras_serializable(package="involution_bench")
class SGD(keras.optimizers.SGD):
    """Keras' `SGD` (same arguments, state and config), with its update in fewer ops.

    Keras' optimizers evaluate the learning-rate schedule once for every weight
    that takes weight decay, and its SGD updates a weight and its momentum in
    several elementwise ops. For the ResNet's 47 weights that made the update
    1,574 ops. Here the schedule is evaluated once per step, and a weight and
    its momentum are updated by one `ResourceApplyKerasMomentum`, which is
    Keras' formula (`m = m * momentum - lr * g`, then `w += m`, or with
    Nesterov `w += m * momentum - lr * g`); the weights come out bit for bit
    the same (`tests/test_optimizers.py`).
    """

    _learning_rate_now = None  # the step's learning rate while weight decay runs

    def _get_current_learning_rate(self):
        if self._learning_rate_now is not None:
            return self._learning_rate_now
        return super()._get_current_learning_rate()

    def _apply_weight_decay(self, variables):
        self._learning_rate_now = super()._get_current_learning_rate()
        try:
            super()._apply_weight_decay(variables)
        finally:
            self._learning_rate_now = None

    def update_step(self, gradient, variable, learning_rate):
        if self.momentum == 0 or not hasattr(variable, "handle"):
            return super().update_step(gradient, variable, learning_rate)
        momentum = self.momentums[self._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle,
            accum=momentum.value.handle,
            lr=tf.cast(learning_rate, variable.dtype),
            grad=tf.cast(gradient, variable.dtype),
            momentum=tf.cast(self.momentum, variable.dtype),
            use_nesterov=self.nesterov,
        )


OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": SGD,
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
    train: TrainConfig, steps_per_epoch: int, replicas: int = 1, keras_own: bool = False
) -> keras.optimizers.Optimizer:
    """The config's optimizer; `keras_own` gives Keras' class where invbench has its own
    (`bench model`'s baseline)."""
    schedule = learning_rate_schedule(train, steps_per_epoch, replicas)
    options: dict[str, Any] = {"learning_rate": schedule}
    if train.weight_decay is not None:
        options["weight_decay"] = train.weight_decay
    if train.optimizer == "sgd":
        options.update(momentum=train.momentum, nesterov=train.nesterov)
    cls = OPTIMIZERS[train.optimizer]
    if keras_own:
        cls = getattr(keras.optimizers, cls.__name__)
    return cls(**options)
