"""How much of a model's backward pass is hand-written after ``swap_layers``.

Every ``keras.applications`` constructor that builds in the installed Keras
(weights=None, the smallest input each accepts), plus a small U-Net, a small
ViT and a 1-D text CNN, is rebuilt with ``swap_layers(keep_unsupported=True)``
and the graph of one training step is read op by op. A backward op is one
built by ``tape.gradient``; TensorFlow generated it if it sits under
``gradient_tape/`` (a registered gradient), else it belongs to one of this
project's ``tf.custom_gradient`` functions. Ops that only move or describe
data (reshape, transpose, identity, slicing, shapes, constants, integer
shape arithmetic) and the loss's own gradient are not counted on either side, and the gradients of layers Keras does not ship as
``keras.layers`` classes (ConvNeXt's LayerScale) are listed apart. Per model
it prints the layers swapped, the stock classes left, the hand-written share
of backward compute ops and the op types TensorFlow still generated::

    python -m benchmarks.coverage                      # every model (~10 minutes on 2 cores)
    python -m benchmarks.coverage --models=ResNet50,vit,unet
    python -m benchmarks.coverage --models=ResNet50,Xception --check_gradients  # float64 step
"""

from __future__ import annotations

import collections
import inspect
import re
from typing import Callable, Dict, List, Tuple

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

import custom_layers
from benchmarks.cpu import cpu_description
from custom_layers.gradcheck import rel_error

FLAGS = flags.FLAGS

# Ops that move or describe data: not counted as compute on either side.
NON_COMPUTE = {
    "Const", "Shape", "ShapeN", "Size", "Rank", "Reshape", "Identity", "IdentityN", "NoOp",
    "Transpose", "StridedSlice", "StridedSliceGrad", "Slice", "Split", "SplitV", "ConcatOffset",
    "Pack", "Unpack", "ExpandDims", "Squeeze", "BroadcastGradientArgs", "ZerosLike", "OnesLike",
    "Fill", "Range", "StopGradient", "Placeholder", "ReadVariableOp", "BroadcastTo",
}
LOSS_SCOPE = "coverage_loss"
# The smallest input size each family accepts with weights=None.
MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71, "NASNetLarge": 32}


def application_builders(size: int = 0) -> Dict[str, Callable[[], keras.Model]]:
    """{name: builder} for every model constructor in ``keras.applications``, at
    ``size`` × ``size`` inputs (0: the smallest each accepts)."""
    builders = {}
    for name in sorted(dir(keras.applications)):
        fn = getattr(keras.applications, name)
        if name[0].isupper() and callable(fn) and "input_shape" in inspect.signature(fn).parameters:
            side = max(size, MIN_SIZE.get(name, 32))
            builders[name] = (lambda fn=fn, side=side: fn(weights=None, classes=10,
                                                          input_shape=(side, side, 3)))
    return builders


def unet() -> keras.Model:
    """A two-level U-Net: conv, pool, transposed-free upsampling, skip concatenation."""
    L = keras.layers
    inputs = keras.Input((32, 32, 3))
    d1 = L.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    d2 = L.Conv2D(16, 3, padding="same", activation="relu")(L.MaxPooling2D()(d1))
    u1 = L.Concatenate()([L.UpSampling2D()(d2), d1])
    u1 = L.Conv2D(8, 3, padding="same", activation="relu")(u1)
    return keras.Model(inputs, L.Conv2D(2, 1, activation="softmax")(u1))


def vit() -> keras.Model:
    """A one-block ViT: patches by a strided conv, layer norm, attention, MLP."""
    L = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = L.Reshape((16, 32))(L.Conv2D(32, 8, strides=8)(inputs))
    h = L.LayerNormalization()(x)
    x = L.Add()([x, L.MultiHeadAttention(2, 16)(h, h)])
    h = L.Dense(32)(L.Dense(64, activation="gelu")(L.LayerNormalization()(x)))
    x = L.Add()([x, h])
    return keras.Model(inputs, L.Dense(10, activation="softmax")(L.GlobalAveragePooling1D()(x)))


