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
