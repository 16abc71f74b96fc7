"""Run folders, checkpoint state and flag files built to hurt: data loss outside the
folder, hangs, unbounded reads, lost history, odd environments.

Every case must end in one line and exit code 2 (or succeed correctly) within
30 s, under 2 GB, with nothing outside --model_dir changed and no history row lost.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.data_factory import make_tiny_mnist
from tests.hostile import run_app
from tests.test_hostile_runs import TINY, assert_one_line_error

GB = 1 << 30
SECONDS = 30


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_mnist(tmp_path_factory.mktemp("data"), n_train=64, n_test=16)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A run of 4 steps: checkpoints at steps 2 and 4."""
    model_dir = tmp_path_factory.mktemp("trained") / "m"
    result, _, _ = run_app("train_mnist.py", [*TINY, f"--data_dir={data}",
                                              f"--model_dir={model_dir}", "--steps=4"])
    assert result.returncode == 0, result.stderr[-2000:]
    return model_dir


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def run(*args, env=None):
    """The MNIST app; asserts the 30-second and 2 GB bounds of every hostile case."""
    result, peak, seconds = run_app("train_mnist.py", list(args), env=env, timeout=120)
    assert seconds < SECONDS + 30 and peak < 2 * GB, (seconds, peak)
    return result


def _snapshot(folder):
    return {path: open(path, "rb").read() for path in map(str, folder.rglob("*")) if os.path.isfile(path)}


def test_checkpoint_state_naming_files_elsewhere_stops_before_anything_is_deleted(data, trained, tmp_path):
    model_dir = _copy(trained, tmp_path / "m")
    other = _copy(trained, tmp_path / "other")  # another run's checkpoints
    before = _snapshot(other)
    victims = [str(other / "checkpoints" / f"ckpt-{n}") for n in (2, 4)]
    state = model_dir / "checkpoints" / "checkpoint"
    lines = [f'model_checkpoint_path: "{victims[-1]}"'] + [
        f'all_model_checkpoint_paths: "{v}"' for v in victims * 3]
    # Each naming in one mode, both modes in turn: a process costs ~7 s.
    for path, mode in zip((*victims, "../../other/checkpoints/ckpt-2"), ("train", "eval", "train")):
        lines[0] = f'model_checkpoint_path: "{path}"'
        state.write_text("\n".join(lines) + "\nall_model_checkpoint_timestamps: 4102444800\n")
        result = run(*TINY, f"--mode={mode}", f"--data_dir={data}", f"--model_dir={model_dir}",
                     "--steps=8")
        assert_one_line_error(result, 2, "which is not a checkpoint of this folder (ckpt-N)")
    assert _snapshot(other) == before


@pytest.mark.parametrize("name", [".lock", "metrics.json", "checkpoints/checkpoint"])
def test_state_files_that_are_fifos_do_not_hang(data, trained, tmp_path, name):
    model_dir = _copy(trained, tmp_path / "m")
    path = model_dir / name
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    modes = ("train",) if name == ".lock" else ("train", "eval")
    for mode in modes:
        result = run(*TINY, f"--mode={mode}", f"--data_dir={data}", f"--model_dir={model_dir}",
                     "--steps=8")
        assert_one_line_error(result, 2, f"{name} is not a regular file (a FIFO, device or folder)")


def test_flag_files_that_block_or_never_end_are_refused(data, tmp_path):
    fifo = tmp_path / "flags.fifo"
    os.mkfifo(fifo)
    nested = tmp_path / "nested.flags"
    nested.write_text(f"--steps=2\n--flagfile={fifo}\n")
    for flag_file, message in ((fifo, "flags.fifo is not a regular file"),
                               ("/dev/zero", "/dev/zero is not a regular file"),
                               (nested, "flags.fifo is not a regular file"),
                               (tmp_path / "missing.flags", "missing.flags does not exist")):
        result = run(f"--flagfile={flag_file}", f"--data_dir={data}")
        assert_one_line_error(result, 2, message)
    big = tmp_path / "big.flags"
    big.write_bytes(b"#" * (2 << 20))
    assert_one_line_error(run(f"--flagfile={big}"), 2, "big.flags is larger than 1 MB")


