"""`vit_keras.predict.predict` and `vit-keras predict` against hostile models, images and run configs.

Each bad input ends in one line that names the model, image or run config, before anything is
printed (exit status 2 on the command line); images are decoded and resized as training and the
SavedModel's `serving_bytes` do.
"""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from vit_keras import ViT, predict
from vit_keras.cli import main as cli_main
from vit_keras.data.images import resize_pixels

SMALL = dict(image_size=8, patch_size=4, in_channels=1, embed_dim=8, depth=1, num_heads=2, mlp_dim=16)


def small_vit(**overrides):
    keras.utils.set_random_seed(3)
    return ViT(**{**SMALL, "num_classes": 3, **overrides})


def write_png(path, pixels):
    Image.fromarray(pixels).save(path)
    return path


def noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype("uint8")


def expected_scores(model, pixels):
    """Softmax of the model's logits for uint8 `pixels` (N, H, W, 1), resized as training does."""
    batch = np.stack([resize_pixels(p, (8, 8)) for p in pixels]).astype("float32")
    logits = keras.ops.convert_to_numpy(model.predict(batch, verbose=0)).astype("float64")
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def assert_one_line(error, *parts):
    message = str(error.value)
    assert "\n" not in message, message
    for part in parts:
        assert str(part) in message, message


def test_models_that_are_not_image_classifiers_are_named_in_one_line(tmp_path):
    image = write_png(tmp_path / "digit.png", noise((8, 8)))
    headless = small_vit(include_top=False, pooling="token")
    headless.save(tmp_path / "headless.keras")
    with pytest.raises(ValueError) as error:  # rather than softmax of its 8 features, printed as 8 "classes"
        predict.predict(tmp_path / "headless.keras", [image])
    assert_one_line(error, "headless.keras", "no classification head (include_top=False)")
    with pytest.raises(ValueError) as error:  # rather than "0 1.000" for every image
        predict.predict(small_vit(num_classes=1), [image])
    assert_one_line(error, "at least 2 classes", "found (None, 1)")
    feature_maps = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3)], name="feature_maps")
    with pytest.raises(ValueError) as error:  # rather than AttributeError: no attribute 'image_size'
        predict.predict(feature_maps, [image])
    assert_one_line(error, "'feature_maps'", "class scores (batch, classes)", "found (None, 6, 6, 2)")


def test_any_keras_image_classifier_predicts_as_its_logits_say(tmp_path):
    pixels = noise((2, 8, 8, 1), seed=1)
    images = [write_png(tmp_path / f"{i}.png", p[..., 0]) for i, p in enumerate(pixels)]
    keras.utils.set_random_seed(4)
    plain = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4)])
    predictions = predict.predict(plain, images, top_k=2)  # rather than AttributeError (no image_size)
    for prediction, row in zip(predictions, expected_scores(plain, pixels)):
        assert [name for name, _ in prediction["top"]] == [str(i) for i in np.argsort(-row)[:2]]
        np.testing.assert_allclose([s for _, s in prediction["top"]], np.sort(row)[::-1][:2], rtol=1e-5)
    softmax_head = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4, "softmax")])
    (prediction,) = predict.predict(softmax_head, images[:1], top_k=4)
    probabilities = keras.ops.convert_to_numpy(softmax_head.predict(pixels[:1].astype("float32"), verbose=0))[0]
    np.testing.assert_allclose(sorted(s for _, s in prediction["top"]), np.sort(probabilities), rtol=1e-5)


def test_channels_first_models_predict_the_same_classes(tmp_path):
    pixels = noise((1, 8, 8, 1), seed=2)
    image = write_png(tmp_path / "digit.png", pixels[0, ..., 0])
    model = small_vit(data_format="channels_first")
    (prediction,) = predict.predict(model, [image], top_k=3)  # rather than "only channels_last models"
    logits = keras.ops.convert_to_numpy(model.predict(np.moveaxis(pixels, -1, 1).astype("float32"), verbose=0))
    assert prediction["top"][0][0] == str(int(np.argmax(logits[0])))


