"""Input scaling and normalisation as a layer at the front of the model."""

import keras
import numpy as np

# name -> (mean, std) in [0, 1] pixel units; inputs are raw 0-255 pixels.
NORMALIZATIONS = {
    "unit": (0.0, 1.0),  # x / 255
    "symmetric": (0.5, 0.5),  # x / 127.5 - 1, Google's ViT checkpoints
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # timm's default
    "mnist": (0.1307, 0.3081),
}


def normalization_stats(spec, channels):
    """(mean, std) arrays of length `channels` for a preprocessing name or {"mean", "std"} dict."""
    if isinstance(spec, str):
        if spec not in NORMALIZATIONS:
            raise ValueError(
                f"preprocessing must be None, one of {sorted(NORMALIZATIONS)} or a "
                f"{{'mean': ..., 'std': ...}} dict; found {spec!r}."
            )
        mean, std = NORMALIZATIONS[spec]
    elif isinstance(spec, dict) and set(spec) == {"mean", "std"}:
        mean, std = spec["mean"], spec["std"]
    else:
        raise ValueError(
            f"preprocessing must be None, one of {sorted(NORMALIZATIONS)} or a "
            f"{{'mean': ..., 'std': ...}} dict; found {spec!r}."
        )
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (channels,))
    std = np.broadcast_to(np.asarray(std, dtype=np.float64), (channels,))
    if np.any(std <= 0):
        raise ValueError(f"preprocessing std must be positive; found {std.tolist()}.")
    return mean, std


def preprocessing_layer(spec, channels, name="preprocessing"):
    """A `Rescaling` layer mapping raw 0-255 pixels to (x / 255 - mean) / std per channel."""
    mean, std = normalization_stats(spec, channels)
    scale, offset = 1.0 / (255.0 * std), -mean / std
    if channels == 1 or np.all(scale == scale[0]) and np.all(offset == offset[0]):
        scale, offset = float(scale[0]), float(offset[0])
    else:
        scale, offset = scale.tolist(), offset.tolist()
    return keras.layers.Rescaling(scale=scale, offset=offset, name=name)
