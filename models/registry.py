"""Every model the apps can train, and what each one is: the one list the flags,
the trainer and the builders read.

Plain Python (no TensorFlow), so that ``--help`` and flag errors answer
before TensorFlow loads.
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Tuple

# The two layer kinds a model is built from, and the custom layers' backward
# implementations (``custom_layers.ops.IMPLS``; a test ties the two).
LAYER_KINDS = ("custom", "keras")
IMPLS = ("tf", "numpy")


class ModelSpec(NamedTuple):
    """How one model is built and which flags it can take."""

    builder: str  # "module:function", imported when the model is built
    kwargs: Tuple[Tuple[str, Any], ...] = ()
    has_dropout: bool = True  # False: --dropout_rate must be 0
    numpy_backward: bool = True  # every layer can run impl="numpy"
    family: str = ""  # models that share a data-set preset (e.g. "resnet")
    # "module:function(model, images)" run once on a new model with normalised
    # training images (the whitened models' whitening layer), or "".
    prepare: str = ""


MODELS: Dict[str, ModelSpec] = {
    "convnet": ModelSpec("models.convnet:build_convnet"),
    "three_layer": ModelSpec("models.convnet:build_three_layer"),
    **{f"resnet{depth}": ModelSpec("models.resnet:build_resnet", (("depth", depth),),
                                   has_dropout=False, numpy_backward=False, family="resnet")
       for depth in (20, 32, 56)},
    **{name: ModelSpec("models.whitened_vgg:build_whitened_vgg", (("widths", widths),),
                       has_dropout=False, numpy_backward=False, family="whitened",
                       prepare="models.whitened_vgg:set_whitening")
       for name, widths in (("whitened_vgg", (64, 128, 128)),
                            ("whitened_vgg_wide", (64, 256, 256)))},
}
MODEL_NAMES = tuple(MODELS)


def names_in_family(family: str) -> Tuple[str, ...]:
    """The models of ``family``, in registry order."""
    return tuple(name for name, spec in MODELS.items() if spec.family == family)


def spec(model: str) -> ModelSpec:
    """The ``ModelSpec`` of ``model``.

    Raises:
        ValueError: for a name not in ``MODELS``.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODEL_NAMES}. Received: {model!r}")
    return MODELS[model]
