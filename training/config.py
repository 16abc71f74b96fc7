"""Everything a training run needs to know, and the absl flags that fill it in."""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
from typing import Any, Dict, Optional

from absl import flags

from models import registry
from training.errors import UsageError
from training.tf_config import parse_tf_config

OPTIMIZERS = ("adam", "sgd", "momentum", "rmsprop")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
LR_SCHEDULES = ("constant", "cosine", "step", "triangle")
MODES = ("train", "eval")
# Keras's dtype policies the apps train under: float32 everywhere; bfloat16 or
# float16 compute with float32 weights (weight gradients accumulate in float32).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
MODELS = registry.MODEL_NAMES
RESNETS = registry.names_in_family("resnet")
WHITENED = registry.names_in_family("whitened")
FLIPS = ("random", "alternating", "none")  # datasets.pipeline.FLIPS (a test ties the two)
PAD_MODES = ("constant", "reflect")
TTA_LEVELS = ("none", "mirror", "mirror_translate")  # training.tta.TTA_LEVELS


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One run's settings; ``from_flags`` builds it, tests build it directly."""

    dataset: str = "mnist"
    steps: int = 3000
    batch_size: int = 50
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    layers: str = "custom"
    impl: str = "tf"
    model: str = "convnet"
    dropout_rate: float = 0.5
    data_dir: Optional[str] = None
    model_dir: Optional[str] = None
    eval_every: int = 500
    log_every: int = 100
    mode: str = "train"
    seed: int = 0
    jit_compile: bool = False
    precision: str = "float32"
    validation_size: int = 5000
    augment: bool = False
    export_savedmodel: bool = False
    distribution_strategy: str = "auto"
    num_cpu_devices: int = 1
    audit_every: int = 0
    momentum: float = 0.9
    l2: float = 0.0
    label_smoothing: float = 0.0
    bn_bias_lr_multiplier: float = 1.0
    whiten_bias_epochs: int = 0
    lookahead_every: int = 0
    lookahead_start_epoch: int = 0
    flip: str = "random"
    crop_padding: int = 4
    pad_mode: str = "constant"
    tta: str = "none"

    def resolved_model_dir(self) -> str:
        """``model_dir``, or ``runs/<dataset>-<timestamp>`` when unset."""
        if self.model_dir:
            return self.model_dir
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        return os.path.join("runs", f"{self.dataset}-{stamp}")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> "TrainConfig":
        """Checks the flags that cannot work together; returns self.

        (Each flag's own range is checked by its absl validator.)

        Raises:
            UsageError: naming the flags and why.
        """
        spec = registry.spec(self.model)
        if not spec.has_dropout and self.dropout_rate:
            raise UsageError(f"--model={self.model} has no dropout; --dropout_rate must be 0")
        if self.impl != "tf" and not spec.numpy_backward:
            raise UsageError(f"--model={self.model} needs --impl=tf (batch normalization has "
                             "no NumPy-backed layer)")
        if self.distribution_strategy == "multi_worker":
            parse_tf_config()  # its own errors, before TensorFlow reads it
        if (self.l2 or self.bn_bias_lr_multiplier != 1.0 or self.whiten_bias_epochs) \
                and self.optimizer not in ("sgd", "momentum"):
            raise UsageError("--l2, --bn_bias_lr_multiplier and --whiten_bias_epochs need "
                             "--optimizer=sgd or momentum")
        if self.whiten_bias_epochs and self.model not in WHITENED:
            raise UsageError(f"--whiten_bias_epochs applies to the whitened models {WHITENED}")
        if self.audit_every and self.layers != "custom":
            raise UsageError("--audit_every checks the custom layers' gradients; "
                             "it needs --layers=custom")
        if self.impl == "numpy":
            for conflict, present in (("--layers=keras", self.layers != "custom"),
                                      ("--jit_compile", self.jit_compile),
                                      ("--export_savedmodel", self.export_savedmodel)):
                if present:
                    raise UsageError(f"--impl=numpy cannot be combined with {conflict} (the "
                                     "NumPy backward runs through tf.numpy_function: custom "
                                     "layers only, no XLA, no SavedModel)")
        return self


# Upper bounds for counts: far beyond any real run, low enough that no
# TensorFlow int32/int64 counter or seed overflows later in the run.
MAX_STEPS = 10**9
MAX_BATCH_SIZE = 1 << 20
MAX_CPU_DEVICES = 64
MAX_SEED = 2**31 - 1


def _in_range(name: str, low: float, high: float, what: str,
              flag_values: flags.FlagValues) -> None:
    flags.register_validator(
        name, lambda v: v is not None and low <= v <= high,
        message=f"--{name} must be {what}", flag_values=flag_values)


