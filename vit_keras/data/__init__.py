"""Input pipelines for `model.fit`: datasets on disk or in TFDS -> batched `tf.data` pipelines.

`load_dataset(spec, ...)` reads a dataset into `Splits`: unbatched `tf.data.Dataset`s of
(raw pixels, integer label) for train, validation (carved from train, seeded) and test.
`make_pipeline(split, ...)` resizes, augments (Keras preprocessing layers), shuffles with a
seed, batches, caches and prefetches. Pixels stay raw 0-255 (float32): scaling and
normalisation belong to the model (`ViT(preprocessing=...)`).

Everything is checked before training starts: a truncated, empty, corrupt or mistyped IDX, `.npz`
or image file, labels that are not integers or fall outside the classes, a class without training
examples, fewer than two classes and an empty split each raise a one-line `ValueError` that names
the file (or split) and says what to do.

Modules (each name below is re-exported here):
    loading: `load_dataset` (the dataset specs, `DATASET_KINDS`) and the bundled `SAMPLE_PATH`.
    splits: `Splits`, `validation_split`, `splits_from_arrays`.
    idx: MNIST-style IDX files (`read_idx`, `load_idx_folder`).
    npz: `.npz` datasets (`load_npz`).
    folders: class sub-folders of images (`load_image_folder`).
    images: one image file decoded with Pillow (`decode_image_file`).
    tfds: TensorFlow Datasets (`load_tfds`), with a fast download-reachability probe.
    checks: image, label and class checks of arrays (one-line errors).
    messages: one-line error text and file-kind sniffing.
    pipeline: `make_pipeline`, `pipelines`, `training_epochs` (`TrainingEpochs`), `evaluation_pipelines`,
        `augmentation_layers`, `default_augmentation`, `fixed_parallelism_options`.
"""

from vit_keras.data.folders import load_image_folder
from vit_keras.data.idx import load_idx_folder, read_idx
from vit_keras.data.images import decode_image_file
from vit_keras.data.loading import DATASET_KINDS, SAMPLE_PATH, load_dataset
from vit_keras.data.npz import load_npz
from vit_keras.data.pipeline import (
    TrainingEpochs,
    augmentation_layers,
    default_augmentation,
    evaluation_pipelines,
    fixed_parallelism_options,
    make_pipeline,
    pipelines,
    training_epochs,
)
from vit_keras.data.splits import Splits, splits_from_arrays, validation_split
from vit_keras.data.tfds import load_tfds

__all__ = [
    "DATASET_KINDS",
    "SAMPLE_PATH",
    "Splits",
    "TrainingEpochs",
    "augmentation_layers",
    "decode_image_file",
    "default_augmentation",
    "evaluation_pipelines",
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
    "training_epochs",
    "validation_split",
]
