"""See inside a ViT: attention rollout maps, position-embedding similarity, confusion matrices.

The attention weights come from a separate model over the trained layers whose encoder blocks
return their attention weights; the model itself keeps its fused attention path. Pictures are
written as PNG (matplotlib figures outside pyplot) through a temporary file, so a failed plot
leaves no half-written file. `plot_run` draws a run's pictures (`vit-keras plot RUN_DIR`).
"""

import csv
import logging
import os
import uuid
import weakref
from pathlib import Path

import keras
import numpy as np

from vit_keras.architectures import POOLINGS
from vit_keras.layers import PositionEmbedding, TransformerEncoderBlock
from vit_keras.layers.position_embedding import _bilinear_matrix
from vit_keras.runs import load_run_model
from vit_keras.validation import check_choice, check_positive

logger = logging.getLogger(__name__)

PANEL_INCHES = 3.0  # side of one picture panel
DPI = 100
MAX_ATTENTION_ROWS = 64  # images in one attention picture (64 rows: 900 x 19,200 pixels)
MAX_FIGURE_INCHES = 50.0  # side of the position-embedding picture (5,000 pixels)
MAX_CONFUSION_CLASSES = 1000  # classes of a confusion-matrix picture (8 MB of counts)

_attention_models = weakref.WeakKeyDictionary()  # model -> its attention-weights model


# --------------------------------------------------------------------------- attention rollout


def _encoder_blocks(model):
    blocks = [layer for layer in model.layers if isinstance(layer, TransformerEncoderBlock)]
    if not blocks:
        raise ValueError(
            f"model must contain TransformerEncoderBlock layers (a vit_keras.ViT); found none in "
            f"{type(model).__name__} {model.name!r} (layers: {[layer.name for layer in model.layers]})."
        )
    return blocks


class _BlockWithScores(keras.layers.Layer):
    """Calls a (trained) encoder block in inference mode, returning (tokens, attention weights)."""

    def __init__(self, block, **kwargs):
        super().__init__(name=f"{block.name}_with_scores", dtype=block.dtype_policy, **kwargs)
        self.block = block

    def call(self, tokens):
        return self.block(tokens, training=False, return_attention_scores=True)

    def compute_output_spec(self, tokens):
        return self.block.compute_output_spec(tokens, return_attention_scores=True)


def attention_scores_model(model):
    """A model from the images to every encoder block's attention weights (batch, heads, T, T).

    A separate functional model over `model`'s own layers, in order, up to the last encoder
    block (dropout skipped), whose blocks return their attention weights; `model` itself, and
    its fused attention path, are untouched. Built once per model.
    """
    cached = _attention_models.get(model)
    if cached is not None:
        return cached
    blocks = _encoder_blocks(model)
    inputs = keras.Input(tuple(model.input_shape[1:]), name="images")
    x, scores = inputs, []
    for layer in model.layers:
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.Dropout)):
            continue
        if isinstance(layer, TransformerEncoderBlock):
            x, block_scores = _BlockWithScores(layer)(x)
            scores.append(block_scores)
            if layer is blocks[-1]:
                break
        else:
            x = layer(x)
    _attention_models[model] = keras.Model(inputs, scores, name=f"{model.name}_attention")
    return _attention_models[model]


def attention_scores(model, images, batch_size=64):
    """Every encoder block's attention weights for `images`: a list of (batch, heads, T, T) arrays."""
    check_positive("batch_size", batch_size)
    images = _check_images(model, images)
    scores = attention_scores_model(model).predict(images, batch_size=batch_size, verbose=0)
    return list(scores) if isinstance(scores, (list, tuple)) else [scores]


def _check_images(model, images):
    """`images` as a float32 batch that fits `model`; a ValueError naming the mismatch otherwise."""
    try:
        images = np.asarray(images)
    except ValueError:  # a ragged sequence
        raise ValueError(
            f"images must be one array of equally shaped images; found a ragged {type(images).__name__}."
        ) from None
    if not np.issubdtype(images.dtype, np.number) or np.issubdtype(images.dtype, np.complexfloating):
        raise ValueError(f"images must be real numbers; found dtype {images.dtype}.")
    expected = tuple(model.input_shape[1:])
    if expected[-1] == 1 and images.shape[1:] == expected[:-1]:
        images = images[..., None]  # (batch, H, W) grey images for a channels-last 1-channel model
    if images.ndim != len(expected) + 1 or any(
        want is not None and found != want for found, want in zip(images.shape[1:], expected)
    ):
        raise ValueError(
            f"images must have shape (batch,) + {expected} for model {model.name!r}; found shape {images.shape}."
        )
    if len(images) == 0:
        raise ValueError(f"images must hold at least one image; found shape {images.shape}.")
    if not np.all(np.isfinite(images)):
        raise ValueError("images must be finite; found NaN or infinite values.")
    return images.astype("float32")


