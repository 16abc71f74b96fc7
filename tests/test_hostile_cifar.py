"""CIFAR-10 files built to hurt: pointer dtypes, memory bombs, tar bombs, odd paths.

Every case must end in ``DataError`` naming the file: no crash, no
traceback, no memory beyond ``hostile.MEMORY_LIMIT_BYTES`` (the readers run
in a child process under that address-space limit where a case could bomb).
"""

import io
import os
import tarfile

import numpy as np
import pytest

from datasets import DataError
from datasets.cifar10 import load_cifar10
from tests.data_factory import cifar_members, write_cifar_folder
from tests.hostile import Reduce, dumps, load_limited

MB = 1 << 20

# The dtype state that made numpy read 8 file bytes as a PyObject* (SIGSEGV
# when the array was printed): a void dtype declaring an object field.
OBJECT_FIELD_STATE = (3, "|", None, ("f",), {"f": (np.dtype("O"), 0)}, 8, 1, 0x3F)


def _array(dtype_reduce, shape=(20, 3072), raw=None):
    """A pickled ndarray with a crafted dtype, as numpy itself would spell it."""
    from numpy._core.multiarray import _reconstruct

    raw = raw if raw is not None else b"\x41" * (int(np.prod(shape)) * 8)
    return Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype_reduce, False, raw))


def _batch(**fields):
    batch = {b"data": np.zeros((20, 3072), np.uint8), b"labels": [0] * 20}
    batch.update({k.encode(): v for k, v in fields.items()})
    return dumps(batch)


def _folder_with(tmp_path, name, raw):
    members = cifar_members()
    members[name] = raw
    return write_cifar_folder(tmp_path, members)


POINTER_DTYPES = {
    "object_field": Reduce(np.dtype, ("V8", False, True), OBJECT_FIELD_STATE),
    "object": Reduce(np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, 63)),
    "uint8_with_object_flags": Reduce(np.dtype, ("u1", False, True), (3, "|", None, None, None, -1, -1, 63)),
    "uint8_with_fields": Reduce(np.dtype, ("u1", False, True), OBJECT_FIELD_STATE),
}


@pytest.mark.parametrize("kind", sorted(POINTER_DTYPES))
def test_arrays_whose_dtype_would_hold_pointers_are_refused(tmp_path, kind):
    folder = _folder_with(tmp_path, "batches.meta", dumps({
        b"label_names": _array(POINTER_DTYPES[kind], shape=(10,), raw=b"\x41" * 80),
        b"num_cases_per_batch": 20}))
    outcome, _ = load_limited("cifar10", "load_cifar10", folder)
    assert outcome.startswith("DataError:") and "batches.meta: refusing" in outcome, outcome
    assert "dtype" in outcome


def test_array_data_must_match_its_shape_and_order(tmp_path):
    standard_u1 = Reduce(np.dtype, ("u1", False, True), (3, "|", None, None, None, -1, -1, 0))
    for raw, fortran, message in [(b"\x00" * 100, False, "100 bytes, expected 61440"),
                                  (b"\x00" * 61440, True, "Fortran")]:
        from numpy._core.multiarray import _reconstruct
        crafted = Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (20, 3072), standard_u1, fortran, raw))
        with pytest.raises(DataError, match=message):
            load_cifar10(_folder_with(tmp_path / message[:3], "data_batch_1", _batch(data=crafted)))


def test_labels_built_from_memo_references_do_not_explode(tmp_path):
    row = [0] * 10_000
    block = [row] * 10_000  # 10^8 ints if expanded; a few KB pickled
    folder = _folder_with(tmp_path, "data_batch_1", _batch(labels=[block] * 20))
    assert os.path.getsize(os.path.join(folder, "data_batch_1")) < 200_000
    outcome, peak = load_limited("cifar10", "load_cifar10", folder)
    assert "data_batch_1: labels must be integers in [0, 9]" in outcome
    assert peak < 400 << 20


