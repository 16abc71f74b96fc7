"""Keras layers whose backward passes are written by hand.

``from custom_layers import Conv2D, MaxPooling2D, Dense, BatchNormalization,
AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, DepthwiseConv2D,
Dropout, ReLU, LeakyReLU, ELU, PReLU, Softmax, Activation, Rescaling,
SeparableConv2D, LayerNormalization, Add, Subtract, Multiply, Average,
Maximum, Minimum, Concatenate, ZeroPadding1D, ZeroPadding2D, Cropping2D,
UpSampling2D, Conv1D, MaxPooling1D, AveragePooling1D, GlobalAveragePooling1D,
GlobalMaxPooling1D, EinsumDense, MultiHeadAttention, Conv2DTranspose, Cropping1D,
Cropping3D, ZeroPadding3D, UpSampling1D, UpSampling3D, GroupNormalization,
Embedding, DepthwiseConv1D, SeparableConv1D, Normalization, Conv3D, Conv1DTranspose,
Conv3DTranspose, MaxPooling3D, AveragePooling3D, GlobalAveragePooling3D,
GlobalMaxPooling3D`` gives drop-in
replacements for the ``keras.layers`` namesakes (plus ``ZeroPadShortcut``,
ResNet's option-A shortcut).
Importing the package registers them as Keras serializables, so
``keras.models.load_model`` reads models that use them without
``custom_objects``.

Layout:

- ``layers/``: one Keras layer class per file (``layers/conv2d.py`` holds
  ``Conv2D``), each a subclass of its stock namesake.
- ``ops/``: one module per op family (``ops/convolution.py``, ...), each with
  its NumPy reference (loops and vectorised forward/backward pairs) beside
  its ``tf.custom_gradient`` op; ``custom_layers.ops`` gathers the TF ops,
  ``custom_layers.reference`` the NumPy pairs.
- ``losses.py``: ``SparseCategoricalCrossentropy``, the Keras loss.
- ``swap.py``: ``swap_layers``, a model rebuilt with the twins.
- ``gradcheck/``: error measures and tolerances, and the gradient check
  (``python -m custom_layers.gradcheck``).
"""

from custom_layers import ops, reference
from custom_layers.layers import *  # noqa: F401,F403 (every layer twin)
from custom_layers.layers import __all__ as _layer_names
from custom_layers.losses import SparseCategoricalCrossentropy
from custom_layers.swap import swap_layers

__all__ = [*_layer_names, "SparseCategoricalCrossentropy", "ops", "reference", "swap_layers"]
