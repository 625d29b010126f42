"""The ViT building blocks: shapes, numerics against NumPy references, configs."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

from vit_keras.layers import (
    AddPositionEmbs,
    ClassToken,
    ConvStem,
    DropPath,
    PatchEmbedding,
    PositionEmbedding,
    TokenPooling,
    TransformerBlock,
    TransformerEncoderBlock,
    resample_position_table,
)


def test_patch_embedding_matches_patchwise_projection(rng):
    images = rng.normal(size=(2, 12, 8, 3)).astype("float32")
    layer = PatchEmbedding(patch_size=4, embed_dim=5)
    tokens = to_numpy(layer(images))
    assert tokens.shape == (2, 6, 5)
    kernel = to_numpy(layer.projection.kernel)  # (P, P, C, D): Google's layout
    bias = to_numpy(layer.projection.bias)
    assert kernel.shape == (4, 4, 3, 5)
    # Patches in row-major order, each projected by the kernel.
    patches = images.reshape(2, 3, 4, 2, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(2, 6, 4, 4, 3)
    expected = np.einsum("bnijc,ijcd->bnd", patches, kernel) + bias
    np.testing.assert_allclose(tokens, expected, atol=1e-5)


def test_patch_embedding_rejects_indivisible_images():
    layer = PatchEmbedding(patch_size=7, embed_dim=4)
    with pytest.raises(ValueError, match=r"divisible by patch_size=7; found height 30"):
        layer(np.zeros((1, 30, 28, 1), "float32"))


@pytest.mark.parametrize("bad", [0, -3, 2.5, None])
def test_patch_embedding_rejects_non_positive_sizes(bad):
    with pytest.raises(ValueError, match="patch_size must be a positive integer"):
        PatchEmbedding(patch_size=bad, embed_dim=4)


def _conv3x3_stride2_same(x, kernel):
    """NumPy 3x3 stride-2 convolution with TensorFlow's "same" padding (extra pad at the end)."""
    n, h, w, _ = x.shape
    out_h, out_w = -(-h // 2), -(-w // 2)
    pad_h, pad_w = max((out_h - 1) * 2 + 3 - h, 0), max((out_w - 1) * 2 + 3 - w, 0)
    x = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    out = np.zeros((n, out_h, out_w, kernel.shape[-1]), "float64")
    for i in range(3):
        for j in range(3):
            out += np.einsum("bhwc,cd->bhwd", x[:, i : i + 2 * out_h : 2, j : j + 2 * out_w : 2], kernel[i, j])
    return out


def test_conv_stem_matches_numpy_reference(rng):
    images = rng.normal(size=(2, 16, 8, 3)).astype("float32")
    layer = ConvStem(patch_size=4, embed_dim=8)
    layer.build(images.shape)
    convs = [layer.stages[0], layer.stages[3]]
    assert [c.kernel.shape for c in convs] == [(3, 3, 3, 4), (3, 3, 4, 8)]  # widths double to D
    for norm in (layer.stages[1], layer.stages[4]):  # non-trivial inference statistics
        norm.moving_mean.assign(rng.normal(size=norm.moving_mean.shape).astype("float32"))
        norm.moving_variance.assign(rng.uniform(0.5, 2.0, size=norm.moving_variance.shape).astype("float32"))
    tokens = to_numpy(layer(images, training=False))
    assert tokens.shape == (2, 8, 8)  # (16 / 4) * (8 / 4) tokens, row-major

    x = images.astype("float64")
    for conv, norm in ((layer.stages[0], layer.stages[1]), (layer.stages[3], layer.stages[4])):
        x = _conv3x3_stride2_same(x, to_numpy(conv.kernel))
        mean, var = to_numpy(norm.moving_mean), to_numpy(norm.moving_variance)
        x = (x - mean) / np.sqrt(var + 1e-5) * to_numpy(norm.gamma) + to_numpy(norm.beta)
        x = np.maximum(x, 0.0)
    x = np.einsum("bhwc,cd->bhwd", x, to_numpy(layer.projection.kernel)[0, 0]) + to_numpy(layer.projection.bias)
    np.testing.assert_allclose(tokens, x.reshape(2, 8, 8), atol=1e-4)
    # In training, BatchNorm normalises with the batch's statistics instead.
    assert not np.allclose(to_numpy(layer(images, training=True)), tokens, atol=1e-3)


@pytest.mark.parametrize("patch_size", [1, 3, 7, 12])
def test_conv_stem_needs_a_power_of_two_patch(patch_size):
    with pytest.raises(ValueError, match=rf"power of two .*found patch_size={patch_size}"):
        ConvStem(patch_size=patch_size, embed_dim=8)


def test_conv_stem_rejects_indivisible_images():
    with pytest.raises(ValueError, match=r"divisible by patch_size=4; found width 10"):
        ConvStem(patch_size=4, embed_dim=8)(np.zeros((1, 16, 10, 3), "float32"))


def test_class_token_is_prepended(rng):
    tokens = rng.normal(size=(3, 4, 6)).astype("float32")
    layer = ClassToken()
    layer.build(tokens.shape)
    layer.token.assign(np.arange(6, dtype="float32").reshape(1, 1, 6))
    out = to_numpy(layer(tokens))
    assert out.shape == (3, 5, 6)
    np.testing.assert_array_equal(out[:, 0], np.tile(np.arange(6, dtype="float32"), (3, 1)))
    np.testing.assert_array_equal(out[:, 1:], tokens)


def test_position_embedding_adds_table_and_checks_token_count(rng):
    tokens = rng.normal(size=(2, 10, 4)).astype("float32")
    layer = PositionEmbedding()
    out = to_numpy(layer(tokens))
    assert layer.grid_size == (3, 3)
    np.testing.assert_allclose(out, tokens + to_numpy(layer.table), atol=1e-6)
    with pytest.raises(ValueError, match="holds 10 positions .* found 17 tokens"):
        layer(np.zeros((2, 17, 4), "float32"))


def test_resample_matches_torch_bilinear(rng):
    torch = pytest.importorskip("torch")  # torch is installed in CI; this compares to its kernel
    table = rng.normal(size=(1, 1 + 4 * 4, 8)).astype("float32")
    for new_grid in [(6, 6), (3, 5), (4, 4), (2, 2)]:
        ours = resample_position_table(table, new_grid)
        grid = torch.from_numpy(table[:, 1:]).reshape(1, 4, 4, 8).permute(0, 3, 1, 2)
        ref = torch.nn.functional.interpolate(
            grid, size=new_grid, mode="bilinear", align_corners=False, antialias=False
        )
        ref = ref.permute(0, 2, 3, 1).reshape(1, -1, 8).numpy()
        assert ours.shape == (1, 1 + new_grid[0] * new_grid[1], 8)
        np.testing.assert_array_equal(ours[:, :1], table[:, :1])  # class row kept as is
        np.testing.assert_allclose(ours[:, 1:], ref, atol=1e-6)


def test_position_embedding_set_table_resamples(rng):
    layer = PositionEmbedding(grid_size=(6, 6))
    layer.build((None, 37, 8))
    table = rng.normal(size=(1, 17, 8)).astype("float32")
    layer.set_table(table)
    np.testing.assert_allclose(to_numpy(layer.table), resample_position_table(table, (6, 6)))
    np.testing.assert_allclose(layer.resampled((4, 4))[:, :1], table[:, :1])
    with pytest.raises(ValueError, match="old_grid must be given"):
        layer.set_table(rng.normal(size=(1, 11, 8)))


def _layer_norm(x, gamma, beta, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x):
    from math import erf, sqrt

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))


