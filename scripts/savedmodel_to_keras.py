"""Write `saved_models/vit_mnist.keras`: the shipped SavedModel's weights in a Keras model file.

The SavedModel `saved_models/vit_mnist/1` was exported from a training run whose `.keras` file
was not kept. This rebuilds the same `vit_keras.ViT` and copies every SavedModel variable into
the Keras weight of the same path (e.g. `encoder_block_3/attention/query/kernel`) and shape,
BatchNorm moving statistics included; a variable or weight left unmatched is an error. The
model is saved without an optimizer (inference only), then reloaded and checked against the
SavedModel's `serving_default` logits.

    KERAS_BACKEND=tensorflow .venv/bin/python scripts/savedmodel_to_keras.py
"""

import pathlib
import sys

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


def main(saved_model_dir=SAVED_MODELS / "vit_mnist" / "1", output=SAVED_MODELS / "vit_mnist.keras"):
    import keras
    import tensorflow as tf

    import vit_keras

    saved_model = tf.saved_model.load(str(saved_model_dir))
    model = vit_keras.ViT(name="vit_mnist", **ARCHITECTURE)
    copied = copy_weights(model, saved_model_weights(saved_model))
    model.save(output)  # never compiled: no optimizer state in the file
    images = np.random.default_rng(0).integers(0, 256, (64, 28, 28, 1)).astype("float32")
    reloaded = keras.saving.load_model(output, compile=False)
    served = saved_model.signatures["serving_default"](images=tf.constant(images))["logits"].numpy()
    difference = np.abs(reloaded.predict(images, verbose=0) - served).max()
    if difference > 1e-5:
        raise SystemExit(f"{output}: logits differ from the SavedModel's by {difference}.")
    print(f"{output}: {copied} weights copied; max |logit difference| {difference:.2e}")


if __name__ == "__main__":
    sys.exit(main())
