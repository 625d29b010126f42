"""The shipped SavedModel `saved_models/vit_mnist/1` and the requests of scripts/serving_client.py.

TF Serving cannot run here, so its decoding of a request is imitated (JSON rows with {"b64": ...}
strings; TensorProtos from a serialised PredictRequest) and the tensors are fed through the
exported signatures in-process.
"""

import base64
import json
import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf

REPO = pathlib.Path(__file__).resolve().parent.parent
SHIPPED = REPO / "saved_models" / "vit_mnist" / "1"
sys.path.insert(0, str(REPO / "scripts"))
import serving_client  # noqa: E402

pytestmark = pytest.mark.single_backend  # a SavedModel and TensorFlow only: no Keras backend involved


@pytest.fixture(scope="module")
def mnist_test(mnist_digits):
    return mnist_digits.x_test, mnist_digits.y_test.astype(np.int64)


@pytest.fixture(scope="module")
def shipped():
    return tf.saved_model.load(str(SHIPPED))


def run(loaded, signature, **inputs):
    return {k: v.numpy() for k, v in loaded.signatures[signature](**inputs).items()}


# saved_models/README.md documents 99.53% on the 10,000 MNIST test digits. On the bundled sample's
# 2,000 test digits (when the full MNIST is absent) one error is 0.05 points, so the floor is 99%.
SHIPPED_ACCURACY_FLOOR = {True: 0.995, False: 0.99}


def test_shipped_model_classifies_the_mnist_test_set(shipped, mnist_test, mnist_digits):
    images, labels = mnist_test
    predicted = np.concatenate(
        [
            run(shipped, "serving_uint8", images=tf.constant(images[i : i + 2000]))["top_k_indices"][:, 0]
            for i in range(0, len(images), 2000)
        ]
    )
    accuracy = float(np.mean(predicted == labels))
    assert len(labels) == (10000 if mnist_digits.full else 2000), mnist_digits.source
    assert accuracy >= SHIPPED_ACCURACY_FLOOR[mnist_digits.full], accuracy


SHIPPED_ONNX = REPO / "saved_models" / "onnx" / "vit_mnist.onnx"


def test_shipped_onnx_model_matches_the_saved_model(shipped, mnist_test, mnist_digits):
    import onnxruntime

    images, labels = mnist_test
    session = onnxruntime.InferenceSession(str(SHIPPED_ONNX), providers=["CPUExecutionProvider"])
    logits = np.concatenate(
        [
            session.run(["logits"], {"images": images[i : i + 2000].astype(np.float32)})[0]
            for i in range(0, len(images), 2000)
        ]
    )
    accuracy = float(np.mean(logits.argmax(-1) == labels))
    assert accuracy >= SHIPPED_ACCURACY_FLOOR[mnist_digits.full], accuracy
    reference = run(shipped, "serving_default", images=tf.constant(images[:256], tf.float32))["logits"]
    np.testing.assert_allclose(logits[:256], reference, atol=1e-4)


def test_shipped_model_signatures_agree(shipped, mnist_test):
    images = mnist_test[0][:32]
    float_out = run(shipped, "serving_default", images=tf.constant(images, tf.float32))
    png = tf.constant([tf.io.encode_png(image).numpy() for image in images])
    for out in (
        run(shipped, "serving_uint8", images=tf.constant(images)),
        run(shipped, "serving_bytes", image_bytes=png),
    ):
        np.testing.assert_allclose(out["logits"], float_out["logits"], atol=1e-5)
    labels = float_out["top_k_labels"][:, 0].astype(str)
    np.testing.assert_array_equal(labels, float_out["top_k_indices"][:, 0].astype(str))


# ----------------------------------------------------------------------------- imitation of TF Serving


def serve_rest(loaded, body):
    """TF Serving's REST predict in row format for a one-input signature: {"predictions": [...]}."""
    body = json.loads(json.dumps(body))  # over the wire
    signature = loaded.signatures[body.get("signature_name", "serving_default")]
    ((name, spec),) = signature.structured_input_signature[1].items()
    values = [base64.b64decode(v["b64"]) if isinstance(v, dict) else v for v in body["instances"]]
    tensor = tf.constant(values, dtype=spec.dtype) if spec.dtype != tf.string else tf.constant(values)
    outputs = {k: v.numpy() for k, v in signature(**{name: tensor}).items()}
    rows = [{k: v[i].tolist() for k, v in outputs.items()} for i in range(len(values))]
    for row in rows:
        if "top_k_labels" in row:
            row["top_k_labels"] = [label.decode() for label in row["top_k_labels"]]
    return {"predictions": rows}


