"""Patch embedding: a Conv2D with kernel = stride = patch size, flattened to tokens."""

import keras
from keras import ops

from vit_keras.validation import check_patchable_images, check_positive


def token_shape(image_shape, patch_size, embed_dim):
    """The token shape (batch, (H / P) * (W / P), D) of images of shape (batch, H, W, C).

    Args:
        image_shape: (batch, H, W, C); unknown sizes are None.
        patch_size: side P of the patches.
        embed_dim: token width D.

    Returns:
        A 3-tuple; the token count is None if H or W is unknown.

    Example:

    >>> token_shape((None, 28, 28, 1), 7, 100)
    (None, 16, 100)
    """
    h, w = image_shape[1], image_shape[2]
    n = None if h is None or w is None else (h // patch_size) * (w // patch_size)
    return (image_shape[0], n, embed_dim)


@keras.saving.register_keras_serializable(package="vit_keras")
class PatchEmbedding(keras.layers.Layer):
    """Cut images into square patches and project each to a token.

    A Conv2D with kernel size = stride = `patch_size` (its kernel, the sublayer `projection`,
    has Google's layout (P, P, C, D)), flattened to a sequence of tokens in row-major order.

    Args:
        patch_size: side P of the square patches.
        embed_dim: token width D.
        kernel_initializer: initializer of the projection kernel.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        images: a (batch, H, W, C) channels-last tensor; H and W must be multiples of P.

    Returns:
        A (batch, (H / P) * (W / P), D) tensor.

    Raises:
        ValueError: for a non-positive `patch_size` or `embed_dim` (on construction); for
            images not of rank 4 or not divisible into patches (on call).

    Example:

    >>> import numpy as np
    >>> layer = PatchEmbedding(patch_size=7, embed_dim=100)
    >>> tuple(layer(np.zeros((4, 28, 28, 1), "float32")).shape)
    (4, 16, 100)
    >>> tuple(layer.projection.kernel.shape)
    (7, 7, 1, 100)
    """

    def __init__(self, patch_size, embed_dim, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.patch_size = check_positive("patch_size", patch_size)
        self.embed_dim = check_positive("embed_dim", embed_dim)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.projection = keras.layers.Conv2D(
            embed_dim,
            kernel_size=patch_size,
            strides=patch_size,
            padding="valid",
            data_format="channels_last",
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="projection",
        )

    def build(self, input_shape):
        check_patchable_images("PatchEmbedding", input_shape, self.patch_size)
        self.projection.build(input_shape)

    def call(self, images):
        check_patchable_images("PatchEmbedding", images.shape, self.patch_size)
        x = self.projection(images)
        batch = ops.shape(x)[0]
        grid_h, grid_w = x.shape[1], x.shape[2]
        return ops.reshape(x, (batch, grid_h * grid_w, self.embed_dim))

    def compute_output_shape(self, input_shape):
        return token_shape(input_shape, self.patch_size, self.embed_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            patch_size=self.patch_size,
            embed_dim=self.embed_dim,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
