"""The XLA-compiled forward pass on a batch in 1, 2, 4 or 8 pieces, concurrent or one after another.

What `vit_keras.serving.batch_split` is built on: TensorFlow (`KERAS_BACKEND=tensorflow`) runs
independent XLA programs of one graph at the same time. Builds one ViT, one XLA-compiled
forward pass, and graph functions that call it on the whole batch or on `count` consecutive pieces
(`--pieces`), each count twice: concurrent (no dependencies between the pieces) and "one after
another" (each piece waits for the one before), and `SERVED`: what the SavedModel's signature
runs (`batch_split.device_forward`: the device's choice, then the piece count's). Times them in
alternating rounds in one process and prints each one's median and the median of its per-round
ratio to the whole batch (above 1: faster).

    python scripts/bench/batch_pieces.py --precision float32 --batch-size 32 --rounds 6
"""

import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.micro import print_cpu  # noqa: E402
from bench.variants import argument_parser, parse_arguments  # noqa: E402

SERVED = "as served (device_forward)"


def in_pieces(forward, images, count, sequential=False):
    """`forward` on `count` consecutive pieces of `images`, concatenated; `sequential` chains them."""
    import tensorflow as tf

    from vit_keras.serving.batch_split import split

    outputs = []
    for piece in split(images, count):
        if sequential and outputs:
            with tf.control_dependencies([outputs[-1]]):
                piece = tf.identity(piece)
        outputs.append(forward(piece))
    return tf.concat(outputs, axis=0)


def build_calls(args):
    """{name: a graph function of the images}, and the images (compiled and warmed up)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from bench.workloads import architecture
    from vit_keras import ViT
    from vit_keras.layers import products
    from vit_keras.serving.batch_split import device_forward

    keras.mixed_precision.set_global_policy(args.precision)
    arch = architecture(dict(preset=args.preset, image_size=args.image_size, num_classes=args.num_classes))
    model = ViT(**arch)

    def forward(images):  # as the SavedModel's: float32-result products in bfloat16
        with products.float32_results():
            return tf.cast(model(images, training=False), tf.float32)

    compiled = tf.function(forward, jit_compile=True, autograph=False)
    spec = tf.TensorSpec((None, args.image_size, args.image_size, arch["in_channels"]), tf.float32)
    variants = {f"{count} pieces": (count, False) for count in args.pieces}
    variants.update({f"{count} pieces, one after another": (count, True) for count in args.pieces if count > 1})
    calls = {
        name: tf.function(lambda x, c=count, s=seq: in_pieces(compiled, x, c, s), input_signature=[spec])
        for name, (count, seq) in variants.items()
    }
    calls[SERVED] = tf.function(lambda x: device_forward(compiled, x), input_signature=[spec])
    shape = (args.batch_size, args.image_size, args.image_size, arch["in_channels"])
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, shape).astype("float32"))
    for call in calls.values():
        call(images)
    return calls, images


def main(argv=None):
    import keras
    import numpy as np

    parser = argument_parser(__doc__)
    parser.add_argument("--pieces", default="1,2,4,8", help="comma list of piece counts (1: the whole batch)")
    args = parse_arguments(parser, argv)
    args.pieces = sorted({int(value) for value in args.pieces.split(",")} | {1})
    if args.pieces[0] < 1 or args.pieces[-1] > args.batch_size:
        parser.error(f"--pieces must be 1..batch size ({args.batch_size}); found {args.pieces}")
    if keras.backend.backend() != "tensorflow":
        parser.error(f"KERAS_BACKEND must be tensorflow; found {keras.backend.backend()!r}")
    from vit_keras.performance import configure_cpu_threads

    configure_cpu_threads()
    print_cpu()
    calls, images = build_calls(args)
    times = {name: [] for name in calls}
    for round_index in range(args.rounds):
        names = list(calls)[::-1] if round_index % 2 else list(calls)
        for name in names:
            start = time.perf_counter()
            calls[name](images).numpy()
            times[name].append(time.perf_counter() - start)
    whole = np.array(times["1 pieces"])
    print(f"{args.preset} {args.image_size} px, batch {args.batch_size}, {args.precision}, {args.rounds} rounds:")
    for name, values in times.items():
        ratio = np.median(whole / np.array(values))
        print(f"  {name}: {1e3 * np.median(values):.1f} ms; per round {ratio:.2f}x the whole batch")
    return times


if __name__ == "__main__":
    main()
