"""Loading published ViT checkpoints (Google `.npz`, timm, Hugging Face) into vit_keras models.

`create_model("vit_b16.augreg_in21k_ft_in1k", num_classes=10)` builds any architecture with its
published weights by name (`list_models(pretrained=True)` lists them); `load_pretrained(model,
source)` loads a file, folder, URL, `hf://ORG/NAME` snapshot or published name into a model.
"""

from vit_keras.pretrained.canonical import CanonicalWeight, adapt_input_channels, assign_weights, model_variables
from vit_keras.pretrained.download import download
from vit_keras.pretrained.factory import create_model, list_models, preset_weight_defaults, pretrained_defaults
from vit_keras.pretrained.files import CheckpointError, read_checkpoint
from vit_keras.pretrained.google import google_to_canonical, is_google_checkpoint
from vit_keras.pretrained.huggingface import huggingface_to_canonical, is_huggingface_checkpoint
from vit_keras.pretrained.labels import imagenet_classes, imagenet_synsets
from vit_keras.pretrained.loader import detect_format, load_preset_weights, load_pretrained, to_canonical
from vit_keras.pretrained.registry import PUBLISHED, published_names, resolve_published
from vit_keras.pretrained.resample import resample_table
from vit_keras.pretrained.timm import is_timm_checkpoint, timm_to_canonical

__all__ = [
    "PUBLISHED",
    "CanonicalWeight",
    "CheckpointError",
    "adapt_input_channels",
    "assign_weights",
    "create_model",
    "detect_format",
    "download",
    "google_to_canonical",
    "huggingface_to_canonical",
    "imagenet_classes",
    "imagenet_synsets",
    "is_google_checkpoint",
    "is_huggingface_checkpoint",
    "is_timm_checkpoint",
    "list_models",
    "load_preset_weights",
    "load_pretrained",
    "model_variables",
    "preset_weight_defaults",
    "pretrained_defaults",
    "published_names",
    "read_checkpoint",
    "resample_table",
    "resolve_published",
    "timm_to_canonical",
    "to_canonical",
]
