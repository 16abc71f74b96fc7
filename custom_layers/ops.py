"""Every TensorFlow op with a hand-written gradient, in one namespace.

Each op family lives in its own module with its NumPy reference beside it;
this module gathers their TF ops for users (``from custom_layers import ops``):

=========================  ==========================  ===========================
op                         module                      backward
=========================  ==========================  ===========================
conv2d, spread_kernel      ``conv``,                   dx: full convolution of the
                           ``conv_kernel_grad``        stride-dilated dy with the
                                                       rotated kernel; dw: x ⋆ dy
                                                       as one forward conv; db = Σ dy
depthwise_conv2d           ``depthwise``               the same per channel
max_pool2d                 ``max_pool``                dy to each window's first max
avg_pool2d,                ``avg_pool``                dy / count back over each
global_avg_pool,                                       window; global max: split
global_max_pool                                        among tied maxima
dense, sparse_dense        ``affine``                  dx = dy·wᵀ, dw = xᵀ·dy
batch_norm_train,          ``norm``                    the compact closed form
batch_norm_inference
dropout                    ``inverted_dropout``        dy times the forward's mask
relu, softmax              ``activations``             dy where y > 0; y ⊙ (dy − Σ dy ⊙ y)
sparse_*_cross_entropy     ``losses``                  softmax − onehot (logits) or
                                                       the clipped-probability form
=========================  ==========================  ===========================

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

from custom_layers.activations import relu, softmax
from custom_layers.affine import dense, sparse_dense
from custom_layers.avg_pool import avg_pool2d, global_avg_pool, global_max_pool
from custom_layers.conv import conv2d, input_grad_from_rotated, rotate_kernel, spread_kernel
from custom_layers.conv_kernel_grad import KernelGradPlan, plan_kernel_grad
from custom_layers.custom_op import (
    FUSED_ACTIVATIONS,
    IMPLS,
    normalize_activation,
    normalize_impl,
)
from custom_layers.depthwise import depthwise_conv2d
from custom_layers.inverted_dropout import dropout
from custom_layers.losses import sparse_probability_cross_entropy, sparse_softmax_cross_entropy
from custom_layers.max_pool import max_pool2d, max_pool2d_input_grad
from custom_layers.norm import batch_norm_inference, batch_norm_train

__all__ = [
    "FUSED_ACTIVATIONS", "IMPLS", "KernelGradPlan",
    "avg_pool2d", "batch_norm_inference", "batch_norm_train", "conv2d", "dense",
    "depthwise_conv2d", "dropout", "global_avg_pool", "global_max_pool",
    "input_grad_from_rotated", "max_pool2d", "max_pool2d_input_grad",
    "normalize_activation", "normalize_impl", "plan_kernel_grad", "relu",
    "rotate_kernel", "softmax", "sparse_dense", "sparse_probability_cross_entropy",
    "sparse_softmax_cross_entropy", "spread_kernel",
]
