"""SavedModel (and ONNX) export for serving, from any backend: `export_saved_model`, `export_onnx`.

The export goes to TF Serving's layout, `BASE_DIR/<version>/`, written into a hidden folder next
to it (`.<version>.partial-<pid>@<host>-<id>`) and renamed into place only when complete, so a
failed export leaves no half-written version; an overwritten version is swapped with the new one
in one step (Linux `renameat2`), so a reader never finds it missing. The output folder is created
and checked for writing before the conversion starts, and removed again if the export fails.
Under TensorFlow the model is exported in-process; under JAX or PyTorch it is saved as `.keras`
(in `.<version>.scratch-<pid>@<host>-<id>/`) and rebuilt from that file in a TensorFlow-backend
subprocess (`vit_keras.serving.tf_worker`), which exports the same function with the same graph
and dies with its parent. The hidden folders of an
export whose process is dead (killed) are removed by the next export into the same folder.
The signatures are described in `vit_keras.serving.signatures`.
"""

import importlib.util
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import uuid
import zlib

import keras

from vit_keras import runs
from vit_keras.choices import EXPORT_PRECISIONS
from vit_keras.validation import check_choice, check_positive


class ExportError(RuntimeError):
    """The SavedModel could not be written (the reason is in the message)."""


# ----------------------------------------------------------------------------- versions


