"""`from vit_keras import vit`: the old TF-only vit-keras API, unchanged, on Keras 3."""

import inspect
import json
import warnings

import numpy as np
import pytest
from conftest import FIXTURES, to_numpy

from vit_keras import vit

PARITY = FIXTURES / "vit_parity"
CONFIG = json.loads((PARITY / "config.json").read_text())


def cache_checkpoint(cache_root, size, weights, arrays):
    """Put `arrays` where the old library (and this module) caches ViT-`size` `weights`."""
    path = cache_root / "weights" / f"ViT-{size}_{weights}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def small_model(**overrides):
    kwargs = dict(
        image_size=CONFIG["img"],
        patch_size=CONFIG["patch"],
        num_layers=CONFIG["depth"],
        hidden_size=CONFIG["dim"],
        num_heads=CONFIG["heads"],
        name="small",
        mlp_dim=CONFIG["mlp"],
        classes=CONFIG["classes"],
        dropout=0.0,
    )
    return vit.build_model(**{**kwargs, **overrides})


def test_load_pretrained_with_and_without_the_top(tmp_path, monkeypatch):
    """The old `load_pretrained(size, weights, pretrained_top, model, ...)`: the cached file is
    used (no download), pretrained_top=False keeps the new head, True gives timm's logits."""
    monkeypatch.setenv("VIT_KERAS_CACHE", str(tmp_path))
    cache_checkpoint(tmp_path, "B_16", "imagenet21k+imagenet2012", dict(np.load(PARITY / "vit_google.npz")))
    inputs, logits = np.load(PARITY / "inputs.npy"), np.load(PARITY / "logits.npy")
    model = small_model()
    fresh_head = to_numpy(model.get_layer("head").kernel).copy()

    vit.load_pretrained("B_16", "imagenet21k+imagenet2012", False, model, CONFIG["img"], CONFIG["patch"])
    np.testing.assert_array_equal(to_numpy(model.get_layer("head").kernel), fresh_head)
    checkpoint = np.load(PARITY / "vit_google.npz")
    np.testing.assert_array_equal(
        to_numpy(model.get_layer("encoder_norm").gamma), checkpoint["Transformer/encoder_norm/scale"]
    )
    vit.load_pretrained("B_16", "imagenet21k+imagenet2012", True, model, CONFIG["img"], CONFIG["patch"])
    assert np.abs(to_numpy(model(inputs)) - logits).max() < 1e-4


