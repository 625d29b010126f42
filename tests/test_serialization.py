"""Saving and loading: `.keras` round trips and weights across backends."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import FIXTURES, REPO, to_numpy

import vit_keras

BACKENDS = ("tensorflow", "jax", "torch")


def small(**overrides):
    kwargs = dict(
        image_size=16,
        patch_size=4,
        in_channels=3,
        num_classes=5,
        embed_dim=12,
        depth=2,
        num_heads=2,
        mlp_dim=24,
        dropout=0.1,
        drop_path=0.1,
        representation_size=6,
        preprocessing="imagenet",
    )
    kwargs.update(overrides)
    return vit_keras.ViT(**kwargs)


def test_keras_file_round_trip(tmp_path, rng):
    images = (rng.random((3, 16, 16, 3)) * 255).astype("float32")
    for model in (small(), small(pooling="gap", data_format="channels_first", preprocessing=None)):
        batch = images.transpose(0, 3, 1, 2) if model.data_format == "channels_first" else images
        path = tmp_path / f"{model.pooling}.keras"
        model.save(path)
        restored = keras.saving.load_model(path)
        assert type(restored) is vit_keras.ViT
        assert restored.get_config() == model.get_config()
        np.testing.assert_array_equal(to_numpy(restored(batch)), to_numpy(model(batch)))


def test_weights_saved_under_one_backend_load_under_another(tmp_path, rng):
    """Also: `import vit_keras` alone registers ViT, so `keras.saving.load_model` finds it."""
    backend = keras.backend.backend()
    other = BACKENDS[(BACKENDS.index(backend) + 1) % len(BACKENDS)]
    images = (rng.random((2, 16, 16, 3)) * 255).astype("float32")
    model = small()
    model.save(tmp_path / "model.keras")
    model.save_weights(tmp_path / "model.weights.h5")
    np.save(tmp_path / "images.npy", images)
    script = f"""
import vit_keras
import json, numpy as np, keras
images = np.load({str(tmp_path / "images.npy")!r})
from_file = keras.saving.load_model({str(tmp_path / "model.keras")!r})
rebuilt = vit_keras.ViT(**json.loads({json.dumps(json.dumps(model.get_config()))}))
rebuilt.load_weights({str(tmp_path / "model.weights.h5")!r})
np.save({str(tmp_path / "out_file.npy")!r}, keras.ops.convert_to_numpy(from_file(images)))
np.save({str(tmp_path / "out_weights.npy")!r}, keras.ops.convert_to_numpy(rebuilt(images)))
print(keras.backend.backend())
"""
    env = {**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == other
    expected = to_numpy(model(images))
    np.testing.assert_allclose(np.load(tmp_path / "out_file.npy"), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "out_weights.npy"), expected, atol=1e-5)


def test_mixed_precision_model_round_trips_its_policy(tmp_path, rng):
    images = (rng.random((2, 16, 16, 3)) * 255).astype("float32")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = small()
    keras.mixed_precision.set_global_policy("float32")  # loading must not depend on the global policy
    assert model.get_config()["dtype"]["config"]["name"] == "mixed_bfloat16"
    model.save(tmp_path / "mixed.keras")
    restored = keras.saving.load_model(tmp_path / "mixed.keras")
    assert restored.get_config() == model.get_config()
    assert restored.get_layer("encoder_block_0").compute_dtype == "bfloat16"
    assert restored.get_layer("head").compute_dtype == "float32"
    np.testing.assert_array_equal(to_numpy(restored(images)), to_numpy(model(images)))


@pytest.mark.single_backend
def test_keras_file_of_version_0_1_0_still_loads():
    """A `.keras` file written before `get_config` had `dtype` (channels-first, gap, pre-logits, preprocessing)."""
    path = FIXTURES / "legacy_keras" / "vit_0_1_0.keras"
    saved = np.load(FIXTURES / "legacy_keras" / "vit_0_1_0_io.npz")
    model = keras.saving.load_model(path)
    assert type(model) is vit_keras.ViT
    config = model.get_config()
    assert (config["pooling"], config["data_format"], config["image_size"]) == ("gap", "channels_first", [8, 12])
    assert config["dtype"]["config"]["name"] == "float32"
    np.testing.assert_allclose(to_numpy(model(saved["images"])), saved["outputs"], atol=1e-5)
