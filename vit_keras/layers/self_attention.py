"""Multi-head self-attention with one fused query/key/value projection."""

import math

import keras
import numpy as np
from keras import ops

from vit_keras.layers import products
from vit_keras.layers.dropout import dropout
from vit_keras.layers.linear import linear
from vit_keras.validation import check_positive, check_rate

# The order of the fused q/k/v axis (timm's `attn.qkv`): each part is D wide, head-major (heads, d).
QKV_PARTS = ("query", "key", "value")
# The child groups in which `keras.layers.MultiHeadAttention` stores its four projections.
_LEGACY_PROJECTIONS = QKV_PARTS + ("output",)


def qkv_block(part, dim):
    """The slice of the fused (3D) q/k/v axis that holds `part`.

    Args:
        part: "query", "key" or "value".
        dim: the token width D.

    Returns:
        A `slice` into the last axis of `qkv_kernel` and into `qkv_bias`.
    """
    index = QKV_PARTS.index(part)
    return slice(index * dim, (index + 1) * dim)


def fused_attention(qkv, scale):
    """`softmax(q k^T * scale) v` per head, by the backend's fused kernel.

    Args:
        qkv: a (batch, tokens, 3, heads, d) tensor, its third axis in `QKV_PARTS` order.
        scale: the factor of the logits, usually 1 / sqrt(d).

    Returns:
        The (batch, tokens, heads, d) context.

    On PyTorch, `scaled_dot_product_attention` reads q, k and v as strided (batch, heads, tokens,
    d) views of `qkv` (as timm does): `keras.ops.dot_product_attention` would first copy each into
    a contiguous tensor, and slicing q, k and v out of `qkv` would scatter each gradient into a
    zero-filled copy of it. Elsewhere `keras.ops.dot_product_attention`, or two batched products
    (`products.attention`) on JAX's CPU backend and for bfloat16 products with float32 results.
    """
    if keras.backend.backend() == "torch":
        query, key, value = ops.convert_to_tensor(qkv).permute(2, 0, 3, 1, 4).unbind(0)
        return torch_attention(query, key, value, scale).transpose(1, 2)
    query, key, value = ops.unstack(qkv, axis=2)
    return _keras_attention(query, key, value, scale)


def fused_query_attention(query, key_value, scale):
    """`fused_attention` for queries of a few leading tokens against keys and values of all tokens.

    Args:
        query: a (batch, queries, heads, d) tensor.
        key_value: a (batch, tokens, 2, heads, d) tensor, its third axis [key | value].
        scale: the factor of the logits, usually 1 / sqrt(d).

    Returns:
        The (batch, queries, heads, d) context, by the same kernels as `fused_attention`.
    """
    if keras.backend.backend() == "torch":
        key, value = ops.convert_to_tensor(key_value).permute(2, 0, 3, 1, 4).unbind(0)
        query = ops.convert_to_tensor(query).transpose(1, 2)
        return torch_attention(query, key, value, scale).transpose(1, 2)
    key, value = ops.unstack(key_value, axis=2)
    return _keras_attention(query, key, value, scale)


def _keras_attention(query, key, value, scale):
    """Attention over (batch, tokens, heads, d) tensors on TensorFlow and JAX: `products.attention`
    for widened products and on JAX's CPU backend, else `keras.ops.dot_product_attention`."""
    if products.widened(query) or _jax_on_cpu():
        return products.attention(query, key, value, scale)
    return ops.dot_product_attention(query, key, value, scale=scale)


def _jax_on_cpu():
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


def torch_attention(query, key, value, scale):
    """PyTorch's attention over (batch, heads, tokens, d) tensors.

    `scaled_dot_product_attention` (flash kernels), except for bfloat16 on the CPU: there the flash
    kernel took 39.8 ms for the forward and backward pass of one ViT-Ti/16 layer at batch 32 on an
    AMD EPYC (Zen 4, AVX512_BF16), and two bfloat16 matmuls around a softmax 16.3 ms
    (`scripts/bench/bfloat16_kernels.py`). PyTorch's CPU softmax computes in float32 whatever its
    input, so the weights are rounded to bfloat16 once, as in the flash kernel.

    Args:
        query: a (batch, heads, queries, d) `torch.Tensor`.
        key: a (batch, heads, tokens, d) `torch.Tensor`.
        value: a (batch, heads, tokens, d) `torch.Tensor`.
        scale: the factor of the query-key products (1 / sqrt(d) in the paper).

    Returns:
        The (batch, heads, queries, d) context.
    """
    import torch

    if query.dtype != torch.bfloat16 or query.device.type != "cpu":
        return torch.nn.functional.scaled_dot_product_attention(query, key, value, scale=scale)
    weights = torch.softmax(torch.matmul(query, key.transpose(-1, -2)) * scale, dim=-1)
    return torch.matmul(weights, value)


