"""CIFAR-10: safe loading from folder and archive, augmentation, the CLI end to end."""

import io
import json
import os
import pickle
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from datasets import DataError
from datasets.cifar10 import load_cifar10
from datasets.pipeline import eval_dataset, train_dataset
from datasets.safe_pickle import UnsafePickleError, safe_loads
from tests.data_factory import cifar_members, write_cifar_archive, write_cifar_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _RunsCode:
    """Unpickling this calls os.system: what a hostile batch file would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_download_is_checked_against_the_official_hash_and_read_bounded(tmp_path, monkeypatch):
    import keras

    from datasets import cifar10, location
    monkeypatch.setattr(location, "KERAS_CACHE", str(tmp_path / "cache"))
    archive = write_cifar_archive(tmp_path, cifar_members(per_batch=20))
    asked = {}

    def fake_get_file(fname, origin, **kwargs):
        asked.update(fname=fname, origin=origin, **kwargs)
        return archive

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    data = load_cifar10(None, validation_size=10)
    assert asked == {"fname": cifar10.ARCHIVE, "origin": cifar10.ORIGIN, "file_hash": cifar10.SHA256}
    assert len(data.test.labels) == 20

    def corrupted(*args, **kwargs):  # what get_file raises on a hash mismatch
        raise ValueError("Incomplete or corrupted file detected.")

    monkeypatch.setattr(keras.utils, "get_file", corrupted)
    with pytest.raises(DataError, match="download failed.*corrupted.*--data_dir"):
        load_cifar10(None)


@pytest.mark.parametrize("layout", ["folder", "parent", "archive"])
def test_loads_every_official_layout(tmp_path, layout):
    members = cifar_members(per_batch=20)
    if layout == "archive":
        data_dir = write_cifar_archive(tmp_path, members)
    else:
        folder = write_cifar_folder(tmp_path, members)
        data_dir = folder if layout == "folder" else str(tmp_path)
    data = load_cifar10(data_dir, validation_size=10)
    assert data.train.images.shape == (90, 32, 32, 3)
    assert data.validation.images.shape == (10, 32, 32, 3)
    assert data.test.images.shape == (20, 32, 32, 3)
    assert data.class_names[0] == "airplane" and data.class_names[9] == "truck"
    # Rows are channel-major: the first 1024 bytes are the red plane.
    raw = pickle.loads(members["test_batch"], encoding="bytes")[b"data"]
    np.testing.assert_array_equal(data.test.images[0, :, :, 0].ravel(), raw[0, :1024])
    mean, std = data.normalization
    assert mean.shape == (3,) and np.all(std > 0)


def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    members = cifar_members()
    members["data_batch_3"] = pickle.dumps({b"data": _RunsCode(marker)}, protocol=2)
    folder = write_cifar_folder(tmp_path / "f", members)
    with pytest.raises(DataError, match=r"data_batch_3.*refusing to load posix.system"):
        load_cifar10(folder)
    archive = write_cifar_archive(tmp_path / "a", members)
    with pytest.raises(DataError, match="data_batch_3.*refusing"):
        load_cifar10(archive)
    assert not marker.exists()
    with pytest.raises(UnsafePickleError):
        safe_loads(pickle.dumps(_RunsCode(marker)))
    assert not marker.exists()


@pytest.mark.parametrize("name,mutate,message", [
    ("data_batch_2", lambda raw: raw[: len(raw) // 2], "data_batch_2: truncated or corrupt"),
    ("test_batch", lambda raw: b"not a pickle at all", "test_batch"),
    ("data_batch_1", lambda raw: pickle.dumps({b"data": np.zeros((20, 3071), np.uint8),
                                               b"labels": [0] * 20}), r"data_batch_1: data has shape \(20, 3071\)"),
    ("data_batch_4", lambda raw: pickle.dumps({b"data": np.zeros((20, 3072), np.uint8),
                                               b"labels": [12] * 20}), "data_batch_4: labels"),
    ("batches.meta", lambda raw: pickle.dumps({b"label_names": [b"x"] * 10, b"num_cases_per_batch": 20}),
     "batches.meta: class names"),
    ("batches.meta", lambda raw: pickle.dumps([1, 2, 3]), "batches.meta: expected a dict"),
])
def test_bad_batches_are_reported_by_file_name(tmp_path, name, mutate, message):
    members = cifar_members()
    members[name] = mutate(members[name])
    with pytest.raises(DataError, match=message):
        load_cifar10(write_cifar_folder(tmp_path / "f", members))
    with pytest.raises(DataError, match=name):
        load_cifar10(write_cifar_archive(tmp_path / "a", members))


def test_missing_member_truncated_archive_and_wrong_paths(tmp_path):
    members = cifar_members()
    del members["data_batch_5"]
    with pytest.raises(DataError, match="data_batch_5"):
        load_cifar10(write_cifar_archive(tmp_path / "a", members))
    path = write_cifar_archive(tmp_path / "b")
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(raw[: len(raw) // 3])
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        load_cifar10(path)
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10(str(tmp_path / "nowhere"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="not a .tar.gz"):
        load_cifar10(str(tmp_path / "notes.txt"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DataError, match="holds neither"):
        load_cifar10(str(tmp_path / "empty"))


def test_archive_members_that_are_not_files_are_refused(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, raw in cifar_members().items():
            info = tarfile.TarInfo("cifar-10-batches-py/" + name)
            if name == "test_batch":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                archive.addfile(info)
                continue
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    with pytest.raises(DataError, match="no regular file cifar-10-batches-py/test_batch"):
        load_cifar10(str(path))


def test_augmentation_changes_training_images_only(tmp_path):
    data = load_cifar10(write_cifar_folder(tmp_path), validation_size=10)
    split = data.train
    plain = next(iter(train_dataset(split, 16, seed=1, augment=False)))[0].numpy()
    augmented = next(iter(train_dataset(split, 16, seed=1, augment=True)))[0].numpy()
    assert augmented.shape == plain.shape
    assert not np.array_equal(plain, augmented)
    # Same shuffling: each augmented image is a shifted and/or flipped crop of its original.
    for original, changed in zip(plain, augmented):
        assert _is_padded_crop_or_flip(changed, original)
    evaluated = np.concatenate([x.numpy() for x, _ in eval_dataset(split, 16)])
    np.testing.assert_array_equal(evaluated, split.images.astype(np.float32) / 255.0)


def _is_padded_crop_or_flip(out, image):
    """Whether ``out`` is a crop of ``image`` zero-padded by 4 pixels, maybe mirrored."""
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    height, width = image.shape[:2]
    return any(np.array_equal(out, crop) or np.array_equal(out, crop[:, ::-1])
               for dy in range(9) for dx in range(9)
               for crop in [padded[dy:dy + height, dx:dx + width]])


def test_augmentation_is_a_padded_crop_or_flip():
    image = np.arange(32 * 32 * 3, dtype=np.float32).reshape(1, 32, 32, 3)
    from datasets.pipeline import augment_batch

    outputs = [augment_batch(tf.constant(image), tf.constant([s, 7])).numpy()[0] for s in range(8)]
    assert all(_is_padded_crop_or_flip(out, image[0]) for out in outputs)
    assert len({out.tobytes() for out in outputs}) > 1  # the seed changes the crop


def test_train_cifar_cli_end_to_end(tmp_path):
    archive = write_cifar_archive(tmp_path / "data")
    model_dir = tmp_path / "model"
    result = subprocess.run(
        [sys.executable, "train_cifar.py", f"--data_dir={archive}", f"--model_dir={model_dir}",
         "--steps=4", "--batch_size=8", "--eval_every=2", "--log_every=2", "--validation_size=20"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^test_accuracy=\d\.\d{4} test_loss=\d+\.\d{4} steps=4 train_seconds=\d+\.\d wall_seconds=", result.stdout, re.M)
    metrics = json.load(open(model_dir / "metrics.json"))
    assert metrics["flags"]["augment"] is True and metrics["flags"]["dataset"] == "cifar10"
    assert len(metrics["input_normalization"]["mean"]) == 3
    for name in ("predictions.png", "filters.png", "confusion_matrix.png", "model.keras"):
        assert (model_dir / name).exists()
