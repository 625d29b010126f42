"""Input pipelines for `model.fit`: datasets on disk or in TFDS -> batched `tf.data` pipelines.

`load_dataset(spec, ...)` reads a dataset into `Splits`: unbatched `tf.data.Dataset`s of
(raw pixels, integer label) for train, validation (carved from train, seeded) and test.
`make_pipeline(split, ...)` resizes, augments (Keras preprocessing layers), shuffles with a
seed, batches, caches and prefetches. Pixels stay raw 0-255 (float32): scaling and
normalisation belong to the model (`ViT(preprocessing=...)`).

Dataset specs: "mnist-sample" (bundled), "mnist" (IDX files in `data_dir`, else TFDS),
"idx:PATH" (a folder of MNIST-style IDX files, `.gz` or raw, or of one `.npz`; also "npz:PATH"),
"folder:PATH" (class sub-folders of images), "tfds:NAME".

Everything is checked before training starts: a truncated, empty, corrupt or mistyped IDX, `.npz`
or image file, labels that are not integers or fall outside the classes, a class without training
examples, fewer than two classes and an empty split each raise a one-line `ValueError` that names
the file (or split) and says what to do. Image folders are fully decoded with Pillow in a thread
pool (on a 2-core VM that was twice as fast as a parallel `tf.data` map of `tf.io.decode_image`)
and kept decoded when they fit in `IN_MEMORY_LIMIT_BYTES`, so training does not decode them again.
"""

import concurrent.futures
import dataclasses
import gzip
import io
import math
import pathlib
import socket
import urllib.parse
import zlib

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

SAMPLE_PATH = pathlib.Path(__file__).resolve().parent / "assets" / "mnist_sample.npz"
DATASET_KINDS = ("mnist-sample", "mnist", "idx:PATH", "npz:PATH", "folder:PATH", "tfds:NAME")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS  # Pillow's decompression-bomb limit (89.5 M pixels)
IN_MEMORY_LIMIT_BYTES = 2 * 1024**3  # image folders at most this big when decoded are kept decoded
DOWNLOAD_PROBE_TIMEOUT_S = 5.0
AUGMENTATIONS = ("none", "shift", "digits", "natural", "randaugment")
CACHE_LIMIT_BYTES = 2 * 1024**3
_FILE_KINDS = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip stream"),
    (b"\x93NUMPY", "a .npy array"),
    (b"\x00\x00\x08", "an IDX file"),
)
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
_IDX_FIX = "replace it with an intact copy (download it again)"
_NPZ_FIX = "save it again with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...) of numeric arrays"
_LOCAL_FILES = (
    "or train on local files: dataset 'mnist' with data_dir=a folder of the four MNIST IDX files, "
    "'idx:FOLDER', 'npz:FILE' or 'folder:FOLDER' (one sub-folder of images per class)"
)


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


# ----------------------------------------------------------------------------- messages


def _one_line(text, limit=240):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(error):
    return _one_line(f"{type(error).__name__}: {error}")


def _file_kind(head):
    """What a file that starts with the bytes `head` looks like, for error messages."""
    if not head:
        return "an empty file (0 bytes)"
    for signature, kind in _FILE_KINDS:
        if head.startswith(signature):
            return kind
    if all(32 <= b < 127 or b in b"\t\r\n" for b in head[:16]):
        return f"text ({head[:16].decode('ascii')!r})"
    return f"bytes {head[:8].hex(' ')}"


def _head(path, size=16):
    with open(path, "rb") as f:
        return f.read(size)


# ----------------------------------------------------------------------------- IDX and .npz files


