"""The ViT model: the MNIST tutorial's call, options, bad configuration and bad input."""

import keras
import numpy as np
import pytest
from conftest import TUTORIAL_KWARGS, to_numpy

import vit_keras


def tiny(**overrides):
    kwargs = dict(
        image_size=16, patch_size=4, in_channels=3, num_classes=5, embed_dim=12, depth=2, num_heads=2, mlp_dim=24
    )
    kwargs.update(overrides)
    return vit_keras.ViT(**kwargs)


def embedding_model(model):
    return keras.Model(model.input, model.get_layer("position_embedding").output)


def test_tutorial_call_verbatim(rng):
    """The original PyTorch tutorial's call, argument spellings included (num_layers, num_encoders, expansion)."""
    model = vit_keras.ViT(**TUTORIAL_KWARGS)
    assert isinstance(model, keras.Model)
    assert (model.depth, model.mlp_dim, model.dropout) == (1, 400, 0.1)
    images = rng.random((4, 28, 28, 1)).astype("float32")
    assert tuple(model(images).shape) == (4, 10)
    assert tuple(model.predict(images, verbose=0).shape) == (4, 10)
    assert tuple(embedding_model(model)(images).shape) == (4, 17, 100)  # 16 patches + the class token


def test_channels_first_takes_nchw_batches_and_matches_nhwc(rng):
    nhwc = vit_keras.ViT(**TUTORIAL_KWARGS)
    nchw = vit_keras.ViT(**TUTORIAL_KWARGS, data_format="channels_first")
    nchw.set_weights(nhwc.get_weights())
    images = rng.random((4, 28, 28, 1)).astype("float32")
    batch = images.transpose(0, 3, 1, 2)  # the tutorial's (4, 1, 28, 28)
    assert batch.shape == (4, 1, 28, 28)
    assert tuple(embedding_model(nchw)(batch).shape) == (4, 17, 100)
    assert tuple(nchw(batch).shape) == (4, 10)
    np.testing.assert_allclose(to_numpy(nchw(batch)), to_numpy(nhwc(images)), atol=1e-5)


def test_issue_example_with_mlp_ratio():
    model = vit_keras.ViT(
        image_size=28,
        in_channels=1,
        embed_dim=100,
        patch_size=7,
        num_layers=1,
        num_heads=1,
        num_classes=10,
        mlp_ratio=4.0,
        dropout=0.1,
    )
    assert model.mlp_dim == 400 and model.count_params() == vit_keras.ViT(**TUTORIAL_KWARGS).count_params()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(depth=2, num_layers=3),
            r"depth and num_layers all set the depth and must agree; found depth=2, num_layers=3",
        ),
        (dict(num_layers=1, num_encoders=2), r"num_layers=1, num_encoders=2"),
        (dict(mlp_ratio=4, expansion=2), r"mlp_ratio=4, expansion=2"),
        (dict(mlp_dim=100, mlp_ratio=4.0, embed_dim=12), r"mlp_dim and mlp_ratio must agree; found mlp_dim=100"),
    ],
)
def test_disagreeing_spellings_raise(kwargs, message):
    base = dict(image_size=16, patch_size=4, num_classes=3, embed_dim=12, num_heads=2)
    with pytest.raises(ValueError, match=message):
        vit_keras.ViT(**{**base, **kwargs})


