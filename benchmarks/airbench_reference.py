"""The speed-run reference on our data: Keller Jordan's airbench, unchanged, on the CPU.

Tells recipe from data: if ``lib_airbench93`` itself (PyTorch, the code the
93%-in-11-epochs figure comes from) lands where ``--model=whitened_vgg`` does
on the same CIFAR-10 copy, the gap to the published figure is the data's.
It needs PyTorch, which ``requirements.txt`` does not install, and a checkout
of https://github.com/KellerJordan/cifar10-airbench; run it from a separate
venv (``pip install torch numpy absl-py``)::

    python -m benchmarks.airbench_reference --airbench_dir=/path/to/cifar10-airbench \
        --data_dir=/path/to/cifar-10-batches-py --work_dir=/tmp/airbench --epochs=11

Only the device changes: ``.cuda()``/``.half()`` become no-ops (float32 on
the CPU), CUDA events become ``perf_counter``, and the training and test
images are read by our own loader (no unpickling of arbitrary objects) into
the ``train.pt``/``test.pt`` files airbench's loader expects. airbench prints
its per-epoch table; the last column is seconds since training started.
"""

from __future__ import annotations

import os
import sys
import time
import types

import numpy as np
from absl import app, flags

from benchmarks.cpu import cpu_description

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("airbench_dir", None, "A checkout of cifar10-airbench.", required=True)
    flags.DEFINE_string("data_dir", None, "CIFAR-10 in its official layout.", required=True)
    flags.DEFINE_string("work_dir", "runs/airbench", "Where the .pt copies of the data go.")
    flags.DEFINE_float("epochs", 11.0, "Training epochs (airbench93's default is 11).",
                       lower_bound=0.05)
    flags.DEFINE_integer("seed", 0, "torch.manual_seed and airbench's run number.")


def write_airbench_data(data_dir: str, folder: str) -> None:
    """Writes all 50,000 training and the 10,000 test images as airbench's .pt files.

    Each file holds {"images": (N, 32, 32, 3) uint8, "labels": (N,) int64,
    "classes": [str]}, the layout ``airbench.utils.CifarLoader`` saves itself.
    """
    import torch
    from datasets.cifar10 import load_cifar10

    data = load_cifar10(data_dir, validation_size=0)
    os.makedirs(folder, exist_ok=True)
    for split, name in ((data.train, "train.pt"), (data.test, "test.pt")):
        path = os.path.join(folder, name)
        if os.path.lexists(path):
            os.remove(path)  # never write through a link left in the folder
        torch.save({"images": torch.from_numpy(np.ascontiguousarray(split.images)),
                    "labels": torch.from_numpy(split.labels.astype(np.int64)),
                    "classes": list(data.class_names)}, path)


def install_cpu_shims() -> None:
    """Makes airbench's CUDA/float16 calls run in float32 on the CPU."""
    import torch

    load = torch.load
    torch.load = lambda path, map_location=None, **kw: load(path, map_location="cpu", **kw)
    torch.nn.Module.cuda = lambda self, *a, **kw: self
    torch.nn.Module.half = lambda self: self
    torch.Tensor.half = lambda self: self.float()

    class Event:
        def __init__(self, **kw):
            self.t = None

        def record(self):
            self.t = time.perf_counter()

        def elapsed_time(self, other):  # milliseconds, as CUDA's
            return 1e3 * (other.t - self.t)

    torch.cuda.Event = Event
    torch.cuda.synchronize = lambda *a: None
    # airbench's utils import torchvision for Normalize only (the .pt files exist).
    transforms = types.ModuleType("torchvision.transforms")

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = torch.as_tensor(mean), torch.as_tensor(std)

        def __call__(self, x):  # (N, C, H, W)
            return (x - self.mean.to(x.dtype).view(-1, 1, 1)) / self.std.to(x.dtype).view(-1, 1, 1)

    transforms.Normalize = Normalize
    vision = types.ModuleType("torchvision")
    vision.transforms, vision.datasets = transforms, None
    sys.modules.setdefault("torchvision", vision)
    sys.modules.setdefault("torchvision.transforms", transforms)


def run() -> float:
    """Trains airbench93 once; returns the wall seconds (its table is printed as it goes)."""
    import torch

    print(cpu_description())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    write_airbench_data(FLAGS.data_dir, os.path.join(FLAGS.work_dir, "cifar10"))
    install_cpu_shims()
    sys.path.insert(0, os.path.abspath(FLAGS.airbench_dir))
    from airbench import lib_airbench93

    torch.manual_seed(FLAGS.seed)
    os.chdir(FLAGS.work_dir)  # airbench reads ./cifar10/{train,test}.pt
    start = time.time()
    lib_airbench93.train93(run=FLAGS.seed, epochs=FLAGS.epochs)
    seconds = time.time() - start
    print(f"wall_seconds={seconds:.1f}", flush=True)
    return seconds


def main(argv) -> None:
    del argv
    run()


if __name__ == "__main__":
    define_flags()
    app.run(main)