def test_encoder_block_matches_numpy_reference(rng):
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    block = TransformerEncoderBlock(num_heads=2, mlp_dim=16)
    out, scores = block(x, return_attention_scores=True)
    out, scores = to_numpy(out), to_numpy(scores)
    w = lambda v: to_numpy(v).astype("float64")  # noqa: E731
    att = block.attention
    assert tuple(att.qkv_kernel.shape) == (8, 24) and tuple(att.out_kernel.shape) == (8, 8)
    y = _layer_norm(x, w(block.norm1.gamma), w(block.norm1.beta))
    # [query | key | value] along the fused axis, each head-major: (3, heads, head width).
    qkv = (y @ w(att.qkv_kernel) + w(att.qkv_bias)).reshape(2, 5, 3, 2, 4)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    logits = np.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(4.0)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    context = np.einsum("bhqs,bshk->bqhk", weights, v).reshape(2, 5, 8)
    x1 = x + context @ w(att.out_kernel) + w(att.out_bias)
    y = _layer_norm(x1, w(block.norm2.gamma), w(block.norm2.beta))
    y = _gelu(y @ w(block.mlp_in.kernel) + w(block.mlp_in.bias))
    expected = x1 + y @ w(block.mlp_out.kernel) + w(block.mlp_out.bias)
    assert scores.shape == (2, 2, 5, 5)
    np.testing.assert_allclose(scores, weights, atol=1e-5)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    # The fused path (no scores requested) gives the same output.
    np.testing.assert_allclose(to_numpy(block(x)), out, atol=1e-5)


def test_encoder_block_dropout_and_drop_path_only_in_training(rng):
    x = rng.normal(size=(8, 5, 8)).astype("float32")
    block = TransformerEncoderBlock(num_heads=2, mlp_dim=16, dropout=0.3, attention_dropout=0.3, drop_path=0.5)
    inference = to_numpy(block(x, training=False))
    np.testing.assert_array_equal(inference, to_numpy(block(x, training=False)))
    assert not np.allclose(to_numpy(block(x, training=True)), inference)


