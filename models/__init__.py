"""Model builders, from the custom layers or stock Keras layers."""

from models.convnet import MODEL_BUILDERS, build_convnet, build_model, build_three_layer
from models.resnet import ZeroPadShortcut, build_resnet
from models.layer_kinds import LAYER_KINDS, LayerSet, layer_set, mixed_layer_set

__all__ = ["LAYER_KINDS", "LayerSet", "MODEL_BUILDERS", "build_convnet", "build_model",
           "build_resnet", "build_three_layer", "layer_set", "mixed_layer_set",
           "ZeroPadShortcut"]
