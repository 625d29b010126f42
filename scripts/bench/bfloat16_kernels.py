"""Which kernels run bfloat16 natively on this CPU: a ViT-Ti/16 product and attention, per library.

Prints GFLOP/s (median of --repeats calls) of one ViT-Ti/16 projection at 224 px, batch 32 (the
MLP's first product, 6,304 x 192 x 768) in float32 and bfloat16 under PyTorch (`linear`),
TensorFlow's own kernels (`tf.matmul`, oneDNN), TensorFlow + XLA (`jit_compile=True`) and JAX
(XLA; bfloat16 output, and with `preferred_element_type=float32`). Then one ViT-Ti/16 attention
layer's forward and backward pass (32 x 3 heads x 197 tokens x 64) on PyTorch: the flash kernel
(`scaled_dot_product_attention`) in float32 and bfloat16, and the two bfloat16 matmuls around a
softmax that `vit_keras.layers.SelfAttention` runs in bfloat16 on the CPU. Each library runs in
a process of its own. Run it alone on an idle machine: `python scripts/bench/bfloat16_kernels.py`.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.micro import measure_in_process, median_seconds, parse_repeats, print_cpu  # noqa: E402

ROWS, INNER, OUTPUTS = 32 * 197, 192, 768
GFLOP = 2 * ROWS * INNER * OUTPUTS / 1e9
BATCH, HEADS, TOKENS, HEAD_DIM = 32, 3, 197, 64
LIBRARIES = ("PyTorch", "TensorFlow", "TensorFlow + XLA", "JAX (XLA)", "JAX (XLA), float32 accumulation")


def measure_torch(repeats):
    import torch

    from vit_keras.layers.self_attention import torch_attention

    result = {}
    for dtype in ("float32", "bfloat16"):
        x = torch.randn(ROWS, INNER, dtype=getattr(torch, dtype))
        w = torch.randn(OUTPUTS, INNER, dtype=getattr(torch, dtype))
        result[f"PyTorch {dtype}"] = GFLOP / median_seconds(lambda x=x, w=w: torch.nn.functional.linear(x, w), repeats)
    scale = HEAD_DIM**-0.5
    kernels = {
        "flash float32": (torch.float32, torch.nn.functional.scaled_dot_product_attention),
        "flash bfloat16": (torch.bfloat16, torch.nn.functional.scaled_dot_product_attention),
        "matmuls bfloat16": (torch.bfloat16, torch_attention),
    }
    for name, (dtype, kernel) in kernels.items():
        qkv = torch.randn(BATCH, TOKENS, 3, HEADS, HEAD_DIM, dtype=dtype, requires_grad=True)
        grad = torch.randn(BATCH, HEADS, TOKENS, HEAD_DIM, dtype=dtype)

        def step(qkv=qkv, grad=grad, kernel=kernel):
            query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            kernel(query, key, value, scale=scale).backward(grad)

        result[f"attention {name}"] = median_seconds(step, repeats) * 1e3
    return result


def measure_tensorflow(repeats):
    import tensorflow as tf

    result = {}
    for jit, library in ((False, "TensorFlow"), (True, "TensorFlow + XLA")):
        matmul = tf.function(tf.matmul, jit_compile=jit)
        for dtype in ("float32", "bfloat16"):
            x, w = tf.cast(tf.random.normal((ROWS, INNER)), dtype), tf.cast(tf.random.normal((INNER, OUTPUTS)), dtype)
            seconds = median_seconds(lambda x=x, w=w, f=matmul: f(x, w).numpy(), repeats)
            result[f"{library} {dtype}"] = GFLOP / seconds
    return result


def measure_jax(repeats):
    import jax
    import jax.numpy as jnp

    result = {}
    products = {
        "JAX (XLA)": jax.jit(jnp.dot),
        "JAX (XLA), float32 accumulation": jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32)),
    }
    for dtype in ("float32", "bfloat16"):
        x = jax.random.normal(jax.random.PRNGKey(0), (ROWS, INNER)).astype(dtype)
        w = jax.random.normal(jax.random.PRNGKey(1), (INNER, OUTPUTS)).astype(dtype)
        for library, product in products.items():
            seconds = median_seconds(lambda f=product, x=x, w=w: f(x, w).block_until_ready(), repeats)
            result[f"{library} {dtype}"] = GFLOP / seconds
    return result


WORKERS = {"torch": measure_torch, "tensorflow": measure_tensorflow, "jax": measure_jax}


def main(argv=None):
    args = parse_repeats(__doc__.splitlines()[0], "kernel", argv)
    framework = os.environ.get("BFLOAT16_KERNELS_FRAMEWORK")
    if framework:  # a worker: print its measurements as one JSON line
        print(json.dumps(WORKERS[framework](args.repeats)))
        return
    print_cpu()
    results = {}
    for name in WORKERS:
        results.update(measure_in_process(__file__, "BFLOAT16_KERNELS_FRAMEWORK", name, args.repeats, name))
    print(f"| {ROWS} x {INNER} x {OUTPUTS} product | float32 GFLOP/s | bfloat16 GFLOP/s | bfloat16 / float32 |")
    print("|---|---:|---:|---:|")
    for library in LIBRARIES:
        f32, bf16 = results[f"{library} float32"], results[f"{library} bfloat16"]
        print(f"| {library} | {f32:.0f} | {bf16:.0f} | {bf16 / f32:.2f}× |")
    print(f"\n| PyTorch attention, forward + backward, {BATCH} x {HEADS} x {TOKENS} x {HEAD_DIM} | ms |")
    print("|---|---:|")
    for name in ("flash float32", "flash bfloat16", "matmuls bfloat16"):
        print(f"| {name} | {results[f'attention {name}']:.1f} |")


if __name__ == "__main__":
    main()
