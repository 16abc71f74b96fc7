"""Rebuilding a Keras model with the hand-written twins of its layers."""

from __future__ import annotations

from typing import Dict, List

import keras

from custom_layers.layers.activation import Activation
from custom_layers.layers.add import Add
from custom_layers.layers.average import Average
from custom_layers.layers.average_pooling1d import AveragePooling1D
from custom_layers.layers.average_pooling2d import AveragePooling2D
from custom_layers.layers.batch_normalization import BatchNormalization
from custom_layers.layers.concatenate import Concatenate
from custom_layers.layers.conv1d import Conv1D
from custom_layers.layers.conv2d import Conv2D
from custom_layers.layers.conv2d_transposed import Conv2DTranspose
from custom_layers.layers.cropping2d import Cropping2D
from custom_layers.layers.dense import Dense
from custom_layers.layers.depthwise_conv2d import DepthwiseConv2D
from custom_layers.layers.dropout import Dropout
from custom_layers.layers.einsum_dense import EinsumDense
from custom_layers.layers.elu import ELU
from custom_layers.layers.global_average_pooling1d import GlobalAveragePooling1D
from custom_layers.layers.global_average_pooling2d import GlobalAveragePooling2D
from custom_layers.layers.global_max_pooling1d import GlobalMaxPooling1D
from custom_layers.layers.global_max_pooling2d import GlobalMaxPooling2D
from custom_layers.layers.depthwise_conv1d import DepthwiseConv1D
from custom_layers.layers.embedding import Embedding
from custom_layers.layers.normalization import Normalization
from custom_layers.layers.separable_conv1d import SeparableConv1D
from custom_layers.layers.group_normalization import GroupNormalization
from custom_layers.layers.layer_normalization import LayerNormalization
from custom_layers.layers.leaky_relu import LeakyReLU
from custom_layers.layers.max_pooling1d import MaxPooling1D
from custom_layers.layers.max_pooling2d import MaxPooling2D
from custom_layers.layers.maximum import Maximum
from custom_layers.layers.minimum import Minimum
from custom_layers.layers.multi_head_attention import MultiHeadAttention
from custom_layers.layers.multiply import Multiply
from custom_layers.layers.prelu import PReLU
from custom_layers.layers.relu import ReLU
from custom_layers.layers.rescaling import Rescaling
from custom_layers.layers.separable_conv2d import SeparableConv2D
from custom_layers.layers.softmax import Softmax
from custom_layers.layers.subtract import Subtract
from custom_layers.layers.up_sampling2d import UpSampling2D
from custom_layers.layers.zero_padding1d import ZeroPadding1D
from custom_layers.layers.zero_padding2d import ZeroPadding2D
from custom_layers.layers.cropping1d import Cropping1D
from custom_layers.layers.cropping3d import Cropping3D
from custom_layers.layers.zero_padding3d import ZeroPadding3D
from custom_layers.layers.up_sampling1d import UpSampling1D
from custom_layers.layers.up_sampling3d import UpSampling3D
from custom_layers.layers.conv1d_transposed import Conv1DTranspose
from custom_layers.layers.conv3d import Conv3D
from custom_layers.layers.conv3d_transposed import Conv3DTranspose
from custom_layers.layers.average_pooling3d import AveragePooling3D
from custom_layers.layers.max_pooling3d import MaxPooling3D
from custom_layers.layers.global_average_pooling3d import GlobalAveragePooling3D
from custom_layers.layers.global_max_pooling3d import GlobalMaxPooling3D
from custom_layers.operations import OPERATION_TWINS

