"""A convolutional stem: the ViT_C alternative to the patchify Conv2D (Xiao et al., 2021).

"Early Convolutions Help Transformers See Better" replaces the single P x P, stride-P
convolution with log2(P) 3x3 stride-2 convolutions (BatchNorm + ReLU), doubling the width
each time up to `embed_dim`, then a 1x1 convolution to `embed_dim`. The tokens form the
same grid as the patchify stem's, so everything after it is unchanged; it trains faster
and more stably, which matters most for small models on small images.
"""

import keras
from keras import ops

from vit_keras.layers.patch_embedding import token_shape
from vit_keras.validation import check_patchable_images, check_positive


def stem_widths(patch_size, embed_dim):
    """The widths of a `ConvStem`'s 3x3 stride-2 convolutions: doubling, ending at `embed_dim`.

    Args:
        patch_size: total stride, a power of two >= 2.
        embed_dim: token width.

    Returns:
        A list of log2(patch_size) ints.

    Raises:
        ValueError: if `patch_size` is not a power of two >= 2.

    Example:

    >>> stem_widths(16, 384)
    [48, 96, 192, 384]
    """
    steps = patch_size.bit_length() - 1
    if patch_size < 2 or 2**steps != patch_size:
        raise ValueError(
            f"stem='conv' needs a patch_size that is a power of two (2, 4, 8, 16, ...); found patch_size={patch_size}."
        )
    return [max(1, embed_dim // 2 ** (steps - 1 - i)) for i in range(steps)]


@keras.saving.register_keras_serializable(package="vit_keras")
class ConvStem(keras.layers.Layer):
    """Turn images into tokens with a stack of 3x3 stride-2 convolutions (ViT_C).

    log2(P) Conv2D(3x3, stride 2, no bias) -> BatchNorm -> ReLU stages (sublayers `stages`),
    their widths doubling up to `embed_dim` (`stem_widths`), then a 1x1 Conv2D `projection`;
    the tokens form the same row-major grid as `PatchEmbedding`'s.

    Args:
        patch_size: total stride P, a power of two (one stride-2 convolution per factor 2).
        embed_dim: token width D.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        images: a (batch, H, W, C) channels-last tensor; H and W must be multiples of P.
        training: Python bool; True normalises with the batch's statistics (and updates the
            moving ones), False with the moving statistics.

    Returns:
        A (batch, (H / P) * (W / P), D) tensor.

    Raises:
        ValueError: for a `patch_size` that is not a power of two (on construction); for
            images not of rank 4 or not divisible into patches (on call).

    Example:

    >>> import numpy as np
    >>> layer = ConvStem(patch_size=4, embed_dim=16)
    >>> tuple(layer(np.zeros((2, 28, 28, 1), "float32")).shape)
    (2, 49, 16)
    >>> stem_widths(4, 16)
    [8, 16]
    """

    def __init__(self, patch_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = check_positive("patch_size", patch_size)
        self.embed_dim = check_positive("embed_dim", embed_dim)
        policy = self.dtype_policy
        self.stages = []
        for i, width in enumerate(stem_widths(patch_size, embed_dim)):
            self.stages += [
                keras.layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, dtype=policy, name=f"conv{i}"),
                # PyTorch's BatchNorm defaults (momentum 0.1 there), as in the ViT_C reference.
                keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=policy, name=f"norm{i}"),
                keras.layers.ReLU(dtype=policy, name=f"relu{i}"),
            ]
        self.projection = keras.layers.Conv2D(embed_dim, 1, dtype=policy, name="projection")

    def build(self, input_shape):
        check_patchable_images("ConvStem", input_shape, self.patch_size)
        shape = tuple(input_shape)
        for layer in self.stages + [self.projection]:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, images, training=None):
        check_patchable_images("ConvStem", images.shape, self.patch_size)
        x = images
        for layer in self.stages:
            x = layer(x, training=training)
        x = self.projection(x)
        batch = ops.shape(x)[0]
        return ops.reshape(x, (batch, x.shape[1] * x.shape[2], self.embed_dim))

    def compute_output_shape(self, input_shape):
        return token_shape(input_shape, self.patch_size, self.embed_dim)

    def get_config(self):
        config = super().get_config()
        config.update(patch_size=self.patch_size, embed_dim=self.embed_dim)
        return config
