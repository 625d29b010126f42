"""Training a ViT: `vit_keras.train.train(TrainConfig(...))`, the library side of `vit-keras train`.

`train` reads a dataset (`vit_keras.data`), builds a ViT that takes raw 0-255 pixels, fits it
with AdamW + warm-up/cosine (`vit_keras.optim`), evaluates the validation and test splits once,
exports a TF Serving SavedModel and writes a run directory (its layout and phases:
`vit_keras.runs`).

Resuming: rerunning with the same options and --output does exactly the remaining work. A run
killed while training restarts the interrupted epoch from the backup written at the end of the
previous epoch (weights, optimizer state, data position), so every epoch is trained once and the
optimizer takes as many steps as an uninterrupted run; a run killed later skips what is done
(evaluation, export). A finished run is left as it is unless `overwrite=True`.

Picked defaults (when `batch_size`, `epochs` or `warmup` is None): see `pick_schedule`.

Set-up, before the first TensorFlow op: `vit_keras.performance.configure_cpu_threads` lets the
thread pools run on every allowed CPU, and `--precision auto` (the default) is resolved by
`vit_keras.performance.resolve_precision` (from the hardware, the backend and the model's width);
the run directory records the resolved policy, and a resumed run must resolve to the same one.
"""

import dataclasses
import math
import os
import pathlib
import platform
import sys
import time

import keras
import numpy as np

from vit_keras import data as vdata
from vit_keras import runs
from vit_keras.architectures import ARCHITECTURES
from vit_keras.curves import plot_training_curves
from vit_keras.distribute import setup_distribution
from vit_keras.model import ViT
from vit_keras.optim import make_optimizer
from vit_keras.performance import configure_cpu_threads, fast_compile_options, pick_jit_compile, resolve_precision
from vit_keras.predict import evaluate_model
from vit_keras.train_config import TrainConfig, flag

MIN_STEPS_PER_EPOCH = 20  # fewer: a warning that the optimizer gets few steps
TARGET_STEPS_PER_EPOCH = 50  # a picked batch size leaves at least this many steps per epoch (when it can)
TARGET_TOTAL_STEPS = 1000  # picked epochs give at least this many optimizer steps, within 5-50 epochs
TEST_LOSS_KIND = "categorical cross-entropy without label smoothing (as `vit-keras evaluate`)"


# ----------------------------------------------------------------------------- run metadata


def _versions():
    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": np.__version__}
    for name in ("tensorflow", "jax", "torch", "vit_keras"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    return versions


def _hardware():
    try:
        from keras.src.distribution import list_devices

        devices = [str(d) for d in list_devices()]
    except Exception:  # listing devices is informational only
        devices = []
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "devices": devices,
    }


def _say(config, message, event, **fields):
    """Tell the user: `message` on stdout, or under --quiet one JSON line {"event": event, **fields}."""
    print(runs.json_line({"event": event, **fields}) if config.quiet else message, flush=True)


def _warn(message):
    print(f"warning: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- choices


def pick_schedule(config, train_size, replicas=1):
    """{"batch_size", "epochs", "warmup", "steps_per_epoch", "picked": [names]} for a training split.

    Picked when None: the batch size (per device) is the largest power of two <= 128 that leaves
    at least 50 steps per epoch (8 at least); the epochs give at least 1,000 optimizer steps
    (5 to 50 epochs); the warm-up is a tenth of the epochs, at most one epoch.
    """
    batch = config.batch_size
    if batch is None:
        batch = 128
        while batch > 8 and math.ceil(train_size / (batch * replicas)) < TARGET_STEPS_PER_EPOCH:
            batch //= 2
    steps = max(1, math.ceil(train_size / (batch * replicas)))
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch)
    epochs = config.epochs or min(50, max(5, math.ceil(TARGET_TOTAL_STEPS / steps)))
    warmup = config.warmup if config.warmup is not None else min(1.0, epochs / 10)
    if warmup >= epochs:
        raise ValueError(f"--warmup must be fewer epochs than --epochs ({epochs}); found {warmup!r}.")
    picked = [name for name in ("batch_size", "epochs", "warmup") if getattr(config, name) is None]
    return {"batch_size": batch, "epochs": epochs, "warmup": warmup, "steps_per_epoch": steps, "picked": picked}