# Exact stock classes only: a user's subclass of a stock layer has its own call.
TWINS: Dict[type, type] = {
    keras.layers.Conv2D: Conv2D,
    keras.layers.Dense: Dense,
    keras.layers.MaxPooling2D: MaxPooling2D,
    keras.layers.BatchNormalization: BatchNormalization,
    keras.layers.AveragePooling2D: AveragePooling2D,
    keras.layers.GlobalAveragePooling2D: GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D: GlobalMaxPooling2D,
    keras.layers.Dropout: Dropout,
    keras.layers.DepthwiseConv2D: DepthwiseConv2D,
    keras.layers.ReLU: ReLU,
    keras.layers.LeakyReLU: LeakyReLU,
    keras.layers.ELU: ELU,
    keras.layers.PReLU: PReLU,
    keras.layers.Softmax: Softmax,
    keras.layers.Activation: Activation,
    keras.layers.SeparableConv2D: SeparableConv2D,
    keras.layers.LayerNormalization: LayerNormalization,
    keras.layers.GroupNormalization: GroupNormalization,
    keras.layers.Embedding: Embedding,
    keras.layers.Normalization: Normalization,
    keras.layers.DepthwiseConv1D: DepthwiseConv1D,
    keras.layers.SeparableConv1D: SeparableConv1D,
    keras.layers.Rescaling: Rescaling,
    keras.layers.Add: Add,
    keras.layers.Subtract: Subtract,
    keras.layers.Multiply: Multiply,
    keras.layers.Average: Average,
    keras.layers.Maximum: Maximum,
    keras.layers.Minimum: Minimum,
    keras.layers.Concatenate: Concatenate,
    keras.layers.ZeroPadding1D: ZeroPadding1D,
    keras.layers.ZeroPadding2D: ZeroPadding2D,
    keras.layers.Cropping2D: Cropping2D,
    keras.layers.UpSampling2D: UpSampling2D,
    keras.layers.Conv1D: Conv1D,
    keras.layers.MaxPooling1D: MaxPooling1D,
    keras.layers.AveragePooling1D: AveragePooling1D,
    keras.layers.GlobalAveragePooling1D: GlobalAveragePooling1D,
    keras.layers.GlobalMaxPooling1D: GlobalMaxPooling1D,
    keras.layers.EinsumDense: EinsumDense,
    keras.layers.MultiHeadAttention: MultiHeadAttention,
    keras.layers.Conv2DTranspose: Conv2DTranspose,
    keras.layers.Cropping1D: Cropping1D,
    keras.layers.Cropping3D: Cropping3D,
    keras.layers.ZeroPadding3D: ZeroPadding3D,
    keras.layers.UpSampling1D: UpSampling1D,
    keras.layers.UpSampling3D: UpSampling3D,
    keras.layers.Conv3D: Conv3D,
    keras.layers.Conv1DTranspose: Conv1DTranspose,
    keras.layers.Conv3DTranspose: Conv3DTranspose,
    keras.layers.MaxPooling3D: MaxPooling3D,
    keras.layers.AveragePooling3D: AveragePooling3D,
    keras.layers.GlobalAveragePooling3D: GlobalAveragePooling3D,
    keras.layers.GlobalMaxPooling3D: GlobalMaxPooling3D,
}


def _unreachable_inside(layer: keras.layers.Layer) -> List[keras.layers.Layer]:
    """The twinned layers that ``layer`` holds (a wrapper such as ``TimeDistributed``,
    a subclassed model, any layer with sublayers): ``clone_model`` descends into
    nested Sequential and functional models only, so these would stay stock."""
    inner = layer._flatten_layers(include_self=False, recursive=True)
    return [sub for sub in inner if type(sub) in TWINS]


def swap_layers(model: keras.Model, keep_unsupported: bool = False) -> keras.Model:
    """``model`` rebuilt (``keras.models.clone_model``) with every layer that has a
    hand-written twin replaced by it, nested Sequential and functional models
    included, weights copied.

    Args:
        model: a Sequential or functional Keras model.
        keep_unsupported: a layer whose configuration its twin does not
            support (e.g. a synchronized BatchNormalization), or that sits
            inside a wrapper or a layer holding layers (not reached), stays stock
            when True; when False (the default) that is an error, so nothing
            stays stock silently.

    Returns:
        The new model; ``swapped_layer_names`` and ``stock_layer_names`` on it
        list the layers that were and were not replaced.

    Raises:
        ValueError: naming the layer and the reason, for an unsupported
            configuration when ``keep_unsupported`` is False.
    """
    swapped: List[str] = []
    kept: List[str] = []

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if not isinstance(layer, keras.layers.Layer):
            # An operation of a functional graph (``x + 3.0``): its twin, or kept and listed.
            twin = OPERATION_TWINS.get(type(layer))
            (swapped if twin else kept).append(layer.name)
            return (twin or type(layer)).from_config(layer.get_config())
        # A twin that holds layers (MultiHeadAttention) builds them as twins itself.
        hidden = [] if type(layer) in TWINS else _unreachable_inside(layer)
        if hidden and not keep_unsupported:
            named = ", ".join(f"{sub.name} ({type(sub).__name__})" for sub in hidden[:5])
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) holds layers that "
                             f"swap_layers cannot reach inside it: {named}"
                             f"{' ...' if len(hidden) > 5 else ''}; rebuild it with "
                             "custom_layers classes, or pass keep_unsupported=True")
        kept.extend(f"{layer.name}/{sub.name}" for sub in hidden)
        config = layer.get_config()
        if callable(getattr(layer, "activation", None)) and "activation" in config:
            # The function itself, not its serialization: a lambda would not deserialize.
            config["activation"] = layer.activation
        twin = TWINS.get(type(layer))
        if twin is not None:
            try:
                new = twin.from_config(config)
            except (ValueError, TypeError) as e:  # Keras wraps __init__ errors in TypeError
                if not keep_unsupported:
                    reason = str(e).rsplit("Exception encountered: ", 1)[-1]
                    raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has no "
                                     f"hand-written twin for its configuration: {reason}") from None
            else:
                swapped.append(layer.name)
                return new
        kept.append(layer.name)
        return layer.__class__.from_config(config)

    # recursive: nested Sequential and functional models are rebuilt layer by layer too.
    rebuilt = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for layer in model.layers:
        if layer.weights:
            rebuilt.get_layer(layer.name).set_weights(layer.get_weights())
    rebuilt.swapped_layer_names = swapped
    rebuilt.stock_layer_names = kept
    return rebuilt