def _image_hw(model):
    """(height, width) of the model's images and its patch grid (rows, columns)."""
    if hasattr(model, "image_size") and hasattr(model, "grid_size"):
        return tuple(model.image_size), tuple(model.grid_size)
    table = next((layer for layer in model.layers if isinstance(layer, PositionEmbedding)), None)
    if table is None:
        raise ValueError(
            f"model must contain a PositionEmbedding layer (a vit_keras.ViT); found none in {model.name!r}."
        )
    shape = model.input_shape[1:]
    hw = tuple(shape[1:3]) if getattr(model, "data_format", None) == "channels_first" else tuple(shape[:2])
    return hw, tuple(table.grid_size)


def rollout(scores, num_prefix_tokens=1, pooling="token"):
    """Attention rollout of per-layer attention weights, as NumPy (batch, patch tokens) maps.

    Each layer's weights (batch, heads, T, T) are averaged over the heads, the identity is added
    for the residual connection and the rows renormalised; the layers are multiplied through
    (first layer on the right). The map is read as the model reads its representation, over the
    patch tokens: the class token's row (`pooling="token"`) or the mean of the patch tokens' rows
    (`pooling="gap"`), the names of `ViT`'s `pooling`.
    """
    check_choice("pooling", pooling, POOLINGS)
    scores = [np.asarray(layer_scores, dtype=np.float64) for layer_scores in scores]
    if not scores or any(a.ndim != 4 or a.shape[-1] != a.shape[-2] or a.shape != scores[0].shape for a in scores):
        raise ValueError(
            f"scores must be a non-empty list of (batch, heads, T, T) arrays of one shape; found shapes "
            f"{[a.shape for a in scores]}."
        )
    if not all(np.all(np.isfinite(a)) for a in scores):
        raise ValueError(
            "scores must be finite; found NaN or infinite attention weights (are the model's weights finite?)."
        )
    joint = None
    for attention in scores:
        attention = attention.mean(axis=1)
        attention = attention + np.eye(attention.shape[-1])
        attention /= attention.sum(axis=-1, keepdims=True)
        joint = attention if joint is None else attention @ joint
    if pooling == "token":
        return joint[:, 0, num_prefix_tokens:]
    return joint[:, num_prefix_tokens:, num_prefix_tokens:].mean(axis=1)


def attention_rollout(model, images, batch_size=64):
    """Per-image attention maps of `model` by attention rollout, upsampled to the image.

    Args:
        model: a `vit_keras.ViT` (or a model built from its layers).
        images: a batch in the model's input layout (for one-channel channels-last models,
            (batch, H, W) is also accepted), in the units the model takes.
        batch_size: images per forward pass.

    Returns:
        float32 NumPy array (batch, H, W), non-negative, each map scaled to a maximum of 1.
        Bilinear upsampling of the patch grid (align_corners=False).
    """
    _encoder_blocks(model)  # a clear error for a model without attention layers
    check_positive("batch_size", batch_size)
    images = _check_images(model, images)
    pooling = "gap" if getattr(model, "pooling", "token") == "gap" else "token"
    (height, width), (rows, cols) = _image_hw(model)
    up_rows, up_cols = _bilinear_matrix(rows, height), _bilinear_matrix(cols, width)
    maps = []
    for start in range(0, len(images), batch_size):  # chunks bound the memory of the weights
        scores = attention_scores(model, images[start : start + batch_size], batch_size)
        grid = rollout(scores, pooling=pooling).reshape(-1, rows, cols)
        maps.append(np.einsum("ah,bw,nhw->nab", up_rows, up_cols, grid))
    maps = np.maximum(np.concatenate(maps), 0.0)
    maps /= np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)
    return maps.astype("float32")


