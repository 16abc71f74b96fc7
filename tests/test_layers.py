"""The Keras layers: drop-in conventions, serialization, training, no TF backprop kernels."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_layers
import models
from tests.conftest import skip_unless_convolutions_run_in

FORBIDDEN_OPS = {
    "Conv2DBackpropInput", "Conv2DBackpropInputV2", "Conv2DBackpropFilter",
    "Conv2DBackpropFilterV2", "MaxPoolGrad", "MaxPoolGradV2", "MaxPoolGradGrad",
    "MaxPoolGradGradV2", "MaxPoolGradWithArgmax", "ReluGrad", "BiasAddGrad",
    "Conv2DTranspose", "_MklConv2DBackpropInput", "_MklConv2DBackpropFilter",
    "_MklMaxPoolGrad", "_MklReluGrad",
}

STOCK_PAIRS = [
    (custom_layers.Conv2D, keras.layers.Conv2D,
     dict(filters=4, kernel_size=3, strides=2, padding="same", activation="relu"), (2, 9, 7, 3)),
    (custom_layers.Conv2D, keras.layers.Conv2D,
     dict(filters=2, kernel_size=(1, 3), use_bias=False, activation="tanh"), (1, 5, 6, 2)),
    (custom_layers.MaxPooling2D, keras.layers.MaxPooling2D,
     dict(pool_size=3, strides=2, padding="same"), (2, 7, 7, 3)),
    (custom_layers.MaxPooling2D, keras.layers.MaxPooling2D,
     dict(pool_size=2, data_format="channels_first"), (2, 3, 6, 8)),
    (custom_layers.Dense, keras.layers.Dense, dict(units=5, activation="relu"), (3, 4, 6)),
    (custom_layers.Dense, keras.layers.Dense, dict(units=2, use_bias=False), (3, 6)),
    (custom_layers.Conv2D, keras.layers.Conv2D,
     dict(filters=3, kernel_size=2, activation="gelu"), (2, 5, 5, 2)),
    (custom_layers.Dense, keras.layers.Dense, dict(units=3, activation="gelu"), (3, 6)),
    (custom_layers.Activation, keras.layers.Activation, dict(activation="gelu"), (2, 3, 4)),
    (custom_layers.Activation, keras.layers.Activation, dict(activation="softmax"), (2, 5)),
    (custom_layers.Rescaling, keras.layers.Rescaling, dict(scale=[0.5, 2.0], offset=1.0), (2, 3, 2)),
]


@pytest.mark.parametrize("custom_cls,stock_cls,kwargs,shape", STOCK_PAIRS)
def test_weights_interchange_with_stock_layers_both_ways(custom_cls, stock_cls, kwargs, shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    custom, stock = custom_cls(**kwargs), stock_cls(**kwargs)
    custom(x), stock(x)
    assert [w.shape for w in custom.get_weights()] == [w.shape for w in stock.get_weights()]
    custom.set_weights(stock.get_weights())
    np.testing.assert_allclose(custom(x), stock(x), rtol=1e-5, atol=1e-5)
    stock.set_weights([w * 2 for w in custom.get_weights()])
    custom.set_weights(stock.get_weights())
    np.testing.assert_allclose(custom(x), stock(x), rtol=1e-5, atol=1e-5)
    assert custom.compute_output_shape(shape) == tuple(stock.compute_output_shape(shape))

    xt = tf.constant(x)
    grads = []
    for layer in (custom, stock):
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(tf.sin(layer(xt)))
        grads.append(tape.gradient(loss, [xt] + layer.trainable_weights))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("custom_cls,stock_cls,kwargs,shape", STOCK_PAIRS)
def test_config_round_trip(custom_cls, stock_cls, kwargs, shape):
    has_impl = custom_cls is not custom_layers.Rescaling  # no NumPy-backed form to choose
    layer = custom_cls(**kwargs, **({"impl": "numpy"} if has_impl else {}), name="probe")
    clone = custom_cls.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    if has_impl:
        assert clone.impl == "numpy" and not clone.supports_jit


def test_keras_file_round_trip_needs_no_custom_objects(tmp_path):
    model = models.build_convnet(input_shape=(12, 12, 1), num_classes=3)
    x = np.random.default_rng(1).uniform(size=(4, 12, 12, 1)).astype(np.float32)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("conv1"), custom_layers.Conv2D)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_alias_and_exports():
    assert custom_layers.MaxPool2D is custom_layers.MaxPooling2D
    assert keras.saving.get_registered_name(custom_layers.Conv2D) == "custom_layers>Conv2D"


@pytest.mark.parametrize("make,message", [
    (lambda: custom_layers.Conv2D(4, 3, groups=3), "groups"),
    (lambda: custom_layers.Conv2D(4, 3, strides=2, dilation_rate=2), "dilation_rate"),
    (lambda: custom_layers.Conv2D(4, 3, data_format="channels_middle"), "data_format"),
    (lambda: custom_layers.Conv2D(4, 3, lora_rank=2), "lora_rank"),
    (lambda: custom_layers.Dense(4, lora_rank=2), "lora_rank"),
    (lambda: custom_layers.Dense(4, quantization_config={"mode": "int8"}), "quantization_config"),
    # A quantized policy builds an int8 kernel, which the ops would read as weights.
    (lambda: custom_layers.Dense(4, dtype="int8_from_float32"), "int8_from_float32"),
    (lambda: custom_layers.EinsumDense("ab,bc->ac", 4, dtype="int8_from_float32"),
     "no hand-written quantized backward"),
    (lambda: custom_layers.EinsumDense("ab,bc->ac", 4, lora_rank=2), "lora_rank"),
    (lambda: custom_layers.Embedding(5, 3, dtype="int8_from_mixed_bfloat16"), "int8"),
    (lambda: custom_layers.Conv2D(0, 3), "filters"),
    (lambda: custom_layers.Conv2D(4, -1), "kernel_size"),
    (lambda: custom_layers.Conv2D(4, 3, padding="causal"), "padding"),
    (lambda: custom_layers.MaxPooling2D((2, 2, 2)), "pool_size"),
    (lambda: custom_layers.Dense(-3), "units"),
    (lambda: custom_layers.Dense(3, impl="cuda"), "impl"),
])
def test_unsupported_arguments_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_inputs_name_the_layer_and_shapes():
    layer = custom_layers.Conv2D(4, 3, name="my_conv")
    with pytest.raises(ValueError, match="my_conv"):
        layer(tf.zeros([2, 8, 8]))
    layer(tf.zeros([1, 8, 8, 3]))
    with pytest.raises(ValueError, match=r"my_conv[\s\S]*3[\s\S]*\(1, 8, 8, 2\)"):
        layer(tf.zeros([1, 8, 8, 2]))
    dense = custom_layers.Dense(2, name="my_dense")
    dense(tf.zeros([1, 4]))
    with pytest.raises(ValueError, match="my_dense"):
        dense(tf.zeros([1, 5]))


EVERY_LAYER = [
    (custom_layers.Conv2D, dict(filters=2, kernel_size=3, padding="same"), (1, 5, 6, 2)),
    (custom_layers.DepthwiseConv2D, dict(kernel_size=3, depth_multiplier=2), (1, 5, 6, 2)),
    (custom_layers.Dense, dict(units=3), (2, 4)),
    (custom_layers.MaxPooling2D, dict(pool_size=2), (1, 4, 6, 2)),
    (custom_layers.AveragePooling2D, dict(pool_size=2, data_format="channels_first"), (1, 2, 4, 6)),
    (custom_layers.GlobalAveragePooling2D, {}, (2, 3, 4, 2)),
    (custom_layers.GlobalMaxPooling2D, dict(keepdims=True), (2, 3, 4, 2)),
    (custom_layers.BatchNormalization, {}, (4, 3)),
    (custom_layers.Dropout, dict(rate=0.5), (2, 6)),
    (custom_layers.ReLU, {}, (2, 6)),
]


@pytest.mark.parametrize("custom_cls,kwargs,shape", EVERY_LAYER)
def test_integer_inputs_give_the_float_result_not_zeros(custom_cls, kwargs, shape):
    values = np.random.default_rng(1).integers(-100, 255, size=shape)
    layer = custom_cls(**kwargs)
    expected = layer(tf.constant(values, tf.float32)).numpy()
    for dtype in (tf.int32, tf.uint8, tf.int64):
        result = layer(tf.constant(values.clip(0) if dtype == tf.uint8 else values, dtype))
        assert result.dtype == tf.float32
        if dtype != tf.uint8:
            np.testing.assert_allclose(result.numpy(), expected, rtol=1e-6)
    assert np.abs(expected).max() > 0
    with pytest.raises(ValueError, match=r"takes real-valued inputs.*complex64"):
        layer(tf.constant(values, tf.complex64))


def test_integer_mean_is_not_truncated():
    x = tf.constant(np.array([1, 2, 2, 2]).reshape(1, 2, 2, 1), tf.int32)
    for layer in (custom_layers.GlobalAveragePooling2D(), keras.layers.GlobalAveragePooling2D()):
        np.testing.assert_allclose(layer(x).numpy(), [[1.75]])
    np.testing.assert_allclose(custom_layers.AveragePooling2D(2)(x).numpy().ravel(), [1.75])


@pytest.mark.parametrize("module", [
    "conv2d", "depthwise_conv2d", "dense", "max_pooling2d", "average_pooling2d",
    "global_average_pooling2d", "global_max_pooling2d", "batch_normalization", "dropout", "relu",
    "activation", "rescaling", "zero_pad_shortcut"])
def test_every_layer_has_the_docstring_skeleton_and_its_example_runs(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"custom_layers.layers.{module}")
    classes = {v for v in vars(mod).values()
               if isinstance(v, type) and v.__module__ == mod.__name__}  # aliases count once
    assert len(classes) == 1
    doc = classes.pop().__doc__
    for part in ("Args:", "Input shape:", "Output shape:", "Example:", ">>> "):
        assert part in doc, (module, part)
    globs = {"tf": tf, "keras": keras, **vars(mod)}
    failures, tried = doctest.testmod(mod, globs=globs, optionflags=doctest.NORMALIZE_WHITESPACE,
                                      verbose=False, report=True)[:2]
    assert tried >= 1 and failures == 0


class SubclassedNet(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = custom_layers.Conv2D(4, 3, padding="same", activation="relu")
        self.pool = custom_layers.MaxPooling2D()
        self.flat = keras.layers.Flatten()
        self.out = custom_layers.Dense(3, activation="softmax")

    def call(self, x):
        return self.out(self.flat(self.pool(self.conv(x))))


def _toy_data(n=96, size=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    images = rng.normal(scale=0.3, size=(n, size, size, 1)).astype(np.float32)
    for c in range(classes):  # class c lights up row band c: learnable quickly
        images[labels == c, 2 * c : 2 * c + 2, :, 0] += 1.0
    return images, labels


@pytest.mark.parametrize("style", ["sequential", "functional", "subclassed"])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_lowers_the_loss(style, jit_compile):
    keras.utils.set_random_seed(0)
    if style == "sequential":
        model = keras.Sequential([
            keras.Input((8, 8, 1)),
            custom_layers.Conv2D(4, 3, padding="same", activation="relu"),
            custom_layers.MaxPool2D(),
            keras.layers.Flatten(),
            custom_layers.Dense(3, activation="softmax"),
        ])
    elif style == "functional":
        model = models.build_three_layer(input_shape=(8, 8, 1), num_classes=3)
    else:
        model = SubclassedNet()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  jit_compile=jit_compile)
    images, labels = _toy_data()
    before = model.evaluate(images, labels, verbose=0)
    model.fit(images, labels, batch_size=16, epochs=3, verbose=0)
    after = model.evaluate(images, labels, verbose=0)
    assert after < 0.7 * before


def test_numpy_impl_trains_like_tf_impl():
    images, labels = _toy_data(n=32)
    losses = {}
    for impl in ("tf", "numpy"):
        keras.utils.set_random_seed(3)
        model = models.build_three_layer(input_shape=(8, 8, 1), num_classes=3, impl=impl)
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        history = model.fit(images, labels, batch_size=8, epochs=2, verbose=0, shuffle=False)
        losses[impl] = history.history["loss"]
    np.testing.assert_allclose(losses["numpy"], losses["tf"], rtol=1e-3)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_fit_keeps_float32_weights(policy):
    skip_unless_convolutions_run_in(policy.split("_")[1])
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = models.build_three_layer(input_shape=(8, 8, 1), num_classes=3)
        model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
        images, labels = _toy_data()
        history = model.fit(images, labels, batch_size=16, epochs=3, verbose=0)
        assert model.get_layer("conv1").kernel.dtype == "float32"
        assert model.get_layer("conv1").compute_dtype == policy.split("_")[1]
        assert history.history["loss"][-1] < history.history["loss"][0]
        assert all(np.isfinite(w).all() for w in model.get_weights())
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _all_op_types(graph_def):
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
    return types


def gradient_op_types(model, x, y):
    """Op types (nested functions included) in the graph of the loss gradient of ``model``."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def grads(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    return _all_op_types(grads.get_concrete_function(x, y).graph.as_graph_def())


