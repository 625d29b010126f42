"""Loading published ViT checkpoints (Google `.npz`, timm, Hugging Face) into vit_keras models."""

from vit_keras.pretrained.canonical import assign_weights, model_variables
from vit_keras.pretrained.download import download
from vit_keras.pretrained.files import CheckpointError, read_checkpoint
from vit_keras.pretrained.google import google_to_canonical, is_google_checkpoint
from vit_keras.pretrained.huggingface import huggingface_to_canonical, is_huggingface_checkpoint
from vit_keras.pretrained.loader import detect_format, load_pretrained, load_preset_weights, to_canonical
from vit_keras.pretrained.registry import PUBLISHED, published_names, resolve_published
from vit_keras.pretrained.timm import is_timm_checkpoint, timm_to_canonical

__all__ = [
    "PUBLISHED",
    "CheckpointError",
    "assign_weights",
    "detect_format",
    "download",
    "google_to_canonical",
    "huggingface_to_canonical",
    "is_google_checkpoint",
    "is_huggingface_checkpoint",
    "is_timm_checkpoint",
    "load_preset_weights",
    "load_pretrained",
    "model_variables",
    "published_names",
    "read_checkpoint",
    "resolve_published",
    "timm_to_canonical",
    "to_canonical",
]
