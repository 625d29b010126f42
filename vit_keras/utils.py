"""Drop-in `utils` module of the older, TensorFlow-only vit-keras library, on Keras 3.

Code that starts with `from vit_keras import vit, utils` keeps working:

    classes = utils.get_imagenet_classes()
    image = utils.read("granny_smith.jpg", 384)          # (384, 384, 3) uint8 RGB
    y = model.predict(vit.preprocess_inputs(image)[None])
    print(classes[y[0].argmax()])

The functions keep their names, arguments and results, as thin wrappers over this library:
`get_imagenet_classes` (the shipped ImageNet-1k names), `read` (Pillow instead of OpenCV;
bilinear resize as before), `apply_embedding_weights` (the position table, resampled bilinearly
as timm does, where the old library used `scipy.ndimage.zoom`) and `load_weights_numpy` (a
Google `.npz` through `vit_keras.pretrained`, all or nothing: where the old function warned
about unused or missing weights, this one raises a ValueError naming them).
"""

import http.client
import io
import os
import typing
import urllib.parse
import urllib.request
import warnings

import numpy as np

ImageInputType = typing.Union[str, np.ndarray, "PIL.Image.Image", io.BytesIO]  # noqa: F821


def get_imagenet_classes() -> typing.List[str]:  # noqa: UP006 (the old signature)
    """The 1,000 ImageNet 2012 class names, in the order of an ImageNet-1k head's outputs."""
    from vit_keras.pretrained.labels import imagenet_classes

    return imagenet_classes()


def _is_url(value):
    return isinstance(value, str) and urllib.parse.urlsplit(value).scheme in ("http", "https", "ftp", "file")


def _decode(data, source):
    import PIL.Image

    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (PIL.UnidentifiedImageError, OSError) as error:
        raise ValueError(f"An error occurred reading {source}: not a readable image ({error}).") from None


def read(filepath_or_buffer: ImageInputType, size, timeout=None):
    """Read an image as a (size, size, 3) uint8 RGB array.

    Args:
        filepath_or_buffer: a file path, a URL, an object with a `read` method (such as
            `io.BytesIO` or an HTTP response), a PIL image (returned at its own size, as
            before) or an (H, W, 3) array.
        size: the side the image is resized to (bilinear).
        timeout: seconds to wait for a URL.

    Raises:
        FileNotFoundError: for a path that is not a file.
        ValueError: for data that is not a readable image.
    """
    import PIL.Image

    if isinstance(filepath_or_buffer, PIL.Image.Image):
        return np.array(filepath_or_buffer.convert("RGB"))
    if isinstance(filepath_or_buffer, np.ndarray):
        image = PIL.Image.fromarray(np.asarray(filepath_or_buffer, dtype=np.uint8)).convert("RGB")
    elif isinstance(filepath_or_buffer, (io.IOBase, http.client.HTTPResponse)) or hasattr(filepath_or_buffer, "read"):
        image = _decode(filepath_or_buffer.read(), type(filepath_or_buffer).__name__)
    elif _is_url(filepath_or_buffer):
        with urllib.request.urlopen(filepath_or_buffer, timeout=timeout) as response:
            image = _decode(response.read(), filepath_or_buffer)
    else:
        if not os.path.isfile(filepath_or_buffer):
            raise FileNotFoundError(f"Could not find image at path: {filepath_or_buffer}")
        with open(filepath_or_buffer, "rb") as f:
            image = _decode(f.read(), filepath_or_buffer)
    return np.array(image.resize((size, size), PIL.Image.BILINEAR))


def apply_embedding_weights(target_layer, source_weights, num_x_patches, num_y_patches):
    """Assign a (1, 1 + N, D) position table to `target_layer`, resampled to its grid if needed.

    Args:
        target_layer: the model's position-embedding layer (`model.get_layer("position_embedding")`).
        source_weights: the checkpoint's table; its N grid positions must form a square.
        num_x_patches: patches across the image (the layer's grid width).
        num_y_patches: patches down the image (the layer's grid height).
    """
    from vit_keras.pretrained.resample import resample_table

    source_weights = np.asarray(source_weights)
    expected = tuple(target_layer.weights[0].shape)
    if source_weights.shape != expected:
        side = int(np.sqrt(source_weights.shape[1] - 1))
        warnings.warn(
            f"Resizing position embeddings from {side}, {side} to {num_x_patches}, {num_y_patches}",
            UserWarning,
            stacklevel=2,
        )
        source_weights = resample_table(source_weights, (num_y_patches, num_x_patches))
    if source_weights.shape != expected:
        raise ValueError(f"source_weights resample to {source_weights.shape}; the layer holds {expected}.")
    target_layer.set_weights([source_weights])


def load_weights_numpy(model, params_path, pretrained_top, num_x_patches=None, num_y_patches=None):
    """Load a Google (Flax) `.npz` checkpoint into a ViT, all or nothing.

    Args:
        model: a `vit_keras.ViT` (e.g. from `vit.build_model`).
        params_path: path of the `.npz` file.
        pretrained_top: also load the classification head.
        num_x_patches, num_y_patches: accepted for compatibility; the model knows its grid.
    """
    from vit_keras.pretrained.canonical import assign_weights
    from vit_keras.pretrained.files import read_checkpoint
    from vit_keras.pretrained.loader import to_canonical

    _, canonical = to_canonical(read_checkpoint(params_path), model.num_heads, source=str(params_path))
    if not pretrained_top:
        canonical = {k: v for k, v in canonical.items() if not k.startswith("head/")}
    assign_weights(model, canonical, source=str(params_path))
