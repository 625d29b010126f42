"""Input pipelines for `model.fit`: datasets on disk or in TFDS -> batched `tf.data` pipelines.

`load_dataset(spec, ...)` reads a dataset into `Splits`: unbatched `tf.data.Dataset`s of
(raw pixels, integer label) for train, validation (carved from train, seeded) and test.
`make_pipeline(split, ...)` resizes, augments (Keras preprocessing layers), shuffles with a
seed, batches, caches and prefetches. Pixels stay raw 0-255 (float32): scaling and
normalisation belong to the model (`ViT(preprocessing=...)`).

Dataset specs: "mnist-sample" (bundled), "mnist" (IDX files in `data_dir`, else TFDS),
"idx:PATH" (a folder of MNIST-style IDX files, `.gz` or raw, or of one `.npz`; also "npz:PATH"),
"folder:PATH" (class sub-folders of images), "tfds:NAME".
"""

import dataclasses
import gzip
import pathlib

import keras
import numpy as np
import tensorflow as tf

SAMPLE_PATH = pathlib.Path(__file__).resolve().parent / "assets" / "mnist_sample.npz"
DATASET_KINDS = ("mnist-sample", "mnist", "idx:PATH", "npz:PATH", "folder:PATH", "tfds:NAME")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
AUGMENTATIONS = ("none", "shift", "digits", "natural", "randaugment")
CACHE_LIMIT_BYTES = 2 * 1024**3


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


# ----------------------------------------------------------------------------- readers


def _open_maybe_gzip(path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path):
    """Read one IDX file (`.gz` or raw) into a uint8 array; a bad header raises ValueError."""
    path = pathlib.Path(path)
    try:
        with _open_maybe_gzip(path) as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"IDX file {path} cannot be read: {error}") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"IDX file {path} has a corrupt header: expected magic bytes 00 00 <type> <ndim>; "
            f"found {data[:4].hex(' ') or 'an empty file'}."
        )
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise ValueError(
            f"IDX file {path}: expected unsigned-byte data (type 0x08); found type 0x{dtype_code:02x}."
        )
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise ValueError(f"IDX file {path} has a corrupt header: {ndim} dimensions, {len(data)} bytes.")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(
            f"IDX file {path} is corrupt: its header declares shape {shape} "
            f"({int(np.prod(shape))} values) but it holds {body.size} values."
        )
    return body.reshape(shape)


def _find_file(folder, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _check_pair(images, labels, where):
    if images.ndim not in (3, 4):
        raise ValueError(f"{where}: expected images of shape (N, H, W) or (N, H, W, C); found {images.shape}.")
    if labels.ndim != 1:
        raise ValueError(f"{where}: expected labels of shape (N,); found {labels.shape}.")
    if len(images) != len(labels):
        raise ValueError(
            f"{where}: the label count does not match the image count: "
            f"{len(labels)} labels for {len(images)} images."
        )
    if len(images) == 0:
        raise ValueError(f"{where}: no examples found.")
    images = images[..., None] if images.ndim == 3 else images
    return images, labels.astype(np.int32)


def load_idx_folder(folder):
    """((x_train, y_train), (x_test, y_test)) from MNIST-style IDX files in `folder`."""
    folder = _existing_folder(folder, "data_dir")
    pairs = []
    for split, (image_stem, label_stem) in IDX_FILES.items():
        image_file, label_file = _find_file(folder, image_stem), _find_file(folder, label_stem)
        if image_file is None or label_file is None:
            found = sorted(p.name for p in folder.iterdir())
            raise FileNotFoundError(
                f"IDX folder {folder}: expected {image_stem}[.gz] and {label_stem}[.gz]; "
                f"found {found or 'nothing'}."
            )
        images, labels = _check_pair(read_idx(image_file), read_idx(label_file), f"IDX {split} split in {folder}")
        pairs.append((images[..., 0], labels))
    return tuple(pairs)


def load_npz(path):
    """((x_train, y_train), (x_test, y_test)) from an `.npz` with those keys (as keras.datasets)."""
    path = pathlib.Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if len(files) != 1:
            raise FileNotFoundError(f"npz folder {path}: expected exactly one .npz file; found {len(files)}.")
        path = files[0]
    if not path.is_file():
        raise FileNotFoundError(f"npz file {path} does not exist.")
    try:
        with np.load(path) as arrays:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays.files)
            if missing:
                raise ValueError(
                    f"npz file {path}: expected arrays x_train, y_train, x_test, y_test; "
                    f"missing {sorted(missing)} (found {sorted(arrays.files)})."
                )
            return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
    except (OSError, EOFError, ValueError) as error:
        if "expected arrays" in str(error):
            raise
        raise ValueError(f"npz file {path} cannot be read: {error}") from error