def model_config(config, image_shape, num_classes):
    """The `ViT` keyword arguments of `config.preset` with the overrides and the dataset's shape applied."""
    model = config.architecture()
    height, width, channels = image_shape
    native = height if height == width else (height, width)
    image_size = config.image_size or (model.get("image_size") if height is None else native) or 224
    preprocessing = config.preprocessing or ("mnist" if channels == 1 else "imagenet")
    model.update(
        image_size=image_size,
        in_channels=channels,
        num_classes=num_classes,
        preprocessing=None if preprocessing == "none" else preprocessing,
    )
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if any(s % model["patch_size"] for s in size):
        patch = model["patch_size"]
        if config.image_size:
            raise ValueError(
                f"--image-size {image_size} is not divisible by the patch size {patch}: "
                f"choose an image size that is a multiple of {patch}."
            )
        source = f"the dataset's images ({height} x {width})" if height is not None else f"preset {config.preset}"
        raise ValueError(
            f"the image size {image_size} (from {source}) is not divisible by the patch size {patch}: "
            f"pass --image-size with a multiple of {patch} (the images are resized to it), or another --patch-size."
        )
    return model


def build_model(model_kwargs, config):
    """The ViT of `model_kwargs`, with --weights loaded and --freeze-backbone applied."""
    model = ViT(name=config.preset, **model_kwargs)
    if config.weights:
        from vit_keras.pretrained import load_pretrained

        load_pretrained(model, config.weights)
    if config.freeze_backbone:
        for layer in model.layers:
            layer.trainable = layer.name == "head"
    return model


def compile_options(config, training_steps):
    """(`model.compile` keywords for --jit-compile and --steps-per-execution, why XLA is on or off).

    "on" / "off" are kept. "auto" is `vit_keras.performance.pick_jit_compile` for the whole run's
    `training_steps` (epochs x steps per epoch, also when resuming, so a resumed run compiles as it
    started): on TensorFlow, XLA only for runs long enough to pay for its compile (Keras' own "auto"
    leaves XLA off on CPU TensorFlow) and never for bfloat16 on the CPU, always on JAX, never on
    PyTorch. Steps per execution are those of `fast_compile_options`: as asked on TensorFlow (with
    or without XLA) and JAX, 1 on PyTorch.
    """
    options = fast_compile_options(config.steps_per_execution)
    if config.jit_compile == "auto":
        options["jit_compile"], reason = pick_jit_compile(training_steps, precision=config.precision)
        return options, f"--jit-compile auto: {reason}"
    options["jit_compile"] = config.jit_compile == "on"
    return options, "asked for with --jit-compile"


# ----------------------------------------------------------------------------- callbacks


class RunArtifacts(keras.callbacks.Callback):
    """At the end of each finite epoch: last.keras, and best.keras when `val_accuracy` improved.

    An epoch whose logs hold NaN or inf saves nothing, so neither file ever holds a diverged model.
    """

    def __init__(self, folder, best=None):
        super().__init__()
        self.folder, self.best = pathlib.Path(folder), best

    def on_epoch_end(self, epoch, logs=None):
        if not runs.history_is_finite(logs):
            return
        runs.save_model_atomic(self.model, self.folder / runs.LAST)
        value = (logs or {}).get("val_accuracy")
        if value is not None and (self.best is None or float(value) > self.best):
            self.best = float(value)
            runs.save_model_atomic(self.model, self.folder / runs.BEST)


class MetricsLog(keras.callbacks.Callback):
    """metrics.csv: the epochs committed to `backup`, plus the non-finite epoch that ended training.

    Rewritten whole after every epoch and when training (re)starts, so a resumed run lists each
    epoch once.
    """

    def __init__(self, path, backup):
        super().__init__()
        self.path, self.backup, self.rows = pathlib.Path(path), backup, []

    def on_train_begin(self, logs=None):
        self.rows = list(self.backup.history)
        runs.write_metrics_csv(self.path, self.rows)

    def on_epoch_end(self, epoch, logs=None):
        self.rows = list(self.backup.history)
        if not runs.history_is_finite(logs):
            self.rows.append({"epoch": epoch, **runs.finite_or_none({k: float(v) for k, v in logs.items()})})
        runs.write_metrics_csv(self.path, self.rows)


