"""The XLA SavedModel's forward pass in concurrent pieces of the batch (`vit_keras.serving.batch_split`)."""

import numpy as np
import pytest
import tensorflow as tf

from vit_keras.serving.batch_split import MAX_PIECES, concurrent_forward, piece_count

pytestmark = pytest.mark.single_backend


def _piece_sizes(images):
    """Per image: the size of the piece it was computed in, and the image's own value."""
    size = tf.cast(tf.shape(images)[0], tf.float32)
    return tf.stack([tf.fill(tf.shape(images)[:1], size), images[:, 0]], axis=1)


@pytest.mark.parametrize("batch, expected", [(0, 1), (1, 1), (3, 1), (4, 2), (9, 4), (15, 7), (16, 8), (1000, 8)])
def test_piece_count_is_one_per_two_images_at_most_eight(batch, expected):
    assert int(piece_count(tf.constant(batch))) == expected


@pytest.mark.parametrize("batch", [0, 1, 2, 3, 4, 5, 9, 16, 17, 31, 32, 33, 100])
def test_pieces_are_consecutive_balanced_and_come_back_in_order(batch):
    images = tf.range(float(batch))[:, None]
    spec = tf.TensorSpec((None, 1), tf.float32)
    forward = tf.function(lambda x: concurrent_forward(tf.function(_piece_sizes, jit_compile=True), x))
    out = forward.get_concrete_function(spec)(images).numpy()
    assert out.shape == (batch, 2)
    np.testing.assert_array_equal(out[:, 1], np.arange(batch))  # every image once, in order
    count = min(max(batch // 2, 1), MAX_PIECES)
    expected = np.diff([(i * batch) // count for i in range(count + 1)])
    sizes = np.repeat(expected, expected).astype("float32")
    np.testing.assert_array_equal(out[:, 0], sizes)  # the pieces: `count` of them, sizes differing by at most 1
    assert batch < 4 or max(expected) - min(expected) <= 1 and len(expected) == count > 1


def _function_ops(graph_def, name):
    """The op types in the graph library's function `name`."""
    (function,) = [f for f in graph_def.library.function if f.signature.name == name]
    return [node.op for node in function.node_def]


def test_xla_serving_functions_take_the_pieces_only_where_they_run_on_a_cpu():
    """The choice is made by the device the signature runs on (a `DeviceIndex` op), not at export:
    the CPU branch cuts the batch into pieces, any other device runs one XLA program."""
    from test_export import tiny_vit

    from vit_keras.serving import signatures

    functions = signatures.ServingFunctions(tiny_vit(), jit_compile=True)
    spec = tf.TensorSpec((None,) + functions.image_shape, tf.float32)
    graph_def = tf.function(functions.forward, autograph=False).get_concrete_function(spec).graph.as_graph_def()
    (device_index,) = [node for node in graph_def.node if node.op == "DeviceIndex"]
    assert list(device_index.attr["device_names"].list.s) == [b"CPU"]
    (case,) = [node for node in graph_def.node if node.op in ("Case", "StatelessCase")]
    assert case.input[0].split(":")[0] == device_index.name
    on_cpu, elsewhere = (branch.name for branch in case.attr["branches"].list.func)
    assert {"Case", "StatelessCase"} & set(_function_ops(graph_def, on_cpu))  # the piece count's switch
    calls = [op for op in _function_ops(graph_def, elsewhere) if op.endswith("PartitionedCall")]
    assert len(calls) == 1 and not {"Case", "StatelessCase"} & set(_function_ops(graph_def, elsewhere))


def test_device_forward_runs_the_pieces_on_this_cpu():
    from vit_keras.serving.batch_split import device_forward

    images = tf.range(12.0)[:, None]
    forward = tf.function(lambda x: device_forward(tf.function(_piece_sizes, jit_compile=True), x))
    out = forward.get_concrete_function(tf.TensorSpec((None, 1), tf.float32))(images).numpy()
    np.testing.assert_array_equal(out[:, 1], np.arange(12))
    np.testing.assert_array_equal(out[:, 0], np.full(12, 2.0))  # six pieces of two images