def _idx_bytes(path):
    """The content of IDX file `path`, gunzipped when it is a gzip stream."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(
            f"IDX file {path} cannot be read ({_reason(error)}): check that it is a readable file."
        ) from error
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"IDX file {path} is a damaged gzip stream ({_reason(error)}): {_IDX_FIX}.") from error


def _idx_shape(data, path):
    """The shape that the header of IDX content `data` declares."""
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise ValueError(
            f"IDX file {path} has a corrupt header: expected the magic bytes 00 00 08 <ndim> of an IDX file; "
            f"found {_file_kind(data[:16])}: {_IDX_FIX}."
        )
    if data[2] != 0x08:
        raise ValueError(
            f"IDX file {path}: expected unsigned-byte data (type 0x08); found type 0x{data[2]:02x}: {_IDX_FIX}."
        )
    ndim = data[3]
    if not 1 <= ndim <= 4 or len(data) < 4 + 4 * ndim:
        raise ValueError(
            f"IDX file {path} has a corrupt header: {ndim} dimensions in a file of {len(data)} bytes: {_IDX_FIX}."
        )
    return tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))


def read_idx(path):
    """Read one IDX file (`.gz` or raw) into a uint8 array.

    Args:
        path: the IDX file (MNIST's format: magic 00 00 08 <ndim>, big-endian dims, unsigned bytes).

    Returns:
        A uint8 numpy array of the shape its header declares.

    Raises:
        ValueError: (one line, naming the file) when it is empty, not an IDX file, a damaged gzip
            stream, or holds more or fewer values than its header declares.
    """
    path = pathlib.Path(path)
    data = _idx_bytes(path)
    shape = _idx_shape(data, path)
    offset = 4 + 4 * len(shape)
    held, declared = len(data) - offset, math.prod(shape)
    if held != declared:
        raise ValueError(
            f"IDX file {path} is {'truncated' if held < declared else 'corrupt'}: its header declares shape "
            f"{shape} ({declared} values) but it holds {held} values: {_IDX_FIX}."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _find_file(folder, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _idx_files(folder):
    """{split: (images file, labels file)} of the MNIST-style IDX files in `folder`."""
    files = {}
    for split, stems in IDX_FILES.items():
        found = tuple(_find_file(folder, stem) for stem in stems)
        if None in found:
            listed = sorted(p.name for p in folder.iterdir())
            raise FileNotFoundError(
                f"IDX folder {folder}: expected {stems[0]}[.gz] and {stems[1]}[.gz]; found {listed or 'nothing'}."
            )
        files[split] = found
    return files


def load_idx_folder(folder):
    """((x_train, y_train), (x_test, y_test)) from MNIST-style IDX files in `folder`.

    Raises:
        FileNotFoundError: the folder or one of its four files is missing.
        ValueError: (one line, naming the file) a file is damaged or images and labels disagree.
    """
    folder = _existing_folder(folder, "data_dir")
    pairs = []
    for image_file, label_file in _idx_files(folder).values():
        pairs.append(
            _check_pair(read_idx(image_file), read_idx(label_file), f"IDX file {image_file}", f"IDX file {label_file}")
        )
    return tuple(pairs)


def _npz_path(path):
    path = pathlib.Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if len(files) != 1:
            raise FileNotFoundError(f"npz folder {path}: expected exactly one .npz file; found {len(files)}.")
        path = files[0]
    if not path.is_file():
        raise FileNotFoundError(f"npz file {path} does not exist.")
    return path


def _npz_array(archive, key, path):
    try:
        return archive[key]
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ValueError(
                f"npz file {path}: array {key} holds Python objects, which are not loaded (allow_pickle=False): "
                f"{_NPZ_FIX}."
            ) from error
        raise ValueError(f"npz file {path}: array {key} is damaged ({_reason(error)}): {_NPZ_FIX}.") from error
    except Exception as error:  # zipfile.BadZipFile (bad CRC), zlib.error, EOFError, OSError
        raise ValueError(f"npz file {path}: array {key} is damaged ({_reason(error)}): {_NPZ_FIX}.") from error


def load_npz(path):
    """((x_train, y_train), (x_test, y_test)) from an `.npz` with those keys (as keras.datasets).

    Args:
        path: the `.npz` file, or a folder holding exactly one.

    Raises:
        FileNotFoundError: no such file.
        ValueError: (one line, naming the file) it is empty, not an `.npz` archive, damaged, holds
            Python objects (it is loaded with `allow_pickle=False`) or lacks one of the four arrays.
    """
    path = _npz_path(path)
    if path.stat().st_size == 0:
        raise ValueError(f"npz file {path} is empty (0 bytes): {_NPZ_FIX}.")
    head = _head(path)
    if not head.startswith(b"PK"):
        raise ValueError(f"npz file {path} is not an .npz (zip) archive: it looks like {_file_kind(head)}: {_NPZ_FIX}.")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # zipfile.BadZipFile (truncated: no central directory), OSError, ...
        raise ValueError(f"npz file {path} is a damaged .npz archive ({_reason(error)}): {_NPZ_FIX}.") from error
    with archive:
        missing = sorted(set(NPZ_KEYS) - set(archive.files))
        if missing:
            raise ValueError(
                f"npz file {path}: expected arrays x_train, y_train, x_test, y_test; "
                f"missing {missing} (found {sorted(archive.files)})."
            )
        arrays = {key: _npz_array(archive, key, path) for key in NPZ_KEYS}
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _existing_folder(folder, argument):
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{argument}: folder {folder} does not exist.")
    return folder


# ----------------------------------------------------------------------------- array checks


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


def _check_pair(images, labels, image_origin, label_origin):
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


def _check_classes(labels_by_origin, class_names=None):
    """The number of classes of the labels {origin: int32 labels}, the first being the train split's.

    Raises a one-line ValueError for a label outside `class_names`, fewer than two classes or a
    class without training examples.
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
        num_classes = int(max(labels.max() for labels in labels_by_origin.values())) + 1
    if num_classes < 2:
        raise ValueError(
            f"{train_origin}: a classifier needs at least two classes; every label is 0 ({len(train_labels)} examples)."
        )
    missing = np.flatnonzero(np.bincount(train_labels, minlength=num_classes) == 0)
    if missing.size:
        which = f"class {_class_text(missing, class_names)} of classes 0..{num_classes - 1} has"
        if missing.size > 1:
            which = f"classes {_class_text(missing, class_names)} of classes 0..{num_classes - 1} have"
        raise ValueError(
            f"{train_origin}: {which} no training examples: add examples, or number the classes 0..K-1 without gaps."
        )
    return num_classes


# ----------------------------------------------------------------------------- splits


def validation_split(num_examples, fraction, seed):
    """(train indices, validation indices): a seeded random `fraction` held out for validation."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1); found {fraction!r}.")
    order = np.random.default_rng(seed).permutation(num_examples)
    held = int(round(num_examples * fraction))
    return np.sort(order[held:]), np.sort(order[:held])


def _carve_validation(num_examples, fraction, seed, origin):
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
            images, labels = _check_pair(pair[0], pair[1], *names)
            checked[split] = (images[..., None] if images.ndim == 3 else images, labels, names[1])
    x_train, y_train, train_origin = checked["train"]
    if "test" in checked and x_train.shape[1:] != checked["test"][0].shape[1:]:
        raise ValueError(
            f"{source}: train and test images differ in shape: {x_train.shape[1:]} vs {checked['test'][0].shape[1:]}."
        )
    num_classes = _check_classes({origin: labels for _, labels, origin in checked.values()}, class_names)
    keep, held = _carve_validation(len(x_train), val_fraction, seed, train_origin)
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


# ----------------------------------------------------------------------------- image folders


def _image_pixels(image, channels):
    """uint8 pixels (H, W, channels) of a loaded Pillow image; channels None: 1 if it is grayscale, else 3."""
    if image.mode.startswith("I;16"):  # 16-bit grayscale: keep the high byte, as libpng's strip_16
        image = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8))
    channels = channels or (1 if image.mode in _GRAY_MODES else 3)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    pixels = np.asarray(image if image.mode == mode else image.convert(mode))
    return pixels.reshape(pixels.shape[0], pixels.shape[1], channels)


def _resize(pixels, size):
    """uint8 `pixels` resized (bilinear, as serving does) to `size` (height, width), rounded."""
    if pixels.shape[:2] == tuple(size):
        return pixels
    return tf.cast(tf.round(tf.image.resize(pixels, size, method="bilinear")), tf.uint8).numpy()


def decode_image_file(path, channels=None):
    """uint8 pixels (H, W, C) of an image file, fully decoded (Pillow).

    Args:
        path: a PNG, JPEG, GIF (first frame) or BMP file.
        channels: 1 (grayscale), 3 (RGB; alpha dropped) or 4 (RGBA); None: 1 for grayscale images, else 3.

    Raises:
        ValueError: (one line, without the file name) why the file is not a whole image: empty, another
            kind of file, a header declaring 0 or more than `MAX_IMAGE_PIXELS` pixels, damaged pixel data.
    """
    try:
        data = pathlib.Path(path).read_bytes()  # one read: Pillow reads a file in many small ones
    except OSError as error:
        raise ValueError(f"it cannot be read ({_reason(error)})") from error
    if not data:
        raise ValueError("the file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise ValueError(f"its header declares too many pixels ({_one_line(error)})") from error
    except Exception as error:  # UnidentifiedImageError, SyntaxError (bad chunk), OSError
        raise ValueError(f"it is not a PNG, JPEG, GIF or BMP image (it looks like {_file_kind(data[:16])})") from error
    with image:
        width, height = image.size
        if not 0 < width * height <= MAX_IMAGE_PIXELS:
            raise ValueError(
                f"its header declares {width} x {height} pixels (allowed: 1 to {MAX_IMAGE_PIXELS:,}): "
                "a corrupt header or a decompression bomb"
            )
        try:
            image.load()
            return _image_pixels(image, channels)
        except Exception as error:  # OSError "image file is truncated", "broken data stream", ...
            raise ValueError(f"its pixel data is damaged ({_reason(error)})") from error


def _decode_one(path, channels, size, keep):
    """(pixels or None, grayscale?, reason or None) of one file; pixels resized to `size` when `keep`."""
    try:
        pixels = decode_image_file(path, channels)
    except ValueError as error:
        return None, None, str(error)
    return (_resize(pixels, size) if keep else None), pixels.shape[-1] == 1, None


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
    folder = _existing_folder(path, "dataset folder")
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
    keep, held = _carve_validation(len(train.files), val_fraction, seed, f"image folder {train_dir}")
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


# ----------------------------------------------------------------------------- TFDS


def _tfds_builder(name, data_dir):
    """(tensorflow_datasets, the builder of dataset `name`)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ValueError(
            f"dataset tfds:{name} needs TensorFlow Datasets, which fails to import "
            f"({_reason(error)}): pip install tensorflow-datasets."
        ) from error
    try:
        return tfds, tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError as error:
        raise ValueError(
            f"dataset tfds:{name} is not a known TFDS dataset ({_reason(error)}); the names are listed at "
            "https://www.tensorflow.org/datasets/catalog/overview."
        ) from error


def _download_failed(name, data_dir, what, step="downloading it"):
    where = data_dir or "TFDS's default data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    return ValueError(
        f"dataset tfds:{name} is not in {where} and {step} failed: {what}. No internet? Run "
        f"`tfds build {name}` on a machine with internet and copy its data folder to data_dir, {_LOCAL_FILES}."
    )


