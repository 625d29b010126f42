"""`Splits` (a dataset's unbatched train, validation and test datasets) and the seeded validation split."""

import dataclasses

import numpy as np
import tensorflow as tf

from vit_keras.data.checks import check_classes, check_pair


@dataclasses.dataclass
class Splits:
    """A dataset's splits as unbatched `tf.data.Dataset`s of (image HWC, int32 label)."""

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    test: tf.data.Dataset | None
    image_shape: tuple  # (height, width, channels); height/width None when sizes vary
    num_classes: int
    class_names: list
    sizes: dict  # split name -> number of examples (None when unknown)
    source: str
    skipped: list = dataclasses.field(default_factory=list)  # image files skipped as undecodable


def validation_split(num_examples, fraction, seed):
    """(train indices, validation indices): a seeded random `fraction` held out for validation."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1); found {fraction!r}.")
    order = np.random.default_rng(seed).permutation(num_examples)
    held = int(round(num_examples * fraction))
    return np.sort(order[held:]), np.sort(order[:held])


def carve_validation(num_examples, fraction, seed, origin):
    """`validation_split`, with a one-line ValueError naming `origin` when no training example is left."""
    keep, held = validation_split(num_examples, fraction, seed)
    if not len(keep):
        raise ValueError(
            f"{origin}: validation fraction {fraction} of {num_examples} examples leaves none to train on: "
            "lower the validation fraction or add examples."
        )
    return keep, held


def splits_from_arrays(train, test, val_fraction=0.1, seed=0, source="arrays", class_names=None, origins=None):
    """`Splits` from (x, y) numpy pairs; validation is a seeded fraction of train.

    Args:
        train: (images (N, H, W) or (N, H, W, C) of raw 0-255 pixels, integer labels (N,)).
        test: the same for the test split, or None.
        val_fraction: the fraction of train held out for validation (seeded by `seed`).
        source: the dataset's name in `Splits.source` and in error messages.
        class_names: the names of classes 0..K-1 (default: "0".."K-1" with K = the largest label + 1).
        origins: {split: (images origin, labels origin)}: what error messages call each array.

    Raises:
        ValueError: (one line, naming the array) an empty split, images that are not raw pixels,
            labels that are not integers >= 0 or outside `class_names`, fewer than two classes,
            a class without training examples, train and test images of different shapes.
    """
    origins = origins or {}
    checked = {}
    for split, pair in (("train", train), ("test", test)):
        if pair is not None:
            names = origins.get(split, (f"{source} {split} images", f"{source} {split} labels"))
            images, labels = check_pair(pair[0], pair[1], *names)
            checked[split] = (images[..., None] if images.ndim == 3 else images, labels, names[1])
    x_train, y_train, train_origin = checked["train"]
    if "test" in checked and x_train.shape[1:] != checked["test"][0].shape[1:]:
        raise ValueError(
            f"{source}: train and test images differ in shape: {x_train.shape[1:]} vs {checked['test'][0].shape[1:]}."
        )
    num_classes = check_classes({origin: labels for _, labels, origin in checked.values()}, class_names)
    keep, held = carve_validation(len(x_train), val_fraction, seed, train_origin)
    x_test, y_test = checked["test"][:2] if "test" in checked else (None, None)

    def dataset(x, y):
        return tf.data.Dataset.from_tensor_slices((x, y))

    return Splits(
        train=dataset(x_train[keep], y_train[keep]),
        validation=dataset(x_train[held], y_train[held]) if len(held) else None,
        test=dataset(x_test, y_test) if x_test is not None else None,
        image_shape=tuple(int(d) for d in x_train.shape[1:]),
        num_classes=num_classes,
        class_names=list(class_names or [str(i) for i in range(num_classes)]),
        sizes={"train": len(keep), "validation": len(held), "test": len(x_test) if x_test is not None else None},
        source=source,
    )
