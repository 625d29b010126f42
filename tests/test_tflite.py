"""TFLite: the exported SavedModel converts with `tf.lite.TFLiteConverter.from_saved_model` and the
TFLite interpreter reproduces its outputs.

What does not carry over (TFLite has no assertion op, so the converter drops the SavedModel's
input checks): the interpreter takes batches of at least one image and does not refuse NaN or
out-of-range pixels; check them on the client.
"""

import warnings

import numpy as np
import pytest
import tensorflow as tf
from test_export import CLASS_NAMES, IMAGE_SIZE, tiny_vit

import vit_keras

pytestmark = pytest.mark.single_backend  # a SavedModel converted by TensorFlow: no Keras backend involved


def tflite_runner(flatbuffer, signature="serving_default"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's notice about the ai-edge-litert package
        interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    return interpreter.get_signature_runner(signature)


def test_saved_model_converts_to_tflite_with_the_same_outputs(tmp_path):
    path = vit_keras.export_saved_model(tiny_vit(), tmp_path / "tiny", class_names=CLASS_NAMES)
    converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=["serving_default"])
    flatbuffer = converter.convert()
    runner = tflite_runner(flatbuffer)
    served = tf.saved_model.load(path).signatures["serving_default"]
    rng = np.random.default_rng(0)
    for batch in (5, 1):  # the runner resizes its input to each batch
        images = rng.uniform(0, 255, (batch,) + IMAGE_SIZE + (3,)).astype(np.float32)
        out = runner(images=images)
        expected = {k: v.numpy() for k, v in served(images=tf.constant(images)).items()}
        assert set(out) == set(expected) - {"top_k_labels"} | ({"top_k_labels"} & set(out))
        np.testing.assert_allclose(out["logits"], expected["logits"], rtol=0, atol=1e-4)
        np.testing.assert_allclose(out["probabilities"], expected["probabilities"], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(out["top_k_indices"], expected["top_k_indices"])
