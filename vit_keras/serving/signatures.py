"""The TF Serving signatures of an image classifier, written as a SavedModel (TensorFlow backend).

Three signatures, all with the same outputs (`logits`, `probabilities`, `top_k_indices`,
`top_k_scores` and, when class names are known, `top_k_labels`):

- `serving_default`: `images`, a float32 batch (None, H, W, C) of raw 0-255 pixels;
- `serving_uint8`: the same batch as uint8;
- `serving_bytes`: `image_bytes`, a batch (None,) of encoded JPEG / PNG / GIF / BMP strings,
  decoded to C channels and resized (bilinear) to H x W inside the graph (written for models of
  1, 3 or 4 channels: gray, RGB, RGBA; a gray image is repeated into RGB, an RGB image is turned
  into gray with the ITU-R 601 weights, alpha is dropped or added as opaque).

Every signature answers every batch: an empty batch (batch 0) gives empty outputs of the usual
dtypes and shapes (0, classes). A request the model cannot answer fails with an error that names
the input (TF Serving returns it as the error text): pixels of the wrong shape; NaN or infinite
pixels; for a model with a preprocessing layer (it takes raw 0-255 pixels), pixels outside 0..255
(clip them on the client if that is what is wanted); empty or non-image bytes, a BMP that is not
8, 24 or 32 bits per pixel, an image whose header declares more than `MAX_IMAGE_PIXELS` pixels
(a small file that would decode into gigabytes), a GIF whose frames would decode into more
(`gif_frames`). A truncated or damaged file fails in its decoder (`Invalid PNG data`,
`Invalid JPEG data`, ...), at a node under `image_bytes/`. A damaged BMP or GIF body (no
checksums) cannot be told from a real image.

The batch is always channels-last; a channels-first model gets it transposed inside the graph.
The model's own preprocessing layer (if any) does the scaling and normalisation.
"""

import keras
import tensorflow as tf

from vit_keras.data.images import IMAGE_CHANNELS, MAX_IMAGE_PIXELS
from vit_keras.layers import products
from vit_keras.serving import batch_split
from vit_keras.validation import check_positive

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601, summing to 1: a gray RGB image stays the same gray
_SIGNATURES = {  # name: (first bytes, how many of them)
    "PNG": (b"\x89PNG\r\n\x1a\n", 8),
    "JPEG": (b"\xff\xd8\xff", 3),
    "GIF": (b"GIF8", 4),
    "BMP": (b"BM", 2),
}
_BMP_HEADER = 54  # file header (14) + BITMAPINFOHEADER (40)
_BMP_BITS = (8, 24, 32)


def image_spec(model):
    """(height, width, channels, channels_first) of a Keras image model's input."""
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if shape is None or len(shape) != 4 or None in shape[1:]:
        raise ValueError(
            f"model must take one batch of images of a fixed size, (batch, H, W, C) or "
            f"(batch, C, H, W); found input shape {model.input_shape}."
        )
    channels_first = getattr(model, "data_format", "channels_last") == "channels_first"
    if channels_first:
        _, channels, height, width = shape
    else:
        _, height, width, channels = shape
    return int(height), int(width), int(channels), channels_first


def num_outputs(model):
    """The number of classes a classifier outputs."""
    shape = model.output_shape
    if isinstance(shape, list) or len(shape) != 2 or shape[-1] is None:
        raise ValueError(
            f"model must output one (batch, num_classes) tensor to be served as a classifier; "
            f"found output shape {shape}."
        )
    return int(shape[-1])


def check_class_names(class_names, num_classes):
    """A list of `num_classes` strings, or None."""
    if class_names is None:
        return None
    if isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names):
        raise ValueError(f"class_names must be a list of strings; found {class_names!r}.")
    class_names = list(class_names)
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names must have one name per model output ({num_classes}); found {len(class_names)} names."
        )
    return class_names


def takes_raw_pixels(model):
    """Whether `model` scales raw 0-255 pixels itself (a `vit_keras.ViT` with `preprocessing`)."""
    return getattr(model, "preprocessing", None) is not None


def runtime_shape(tensor):
    """The shape `tensor` has when the graph runs.

    A signature function's input carries its declared static shape, and `tf.shape` / `tf.rank` of
    it are folded into constants (when tracing and again by Grappler), which would let an input of
    another rank through unchecked. `placeholder_with_default` with an unknown shape hides the
    declared shape from both.
    """
    return tf.shape(tf.compat.v1.placeholder_with_default(tensor, shape=tf.TensorShape(None)))