def _resize(image, size):
    """Bilinear resize of an (H, W, C) array to `size` (height, width), as float32 NumPy."""
    if tuple(image.shape[:2]) == tuple(size):
        return image.astype("float32")
    resized = keras.ops.image.resize(
        image.astype("float32"), size, interpolation="bilinear", data_format="channels_last"
    )
    return keras.ops.convert_to_numpy(resized)


def attention_map(model, image):
    """The image weighted by the model's attention: the `vit_keras.visualize.attention_map` of vit-keras.

    As in the vit-keras library: the image is resized to the model's input size, its attention
    rollout (Abnar & Zuidema 2020; the ViT paper's Appendix D.7) is scaled to a maximum of 1,
    resized back to the image and multiplied into it. A thin wrapper over `attention_rollout`.
    Unlike vit-keras there is no separate preprocessing step: the models here take raw pixels.

    Args:
        model: a `vit_keras.ViT` (or a model built from its layers).
        image: one image, (height, width, channels) in raw 0-255 pixels, channels last, of any
            size; (height, width) for a one-channel model.

    Returns:
        uint8 NumPy array of the image's shape: `attention * image`.

    Raises:
        ValueError: `image` is not one image with the model's number of channels.
    """
    channels_first = getattr(model, "data_format", None) == "channels_first"
    channels = model.input_shape[1 if channels_first else -1]
    image = np.asarray(image)
    pixels = image[..., None] if image.ndim == 2 and channels == 1 else image
    if pixels.ndim != 3 or pixels.shape[-1] != channels or 0 in pixels.shape:
        raise ValueError(
            f"image must be one image of shape (height, width, {channels}) for model {model.name!r}; "
            f"found shape {image.shape}."
        )
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        raise ValueError(f"image must hold real numbers (raw 0-255 pixels); found dtype {image.dtype}.")
    low, high = float(np.min(pixels)), float(np.max(pixels))
    if not (0.0 <= low and high <= 255.0):  # also false for NaN
        raise ValueError(f"image must hold raw pixels in [0, 255] (the result is uint8); found range [{low}, {high}].")
    (height, width), _ = _image_hw(model)
    resized = _resize(np.asarray(pixels, dtype="float32"), (height, width))
    mask = attention_rollout(model, np.moveaxis(resized, -1, 0)[None] if channels_first else resized[None])[0]
    mask = _resize(mask[..., None], pixels.shape[:2])
    return (mask * pixels).reshape(image.shape).astype("uint8")


# --------------------------------------------------------------------------- writing pictures


