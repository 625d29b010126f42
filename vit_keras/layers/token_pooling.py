"""Read the image representation off the token sequence."""

import keras
from keras import ops

from vit_keras.validation import check_choice

POOLING_MODES = ("token", "gap")


@keras.saving.register_keras_serializable(package="vit_keras")
class TokenPooling(keras.layers.Layer):
    """(batch, prefix + N, D) -> (batch, D): the class token ("token") or the mean of the
    patch tokens ("gap")."""

    def __init__(self, mode="token", num_prefix_tokens=1, **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice("pooling", mode, POOLING_MODES)
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
