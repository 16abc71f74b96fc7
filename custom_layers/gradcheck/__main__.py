"""Gradient check: hand-written backward vs numeric gradient vs TF autodiff.

Run ``python -m custom_layers.gradcheck`` to print, for each op and each
gradient, the relative error of the TensorFlow op's hand-written backward
against the NumPy reference backward, a centred-difference numeric gradient
(float64) and TensorFlow's autodiff of the stock op, the way the cs231n
exercises print them::

    conv2d dx  vs numeric: 2.1e-10  vs autodiff: 3.4e-16  vs numpy: 2.0e-16

Errors are normwise over the whole tensor and each must stay within a bound
derived from float64 rounding and the problem's size, not a constant tuned
to one machine (``custom_layers.gradcheck.measure`` says how).
"""

from typing import Sequence

from absl import app, flags

from custom_layers.gradcheck.checks import run_all

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_integer("seed", 0, "Seed of the random test problems.")


def main(argv: Sequence[str]) -> int:
    del argv
    worst = 0.0  # the largest error as a fraction of its tolerance
    for label, grads in run_all(FLAGS.seed).items():
        for grad_name, errors in grads.items():
            cells = "  ".join(f"vs {k}: {e:.1e} (≤ {t:.0e})" for k, (e, t) in errors.items())
            print(f"{label:30s} {grad_name}  {cells}")
            worst = max(worst, *(e / t for e, t in errors.values()))
    verdict = "PASS" if worst <= 1.0 else "FAIL"
    print(f"largest error is {worst:.2g} of its tolerance: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    define_flags()
    app.run(main)
