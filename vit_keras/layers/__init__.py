"""The building blocks of a Vision Transformer, and the older vit-keras library's layer names.

Every layer is registered with Keras (package "vit_keras"), so models built from them
round-trip through `.keras` files.

Example:

>>> import numpy as np
>>> from vit_keras import layers
>>> images = np.zeros((4, 28, 28, 1), "float32")
>>> tokens = layers.PatchEmbedding(patch_size=7, embed_dim=16)(images)
>>> tokens = layers.PositionEmbedding()(layers.ClassToken()(tokens))
>>> tokens = layers.TransformerEncoderBlock(num_heads=2, mlp_dim=32)(tokens)
>>> tuple(layers.TokenPooling("token")(tokens).shape)
(4, 16)
"""

from vit_keras.layers.class_token import ClassToken
from vit_keras.layers.conv_stem import ConvStem
from vit_keras.layers.drop_path import DropPath
from vit_keras.layers.dropout import Dropout
from vit_keras.layers.encoder_block import TransformerEncoderBlock
from vit_keras.layers.legacy import AddPositionEmbs, TransformerBlock
from vit_keras.layers.patch_embedding import PatchEmbedding
from vit_keras.layers.position_embedding import PositionEmbedding, resample_position_table
from vit_keras.layers.self_attention import SelfAttention
from vit_keras.layers.token_pooling import TokenPooling

__all__ = [
    "AddPositionEmbs",
    "ClassToken",
    "ConvStem",
    "DropPath",
    "Dropout",
    "PatchEmbedding",
    "PositionEmbedding",
    "SelfAttention",
    "TokenPooling",
    "TransformerBlock",
    "TransformerEncoderBlock",
    "resample_position_table",
]
