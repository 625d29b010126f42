"""Write `saved_models/vit_mnist.keras`: the shipped SavedModel's weights in a Keras model file.

The SavedModel `saved_models/vit_mnist/1` was exported from a training run whose `.keras` file
was not kept. This rebuilds the same `vit_keras.ViT` and copies every SavedModel variable into
the Keras weight of the same path (e.g. `encoder_block_3/attention/query/kernel`) and shape,
BatchNorm moving statistics included; a variable or weight left unmatched is an error. The
model is saved without an optimizer (inference only), then reloaded and checked against the
SavedModel's `serving_default` logits.

    KERAS_BACKEND=tensorflow .venv/bin/python scripts/savedmodel_to_keras.py \
        [--saved-model saved_models/vit_mnist/1] [--output saved_models/vit_mnist.keras]

The `.keras` file is written next to `--output` under a hidden name and renamed into place only
after the check passed, so an existing file is never left half-written. A SavedModel that cannot
be read, or whose variables do not fit the architecture, is one line on stderr and exit status 2.
"""

import argparse
import os
import pathlib
import sys
import uuid

import numpy as np

SAVED_MODELS = pathlib.Path(__file__).resolve().parent.parent / "saved_models"
sys.path.insert(0, str(SAVED_MODELS.parent))

from vit_keras.architectures import ARCHITECTURES  # noqa: E402

# The MNIST recipe of BENCHMARKS.md: `vit_mnist` with a conv stem at width 64 (saved_models/README.md).
ARCHITECTURE = {
    **ARCHITECTURES["vit_mnist"],
    **dict(stem="conv", embed_dim=64, mlp_dim=128, dropout=0.0, drop_path=0.1, pooling="gap", preprocessing="mnist"),
}
# Per-layer random-number state of the drop-path layers: not weights of the trained model.
SKIPPED = "seed_generator_state"


def _variable_path(name):
    """'encoder_block_0/norm1/gamma:0' -> 'encoder_block_0/norm1/gamma'."""
    return name.rsplit(":", 1)[0]


def saved_model_weights(saved_model):
    """{path: NumPy array} of a loaded SavedModel's variables, without random-number states."""
    values = {}
    for variable in saved_model.variables:
        path = _variable_path(variable.name)
        if path.rsplit("/", 1)[-1] == SKIPPED:
            continue
        if path in values:
            raise ValueError(f"SavedModel variable {path!r} appears twice.")
        values[path] = variable.numpy()
    return values


def fuse_attention(values):
    """`values` with each attention layer's per-head SavedModel variables in the fused layout of
    `vit_keras.layers.SelfAttention` (whose `qkv_kernel` is [query | key | value], head-major).

    `A/query/kernel` (D, heads, d), `A/key/...`, `A/value/...` and their (heads, d) biases become
    `A/qkv_kernel` (D, 3D) and `A/qkv_bias` (3D,); `A/attention_output/kernel` (heads, d, D) and its
    bias become `A/out_kernel` (D, D) and `A/out_bias`. Other variables are kept as they are.
    """
    fused = dict(values)
    prefixes = sorted(path[: -len("/query/kernel")] for path in values if path.endswith("/query/kernel"))
    for prefix in prefixes:
        parts = [f"{prefix}/{part}/{kind}" for part in ("query", "key", "value") for kind in ("kernel", "bias")]
        parts += [f"{prefix}/attention_output/kernel", f"{prefix}/attention_output/bias"]
        if any(part not in values for part in parts):
            continue  # left for copy_weights to report
        kernels = [fused.pop(f"{prefix}/{part}/kernel") for part in ("query", "key", "value")]
        biases = [fused.pop(f"{prefix}/{part}/bias") for part in ("query", "key", "value")]
        fused[f"{prefix}/qkv_kernel"] = np.concatenate([k.reshape(k.shape[0], -1) for k in kernels], axis=1)
        fused[f"{prefix}/qkv_bias"] = np.concatenate([b.reshape(-1) for b in biases])
        out = fused.pop(f"{prefix}/attention_output/kernel")
        fused[f"{prefix}/out_kernel"] = out.reshape(-1, out.shape[-1])
        fused[f"{prefix}/out_bias"] = fused.pop(f"{prefix}/attention_output/bias")
    return fused