def _existing_folder(folder, argument):
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{argument}: folder {folder} does not exist.")
    return folder


# ----------------------------------------------------------------------------- splits


def validation_split(num_examples, fraction, seed):
    """(train indices, validation indices): a seeded random `fraction` held out for validation."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1); found {fraction!r}.")
    order = np.random.default_rng(seed).permutation(num_examples)
    held = int(round(num_examples * fraction))
    return np.sort(order[held:]), np.sort(order[:held])


def splits_from_arrays(train, test, val_fraction=0.1, seed=0, source="arrays", class_names=None):
    """`Splits` from (x, y) numpy pairs; validation is a seeded fraction of train."""
    x_train, y_train = _check_pair(np.asarray(train[0]), np.asarray(train[1]), f"{source} train split")
    x_test, y_test = _check_pair(np.asarray(test[0]), np.asarray(test[1]), f"{source} test split")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"{source}: train and test images differ in shape: {x_train.shape[1:]} vs {x_test.shape[1:]}."
        )
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    if min(y_train.min(), y_test.min()) < 0:
        raise ValueError(f"{source}: labels must be non-negative integers; found {min(y_train.min(), y_test.min())}.")
    keep, held = validation_split(len(x_train), val_fraction, seed)

    def dataset(x, y):
        return tf.data.Dataset.from_tensor_slices((x, y))

    return Splits(
        train=dataset(x_train[keep], y_train[keep]),
        validation=dataset(x_train[held], y_train[held]) if len(held) else None,
        test=dataset(x_test, y_test),
        image_shape=tuple(int(d) for d in x_train.shape[1:]),
        num_classes=num_classes,
        class_names=list(class_names or [str(i) for i in range(num_classes)]),
        sizes={"train": len(keep), "validation": len(held), "test": len(x_test)},
        source=source,
    )


def _check_image_files(folder):
    """Class names of an image folder; raise on a missing/empty folder or an undecodable file."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"image folder {folder}: expected one sub-folder of images per class; found none.")
    count = 0
    for name in classes:
        for file in sorted((folder / name).rglob("*")):
            if file.suffix.lower() not in IMAGE_EXTENSIONS or not file.is_file():
                continue
            with open(file, "rb") as f:
                head = f.read(8)
            if not head.startswith(_IMAGE_SIGNATURES):
                raise ValueError(
                    f"image file {file} cannot be decoded: expected a PNG, JPEG, GIF or BMP image; "
                    f"found bytes {head.hex(' ') or '(empty file)'}."
                )
            count += 1
    if count == 0:
        raise ValueError(
            f"image folder {folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in class "
            f"sub-folders {classes}."
        )
    return classes


def _first_image_channels(folder):
    for file in sorted(folder.rglob("*")):
        if file.suffix.lower() in IMAGE_EXTENSIONS and file.is_file():
            return int(tf.io.decode_image(tf.io.read_file(str(file)), expand_animations=False).shape[-1])
    return 3


def load_image_folder(path, image_size, val_fraction=0.1, seed=0, channels=None):
    """`Splits` from class sub-folders of images (`keras.utils.image_dataset_from_directory`).

    If `path` holds `train/` and `test/` (or `val/`, `validation/`) folders those are the
    splits; otherwise all of `path` is train (validation carved from it) and there is no test.
    """
    folder = _existing_folder(path, "dataset folder")
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    train_dir = folder / "train" if (folder / "train").is_dir() else folder
    test_dir = next((folder / n for n in ("test", "validation", "val") if (folder / n).is_dir()), None)
    if train_dir == folder:
        test_dir = None
    class_names = _check_image_files(train_dir)
    if test_dir is not None:
        test_classes = _check_image_files(test_dir)
        if test_classes != class_names:
            raise ValueError(
                f"image folder {folder}: test classes {test_classes} differ from train classes {class_names}."
            )
    channels = channels or _first_image_channels(train_dir)
    color_mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels, "rgb")
    options = dict(
        labels="inferred", label_mode="int", class_names=class_names, color_mode=color_mode,
        batch_size=None, image_size=(height, width), seed=seed, verbose=False,
    )
    if val_fraction > 0:
        train, validation = keras.utils.image_dataset_from_directory(
            str(train_dir), validation_split=val_fraction, subset="both", **options
        )
    else:
        train, validation = keras.utils.image_dataset_from_directory(str(train_dir), shuffle=False, **options), None
    test = (
        keras.utils.image_dataset_from_directory(str(test_dir), shuffle=False, **options)
        if test_dir is not None else None
    )

    def labels_int32(ds):
        return None if ds is None else ds.map(lambda x, y: (x, tf.cast(y, tf.int32)))

    def size(ds):
        return None if ds is None else int(ds.cardinality())

    return Splits(
        train=labels_int32(train), validation=labels_int32(validation), test=labels_int32(test),
        image_shape=(height, width, {"grayscale": 1, "rgb": 3, "rgba": 4}[color_mode]),
        num_classes=len(class_names), class_names=class_names,
        sizes={"train": size(train), "validation": size(validation), "test": size(test)},
        source=f"folder:{folder}",
    )


