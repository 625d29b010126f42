"""Using a trained model: test loss/accuracy (`evaluate`) and top-k classes of image files (`predict`).

Both take a `keras.Model`, a `vit-keras train` run directory or a `.keras` file
(`vit_keras.runs.load_run_model`). The reported loss is the plain categorical cross-entropy
(no label smoothing), the same number `vit-keras train` writes to results.json as `test_loss`.
"""

import pathlib

import keras
import numpy as np

from vit_keras import runs
from vit_keras.data.images import IMAGE_CHANNELS
from vit_keras.validation import check_positive


def _model_and_config(model_or_run):
    if isinstance(model_or_run, keras.Model):
        return model_or_run, {}
    return runs.load_run_model(model_or_run)


def _check_channels_last(model, what):
    if getattr(model, "data_format", "channels_last") != "channels_last":
        raise ValueError(f"{what}: only channels_last models are supported; found {model.data_format}.")


def evaluate_model(model, dataset):
    """(loss, accuracy) of `model` on batches of (images, one-hot labels), with plain cross-entropy.

    The model is compiled again for evaluation (its optimizer is not used).
    """
    from_logits = getattr(model, "classifier_activation", None) is None
    model.compile(
        loss=keras.losses.CategoricalCrossentropy(from_logits=from_logits),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    loss, accuracy = model.evaluate(dataset, verbose=0)
    return float(loss), float(accuracy)


def evaluate(model_or_run, dataset=None, data_dir=None, batch_size=256):
    """Test loss and accuracy of a model on a dataset's test split.

    Args:
        model_or_run: a `keras.Model`, a run directory or a `.keras` file.
        dataset: a `vit_keras.data.load_dataset` spec; default: the run's dataset, else mnist-sample.
        data_dir: the data folder for `dataset`; default: the run's.
        batch_size: images per evaluation batch.

    Returns:
        {"dataset", "test_examples", "test_loss" (plain cross-entropy), "test_accuracy"}.

    Raises:
        ValueError: a bad model file, a dataset without a test split or with more classes than
            the model predicts, a non-positive batch size.
        FileNotFoundError: the model or the dataset does not exist.
    """
    from vit_keras import data as vdata

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer; found {batch_size!r}.")
    model, config = _model_and_config(model_or_run)
    run_args = config.get("args", {})
    dataset = dataset or run_args.get("dataset") or "mnist-sample"
    data_dir = data_dir or run_args.get("data_dir")
    _check_channels_last(model, "evaluate")
    height, width, _, _ = classifier_input(model, _model_name(model_or_run, model))
    splits = vdata.load_dataset(
        dataset, data_dir=data_dir, image_size=(height, width), val_fraction=0.0, seed=run_args.get("seed", 0)
    )
    if splits.test is None:
        raise ValueError(f"dataset {dataset} has no test split to evaluate.")
    classes = model.output_shape[-1]
    if splits.num_classes > classes:
        raise ValueError(f"dataset {dataset} has {splits.num_classes} classes; the model predicts {classes}.")
    test = vdata.make_pipeline(splits.test, (height, width), batch_size, classes)
    loss, accuracy = evaluate_model(model, test)
    return {
        "dataset": splits.source,
        "test_examples": splits.sizes["test"],
        "test_loss": loss,
        "test_accuracy": accuracy,
    }


def load_image(path, image_size, channels):
    """One image file as float32 raw pixels (height, width, channels), resized to `image_size`.

    Decoded and resized as training (folder datasets) and the SavedModel's `serving_bytes` do:
    Pillow, 16-bit images reduced to their high byte, bilinear resizing rounded to uint8.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: one line naming the file when it is a directory, empty, truncated, corrupt,
            not an image, or declares 0 or too many pixels.
    """
    from vit_keras.data.images import decode_image_file, resize_pixels

    if channels not in IMAGE_CHANNELS:
        raise ValueError(f"model: expected 1, 3 or 4 input channels; found {channels}.")
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image {path} does not exist.")
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise ValueError(f"image {path} is {kind}; expected an image file (PNG, JPEG, GIF, BMP).")
    try:
        pixels = decode_image_file(path, channels)
    except ValueError as error:
        raise ValueError(f"image {path} cannot be decoded as an image: {error}.") from None
    return resize_pixels(pixels, tuple(image_size)).astype("float32")


def load_images(paths, image_size, channels):
    """A float32 batch (N, height, width, channels) of raw-pixel images from files (see `load_image`)."""
    if isinstance(paths, (str, pathlib.Path)) or not len(paths):
        raise ValueError(f"images must be a non-empty list of image files; found {paths!r}.")
    return np.stack([load_image(path, image_size, channels) for path in paths])


def _model_name(model_or_run, model):
    return str(model_or_run) if not isinstance(model_or_run, keras.Model) else repr(model.name)


def classifier_input(model, what="model"):
    """(height, width, channels, channels_first) of an image classifier; a one-line ValueError otherwise.

    A classifier takes (batch, H, W, C) images (or (batch, C, H, W) for `data_format="channels_first"`)
    of a fixed size with 1, 3 or 4 channels and returns (batch, classes) scores, classes >= 2.

    Args:
        model: a `keras.Model`.
        what: how the model is named in errors (its file, for one loaded from disk).

    Raises:
        ValueError: a model without a classification head (`include_top=False`), with another
            input or output shape, or with a single output.
    """
    if not getattr(model, "include_top", True):
        raise ValueError(
            f"model {what} has no classification head (include_top=False): it returns features, not class scores."
        )
    inputs, outputs = model.input_shape, model.output_shape
    channels_first = getattr(model, "data_format", "channels_last") == "channels_first"
    if not isinstance(inputs, tuple) or len(inputs) != 4 or None in inputs[1:]:
        raise ValueError(f"model {what} must take one batch of fixed-size images (batch, H, W, C); found {inputs}.")
    height, width, channels = (inputs[2], inputs[3], inputs[1]) if channels_first else inputs[1:]
    if channels not in IMAGE_CHANNELS:
        raise ValueError(f"model {what}: expected 1, 3 or 4 input channels; found {channels}.")
    if not isinstance(outputs, tuple) or len(outputs) != 2 or outputs[1] is None or outputs[1] < 2:
        raise ValueError(
            f"model {what} must return class scores (batch, classes) with at least 2 classes; found {outputs}."
        )
    return height, width, channels, channels_first


def _outputs_probabilities(model):
    """Whether `model`'s outputs are already probabilities (a softmax head) rather than logits."""
    if hasattr(model, "classifier_activation"):
        activation = model.classifier_activation
    else:
        activation = getattr(model.layers[-1], "activation", None) if model.layers else None
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", None)
    return name == "softmax"


def softmax_scores(model, batch):
    """Class probabilities of `model` for an image batch (softmax of the logits when needed).

    Raises:
        ValueError: the model's outputs are not finite (NaN or infinite).
    """
    outputs = keras.ops.convert_to_numpy(model.predict(batch, verbose=0)).astype("float64")
    if not np.all(np.isfinite(outputs)):
        raise ValueError(
            f"model {model.name!r} returned non-finite scores (NaN or inf) for "
            f"{int(np.sum(~np.isfinite(outputs).all(axis=1)))} of {len(outputs)} images; are its weights finite?"
        )
    if not _outputs_probabilities(model):
        outputs = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        outputs /= outputs.sum(axis=1, keepdims=True)
    return outputs


def check_finite_weights(model, what="model"):
    """Raise a one-line ValueError naming the first weight of `model` that holds NaN or inf."""
    for weight in model.weights:
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(weight))):
            raise ValueError(f"model {what} holds non-finite weights (NaN or inf) in {weight.path}.")


