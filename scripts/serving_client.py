"""Classify images with a ViT served by TF Serving, over REST or gRPC.

    # image files (JPEG/PNG), sent encoded to the `serving_bytes` signature
    python scripts/serving_client.py --model vit_mnist digit.png other.jpg
    # a .npy batch of raw 0-255 pixels (N, H, W, C), sent to `serving_default`
    python scripts/serving_client.py --model vit_mnist --npy batch.npy --protocol grpc

REST posts to http://HOST:8501/v1/models/MODEL[/versions/N]:predict; gRPC calls
PredictionService.Predict on HOST:8500 (needs `tensorflow-serving-api`). The request builders
(`rest_body_for_*`, `grpc_request`) are plain functions so they can be checked without a server.

Every failure (an unreadable file, a server that cannot be reached or answers with an error or
with something other than predictions) is one line on stderr and exit status 2.
"""

import argparse
import base64
import http.client
import json
import re
import sys
import urllib.error
import urllib.request

import numpy as np

BYTES_SIGNATURE, BYTES_INPUT = "serving_bytes", "image_bytes"
PIXELS_SIGNATURE, PIXELS_INPUT = "serving_default", "images"


class ClientError(Exception):
    """A request that could not be made or answered (one line, printed without a traceback)."""


def _one_line(text, limit=500):
    text = " | ".join(line.strip() for line in str(text).splitlines() if line.strip())
    return text if len(text) <= limit else text[:limit] + "..."


# ----------------------------------------------------------------------------- REST


def rest_body_for_files(encoded_images, signature=BYTES_SIGNATURE):
    """The JSON body for encoded JPEG/PNG images: each one base64 text under "b64"."""
    return {
        "signature_name": signature,
        "instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in encoded_images],
    }


def rest_body_for_pixels(images, signature=PIXELS_SIGNATURE):
    """The JSON body for a batch of raw 0-255 pixels (N, H, W, C)."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (batch, height, width, channels); found {images.shape}.")
    return {"signature_name": signature, "instances": images.tolist()}


def rest_url(host, port, model, version=None):
    version_part = f"/versions/{int(version)}" if version is not None else ""
    return f"http://{host}:{port}/v1/models/{model}{version_part}:predict"


def _error_text(payload):
    """The text of a TF Serving error body ({"error": "..."}), or the body itself."""
    text = payload.decode("utf-8", errors="replace")
    try:
        decoded = json.loads(text)
    except ValueError:
        return text
    return decoded.get("error", text) if isinstance(decoded, dict) else text


def parse_predictions(payload, url):
    """The "predictions" list of a TF Serving REST answer `payload` (bytes).

    Raises:
        ClientError: the answer is not JSON, or holds no "predictions" list.
    """
    try:
        answer = json.loads(payload)
    except ValueError:
        raise ClientError(f"TF Serving at {url} answered with text that is not JSON: {payload[:80]!r}") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("predictions"), list):
        found = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
        raise ClientError(f'TF Serving at {url} answered without a "predictions" list; found {found}.')
    return answer["predictions"]


def rest_predict(url, body, timeout=30.0):
    """POST `body` to a TF Serving predict URL; return its "predictions" (one dict per image).

    Raises:
        ClientError: the server cannot be reached, does not answer within `timeout` seconds,
            answers with an HTTP error (its text is in the message) or not with predictions.
    """
    request = urllib.request.Request(
        url, data=json.dumps(body, allow_nan=False).encode("utf-8"), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as error:
        raise ClientError(
            f"TF Serving at {url} answered HTTP {error.code}: {_one_line(_error_text(error.read()))}"
        ) from None
    except urllib.error.URLError as error:
        raise ClientError(
            f"cannot reach TF Serving at {url}: {_one_line(getattr(error.reason, 'strerror', None) or error.reason)}"
        ) from None
    except TimeoutError:
        raise ClientError(f"TF Serving at {url} did not answer within {timeout} s.") from None
    except (http.client.HTTPException, OSError) as error:
        raise ClientError(
            f"TF Serving at {url} broke off the answer: {_one_line(error) or type(error).__name__}"
        ) from None
    return parse_predictions(payload, url)


# ----------------------------------------------------------------------------- gRPC


def grpc_request(model, inputs, signature, version=None):
    """A `PredictRequest` for `inputs` ({input name: array}) to `signature` of `model`."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def grpc_request_for_files(model, encoded_images, version=None):
    return grpc_request(model, {BYTES_INPUT: np.array(list(encoded_images), dtype=object)}, BYTES_SIGNATURE, version)


def grpc_request_for_pixels(model, images, version=None):
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (batch, height, width, channels); found {images.shape}.")
    dtype, signature = (np.uint8, "serving_uint8") if images.dtype == np.uint8 else (np.float32, PIXELS_SIGNATURE)
    return grpc_request(model, {PIXELS_INPUT: images.astype(dtype)}, signature, version)


def grpc_predict(target, request, timeout=30.0):
    """Send a `PredictRequest` to TF Serving's gRPC port; return {output name: array}.

    Raises:
        ClientError: the server cannot be reached, does not answer within `timeout` seconds or
            answers with an error (its status and text are in the message).
    """
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    try:
        with grpc.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(request, timeout=timeout)
    except grpc.RpcError as error:
        raise ClientError(
            f"TF Serving at {target} (gRPC) answered {error.code().name}: {_one_line(error.details())}"
        ) from None
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


# ----------------------------------------------------------------------------- command line


