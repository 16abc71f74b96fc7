"""The op modules never reach for TensorFlow's own gradient machinery.

The graph walks in test_layers/test_losses catch gradient kernels in the
ops that run; this reads the code (identifiers, not docstrings or comments)
and catches a backward that asks TensorFlow for a gradient in any path:
autodiff, a gradient kernel's wrapper, or ``tf.raw_ops``' gradient ops.
"""

import ast
import pathlib
import re

import custom_layers

PACKAGE = pathlib.Path(custom_layers.__file__).parent
# The gradient checks compare our gradients with stock autodiff on purpose.
COMPARES_WITH_AUTODIFF = "gradcheck"
FORBIDDEN = re.compile(
    r"^(GradientTape|gradients|autodiff|conv2d_transpose|conv_transpose|gen_nn_ops|nn_grad)$"
    r"|[Bb]ackprop"  # conv2d_backprop_input/filter, Conv2DBackpropInput/Filter
    r"|Grad(V\d)?$|GradGrad"  # raw ops: MaxPoolGrad, ReluGrad, BiasAddGrad, ...
    r"|^(max_pool|avg_pool|relu|bias_add|fused_batch_norm(_v\d)?)_grad"  # their wrappers
)


def _identifiers(source: str):
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            yield from (part for alias in node.names for part in alias.name.split("."))
            if isinstance(node, ast.ImportFrom) and node.module:
                yield from node.module.split(".")


def _tensorflow_gradient_calls(source: str):
    return sorted({name for name in _identifiers(source) if FORBIDDEN.search(name)})


def test_the_check_sees_what_it_forbids():
    caught = _tensorflow_gradient_calls(
        "import tensorflow as tf\n"
        "from tensorflow.python.ops import gen_nn_ops\n"
        "def backward(x, dy):\n"
        "    with tf.GradientTape() as tape:\n"
        "        pass\n"
        "    return tf.raw_ops.MaxPoolGrad(orig_input=x), tf.nn.conv2d_transpose(dy)\n")
    assert caught == ["GradientTape", "MaxPoolGrad", "conv2d_transpose", "gen_nn_ops"]


def _scanned_modules():
    """Every module of the package, subpackages included, but the gradient checks."""
    return sorted(path for path in PACKAGE.rglob("*.py")
                  if COMPARES_WITH_AUTODIFF not in path.relative_to(PACKAGE).parts)


def test_the_scan_reaches_every_layer_and_op_module():
    scanned = {path.relative_to(PACKAGE).as_posix() for path in _scanned_modules()}
    # A scan that globbed only the top folder would check none of these.
    assert {"ops/convolution.py", "ops/convolution_backward.py", "ops/max_pooling.py",
            "layers/conv2d.py", "layers/batch_normalization.py", "swap.py"} <= scanned
    assert len([name for name in scanned if name.startswith("ops/")]) >= 12


def test_no_op_module_calls_tensorflow_gradients():
    found = {
        path.relative_to(PACKAGE).as_posix(): _tensorflow_gradient_calls(path.read_text())
        for path in _scanned_modules()
    }
    assert {name: calls for name, calls in found.items() if calls} == {}


def _custom_gradient_uses(source: str):
    return [name for name in _identifiers(source) if name == "custom_gradient"]


def test_every_op_gets_its_gradient_through_the_one_helper():
    assert _custom_gradient_uses("@tf.custom_gradient\ndef op(x):\n    pass\n") == ["custom_gradient"]
    users = {path.relative_to(PACKAGE).as_posix() for path in _scanned_modules()
             if _custom_gradient_uses(path.read_text())}
    assert users == {"ops/custom_op.py"}
