"""MNIST-style IDX files (`.gz` or raw): `read_idx` reads one, `load_idx_folder` a folder of four."""

import gzip
import math
import pathlib
import zlib

import numpy as np

from vit_keras.data.checks import check_pair, existing_folder
from vit_keras.data.messages import error_reason, file_kind

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_FIX = "replace it with an intact copy (download it again)"


def _idx_bytes(path):
    """The content of IDX file `path`, gunzipped when it is a gzip stream."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(
            f"IDX file {path} cannot be read ({error_reason(error)}): check that it is a readable file."
        ) from error
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"IDX file {path} is a damaged gzip stream ({error_reason(error)}): {_IDX_FIX}.") from error


def _idx_shape(data, path):
    """The shape that the header of IDX content `data` declares."""
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise ValueError(
            f"IDX file {path} has a corrupt header: expected the magic bytes 00 00 08 <ndim> of an IDX file; "
            f"found {file_kind(data[:16])}: {_IDX_FIX}."
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


def find_idx_file(folder, stem):
    """The file of `folder` named `stem` (or ".idx" for "-idx"), raw or `.gz`; None when there is none."""
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def idx_files(folder):
    """{split: (images file, labels file)} of the MNIST-style IDX files in `folder`."""
    files = {}
    for split, stems in IDX_FILES.items():
        found = tuple(find_idx_file(folder, stem) for stem in stems)
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
    folder = existing_folder(folder, "data_dir")
    pairs = []
    for image_file, label_file in idx_files(folder).values():
        pairs.append(
            check_pair(read_idx(image_file), read_idx(label_file), f"IDX file {image_file}", f"IDX file {label_file}")
        )
    return tuple(pairs)