def test_gradient_graph_has_no_tensorflow_backprop_kernels():
    model = models.build_convnet(input_shape=(28, 28, 1))
    optimizer = keras.optimizers.Adam()
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    x = tf.zeros([2, 28, 28, 1])
    y = tf.zeros([2], tf.int32)
    graph_def = train_step.get_concrete_function(x, y).graph.as_graph_def()
    types = _all_op_types(graph_def)
    assert "Conv2D" in types and "MatMul" in types  # the graph is the real one
    assert not types & FORBIDDEN_OPS

    # The check can fail: the same step with stock layers uses the kernels.
    stock = models.build_convnet(input_shape=(28, 28, 1), layers="keras")

    @tf.function
    def stock_grads(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, stock(x, training=True))
        return tape.gradient(loss, stock.trainable_variables)

    stock_types = _all_op_types(stock_grads.get_concrete_function(x, y).graph.as_graph_def())
    assert {"Conv2DBackpropFilter", "MaxPoolGrad"} <= stock_types


ZERO_BATCH_LAYERS = [
    (custom_layers.Conv2D, keras.layers.Conv2D, dict(filters=4, kernel_size=3), 16),
    (custom_layers.Conv2D, keras.layers.Conv2D, dict(filters=4, kernel_size=3, strides=2), 3),
    (custom_layers.DepthwiseConv2D, keras.layers.DepthwiseConv2D, dict(kernel_size=3), 4),
    (custom_layers.Dense, keras.layers.Dense, dict(units=3), 4),
    (custom_layers.MaxPooling2D, keras.layers.MaxPooling2D, {}, 4),
    (custom_layers.AveragePooling2D, keras.layers.AveragePooling2D, dict(pool_size=2), 4),
    (custom_layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling2D, {}, 4),
]