def _checked(tensor, condition, message):
    """`tensor`, after an in-graph assertion of `condition`.

    `message` is the list of message parts and tensors, or a function that returns it: then its
    tensors are computed only when the check fails (the pixel checks' counts and extremes would
    otherwise be passes over every request's pixels).
    """
    if not callable(message):
        with tf.control_dependencies([tf.debugging.Assert(condition, message, summarize=8)]):
            return tf.identity(tensor)

    def fail():  # the raw op: tf.debugging.Assert would nest a second cond here
        parts = [tf.convert_to_tensor(part) for part in message()]
        with tf.control_dependencies([tf.raw_ops.Assert(condition=condition, data=parts, summarize=8)]):
            return tf.identity(condition)

    passed = tf.cond(condition, lambda: tf.identity(condition), fail)
    with tf.control_dependencies([passed]):
        return tf.identity(tensor)


# ----------------------------------------------------------------------------- decoding


def _little_endian(data, position, dtype):
    size = dtype.size
    return tf.cast(tf.io.decode_raw(tf.strings.substr(data, position, size), dtype)[0], tf.int32)


def _header_uint(header, position, size, big_endian):
    """The unsigned integer of `size` bytes at `position` of the string `header`, as int64."""
    digits = tf.cast(tf.io.decode_raw(tf.strings.substr(header, position, size), tf.uint8)[:size], tf.int64)
    weights = tf.constant(
        [256**i for i in range(size)][::-1] if big_endian else [256**i for i in range(size)], tf.int64
    )
    return tf.reduce_sum(digits * weights)


def declared_size(data, magic):
    """(height, width), int64, that the header of the encoded image `data` declares (0 where a
    header is cut short: the decoder then reports it). `magic`: {format: whether `data` is one}."""
    header = tf.strings.join([tf.strings.substr(data, 0, 32), tf.constant(b"\0" * 32)])

    def bmp_dim(position):
        return tf.abs(
            _header_uint(header, position, 4, False)
            - tf.where(_header_uint(header, position + 3, 1, False) >= 128, 2**32, 0)
        )

    def jpeg():
        return tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)

    png = tf.stack([_header_uint(header, 20, 4, True), _header_uint(header, 16, 4, True)])
    gif = tf.stack([_header_uint(header, 8, 2, False), _header_uint(header, 6, 2, False)])
    bmp = tf.stack([bmp_dim(22), bmp_dim(18)])
    other = tf.where(
        magic["PNG"], png, tf.where(magic["GIF"], gif, tf.where(magic["BMP"], bmp, tf.zeros([2], tf.int64)))
    )
    return tf.cond(magic["JPEG"], jpeg, lambda: other)


def _color_table_bytes(packed):
    """The bytes of the GIF color table that a screen or image descriptor's packed byte announces."""
    present = tf.bitwise.bitwise_and(packed, 0x80) > 0
    return tf.where(present, tf.bitwise.left_shift(3, tf.bitwise.bitwise_and(packed, 7) + 1), 0)


def gif_frames(data, limit):
    """(frames, pixels of the largest frame), int64, of the GIF `data`, read from its image
    descriptors; the walk stops once frames x largest exceeds `limit`.

    TensorFlow's GIF decoder decodes every frame at the largest frame's size, even with
    `expand_animations=False`, whatever the logical screen declares: a file of many frames decodes
    into frames x largest pixels. This walks the GIF's blocks without decoding them: extensions and
    each frame's image data are skipped sub-block by sub-block. The walk ends at the trailer, at a
    byte that starts no block, at the end of the data, or past `limit`.
    """
    raw = tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32)
    end = tf.size(raw)

    def at(position):  # the byte at `position`, 0 past the end
        return tf.where(position < end, tf.gather(raw, tf.minimum(position, tf.maximum(end - 1, 0))), 0)

    def pixels(position):  # width x height of the image descriptor at `position`
        width = at(position + 5) + 256 * at(position + 6)
        height = at(position + 7) + 256 * at(position + 8)
        return tf.cast(width, tf.int64) * tf.cast(height, tf.int64)

    def step(position, frames, largest, in_data):
        byte = at(position)

        def sub_block():  # `byte` is a sub-block's length; 0 ends the block's data
            return tf.where(byte == 0, position + 1, position + byte + 1), frames, largest, byte != 0

        def block():
            extension, image = byte == 0x21, byte == 0x2C
            image_header = 10 + _color_table_bytes(at(position + 9)) + 1  # descriptor, table, LZW code size
            skip = tf.where(extension, position + 2, tf.where(image, position + image_header, end))
            area = tf.where(image, pixels(position), 0)
            return skip, frames + tf.cast(image, tf.int64), tf.maximum(largest, area), extension | image

        return tf.cond(in_data, sub_block, block)

    start = 13 + _color_table_bytes(at(10))  # header, logical screen descriptor, global color table
    zero = tf.constant(0, tf.int64)
    _, frames, largest, _ = tf.while_loop(
        lambda position, frames, largest, _: (position < end) & (frames * largest <= limit),
        step,
        (start, zero, zero, tf.constant(False)),
    )
    return frames, largest


