"""The TF Serving signatures of an image classifier, written as a SavedModel (TensorFlow backend).

Three signatures, all with the same outputs (`logits`, `probabilities`, `top_k_indices`,
`top_k_scores` and, when class names are known, `top_k_labels`):

- `serving_default`: `images`, a float32 batch (None, H, W, C) of raw 0-255 pixels;
- `serving_uint8`: the same batch as uint8;
- `serving_bytes`: `image_bytes`, a batch of encoded JPEG / PNG / GIF / BMP strings, decoded to
  C channels and resized (bilinear) to H x W inside the graph.

The batch is always channels-last; a channels-first model gets it transposed inside the graph.
The model's own preprocessing layer (if any) does the scaling and normalisation.
"""

import keras
import tensorflow as tf

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
            f"class_names must have one name per model output ({num_classes}); "
            f"found {len(class_names)} names."
        )
    return class_names


class ServingFunctions:
    """The graph functions behind the signatures of `model` (a Keras model, TensorFlow backend)."""

    def __init__(self, model, class_names=None, top_k=5):
        self.model = model
        self.height, self.width, self.channels, self.channels_first = image_spec(model)
        self.num_classes = num_outputs(model)
        self.class_names = check_class_names(class_names, self.num_classes)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer; found {top_k!r}.")
        self.top_k = min(top_k, self.num_classes)
        activation = getattr(model, "classifier_activation", None)
        self.outputs_probabilities = activation == "softmax" or activation is keras.activations.softmax

    @property
    def image_shape(self):
        return (self.height, self.width, self.channels)

    def check_pixels(self, images):
        """`images` after an in-graph check of their shape (a signature call does not check it)."""
        found = tf.shape(images)
        padded = tf.concat([found, tf.zeros([4], tf.int32)], axis=0)[1:4]
        ok = tf.logical_and(
            tf.equal(tf.size(found), 4), tf.reduce_all(tf.equal(padded, self.image_shape))
        )
        height, width, channels = self.image_shape
        message = (
            f"images must be a batch of shape (batch, height, width, channels) = "
            f"(batch, {height}, {width}, {channels}), raw 0-255 pixels, channels last; found shape"
        )
        with tf.control_dependencies([tf.debugging.Assert(ok, [message, found], summarize=8)]):
            return tf.identity(images)

    def classify(self, images):
        """Raw-pixel float32 images (B, H, W, C) -> the dict of serving outputs."""
        images = tf.cast(images, tf.float32)
        if self.channels_first:
            images = tf.transpose(images, (0, 3, 1, 2))
        outputs = tf.cast(self.model(images, training=False), tf.float32)
        if self.outputs_probabilities:
            probabilities = outputs
            logits = tf.math.log(tf.maximum(outputs, tf.float32.tiny))
        else:
            logits = outputs
            probabilities = tf.nn.softmax(outputs, axis=-1)
        scores, indices = tf.math.top_k(probabilities, k=self.top_k)
        result = {
            "logits": logits,
            "probabilities": probabilities,
            "top_k_indices": indices,
            "top_k_scores": scores,
        }
        if self.class_names is not None:
            result["top_k_labels"] = tf.gather(tf.constant(self.class_names), indices)
        return result

    def decode(self, image_bytes):
        """Encoded images (B,) -> float32 (B, H, W, C): decoded to C channels, resized to H x W."""

        def decode_one(data):
            image = tf.io.decode_image(data, channels=self.channels, expand_animations=False)
            image.set_shape((None, None, self.channels))
            image = tf.cast(image, tf.float32)
            same_size = tf.reduce_all(tf.shape(image)[:2] == (self.height, self.width))
            return tf.cond(
                same_size,
                lambda: image,
                lambda: tf.image.resize(image, (self.height, self.width), method="bilinear"),
            )

        spec = tf.TensorSpec(self.image_shape, tf.float32)
        return tf.map_fn(decode_one, image_bytes, fn_output_signature=spec)

    def endpoints(self):
        """{signature name: (function, input signature)}."""

        def classify_pixels(images):
            return self.classify(self.check_pixels(images))

        def classify_bytes(image_bytes):
            return self.classify(self.decode(image_bytes))

        pixels = (None,) + self.image_shape
        return {
            "serving_default": (classify_pixels, [tf.TensorSpec(pixels, tf.float32, name="images")]),
            "serving_uint8": (classify_pixels, [tf.TensorSpec(pixels, tf.uint8, name="images")]),
            "serving_bytes": (classify_bytes, [tf.TensorSpec((None,), tf.string, name="image_bytes")]),
        }


def write_saved_model(model, path, class_names=None, top_k=5):
    """Write `model` with the serving signatures as a SavedModel folder at `path` (must not exist)."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"write_saved_model needs the TensorFlow backend; found {keras.backend.backend()!r} "
            f"(use vit_keras.export_saved_model, which handles any backend)."
        )
    functions = ServingFunctions(model, class_names=class_names, top_k=top_k)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (fn, signature) in functions.endpoints().items():
        archive.add_endpoint(name, fn, input_signature=signature)
    archive.write_out(str(path), verbose=False)
    return functions
