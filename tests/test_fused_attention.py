"""The fused `SelfAttention` layer: numerics, mixed precision, and loading the MultiHeadAttention layout."""

import re
import shutil

import h5py
import keras
import numpy as np
import pytest
from conftest import FIXTURES, to_numpy

import vit_keras
from vit_keras.layers import SelfAttention, TransformerEncoderBlock
from vit_keras.layers.self_attention import fuse_legacy_projections

LEGACY = FIXTURES / "legacy_attention"
IO = np.load(LEGACY / "vit_small_io.npz")
SMALL = dict(image_size=28, patch_size=7, in_channels=1, num_classes=10, embed_dim=16, depth=2, num_heads=2, mlp_dim=32)
BLOCK_GROUP = "layers/transformer_encoder_block/attention"  # block 0's attention in vit_small.weights.h5


def mha_projections(layer):
    """{projection: (kernel, bias)} of a `keras.layers.MultiHeadAttention`."""
    denses = (layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense)
    return {
        name: (to_numpy(d.kernel), to_numpy(d.bias)) for name, d in zip(("query", "key", "value", "output"), denses)
    }


def assert_fixture_logits(model):
    np.testing.assert_allclose(to_numpy(model(IO["images"])), IO["logits"], atol=1e-5, rtol=0)


def test_legacy_keras_file_loads_with_the_same_logits():
    model = keras.saving.load_model(LEGACY / "vit_small.keras")
    assert isinstance(model.get_layer("encoder_block_0").attention, SelfAttention)
    assert_fixture_logits(model)


def test_legacy_weights_file_loads_with_the_same_logits():
    model = vit_keras.ViT(**SMALL)
    model.load_weights(LEGACY / "vit_small.weights.h5")
    assert_fixture_logits(model)


def test_model_from_legacy_file_saves_the_fused_layout(tmp_path):
    model = keras.saving.load_model(LEGACY / "vit_small.keras")
    model.save_weights(tmp_path / "fused.weights.h5")
    with h5py.File(tmp_path / "fused.weights.h5") as f:
        group = f[BLOCK_GROUP]
        assert sorted(group["vars"]) == ["0", "1", "2", "3"]
        assert [group["vars"][k].shape for k in "0123"] == [(16, 48), (48,), (16, 16), (16,)]
        assert not any(name.endswith("_dense") for name in group)
    model.save(tmp_path / "fused.keras")
    assert_fixture_logits(keras.saving.load_model(tmp_path / "fused.keras"))
    fresh = vit_keras.ViT(**SMALL)
    fresh.load_weights(tmp_path / "fused.weights.h5")
    assert_fixture_logits(fresh)


@pytest.mark.single_backend
def test_weights_in_neither_layout_raise_one_line(tmp_path):
    broken = tmp_path / "broken.weights.h5"
    shutil.copy(LEGACY / "vit_small.weights.h5", broken)
    with h5py.File(broken, "a") as f:
        del f[f"{BLOCK_GROUP}/value_dense"]
    expected = (
        rf"(?m)^weights of attention layer '{BLOCK_GROUP}': expected the variables qkv_kernel, .* "
        r"or the MultiHeadAttention groups .*value_dense.*; found neither\.$"
    )
    with pytest.raises(ValueError, match=expected):
        vit_keras.ViT(**SMALL).load_weights(broken)


@pytest.mark.single_backend
def test_legacy_weights_with_another_head_count_raise_before_the_layer_changes():
    model = vit_keras.ViT(**{**SMALL, "num_heads": 4})
    attention = model.get_layer("encoder_block_0").attention
    before = [to_numpy(v).copy() for v in attention.weights]
    with pytest.raises(
        ValueError,
        match=r"(?m)^weights of attention layer '[^']+': the MultiHeadAttention query bias "
        r"has shape \(2, 8\) \(heads, head width\); the layer expects \(4, 4\)\.$",
    ):
        model.load_weights(LEGACY / "vit_small.weights.h5")
    for old, new in zip(before, attention.weights):
        np.testing.assert_array_equal(old, to_numpy(new))


