"""The run directory of `vit-keras train`: its files, its phase, its backup, and loading it back.

    config.json     the options, the picked batch size / epochs / warm-up, the model, the dataset,
                    the backend, library versions and hardware
    state.json      the phase: training -> evaluated -> exported -> finished
    metrics.csv     one row per trained epoch (rewritten whole after every epoch)
    backup/         the resumable state at the end of the last finite epoch (weights, optimizer,
                    epoch, per-epoch metrics); deleted once the run is finished
    best.keras      the finite epoch with the best validation accuracy; last.keras the last finite one
    model.keras     the final model (the EMA weights with --ema)
    results.json    validation and test loss/accuracy, epochs run, wall time, the SavedModel path
    saved_model/1/  the TF Serving SavedModel (unless --no-export)
    tensorboard/, curves.png

Every JSON and `.keras` file is written to a temporary name and renamed into place, so a kill
at any moment leaves either the old file or the new one. The backup's `backup.json` names the
weights file it belongs to and is renamed into place after that file: it is the commit point
of an epoch.
"""

import csv
import hashlib
import io
import json
import math
import os
import pathlib
import shutil

import keras
import numpy as np

CONFIG = "config.json"
STATE = "state.json"
METRICS = "metrics.csv"
BACKUP = "backup"
BACKUP_INDEX = "backup.json"
BEST = "best.keras"
LAST = "last.keras"
MODEL = "model.keras"
RESULTS = "results.json"
SAVED_MODEL = "saved_model"
TENSORBOARD = "tensorboard"
CURVES = "curves.png"
PHASES = ("training", "evaluated", "exported", "finished")
_TMP_TAG = ".tmp-"


# ----------------------------------------------------------------------------- atomic files


def finite_or_none(value):
    """`value` with every NaN/inf float (numpy scalars included) replaced by None, recursively."""
    if isinstance(value, dict):
        return {str(k): finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_line(obj):
    """One line of strict JSON for `obj` (non-finite numbers as null)."""
    return json.dumps(finite_or_none(obj), allow_nan=False, default=str)


def _temporary(path):
    path = pathlib.Path(path)
    base, _, extension = path.name.partition(".")  # keep ".weights.h5": Keras checks the whole suffix
    return path.with_name(f".{base}{_TMP_TAG}{os.getpid()}.{extension}")


def write_atomic(path, write):
    """Call `write(temporary path)`, then rename the temporary file onto `path` (a killed writer
    leaves a hidden temporary file, which `remove_temporaries` deletes, never a half-written `path`)."""
    tmp = _temporary(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path, text):
    """Write `text` to `path` through a temporary file and a rename."""
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_json_atomic(path, obj):
    """Write `obj` as JSON to `path` atomically; NaN and inf are written as null."""
    text = json.dumps(finite_or_none(obj), indent=2, allow_nan=False, default=str) + "\n"
    write_text_atomic(path, text)


def save_model_atomic(model, path):
    """`model.save(path)` through a temporary `.keras` file and a rename."""
    write_atomic(path, lambda tmp: model.save(tmp))


TRAIN_ADVICE = "remove it or rerun with --overwrite to start the run again"
READ_ADVICE = "restore it, or remove it to use the model without the run's class names"


def read_json(path, what="file", advice=TRAIN_ADVICE):
    """The JSON object in `path`.

    Args:
        path: the file.
        what: what the file is, for the message ("run config").
        advice: what the user can do about a bad file, for the message (the trainer's by default).

    Raises:
        ValueError: one line naming `path` when it is empty, truncated, not JSON or not an object.
    """
    path = pathlib.Path(path)
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{what} {path} is not readable JSON ({reason}); {advice}.") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} {path} must hold a JSON object; found {type(value).__name__}; {advice}.")
    return value


def remove_temporaries(folder):
    """Delete the temporary files a killed writer left in `folder` (not recursive)."""
    folder = pathlib.Path(folder)
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.startswith(".") and _TMP_TAG in path.name and path.is_file():
                path.unlink()


# ----------------------------------------------------------------------------- the run directory


