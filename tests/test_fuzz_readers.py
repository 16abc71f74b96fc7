"""Property-based fuzzing of the data and run-state readers with hypothesis.

Valid IDX, npz and CIFAR pickle/tar files, checkpoint state files and
metrics.json files are mutated (bytes overwritten,
inserted, deleted, truncated, integers planted at random offsets, before and
after compression); every reader must either return valid data or raise
its own error (``DataError``, ``CheckpointError``, ``RunFolderError``), and allocate no more than ``MEMORY_BOUND`` (tracemalloc sees
numpy's and zlib's buffers).

    FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz_readers.py

runs 2,000 mutated files per target (the CI default is smaller, see below).
"""

import gzip
import io
import json
import os
import pickle
import shutil
import tarfile
import tempfile
import tracemalloc
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets import DataError
from datasets.cifar10 import PIXELS, _read_batch, _read_meta, load_cifar10
from datasets.idx import read_idx, write_idx
from datasets.mnist import MAX_EXAMPLES, load_raw_mnist
from tests.data_factory import cifar_members

# Enough to find a regression in CI within seconds per target; raise for a real fuzz run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
MEMORY_BOUND = 256 << 20
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
INTERESTING_INTS = [0, 1, 2, 255, 256, 10_000, 70_001, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1]