class JsonLines(keras.callbacks.Callback):
    """--quiet: one JSON line per epoch on stdout instead of the progress bar (NaN as null)."""

    def on_epoch_end(self, epoch, logs=None):
        print(
            runs.json_line({"event": "epoch", "epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}),
            flush=True,
        )


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` whose state survives a resumed run.

    `on_train_begin` replays, through Keras' own `on_epoch_end`, the logs of the epochs that
    `backup` restored, so `best` and `wait` are what they were when the run was killed and a
    resumed run stops at the same epoch as an uninterrupted one. When those epochs already met
    the stopping condition (a run killed after it stopped early), no epoch is left to train.

    Args:
        backup: the run's `vit_keras.runs.RunBackup`, listed before this callback so that its
            `on_train_begin` restores `backup.history` first.
        **kwargs: the arguments of `keras.callbacks.EarlyStopping`.
    """

    def __init__(self, backup, **kwargs):
        super().__init__(**kwargs)
        self.backup = backup

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for row in self.backup.history:
            self.on_epoch_end(row["epoch"], row)
        if self.stopped_epoch:  # `fit` starts at `_initial_epoch`, as set by RunBackup
            self.model._initial_epoch = self.params["epochs"]


def stopping_callbacks(callbacks):
    """What a TensorFlow worker other than the chief keeps of `make_callbacks`' list.

    The backup it resumes from, and every callback that decides when training stops (NaN, early
    stopping): all workers must stop at the same step, else the chief leaves `fit` while the others
    wait for it in a collective op. The others (files of the run directory) are the chief's.
    """
    kept = (runs.RunBackup, keras.callbacks.TerminateOnNaN, keras.callbacks.EarlyStopping)
    return [callback for callback in callbacks if isinstance(callback, kept)]


def make_callbacks(config, folder, backup, best=None):
    """The trainer's callbacks, in the order their epoch-end work must happen (backup commits last-but-one)."""
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        RunArtifacts(folder, best),
        backup,
        MetricsLog(folder / runs.METRICS, backup),
    ]
    if config.early_stopping:
        monitor = "val_loss" if config.val_fraction > 0 else "loss"
        callbacks.append(ResumableEarlyStopping(backup, monitor=monitor, patience=config.early_stopping))
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(folder / runs.TENSORBOARD), write_graph=False))
    if config.quiet:
        callbacks.append(JsonLines())
    return callbacks


# ----------------------------------------------------------------------------- the run directory


def _open_run(config, asked_precision=None):
    """(RunDirectory, its phase or None), after refusing a directory made with other options.

    `asked_precision`: the --precision given ("auto"), when `config.precision` is what it resolved to.
    """
    run = runs.RunDirectory(config.output or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}")
    if config.overwrite or not run.has_config():
        return run, None
    stored = run.read_config().get("args")
    stored = stored if isinstance(stored, dict) else {}
    wanted = config.run_options()
    differ = [name for name in wanted if stored.get(name, "<missing>") != wanted[name]]
    if differ:
        resolved = {}
        if asked_precision:  # "auto": say what it resolved to on this machine
            resolved["precision"] = f"{asked_precision} (resolves to {config.precision!r} here)"
        changes = ", ".join(
            f"{flag(n)} {resolved.get(n, repr(wanted[n]))} (run has {stored.get(n, 'nothing')!r})" for n in differ
        )
        raise ValueError(
            f"run directory {run.path} was made with other options: {changes}; rerun with its "
            f"options, choose another --output, or pass --overwrite to start it again."
        )
    return run, run.phase()


def _write_config(run, config, data, plan, model, setup, xla):
    if run.has_config():
        return
    splits = data["splits"]
    runs.write_json_atomic(
        run / runs.CONFIG,
        {
            "command": "vit-keras train " + " ".join(sys.argv[2:]),
            "args": config.run_options() | {"output": str(run.path)},
            "backend": keras.backend.backend(),
            "versions": _versions(),
            "hardware": _hardware(),
            "model": data["model"],
            "parameters": int(model.count_params()),
            "dataset": {
                "source": splits.source,
                "sizes": splits.sizes,
                "num_classes": splits.num_classes,
                "class_names": splits.class_names,
                "image_shape": list(splits.image_shape),
            },
            "augment": data["augment"],
            "schedule": data["schedule"],
            "steps_per_epoch": data["schedule"]["steps_per_epoch"],
            "global_batch": plan.global_batch,
            "distribute": {"mode": plan.mode, "replicas": plan.num_replicas},
            "precision": {"policy": config.precision, "reason": setup["precision_reason"]},
            "xla": {"jit_compile": xla["jit_compile"], "reason": xla["reason"]},
            "cpu_threads": setup["cpu_threads"],
        },
    )


# ----------------------------------------------------------------------------- training


def _prepare(config, plan, initial_epoch):
    """{"splits", "model" (ViT kwargs), "augment", "schedule", "train", "val", "test"} for the run."""
    folder_size = config.image_size or ARCHITECTURES[config.preset].get("image_size") or 224
    splits = vdata.load_dataset(
        config.dataset,
        data_dir=config.data_dir,
        image_size=folder_size,
        val_fraction=config.val_fraction,
        seed=config.seed,
        skip_bad_images=config.skip_bad_images,
    )
    schedule = pick_schedule(config, splits.sizes["train"], plan.num_replicas)
    plan.per_device_batch = schedule["batch_size"]
    kwargs = model_config(config, splits.image_shape, splits.num_classes)
    size = (kwargs["image_size"],) * 2 if isinstance(kwargs["image_size"], int) else tuple(kwargs["image_size"])
    augment = config.augment or vdata.default_augmentation(splits.image_shape[-1])
    train_epochs = vdata.training_epochs(
        splits,
        size,
        plan.global_batch,
        augment=augment,
        mixup=config.mixup,
        cutmix=config.cutmix,
        seed=config.seed,
        worker=plan.worker_index,
    )
    val_ds, test_ds = vdata.evaluation_pipelines(splits, size, plan.global_batch)
    batches = int(plan.shard(train_epochs.batches(0)).cardinality())
    if batches > 0:  # e.g. JAX data-parallel drops the last partial batch
        schedule["steps_per_epoch"] = min(schedule["steps_per_epoch"], batches)
    # The epochs left, each in the order (seed, epoch) gives and cut to the epoch's steps: a resumed
    # run reads what an uninterrupted run reads from its next epoch on.
    # At least one epoch even when none is left: Keras' JAX and PyTorch trainers read a batch to build
    # the loss and metrics before they find that no epoch is left to train.
    steps, end = schedule["steps_per_epoch"], max(schedule["epochs"], initial_epoch + 1)
    stream = train_epochs.stream(initial_epoch, end, per_epoch=lambda batches: plan.shard(batches).take(steps))
    if plan.strategy is not None:  # tf.distribute reads its auto-shard option from the outer dataset
        stream = plan.shard(stream)
    return {
        "splits": splits,
        "model": kwargs,
        "augment": augment,
        "schedule": schedule,
        "train": stream,
        "val": plan.shard(val_ds) if val_ds is not None else None,
        "test": plan.shard(test_ds) if test_ds is not None else None,
    }


def _compiled_model(config, data, plan):
    """(the compiled model, {"jit_compile", "reason"}: whether XLA is on and why)."""
    schedule = data["schedule"]
    steps = schedule["steps_per_epoch"]
    options, reason = compile_options(config, steps * schedule["epochs"])
    with plan.scope():
        model = build_model(data["model"], config)
        optimizer = make_optimizer(
            model,
            learning_rate=plan.scale_learning_rate(config.lr),
            total_steps=steps * schedule["epochs"],
            warmup_steps=int(round(schedule["warmup"] * steps)),
            weight_decay=config.weight_decay,
            clipnorm=config.clipnorm,
            ema=config.ema,
            layer_decay=config.layer_decay,
        )
        loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing)
        model.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
            **options,
        )
    return model, {"jit_compile": options["jit_compile"], "reason": reason}


def _announce(config, run, data, model, resume, setup, xla):
    schedule, splits = data["schedule"], data["splits"]
    if not config.quiet:  # under --quiet these are fields of the "start" event
        print(f"Precision: {config.precision} ({setup['precision_reason']})", flush=True)
        print(f"XLA: {'on' if xla['jit_compile'] else 'off'} ({xla['reason']})", flush=True)
        print(f"CPU threads: {setup['cpu_threads']['summary']}", flush=True)
    picked = {name: schedule[name] for name in schedule["picked"]}
    steps = schedule["steps_per_epoch"]
    text = (
        f"{'Resuming at epoch ' + str(resume['epoch'] + 1) if resume else 'Training'} {config.preset} "
        f"({model.count_params():,} parameters) on {splits.source} {splits.sizes}, backend "
        f"{keras.backend.backend()}: {schedule['epochs']} epochs of {steps} steps, batch {schedule['batch_size']}"
        + (f" (picked: {', '.join(f'{flag(k)} {v}' for k, v in picked.items())})" if picked else "")
        + f"; run directory {run.path}"
    )
    _say(
        config,
        text,
        "start",
        output=str(run.path),
        resumed_epoch=resume["epoch"] if resume else 0,
        picked=picked,
        epochs=schedule["epochs"],
        batch_size=schedule["batch_size"],
        steps_per_epoch=steps,
        precision=config.precision,
        precision_reason=setup["precision_reason"],
        jit_compile=xla["jit_compile"],
        jit_compile_reason=xla["reason"],
        cpu_threads=setup["cpu_threads"]["summary"],
    )
    if steps < MIN_STEPS_PER_EPOCH:
        _warn(
            f"only {steps} training steps per epoch: the optimizer may not get enough steps to learn; "
            f"a smaller --batch-size gives more."
        )
    if config.backup_every:
        _warn(
            "--backup-every has no effect: a killed run restarts its interrupted epoch from the backup "
            "of the previous epoch's end, so no batch is trained twice."
        )


def _fit(config, run, plan, callbacks, setup):
    """Train (or resume training); return (model or None when no epoch was finite, data, rows of metrics)."""
    backup = runs.RunBackup(run / runs.BACKUP, is_chief=plan.is_chief, collective_save=plan.collective_save)
    resume = runs.read_backup(run / runs.BACKUP)
    data = _prepare(config, plan, resume["epoch"] if resume else 0)
    model, xla = _compiled_model(config, data, plan)
    folder = run.path if plan.is_chief else pathlib.Path(plan.output_path(run.path))
    if plan.is_chief:
        folder.mkdir(parents=True, exist_ok=True)
        _write_config(run, config, data, plan, model, setup, xla)
        run.set_phase("training")
    _announce(config, run, data, model, resume, setup, xla)
    accuracies = [h["val_accuracy"] for h in (resume or {}).get("history", []) if h.get("val_accuracy") is not None]
    own = make_callbacks(config, folder, backup, max(accuracies, default=None))
    own = own if plan.is_chief or plan.collective_save else stopping_callbacks(own)
    log = next((c for c in own if isinstance(c, MetricsLog)), None)
    schedule = data["schedule"]
    history = model.fit(
        data["train"],
        validation_data=data["val"],
        epochs=schedule["epochs"],
        steps_per_epoch=schedule["steps_per_epoch"],
        callbacks=own + list(callbacks),
        verbose=0 if config.quiet else (1 if sys.stdout.isatty() else 2),
        shuffle=False,
    )
    rows = log.rows if log else _worker_rows(backup, history)
    if rows and rows[-1].get("loss") is None:  # diverged: the last finite epoch's model, if any
        model = runs.load_keras_file(folder / runs.LAST) if (folder / runs.LAST).is_file() else None
    return model, data, rows


def _worker_rows(backup, history):
    """The epochs a worker without the metrics log knows of, as the chief's log lists them: those
    of the backup, plus the non-finite epoch that ended `fit` (so every worker sees the divergence)."""
    last = {name: values[-1] for name, values in history.history.items() if values}
    if last and not runs.history_is_finite(last):
        return [*backup.history, {"epoch": history.epoch[-1], **runs.finite_or_none(last)}]
    return backup.history


def _worker_directory(plan, run):
    """Where this worker writes its copy of the run's files: the run directory on the chief, a private
    scratch folder on the others (`plan.output_path`)."""
    if plan.is_chief:
        return run
    path = pathlib.Path(plan.output_path(run.path))
    path.mkdir(parents=True, exist_ok=True)
    return runs.RunDirectory(path)


def _evaluate(config, run, model, data, rows, started, plan):
    """results.json after training: status, epochs, validation and test metrics; phase `evaluated`."""
    from vit_keras.optim import repair_ema_after_fit

    diverged = bool(rows) and rows[-1].get("loss") is None
    results = {
        "status": "nan_loss" if diverged else "finished",
        "epochs_run": len(rows),
        "backend": keras.backend.backend(),
    }
    if model is not None:
        repair_ema_after_fit(getattr(model, "optimizer", None))  # None: the last finite epoch, reloaded
        runs.save_model_atomic(model, run / runs.MODEL)
        for split in ("val", "test"):
            if data[split] is not None and not diverged:
                prefix = "val" if split == "val" else "test"
                with plan.scope():  # its metrics must live under the strategy that holds the model
                    loss, accuracy = evaluate_model(model, data[split])
                results.update({f"{prefix}_loss": loss, f"{prefix}_accuracy": accuracy})
        if "test_loss" in results:
            results.update(test_examples=data["splits"].sizes["test"], test_loss_kind=TEST_LOSS_KIND)
    if (run / runs.METRICS).is_file() and rows:
        runs.write_atomic(run / runs.CURVES, lambda tmp: plot_training_curves(run / runs.METRICS, tmp))
    results["wall_seconds"] = round(time.time() - started, 1)
    runs.write_json_atomic(run / runs.RESULTS, results)
    run.set_phase("evaluated")
    return results


def _export(config, run, model, results, class_names):
    """The float32 SavedModel at saved_model/1/ (replacing a half-done one); phase `exported`.

    float32 whatever the training precision: it serves at full speed on every CPU and GPU
    (`vit-keras export --precision mixed_bfloat16 --jit-compile` writes the faster one for CPUs
    with AVX512_BF16 or AMX).
    """
    if config.export and results["status"] == "finished" and model is not None:
        from vit_keras.export import export_saved_model

        folder = str(run / runs.SAVED_MODEL)
        path = export_saved_model(
            model, folder, version=1, overwrite=True, class_names=class_names, precision="float32"
        )
        results["saved_model"] = str(path)
        runs.write_json_atomic(run / runs.RESULTS, results)
    run.set_phase("exported")
    return results


def _set_up(config):
    """(config with --precision resolved, {"cpu_threads", "precision_reason", "asked_precision"}, plan).

    Runs before the first TensorFlow op, so that the CPU thread settings reach TensorFlow's pools,
    and sets up the distribution before resolving the precision, whose device query is the first
    JAX computation (`jax.distributed.initialize` must come before it).
    """
    cpu_threads = configure_cpu_threads()
    plan = setup_distribution(config.distribute, config.batch_size or 1)
    precision, reason = resolve_precision(config.precision, width=config.architecture()["embed_dim"])
    asked = config.precision if config.precision != precision else None
    setup = {"cpu_threads": cpu_threads, "precision_reason": reason, "asked_precision": asked}
    return dataclasses.replace(config, precision=precision), setup, plan


def train(config, callbacks=()):
    """Train, evaluate and export as `config` says, or resume a killed run; return its results.

    Args:
        config: a `TrainConfig`; validated first (nothing is written before that).
        callbacks: extra `keras.callbacks.Callback`s for `fit`.

    Returns:
        The results dict (as in results.json) plus "output"; "already_finished": True when the
        run directory held a finished run (nothing is changed then).

    Raises:
        ValueError: a bad option (naming its flag), a run directory made with other options, an
            unreadable file of the run directory (naming it).
        FileNotFoundError: a missing dataset.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a vit_keras.train_config.TrainConfig; found {type(config).__name__}.")
    started = time.time()
    config.validate()
    config, setup, plan = _set_up(config)
    run, phase = _open_run(config, setup["asked_precision"])
    if phase == "finished":
        run.finish()  # a kill may have left the backup of a finished run
        results = run.read_results()
        _say(
            config,
            f"Run {run.path} is already finished; pass --overwrite to train it again.",
            "already_finished",
            output=str(run.path),
        )
        return {**results, "output": str(run.path), "already_finished": True}
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_dtype_policy(config.precision)
    if plan.is_chief and phase is None:  # a new run, --overwrite, or one killed before config.json
        run.clear()
    if plan.is_chief:
        run.clean_stale()
    # Every worker evaluates, saves and exports as the chief does (under a multi-worker strategy
    # these are collective), the others into their scratch copy of the run directory.
    own = _worker_directory(plan, run)
    model = None
    if phase in (None, "training"):
        model, data, rows = _fit(config, run, plan, callbacks, setup)
        results = _evaluate(config, own, model, data, rows, started, plan)
    else:
        results = run.read_results()
    if phase in (None, "training", "evaluated"):
        if phase == "evaluated" and results.get("status") == "finished":  # checks model.keras before finishing
            model = runs.load_keras_file(run / runs.MODEL)
        results = _export(config, own, model, results, runs.run_class_names(run.path))
    if plan.is_chief:
        run.finish()
    return {**results, "output": str(run.path)}
