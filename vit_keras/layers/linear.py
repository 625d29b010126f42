"""`x @ kernel + bias` with the bias add fused into the matmul where the backend allows it.

XLA (TensorFlow with `jit_compile`, JAX) fuses a matmul and its bias add by itself; eager
PyTorch runs them as two kernels unless they go through `torch.nn.functional.linear` (one
`addmm`). `linear` and `BiasFusedDense` route PyTorch there, or on the CPU in float32 to oneDNN
where it is faster than MKL (`vit_keras.layers.torch_linear`). On TensorFlow and JAX, within
`vit_keras.layers.products.float32_results`, a bfloat16 product takes a float32 result, its bias
is added in float32 and the sum rounded once to bfloat16. Keras' exact GELU as the activation runs
as `vit_keras.layers.gelu.exact_gelu` on TensorFlow (its `erf` form, faster under XLA).
"""

import keras
from keras import ops

from vit_keras.layers import gelu, products


def linear(x, kernel, bias, activation=None):
    """`activation(x @ kernel + bias)` for a (..., in) `x`, an (in, out) `kernel` and an (out,) `bias`.

    Args:
        x: the input tensor.
        kernel: an (in, out) tensor or Keras variable (autocast under a mixed-precision policy).
        bias: an (out,) tensor or Keras variable.
        activation: None, or an element-wise function applied to the sum (in float32 for a
            widened product, before the one rounding to bfloat16).

    Returns:
        The (..., out) tensor, in `x`'s dtype; the product and bias add one kernel on PyTorch.

    Example:

    >>> import numpy as np
    >>> y = linear(np.ones((2, 3), "float32"), np.ones((3, 4), "float32"), np.arange(4, dtype="float32"))
    >>> [float(v) for v in keras.ops.convert_to_numpy(y)[0]]
    [3.0, 4.0, 5.0, 6.0]
    """
    activation = gelu.backend_activation(activation)
    if keras.backend.backend() == "torch":
        from vit_keras.layers import torch_linear

        y = torch_linear.linear(*(ops.convert_to_tensor(t) for t in (x, kernel, bias)))
    elif products.widened(x):
        y = products.matmul(x, kernel) + ops.cast(bias, "float32")
        return ops.cast(activation(y) if activation is not None else y, x.dtype)
    else:
        y = ops.add(ops.matmul(x, kernel), bias)
    return activation(y) if activation is not None else y


@keras.saving.register_keras_serializable(package="vit_keras")
class BiasFusedDense(keras.layers.Dense):
    """A `keras.layers.Dense` computed by `linear`: its bias add fused into its matmul on PyTorch,
    a float32 product in `float32_results` on TensorFlow and JAX (module docstring).

    Same arguments, variables and saved layout as `keras.layers.Dense`; a layer without a bias,
    with LoRA or quantized takes `Dense`'s own path.
    """

    def call(self, inputs, training=None):
        plain = self.bias is None or self.lora_enabled or getattr(self, "quantization_mode", None)
        if plain:
            return super().call(inputs, training=training)
        return linear(inputs, self.kernel, self.bias, self.activation)
