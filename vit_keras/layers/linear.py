"""`x @ kernel + bias` with the bias add fused into the matmul where the backend allows it.

XLA (TensorFlow with `jit_compile`, JAX) fuses a matmul and its bias add by itself; eager
PyTorch runs them as two kernels unless they go through `torch.nn.functional.linear` (one
`addmm`). `linear` and `BiasFusedDense` route PyTorch there, or on the CPU in float32 to oneDNN
where it is faster than MKL (`vit_keras.layers.torch_linear`), and leave the other backends as
Keras has them.
"""

import keras
from keras import ops


def linear(x, kernel, bias):
    """`x @ kernel + bias` for a (..., in) `x`, an (in, out) `kernel` and an (out,) `bias`.

    Args:
        x: the input tensor.
        kernel: an (in, out) tensor or Keras variable (autocast under a mixed-precision policy).
        bias: an (out,) tensor or Keras variable.

    Returns:
        The (..., out) tensor; one fused kernel on PyTorch.

    Example:

    >>> import numpy as np
    >>> y = linear(np.ones((2, 3), "float32"), np.ones((3, 4), "float32"), np.arange(4, dtype="float32"))
    >>> [float(v) for v in keras.ops.convert_to_numpy(y)[0]]
    [3.0, 4.0, 5.0, 6.0]
    """
    if keras.backend.backend() == "torch":
        from vit_keras.layers import torch_linear

        return torch_linear.linear(*(ops.convert_to_tensor(t) for t in (x, kernel, bias)))
    return ops.add(ops.matmul(x, kernel), bias)


@keras.saving.register_keras_serializable(package="vit_keras")
class BiasFusedDense(keras.layers.Dense):
    """A `keras.layers.Dense` whose bias add is fused into its matmul on PyTorch (see `linear`).

    Same arguments, variables and saved layout as `keras.layers.Dense`; a layer without a bias,
    with LoRA or quantized takes `Dense`'s own path.
    """

    def call(self, inputs, training=None):
        plain = self.bias is None or self.lora_enabled or getattr(self, "quantization_mode", None)
        if plain or keras.backend.backend() != "torch":
            return super().call(inputs, training=training)
        x = linear(inputs, self.kernel, self.bias)
        return self.activation(x) if self.activation is not None else x
