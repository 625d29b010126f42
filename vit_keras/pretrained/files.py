"""Read checkpoint files (`.npz`, `.safetensors`, `.pth`/`.bin`) into {key: NumPy array} dicts.

The container is recognised from the file's first bytes, not its name, and every array is
read in full here, so a truncated or corrupt file fails before anything is loaded into a model.
A sharded Hugging Face checkpoint (`model.safetensors.index.json` or `pytorch_model.bin.index.json`
and the shard files its `weight_map` names) is read as one dict, every shard checked first.
"""

import hashlib
import json
import pathlib
import pickle
import re
import struct
import zipfile

import numpy as np

# Files looked for, in this order, when a checkpoint path is a directory (a Hugging Face
# snapshot or a timm/Hub download).
DIRECTORY_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "open_clip_pytorch_model.bin",
)
# The name ending of a sharded checkpoint's index (transformers' `save_pretrained(max_shard_size=...)`).
INDEX_SUFFIX = ".index.json"

# Keys under which training scripts nest a model's state dict in a `.pth` file.
_STATE_DICT_WRAPPERS = ("state_dict", "model", "model_state", "model_state_dict", "module")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or whose contents do not fit the model."""


def sha256_of(path):
    """The hex sha256 digest of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def checked_sha256(sha256):
    """`sha256` as 64 lower-case hex digits (None stays None); a ValueError for anything else."""
    if sha256 is None:
        return None
    digest = str(sha256).strip().lower()
    if not _SHA256.match(digest):
        raise ValueError(f"sha256 must be 64 hexadecimal digits (a SHA-256 digest); found {sha256!r:.80}.")
    return digest


def check_sha256(path, expected):
    """Raise a CheckpointError if the file's sha256 is not `expected` (a hex string)."""
    if is_shard_index(path):
        raise CheckpointError(
            f"sha256= verifies one file; {path} is the index of a sharded checkpoint (several files): "
            "check each shard's digest instead."
        )
    expected = checked_sha256(expected)
    found = sha256_of(path)
    if found != expected:
        raise CheckpointError(
            f"sha256 of {path} does not match: expected {expected}, found {found}. "
            "The file is corrupt, incomplete or not the one asked for."
        )


def checkpoint_file(path):
    """The checkpoint file at `path`; for a directory, the first of `DIRECTORY_FILES` in it."""
    path = pathlib.Path(path).expanduser()
    if path.is_dir():
        for name in DIRECTORY_FILES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(
            f"checkpoint directory {path} holds none of {list(DIRECTORY_FILES)}; "
            f"found {sorted(p.name for p in path.iterdir())[:10]}."
        )
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    return path


_SIGNATURES = (  # leading bytes of files that are often mistaken for, or saved as, checkpoints
    (b"\x89HDF", "an HDF5 file (a Keras .h5 / .weights.h5 file? load it with keras instead)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive (unpack it first)"),
    (b"version https://git-lfs", "a Git LFS pointer, not the weights (run `git lfs pull`)"),
    (b"<!doctype html", "an HTML page (a failed download? fetch the file again)"),
    (b"<html", "an HTML page (a failed download? fetch the file again)"),
    (b"{", "a JSON text file"),
)
REMEDY = "delete it and download or save it again"


def one_line(text, limit=200):
    """`text` on one line, at most `limit` characters (library errors can span many lines)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _foreign_kind(path, head):
    """What a file that is no checkpoint container is, in words, or None."""
    lowered = head.lstrip().lower()
    for signature, kind in _SIGNATURES:
        if head.startswith(signature) or lowered.startswith(signature.lower()):
            return kind
    return None


def _zip_container(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any(n.endswith("data.pkl") for n in names):
        return "torch"
    if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
        raise CheckpointError(
            f"{path} is a Keras model archive (.keras), not a checkpoint: load it with "
            "keras.saving.load_model (or vit_keras.runs.load_run_model)."
        )
    if names and not all(n.endswith(".npy") for n in names):
        raise CheckpointError(
            f"{path} is a zip archive of {len(names)} files (e.g. {names[:3]}), not a .npz of arrays."
        )
    return "npz"


def _container(path):
    """'npz', 'torch' or 'safetensors' from the file's leading bytes; raises CheckpointError otherwise."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): {REMEDY}.")
    with open(path, "rb") as f:
        head = f.read(64)
    if zipfile.is_zipfile(path):
        return _zip_container(path)
    if head[:1] == b"\x80":  # a pickle: torch's legacy (pre-1.6) format
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":  # little-endian header length, then JSON
        return "safetensors"
    kind = _foreign_kind(path, head)
    if kind is not None:
        raise CheckpointError(f"{path} is {kind}, not a ViT checkpoint (.npz, .safetensors or .pth/.bin).")
    if head[:2] == b"PK" or path.suffix in (".npz", ".pth", ".pt", ".bin"):
        raise CheckpointError(
            f"{path} is truncated or corrupt ({size} bytes; neither a complete zip archive, a pickle "
            f"nor a .safetensors file): {REMEDY}."
        )
    raise CheckpointError(
        f"{path} is not a readable checkpoint ({size} bytes): expected a .npz, .safetensors or "
        f".pth/.bin file; it is truncated, corrupt or of another format: {REMEDY}."
    )


