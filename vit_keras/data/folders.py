"""Datasets of class sub-folders of images (optionally under train/ and test/), decoded before training.

Every image is fully decoded with Pillow in a thread pool (on a 2-core VM that was twice as fast as
a parallel `tf.data` map of `tf.io.decode_image`) and kept decoded when the folder fits in
`IN_MEMORY_LIMIT_BYTES`, so training does not decode it again.
"""

import concurrent.futures
import dataclasses

import numpy as np
import tensorflow as tf

from vit_keras.data.checks import existing_folder
from vit_keras.data.images import decode_image_file, resize_pixels
from vit_keras.data.splits import Splits, carve_validation

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
IN_MEMORY_LIMIT_BYTES = 2 * 1024**3  # image folders at most this big when decoded are kept decoded


def _decode_one(path, channels, size, keep):
    """(pixels or None, grayscale?, reason or None) of one file; pixels resized to `size` when `keep`."""
    try:
        pixels = decode_image_file(path, channels)
    except ValueError as error:
        return None, None, str(error)
    return (resize_pixels(pixels, size) if keep else None), pixels.shape[-1] == 1, None


def _decode_files(files, channels, size, keep):
    """Decode `files` in a thread pool: (pixels list, grayscale flags, {file: reason} of the bad ones)."""
    with concurrent.futures.ThreadPoolExecutor() as pool:
        results = list(pool.map(lambda file: _decode_one(file, channels, size, keep), files))
    bad = {file: reason for file, (_, _, reason) in zip(files, results) if reason is not None}
    return [r[0] for r in results], [r[1] for r in results], bad


def _bad_image_error(bad, total, root):
    (first, reason), *others = sorted(bad.items())
    if others:
        reason += f" ({len(others)} more of {total} files cannot be decoded, e.g. {others[0][0].relative_to(root)})"
    return ValueError(
        f"image file {first} cannot be decoded: {reason}. Fix or delete it, or skip undecodable files "
        "with skip_bad_images=True (vit-keras train --skip-bad-images)."
    )


def _list_images(split_dir):
    """(class names, image files, int32 labels) of the class sub-folders of `split_dir` (hidden files ignored)."""
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"image folder {split_dir}: expected one sub-folder of images per class; found none.")
    files, labels = [], []
    for index, name in enumerate(classes):
        found = sorted(
            p
            for p in (split_dir / name).rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
        )
        files += found
        labels += [index] * len(found)
    if not files:
        raise ValueError(
            f"image folder {split_dir}: no images ({', '.join(IMAGE_EXTENSIONS)}) in class sub-folders {classes}."
        )
    return classes, files, np.asarray(labels, dtype=np.int32)


def _check_folder_classes(split_dir, class_names, labels, skipped):
    """Raise a one-line ValueError naming a class sub-folder of `split_dir` that has no (decodable) images."""
    empty = np.flatnonzero(np.bincount(labels, minlength=len(class_names)) == 0)
    if len(class_names) < 2:
        raise ValueError(
            f"image folder {split_dir}: a classifier needs at least two class sub-folders; found {class_names}."
        )
    if empty.size:
        folders = ", ".join(str(split_dir / class_names[i]) for i in empty[:3])
        why = f" after skipping {len(skipped)} undecodable files" if skipped else ""
        raise ValueError(
            f"image folder {split_dir}: class sub-folder {folders} has no images{why} "
            f"({', '.join(IMAGE_EXTENSIONS)}): add images or remove the sub-folder."
        )


@dataclasses.dataclass
class _FolderSplit:
    """The image files of one split of an image folder and what decoding them gave."""

    files: list
    labels: np.ndarray
    pixels: list = None
    gray: list = None


def _split_dirs(folder):
    """(train folder, test folder or None): `folder`'s train/ and test/ (or val/, validation/), else all of it."""
    if not (folder / "train").is_dir():
        return folder, None
    test_dir = next((folder / n for n in ("test", "validation", "val") if (folder / n).is_dir()), None)
    return folder / "train", test_dir


def _decode_folder(folder, splits, size, channels, skip_bad_images):
    """Decode every file of `splits` ({name: _FolderSplit}) of `folder`; drop the bad ones if `skip_bad_images`.

    Returns (channels, kept in memory?, skipped files).
    """
    files = [f for part in splits.values() for f in part.files]
    keep = len(files) * size[0] * size[1] * (channels or 3) <= IN_MEMORY_LIMIT_BYTES
    pixels, gray, bad = _decode_files(files, channels, size, keep)
    if bad and not skip_bad_images:
        raise _bad_image_error(bad, len(files), folder)
    start = 0
    for part in splits.values():
        stop = start + len(part.files)
        good = [i for i in range(len(part.files)) if part.files[i] not in bad]
        part.pixels, part.gray = [pixels[start + i] for i in good], [gray[start + i] for i in good]
        part.files, part.labels = [part.files[i] for i in good], part.labels[good]
        start = stop
    channels = channels or (1 if all(g for part in splits.values() for g in part.gray) else 3)
    return channels, keep, sorted(str(f) for f in bad)


