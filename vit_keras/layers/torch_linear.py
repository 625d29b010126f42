"""`x @ kernel + bias` on PyTorch's CPU with oneDNN kernels, forward and backward.

PyTorch runs float32 CPU matmuls with MKL, which on AMD CPUs is well below oneDNN for a ViT's
shapes (AMD EPYC Zen 3, 2 cores: 51-91 GFLOP/s against 81-122 for the (6,304 x 192) x (192 x 576..768)
products of ViT-Ti/16 at batch 32; `python scripts/bench/matmul_libraries.py`). `OneDnnLinear`
computes the output and the input gradient with `torch.ops.mkldnn._linear_pointwise` (the oneDNN
linear that torch.compile's CPU backend emits) and the kernel gradient with `torch.mm` (MKL is as fast
there: its inner dimension is the long token axis). Same values as `torch.nn.functional.linear` up to
float32 summation order.

Only imported with PyTorch; `vit_keras.layers.linear.linear` decides when to use it.
"""

import functools
import os

import torch
from torch.autograd.function import once_differentiable

from vit_keras.performance import cpu_vendor

CPU_MATMUL_ENV = "VIT_KERAS_TORCH_CPU_MATMUL"
CPU_MATMULS = ("auto", "onednn", "mkl")


class OneDnnLinear(torch.autograd.Function):
    """`x @ kernel + bias` for an (..., in) `x`, an (in, out) `kernel` and an (out,) `bias`, via oneDNN."""

    @staticmethod
    def forward(ctx, x, kernel, bias):
        ctx.save_for_backward(x, kernel)
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), kernel.t(), bias, "none", [], "")

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, kernel = ctx.saved_tensors
        grad = grad.contiguous()
        rows = grad.reshape(-1, grad.shape[-1])
        grad_x = grad_kernel = grad_bias = None
        if ctx.needs_input_grad[0]:  # grad @ kernel^T: oneDNN's linear with the (in, out) kernel as its weight
            grad_x = torch.ops.mkldnn._linear_pointwise(grad, kernel, None, "none", [], "")
        if ctx.needs_input_grad[1]:
            grad_kernel = torch.mm(x.reshape(-1, x.shape[-1]).t(), rows)
        if ctx.needs_input_grad[2]:
            grad_bias = rows.sum(0)
        return grad_x, grad_kernel, grad_bias


def cpu_matmul():
    """The library of `linear`'s float32 CPU matmuls on PyTorch: "onednn" or "mkl" (PyTorch's own).

    The environment variable `VIT_KERAS_TORCH_CPU_MATMUL` chooses: "onednn", "mkl" or "auto" (the
    default: "mkl" on Intel CPUs, where MKL is tuned, "onednn" on the others). "onednn" falls back to
    "mkl" where this PyTorch has no oneDNN linear.

    Raises:
        ValueError: the variable holds another value.
    """
    return _resolve(os.environ.get(CPU_MATMUL_ENV, "auto"))


@functools.cache
def _resolve(choice):
    if choice not in CPU_MATMULS:
        raise ValueError(f"{CPU_MATMUL_ENV} must be one of {list(CPU_MATMULS)}; found {choice!r}.")
    if choice == "auto":
        choice = "mkl" if cpu_vendor() == "GenuineIntel" else "onednn"
    has_onednn = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    return choice if has_onednn else "mkl"


def linear(x, kernel, bias):
    """`x @ kernel + bias` on torch tensors: `OneDnnLinear` for float32 on the CPU when `cpu_matmul()`
    says "onednn" (and not under torch.compile), else one fused `addmm` (`torch.nn.functional.linear`)."""
    if (
        x.device.type == "cpu"
        and x.dtype == kernel.dtype == torch.float32
        and not torch.compiler.is_compiling()
        and cpu_matmul() == "onednn"
    ):
        # oneDNN takes a kernel laid out row-major or transposed; a column slice of a wider kernel
        # (the query or key/value part of the fused q/k/v kernel) would send it to a reference
        # loop hundreds of times slower. The copy is one (in, out) kernel.
        return OneDnnLinear.apply(x, kernel.contiguous(), bias.contiguous())
    return torch.nn.functional.linear(x, kernel.T, bias)
