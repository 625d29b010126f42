"""TensorFlow + XLA against PyTorch on the products of a ViT-Ti/16 training step, float32 and int8.

For the products of one ViT-Ti/16 training step at 224 px, batch 32 (6,304 tokens, 3 heads of
width 64), prints GFLOP/s (median of --repeats calls) of XLA on TensorFlow (an XLA-compiled
`tf.matmul`, what `jit_compile=True` training runs) and of PyTorch (`torch.matmul`, MKL): each
projection in its three forms (forward `x @ W`, input gradient `dy @ W^T`, kernel gradient
`x^T @ dy`) and the attention's two batched products per head. Then the int8 path on the
projections: a `keras.layers.Dense` quantized with `quantize("int8")` against the same Dense in
float32 (both XLA-compiled), and PyTorch's dynamic int8 `Linear` (fbgemm) against its float32
`Linear`. Each framework runs in a process of its own. Run it alone on an idle machine:
`python scripts/bench/xla_products.py`.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.micro import measure_in_process, median_seconds, parse_repeats, print_cpu  # noqa: E402

TOKENS, HEADS, HEAD_DIM = 32 * 197, 32 * 3, 64
PROJECTIONS = [(192, 576), (192, 192), (192, 768), (768, 192)]  # (inner, outputs): q/k/v, output, MLP in, MLP out
FORMS = ("x @ W", "dy @ W^T", "x^T @ dy")


def projection_gflop(inner, outputs):
    """GFLOP of one (TOKENS x inner) @ (inner x outputs) product."""
    return 2 * TOKENS * inner * outputs / 1e9


def dense_label(inner, outputs, dtype):
    """The result key of a projection layer's call in `dtype` ("float32" or "int8")."""
    return f"Dense {TOKENS} x {inner} x {outputs}, {dtype}"


def products():
    """[(label, operand shapes, transposes, GFLOP)] of one training step's products."""
    rows = []
    for inner, outputs in PROJECTIONS:
        flops = projection_gflop(inner, outputs)
        x, w, dy = (TOKENS, inner), (inner, outputs), (TOKENS, outputs)
        shapes = {"x @ W": (x, w, False, False), "dy @ W^T": (dy, w, False, True), "x^T @ dy": (x, dy, True, False)}
        rows += [(f"{TOKENS} x {inner} x {outputs}, {form}", *shapes[form], flops) for form in FORMS]
    tokens = TOKENS // 32
    for a, b in (((tokens, HEAD_DIM), (HEAD_DIM, tokens)), ((tokens, tokens), (tokens, HEAD_DIM))):
        shape_a, shape_b = (HEADS,) + a, (HEADS,) + b
        flops = 2 * HEADS * a[0] * a[1] * b[1] / 1e9
        rows.append((f"attention {HEADS} x ({a[0]} x {a[1]} @ {b[0]} x {b[1]})", shape_a, shape_b, False, False, flops))
    return rows


def measure_tensorflow(repeats):
    import keras
    import numpy as np
    import tensorflow as tf

    from vit_keras.performance import configure_cpu_threads

    configure_cpu_threads()
    rng = np.random.default_rng(0)
    result = {}
    for label, shape_a, shape_b, ta, tb, flops in products():
        a, b = (tf.constant(rng.standard_normal(s, dtype="float32")) for s in (shape_a, shape_b))
        product = tf.function(
            lambda a=a, b=b, ta=ta, tb=tb: tf.matmul(a, b, transpose_a=ta, transpose_b=tb), jit_compile=True
        )
        result[label] = flops / median_seconds(lambda f=product: f().numpy(), repeats)
    for inner, outputs in PROJECTIONS:
        x = tf.constant(rng.standard_normal((TOKENS, inner), dtype="float32"))
        dense, quantized = keras.layers.Dense(outputs), keras.layers.Dense(outputs)
        for layer in (dense, quantized):
            layer.build((None, inner))
        quantized.set_weights(dense.get_weights())
        quantized.quantize("int8")
        for name, layer in (("float32", dense), ("int8", quantized)):
            call = tf.function(lambda x=x, layer=layer: layer(x), jit_compile=True)
            seconds = median_seconds(lambda f=call: f().numpy(), repeats)
            result[dense_label(inner, outputs, name)] = projection_gflop(inner, outputs) / seconds
    return result


def measure_torch(repeats):
    import torch

    result = {}
    for label, shape_a, shape_b, ta, tb, flops in products():
        a, b = torch.randn(*shape_a), torch.randn(*shape_b)
        a, b = (a.transpose(-1, -2) if ta else a), (b.transpose(-1, -2) if tb else b)
        result[label] = flops / median_seconds(lambda a=a, b=b: torch.matmul(a, b), repeats)
    for inner, outputs in PROJECTIONS:
        x, linear = torch.randn(TOKENS, inner), torch.nn.Linear(inner, outputs)
        quantized = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear}, torch.qint8)
        with torch.inference_mode():
            for name, layer in (("float32", linear), ("int8", quantized)):
                seconds = median_seconds(lambda f=layer, x=x: f(x), repeats)
                result[dense_label(inner, outputs, name)] = projection_gflop(inner, outputs) / seconds
    return result


def _run_framework(framework, repeats):
    """The {label: GFLOP/s} of `framework`, measured in a fresh process (Keras there on TensorFlow,
    whatever KERAS_BACKEND this process was given)."""
    return measure_in_process(__file__, "XLA_PRODUCTS_FRAMEWORK", framework, repeats, "tensorflow")


def main(argv=None):
    args = parse_repeats(__doc__.splitlines()[0], "product", argv)
    framework = os.environ.get("XLA_PRODUCTS_FRAMEWORK")
    if framework:  # a worker: print its measurements as one JSON line
        print(json.dumps((measure_tensorflow if framework == "tensorflow" else measure_torch)(args.repeats)))
        return
    print_cpu()
    xla, torch = _run_framework("tensorflow", args.repeats), _run_framework("torch", args.repeats)
    print("| product (rows x inner x outputs) | XLA GFLOP/s | PyTorch GFLOP/s | XLA / PyTorch |")
    print("|---|---:|---:|---:|")
    for label, *_ in products():
        print(f"| {label} | {xla[label]:.0f} | {torch[label]:.0f} | {xla[label] / torch[label]:.2f}× |")
    print(
        "\n| projection | Keras Dense under XLA: float32 / int8 GFLOP/s | int8 / float32 "
        "| PyTorch Linear: float32 / dynamic int8 | int8 / float32 |"
    )
    print("|---|---:|---:|---:|---:|")
    for inner, outputs in PROJECTIONS:
        f32, i8 = dense_label(inner, outputs, "float32"), dense_label(inner, outputs, "int8")
        print(
            f"| {TOKENS} x {inner} x {outputs} | {xla[f32]:.0f} / {xla[i8]:.0f} | {xla[i8] / xla[f32]:.2f}× "
            f"| {torch[f32]:.0f} / {torch[i8]:.0f} | {torch[i8] / torch[f32]:.2f}× |"
        )


if __name__ == "__main__":
    main()
