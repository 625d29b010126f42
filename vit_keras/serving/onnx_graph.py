"""An image classifier as an ONNX graph (TensorFlow backend, through tf2onnx).

The graph takes `images`, a float32 batch (batch, H, W, C) of raw 0-255 pixels (the model's own
preprocessing layer is inside), and returns `logits`, `probabilities`, `top_k_indices` and
`top_k_scores`, like the SavedModel's `serving_default`. The batch dimension is named `batch`
and is free. This is Keras' ONNX route (`model.export(format="onnx")` converts with tf2onnx
under TensorFlow), plus one conversion tf2onnx lacks: TensorFlow's exact GELU uses `Erfc`, which
ONNX has no operator for, so it is written as `1 - Erf(x)`.
"""

import numpy as np
import keras
import tensorflow as tf

from vit_keras.serving.signatures import ServingFunctions

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


def _name_batch_dims(model_proto):
    """Give the first (free) dimension of every graph input and output the name `batch`."""
    for value in list(model_proto.graph.input) + list(model_proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


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
    serve = tf.function(functions.classify, input_signature=[spec], autograph=False)
    patch_tf2onnx()
    model_proto, _ = tf2onnx.convert.from_function(
        serve, input_signature=[spec], opset=opset,
        custom_op_handlers={"Erfc": (_erfc_as_one_minus_erf, [])},
    )
    _name_batch_dims(model_proto)
    onnx.checker.check_model(model_proto)
    onnx.save(model_proto, str(path))
    return model_proto