class RunDirectory:
    """The files of one run directory and its phase (see the module docstring)."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __truediv__(self, name):
        return self.path / name

    def has_config(self):
        return (self.path / CONFIG).is_file()

    def read_config(self):
        return read_json(self.path / CONFIG, "run config")

    def phase(self):
        """The recorded phase, or None when no phase was recorded yet."""
        if not (self.path / STATE).is_file():
            return None
        phase = read_json(self.path / STATE, "run state").get("phase")
        if phase not in PHASES:
            raise ValueError(
                f"run state {self.path / STATE} holds phase {phase!r}, not one of {list(PHASES)}; "
                f"rerun with --overwrite to start the run again."
            )
        return phase

    def set_phase(self, phase):
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {list(PHASES)}; found {phase!r}.")
        write_json_atomic(self.path / STATE, {"phase": phase})

    def read_results(self):
        return read_json(self.path / RESULTS, "run results") if (self.path / RESULTS).is_file() else {}

    def clear(self):
        """Delete every file this module names (and the temporaries) from the run directory, config.json last."""
        for name in (BACKUP, SAVED_MODEL, TENSORBOARD):  # config.json last: a kill here leaves it to say "in use"
            shutil.rmtree(self.path / name, ignore_errors=True)
        for name in (STATE, METRICS, BEST, LAST, MODEL, RESULTS, CURVES, CONFIG):
            (self.path / name).unlink(missing_ok=True)
        remove_temporaries(self.path)

    def clean_stale(self):
        """Remove what a killed run left half-written: temporaries and unfinished exports."""
        remove_temporaries(self.path)
        remove_temporaries(self.path / BACKUP)
        saved = self.path / SAVED_MODEL
        if saved.is_dir():
            for path in saved.iterdir():
                if not path.name.startswith(".") or not (".partial" in path.name or ".old" in path.name):
                    continue
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink()

    def finish(self):
        """Record the phase `finished`, then delete the backup (also what a kill left of it)."""
        if self.phase() != "finished":
            self.set_phase("finished")
        shutil.rmtree(self.path / BACKUP, ignore_errors=True)


def write_metrics_csv(path, rows):
    """Write one CSV row per epoch dict in `rows` (columns: epoch, then sorted metric names)."""
    columns = sorted({k for row in rows for k in row if k != "epoch"})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["epoch"] + columns)
    for row in rows:
        values = [row.get(c) for c in columns]
        writer.writerow([row["epoch"]] + ["nan" if v is None else repr(float(v)) for v in values])
    write_text_atomic(path, buffer.getvalue())


# ----------------------------------------------------------------------------- backup


def read_backup(backup_dir):
    """The committed backup in `backup_dir` as a dict (epoch, weights path, history), or None.

    Raises:
        ValueError: one line naming the file when the index or the weights file it names is
            missing, empty or corrupt.
    """
    index_path = pathlib.Path(backup_dir) / BACKUP_INDEX
    if not index_path.is_file():
        return None
    index = read_json(index_path, "backup index")
    epoch, weights, history = index.get("epoch"), index.get("weights"), index.get("history")
    digest = index.get("sha256")
    if (
        isinstance(epoch, bool)
        or not isinstance(epoch, int)
        or epoch < 1
        or not isinstance(weights, str)
        or os.sep in weights
        or not isinstance(history, list)
        or len(history) != epoch
    ):
        raise ValueError(
            f"backup index {index_path} is inconsistent (epoch {epoch!r}, weights {weights!r}); "
            f"rerun with --overwrite to start the run again."
        )
    weights_path = index_path.parent / weights
    if not weights_path.is_file() or weights_path.stat().st_size == 0:
        raise ValueError(
            f"backup weights {weights_path} are missing or empty; rerun with --overwrite to start the run again."
        )
    if digest != file_sha256(weights_path):
        raise ValueError(
            f"backup weights {weights_path} do not match the checksum in {index_path} (damaged); "
            f"rerun with --overwrite to start the run again."
        )
    return {"epoch": epoch, "weights": weights_path, "history": history}


def file_sha256(path):
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def history_is_finite(logs):
    """Whether every number in an epoch's `logs` is finite."""
    return all(v is None or math.isfinite(float(v)) for v in (logs or {}).values())