def test_agreeing_spellings_are_accepted():
    model = vit_keras.ViT(
        image_size=16,
        patch_size=4,
        embed_dim=12,
        num_heads=2,
        depth=2,
        num_layers=2,
        num_encoders=2,
        mlp_ratio=2,
        expansion=2,
        mlp_dim=24,
    )
    assert (model.depth, model.mlp_dim) == (2, 24)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(image_size=30), r"image_size must be divisible by patch_size=4; found image_size=\(30, 30\)\.$"),
        (dict(image_size=(16, 18)), r"found image_size=\(16, 18\)"),
        (dict(embed_dim=10, num_heads=3), r"embed_dim must be divisible by num_heads=3; found embed_dim=10"),
        (dict(patch_size=0), r"patch_size must be a positive integer; found 0"),
        (dict(depth=-1), r"depth must be a positive integer; found -1"),
        (dict(image_size=-16), r"image_size must be a positive integer; found -16"),
        (dict(in_channels=0), r"in_channels must be a positive integer; found 0"),
        (dict(num_classes=0), r"num_classes must be a positive integer; found 0"),
        (dict(dropout=1.5), r"dropout must be a number in \[0, 1\); found 1.5"),
        (dict(pooling="max"), r"pooling must be one of \['token', 'gap'\]; found 'max'"),
        (dict(data_format="NCHW"), r"data_format must be one of .*found 'NCHW'"),
        (dict(preprocessing="bogus"), r"preprocessing must be None, one of .*found 'bogus'"),
        (dict(stem="hybrid"), r"stem must be one of \['patch', 'conv'\]; found 'hybrid'"),
        (dict(stem="conv", image_size=18, patch_size=6), r"power of two .*found patch_size=6"),
        (dict(mlp_ratio=0), r"mlp_ratio must be a positive number; found 0"),
        (dict(expansion="4"), r"mlp_ratio must be a positive number; found '4'"),
        (dict(mlp_dim=0), r"mlp_dim must be a positive integer; found 0"),
        (dict(representation_size=0), r"representation_size must be a positive integer; found 0"),
        (dict(attention_dropout=-0.1), r"attention_dropout must be a number in \[0, 1\); found -0.1"),
        (dict(drop_path=True), r"drop_path must be a number in \[0, 1\); found True"),
        (dict(pooling=None), r"pooling must be one of \['token', 'gap'\]; found None"),  # a head needs pooling
        (dict(preprocessing={"mean": [0.1, 0.2], "std": 0.5}), r"preprocessing mean and std must be .*3 per-channel"),
        (dict(preprocessing={"mean": 0.5, "std": 0.0}), r"preprocessing std must be positive; found \[0.0, 0.0, 0.0\]"),
        (dict(layer_norm_epsilon=0), r"layer_norm_epsilon must be a positive number; found 0"),
        (dict(dtype="float12"), r"dtype must be None, a dtype policy name .*found 'float12'"),
    ],
)
def test_bad_configuration_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


def test_unknown_keyword_arguments_are_refused_with_the_closest_name():
    # keras.Model drops keywords it does not know: a misspelt num_classes would build 1000 classes.
    with pytest.raises(TypeError, match=r"unexpected keyword arguments: 'num_class' \(did you mean 'num_classes'\?\)"):
        vit_keras.ViT(**{k: v for k, v in TUTORIAL_KWARGS.items() if k != "num_classes"}, num_class=10)
    with pytest.raises(
        TypeError, match=r"'frobnicate', 'mlp_ration' \(did you mean 'mlp_ratio'\?\); it takes image_size"
    ):
        tiny(frobnicate=1, mlp_ration=2)
    assert tiny(trainable=False).trainable is False  # keras.Model's own keyword still passes


def test_a_config_from_another_version_loads_without_the_keys_it_does_not_know():
    config = tiny().get_config() | {"a_later_option": 1}
    assert vit_keras.ViT.from_config(config).num_classes == 5


@pytest.mark.parametrize(
    "shape, found",
    [((2, 16, 16, 1), r"\(2, 16, 16, 1\)"), ((2, 20, 16, 3), r"\(2, 20, 16, 3\)"), ((16, 16, 3), r"\(16, 16, 3\)")],
)
def test_bad_input_raises_before_work(shape, found):
    model = tiny()
    expected = r"images must have shape \(batch,\) \+ \(16, 16, 3\) \(image_size=\(16, 16\), in_channels=3"
    x = np.zeros(shape, "float32")
    with pytest.raises(ValueError, match=expected + r".*found shape " + found):
        model(x)
    with pytest.raises(ValueError, match=expected):
        model.predict(x, verbose=0)
    with pytest.raises(ValueError, match=expected):
        model.evaluate(x, np.zeros(shape[:1]), verbose=0)
    # A failed call leaves the model usable.
    assert tuple(model.predict(np.zeros((2, 16, 16, 3), "float32"), verbose=0).shape) == (2, 5)


