"""Fault injection: a run killed (SIGKILL) in any phase resumes to the uninterrupted result, and a
damaged file of the run directory gives a one-line error naming it (or a clean rewrite).

The kill tests (`fault_slow`) run the trainer in subprocesses of a driver script that kills itself
with SIGKILL at a chosen moment: a Keras callback (mid-epoch, just after an epoch's backup, at the
end of fit) or a wrapper around one step of the trainer (while model.keras is half-written, during
the test evaluation, during the export, just after a phase is recorded). TensorFlow takes every kill
point; PyTorch and JAX three of them (mid-epoch, during the export, after "finished" is recorded;
all of them with VIT_KERAS_ALL_FAULTS=1). The corruption tests run in-process on every backend.
"""

import contextlib
import io
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from vit_keras import train
from vit_keras.train_config import TrainConfig

BACKEND = keras.backend.backend()
ALL_FAULTS = os.environ.get("VIT_KERAS_ALL_FAULTS") == "1"
EPOCHS, STEPS = 3, 4
TIMEOUT = 600

DRIVER = r"""
import json, os, signal, sys

import keras

from vit_keras import export, runs, train
from vit_keras.train_config import TrainConfig

KILL = os.environ.get("FAULT_KILL", "")


def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class Killer(keras.callbacks.Callback):
    epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if KILL == f"batch:{self.epoch}:{batch}":
            die()

    def on_epoch_end(self, epoch, logs=None):
        if KILL == f"epoch_end:{epoch}":
            die()

    def on_train_end(self, logs=None):
        if KILL == "train_end":
            die()


def after(module, name, when):
    original = getattr(module, name)

    def wrapped(*args, **kwargs):
        if when(*args, **kwargs) == "before":
            die()
        result = original(*args, **kwargs)
        if when(*args, **kwargs):
            die()
        return result

    setattr(module, name, wrapped)


def half_written(path, write):  # the temporary file is half-written when the kill comes
    if pathlib.Path(path).name == KILL.split(":", 1)[1]:
        tmp = runs._temporary(path)
        write(tmp)
        tmp.write_bytes(tmp.read_bytes()[: tmp.stat().st_size // 2])
        die()
    return original_replace(path, write)


import pathlib  # noqa: E402

original_replace = runs.write_atomic
if KILL.startswith("write:"):
    runs.write_atomic = half_written
if KILL == "evaluate":
    after(train, "evaluate_model", lambda *a, **k: "before")
if KILL == "export":  # the SavedModel is written into its staging folder, not yet renamed
    after(export, "_write", lambda *a, **k: True)
if KILL.startswith("phase:"):
    after(runs.RunDirectory, "set_phase", lambda self, phase: phase == KILL.split(":")[1])

config = TrainConfig(**json.loads(os.environ["FAULT_CONFIG"]))
train.train(config, callbacks=[Killer()])
"""


def tiny_config(dataset, output, **overrides):
    """A tiny, exactly resumable run: patch 7, width 16, depth 1, whole-pixel shifts and MixUp
    (drawn per seed, epoch and batch), no dropout."""
    options = dict(
        dataset=dataset,
        preset="vit_mnist_p7",
        embed_dim=16,
        num_heads=1,
        mlp_dim=32,
        dropout=0.0,
        augment="shift",
        mixup=0.2,
        epochs=EPOCHS,
        batch_size=32,
        steps_per_epoch=STEPS,
        warmup=0.5,
        jit_compile="off",
        tensorboard=False,
        export=True,
        output=str(output),
        quiet=True,
    )
    return {**options, **overrides}


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from vit_keras.data import SAMPLE_PATH, load_npz

    (x_train, y_train), (x_test, y_test) = load_npz(SAMPLE_PATH)
    path = tmp_path_factory.mktemp("faults") / "digits.npz"
    np.savez(path, x_train=x_train[:320], y_train=y_train[:320], x_test=x_test[:64], y_test=y_test[:64])
    return f"npz:{path}"


def drive(tmp_path, config, kill=""):
    """Run the driver once; return (exit status, stdout lines, stderr)."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = dict(
        os.environ,
        FAULT_CONFIG=json.dumps(config),
        FAULT_KILL=kill,
        TF_CPP_MIN_LOG_LEVEL="3",
        KERAS_BACKEND=BACKEND,
        PYTHONUNBUFFERED="1",
    )
    done = subprocess.run([sys.executable, str(driver)], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    return done.returncode, done.stdout.splitlines(), done.stderr


def processes_using(path):
    """The ids of live processes whose command line mentions `path`."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if str(path).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def phase_of(output):
    return json.loads((output / "state.json").read_text())["phase"]


