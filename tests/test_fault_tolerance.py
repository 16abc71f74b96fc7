"""Distribution strategies, crash-safe resume, interruption and the NaN guard."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import plugin_event_accumulator

import custom_layers  # noqa: F401  (registers the layers for load_model)
from tests.data_factory import make_tiny_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--batch_size=8", "--validation_size=16", "--log_every=1", "--model=three_layer"]


def _cmd(*args):
    return [sys.executable, "train_mnist.py", *TINY, *args]


def _history(model_dir):
    with open(os.path.join(model_dir, "metrics.json")) as f:
        return json.load(f)["history"]


def _train_losses(model_dir):
    return [(h["step"], h["loss"]) for h in _history(model_dir) if "loss" in h]


def test_mirrored_on_two_cpus_matches_one_device(tmp_path):
    data = make_tiny_mnist(tmp_path / "data", n_train=96)
    curves = {}
    for name, extra in (("one", ["--distribution_strategy=one_device"]),
                        ("two", ["--distribution_strategy=mirrored", "--num_cpu_devices=2"])):
        model_dir = str(tmp_path / name)
        result = subprocess.run(
            _cmd(f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=6", "--eval_every=3",
                 "--dropout_rate=0", "--optimizer=sgd", "--learning_rate=0.05", *extra),
            cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        curves[name] = _train_losses(model_dir)
        replicas = json.load(open(os.path.join(model_dir, "metrics.json")))["replicas"]
        assert replicas == (2 if name == "two" else 1)
    steps = [s for s, _ in curves["one"]]
    assert steps == [s for s, _ in curves["two"]] == list(range(1, 7))
    np.testing.assert_allclose([l for _, l in curves["two"]], [l for _, l in curves["one"]],
                               rtol=1e-4, atol=1e-5)
    assert curves["one"][-1][1] != curves["one"][0][1]  # it did train


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_on_localhost_finish_with_identical_weights(tmp_path):
    data = make_tiny_mnist(tmp_path / "data", n_train=96)
    model_dir = str(tmp_path / "model")
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            _cmd(f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=4", "--eval_every=2",
                 "--distribution_strategy=multi_worker"),
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=400) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
        assert "steps=4" in out
    chief = keras.models.load_model(os.path.join(model_dir, "model.keras"))
    worker = keras.models.load_model(os.path.join(model_dir, "workers", "worker-1", "model.keras"))
    for a, b in zip(chief.get_weights(), worker.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert json.load(open(os.path.join(model_dir, "metrics.json")))["replicas"] == 2


def _wait_for_checkpoint(model_dir, min_step, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
        if latest and int(latest.rsplit("-", 1)[1]) >= min_step:
            return latest
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_then_restart_finishes_with_continuous_history(tmp_path):
    data = make_tiny_mnist(tmp_path / "data")
    model_dir = str(tmp_path / "model")
    args = _cmd(f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=60", "--eval_every=4")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(model_dir, 8, proc)
    time.sleep(0.5)  # let it get past the checkpoint, mid-round
    proc.kill()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from step" in result.stderr
    assert "steps=60" in result.stdout
    steps = [s for s, _ in _train_losses(model_dir)]
    assert steps == list(range(1, 61))
    val_steps = [h["step"] for h in _history(model_dir) if "val_loss" in h]
    assert val_steps == list(range(4, 61, 4))
    # TensorBoard drops what the killed process logged past its checkpoint.
    events = plugin_event_accumulator.EventAccumulator(os.path.join(model_dir, "train"),
                                                size_guidance={"tensors": 0})
    events.Reload()
    assert [e.step for e in events.Tensors("loss")] == list(range(1, 61))


def test_sigterm_saves_a_checkpoint_and_resume_continues(tmp_path):
    data = make_tiny_mnist(tmp_path / "data")
    model_dir = str(tmp_path / "model")
    args = _cmd(f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=100000", "--eval_every=50000")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not os.path.exists(os.path.join(model_dir, "train")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "stopped by SIGTERM at step" in err
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    saved_step = int(latest.rsplit("-", 1)[1])
    assert saved_step > 0
    assert json.load(open(os.path.join(model_dir, "metrics.json")))["steps"] == saved_step
    # Resume: training continues from the saved step, with a continuous history.
    resumed = subprocess.run(_cmd(f"--data_dir={data}", f"--model_dir={model_dir}",
                                  f"--steps={saved_step + 3}", "--eval_every=50000"),
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from step {saved_step} " in resumed.stderr
    assert f"steps={saved_step + 3} " in resumed.stdout
    assert [s for s, _ in _train_losses(model_dir)] == list(range(1, saved_step + 4))


def test_nan_loss_stops_with_step_and_checkpoint(tmp_path):
    data = make_tiny_mnist(tmp_path / "data")
    model_dir = str(tmp_path / "model")
    result = subprocess.run(
        _cmd(f"--data_dir={data}", f"--model_dir={model_dir}", "--steps=40", "--eval_every=2",
             "--learning_rate=1e6", "--optimizer=sgd"),
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    line = [l for l in result.stderr.splitlines() if l.startswith("error:")][0]
    assert "loss became nan at step" in line or "loss became inf at step" in line
    assert "last good checkpoint" in line


@pytest.mark.parametrize("tf_config,message", [
    ('["worker"]', 'TF_CONFIG must be a JSON object with "cluster" and "task" objects'),
    ('{"cluster": {"worker": ["a:99999"]}, "task": {"type": "worker", "index": 0}}',
     "address 'a:99999' has no port in 1..65535"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     'TF_CONFIG task index 2 is out of range: cluster "worker" has 2 tasks'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
     "TF_CONFIG task type 'chief' is not in its cluster (worker)"),
    ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker"}}',
     'TF_CONFIG cluster "worker" must be a list of host:port'),
    ("{not json", "TF_CONFIG is not valid JSON"),
])
def test_malformed_tf_config_is_one_line_exit_2_before_tensorflow_loads(tmp_path, tf_config, message):
    result = subprocess.run(_cmd(f"--data_dir={tmp_path}", f"--model_dir={tmp_path / 'm'}",
                                 "--distribution_strategy=multi_worker"),
                            cwd=ROOT, env=dict(os.environ, TF_CONFIG=tf_config),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_multi_worker_without_tf_config_says_so(tmp_path):
    result = subprocess.run(_cmd(f"--data_dir={tmp_path}", "--distribution_strategy=multi_worker"),
                            cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "TF_CONFIG"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--distribution_strategy=multi_worker needs TF_CONFIG set" in result.stderr.splitlines()[-1]
