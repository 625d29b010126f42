"""Dropout and stochastic-depth draws (vit_keras.layers.dropout) on every backend, and the
TensorFlow draws XLA compiles without deriving their key in the graph."""

import keras
import numpy as np
import pytest

import vit_keras
from vit_keras.layers import Dropout, DropPath, SelfAttention
from vit_keras.layers.dropout import dropout, uniform


def _dropped(layer, x):
    return np.asarray(keras.ops.convert_to_numpy(layer(x, training=True)))


def test_dropout_zeroes_at_its_rate_and_scales_the_rest():
    x = np.ones((2000, 50), "float32")
    out = _dropped(Dropout(0.25, seed=1), x)
    assert abs(np.mean(out == 0.0) - 0.25) < 0.01
    assert np.allclose(out[out != 0.0], 1 / 0.75)
    assert np.array_equal(np.asarray(Dropout(0.25, seed=1)(x)), x)  # inference: unchanged


def test_seeded_dropout_repeats_its_masks_and_each_call_draws_anew():
    x = np.ones((64, 100), "float32")
    first, second = Dropout(0.5, seed=3), Dropout(0.5, seed=3)
    a, b = _dropped(first, x), _dropped(second, x)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, _dropped(first, x))


def test_noise_shape_shares_the_mask_along_its_unit_axes():
    x = np.ones((32, 17, 40), "float32")
    out = _dropped(Dropout(0.5, noise_shape=(None, 1, 40), seed=0), x)
    assert np.array_equal(out, np.broadcast_to(out[:, :1], out.shape))
    assert 0 < np.mean(out == 0.0) < 1


def test_bfloat16_inputs_keep_their_dtype():
    out = Dropout(0.5, seed=0, dtype="mixed_bfloat16")(np.ones((16, 8), "float32"), training=True)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert set(np.unique(keras.ops.convert_to_numpy(keras.ops.cast(out, "float32")))) == {0.0, 2.0}


def test_uniform_draws_in_the_unit_interval():
    draws = np.asarray(keras.ops.convert_to_numpy(uniform((4000,), keras.random.SeedGenerator(0))))
    assert draws.shape == (4000,) and draws.dtype == np.float32
    assert draws.min() >= 0.0 and draws.max() < 1.0 and abs(draws.mean() - 0.5) < 0.03


def test_functional_dropout_matches_the_layer_semantics():
    x = np.full((500, 40), 3.0, "float32")
    out = np.asarray(keras.ops.convert_to_numpy(dropout(x, 0.1, keras.random.SeedGenerator(5))))
    assert abs(np.mean(out == 0.0) - 0.1) < 0.02 and np.allclose(out[out != 0.0], 3.0 / 0.9)


@pytest.mark.parametrize("rate", [1.0, -0.1, "0.1", True])
def test_bad_rate_is_a_one_line_error(rate):
    with pytest.raises(ValueError, match=r"^dropout must be a number in \[0, 1\); found") as error:
        Dropout(rate)
    assert "\n" not in str(error.value)


def test_models_use_it_and_keras_files_round_trip(tmp_path):
    model = vit_keras.ViT(
        image_size=28, in_channels=1, embed_dim=16, patch_size=7, num_layers=1, num_heads=2, num_classes=3, dropout=0.1
    )
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts and all(type(layer) is Dropout for layer in dropouts)
    assert type(model.get_layer("encoder_block_0").dropout_layer) is Dropout
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("embedding_dropout")) is Dropout
    images = np.random.default_rng(0).uniform(0, 1, (2, 28, 28, 1)).astype("float32")
    assert np.allclose(keras.ops.convert_to_numpy(loaded(images)), keras.ops.convert_to_numpy(model(images)), atol=1e-6)


@pytest.mark.single_backend  # TensorFlow's XLA graph (CI runs single_backend tests under TensorFlow)
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the XLA graph of TensorFlow's draws")
@pytest.mark.parametrize(
    "layer",
    [Dropout(0.1, seed=0), DropPath(0.1, seed=0), SelfAttention(2, dropout=0.1, seed=0)],
    ids=["dropout", "drop_path", "attention_dropout"],
)
def test_tensorflow_draws_compile_without_an_in_graph_key_derivation(layer):
    # TensorFlow's default algorithm derives its key in the graph (StatelessRandomGetKeyCounter); XLA
    # on CPU folds that derivation into every element's computation (about 40x slower draws).
    import tensorflow as tf

    x = tf.ones((4, 17, 16))
    hlo = tf.function(lambda x: layer(x, training=True), jit_compile=True).experimental_get_compiler_ir(x)(stage="hlo")
    assert "algorithm=rng_three_fry" in hlo
    assert "StatelessRandomGetKeyCounter" not in hlo


@pytest.mark.single_backend  # TensorFlow's XLA path (CI runs single_backend tests under TensorFlow)
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the XLA path of TensorFlow's draws")
def test_tensorflow_xla_draws_drop_at_the_rate_and_repeat_with_the_seed():
    import tensorflow as tf

    def compiled(layer):
        return tf.function(lambda x: layer(x, training=True), jit_compile=True)

    x = tf.ones((2000, 50))
    first, twin = compiled(Dropout(0.25, seed=7)), compiled(Dropout(0.25, seed=7))
    out = first(x).numpy()
    assert abs(np.mean(out == 0.0) - 0.25) < 0.01 and np.allclose(out[out != 0.0], 1 / 0.75)
    assert np.array_equal(out, twin(x).numpy()) and not np.array_equal(out, first(x).numpy())
    per_sample = compiled(DropPath(0.5, seed=1))(tf.ones((400, 17, 8))).numpy()
    assert np.array_equal(per_sample, np.broadcast_to(per_sample[:, :1, :1], per_sample.shape))
    assert 0.4 < np.mean(per_sample[:, 0, 0] == 0.0) < 0.6
