"""MNIST files built to hurt (IDX and Keras .npz): inflate bombs, lying headers, wrong types.

Every case ends in ``DataError`` naming the file, within the memory bound
of ``tests.hostile`` where a case could bomb.
"""

import gzip
import io
import os
import struct
import zipfile

import numpy as np
import pytest

from datasets import DataError, load_mnist
from datasets.idx import UBYTE_TYPE
from tests.data_factory import make_tiny_mnist
from tests.hostile import load_limited

MB = 1 << 20


def _idx_header(*dims):
    return struct.pack(">BBBB", 0, 0, UBYTE_TYPE, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


def _gzip_zeros(path, header, zero_bytes):
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header)
        chunk = b"\x00" * (16 * MB)
        for start in range(0, zero_bytes, len(chunk)):
            f.write(chunk[: zero_bytes - start])


def test_small_gzip_claiming_more_images_than_mnist_is_refused_before_inflating(tmp_path):
    folder = make_tiny_mnist(tmp_path)
    images = os.path.join(folder, "train-images-idx3-ubyte.gz")
    count = 200_000  # 157 MB of pixels, ~0.2 MB gzipped
    _gzip_zeros(images, _idx_header(count, 28, 28), count * 784)
    labels = os.path.join(folder, "train-labels-idx1-ubyte.gz")
    _gzip_zeros(labels, _idx_header(count), count)
    assert os.path.getsize(images) < 2 * MB
    outcome, peak = load_limited("mnist", "load_mnist", folder)
    assert "train-images-idx3-ubyte.gz: IDX header claims 156800000 bytes" in outcome, outcome
    assert "more than the 54880000 this data set can hold" in outcome
    assert peak < 300 * MB


def test_invalid_deflate_block_is_corrupt(tmp_path):
    folder = make_tiny_mnist(tmp_path)
    valid = gzip.compress(_idx_header(64))
    # A valid gzip header followed by a deflate block of reserved type 3.
    with open(os.path.join(folder, "train-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(valid[:10] + b"\xff\xff\xff\xff" + valid[-8:])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: unreadable or corrupt"):
        load_mnist(folder)


def _npy(array_header: dict, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, array_header)
    return buffer.getvalue() + data


def _npz(path, members, compress=True):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for name, raw in members.items():
            z.writestr(name + ".npy", raw)
    return str(path)


def _valid_members(n=20):
    rng = np.random.default_rng(0)
    out = {}
    for key, shape in (("x_train", (n, 28, 28)), ("y_train", (n,)), ("x_test", (n, 28, 28)), ("y_test", (n,))):
        buffer = io.BytesIO()
        array = rng.integers(0, 10 if key[0] == "y" else 256, shape).astype(np.uint8)
        np.lib.format.write_array(buffer, array)
        out[key] = buffer.getvalue()
    return out


def test_valid_npz_loads(tmp_path):
    data = load_mnist(_npz(tmp_path / "mnist.npz", _valid_members()), validation_size=5)
    assert data.train.images.shape == (15, 28, 28, 1)


def test_npz_whose_header_claims_millions_of_images_is_refused_before_allocating(tmp_path):
    members = _valid_members()
    count = 6_000_000
    members["x_train"] = _npy({"descr": "|u1", "fortran_order": False, "shape": (count, 28, 28)},
                              b"\x00" * (8 * MB))
    path = _npz(tmp_path / "mnist.npz", members)
    outcome, peak = load_limited("mnist", "load_mnist", path)
    assert "mnist.npz:x_train: 6000000 rows, more than the 70000" in outcome, outcome
    assert peak < 300 * MB


@pytest.mark.parametrize("member,raw,message", [
    ("x_train", {"descr": "|u1", "fortran_order": False, "shape": (10**12, 28, 28)}, "1000000000000 rows, more than the 70000"),
    ("x_train", {"descr": "<f8", "fortran_order": False, "shape": (20, 28, 28)}, "dtype float64, expected plain integers"),
    ("y_train", {"descr": "|O", "fortran_order": False, "shape": (20,)}, "dtype object"),
    ("y_test", {"descr": [("a", "<i4")], "fortran_order": False, "shape": (20,)}, "expected plain integers"),
    ("x_test", {"descr": "|u1", "fortran_order": True, "shape": (20, 28, 28)}, "in Fortran order"),
    ("x_test", {"descr": "|u1", "fortran_order": False, "shape": (20, 27, 28)}, r"expected \(N, 28, 28\)"),
    ("x_test", {"descr": "|u1", "fortran_order": False, "shape": (20, 28, 28)}, "0 data bytes, its header says 15680"),
    ("x_train", b"not an npy file at all", "not an npy array"),
])
def test_npz_members_are_checked_before_reading(tmp_path, member, raw, message):
    members = _valid_members()
    members[member] = raw if isinstance(raw, bytes) else _npy(raw)
    with pytest.raises(DataError, match=f"mnist.npz:{member}: .*{message}"):
        load_mnist(_npz(tmp_path / "mnist.npz", members))


def test_pickled_object_member_is_refused_without_unpickling(tmp_path):
    members = _valid_members()
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([os.system] * 20, dtype=object), allow_pickle=True)
    members["y_train"] = buffer.getvalue()
    with pytest.raises(DataError, match="y_train: dtype object"):
        load_mnist(_npz(tmp_path / "mnist.npz", members))


