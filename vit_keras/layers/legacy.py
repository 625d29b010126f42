"""The layer names and constructor arguments of the older, TensorFlow-only vit-keras library.

`AddPositionEmbs` and `TransformerBlock` are thin subclasses of `PositionEmbedding` and
`TransformerEncoderBlock` (same weights, same computation) that take the old library's
arguments and, for `TransformerBlock`, return what its `call` returned; `ClassToken` has
kept its name. Code that built models from those layers runs on Keras 3, on any backend.
"""

import keras

from vit_keras.layers.encoder_block import TransformerEncoderBlock
from vit_keras.layers.position_embedding import PositionEmbedding


@keras.saving.register_keras_serializable(package="vit_keras")
class AddPositionEmbs(PositionEmbedding):
    """The old library's `AddPositionEmbs`: a `PositionEmbedding` for a class token and a square grid.

    As in the old library, it takes no required argument and its table starts as normal
    noise with stddev 0.06.

    Args:
        grid_size: (H, W) patch grid; inferred as square from the token count if None.
        num_prefix_tokens: leading tokens (the class token) that are not on the grid.
        initializer: initializer of the table; normal with stddev 0.06 if None.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a (batch, prefix + H * W, D) tensor.

    Returns:
        `inputs` plus the table, of the same shape.

    Example:

    >>> import numpy as np
    >>> layer = AddPositionEmbs()
    >>> tuple(layer(np.zeros((2, 17, 8), "float32")).shape), layer.grid_size
    ((2, 17, 8), (4, 4))
    """

    def __init__(self, grid_size=None, num_prefix_tokens=1, initializer=None, **kwargs):
        initializer = initializer or keras.initializers.RandomNormal(stddev=0.06)
        super().__init__(grid_size=grid_size, num_prefix_tokens=num_prefix_tokens, initializer=initializer, **kwargs)


@keras.saving.register_keras_serializable(package="vit_keras")
class TransformerBlock(TransformerEncoderBlock):
    """The old library's `TransformerBlock`: a `TransformerEncoderBlock` that also returns its attention.

    Same arguments as the old layer (`num_heads`, `mlp_dim`, `dropout`), and like it, calling
    the layer returns `(outputs, attention_weights)`.

    Args:
        num_heads: attention heads; must divide the token width D.
        mlp_dim: hidden width of the MLP.
        dropout: dropout after attention and in the MLP.
        **kwargs: the other `TransformerEncoderBlock` arguments (`attention_dropout`,
            `drop_path`, `layer_norm_epsilon`) and standard layer arguments (`name`, `dtype`).

    Call arguments:
        inputs: a (batch, tokens, D) tensor.
        training: Python bool; True applies dropout.

    Returns:
        A tuple: the (batch, tokens, D) outputs and the (batch, heads, tokens, tokens)
        attention weights.

    Example:

    >>> import numpy as np
    >>> block = TransformerBlock(num_heads=2, mlp_dim=32, dropout=0.1)
    >>> outputs, weights = block(np.zeros((4, 17, 16), "float32"))
    >>> tuple(outputs.shape), tuple(weights.shape)
    ((4, 17, 16), (4, 2, 17, 17))
    """

    def __init__(self, num_heads, mlp_dim, dropout, **kwargs):
        super().__init__(num_heads=num_heads, mlp_dim=mlp_dim, dropout=dropout, **kwargs)

    def call(self, inputs, training=None):
        return super().call(inputs, training=training, return_attention_scores=True)

    def compute_output_spec(self, inputs, training=None):
        return super().compute_output_spec(inputs, return_attention_scores=True)