def _fraction(name: str, flag_values: flags.FlagValues) -> None:
    """--name must lie in [0, 1)."""
    flags.register_validator(name, lambda v: v is not None and 0 <= v < 1,
                             message=f"--{name} must be in [0, 1)", flag_values=flag_values)


def define_flags(base: TrainConfig, flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines every training flag in ``flag_values``, ``base``'s values (a preset) as defaults."""
    dataset = base.dataset
    flags.DEFINE_integer("steps", base.steps, "Training steps (batches) in total; "
                         "a larger value continues a resumed run.", flag_values=flag_values)
    flags.DEFINE_integer("batch_size", base.batch_size, "Examples per training step.",
                         flag_values=flag_values)
    flags.DEFINE_float("learning_rate", base.learning_rate, "Initial learning rate.",
                       flag_values=flag_values)
    flags.DEFINE_enum("optimizer", base.optimizer, OPTIMIZERS, "Optimizer.",
                      flag_values=flag_values)
    flags.DEFINE_enum("lr_schedule", base.lr_schedule, LR_SCHEDULES,
                      "constant; cosine decay to 0 over --steps; step: x0.1 at 50% and 75%; "
                      "triangle: linear from x0.2 up to x1 at 23% of --steps, then down to x0.07.",
                      flag_values=flag_values)
    flags.DEFINE_integer("warmup_steps", base.warmup_steps,
                         "Linear warm-up from 0 to --learning_rate over the first N steps "
                         "(cosine schedule only).", flag_values=flag_values)
    flags.DEFINE_float("weight_decay", base.weight_decay,
                       "Decoupled weight decay of kernels (w -= lr * weight_decay * w per step, "
                       "as Keras optimizers apply it); biases and batch-norm weights are exempt.",
                       flag_values=flag_values)
    flags.DEFINE_enum("layers", base.layers, registry.LAYER_KINDS,
                      "custom: hand-written gradients; keras: stock layers.",
                      flag_values=flag_values)
    flags.DEFINE_enum("impl", base.impl, registry.IMPLS,
                      "Backward of the custom layers: tf (TensorFlow ops) or numpy (the NumPy "
                      "reference through tf.numpy_function: the textbook maths, CPU only, slow).",
                      flag_values=flag_values)
    flags.DEFINE_enum("model", base.model, MODELS,
                      "Architecture. The ResNets (He et al. 2016, CIFAR version) and the whitened "
                      "VGGs (the CIFAR-10 speed-run network) bring their own presets of defaults "
                      "(train_cifar.py; see docs/training.md).",
                      flag_values=flag_values)
    flags.DEFINE_float("dropout_rate", base.dropout_rate,
                       "Dropout before the last layer, in [0, 1).", flag_values=flag_values)
    flags.DEFINE_string("data_dir", base.data_dir,
                        "Folder with the official data files; default: Keras cache, else download.",
                        flag_values=flag_values)
    flags.DEFINE_string("model_dir", base.model_dir,
                        f"Checkpoints, logs and exports; default runs/{dataset}-<timestamp>. "
                        "An existing one is resumed.", flag_values=flag_values)
    flags.DEFINE_integer("eval_every", base.eval_every, "Validate and checkpoint every N steps.",
                         flag_values=flag_values)
    flags.DEFINE_integer("log_every", base.log_every, "Log progress every N steps.",
                         flag_values=flag_values)
    flags.DEFINE_enum("mode", base.mode, MODES,
                      "train, or eval the latest checkpoint in --model_dir.",
                      flag_values=flag_values)
    flags.DEFINE_integer("seed", base.seed, "Random seed (weights, split, shuffling, dropout).",
                         flag_values=flag_values)
    flags.DEFINE_boolean("jit_compile", base.jit_compile, "Compile the train step with XLA.",
                         flag_values=flag_values)
    flags.DEFINE_enum("precision", base.precision, PRECISIONS,
                      "Keras dtype policy: float32; mixed_bfloat16 (bfloat16 compute, float32 "
                      "weights: fast on CPUs with AMX or AVX512_BF16 and on recent GPUs); "
                      "mixed_float16 (float16 compute: for GPUs; slow on CPUs).",
                      flag_values=flag_values)
    flags.DEFINE_boolean("mixed_precision", False,
                         "Older spelling of --precision=mixed_float16.", flag_values=flag_values)
    flags.DEFINE_integer("validation_size", base.validation_size,
                         "Training examples held out for validation (0: train on all of them, "
                         "no validation).", flag_values=flag_values)
    flags.DEFINE_boolean("augment", base.augment,
                         "Random crops after --crop_padding pixels of padding and horizontal "
                         "flips (--flip) while training.", flag_values=flag_values)
    flags.DEFINE_enum("flip", base.flip, FLIPS,
                      "With --augment: random (each image, each step, p = 1/2); alternating (a "
                      "random half in epoch 1, then every image the other way round each epoch); "
                      "none.", flag_values=flag_values)
    flags.DEFINE_integer("crop_padding", base.crop_padding,
                         "With --augment: pixels of padding before the random crop.",
                         flag_values=flag_values)
    flags.DEFINE_enum("pad_mode", base.pad_mode, PAD_MODES,
                      "Padding before the crop: constant (zeros) or reflect.",
                      flag_values=flag_values)
    flags.DEFINE_enum("tta", base.tta, TTA_LEVELS,
                      "Test-time augmentation of the final test evaluation: none; mirror (2 "
                      "views); mirror_translate (6 views: mirror and 1-pixel shifts).",
                      flag_values=flag_values)
    flags.DEFINE_float("momentum", base.momentum,
                       "Momentum of --optimizer=momentum (Nesterov).", flag_values=flag_values)
    flags.DEFINE_float("l2", base.l2,
                       "L2 penalty on the mean loss, added to every weight's gradient "
                       "(g += l2 * w, through momentum, as PyTorch SGD's weight_decay); "
                       "sgd/momentum only.", flag_values=flag_values)
    flags.DEFINE_float("label_smoothing", base.label_smoothing,
                       "Cross-entropy towards (1 - e) * onehot + e / classes.",
                       flag_values=flag_values)
    flags.DEFINE_float("bn_bias_lr_multiplier", base.bn_bias_lr_multiplier,
                       "Learning-rate multiplier of batch-norm biases (their --l2 is divided by "
                       "it, so the decay per step is unchanged); sgd/momentum only.",
                       flag_values=flag_values)
    flags.DEFINE_integer("whiten_bias_epochs", base.whiten_bias_epochs,
                         "Whitened models: epochs the whitening layer's bias trains before it "
                         "is frozen (its kernel never trains).", flag_values=flag_values)
    flags.DEFINE_integer("lookahead_every", base.lookahead_every,
                         "Average the weights every N steps and copy the average back "
                         "(lookahead; training/averaging.py); 0 = off.", flag_values=flag_values)
    flags.DEFINE_integer("lookahead_start_epoch", base.lookahead_start_epoch,
                         "Epoch at which --lookahead_every starts.", flag_values=flag_values)
    flags.DEFINE_boolean("export_savedmodel", base.export_savedmodel,
                         "Also write a TensorFlow SavedModel to <model_dir>/savedmodel.",
                         flag_values=flag_values)
    flags.DEFINE_enum("distribution_strategy", base.distribution_strategy, STRATEGIES,
                      "auto: MirroredStrategy on several GPUs, else one device; one_device; "
                      "mirrored: all GPUs (or logical CPUs); multi_worker: from TF_CONFIG. "
                      "--batch_size is the global batch, split across replicas.",
                      flag_values=flag_values)
    flags.DEFINE_integer("num_cpu_devices", base.num_cpu_devices,
                         "Split the CPU into N logical devices (to try mirrored without GPUs).",
                         flag_values=flag_values)
    flags.DEFINE_integer("audit_every", base.audit_every,
                         "Every N steps, compare each custom layer's weight gradients on one "
                         "training batch with TensorFlow autodiff of stock layers holding the same "
                         "weights (TensorBoard: gradient_audit/<layer>/<weight>); 0 = off.",
                         flag_values=flag_values)
    _in_range("audit_every", 0, MAX_STEPS, f"an integer in [0, {MAX_STEPS}]", flag_values)
    for name in ("steps", "eval_every", "log_every"):
        _in_range(name, 1, MAX_STEPS, f"a positive integer up to {MAX_STEPS}", flag_values)
    _in_range("batch_size", 1, MAX_BATCH_SIZE, f"a positive integer up to {MAX_BATCH_SIZE}",
              flag_values)
    _in_range("num_cpu_devices", 1, MAX_CPU_DEVICES, f"a positive integer up to {MAX_CPU_DEVICES}",
              flag_values)
    _in_range("validation_size", 0, MAX_STEPS, f"an integer in [0, {MAX_STEPS}]", flag_values)
    _in_range("seed", 0, MAX_SEED, f"an integer in [0, {MAX_SEED}]", flag_values)
    flags.register_validator("learning_rate", lambda v: v is not None and 0 < v < math.inf,
                             message="--learning_rate must be a positive finite number",
                             flag_values=flag_values)
    _in_range("warmup_steps", 0, MAX_STEPS, f"an integer in [0, {MAX_STEPS}]", flag_values)
    for name in ("weight_decay", "momentum", "l2", "dropout_rate"):
        _fraction(name, flag_values)
    for name in ("whiten_bias_epochs", "lookahead_every", "lookahead_start_epoch"):
        _in_range(name, 0, MAX_STEPS, f"an integer in [0, {MAX_STEPS}]", flag_values)
    _in_range("crop_padding", 0, 64, "an integer in [0, 64]", flag_values)
    flags.register_validator("label_smoothing", lambda v: v is not None and 0 <= v <= 1,
                             message="--label_smoothing must be in [0, 1]", flag_values=flag_values)
    flags.register_validator("bn_bias_lr_multiplier",
                             lambda v: v is not None and 0 < v <= 1e4,
                             message="--bn_bias_lr_multiplier must be in (0, 10000]",
                             flag_values=flag_values)


def from_flags(base: TrainConfig, flag_values: flags.FlagValues = flags.FLAGS,
               model_presets: Optional[Dict[str, TrainConfig]] = None) -> TrainConfig:
    """``base`` with every flag's parsed value (``FLAGS`` itself is never changed).

    When ``--model`` names a key of ``model_presets``, that preset replaces
    ``base`` and only flags given on the command line override it.
    """
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "dataset"]
    preset = (model_presets or {}).get(flag_values["model"].value)
    if preset is None:
        config = dataclasses.replace(base, **{n: flag_values[n].value for n in names})
    else:
        config = dataclasses.replace(preset, **{n: flag_values[n].value for n in names
                                                if flag_values[n].present})
    if "mixed_precision" in flag_values and flag_values["mixed_precision"].value:
        if flag_values["precision"].present and config.precision != "mixed_float16":
            raise UsageError(f"--mixed_precision means --precision=mixed_float16; it cannot be "
                             f"combined with --precision={config.precision}")
        config = dataclasses.replace(config, precision="mixed_float16")
    return config


