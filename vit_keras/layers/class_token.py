"""A learnable class token prepended to the token sequence."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vit_keras")
class ClassToken(keras.layers.Layer):
    """Prepend a learnable class token to a token sequence.

    The token is a (1, 1, dim) weight named `token`, shared by every image of the batch.

    Args:
        initializer: initializer of the token; zeros, as in the paper's code.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        tokens: a (batch, N, dim) tensor.

    Returns:
        A (batch, N + 1, dim) tensor: the class token, then `tokens`.

    Raises:
        ValueError: if the input is not of rank 3.

    Example:

    >>> import numpy as np
    >>> layer = ClassToken()
    >>> tuple(layer(np.ones((4, 16, 100), "float32")).shape)
    (4, 17, 100)
    >>> tuple(layer.token.shape)
    (1, 1, 100)
    """

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"ClassToken expects tokens of rank 3 (batch, tokens, dim); found shape {tuple(input_shape)}."
            )
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), initializer=self.initializer, name="token")

    def call(self, tokens):
        batch = ops.shape(tokens)[0]
        cls = ops.cast(ops.broadcast_to(self.token, (batch, 1, tokens.shape[-1])), tokens.dtype)
        return ops.concatenate([cls, tokens], axis=1)

    def compute_output_shape(self, input_shape):
        n = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], n, input_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(initializer=keras.initializers.serialize(self.initializer))
        return config