def _bmp_palette_to_rgb(data, indices):
    """An 8-bit BMP's palette indices (h, w, 1), as TensorFlow's decoder returns them, to RGB."""
    header_size = _little_endian(data, 14, tf.int32)
    used = _little_endian(data, 46, tf.int32)
    count = tf.where(used > 0, used, 256)
    table = tf.io.decode_raw(tf.strings.substr(data, 14 + header_size, 4 * count), tf.uint8)
    palette = tf.reshape(table, (-1, 4))[:, 2::-1]  # BGR0 -> RGB
    return tf.gather(palette, tf.cast(indices[..., 0], tf.int32))


def _to_channels(image, channels):
    """A uint8 (h, w, n) image of 1-4 channels (gray, gray+alpha, RGB, RGBA) as `channels` channels."""
    found = tf.shape(image)[-1]
    gray_source = found <= 2
    rgb = tf.cond(gray_source, lambda: tf.tile(image[..., :1], (1, 1, 3)), lambda: image[..., :3])
    if channels == 3:
        return rgb
    if channels == 1:
        weighted = tf.tensordot(tf.cast(rgb, tf.float32), tf.constant(GRAY_WEIGHTS), axes=1)[..., None]
        gray = tf.cast(tf.clip_by_value(tf.round(weighted), 0, 255), tf.uint8)
        return tf.cond(gray_source, lambda: image[..., :1], lambda: gray)
    opaque = tf.fill(tf.concat([tf.shape(image)[:2], [1]], 0), tf.constant(255, tf.uint8))
    alpha = tf.cond(tf.equal(found % 2, 0), lambda: image[..., -1:], lambda: opaque)
    return tf.concat([rgb, alpha], axis=-1)


