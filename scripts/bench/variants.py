"""Same-process A/B of model variants: one ViT per variant, timed in alternating rounds.

A variant is a value assigned to a module attribute that the model reads while it is traced
(`SelfAttention`'s attention function, the MLP's GELU choice, ...). `build_variants` builds and
compiles one model per value (same seed, so the same weights), restoring the attribute after each;
`measure` times their forward pass (batch and batch 1) and training step round by round, so both
see the same machine state. Used by `attention_paths.py` and `gelu_forms.py`.
"""

import time


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


def build_variants(args, module, attribute, values, jit_compile=True, pixel_high=1.0):
    """{name: (forward(images), train_step())} for `values` ({name: value of module.attribute}).

    Args:
        args: preset, image_size, num_classes, batch_size and precision (an argparse namespace).
        module, attribute: where the variant's value is set while its model is built and traced.
        values: {variant name: value}, in the order to build and report.
        jit_compile: for the training step (the forward pass is always XLA-compiled).
        pixel_high: the synthetic images are uniform in [0, pixel_high).

    Returns:
        ({name: (forward, train_step)}, images): compiled and warmed up, on one seeded batch.
    """
    import keras
    import numpy as np

    from bench.workloads import architecture
    from vit_keras import ViT

    keras.mixed_precision.set_global_policy(args.precision)
    arch = architecture(dict(preset=args.preset, image_size=args.image_size, num_classes=args.num_classes))
    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.image_size, args.image_size, arch["in_channels"])
    images = rng.uniform(0, pixel_high, shape).astype("float32")
    labels = rng.integers(0, args.num_classes, (args.batch_size,))
    original = getattr(module, attribute)
    models = {}
    for name, value in values.items():
        setattr(module, attribute, value)  # read when the model is traced (compiled) below
        try:
            keras.utils.set_random_seed(0)
            model = ViT(**arch)
            model.compile(
                optimizer=keras.optimizers.AdamW(1e-4),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=jit_compile,
            )
            forward = compiled_forward(model)
            for batch in (images, images[:1]):
                forward(batch)
            model.train_on_batch(images, labels)
        finally:
            setattr(module, attribute, original)
        models[name] = (forward, lambda model=model: model.train_on_batch(images, labels))
    return models, images


def measure(models, images, rounds):
    """{(name, "forward" | "forward, batch 1" | "training step"): [seconds per call, one per round]}.

    The order of the models alternates from round to round (first, second; second, first; ...).
    """
    times = {}
    for round_index in range(rounds):
        items = list(models.items())
        for name, (forward, train_step) in items[::-1] if round_index % 2 else items:
            for call_name, call in (
                ("forward", lambda forward=forward: forward(images)),
                ("forward, batch 1", lambda forward=forward: forward(images[:1])),
                ("training step", train_step),
            ):
                start = time.perf_counter()
                call()
                times.setdefault((name, call_name), []).append(time.perf_counter() - start)
    return times


def argument_parser(description):
    """An argparse parser with the options every variant A/B takes (model, batch, precision, rounds)."""
    import argparse

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="vit_ti16")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32")
    parser.add_argument("--rounds", type=int, default=5)
    return parser


def parse_arguments(parser, argv):
    """`parser`'s arguments, with `--rounds` checked (an argparse error below 1)."""
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1; found {args.rounds}")
    return args