@pytest.mark.parametrize("raw,message", [
    (b"\x80\x02" + b"]" * 1_000_000 + b".", "more than 200000 pickle opcodes"),
    (b"\x80\x02]r\xff\xff\xff\x7f.", "memo index"),
    (b"\x80\x02]j\xff\xff\xff\x7f.", "memo index"),
    (b"\x80\x04\x95" + (2**62).to_bytes(8, "little") + b"}.", "frame of"),
])
def test_pickles_that_would_build_huge_tables_are_refused_before_loading(tmp_path, raw, message):
    folder = _folder_with(tmp_path, "data_batch_2", raw)
    outcome, peak = load_limited("cifar10", "load_cifar10", folder)
    assert "data_batch_2: truncated or corrupt pickle" in outcome and message in outcome, outcome
    assert peak < 400 << 20


@pytest.mark.parametrize("labels,message", [
    (np.array(5), r"labels have shape \(\)"),
    ([[[[1]]]]* 20, r"labels must be integers in \[0, 9\]"),
    ([10 ** 5000] * 20, r"labels must be integers in \[0, 9\]"),
    ([True] * 20, r"labels must be integers in \[0, 9\]"),
    (b"\x00" * 20, "labels are b'"),
])
def test_labels_of_the_wrong_form(tmp_path, labels, message):
    with pytest.raises(DataError, match="data_batch_3: " + message):
        load_cifar10(_folder_with(tmp_path, "data_batch_3", _batch(labels=labels)))


@pytest.mark.parametrize("meta,message", [
    ({b"label_names": [b"airplane"] * 10, b"num_cases_per_batch": 10 ** 5000},
     "num_cases_per_batch=an integer of 16610 bits"),
    ({b"label_names": [b"\xff\xfe"] + [b"x"] * 9, b"num_cases_per_batch": 20}, "not UTF-8"),
    ({b"label_names": [b"x" * 10_000_000] * 10, b"num_cases_per_batch": 20}, "must list the 10 class names"),
    ({b"label_names": [b"cat"] * 10, b"num_cases_per_batch": 20}, "class names 'cat', "),
])
def test_meta_values_are_checked_and_quoted_briefly(tmp_path, meta, message):
    with pytest.raises(DataError, match=message) as error:
        load_cifar10(_folder_with(tmp_path, "batches.meta", dumps(meta)))
    assert len(str(error.value)) < 600


def test_long_integer_in_text_pickle_is_corrupt_not_a_traceback(tmp_path):
    # Protocol 0 spells integers in decimal; Python refuses to parse 5,000 digits.
    raw = b"(dp0\nS'num_cases_per_batch'\np1\nL" + b"1" * 5000 + b"L\ns."
    with pytest.raises(DataError, match="batches.meta: truncated or corrupt pickle"):
        load_cifar10(_folder_with(tmp_path, "batches.meta", raw))


def test_huge_untrusted_value_is_not_quoted_in_full(tmp_path):
    with pytest.raises(DataError, match="data_batch_1: data has b'xxx") as error:
        load_cifar10(_folder_with(tmp_path, "data_batch_1", _batch(data=b"x" * 40_000_000)))
    assert len(str(error.value)) < 300


def _archive(path, entries):
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, payload in entries:
            info = tarfile.TarInfo(name)
            if isinstance(payload, int):  # that many zero bytes, streamed
                info.size = payload
                archive.addfile(info, _Zeros(payload))
            else:
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
    return str(path)


class _Zeros(io.RawIOBase):
    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\x00" * n


def test_tar_bomb_stops_inflating_at_the_bound(tmp_path):
    entries = [("cifar-10-batches-py/padding", 300 << 20)]
    path = _archive(tmp_path / "cifar-10-python.tar.gz", entries)
    assert os.path.getsize(path) < 2 << 20
    outcome, peak = load_limited("cifar10", "load_cifar10", path)
    assert "inflates to more than 256 MB" in outcome, outcome
    assert peak < 400 << 20


