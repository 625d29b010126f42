"""vit_keras: the Vision Transformer for Keras 3 (TensorFlow, JAX and PyTorch backends)."""

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

__all__ = [
    "PRESETS",
    "ViT",
    "build_preset",
    "layers",
    "vit_b16",
    "vit_b32",
    "vit_h14",
    "vit_l16",
    "vit_l32",
    "vit_mnist",
    "vit_s16",
    "vit_ti16",
]