def attention_output_spec(x, queries, num_heads, dtype, return_attention_scores):
    """The symbolic outputs of self-attention (or an encoder block) on a (batch, tokens, D) `x`.

    Args:
        x: the symbolic input.
        queries: None (every token) or the number of leading tokens whose outputs are computed.
        num_heads: attention heads.
        dtype: the layer's compute dtype.
        return_attention_scores: also give the (batch, heads, queries, tokens) weights.

    Returns:
        A (batch, queries, D) `keras.KerasTensor`, or a tuple of it and the weights.
    """
    batch, tokens, dim = x.shape
    queries = tokens if queries is None else queries
    out = keras.KerasTensor((batch, queries, dim), dtype=dtype)
    if not return_attention_scores:
        return out
    return out, keras.KerasTensor((batch, num_heads, queries, tokens), dtype=dtype)


def check_query_tokens(name, count, x):
    """`count` if it is None or an int from 1 to the token count of `x` (batch, tokens, D), else ValueError.

    Args:
        name: the argument's name, for the message.
        count: the value to check.
        x: the layer's input (anything with a `shape`); an unknown token count admits any count.

    Returns:
        `count` as an int, or None.
    """
    if count is None:
        return None
    shape = tuple(getattr(x, "shape", ()))
    tokens = shape[1] if len(shape) > 1 else None
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"{name} must be None or a positive integer; found {count!r}.")
    if tokens is not None and count > tokens:
        raise ValueError(f"{name} must be at most the number of tokens, {tokens}; found {count}.")
    return int(count)


