"""Sparse cross-entropy and softmax with hand-written gradients, and the whole training step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
import models
from custom_layers import ops
from custom_layers.ops import cross_entropy as losses
from custom_layers.gradcheck import numeric_gradient, rel_error
from tests.graph_walk import tf_generated_gradients

EPS = keras.config.epsilon()


def _numeric(f, x, h=1e-6):
    return numeric_gradient(lambda: np.array(f()), x, np.array(1.0), h)


def test_numpy_losses_match_numeric_gradients():
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(5, 4)) * 3, rng.integers(0, 4, size=5)
    loss, dz = losses.softmax_loss(z, y)
    assert rel_error(dz, _numeric(lambda: losses.softmax_loss(z, y)[0], z)) <= 1e-7
    p = rng.dirichlet(np.ones(4), size=5)
    p[0, 1], p[2, 3] = 1e-9, 0.0  # below the clip: no gradient there
    loss, dp = losses.probability_loss(p, y, EPS)
    assert dp[0, 1] == 0 and dp[2, 3] == 0
    assert rel_error(dp, _numeric(lambda: losses.probability_loss(p, y, EPS)[0], p, 1e-10)) <= 1e-5


def _stock_loss_and_grad(labels, output, from_logits):
    output = tf.constant(output)
    with tf.GradientTape() as tape:
        tape.watch(output)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, dtype="float64")(
            labels, output)
    return loss.numpy(), tape.gradient(loss, output).numpy()


@pytest.mark.parametrize("from_logits", [True, False])
def test_tf_ops_match_numpy_and_stock_autodiff(from_logits):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, size=16)
    if from_logits:
        output = rng.normal(size=(16, 10)) * 4
        op, reference = losses.sparse_softmax_cross_entropy, losses.softmax_loss
    else:
        output = rng.dirichlet(np.ones(10) * 0.3, size=16)
        output[3, labels[3]] = 1e-12  # a clipped true class
        op = losses.sparse_probability_cross_entropy
        reference = lambda p, y: losses.probability_loss(p, y, EPS)  # noqa: E731
    x = tf.constant(output)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = op(labels, x)
    grad = tape.gradient(loss, x).numpy()
    ref_loss, ref_grad = reference(output, labels)
    stock_loss, stock_grad = _stock_loss_and_grad(labels, output, from_logits)
    assert abs(loss.numpy() - ref_loss) <= 1e-14 * abs(ref_loss)
    assert abs(loss.numpy() - stock_loss) <= 1e-14 * abs(stock_loss)
    assert rel_error(grad, ref_grad) <= 1e-14 and rel_error(grad, stock_grad) <= 1e-14


def test_softmax_op_gradient_matches_stock():
    z = tf.constant(np.random.default_rng(2).normal(size=(4, 7)))
    dy = tf.constant(np.random.default_rng(3).normal(size=(4, 7)))
    grads = []
    for fn in (ops.softmax, tf.nn.softmax):
        with tf.GradientTape() as tape:
            tape.watch(z)
            y = fn(z)
        grads.append((y, tape.gradient(y, z, output_gradients=dy)))
    assert rel_error(grads[0][0], grads[1][0]) <= 1e-15
    assert rel_error(grads[0][1], grads[1][1]) <= 1e-14


@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_keras_loss_equals_stock_on_a_softmax_model(float64, graph, weighted):
    """Eager outputs take the probability path, graph outputs the logits path, as in stock."""
    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=(8, 12)))
    y = tf.constant(rng.integers(0, 5, size=8))
    weights = tf.constant(rng.random(8)) if weighted else None
    stock_model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(5, activation="softmax")])
    ours_model = keras.Sequential([keras.Input((12,)), custom_layers.Dense(5, activation="softmax")])
    ours_model.set_weights(stock_model.get_weights())
    results = []
    for model, loss_fn in ((ours_model, custom_layers.SparseCategoricalCrossentropy()),
                           (stock_model, keras.losses.SparseCategoricalCrossentropy())):
        def step():
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x), sample_weight=weights)
            return loss, tape.gradient(loss, model.trainable_variables)
        results.append(tf.function(step)() if graph else step())
    (loss_ours, g_ours), (loss_stock, g_stock) = results
    assert abs(float(loss_ours) - float(loss_stock)) <= 1e-14
    for a, b in zip(g_ours, g_stock):
        assert rel_error(a, b) <= 1e-13


@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_label_smoothed_loss_and_gradient_equal_stocks_categorical_loss(float64, graph, weighted):
    """Stock has label smoothing only in its categorical loss: on one-hot labels it is the same."""
    from training.losses import StockSmoothedSparseCrossentropy

    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=(8, 12)) * 2)
    y = tf.constant(rng.integers(0, 5, size=8))
    weights = tf.constant(rng.random(8)) if weighted else None
    stock_model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(5, activation="softmax")])
    ours_model = keras.Sequential([keras.Input((12,)), custom_layers.Dense(5, activation="softmax")])
    ours_model.set_weights(stock_model.get_weights())
    onehot = tf.one_hot(y, 5, dtype=tf.float64)
    stock_loss = keras.losses.CategoricalCrossentropy(label_smoothing=0.2)
    results = []
    for model, loss_fn, target in (
            (ours_model, custom_layers.SparseCategoricalCrossentropy(label_smoothing=0.2), y),
            (stock_model, stock_loss, onehot),
            (stock_model, StockSmoothedSparseCrossentropy(0.2), y)):
        def step():
            with tf.GradientTape() as tape:
                loss = loss_fn(target, model(x), sample_weight=weights)
            return loss, tape.gradient(loss, model.trainable_variables)
        results.append(tf.function(step)() if graph else step())
    (loss_ours, g_ours), *stock = results
    for loss_stock, g_stock in stock:
        assert abs(float(loss_ours) - float(loss_stock)) <= 1e-14
        for a, b in zip(g_ours, g_stock):
            assert rel_error(a, b) <= 1e-13
    # And it does smooth: the loss differs from the unsmoothed one.
    plain = custom_layers.SparseCategoricalCrossentropy()(y, ours_model(x))
    assert abs(float(plain) - float(loss_ours)) > 1e-3


def test_label_smoothing_numpy_reference_matches_numeric_gradients():
    rng = np.random.default_rng(6)
    z, y = rng.normal(size=(5, 4)) * 3, rng.integers(0, 4, size=5)
    loss, dz = losses.softmax_loss(z, y, 0.3)
    assert rel_error(dz, _numeric(lambda: losses.softmax_loss(z, y, 0.3)[0], z)) <= 1e-7
    p = rng.dirichlet(np.ones(4), size=5) * 0.9 + 0.025
    loss, dp = losses.probability_loss(p, y, EPS, 0.3)
    assert rel_error(dp, _numeric(lambda: losses.probability_loss(p, y, EPS, 0.3)[0], p, 1e-8)) <= 1e-5


def test_label_smoothing_is_in_the_config_and_checked():
    loss = custom_layers.SparseCategoricalCrossentropy(label_smoothing=0.1)
    assert custom_layers.SparseCategoricalCrossentropy.from_config(loss.get_config()).label_smoothing == 0.1
    for bad in (-0.1, 1.5, "0.2", True):
        with pytest.raises(ValueError, match="label_smoothing must be a number in"):
            custom_layers.SparseCategoricalCrossentropy(label_smoothing=bad)


def test_loss_refuses_ignore_class():
    with pytest.raises(ValueError, match="ignore_class"):
        custom_layers.SparseCategoricalCrossentropy(ignore_class=0)


def _tf_generated_gradients(layers, loss_fn):
    return tf_generated_gradients(models.build_convnet(layers=layers), loss_fn, [2, 28, 28, 1])


def test_reference_training_step_gradients_are_hand_written_except_reshapes():
    generated = _tf_generated_gradients("custom", custom_layers.SparseCategoricalCrossentropy())
    # Only the Flatten's gradient (a reshape back) is TensorFlow's.
    assert set(generated) == {"flatten"}, generated
    assert generated["flatten"] <= {"Reshape", "Shape", "Const"}, generated
    # The same walk over stock layers and loss finds TensorFlow's gradient kernels.
    stock = _tf_generated_gradients("keras", keras.losses.SparseCategoricalCrossentropy())
    types = set().union(*stock.values())
    assert {"Conv2DBackpropFilter", "Conv2DBackpropInput", "MaxPoolGrad", "BiasAddGrad"} <= types
    assert {"conv", "pool", "fc", "logits"} <= set(stock), stock  # digits stripped
