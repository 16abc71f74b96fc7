"""The README and docs/ tell the truth: their commands run, their imports work,
the flag table is the flags' own, and they speak of the project only."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests.data_factory import make_tiny_mnist, write_cifar_folder
from training import flag_table

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = {path.name: path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))}
SHORT_RUN = ["--steps=2", "--batch_size=8", "--validation_size=16", "--eval_every=2",
             "--log_every=1"]


def _code_blocks(text: str, language: str = ""):
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_readme_is_a_front_door():
    assert len(README.splitlines()) <= 200
    for doc in ("layers", "gradients", "training", "robustness", "performance", "results"):
        assert f"(docs/{doc}.md)" in README and f"{doc}.md" in DOCS


@pytest.mark.parametrize("name", ["README.md", *DOCS])
def test_docs_speak_of_the_project_only(name):
    text = README if name == "README.md" else DOCS[name]
    for pattern in (r"\.\./shared", r"/tmp/", r"\bsessions?\b", r"\bissues?\b",
                    r"\bcommit [0-9a-f]{7,}", r"\(commit"):
        assert not re.search(pattern, text, re.I), (name, pattern)


def test_the_flag_table_is_generated_from_the_flags():
    parts = DOCS["training.md"].split(flag_table.MARKER)
    assert len(parts) == 3, "docs/training.md needs the table between two markers"
    assert parts[1].strip() == flag_table.flag_table()


def test_the_readme_snippet_runs_and_its_imports_work():
    (snippet,) = _code_blocks(README, "python")
    snippet += ("\nfrom custom_layers import ops, reference\n"
                "assert callable(ops.conv2d) and callable(ops.max_pool2d)\n"
                "assert callable(reference.conv2d_forward_naive)\n"
                "assert resnet.swapped_layer_names\nprint('ok')\n")
    result = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def _readme_commands(script: str):
    lines = [line for block in _code_blocks(README) for line in block.splitlines()]
    return [line.split()[1:] for line in lines if line.startswith(f".venv/bin/python {script}")]


@pytest.mark.parametrize("script", ["train_mnist.py", "train_cifar.py"])
def test_readme_commands_run_short_on_generated_data(script, tmp_path):
    commands = _readme_commands(script)
    assert commands, f"the README shows no {script} command"
    if "mnist" in script:
        data = make_tiny_mnist(str(tmp_path / "data"), n_train=48, n_test=16)
    else:
        data = write_cifar_folder(tmp_path / "data")
    for i, argv in enumerate(commands):
        argv = [arg.replace("/path/to/cifar-10-batches-py", str(data)) for arg in argv]
        if not any(arg.startswith("--data_dir") for arg in argv):
            argv.append(f"--data_dir={data}")
        argv = [a for a in argv if not a.startswith("--steps")] + SHORT_RUN
        result = subprocess.run([sys.executable, *argv, f"--model_dir={tmp_path / str(i)}"],
                                cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (argv, result.stderr[-3000:])
        assert "test_accuracy=" in result.stdout
    help_text = subprocess.run([sys.executable, script, "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
    # absl ends --help with exit code 1; what matters is the list of flags.
    assert "--model_dir" in help_text.stdout and "Traceback" not in help_text.stderr


def test_tensorboard_is_installed_for_the_readme_command():
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "tensorboard"),
                             "--version_tb"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