@pytest.mark.parametrize("custom_cls,stock_cls,kwargs,channels", ZERO_BATCH_LAYERS)
@pytest.mark.parametrize("dynamic_batch", [False, True])
def test_an_empty_batch_under_xla_gives_empty_outputs_and_zero_gradients_as_stock(
        custom_cls, stock_cls, kwargs, channels, dynamic_batch):
    # Under XLA only: without it, TensorFlow's own oneDNN convolution returns an
    # input-shaped tensor for an empty batch whose size was unknown when traced.
    signature = [tf.TensorSpec([None, 8, 8, channels])] if dynamic_batch else None
    results = []
    for cls in (custom_cls, stock_cls):
        layer = cls(**kwargs)
        layer(tf.zeros([1, 8, 8, channels]))

        @tf.function(jit_compile=True, input_signature=signature)
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x))
            return layer(x), tape.gradient(loss, [x] + layer.trainable_weights)

        results.append(step(tf.zeros([0, 8, 8, channels])))
    (y, grads), (y_stock, grads_stock) = results
    assert y.shape == y_stock.shape
    for g, g_stock in zip(grads, grads_stock):
        assert g.shape == g_stock.shape and not np.any(g.numpy())


@pytest.mark.parametrize("make", [lambda: custom_layers.Conv2D(2, 3),
                                  lambda: custom_layers.MaxPooling2D(),
                                  lambda: custom_layers.AveragePooling2D(2),
                                  lambda: custom_layers.DepthwiseConv2D(3)])
def test_unknown_height_and_width_is_a_clear_error_naming_the_layer(make):
    layer = make()

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3])])
    def call(x):
        return layer(x)

    with pytest.raises(ValueError, match=rf"{type(layer).__name__} '{layer.name}' needs the "
                                         r"input's height and width known"):
        call.get_concrete_function()
