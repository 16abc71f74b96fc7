"""Which gradients of a training step TensorFlow generated (rather than this project's ops)."""

from __future__ import annotations

from typing import Dict, Sequence, Set

import keras
import tensorflow as tf


def tf_generated_gradients(model: keras.Model, loss_fn, x_shape: Sequence[int],
                           num_classes: int = 10) -> Dict[str, Set[str]]:
    """{layer name scope (digits stripped): op types} of the gradient ops TensorFlow
    generated in one training step of ``model``.

    TensorFlow builds a registered gradient inside ``gradient_tape/<forward name
    scope>/``; a ``tf.custom_gradient`` function's ops are built outside it.
    """
    @tf.function
    def grads(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    graph = grads.get_concrete_function(tf.zeros(x_shape), tf.zeros([x_shape[0]], tf.int32)).graph
    generated: Dict[str, Set[str]] = {}
    for op in graph.get_operations():
        if op.name.startswith("gradient_tape/"):
            scope = op.name.split("/")[2] if op.name.count("/") > 2 else op.name
            generated.setdefault(scope.rstrip("_0123456789"), set()).add(op.type)
    return generated