def _check_png_path(path):
    """`path` as a Path whose directory exists (created) and is writable; clear errors otherwise."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like .png file name; found {type(path).__name__} {path!r:.60}.")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png; found {str(path)!r}.")
    if path.is_dir():
        raise IsADirectoryError(f"path must be a PNG file name; found the directory {str(path)!r}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"path {str(path)!r}: cannot create its directory ({error}).") from error
    if not os.access(path.parent, os.W_OK):
        raise PermissionError(f"path {str(path)!r}: its directory is not writable.")
    return path


def _save_figure(figure, path):
    """Write `figure` as PNG to `path` atomically (temporary file, then rename)."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")  # umask permissions
    try:
        figure.savefig(temporary, format="png", dpi=DPI)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _figure(width_inches, height_inches):
    """A matplotlib Figure outside pyplot: no global state, nothing to close, any backend."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_inches, height_inches), dpi=DPI)


def _display_image(model, image):
    """An (H, W) or (H, W, 3) array in [0, 1] for imshow: channels last, min-max scaled."""
    image = np.asarray(image, dtype=np.float64)
    if getattr(model, "data_format", None) == "channels_first":
        image = np.moveaxis(image, 0, -1)
    if image.shape[-1] == 1:
        image = image[..., 0]
    elif image.shape[-1] != 3:
        image = image.mean(axis=-1)
    low, high = image.min(), image.max()
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def _row_labels(model, images, labels):
    """'true 7, predicted 1' (or 'predicted 1' without labels) for each image; None for a headless model."""
    if not getattr(model, "include_top", True):
        return None
    predicted = np.argmax(model.predict(images.astype("float32"), verbose=0), axis=-1)
    if labels is None:
        return [f"predicted {p}" for p in predicted]
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(images):
        raise ValueError(f"labels must have one entry per image ({len(images)}); found {len(labels)}.")
    return [f"true {t}, predicted {p}" for t, p in zip(labels, predicted)]


def plot_attention(model, images, path, labels=None):
    """Save each image, its attention-rollout map and the overlay side by side as a PNG.

    Args:
        model: a `vit_keras.ViT`.
        images: one image in the model's input layout or a batch (one row per image).
        path: the `.png` file to write.
        labels: optional true classes of the images; each row is labelled with its true class
            (when given) and the model's predicted class. A colour bar gives the map's scale.

    Returns:
        The path. The PNG is 900 x 300 pixels per row.
    """
    expected = tuple(model.input_shape[1:])
    images = np.asarray(images)
    grey_batch = expected[-1] == 1 and images.shape[1:] == expected[:-1]
    if images.ndim == len(expected) - 1 or (images.ndim == len(expected) and not grey_batch):
        images = images[None]  # one image
    if images.ndim and len(images) > MAX_ATTENTION_ROWS:
        raise ValueError(
            f"images: plot_attention draws at most {MAX_ATTENTION_ROWS} images (rows); found {len(images)}."
        )
    path = _check_png_path(path)
    maps = attention_rollout(model, images)
    row_labels = _row_labels(model, _check_images(model, images), labels)
    height = PANEL_INCHES * len(images)
    figure = _figure(3 * PANEL_INCHES, height)
    top, bottom = 1.0 - 0.3 / height, 0.05 / height  # 0.3 inch for the titles
    grid = figure.add_gridspec(len(images), 3, left=0.05, right=0.9, top=top, bottom=bottom, wspace=0.05, hspace=0.1)
    for row, (image, attention) in enumerate(zip(images, maps)):
        shown = _display_image(model, image.reshape(expected))
        cmap = "gray" if shown.ndim == 2 else None
        panels = [(shown, cmap, "image"), (attention, "inferno", "attention rollout")]
        for column, (picture, colours, title) in enumerate(panels):
            axes = figure.add_subplot(grid[row, column])
            heat = axes.imshow(picture, cmap=colours, vmin=0, vmax=1)
            axes.set_axis_off()
            if row == 0:
                axes.set_title(title, fontsize=10)
            if column == 0 and row_labels is not None:
                axes.text(
                    -0.04,
                    0.5,
                    row_labels[row],
                    rotation=90,
                    ha="right",
                    va="center",
                    fontsize=10,
                    transform=axes.transAxes,
                )
        axes = figure.add_subplot(grid[row, 2])
        axes.imshow(shown, cmap=cmap, vmin=0, vmax=1)
        axes.imshow(attention, cmap="inferno", alpha=0.55, vmin=0, vmax=1)
        axes.set_axis_off()
        if row == 0:
            axes.set_title("overlay", fontsize=10)
    colour_bar = figure.add_axes([0.92, bottom + 0.1 * (top - bottom), 0.015, 0.8 * (top - bottom)])
    figure.colorbar(heat, cax=colour_bar, label="attention (max 1)")
    return _save_figure(figure, path)


# --------------------------------------------------------------------------- position embeddings


def position_similarity(model):
    """Cosine similarity of every patch's position embedding to every other's.

    Returns a NumPy array (rows, cols, rows, cols): [i, j] is the map of patch (i, j).
    """
    tables = [layer for layer in model.layers if isinstance(layer, PositionEmbedding)]
    if not tables:
        raise ValueError(
            f"model must contain a PositionEmbedding layer (a vit_keras.ViT); found none in "
            f"{type(model).__name__} {model.name!r}."
        )
    layer = tables[0]
    rows, cols = layer.grid_size
    table = keras.ops.convert_to_numpy(layer.table).astype(np.float64)[0, layer.num_prefix_tokens :]
    unit = table / np.maximum(np.linalg.norm(table, axis=-1, keepdims=True), 1e-12)
    return (unit @ unit.T).reshape(rows, cols, rows, cols)


def plot_position_embeddings(model, path, size_inches=6.0):
    """Save the position-embedding similarity grid (Figure 7 of the ViT paper) as a PNG.

    Cell (i, j) of the grid is a small heat map of the cosine similarity between the position
    embedding of patch (i, j) and those of all patches. The PNG is `size_inches * 100` pixels
    square. Returns the path.
    """
    if (
        isinstance(size_inches, bool)
        or not isinstance(size_inches, (int, float))
        or not 1 <= size_inches <= MAX_FIGURE_INCHES
    ):
        raise ValueError(f"size_inches must be a number in [1, {MAX_FIGURE_INCHES:g}]; found {size_inches!r}.")
    path = _check_png_path(path)
    similarity = position_similarity(model)
    rows, cols = similarity.shape[:2]
    gap = 1  # blank pixels between the small maps
    mosaic = np.full((rows * (rows + gap) - gap, cols * (cols + gap) - gap), np.nan)
    for i in range(rows):
        for j in range(cols):
            top, left = i * (rows + gap), j * (cols + gap)
            mosaic[top : top + rows, left : left + cols] = similarity[i, j]
    figure = _figure(size_inches, size_inches)
    axes = figure.add_axes([0.1, 0.12, 0.7, 0.7])  # square: the mosaic of a square grid fills it
    image = axes.imshow(mosaic, cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
    axes.set_xticks([j * (cols + gap) + (cols - 1) / 2 for j in range(cols)], range(1, cols + 1))
    axes.set_yticks([i * (rows + gap) + (rows - 1) / 2 for i in range(rows)], range(1, rows + 1))
    axes.tick_params(length=0, labelsize=8)
    axes.set_xlabel("input patch column")
    axes.set_ylabel("input patch row")
    axes.set_title("Position embedding similarity", fontsize=11, pad=8)
    for side in axes.spines.values():
        side.set_visible(False)
    colour_bar = figure.add_axes([0.83, 0.12, 0.025, 0.7])
    figure.colorbar(image, cax=colour_bar, label="cosine similarity")
    return _save_figure(figure, path)


# --------------------------------------------------------------------------- confusion matrix


def confusion_matrix(labels, predictions, num_classes):
    """(num_classes, num_classes) counts: row = true class, column = predicted class."""
    check_positive("num_classes", num_classes)
    labels, predictions = np.asarray(labels).reshape(-1), np.asarray(predictions).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(
            f"labels and predictions must have the same length; found {labels.shape[0]} and {predictions.shape[0]}."
        )
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (
            not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() >= num_classes
        ):
            raise ValueError(
                f"{name} must be integer classes in [0, {num_classes}); found dtype {values.dtype}, "
                f"range [{values.min()}, {values.max()}]."
            )
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def plot_confusion_matrix(labels, predictions, path, class_names=None, num_classes=None):
    """Save the confusion matrix of integer `labels` vs `predictions` as a PNG (600 x 600 px).

    Colours are row-normalised (recall per class); each cell shows its count. Returns the path.
    """
    for name, values in (("labels", labels), ("predictions", predictions)):
        values = np.asarray(values)
        if not values.size or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(
                f"{name} must be a non-empty array of integer classes; "
                f"found dtype {values.dtype}, shape {values.shape}."
            )
    if num_classes is None:
        num_classes = (
            len(class_names) if class_names is not None else (int(max(np.max(labels), np.max(predictions))) + 1)
        )
    check_positive("num_classes", num_classes)
    if num_classes > MAX_CONFUSION_CLASSES:
        raise ValueError(f"num_classes must be at most {MAX_CONFUSION_CLASSES} for a picture; found {num_classes}.")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names must have num_classes={num_classes} entries; found {len(class_names)}.")
    path = _check_png_path(path)
    counts = confusion_matrix(labels, predictions, num_classes)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    names = [str(n) for n in (class_names if class_names is not None else range(num_classes))]
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    figure = _figure(6.0, 6.0)
    axes = figure.add_axes([0.14, 0.12, 0.8, 0.78])
    axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if num_classes <= 20:
        for i in range(num_classes):
            for j in range(num_classes):
                axes.text(
                    j,
                    i,
                    str(counts[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black",
                )
    axes.set_xticks(range(num_classes), names, fontsize=8)
    axes.set_yticks(range(num_classes), names, fontsize=8)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"Confusion matrix ({counts.sum()} images, accuracy {accuracy:.2%})", fontsize=11)
    return _save_figure(figure, path)


# --------------------------------------------------------------------------- vit-keras plot


def _run_splits(model, dataset, data_dir=None, seed=0):
    """The `vit_keras.data.Splits` of `dataset` at the model's image size (the test split may be None)."""
    from vit_keras import data as vdata

    (height, width), _ = _image_hw(model)
    splits = vdata.load_dataset(dataset, data_dir=data_dir, image_size=(height, width), val_fraction=0.0, seed=seed)
    classes = model.output_shape[-1]
    if getattr(model, "include_top", True) and splits.num_classes > classes:
        raise ValueError(f"dataset {dataset!r} has {splits.num_classes} classes; the model predicts {classes}.")
    return splits