def final_state(output):
    """(metrics.csv rows, head kernel, optimizer iterations, results) of a finished run."""
    rows = (output / "metrics.csv").read_text().strip().splitlines()
    model = keras.saving.load_model(output / "model.keras")  # compiled: the optimizer state too
    kernel = keras.ops.convert_to_numpy(model.get_layer("head").kernel)
    results = json.loads((output / "results.json").read_text())
    return rows, kernel, int(keras.ops.convert_to_numpy(model.optimizer.iterations)), results


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_dataset):
    """The uninterrupted run (no export: it does not change what is compared).

    Trained in this process: a driver subprocess would add one more interpreter start and
    TensorFlow import for the same numbers (the run seeds every generator it uses).
    """
    output = tmp_path_factory.mktemp("reference") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        train.train(TrainConfig(**tiny_config(tiny_dataset, output, export=False)))
    lines = printed.getvalue().splitlines()
    assert lines and all(json.loads(line) for line in lines)  # --quiet: JSON lines only
    return final_state(output)


# (kill point, phase recorded after the kill, epochs committed to the backup after the kill)
KILLS = [
    ("batch:1:1", "training", 1),  # mid-epoch 1: resumes at the start of epoch 1
    ("epoch_end:1", "training", 2),  # just after epoch 1's backup and metrics row
    ("write:model.keras", "training", 3),  # training done, model.keras half-written
    ("evaluate", "training", 3),  # model.keras written, evaluation under way
    ("export", "evaluated", 3),  # the SavedModel written into its staging folder
    ("phase:finished", "finished", 3),  # finished recorded, backup not yet deleted
]
# PyTorch and JAX: the backend's own restore of weights and optimizer state mid-epoch, the export,
# and the end (the phases between are backend-independent file handling).
KILLS_HERE = KILLS if BACKEND == "tensorflow" or ALL_FAULTS else [KILLS[0], KILLS[4], KILLS[5]]


@pytest.mark.fault_slow
@pytest.mark.timeout(1800)  # about 3 minutes on 2 idle cores; generous for a loaded machine
def test_a_run_killed_in_every_phase_ends_like_an_uninterrupted_one(tmp_path, tiny_dataset, reference):
    output = tmp_path / "run"
    config = tiny_config(tiny_dataset, output)
    for kill, phase, committed in KILLS_HERE:
        code, lines, err = drive(tmp_path, config, kill)
        assert code == -9, f"{kill}: exit {code}\n{err[-3000:]}"
        assert not processes_using(output), kill  # no orphaned child process
        assert phase_of(output) == phase, kill
        if phase != "finished":
            assert json.loads((output / "backup" / "backup.json").read_text())["epoch"] == committed, kill
        rows = (output / "metrics.csv").read_text().strip().splitlines()[1:]
        assert [int(r.split(",")[0]) for r in rows] == list(range(committed)), kill
    assert (output / "backup").is_dir()  # the kill came before the backup was deleted

    kept = {p.name: p.read_bytes() for p in output.iterdir() if p.is_file()}
    code, lines, err = drive(tmp_path, config)  # the rerun finds a finished run: one line, nothing changed
    assert code == 0 and [json.loads(line)["event"] for line in lines] == ["already_finished"], (lines, err)
    assert {p.name: p.read_bytes() for p in output.iterdir() if p.is_file()} == kept
    assert not (output / "backup").exists()  # only the backup the kill left is gone
    rows, kernel, iterations, results = final_state(output)
    ref_rows, ref_kernel, ref_iterations, ref_results = reference
    assert iterations == ref_iterations == EPOCHS * STEPS
    assert rows[0] == ref_rows[0] and len(rows) == len(ref_rows) == EPOCHS + 1
    np.testing.assert_allclose(
        np.array([r.split(",") for r in rows[1:]], float),
        np.array([r.split(",") for r in ref_rows[1:]], float),
        rtol=1e-5,
    )
    np.testing.assert_allclose(kernel, ref_kernel, rtol=1e-5, atol=1e-6)
    for key in ("test_loss", "test_accuracy", "val_loss", "val_accuracy", "epochs_run"):
        assert results[key] == pytest.approx(ref_results[key], rel=1e-5), key
    assert sorted(os.listdir(output / "saved_model")) == ["1"]  # exported once, no staging folder left
    assert not [p for p in output.rglob("*") if ".tmp-" in p.name or ".partial" in p.name]