def test_encoder_block_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"embed_dim must be divisible by num_heads=3; found embed_dim 8"):
        TransformerEncoderBlock(num_heads=3, mlp_dim=16)(np.zeros((1, 2, 8), "float32"))


def test_drop_path_drops_whole_samples(rng):
    x = np.ones((256, 3, 4), "float32")
    out = to_numpy(DropPath(0.25, seed=1)(x, training=True))
    per_sample = out.reshape(256, -1)
    dropped = np.all(per_sample == 0, axis=1)
    kept = np.all(np.isclose(per_sample, 1 / 0.75), axis=1)
    assert np.all(dropped | kept)
    assert 0.1 < dropped.mean() < 0.4
    np.testing.assert_array_equal(to_numpy(DropPath(0.25)(x, training=False)), x)


def test_token_pooling(rng):
    tokens = rng.normal(size=(2, 5, 3)).astype("float32")
    np.testing.assert_allclose(to_numpy(TokenPooling("token")(tokens)), tokens[:, 0])
    np.testing.assert_allclose(to_numpy(TokenPooling("gap")(tokens)), tokens[:, 1:].mean(1), atol=1e-6)
    with pytest.raises(ValueError, match=r"pooling must be one of \['token', 'gap'\]; found 'max'"):
        TokenPooling("max")


@pytest.mark.parametrize(
    "layer",
    [
        PatchEmbedding(patch_size=4, embed_dim=6, name="pe"),
        ConvStem(patch_size=8, embed_dim=16, name="stem"),
        ClassToken(name="ct"),
        PositionEmbedding(grid_size=(2, 3), name="pos"),
        TransformerEncoderBlock(num_heads=2, mlp_dim=12, dropout=0.1, drop_path=0.2, name="blk"),
        DropPath(0.3, seed=4, name="dp"),
        TokenPooling("gap", name="tp"),
        AddPositionEmbs(name="ape"),
        TransformerBlock(num_heads=2, mlp_dim=12, dropout=0.1, name="tb"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == config


def test_legacy_add_position_embs_takes_no_arguments(rng):
    """The older vit-keras library's AddPositionEmbs(): a square grid after the class token, stddev 0.06."""
    layer = AddPositionEmbs(name="posembed_input")
    assert isinstance(layer, PositionEmbedding)
    tokens = rng.normal(size=(2, 1 + 14 * 14, 64)).astype("float32")
    out = to_numpy(layer(tokens))
    table = to_numpy(layer.table)
    assert layer.grid_size == (14, 14) and table.shape == (1, 197, 64)
    assert 0.05 < table.std() < 0.07
    np.testing.assert_allclose(out, tokens + table, atol=1e-6)


def test_legacy_transformer_block_returns_outputs_and_attention(rng):
    """The old TransformerBlock(num_heads, mlp_dim, dropout) returned (outputs, weights); ours does too."""
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    legacy = TransformerBlock(num_heads=2, mlp_dim=16, dropout=0.1)
    outputs, weights = legacy(x)
    ours = TransformerEncoderBlock(num_heads=2, mlp_dim=16, dropout=0.1)
    ours.build(x.shape)
    ours.set_weights(legacy.get_weights())  # the same weights, in the same order
    expected, scores = ours(x, return_attention_scores=True)
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(expected), atol=1e-6)
    np.testing.assert_allclose(to_numpy(weights), to_numpy(scores), atol=1e-6)
    np.testing.assert_allclose(to_numpy(weights).sum(-1), 1.0, atol=1e-5)
    with pytest.raises(TypeError, match="dropout"):
        TransformerBlock(num_heads=2, mlp_dim=16)  # required, as in the old library


def test_legacy_layers_build_a_functional_model_that_round_trips(tmp_path, rng):
    """Old-style model code, `y, _ = TransformerBlock(...)(y)`, builds, saves and reloads."""
    images = rng.random((2, 8, 8, 3)).astype("float32")
    inputs = keras.Input((8, 8, 3))
    y = PatchEmbedding(patch_size=4, embed_dim=8)(inputs)
    y = AddPositionEmbs(name="posembed_input")(ClassToken(name="class_token")(y))
    y, _ = TransformerBlock(num_heads=2, mlp_dim=16, dropout=0.1, name="encoderblock_0")(y)
    y, weights = TransformerBlock(num_heads=2, mlp_dim=16, dropout=0.1, name="encoderblock_1")(y)
    assert tuple(weights.shape) == (None, 2, 5, 5)
    model = keras.Model(inputs, [TokenPooling("token")(y), weights])
    features, attention = (to_numpy(t) for t in model(images))
    assert features.shape == (2, 8) and attention.shape == (2, 2, 5, 5)
    model.save(tmp_path / "legacy.keras")
    restored = keras.saving.load_model(tmp_path / "legacy.keras")
    assert type(restored.get_layer("encoderblock_1")) is TransformerBlock
    np.testing.assert_allclose(to_numpy(restored(images)[0]), features, atol=1e-6)