def _read_files(paths):
    encoded = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                encoded.append(f.read())
        except OSError as error:
            raise ClientError(f"cannot read image {path}: {error.strerror or error}.") from None
    return encoded


def read_pixels(path):
    """The (N, H, W, C) batch of finite real pixels in the .npy file `path`.

    Raises:
        ClientError: the file cannot be read, is not a .npy array, or holds no such batch.
    """
    try:
        with open(path, "rb") as f:
            first = f.read(6)
        if first != b"\x93NUMPY" and not first.startswith(b"PK"):
            raise ClientError(f"--npy {path}: expected a .npy file; found a file that begins with {first!r}.")
        pixels = np.load(path, allow_pickle=False)
    except OSError as error:
        raise ClientError(f"--npy {path}: cannot read it: {error.strerror or error}.") from None
    except (ValueError, EOFError) as error:  # a damaged or truncated .npy
        raise ClientError(f"--npy {path}: expected a .npy array of pixels; {_one_line(error, 200)}") from None
    if not isinstance(pixels, np.ndarray):
        raise ClientError(f"--npy {path}: expected one .npy array; found a .npz archive of {sorted(pixels.files)}.")
    if pixels.ndim != 4 or not (np.issubdtype(pixels.dtype, np.integer) or np.issubdtype(pixels.dtype, np.floating)):
        raise ClientError(
            f"--npy {path}: expected raw pixels of shape (batch, height, width, channels); "
            f"found {pixels.dtype} of shape {pixels.shape}."
        )
    if not np.all(np.isfinite(pixels)):
        raise ClientError(f"--npy {path}: expected finite pixels; found NaN or infinite values.")
    return pixels


def _rows(predictions, count):
    """REST predictions (a list of dicts) or gRPC outputs (a dict of arrays) as `count` dicts that
    hold `top_k_scores` and `top_k_labels` or `top_k_indices`."""
    if isinstance(predictions, dict):
        sizes = {len(v) for v in predictions.values()}
        size = sizes.pop() if len(sizes) == 1 else -1
        predictions = [{k: v[i] for k, v in predictions.items()} for i in range(max(size, 0))]
    if len(predictions) != count:
        raise ClientError(f"TF Serving answered {len(predictions)} predictions for {count} images.")
    for row in predictions:
        if not isinstance(row, dict) or "top_k_scores" not in row or not {"top_k_labels", "top_k_indices"} & set(row):
            found = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise ClientError(f"expected predictions with top_k_scores and top_k_indices; found {found}.")
    return predictions


def _format_row(row):
    labels = row.get("top_k_labels", row.get("top_k_indices"))
    labels = [x.decode() if isinstance(x, bytes) else str(x) for x in labels]
    return ", ".join(f"{label} {float(s):.3f}" for label, s in zip(labels, row["top_k_scores"]))


def _port(text):
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number, 1 to 65535; found {text!r}")
    return port


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; found {text!r}")
    return value


def _name(text):
    if not re.fullmatch(r"[A-Za-z0-9._-]+", text) or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"must be a name of letters, digits, '.', '_' and '-'; found {text!r}")
    return text


def _host(text):
    if not re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]", text):
        raise argparse.ArgumentTypeError(
            f"must be a host name or address (an IPv6 address in brackets); found {text!r}"
        )
    return text


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help="JPEG/PNG files (sent to serving_bytes)")
    parser.add_argument("--npy", help="a .npy batch of raw pixels (N, H, W, C) (sent to serving_default)")
    parser.add_argument("--model", type=_name, default="vit_mnist", help="the model name TF Serving serves")
    parser.add_argument("--version", type=_positive_int, help="a model version (default: the latest)")
    parser.add_argument("--host", type=_host, default="localhost")
    parser.add_argument("--protocol", choices=("rest", "grpc"), default="rest")
    parser.add_argument("--rest-port", type=_port, default=8501)
    parser.add_argument("--grpc-port", type=_port, default=8500)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer")
    return parser


def _predict(args):
    """[(image name, its prediction row)] for the parsed arguments."""
    if args.npy:
        pixels = read_pixels(args.npy)
        names = [f"{args.npy}[{i}]" for i in range(len(pixels))]
    else:
        encoded = _read_files(args.images)
        names = args.images
    if args.protocol == "rest":
        body = rest_body_for_pixels(pixels) if args.npy else rest_body_for_files(encoded)
        url = rest_url(args.host, args.rest_port, args.model, args.version)
        predictions = rest_predict(url, body, timeout=args.timeout)
    else:
        try:
            request = (
                grpc_request_for_pixels(args.model, pixels, args.version)
                if args.npy
                else grpc_request_for_files(args.model, encoded, args.version)
            )
            predictions = grpc_predict(f"{args.host}:{args.grpc_port}", request, timeout=args.timeout)
        except ImportError as error:
            raise ClientError(f"--protocol grpc needs grpcio and tensorflow-serving-api ({error}).") from None
    return list(zip(names, _rows(predictions, len(names))))


def main(argv=None):
    """Run the client; return the exit status (2, with one line on stderr, when anything fails)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.images) == bool(args.npy):
        parser.error("give image files or --npy, not both (and not neither)")
    if not args.timeout > 0:
        parser.error(f"argument --timeout: must be a positive number of seconds; found {args.timeout}")
    try:
        rows = _predict(args)
    except ClientError as error:
        print(f"serving_client: error: {error}", file=sys.stderr)
        return 2
    for name, row in rows:
        print(f"{name}: {_format_row(row)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
