"""The training recipe's pieces: per-variable SGD rules, the triangle schedule, lookahead
averaging, test-time augmentation, and the epoch-exact augmented stream."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from datasets import pipeline
from datasets.splits import Split
from training import config as train_config
from training import tta
from training.averaging import LookaheadAveraging
from training.schedules import Triangle
from training.variable_rules import RuleSGD, VariableRule


def _model():
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, name="dense")(inputs)
    outputs = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, outputs)


def _step(optimizer, model, grads):
    optimizer.apply_gradients(zip(grads, model.trainable_variables))


def test_rule_sgd_without_rules_is_keras_sgd():
    a, b = _model(), _model()
    b.set_weights(a.get_weights())
    ours = RuleSGD(0.1, momentum=0.85, nesterov=True)
    stock = keras.optimizers.SGD(0.1, momentum=0.85, nesterov=True)
    rng = np.random.default_rng(0)
    for _ in range(3):
        grads = [tf.constant(rng.normal(size=v.shape), tf.float32) for v in a.trainable_variables]
        _step(ours, a, grads)
        _step(stock, b, grads)
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-6, atol=1e-7)


def test_rule_sgd_multiplies_penalises_and_freezes():
    model = _model()
    rules = [VariableRule("dense/bias", until_step=2), VariableRule("/beta", 64.0, 1e-3 / 64)]
    optimizer = RuleSGD(0.1, rules, VariableRule("", l2=1e-3))  # no momentum: one step is exact
    before = {v.path: v.numpy() for v in model.trainable_variables}
    grads = [tf.ones_like(v) for v in model.trainable_variables]
    _step(optimizer, model, grads)
    after = {v.path: v.numpy() for v in model.trainable_variables}
    kernel = before["dense/kernel"]
    np.testing.assert_allclose(after["dense/kernel"], kernel - 0.1 * (1 + 1e-3 * kernel), rtol=1e-6)
    np.testing.assert_allclose(after["bn/beta"], before["bn/beta"] - 6.4 * (1 + 0.0), rtol=1e-6)
    np.testing.assert_allclose(after["dense/bias"], before["dense/bias"] - 0.1, rtol=1e-6)
    # Step 3 on: the bias is frozen, even with momentum carried.
    momentum = RuleSGD(0.1, rules, momentum=0.9, nesterov=True)
    for _ in range(5):
        _step(momentum, model, grads)
        if int(momentum.iterations.numpy()) == 2:
            frozen = model.get_layer("dense").bias.numpy()
    np.testing.assert_array_equal(model.get_layer("dense").bias.numpy(), frozen)


def test_rule_sgd_never_moves_a_variable_frozen_from_the_start():
    model = _model()
    optimizer = RuleSGD(0.1, [VariableRule("dense/kernel", until_step=0)], momentum=0.9)
    kernel = model.get_layer("dense").kernel.numpy()
    _step(optimizer, model, [tf.ones_like(v) for v in model.trainable_variables])
    np.testing.assert_array_equal(model.get_layer("dense").kernel.numpy(), kernel)


def test_triangle_schedule_shape():
    schedule = Triangle(2.0, 100)
    values = np.array([float(schedule(step)) for step in (0, 23, 100, 150)])
    np.testing.assert_allclose(values, [0.4, 2.0, 0.14, 0.14], rtol=1e-6)
    assert float(schedule(11)) == pytest.approx(0.4 + 1.6 * 11 / 23, rel=1e-6)
    assert Triangle.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_lookahead_averages_with_the_rising_decay_and_ends_at_the_average():
    model = _model()
    averaging = LookaheadAveraging(model, every=2, start_step=2, total_steps=7)
    model.compile(keras.optimizers.SGD(0.5), "mse")
    kernel = model.get_layer("dense").kernel
    seen = {}

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen[int(self.model.optimizer.iterations.numpy()) + 1] = None

        def on_train_batch_end(self, batch, logs=None):
            seen[int(self.model.optimizer.iterations.numpy())] = kernel.numpy().copy()

    raw = {}

    class Raw(keras.callbacks.Callback):  # the weights the step produced, before averaging
        def on_train_batch_end(self, batch, logs=None):
            raw[int(self.model.optimizer.iterations.numpy())] = kernel.numpy().copy()

    x, y = np.random.randn(4, 3).astype("float32"), np.random.randn(4, 4).astype("float32")
    model.fit(x, y, batch_size=4, epochs=7, verbose=0, callbacks=[Raw(), averaging, Record()])
    # Step 2 starts the average at the weights; step 4 blends with decay ρ(4).
    np.testing.assert_allclose(seen[2], raw[2])
    rho = 0.95 ** 5 * (4 / 7) ** 3
    np.testing.assert_allclose(seen[4], rho * seen[2] + (1 - rho) * raw[4], rtol=1e-5)
    # Between blends the network trains on from the last one.
    np.testing.assert_array_equal(seen[5], raw[5])
    assert not np.allclose(seen[5], seen[4])
    # Step 7, the last, is no blend step: the network is put back to the average of step 6.
    rho6 = 0.95 ** 5 * (6 / 7) ** 3
    np.testing.assert_allclose(seen[6], rho6 * seen[4] + (1 - rho6) * raw[6], rtol=1e-5)
    np.testing.assert_allclose(seen[7], seen[6])
    np.testing.assert_allclose(averaging.averages[0].numpy(), kernel.numpy())
    assert bool(averaging.started.numpy())


def test_tta_of_a_flip_symmetric_model_is_its_plain_prediction():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)  # sees no left or right
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    images = tf.random.normal([5, 8, 8, 3])
    data = tf.data.Dataset.from_tensor_slices(images).batch(2)
    plain, same = tta.predict(model, data, "none")
    np.testing.assert_array_equal(same, plain)
    mirrored, unmirrored = tta.predict(model, data, "mirror")
    np.testing.assert_allclose(mirrored, plain, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(unmirrored, plain, rtol=1e-6, atol=1e-7)


def test_tta_views_are_the_six_weighted_views():
    images = tf.constant(np.arange(2 * 4 * 4).reshape(2, 4, 4, 1).astype(np.float32))
    views = tta.tta_views(images, "mirror_translate")
    assert sorted(w for w, _ in views) == [0.125] * 4 + [0.25] * 2
    padded = np.pad(images.numpy(), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    expected = [images.numpy(), images.numpy()[:, :, ::-1]]
    for shift in (padded[:, :4, :4], padded[:, 2:, 2:]):
        expected += [shift, shift[:, :, ::-1]]
    for (_, got), want in zip(views, expected):
        np.testing.assert_array_equal(got.numpy(), want)
    with pytest.raises(ValueError, match="tta must be one of"):
        tta.tta_views(images, "all")


def _split(n=10):
    images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 1), np.uint8)
    images[:, :, 0] = 255  # a bright left column shows a flip
    return Split(images, np.arange(n, dtype=np.int32))


def test_stream_epochs_are_exact_and_resume_where_they_stopped():
    split = _split()
    stream = pipeline.train_dataset(split, 3, seed=4)
    batches = [y.numpy() for _, y in stream.take(9)]
    for epoch in range(3):  # 10 // 3 = 3 batches an epoch, each example at most once
        seen = np.concatenate(batches[3 * epoch:3 * epoch + 3])
        assert len(set(seen)) == 9
    assert not np.array_equal(batches[0], batches[3])  # a fresh order each epoch
    resumed = [y.numpy() for _, y in pipeline.train_dataset(split, 3, seed=4, start_step=4).take(5)]
    for a, b in zip(batches[4:], resumed):
        np.testing.assert_array_equal(a, b)
    x, _ = next(iter(stream))
    assert x.shape == (3, 4, 4, 1)  # static: the backwards are planned from it


def test_alternating_flips_mirror_each_image_the_other_way_each_epoch():
    split = _split()
    stream = pipeline.train_dataset(split, 5, seed=1, augment=True, flip="alternating",
                                    crop_padding=0)
    flipped = {}
    for step, (x, y) in enumerate(stream.take(6)):
        for image, label in zip(x.numpy(), y.numpy()):
            flipped[(step // 2, int(label))] = image[0, -1, 0] == 1.0  # the bright column on the right
    for label in range(10):
        states = [flipped[(epoch, label)] for epoch in range(3)]
        assert states[0] != states[1] != states[2]
    assert 0 < sum(flipped[(0, label)] for label in range(10)) < 10  # epoch 0: a random half


def test_reflect_crops_are_crops_of_the_reflected_image():
    image = np.arange(5 * 5, dtype=np.float32).reshape(1, 5, 5, 1)
    padded = np.pad(image[0], ((2, 2), (2, 2), (0, 0)), mode="reflect")
    crops = {padded[i:i + 5, j:j + 5].tobytes() for i in range(5) for j in range(5)}
    for seed in range(6):
        out = pipeline.crop_batch(tf.constant(image), tf.constant([seed, 3]), 2, "reflect").numpy()
        assert out[0].tobytes() in crops


def test_flags_and_pipeline_name_the_same_choices():
    assert train_config.FLIPS == pipeline.FLIPS and train_config.PAD_MODES == pipeline.PAD_MODES
    assert train_config.TTA_LEVELS == tta.TTA_LEVELS


def test_rule_sgd_config_round_trip_keeps_the_rules():
    optimizer = RuleSGD(0.5, [VariableRule("/beta", 64.0, 1e-5, None), VariableRule("w/b", until_step=3)],
                        VariableRule("", l2=1e-3), momentum=0.85, nesterov=True)
    clone = RuleSGD.from_config(optimizer.get_config())
    assert clone.rules == optimizer.rules and clone.default == optimizer.default
    assert (clone.momentum, clone.nesterov) == (0.85, True)