def existing_versions(base_dir):
    """The numeric version folders under `base_dir`, ascending."""
    base_dir = pathlib.Path(base_dir)
    if not base_dir.is_dir():
        return []
    return sorted(int(p.name) for p in base_dir.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(base_dir):
    """The next free version number: one more than the highest, or 1."""
    versions = existing_versions(base_dir)
    return versions[-1] + 1 if versions else 1


def _check_version(version):
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer (TF Serving's numeric versions); found {version!r}.")
    return version


# ----------------------------------------------------------------------------- hidden work folders

_KINDS = ("partial", "old", "scratch")  # the version being written, a replaced version, the .keras copy
_HIDDEN = re.compile(r"^\.(?P<stem>.+)\.(?P<kind>partial|old|scratch)-(?P<pid>\d+)@(?P<host>[0-9a-f]{8})-[0-9a-f]{8}$")


def _host_tag():
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def hidden_path(folder, stem, kind):
    """A new hidden sibling `folder/.<stem>.<kind>-<pid>@<host>-<id>`, owned by this process."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}; found {kind!r}.")
    return pathlib.Path(folder) / f".{stem}.{kind}-{os.getpid()}@{_host_tag()}-{uuid.uuid4().hex[:8]}"


def _process_is_dead(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # Linux: a killed process that nobody has reaped yet is a zombie
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def remove_stale(folder):
    """Remove the hidden work folders and files in `folder` whose export process is dead.

    A replaced version (`.<N>.old-...`) whose new version never arrived (the process was killed
    between the two renames) is renamed back to `N`. Entries of live processes, or of another
    host, are left alone.

    Returns:
        The names removed or restored.
    """
    folder = pathlib.Path(folder)
    handled = []
    if not folder.is_dir():
        return handled
    for entry in sorted(folder.iterdir()):
        match = _HIDDEN.match(entry.name)
        if not match or match["host"] != _host_tag() or not _process_is_dead(int(match["pid"])):
            continue
        original = folder / match["stem"]
        if match["kind"] == "old" and not original.exists():
            entry.rename(original)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        handled.append(entry.name)
    return handled


# ----------------------------------------------------------------------------- writing


def load_model_argument(model):
    """(a keras.Model, the class names of its run or None) for a model or a run directory / `.keras` path.

    Raises:
        FileNotFoundError, ValueError: one line naming the path (see `vit_keras.runs.load_run_model`).
    """
    if isinstance(model, keras.Model):
        return model, None
    if not isinstance(model, (str, os.PathLike)):
        raise ValueError(
            f"model must be a keras.Model, a run directory or a .keras file; found {type(model).__name__}."
        )
    path = pathlib.Path(model)
    loaded, _ = runs.load_run_model(path)
    return loaded, runs.run_class_names(path if path.is_dir() else path.parent)


def with_precision(model, precision):
    """`model`, or a copy of it that computes in `precision` (same weights) when that differs.

    Args:
        model: a `vit_keras.ViT` (any other model only with `precision=None`).
        precision: None (the model's own policy) or one of `EXPORT_PRECISIONS`.

    Returns:
        A keras.Model whose dtype policy is `precision`.

    Raises:
        ValueError: a model that is not a `vit_keras.ViT`, and not already in `precision`.
    """
    if precision is None or model.dtype_policy.name == precision:
        return model
    from vit_keras.model import ViT

    if not isinstance(model, ViT):
        raise ValueError(
            f"re-creating a model in precision {precision!r} needs a vit_keras.ViT; found a "
            f"{type(model).__name__} computing in {model.dtype_policy.name!r}."
        )
    copy = ViT.from_config(dict(model.get_config(), dtype=precision))
    copy.set_weights(model.get_weights())
    return copy


def _write_in_subprocess(model_file, path, options):
    """Run `vit_keras.serving.tf_worker` under the TensorFlow backend; raise ExportError on failure.

    The worker is told this process's id: it dies with this process (see `tf_worker`). It runs as
    a file, not with `-m`, so that it asks for that before the package (and Keras) is imported.
    """
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = [
        sys.executable,
        str(pathlib.Path(__file__).resolve().parent / "serving" / "tf_worker.py"),
        str(model_file),
        str(path),
        "--options-json",
        json.dumps(options),
        "--parent-pid",
        str(os.getpid()),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:  # the worker's last line is its error (`tf_worker.main`)
        lines = done.stderr.strip().splitlines()
        reason = lines[-1].strip() if lines else f"it exited with status {done.returncode} and no message"
        raise ExportError(f"the TensorFlow-backend export of {model_file} failed: {reason}")


def write_in_tensorflow(model, path, class_names=None, top_k=5, format="saved_model", opset=17, jit_compile=False):
    """Write `model` (TensorFlow backend) to the new `path`: a SavedModel folder or an ONNX file."""
    if format == "onnx":
        from vit_keras.serving.onnx_graph import write_onnx

        write_onnx(model, path, opset=opset, top_k=top_k)
    else:
        from vit_keras.serving.signatures import write_saved_model

        write_saved_model(model, path, class_names=class_names, top_k=top_k, jit_compile=jit_compile)


def _write(model, path, scratch, **options):
    """Write the keras.Model `model` to the new `path` from any backend (`scratch`: a free path for a
    `.keras` copy, used under JAX and PyTorch)."""
    if keras.backend.backend() == "tensorflow":
        write_in_tensorflow(model, path, **options)
        return
    scratch.mkdir()
    try:
        model.save(scratch / "model.keras")
        _write_in_subprocess(scratch / "model.keras", path, options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_path(value, name):
    """`value` (a str or os.PathLike naming a file or folder) as a pathlib.Path; an empty one is refused,
    since `Path("")` is the current folder."""
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a path (str or os.PathLike); found {type(value).__name__}.")
    if not str(os.fspath(value)).strip():
        raise ValueError(f"{name} must be a path; found an empty string.")
    return pathlib.Path(value)


def _first_existing(folder):
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def make_output_folder(folder, name):
    """Create `folder` (and its parents) if missing and check that files can be created in it.

    Args:
        folder: the folder an export writes into.
        name: the argument it came from, for the error message.

    Returns:
        The folders created, outermost first (to remove if the export fails).

    Raises:
        NotADirectoryError: `folder` or one of its parents is a file.
        PermissionError: the folder cannot be created or written into (the reason is in the message).
    """
    folder = pathlib.Path(folder)
    existing = _first_existing(folder)
    if existing.exists() and not existing.is_dir():
        raise NotADirectoryError(
            f"{name} must be writable: {folder} cannot be created, because {existing} is a file, not a folder."
        )
    created = [p for p in [folder, *folder.parents] if not p.exists()][::-1]
    probe = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = hidden_path(folder, "write-check", "partial")
        probe.mkdir()
        probe.rmdir()
    except OSError as error:
        _remove_empty(created)
        action = "create" if probe is None else "write into"
        raise PermissionError(
            f"{name} must be writable: cannot {action} the folder {folder} ({error.strerror or error})."
        ) from None
    return created


def _remove_empty(folders):
    """Remove `folders` (outermost first, as `make_output_folder` returns them) that are empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def _check_flag(value, name):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False; found {value!r}.")
    return value


# ----------------------------------------------------------------------------- SavedModel


def export_saved_model(
    model, base_dir, version=None, class_names=None, overwrite=False, top_k=5, jit_compile=False, precision=None
):
    """Export an image classifier as a TF Serving SavedModel at `base_dir/<version>/`; return that path.

    Args:
        model: a Keras image classifier (e.g. `vit_keras.ViT`), under any backend, or the path
            of a `.keras` file or a `vit-keras train` run directory.
        base_dir: the model's folder, `saved_models/<name>`; created if missing.
        version: the numeric version; None takes the next free one.
        class_names: one string per class, served as `top_k_labels`; for a run directory, the
            names in its config.json by default.
        overwrite: replace an existing version folder instead of refusing it.
        top_k: how many classes `top_k_*` return (at most the number of classes).
        jit_compile: XLA-compile the model's forward pass in the signatures (TF Serving and
            `tf.saved_model.load` keep it); the fastest CPU inference. The input checks and the
            image decoding stay outside XLA.
        precision: the dtype policy the SavedModel computes in: None (the model's own),
            "float32" (full speed on every CPU and GPU) or "mixed_bfloat16" (the faster one on CPUs
            with AVX512_BF16 or AMX, with `jit_compile=True`: its products then run the CPU's
            bfloat16 instructions with float32 results; emulated, and slower, on other CPUs).
            The weights are the model's; a precision needs a `vit_keras.ViT`.

    Returns:
        The path of the version folder, as a string.

    Raises:
        ValueError, FileNotFoundError, FileExistsError, NotADirectoryError: bad arguments (one
            line, before anything is written). ExportError: the export itself failed.

    The signatures (`serving_default`: float32 images (None, H, W, C) of raw 0-255 pixels;
    `serving_uint8`: the same as uint8; `serving_bytes`: encoded JPEG/PNG/GIF/BMP strings) all
    return `logits`, `probabilities`, `top_k_indices`, `top_k_scores` and, with class names,
    `top_k_labels`. A model without a preprocessing layer gets the pixels as given.
    """
    jit_compile = _check_flag(jit_compile, "jit_compile")
    overwrite = _check_flag(overwrite, "overwrite")
    top_k = check_positive("top_k", top_k)
    precision = None if precision is None else check_choice("precision", precision, EXPORT_PRECISIONS)
    base_dir = _check_path(base_dir, "base_dir")
    if base_dir.exists() and not base_dir.is_dir():
        raise NotADirectoryError(f"base_dir must be a folder; found a file at {base_dir}.")
    version = None if version is None else _check_version(version)
    model, run_names = load_model_argument(model)
    model = with_precision(model, precision)
    if class_names is None:  # the run's dataset, else the names the model carries (pretrained heads)
        class_names = run_names or getattr(model, "class_names", None)
    if class_names is not None:
        from vit_keras.serving.signatures import check_class_names, num_outputs

        class_names = check_class_names(class_names, num_outputs(model))
    remove_stale(base_dir)  # first: it may give back a version a killed overwrite had moved aside
    version = next_version(base_dir) if version is None else version
    target = base_dir / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"version {version} already exists at {target}; choose another version, omit it to "
            f"take the next free one ({next_version(base_dir)}), or pass overwrite=True."
        )
    created = make_output_folder(base_dir, "base_dir")
    staging = hidden_path(base_dir, version, "partial")  # not numeric: TF Serving ignores it
    options = dict(class_names=class_names, top_k=top_k, jit_compile=jit_compile)
    try:
        _write(model, staging, hidden_path(base_dir, version, "scratch"), **options)
        if not (staging / "saved_model.pb").is_file():
            raise ExportError(f"the export wrote no saved_model.pb into {staging}.")
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_empty(created)
        raise
    return str(target)


_AT_FDCWD = -100  # <fcntl.h>: paths relative to the current folder
_RENAME_EXCHANGE = 2  # <linux/fs.h>


def exchange_paths(first, second):
    """Swap two existing paths in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`).

    Returns:
        True if swapped; False where the system or the file system cannot (nothing changed).

    Raises:
        OSError: the swap failed for another reason.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import errno

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without renameat2 (glibc < 2.28)
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def _move_into_place(staging, target):
    """Rename `staging` to `target`; an existing `target` is replaced.

    Where the system can, the two folders are swapped in one step and the old version (now at the
    hidden `staging` path) is deleted, so a reader always finds a complete `target`, even if the
    process is killed. Elsewhere the old version is renamed aside first: a kill between the two
    renames leaves no `target` until the next export renames the old one back (`remove_stale`).
    """
    if not target.exists():
        staging.rename(target)
        return
    if exchange_paths(staging, target):
        shutil.rmtree(staging, ignore_errors=True)
        return
    retired = hidden_path(target.parent, target.name, "old")
    target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


# ----------------------------------------------------------------------------- ONNX


def _check_onnx_tools():
    missing = [name for name in ("tf2onnx", "onnx") if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"ONNX export needs {' and '.join(missing)}, which are not installed: "
            f"pip install 'vit-keras3[onnx]' (tf2onnx, onnx, onnxruntime)."
        )


def export_onnx(model, path, overwrite=False, opset=17, top_k=5):
    """Export an image classifier as one ONNX file at `path`; return that path.

    Args:
        model: a Keras image classifier under any backend, or a `.keras` file or run directory.
        path: the `.onnx` file to write; a path without the `.onnx` suffix is taken as a folder,
            and the file is `path/model.onnx`.
        overwrite: replace an existing file instead of refusing it.
        opset: the ONNX opset version.
        top_k: how many classes `top_k_*` return.

    Returns:
        The path of the file, as a string.

    The graph takes `images`, float32 (batch, H, W, C) raw 0-255 pixels, and returns `logits`,
    `probabilities`, `top_k_indices` and `top_k_scores` (`vit_keras.serving.onnx_graph`). It
    computes in float32 (ONNX Runtime's CPU kernels have no bfloat16 convolutions or products):
    a `vit_keras.ViT` under a mixed-precision policy is re-created in float32 with its weights. It is
    converted under TensorFlow (tf2onnx); a JAX or PyTorch model is rebuilt there from its `.keras`
    file in a subprocess. The file is written next to its target and renamed into place.
    """
    overwrite = _check_flag(overwrite, "overwrite")
    top_k = check_positive("top_k", top_k)
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 13:
        raise ValueError(f"opset must be an integer >= 13; found {opset!r}.")
    path = _check_path(path, "path")
    if path.suffix != ".onnx":
        path = path / "model.onnx"
    if path.exists() and not path.is_file():
        raise IsADirectoryError(f"path must be a .onnx file; found a folder at {path}.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another path or pass overwrite=True.")
    model = with_precision(load_model_argument(model)[0], "float32")
    _check_onnx_tools()
    created = make_output_folder(path.parent, "path")
    remove_stale(path.parent)
    staging = hidden_path(path.parent, path.name, "partial")
    try:
        _write(model, staging, hidden_path(path.parent, path.name, "scratch"), top_k=top_k, format="onnx", opset=opset)
        if not staging.is_file():
            raise ExportError(f"the ONNX export wrote no file at {staging}.")
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        _remove_empty(created)
        raise
    return str(path)
