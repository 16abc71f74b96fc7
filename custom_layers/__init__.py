"""Keras layers whose backward passes are written by hand.

``from custom_layers import Conv2D, MaxPooling2D, Dense, BatchNormalization,
AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, DepthwiseConv2D,
Dropout, ReLU`` gives drop-in replacements for the ``keras.layers`` namesakes. Importing the package
registers them as Keras serializables, so ``keras.models.load_model`` reads
models that use them without ``custom_objects``.

Op families, each a module holding its NumPy reference (loops and
vectorised forward/backward pairs) beside its ``tf.custom_gradient`` op:
``conv`` (+ ``conv_kernel_grad``), ``depthwise``, ``max_pool``, ``avg_pool``
(average and global pooling), ``affine`` (dense), ``norm`` (batch
normalization), ``inverted_dropout``, ``activations`` (relu, softmax),
``losses`` (sparse cross-entropy and its Keras loss). ``ops`` and
``reference`` gather the TF ops and the NumPy pairs in one namespace each;
``shapes`` holds the argument and output-size rules they share, ``custom_op``
the wrappers. ``gradcheck``: ``python -m custom_layers.gradcheck``.
"""

from custom_layers import (
    activations,
    affine,
    avg_pool,
    conv,
    depthwise,
    inverted_dropout,
    losses,
    max_pool,
    norm,
    ops,
    reference,
)
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
           "activations", "affine", "avg_pool", "conv", "depthwise", "inverted_dropout", "losses",
           "max_pool", "norm", "ops", "reference", "swap_layers"]
