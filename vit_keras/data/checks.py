"""Checks of dataset arrays and folders that raise one-line errors naming the array or folder.

Images must be raw 0-255 pixels of shape (N, H, W) or (N, H, W, C), labels integer class indices,
and the train split must hold every class; `check_classes` counts the classes.
"""

import pathlib

import numpy as np


def existing_folder(folder, argument):
    """`folder` as a `pathlib.Path`; a FileNotFoundError naming `argument` when it is not a folder."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{argument}: folder {folder} does not exist.")
    return folder


def _check_images(images, origin):
    """`images` as uint8 (integers) or float32 after checking dtype, shape and the 0-255 pixel range."""
    images = np.asarray(images)
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(f"{origin}: expected numeric pixel values; found dtype {images.dtype}: store uint8 pixels.")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
        raise ValueError(
            f"{origin}: expected images of shape (N, H, W) or (N, H, W, C) with C in 1, 3, 4 (channels last); "
            f"found shape {images.shape}."
        )
    if len(images) == 0:
        raise ValueError(f"{origin}: no examples found (shape {images.shape}).")
    if images.dtype == np.uint8:
        return images
    low, high = float(np.min(images)), float(np.max(images))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{origin}: holds NaN or infinite pixel values: store raw 0-255 pixels.")
    if low < 0 or high > 255:
        raise ValueError(
            f"{origin}: expected raw pixels in [0, 255]; found values in [{low:g}, {high:g}]: "
            "give unnormalised pixels (the model normalises them)."
        )
    if np.issubdtype(images.dtype, np.floating) and high <= 1.0:
        raise ValueError(
            f"{origin}: pixel values lie in [{low:g}, {high:g}], images scaled to [0, 1]; "
            "the model expects raw 0-255 pixels: multiply them by 255."
        )
    return images.astype(np.uint8 if np.issubdtype(images.dtype, np.integer) else np.float32)


def _check_labels(labels, origin):
    """`labels` as int32 class indices (shape (N,) or (N, 1)) after checking they are integers >= 0."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:  # e.g. keras.datasets.cifar10
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"{origin}: expected one integer class index per example, shape (N,); found shape {labels.shape} "
            "(one-hot labels? give their argmax)."
        )
    if np.issubdtype(labels.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
        if bad.size:
            raise ValueError(
                f"{origin}: labels must be integer class indices; found {labels[bad[0]].item()!r} at index "
                f"{bad[0]} ({bad.size} non-integer labels)."
            )
    elif not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(
            f"{origin}: labels must be integer class indices; found dtype {labels.dtype}"
            f"{f' (first: {labels[0]!r})' if labels.size else ''}: map each class to an integer 0..K-1."
        )
    if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.int32).max):
        index = int(np.argmin(labels)) if labels.min() < 0 else int(np.argmax(labels))
        raise ValueError(
            f"{origin}: labels must be class indices 0..K-1; found {labels[index].item()!r} at index {index}."
        )
    return labels.astype(np.int32)


def check_pair(images, labels, image_origin, label_origin):
    """(images, int32 labels) after `_check_images`, `_check_labels` and matching counts."""
    images, labels = _check_images(images, image_origin), _check_labels(labels, label_origin)
    if len(images) != len(labels):
        raise ValueError(
            f"{label_origin}: the label count does not match the image count of {image_origin}: "
            f"{len(labels)} labels for {len(images)} images."
        )
    return images, labels


def _class_text(indices, class_names):
    shown = ", ".join(f"{i} ({class_names[i]!r})" if class_names else str(i) for i in indices[:5])
    return shown + (f" and {len(indices) - 5} more" if len(indices) > 5 else "")


def _check_within_training_classes(labels_by_origin, num_classes):
    """Raise a one-line ValueError naming a non-train split whose labels go past the train labels' classes."""
    (train_origin, _), *others = labels_by_origin.items()
    for origin, labels in others:
        beyond = np.flatnonzero(labels >= num_classes)
        if beyond.size:
            index = int(beyond[0])
            raise ValueError(
                f"{origin}: label {labels[index]} at index {index} is outside the classes 0..{num_classes - 1} of "
                f"the training labels ({train_origin}; {beyond.size} such labels): a classifier cannot learn a "
                "class without training examples."
            )


def check_classes(labels_by_origin, class_names=None):
    """The number of classes of the labels {origin: int32 labels}, the first being the train split's.

    Raises a one-line ValueError for a label outside `class_names`, a label of another split beyond
    the train split's largest, fewer than two classes or a class without training examples.
    """
    (train_origin, train_labels), *_ = labels_by_origin.items()
    if class_names is not None:
        num_classes = len(class_names)
        for origin, labels in labels_by_origin.items():
            if labels.max() >= num_classes:
                index = int(np.argmax(labels))
                raise ValueError(
                    f"{origin}: label {labels[index]} at index {index} is outside the class range 0..{num_classes - 1} "
                    f"of the {num_classes} class names."
                )
    else:
        num_classes = int(train_labels.max()) + 1
    if num_classes < 2:
        raise ValueError(
            f"{train_origin}: a classifier needs at least two classes; every label is 0 ({len(train_labels)} examples)."
        )
    if class_names is None:
        _check_within_training_classes(labels_by_origin, num_classes)
    missing = np.flatnonzero(np.bincount(train_labels, minlength=num_classes) == 0)
    if missing.size:
        which = f"class {_class_text(missing, class_names)} of classes 0..{num_classes - 1} has"
        if missing.size > 1:
            which = f"classes {_class_text(missing, class_names)} of classes 0..{num_classes - 1} have"
        raise ValueError(
            f"{train_origin}: {which} no training examples: add examples, or number the classes 0..K-1 without gaps."
        )
    return num_classes
