"""MNIST loading: where it looks, what it validates, how it reports bad files."""

import gzip
import os
import struct

import numpy as np
import pytest

from datasets import DataError, load_mnist
from datasets import location
from datasets.idx import read_idx, write_idx
from tests.data_factory import make_tiny_mnist


def test_loads_gzipped_and_plain_idx_with_validation_split(tmp_path):
    for compress in (True, False):
        folder = make_tiny_mnist(tmp_path / f"m{compress}", compress=compress)
        data = load_mnist(folder, validation_size=10)
        assert data.train.images.shape == (54, 28, 28, 1)
        assert data.validation.images.shape == (10, 28, 28, 1)
        assert data.test.images.shape == (32, 28, 28, 1)
        assert data.train.images.dtype == np.uint8 and data.train.labels.dtype == np.int32


def test_loads_keras_npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {k: rng.integers(0, 255, size=(n, 28, 28), dtype=np.uint8) for k, n in
              (("x_train", 20), ("x_test", 8))}
    arrays.update(y_train=rng.integers(0, 10, 20, dtype=np.uint8),
                  y_test=rng.integers(0, 10, 8, dtype=np.uint8))
    np.savez(tmp_path / "mnist.npz", **arrays)
    data = load_mnist(str(tmp_path), validation_size=5)
    np.testing.assert_array_equal(data.test.images[..., 0], arrays["x_test"])


def test_validation_split_is_reproducible_and_disjoint(tmp_path):
    folder = make_tiny_mnist(tmp_path)
    a, b = load_mnist(folder, 16, seed=3), load_mnist(folder, 16, seed=3)
    np.testing.assert_array_equal(a.validation.images, b.validation.images)
    train_rows = {img.tobytes() for img in a.train.images}
    assert not any(img.tobytes() in train_rows for img in a.validation.images)


def test_missing_folder_and_files_say_what_to_put_where(tmp_path):
    with pytest.raises(DataError, match="does not exist.*train-images-idx3-ubyte.gz"):
        load_mnist(str(tmp_path / "nope"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DataError, match="missing MNIST files"):
        load_mnist(str(tmp_path / "empty"))


def test_no_data_anywhere_and_no_network_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(location, "KERAS_CACHE", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    import keras
    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(DataError, match="download failed.*--data_dir"):
        load_mnist(None)


def _corrupt(folder, name, payload):
    with open(os.path.join(folder, name), "wb") as f:
        f.write(payload)


@pytest.mark.parametrize("payload,message", [
    (gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 64, 28, 28) + b"\x00" * 100), "truncated"),
    (gzip.compress(b"\x12\x34\x08\x03" + b"\x00" * 12), "bad magic"),
    (gzip.compress(b"\x00\x00\x0d\x03" + b"\x00" * 12), "data type"),
    (gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 2**31, 2**31, 28)), "more than the"),
    (b"\x1f\x8b\x08\x00garbage", "corrupt"),
    (gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 64, 27, 28) + b"\x00" * (64 * 27 * 28)), "shape"),
])
def test_corrupt_image_file_is_named(tmp_path, payload, message):
    folder = make_tiny_mnist(tmp_path)
    _corrupt(folder, "train-images-idx3-ubyte.gz", payload)
    with pytest.raises(DataError, match=message) as info:
        load_mnist(folder)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_bad_labels_are_reported(tmp_path):
    folder = make_tiny_mnist(tmp_path)
    write_idx(os.path.join(folder, "t10k-labels-idx1-ubyte.gz"), np.full(32, 11, np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels.*\[11, 11\]"):
        load_mnist(folder)
    write_idx(os.path.join(folder, "t10k-labels-idx1-ubyte.gz"), np.zeros(31, np.uint8))
    with pytest.raises(DataError, match="32 images but labels"):
        load_mnist(folder)


def test_trailing_data_is_rejected(tmp_path):
    path = str(tmp_path / "x.idx")
    write_idx(path, np.zeros((2, 3), np.uint8), compress=False)
    with open(path, "ab") as f:
        f.write(b"\x00")
    with pytest.raises(DataError, match="more data"):
        read_idx(path)


def test_loads_files_as_large_and_compressible_as_the_official_ones(tmp_path):
    # Real digits are mostly zeros: a member inflates in many reads, and its
    # end arrives in a read capped by the output bound (which once left the
    # trailer's bytes twice in the reader's input: "truncated gzip header").
    rng = np.random.default_rng(1)
    images = np.zeros((6000, 28, 28), np.uint8)
    images[:, 8:20, 8:20] = rng.integers(0, 256, size=(6000, 12, 12)) * (rng.random((6000, 12, 12)) < 0.2)
    folder = make_tiny_mnist(tmp_path / "m")
    write_idx(os.path.join(folder, "train-images-idx3-ubyte.gz"), images, True)
    write_idx(os.path.join(folder, "train-labels-idx1-ubyte.gz"),
              rng.integers(0, 10, size=6000, dtype=np.uint8), True)
    assert os.path.getsize(os.path.join(folder, "train-images-idx3-ubyte.gz")) < 2_000_000
    data = load_mnist(folder, validation_size=0)
    assert data.train.images.shape == (6000, 28, 28, 1)
    # The loader shuffles before splitting: compare the images as a set.
    np.testing.assert_array_equal(np.sort(data.train.images.reshape(6000, -1).sum(1)),
                                  np.sort(images.reshape(6000, -1).sum(1)))
