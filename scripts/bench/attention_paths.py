"""Our attention (`vit_keras.layers.products.attention`) against `keras.ops.dot_product_attention`.

On the backend of KERAS_BACKEND (TensorFlow or JAX, both XLA-compiled), builds the same ViT twice,
once per attention path (`SelfAttention`'s choice is switched while each model is traced), and
times their forward pass (batch and batch 1) and their training step (`train_on_batch`, AdamW)
in alternating rounds in one process, so both see the same machine state. Prints the median
times and the ratio (keras op / ours: above 1 means ours is faster).

    KERAS_BACKEND=jax python scripts/bench/attention_paths.py --precision float32
    KERAS_BACKEND=jax python scripts/bench/attention_paths.py --precision mixed_bfloat16 --rounds 5
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.micro import print_cpu  # noqa: E402

PATHS = ("keras.ops.dot_product_attention", "products.attention")


def _keras_op(query, key, value, scale):
    from keras import ops

    return ops.dot_product_attention(query, key, value, scale=scale)


def build_models(args):
    """{path: (forward(images), train_step())} for the two attention paths, compiled and warmed up."""
    import keras
    import numpy as np

    from bench.workloads import architecture
    from vit_keras import ViT
    from vit_keras.layers import products, self_attention

    keras.mixed_precision.set_global_policy(args.precision)
    arch = architecture(dict(preset=args.preset, image_size=args.image_size, num_classes=args.num_classes))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (args.batch_size, args.image_size, args.image_size, arch["in_channels"]))
    images = images.astype("float32")
    labels = rng.integers(0, args.num_classes, (args.batch_size,))
    ours = self_attention._keras_attention
    models = {}
    for path, attention in zip(PATHS, (_keras_op, products.attention)):
        self_attention._keras_attention = attention  # read when the model is traced (compiled) below
        try:
            keras.utils.set_random_seed(0)
            model = ViT(**arch)
            model.compile(
                optimizer=keras.optimizers.AdamW(1e-4),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=True,
            )
            forward = compiled_forward(model)
            for batch in (images, images[:1]):
                forward(batch)
            model.train_on_batch(images, labels)
        finally:
            self_attention._keras_attention = ours
        models[path] = (forward, lambda model=model: model.train_on_batch(images, labels))
    return models, images


def compiled_forward(model):
    """An XLA-compiled `model(images, training=False)` that returns a NumPy array."""
    import keras
    import numpy as np

    if keras.backend.backend() == "jax":
        import jax

        forward = jax.jit(lambda x: model(x, training=False))
        return lambda x: np.asarray(forward(x))
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False), jit_compile=True, autograph=False)
    return lambda x: forward(tf.constant(x)).numpy()


def measure(models, images, rounds):
    """{(path, "forward" | "forward, batch 1" | "training step"): [seconds per call, one per round]}.

    The order of the models alternates from round to round (first, second; second, first; ...).
    """
    times = {}
    for round_index in range(rounds):
        items = list(models.items())
        for path, (forward, train_step) in items[::-1] if round_index % 2 else items:
            for name, call in (
                ("forward", lambda forward=forward: forward(images)),
                ("forward, batch 1", lambda forward=forward: forward(images[:1])),
                ("training step", train_step),
            ):
                start = time.perf_counter()
                call()
                times.setdefault((path, name), []).append(time.perf_counter() - start)
    return times


def main(argv=None):
    import keras
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="vit_ti16")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1; found {args.rounds}")
    if keras.backend.backend() not in ("tensorflow", "jax"):
        parser.error(f"KERAS_BACKEND must be tensorflow or jax; found {keras.backend.backend()!r}")
    from vit_keras.performance import configure_cpu_threads

    configure_cpu_threads()
    print_cpu()
    models, images = build_models(args)
    times = measure(models, images, args.rounds)
    print(f"{keras.backend.backend()}, {args.preset} {args.image_size} px, batch {args.batch_size}, {args.precision}")
    for name in ("forward", "forward, batch 1", "training step"):
        medians = [np.median(times[(path, name)]) for path in PATHS]
        cells = ", ".join(f"{path} {1e3 * m:.1f} ms" for path, m in zip(PATHS, medians))
        print(f"  {name}: {cells}; ratio {medians[0] / medians[1]:.2f}")
    return times


if __name__ == "__main__":
    main()
