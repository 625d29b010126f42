"""Dropout and the uniform draws of stochastic depth, fast under XLA on TensorFlow.

Keras' TensorFlow backend draws with `tf.random.stateless_uniform`'s default algorithm
("auto_select"), which derives its Philox key inside the graph; XLA on CPU folds that derivation
into every element's computation, and the draw runs about 40x slower than the same draw with an
algorithm named (`python scripts/bench/dropout_draws.py`; BENCHMARKS.md). Here TensorFlow draws
with Threefry named when XLA compiles the draw (the fastest of its generators there; TensorFlow's
own CPU kernels do not run Threefry); everywhere else, and on JAX and PyTorch, `keras.random`
draws as usual. Draws stay seeded by the layer's
`keras.random.SeedGenerator`, so a seeded layer repeats its masks.
"""

import keras
from keras import ops

from vit_keras.validation import check_rate


def _xla_compiles_tensorflow():
    """Whether TensorFlow is tracing a function XLA compiles (`tf.function(jit_compile=True)`)."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util  # the XLA context tf.function enters

    return not tf.executing_eagerly() and control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _tensorflow_seed(seed_generator):
    """The generator's next seed as the int32 pair TensorFlow's stateless ops take."""
    import tensorflow as tf

    seed = seed_generator.next()
    if seed.dtype == tf.int32:
        return seed
    return tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)


def uniform(shape, seed_generator, dtype="float32"):
    """Uniform draws in [0, 1) of `shape`, seeded by `seed_generator` (a `keras.random.SeedGenerator`).

    Args:
        shape: the output shape (Python ints or scalar tensors).
        seed_generator: the layer's `keras.random.SeedGenerator`.
        dtype: the output's floating dtype.

    Returns:
        A tensor of `shape` and `dtype`.
    """
    if not _xla_compiles_tensorflow():
        return keras.random.uniform(shape, dtype=dtype, seed=seed_generator)
    return _threefry_uniform(shape, seed_generator, dtype)


def _threefry_uniform(shape, seed_generator, dtype="float32"):
    """TensorFlow's Threefry draws in [0, 1) (only under XLA: TensorFlow's CPU kernels lack Threefry)."""
    import tensorflow as tf

    return tf.random.stateless_uniform(shape, _tensorflow_seed(seed_generator), dtype=dtype, alg="threefry")


def dropout(inputs, rate, seed_generator, noise_shape=None):
    """Zero each entry of `inputs` with probability `rate` and scale the rest by 1 / (1 - rate).

    Args:
        inputs: a floating tensor.
        rate: the drop probability, a Python float in [0, 1).
        seed_generator: the layer's `keras.random.SeedGenerator`.
        noise_shape: None, or a shape broadcastable to `inputs` (None entries: the input's size).

    Returns:
        A tensor of the shape and dtype of `inputs`.
    """
    inputs = ops.convert_to_tensor(inputs)
    if not _xla_compiles_tensorflow():
        return keras.random.dropout(inputs, rate, noise_shape=noise_shape, seed=seed_generator)
    shape = ops.shape(inputs)
    if noise_shape is not None:
        shape = tuple(size if size is not None else shape[axis] for axis, size in enumerate(noise_shape))
    keep = _threefry_uniform(shape, seed_generator) >= rate
    return ops.where(keep, inputs / ops.cast(1.0 - rate, inputs.dtype), ops.zeros_like(inputs))


@keras.saving.register_keras_serializable(package="vit_keras")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` with its TensorFlow draws fast under XLA (see the module docstring).

    Args:
        rate: the drop probability, in [0, 1).
        noise_shape: None, or the shape of the mask broadcast over the input.
        seed: seed of the layer's random generator; None draws one.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a floating tensor.
        training: Python bool; drop only when True.

    Returns:
        A tensor of the shape of `inputs`.

    Raises:
        ValueError: for a `rate` outside [0, 1).

    Example:

    >>> import numpy as np
    >>> layer = Dropout(0.5, seed=0)
    >>> x = np.ones((1000, 3), "float32")
    >>> sorted(set(np.asarray(layer(x, training=True)).ravel().tolist()))
    [0.0, 2.0]
    >>> bool(np.all(np.asarray(layer(x)) == x))
    True
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(check_rate("dropout", rate), noise_shape=noise_shape, seed=seed, **kwargs)

    def call(self, inputs, training=False):
        if training and self.rate > 0:
            return dropout(inputs, self.rate, self.seed_generator, self.noise_shape)
        return inputs