def copy_weights(model, values):
    """Assign `values` ({path: array}) to `model`'s weights of the same path and shape; all must match."""
    targets = {weight.path: weight for weight in model.weights if not weight.path.endswith(SKIPPED)}
    missing, unused = sorted(set(targets) - set(values)), sorted(set(values) - set(targets))
    if missing or unused:
        raise ValueError(f"weights do not match: not in the SavedModel {missing}; not in the model {unused}.")
    for path, weight in targets.items():
        if tuple(weight.shape) != values[path].shape:
            raise ValueError(f"weight {path}: model shape {tuple(weight.shape)}, SavedModel {values[path].shape}.")
        weight.assign(values[path])
    return len(targets)


class ConversionError(Exception):
    """The SavedModel could not be read or converted (one line, printed without a traceback)."""


def _one_line(error):
    return " | ".join(line.strip() for line in str(error).splitlines() if line.strip())[:400] or type(error).__name__


def load_saved_model(saved_model_dir):
    """`tf.saved_model.load` of `saved_model_dir`, with its variables read.

    Raises:
        ConversionError: the folder is missing, or its saved_model.pb or variables are damaged.
    """
    import tensorflow as tf

    saved_model_dir = pathlib.Path(saved_model_dir)
    if not (saved_model_dir / "saved_model.pb").is_file():
        raise ConversionError(f"--saved-model {saved_model_dir}: expected a SavedModel folder with saved_model.pb.")
    try:
        saved_model = tf.saved_model.load(str(saved_model_dir))
    except Exception as error:  # OSError, FileNotFoundError, IndexError ...: a damaged folder
        raise ConversionError(
            f"--saved-model {saved_model_dir}: cannot read the SavedModel ({type(error).__name__}: {_one_line(error)})."
        ) from None
    if "serving_default" not in saved_model.signatures:
        raise ConversionError(f"--saved-model {saved_model_dir}: expected a serving_default signature; found none.")
    return saved_model


def convert(saved_model_dir, output):
    """Write the `.keras` copy of `saved_model_dir` to `output` (atomically) and check it.

    Returns:
        (the number of weights copied, the max absolute logit difference).

    Raises:
        ConversionError: the SavedModel cannot be read or does not fit the architecture, or the
            reloaded model's logits differ from the SavedModel's.
    """
    import keras
    import tensorflow as tf

    import vit_keras

    output = pathlib.Path(output)
    if output.suffix != ".keras" or output.is_dir():
        raise ConversionError(f"--output must be a .keras file path; found {output}.")
    saved_model = load_saved_model(saved_model_dir)
    model = vit_keras.ViT(name="vit_mnist", **ARCHITECTURE)
    try:
        copied = copy_weights(model, fuse_attention(saved_model_weights(saved_model)))
    except ValueError as error:
        raise ConversionError(f"--saved-model {saved_model_dir}: {_one_line(error)}") from None
    staging = output.parent / f".{output.stem}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}.keras"
    try:
        model.save(staging)  # never compiled: no optimizer state in the file
        images = np.random.default_rng(0).integers(0, 256, (64, 28, 28, 1)).astype("float32")
        reloaded = keras.saving.load_model(staging, compile=False)
        served = saved_model.signatures["serving_default"](images=tf.constant(images))["logits"].numpy()
        difference = float(np.abs(reloaded.predict(images, verbose=0) - served).max())
        if not difference <= 1e-5:
            raise ConversionError(f"{output}: logits differ from the SavedModel's by {difference}; not written.")
        os.replace(staging, output)
    except OSError as error:
        raise ConversionError(f"--output {output}: cannot write it ({error.strerror or error}).") from None
    finally:
        staging.unlink(missing_ok=True)
    return copied, difference


def main(argv=None):
    """Run the conversion; return the exit status (2, with one line on stderr, on failure)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saved-model", default=str(SAVED_MODELS / "vit_mnist" / "1"), help="the SavedModel folder")
    parser.add_argument("--output", default=str(SAVED_MODELS / "vit_mnist.keras"), help="the .keras file to write")
    args = parser.parse_args(argv)
    try:
        copied, difference = convert(args.saved_model, args.output)
    except ConversionError as error:
        print(f"savedmodel_to_keras: error: {error}", file=sys.stderr)
        return 2
    print(f"{args.output}: {copied} weights copied; max |logit difference| {difference:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