def load_tfds(name, data_dir=None, val_fraction=0.1, seed=0):
    """`Splits` from a TFDS dataset (`tfds.load`); validation is a seeded fraction of train."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises DatasetNotFoundError and friends
        raise ValueError(f"dataset tfds:{name} is not a known TFDS dataset: {error}") from error
    info = builder.info
    splits = list(info.splits.keys()) or ["train", "test"]
    test_split = next((s for s in ("test", "validation") if s in splits), None)
    try:
        datasets = tfds.load(
            name, split=["train"] + ([test_split] if test_split else []), as_supervised=True,
            data_dir=data_dir, shuffle_files=False,
        )
    except Exception as error:  # no local copy and the download failed (offline, ...)
        raise ValueError(
            f"dataset tfds:{name} could not be loaded from data_dir={data_dir!r} nor downloaded: "
            f"{type(error).__name__}: {str(error)[:300]}"
        ) from error
    train_all, test = datasets[0], (datasets[1] if test_split else None)
    num_train = int(train_all.cardinality())
    if num_train < 0:
        num_train = int(train_all.reduce(0, lambda n, _: n + 1))
    keep, held = validation_split(num_train, val_fraction, seed)
    held_mask = np.zeros(num_train, dtype=bool)
    held_mask[held] = True
    held_table = tf.constant(held_mask)
    indexed = train_all.enumerate()

    def select(in_validation):
        return indexed.filter(lambda i, xy: tf.equal(held_table[i], in_validation)).map(lambda i, xy: xy)

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
        sizes={"train": len(keep), "validation": len(held),
               "test": int(test.cardinality()) if test is not None else None},
        source=f"tfds:{name}",
    )


def load_dataset(spec, data_dir=None, image_size=None, val_fraction=0.1, seed=0):
    """Read dataset `spec` (see the module docstring) into `Splits`.

    `data_dir`: where "mnist" looks for IDX files (else TFDS) and TFDS's data folder.
    `image_size`: the size that image folders are decoded at (they have no native size).
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"dataset must be one of {list(DATASET_KINDS)}; found {spec!r}.")
    kind, _, arg = spec.partition(":")
    if kind == "mnist-sample" and not arg:
        return splits_from_arrays(*load_npz(SAMPLE_PATH), val_fraction, seed, source="mnist-sample")
    if kind == "mnist" and not arg:
        if data_dir and pathlib.Path(data_dir).is_dir() and any(
            _find_file(pathlib.Path(data_dir), s) for s in IDX_FILES["train"]
        ):
            return splits_from_arrays(*load_idx_folder(data_dir), val_fraction, seed, source=f"mnist:{data_dir}")
        return load_tfds("mnist", data_dir=data_dir, val_fraction=val_fraction, seed=seed)
    if kind in ("idx", "npz") and arg:
        path = pathlib.Path(arg)
        if not path.exists():
            raise FileNotFoundError(f"dataset {spec}: {path} does not exist.")
        if path.suffix == ".npz" or kind == "npz" or (path.is_dir() and any(path.glob("*.npz"))
                                                       and not any(_find_file(path, s) for s in IDX_FILES["train"])):
            return splits_from_arrays(*load_npz(path), val_fraction, seed, source=spec)
        return splits_from_arrays(*load_idx_folder(path), val_fraction, seed, source=spec)
    if kind == "folder" and arg:
        if image_size is None:
            raise ValueError(f"dataset {spec}: image folders need an image_size to decode at.")
        return load_image_folder(arg, image_size, val_fraction, seed)
    if kind == "tfds" and arg:
        return load_tfds(arg, data_dir=data_dir, val_fraction=val_fraction, seed=seed)
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
        return [keras.layers.RandomTranslation(1 / 14, 1 / 14, fill_mode="constant", interpolation="nearest", seed=seed)]
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
    """"digits" for single-channel images, "natural" for colour images."""
    return "digits" if channels == 1 else "natural"


__all__ = [
    "DATASET_KINDS", "SAMPLE_PATH", "Splits", "augmentation_layers", "default_augmentation",
    "fixed_parallelism_options", "load_dataset", "load_idx_folder", "load_image_folder", "load_npz", "load_tfds",
    "make_pipeline", "pipelines", "read_idx", "splits_from_arrays", "validation_split",
]
