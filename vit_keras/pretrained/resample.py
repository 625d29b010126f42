"""Resample a position table the way the library that published a checkpoint does.

Each source's own loader resizes the grid part of the table with its own filter when the
image size changes, and the logits at the new size depend on it:

- Google `.npz` in timm (`_load_weights`): bilinear, no antialiasing.
- timm state dicts (`checkpoint_filter_fn` -> `resample_abs_pos_embed`): bicubic with antialiasing.
- Hugging Face transformers (`ViTEmbeddings.interpolate_pos_encoding`): bicubic, no antialiasing.

All are PyTorch's `F.interpolate(..., align_corners=False)`, reproduced here in NumPy as one
(out, in) weight matrix per axis: the non-antialiased filters follow `UpSample.h` (bicubic with
A = -0.75, edges replicated), the antialiased ones `UpSampleKernel.cpp`'s separable
`_compute_weights_aa` (PIL's filters: triangle, and cubic with a = -0.5).
"""

import math

import numpy as np

# checkpoint layout -> (interpolation, antialias) of the library that publishes it.
SOURCE_RESAMPLING = {
    "google": ("bilinear", False),
    "timm": ("bicubic", True),
    "huggingface": ("bicubic", False),
}
INTERPOLATIONS = ("bilinear", "bicubic")


def _cubic(x, a):
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def _plain_weights(in_size, out_size, interpolation):
    """(out, in) matrix of torch's non-antialiased bilinear/bicubic, align_corners=False."""
    matrix = np.zeros((out_size, in_size))
    scale = in_size / out_size
    for i in range(out_size):
        source = (i + 0.5) * scale - 0.5
        if interpolation == "bilinear":
            source = max(source, 0.0)
            taps = {0: 1.0 - (source - math.floor(source)), 1: source - math.floor(source)}
        else:
            t = source - math.floor(source)
            taps = {
                -1: _cubic(t + 1.0, -0.75),
                0: _cubic(t, -0.75),
                1: _cubic(1.0 - t, -0.75),
                2: _cubic(2.0 - t, -0.75),
            }
        base = int(math.floor(source))
        for offset, weight in taps.items():
            matrix[i, min(max(base + offset, 0), in_size - 1)] += weight
    return matrix


def _antialiased_weights(in_size, out_size, interpolation):
    """(out, in) matrix of torch's antialiased bilinear/bicubic (PIL's separable filters)."""
    matrix = np.zeros((out_size, in_size))
    scale = in_size / out_size
    half_width = 1.0 if interpolation == "bilinear" else 2.0
    support = half_width * scale if scale >= 1.0 else half_width
    inverse = 1.0 / scale if scale >= 1.0 else 1.0
    for i in range(out_size):
        center = scale * (i + 0.5)
        start = max(int(center - support + 0.5), 0)
        stop = min(int(center + support + 0.5), in_size)
        for j in range(start, stop):
            x = (j - center + 0.5) * inverse
            matrix[i, j] = max(0.0, 1.0 - abs(x)) if interpolation == "bilinear" else _cubic(x, -0.5)
        total = matrix[i].sum()
        if total != 0.0:
            matrix[i] /= total
    return matrix


def resize_matrix(in_size, out_size, interpolation="bilinear", antialias=False):
    """(out_size, in_size) weights that resample a 1-D signal as torch's `F.interpolate` does."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; found {interpolation!r}.")
    if antialias:
        return _antialiased_weights(in_size, out_size, interpolation)
    return _plain_weights(in_size, out_size, interpolation)


def resample_table(table, new_grid, interpolation="bilinear", antialias=False, num_prefix_tokens=1):
    """Resample the square grid part of a (1, prefix + N, D) table to `new_grid` (rows, cols).

    The prefix rows (the class token's position) are kept. Returns float32; raises a
    ValueError if the grid part is not square.
    """
    table = np.asarray(table)
    if table.ndim == 2:
        table = table[None]
    if table.ndim != 3 or table.shape[0] != 1:
        raise ValueError(f"a position table must have shape (1, tokens, dim); found {table.shape}.")
    prefix, grid = table[:, :num_prefix_tokens], table[0, num_prefix_tokens:]
    side = math.isqrt(grid.shape[0])
    if side * side != grid.shape[0]:
        raise ValueError(f"its {grid.shape[0]} grid positions are not a square grid")
    new_grid = tuple(int(g) for g in new_grid)
    if (side, side) == new_grid:
        return table.astype(np.float32)
    rows = resize_matrix(side, new_grid[0], interpolation, antialias)
    cols = resize_matrix(side, new_grid[1], interpolation, antialias)
    grid = grid.reshape(side, side, -1).astype(np.float64)
    resized = np.einsum("ah,bw,hwd->abd", rows, cols, grid).reshape(1, -1, grid.shape[-1])
    return np.concatenate([prefix.astype(np.float64), resized], axis=1).astype(np.float32)
