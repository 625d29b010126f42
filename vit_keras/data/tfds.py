"""TensorFlow Datasets (`tfds:NAME`): loaded into `Splits`; an unreachable download host fails fast."""

import socket
import urllib.parse

import numpy as np
import tensorflow as tf

from vit_keras.data.messages import error_reason
from vit_keras.data.splits import Splits, carve_validation

DOWNLOAD_PROBE_TIMEOUT_S = 5.0
_LOCAL_FILES = (
    "or train on local files: dataset 'mnist' with data_dir=a folder of the four MNIST IDX files, "
    "'idx:FOLDER', 'npz:FILE' or 'folder:FOLDER' (one sub-folder of images per class)"
)


def _tfds_builder(name, data_dir):
    """(tensorflow_datasets, the builder of dataset `name`)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ValueError(
            f"dataset tfds:{name} needs TensorFlow Datasets, which fails to import "
            f"({error_reason(error)}): pip install tensorflow-datasets."
        ) from error
    try:
        return tfds, tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError as error:
        raise ValueError(
            f"dataset tfds:{name} is not a known TFDS dataset ({error_reason(error)}); the names are listed at "
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
            raise _download_failed(
                name, data_dir, f"{host}:{port} cannot be reached ({error_reason(error)})"
            ) from error


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
            raise _download_failed(name, data_dir, error_reason(error), "downloading or preparing it") from error
        raise ValueError(
            f"dataset tfds:{name} in {builder.data_dir} cannot be read ({error_reason(error)}): delete that folder "
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
            f"({error_reason(error)}): pip install {error.name or 'it'}."
        ) from error
    info = builder.info
    num_train = int(train_all.cardinality())
    if num_train < 0:
        num_train = int(train_all.reduce(0, lambda n, _: n + 1))
    keep, held = carve_validation(num_train, val_fraction, seed, f"dataset tfds:{name} train split")
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
