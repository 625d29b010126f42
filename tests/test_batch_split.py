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


@pytest.mark.parametrize("gpu", [False, True])
def test_xla_serving_functions_split_the_batch_only_without_a_gpu(monkeypatch, gpu):
    from test_export import tiny_vit

    from vit_keras.serving import signatures

    monkeypatch.setattr(signatures, "has_gpu", lambda: gpu)
    functions = signatures.ServingFunctions(tiny_vit(), jit_compile=True)
    spec = tf.TensorSpec((None,) + functions.image_shape, tf.float32)
    graph = tf.function(functions.forward, autograph=False).get_concrete_function(spec).graph
    kinds = {op.type for op in graph.get_operations()}
    assert bool(kinds & {"Case", "StatelessCase"}) is not gpu