def _in_memory_dataset(part, indices, channels):
    pixels = [part.pixels[i] for i in indices]
    images = np.stack([p if p.shape[-1] == channels else np.repeat(p, channels, axis=-1) for p in pixels])
    return tf.data.Dataset.from_tensor_slices((images, part.labels[indices]))


def _file_dataset(part, indices, channels, size):
    """Images decoded from their files while training (folders too big to keep decoded)."""

    def decode(path):
        return decode_image_file(path.decode(), channels)

    def load(path, label):
        image = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
        image.set_shape((None, None, channels))
        return tf.cast(tf.round(tf.image.resize(image, size, method="bilinear")), tf.uint8), label

    files = [str(part.files[i]) for i in indices]
    dataset = tf.data.Dataset.from_tensor_slices((files, part.labels[indices]))
    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def _image_hw(image_size):
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size or ())
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"image_size must be a positive int or (height, width); found {image_size!r}.")
    return tuple(int(s) for s in size)


def load_image_folder(path, image_size, val_fraction=0.1, seed=0, channels=None, skip_bad_images=False):
    """`Splits` from class sub-folders of images, every image fully decoded before this returns.

    If `path` holds `train/` and `test/` (or `val/`, `validation/`) folders those are the
    splits; otherwise all of `path` is train (validation carved from it) and there is no test.
    Images are resized (bilinear) to `image_size`; when they all fit in `IN_MEMORY_LIMIT_BYTES`
    they are kept decoded, otherwise training decodes them again from the files. The train
    order is shuffled once with `seed` (class folders are read one after another).

    Args:
        path: the dataset folder.
        image_size: int or (height, width) that the images are resized to.
        val_fraction: the fraction of the train images held out for validation (seeded).
        channels: 1, 3 or 4; None: 1 when every image is grayscale, else 3 (grayscale images are
            replicated into RGB, alpha channels dropped).
        skip_bad_images: skip files that do not fully decode (listed in `Splits.skipped`)
            instead of raising.

    Raises:
        FileNotFoundError: `path` is not a folder.
        ValueError: (one line, naming the file or folder) a file that does not fully decode (unless
            `skip_bad_images`), no class sub-folders, fewer than two classes, a class without images,
            test classes that differ from the train classes.
    """
    folder = existing_folder(path, "dataset folder")
    size = _image_hw(image_size)
    if channels not in (None, 1, 3, 4):
        raise ValueError(f"channels must be 1, 3, 4 or None (as the images are); found {channels!r}.")
    train_dir, test_dir = _split_dirs(folder)
    class_names, files, labels = _list_images(train_dir)
    splits = {"train": _FolderSplit(files, labels)}
    if test_dir is not None:
        test_classes, files, labels = _list_images(test_dir)
        if test_classes != class_names:
            raise ValueError(
                f"image folder {folder}: test classes {test_classes} differ from train classes {class_names}."
            )
        splits["test"] = _FolderSplit(files, labels)
    channels, in_memory, skipped = _decode_folder(folder, splits, size, channels, skip_bad_images)
    _check_folder_classes(train_dir, class_names, splits["train"].labels, skipped)
    if test_dir is not None and not splits["test"].files:
        raise ValueError(f"image folder {test_dir}: no decodable test images are left after skipping {len(skipped)}.")

    def dataset(part, indices):
        if in_memory:
            return _in_memory_dataset(part, indices, channels)
        return _file_dataset(part, indices, channels, size)

    train = splits["train"]
    keep, held = carve_validation(len(train.files), val_fraction, seed, f"image folder {train_dir}")
    keep = np.random.default_rng(seed).permutation(keep)
    test = splits.get("test")
    return Splits(
        train=dataset(train, keep),
        validation=dataset(train, held) if len(held) else None,
        test=dataset(test, np.arange(len(test.files))) if test else None,
        image_shape=size + (channels,),
        num_classes=len(class_names),
        class_names=class_names,
        sizes={"train": len(keep), "validation": len(held), "test": len(test.files) if test else None},
        source=f"folder:{folder}",
        skipped=skipped,
    )