class ServingFunctions:
    """The graph functions behind the signatures of `model` (a Keras model, TensorFlow backend).

    Args:
        model: a Keras image classifier (TensorFlow backend).
        class_names: None, or one string per class (served as `top_k_labels`).
        top_k: how many classes `top_k_*` return (at most the number of classes).
        jit_compile: XLA-compile the model's forward pass (the checks and the decoding stay
            outside XLA, which would drop the assertions).
    """

    def __init__(self, model, class_names=None, top_k=5, jit_compile=False):
        self.model = model
        self.height, self.width, self.channels, self.channels_first = image_spec(model)
        self.num_classes = num_outputs(model)
        self.class_names = check_class_names(class_names, self.num_classes)
        self.top_k = min(check_positive("top_k", top_k), self.num_classes)
        self.raw_pixels = takes_raw_pixels(model)
        activation = getattr(model, "classifier_activation", None)
        self.outputs_probabilities = activation == "softmax" or activation is keras.activations.softmax
        self.jit_compile = bool(jit_compile)
        self.forward = self._forward
        if jit_compile:
            compiled = tf.function(self._forward, jit_compile=True, autograph=False)
            # On a CPU, pieces of the batch run concurrently; on a GPU, one program (`batch_split`).
            self.forward = lambda images: batch_split.device_forward(compiled, images)

    @property
    def image_shape(self):
        return (self.height, self.width, self.channels)

    # ------------------------------------------------------------------------- pixels

    def check_pixels(self, images, name="images"):
        """`images` after in-graph checks (a signature call does not check its input's shape).

        Shape (batch, H, W, C); for float pixels: finite, and within 0..255 when the model takes
        raw pixels.
        """
        found = runtime_shape(images)
        padded = tf.concat([found, tf.zeros([4], tf.int32)], axis=0)[1:4]
        ok = tf.logical_and(tf.equal(tf.size(found), 4), tf.reduce_all(tf.equal(padded, self.image_shape)))
        height, width, channels = self.image_shape
        images = _checked(
            images,
            ok,
            [
                f"{name} must be a batch of shape (batch, height, width, channels) = "
                f"(batch, {height}, {width}, {channels}), raw 0-255 pixels, channels last; found shape",
                found,
            ],
        )
        if not images.dtype.is_floating:
            return images
        values = tf.reshape(images, [-1])  # the checks below give scalars whatever the rank found
        images = _checked(
            images,
            tf.reduce_all(tf.math.is_finite(values)),
            lambda: [
                f"{name} must be finite pixels; found NaN or infinite values:",
                tf.math.count_nonzero(tf.math.is_nan(values)),
                "NaN and",
                tf.math.count_nonzero(tf.math.is_inf(values)),
                "infinite of",
                tf.size(values),
                "values.",
            ],
        )
        if not self.raw_pixels:
            return images
        in_range = tf.reduce_all(tf.logical_and(values >= 0, values <= 255))
        return _checked(
            images,
            in_range,
            lambda: [
                f"{name} must be raw pixels in 0..255 (clip them before sending); found values from",
                tf.reduce_min(values),
                "to",
                tf.reduce_max(values),
            ],
        )

    def _forward(self, images):
        """float32 channels-last pixels -> the model's float32 outputs.

        XLA-compiled, a model computing in bfloat16 takes its products with float32 results
        (`vit_keras.layers.products`): the ViT-Ti/16 forward pass at batch 32 took 421-445 ms against
        640-748 ms with bfloat16-result products on an AMD EPYC (Zen 4, AVX512_BF16).
        """
        if self.channels_first:
            images = tf.transpose(images, (0, 3, 1, 2))
        with products.float32_results(self.jit_compile):
            return tf.cast(self.model(images, training=False), tf.float32)

    def classify(self, images):
        """Raw-pixel images (B, H, W, C), any real dtype -> the dict of serving outputs (no checks)."""
        # A static (batch, H, W, C) shape for the model: the checks before this may leave the shape
        # unknown, and Keras' TensorFlow convolution then wraps itself in an XLA function that
        # neither ONNX nor TFLite converts.
        images = tf.reshape(tf.cast(images, tf.float32), (-1,) + tuple(self.image_shape))
        outputs = self.forward(images)
        if self.outputs_probabilities:
            probabilities = outputs
            logits = tf.math.log(tf.maximum(outputs, tf.float32.tiny))
        else:
            logits = outputs
            probabilities = tf.nn.softmax(outputs, axis=-1)
        scores, indices = tf.math.top_k(probabilities, k=self.top_k)
        result = {"logits": logits, "probabilities": probabilities, "top_k_indices": indices, "top_k_scores": scores}
        if self.class_names is not None:
            result["top_k_labels"] = tf.gather(tf.constant(self.class_names), indices)
        return result

    # ------------------------------------------------------------------------- encoded images

    def _check_bytes(self, data, index):
        """`data` after checks that it is a non-empty JPEG, PNG, GIF or 8/24/32-bit BMP."""
        where = [tf.strings.format("image_bytes[{}]", index)]
        data = _checked(
            data,
            tf.strings.length(data) > 0,
            where + ["is empty (0 bytes); expected an encoded JPEG, PNG, GIF or BMP image."],
        )
        known = tf.reduce_any(
            [tf.equal(tf.strings.substr(data, 0, size), first) for first, size in _SIGNATURES.values()]
        )
        data = _checked(
            data,
            known,
            where
            + [
                "is not a JPEG, PNG, GIF or BMP image (its first bytes are none of theirs); its first bytes:",
                tf.strings.substr(data, 0, 8),
            ],
        )
        is_bmp = tf.equal(tf.strings.substr(data, 0, 2), _SIGNATURES["BMP"][0])
        length = tf.strings.length(data)
        data = _checked(
            data,
            tf.logical_or(~is_bmp, length >= _BMP_HEADER),
            where + [f"is a truncated BMP (shorter than its {_BMP_HEADER}-byte header)."],
        )
        declared = tf.cond(is_bmp, lambda: _little_endian(data, 2, tf.int32), lambda: length)
        data = _checked(
            data,
            length >= declared,
            where + ["is a truncated BMP: its header declares", declared, "bytes; found", length],
        )
        bits = tf.cond(is_bmp, lambda: _little_endian(data, 28, tf.uint16), lambda: tf.constant(24))
        data = _checked(
            data,
            tf.reduce_any(tf.equal(bits, _BMP_BITS)),
            where
            + [
                "is a BMP of",
                bits,
                "bits per pixel; only 8-, 24- and 32-bit BMPs are decoded (send a PNG).",
            ],
        )
        magic = {name: tf.equal(tf.strings.substr(data, 0, size), first) for name, (first, size) in _SIGNATURES.items()}
        size = declared_size(data, magic)
        data = _checked(
            data,
            size[0] * size[1] <= MAX_IMAGE_PIXELS,
            where
            + [
                "declares",
                size[0],
                "x",
                size[1],
                f"pixels (height x width), more than the {MAX_IMAGE_PIXELS} decoded; resize it before sending.",
            ],
        )
        return self._check_gif_frames(data, magic["GIF"], where)

    @staticmethod
    def _check_gif_frames(data, is_gif, where):
        """`data` after a check that a GIF's frames, all decoded at its largest frame's size, stay
        within `MAX_IMAGE_PIXELS` pixels in all."""
        zero = tf.constant(0, tf.int64)
        frames, largest = tf.cond(is_gif, lambda: gif_frames(data, MAX_IMAGE_PIXELS), lambda: (zero, zero))
        return _checked(
            data,
            frames * largest <= MAX_IMAGE_PIXELS,
            where
            + [
                "is a GIF of at least",
                frames,
                "frames, decoded at",
                largest,
                f"pixels each (its largest frame): more than the {MAX_IMAGE_PIXELS} pixels decoded in all; "
                "send its first frame as a PNG.",
            ],
        )

    def _decode_to_channels(self, data):
        """An encoded image -> uint8 (h, w, C)."""
        magic = {name: tf.equal(tf.strings.substr(data, 0, size), first) for name, (first, size) in _SIGNATURES.items()}
        native = {1: magic["PNG"] | magic["JPEG"], 3: ~magic["BMP"], 4: magic["PNG"]}[self.channels]

        def natively():
            return tf.io.decode_image(data, channels=self.channels, expand_animations=False)

        def converted():
            image = tf.io.decode_image(data, channels=0, expand_animations=False)
            palette = tf.logical_and(magic["BMP"], tf.shape(image)[-1] == 1)
            image = tf.cond(palette, lambda: _bmp_palette_to_rgb(data, image), lambda: image)
            return _to_channels(image, self.channels)

        image = tf.cond(native, natively, converted)
        image.set_shape((None, None, self.channels))
        return image

    def _decode_one(self, data, index):
        image = tf.cast(self._decode_to_channels(self._check_bytes(data, index)), tf.float32)
        same_size = tf.reduce_all(tf.shape(image)[:2] == (self.height, self.width))
        return tf.cond(
            same_size,
            lambda: image,
            lambda: tf.image.resize(image, (self.height, self.width), method="bilinear"),
        )

    def decode(self, image_bytes):
        """Encoded images (B,) -> float32 (B, H, W, C): decoded to C channels, resized to H x W."""
        with tf.name_scope("image_bytes"):
            found = runtime_shape(image_bytes)
            image_bytes = _checked(
                image_bytes,
                tf.equal(tf.size(found), 1),
                [
                    "image_bytes must be a vector (batch,) of encoded images; found shape",
                    found,
                ],
            )
            indices = tf.range(tf.shape(image_bytes)[0])
            spec = tf.TensorSpec(self.image_shape, tf.float32)
            return tf.map_fn(lambda args: self._decode_one(*args), (image_bytes, indices), fn_output_signature=spec)

    def endpoints(self):
        """{signature name: (function, input signature)}; `serving_bytes` for 1, 3 or 4 channels."""

        def classify_pixels(images):
            return self.classify(self.check_pixels(images))

        def classify_bytes(image_bytes):
            return self.classify(self.decode(image_bytes))

        pixels = (None,) + self.image_shape
        endpoints = {
            "serving_default": (classify_pixels, [tf.TensorSpec(pixels, tf.float32, name="images")]),
            "serving_uint8": (classify_pixels, [tf.TensorSpec(pixels, tf.uint8, name="images")]),
        }
        if self.channels in IMAGE_CHANNELS:
            endpoints["serving_bytes"] = (classify_bytes, [tf.TensorSpec((None,), tf.string, name="image_bytes")])
        return endpoints


def write_saved_model(model, path, class_names=None, top_k=5, jit_compile=False):
    """Write `model` with the serving signatures as a SavedModel folder at `path` (must not exist).

    Args:
        model: a Keras image classifier (TensorFlow backend).
        path: the SavedModel folder to create.
        class_names: None, or one string per class.
        top_k: how many classes `top_k_*` return.
        jit_compile: XLA-compile the model's forward pass in every signature.

    Returns:
        The `ServingFunctions` behind the signatures.
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"write_saved_model needs the TensorFlow backend; found {keras.backend.backend()!r} "
            f"(use vit_keras.export_saved_model, which handles any backend)."
        )
    functions = ServingFunctions(model, class_names=class_names, top_k=top_k, jit_compile=jit_compile)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (fn, signature) in functions.endpoints().items():
        archive.add_endpoint(name, fn, input_signature=signature)
    archive.write_out(str(path), verbose=False)
    return functions
