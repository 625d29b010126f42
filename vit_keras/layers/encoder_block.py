"""The pre-norm Transformer encoder block of ViT."""

import keras

from vit_keras.layers.drop_path import DropPath
from vit_keras.layers.dropout import Dropout
from vit_keras.layers.linear import BiasFusedDense
from vit_keras.layers.self_attention import SelfAttention, attention_output_spec, check_query_tokens
from vit_keras.validation import check_positive, check_rate


@keras.saving.register_keras_serializable(package="vit_keras")
class TransformerEncoderBlock(keras.layers.Layer):
    """The pre-norm Transformer encoder block of ViT.

    `x + DropPath(Dropout(SelfAttention(LN(x))))`, then `x + DropPath(MLP(LN(x)))`, where the MLP is
    Dense(mlp_dim, exact GELU) -> Dropout -> Dense(D) -> Dropout. The sublayers are `norm1`,
    `attention` (a `SelfAttention`: fused query/key/value kernel (D, 3D) and bias (3D,),
    output kernel (D, D) and bias (D,)), `norm2`, `mlp_in` and `mlp_out`. Dropout and
    stochastic depth are called only in training and at a rate above 0.

    Args:
        num_heads: attention heads; must divide the token width D.
        mlp_dim: hidden width of the MLP.
        dropout: dropout after attention and in the MLP.
        attention_dropout: dropout on the attention weights (in training, the weights are then
            formed explicitly instead of by the fused kernel).
        drop_path: stochastic-depth rate of both residual branches.
        layer_norm_epsilon: epsilon of both LayerNorms.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        x: a (batch, tokens, D) tensor.
        training: Python bool; True applies dropout and stochastic depth.
        return_attention_scores: Python bool; also return the attention weights (this takes
            the unfused attention path; the output is the same).
        output_tokens: None (every token) or n: compute and return only the first n tokens
            (they attend to every token): the first n rows of the full output, at a fraction
            of its cost. A `ViT` whose head reads the class token alone (`pooling="token"`)
            calls its last block with `output_tokens=1`.

    Returns:
        A (batch, tokens, D) tensor (n tokens with `output_tokens=n`); with
        `return_attention_scores=True`, a tuple of it and the (batch, heads, tokens or n,
        tokens) attention weights (softmax over the last axis).

    Raises:
        ValueError: for a non-positive `num_heads` or `mlp_dim` or a rate outside [0, 1)
            (on construction); if `num_heads` does not divide D (on build).

    Example:

    >>> import numpy as np
    >>> block = TransformerEncoderBlock(num_heads=2, mlp_dim=32)
    >>> x = np.zeros((4, 17, 16), "float32")
    >>> tuple(block(x).shape)
    (4, 17, 16)
    >>> out, scores = block(x, return_attention_scores=True)
    >>> tuple(scores.shape)
    (4, 2, 17, 17)
    >>> tuple(block(x, output_tokens=1).shape)
    (4, 1, 16)
    """

    def __init__(
        self,
        num_heads,
        mlp_dim,
        dropout=0.0,
        attention_dropout=0.0,
        drop_path=0.0,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_positive("num_heads", num_heads)
        self.mlp_dim = check_positive("mlp_dim", mlp_dim)
        self.dropout = check_rate("dropout", dropout)
        self.attention_dropout = check_rate("attention_dropout", attention_dropout)
        self.drop_path = check_rate("drop_path", drop_path)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.supports_masking = True

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads={self.num_heads}; found embed_dim {dim}.")
        policy = self.dtype_policy
        self.norm1 = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=policy, name="norm1")
        self.attention = SelfAttention(self.num_heads, dropout=self.attention_dropout, dtype=policy, name="attention")
        self.norm2 = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=policy, name="norm2")
        self.mlp_in = BiasFusedDense(self.mlp_dim, activation="gelu", dtype=policy, name="mlp_in")
        self.mlp_out = BiasFusedDense(dim, dtype=policy, name="mlp_out")
        # None at rate 0: `_dropout` / `_drop_path` then return their input and add nothing to the graph.
        self.dropout_layer = Dropout(self.dropout, dtype=policy) if self.dropout else None
        self.drop_path_layer = DropPath(self.drop_path, dtype=policy) if self.drop_path else None

        self.norm1.build(input_shape)
        self.attention.build(input_shape)
        self.norm2.build(input_shape)
        self.mlp_in.build(input_shape)
        self.mlp_out.build(tuple(input_shape[:-1]) + (self.mlp_dim,))

    def __call__(self, x, *args, **kwargs):
        # Checked before Keras' call machinery, which would wrap the error in a multi-line report.
        check_query_tokens("output_tokens", kwargs.get("output_tokens"), x)
        return super().__call__(x, *args, **kwargs)

    def _dropout(self, x, training):
        return self.dropout_layer(x, training=training) if training and self.dropout_layer else x

    def _drop_path(self, x, training):
        return self.drop_path_layer(x, training=training) if training and self.drop_path_layer else x

    def call(self, x, training=None, return_attention_scores=False, output_tokens=None):
        output_tokens = check_query_tokens("output_tokens", output_tokens, x)
        y = self.norm1(x)
        if return_attention_scores:
            y, scores = self.attention(y, training=training, return_attention_scores=True, query_tokens=output_tokens)
        else:
            y = self.attention(y, training=training, query_tokens=output_tokens)
        if output_tokens is not None:
            x = x[:, :output_tokens]
        x = x + self._drop_path(self._dropout(y, training), training)

        y = self._dropout(self.mlp_in(self.norm2(x)), training)
        y = self._dropout(self.mlp_out(y), training)
        x = x + self._drop_path(y, training)
        return (x, scores) if return_attention_scores else x

    def compute_output_spec(self, x, training=None, return_attention_scores=False, output_tokens=None):
        return attention_output_spec(x, output_tokens, self.num_heads, self.compute_dtype, return_attention_scores)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            mlp_dim=self.mlp_dim,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            drop_path=self.drop_path,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )
        return config