def class_names_for(model, config, num_classes, what="model"):
    """One name per class: the run's config.json names, else the model's, else the indices.

    A run's list may name fewer classes than the model predicts (the others keep their index),
    never more.

    Raises:
        ValueError: the run's class names are not a list of names or are more than the classes.
    """
    dataset = config.get("dataset") if isinstance(config, dict) else None
    names = dataset.get("class_names") if isinstance(dataset, dict) else None
    if names:
        if not isinstance(names, list) or not all(isinstance(n, (str, int)) for n in names):
            raise ValueError(f"run config of {what}: dataset.class_names must be a list of names; found {names!r:.80}.")
        if len(names) > num_classes:
            raise ValueError(
                f"run config of {what}: dataset.class_names has {len(names)} names; the model predicts "
                f"{num_classes} classes."
            )
        return [str(n) for n in names] + [str(i) for i in range(len(names), num_classes)]
    return list(getattr(model, "class_names", None) or [str(i) for i in range(num_classes)])


def predict(model_or_run, images, top_k=5):
    """The `top_k` classes of each image file.

    Args:
        model_or_run: a `keras.Model` image classifier (see `classifier_input`), a run directory
            or a `.keras` file.
        images: paths of image files (PNG, JPEG, GIF, BMP), decoded and resized as in training.
        top_k: how many classes to return per image (positive); at most the number of classes
            are returned, as by the SavedModel's `top_k_*` outputs.

    Returns:
        [{"image": path, "top": [(class name, probability), ...]}], best class first; class
        names come from the run's config.json, else from the model, else they are the class indices.

    Raises:
        ValueError: a bad model file or a model that is not an image classifier, non-finite
            weights or scores, a bad `top_k`, or an image that does not decode (naming it).
        FileNotFoundError: the model or an image does not exist.

    Example:

    >>> predict("runs/mnist", ["digit.png"], top_k=3)  # doctest: +SKIP
    [{'image': 'digit.png', 'top': [('7', 0.98), ('1', 0.01), ('9', 0.003)]}]
    """
    check_positive("top_k", top_k)
    model, config = _model_and_config(model_or_run)
    what = _model_name(model_or_run, model)
    height, width, channels, channels_first = classifier_input(model, what)
    names = class_names_for(model, config, model.output_shape[1], what)
    check_finite_weights(model, what)
    batch = load_images(images, (height, width), channels)
    scores = softmax_scores(model, np.moveaxis(batch, -1, 1) if channels_first else batch)
    predictions = []
    for image, row in zip(images, scores):
        order = np.argsort(-row, kind="stable")[:top_k]
        predictions.append({"image": str(image), "top": [(names[i], float(row[i])) for i in order]})
    return predictions