def _batches(model, split, batch_size):
    """Batches of (images in the model's layout, one-hot labels) of one split of `Splits`."""
    import tensorflow as tf

    from vit_keras import data as vdata

    (height, width), _ = _image_hw(model)
    test = vdata.make_pipeline(split, (height, width), batch_size, model.output_shape[-1], cache=False)
    if getattr(model, "data_format", None) == "channels_first":
        test = test.map(lambda x, y: (tf.transpose(x, (0, 3, 1, 2)), y))
    return test


class PlotResult(dict):
    """{picture name: path} of the pictures `plot_run` wrote, and `skipped`: {name: reason}."""

    def __init__(self):
        super().__init__()
        self.skipped = {}

    def skip(self, name, reason):
        self.skipped[name] = reason
        logger.warning("vit-keras plot: skipped %s.png: %s", name, reason)


def _check_run_dir(run_dir, examples, out_dir):
    """(run_dir Path, out_dir Path, has metrics.csv, has model.keras); clear errors for bad arguments."""
    if isinstance(examples, bool) or not isinstance(examples, int) or not 0 <= examples <= MAX_ATTENTION_ROWS:
        raise ValueError(f"examples must be an integer in [0, {MAX_ATTENTION_ROWS}]; found {examples!r}.")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"RUN_DIR: {run_dir} is not a directory.")
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"out_dir: {out_dir} exists and is not a directory; expected a folder for the PNGs.")
    has_metrics, has_model = (run_dir / "metrics.csv").is_file(), (run_dir / "model.keras").is_file()
    if not (has_metrics or has_model):
        found = sorted(p.name for p in run_dir.iterdir())
        raise FileNotFoundError(
            f"RUN_DIR: {run_dir} holds neither metrics.csv nor model.keras (a `vit-keras train` "
            f"run directory); found {found or 'nothing'}."
        )
    return run_dir, out_dir, has_metrics, has_model


