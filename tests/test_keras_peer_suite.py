"""Keras's own layer tests, with this project's layers in place of the stock ones.

Every selected case (one that asks its test module's ``layers`` for a layer
with a hand-written twin) that passes with the stock layers must pass with
the twins. Quantization and LoRA cases are out of scope and deselected.
"""

import json
import os
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERAS_LAYERS = os.path.join(os.path.dirname(keras.__file__), "src", "layers")
# One process per entry: a process costs ~8 s of imports, and a crash loses only the
# rest of its entry. dense_test.py alone: stock's segfaults under ONEDNN_MAX_CPU_ISA=AVX2.
TEST_FILES = [
    "core/dense_test.py",
    ("convolutional/conv_test.py", "convolutional/depthwise_conv_test.py",
     "convolutional/separable_conv_test.py", "convolutional/conv_transpose_test.py",
     "pooling/max_pooling_test.py",
     "pooling/average_pooling_test.py", "pooling/global_average_pooling_test.py",
     "pooling/global_max_pooling_test.py", "normalization/batch_normalization_test.py",
     "normalization/layer_normalization_test.py", "normalization/group_normalization_test.py",
     "regularization/dropout_test.py"),
    ("activations/activation_test.py", "activations/relu_test.py",
     "activations/leaky_relu_test.py", "activations/elu_test.py",
     "activations/prelu_test.py", "activations/softmax_test.py", "merging/merging_test.py",
     "reshaping/zero_padding1d_test.py", "reshaping/zero_padding2d_test.py",
     "reshaping/cropping2d_test.py", "reshaping/up_sampling2d_test.py",
     "reshaping/zero_padding3d_test.py", "reshaping/cropping1d_test.py",
     "reshaping/cropping3d_test.py", "reshaping/up_sampling1d_test.py",
     "reshaping/up_sampling3d_test.py",
     "core/einsum_dense_test.py", "core/embedding_test.py",
     "preprocessing/normalization_test.py",
     "attention/multi_head_attention_test.py"),
]
# preprocessing/rescaling_test.py imports grain, which the requirements do not
# install: Rescaling is checked against stock in tests/test_pointwise_layers.py.
# Quantization and LoRA, which the twins refuse; the legacy variable-loading case
# builds int8, int4 and float8 layers.
OUT_OF_SCOPE = ("not quantiz and not lora and not float8 and not int4 and not int8 and not gptq "
                "and not awq and not legacy_load_own_variables")


def _run(swap: bool, folder, entries):
    """({nodeid: outcome entry}, entries whose process crashed) of ``entries`` (each a
    file or a tuple of files or node ids, run in one process), so that a crash of
    TensorFlow inside one file (stock ``dense_test.py`` segfaults under
    ``ONEDNN_MAX_CPU_ISA=AVX2``) loses only that process's remaining cases."""
    merged, crashed = {}, []
    for index, entry in enumerate(entries):
        targets = [entry] if isinstance(entry, str) else list(entry)
        report = folder / f"{'ours' if swap else 'stock'}-{index}.json"
        env = dict(os.environ, KERAS_PEER_SWAP="1" if swap else "0",
                   KERAS_PEER_REPORT=str(report), PYTHONPATH=ROOT)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "tests.keras_peer.plugin",
             "-p", "no:cacheprovider", "-p", "no:warnings", "-o", "addopts=", "--rootdir",
             KERAS_LAYERS, "-k", OUT_OF_SCOPE, *[os.path.join(KERAS_LAYERS, t) for t in targets]],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
        if result.returncode < 0:
            crashed.append(entry)
            print(f"\n{'ours' if swap else 'stock'}: the test process crashed (signal "
                  f"{-result.returncode}) in {targets[0]} (+{len(targets) - 1})")
        if not os.path.exists(report):
            assert result.returncode < 0, result.stdout[-3000:] + result.stderr[-3000:]
            continue
        with open(report) as f:
            merged.update(json.load(f))
    return merged, crashed


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """(stock, ours): ours on every file; stock only where ours did not pass (a
    regression is a case stock passes and ours does not) and on every entry whose
    process crashed with ours (its unreported cases are unknown)."""
    folder = tmp_path_factory.mktemp("peer")
    ours, crashed = _run(True, folder, TEST_FILES)
    not_passed = sorted(n for n, r in ours.items()
                        if r.get("uses_twin") and r.get("outcome") != "passed")
    stock, _ = _run(False, folder, [*crashed, *([tuple(not_passed)] if not_passed else [])])
    return stock, ours


def _file(nodeid):
    return nodeid.split("::")[0].rsplit("/", 1)[-1]


def test_twins_pass_every_selected_case_that_stock_passes(outcomes):
    stock, ours = outcomes
    selected = sorted(n for n, r in ours.items() if r.get("uses_twin"))
    assert len(selected) > 50, "the proxy saw too few cases: it is not swapping anything"
    regressions = [n for n, r in stock.items()
                   if r.get("uses_twin") and r["outcome"] == "passed"
                   and ours.get(n, {}).get("outcome") != "passed"]
    assert not regressions, "\n".join(regressions)
    summary = {}
    for n in selected:
        counts = summary.setdefault(_file(n), [0, 0])
        counts[0] += 1
        counts[1] += ours[n]["outcome"] == "passed"
    print("\nKeras peer suite (file: selected cases, passing with ours; where ours did not "
          f"pass, stock was run: {len(stock)} cases, none a regression):")
    for name, (count, ours_passed) in sorted(summary.items()):
        print(f"  {name}: {count}, {ours_passed}")


def test_the_proxy_hands_out_every_twin_that_swap_layers_knows():
    from custom_layers.swap import TWINS
    from tests.keras_peer.plugin import TWIN_NAMES

    assert {stock.__name__ for stock in TWINS} <= set(TWIN_NAMES)
