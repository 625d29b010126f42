"""PyTorch's CPU float32 matmul libraries side by side on the matmuls of ViT-Ti/16 training.

For each product of a ViT-Ti/16 training step at 224 px, batch 32 (6,304 tokens; the q/k/v,
output and MLP projections, forward and input gradient), prints GFLOP/s (median of --repeats) of
MKL (`torch.nn.functional.linear`, what PyTorch uses) and oneDNN (`torch.ops.mkldnn._linear_pointwise`,
what `vit_keras.layers.torch_linear` uses), with the CPU model and its flags. Run it alone on an
idle machine: `python scripts/bench/matmul_libraries.py`.
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.micro import median_seconds, parse_repeats, print_cpu  # noqa: E402

TOKENS = 32 * 197
# (rows, inner, outputs): forward of q/k/v, output, MLP in, MLP out, then the input gradients
SHAPES = [(TOKENS, 192, 576), (TOKENS, 192, 192), (TOKENS, 192, 768), (TOKENS, 768, 192), (TOKENS, 576, 192)]


def main(argv=None):
    args = parse_repeats(__doc__.splitlines()[0], "product", argv)
    print_cpu()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| product (rows x inner x outputs) | MKL GFLOP/s | oneDNN GFLOP/s | oneDNN / MKL |")
    print("|---|---:|---:|---:|")
    for rows, inner, outputs in SHAPES:
        x, weight, bias = torch.randn(rows, inner), torch.randn(outputs, inner), torch.randn(outputs)
        flops = 2 * rows * inner * outputs / 1e9
        operands = (x, weight, bias)
        mkl = median_seconds(lambda a=operands: torch.nn.functional.linear(*a), args.repeats)
        onednn = median_seconds(lambda a=operands: torch.ops.mkldnn._linear_pointwise(*a, "none", [], ""), args.repeats)
        print(f"| {rows} x {inner} x {outputs} | {flops / mkl:.0f} | {flops / onednn:.0f} | {mkl / onednn:.2f}× |")


if __name__ == "__main__":
    main()