def _read_npz(path):
    with np.load(path, allow_pickle=False) as archive:
        return {key: np.asarray(archive[key]) for key in archive.files}


def safetensors_header(path):
    """The JSON header of a `.safetensors` file (a dict), checked against the file's size."""
    size = pathlib.Path(path).stat().st_size
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length > size - 8:
            raise CheckpointError(
                f"{path} is truncated or corrupt: its header claims {length} bytes, the file has {size}: {REMEDY}."
            )
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointError(f"{path} is corrupt: its header is not JSON ({one_line(error)}): {REMEDY}.") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is corrupt: its header is not a JSON object: {REMEDY}.")
    return header


def _safetensors_size(path, header):
    """The size in bytes that a `.safetensors` file with `header` must have."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
    try:
        ends = [int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"]
    except (TypeError, KeyError, IndexError, ValueError):
        raise CheckpointError(f"{path} is corrupt: its header has an entry without data_offsets: {REMEDY}.") from None
    return 8 + length + max(ends, default=0)


def check_complete(path):
    """Raise a CheckpointError unless `path` is a whole checkpoint container, without reading its tensors.

    The file must be a `.npz` or PyTorch zip archive (whose directory, at its end, is there), a
    PyTorch pickle, or a `.safetensors` file exactly as long as its header says; an HTML page,
    an empty or truncated file fails with one line naming it. (Flipped bytes inside the tensors
    are found when they are read, or by sha256.)
    """
    path = pathlib.Path(path)
    if _container(path) == "safetensors":
        size, expected = path.stat().st_size, _safetensors_size(path, safetensors_header(path))
        if size != expected:
            raise CheckpointError(
                f"{path} is truncated or corrupt: its header describes {expected} bytes, the file has {size}: {REMEDY}."
            )


def checkpoint_metadata(path):
    """The `__metadata__` strings of a `.safetensors` checkpoint ({} for other files)."""
    path = checkpoint_file(path)
    if is_shard_index(path) or _container(path) != "safetensors":
        return {}
    metadata = safetensors_header(path).get("__metadata__") or {}
    return metadata if isinstance(metadata, dict) else {}


def _read_safetensors(path):
    try:
        import safetensors.numpy
    except ImportError as error:
        raise ImportError(
            "reading .safetensors checkpoints needs the `safetensors` package: pip install safetensors"
        ) from error
    header = safetensors_header(path)
    dtypes = {entry.get("dtype") for key, entry in header.items() if key != "__metadata__" and isinstance(entry, dict)}
    if "BF16" in dtypes:  # NumPy has no bfloat16: go through torch
        import safetensors.torch

        return {k: _torch_to_numpy(v) for k, v in safetensors.torch.load_file(str(path)).items()}
    return safetensors.numpy.load_file(str(path))


def _torch_to_numpy(tensor):
    tensor = tensor.detach().cpu()
    if not tensor.dtype.is_floating_point:
        return tensor.numpy()
    return tensor.float().numpy()


def _check_zip_crcs(path):
    """Read every member of a zip-based torch file so that a damaged one fails its CRC-32.

    torch.load does not check them; members saved without a CRC (stored as 0) are skipped.
    """
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.CRC or not info.file_size:
                with archive.open(info) as member:
                    while member.read(1 << 24):
                        pass


def _read_torch(path):
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"reading {path.name} (a PyTorch checkpoint) needs torch: pip install torch (or convert it to .safetensors)"
        ) from error
    if zipfile.is_zipfile(path):
        _check_zip_crcs(path)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights_only" not in str(error) and "Weights only" not in str(error):
            raise
        found = re.search(r"GLOBAL [\w.]+", str(error))
        raise CheckpointError(
            f"{path} holds Python objects that torch.load(weights_only=True) refuses to run"
            f"{f' ({found.group(0)})' if found else ''}; it is corrupt or not a plain state dict: "
            "re-save only the model's state_dict(), or convert it to .safetensors."
        ) from None
    for wrapper in _STATE_DICT_WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict.")
    return {k: _torch_to_numpy(v) for k, v in state.items() if isinstance(v, torch.Tensor)}


_KIND_NAMES = {"npz": "an .npz", "safetensors": "a .safetensors", "torch": "a PyTorch", "checkpoint": "a"}
_READERS = {"npz": _read_npz, "safetensors": _read_safetensors, "torch": _read_torch}


def _check_finite(path, arrays):
    for key, array in arrays.items():
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise CheckpointError(f"{path} holds NaN or infinite values in {key!r}: it is corrupt: {REMEDY}.")


def _read_file(path):
    """{key: array} of one checkpoint file; CheckpointError naming it if it is damaged or foreign."""
    kind = "checkpoint"
    try:
        kind = _container(path)
        arrays = _READERS[kind](path)
    except (ImportError, CheckpointError):
        raise
    except Exception as error:  # every reader has its own error types for a damaged file
        raise CheckpointError(
            f"{path} could not be read as {_KIND_NAMES[kind]} checkpoint (truncated or corrupt): "
            f"{type(error).__name__}: {one_line(error, 120)}; {REMEDY}."
        ) from None
    if not arrays:
        raise CheckpointError(f"{path} holds no tensors: {REMEDY}.")
    _check_finite(path, arrays)
    return arrays


def read_json_object(path, remedy=REMEDY):
    """The JSON object (a dict) in the file `path`; a one-line CheckpointError naming it otherwise."""
    try:
        content = json.loads(pathlib.Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({one_line(error, 80)}): {remedy}.") from None
    if not isinstance(content, dict):
        raise CheckpointError(f"{path} is not a JSON object (found a JSON {type(content).__name__}): {remedy}.")
    return content


def is_shard_index(path):
    """True if `path` names the index of a sharded checkpoint (`*.index.json`)."""
    return pathlib.Path(path).name.endswith(INDEX_SUFFIX)


def _shard_name_is_inside(name):
    """True for a relative path without `..` (the weight_map of an index names files in its folder)."""
    pure = pathlib.PurePosixPath(name)
    return bool(name) and "\\" not in name and not pure.is_absolute() and ".." not in pure.parts and ":" not in name


def read_weight_map(index):
    """{key: shard file name} of a sharded checkpoint's index file, every shard checked to exist.

    Raises:
        CheckpointError: the index is not JSON, has no `weight_map` object of names, or names a
            file outside its folder.
        FileNotFoundError: a shard the index names is not in the folder.
    """
    content = read_json_object(index)
    weight_map = content.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        found = f"keys {sorted(content)[:6]}" if "weight_map" not in content else f"{weight_map!r:.60}"
        raise CheckpointError(
            f"{index} must have a non-empty 'weight_map' object {{weight name: shard file}}; found {found}: {REMEDY}."
        )
    for key, name in weight_map.items():
        if not isinstance(name, str) or not _shard_name_is_inside(name):
            raise CheckpointError(
                f"{index}: weight_map gives {key!r} the shard {name!r}; expected a file name inside "
                f"{pathlib.Path(index).parent}."
            )
    for name in sorted(set(weight_map.values())):
        if not (pathlib.Path(index).parent / name).is_file():
            raise FileNotFoundError(
                f"{index} lists the shard {name}, which is not in {pathlib.Path(index).parent}: "
                "download the missing file (or the whole folder) again."
            )
    return weight_map


def _read_sharded(index):
    """{key: array} of every shard of the checkpoint whose index is `index`."""
    weight_map = read_weight_map(index)
    arrays, origin = {}, {}
    for name in sorted(set(weight_map.values())):
        for key, array in _read_file(index.parent / name).items():
            if key in origin:
                raise CheckpointError(f"{index}: {key!r} is in two shards, {origin[key]} and {name}: {REMEDY}.")
            arrays[key], origin[key] = array, name
    for key, name in weight_map.items():
        if origin.get(key) != name:
            raise CheckpointError(
                f"{index}: weight_map puts {key!r} in {name}; found it in {origin.get(key, 'no shard')}: {REMEDY}."
            )
    return arrays


def read_checkpoint(path):
    """{key: array} of every tensor in the checkpoint at `path` (a file, a model directory or a shard index).

    A directory is read as its first `DIRECTORY_FILES` entry; a sharded checkpoint (an
    `*.index.json` file, or a directory holding one) as the union of its shards.

    Raises FileNotFoundError for a missing path or shard and CheckpointError (a ValueError) with a
    one-line message naming the file for one that is empty, truncated, corrupt (a failed CRC,
    a damaged header, NaN/inf values), of another kind (an image, an HTML page, a Keras
    archive, a Git LFS pointer) or not a `.npz`, `.safetensors` or `.pth`/`.bin` checkpoint, and
    for a shard index that is not JSON, lacks `weight_map`, names a file outside its folder or
    does not match its shards.
    """
    path = checkpoint_file(path)
    if is_shard_index(path):
        return _read_sharded(path)
    return _read_file(path)
