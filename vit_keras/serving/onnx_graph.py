"""An image classifier as an ONNX graph (TensorFlow backend, through tf2onnx).

The graph takes `images`, a float32 batch (batch, H, W, C) of raw 0-255 pixels (the model's own
preprocessing layer is inside), and returns `logits`, `probabilities`, `top_k_indices` and
`top_k_scores`, like the SavedModel's `serving_default`. The batch dimension is named `batch`
and is free; an empty batch gives empty outputs. ONNX has no assertion operator, so the input
checks of the SavedModel are guard nodes here: NaN or infinite pixels (and, for a model with a
preprocessing layer, pixels outside 0..255) make the `Reshape` node named
`images_must_be_finite` (`images_must_be_0_to_255`) fail, and onnxruntime's error names it.

This is Keras' ONNX route (`model.export(format="onnx")` converts with tf2onnx under
TensorFlow), plus one conversion tf2onnx lacks: TensorFlow's exact GELU (`tf.nn.gelu`, what a
Keras layer with `activation="gelu"` runs) uses `Erfc`, which ONNX has no operator for, so it is
written as `1 - Erf(x)`. The ViT's own MLP writes its GELU with `Erf` (`vit_keras.layers.gelu`);
Keras layers taking their own path (a LoRA-enabled or quantized `Dense`) still carry `Erfc`.
"""

import keras
import numpy as np
import tensorflow as tf

from vit_keras.serving.signatures import ServingFunctions

FINITE_GUARD = "images_must_be_finite"
RANGE_GUARD = "images_must_be_0_to_255"

DEFAULT_OPSET = 17
BATCH_DIM = "batch"


def _erfc_as_one_minus_erf(ctx, node, name, args):
    """tf2onnx handler: Erfc(x) -> Sub(1, Erf(x))."""
    from tf2onnx import utils

    erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=node.name)
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, np.float32))
    node.type = "Sub"
    node.domain = ""
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


def register_erfc_handler():
    """Teach tf2onnx, process-wide, to convert `Erfc` as `1 - Erf` (idempotent).

    After this, Keras' own `model.export(path, format="onnx")` under TensorFlow converts a ViT
    (exact GELU) into a file onnxruntime accepts; `write_onnx` passes the same handler per call.
    """
    from tf2onnx.handler import tf_op

    class _Erfc:
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            _erfc_as_one_minus_erf(ctx, node, node.name, [])

    tf_op("Erfc")(_Erfc)


def _name_batch_dims(model_proto):
    """Give the first (free) dimension of every graph input and output the name `batch`."""
    for value in list(model_proto.graph.input) + list(model_proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


def _guard(images, bad, name):
    """`images`, reshaped to its own shape plus `bad` extra channels: an error iff `bad` > 0.

    Used because ONNX has no assertion: with bad > 0 the element counts differ, and the runtime
    refuses the `Reshape` node called `name`.
    """
    shape = tf.shape(images)
    bad = tf.cast(tf.minimum(bad, 1), tf.int32)
    return tf.reshape(images, tf.concat([shape[:3], shape[3:] + bad], axis=0), name=name)


def guarded(functions, images):
    """`images` through the ONNX guards of `functions` (non-finite pixels; out-of-range raw pixels)."""
    images = _guard(images, tf.math.count_nonzero(~tf.math.is_finite(images)), FINITE_GUARD)
    if functions.raw_pixels:
        outside = tf.math.count_nonzero(tf.logical_or(images < 0, images > 255))
        images = _guard(images, outside, RANGE_GUARD)
    return images


def classify_any_batch(functions, images):
    """`functions.classify` of `images`, an empty batch included: the model's graph reshapes with
    -1, which ONNX cannot infer from zero elements, so an empty batch runs on one zero image and
    its outputs are cut back to zero rows."""
    count = tf.shape(images)[0]
    filler = tf.zeros(tf.concat([[tf.maximum(1 - count, 0)], tf.shape(images)[1:]], axis=0), images.dtype)
    outputs = functions.classify(tf.concat([images, filler], axis=0))
    return {name: value[:count] for name, value in outputs.items()}


def write_onnx(model, path, opset=DEFAULT_OPSET, top_k=5):
    """Write `model` (TensorFlow backend) as an ONNX file at `path`; return the model proto."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"write_onnx needs the TensorFlow backend; found {keras.backend.backend()!r} "
            f"(use vit_keras.export_onnx, which handles any backend)."
        )
    import onnx
    import tf2onnx
    from keras.src.export.tf2onnx_lib import patch_tf2onnx  # what model.export(format="onnx") applies

    functions = ServingFunctions(model, top_k=top_k)
    spec = tf.TensorSpec((None,) + functions.image_shape, tf.float32, name="images")
    serve = tf.function(
        lambda images: classify_any_batch(functions, guarded(functions, images)),
        input_signature=[spec],
        autograph=False,
    )
    patch_tf2onnx()
    model_proto, _ = tf2onnx.convert.from_function(
        serve,
        input_signature=[spec],
        opset=opset,
        custom_op_handlers={"Erfc": (_erfc_as_one_minus_erf, [])},
    )
    _name_batch_dims(model_proto)
    onnx.checker.check_model(model_proto)
    onnx.save(model_proto, str(path))
    return model_proto
