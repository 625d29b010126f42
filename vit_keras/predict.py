"""Using a trained model: test loss/accuracy (`evaluate`) and top-k classes of image files (`predict`).

Both take a `keras.Model`, a `vit-keras train` run directory or a `.keras` file
(`vit_keras.runs.load_run_model`). The reported loss is the plain categorical cross-entropy
(no label smoothing), the same number `vit-keras train` writes to results.json as `test_loss`.
"""

import pathlib

import keras
import numpy as np

from vit_keras import runs


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
    height, width = model.image_size
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

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: one line naming the file when it is truncated, corrupt or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    if channels not in modes:
        raise ValueError(f"model: expected 1, 3 or 4 input channels; found {channels}.")
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist.")
    try:
        with Image.open(path) as image:
            image.load()  # decodes the whole file: a truncated one fails here
            image = image.convert(modes[channels]).resize((image_size[1], image_size[0]), Image.NEAREST)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"image {path} cannot be decoded as an image ({reason}).") from None
    array = np.asarray(image, dtype="float32")
    return array[..., None] if array.ndim == 2 else array


def load_images(paths, image_size, channels):
    """A float32 batch (N, height, width, channels) of raw-pixel images from files (see `load_image`)."""
    if isinstance(paths, (str, pathlib.Path)) or not len(paths):
        raise ValueError(f"images must be a non-empty list of image files; found {paths!r}.")
    return np.stack([load_image(path, image_size, channels) for path in paths])


def softmax_scores(model, batch):
    """Class probabilities of `model` for an image batch (softmax of the logits when needed)."""
    outputs = keras.ops.convert_to_numpy(model.predict(batch, verbose=0)).astype("float64")
    if getattr(model, "classifier_activation", None) is None:
        outputs = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        outputs /= outputs.sum(axis=1, keepdims=True)
    return outputs


def predict(model_or_run, images, top_k=5):
    """The `top_k` classes of each image file.

    Args:
        model_or_run: a `keras.Model`, a run directory or a `.keras` file.
        images: paths of image files (PNG, JPEG, GIF, BMP).
        top_k: how many classes to return per image (positive).

    Returns:
        [{"image": path, "top": [(class name, probability), ...]}], best class first; class
        names come from the run's config.json, else they are the class indices.

    Raises:
        ValueError: a bad model file, a bad `top_k`, or an image that does not decode (naming it).
        FileNotFoundError: the model or an image does not exist.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise ValueError(f"top_k must be a positive integer; found {top_k!r}.")
    model, config = _model_and_config(model_or_run)
    _check_channels_last(model, "predict")
    batch = load_images(images, tuple(model.image_size), model.in_channels)
    scores = softmax_scores(model, batch)
    names = (
        config.get("dataset", {}).get("class_names")
        or getattr(model, "class_names", None)
        or [str(i) for i in range(scores.shape[1])]
    )
    predictions = []
    for image, row in zip(images, scores):
        order = np.argsort(-row)[:top_k]
        predictions.append({"image": str(image), "top": [(names[i], float(row[i])) for i in order]})
    return predictions
