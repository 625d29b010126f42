"""Input scaling and normalisation as a layer at the front of the model.

The named normalisations are `vit_keras.architectures.NORMALIZATIONS`; inputs are raw
0-255 pixels, mapped to `(x / 255 - mean) / std` per channel by one `Rescaling` layer.

Example:

>>> import numpy as np
>>> layer = preprocessing_layer("symmetric", channels=3)
>>> [round(float(v), 3) for v in np.asarray(layer(np.array([[0.0, 127.5, 255.0]])))[0]]
[-1.0, 0.0, 1.0]
"""

import keras
import numpy as np

from vit_keras.architectures import NORMALIZATIONS

__all__ = ["NORMALIZATIONS", "normalization_stats", "preprocessing_layer"]


def _bad_spec(spec):
    return ValueError(
        f"preprocessing must be None, one of {sorted(NORMALIZATIONS)} or a "
        f"{{'mean': ..., 'std': ...}} dict; found {spec!r}."
    )


def normalization_stats(spec, channels):
    """The per-channel mean and standard deviation of a normalisation, in [0, 1] pixel units.

    Args:
        spec: a name in `NORMALIZATIONS`, or a {"mean": ..., "std": ...} dict of scalars or
            per-channel sequences.
        channels: the number of image channels.

    Returns:
        (mean, std): two float64 NumPy arrays of length `channels`.

    Raises:
        ValueError: for an unknown name, a malformed dict, or a std that is not positive.

    Example:

    >>> mean, std = normalization_stats("mnist", channels=1)
    >>> mean.tolist(), std.tolist()
    ([0.1307], [0.3081])
    """
    if isinstance(spec, str):
        if spec not in NORMALIZATIONS:
            raise _bad_spec(spec)
        mean, std = NORMALIZATIONS[spec]
    elif isinstance(spec, dict) and set(spec) == {"mean", "std"}:
        mean, std = spec["mean"], spec["std"]
    else:
        raise _bad_spec(spec)
    try:
        mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (channels,))
        std = np.broadcast_to(np.asarray(std, dtype=np.float64), (channels,))
    except (TypeError, ValueError):
        raise ValueError(
            f"preprocessing mean and std must be numbers or {channels} per-channel numbers; found {spec!r}."
        ) from None
    if np.any(std <= 0):
        raise ValueError(f"preprocessing std must be positive; found {std.tolist()}.")
    return mean, std


def preprocessing_layer(spec, channels, name="preprocessing", dtype=None):
    """A `keras.layers.Rescaling` layer mapping raw 0-255 pixels to `(x / 255 - mean) / std`.

    Args:
        spec: a name in `NORMALIZATIONS` or a {"mean": ..., "std": ...} dict (see
            `normalization_stats`).
        channels: the number of image channels (the last axis of the layer's input).
        name: the layer's name.
        dtype: the layer's dtype policy; None takes the global policy.

    Returns:
        A `Rescaling` layer (scalar scale and offset when they are the same for every channel).

    Raises:
        ValueError: for a bad `spec`, as `normalization_stats`.
    """
    mean, std = normalization_stats(spec, channels)
    scale, offset = 1.0 / (255.0 * std), -mean / std
    if channels == 1 or np.all(scale == scale[0]) and np.all(offset == offset[0]):
        scale, offset = float(scale[0]), float(offset[0])
    else:
        scale, offset = scale.tolist(), offset.tolist()
    return keras.layers.Rescaling(scale=scale, offset=offset, dtype=dtype, name=name)
