"""Choosing and setting up the tf.distribute strategy a run trains under."""

from __future__ import annotations

import json
import os
from typing import Optional

import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")


class StrategyError(ValueError):
    """The requested strategy cannot run here; the message says why."""


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
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise StrategyError(f"TF_CONFIG is not valid JSON: {e}") from None
    if "cluster" not in config or "task" not in config:
        raise StrategyError('TF_CONFIG needs "cluster" and "task" entries')
    return config


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
                                "(see README: training on several machines)")
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