def test_tar_with_many_members_or_an_oversized_batch_is_refused(tmp_path):
    many = _archive(tmp_path / "many.tar.gz", [(f"cifar-10-batches-py/f{i}", b"") for i in range(100)])
    with pytest.raises(DataError, match="more than 64 members"):
        load_cifar10(many)
    big = _archive(tmp_path / "big.tar.gz", [("cifar-10-batches-py/data_batch_1", 65 << 20)])
    with pytest.raises(DataError, match="data_batch_1: 68157440 bytes, too large"):
        load_cifar10(big)


def test_tar_path_traversal_and_links_are_ignored(tmp_path):
    members = cifar_members()
    entries = [("cifar-10-batches-py/../../escape", b"x")]
    entries += [("cifar-10-batches-py/" + name, raw) for name, raw in members.items()]
    data = load_cifar10(_archive(tmp_path / "c.tar.gz", entries), validation_size=5)
    assert data.test.images.shape[0] == 20
    assert not (tmp_path.parent / "escape").exists()


def test_odd_paths_get_their_own_messages(tmp_path):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    with pytest.raises(DataError, match="symlink loop"):
        load_cifar10(str(loop))
    dangling = tmp_path / "dangling"
    os.symlink(tmp_path / "gone", dangling)
    with pytest.raises(DataError, match="symlink to a missing target"):
        load_cifar10(str(dangling))
    members = cifar_members()
    del members["batches.meta"]
    no_meta = write_cifar_folder(tmp_path / "nometa", members)
    with pytest.raises(DataError, match="holds CIFAR batch files but no batches.meta"):
        load_cifar10(no_meta)
    folder = write_cifar_folder(tmp_path / "dir", cifar_members())
    os.remove(os.path.join(folder, "data_batch_1"))
    os.mkdir(os.path.join(folder, "data_batch_1"))
    with pytest.raises(DataError, match="data_batch_1: not a regular file"):
        load_cifar10(folder)
    fifo_folder = write_cifar_folder(tmp_path / "fifo", cifar_members())
    os.remove(os.path.join(fifo_folder, "test_batch"))
    os.mkfifo(os.path.join(fifo_folder, "test_batch"))  # reading it would block forever
    with pytest.raises(DataError, match="test_batch: not a regular file"):
        load_cifar10(fifo_folder)


def _budget_bomb(kind):
    """A batch whose memo replays one 3 MB value through a stand-in 1,000 times (3 GB)."""
    import _codecs
    import pickle

    from numpy._core.numeric import _frombuffer

    if kind == "latin1 text":
        text = "\x01" * (3 << 20)
        calls = [Reduce(_codecs.encode, (text, "latin1")) for _ in range(1000)]
        return dumps({b"data": calls, b"labels": [0] * 20})
    raw = bytearray(3000 * 1000)
    dtype = Reduce(np.dtype, ("u1", False, True), (3, "|", None, None, None, -1, -1, 0))
    calls = [Reduce(_frombuffer, (raw, dtype, (1000, 3000), "C")) for _ in range(1000)]
    return pickle.dumps({b"data": calls, b"labels": [0] * 20}, protocol=5)


@pytest.mark.parametrize("kind", ["latin1 text", "protocol-5 bytearray"])
def test_stand_ins_replaying_one_large_value_are_refused_by_the_byte_budget(tmp_path, kind):
    folder = _folder_with(tmp_path, "data_batch_1", _budget_bomb(kind))
    outcome, peak = load_limited("cifar10", "load_cifar10", folder)
    assert "data_batch_1" in outcome and "more than 87 MB, more than a CIFAR batch" in outcome, outcome
    assert peak < 500 * MB


def test_a_channel_that_never_varies_is_a_data_error_not_nan_training(tmp_path):
    members = cifar_members()
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"):
        batch = {b"data": np.random.default_rng(1).integers(0, 255, (20, 3072)).astype(np.uint8),
                 b"labels": [i % 10 for i in range(20)]}
        batch[b"data"][:, :1024] = 0  # the red channel is all zeros
        members[name] = dumps(batch)
    folder = write_cifar_folder(tmp_path, members)
    with pytest.raises(DataError, match=r"cifar-10-batches-py: channel 0 of the training images "
                                         r"is constant \(every pixel 0\)"):
        load_cifar10(folder, validation_size=10)
