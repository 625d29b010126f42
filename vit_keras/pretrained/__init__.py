"""Loading published ViT checkpoints into vit_keras models."""

from vit_keras.pretrained.canonical import assign_weights, model_variables
from vit_keras.pretrained.google import google_to_canonical, is_google_checkpoint

__all__ = ["assign_weights", "google_to_canonical", "is_google_checkpoint", "model_variables"]
