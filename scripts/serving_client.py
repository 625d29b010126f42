"""Classify images with a ViT served by TF Serving, over REST or gRPC.

    # image files (JPEG/PNG), sent encoded to the `serving_bytes` signature
    python scripts/serving_client.py --model vit_mnist digit.png other.jpg
    # a .npy batch of raw 0-255 pixels (N, H, W, C), sent to `serving_default`
    python scripts/serving_client.py --model vit_mnist --npy batch.npy --protocol grpc

REST posts to http://HOST:8501/v1/models/MODEL[/versions/N]:predict; gRPC calls
PredictionService.Predict on HOST:8500 (needs `tensorflow-serving-api`). The request builders
(`rest_body_for_*`, `grpc_request`) are plain functions so they can be checked without a server.
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request

import numpy as np

BYTES_SIGNATURE, BYTES_INPUT = "serving_bytes", "image_bytes"
PIXELS_SIGNATURE, PIXELS_INPUT = "serving_default", "images"


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


def rest_predict(url, body, timeout=30.0):
    """POST `body` to a TF Serving predict URL; return its "predictions" (one dict per image)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["predictions"]
    except urllib.error.HTTPError as error:
        raise RuntimeError(
            f"TF Serving at {url} answered {error.code}: {error.read().decode(errors='replace')}"
        ) from error


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
    """Send a `PredictRequest` to TF Serving's gRPC port; return {output name: array}."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=timeout)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


# ----------------------------------------------------------------------------- command line


def _read_files(paths):
    encoded = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                encoded.append(f.read())
        except OSError as error:
            raise SystemExit(f"serving_client: error: cannot read image {path}: {error.strerror}") from None
    return encoded


def _rows(predictions):
    """REST predictions (a list of dicts) or gRPC outputs (a dict of arrays) as a list of dicts."""
    if isinstance(predictions, dict):
        size = len(next(iter(predictions.values())))
        return [{k: v[i] for k, v in predictions.items()} for i in range(size)]
    return predictions


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help="JPEG/PNG files (sent to serving_bytes)")
    parser.add_argument("--npy", help="a .npy batch of raw pixels (N, H, W, C) (sent to serving_default)")
    parser.add_argument("--model", default="vit_mnist", help="the model name TF Serving serves")
    parser.add_argument("--version", type=int, help="a model version (default: the latest)")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--protocol", choices=("rest", "grpc"), default="rest")
    parser.add_argument("--rest-port", type=int, default=8501)
    parser.add_argument("--grpc-port", type=int, default=8500)
    args = parser.parse_args(argv)
    if bool(args.images) == bool(args.npy):
        parser.error("give image files or --npy, not both (and not neither)")

    if args.npy:
        pixels = np.load(args.npy)
        names = [f"{args.npy}[{i}]" for i in range(len(pixels))]
    else:
        encoded = _read_files(args.images)
        names = args.images
    if args.protocol == "rest":
        body = rest_body_for_pixels(pixels) if args.npy else rest_body_for_files(encoded)
        predictions = rest_predict(rest_url(args.host, args.rest_port, args.model, args.version), body)
    else:
        request = (
            grpc_request_for_pixels(args.model, pixels, args.version)
            if args.npy
            else grpc_request_for_files(args.model, encoded, args.version)
        )
        predictions = grpc_predict(f"{args.host}:{args.grpc_port}", request)
    for name, row in zip(names, _rows(predictions)):
        labels = row.get("top_k_labels", row["top_k_indices"])
        labels = [x.decode() if isinstance(x, bytes) else str(x) for x in labels]
        scores = ", ".join(f"{label} {float(s):.3f}" for label, s in zip(labels, row["top_k_scores"]))
        print(f"{name}: {scores}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
