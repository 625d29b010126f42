"""Our attention (`vit_keras.layers.products.attention`) against `keras.ops.dot_product_attention`.

On the backend of KERAS_BACKEND (TensorFlow or JAX, both XLA-compiled), builds the same ViT twice,
once per attention path (`SelfAttention`'s choice is switched while each model is traced), and
times their forward pass (batch and batch 1) and their training step (`train_on_batch`, AdamW)
in alternating rounds in one process, so both see the same machine state. Prints the median
times and the ratio (keras op / ours: above 1 means ours is faster).

    KERAS_BACKEND=jax python scripts/bench/attention_paths.py --precision float32
    KERAS_BACKEND=jax python scripts/bench/attention_paths.py --precision mixed_bfloat16 --rounds 5
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.micro import print_cpu  # noqa: E402
from bench.variants import argument_parser, build_variants, measure, parse_arguments  # noqa: E402

PATHS = ("keras.ops.dot_product_attention", "products.attention")


def _keras_op(query, key, value, scale):
    from keras import ops

    return ops.dot_product_attention(query, key, value, scale=scale)


def build_models(args):
    """{path: (forward(images), train_step())} for the two attention paths, compiled and warmed up."""
    from vit_keras.layers import products, self_attention

    values = dict(zip(PATHS, (_keras_op, products.attention)))
    return build_variants(args, self_attention, "_keras_attention", values)


def main(argv=None):
    import keras
    import numpy as np

    parser = argument_parser(__doc__)
    args = parse_arguments(parser, argv)
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