def test_truncated_npz_and_npy_renamed_npz(tmp_path):
    path = _npz(tmp_path / "mnist.npz", _valid_members())
    raw = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="mnist.npz: unreadable or corrupt npz"):
        load_mnist(path)
    npy = tmp_path / "fake.npz"
    np.save(open(npy, "wb"), np.zeros((20, 28, 28), np.uint8))
    with pytest.raises(DataError, match="fake.npz: unreadable or corrupt npz"):
        load_mnist(str(npy))


def test_npz_missing_an_array_names_it(tmp_path):
    members = _valid_members()
    del members["y_test"]
    with pytest.raises(DataError, match="not a Keras MNIST archive \\(no y_test\\)"):
        load_mnist(_npz(tmp_path / "mnist.npz", members))


def test_data_dir_that_is_a_fifo_or_loop_does_not_hang(tmp_path):
    fifo = tmp_path / "mnist.npz"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="neither a folder nor a regular file"):
        load_mnist(str(fifo))
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    with pytest.raises(DataError, match="symlink loop"):
        load_mnist(str(loop))


def _timed_load(folder):
    import time

    start = time.monotonic()
    outcome, peak = load_limited("mnist", "load_mnist", folder)
    return outcome, peak, time.monotonic() - start


def test_gzip_header_with_a_huge_file_name_field_is_refused_at_once(tmp_path):
    folder = make_tiny_mnist(tmp_path)
    labels = os.path.join(folder, "train-labels-idx1-ubyte.gz")
    body = gzip.compress(open(labels, "rb").read()[10:])  # any deflate data after the header
    with open(labels, "wb") as f:  # FLG.FNAME set, then a 64 MB name with no end
        f.write(b"\x1f\x8b\x08\x08" + b"\0" * 6 + b"n" * (64 * MB) + b"\0" + body)
    outcome, peak, seconds = _timed_load(folder)
    assert "train-labels-idx1-ubyte.gz: gzip header file-name field longer than 1024 bytes" in outcome
    assert seconds < 30 and peak < 300 * MB


def test_gzip_of_200000_empty_members_is_refused_at_once(tmp_path):
    folder = make_tiny_mnist(tmp_path)
    labels = os.path.join(folder, "train-labels-idx1-ubyte.gz")
    real = gzip.open(labels).read()
    with open(labels, "wb") as f:
        f.write(gzip.compress(b"") * 200_000 + gzip.compress(real))
    outcome, peak, seconds = _timed_load(folder)
    assert "train-labels-idx1-ubyte.gz: more than 4 gzip members" in outcome, outcome
    assert seconds < 30 and peak < 300 * MB


def _npz_with_members(path, count):
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("x_train", "y_train", "x_test", "y_test"):
            buf = io.BytesIO()
            np.save(buf, np.zeros((1, 28, 28) if name.startswith("x") else (1,), np.uint8))
            archive.writestr(name + ".npy", buf.getvalue())
        for i in range(count):
            archive.writestr(f"pad{i}", b"")


def test_npz_with_a_huge_central_directory_is_refused_before_zipfile_reads_it(tmp_path):
    path = str(tmp_path / "mnist.npz")
    _npz_with_members(path, 30_000)
    outcome, peak, seconds = _timed_load(path)
    assert "mnist.npz: 30004 members, more than the 16 an npz of this data set has" in outcome
    assert seconds < 30 and peak < 300 * MB
    # A ZIP64 end record (which can claim any count) is refused too.
    with open(path, "r+b") as f:
        data = f.read()
        at = data.rfind(b"PK\x05\x06")
        f.seek(at + 10)
        f.write(b"\xff\xff")
    outcome, _, _ = _timed_load(path)
    assert "mnist.npz: a ZIP64 archive" in outcome, outcome
