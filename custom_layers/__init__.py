"""Keras layers whose backward passes are written by hand.

``from custom_layers import Conv2D, MaxPooling2D, Dense, BatchNormalization,
AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, DepthwiseConv2D,
Dropout, ReLU`` gives drop-in replacements for the ``keras.layers`` namesakes. Importing the package
registers them as Keras serializables, so ``keras.models.load_model`` reads
models that use them without ``custom_objects``.

Submodules: ``reference`` (the NumPy forward/backward pairs), ``ops`` (the
TensorFlow ops with ``tf.custom_gradient``), ``norm`` (batch normalization:
NumPy reference and TF op), ``avg_pool`` (average and global pooling),
``depthwise`` (depthwise convolution), ``inverted_dropout``, ``losses``
(sparse softmax cross-entropy and its Keras loss), ``gradcheck``
(``python -m custom_layers.gradcheck``).
"""

from custom_layers import avg_pool, depthwise, inverted_dropout, losses, norm, ops, reference
from custom_layers.average_pooling2d import AveragePooling2D, AvgPool2D
from custom_layers.batch_normalization import BatchNormalization
from custom_layers.conv2d import Conv2D
from custom_layers.dense import Dense
from custom_layers.depthwise_conv2d import DepthwiseConv2D
from custom_layers.dropout import Dropout
from custom_layers.global_average_pooling2d import GlobalAveragePooling2D
from custom_layers.global_max_pooling2d import GlobalMaxPooling2D
from custom_layers.losses import SparseCategoricalCrossentropy
from custom_layers.max_pooling2d import MaxPool2D, MaxPooling2D
from custom_layers.relu import ReLU
from custom_layers.swap import swap_layers

__all__ = ["AveragePooling2D", "AvgPool2D", "BatchNormalization", "Conv2D", "Dense",
           "DepthwiseConv2D", "Dropout", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
           "MaxPool2D", "MaxPooling2D", "ReLU", "SparseCategoricalCrossentropy",
           "avg_pool", "depthwise", "inverted_dropout", "losses", "norm", "ops", "reference", "swap_layers"]
