"""`train.distribute`: TensorFlow's own data-parallel strategies.

- none: the default strategy (one device, as Keras picks it).
- mirrored: `MirroredStrategy` over all local GPUs; on a machine without
  GPUs, over its logical CPU devices (one, unless configured otherwise).
- multi_worker: `MultiWorkerMirroredStrategy` over the machines that the
  standard `TF_CONFIG` environment variable describes.

As users of these strategies expect, `train.batch_size` is the batch per
replica: one step sees `batch_size * replicas` images, and the learning rate
is multiplied by the replica count (the linear scaling rule, Goyal et al.
2017), so the per-image step size of a single-device run is kept.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass

import keras
import tensorflow as tf

from involution_bench.errors import ConfigError

TF_CONFIG_ENV = "TF_CONFIG"


@dataclass(frozen=True)
class Distribution:
    kind: str
    strategy: tf.distribute.Strategy
    is_chief: bool  # only the chief writes the run folder

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def devices(self) -> list[str]:
        """This worker's replica devices ([] without a strategy: Keras places ops itself)."""
        if self.kind == "none":
            return []
        return list(self.strategy.extended.worker_devices)

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "replicas": self.replicas, "devices": self.devices}


def gpu_names() -> list[str]:
    """The GPUs TensorFlow sees, by model name where the driver says it."""
    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return names


def distribution(kind: str) -> Distribution:
    """The strategy for `train.distribute`; multi_worker checks `TF_CONFIG` first."""
    if kind == "none":
        return Distribution(kind, tf.distribute.get_strategy(), is_chief=True)
    if kind == "mirrored":
        return Distribution(kind, _mirrored(), is_chief=True)
    if kind == "multi_worker":
        task = _task_from_tf_config()
        return Distribution(kind, _multi_worker(), is_chief=is_chief(task))
    raise ValueError(f"unknown train.distribute {kind!r}")  # the config schema prevents this


@functools.cache
def _mirrored() -> tf.distribute.Strategy:
    devices = [device.name for device in tf.config.list_logical_devices("GPU")]
    if not devices:
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


@functools.cache  # TensorFlow allows one multi-worker strategy per process
def _multi_worker() -> tf.distribute.Strategy:
    return tf.distribute.MultiWorkerMirroredStrategy()


def _task_from_tf_config() -> dict:
    raw = os.environ.get(TF_CONFIG_ENV)
    where = TF_CONFIG_ENV
    if not raw:
        raise ConfigError(
            where, None, "not set; train.distribute multi_worker needs its cluster and task"
        )
    try:
        tf_config = json.loads(raw)
        cluster, task = tf_config["cluster"], tf_config["task"]
        task_type, index = task["type"], int(task["index"])
        members = cluster[task_type]
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(where, None, f"not a usable cluster description ({exc!r})") from None
    if not 0 <= index < len(members):
        raise ConfigError(where, None, f"task index {index} is not in its cluster")
    return {"type": task_type, "index": index, "has_chief": "chief" in cluster}


def is_chief(task: dict) -> bool:
    """TensorFlow's rule: the "chief" task, or worker 0 when the cluster names no chief."""
    if task["type"] == "chief":
        return True
    return task["type"] == "worker" and task["index"] == 0 and not task["has_chief"]


def work_around_keras_multi_worker_bugs(dist: Distribution, model: keras.Model, dataset) -> None:
    """Make Keras 3's `fit` work under `MultiWorkerMirroredStrategy`.

    Keras 3.15 has two bugs there (keras-team/keras#20585, still open):
    - before building the metrics, `fit` reduces one real batch across the
      workers, which fails ("Attempt to convert a value (PerReplica...)");
      building from the dataset's element spec needs no real batch;
    - each step's scalar logs are reduced with `axis=0`, which fails for
      scalars ("Invalid reduction dimension 0"); they need `axis=None`.
    A test trains two workers on localhost to keep both fixes honest.
    """
    if dist.kind != "multi_worker":
        return
    from keras.src.backend.tensorflow import trainer as tf_trainer

    spec = tf.nest.map_structure(
        lambda item: keras.KerasTensor(item.shape, item.dtype.name), dataset.element_spec
    )

    def symbolic_build(iterator=None, data_batch=None):
        with dist.strategy.scope():
            model._symbolic_build(data_batch=spec)

    model._maybe_symbolic_build = symbolic_build
    if not getattr(tf_trainer.reduce_per_replica, "handles_scalars", False):
        tf_trainer.reduce_per_replica = _scalar_safe(tf_trainer.reduce_per_replica)


def _scalar_safe(reduce_per_replica):
    def reduce(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):
            return reduce_per_replica(values, strategy, reduction)

        def mean(value):
            if not isinstance(value, tf.distribute.DistributedValues):
                return value
            rank = strategy.experimental_local_results(value)[0].shape.rank
            return strategy.reduce("MEAN", value, axis=None if rank == 0 else 0)

        return tf.nest.map_structure(mean, values)

    reduce.handles_scalars = True
    return reduce