def test_matches_keras_multi_head_attention_with_the_same_weights(rng):
    x = rng.normal(size=(3, 7, 12)).astype("float32")
    reference = keras.layers.MultiHeadAttention(num_heads=3, key_dim=4)
    expected, expected_scores = reference(x, x, return_attention_scores=True)
    fused = SelfAttention(num_heads=3)
    fused.build(x.shape)
    fused.set_weights(fuse_legacy_projections(mha_projections(reference)))
    out, scores = fused(x, return_attention_scores=True)
    np.testing.assert_allclose(to_numpy(scores), to_numpy(expected_scores), atol=1e-6)
    np.testing.assert_allclose(to_numpy(out), to_numpy(expected), atol=1e-5)
    np.testing.assert_allclose(to_numpy(fused(x)), to_numpy(expected), atol=1e-5)  # dot_product_attention path


def _loss_and_gradients(layer, x, scores, rows=None, **call_kwargs):
    """sum(out**2) of `layer` on `x` and its gradients (input first, then the layer's variables);
    `scores` takes the explicit path (weights formed and returned), else the fused kernel.
    `rows`: only the first `rows` output tokens enter the loss; `call_kwargs` go to the call."""

    def loss(out):
        out = out[0] if scores else out
        out = keras.ops.cast(out if rows is None else out[:, :rows], "float32")
        return keras.ops.sum(out * out)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(layer(x, return_attention_scores=scores, **call_kwargs))
        gradients = tape.gradient(value, [x] + [v.value for v in layer.trainable_variables])
    elif backend == "jax":
        import jax

        def of(x, variables):
            out, _ = layer.stateless_call(variables, [], x, return_attention_scores=scores, **call_kwargs)
            return loss(out)

        value, gradients = jax.value_and_grad(of, argnums=(0, 1))(x, [v.value for v in layer.trainable_variables])
        gradients = [gradients[0]] + list(gradients[1])
    else:
        import torch

        x = torch.tensor(x, requires_grad=True)
        value = loss(layer(x, return_attention_scores=scores, **call_kwargs))
        gradients = torch.autograd.grad(value, [x] + [v.value for v in layer.trainable_variables])
    return to_numpy(value), [to_numpy(g) for g in gradients]


