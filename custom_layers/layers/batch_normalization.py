"""``BatchNormalization``: drop-in for ``keras.layers.BatchNormalization`` with a hand-written backward."""

from __future__ import annotations

import keras
from keras import ops as kops

from custom_layers import ops
from custom_layers.layers.base import real_inputs


@keras.saving.register_keras_serializable(package="custom_layers")
class BatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization whose gradient is ``custom_layers.ops.batch_norm_train``'s
    (training) or ``batch_norm_inference``'s.

    A subclass of the stock layer: arguments, their checks, weights (gamma,
    beta, moving_mean, moving_variance in Keras' order, so
    ``set_weights(stock.get_weights())`` works both ways), ``get_config``
    and masking stay Keras's own; only the maths in ``call`` is replaced.
    Statistics are computed in float32 at least (integer inputs included),
    as Keras does; the moving statistics are updated as Keras updates them
    (``moving = moving * momentum + batch * (1 - momentum)``).

    With ``renorm=True`` (batch renormalization) Keras's own helpers compute
    the corrections r and d from the batch moments and fold them into gamma
    and beta as constants (``stop_gradient``, as in Keras); the normalization
    itself is still the hand-written op.

    Args:
        axis, momentum, epsilon, center, scale, beta_*/gamma_*/moving_*,
        renorm, renorm_clipping, renorm_momentum: as in Keras.
        synchronized: must be False: the cross-replica backward is not
            hand-written (a ValueError rather than silently stock maths).

    Input shape:
        any, with the channels at ``axis`` (-1 for channels_last, 1 for
        channels_first). Output shape: the input's.

    Example:

    >>> BatchNormalization()(tf.ones([4, 3]), training=True).shape
    TensorShape([4, 3])
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.synchronized:
            raise ValueError("custom_layers.BatchNormalization does not support synchronized=True "
                             "(its cross-replica backward is not hand-written). "
                             "Received: synchronized=True")

    def call(self, inputs, training=None, mask=None):
        if mask is not None and len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError("The mask provided should be one dimension less than the inputs. "
                             f"Received: mask.shape={mask.shape}, inputs.shape={inputs.shape}")
        inputs = real_inputs(self, inputs)
        # Statistics in float32 at least (float16 overflows), as in Keras.
        dtype = keras.backend.result_type(inputs.dtype, "float32")
        inputs = kops.cast(inputs, dtype)
        channels = inputs.shape[self.axis]
        gamma = kops.cast(self.gamma, dtype) if self.scale else kops.ones((channels,), dtype)
        beta = kops.cast(self.beta, dtype) if self.center else kops.zeros((channels,), dtype)
        if training and self.trainable:
            if self.renorm:
                # The moments only feed the constant corrections and the statistics.
                mean, variance = (kops.stop_gradient(m) for m in self._moments(inputs, mask))
                r, d, mean, variance = self._renorm_correction_and_moments(mean, variance)
                gamma, beta = self._compose_transforms(r, d, gamma, beta, dtype)
                self._update_renorm_statistics(mean, variance)
            outputs, mean, variance = ops.batch_norm_train(inputs, gamma, beta, self.axis,
                                                            self.epsilon, mask)
            if not self.renorm:
                for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
                    moving.assign(kops.cast(moving, dtype) * self.momentum
                                  + batch * (1.0 - self.momentum))
        else:
            outputs = ops.batch_norm_inference(
                inputs, gamma, beta, kops.cast(self.moving_mean, dtype),
                kops.cast(self.moving_variance, dtype), self.axis, self.epsilon)
        return kops.cast(outputs, self.compute_dtype)