@keras.saving.register_keras_serializable(package="vit_keras")
class SelfAttention(keras.layers.Layer):
    """Multi-head self-attention with a fused query/key/value projection.

    `softmax(q k^T / sqrt(d)) v` over `num_heads` heads of width d = D / num_heads, with
    `[q | k | v] = x @ qkv_kernel + qkv_bias` and the heads' outputs projected by
    `out_kernel`, `out_bias`. The core runs in `keras.ops.dot_product_attention` (PyTorch's
    `scaled_dot_product_attention`, `jax.nn.dot_product_attention`, flash/cuDNN kernels where
    the backend has them); the weights are formed explicitly only when they are returned or
    when attention dropout applies.

    Variables: `qkv_kernel` (D, 3D) and `qkv_bias` (3D,), whose last axis is
    [query | key | value], each head-major (heads, d), the order of timm's `attn.qkv`;
    `out_kernel` (D, D) whose input axis is head-major; `out_bias` (D,). Google's per-head
    query kernel (D, heads, d) is `qkv_kernel[:, :D].reshape(D, heads, d)`, its output kernel
    (heads, d, D) is `out_kernel.reshape(heads, d, D)`. Weights saved by a
    `keras.layers.MultiHeadAttention` of the same shape (child groups `query_dense`,
    `key_dense`, `value_dense`, `output_dense`) are converted when loaded.

    Args:
        num_heads: attention heads; must divide the token width D.
        dropout: dropout rate on the attention weights, in [0, 1).
        kernel_initializer: initializer of the kernels, applied (as a fresh clone) to each
            projection's per-head kernel, query, key and value (D, heads, d) and output
            (heads, d, D), with fans of D in and D out, as `keras.layers.MultiHeadAttention`
            does; a seeded model starts from the same weights as with it.
        bias_initializer: initializer of both biases.
        seed: seed of the attention-dropout generator; None draws one.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        x: a (batch, tokens, D) tensor.
        training: Python bool; True applies attention dropout.
        return_attention_scores: Python bool; also return the attention weights.
        query_tokens: None (every token attends) or n: only the first n tokens are queries
            (their q projection alone is computed; keys and values are every token's), and
            only their outputs are returned: the same values as the first n rows of the full
            output, for a fraction of its cost.

    Returns:
        A (batch, queries, D) tensor (queries = tokens unless `query_tokens` is given); with
        `return_attention_scores=True`, a tuple of it and the (batch, heads, queries, tokens)
        attention weights (softmax over the last axis).

    Raises:
        ValueError: for a non-positive `num_heads` or a `dropout` outside [0, 1) (on
            construction); if `num_heads` does not divide D (on build); when loading
            weights stored in neither layout.

    Example:

    >>> import numpy as np
    >>> layer = SelfAttention(num_heads=2)
    >>> x = np.zeros((4, 17, 16), "float32")
    >>> tuple(layer(x).shape)
    (4, 17, 16)
    >>> out, scores = layer(x, return_attention_scores=True)
    >>> tuple(scores.shape), tuple(layer.qkv_kernel.shape), tuple(layer.out_kernel.shape)
    ((4, 2, 17, 17), (16, 48), (16, 16))
    """

    def __init__(
        self,
        num_heads,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_positive("num_heads", num_heads)
        self.dropout = check_rate("attention_dropout", dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed
        self.supports_masking = True

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads={self.num_heads}; found embed_dim {dim}.")
        self.head_dim = dim // self.num_heads
        per_head = (self.num_heads, self.head_dim)
        # One initializer per projection, drawn per head as MultiHeadAttention does (in its order:
        # query, key, value, the dropout seed, output), so a seeded model starts from the same weights.
        query, key, value = (self._projection_initializer((dim,) + per_head, [0], [1, 2]) for _ in range(3))
        self.seed_generator = keras.random.SeedGenerator(self.seed) if self.dropout > 0 else None
        out = self._projection_initializer(per_head + (dim,), [0, 1], [2])

        def qkv_initializer(shape, dtype=None):
            return ops.concatenate([init(dtype) for init in (query, key, value)], axis=1)

        self.qkv_kernel = self.add_weight(name="qkv_kernel", shape=(dim, 3 * dim), initializer=qkv_initializer)
        self.qkv_bias = self.add_weight(name="qkv_bias", shape=(3 * dim,), initializer=self.bias_initializer)
        self.out_kernel = self.add_weight(
            name="out_kernel", shape=(dim, dim), initializer=lambda shape, dtype=None: out(dtype)
        )
        self.out_bias = self.add_weight(name="out_bias", shape=(dim,), initializer=self.bias_initializer)

    def __call__(self, x, *args, **kwargs):
        # Checked before Keras' call machinery, which would wrap the error in a multi-line report.
        check_query_tokens("query_tokens", kwargs.get("query_tokens"), x)
        return super().__call__(x, *args, **kwargs)

    def _projection_initializer(self, shape, input_axes, output_axes):
        """`dtype -> (D, D) kernel`, drawn at the per-head `shape` as `MultiHeadAttention`'s EinsumDense does.

        A fresh clone of `kernel_initializer`; a variance-scaling one counts its fans over
        `input_axes` and `output_axes` (D in, D out).
        """
        initializer = self.kernel_initializer.__class__.from_config(self.kernel_initializer.get_config())
        if isinstance(initializer, keras.initializers.VarianceScaling) and initializer.input_axes is None:
            config = initializer.get_config() | dict(
                seed=initializer.seed, input_axes=input_axes, output_axes=output_axes
            )
            initializer = initializer.__class__.from_config(config)
        dim = math.prod(shape[axis] for axis in input_axes)
        return lambda dtype: ops.reshape(initializer(shape, dtype=dtype), (dim, dim))

    def call(self, x, training=None, return_attention_scores=False, query_tokens=None):
        query_tokens = check_query_tokens("query_tokens", query_tokens, x)
        explicit = return_attention_scores or (training and self.dropout > 0)
        scale = 1.0 / math.sqrt(self.head_dim)
        if query_tokens is None:
            qkv = self._split_heads(linear(x, self.qkv_kernel, self.qkv_bias), 3)
            if explicit:
                query, key, value = ops.unstack(qkv, axis=2)  # QKV_PARTS, (batch, tokens, heads, d) each
            else:
                context = fused_attention(qkv, scale)
        else:
            query, key_value = self._project_queries_apart(x, query_tokens)
            if explicit:
                key, value = ops.unstack(key_value, axis=2)
            else:
                context = fused_query_attention(query, key_value, scale)
        if explicit:
            context, scores = self._explicit_attention(query, key, value, training)
        queries = ops.shape(x)[1] if query_tokens is None else query_tokens
        context = ops.reshape(context, (ops.shape(x)[0], queries, x.shape[-1]))
        out = linear(context, self.out_kernel, self.out_bias)
        return (out, scores) if return_attention_scores else out

    def _split_heads(self, projected, parts):
        """(batch, tokens, parts * D) -> (batch, tokens, parts, heads, d)."""
        batch, tokens = ops.shape(projected)[0], ops.shape(projected)[1]
        return ops.reshape(projected, (batch, tokens, parts, self.num_heads, self.head_dim))

    def _project_queries_apart(self, x, count):
        """(query (batch, count, heads, d) of the first `count` tokens, key/value (batch, tokens, 2, heads, d))."""
        dim = x.shape[-1]
        kernel, bias = ops.convert_to_tensor(self.qkv_kernel), ops.convert_to_tensor(self.qkv_bias)
        query = self._split_heads(linear(x[:, :count], kernel[:, :dim], bias[:dim]), 1)
        return ops.squeeze(query, axis=2), self._split_heads(linear(x, kernel[:, dim:], bias[dim:]), 2)

    def _explicit_attention(self, query, key, value, training):
        """(context (batch, tokens, heads, d), weights (batch, heads, tokens, tokens)), dropout applied."""
        weights = products.attention_weights(query, key, 1.0 / math.sqrt(self.head_dim))
        dropped = weights
        if training and self.dropout > 0:
            dropped = dropout(weights, self.dropout, self.seed_generator)
        return products.weighted_values(dropped, value), weights

    def compute_output_spec(self, x, training=None, return_attention_scores=False, query_tokens=None):
        return attention_output_spec(x, query_tokens, self.num_heads, self.compute_dtype, return_attention_scores)

    def load_own_variables(self, store):
        """Load the fused variables, or convert `MultiHeadAttention`'s per-head ones.

        Args:
            store: the weights store Keras' saving passes, pointed at this layer's path.

        Raises:
            ValueError: when the store holds neither this layer's four variables nor the
                four `MultiHeadAttention` projections.
        """
        if len(store):
            super().load_own_variables(store)
            return
        legacy = _read_legacy_projections(store)
        path = getattr(store, "_h5_entry_path", None) or self.name
        if legacy is None:
            raise ValueError(
                f"weights of attention layer {path!r}: expected the variables qkv_kernel, qkv_bias, out_kernel, "
                f"out_bias or the MultiHeadAttention groups {', '.join(p + '_dense' for p in _LEGACY_PROJECTIONS)}; "
                "found neither."
            )
        heads = tuple(np.shape(legacy["query"][1]))
        if heads != (self.num_heads, self.head_dim):
            raise ValueError(
                f"weights of attention layer {path!r}: the MultiHeadAttention query bias has shape {heads} "
                f"(heads, head width); the layer expects {(self.num_heads, self.head_dim)}."
            )
        variables = [self.qkv_kernel, self.qkv_bias, self.out_kernel, self.out_bias]
        values = fuse_legacy_projections(legacy)
        for variable, value in zip(variables, values):
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"weights of attention layer {path!r}: the MultiHeadAttention weights give {variable.name} "
                    f"shape {tuple(value.shape)}; the layer expects {tuple(variable.shape)}."
                )
        for variable, value in zip(variables, values):
            variable.assign(value)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            dropout=self.dropout,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            seed=self.seed,
        )
        return config


