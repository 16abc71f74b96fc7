"""Model builders, from the custom layers or stock Keras layers.

``models.registry`` (the model names and what each takes) is plain Python;
the builders load Keras, so they are imported on first use: the training
scripts read the registry for their flags before TensorFlow loads.
"""

import importlib

from models.registry import LAYER_KINDS, MODEL_NAMES, MODELS, ModelSpec

_LAZY = {
    "build_convnet": "models.convnet", "build_three_layer": "models.convnet",
    "build_model": "models.convnet", "build_resnet": "models.resnet",
    "LayerSet": "models.layer_kinds", "layer_set": "models.layer_kinds",
    "mixed_layer_set": "models.layer_kinds",
}

__all__ = ["LAYER_KINDS", "MODELS", "MODEL_NAMES", "ModelSpec", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
