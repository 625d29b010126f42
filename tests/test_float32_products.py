"""bfloat16 products with float32 results (`vit_keras.layers.products`) and the export's precision."""

import os

import keras
import numpy as np
import pytest
from conftest import to_numpy

import vit_keras
from vit_keras import ViT
from vit_keras.layers import SelfAttention, products
from vit_keras.layers.linear import BiasFusedDense, linear

WIDENS = keras.backend.backend() in ("tensorflow", "jax")
SMALL = dict(image_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, mlp_dim=128, num_classes=10)


def _compiled(fn):
    """`fn` compiled by XLA on TensorFlow and JAX (TensorFlow has the widened products under XLA only)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True, autograph=False)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn


def _widened(fn):
    """`fn` called within `float32_results`, XLA-compiled."""

    def call(*args):
        with products.float32_results():
            return fn(*args)

    return _compiled(call)


def _randomized(model, seed=0):
    """`model` with every weight drawn at random (a fresh model's zero biases hide rounding)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.2, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def _bf16(x):
    return keras.ops.cast(keras.ops.convert_to_tensor(x), "bfloat16")


def test_products_are_float32_within_the_context_only(rng):
    x, kernel = _bf16(rng.normal(size=(2, 5, 8))), _bf16(rng.normal(size=(8, 3)))
    widened = to_numpy(_widened(products.matmul)(x, kernel))
    plain = to_numpy(_compiled(products.matmul)(x, kernel))
    assert widened.dtype == (np.float32 if WIDENS else plain.dtype)
    assert keras.backend.standardize_dtype(plain.dtype) == "bfloat16"
    exact = to_numpy(keras.ops.cast(x, "float32")) @ to_numpy(keras.ops.cast(kernel, "float32"))
    # bfloat16 inputs are exact in float32: a float32 result is the float32 product (up to the order of the sums)
    if WIDENS:
        np.testing.assert_allclose(widened, exact, rtol=1e-5, atol=1e-5)
    assert not products.widened(x)  # the context ended with the call


def test_float32_inputs_and_a_raised_error_leave_the_products_alone(rng):
    x = rng.normal(size=(3, 4)).astype("float32")
    with products.float32_results():
        assert not products.widened(keras.ops.convert_to_tensor(x))
        with products.float32_results(enabled=False):  # nested: the outer context still holds
            assert products.widened(_bf16(x)) == WIDENS
    with pytest.raises(RuntimeError, match="inside"):
        with products.float32_results():
            raise RuntimeError("inside")
    assert not products.widened(_bf16(x))


def test_linear_rounds_once_from_float32(rng):
    x, kernel, bias = (_bf16(rng.normal(size=shape)) for shape in ((4, 16), (16, 8), (8,)))
    result = _widened(linear)(x, kernel, bias)
    assert keras.backend.standardize_dtype(result.dtype) == "bfloat16"
    y = to_numpy(keras.ops.cast(result, "float32"))
    as32 = [to_numpy(keras.ops.cast(t, "float32")) for t in (x, kernel, bias)]
    exact = as32[0] @ as32[1] + as32[2]
    rounded_once = to_numpy(keras.ops.cast(_bf16(exact), "float32"))
    if WIDENS:
        np.testing.assert_allclose(y, rounded_once, rtol=1e-2, atol=1e-2)
        assert np.mean(y == rounded_once) > 0.95  # one rounding of the float32 sum, not two
    else:
        np.testing.assert_allclose(y, exact, rtol=3e-2, atol=6e-2)


@pytest.mark.parametrize("query_tokens", [None, 1])
def test_widened_attention_and_mlp_track_float32(rng, query_tokens):
    x = rng.normal(size=(2, 9, 32)).astype("float32")
    reference = SelfAttention(4, name="attention")
    reference(x)
    _randomized(reference)
    fast = SelfAttention(4, dtype="mixed_bfloat16", name="attention")
    fast(x)
    fast.set_weights(reference.get_weights())
    expected = to_numpy(reference(x, query_tokens=query_tokens))
    widened = to_numpy(keras.ops.cast(_widened(lambda t: fast(t, query_tokens=query_tokens))(x), "float32"))
    assert np.abs(widened - expected).max() < 0.03 * np.abs(expected).max()
    assert np.linalg.norm(widened - expected) / np.linalg.norm(expected) < 0.01

    dense = BiasFusedDense(16, activation="gelu", dtype="mixed_bfloat16")
    dense(x)
    _randomized(dense, seed=1)
    kernel, bias = (w for w in dense.get_weights())
    x16 = to_numpy(keras.ops.cast(_bf16(x), "float32"))  # what the layer multiplies
    kernel16, bias16 = (to_numpy(keras.ops.cast(_bf16(w), "float32")) for w in (kernel, bias))
    exact = to_numpy(keras.activations.gelu(keras.ops.convert_to_tensor(x16 @ kernel16 + bias16)))
    got = to_numpy(keras.ops.cast(_widened(dense)(x), "float32"))
    np.testing.assert_allclose(got, exact, rtol=3e-2, atol=3e-2)
    if WIDENS:  # the activation of the float32 sum, rounded once
        assert np.mean(got == to_numpy(keras.ops.cast(_bf16(exact), "float32"))) > 0.9


def test_widened_vit_forward_tracks_float32(rng):
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    reference = _randomized(ViT(**SMALL, dtype="float32"))
    fast = ViT(**SMALL, dtype="mixed_bfloat16")
    fast.set_weights(reference.get_weights())
    expected = to_numpy(reference(images, training=False))
    widened = to_numpy(_widened(lambda t: fast(t, training=False))(images))
    assert widened.dtype == np.float32
    assert np.linalg.norm(widened - expected) / np.linalg.norm(expected) < 0.03


# ----------------------------------------------------------------------------- the export's precision


def _serve(path, images):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    return loaded, loaded.signatures["serving_default"](images=tf.constant(images))["logits"].numpy()


def _graph_ops(loaded):
    """{(op type, its dtype attributes)} of every node in the loaded SavedModel's functions."""
    found = set()
    graph = loaded.signatures["serving_default"].graph.as_graph_def()
    for function in graph.library.function:
        for node in function.node_def:
            dtypes = tuple(sorted((k, v.type) for k, v in node.attr.items() if v.type))
            found.add((node.op, dtypes))
    return found


@pytest.mark.single_backend
def test_bfloat16_export_of_a_float32_model_takes_float32_products(rng, tmp_path):
    import tensorflow as tf

    model = _randomized(ViT(**SMALL))
    images = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    path = vit_keras.export_saved_model(model, tmp_path / "bf16", jit_compile=True, precision="mixed_bfloat16")
    loaded, served = _serve(path, images)
    batch_matmuls = [dict(attrs) for op, attrs in _graph_ops(loaded) if op == "BatchMatMulV3"]
    bf16, f32 = tf.bfloat16.as_datatype_enum, tf.float32.as_datatype_enum
    assert any(a.get("Ta") == bf16 and a.get("Tout") == f32 for a in batch_matmuls), batch_matmuls
    expected = to_numpy(model(images, training=False))
    assert np.linalg.norm(served - expected) / np.linalg.norm(expected) < 0.03
    assert model.dtype_policy.name == "float32"  # the exported copy, not the model, changed


@pytest.mark.single_backend
def test_float32_export_of_a_bfloat16_model_serves_in_float32(rng, tmp_path):
    import tensorflow as tf

    model = _randomized(ViT(**SMALL, dtype="mixed_bfloat16"))
    reference = ViT(**SMALL, dtype="float32")
    reference.set_weights(model.get_weights())
    images = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    path = vit_keras.export_saved_model(model, tmp_path / "f32", precision="float32")
    loaded, served = _serve(path, images)
    np.testing.assert_allclose(served, to_numpy(reference(images, training=False)), rtol=1e-4, atol=1e-4)
    assert not any(tf.bfloat16.as_datatype_enum in dict(attrs).values() for _, attrs in _graph_ops(loaded))


@pytest.mark.single_backend
@pytest.mark.parametrize("bad", ["bfloat16", "mixed_float16", "", 16, True])
def test_bad_export_precision_is_refused_before_writing(tmp_path, bad):
    model = ViT(**SMALL)
    with pytest.raises(ValueError, match=r"^precision must be one of .*found"):
        vit_keras.export_saved_model(model, tmp_path / "out", precision=bad)
    assert not (tmp_path / "out").exists()


@pytest.mark.single_backend
def test_export_precision_needs_a_vit(tmp_path):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match=r"in precision 'mixed_bfloat16' needs a vit_keras.ViT; found a Functional"):
        vit_keras.export_saved_model(model, tmp_path / "out", precision="mixed_bfloat16")
    assert not (tmp_path / "out").exists()
    assert vit_keras.export_saved_model(model, tmp_path / "out", precision=None)  # its own policy: fine