def _check_download_reachable(name, builder, data_dir):
    """When `builder` must download, fail at once (one line) if a host it downloads from cannot be reached.

    TFDS itself retries an unreachable URL for minutes before failing.
    """
    if builder.is_prepared():
        return
    hosts = {}
    for url in builder.url_infos or {}:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname:
            hosts.setdefault(parts.hostname, parts.port or {"http": 80, "ftp": 21}.get(parts.scheme, 443))
    for host, port in list(hosts.items())[:3]:
        try:
            socket.create_connection((host, port), timeout=DOWNLOAD_PROBE_TIMEOUT_S).close()
        except OSError as error:
            raise _download_failed(name, data_dir, f"{host}:{port} cannot be reached ({_reason(error)})") from error


def _load_tfds_splits(tfds, builder, name, data_dir):
    """(train dataset, test dataset or None) of `builder`, downloaded and prepared when needed."""
    _check_download_reachable(name, builder, data_dir)
    prepared = builder.is_prepared()
    splits = list(builder.info.splits.keys()) or ["train", "test"]
    test_split = next((s for s in ("test", "validation") if s in splits), None)
    try:
        datasets = tfds.load(
            name,
            split=["train"] + ([test_split] if test_split else []),
            as_supervised=True,
            data_dir=data_dir,
            shuffle_files=False,
        )
    except ImportError:
        raise
    except Exception as error:  # requests.ConnectionError, tfds DownloadError, NonMatchingChecksumError, ...
        if not prepared:
            raise _download_failed(name, data_dir, _reason(error), "downloading or preparing it") from error
        raise ValueError(
            f"dataset tfds:{name} in {builder.data_dir} cannot be read ({_reason(error)}): delete that folder "
            "and load it again."
        ) from error
    return datasets[0], (datasets[1] if test_split else None)


