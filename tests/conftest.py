"""Shared test set-up: quiet TensorFlow, the project root on sys.path, the float64 fixture."""

import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture
def float64():
    """Keras layers and models built inside the test compute in float64."""
    import keras  # here, not at import: conftest loads before every test module

    keras.config.set_floatx("float64")
    keras.mixed_precision.set_global_policy("float64")
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.config.set_floatx("float32")


def skip_unless_convolutions_run_in(dtype_name: str) -> None:
    """Skips the test where this CPU's kernels run no convolution in ``dtype_name``
    (oneDNN limited to AVX2, ``ONEDNN_MAX_CPU_ISA=AVX2``, has no float16 or
    bfloat16 convolution; stock Keras fails there the same way)."""
    import tensorflow as tf

    try:
        tf.nn.conv2d(tf.zeros([1, 4, 4, 2], dtype_name), tf.zeros([3, 3, 2, 2], dtype_name),
                     1, "SAME").numpy()
    except tf.errors.OpError as error:
        pytest.skip(f"no {dtype_name} convolution on this CPU's kernels "
                    f"({type(error).__name__} from a 4x4 Conv2D)")
