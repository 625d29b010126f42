"""bfloat16 products with float32 results, for XLA-compiled inference on TensorFlow and JAX.

XLA's CPU backend computes a product of bfloat16 tensors that has a bfloat16 result through
float32, at about float32 speed; with bfloat16 inputs and a float32 result it runs the CPU's
bfloat16 dot-product instructions (AVX512_BF16, AMX). For the products of a ViT-Ti/16 forward
pass at 224 px, batch 32, on an AMD EPYC (Zen 4, AVX512_BF16): TensorFlow + XLA 232 against 133
GFLOP/s, JAX 337 against 192 (`scripts/bench/xla_products.py`, `bfloat16_kernels.py`).

Inside `float32_results()`, the projections (`linear`, `BiasFusedDense`) and the attention
(`SelfAttention`) of a model computing in bfloat16 on TensorFlow or JAX ask for float32 results,
add their bias or take their softmax in float32, and round once to bfloat16. The serving export
traces its XLA-compiled forward pass in it. TensorFlow has these products under XLA only (no
kernel of its own), and they have no gradient there: the context is for a forward pass compiled
by XLA, not for training.

XLA's CPU compiler (TensorFlow 2.21) aborts the process, a failed CHECK in its YNNPACK emitter,
when such a product's only consumer is a reduction (`reduce_sum(dot)`, `reduce_max(dot)`); every
product here feeds an element-wise operation first (bias add, scale, transpose).
`tests/test_float32_products.py` compiles and serves each architecture option in a subprocess.
"""

import contextlib
import threading

import keras
from keras import ops

_STATE = threading.local()


@contextlib.contextmanager
def float32_results(enabled=True):
    """Within: bfloat16 products on TensorFlow and JAX return float32 results (module docstring).

    Args:
        enabled: False leaves the products as they are (so callers can pass a condition).

    Example:

    >>> import numpy as np
    >>> x = np.ones((2, 3), "float32")
    >>> with float32_results():
    ...     str(keras.ops.convert_to_numpy(matmul(x, x.T)).dtype)  # float32 inputs: unchanged
    'float32'
    """
    before = getattr(_STATE, "enabled", False)
    _STATE.enabled = bool(enabled) or before
    try:
        yield
    finally:
        _STATE.enabled = before


def widened(x):
    """Whether a product of `x` takes a float32 result: bfloat16 `x` on TensorFlow or JAX, in `float32_results`."""
    if not getattr(_STATE, "enabled", False) or keras.backend.backend() not in ("tensorflow", "jax"):
        return False
    return keras.backend.standardize_dtype(x.dtype) == "bfloat16"


def _float32_product(a, b, adjoint_b=False):
    """`a @ b` (or `a @ b^T`) of bfloat16 tensors with a float32 result; `a` and `b` of equal rank."""
    if keras.backend.backend() == "jax":
        import jax.numpy as jnp

        b = jnp.swapaxes(b, -1, -2) if adjoint_b else b
        return jnp.matmul(a, b, preferred_element_type=jnp.float32)
    import tensorflow as tf

    return tf.raw_ops.BatchMatMulV3(x=a, y=b, adj_y=adjoint_b, Tout=tf.float32)


def matmul(x, kernel):
    """`x @ kernel` for a (..., in) `x` and an (in, out) `kernel`; float32 when `widened(x)`.

    Args:
        x: the input tensor.
        kernel: an (in, out) tensor or Keras variable (autocast to `x`'s dtype).

    Returns:
        The (..., out) product: float32 for a widened `x`, else in `x`'s dtype.
    """
    if not widened(x):
        return ops.matmul(x, kernel)
    kernel = ops.cast(kernel, "bfloat16")
    flat = ops.reshape(x, (-1, x.shape[-1]))
    product = _float32_product(flat, kernel)
    return ops.reshape(product, tuple(ops.shape(x)[:-1]) + (kernel.shape[-1],))


def attention_weights(query, key, scale):
    """`softmax(q k^T * scale)` per head, the softmax in float32, rounded to `query`'s dtype.

    Args:
        query: a (batch, queries, heads, d) tensor.
        key: a (batch, tokens, heads, d) tensor.
        scale: the factor of the logits.

    Returns:
        The (batch, heads, queries, tokens) weights in `query`'s dtype. The product runs over
        (batch, heads) with the tokens and features as its matrix axes; for a widened `query`
        (`widened`) it takes a float32 result.
    """
    query, key = (ops.transpose(t, (0, 2, 1, 3)) for t in (query, key))
    if widened(query):
        logits = _float32_product(query, key, adjoint_b=True)
    else:
        logits = ops.cast(ops.matmul(query, ops.swapaxes(key, -1, -2)), "float32")
    return ops.cast(ops.softmax(logits * scale, axis=-1), query.dtype)


def weighted_values(weights, value):
    """The context `weights @ v` per head, back in the (batch, queries, heads, d) layout.

    Args:
        weights: (batch, heads, queries, tokens) attention weights (`attention_weights`).
        value: a (batch, tokens, heads, d) tensor.

    Returns:
        The (batch, queries, heads, d) context in `value`'s dtype (a float32 product for a
        widened `weights`, rounded once).
    """
    dtype = value.dtype
    value = ops.transpose(value, (0, 2, 1, 3))
    context = _float32_product(weights, value) if widened(weights) else ops.matmul(weights, value)
    return ops.cast(ops.transpose(context, (0, 2, 1, 3)), dtype)


def attention(query, key, value, scale):
    """`softmax(q k^T * scale) v` per head: two batched products around a float32 softmax.

    `weighted_values(attention_weights(query, key, scale), value)`: each product runs over
    (batch, heads) with the tokens and features as its matrix axes (the inputs are transposed to
    that layout first); for a widened `query` (`widened`) both products take float32 results and
    the context is rounded once. `SelfAttention` runs it for widened products and on JAX's CPU
    backend, where it was faster than `keras.ops.dot_product_attention` for ViT-Ti/16 at 224 px,
    batch 32 (AMD EPYC Zen 4, float32 and bfloat16, same-process A/B by
    `scripts/bench/attention_paths.py`): training step 1.03-1.11x, forward pass 1.07-1.11x; a
    batch of one image 0.89-0.91x. On TensorFlow + XLA both compile to the same products.

    Args:
        query: a (batch, queries, heads, d) tensor.
        key: a (batch, tokens, heads, d) tensor.
        value: a (batch, tokens, heads, d) tensor.
        scale: the factor of the logits.

    Returns:
        The (batch, queries, heads, d) context in `query`'s dtype.
    """
    return weighted_values(attention_weights(query, key, scale), value)