# Per-data-set presets: what each entry script trains with unless flags say
# otherwise. MNIST uses TrainConfig's defaults; docs/training.md says why CIFAR's differ.
MNIST = TrainConfig(dataset="mnist")
CIFAR10 = TrainConfig(dataset="cifar10", steps=18000, batch_size=128, dropout_rate=0.3,
                      eval_every=1000, log_every=200, augment=True)
# ResNet-20 within 75 minutes on a 2-core CPU: SGD + Nesterov momentum at 0.1
# for batch 128 with a short warm-up and cosine decay to 0, decoupled weight
# decay 5e-4 * 10 (momentum 0.9 multiplies coupled L2 by ~10; this matches the
# paper's 1e-4..5e-4), crops and flips, XLA; the speed runs' 6-view test-time
# augmentation (their label smoothing and lookahead gained nothing measurable here).
# docs/results.md gives the measurements.
CIFAR10_RESNET20 = dataclasses.replace(
    CIFAR10, model="resnet20", steps=4500, optimizer="momentum", learning_rate=0.1,
    lr_schedule="cosine", warmup_steps=200, weight_decay=5e-3, dropout_rate=0.0,
    eval_every=500, log_every=100, jit_compile=True, tta="mirror_translate")
# The deeper ResNets start from ResNet-20's preset (no measured tuning of their own);
# on MNIST the ResNets keep MNIST's defaults without dropout (they have none).
# The whitened VGG as the CIFAR-10 speed runs train it (airbench; docs/training.md
# converts their "per 1024 examples, summed loss" figures to Keras's mean loss):
# batch 1024, Nesterov 0.85 at lr 1.5 on a triangle schedule, L2 0.0153 / 11.5,
# batch-norm biases at 64x the lr, label smoothing 0.2, lookahead every 5 steps
# from epoch 3, reflect-padded 2-pixel crops with alternating flips, 6-view TTA,
# all 50,000 training images. WHITENED_EPOCHS epochs of 48 steps.
WHITENED_EPOCHS = 14
CIFAR10_WHITENED = dataclasses.replace(
    CIFAR10, model="whitened_vgg", steps=WHITENED_EPOCHS * 48, batch_size=1024,
    optimizer="momentum", momentum=0.85, learning_rate=1.5, lr_schedule="triangle",
    l2=0.0153 / 11.5, label_smoothing=0.2, bn_bias_lr_multiplier=64.0, whiten_bias_epochs=3,
    lookahead_every=5, lookahead_start_epoch=3, flip="alternating", crop_padding=2,
    pad_mode="reflect", tta="mirror_translate", validation_size=0, dropout_rate=0.0,
    eval_every=96, log_every=12)
CIFAR10_MODEL_PRESETS = {
    **{m: dataclasses.replace(CIFAR10_RESNET20, model=m) for m in RESNETS},
    **{m: dataclasses.replace(CIFAR10_WHITENED, model=m) for m in WHITENED},
}
MNIST_MODEL_PRESETS = {m: dataclasses.replace(MNIST, model=m, dropout_rate=0.0)
                       for m in RESNETS + WHITENED}
