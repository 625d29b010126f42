"""The MLP's exact GELU: the `erf` form on TensorFlow, Keras' own GELU elsewhere, same values."""

import math

import keras
import numpy as np
from conftest import to_numpy

from vit_keras.layers.gelu import backend_activation, exact_gelu
from vit_keras.layers.linear import BiasFusedDense


def _float64_gelu(x):
    return np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x.astype("float64")])


def test_exact_gelu_matches_the_definition_from_the_tails_to_the_centre():
    x = np.concatenate([np.linspace(-10, 10, 2001), [-40.0, -6.5, -1e-30, 0.0, 1e-30, 6.5, 40.0]]).astype("float32")
    got = to_numpy(exact_gelu(x))
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, _float64_gelu(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, to_numpy(keras.activations.gelu(x)), rtol=1e-6, atol=1e-6)
    assert np.all(np.isfinite(got)) and got[-1] == 40.0 and got[x.size - 7] == 0.0


def test_exact_gelu_keeps_bfloat16():
    x = keras.ops.cast(np.linspace(-4, 4, 33).astype("float32"), "bfloat16")
    got = exact_gelu(x)
    assert keras.backend.standardize_dtype(got.dtype) == "bfloat16"
    reference = _float64_gelu(to_numpy(keras.ops.cast(x, "float32")))
    np.testing.assert_allclose(to_numpy(keras.ops.cast(got, "float32")), reference, atol=0.03)


def test_mlp_gelu_is_the_erf_form_on_tensorflow_and_keras_own_elsewhere():
    gelu = keras.activations.gelu
    if keras.backend.backend() == "tensorflow":
        assert backend_activation(gelu) is exact_gelu
    else:  # PyTorch's and JAX's exact GELU already compute the erf form in one call
        assert backend_activation(gelu) is gelu
    assert backend_activation(keras.activations.relu) is keras.activations.relu
    assert backend_activation(None) is None


def test_bias_fused_dense_gelu_graph_has_erf_not_erfc_on_tensorflow():
    dense = BiasFusedDense(8, activation="gelu")
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    dense.build(x.shape)
    expected = to_numpy(keras.activations.gelu(x @ to_numpy(dense.kernel) + to_numpy(dense.bias)))
    np.testing.assert_allclose(to_numpy(dense(x)), expected, rtol=1e-6, atol=1e-6)
    assert dense.get_config()["activation"] == "gelu"  # saved files keep Keras' name
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        graph = tf.function(dense).get_concrete_function(tf.TensorSpec(x.shape, tf.float32)).graph
        kinds = {op.type for op in graph.get_operations()}
        assert "Erf" in kinds and "Erfc" not in kinds
