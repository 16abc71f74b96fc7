"""Hostile flags, run folders and checkpoints: one line, a documented exit code, nothing written outside.

Exit codes (training/cli.py): 2 bad input, 1 unexpected, 128 + signal when stopped.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.data_factory import make_tiny_mnist
from training import cli
from training.run_folder import RunFolder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--batch_size=8", "--validation_size=16", "--log_every=1", "--eval_every=2",
        "--model=three_layer"]


def train(*args, timeout=300):
    return subprocess.run([sys.executable, "train_mnist.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result, code, message):
    """Exit ``code``, no traceback, and the last stderr line is our one-line message."""
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(("error: ", "stopped: ")) and message in last, last


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_mnist(tmp_path_factory.mktemp("data"), n_train=64, n_test=16)


@pytest.mark.parametrize("flag,message", [
    ("--seed=-1", "--seed must be an integer in [0, 2147483647]"),
    ("--seed=4294967296", "--seed must be an integer in [0, 2147483647]"),
    ("--steps=100000000000000000000", "--steps must be a positive integer up to 1000000000"),
    ("--batch_size=10000000", "--batch_size must be a positive integer up to 1048576"),
    ("--learning_rate=nan", "--learning_rate must be a positive finite number"),
    ("--learning_rate=inf", "--learning_rate must be a positive finite number"),
    ("--num_cpu_devices=1000", "--num_cpu_devices must be a positive integer up to 64"),
    ("--validation_size=-3", "--validation_size must be an integer in [0, 1000000000]"),
])
def test_flag_out_of_range_is_one_line_exit_2_before_tensorflow_loads(flag, message):
    result = train(flag, timeout=60)
    assert_one_line_error(result, 2, message)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("flags_,message", [
    (["--validation_size=64"], "--validation_size=64 leaves no training examples"),
    (["--batch_size=100"], "--batch_size=100 is larger than the 48 training examples"),
    (["--distribution_strategy=mirrored", "--num_cpu_devices=3", "--batch_size=8"],
     "--batch_size=8 does not split evenly over 3 replicas"),
])
def test_flags_that_do_not_fit_the_data_or_devices(data, tmp_path, flags_, message):
    result = train(*TINY, f"--data_dir={data}", f"--model_dir={tmp_path / 'm'}", "--steps=2", *flags_)
    assert_one_line_error(result, 2, message)
    assert not (tmp_path / "m").exists()


def test_empty_test_set_is_refused_before_training(tmp_path):
    folder = make_tiny_mnist(tmp_path / "d", n_train=64, n_test=0)
    result = train(*TINY, f"--data_dir={folder}", f"--model_dir={tmp_path / 'm'}", "--steps=2")
    assert_one_line_error(result, 2, "t10k-labels-idx1-ubyte.gz: holds no examples")


def test_model_dir_that_is_a_file_or_unwritable(data, tmp_path):
    (tmp_path / "file").write_text("x")
    result = train(*TINY, f"--data_dir={data}", f"--model_dir={tmp_path / 'file'}", "--steps=2")
    assert_one_line_error(result, 2, "exists and is not a folder")
    result = train(*TINY, f"--data_dir={data}", "--model_dir=/proc/self/nope", "--steps=2")
    assert_one_line_error(result, 2, "cannot be written")


def test_second_run_on_a_locked_model_dir_stops_at_once(data, tmp_path):
    with RunFolder(str(tmp_path / "m")).locked():
        result = train(*TINY, f"--data_dir={data}", f"--model_dir={tmp_path / 'm'}", "--steps=2")
    assert_one_line_error(result, 2, f"is in use by another run (pid {os.getpid()})")
    assert not (tmp_path / "m" / "checkpoints").exists()


def test_symlinks_in_the_run_folder_are_replaced_not_written_through(data, tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    victims = {}
    for name in ("model.keras", "filters.png", "confusion_matrix.png"):
        victims[name] = tmp_path / f"victim-{name}"
        victims[name].write_text("precious")
        os.symlink(victims[name], model_dir / name)
    result = train(*TINY, f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=2")
    assert result.returncode == 0, result.stderr[-2000:]
    for name, victim in victims.items():
        assert victim.read_text() == "precious", name
        assert not os.path.islink(model_dir / name) and os.path.getsize(model_dir / name) > 0


@pytest.mark.parametrize("name,link,message", [
    ("metrics.json", os.symlink, "metrics.json is a symlink, not a file this project wrote"),
    (".lock", os.link, ".lock has 2 hard links, so writing it would change a file elsewhere"),
])
def test_a_link_planted_at_a_state_file_is_refused_and_its_target_untouched(
        data, tmp_path, name, link, message):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    victim = tmp_path / "victim.json"
    victim.write_text("{}")
    link(victim, model_dir / name)
    result = train(*TINY, f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=2")
    assert_one_line_error(result, 2, message)
    assert victim.read_text() == "{}"


def test_symlinked_subfolder_is_refused(data, tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", model_dir / "checkpoints")
    result = train(*TINY, f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=2")
    assert_one_line_error(result, 2, "checkpoints is a symlink; refusing to write through it")
    assert os.listdir(tmp_path / "elsewhere") == []


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("trained") / "m"
    result = train(*TINY, f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=2")
    assert result.returncode == 0, result.stderr[-2000:]
    return model_dir


def _copy(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_checkpoint_from_another_model_names_the_flag(data, trained, tmp_path):
    for mode in ("train", "eval"):
        result = train(*TINY, "--model=convnet", f"--mode={mode}", f"--data_dir={data}",
                       f"--model_dir={_copy(trained, tmp_path / mode)}", "--steps=4")
        assert_one_line_error(result, 2, "holds a run with --model=three_layer, this run has --model=convnet")
    result = train(*TINY, "--optimizer=sgd", f"--data_dir={data}",
                   f"--model_dir={_copy(trained, tmp_path / 'opt')}", "--steps=4")
    assert_one_line_error(result, 2, "--optimizer=adam, this run has --optimizer=sgd")


@pytest.mark.parametrize("flag,message", [
    ("--model=convnet", "holds a run with --model=three_layer, this run has --model=convnet"),
    ("--optimizer=sgd", "holds a run with --optimizer=adam, this run has --optimizer=sgd"),
])
def test_without_metrics_the_checkpoint_itself_names_the_flag_that_differs(
        data, trained, tmp_path, flag, message):
    # The run's identity is stored inside each checkpoint, not only in metrics.json.
    model_dir = _copy(trained, tmp_path / "m")
    os.remove(model_dir / "metrics.json")
    result = train(*TINY, flag, f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=4")
    assert_one_line_error(result, 2, message)


@pytest.mark.parametrize("damage", ["truncate_data", "garbage_index", "garbage_state"])
def test_corrupt_checkpoint_is_one_line(data, trained, tmp_path, damage):
    model_dir = _copy(trained, tmp_path / "m")
    folder = model_dir / "checkpoints"
    if damage == "truncate_data":
        path = next(folder.glob("ckpt-2.data-*"))
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage_index":
        (folder / "ckpt-2.index").write_bytes(b"\x00garbage" * 10)
    else:
        (folder / "checkpoint").write_text("model_checkpoint_path: {{{")
    for mode in ("train", "eval"):
        result = train(*TINY, f"--mode={mode}", f"--data_dir={data}", f"--model_dir={model_dir}",
                       "--steps=4")
        assert_one_line_error(result, 2, "corrupt")


@pytest.mark.parametrize("content,message", [
    ("{not json", "metrics.json is unreadable or not JSON"),
    (json.dumps({"history": [{"step": "7"}]}), "its history is not a list of"),
    (json.dumps([1, 2]), "not a JSON object"),
    ("[" * 100000, "unreadable or not JSON"),
])
def test_corrupt_metrics_json_is_one_line(data, trained, tmp_path, content, message):
    model_dir = _copy(trained, tmp_path / "m")
    (model_dir / "metrics.json").write_text(content)
    result = train(*TINY, f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=4")
    assert_one_line_error(result, 2, message)


def test_unexpected_error_is_one_line_with_how_to_get_the_traceback(capsys):
    def run(flags_obj):
        raise RuntimeError("boom\nsecond line")

    with pytest.raises(SystemExit) as exit_info:
        cli.main_for(run)(["prog"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err == ("error: unexpected RuntimeError: boom second line (run again with "
                   "--verbosity=1 for the traceback)\n")


def test_error_messages_are_capped(capsys):
    from datasets import DataError

    def run(flags_obj):
        raise DataError("x" * 40_000_000)

    with pytest.raises(SystemExit) as exit_info:
        cli.main_for(run)(["prog"])
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err) < 1100


def test_second_stop_signal_ends_the_process_at_once(tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys, time
        from training.callbacks import StopSignals
        stop = StopSignals()
        with stop.installed():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            assert stop.signum == signal.SIGTERM  # first one: only a request
            print("still running", flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # a step that would never end
        print("not reached")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 128 + signal.SIGTERM
    assert result.stdout == "still running\n"
    assert "stopped: second SIGTERM, exiting without saving" in result.stderr
