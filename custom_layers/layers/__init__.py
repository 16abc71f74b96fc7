"""The Keras layers, one file per class, each a subclass of its stock namesake.

``ZeroPadShortcut`` (ResNet's option-A shortcut) has no stock namesake. Each
layer keeps Keras's arguments, checks, weights and config and hands the
maths in ``call`` to an op of ``custom_layers.ops``, whose backward is
written by hand.
"""

from custom_layers.layers.activation import Activation
from custom_layers.layers.add import Add
from custom_layers.layers.average import Average
from custom_layers.layers.average_pooling1d import AveragePooling1D
from custom_layers.layers.average_pooling2d import AveragePooling2D, AvgPool2D
from custom_layers.layers.average_pooling3d import AveragePooling3D, AvgPool3D
from custom_layers.layers.batch_normalization import BatchNormalization
from custom_layers.layers.concatenate import Concatenate
from custom_layers.layers.conv1d import Conv1D
from custom_layers.layers.conv1d_transposed import Conv1DTranspose
from custom_layers.layers.conv2d import Conv2D
from custom_layers.layers.conv2d_transposed import Conv2DTranspose
from custom_layers.layers.conv3d import Conv3D
from custom_layers.layers.conv3d_transposed import Conv3DTranspose
from custom_layers.layers.cropping1d import Cropping1D
from custom_layers.layers.cropping2d import Cropping2D
from custom_layers.layers.cropping3d import Cropping3D
from custom_layers.layers.dense import Dense
from custom_layers.layers.depthwise_conv1d import DepthwiseConv1D
from custom_layers.layers.depthwise_conv2d import DepthwiseConv2D
from custom_layers.layers.dropout import Dropout
from custom_layers.layers.einsum_dense import EinsumDense
from custom_layers.layers.elu import ELU
from custom_layers.layers.embedding import Embedding
from custom_layers.layers.global_average_pooling1d import GlobalAveragePooling1D
from custom_layers.layers.global_average_pooling2d import GlobalAveragePooling2D
from custom_layers.layers.global_average_pooling3d import GlobalAveragePooling3D
from custom_layers.layers.global_max_pooling1d import GlobalMaxPooling1D
from custom_layers.layers.global_max_pooling2d import GlobalMaxPooling2D
from custom_layers.layers.global_max_pooling3d import GlobalMaxPooling3D
from custom_layers.layers.group_normalization import GroupNormalization
from custom_layers.layers.layer_normalization import LayerNormalization
from custom_layers.layers.leaky_relu import LeakyReLU
from custom_layers.layers.max_pooling1d import MaxPooling1D
from custom_layers.layers.max_pooling2d import MaxPool2D, MaxPooling2D
from custom_layers.layers.max_pooling3d import MaxPool3D, MaxPooling3D
from custom_layers.layers.maximum import Maximum
from custom_layers.layers.minimum import Minimum
from custom_layers.layers.multi_head_attention import MultiHeadAttention
from custom_layers.layers.multiply import Multiply
from custom_layers.layers.normalization import Normalization
from custom_layers.layers.prelu import PReLU
from custom_layers.layers.relu import ReLU
from custom_layers.layers.rescaling import Rescaling
from custom_layers.layers.separable_conv1d import SeparableConv1D
from custom_layers.layers.separable_conv2d import SeparableConv2D
from custom_layers.layers.softmax import Softmax
from custom_layers.layers.subtract import Subtract
from custom_layers.layers.up_sampling1d import UpSampling1D
from custom_layers.layers.up_sampling2d import UpSampling2D
from custom_layers.layers.up_sampling3d import UpSampling3D
from custom_layers.layers.zero_pad_shortcut import ZeroPadShortcut
from custom_layers.layers.zero_padding1d import ZeroPadding1D
from custom_layers.layers.zero_padding2d import ZeroPadding2D
from custom_layers.layers.zero_padding3d import ZeroPadding3D

__all__ = ["Activation", "Add", "Average", "AveragePooling1D", "AveragePooling2D",
           "AveragePooling3D", "AvgPool2D", "AvgPool3D", "BatchNormalization", "Concatenate",
           "Conv1D", "Conv1DTranspose", "Conv2D", "Conv2DTranspose", "Conv3D", "Conv3DTranspose",
           "Cropping1D", "Cropping2D", "Cropping3D", "Dense", "DepthwiseConv1D",
           "DepthwiseConv2D", "Dropout", "ELU", "EinsumDense", "Embedding",
           "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
           "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GroupNormalization",
           "LayerNormalization", "LeakyReLU", "MaxPool2D", "MaxPool3D", "MaxPooling1D",
           "MaxPooling2D", "MaxPooling3D", "Maximum", "Minimum", "MultiHeadAttention", "Multiply",
           "Normalization", "PReLU", "ReLU", "Rescaling", "SeparableConv1D", "SeparableConv2D",
           "Softmax", "Subtract", "UpSampling1D", "UpSampling2D", "UpSampling3D",
           "ZeroPadShortcut", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"]
