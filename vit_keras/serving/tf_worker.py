"""Write a `.keras` model as a serving SavedModel (or ONNX file) in a TensorFlow-backend process.

    KERAS_BACKEND=tensorflow python -m vit_keras.serving.tf_worker MODEL.keras OUTPUT \
        [--class-names-json '["a", "b"]'] [--top-k 5] [--format saved_model|onnx] [--opset 17]

`vit_keras.export_saved_model` and `vit_keras.export_onnx` run this when the model lives under JAX or PyTorch: the
`.keras` file holds the architecture and weights independently of the backend, so the model
rebuilt here computes the same function, and the exported graph is the same whatever backend
trained it.
"""

import argparse
import json
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .keras file")
    parser.add_argument("output", help="the SavedModel folder to create")
    parser.add_argument("--class-names-json", default="null")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--format", choices=("saved_model", "onnx"), default="saved_model")
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args(argv)

    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras

    if keras.backend.backend() != "tensorflow":  # keras was imported before the variable was set
        sys.exit(f"tf_worker needs the TensorFlow backend; found {keras.backend.backend()!r}.")
    from vit_keras.export import load_keras_model, write_in_tensorflow

    write_in_tensorflow(load_keras_model(args.model), args.output, json.loads(args.class_names_json),
                        args.top_k, args.format, args.opset)


if __name__ == "__main__":
    main()