def test_non_finite_weights_are_named_before_anything_is_predicted(tmp_path):
    model = small_vit()
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    model.save(tmp_path / "nan.keras")
    image = write_png(tmp_path / "digit.png", noise((8, 8)))
    with pytest.raises(ValueError) as error:  # rather than "0 nan, 1 nan, 2 nan"
        predict.predict(tmp_path / "nan.keras", [image])
    assert_one_line(error, "nan.keras", "non-finite weights")


@pytest.mark.single_backend
def test_run_class_names_must_fit_the_model(tmp_path):
    small_vit(num_classes=4).save(tmp_path / "model.keras")
    image = write_png(tmp_path / "digit.png", noise((8, 8)))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"dataset": {"class_names": ["a", "b", "c", "d", "e"]}}))
    with pytest.raises(ValueError) as error:  # rather than IndexError, or a wrong name when in range
        predict.predict(tmp_path, [image])
    assert_one_line(error, "dataset.class_names has 5 names; the model predicts 4 classes")
    config.write_text(json.dumps({"dataset": {"class_names": "abcd"}}))
    with pytest.raises(ValueError, match="dataset.class_names must be a list of names"):
        predict.predict(tmp_path, [image])  # rather than the letters of the string as class names
    config.write_text(json.dumps({"dataset": {"class_names": ["a", "b"]}}))
    (prediction,) = predict.predict(tmp_path, [image], top_k=4)  # rather than IndexError for classes 2 and 3
    assert sorted(name for name, _ in prediction["top"]) == ["2", "3", "a", "b"]
    config.write_text('{"dataset": {"class_na')  # truncated: the advice is a reader's, not the trainer's
    with pytest.raises(ValueError) as error:
        predict.predict(tmp_path, [image])
    assert_one_line(error, "config.json is not readable JSON", "restore it, or remove it")
    assert "--overwrite" not in str(error.value)
    config.unlink()  # without the run config: the class indices
    (prediction,) = predict.predict(tmp_path, [image], top_k=4)
    assert sorted(name for name, _ in prediction["top"]) == ["0", "1", "2", "3"]


@pytest.mark.single_backend
def test_images_are_decoded_and_resized_as_training_and_serving_do(tmp_path):
    model = small_vit()
    large = noise((1, 17, 13, 1), seed=5)
    eight_bit = noise((1, 8, 8, 1), seed=6)
    write_png(tmp_path / "large.png", large[0, ..., 0])
    Image.fromarray(eight_bit[0, ..., 0].astype(np.uint16) * 257).save(tmp_path / "deep.png")  # 16-bit grey
    predictions = predict.predict(model, [tmp_path / "large.png", tmp_path / "deep.png"], top_k=3)
    # bilinear resizing (not nearest), and 16-bit pixels reduced to 8 (not clipped to white)
    for prediction, row in zip(predictions, expected_scores(model, [large[0], eight_bit[0]])):
        np.testing.assert_allclose(sorted(s for _, s in prediction["top"]), np.sort(row), rtol=1e-4)


@pytest.mark.single_backend
def test_top_k_above_the_number_of_classes_returns_every_class(tmp_path):
    image = write_png(tmp_path / "digit.png", noise((8, 8)))
    (prediction,) = predict.predict(small_vit(), [image], top_k=10**12)
    assert sorted(name for name, _ in prediction["top"]) == ["0", "1", "2"]
    np.testing.assert_allclose(sum(s for _, s in prediction["top"]), 1.0, rtol=1e-6)


@pytest.mark.single_backend
def test_cli_predict_errors_are_one_line_with_status_2_and_print_nothing(tmp_path, capsys):
    small_vit().save(tmp_path / "model.keras")
    small_vit(include_top=False, pooling="token").save(tmp_path / "headless.keras")
    good = write_png(tmp_path / "good.png", noise((8, 8)))
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "text.png").write_text("not an image\n")
    cases = [
        ([str(tmp_path / "model.keras"), str(good), str(tmp_path / "folder.png")], "folder.png is a directory"),
        ([str(tmp_path / "model.keras"), str(good), str(tmp_path / "text.png")], "text.png cannot be decoded"),
        ([str(tmp_path / "headless.keras"), str(good)], "headless.keras has no classification head"),
    ]
    for argv, message in cases:
        assert cli_main(["predict", *argv]) == 2, argv
        captured = capsys.readouterr()
        assert captured.out == "", argv  # nothing printed before the error
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vit-keras predict: error:") and message in lines[0], lines