@pytest.mark.single_backend
def test_cli_export_precision(tmp_path, capsys):
    from vit_keras.cli import main

    model = _randomized(ViT(**SMALL, dtype="mixed_bfloat16"))
    model.save(tmp_path / "model.keras")
    main(["export", str(tmp_path / "model.keras"), "--output", str(tmp_path / "served"), "--precision", "float32"])
    path = capsys.readouterr().out.strip().splitlines()[-1]
    assert path == str(tmp_path / "served" / "1") and (tmp_path / "served" / "1" / "saved_model.pb").is_file()
    images = np.full((2, 32, 32, 3), 100.0, "float32")
    reference = ViT(**SMALL, dtype="float32")
    reference.set_weights(model.get_weights())
    _, served = _serve(path, images)
    np.testing.assert_allclose(served, to_numpy(reference(images, training=False)), rtol=1e-4, atol=1e-4)
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path / "model.keras"), "--output", str(tmp_path / "x"), "--precision", "bf16"])
    assert "--precision: invalid choice: 'bf16'" in capsys.readouterr().err


_SERVE_CONFIGURATIONS = """
import sys, tempfile
import numpy as np, tensorflow as tf, vit_keras
from vit_keras import ViT
base = dict(image_size=16, patch_size=4, depth=1, mlp_dim=8, num_classes=3)
configurations = [
    dict(embed_dim=4, num_heads=4),  # head width 1: the logits' scale is 1
    dict(embed_dim=8, num_heads=2, pooling="gap"),
    dict(embed_dim=8, num_heads=2, representation_size=6),
    dict(embed_dim=8, num_heads=1, stem="conv", depth=2),
]
for config in configurations:
    model = ViT(**{**base, **config})
    path = vit_keras.export_saved_model(model, tempfile.mkdtemp() + "/m", jit_compile=True, precision="mixed_bfloat16")
    serve = tf.saved_model.load(path).signatures["serving_default"]
    for batch in (1, 5):
        images = np.random.default_rng(batch).uniform(0, 255, (batch, 16, 16, 3)).astype("float32")
        logits = serve(images=tf.constant(images))["logits"].numpy()
        assert logits.shape == (batch, 3) and np.isfinite(logits).all(), (config, batch, logits)
    print("served", config)
"""


@pytest.mark.single_backend
def test_bfloat16_exports_of_several_architectures_compile_and_serve(tmp_path):
    """XLA's CPU compiler aborts the whole process (a failed CHECK in its YNNPACK emitter) on some
    graphs where a bfloat16 product with a float32 result feeds a reduction directly; every
    architecture option that changes what follows a product is compiled and served here, in a
    subprocess so that such an abort fails this test instead of ending the test session."""
    import subprocess
    import sys

    script = tmp_path / "serve.py"
    script.write_text(_SERVE_CONFIGURATIONS)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("served") == 4
