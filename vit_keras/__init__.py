"""vit_keras: the Vision Transformer for Keras 3 (TensorFlow, JAX and PyTorch backends).

Importing the package imports Keras and registers the model and its layers with it, so
`keras.saving.load_model` finds them after `import vit_keras` alone. The other tools
(pretrained weights, export, training, plots, ...) are imported on first use. The named
architectures are plain data in `vit_keras.architectures`.

Example:

>>> import vit_keras
>>> model = vit_keras.vit_mnist_p7()
>>> model.input_layout, model.num_classes
((28, 28, 1), 10)
>>> "vit_b16" in vit_keras.PRESETS
True
"""

import importlib
from importlib import metadata

from vit_keras import layers, optim, presets  # noqa: F401  (optim registers LayerDecayAdamW and its schedule)
from vit_keras.architectures import ARCHITECTURES
from vit_keras.model import ViT  # noqa: F401  (exported: see __all__)
from vit_keras.presets import PRESETS, build_preset, preset_config  # noqa: F401

try:
    __version__ = metadata.version("vit-keras3")
except metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

# One builder per named architecture: vit_keras.vit_b16(...), vit_keras.vit_mnist_p7(...), ...
globals().update({name: getattr(presets, name) for name in ARCHITECTURES})

# name -> module that defines it, imported on first use.
_EXPORTS = {
    "create_model": "vit_keras.pretrained",
    "list_models": "vit_keras.pretrained",
    "load_pretrained": "vit_keras.pretrained",
    "export_saved_model": "vit_keras.export",
    "export_onnx": "vit_keras.export",
    "DistributionPlan": "vit_keras.distribute",
    "setup_distribution": "vit_keras.distribute",
    "attention_rollout": "vit_keras.visualize",
    "plot_attention": "vit_keras.visualize",
    "plot_position_embeddings": "vit_keras.visualize",
}
_SUBMODULES = (
    "data",
    "distribute",
    "export",
    "optim",
    "performance",
    "predict",
    "pretrained",
    "runs",
    "train",
    "train_config",
    "utils",
    "visualize",
    "vit",
)

__all__ = sorted(
    list(_EXPORTS)
    + list(ARCHITECTURES)
    + ["ARCHITECTURES", "PRESETS", "ViT", "build_preset", "preset_config", "layers", "presets", "architectures"]
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
