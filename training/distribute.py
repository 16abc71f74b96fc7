"""Choosing and setting up the tf.distribute strategy a run trains under."""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from training.config import STRATEGIES
from training.errors import StrategyError
from training.tf_config import parse_tf_config


def configure_cpu_devices(count: int) -> None:
    """Splits the CPU into ``count`` logical devices (for mirrored without GPUs).

    Must run before TensorFlow initialises its devices; raises StrategyError
    if they are already initialised with another count.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing != count:
            raise StrategyError(
                f"--num_cpu_devices={count}, but TensorFlow already runs with {existing} CPU "
                "devices in this process; set it before anything else uses TensorFlow"
            ) from None


def _tf_config() -> Optional[dict]:
    return parse_tf_config()


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy for ``--distribution_strategy``.

    auto: MirroredStrategy over the GPUs when there are several, else the
    default (one device). one_device: the first GPU, else the CPU. mirrored:
    every GPU, else every logical CPU. multi_worker: MultiWorkerMirroredStrategy
    from TF_CONFIG.
    """
    if name == "multi_worker":
        # Collective ops must be configured before anything initialises the
        # TensorFlow context (listing devices does), so this comes first.
        if _tf_config() is None:
            raise StrategyError("--distribution_strategy=multi_worker needs TF_CONFIG set "
                                "(see docs/training.md: several devices and machines)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    raise StrategyError(f"--distribution_strategy must be one of {STRATEGIES}, got {name!r}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints, logs and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in ("chief", None) or (task_type == "worker" and task_id == 0
                                            and "chief" not in resolver.cluster_spec().as_dict())


def task_name(strategy: tf.distribute.Strategy) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return "chief"
    return f"{resolver.task_type}-{resolver.task_id}"


def prepare_for_multi_worker(model, dataset: tf.data.Dataset) -> None:
    """Works around Keras 3.15 ``fit`` under MultiWorkerMirroredStrategy.

    Keras 3 and collective strategies disagree in two places
    (tensorflow/tensorflow#72388): before training, ``fit`` builds the model
    symbolically from a batch that it reduces with ``strategy.reduce``, which
    fails eagerly on a PerReplica batch; and every step it averages the scalar
    metrics with ``strategy.reduce("MEAN", v, axis=0)``, which fails on
    scalars. Building from one local batch here, and averaging scalars over
    ``axis=None`` (an all-reduce mean across workers), fixes both; gradients
    were never affected.
    """
    from keras.src.backend.tensorflow import trainer as keras_tf_trainer

    features, labels = next(iter(dataset))
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=(features, labels))
    model._maybe_symbolic_build = lambda *args, **kwargs: None

    original = keras_tf_trainer.reduce_per_replica
    if getattr(original, "scalar_safe", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if keras_tf_trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.scalar_safe = True
    keras_tf_trainer.reduce_per_replica = reduce_per_replica
