"""Argument checks shared by the layers and the model builder.

Each check returns the value it accepts (normalised where noted) and otherwise raises a
one-line `ValueError` that names the argument, what was expected and what was found.

Example:

>>> from vit_keras.validation import check_positive, check_rate
>>> check_positive("patch_size", 16)
16
>>> check_rate("dropout", 0)
0.0
>>> check_positive("patch_size", 0)
Traceback (most recent call last):
    ...
ValueError: patch_size must be a positive integer; found 0.
"""


def check_positive(name, value):
    """Check that `value` is a positive integer (not a bool).

    Args:
        name: the argument's name, for the error message.
        value: the value to check.

    Returns:
        `value`.

    Raises:
        ValueError: if `value` is not a positive int.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer; found {value!r}.")
    return value


def check_positive_number(name, value):
    """Check that `value` is a positive int or float (not a bool).

    Args:
        name: the argument's name, for the error message.
        value: the value to check.

    Returns:
        `value`.

    Raises:
        ValueError: if `value` is not a number greater than 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number; found {value!r}.")
    return value


def check_rate(name, value):
    """Check that `value` is a rate: a number in [0, 1).

    Args:
        name: the argument's name, for the error message.
        value: the value to check.

    Returns:
        `value` as a float.

    Raises:
        ValueError: if `value` is not a number in [0, 1).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1); found {value!r}.")
    return float(value)


def check_choice(name, value, choices):
    """Check that `value` is one of `choices`.

    Args:
        name: the argument's name, for the error message.
        value: the value to check.
        choices: the accepted values.

    Returns:
        `value`.

    Raises:
        ValueError: if `value` is not in `choices`.
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; found {value!r}.")
    return value


def check_optional(check, name, value):
    """Apply `check` to `value` unless it is None.

    Args:
        check: a check of this module, called as `check(name, value)`.
        name: the argument's name, for the error message.
        value: None, or the value to check.

    Returns:
        None, or what `check` returns.
    """
    return None if value is None else check(name, value)


def check_divisible(name, value, divisor_name, divisor):
    """Check that `value` (an int, or a tuple of ints checked side by side) is a multiple of `divisor`.

    Args:
        name: the argument's name, for the error message.
        value: an int or a tuple of ints.
        divisor_name: the name of the argument that gives `divisor`.
        divisor: a positive int.

    Returns:
        `value`.

    Raises:
        ValueError: if a side of `value` is not divisible by `divisor`.
    """
    sides = value if isinstance(value, tuple) else (value,)
    if any(side % divisor for side in sides):
        raise ValueError(f"{name} must be divisible by {divisor_name}={divisor}; found {name}={value}.")
    return value


def image_hw(name, value):
    """Normalise an image size to a (height, width) pair.

    Args:
        name: the argument's name, for the error message.
        value: an int (a square) or a (height, width) pair of ints.

    Returns:
        A tuple of two positive ints.

    Raises:
        ValueError: if `value` is neither, or a side is not a positive integer.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be an int or a (height, width) pair; found {value!r}.")
    return tuple(check_positive(name, v) for v in value)


def check_patchable_images(layer, shape, patch_size):
    """Check that `shape` is a channels-last image batch that cuts into whole patches.

    Args:
        layer: the checking layer's class name, for the error message.
        shape: the batch shape, (batch, height, width, channels); unknown sizes are None.
        patch_size: the side of the square patches.

    Raises:
        ValueError: if `shape` is not of rank 4, or a known height or width is not a
            multiple of `patch_size`.
    """
    if len(shape) != 4:
        raise ValueError(
            f"{layer} expects images of rank 4 (batch, height, width, channels); found shape {tuple(shape)}."
        )
    for axis, size in (("height", shape[1]), ("width", shape[2])):
        if size is not None and size % patch_size:
            raise ValueError(f"image {axis} must be divisible by patch_size={patch_size}; found {axis} {size}.")
