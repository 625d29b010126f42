"""The building blocks of a Vision Transformer."""

from vit_keras.layers.class_token import ClassToken
from vit_keras.layers.conv_stem import ConvStem
from vit_keras.layers.drop_path import DropPath
from vit_keras.layers.encoder_block import TransformerEncoderBlock
from vit_keras.layers.patch_embedding import PatchEmbedding
from vit_keras.layers.position_embedding import PositionEmbedding, resample_position_table
from vit_keras.layers.token_pooling import TokenPooling

__all__ = [
    "ClassToken",
    "ConvStem",
    "DropPath",
    "PatchEmbedding",
    "PositionEmbedding",
    "TokenPooling",
    "TransformerEncoderBlock",
    "resample_position_table",
]