def test_build_model_keeps_the_old_arguments_and_outputs():
    model = small_model(activation="sigmoid", classes=3)
    images = vit.preprocess_inputs(np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32"))
    probabilities = to_numpy(model(images))
    assert probabilities.shape == (2, 3) and np.all((probabilities > 0) & (probabilities < 1))
    features = small_model(include_top=False, representation_size=16)
    assert to_numpy(features(images)).shape == (2, 16)
    assert features.get_layer("pre_logits") is not None


@pytest.mark.single_backend
def test_representation_layer_of_the_imagenet21k_weights_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_KERAS_CACHE", str(tmp_path))
    arrays = dict(np.load(PARITY / "vit_google.npz"))
    rng = np.random.default_rng(0)
    arrays["pre_logits/kernel"] = rng.normal(size=(CONFIG["dim"], CONFIG["dim"])).astype("float32")
    arrays["pre_logits/bias"] = rng.normal(size=(CONFIG["dim"],)).astype("float32")
    arrays["head/kernel"] = rng.normal(size=(CONFIG["dim"], 21843)).astype("float32")
    arrays["head/bias"] = np.zeros(21843, "float32")
    cache_checkpoint(tmp_path, "B_32", "imagenet21k", arrays)
    model = small_model(representation_size=CONFIG["dim"], classes=10)
    vit.load_pretrained("B_32", "imagenet21k", False, model)
    np.testing.assert_array_equal(to_numpy(model.get_layer("pre_logits").kernel), arrays["pre_logits/kernel"])
    assert to_numpy(model.get_layer("head").kernel).shape == (CONFIG["dim"], 10)


def constant_b16_checkpoint(grid):
    """ViT-B/16 in Google's layout, each array one constant (small on disk, cheap to make)."""
    d, h, m, shapes = 768, 12, 3072, {}
    shapes.update(
        {
            "embedding/kernel": (16, 16, 3, d),
            "embedding/bias": (d,),
            "cls": (1, 1, d),
            "Transformer/posembed_input/pos_embedding": (1, grid * grid + 1, d),
            "Transformer/encoder_norm/scale": (d,),
            "Transformer/encoder_norm/bias": (d,),
            "head/kernel": (d, 1000),
            "head/bias": (1000,),
        }
    )
    for i in range(12):
        b = f"Transformer/encoderblock_{i}/"
        for leaf in ("LayerNorm_0/scale", "LayerNorm_0/bias", "LayerNorm_2/scale", "LayerNorm_2/bias"):
            shapes[b + leaf] = (d,)
        for part in ("query", "key", "value"):
            shapes[b + f"MultiHeadDotProductAttention_1/{part}/kernel"] = (d, h, d // h)
            shapes[b + f"MultiHeadDotProductAttention_1/{part}/bias"] = (h, d // h)
        shapes[b + "MultiHeadDotProductAttention_1/out/kernel"] = (h, d // h, d)
        shapes[b + "MultiHeadDotProductAttention_1/out/bias"] = (d,)
        shapes.update(
            {
                b + "MlpBlock_3/Dense_0/kernel": (d, m),
                b + "MlpBlock_3/Dense_0/bias": (m,),
                b + "MlpBlock_3/Dense_1/kernel": (m, d),
                b + "MlpBlock_3/Dense_1/bias": (d,),
            }
        )
    return {key: np.full(shape, 1e-3 * (i + 1), "float32") for i, (key, shape) in enumerate(shapes.items())}


@pytest.mark.single_backend
def test_the_old_readme_fine_tuning_call_runs_unchanged(tmp_path, monkeypatch):
    """vit.vit_b16(image_size=224, activation="sigmoid", pretrained=True, include_top=True,
    pretrained_top=False, classes=10), from a cached 384-px checkpoint (no download here)."""
    monkeypatch.setenv("VIT_KERAS_CACHE", str(tmp_path))
    arrays = constant_b16_checkpoint(grid=24)
    cached = cache_checkpoint(tmp_path, "B_16", "imagenet21k+imagenet2012", arrays)
    try:
        model = vit.vit_b16(
            image_size=224, activation="sigmoid", pretrained=True, include_top=True, pretrained_top=False, classes=10
        )
    finally:
        cached.unlink()  # 344 MB
    assert model.count_params() == 85_806_346  # ViT-B/16 with a 10-class head at 224 px
    mlp = model.get_layer("encoder_block_7").mlp_in.kernel
    np.testing.assert_array_equal(to_numpy(mlp), arrays["Transformer/encoderblock_7/MlpBlock_3/Dense_0/kernel"])
    assert to_numpy(model.get_layer("position_embedding").table).shape == (1, 197, 768)
    assert not np.allclose(to_numpy(model.get_layer("head").kernel), arrays["head/kernel"][:, :10])
    image = np.full((1, 224, 224, 3), 128, "float32")
    probabilities = model.predict(vit.preprocess_inputs(image), verbose=0)
    assert probabilities.shape == (1, 10) and np.all((probabilities > 0) & (probabilities < 1))


@pytest.mark.single_backend
def test_pretrained_top_rules_of_the_old_library():
    with pytest.warns(UserWarning, match="classes = 1000"):
        assert vit.validate_pretrained_top(True, True, 10, "imagenet21k+imagenet2012") == 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert vit.validate_pretrained_top(True, True, 21843, "imagenet21k") == 21843
    with pytest.raises(ValueError, match="pretrained_top=True needs pretrained=True"):
        vit.vit_b16(pretrained=False)  # pretrained_top defaults to True, as before
    with pytest.raises(ValueError, match="include_top"):
        vit.vit_l32(include_top=False, classes=1000)
    with pytest.raises(ValueError, match="weights must be one of"):
        vit.vit_b32(weights="imagenet")


@pytest.mark.single_backend
def test_helpers_keep_their_meaning():
    np.testing.assert_allclose(vit.preprocess_inputs(np.array([[0.0, 127.5, 255.0]])), [[-1.0, 0.0, 1.0]])
    assert vit.interpret_image_size(384) == (384, 384)
    assert vit.interpret_image_size((224, 320)) == (224, 320)
    with pytest.raises(ValueError, match="image_size"):
        vit.interpret_image_size("224")
    assert (
        vit.weights_url("L_16", "imagenet21k") == "https://storage.googleapis.com/vit_models/imagenet21k/ViT-L_16.npz"
    )
    assert vit.weights_url("B_16", "imagenet21k+imagenet2012").endswith("imagenet21k+imagenet2012/ViT-B_16.npz")
    with pytest.raises(ValueError, match="size must be one of"):
        vit.weights_url("H_14", "imagenet21k")


# --- `from vit_keras import utils`: the old helpers -------------------------------------------------


@pytest.mark.single_backend
def test_old_utils_read_images_and_name_imagenet_classes(tmp_path):
    import io

    import PIL.Image

    from vit_keras import utils

    classes = utils.get_imagenet_classes()
    assert len(classes) == len(set(classes)) == 1000
    assert (classes[0], classes[248], classes[948]) == ("tench, Tinca tinca", "Eskimo dog, husky", "Granny Smith")
    pixels = np.zeros((20, 30, 3), "uint8")
    pixels[:, :15] = (255, 0, 0)  # left half red, right half black
    PIL.Image.fromarray(pixels).save(tmp_path / "half.png")
    from_path = utils.read(str(tmp_path / "half.png"), 16)
    assert from_path.shape == (16, 16, 3) and from_path.dtype == np.uint8
    assert tuple(from_path[8, 2]) == (255, 0, 0) and tuple(from_path[8, 13]) == (0, 0, 0)
    for source in (io.BytesIO((tmp_path / "half.png").read_bytes()), (tmp_path / "half.png").as_uri(), pixels):
        np.testing.assert_array_equal(utils.read(source, 16), from_path)
    assert utils.read(PIL.Image.fromarray(pixels), 16).shape == (20, 30, 3)  # a PIL image keeps its size, as before
    with pytest.raises(FileNotFoundError, match="Could not find image at path"):
        utils.read(str(tmp_path / "absent.jpg"), 16)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.jpg: not a readable image"):
        utils.read(str(tmp_path / "bad.jpg"), 16)


def test_old_utils_load_weights_numpy_and_apply_embedding_weights():
    from vit_keras import utils

    inputs, logits = np.load(PARITY / "inputs.npy"), np.load(PARITY / "logits.npy")
    model = small_model()
    head = to_numpy(model.get_layer("head").kernel).copy()
    utils.load_weights_numpy(model, str(PARITY / "vit_google.npz"), pretrained_top=False)
    np.testing.assert_array_equal(to_numpy(model.get_layer("head").kernel), head)
    utils.load_weights_numpy(model, str(PARITY / "vit_google.npz"), True, 4, 4)
    assert np.abs(to_numpy(model(inputs)) - logits).max() < 1e-4

    large = small_model(image_size=CONFIG["resize"])
    utils.load_weights_numpy(large, str(PARITY / "vit_google.npz"), True)
    table = np.load(PARITY / "vit_google.npz")["Transformer/posembed_input/pos_embedding"]
    layer = large.get_layer("position_embedding")
    layer.set_weights([np.zeros_like(to_numpy(layer.table))])
    with pytest.warns(UserWarning, match="Resizing position embeddings from 4, 4 to 6, 6"):
        utils.apply_embedding_weights(layer, table, 6, 6)
    inputs_48, logits_48 = np.load(PARITY / "inputs_48.npy"), np.load(PARITY / "logits_48.npy")
    assert np.abs(to_numpy(large(inputs_48)) - logits_48).max() < 1e-4


@pytest.mark.single_backend
def test_the_constructors_keep_the_old_packages_signatures():
    expected = ["image_size", "classes", "activation", "include_top", "pretrained", "pretrained_top", "weights"]
    defaults = {"vit_b16": (224, 224), "vit_b32": (224, 224), "vit_l16": (384, 384), "vit_l32": (384, 384)}
    for name, size in defaults.items():
        constructor = getattr(vit, name)
        parameters = inspect.signature(constructor).parameters
        assert list(parameters) == expected and parameters["image_size"].default == size
        assert parameters["classes"].default == 1000 and parameters["weights"].default == "imagenet21k+imagenet2012"
        assert constructor.__name__ == name and "heads" in constructor.__doc__