@st.composite
def mutated(draw, original: bytes) -> bytes:
    """``original`` with one to four random edits."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["overwrite", "insert", "delete", "truncate", "integer"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at:at + len(chunk)] = chunk
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        else:
            width, order = draw(st.sampled_from([(4, "big"), (4, "little"), (8, "little"), (1, "big")]))
            value = draw(st.sampled_from(INTERESTING_INTS)) % (1 << (8 * width))
            data[at:at + width] = value.to_bytes(width, order)
    return bytes(data)


def _bounded(read, errors=(DataError,)):
    """Runs ``read()``; returns its result or None for ``errors``; checks the memory bound."""
    tracemalloc.start()
    try:
        return read()
    except errors:
        return None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < MEMORY_BOUND, f"reader allocated {peak} bytes"


def _write(raw: bytes, suffix: str = "") -> str:
    fd, path = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    return path


def _idx_bytes() -> bytes:
    buffer = io.BytesIO()
    path = _write(b"")
    write_idx(path, np.random.default_rng(0).integers(0, 256, (3, 28, 28)).astype(np.uint8), False)
    with open(path, "rb") as f:
        buffer.write(f.read())
    os.remove(path)
    return buffer.getvalue()


IDX = _idx_bytes()


@FUZZ
@given(data=st.data(), compress_after=st.booleans())
def test_idx_reader(data, compress_after):
    if compress_after:  # mutations reach the header through a valid gzip stream
        raw = gzip.compress(data.draw(mutated(IDX)))
    else:  # mutations of the compressed stream itself
        raw = data.draw(mutated(gzip.compress(IDX)))
    path = _write(raw)
    try:
        array = _bounded(lambda: read_idx(path, (None, 28, 28), max_bytes=MAX_EXAMPLES * 784))
    finally:
        os.remove(path)
    if array is not None:
        assert array.dtype == np.uint8 and array.shape[1:] == (28, 28)


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


NPY_MEMBERS = {
    "x_train": _npy(np.zeros((4, 28, 28), np.uint8)), "y_train": _npy(np.arange(4, dtype=np.uint8)),
    "x_test": _npy(np.ones((2, 28, 28), np.uint8)), "y_test": _npy(np.arange(2, dtype=np.uint8)),
}


def _zip(members) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, raw in members.items():
            z.writestr(name + ".npy", raw)
    return buffer.getvalue()


NPZ = _zip(NPY_MEMBERS)


@FUZZ
@given(data=st.data(), member=st.sampled_from([None, *NPY_MEMBERS]))
def test_npz_reader(data, member):
    if member is None:
        raw = data.draw(mutated(NPZ))
    else:
        raw = _zip({**NPY_MEMBERS, member: data.draw(mutated(NPY_MEMBERS[member]))})
    path = _write(raw, ".npz")
    try:
        result = _bounded(lambda: load_raw_mnist(path))
    finally:
        os.remove(path)
    if result is not None:
        arrays, _ = result
        assert arrays["x_train"].shape[1:] == (28, 28) and arrays["x_train"].dtype == np.uint8
        assert arrays["y_train"].ndim == 1 and arrays["y_train"].dtype.kind in "ui"


MEMBERS = cifar_members(per_batch=20)
BATCH, META = MEMBERS["data_batch_1"], MEMBERS["batches.meta"]


@FUZZ
@given(data=st.data())
def test_cifar_batch_pickle(data):
    raw = data.draw(mutated(BATCH))
    result = _bounded(lambda: _read_batch(lambda name: raw, "data_batch_1", "fuzz", 20))
    if result is not None:
        images, labels = result
        assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
        assert labels.shape == (20,) and labels.min() >= 0 and labels.max() <= 9
        assert PIXELS == 3072


@FUZZ
@given(data=st.data())
def test_cifar_meta_pickle(data):
    raw = data.draw(mutated(META))
    result = _bounded(lambda: _read_meta(lambda name: raw, "fuzz"))
    if result is not None:
        names, per_batch = result
        assert len(names) == 10 and 1 <= per_batch <= 10_000


def _tar(members) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, raw in members.items():
            info = tarfile.TarInfo("cifar-10-batches-py/" + name)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


TAR = _tar(MEMBERS)


@FUZZ
@given(data=st.data(), compress_after=st.booleans())
def test_cifar_archive(data, compress_after):
    raw = gzip.compress(data.draw(mutated(TAR))) if compress_after else data.draw(mutated(gzip.compress(TAR)))
    path = _write(raw, ".tar.gz")
    try:
        dataset = _bounded(lambda: load_cifar10(path, validation_size=5))
    finally:
        os.remove(path)
    if dataset is not None:
        assert dataset.train.images.shape[1:] == (32, 32, 3) and dataset.test.labels.max() <= 9


STATE = ('model_checkpoint_path: "ckpt-6"\n' + "".join(
    f'all_model_checkpoint_paths: "ckpt-{n}"\n' for n in (2, 4, 6))
    + "all_model_checkpoint_timestamps: 1796000000.5\nlast_preserved_timestamp: 1795000000.25\n"
).encode()
METRICS = json.dumps({
    "status": "training", "steps": 6, "train_seconds": 12.5, "wall_seconds": 30.25,
    "flags": {"model": "convnet", "optimizer": "adam", "steps": 6, "data_dir": None},
    "saved_at": {str(n): {"train_seconds": 2.0 * n, "wall_seconds": 5.0 * n} for n in (2, 4, 6)},
    "history": [{"step": n, "loss": 2.3 / n, "accuracy": 0.1 * n} for n in range(1, 7)]
    + [{"step": 6, "val_loss": 0.5, "val_accuracy": 0.8}],
}).encode()


def _read_in_folder(name: str, raw: bytes, read, errors):
    """``read(folder)`` of a fresh folder holding ``raw`` as ``name``, under ``_bounded``."""
    folder = tempfile.mkdtemp()
    try:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(raw)
        return _bounded(lambda: read(folder), errors)
    finally:
        shutil.rmtree(folder)


@FUZZ
@given(data=st.data())
def test_checkpoint_state_file(data):
    from training.checkpoints import read_state
    from training.errors import CheckpointError

    state = _read_in_folder("checkpoint", data.draw(mutated(STATE)), read_state, (CheckpointError,))
    if state is not None:
        for name in [state.model_checkpoint_path, *state.all_model_checkpoint_paths]:
            assert name.startswith("ckpt-") and "/" not in name


@FUZZ
@given(data=st.data())
def test_metrics_json(data):
    from training.errors import RunFolderError
    from training.run_folder import METRICS_KEYS, RunFolder

    metrics = _read_in_folder("metrics.json", data.draw(mutated(METRICS)),
                              lambda folder: RunFolder(folder).read_metrics(), (RunFolderError,))
    if metrics is not None:
        assert set(metrics) <= set(METRICS_KEYS)
        assert all(type(row["step"]) is int for row in metrics.get("history", []))


def test_the_fuzzer_really_mutates():
    """The fixtures are valid and the mutations break some of them (a fuzz that changes nothing proves nothing)."""
    assert read_idx(_write(IDX), (None, 28, 28)).shape == (3, 28, 28)
    assert _read_batch(lambda name: BATCH, "b", "s", 20)[0].shape == (20, 32, 32, 3)
    outcomes = []

    @settings(max_examples=50, database=None, deadline=None)
    @given(data=st.data())
    def probe(data):
        raw = data.draw(mutated(BATCH))
        outcomes.append(_bounded(lambda: _read_batch(lambda name: raw, "b", "s", 20)) is None)

    probe()
    assert any(outcomes), "no mutation was ever refused"
    pickle.loads(BATCH)  # the unmutated fixture is a plain pickle
