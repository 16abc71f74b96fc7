"""Conv2D's dilation, groups and channels_first, and Dense's sparse inputs, against stock."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
from custom_layers.gradcheck import rel_error
from tests.test_layers import _all_op_types

TF_GRADIENT_KERNELS = {"Conv2DBackpropInput", "Conv2DBackpropFilter", "Conv2DBackpropInputV2",
                       "Conv2DBackpropFilterV2", "SparseTensorDenseMatMulGrad"}


def _loss(y):
    return tf.reduce_sum(y * tf.reshape(tf.cos(tf.range(tf.size(y), dtype=y.dtype)), tf.shape(y)))


@pytest.mark.parametrize("kwargs", [
    dict(filters=4, kernel_size=3, dilation_rate=2, padding="same"),
    dict(filters=4, kernel_size=(3, 2), dilation_rate=(3, 1), activation="relu"),
    dict(filters=6, kernel_size=3, groups=3, strides=2),
    dict(filters=4, kernel_size=3, padding="same", activation="relu", data_format="channels_first"),
    dict(filters=6, kernel_size=(3, 2), groups=2, dilation_rate=(2, 1), use_bias=False,
         data_format="channels_first"),
    dict(filters=12, kernel_size=3, groups=6, strides=2, activation="relu"),  # depthwise form
    dict(filters=6, kernel_size=7, groups=6, dilation_rate=2, padding="same"),
])
def test_conv2d_variants_match_stock(float64, kwargs):
    """Outputs, dx, dW, db equal the stock layer's (stock runs NHWC: TF's CPU conv has no NCHW)."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 11, 10, 6)))
    channels_first = kwargs.get("data_format") == "channels_first"
    stock = keras.layers.Conv2D(**{k: v for k, v in kwargs.items() if k != "data_format"})
    ours = custom_layers.Conv2D(**kwargs)
    stock.build(x.shape)
    ours.build((2, 6, 11, 10) if channels_first else x.shape)
    stock.set_weights([rng.normal(size=w.shape) for w in stock.weights])
    ours.set_weights(stock.get_weights())
    results = []
    for layer, transpose in ((ours, channels_first), (stock, False)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(tf.transpose(x, [0, 3, 1, 2])) if transpose else layer(x)
            y = tf.transpose(y, [0, 2, 3, 1]) if transpose else y
            loss = _loss(y)
        results.append((y, tape.gradient(loss, [x, *layer.trainable_variables])))
    (y_ours, g_ours), (y_stock, g_stock) = results
    assert rel_error(y_ours, y_stock) <= 1e-13
    for a, b in zip(g_ours, g_stock):
        assert rel_error(a, b) <= 1e-13


def test_dilated_grouped_conv_backward_uses_no_tensorflow_gradient_kernels():
    layer = custom_layers.Conv2D(4, 3, dilation_rate=2, groups=2, padding="same")
    x = tf.zeros([2, 9, 9, 4])
    layer.build(x.shape)

    @tf.function
    def grads(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        return tape.gradient(y, [x, *layer.trainable_variables])

    types = _all_op_types(grads.get_concrete_function(x).graph.as_graph_def())
    assert "Conv2D" in types and not types & TF_GRADIENT_KERNELS, types


def test_dense_on_sparse_inputs_matches_stock_with_sparse_kernel_gradient():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(6, 8)).astype(np.float32) * (rng.random((6, 8)) > 0.7)
    dense[:, 3] = 0  # a column no example uses: its kernel row gets no gradient
    x = tf.sparse.from_dense(dense)
    stock = keras.layers.Dense(5, activation="relu")
    ours = custom_layers.Dense(5, activation="relu")
    stock.build((6, 8))
    ours.build((6, 8))
    ours.set_weights(stock.get_weights())
    grads = []
    for layer in (ours, stock):
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = _loss(y)
        grads.append((y, tape.gradient(loss, layer.trainable_variables)))
    (y_ours, (dw_ours, db_ours)), (y_stock, (dw_stock, db_stock)) = grads
    assert isinstance(dw_ours, tf.IndexedSlices)
    assert 3 not in dw_ours.indices.numpy()
    assert rel_error(y_ours, y_stock) <= 1e-6
    assert rel_error(tf.convert_to_tensor(dw_ours), tf.convert_to_tensor(dw_stock)) <= 1e-6
    assert rel_error(db_ours, db_stock) <= 1e-6


def test_one_group_per_channel_runs_as_one_depthwise_convolution():
    layer = custom_layers.Conv2D(16, 7, groups=8, padding="same")  # 2 filters per group

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        return tape.gradient(y, [x, *layer.trainable_variables])

    graph = step.get_concrete_function(tf.TensorSpec([1, 9, 9, 8])).graph
    kinds = [op.type for op in graph.get_operations() if "Conv" in op.type]
    # The forward and dx one depthwise convolution each, dw one per image and
    # multiplier (1 x 2): 4, not 8 ops per pass.
    assert kinds == ["DepthwiseConv2dNative"] * 4, kinds
