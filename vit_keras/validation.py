"""Argument checks shared by the layers and the model builder."""


def check_positive(name, value):
    """Return `value` if it is a positive integer, else raise a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer; found {value!r}.")
    return value


def check_rate(name, value):
    """Return `value` if it is a float in [0, 1), else raise a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1); found {value!r}.")
    return float(value)


def check_choice(name, value, choices):
    """Return `value` if it is one of `choices`, else raise a ValueError naming `name`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; found {value!r}.")
    return value


def image_hw(name, value):
    """Normalise an int or (height, width) pair to a tuple of two positive ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be an int or a (height, width) pair; found {value!r}.")
    return tuple(check_positive(name, v) for v in value)


def check_patchable_images(layer, shape, patch_size):
    """Raise unless `shape` is (batch, H, W, C) with H and W divisible by `patch_size`."""
    if len(shape) != 4:
        raise ValueError(
            f"{layer} expects images of rank 4 (batch, height, width, channels); found shape {tuple(shape)}."
        )
    for axis, size in (("height", shape[1]), ("width", shape[2])):
        if size is not None and size % patch_size:
            raise ValueError(f"image {axis} must be divisible by patch_size={patch_size}; found {axis} {size}.")
