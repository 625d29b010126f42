"""`.npz` datasets holding x_train, y_train, x_test and y_test (as keras.datasets), loaded without pickle."""

import pathlib

import numpy as np

from vit_keras.data.messages import error_reason, file_kind

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_NPZ_FIX = "save it again with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...) of numeric arrays"


def _head(path, size=16):
    with open(path, "rb") as f:
        return f.read(size)


def npz_path(path):
    """The `.npz` file `path`, or the one `.npz` in folder `path`; a FileNotFoundError otherwise."""
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
        raise ValueError(f"npz file {path}: array {key} is damaged ({error_reason(error)}): {_NPZ_FIX}.") from error
    except Exception as error:  # zipfile.BadZipFile (bad CRC), zlib.error, EOFError, OSError
        raise ValueError(f"npz file {path}: array {key} is damaged ({error_reason(error)}): {_NPZ_FIX}.") from error


def load_npz(path):
    """((x_train, y_train), (x_test, y_test)) from an `.npz` with those keys (as keras.datasets).

    Args:
        path: the `.npz` file, or a folder holding exactly one.

    Raises:
        FileNotFoundError: no such file.
        ValueError: (one line, naming the file) it is empty, not an `.npz` archive, damaged, holds
            Python objects (it is loaded with `allow_pickle=False`) or lacks one of the four arrays.
    """
    path = npz_path(path)
    if path.stat().st_size == 0:
        raise ValueError(f"npz file {path} is empty (0 bytes): {_NPZ_FIX}.")
    head = _head(path)
    if not head.startswith(b"PK"):
        raise ValueError(f"npz file {path} is not an .npz (zip) archive: it looks like {file_kind(head)}: {_NPZ_FIX}.")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # zipfile.BadZipFile (truncated: no central directory), OSError, ...
        raise ValueError(f"npz file {path} is a damaged .npz archive ({error_reason(error)}): {_NPZ_FIX}.") from error
    with archive:
        missing = sorted(set(NPZ_KEYS) - set(archive.files))
        if missing:
            raise ValueError(
                f"npz file {path}: expected arrays x_train, y_train, x_test, y_test; "
                f"missing {missing} (found {sorted(archive.files)})."
            )
        arrays = {key: _npz_array(archive, key, path) for key in NPZ_KEYS}
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
