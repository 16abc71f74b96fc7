"""Trains the reference convnet on MNIST with the hand-written-gradient layers.

    python train_mnist.py --steps=3000
    python train_mnist.py --layers=keras --data_dir=/path/to/mnist
    python train_mnist.py --mode=eval --model_dir=runs/mnist-...
    tensorboard --logdir runs/

Run with --helpfull for every flag.
"""

from __future__ import annotations

from typing import Any, Dict

from absl import app, flags

from datasets import load_mnist
from training import cli, config, trainer

DATASET = "mnist"


def define_flags() -> None:
    config.define_flags(DATASET, steps=3000, batch_size=50, learning_rate=1e-3,
                        optimizer="adam", lr_schedule="cosine", eval_every=500,
                        validation_size=5000, augment=False)


def run(flags_obj: flags.FlagValues) -> Dict[str, Any]:
    """Trains (or evaluates) as the flags say; returns the metrics."""
    return trainer.run(config.from_flags(DATASET, flags_obj), load_mnist)


main = cli.main_for(run)

if __name__ == "__main__":
    define_flags()
    app.run(main)
