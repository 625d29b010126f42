"""`load_dataset`: a dataset spec -> `Splits`, every file checked first.

Dataset specs: "mnist-sample" (bundled), "mnist" (IDX files in `data_dir`, else TFDS),
"idx:PATH" (a folder of MNIST-style IDX files, `.gz` or raw, or of one `.npz`; also "npz:PATH"),
"folder:PATH" (class sub-folders of images), "tfds:NAME".
"""

import pathlib

from vit_keras.data.folders import load_image_folder
from vit_keras.data.idx import IDX_FILES, find_idx_file, idx_files, load_idx_folder
from vit_keras.data.npz import load_npz, npz_path
from vit_keras.data.splits import splits_from_arrays
from vit_keras.data.tfds import load_tfds

SAMPLE_PATH = pathlib.Path(__file__).resolve().parent.parent / "assets" / "mnist_sample.npz"
DATASET_KINDS = ("mnist-sample", "mnist", "idx:PATH", "npz:PATH", "folder:PATH", "tfds:NAME")


def _array_origins(kind, path):
    """{split: (images origin, labels origin)} naming the files of an IDX folder or `.npz` in messages."""
    if kind == "npz":
        return {split: (f"npz file {path}: x_{split}", f"npz file {path}: y_{split}") for split in ("train", "test")}
    return {split: (f"IDX file {images}", f"IDX file {labels}") for split, (images, labels) in idx_files(path).items()}


def _is_npz(kind, path):
    if path.suffix == ".npz" or kind == "npz":
        return True
    return path.is_dir() and any(path.glob("*.npz")) and not any(find_idx_file(path, s) for s in IDX_FILES["train"])


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
        if folder and folder.is_dir() and any(find_idx_file(folder, s) for s in IDX_FILES["train"]):
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
                *load_npz(path), **common, source=spec, origins=_array_origins("npz", npz_path(path))
            )
        return splits_from_arrays(*load_idx_folder(path), **common, source=spec, origins=_array_origins("idx", path))
    if kind == "folder" and arg:
        if image_size is None:
            raise ValueError(f"dataset {spec}: image folders need an image_size to decode at.")
        return load_image_folder(arg, image_size, skip_bad_images=skip_bad_images, **common)
    if kind == "tfds" and arg:
        return load_tfds(arg, data_dir=data_dir, **common)
    raise ValueError(f"dataset must be one of {list(DATASET_KINDS)}; found {spec!r}.")