class RunBackup(keras.callbacks.Callback):
    """Back up the weights and optimizer state at the end of every finite epoch; resume from it.

    Unlike `keras.callbacks.BackupAndRestore`, every file is written atomically and committed by
    `backup.json`, and an epoch whose logs hold NaN or inf is never backed up. A restarted `fit`
    restarts at the epoch after the last committed one, from exactly the state that epoch ended
    with: no batch is trained twice. `history` holds the committed epochs' logs.

    Args:
        backup_dir: the folder of the backup (shared by every worker of a multi-worker run).
        is_chief: whether this process writes the backup (every process reads it).
        collective_save: JAX multi-process: the other workers join each save, into a scratch file.
        delete_checkpoint: delete the backup when `fit` ends.
    """

    def __init__(self, backup_dir, is_chief=True, collective_save=False, delete_checkpoint=False):
        super().__init__()
        self.backup_dir = pathlib.Path(backup_dir)
        self.is_chief, self.collective_save = is_chief, collective_save
        self.delete_checkpoint = delete_checkpoint
        self.history = []

    def on_train_begin(self, logs=None):
        state = read_backup(self.backup_dir)
        if state is None:
            self.history = []
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        try:
            self.model.load_weights(state["weights"])
        except Exception as error:  # h5py/Keras raise OSError, ValueError, KeyError... on a bad file
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ValueError(
                f"backup weights {state['weights']} cannot be loaded ({reason}); "
                f"rerun with --overwrite to start the run again."
            ) from None
        self.model._initial_epoch = state["epoch"]  # how keras.callbacks.BackupAndRestore resumes
        self.history = list(state["history"])

    def on_epoch_end(self, epoch, logs=None):
        if not history_is_finite(logs):
            return
        record = {"epoch": epoch, **finite_or_none({k: float(v) for k, v in (logs or {}).items()})}
        self.history = [h for h in self.history if h["epoch"] < epoch] + [record]
        if self.is_chief:
            self._commit(epoch + 1)
        elif self.collective_save:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="vit_keras_backup_") as scratch:
                self.model.save_weights(os.path.join(scratch, "scratch.weights.h5"))

    def _commit(self, epoch):
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch:05d}.weights.h5"
        write_atomic(self.backup_dir / name, lambda tmp: self.model.save_weights(tmp))
        index = {
            "epoch": epoch,
            "weights": name,
            "sha256": file_sha256(self.backup_dir / name),
            "history": self.history,
        }
        write_json_atomic(self.backup_dir / BACKUP_INDEX, index)
        for path in self.backup_dir.glob("epoch-*.weights.h5"):
            if path.name != name:
                path.unlink()

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and self.is_chief:
            shutil.rmtree(self.backup_dir, ignore_errors=True)


# ----------------------------------------------------------------------------- loading a run


def _model_file(path):
    path = pathlib.Path(path)
    if path.is_dir():
        model_path = path / MODEL
        if not model_path.is_file():
            raise FileNotFoundError(f"model: run directory {path} has no {MODEL} (is the run finished?).")
        return model_path, path / CONFIG
    if path.is_file():
        if path.suffix != ".keras":
            raise ValueError(f"model: expected a run directory or a .keras file; found {path}.")
        return path, path.parent / CONFIG
    raise FileNotFoundError(f"model: {path} is neither a run directory nor a .keras file.")


def load_keras_file(model_path):
    """The model in a `.keras` file, not compiled.

    Raises:
        ValueError: one line naming the file when it is empty, truncated or not a Keras archive.
    """
    import zipfile

    model_path = pathlib.Path(model_path)
    if not model_path.is_file():
        raise ValueError(f"model: {model_path} is missing; expected a .keras archive.")
    if model_path.stat().st_size == 0:
        raise ValueError(f"model: {model_path} is empty (0 bytes); expected a .keras archive.")
    if not zipfile.is_zipfile(model_path):
        raise ValueError(f"model: {model_path} is not a .keras archive (truncated or another file type).")
    try:
        with zipfile.ZipFile(model_path) as archive:
            damaged = archive.testzip()  # reads every member and checks its CRC
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        damaged = str(error).splitlines()[0] if str(error) else type(error).__name__
    if damaged is not None:
        raise ValueError(f"model: {model_path} is a damaged .keras archive (bad member: {damaged}).")
    import vit_keras.optim  # noqa: F401  (registers LayerDecayAdamW, which best/last.keras may hold)

    try:
        return keras.saving.load_model(model_path, compile=False)
    except Exception as error:  # zipfile, h5py and Keras raise many types on a damaged archive
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ValueError(f"model: {model_path} cannot be loaded: {type(error).__name__}: {reason}") from None


def load_run_model(path):
    """(model, run config dict or {}) from a run directory or a `.keras` file.

    Raises:
        FileNotFoundError: `path` does not exist, or a run directory has no model.keras.
        ValueError: the file is not `.keras`, or is missing, truncated, empty or corrupt, or the
            run's config.json is unreadable (one line naming the file).
    """
    model_path, config_path = _model_file(path)
    config = read_json(config_path, "run config", READ_ADVICE) if config_path.is_file() else {}
    return load_keras_file(model_path), config


def run_class_names(run_dir):
    """The class names recorded in a run directory's config.json, or None."""
    config_path = pathlib.Path(run_dir) / CONFIG
    if not config_path.is_file():
        return None
    names = (read_json(config_path, "run config", READ_ADVICE).get("dataset") or {}).get("class_names")
    return [str(n) for n in names] if names else None