def text_cnn() -> keras.Model:
    """A 1-D text CNN: embedding, convolution, max pooling, dense."""
    L = keras.layers
    inputs = keras.Input((64,), dtype="int32")
    x = L.Conv1D(32, 5, activation="relu")(L.Embedding(1000, 16)(inputs))
    x = L.GlobalMaxPooling1D()(L.MaxPooling1D(2)(x))
    return keras.Model(inputs, L.Dense(2, activation="softmax")(x))


def volume_cnn() -> keras.Model:
    """A 3-D CNN for volumes or clips: convolution, 3-D pooling, a transposed
    convolution back up, global pooling, dense."""
    L = keras.layers
    inputs = keras.Input((8, 16, 16, 2))
    x = L.MaxPooling3D(2)(L.Conv3D(8, 3, padding="same", activation="relu")(inputs))
    x = L.Conv3DTranspose(4, 2, strides=2, activation="relu")(L.Conv3D(8, 3, padding="same")(x))
    x = L.AveragePooling3D((2, 4, 4))(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax")(L.GlobalMaxPooling3D()(x)))


EXTRA = {"unet": unet, "vit": vit, "text_cnn": text_cnn, "volume_cnn": volume_cnn}


def backward_ops(model: keras.Model) -> List[tf.Operation]:
    """The ops ``tape.gradient`` builds for one training step of ``model``."""
    shape = [2, *model.input_shape[1:]]
    dtype = model.inputs[0].dtype
    found: List[tf.Operation] = []

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            y = model(x, training=True)
            with tf.name_scope(LOSS_SCOPE):  # the loss is the caller's, not the model's
                loss = tf.reduce_mean(tf.square(tf.cast(y, tf.float32)))
        graph = tf.compat.v1.get_default_graph()
        start = len(graph.get_operations())
        grads = tape.gradient(loss, model.trainable_variables)
        found.extend(graph.get_operations()[start:])
        return grads

    step.get_concrete_function(tf.TensorSpec(shape, dtype))
    return found


def foreign_layers(model: keras.Model) -> Dict[str, str]:
    """{name: class} of the layers that are not ``keras.layers`` classes (ConvNeXt's
    LayerScale): they have no twin to have, and are counted apart."""
    return {layer.name: type(layer).__name__ for layer in model._flatten_layers()
            if not isinstance(layer, keras.Model)
            and not type(layer).__module__.startswith("custom_layers")
            and getattr(keras.layers, type(layer).__name__, None) is not type(layer)}


def _owner(op_name: str, foreign: Dict[str, str]):
    """The foreign layer whose name scope holds ``op_name`` (scopes may carry "_1")."""
    for part in op_name.split("/"):
        for name in (part, re.sub(r"_\d+$", "", part)):
            if name in foreign:
                return foreign[name]
    return None


def coverage(model: keras.Model) -> Tuple[keras.Model, float, collections.Counter]:
    """(swapped model, hand-written share of backward compute ops, TF-generated op types).

    TensorFlow's gradient ops of a layer that is not a Keras layer (``foreign_layers``)
    are counted under its class name (as "in LayerScale") and left out of the share.
    """
    swapped = custom_layers.swap_layers(model, keep_unsupported=True)
    foreign = foreign_layers(swapped)
    generated, hand_written = collections.Counter(), 0
    for op in backward_ops(swapped):
        if (op.type in NON_COMPUTE or op.name.startswith(f"gradient_tape/{LOSS_SCOPE}")
                or not any(t.dtype.is_floating for t in op.outputs)):  # shape arithmetic
            continue
        if op.name.startswith("gradient_tape/"):
            owner = _owner(op.name, foreign)
            generated[f"in {owner}" if owner else op.type] += 1
        else:
            hand_written += 1
    counted = sum(n for kind, n in generated.items() if not kind.startswith("in "))
    total = hand_written + counted
    return swapped, (hand_written / total if total else 1.0), generated


def training_step_errors(stock: keras.Model, ours: keras.Model) -> Tuple[float, float]:
    """Normwise errors (output, worst weight gradient) of one training-mode step of
    ``ours`` against ``stock`` on the same random batch of 4."""
    rng = np.random.default_rng(0)
    shape = [4, *stock.input_shape[1:]]
    x = (rng.integers(0, 100, size=shape) if stock.inputs[0].dtype.startswith("int")
         else rng.normal(size=shape))
    results = []
    for model in (stock, ours):
        for layer in model._flatten_layers():
            if getattr(layer, "seed_generator", None) is not None:
                # The same dropout masks: the twins draw as stock from the same state.
                layer.seed_generator.state.assign([1, 0])
        with tf.GradientTape() as tape:
            y = model(x, training=True)
            loss = tf.reduce_sum(y * tf.range(y.shape[-1], dtype=y.dtype))
        results.append((y.numpy(), tape.gradient(loss, model.trainable_variables)))
    (y_stock, g_stock), (y_ours, g_ours) = results
    g_ours, g_stock = ([tf.convert_to_tensor(g).numpy() for g in gs] for gs in (g_ours, g_stock))
    # A weight whose true gradient is 0 (a batch norm's beta feeding only another batch
    # norm in training mode) has rounding noise on both sides: its error is taken
    # relative to a billionth of the largest gradient entry of the model instead.
    floor = 1e-9 * max((np.abs(g).max(initial=0.0) for g in g_stock), default=0.0)
    worst = max((np.abs(a - b).max(initial=0.0) / max(np.abs(a).max(initial=0.0),
                                                      np.abs(b).max(initial=0.0), floor)
                 for a, b in zip(g_ours, g_stock)), default=0.0)
    return rel_error(y_ours, y_stock), float(worst)


def define_flags() -> None:
    flags.DEFINE_list("models", [], "Models to check (application names, unet, vit, "
                      "text_cnn, volume_cnn); empty for all.")
    flags.DEFINE_integer("size", 0, "Input size of the applications (0: the smallest each "
                         "accepts).")
    flags.DEFINE_bool("check_gradients", False, "Also compare one float64 training-mode step "
                      "(outputs and every weight gradient) with stock's.")


def run(names: List[str], check_gradients: bool = False, size: int = 0) -> Dict[str, float]:
    builders = {**application_builders(size), **EXTRA}
    unknown = sorted(set(names) - set(builders))
    if unknown:
        raise app.UsageError(f"unknown --models {unknown}; known: {sorted(builders)}")
    print(cpu_description())
    shares = {}
    for name in names or list(builders):
        if check_gradients:
            keras.config.set_floatx("float64")
        model = builders[name]()
        swapped, share, generated = coverage(model)
        layers = [op for op in getattr(model, "operations", model.layers)
                  if not isinstance(op, keras.layers.InputLayer)]
        classes = {op.name: type(op).__name__ for op in getattr(model, "operations", model.layers)}
        left = collections.Counter(classes.get(n, n) for n in swapped.stock_layer_names)
        shares[name] = share
        print(f"{name}: {len(swapped.swapped_layer_names)}/{len(layers)} layers swapped, "
              f"hand-written {share:.1%} of backward compute ops; stock left: "
              f"{dict(left.most_common()) or '-'}; TensorFlow generated: "
              f"{dict(generated.most_common(6)) or '-'}", flush=True)
        if check_gradients:
            output_error, gradient_error = training_step_errors(model, swapped)
            keras.config.set_floatx("float32")
            print(f"  float64 training step vs stock: outputs {output_error:.1e}, worst weight "
                  f"gradient {gradient_error:.1e}", flush=True)
        keras.backend.clear_session()
    values = sorted(shares.values())
    print(f"{len(values)} models: median {values[len(values) // 2]:.1%}, minimum {values[0]:.1%}")
    return shares


def main(argv):
    del argv
    run(FLAGS.models, FLAGS.check_gradients, FLAGS.size)


if __name__ == "__main__":
    define_flags()
    app.run(main)