def test_a_run_killed_between_metrics_and_checkpoint_loses_no_history(data, trained, tmp_path):
    # metrics.json is written before each checkpoint: a SIGKILL between the two
    # leaves metrics of step 4 beside checkpoints up to step 2.
    model_dir = _copy(trained, tmp_path / "m")
    folder = model_dir / "checkpoints"
    for path in folder.glob("ckpt-4*"):
        path.unlink()
    (folder / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n'
                                       'all_model_checkpoint_paths: "ckpt-2"\n')
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["steps"] == 4 and set(metrics["saved_at"]) == {"2", "4"}
    result = run(*TINY, f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=6")
    assert result.returncode == 0, result.stderr[-2000:]
    final = json.loads((model_dir / "metrics.json").read_text())
    steps = [row["step"] for row in final["history"] if "loss" in row]
    assert steps == list(range(1, 7))  # every step logged once, none lost, none twice
    validations = [row["step"] for row in final["history"] if "val_loss" in row]
    assert validations == [2, 4, 6]
    # Time is summed from the checkpoint the run resumed from, not the lost round.
    assert final["train_seconds"] >= metrics["saved_at"]["2"]["train_seconds"]


@pytest.mark.parametrize("content,message", [
    ('{"history": [' + "{}," * 4_000_000 + '{}]}', "objects and lists, more than the 101000 allowed"),
    ('{"junk": [' + "1," * 4_000_000 + '1]}', "values, more than the 1000000 allowed"),
    ('{"steps": ' + "9" * 4000 + "}", "steps is not a finite number"),
    ('{"history": [{"step": 1, "loss": 1e999}]}', "history is not a list of"),
    ('{"saved_at": {"2": {"train_seconds": "x"}}}', "saved_at is not an object of"),
])
def test_metrics_json_that_would_take_memory_or_overflow_later_is_refused_first(
        data, trained, tmp_path, content, message):
    model_dir = _copy(trained, tmp_path / "m")
    (model_dir / "metrics.json").write_text(content)
    result = run(*TINY, f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=6")
    assert_one_line_error(result, 2, message)


def test_a_very_long_model_dir_keeps_the_reason_in_the_message(data, tmp_path):
    model_dir = tmp_path / ("d" * 200) / ("e" * 200)
    model_dir.parent.mkdir(parents=True)
    model_dir.write_text("a file")
    long_dir = str(model_dir) + "/" + "/".join(["f" * 250] * 15)  # over 4,000 characters
    result = run(*TINY, f"--data_dir={data}", f"--model_dir={long_dir}", "--steps=2")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "cannot be written" in last and "..." in last and len(last) < 1100, last


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({made.stderr.strip()[:80]})")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_names_the_folder_and_leaves_no_partial_checkpoint(data, small_disk):
    model_dir = small_disk / "m"
    result = run(*TINY, f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=2")
    assert_one_line_error(result, 2, f"{model_dir}: writing the metrics and checkpoint of step 2 "
                                     "failed (No space left on device)")
    leftovers = [name for name in os.listdir(model_dir / "checkpoints") if name.endswith("_temp")]
    assert leftovers == []


@pytest.mark.parametrize("home", ["", "/nonexistent/home"])
def test_an_unusable_home_gets_no_files_written_outside_the_run(data, tmp_path, home):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = dict(os.environ, HOME=home)
    env.pop("KERAS_HOME", None)
    env.pop("MPLCONFIGDIR", None)
    model_dir = tmp_path / "m"
    result = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "train_mnist.py"), *TINY, f"--data_dir={data}",
        f"--model_dir={model_dir}", "--steps=2"], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.listdir(cwd) == []  # no relative .keras/ or .cache/
    assert not os.path.exists("/nonexistent")
