"""Read checkpoint files (`.npz`, `.safetensors`, `.pth`/`.bin`) into {key: NumPy array} dicts.

The container is recognised from the file's first bytes, not its name, and every array is
read in full here, so a truncated or corrupt file fails before anything is loaded into a model.
"""

import hashlib
import json
import pathlib
import struct
import zipfile

import numpy as np

# Files looked for, in this order, when a checkpoint path is a directory (a Hugging Face
# snapshot or a timm/Hub download).
DIRECTORY_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")

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


def check_sha256(path, expected):
    """Raise a CheckpointError if the file's sha256 is not `expected` (a hex string)."""
    expected = str(expected).strip().lower()
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


def _container(path):
    """'npz', 'torch' or 'safetensors' from the file's leading bytes; None if unrecognised."""
    with open(path, "rb") as f:
        head = f.read(9)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        return "torch" if any(n.endswith("data.pkl") for n in names) else "npz"
    if head[:1] == b"\x80":  # a pickle: torch's legacy (pre-1.6) format
        return "torch"
    if len(head) == 9 and head[8:9] == b"{":  # little-endian header length, then JSON
        return "safetensors"
    return None


def _read_npz(path):
    with np.load(path, allow_pickle=False) as archive:
        return {key: np.asarray(archive[key]) for key in archive.files}


def _safetensors_dtypes(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return {entry["dtype"] for key, entry in header.items() if key != "__metadata__"}


def _read_safetensors(path):
    try:
        import safetensors.numpy
    except ImportError as error:
        raise ImportError(
            "reading .safetensors checkpoints needs the `safetensors` package: pip install safetensors"
        ) from error
    if "BF16" in _safetensors_dtypes(path):  # NumPy has no bfloat16: go through torch
        import safetensors.torch

        return {k: _torch_to_numpy(v) for k, v in safetensors.torch.load_file(str(path)).items()}
    return safetensors.numpy.load_file(str(path))


def _torch_to_numpy(tensor):
    tensor = tensor.detach().cpu()
    if not tensor.dtype.is_floating_point:
        return tensor.numpy()
    return tensor.float().numpy()


def _read_torch(path):
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"reading {path.name} (a PyTorch checkpoint) needs torch: pip install torch "
            "(or convert it to .safetensors)"
        ) from error
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    for wrapper in _STATE_DICT_WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict.")
    return {k: _torch_to_numpy(v) for k, v in state.items() if isinstance(v, torch.Tensor)}


_READERS = {"npz": _read_npz, "safetensors": _read_safetensors, "torch": _read_torch}


def read_checkpoint(path):
    """{key: array} of every tensor in the checkpoint at `path` (a file or a model directory).

    Raises FileNotFoundError for a missing path and CheckpointError for a file that is
    truncated, corrupt, or not a `.npz`, `.safetensors` or `.pth`/`.bin` checkpoint.
    """
    path = checkpoint_file(path)
    try:
        kind = _container(path)
    except (OSError, zipfile.BadZipFile):
        kind = None
    if kind is None:
        raise CheckpointError(
            f"{path} is not a readable checkpoint: expected a .npz, .safetensors or .pth/.bin "
            "file; it is truncated, corrupt or of another format."
        )
    try:
        arrays = _READERS[kind](path)
    except (ImportError, CheckpointError):
        raise
    except Exception as error:  # every reader has its own error types for a damaged file
        raise CheckpointError(
            f"{path} could not be read as a {kind} checkpoint (truncated or corrupt?): "
            f"{type(error).__name__}: {error}"
        ) from error
    if not arrays:
        raise CheckpointError(f"{path} holds no tensors.")
    return arrays
