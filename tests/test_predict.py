"""`vit_keras.predict` and `vit_keras.runs.load_run_model`: damaged models and images are named in one line."""

import json

import keras
import numpy as np
import pytest

from vit_keras import ViT, predict, runs


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny 8x8 grey-scale classifier saved as a run directory's model.keras and config.json."""
    folder = tmp_path_factory.mktemp("run")
    model = ViT(image_size=8, patch_size=4, in_channels=1, num_classes=3, embed_dim=8, depth=1, num_heads=2, mlp_dim=16)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.save(folder / "model.keras")
    runs.write_json_atomic(folder / "config.json", {"dataset": {"class_names": ["a", "b", "c"]}})
    return folder, model


def damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "flipped":
        middle = slice(len(data) * 3 // 8, len(data) * 5 // 8)
        path.write_bytes(data[: middle.start] + bytes(b ^ 0xFF for b in data[middle]) + data[middle.stop :])
    else:
        path.write_text("this is a text file, not an image or a model\n")


DAMAGES = ("truncated", "empty", "flipped", "text")


@pytest.mark.single_backend
def test_predict_returns_the_top_classes_with_the_run_class_names(saved_model, tmp_path):
    folder, model = saved_model
    images = []
    for i in range(3):
        images.append(tmp_path / f"image{i}.png")
        keras.utils.save_img(images[-1], np.full((8, 8, 1), 60 * i, "uint8"), scale=False)
    predictions = predict.predict(folder, images, top_k=2)
    assert [p["image"] for p in predictions] == [str(p) for p in images]
    expected = predict.softmax_scores(model, predict.load_images(images, (8, 8), 1))
    for p, row in zip(predictions, expected):
        assert [name for name, _ in p["top"]] == [["a", "b", "c"][i] for i in np.argsort(-row)[:2]]
        np.testing.assert_allclose([s for _, s in p["top"]], np.sort(row)[::-1][:2], rtol=1e-5)
    with pytest.raises(ValueError, match="top_k must be a positive integer; found 0"):
        predict.predict(folder, images, top_k=0)


def test_a_model_s_own_class_names_reach_predict_and_the_saved_model(tmp_path):
    """A `.keras` file with `class_names` (as pretrained heads get them) and no run config."""
    import tensorflow as tf

    import vit_keras

    model = ViT(
        image_size=8,
        patch_size=4,
        in_channels=1,
        num_classes=3,
        embed_dim=8,
        depth=1,
        num_heads=2,
        mlp_dim=16,
        class_names=["cat", "dog", "owl"],
    )
    model.save(tmp_path / "named.keras")
    image = tmp_path / "image.png"
    keras.utils.save_img(image, np.full((8, 8, 1), 90, "uint8"), scale=False)
    (prediction,) = predict.predict(tmp_path / "named.keras", [image], top_k=3)
    assert sorted(name for name, _ in prediction["top"]) == ["cat", "dog", "owl"]
    path = vit_keras.export_saved_model(tmp_path / "named.keras", tmp_path / "served")
    served = tf.saved_model.load(path).signatures["serving_default"](images=tf.zeros((1, 8, 8, 1)))
    assert sorted(label.decode() for label in served["top_k_labels"].numpy()[0]) == ["cat", "dog", "owl"]


@pytest.mark.single_backend
@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_model_file_is_named_in_one_line(saved_model, tmp_path, how):
    folder, _ = saved_model
    target = tmp_path / "model.keras"
    target.write_bytes((folder / "model.keras").read_bytes())
    damage(target, how)
    for call in (
        lambda: runs.load_run_model(target),
        lambda: predict.evaluate(target),
        lambda: predict.predict(tmp_path, ["x.png"]),
    ):
        with pytest.raises(ValueError) as error:
            call()
        assert "\n" not in str(error.value) and str(target) in str(error.value), str(error.value)


@pytest.mark.single_backend
def test_missing_or_foreign_model_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a run directory nor a .keras file"):
        runs.load_run_model(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="has no model.keras"):
        runs.load_run_model(tmp_path)
    (tmp_path / "weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ValueError, match="expected a run directory or a .keras file"):
        runs.load_run_model(tmp_path / "weights.h5")
    (tmp_path / "model.keras").write_bytes(b"PK")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not readable JSON"):
        runs.load_run_model(tmp_path)


@pytest.mark.single_backend
@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_image_is_named_in_one_line(saved_model, tmp_path, how):
    folder, _ = saved_model
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    keras.utils.save_img(good, np.random.default_rng(0).integers(0, 255, (64, 64, 1)).astype("uint8"), scale=False)
    keras.utils.save_img(bad, np.random.default_rng(1).integers(0, 255, (64, 64, 1)).astype("uint8"), scale=False)
    damage(bad, how)
    with pytest.raises(ValueError) as error:
        predict.predict(folder, [good, bad])
    assert "\n" not in str(error.value) and f"image {bad} cannot be decoded" in str(error.value), str(error.value)
    with pytest.raises(FileNotFoundError, match="does-not-exist.png does not exist"):
        predict.predict(folder, [good, tmp_path / "does-not-exist.png"])


@pytest.mark.single_backend
def test_json_is_strict_and_writes_are_atomic(tmp_path):
    path = tmp_path / "results.json"
    runs.write_json_atomic(path, {"loss": float("nan"), "values": [np.float32(1.5), float("inf")]})
    assert json.loads(path.read_text()) == {"loss": None, "values": [1.5, None]}
    assert runs.json_line({"x": np.float64("nan")}) == '{"x": null}'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary left
