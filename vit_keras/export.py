"""SavedModel export for TF Serving, from any backend: `export_saved_model` and `vit-keras export`.

The export goes to TF Serving's layout, `BASE_DIR/<version>/`, written into a hidden temporary
folder next to it and renamed into place only when complete, so a failed export leaves no
half-written version. Under TensorFlow the model is exported in-process; under JAX or PyTorch it
is saved as `.keras` and rebuilt from that file in a TensorFlow-backend subprocess
(`vit_keras.serving.tf_worker`), which exports the same function with the same graph.
The signatures are described in `vit_keras.serving.signatures`.
"""

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import uuid

import keras

RUN_CONFIG = "config.json"
RUN_MODEL = "model.keras"


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


# ----------------------------------------------------------------------------- run directories


def resolve_model_path(path):
    """(the `.keras` file, the run's config.json or None) for a run directory or a `.keras` file."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model path does not exist: {path} (expected a run directory or a .keras file).")
    if path.is_dir():
        model_path = path / RUN_MODEL
        if not model_path.is_file():
            raise FileNotFoundError(f"run directory {path} has no {RUN_MODEL}.")
    else:
        model_path = path
        if model_path.suffix != ".keras":
            raise ValueError(f"model must be a run directory or a .keras file; found {path}.")
    config = model_path.parent / RUN_CONFIG
    return model_path, (config if config.is_file() else None)


def run_class_names(config_path):
    """The class names recorded in a run's config.json (`dataset.class_names` or `class_names`), or None."""
    if config_path is None:
        return None
    try:
        config = json.loads(pathlib.Path(config_path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"run config {config_path} cannot be read as JSON: {error}") from error
    names = (config.get("dataset") or {}).get("class_names") or config.get("class_names")
    return [str(n) for n in names] if names else None


# ----------------------------------------------------------------------------- export


def load_keras_model(path):
    """Load a `.keras` model for export (the training optimizers registered, not compiled)."""
    try:
        import vit_keras.optim  # noqa: F401  (registers the training optimizers, if present)
    except ImportError:
        pass
    return keras.saving.load_model(path, compile=False)


def _write_in_subprocess(model_file, path, class_names, top_k, format, opset):
    """Run `vit_keras.serving.tf_worker` under the TensorFlow backend; raise ExportError on failure."""
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = [
        sys.executable, "-m", "vit_keras.serving.tf_worker", str(model_file), str(path),
        "--class-names-json", json.dumps(class_names), "--top-k", str(top_k),
        "--format", format, "--opset", str(opset),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise ExportError(f"the TensorFlow-backend export of {model_file} failed:\n{tail}")


def write_in_tensorflow(model, path, class_names=None, top_k=5, format="saved_model", opset=17):
    """Write `model` (TensorFlow backend) to the new `path`: a SavedModel folder or an ONNX file."""
    if format == "onnx":
        from vit_keras.serving.onnx_graph import write_onnx

        write_onnx(model, path, opset=opset, top_k=top_k)
    else:
        from vit_keras.serving.signatures import write_saved_model

        write_saved_model(model, path, class_names=class_names, top_k=top_k)


def _write(model, path, class_names, top_k, format="saved_model", opset=17):
    """Write `model` (a keras.Model or a .keras path) to the new `path` in `format`, from any backend."""
    if keras.backend.backend() == "tensorflow":
        if not isinstance(model, keras.Model):
            model = load_keras_model(model)
        write_in_tensorflow(model, path, class_names, top_k, format, opset)
    elif isinstance(model, keras.Model):
        with tempfile.TemporaryDirectory(prefix="vit_keras_export_") as scratch:
            model_file = pathlib.Path(scratch) / "model.keras"
            model.save(model_file)
            _write_in_subprocess(model_file, path, class_names, top_k, format, opset)
    else:
        _write_in_subprocess(model, path, class_names, top_k, format, opset)


def export_saved_model(model, base_dir, version=None, class_names=None, overwrite=False, top_k=5):
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

    The signatures (`serving_default`: float32 images (None, H, W, C) of raw 0-255 pixels;
    `serving_uint8`: the same as uint8; `serving_bytes`: encoded JPEG/PNG strings) all return
    `logits`, `probabilities`, `top_k_indices`, `top_k_scores` and, with class names,
    `top_k_labels`. A model without a preprocessing layer gets the pixels as given.
    """
    if not isinstance(model, keras.Model):
        model, config = resolve_model_path(model)
        if class_names is None:
            class_names = run_class_names(config)
    if class_names is not None:
        if isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names):
            raise ValueError(f"class_names must be a list of strings; found {class_names!r}.")
        class_names = list(class_names)
        outputs = model.output_shape[-1] if isinstance(model, keras.Model) else None
        if outputs is not None and len(class_names) != outputs:
            raise ValueError(
                f"class_names must have one name per model output ({outputs}); found {len(class_names)} names."
            )

    base_dir = pathlib.Path(base_dir)
    if base_dir.exists() and not base_dir.is_dir():
        raise NotADirectoryError(f"base_dir must be a folder; found a file at {base_dir}.")
    version = next_version(base_dir) if version is None else _check_version(version)
    target = base_dir / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"version {version} already exists at {target}; choose another version, omit it to "
            f"take the next free one ({next_version(base_dir)}), or pass overwrite=True."
        )
    base_dir.mkdir(parents=True, exist_ok=True)
    staging = base_dir / f".{version}.partial-{uuid.uuid4().hex[:8]}"  # not numeric: TF Serving ignores it
    try:
        _write(model, staging, class_names, top_k)
        if not (staging / "saved_model.pb").is_file():
            raise ExportError(f"the export wrote no saved_model.pb into {staging}.")
        if target.exists():  # overwrite: swap the old version out, then delete it
            retired = base_dir / f".{version}.old-{uuid.uuid4().hex[:8]}"
            target.rename(retired)
            staging.rename(target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return str(target)


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

    The graph takes `images`, float32 (batch, H, W, C) raw 0-255 pixels, and returns `logits`,
    `probabilities`, `top_k_indices` and `top_k_scores` (`vit_keras.serving.onnx_graph`). It is
    converted under TensorFlow (tf2onnx); a JAX or PyTorch model is rebuilt there from its `.keras`
    file in a subprocess. The file is written next to its target and renamed into place.
    """
    if not isinstance(model, keras.Model):
        model, _ = resolve_model_path(model)
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 13:
        raise ValueError(f"opset must be an integer >= 13; found {opset!r}.")
    path = pathlib.Path(path)
    if path.suffix != ".onnx":
        path = path / "model.onnx"
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another path or pass overwrite=True.")
    if path.exists() and not path.is_file():
        raise IsADirectoryError(f"path must be a file; found a folder at {path}.")
    _check_onnx_tools()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        _write(model, staging, None, top_k, format="onnx", opset=opset)
        if not staging.is_file():
            raise ExportError(f"the ONNX export wrote no file at {staging}.")
        os.replace(staging, path)
    finally:
        if staging.exists():
            staging.unlink()
    return str(path)


# ----------------------------------------------------------------------------- CLI


def _export_command(args):
    class_names = None
    if args.class_names:
        class_names = [name.strip() for name in args.class_names.split(",")]
    try:
        if args.format == "onnx":
            if args.version is not None or class_names:
                raise ValueError("--version and --class-names apply to --format saved_model only.")
            path = export_onnx(args.model, args.output, overwrite=args.overwrite, top_k=args.top_k)
        else:
            path = export_saved_model(
                args.model, args.output, version=args.version, class_names=class_names,
                overwrite=args.overwrite, top_k=args.top_k,
            )
    except (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, ValueError,
            ExportError) as error:
        print(f"vit-keras export: error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


def register_cli(subparsers):
    """Add `vit-keras export`."""
    parser = subparsers.add_parser(
        "export",
        help="export a trained model as a TF Serving SavedModel (or ONNX)",
        description="Export a run directory (its model.keras) or a .keras file as a TF Serving "
        "SavedModel at OUTPUT/<version>/, with signatures serving_default (float32 raw pixels), "
        "serving_uint8 and serving_bytes (encoded JPEG/PNG); or, with --format onnx, as one ONNX "
        "file (OUTPUT if it ends in .onnx, else OUTPUT/model.onnx).",
    )
    parser.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="a vit-keras train run directory or a .keras file")
    parser.add_argument("--output", required=True, help="the model's folder, e.g. saved_models/vit_mnist")
    parser.add_argument("--format", choices=("saved_model", "onnx"), default="saved_model",
                        help="saved_model (TF Serving, default) or onnx (needs the onnx extra)")
    parser.add_argument("--version", type=int, help="numeric version (default: the next free one)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--class-names", help="comma-separated class names (default: from the run's config.json)")
    parser.add_argument("--top-k", type=int, default=5, help="classes returned by top_k_* (default 5)")
    parser.set_defaults(func=_export_command)
