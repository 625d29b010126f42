"""PyTorch's oneDNN linear (vit_keras.layers.torch_linear): same values and gradients as
`torch.nn.functional.linear`, the library choice, and a ViT that trains the same with either."""

import keras
import numpy as np
import pytest
import torch

from vit_keras.layers import torch_linear


@pytest.fixture
def matmul_env(monkeypatch):
    """Set VIT_KERAS_TORCH_CPU_MATMUL (None: unset) with a fresh resolution cache."""

    def set_choice(value, vendor=None):
        torch_linear._resolve.cache_clear()
        if value is None:
            monkeypatch.delenv(torch_linear.CPU_MATMUL_ENV, raising=False)
        else:
            monkeypatch.setenv(torch_linear.CPU_MATMUL_ENV, value)
        if vendor is not None:
            monkeypatch.setattr(torch_linear, "cpu_vendor", lambda: vendor)

    yield set_choice
    torch_linear._resolve.cache_clear()


def _values_and_grads(fn, x, kernel, bias, upstream):
    x, kernel, bias = (t.detach().clone().requires_grad_(True) for t in (x, kernel, bias))
    out = fn(x, kernel, bias)
    out.backward(upstream)
    return [t.detach() for t in (out, x.grad, kernel.grad, bias.grad)]


@pytest.mark.single_backend
@pytest.mark.parametrize(
    "x_shape, layout",
    [((7, 8), "contiguous"), ((3, 5, 8), "contiguous"), ((3, 5, 8), "transposed"), ((0, 8), "contiguous")],
)
def test_onednn_linear_matches_torch_linear_and_its_gradients(x_shape, layout):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(x_shape, generator=generator)
    if layout == "transposed":  # a non-contiguous input and a non-contiguous upstream gradient
        x = torch.randn(x_shape[1], x_shape[0], x_shape[2], generator=generator).transpose(0, 1)
    kernel, bias = torch.randn(8, 6, generator=generator), torch.randn(6, generator=generator)
    upstream = torch.randn(x_shape[:-1] + (6,), generator=generator)
    if layout == "transposed":
        upstream = upstream.transpose(0, 1).contiguous().transpose(0, 1)
    ours = _values_and_grads(torch_linear.OneDnnLinear.apply, x, kernel, bias, upstream)
    reference = _values_and_grads(lambda a, k, b: torch.nn.functional.linear(a, k.T, b), x, kernel, bias, upstream)
    for name, got, want in zip(("output", "input grad", "kernel grad", "bias grad"), ours, reference, strict=True):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.single_backend
def test_matmul_library_follows_the_variable_and_the_cpu_vendor(matmul_env):
    matmul_env("onednn")
    assert torch_linear.cpu_matmul() == "onednn"
    matmul_env("mkl")
    assert torch_linear.cpu_matmul() == "mkl"
    matmul_env(None, vendor="GenuineIntel")
    assert torch_linear.cpu_matmul() == "mkl"
    matmul_env("auto", vendor="AuthenticAMD")
    assert torch_linear.cpu_matmul() == "onednn"
    matmul_env("fast")
    with pytest.raises(ValueError, match=r"^VIT_KERAS_TORCH_CPU_MATMUL must be one of .*; found 'fast'\.$"):
        torch_linear.cpu_matmul()


@pytest.mark.single_backend
def test_linear_takes_onednn_only_for_float32_on_the_cpu(matmul_env):
    x, kernel, bias = torch.ones(2, 3, requires_grad=True), torch.ones(3, 4), torch.zeros(4)
    matmul_env("onednn")
    assert type(torch_linear.linear(x, kernel, bias).grad_fn).__name__.startswith("OneDnnLinear")
    assert "Addmm" in type(torch_linear.linear(x.double(), kernel.double(), bias.double()).grad_fn).__name__
    matmul_env("mkl")
    assert "Addmm" in type(torch_linear.linear(x, kernel, bias).grad_fn).__name__


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="the matmul library is a PyTorch-backend choice")
def test_a_vit_trains_the_same_with_either_matmul_library(matmul_env):
    from vit_keras import ViT

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (16, 16, 16, 1)).astype("float32")
    labels = rng.integers(0, 4, (16,))
    losses = {}
    for library in ("mkl", "onednn"):
        matmul_env(library)
        keras.utils.set_random_seed(0)
        model = ViT(image_size=16, patch_size=4, in_channels=1, num_classes=4, embed_dim=32, depth=2, num_heads=2)
        model.compile(
            optimizer=keras.optimizers.AdamW(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        losses[library] = [float(model.train_on_batch(images, labels)) for _ in range(8)]
    assert losses["mkl"][-1] < losses["mkl"][0]  # it learns
    np.testing.assert_allclose(losses["onednn"], losses["mkl"], rtol=1e-4)


@pytest.mark.single_backend
def test_a_column_slice_of_a_kernel_reaches_onednn_contiguous_with_its_gradient(matmul_env, monkeypatch):
    """oneDNN runs a column-sliced (strided) weight in a reference loop hundreds of times slower:
    `linear` hands it a contiguous copy, and the gradient still lands in the sliced columns."""
    matmul_env("onednn")
    generator = torch.Generator().manual_seed(0)
    full = torch.randn(8, 18, generator=generator, requires_grad=True)
    bias = torch.randn(18, generator=generator, requires_grad=True)
    x = torch.randn(4, 8, generator=generator)
    contiguous, apply = [], torch_linear.OneDnnLinear.apply
    monkeypatch.setattr(
        torch_linear.OneDnnLinear, "apply", lambda *a: contiguous.append(a[1].is_contiguous()) or apply(*a)
    )
    out = torch_linear.linear(x, full[:, 6:], bias[6:])
    out.sum().backward()
    assert contiguous == [True]
    expected = x @ full.detach()[:, 6:] + bias.detach()[6:]
    np.testing.assert_allclose(out.detach().numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    assert float(full.grad[:, :6].abs().max()) == 0.0 and float(bias.grad[:6].abs().max()) == 0.0
    np.testing.assert_allclose(full.grad[:, 6:].numpy(), x.sum(0)[:, None].expand(8, 12).numpy(), rtol=1e-5)
    np.testing.assert_allclose(bias.grad[6:].numpy(), np.full(12, 4.0), rtol=1e-6)
