"""Stochastic depth: drop a residual branch per sample during training."""

import keras

from vit_keras.layers.dropout import dropout
from vit_keras.validation import check_rate


@keras.saving.register_keras_serializable(package="vit_keras")
class DropPath(keras.layers.Layer):
    """Stochastic depth: drop the whole input of a sample with probability `rate`.

    In training, each sample is zeroed with probability `rate` and the others are scaled by
    1 / (1 - rate), so the expectation is unchanged; in inference the input passes as is.

    Args:
        rate: drop probability, in [0, 1).
        seed: seed of the layer's random generator; None draws one.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        x: a tensor whose first axis is the batch.
        training: Python bool; drop only when True.

    Returns:
        A tensor of the shape of `x`.

    Raises:
        ValueError: for a `rate` outside [0, 1).

    Example:

    >>> import numpy as np
    >>> layer = DropPath(0.5, seed=0)
    >>> x = np.ones((1000, 3), "float32")
    >>> out = np.asarray(layer(x, training=True))
    >>> sorted(set(out.ravel().tolist()))
    [0.0, 2.0]
    >>> bool(np.all(np.asarray(layer(x, training=False)) == x))
    True
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate("drop_path", rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate > 0 else None

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        return dropout(x, self.rate, self.seed_generator, noise_shape=(None,) + (1,) * (len(x.shape) - 1))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
