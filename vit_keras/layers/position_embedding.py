"""A learnable position table added to the tokens, resampled to other grids on demand."""

import math

import keras
import numpy as np
from keras import ops


def _bilinear_matrix(in_size, out_size):
    """(out, in) weights of 1-D bilinear resampling, align_corners=False, no antialiasing.

    Same sampling as torch's `F.interpolate(mode="bilinear", align_corners=False)`:
    source = (i + 0.5) * in / out - 0.5, clamped below at 0, edge-replicated above.
    """
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    scale = in_size / out_size
    for i in range(out_size):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        lo = min(int(math.floor(src)), in_size - 1)
        hi = min(lo + 1, in_size - 1)
        frac = src - lo
        matrix[i, lo] += 1.0 - frac
        matrix[i, hi] += frac
    return matrix


def resample_position_table(table, new_grid, old_grid=None, num_prefix_tokens=1):
    """Resample the grid part of a (1, prefix + H*W, D) position table to `new_grid`.

    Bilinear, no antialiasing, align_corners=False (the numbers timm produces); the
    prefix rows (the class token's position) are kept as they are. `old_grid` defaults
    to the square grid the table holds. Returns a float32 NumPy array.
    """
    table = np.asarray(table)
    if table.ndim == 2:
        table = table[None]
    if table.ndim != 3 or table.shape[0] != 1:
        raise ValueError(f"table must have shape (1, tokens, dim); found {table.shape}.")
    prefix, grid = table[:, :num_prefix_tokens], table[0, num_prefix_tokens:]
    if old_grid is None:
        side = math.isqrt(grid.shape[0])
        if side * side != grid.shape[0]:
            raise ValueError(
                f"old_grid must be given for a table of {grid.shape[0]} grid tokens (not a square)."
            )
        old_grid = (side, side)
    old_grid, new_grid = tuple(old_grid), tuple(new_grid)
    if old_grid[0] * old_grid[1] != grid.shape[0]:
        raise ValueError(
            f"old_grid {old_grid} holds {old_grid[0] * old_grid[1]} tokens; the table has {grid.shape[0]}."
        )
    if old_grid == new_grid:
        return table.astype(np.float32)
    dim = grid.shape[-1]
    grid = grid.reshape(old_grid[0], old_grid[1], dim).astype(np.float64)
    rows, cols = _bilinear_matrix(old_grid[0], new_grid[0]), _bilinear_matrix(old_grid[1], new_grid[1])
    resized = np.einsum("ah,bw,hwd->abd", rows, cols, grid).reshape(1, -1, dim)
    return np.concatenate([prefix.astype(np.float64), resized], axis=1).astype(np.float32)


@keras.saving.register_keras_serializable(package="vit_keras")
class PositionEmbedding(keras.layers.Layer):
    """Add a learnable (1, prefix + H*W, D) position table to (batch, prefix + H*W, D) tokens.

    Args:
        grid_size: (H, W) patch grid; inferred as square from the token count if omitted.
        num_prefix_tokens: leading tokens (the class token) that are not on the grid.
    """

    def __init__(self, grid_size=None, num_prefix_tokens=1, initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = None if grid_size is None else tuple(int(g) for g in grid_size)
        self.num_prefix_tokens = int(num_prefix_tokens)
        self.initializer = keras.initializers.get(
            initializer or keras.initializers.RandomNormal(stddev=0.02)
        )

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None:
            raise ValueError(
                f"PositionEmbedding expects tokens (batch, tokens, dim) with a known token count; "
                f"found shape {tuple(input_shape)}."
            )
        num_grid = input_shape[1] - self.num_prefix_tokens
        if self.grid_size is None:
            side = math.isqrt(max(num_grid, 0))
            if side * side != num_grid:
                raise ValueError(
                    f"grid_size must be given for {num_grid} grid tokens (not a square number)."
                )
            self.grid_size = (side, side)
        if self.grid_size[0] * self.grid_size[1] != num_grid:
            raise ValueError(
                f"grid_size {self.grid_size} holds {self.grid_size[0] * self.grid_size[1]} tokens; "
                f"found {num_grid} grid tokens."
            )
        self.table = self.add_weight(
            shape=(1, input_shape[1], input_shape[2]), initializer=self.initializer, name="table"
        )

    def call(self, tokens):
        expected = self.table.shape[1]
        if tokens.shape[1] is not None and tokens.shape[1] != expected:
            raise ValueError(
                f"PositionEmbedding holds {expected} positions (a {self.grid_size[0]}x{self.grid_size[1]} "
                f"grid + {self.num_prefix_tokens}); found {tokens.shape[1]} tokens. Build the model at "
                f"the new image size and load the table with `set_table`, which resamples it."
            )
        return tokens + ops.cast(self.table, tokens.dtype)

    def resampled(self, grid_size):
        """The table resampled to `grid_size` (a NumPy array); the layer is unchanged."""
        return resample_position_table(
            keras.ops.convert_to_numpy(self.table), grid_size, self.grid_size, self.num_prefix_tokens
        )

    def set_table(self, table, grid_size=None):
        """Assign `table` (from a grid of `grid_size`, square if omitted), resampling it to this grid."""
        table = resample_position_table(table, self.grid_size, grid_size, self.num_prefix_tokens)
        if table.shape != tuple(self.table.shape):
            raise ValueError(
                f"table must have shape {tuple(self.table.shape)} after resampling; found {table.shape}."
            )
        self.table.assign(table)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            grid_size=self.grid_size,
            num_prefix_tokens=self.num_prefix_tokens,
            initializer=keras.initializers.serialize(self.initializer),
        )
        return config
