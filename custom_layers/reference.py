"""The NumPy reference of every op family, in one namespace: textbook maths.

Each op comes as a forward/backward pair living in its family's module (next
to the TF op it checks): a ``*_naive`` form written as plain loops
that reads like the textbook (the test oracle), and a vectorised form fast
enough to train with. The elementwise, merging, padding, upsampling and
dropout ops, whose loops would say nothing their one vectorised line does
not, have that form only. Forwards return ``(out, cache)``, backwards the
input gradients.

Shapes use NHWC throughout: N batch, H/W height/width, C input channels,
F filters, KH/KW kernel, PH/PW pool window, HO/WO output height/width, D input
features, M output features. Output sizes follow TensorFlow's padding rule
(``custom_layers.ops.shapes``).
"""

from custom_layers.ops.activations import relu_backward, relu_forward
from custom_layers.ops.activations import gelu_backward, gelu_forward
from custom_layers.ops.activations import relu_general_backward, relu_general_forward
from custom_layers.ops.embedding_lookup import (
    embedding_backward,
    embedding_backward_naive,
    embedding_forward,
    embedding_forward_naive,
)
from custom_layers.ops.gated_linear_unit import glu_backward, glu_forward
from custom_layers.ops.group_normalization import (
    group_norm_backward,
    group_norm_backward_naive,
    group_norm_forward,
    group_norm_forward_naive,
)
from custom_layers.ops.rescaling import rescale_backward, rescale_forward, standardize_forward
from custom_layers.ops.zero_pad_shortcut import (zero_pad_shortcut_backward,
                                                 zero_pad_shortcut_forward)
from custom_layers.ops.merging import pair_backward, pair_forward
from custom_layers.ops.padding import crop_backward, crop_forward, zero_pad_backward, zero_pad_forward
from custom_layers.ops.pointwise import pointwise_backward, pointwise_forward
from custom_layers.ops.parametric_relu import prelu_backward, prelu_forward
from custom_layers.ops.normalized_exponential import (
    log_softmax_backward,
    log_softmax_forward,
    softmax_backward,
    softmax_backward_naive,
    softmax_forward,
    softmax_forward_naive,
)
from custom_layers.ops.affine import (
    affine_backward,
    affine_backward_naive,
    affine_forward,
    affine_forward_naive,
)
from custom_layers.ops.average_pooling import (
    avg_pool2d_backward,
    avg_pool2d_backward_naive,
    avg_pool2d_forward,
    avg_pool2d_forward_naive,
)
from custom_layers.ops.convolution import (
    conv2d_backward,
    conv2d_backward_naive,
    conv2d_forward,
    conv2d_forward_naive,
)
from custom_layers.ops.depthwise_convolution import (
    depthwise_conv2d_backward,
    depthwise_conv2d_backward_naive,
    depthwise_conv2d_forward,
    depthwise_conv2d_forward_naive,
)
from custom_layers.ops.contraction import einsum_backward, einsum_forward
from custom_layers.ops.inverted_dropout import dropout_backward, dropout_forward
from custom_layers.ops.layer_normalization import (
    layer_norm_backward,
    layer_norm_backward_naive,
    layer_norm_forward,
    layer_norm_forward_naive,
)
from custom_layers.ops.cross_entropy import probability_loss, softmax_loss
from custom_layers.ops.global_pooling import global_pool_backward, global_pool_forward
from custom_layers.ops.max_pooling import (
    max_pool2d_backward,
    max_pool2d_backward_naive,
    max_pool2d_forward,
    max_pool2d_forward_naive,
)
from custom_layers.ops.batch_normalization import (
    batch_norm_backward,
    batch_norm_backward_naive,
    batch_norm_forward,
    batch_norm_forward_naive,
)

from custom_layers.ops.unfolding import unfold_backward, unfold_forward
from custom_layers.ops.volumetric_convolution import (
    conv3d_backward,
    conv3d_backward_naive,
    conv3d_forward,
    conv3d_forward_naive,
)
from custom_layers.ops.volumetric_pooling import (
    avg_pool3d_backward,
    avg_pool3d_forward,
    pool3d_backward_naive,
    pool3d_forward_naive,
)
from custom_layers.ops.upsampling import (
    upsample_bilinear_backward,
    upsample_bilinear_forward,
    upsample_nearest_backward,
    upsample_nearest_forward,
)

__all__ = [
    "affine_backward", "affine_backward_naive", "affine_forward", "affine_forward_naive",
    "avg_pool2d_backward", "avg_pool2d_backward_naive", "avg_pool2d_forward",
    "avg_pool2d_forward_naive", "avg_pool3d_backward", "avg_pool3d_forward", "batch_norm_backward",
    "batch_norm_backward_naive", "batch_norm_forward", "batch_norm_forward_naive",
    "conv2d_backward", "conv2d_backward_naive", "conv2d_forward", "conv2d_forward_naive",
    "conv3d_backward", "conv3d_backward_naive", "conv3d_forward", "conv3d_forward_naive",
    "crop_backward", "crop_forward", "depthwise_conv2d_backward",
    "depthwise_conv2d_backward_naive", "depthwise_conv2d_forward",
    "depthwise_conv2d_forward_naive", "dropout_backward", "dropout_forward", "einsum_backward",
    "einsum_forward", "embedding_backward", "embedding_backward_naive", "embedding_forward",
    "embedding_forward_naive", "gelu_backward", "gelu_forward", "global_pool_backward",
    "global_pool_forward", "glu_backward", "glu_forward", "group_norm_backward",
    "group_norm_backward_naive", "group_norm_forward", "group_norm_forward_naive",
    "layer_norm_backward", "layer_norm_backward_naive", "layer_norm_forward",
    "layer_norm_forward_naive", "log_softmax_backward", "log_softmax_forward",
    "max_pool2d_backward", "max_pool2d_backward_naive", "max_pool2d_forward",
    "max_pool2d_forward_naive", "pair_backward", "pair_forward", "pointwise_backward",
    "pointwise_forward", "pool3d_backward_naive", "pool3d_forward_naive", "prelu_backward",
    "prelu_forward", "probability_loss", "relu_backward", "relu_forward", "relu_general_backward",
    "relu_general_forward", "rescale_backward", "rescale_forward", "softmax_backward",
    "softmax_backward_naive", "softmax_forward", "softmax_forward_naive", "softmax_loss",
    "standardize_forward", "unfold_backward", "unfold_forward", "upsample_bilinear_backward",
    "upsample_bilinear_forward", "upsample_nearest_backward", "upsample_nearest_forward",
    "zero_pad_backward", "zero_pad_forward", "zero_pad_shortcut_backward",
    "zero_pad_shortcut_forward",
]
