"""Trains the reference convnet on CIFAR-10 with the hand-written-gradient layers.

    python train_cifar.py
    python train_cifar.py --data_dir=/path/to/cifar-10-batches-py
    python train_cifar.py --layers=keras --model_dir=runs/cifar-keras
    tensorboard --logdir runs/

Defaults (see README): batch 128, Adam 1e-3 with cosine decay over 18,000
steps (~51 epochs of the 45,000 training images), dropout 0.3, random crops
and flips. Run with --helpfull for every flag.
"""

from __future__ import annotations

from typing import Any, Dict

from absl import app, flags

from datasets.cifar10 import load_cifar10
from training import cli, config, trainer

DATASET = "cifar10"


def define_flags() -> None:
    config.define_flags(DATASET, steps=18000, batch_size=128, learning_rate=1e-3,
                        optimizer="adam", lr_schedule="cosine", dropout_rate=0.3,
                        eval_every=1000, log_every=200, validation_size=5000, augment=True)


def run(flags_obj: flags.FlagValues) -> Dict[str, Any]:
    """Trains (or evaluates) as the flags say; returns the metrics."""
    return trainer.run(config.from_flags(DATASET, flags_obj), load_cifar10)


main = cli.main_for(run)

if __name__ == "__main__":
    define_flags()
    app.run(main)
