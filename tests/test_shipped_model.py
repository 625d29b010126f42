"""The shipped `saved_models/vit_mnist.keras`: the SavedModel's weights, loadable on every backend."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO

import vit_keras  # noqa: F401  (registers the ViT layers for keras.saving.load_model)

KERAS_FILE = REPO / "saved_models" / "vit_mnist.keras"
SAVED_MODEL = REPO / "saved_models" / "vit_mnist" / "1"
# Measured: 99.53% on the 10,000 MNIST test digits, 99.70% (6 errors) on the sample's 2,000.
ACCURACY_FLOOR = 0.995


@pytest.fixture(scope="module")
def shipped():
    return keras.saving.load_model(KERAS_FILE)


@pytest.fixture(scope="module")
def served_logits():
    signature = tf.saved_model.load(str(SAVED_MODEL)).signatures["serving_default"]
    return lambda images: signature(images=tf.constant(images, tf.float32))["logits"].numpy()


def test_keras_file_loads_on_every_backend_and_matches_the_saved_model(shipped, served_logits, mnist_digits):
    assert isinstance(shipped, vit_keras.ViT)
    assert getattr(shipped, "optimizer", None) is None  # inference only: no optimizer state
    assert (
        shipped.stem,
        shipped.patch_size,
        shipped.embed_dim,
        shipped.depth,
        shipped.num_heads,
        shipped.mlp_dim,
        shipped.pooling,
        shipped.preprocessing,
    ) == ("conv", 4, 64, 6, 4, 128, "gap", "mnist")
    images = mnist_digits.x_test[:256].astype("float32")
    logits = shipped.predict(images, batch_size=128, verbose=0)
    expected = served_logits(images)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5)
    assert np.mean(np.argmax(logits, -1) == mnist_digits.y_test[:256]) > 0.98  # real logits, not zeros


@pytest.mark.single_backend  # every test digit: one backend is enough
def test_keras_file_test_accuracy(shipped, mnist_digits, monkeypatch):
    # Keras runs TensorFlow's predict without XLA on a CPU-only machine; with XLA, 3,000 digits took 4.9 s of
    # process CPU time instead of 7.4 s (2-core CPU), plus 4.7 s to compile. Batches of 2,000: one shape, one compile.
    monkeypatch.setattr(shipped, "predict_function", None)
    monkeypatch.setattr(shipped, "jit_compile", True)
    logits = shipped.predict(mnist_digits.x_test.astype("float32"), batch_size=2000, verbose=0)
    predictions = np.argmax(logits, -1)
    accuracy = np.mean(predictions == mnist_digits.y_test)
    assert len(predictions) == (10_000 if mnist_digits.full else 2_000)
    assert accuracy >= ACCURACY_FLOOR, f"{mnist_digits.source}: test accuracy {accuracy:.4f}"