def load_tfds(name, data_dir=None, val_fraction=0.1, seed=0):
    """`Splits` from a TFDS dataset (`tfds.load`); validation is a seeded fraction of train.

    Raises:
        ValueError: (one line) an unknown name, TFDS failing to import a module, a dataset that is
            not in `data_dir` and cannot be downloaded (an unreachable host fails within
            `DOWNLOAD_PROBE_TIMEOUT_S`), a prepared copy that cannot be read.
    """
    try:
        tfds, builder = _tfds_builder(name, data_dir)
        train_all, test = _load_tfds_splits(tfds, builder, name, data_dir)
    except ImportError as error:  # e.g. tensorflow-datasets 4.9.10 needs importlib_resources, undeclared
        raise ValueError(
            f"dataset tfds:{name}: TensorFlow Datasets fails to import a module it needs "
            f"({_reason(error)}): pip install {error.name or 'it'}."
        ) from error
    info = builder.info
    num_train = int(train_all.cardinality())
    if num_train < 0:
        num_train = int(train_all.reduce(0, lambda n, _: n + 1))
    keep, held = _carve_validation(num_train, val_fraction, seed, f"dataset tfds:{name} train split")
    held_mask = np.zeros(num_train, dtype=bool)
    held_mask[held] = True
    held_table = tf.constant(held_mask)
    indexed = train_all.enumerate()

    def select(in_validation):
        def wanted(index, example):
            return tf.equal(held_table[index], in_validation)

        def example_only(index, example):
            return example

        return indexed.filter(wanted).map(example_only)

    label_feature = info.features[info.supervised_keys[1]]
    image_shape = tuple(info.features[info.supervised_keys[0]].shape)

    def labels_int32(ds):
        return None if ds is None else ds.map(lambda x, y: (x, tf.cast(y, tf.int32)))

    return Splits(
        train=labels_int32(select(False)),
        validation=labels_int32(select(True)) if len(held) else None,
        test=labels_int32(test),
        image_shape=image_shape,
        num_classes=int(label_feature.num_classes),
        class_names=list(label_feature.names),
        sizes={
            "train": len(keep),
            "validation": len(held),
            "test": int(test.cardinality()) if test is not None else None,
        },
        source=f"tfds:{name}",
    )


