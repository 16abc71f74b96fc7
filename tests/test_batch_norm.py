"""BatchNormalization: NumPy loops == vectorised == TF op == stock autodiff; the layer as a drop-in."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers.ops import batch_normalization as norm
from custom_layers.gradcheck import CURVED_NUMERIC_BOUND, numeric_gradient, rel_error, rounding_tolerance
from tests.test_layers import gradient_op_types

CASES = [((4, 3, 5, 3), -1), ((4, 3, 5, 3), 1), ((6, 4), -1), ((2, 3, 4, 5, 2), -1)]
# What TensorFlow's autodiff of batch norm generates: the fused kernels' gradients,
# or (for Keras's unfused tf.nn.batch_normalization) the gradient of its rsqrt.
FORBIDDEN = {"FusedBatchNormGrad", "FusedBatchNormGradV2", "FusedBatchNormGradV3",
             "_MklFusedBatchNormGradV3", "RsqrtGrad"}


def _problem(shape, axis, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[axis]
    x = rng.normal(size=shape) * 2.0 + 1.0
    return x, rng.normal(size=c), rng.normal(size=c), rng.normal(size=c), rng.uniform(0.5, 2, c), rng


@pytest.mark.parametrize("shape,axis", CASES)
@pytest.mark.parametrize("training", [True, False])
def test_loops_equal_vectorised_and_numeric(shape, axis, training):
    x, gamma, beta, mm, mv, rng = _problem(shape, axis)
    out, cache = norm.batch_norm_forward(x, gamma, beta, axis, 1e-3, training, mm, mv)
    mean, var = cache.mean, cache.var
    out_n, cache_n = norm.batch_norm_forward_naive(x, gamma, beta, axis, 1e-3, training, mm, mv)
    mean_n, var_n = cache_n.mean, cache_n.var
    np.testing.assert_allclose(out, out_n, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mean, mean_n, rtol=1e-12, atol=1e-12)
    dout = rng.normal(size=out.shape)
    grads = norm.batch_norm_backward(dout, cache)
    for g, g_n in zip(grads, norm.batch_norm_backward_naive(dout, cache_n)):
        np.testing.assert_allclose(g, g_n, rtol=1e-10, atol=1e-12)
    forward = lambda: norm.batch_norm_forward(x, gamma, beta, axis, 1e-3, training, mm, mv)[0]  # noqa: E731
    for value, grad in zip((x, gamma, beta), grads):
        assert rel_error(grad, numeric_gradient(forward, value, dout, h=1e-4)) < CURVED_NUMERIC_BOUND


def _stock_gradients(x, gamma, beta, mm, mv, axis, training, dout, mask=None):
    layer = keras.layers.BatchNormalization(axis=axis, epsilon=1e-3, dtype="float64")
    layer.build(x.shape)
    layer.set_weights([gamma, beta, mm, mv])
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, training=training, mask=mask)
    return y.numpy(), [g.numpy() for g in tape.gradient(y, [xt, layer.gamma, layer.beta],
                                                        output_gradients=tf.constant(dout))]


@pytest.mark.parametrize("shape,axis", CASES)
@pytest.mark.parametrize("training", [True, False])
def test_tf_op_matches_numpy_and_stock_autodiff(shape, axis, training):
    x, gamma, beta, mm, mv, rng = _problem(shape, axis, seed=1)
    out, cache = norm.batch_norm_forward(x, gamma, beta, axis, 1e-3, training, mm, mv)
    dout = rng.normal(size=out.shape)
    tensors = [tf.constant(v) for v in (x, gamma, beta)]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        if training:
            y = norm.batch_norm_train(*tensors, axis, 1e-3)[0]
        else:
            y = norm.batch_norm_inference(*tensors, tf.constant(mm), tf.constant(mv), axis, 1e-3)
    ours = [g.numpy() for g in tape.gradient(y, tensors, output_gradients=tf.constant(dout))]
    stock_y, stock = _stock_gradients(x, gamma, beta, mm, mv, axis, training, dout)
    tolerance = rounding_tolerance(x)
    assert rel_error(y.numpy(), stock_y) <= tolerance
    for o, s, r in zip(ours, stock, norm.batch_norm_backward(dout, cache)):
        assert rel_error(o, s) <= tolerance
        assert rel_error(o, r) <= tolerance


def test_masked_statistics_match_stock():
    x, gamma, beta, mm, mv, rng = _problem((3, 5, 4), -1, seed=2)
    mask = tf.constant(rng.uniform(size=(3, 5)) > 0.4)
    dout = rng.normal(size=x.shape)
    layer = custom_layers.BatchNormalization(epsilon=1e-3, dtype="float64")
    layer.build(x.shape)
    layer.set_weights([gamma, beta, mm, mv])
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, training=True, mask=mask)
    ours = tape.gradient(y, [xt, layer.gamma, layer.beta], output_gradients=tf.constant(dout))
    stock_y, stock = _stock_gradients(x, gamma, beta, mm, mv, -1, True, dout, mask=mask)
    assert rel_error(y.numpy(), stock_y) <= rounding_tolerance(x)
    for o, s in zip(ours, stock):
        assert rel_error(o.numpy(), s) <= rounding_tolerance(x)


@pytest.mark.parametrize("kwargs", [{}, {"axis": 1, "momentum": 0.9, "center": False},
                                    {"scale": False, "epsilon": 1e-5}])
def test_layer_is_a_drop_in_for_stock(kwargs):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(8, 4, 5, 3)) * 3 + 2, tf.float32)
    ours, stock = custom_layers.BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    ours.build(x.shape)
    stock.build(x.shape)
    assert [w.name for w in ours.weights] == [w.name for w in stock.weights]
    stock.set_weights([rng.normal(size=w.shape).astype(np.float32) + (w.name == "moving_variance") * 2
                       for w in stock.weights])
    ours.set_weights(stock.get_weights())
    for training in (True, False):
        np.testing.assert_allclose(ours(x, training=training), stock(x, training=training),
                                   rtol=1e-5, atol=1e-5)
    # Two training calls above updated the moving statistics the same way.
    for a, b in zip(ours.get_weights(), stock.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    stock.set_weights(ours.get_weights())
    config = ours.get_config()
    assert config == {**stock.get_config(), "name": config["name"]}
    rebuilt = custom_layers.BatchNormalization.from_config(config)
    assert rebuilt.get_config() == config


def test_renorm_matches_stock_in_output_gradients_and_statistics():
    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(size=(16, 5)) * 2 + 1, tf.float64)
    kwargs = dict(renorm=True, renorm_clipping={"rmax": 1.5, "rmin": 0.7, "dmax": 0.5},
                  renorm_momentum=0.8, dtype="float64")
    layers = [custom_layers.BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)]
    for layer in layers:
        layer.build(x.shape)
    start = [w + rng.uniform(0.1, 0.5, size=w.shape) for w in layers[1].get_weights()]
    for layer in layers:
        layer.set_weights(start)
    results = []
    for layer in layers:
        for _ in range(2):  # the second call sees updated renorm statistics
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
            grads = tape.gradient(y, [x, layer.gamma, layer.beta], output_gradients=tf.sin(y))
        results.append((y.numpy(), [g.numpy() for g in grads], layer.get_weights()))
    (y0, g0, w0), (y1, g1, w1) = results
    np.testing.assert_allclose(y0, y1, rtol=1e-12, atol=1e-12)
    for a, b in zip(g0 + w0, g1 + w1):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_unsupported_options_raise_instead_of_stock_maths():
    with pytest.raises(ValueError, match="synchronized=True"):
        custom_layers.BatchNormalization(synchronized=True)


def test_mixed_precision_keeps_float32_statistics():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = custom_layers.BatchNormalization()
        x = tf.constant(np.random.default_rng(4).normal(size=(16, 6)) * 300, tf.float16)
        y = layer(x, training=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert y.dtype == tf.float16
    assert layer.moving_mean.dtype == tf.float32 and layer.gamma.dtype == tf.float32
    assert np.all(np.isfinite(layer.moving_variance.numpy()))


def _bn_model(batch_norm):
    inputs = keras.Input((8, 8, 3))
    x = custom_layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.Flatten()(batch_norm()(x))
    return keras.Model(inputs, custom_layers.Dense(2, activation="softmax")(x))


def test_training_graph_has_no_autodiff_batch_norm_gradient_and_saves(tmp_path):
    model = _bn_model(custom_layers.BatchNormalization)
    x, y = tf.zeros([2, 8, 8, 3]), tf.zeros([2], tf.int32)
    assert not gradient_op_types(model, x, y) & FORBIDDEN
    # The check can fail: stock batch norm's gradient is TensorFlow's.
    assert gradient_op_types(_bn_model(keras.layers.BatchNormalization), x, y) & FORBIDDEN
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[2], custom_layers.BatchNormalization)
    np.testing.assert_allclose(loaded.predict(np.ones((1, 8, 8, 3)), verbose=0),
                               model.predict(np.ones((1, 8, 8, 3)), verbose=0), rtol=1e-6)


def test_fit_trains_a_batch_norm_network():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    model = keras.Sequential([keras.Input((6,)), custom_layers.Dense(8, activation="relu"),
                              custom_layers.BatchNormalization(),
                              custom_layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    losses = model.fit(x, y, epochs=15, batch_size=16, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0]
