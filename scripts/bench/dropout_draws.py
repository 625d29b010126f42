"""Dropout under XLA on TensorFlow: Keras' draws against vit_keras' (`vit_keras.layers.dropout`).

Times, in XLA-compiled TensorFlow functions (median of --repeats calls), the uniform draws behind
dropout with `tf.random.stateless_uniform`'s default algorithm ("auto_select", what Keras'
TensorFlow backend uses) and with "philox" or "threefry" named (vit_keras uses Threefry), then `keras.layers.Dropout`
against `vit_keras.layers.Dropout` on the tutorial model's activations, with the CPU model and its
flags. Run it alone on an idle machine: `python scripts/bench/dropout_draws.py`.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.micro import median_seconds, parse_repeats, print_cpu  # noqa: E402
from vit_keras.layers import Dropout  # noqa: E402

SHAPE = (128, 17, 400)  # the tutorial model's MLP activations at batch 128


def median_ms(fn, argument, repeats):
    """Median ms of `repeats` calls of `fn(argument)` compiled with XLA (the first call compiles)."""
    compiled = tf.function(fn, jit_compile=True)
    return 1e3 * median_seconds(lambda: compiled(argument).numpy(), repeats)


def main(argv=None):
    args = parse_repeats(__doc__.splitlines()[0], "case", argv)
    print_cpu()
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}; XLA, tensor {SHAPE} float32")
    seed = tf.constant([1, 2], tf.int32)
    x = tf.ones(SHAPE)
    keras_dropout, our_dropout = keras.layers.Dropout(0.1, seed=0), Dropout(0.1, seed=0)
    cases = [
        ("stateless_uniform, alg auto_select", lambda s: tf.random.stateless_uniform(SHAPE, s), seed),
        ("stateless_uniform, alg philox", lambda s: tf.random.stateless_uniform(SHAPE, s, alg="philox"), seed),
        ("stateless_uniform, alg threefry", lambda s: tf.random.stateless_uniform(SHAPE, s, alg="threefry"), seed),
        ("keras.layers.Dropout(0.1)", lambda t: keras_dropout(t, training=True), x),
        ("vit_keras.layers.Dropout(0.1)", lambda t: our_dropout(t, training=True), x),
    ]
    print("| XLA-compiled call | ms (median) |")
    print("|---|---:|")
    for name, fn, argument in cases:
        print(f"| {name} | {median_ms(fn, argument, args.repeats):.1f} |")


if __name__ == "__main__":
    main()
