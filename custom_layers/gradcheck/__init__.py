"""Gradient checking: error measures, tolerances, numeric gradients and the per-op checks.

``python -m custom_layers.gradcheck`` prints every op's hand-written
gradients against numeric, autodiff and NumPy ones (``__main__``); the
measures it uses (``measure``) serve the tests too.
"""

from custom_layers.gradcheck.checks import run_all
from custom_layers.gradcheck.measure import (
    CURVED_NUMERIC_BOUND,
    CURVED_STEP,
    FLOAT64_EPS,
    NUMERIC_STEP,
    SAFETY,
    numeric_gradient,
    numeric_tolerance,
    rel_error,
    rounding_tolerance,
    tf_gradients,
)

__all__ = ["CURVED_NUMERIC_BOUND", "CURVED_STEP", "FLOAT64_EPS", "NUMERIC_STEP", "SAFETY",
           "numeric_gradient", "numeric_tolerance", "rel_error", "rounding_tolerance",
           "run_all", "tf_gradients"]
