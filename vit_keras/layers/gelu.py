"""The exact GELU, `x * Φ(x)`, written as `0.5 * x * (1 + erf(x / √2))` on TensorFlow.

TensorFlow's `tf.nn.gelu(approximate=False)` (what `keras.activations.gelu` runs there) writes
it with `erfc(-x / √2)`; XLA's CPU compiler expands `erfc` into a piecewise form: the MLP's bias
add + GELU took 1.6-1.8x the time of one pass over the same memory, the `erf` form 1.06x (6,304 x
768 float32, AMD EPYC Zen 4, `scripts/bench/gelu_forms.py`). The `erf` form is the
definition PyTorch (`torch.nn.functional.gelu`) and JAX (`jax.nn.gelu(approximate=False)`)
compute. The two forms differ only in the negative tail (x below about -5), where `1 + erf` loses
relative precision on values below 1e-6 in magnitude; the parity fixture's logits stay within
1.5e-6 of timm's with either.
"""

import keras
from keras import ops

_SQRT_HALF = 0.7071067811865476


def exact_gelu(x):
    """`0.5 * x * (1 + erf(x / √2))`, element-wise: the exact (not tanh-approximated) GELU.

    Args:
        x: a floating-point tensor.

    Returns:
        A tensor of `x`'s shape and dtype.

    Example:

    >>> import numpy as np
    >>> [round(float(v), 4) for v in keras.ops.convert_to_numpy(exact_gelu(np.array([-1.0, 0.0, 2.0], "float32")))]
    [-0.1587, 0.0, 1.9545]
    """
    x = ops.convert_to_tensor(x)
    return 0.5 * x * (1.0 + ops.erf(x * ops.cast(_SQRT_HALF, x.dtype)))


def backend_activation(activation):
    """`activation`, with Keras' exact GELU replaced by `exact_gelu` on TensorFlow.

    Args:
        activation: an element-wise function or None (a layer's `activation`).

    Returns:
        `exact_gelu` for `keras.activations.gelu` on the TensorFlow backend (module docstring),
        else `activation` itself. PyTorch and JAX already compute the `erf` form in one call.
    """
    if activation is keras.activations.gelu and keras.backend.backend() == "tensorflow":
        return exact_gelu
    return activation
