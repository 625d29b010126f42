"""Where batch-1 latency goes: one image's products on one thread and on all, XLA against PyTorch.

The products of one ViT-Ti/16 image at 224 px (197 tokens, width 192, 3 heads of 64, MLP 768,
12 blocks) in two parts: the 48 projections with their biases, chained as in the forward pass,
and the 12 attention cores (scores, softmax, weighted values). TensorFlow runs them XLA-compiled
(`tf.matmul`, `keras.ops.dot_product_attention`: what the XLA SavedModel runs for one image),
PyTorch as timm does (`F.linear`, `F.scaled_dot_product_attention`), on the same numbers. Each
(framework, threads) pair runs in a fresh process, one after the other, `--rounds` times: the
table gives the median over rounds of each process's median call, and what each framework gains
from the threads beyond the first. Run it alone on an idle machine:

    python scripts/bench/one_image_threads.py --rounds 4
"""

import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.micro import measure_in_process, median_seconds, parse_repeats, print_cpu  # noqa: E402

WORKER = "ONE_IMAGE_THREADS_WORKER"  # "framework:threads" in a worker process
FRAMEWORKS = {"tensorflow": "XLA (TensorFlow)", "torch": "PyTorch"}
PARTS = ("projections", "attention")
VIT_TI16_IMAGE = dict(tokens=197, width=192, heads=3, mlp=768, depth=12)


def _numbers(shape):
    """The weights, biases, input tokens and q/k/v of `shape` (float32 numpy, seed 0)."""
    import numpy as np

    rng = np.random.default_rng(0)
    width, mlp = shape["width"], shape["mlp"]
    sizes = [(width, 3 * width), (width, width), (width, mlp), (mlp, width)]  # q/k/v, output, MLP in, MLP out

    def normal(*dims, scale=1.0):
        return (scale * rng.standard_normal(dims)).astype("float32")

    layers = [[(normal(a, b, scale=a**-0.5), normal(b, scale=0.02)) for a, b in sizes] for _ in range(shape["depth"])]
    return layers, normal(shape["tokens"], width), normal(shape["tokens"], 3 * width)


def tensorflow_parts(shape=VIT_TI16_IMAGE):
    """{part: call() -> numpy output}, XLA-compiled TensorFlow."""
    import keras
    import tensorflow as tf

    layers, tokens, qkv = _numbers(shape)
    layers = [[(tf.constant(w), tf.constant(b)) for w, b in layer] for layer in layers]
    heads, width = shape["heads"], shape["width"]

    @tf.function(jit_compile=True, autograph=False)
    def projections(x):
        for (w_qkv, b_qkv), (w_out, b_out), (w_in, b_in), (w_mlp, b_mlp) in layers:
            x = x + (x @ w_qkv + b_qkv)[:, :width] @ w_out + b_out
            x = x + (x @ w_in + b_in) @ w_mlp + b_mlp
        return x

    @tf.function(jit_compile=True, autograph=False)
    def attention(qkv):
        out = 0.0
        for layer in range(len(layers)):
            q, k, v = tf.unstack(tf.reshape(qkv + 0.01 * layer, (1, -1, 3, heads, width // heads)), axis=2)
            out += keras.ops.dot_product_attention(q, k, v)
        return tf.reshape(out, (-1, width))

    tokens, qkv = tf.constant(tokens), tf.constant(qkv)
    return {"projections": lambda: projections(tokens).numpy(), "attention": lambda: attention(qkv).numpy()}


def torch_parts(shape=VIT_TI16_IMAGE):
    """{part: call() -> numpy output}, PyTorch eager in inference mode, as timm's ViT runs them."""
    import torch
    import torch.nn.functional as F

    layers, tokens, qkv = _numbers(shape)
    layers = [[(torch.from_numpy(w.T.copy()), torch.from_numpy(b)) for w, b in layer] for layer in layers]
    heads, width = shape["heads"], shape["width"]
    tokens, qkv = torch.from_numpy(tokens), torch.from_numpy(qkv)

    @torch.inference_mode()
    def projections():
        x = tokens
        for (w_qkv, b_qkv), (w_out, b_out), (w_in, b_in), (w_mlp, b_mlp) in layers:
            x = x + F.linear(F.linear(x, w_qkv, b_qkv)[:, :width], w_out, b_out)
            x = x + F.linear(F.linear(x, w_in, b_in), w_mlp, b_mlp)
        return x.numpy()

    @torch.inference_mode()
    def attention():
        out = 0.0
        for layer in range(len(layers)):
            q, k, v = (qkv + 0.01 * layer).reshape(1, -1, 3, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)
            out = out + F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(-1, width).numpy()

    return {"projections": projections, "attention": attention}


def measure(framework, repeats, shape=VIT_TI16_IMAGE):
    """{part: median seconds of one call} of `framework` ("tensorflow" or "torch") in this process."""
    parts = (tensorflow_parts if framework == "tensorflow" else torch_parts)(shape)
    return {name: median_seconds(call, repeats) for name, call in parts.items()}


def _set_threads(framework, threads):
    """Give `framework` `threads` threads; in a fresh process, before its first operation."""
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    else:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _run_worker(framework, threads, repeats):
    return measure_in_process(__file__, WORKER, f"{framework}:{threads}", repeats, "tensorflow")


def table(times, threads):
    """Markdown rows of `times` {(framework, threads): {part: [seconds per round]}}, in ms."""
    ms = {
        key: {part: 1e3 * statistics.median(seconds) for part, seconds in parts.items()} for key, parts in times.items()
    }
    lines = [
        f"| one image, ms | {' | '.join(f'{FRAMEWORKS[f]}: 1 / {threads} threads (gain)' for f in FRAMEWORKS)} "
        f"| XLA / PyTorch, {threads} threads |",
        "|---|---:|---:|---:|",
    ]
    for part in PARTS:
        cells = []
        for framework in FRAMEWORKS:
            one, many = ms[(framework, 1)][part], ms[(framework, threads)][part]
            cells.append(f"{one:.2f} / {many:.2f} ({one / many:.2f}×)")
        ratio = ms[("tensorflow", threads)][part] / ms[("torch", threads)][part]
        lines.append(f"| {part} | {' | '.join(cells)} | {ratio:.2f}× |")
    return lines


def main(argv=None):
    args = parse_repeats(__doc__.splitlines()[0], "part and process", argv, repeats=15, rounds=4)
    worker = os.environ.get(WORKER)
    if worker:  # a worker: print its measurements as one JSON line
        framework, threads = worker.split(":")
        _set_threads(framework, int(threads))
        print(json.dumps(measure(framework, args.repeats)))
        return None
    print_cpu()
    threads = len(os.sched_getaffinity(0))
    pairs = [(framework, count) for framework in FRAMEWORKS for count in sorted({1, threads})]
    times = {pair: {part: [] for part in PARTS} for pair in pairs}
    for _ in range(args.rounds):
        for pair in pairs:
            for part, seconds in _run_worker(*pair, args.repeats).items():
                times[pair][part].append(seconds)
    print("\n".join(table(times, threads)))
    return times


if __name__ == "__main__":
    main()
