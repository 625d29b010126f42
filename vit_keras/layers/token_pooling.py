"""Read the image representation off the token sequence."""

import keras
from keras import ops

from vit_keras.architectures import POOLINGS
from vit_keras.validation import check_choice


@keras.saving.register_keras_serializable(package="vit_keras")
class TokenPooling(keras.layers.Layer):
    """Pool a token sequence to one vector per image.

    Args:
        mode: one of `vit_keras.architectures.POOLINGS`: "token" takes the class token (the
            first token); "gap" takes the mean of the patch tokens (those after the prefix).
        num_prefix_tokens: leading tokens that are not patches (the class token).
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        tokens: a (batch, num_prefix_tokens + patches, dim) tensor.

    Returns:
        A (batch, dim) tensor.

    Raises:
        ValueError: for a `mode` not in `POOLINGS`.

    Example:

    >>> import numpy as np
    >>> tokens = np.arange(12, dtype="float32").reshape(1, 3, 4)
    >>> np.asarray(TokenPooling("token")(tokens)).tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    >>> np.asarray(TokenPooling("gap")(tokens)).tolist()
    [[6.0, 7.0, 8.0, 9.0]]
    """

    def __init__(self, mode="token", num_prefix_tokens=1, **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice("pooling", mode, POOLINGS)
        self.num_prefix_tokens = int(num_prefix_tokens)

    def call(self, tokens):
        if self.mode == "token":
            return tokens[:, 0]
        return ops.mean(tokens[:, self.num_prefix_tokens :], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode, num_prefix_tokens=self.num_prefix_tokens)
        return config
