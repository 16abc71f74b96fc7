"""Trains the reference convnet on MNIST with the hand-written-gradient layers.

    python train_mnist.py --steps=3000
    python train_mnist.py --layers=keras --data_dir=/path/to/mnist
    python train_mnist.py --mode=eval --model_dir=runs/mnist-...
    tensorboard --logdir runs/

Run with --help for every flag.
"""

from __future__ import annotations

from typing import Any, Dict

from absl import flags

from training import cli, config


def define_flags() -> None:
    config.define_flags(config.MNIST)
    flags.adopt_module_key_flags(config)


def run(flags_obj: flags.FlagValues) -> Dict[str, Any]:
    """Trains (or evaluates) as the flags say; returns the metrics."""
    run_config = config.from_flags(config.MNIST, flags_obj, config.MNIST_MODEL_PRESETS).validate()
    # Deferred: --help and flag errors answer before TensorFlow loads.
    from datasets import load_mnist
    from training import trainer

    return trainer.run(run_config, load_mnist)


main = cli.main_for(run)

if __name__ == "__main__":
    define_flags()
    cli.start(main)