def _check_metrics(metrics_csv):
    """A one-line ValueError naming `metrics_csv` when it does not read as a CSV of epochs with a loss or accuracy."""
    from vit_keras.curves import read_metrics

    try:
        columns = read_metrics(metrics_csv)
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"metrics_csv: {metrics_csv} is not a readable CSV file ({type(error).__name__}).") from None
    if not any(key in columns for key in ("loss", "accuracy", "val_loss", "val_accuracy")):
        raise ValueError(
            f"metrics_csv: {metrics_csv} has no loss or accuracy column; "
            f"found columns {sorted(map(str, columns))[:10]}."
        )


def _check_plot_model(model, what):
    """A one-line ValueError naming the model file when it is not a ViT that can be drawn."""
    try:
        _encoder_blocks(model)
        _image_hw(model)
    except ValueError as error:
        raise ValueError(f"model {what}: {error}") from None
    from vit_keras.predict import check_finite_weights

    check_finite_weights(model, what)


def _plot_test_pictures(model, splits, staged, examples, batch_size, result):
    """confusion_matrix.png on the test split, attention.png on its first images (else another split's)."""
    num_classes = model.output_shape[-1]
    if not getattr(model, "include_top", True):
        result.skip("confusion_matrix", "the model has no classification head (include_top=False)")
    elif num_classes > MAX_CONFUSION_CLASSES:
        result.skip("confusion_matrix", f"the model predicts {num_classes} classes (at most {MAX_CONFUSION_CLASSES})")
    elif splits.test is not None:
        test = _batches(model, splits.test, batch_size)
        labels = np.concatenate([np.argmax(y, axis=-1) for _, y in test.as_numpy_iterator()])
        predictions = np.argmax(model.predict(test, verbose=0), axis=-1)
        names = list(splits.class_names)[:num_classes]
        names += [str(i) for i in range(len(names), num_classes)]
        result["confusion_matrix"] = plot_confusion_matrix(
            labels, predictions, staged("confusion_matrix"), class_names=names
        )
    else:
        result.skip("confusion_matrix", "the dataset has no test split")
    if not examples:
        return
    split = next((s for s in (splits.test, splits.validation, splits.train) if s is not None), None)
    images, labels = next(iter(_batches(model, split, examples)))
    result["attention"] = plot_attention(
        model,
        keras.ops.convert_to_numpy(images),
        staged("attention"),
        labels=np.argmax(keras.ops.convert_to_numpy(labels), axis=-1),
    )


