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
    """Resample the grid part of a position table to another patch grid.

    Bilinear, no antialiasing, align_corners=False (the numbers timm produces); the prefix
    rows (the class token's position) are kept as they are.

    Args:
        table: a (1, prefix + H * W, D) or (prefix + H * W, D) array.
        new_grid: the (rows, columns) grid to resample to.
        old_grid: the (H, W) grid the table holds; the square grid of its token count if None.
        num_prefix_tokens: leading rows that are not on the grid.

    Returns:
        A float32 NumPy array of shape (1, prefix + rows * columns, D).

    Raises:
        ValueError: if the table's shape does not fit `old_grid` (or, without it, is not square).

    Example:

    >>> import numpy as np
    >>> table = np.zeros((1, 1 + 4 * 4, 8), "float32")
    >>> resample_position_table(table, (6, 6)).shape
    (1, 37, 8)
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
            raise ValueError(f"old_grid must be given for a table of {grid.shape[0]} grid tokens (not a square).")
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
    """Add a learnable position table to a token sequence.

    The table is a (1, prefix + H * W, D) weight named `table`; `set_table` loads a table
    from another grid (e.g. a checkpoint trained at another image size), resampling it.

    Args:
        grid_size: (H, W) patch grid; inferred as square from the token count if None.
        num_prefix_tokens: leading tokens (the class token) that are not on the grid.
        initializer: initializer of the table; normal with stddev 0.02 if None.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        tokens: a (batch, prefix + H * W, D) tensor.

    Returns:
        `tokens` plus the table, of the same shape.

    Raises:
        ValueError: if the token count does not fit the grid (on build), or differs from the
            one the layer was built for (on call).

    Example:

    >>> import numpy as np
    >>> layer = PositionEmbedding(grid_size=(4, 4))
    >>> tuple(layer(np.zeros((2, 17, 8), "float32")).shape)
    (2, 17, 8)
    >>> layer.resampled((6, 6)).shape
    (1, 37, 8)
    """

    def __init__(self, grid_size=None, num_prefix_tokens=1, initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = None if grid_size is None else tuple(int(g) for g in grid_size)
        self.num_prefix_tokens = int(num_prefix_tokens)
        self.initializer = keras.initializers.get(initializer or keras.initializers.RandomNormal(stddev=0.02))

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
                raise ValueError(f"grid_size must be given for {num_grid} grid tokens (not a square number).")
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
        """The table resampled to another grid; the layer is unchanged.

        Args:
            grid_size: the (rows, columns) grid to resample to.

        Returns:
            A float32 NumPy array of shape (1, prefix + rows * columns, D).
        """
        return resample_position_table(
            keras.ops.convert_to_numpy(self.table), grid_size, self.grid_size, self.num_prefix_tokens
        )

    def set_table(self, table, grid_size=None):
        """Assign a position table from another grid, resampled to this layer's grid.

        Args:
            table: a (1, prefix + h * w, D) or (prefix + h * w, D) array.
            grid_size: the (h, w) grid of `table`; the square grid of its token count if None.

        Raises:
            ValueError: if `table` does not fit `grid_size` or has another width D.
        """
        table = resample_position_table(table, self.grid_size, grid_size, self.num_prefix_tokens)
        if table.shape != tuple(self.table.shape):
            raise ValueError(f"table must have shape {tuple(self.table.shape)} after resampling; found {table.shape}.")
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
