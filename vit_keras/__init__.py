"""vit_keras: the Vision Transformer for Keras 3 (TensorFlow, JAX and PyTorch backends).

Names are imported on first use, so `import vit_keras` does not import Keras: the
`vit-keras --backend NAME` command line can still choose the backend.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ViT": "vit_keras.model",
    "PRESETS": "vit_keras.presets",
    "build_preset": "vit_keras.presets",
    "vit_ti16": "vit_keras.presets",
    "vit_s16": "vit_keras.presets",
    "vit_b16": "vit_keras.presets",
    "vit_b32": "vit_keras.presets",
    "vit_l16": "vit_keras.presets",
    "vit_l32": "vit_keras.presets",
    "vit_h14": "vit_keras.presets",
    "vit_mnist": "vit_keras.presets",
    "load_pretrained": "vit_keras.pretrained",
    "export_saved_model": "vit_keras.export",
    "DistributionPlan": "vit_keras.distribute",
    "setup_distribution": "vit_keras.distribute",
    "attention_rollout": "vit_keras.visualize",
    "plot_attention": "vit_keras.visualize",
    "plot_position_embeddings": "vit_keras.visualize",
}
_SUBMODULES = ("layers", "performance", "data", "train", "optim", "visualize", "export", "pretrained", "vit")

__all__ = sorted(_EXPORTS) + ["layers", "performance"]


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