def test_fused_kernel_gives_the_explicit_path_s_values_and_gradients(rng):
    x = rng.normal(size=(2, 11, 12)).astype("float32")
    layer = SelfAttention(num_heads=3)
    layer.build(x.shape)
    fused_value, fused_gradients = _loss_and_gradients(layer, x, scores=False)
    explicit_value, explicit_gradients = _loss_and_gradients(layer, x, scores=True)
    np.testing.assert_allclose(fused_value, explicit_value, rtol=1e-5)
    assert len(fused_gradients) == 5  # the input, qkv kernel and bias, out kernel and bias
    for fused, explicit in zip(fused_gradients, explicit_gradients):
        assert np.abs(explicit).max() > 0
        np.testing.assert_allclose(fused, explicit, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scores", [False, True], ids=["fused", "explicit"])
def test_query_tokens_give_the_first_rows_and_their_gradients(rng, scores):
    x = rng.normal(size=(2, 11, 12)).astype("float32")
    layer = SelfAttention(num_heads=3)
    layer.build(x.shape)
    full_value, full_gradients = _loss_and_gradients(layer, x, scores, rows=2)
    value, gradients = _loss_and_gradients(layer, x, scores, query_tokens=2)
    np.testing.assert_allclose(value, full_value, rtol=1e-5)
    for got, expected in zip(gradients, full_gradients, strict=True):
        assert np.abs(expected).max() > 0
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    out, weights = layer(x, return_attention_scores=True, query_tokens=2)
    full_out, full_weights = layer(x, return_attention_scores=True)
    assert tuple(out.shape) == (2, 2, 12) and tuple(weights.shape) == (2, 3, 2, 11)
    np.testing.assert_allclose(to_numpy(weights), to_numpy(full_weights)[:, :, :2], atol=1e-6)
    np.testing.assert_allclose(to_numpy(out), to_numpy(full_out)[:, :2], atol=1e-5)


@pytest.mark.parametrize("query_tokens", [None, 2], ids=["all-tokens", "query-tokens"])
def test_bfloat16_kernel_follows_float32_values_and_gradients(rng, query_tokens):
    """The bfloat16 fused path (on PyTorch's CPU two bfloat16 matmuls around the softmax, not the
    flash kernel) stays within bfloat16's rounding of the float32 layer, gradients included."""
    x = rng.normal(size=(2, 11, 12)).astype("float32")
    reference = SelfAttention(num_heads=3)
    reference.build(x.shape)
    layer = SelfAttention(num_heads=3, dtype="mixed_bfloat16")
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    expected_value, expected_gradients = _loss_and_gradients(reference, x, False, query_tokens=query_tokens)
    value, gradients = _loss_and_gradients(layer, x, False, query_tokens=query_tokens)
    assert abs(float(value) - float(expected_value)) <= 0.02 * abs(float(expected_value))
    for got, expected in zip(gradients, expected_gradients, strict=True):
        got, expected = np.asarray(got, "float32"), np.asarray(expected, "float32")
        assert np.linalg.norm(got - expected) <= 0.03 * np.linalg.norm(expected)


def test_block_output_tokens_give_the_first_rows_and_their_gradients(rng):
    x = rng.normal(size=(2, 9, 8)).astype("float32")
    block = TransformerEncoderBlock(num_heads=2, mlp_dim=16)
    block.build(x.shape)
    full_value, full_gradients = _loss_and_gradients(block, x, False, rows=1)
    value, gradients = _loss_and_gradients(block, x, False, output_tokens=1)
    np.testing.assert_allclose(value, full_value, rtol=1e-5)
    assert len(gradients) == 1 + len(block.trainable_variables)
    for got, expected in zip(gradients, full_gradients, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    out, weights = block(x, return_attention_scores=True, output_tokens=1)
    assert tuple(out.shape) == (2, 1, 8) and tuple(weights.shape) == (2, 2, 1, 9)
    np.testing.assert_allclose(to_numpy(out), to_numpy(block(x))[:, :1], atol=1e-5)


@pytest.mark.parametrize("output_tokens", [None, 1])
def test_block_takes_an_empty_batch_and_propagates_nan(output_tokens):
    block = TransformerEncoderBlock(num_heads=2, mlp_dim=16)
    empty = block(np.zeros((0, 9, 8), "float32"), output_tokens=output_tokens)
    assert tuple(empty.shape) == (0, output_tokens or 9, 8)
    poisoned = np.zeros((2, 9, 8), "float32")
    poisoned[0, 3] = np.nan
    out = to_numpy(block(poisoned, output_tokens=output_tokens))
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()  # the NaN stays in its image


def _all_tokens_logits(model, images):
    """`model`'s logits with every block computing every token (the read-out takes token 0)."""
    x = keras.Model(model.input, model.get_layer("embedding_dropout").output)(images)
    for block in (layer for layer in model.layers if isinstance(layer, TransformerEncoderBlock)):
        x = block(x)
    return to_numpy(model.get_layer("head")(model.get_layer("encoder_norm")(x)[:, 0]))


def test_class_token_model_computes_only_the_class_token_in_its_last_block(rng):
    images = rng.uniform(size=(3, 28, 28, 1)).astype("float32")
    model = vit_keras.ViT(**SMALL)
    assert tuple(model.get_layer("encoder_block_0").output.shape) == (None, 17, 16)
    assert tuple(model.get_layer("encoder_block_1").output.shape) == (None, 1, 16)
    np.testing.assert_allclose(to_numpy(model(images)), _all_tokens_logits(model, images), atol=1e-5)
    mean_pooled = vit_keras.ViT(**SMALL, pooling="gap")
    assert tuple(mean_pooled.get_layer("encoder_block_1").output.shape) == (None, 17, 16)
    tokens = vit_keras.ViT(**SMALL, include_top=False, pooling=None)
    assert tuple(tokens.output.shape) == (None, 17, 16)


@pytest.mark.single_backend
@pytest.mark.parametrize("count", [0, -1, 10, 1.5, True, "1"])
def test_bad_output_token_counts_raise_one_line(count):
    x = np.zeros((1, 9, 8), "float32")
    found = re.escape(repr(count))
    with pytest.raises(ValueError, match=rf"(?m)^output_tokens must be .*; found {found}\.$"):
        TransformerEncoderBlock(num_heads=2, mlp_dim=16)(x, output_tokens=count)
    with pytest.raises(ValueError, match=rf"(?m)^query_tokens must be .*; found {found}\.$"):
        SelfAttention(num_heads=2)(x, query_tokens=count)


def test_attention_dropout_only_in_training(rng):
    x = rng.normal(size=(4, 9, 8)).astype("float32")
    layer = SelfAttention(num_heads=2, dropout=0.5, seed=1)
    inference = to_numpy(layer(x))
    np.testing.assert_allclose(to_numpy(layer(x, training=False)), inference, atol=1e-6)
    _, scores = layer(x, return_attention_scores=True)
    np.testing.assert_allclose(to_numpy(scores).sum(-1), 1.0, atol=1e-5)
    assert not np.allclose(to_numpy(layer(x, training=True)), inference, atol=1e-3)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_float32_variables(rng, policy):
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    reference = TransformerEncoderBlock(num_heads=2, mlp_dim=16)
    expected = to_numpy(reference(x))
    block = TransformerEncoderBlock(num_heads=2, mlp_dim=16, dtype=policy)
    block.build(x.shape)
    block.set_weights(reference.get_weights())
    out, scores = block(x, return_attention_scores=True)
    compute = policy.removeprefix("mixed_")
    assert keras.backend.standardize_dtype(out.dtype) == compute
    assert keras.backend.standardize_dtype(scores.dtype) == compute
    assert {v.dtype for v in block.attention.weights} == {"float32"}
    tolerance = 0.1 if compute == "bfloat16" else 0.02
    np.testing.assert_allclose(to_numpy(block(x)).astype("float32"), expected, atol=tolerance)
    np.testing.assert_allclose(to_numpy(out).astype("float32"), expected, atol=tolerance)


def test_block_at_rate_zero_has_no_dropout_layers(rng):
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    block = TransformerEncoderBlock(num_heads=2, mlp_dim=16)
    inference = to_numpy(block(x))
    assert block.dropout_layer is None and block.drop_path_layer is None
    assert [layer.name for layer in block._layers] == ["norm1", "attention", "norm2", "mlp_in", "mlp_out"]
    np.testing.assert_array_equal(to_numpy(block(x, training=True)), inference)


@pytest.mark.single_backend
def test_config_round_trip():
    layer = SelfAttention(num_heads=4, dropout=0.1, kernel_initializer="he_normal", seed=3, name="att")
    clone = SelfAttention.from_config(layer.get_config())
    assert (clone.num_heads, clone.dropout, clone.seed, clone.name) == (4, 0.1, 3, "att")
    assert isinstance(clone.kernel_initializer, keras.initializers.HeNormal)
    with pytest.raises(ValueError, match=r"embed_dim must be divisible by num_heads=4; found embed_dim 6"):
        SelfAttention(num_heads=4)(np.zeros((1, 2, 6), "float32"))
    with pytest.raises(ValueError, match=r"attention_dropout"):
        SelfAttention(num_heads=2, dropout=1.0)


def test_seeded_layer_starts_from_multi_head_attention_weights():
    keras.utils.set_random_seed(3)
    reference = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.1)
    reference.build((1, 5, 8), (1, 5, 8))
    keras.utils.set_random_seed(3)
    layer = SelfAttention(num_heads=2, dropout=0.1)
    layer.build((1, 5, 8))
    for fused, expected in zip(layer.get_weights(), fuse_legacy_projections(mha_projections(reference))):
        np.testing.assert_array_equal(fused, expected)
    assert np.std(layer.get_weights()[0]) > 0.1  # glorot over (8, 8) blocks, not zeros
