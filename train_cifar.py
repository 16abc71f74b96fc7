"""Trains the reference convnet on CIFAR-10 with the hand-written-gradient layers.

    python train_cifar.py
    python train_cifar.py --data_dir=/path/to/cifar-10-batches-py
    python train_cifar.py --layers=keras --model_dir=runs/cifar-keras
    python train_cifar.py --model=resnet20
    tensorboard --logdir runs/

Defaults (``training.config.CIFAR10``, see docs/training.md): batch 128, Adam 1e-3 with
cosine decay over 18,000 steps (~51 epochs of the 45,000 training images),
dropout 0.3, random crops and flips. ``--model=resnet20`` has its own preset
(``training.config.CIFAR10_RESNET20``): flags given override it. Run with
--help for every flag.
"""

from __future__ import annotations

from typing import Any, Dict

from absl import flags

from training import cli, config


def define_flags() -> None:
    config.define_flags(config.CIFAR10)
    flags.adopt_module_key_flags(config)


def run(flags_obj: flags.FlagValues) -> Dict[str, Any]:
    """Trains (or evaluates) as the flags say; returns the metrics."""
    run_config = config.from_flags(config.CIFAR10, flags_obj, config.CIFAR10_MODEL_PRESETS).validate()
    # Deferred: --help and flag errors answer before TensorFlow loads.
    from datasets.cifar10 import load_cifar10
    from training import trainer

    return trainer.run(run_config, load_cifar10)


main = cli.main_for(run)

if __name__ == "__main__":
    define_flags()
    cli.start(main)
