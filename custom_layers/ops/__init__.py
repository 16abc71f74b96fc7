"""Every TensorFlow op with a hand-written gradient, in one namespace.

Each op family is a module of this package holding its NumPy reference
beside its TF op; this namespace gathers the TF ops for users
(``from custom_layers import ops``):

=========================  ===========================  ===========================
op                         module                       backward
=========================  ===========================  ===========================
conv2d, spread_kernel      ``convolution``,             dx: full convolution of the
                           ``convolution_backward``     stride-dilated dy with the
                                                        rotated kernel; dw: x ⋆ dy
                                                        as one forward conv; db = Σ dy
transposed_conv2d          ``transposed_convolution``   the convolution's passes swapped:
                                                        forward = its dx, dx = a forward
                                                        conv, dw = its dw of (dy, x)
grouped_conv2d             ``grouped_convolution``      one depthwise op, or conv2d per
                                                        group
conv3d, transposed_conv3d, ``volumetric_convolution``   conv2d / transposed_conv2d on
add_bias                                                the depth's taps unfolded into
                                                        the channels (fold's adjoint)
unfold, fold               ``unfolding``                each the other's backward: the
                                                        window taps along one axis
depthwise_conv2d           ``depthwise_convolution``    the same per channel
max_pool2d                 ``max_pooling``              dy to each window's first max
avg_pool2d                 ``average_pooling``          dy / count back over each window
max_pool3d, avg_pool3d     ``volumetric_pooling``       the 2-D op per depth plane, then
                                                        the depth taps reduced: dy to
                                                        the first max; dy / count
global_avg_pool,           ``global_pooling``           dy / cells; the max's split
global_max_pool                                         among tied maxima
dense, sparse_dense        ``affine``                   dx = dy·wᵀ, dw = xᵀ·dy
batch_norm_train,          ``batch_normalization``      the compact closed form
batch_norm_inference
dropout                    ``inverted_dropout``         dy times the forward's mask
layer_norm                 ``layer_normalization``      the closed form over any axes
group_norm                 ``group_normalization``      the same over each group
embedding                  ``embedding_lookup``         dy's rows at the ids, as
                                                        IndexedSlices
einsum, einsum_dense       ``contraction``              each operand's: an einsum of dy
                                                        with the other; db = Σ dy
relu, gelu                 ``activations``              dy where y > 0; dy (Φ + xφ)
relu_general               ``activations``              dy on the linear parts (Keras's
                                                        slope, clip and threshold)
activation                 ``pointwise``                dy · f′ for Keras's other
                                                        elementwise activations, one
                                                        rule each (sigmoid, elu, ...)
softmax, log_softmax       ``normalized_exponential``   y ⊙ (dy − Σ dy ⊙ y);
                                                        dy − e^y Σ dy
glu                        ``gated_linear_unit``        [dy σ(b), dy a σ′(b)]
prelu                      ``parametric_relu``          α dy below 0; dα = Σ dy·min(x, 0)
rescale                    ``rescaling``                dy · scale
add, subtract, multiply,   ``merging``                  dy (summed over broadcast
maximum, minimum, select,                               axes); dy·(the other); dy to
divide, concatenate                                     the larger (ties: the first);
                                                        dy's slices
zero_pad, crop             ``padding``                  each the other's backward
upsample_nearest,          ``upsampling``               Σ over each block; A_Hᵀ dy A_W
upsample_interpolated
zero_pad_shortcut          ``zero_pad_shortcut``        dy's first channels back at
                                                        the sampled positions
sparse_*_cross_entropy     ``cross_entropy``            softmax − onehot (logits) or
                                                        the clipped-probability form
=========================  ===========================  ===========================

``shapes`` holds the argument and output-size rules every op shares,
``custom_op`` the custom-gradient and NumPy wrappers.

The backward passes use only forward convolutions, matmuls, reductions,
padding/slicing and elementwise ops, never TensorFlow's gradient kernels
(``Conv2DBackpropInput/Filter``, ``MaxPoolGrad*``, ``ReluGrad``,
``BiasAddGrad``) nor autodiff, so they run eagerly, in graphs, under XLA, on
GPUs and under ``tf.distribute``.

conv2d, max_pool2d, dense and relu take ``impl="tf"`` (default) or
``impl="numpy"``; the NumPy implementation runs the reference forward and
backward through ``tf.numpy_function``: literally the textbook maths, but
CPU-only, much slower, not compilable with XLA and not exportable.

Mixed precision: x and dy may be float16/bfloat16 while the weights stay
float32. Weights are cast to x's dtype for the forward; weight gradients are
accumulated in float32 and returned in the weights' dtype; dx comes back in
x's dtype.
"""

from custom_layers.ops.activations import gelu, relu, relu_general
from custom_layers.ops.affine import dense, sparse_dense
from custom_layers.ops.average_pooling import avg_pool2d
from custom_layers.ops.batch_normalization import batch_norm_inference, batch_norm_train
from custom_layers.ops.convolution import conv2d, spread_kernel
from custom_layers.ops.cross_entropy import (
    sparse_probability_cross_entropy,
    sparse_softmax_cross_entropy,
)
from custom_layers.ops.custom_op import IMPLS
from custom_layers.ops.depthwise_convolution import depthwise_conv2d
from custom_layers.ops.contraction import einsum, einsum_dense
from custom_layers.ops.grouped_convolution import grouped_conv2d
from custom_layers.ops.global_pooling import global_avg_pool, global_max_pool, masked_mean
from custom_layers.ops.inverted_dropout import dropout
from custom_layers.ops.embedding_lookup import embedding
from custom_layers.ops.gated_linear_unit import glu
from custom_layers.ops.group_normalization import group_norm
from custom_layers.ops.layer_normalization import layer_norm
from custom_layers.ops.max_pooling import max_pool2d
from custom_layers.ops.merging import (add, concatenate, divide, maximum, minimum, multiply, select,
                                       subtract)
from custom_layers.ops.normalized_exponential import log_softmax, softmax
from custom_layers.ops.padding import crop, zero_pad
from custom_layers.ops.parametric_relu import prelu
from custom_layers.ops.pointwise import activation
from custom_layers.ops.rescaling import rescale
from custom_layers.ops.transposed_convolution import transposed_conv2d
from custom_layers.ops.unfolding import fold, unfold
from custom_layers.ops.upsampling import upsample_interpolated, upsample_nearest
from custom_layers.ops.volumetric_convolution import add_bias, conv3d, transposed_conv3d
from custom_layers.ops.volumetric_pooling import avg_pool3d, max_pool3d
from custom_layers.ops.zero_pad_shortcut import zero_pad_shortcut

__all__ = [
    "activation", "add", "add_bias", "avg_pool2d", "avg_pool3d", "batch_norm_inference",
    "batch_norm_train", "concatenate", "conv2d", "conv3d", "crop", "dense", "depthwise_conv2d",
    "divide", "dropout", "einsum", "einsum_dense", "embedding", "fold", "gelu", "global_avg_pool",
    "global_max_pool", "glu", "group_norm", "grouped_conv2d", "layer_norm", "log_softmax",
    "masked_mean", "max_pool2d", "max_pool3d", "maximum", "minimum", "multiply", "prelu", "relu",
    "relu_general", "rescale", "select", "softmax", "sparse_dense",
    "sparse_probability_cross_entropy", "sparse_softmax_cross_entropy", "spread_kernel",
    "subtract", "transposed_conv2d", "transposed_conv3d", "unfold", "upsample_interpolated",
    "upsample_nearest", "zero_pad", "zero_pad_shortcut",
]