class _Staging:
    """Pictures drawn under temporary names in `out_dir`, renamed to NAME.png only when all are drawn."""

    def __init__(self, out_dir):
        self.out_dir, self.token, self.drawn = out_dir, uuid.uuid4().hex[:8], []

    def __call__(self, name):
        path = self.out_dir / f".{name}.{self.token}.partial.png"
        self.drawn.append((path, self.out_dir / f"{name}.png"))
        return path

    def commit(self, result):
        for temporary, final in self.drawn:
            os.replace(temporary, final)
        for name, path in result.items():
            result[name] = next(final for temporary, final in self.drawn if temporary == Path(path))

    def discard(self):
        for temporary, _ in self.drawn:
            temporary.unlink(missing_ok=True)


def plot_run(run_dir, out_dir=None, dataset=None, data_dir=None, examples=4, batch_size=128):
    """Write a run directory's pictures.

    curves.png (loss and accuracy, train vs validation, from metrics.csv), and from model.keras:
    confusion_matrix.png (on the run's test split), attention.png (rollout maps of the first
    `examples` test images, or of training images when the dataset has no test split) and
    position_embeddings.png. A picture that cannot be drawn (no metrics.csv, no model.keras, no
    test split, a model without a classification head) is skipped, with a logged warning that
    says why. Every input is checked and every picture drawn before any is written: a failure
    leaves the output folder as it was.

    Args:
        run_dir: a `vit-keras train` run directory.
        out_dir: folder of the PNGs (created); default: `run_dir`.
        dataset: dataset of the confusion matrix; default: the run's, else mnist-sample.
        data_dir: data folder of `dataset`; default: the run's.
        examples: images in attention.png, 0 to `MAX_ATTENTION_ROWS` (0: no attention.png).
        batch_size: prediction batch size (positive).

    Returns:
        `PlotResult`: {name: path} of the pictures written; its `skipped` is {name: reason}.

    Raises:
        FileNotFoundError: `run_dir` is not a run directory.
        ValueError: a bad argument, an unreadable metrics.csv or model.keras, a model that is not
            a ViT or holds non-finite weights, a dataset that does not fit the model.
        OSError: `out_dir` cannot be created or written.
    """
    from vit_keras.curves import plot_training_curves

    check_positive("batch_size", batch_size)
    run_dir, out_dir, has_metrics, has_model = _check_run_dir(run_dir, examples, out_dir)
    if has_metrics:
        _check_metrics(run_dir / "metrics.csv")
    model = splits = None
    if has_model:
        model, config = load_run_model(run_dir)
        _check_plot_model(model, str(run_dir / "model.keras"))
        run_args = config.get("args", {}) if isinstance(config, dict) else {}
        dataset = dataset or run_args.get("dataset") or "mnist-sample"
        splits = _run_splits(model, dataset, data_dir or run_args.get("data_dir"), run_args.get("seed", 0))
    _check_png_path(out_dir / "curves.png")  # creates out_dir; a clear error when it cannot be written
    result, staged = PlotResult(), _Staging(out_dir)
    try:
        if has_metrics:
            result["curves"] = plot_training_curves(run_dir / "metrics.csv", staged("curves"))
        else:
            result.skip("curves", f"{run_dir} holds no metrics.csv")
        if model is None:
            for name in ("confusion_matrix", "attention", "position_embeddings"):
                result.skip(name, f"{run_dir} holds no model.keras")
        else:
            _plot_test_pictures(model, splits, staged, examples, batch_size, result)
            result["position_embeddings"] = plot_position_embeddings(model, staged("position_embeddings"))
        staged.commit(result)
    except BaseException:
        staged.discard()
        raise
    return result
