"""``ZeroPadShortcut``: the ResNet option-A shortcut as a layer, with a hand-written backward."""

from __future__ import annotations

from typing import Any, Dict

import keras

from custom_layers import ops
from custom_layers.layers.base import cast_real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class ZeroPadShortcut(keras.layers.Layer):
    """Subsample by ``stride``, zero-pad the channels to ``filters`` (He et al. 2016, option A).

    Keras has no such layer; its gradient is ``custom_layers.ops.zero_pad_shortcut``'s.

    Args:
        filters: output channels, at least the input's.
        stride: subsampling step of height and width.

    Input shape:
        (N, H, W, C). Output shape: (N, ceil(H/stride), ceil(W/stride), filters).

    Example:

    >>> ZeroPadShortcut(32, 2)(tf.zeros([1, 8, 8, 16])).shape
    TensorShape([1, 4, 4, 32])
    """

    def __init__(self, filters: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters <= 0:
            raise ValueError(f"filters must be a positive integer. Received: filters={filters!r}")
        if not isinstance(stride, int) or stride <= 0:
            raise ValueError(f"stride must be a positive integer. Received: stride={stride!r}")
        self.filters, self.stride = filters, stride

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape

        def sub(size):
            return None if size is None else -(-size // self.stride)
        return (n, sub(h), sub(w), self.filters)

    def call(self, inputs):
        channels = inputs.shape[-1]
        if channels > self.filters:
            raise ValueError(f"ZeroPadShortcut '{self.name}' cannot shrink {channels} channels "
                             f"to filters={self.filters}")
        return ops.zero_pad_shortcut(cast_real_inputs(self, inputs), self.filters, self.stride)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "stride": self.stride}
