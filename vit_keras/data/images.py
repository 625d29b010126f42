"""One image file (PNG, JPEG, GIF, BMP) fully decoded with Pillow into uint8 pixels, and resized."""

import io
import pathlib

import numpy as np
import tensorflow as tf
from PIL import Image

from vit_keras.data.messages import error_reason, file_kind, one_line

# Pillow's decompression-bomb limit (89.5 M pixels), also the serving signatures': a 400 kB PNG of
# 20000 x 20000 zeros would otherwise decode into 400 MB per channel.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS
IMAGE_CHANNELS = (1, 3, 4)  # the channel counts an image file is decoded to: gray, RGB, RGBA
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})


def _image_pixels(image, channels):
    """uint8 pixels (H, W, channels) of a loaded Pillow image; channels None: 1 if it is grayscale, else 3."""
    if image.mode.startswith("I;16"):  # 16-bit grayscale: keep the high byte, as libpng's strip_16
        image = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8))
    channels = channels or (1 if image.mode in _GRAY_MODES else 3)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    pixels = np.asarray(image if image.mode == mode else image.convert(mode))
    return pixels.reshape(pixels.shape[0], pixels.shape[1], channels)


def resize_pixels(pixels, size):
    """uint8 `pixels` resized (bilinear, as serving does) to `size` (height, width), rounded."""
    if pixels.shape[:2] == tuple(size):
        return pixels
    return tf.cast(tf.round(tf.image.resize(pixels, size, method="bilinear")), tf.uint8).numpy()


def decode_image_file(path, channels=None):
    """uint8 pixels (H, W, C) of an image file, fully decoded (Pillow).

    Args:
        path: a PNG, JPEG, GIF (first frame) or BMP file.
        channels: 1 (grayscale), 3 (RGB; alpha dropped) or 4 (RGBA); None: 1 for grayscale images, else 3.

    Raises:
        ValueError: (one line, without the file name) why the file is not a whole image: empty, another
            kind of file, a header declaring 0 or more than `MAX_IMAGE_PIXELS` pixels, damaged pixel data.
    """
    try:
        data = pathlib.Path(path).read_bytes()  # one read: Pillow reads a file in many small ones
    except OSError as error:
        raise ValueError(f"it cannot be read ({error_reason(error)})") from error
    if not data:
        raise ValueError("the file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise ValueError(f"its header declares too many pixels ({one_line(error)})") from error
    except Exception as error:  # UnidentifiedImageError, SyntaxError (bad chunk), OSError
        raise ValueError(f"it is not a PNG, JPEG, GIF or BMP image (it looks like {file_kind(data[:16])})") from error
    with image:
        width, height = image.size
        if not 0 < width * height <= MAX_IMAGE_PIXELS:
            raise ValueError(
                f"its header declares {width} x {height} pixels (allowed: 1 to {MAX_IMAGE_PIXELS:,}): "
                "a corrupt header or a decompression bomb"
            )
        try:
            image.load()
            return _image_pixels(image, channels)
        except Exception as error:  # OSError "image file is truncated", "broken data stream", ...
            raise ValueError(f"its pixel data is damaged ({error_reason(error)})") from error
