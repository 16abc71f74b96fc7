"""Keras layers whose backward passes are written by hand.

``from custom_layers import Conv2D, MaxPooling2D, Dense, BatchNormalization`` gives drop-in
replacements for the ``keras.layers`` namesakes. Importing the package
registers them as Keras serializables, so ``keras.models.load_model`` reads
models that use them without ``custom_objects``.

Submodules: ``reference`` (the NumPy forward/backward pairs), ``ops`` (the
TensorFlow ops with ``tf.custom_gradient``), ``norm`` (batch normalization:
NumPy reference and TF op), ``gradcheck`` (``python -m
custom_layers.gradcheck``).
"""

from custom_layers import norm, ops, reference
from custom_layers.batch_normalization import BatchNormalization
from custom_layers.conv2d import Conv2D
from custom_layers.dense import Dense
from custom_layers.max_pooling2d import MaxPool2D, MaxPooling2D

__all__ = ["BatchNormalization", "Conv2D", "Dense", "MaxPool2D", "MaxPooling2D", "norm", "ops",
           "reference"]
