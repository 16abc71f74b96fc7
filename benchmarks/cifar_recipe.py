"""What each piece of the whitened-VGG recipe is worth: short CIFAR-10 runs, one per variant.

Each variant is the ``--model=whitened_vgg`` preset for ``--epochs`` epochs
with one piece taken out; every run also reports its accuracy without
test-time augmentation, so "without TTA" needs no run of its own. Several
``--seeds`` give the mean and spread, so a reader can tell recipe from noise::

    python -m benchmarks.cifar_recipe --data_dir=/path/to/cifar-10-batches-py
    python -m benchmarks.cifar_recipe --data_dir=... --variants=preset --seeds=0,1,2 --epochs=7

Runs go to ``--out_dir/<variant>-seed<k>`` (a finished one is read back, not
rerun); the table is printed at the end, the CPU first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from typing import Dict, List

from absl import flags

from benchmarks.common import require_known
from benchmarks.cpu import cpu_description
from models import registry
from training import cli, config

STEPS_PER_EPOCH = 48  # 50,000 images in batches of 1024
VARIANTS = {
    "preset": {},
    "no_whitening": {"model": "whitened_vgg_learned_stem", "whiten_bias_epochs": 0},
    "no_averaging": {"lookahead_every": 0},
    "no_label_smoothing": {"label_smoothing": 0.0},
    "random_flip": {"flip": "random"},
}
# The ablation's model: the same network with an ordinary trainable first layer.
_LEARNED_STEM = registry.ModelSpec("models.whitened_vgg:build_whitened_vgg",
                                   (("widths", (64, 128, 128)), ("whitening", False)),
                                   has_dropout=False, numpy_backward=False, family="whitened")


def define_flags() -> None:
    flags.DEFINE_string("data_dir", None, "CIFAR-10 in its official layout.", required=True)
    flags.DEFINE_string("out_dir", "runs/cifar_recipe", "Where the runs go.")
    flags.DEFINE_list("variants", list(VARIANTS), f"Of: {', '.join(VARIANTS)}.")
    flags.DEFINE_list("seeds", ["0"], "Seeds; each variant runs once per seed.")
    flags.DEFINE_float("epochs", 7.0, "Epochs per run (the preset trains "
                       f"{config.WHITENED_EPOCHS}).", lower_bound=0.1)
    flags.DEFINE_enum("layers", "custom", registry.LAYER_KINDS, "Layer kind of every run.")


def _run_one(variant: str, seed: int, epochs: float, data_dir: str, out_dir: str,
             layers: str) -> Dict[str, float]:
    from datasets.cifar10 import load_cifar10
    from training import trainer

    model_dir = os.path.join(out_dir, f"{variant}-seed{seed}")
    metrics_path = os.path.join(model_dir, "metrics.json")
    if os.path.exists(metrics_path):
        with open(metrics_path) as f:
            metrics = json.load(f)
        if metrics.get("status") == "done":
            return metrics
    run_config = dataclasses.replace(
        config.CIFAR10_WHITENED, steps=max(round(epochs * STEPS_PER_EPOCH), 1), seed=seed,
        data_dir=data_dir, model_dir=model_dir, layers=layers, **VARIANTS[variant])
    return trainer.run(run_config.validate(), load_cifar10)


def run(flags_obj: flags.FlagValues) -> List[Dict]:
    require_known("variants", flags_obj.variants, VARIANTS)
    registry.MODELS.setdefault("whitened_vgg_learned_stem", _LEARNED_STEM)
    print(cpu_description())
    rows = []
    for variant in flags_obj.variants:
        runs = [_run_one(variant, int(seed), flags_obj.epochs, flags_obj.data_dir,
                         flags_obj.out_dir, flags_obj.layers) for seed in flags_obj.seeds]
        rows.append({"variant": variant, "runs": runs})
    print(f"\n{flags_obj.epochs:g} epochs, layers={flags_obj.layers}, seeds {','.join(flags_obj.seeds)}:")
    print("| variant | test accuracy (TTA) | without TTA | wall minutes |")
    print("|---|---|---|---|")
    for row in rows:
        cells = []
        for key in ("test_accuracy", "test_accuracy_without_tta"):
            values = [100 * r[key] for r in row["runs"] if key in r]
            spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.2f}%{spread}" if values else "—")
        wall = statistics.mean(r["wall_seconds"] for r in row["runs"]) / 60
        print(f"| {row['variant']} | {cells[0]} | {cells[1]} | {wall:.1f} |")
    return rows


if __name__ == "__main__":
    define_flags()
    cli.start(cli.main_for(run))