def test_pooling_include_top_and_activation(rng):
    images = rng.random((2, 16, 16, 3)).astype("float32")
    token = tiny()
    gap = tiny(pooling="gap")
    gap.set_weights(token.get_weights())
    assert not np.allclose(to_numpy(token(images)), to_numpy(gap(images)))
    features = tiny(include_top=False)
    assert tuple(features(images).shape) == (2, 12)
    tokens = tiny(include_top=False, pooling=None)
    assert tuple(tokens(images).shape) == (2, 17, 12)
    tokens.set_weights(features.get_weights())
    np.testing.assert_allclose(to_numpy(features(images)), to_numpy(tokens(images))[:, 0], atol=1e-6)
    probs = to_numpy(tiny(classifier_activation="softmax")(images))
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    pre = tiny(representation_size=7)
    assert pre.get_layer("pre_logits").kernel.shape == (12, 7)


def test_preprocessing_layer_takes_raw_pixels(rng):
    images = rng.random((2, 16, 16, 3)).astype("float32")
    bare = tiny()
    for spec, mean, std in [
        ("unit", 0.0, 1.0),
        ("imagenet", np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])),
        ({"mean": [0.2, 0.3, 0.4], "std": [0.5, 0.6, 0.7]}, np.array([0.2, 0.3, 0.4]), np.array([0.5, 0.6, 0.7])),
    ]:
        raw = tiny(preprocessing=spec)
        raw.set_weights(bare.get_weights())
        expected = to_numpy(bare(((images - mean) / std).astype("float32")))
        np.testing.assert_allclose(to_numpy(raw(images * 255.0)), expected, atol=1e-4)


def test_model_learns_a_tiny_task(rng):
    images = rng.random((32, 16, 16, 3)).astype("float32")
    labels = (images[:, :8].mean(axis=(1, 2, 3)) > images[:, 8:].mean(axis=(1, 2, 3))).astype("int32")
    keras.utils.set_random_seed(0)
    model = tiny(num_classes=2)
    model.compile(
        keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    first = model.evaluate(images, labels, verbose=0)[0]
    model.fit(images, labels, epochs=40, batch_size=16, verbose=0)
    loss, accuracy = model.evaluate(images, labels, verbose=0)
    assert loss < first * 0.5
    assert accuracy >= 0.9


def test_conv_stem_model_learns_and_round_trips(tmp_path, rng):
    images = rng.random((32, 16, 16, 3)).astype("float32")
    labels = (images[:, :8].mean(axis=(1, 2, 3)) > images[:, 8:].mean(axis=(1, 2, 3))).astype("int32")
    keras.utils.set_random_seed(0)
    model = tiny(num_classes=2, stem="conv")
    assert "conv_stem" in [layer.name for layer in model.layers]
    assert "patch_embedding" not in [layer.name for layer in model.layers]
    model.compile(
        keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    first = model.evaluate(images, labels, verbose=0)[0]
    model.fit(images, labels, epochs=40, batch_size=16, verbose=0)
    loss, accuracy = model.evaluate(images, labels, verbose=0)  # inference: moving statistics
    assert loss < first * 0.5
    assert accuracy >= 0.9
    # BatchNorm's moving statistics moved during fit and travel with the .keras file.
    norm = model.get_layer("conv_stem").stages[1]
    assert np.abs(to_numpy(norm.moving_mean)).max() > 1e-3
    model.save(tmp_path / "stem.keras")
    restored = keras.saving.load_model(tmp_path / "stem.keras")
    assert restored.get_config()["stem"] == "conv"
    np.testing.assert_allclose(to_numpy(restored(images)), to_numpy(model(images)), atol=1e-5)


def test_mixed_bfloat16_is_finite_and_close(rng):
    images = rng.random((2, 16, 16, 3)).astype("float32")
    reference = tiny()
    expected = to_numpy(reference(images))
    explicit = tiny(dtype="mixed_bfloat16")  # the policy as an argument, under the float32 global policy
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    mixed = tiny()
    for model in (mixed, explicit):
        model.set_weights(reference.get_weights())
        assert model.dtype_policy.name == "mixed_bfloat16"
        assert model.get_layer("encoder_block_0").compute_dtype == "bfloat16"
        assert model.get_layer("head").compute_dtype == "float32"
        out = to_numpy(model(images))
        assert out.dtype == np.float32 and np.all(np.isfinite(out))
        np.testing.assert_allclose(out, expected, atol=0.05 * np.abs(expected).max() + 0.02)
    np.testing.assert_array_equal(to_numpy(explicit(images)), to_numpy(mixed(images)))
