"""Saving and loading: `.keras` round trips and weights across backends."""

import json
import os
import subprocess
import sys

import keras
import numpy as np

import vit_keras
from conftest import REPO, to_numpy

BACKENDS = ("tensorflow", "jax", "torch")


def small(**overrides):
    kwargs = dict(image_size=16, patch_size=4, in_channels=3, num_classes=5, embed_dim=12,
                  depth=2, num_heads=2, mlp_dim=24, dropout=0.1, drop_path=0.1,
                  representation_size=6, preprocessing="imagenet")
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
    backend = keras.backend.backend()
    other = BACKENDS[(BACKENDS.index(backend) + 1) % len(BACKENDS)]
    images = (rng.random((2, 16, 16, 3)) * 255).astype("float32")
    model = small()
    model.save(tmp_path / "model.keras")
    model.save_weights(tmp_path / "model.weights.h5")
    np.save(tmp_path / "images.npy", images)
    script = f"""
import json, numpy as np, keras, vit_keras
images = np.load({str(tmp_path / 'images.npy')!r})
from_file = keras.saving.load_model({str(tmp_path / 'model.keras')!r})
rebuilt = vit_keras.ViT(**json.loads({json.dumps(json.dumps(model.get_config()))}))
rebuilt.load_weights({str(tmp_path / 'model.weights.h5')!r})
np.save({str(tmp_path / 'out_file.npy')!r}, keras.ops.convert_to_numpy(from_file(images)))
np.save({str(tmp_path / 'out_weights.npy')!r}, keras.ops.convert_to_numpy(rebuilt(images)))
print(keras.backend.backend())
"""
    env = {**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == other
    expected = to_numpy(model(images))
    np.testing.assert_allclose(np.load(tmp_path / "out_file.npy"), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "out_weights.npy"), expected, atol=1e-5)
