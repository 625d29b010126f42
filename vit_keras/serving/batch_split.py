"""An XLA-compiled forward pass over a batch, as up to 8 pieces that run at the same time.

TensorFlow runs independent operations of a graph concurrently (its inter-op thread pool). One
XLA program leaves CPU cores idle between its operations; several programs, each on a piece of
the batch, keep them busy. For the float32 ViT-Ti/16 SavedModel at batch 32 on a 2-vCPU AMD EPYC
(Zen 4), eight pieces of 4 images ran 1.23-1.31x faster than the whole batch in one program, two
pieces 1.09-1.17x; the same eight pieces one after the other 0.99x (same process, alternating
rounds). Pieces of one image gained nothing (batch 8 in 8 pieces: 1.00x; in 4 pieces: 1.11x), so a
batch of n images runs as min(n // 2, 8) pieces, and a batch below 4 as one program.

The pieces hold consecutive images and their outputs are concatenated back in order; the
per-image results are the same computation on a smaller batch (float32 logits within about 1e-6).
On a GPU one program over the whole batch keeps the device busy by itself: `device_forward`
decides between the two where the graph runs (a SavedModel exported on a CPU machine and served
on a GPU, or the other way round, takes the path of the machine that serves it).
"""

import tensorflow as tf

MAX_PIECES = 8
MIN_PIECE = 2  # images per piece, at least


def piece_count(batch):
    """How many pieces a batch of `batch` images (a scalar int32 tensor) runs as: 1 to `MAX_PIECES`."""
    return tf.clip_by_value(batch // MIN_PIECE, 1, MAX_PIECES)


def split(images, count):
    """`images` as `count` consecutive pieces (a list of tensors) whose sizes differ by at most one.

    Args:
        images: a (batch, ...) tensor.
        count: how many pieces (a Python int >= 1); with a batch below `count` some are empty.

    Example:

    >>> [int(piece.shape[0]) for piece in split(tf.zeros((9, 2)), 4)]
    [2, 2, 2, 3]
    """
    size = tf.shape(images)[0]
    bounds = [(index * size) // count for index in range(count + 1)]
    return [images[bounds[i] : bounds[i + 1]] for i in range(count)]


def concurrent_forward(forward, images):
    """`forward(images)`, with the batch cut into `piece_count` pieces that run concurrently.

    Args:
        forward: a function of a (batch, ...) tensor, typically a `tf.function(jit_compile=True)`;
            it must treat each image independently (a model in inference mode).
        images: a (batch, ...) tensor; the batch may be 0.

    Returns:
        `forward`'s (batch, ...) output, the pieces' outputs concatenated in order.

    Example:

    >>> double = tf.function(lambda x: 2.0 * x, jit_compile=True)
    >>> concurrent_forward(double, tf.range(10.0)[:, None])[:, 0].numpy().tolist()
    [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0]
    """

    def in_pieces(count):
        def run():
            if count == 1:
                return forward(images)
            return tf.concat([forward(piece) for piece in split(images, count)], axis=0)

        return run

    branches = [in_pieces(count) for count in range(1, MAX_PIECES + 1)]
    return tf.switch_case(piece_count(tf.shape(images)[0]) - 1, branches)


def device_forward(forward, images):
    """`concurrent_forward(forward, images)` where the graph runs on a CPU, else `forward(images)`.

    The choice is made by the device the graph is placed on when it runs (TensorFlow's
    `DeviceIndex` op), not where it was traced: a SavedModel takes the pieces on a CPU-only
    server and one program per batch on a GPU server.

    Args:
        forward: as in `concurrent_forward`.
        images: a (batch, ...) tensor; the batch may be 0.

    Returns:
        `forward`'s (batch, ...) output.

    Example:

    >>> double = tf.function(lambda x: 2.0 * x, jit_compile=True)
    >>> device_forward(double, tf.range(4.0)[:, None])[:, 0].numpy().tolist()
    [0.0, 2.0, 4.0, 6.0]
    """
    return tf.__internal__.execute_fn_for_device(
        {"CPU": lambda: concurrent_forward(forward, images)}, default_fn=lambda: forward(images)
    )