def _read_legacy_projections(store):
    """{projection: (kernel, bias)} from the MultiHeadAttention child groups; None if absent.

    Keras' H5 stores are re-pointed by `get(path)`; the store is pointed back at this layer's
    path before returning, so the caller's view of it is unchanged.
    """
    path = getattr(store, "_h5_entry_path", None)
    if path is None or not hasattr(store, "get"):
        return None
    found = {}
    try:
        for projection in _LEGACY_PROJECTIONS:
            for child in (f"{projection}_dense", f"_{projection}_dense"):
                entry = store.get(f"{path}/{child}" if path else child)
                if len(entry) == 2:  # read now: a sharded store may close this file on the next get
                    found[projection] = (np.array(entry["0"]), np.array(entry["1"]))
                    break
    finally:
        store.get(path)
    return found if len(found) == len(_LEGACY_PROJECTIONS) else None


def fuse_legacy_projections(projections):
    """`MultiHeadAttention`'s per-head weights as [qkv_kernel, qkv_bias, out_kernel, out_bias].

    Args:
        projections: {"query" | "key" | "value": (kernel (D, heads, d), bias (heads, d)),
            "output": (kernel (heads, d, D), bias (D,))} as NumPy arrays.

    Returns:
        The four fused arrays, (D, 3D), (3D,), (D, D) and (D,).
    """
    kernels = [np.asarray(projections[p][0]) for p in QKV_PARTS]
    biases = [np.asarray(projections[p][1]) for p in QKV_PARTS]
    dim = kernels[0].shape[0]
    qkv_kernel = np.concatenate([k.reshape(dim, -1) for k in kernels], axis=1)
    qkv_bias = np.concatenate([b.reshape(-1) for b in biases])
    out_kernel, out_bias = (np.asarray(a) for a in projections["output"])
    return [qkv_kernel, qkv_bias, out_kernel.reshape(-1, out_kernel.shape[-1]), out_bias]