# ----------------------------------------------------------------------------- damaged files


class Interrupt(keras.callbacks.Callback):
    """Stop the process (as a kill would) at the end of epoch `epoch`, after its backup."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("killed")


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, tiny_dataset):
    """A run directory whose training stopped after epoch 0's backup (copied by each test)."""
    output = tmp_path_factory.mktemp("interrupted") / "run"
    config = TrainConfig(**tiny_config(tiny_dataset, output, epochs=2, export=False))
    with pytest.raises(KeyboardInterrupt):
        train.train(config, callbacks=[Interrupt(0)])
    return config, output


def damage(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "flipped":  # every byte of the middle quarter inverted
        middle = slice(len(data) * 3 // 8, len(data) * 5 // 8)
        path.write_bytes(data[: middle.start] + bytes(b ^ 0xFF for b in data[middle]) + data[middle.stop :])
    else:  # another file type under the same name
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)


def copy_run(source, target):
    import shutil

    shutil.copytree(source, target)
    return target


DAMAGES = ("truncated", "empty", "flipped", "png")
RESUME_FILES = ("state.json", "config.json", "backup/backup.json", "backup/weights")


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", RESUME_FILES)
def test_a_damaged_file_of_an_interrupted_run_is_named_in_one_line(tmp_path, interrupted, name, how):
    config, source = interrupted
    output = copy_run(source, tmp_path / "run")
    if name == "backup/weights":
        name = "backup/" + json.loads((output / "backup" / "backup.json").read_text())["weights"]
    damage(output / name, how)
    before = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}
    with pytest.raises(ValueError) as error:
        train.train(TrainConfig(**{**vars(config), "output": str(output)}))
    message = str(error.value)
    assert "\n" not in message and str(output / name) in message, message
    assert "--overwrite" in message
    assert {p: p.read_bytes() for p in output.rglob("*") if p.is_file()} == before  # nothing changed


@pytest.mark.single_backend
@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_metrics_csv_is_rewritten_from_the_backup(tmp_path, interrupted, how):
    config, source = interrupted
    output = copy_run(source, tmp_path / "run")
    damage(output / "metrics.csv", how)
    results = train.train(TrainConfig(**{**vars(config), "output": str(output)}))
    assert results["status"] == "finished" and results["epochs_run"] == 2
    rows = (output / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,accuracy,loss") and [r.split(",")[0] for r in rows[1:]] == ["0", "1"]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_dataset, interrupted):
    """A run directory stopped after the phase `evaluated` (before its export)."""
    config, source = interrupted
    output = copy_run(source, tmp_path_factory.mktemp("evaluated") / "run")
    config = TrainConfig(**{**vars(config), "output": str(output)})
    original = train._export
    train._export = lambda *args: (_ for _ in ()).throw(KeyboardInterrupt("killed"))
    try:
        with pytest.raises(KeyboardInterrupt):
            train.train(config)
    finally:
        train._export = original
    assert phase_of(output) == "evaluated"
    return config, output


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", ["model.keras", "results.json"])
def test_a_damaged_file_of_an_evaluated_run_is_named_in_one_line(tmp_path, evaluated, name, how):
    config, source = evaluated
    output = copy_run(source, tmp_path / "run")
    damage(output / name, how)
    with pytest.raises(ValueError) as error:
        train.train(TrainConfig(**{**vars(config), "output": str(output)}))
    message = str(error.value)
    assert "\n" not in message and str(output / name) in message, message


@pytest.mark.single_backend
def test_a_run_directory_with_other_options_is_refused_and_left_alone(tmp_path, interrupted):
    config, source = interrupted
    output = copy_run(source, tmp_path / "run")
    before = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}
    changed = TrainConfig(**{**vars(config), "output": str(output), "lr": 1e-3, "epochs": 3})
    with pytest.raises(ValueError, match=r"made with other options: --epochs 3 \(run has 2\), --lr 0.001 "):
        train.train(changed)
    assert {p: p.read_bytes() for p in output.rglob("*") if p.is_file()} == before
    changed.overwrite = True
    results = train.train(changed)
    assert results["epochs_run"] == 3
    assert json.loads((output / "config.json").read_text())["args"]["lr"] == 1e-3
