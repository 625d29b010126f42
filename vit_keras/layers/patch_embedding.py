"""Patch embedding: a Conv2D with kernel = stride = patch size, flattened to tokens."""

import keras
from keras import ops

from vit_keras.validation import check_positive


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
        self._check_image_shape(input_shape)
        self.projection.build(input_shape)

    def _check_image_shape(self, shape):
        if len(shape) != 4:
            raise ValueError(
                f"PatchEmbedding expects images of rank 4 (batch, height, width, channels); "
                f"found shape {tuple(shape)}."
            )
        for axis, size in (("height", shape[1]), ("width", shape[2])):
            if size is not None and size % self.patch_size:
                raise ValueError(
                    f"image {axis} must be divisible by patch_size={self.patch_size}; "
                    f"found {axis} {size}."
                )

    def call(self, images):
        self._check_image_shape(images.shape)
        x = self.projection(images)
        batch = ops.shape(x)[0]
        grid_h, grid_w = x.shape[1], x.shape[2]
        return ops.reshape(x, (batch, grid_h * grid_w, self.embed_dim))

    def compute_output_shape(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        n = None if h is None or w is None else (h // self.patch_size) * (w // self.patch_size)
        return (input_shape[0], n, self.embed_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            patch_size=self.patch_size,
            embed_dim=self.embed_dim,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