# ----------------------------------------------------------------------------- load_dataset


def _array_origins(kind, path):
    """{split: (images origin, labels origin)} naming the files of an IDX folder or `.npz` in messages."""
    if kind == "npz":
        return {split: (f"npz file {path}: x_{split}", f"npz file {path}: y_{split}") for split in ("train", "test")}
    return {split: (f"IDX file {images}", f"IDX file {labels}") for split, (images, labels) in _idx_files(path).items()}


def _is_npz(kind, path):
    if path.suffix == ".npz" or kind == "npz":
        return True
    return path.is_dir() and any(path.glob("*.npz")) and not any(_find_file(path, s) for s in IDX_FILES["train"])


def load_dataset(spec, data_dir=None, image_size=None, val_fraction=0.1, seed=0, skip_bad_images=False):
    """Read dataset `spec` (see the module docstring) into `Splits`, checking every file first.

    Args:
        spec: "mnist-sample", "mnist", "idx:PATH", "npz:PATH", "folder:PATH" or "tfds:NAME".
        data_dir: where "mnist" looks for IDX files (else TFDS) and TFDS's data folder.
        image_size: the size that image folders are decoded at (they have no native size).
        val_fraction: the fraction of the train split held out for validation (seeded by `seed`).
        skip_bad_images: image folders only: skip files that do not fully decode (listed in
            `Splits.skipped`) instead of raising.

    Raises:
        FileNotFoundError: a missing file or folder.
        ValueError: (one line, naming the file) see `read_idx`, `load_npz`, `splits_from_arrays`,
            `load_image_folder` and `load_tfds`.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"dataset must be one of {list(DATASET_KINDS)}; found {spec!r}.")
    kind, _, arg = spec.partition(":")
    common = dict(val_fraction=val_fraction, seed=seed)
    if kind == "mnist-sample" and not arg:
        return splits_from_arrays(
            *load_npz(SAMPLE_PATH), **common, source="mnist-sample", origins=_array_origins("npz", SAMPLE_PATH)
        )
    if kind == "mnist" and not arg:
        folder = pathlib.Path(data_dir) if data_dir else None
        if folder and folder.is_dir() and any(_find_file(folder, s) for s in IDX_FILES["train"]):
            return splits_from_arrays(
                *load_idx_folder(folder), **common, source=f"mnist:{data_dir}", origins=_array_origins("idx", folder)
            )
        return load_tfds("mnist", data_dir=data_dir, **common)
    if kind in ("idx", "npz") and arg:
        path = pathlib.Path(arg)
        if not path.exists():
            raise FileNotFoundError(f"dataset {spec}: {path} does not exist.")
        if _is_npz(kind, path):
            return splits_from_arrays(
                *load_npz(path), **common, source=spec, origins=_array_origins("npz", _npz_path(path))
            )
        return splits_from_arrays(*load_idx_folder(path), **common, source=spec, origins=_array_origins("idx", path))
    if kind == "folder" and arg:
        if image_size is None:
            raise ValueError(f"dataset {spec}: image folders need an image_size to decode at.")
        return load_image_folder(arg, image_size, skip_bad_images=skip_bad_images, **common)
    if kind == "tfds" and arg:
        return load_tfds(arg, data_dir=data_dir, **common)
    raise ValueError(f"dataset must be one of {list(DATASET_KINDS)}; found {spec!r}.")


# ----------------------------------------------------------------------------- pipelines


def augmentation_layers(kind, image_size, seed=0, channels=3):
    """Keras preprocessing layers for augmentation `kind` (applied to raw-pixel batches)."""
    if kind not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {list(AUGMENTATIONS)}; found {kind!r}.")
    height, width = image_size
    if kind == "none":
        return []
    if kind == "shift":  # whole-pixel shifts of up to 1/14 of the side (2 px on 28x28), like a padded random crop
        return [
            keras.layers.RandomTranslation(1 / 14, 1 / 14, fill_mode="constant", interpolation="nearest", seed=seed)
        ]
    if kind == "digits":  # small affine jitter; digits are not flipped. Only the rotation
        # interpolates: three bilinear resamplings in a row blur the strokes (pixel std -12%),
        # a train/test mismatch that costs accuracy.
        return [
            keras.layers.RandomRotation(10 / 360, fill_mode="constant", seed=seed),
            keras.layers.RandomZoom(0.1, fill_mode="constant", interpolation="nearest", seed=seed + 1),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", interpolation="nearest", seed=seed + 2),
        ]
    pad = max(1, height // 8), max(1, width // 8)  # crop a jittered window of a padded image
    layers = [
        keras.layers.Resizing(height + 2 * pad[0], width + 2 * pad[1]),
        keras.layers.RandomCrop(height, width, seed=seed),
        keras.layers.RandomFlip("horizontal", seed=seed + 1),
    ]
    if kind == "randaugment" and channels == 3:
        layers.append(keras.layers.RandAugment(value_range=(0, 255), seed=seed + 2))
    return layers


def make_pipeline(
    dataset,
    image_size,
    batch_size,
    num_classes,
    training=False,
    augment="none",
    mixup=0.0,
    cutmix=0.0,
    seed=0,
    cache=True,
    shuffle_buffer=20_000,
    drop_remainder=False,
):
    """Batched (float32 raw pixels, one-hot float32 labels) for `model.fit` / `evaluate`.

    Resizes to `image_size` (height, width); when `training`, shuffles with `seed`
    (reshuffled each epoch, same order for the same seed), augments with `augment` and
    mixes with MixUp (`mixup` = alpha) or CutMix (`cutmix` = alpha) when > 0.
    """
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer; found {batch_size!r}.")
    height, width = image_size
    channels = dataset.element_spec[0].shape[-1]

    def prepare(image, label):
        image = tf.cast(image, tf.float32)
        if image.shape.rank == 2:
            image = image[..., None]
        if image.shape[0] != height or image.shape[1] != width:
            image = tf.image.resize(image, (height, width))
        return image, tf.one_hot(label, num_classes)

    ds = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        layers = augmentation_layers(augment, (height, width), seed, channels or 3)
        mixers = []
        if mixup > 0:
            mixers.append(keras.layers.MixUp(alpha=mixup, seed=seed + 3))
        if cutmix > 0:
            mixers.append(keras.layers.CutMix(factor=cutmix, seed=seed + 4))

        def apply(images, labels):
            for layer in layers:
                images = layer(images, training=True)
            for mixer in mixers:
                mixed = mixer({"images": images, "labels": labels}, training=True)
                images, labels = mixed["images"], mixed["labels"]
            return images, labels

        if layers or mixers:
            ds = ds.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.with_options(fixed_parallelism_options()).prefetch(1)


def fixed_parallelism_options():
    """tf.data options without autotuning: parallel maps use one thread per core.

    Autotuning sizes the input pipeline as if the cores were idle; while the training step
    uses them it takes cores from the step (BENCHMARKS.md, "tf.data autotuning").
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def pipelines(splits, image_size, batch_size, augment="none", mixup=0.0, cutmix=0.0, seed=0, cache=None):
    """(train, validation, test) pipelines of `splits` (validation/test None when absent)."""
    if cache is None:
        count = sum(n or 0 for n in splits.sizes.values())
        cache = count * image_size[0] * image_size[1] * (splits.image_shape[-1] or 3) * 4 <= CACHE_LIMIT_BYTES
    common = dict(image_size=image_size, batch_size=batch_size, num_classes=splits.num_classes, cache=cache)
    train = make_pipeline(splits.train, training=True, augment=augment, mixup=mixup, cutmix=cutmix, seed=seed, **common)
    val = make_pipeline(splits.validation, **common) if splits.validation is not None else None
    test = make_pipeline(splits.test, **common) if splits.test is not None else None
    return train, val, test


def default_augmentation(channels):
    """ "shift" for single-channel images (digits), "natural" for colour images."""
    return "shift" if channels == 1 else "natural"


__all__ = [
    "DATASET_KINDS",
    "SAMPLE_PATH",
    "Splits",
    "augmentation_layers",
    "decode_image_file",
    "default_augmentation",
    "fixed_parallelism_options",
    "load_dataset",
    "load_idx_folder",
    "load_image_folder",
    "load_npz",
    "load_tfds",
    "make_pipeline",
    "pipelines",
    "read_idx",
    "splits_from_arrays",
    "validation_split",
]
