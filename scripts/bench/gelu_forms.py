"""The exact GELU on TensorFlow: `tf.nn.gelu` (an `erfc` form) against `exact_gelu` (the `erf` form).

`vit_keras.layers.gelu.exact_gelu` is what the ViT's MLP runs on TensorFlow. This script times,
in one process with alternating rounds (so both forms see the same machine state):

- the MLP's bias add + GELU alone on a (tokens, mlp_dim) tensor (ViT-Ti/16 at 224 px, batch 32:
  6,304 x 768), XLA-compiled, with a bias add times 2 as the cost of one pass over memory;
- the same ViT built twice, once per form (switched while each model is traced): its forward
  pass (batch and batch 1) and its training step (`train_on_batch`, AdamW).

Prints medians and the ratio `tf.nn.gelu` / `exact_gelu` (above 1: the erf form is faster), for
the model also the median of the per-round ratios.

    python scripts/bench/gelu_forms.py --precision float32
    python scripts/bench/gelu_forms.py --precision mixed_bfloat16 --jit-compile false --rounds 7
"""

import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.micro import print_cpu  # noqa: E402
from bench.variants import argument_parser, build_variants, measure, parse_arguments  # noqa: E402

FORMS = ("tf.nn.gelu", "exact_gelu")


def _keras_gelu(activation):
    return activation  # Keras' own GELU: tf.nn.gelu on TensorFlow


def time_elementwise(args, repeats=30):
    """{name: median ms} of bias add + GELU (both forms) and of a bias add times 2, XLA-compiled."""
    import numpy as np
    import tensorflow as tf

    from vit_keras.layers.gelu import exact_gelu

    dtype = tf.bfloat16 if args.precision == "mixed_bfloat16" else tf.float32
    tokens = args.batch_size * ((args.image_size // 16) ** 2 + 1)
    rng = np.random.default_rng(0)
    x = tf.cast(rng.normal(size=(tokens, args.mlp_dim)).astype("float32"), dtype)
    bias = tf.cast(rng.normal(size=(args.mlp_dim,)).astype("float32"), dtype)
    kernels = {
        "tf.nn.gelu": lambda a: tf.nn.gelu(a + bias, approximate=False),
        "exact_gelu": lambda a: exact_gelu(a + bias),
        "bias add x 2 (a memory pass)": lambda a: (a + bias) * 2,
    }
    times = {name: [] for name in kernels}
    compiled = {name: tf.function(fn, jit_compile=True, autograph=False) for name, fn in kernels.items()}
    for fn in compiled.values():
        fn(x).numpy()
    for _ in range(repeats):
        for name, fn in compiled.items():
            start = time.perf_counter()
            fn(x).numpy()
            times[name].append(time.perf_counter() - start)
    return tokens, {name: 1e3 * float(np.median(values)) for name, values in times.items()}


def build_models(args):
    """{form: (forward(images), train_step())} for the two GELU forms, compiled and warmed up."""
    from vit_keras.layers import gelu

    values = dict(zip(FORMS, (_keras_gelu, gelu.backend_activation)))
    return build_variants(args, gelu, "backend_activation", values, args.jit_compile == "true", pixel_high=255.0)


def main(argv=None):
    import keras
    import numpy as np

    parser = argument_parser(__doc__)
    parser.add_argument("--mlp-dim", type=int, default=768, help="width of the element-wise test tensor")
    parser.add_argument("--jit-compile", choices=("true", "false"), default="true", help="for the training step")
    args = parse_arguments(parser, argv)
    if keras.backend.backend() != "tensorflow":
        parser.error(f"KERAS_BACKEND must be tensorflow; found {keras.backend.backend()!r}")
    from vit_keras.performance import configure_cpu_threads

    configure_cpu_threads()
    print_cpu()
    tokens, elementwise = time_elementwise(args)
    print(f"bias add + GELU, {tokens} x {args.mlp_dim} {args.precision}, XLA, ms (median):")
    print("  " + ", ".join(f"{name} {ms:.2f}" for name, ms in elementwise.items()))
    models, images = build_models(args)
    times = measure(models, images, args.rounds)
    print(
        f"ViT {args.preset} {args.image_size} px, batch {args.batch_size}, {args.precision}, "
        f"training step jit_compile={args.jit_compile}, {args.rounds} rounds:"
    )
    for name in ("forward", "forward, batch 1", "training step"):
        first, second = (np.array(times[(form, name)]) for form in FORMS)
        cells = ", ".join(f"{form} {1e3 * np.median(t):.1f} ms" for form, t in zip(FORMS, (first, second)))
        ratio, paired = np.median(first) / np.median(second), np.median(first / second)
        print(f"  {name}: {cells}; ratio {ratio:.2f}, per round {paired:.2f}")
    return times


if __name__ == "__main__":
    main()