def serve_grpc(loaded, request):
    """TF Serving's gRPC Predict: parse the serialised request, run its signature, return arrays."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())  # over the wire
    signature = loaded.signatures[request.model_spec.signature_name or "serving_default"]
    inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
    return {k: v.numpy() for k, v in signature(**inputs).items()}


@pytest.fixture(scope="module")
def digits(mnist_test):
    images, labels = mnist_test
    return images[:16], labels[:16]


@pytest.fixture
def digit_files(digits, tmp_path):
    paths = []
    for i, image in enumerate(digits[0]):
        encode = tf.io.encode_png if i % 2 == 0 else (lambda x: tf.io.encode_jpeg(x, quality=95))
        path = tmp_path / f"digit_{i}.{'png' if i % 2 == 0 else 'jpg'}"
        path.write_bytes(encode(image).numpy())
        paths.append(str(path))
    return paths


def test_rest_pixel_request(shipped, digits):
    images, _ = digits
    body = serving_client.rest_body_for_pixels(images)
    assert body["signature_name"] == "serving_default" and np.array(body["instances"]).shape == (16, 28, 28, 1)
    rows = serve_rest(shipped, body)["predictions"]
    direct = run(shipped, "serving_uint8", images=tf.constant(images))
    np.testing.assert_allclose([r["logits"] for r in rows], direct["logits"], atol=1e-5)
    assert [r["top_k_labels"][0] for r in rows] == direct["top_k_labels"][:, 0].astype(str).tolist()


def test_rest_file_request_uses_b64(shipped, digits, digit_files):
    body = serving_client.rest_body_for_files(serving_client._read_files(digit_files))
    assert body["signature_name"] == "serving_bytes" and set(body["instances"][0]) == {"b64"}
    rows = serve_rest(shipped, body)["predictions"]
    predicted = np.array([int(r["top_k_labels"][0]) for r in rows])
    assert np.mean(predicted == digits[1]) >= 15 / 16
    png_rows = rows[0::2]  # PNG is lossless: the same logits as the pixels themselves
    direct = run(shipped, "serving_uint8", images=tf.constant(digits[0][0::2]))
    np.testing.assert_allclose([r["logits"] for r in png_rows], direct["logits"], atol=1e-5)


def test_grpc_requests(shipped, digits, digit_files):
    images, labels = digits
    direct = run(shipped, "serving_uint8", images=tf.constant(images))
    for pixels in (images, images.astype(np.float32)):
        request = serving_client.grpc_request_for_pixels("vit_mnist", pixels, version=1)
        assert request.model_spec.name == "vit_mnist" and request.model_spec.version.value == 1
        np.testing.assert_allclose(serve_grpc(shipped, request)["logits"], direct["logits"], atol=1e-5)
    request = serving_client.grpc_request_for_files("vit_mnist", serving_client._read_files(digit_files))
    assert request.model_spec.signature_name == "serving_bytes"
    out = serve_grpc(shipped, request)
    assert np.mean(out["top_k_indices"][:, 0] == labels) >= 15 / 16


def test_client_command_line_over_rest(shipped, digit_files, digits, monkeypatch, capsys):
    sent = []

    def fake_rest_predict(url, body, timeout=30.0):
        sent.append(url)
        return serve_rest(shipped, body)["predictions"]

    monkeypatch.setattr(serving_client, "rest_predict", fake_rest_predict)
    assert serving_client.main(["--model", "vit_mnist", "--version", "1"] + digit_files[:4]) == 0
    assert sent == ["http://localhost:8501/v1/models/vit_mnist/versions/1:predict"]
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith(digit_files[0] + ": ")
    top_labels = [int(line.split(": ")[1].split()[0]) for line in lines]
    assert np.mean(np.array(top_labels) == digits[1][:4]) >= 0.75


def test_client_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit, match="cannot read image"):
        serving_client.main([str(tmp_path / "missing.png")])
    with pytest.raises(SystemExit):
        serving_client.main([])
    with pytest.raises(ValueError, match=r"images must have shape \(batch, height, width, channels\)"):
        serving_client.rest_body_for_pixels(np.zeros((28, 28)))
