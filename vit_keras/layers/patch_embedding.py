"""Patch embedding: a Conv2D with kernel = stride = patch size, flattened to tokens."""

import keras
from keras import ops

from vit_keras.validation import check_patchable_images, check_positive


def token_shape(image_shape, patch_size, embed_dim):
    """(batch, H, W, C) -> (batch, (H / P) * (W / P), D), unknown sizes kept as None."""
    h, w = image_shape[1], image_shape[2]
    n = None if h is None or w is None else (h // patch_size) * (w // patch_size)
    return (image_shape[0], n, embed_dim)


@keras.saving.register_keras_serializable(package="vit_keras")
class PatchEmbedding(keras.layers.Layer):
    """Cut (batch, H, W, C) images into patches and project each to a token.

    Returns (batch, num_patches, embed_dim), patches in row-major order.
    The projection kernel has Google's layout (P, P, C, D).
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
