"""Tiny data files in the official formats, written by the tests themselves."""

import os

import numpy as np

from datasets.idx import write_idx


def make_tiny_mnist(folder, n_train=64, n_test=32, seed=0, compress=True):
    """The four official MNIST IDX files with random digits; returns ``folder``."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{suffix}"),
                  rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), compress)
        write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{suffix}"),
                  rng.integers(0, 10, size=n, dtype=np.uint8), compress)
    return str(folder)


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]


def cifar_members(per_batch=20, seed=0):
    """{file name: pickle bytes} of a CIFAR-10 python layout with tiny batches."""
    import pickle

    rng = np.random.default_rng(seed)
    members = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        members[name] = pickle.dumps({
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, per_batch).tolist(),
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"filenames": [b"img_%05d.png" % i for i in range(per_batch)],
        }, protocol=2)
    members["batches.meta"] = pickle.dumps({
        b"label_names": [c.encode() for c in CIFAR_CLASSES],
        b"num_cases_per_batch": per_batch, b"num_vis": 3072}, protocol=2)
    return members


def write_cifar_folder(root, members=None):
    """Writes ``root``/cifar-10-batches-py/; returns that folder."""
    folder = os.path.join(str(root), "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    for name, raw in (members or cifar_members()).items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(raw)
    return folder


def write_cifar_archive(root, members=None):
    """Writes ``root``/cifar-10-python.tar.gz; returns its path."""
    import io
    import tarfile

    os.makedirs(str(root), exist_ok=True)
    path = os.path.join(str(root), "cifar-10-python.tar.gz")
    with tarfile.open(path, "w:gz") as archive:
        for name, raw in (members or cifar_members()).items():
            info = tarfile.TarInfo("cifar-10-batches-py/" + name)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return path
