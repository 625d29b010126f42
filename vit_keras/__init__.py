"""vit_keras: the Vision Transformer for Keras 3 (TensorFlow, JAX and PyTorch backends).

The model, its layers and presets are imported with the package (so `keras.saving.load_model`
finds the registered classes); the other tools are imported on first use.
"""

import importlib

from vit_keras import layers
from vit_keras.model import ViT
from vit_keras.presets import (
    PRESETS,
    build_preset,
    vit_b16,
    vit_b32,
    vit_h14,
    vit_l16,
    vit_l32,
    vit_mnist,
    vit_s16,
    vit_ti16,
)

__version__ = "0.1.0"

_EXPORTS = {
    "load_pretrained": "vit_keras.pretrained",
    "export_saved_model": "vit_keras.export",
    "export_onnx": "vit_keras.export",
    "DistributionPlan": "vit_keras.distribute",
    "setup_distribution": "vit_keras.distribute",
    "attention_rollout": "vit_keras.visualize",
    "plot_attention": "vit_keras.visualize",
    "plot_position_embeddings": "vit_keras.visualize",
}
_SUBMODULES = ("performance", "data", "train", "optim", "visualize", "export", "pretrained", "vit")

__all__ = sorted(
    list(_EXPORTS)
    + ["PRESETS", "ViT", "build_preset", "layers", "performance"]
    + ["vit_b16", "vit_b32", "vit_h14", "vit_l16", "vit_l32", "vit_mnist", "vit_s16", "vit_ti16"]
)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"vit_keras.{name}")
    else:
        raise AttributeError(f"module 'vit_keras' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
