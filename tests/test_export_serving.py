"""The shipped SavedModel `saved_models/vit_mnist/1` and the requests of scripts/serving_client.py.

TF Serving cannot run here, so its decoding of a request is imitated (JSON rows with {"b64": ...}
strings; TensorProtos from a serialised PredictRequest) and the tensors are fed through the
exported signatures in-process. TF Serving's own way of running a signature, the MetaGraph in a
graph session with its input tensors fed, is run by `session_run`.
"""

import base64
import http.server
import json
import pathlib
import shutil
import socket
import sys
import threading
import time

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


def session_run(path, signature, **inputs):
    """Run a signature the way TF Serving does: the MetaGraph imported into a graph session and its
    input tensors fed (no TF2 function objects)."""
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        spec = meta_graph.signature_def[signature]
        feed = {spec.inputs[name].name: value for name, value in inputs.items()}
        names = sorted(spec.outputs)
        values = session.run([spec.outputs[name].name for name in names], feed)
    return dict(zip(names, values)), meta_graph


def test_shipped_model_runs_in_a_graph_session_as_tf_serving_runs_it(shipped, mnist_test):
    images = mnist_test[0][:16]
    outputs, _ = session_run(SHIPPED, "serving_uint8", images=images)
    expected = run(shipped, "serving_uint8", images=tf.constant(images))
    assert set(outputs) == set(expected)
    np.testing.assert_allclose(outputs["logits"], expected["logits"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(outputs["top_k_indices"], expected["top_k_indices"])


@pytest.mark.parametrize("batch", [1, 9])
def test_xla_savedmodel_runs_in_a_graph_session_with_its_device_choice(tmp_path, batch):
    """The XLA export's forward pass sits behind a `DeviceIndex` switch (pieces on a CPU, one
    program elsewhere) and the piece count's switch: a graph session runs both."""
    from test_export import tiny_vit

    from vit_keras.export import export_saved_model

    model = tiny_vit()
    path = export_saved_model(model, str(tmp_path / "xla"), jit_compile=True)
    images = np.random.default_rng(batch).uniform(0, 255, (batch,) + tuple(model.input.shape[1:])).astype("float32")
    outputs, meta_graph = session_run(path, "serving_default", images=images)
    np.testing.assert_allclose(outputs["logits"], model.predict(images, verbose=0), rtol=1e-4, atol=1e-4)
    functions = meta_graph.graph_def.library.function
    assert any(node.op == "DeviceIndex" for function in functions for node in function.node_def)


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
    assert serving_client.main([str(tmp_path / "missing.png")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"serving_client: error: cannot read image {tmp_path / 'missing.png'}: No such file or directory."
    )
    with pytest.raises(SystemExit):
        serving_client.main([])
    with pytest.raises(ValueError, match=r"images must have shape \(batch, height, width, channels\)"):
        serving_client.rest_body_for_pixels(np.zeros((28, 28)))


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--rest-port", "99999"),
        ("--rest-port", "0"),
        ("--grpc-port", "http"),
        ("--model", "m/../other"),
        ("--model", ""),
        ("--host", "a/b"),
        ("--version", "0"),
        ("--timeout", "0"),
    ],
)
def test_client_refuses_bad_options_in_one_line(tmp_path, capsys, flag, value):
    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    with pytest.raises(SystemExit) as exit_:
        serving_client.main([flag, value, str(tmp_path / "a.png")])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and flag in error and repr(value)[1:-1] in error, error


def _npy_files(folder):
    np.save(folder / "strings.npy", np.array(["a", "b"]))
    np.save(folder / "rank2.npy", np.zeros((28, 28), np.float32))
    np.save(folder / "nan.npy", np.full((1, 28, 28, 1), np.nan, np.float32))
    np.savez(folder / "archive.npz", images=np.zeros((1, 28, 28, 1)))
    (folder / "png.npy").write_bytes(b"\x89PNG\r\n\x1a\n....")
    (folder / "empty.npy").write_bytes(b"")
    np.save(folder / "whole.npy", np.zeros((2, 28, 28, 1), np.float32))
    (folder / "truncated.npy").write_bytes((folder / "whole.npy").read_bytes()[:100])
    return {
        "missing": "cannot read it: No such file or directory",
        "strings": "found <U1 of shape (2,)",
        "rank2": "found float32 of shape (28, 28)",
        "nan": "expected finite pixels; found NaN or infinite values",
        "archive": "expected one .npy array; found a .npz archive of ['images']",
        "png": "expected a .npy file; found a file that begins with",
        "empty": "expected a .npy file; found a file that begins with b''",
        "truncated": "expected a .npy array of pixels",
    }


def test_client_refuses_bad_npy_files_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(serving_client, "rest_predict", lambda *a, **k: pytest.fail("sent a request"))
    for name, expected in _npy_files(tmp_path).items():
        path = tmp_path / ("archive.npz" if name == "archive" else f"{name}.npy")
        assert serving_client.main(["--npy", str(path)]) == 2, name
        error = capsys.readouterr().err.strip()
        assert error.startswith(f"serving_client: error: --npy {path}: ") and expected in error, error
        assert len(error.splitlines()) == 1, error


class _Handler(http.server.BaseHTTPRequestHandler):
    """A local stand-in for TF Serving that answers every POST as `self.server.answer` says."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        status, body = self.server.answer
        if status is None:  # hang up without answering
            self.close_connection = True
            return
        if status == "slow":
            time.sleep(3)
            status = 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that gave up on a slow answer: nothing to report


@pytest.fixture(scope="module")
def fake_server():
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


ROW = {"top_k_indices": [3, 1], "top_k_scores": [0.9, 0.1]}
ANSWERS = {
    "error_json": (
        400,
        json.dumps({"error": "images must be finite pixels;\n found NaN"}).encode(),
        "answered HTTP 400: images must be finite pixels; | found NaN",
    ),
    "error_text": (500, b"<html>\nInternal error\n</html>", "answered HTTP 500: <html> | Internal error | </html>"),
    "not_json": (200, b"<html>hello</html>", "answered with text that is not JSON: b'<html>hello</html>'"),
    "no_predictions": (
        200,
        json.dumps({"outputs": {}}).encode(),
        "answered without a \"predictions\" list; found ['outputs']",
    ),
    "a_list": (200, b"[1, 2]", 'answered without a "predictions" list; found list'),
    "too_few": (200, json.dumps({"predictions": [ROW]}).encode(), "answered 1 predictions for 2 images"),
    "rows_without_scores": (
        200,
        json.dumps({"predictions": [[1], [2]]}).encode(),
        "expected predictions with top_k_scores",
    ),
    "hang_up": (None, b"", "broke off the answer"),
    "slow": ("slow", json.dumps({"predictions": [ROW, ROW]}).encode(), "did not answer within 0.5 s"),
}


@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_client_reports_a_bad_answer_in_one_line(fake_server, tmp_path, capsys, answer):
    status, body, expected = ANSWERS[answer]
    fake_server.answer = (status, body)
    images = [tmp_path / "a.png", tmp_path / "b.png"]
    for image in images:
        image.write_bytes(b"\x89PNG\r\n\x1a\n")
    port = str(fake_server.server_address[1])
    argv = ["--host", "127.0.0.1", "--rest-port", port, "--timeout", "0.5", *map(str, images)]
    assert serving_client.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("serving_client: error: ") and expected in error and len(error.splitlines()) == 1, error


def test_client_prints_a_good_answer_from_a_local_server(fake_server, tmp_path, capsys):
    fake_server.answer = (200, json.dumps({"predictions": [ROW]}).encode())
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    argv = ["--host", "127.0.0.1", "--rest-port", str(fake_server.server_address[1]), str(tmp_path / "a.png")]
    assert serving_client.main(argv) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path / 'a.png'}: 3 0.900, 1 0.100"


def test_client_reports_a_closed_port_in_one_line(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    port = _free_port()
    assert serving_client.main(["--host", "127.0.0.1", "--rest-port", str(port), str(tmp_path / "a.png")]) == 2
    error = capsys.readouterr().err.strip()
    url = f"http://127.0.0.1:{port}/v1/models/vit_mnist:predict"
    assert error == f"serving_client: error: cannot reach TF Serving at {url}: Connection refused"


def test_client_reports_a_closed_grpc_port_in_one_line(tmp_path, capsys):
    pytest.importorskip("tensorflow_serving")
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    port = _free_port()
    argv = [
        "--protocol",
        "grpc",
        "--host",
        "127.0.0.1",
        "--grpc-port",
        str(port),
        "--timeout",
        "5",
        str(tmp_path / "a.png"),
    ]
    assert serving_client.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"serving_client: error: TF Serving at 127.0.0.1:{port} (gRPC) answered UNAVAILABLE"), error
    assert len(error.splitlines()) == 1


# ----------------------------------------------------------------------------- scripts/savedmodel_to_keras.py


@pytest.fixture(scope="module")
def savedmodel_to_keras():
    import savedmodel_to_keras

    return savedmodel_to_keras


def _damaged_copies(folder):
    """{name: a damaged copy of the shipped SavedModel}."""
    copies = {}
    for name in ("truncated_pb", "no_variables", "empty"):
        copies[name] = folder / name
        if name == "empty":
            copies[name].mkdir()
            continue
        shutil.copytree(SHIPPED, copies[name])
    graph = copies["truncated_pb"] / "saved_model.pb"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    shutil.rmtree(copies["no_variables"] / "variables")
    return copies


def test_savedmodel_to_keras_reports_a_damaged_saved_model_and_writes_nothing(savedmodel_to_keras, tmp_path, capsys):
    output = tmp_path / "out.keras"
    output.write_bytes(b"the previous file")
    expected = {
        "truncated_pb": "cannot read the SavedModel (OSError:",
        "no_variables": "cannot read the SavedModel (FileNotFoundError:",
        "empty": "expected a SavedModel folder with saved_model.pb",
        "missing": "expected a SavedModel folder with saved_model.pb",
    }
    copies = {**_damaged_copies(tmp_path), "missing": tmp_path / "missing"}
    for name, folder in copies.items():
        assert savedmodel_to_keras.main(["--saved-model", str(folder), "--output", str(output)]) == 2, name
        error = capsys.readouterr().err.strip()
        assert error.startswith(f"savedmodel_to_keras: error: --saved-model {folder}: ") and expected[name] in error
        assert len(error.splitlines()) == 1, error
    assert output.read_bytes() == b"the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "no_variables", "out.keras", "truncated_pb"]


def test_savedmodel_to_keras_rebuilds_the_shipped_model(savedmodel_to_keras, tmp_path, capsys):
    """The shipped SavedModel's per-head attention variables fill the fused q/k/v weights."""
    import keras

    output = tmp_path / "vit_mnist.keras"
    assert savedmodel_to_keras.main(["--output", str(output)]) == 0
    assert "max |logit difference|" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["vit_mnist.keras"]  # no hidden leftover
    images = np.random.default_rng(3).integers(0, 256, (4, 28, 28, 1)).astype(np.float32)
    served = run(tf.saved_model.load(str(SHIPPED)), "serving_default", images=tf.constant(images))["logits"]
    rebuilt = keras.saving.load_model(output, compile=False).predict(images, verbose=0)
    np.testing.assert_allclose(rebuilt, served, atol=1e-5)
