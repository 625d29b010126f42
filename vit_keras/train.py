"""Training from the command line: `vit-keras train`, `vit-keras evaluate`, `vit-keras predict`.

`vit-keras train` reads a dataset (`vit_keras.data`), builds a ViT that takes raw 0-255 pixels,
fits it with AdamW + warm-up/cosine (`vit_keras.optim`), evaluates the test split once, and
writes a run directory:

    config.json     every hyperparameter, the dataset, the backend and library versions
    metrics.csv     per-epoch loss/accuracy (CSVLogger); curves.png plots it
    best.keras      the best epoch by validation accuracy; last.keras the last finite epoch
    model.keras     the final model (the EMA weights when --ema is given)
    results.json    test loss and accuracy, epochs run, wall time
    tensorboard/    TensorBoard logs; backup/ holds the resumable state while a run is unfinished
    saved_model/<version>/  a TF Serving SavedModel, when `vit_keras.export` is installed

Rerunning the same command with the same --output resumes an interrupted run
(`keras.callbacks.BackupAndRestore`: the weights, optimizer state and epoch).
"""

import argparse
import json
import math
import os
import pathlib
import platform
import sys
import time

import keras
import numpy as np

from vit_keras import data as vdata
from vit_keras.curves import plot_training_curves
from vit_keras.distribute import DISTRIBUTE_MODES, setup_distribution
from vit_keras.model import STEMS, ViT
from vit_keras.optim import make_optimizer, repair_ema_after_fit
from vit_keras.performance import fast_compile_options
from vit_keras.presets import PRESETS, preset_config

# The seed project's model: 1 block, 1 head, width 100, patches of 7 on 28x28 digits.
SEED_MODEL = dict(patch_size=7, embed_dim=100, depth=1, num_heads=1, mlp_ratio=4.0, dropout=0.1)
MODEL_CHOICES = ("seed",) + tuple(PRESETS)
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
JIT_CHOICES = ("auto", "on", "off")
MODEL_OVERRIDES = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_dim", "dropout",
                   "attention_dropout", "drop_path", "pooling", "stem")
RUN_FILES = ("config.json", "metrics.csv", "curves.png", "model.keras", "results.json")


class TrainingError(Exception):
    """A run that cannot start or finish; the CLI prints it and exits with status 2."""


# ----------------------------------------------------------------------------- helpers


def _versions():
    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": np.__version__}
    for name in ("tensorflow", "jax", "torch", "vit_keras"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    return versions


def _hardware():
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "devices": [str(d) for d in _devices()]}


def _devices():
    try:
        from keras.src.distribution import list_devices

        return list_devices()
    except Exception:  # listing devices is informational only
        return []


def _write_json(path, payload):
    tmp = pathlib.Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def model_config(args, image_shape, num_classes):
    """The `ViT` keyword arguments for `args.preset` with the CLI overrides applied."""
    overrides = {k: getattr(args, k) for k in MODEL_OVERRIDES if getattr(args, k, None) is not None}
    base = dict(SEED_MODEL) if args.preset == "seed" else preset_config(args.preset)
    config = {**base, **overrides}
    height, width, channels = image_shape
    image_size = args.image_size or (
        config.get("image_size") if height is None else (height if height == width else (height, width))
    ) or 224
    preprocessing = args.preprocessing or ("mnist" if channels == 1 else "imagenet")
    config.update(image_size=image_size, in_channels=channels, num_classes=num_classes,
                  preprocessing=None if preprocessing == "none" else preprocessing)
    patch = config["patch_size"]
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if any(s % patch for s in size):
        raise ValueError(
            f"--image-size {image_size} is not divisible by the patch size {patch}: "
            f"choose an image size that is a multiple of {patch}."
        )
    return config


def build_model(config, args):
    """The ViT of `config`, with --weights loaded and --freeze-backbone applied."""
    model = ViT(name=args.preset if args.preset != "seed" else "vit_seed", **config)
    if args.weights:
        from vit_keras.pretrained import load_pretrained

        load_pretrained(model, args.weights)
    if args.freeze_backbone:
        for layer in model.layers:
            layer.trainable = layer.name == "head"
    return model


class SaveLastFinite(keras.callbacks.Callback):
    """Save the model at each epoch end whose loss is finite (a NaN epoch keeps the last good one)."""

    def __init__(self, path):
        super().__init__()
        self.path = str(path)

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and math.isfinite(float(loss)):
            self.model.save(self.path)


class JsonLines(keras.callbacks.Callback):
    """--quiet: one JSON line per epoch on stdout instead of the progress bar."""

    def on_epoch_end(self, epoch, logs=None):
        record = {"event": "epoch", "epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        print(json.dumps(record), flush=True)


def make_callbacks(output, args, resuming):
    callbacks = [
        keras.callbacks.BackupAndRestore(
            str(output / "backup"), save_freq=args.backup_every or "epoch", delete_checkpoint=True
        ),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(output / "metrics.csv"), append=resuming),
        SaveLastFinite(output / "last.keras"),
    ]
    if args.val_fraction > 0:
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(output / "best.keras"), monitor="val_accuracy", mode="max", save_best_only=True))
    if args.early_stopping:
        monitor = "val_loss" if args.val_fraction > 0 else "loss"
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=args.early_stopping, restore_best_weights=False))
    if args.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(output / "tensorboard"), write_graph=False))
    if args.quiet:
        callbacks.append(JsonLines())
    return callbacks


def compile_options(args):
    """`model.compile` keywords for --jit-compile and --steps-per-execution.

    "auto" takes the fast path of `vit_keras.performance`: XLA on TensorFlow and JAX (Keras' own
    "auto" leaves XLA off on CPU TensorFlow), eager on PyTorch.
    """
    options = fast_compile_options(args.steps_per_execution)
    if args.jit_compile != "auto":
        options["jit_compile"] = args.jit_compile == "on"
    return options


def _say(args, message):
    if args.quiet:
        return
    print(message, flush=True)


# ----------------------------------------------------------------------------- train


def train(args, extra_callbacks=()):
    """Run `vit-keras train` for parsed `args`; return the results dict (see module docstring)."""
    started = time.time()
    if args.precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {list(PRECISIONS)}; found {args.precision!r}.")
    if args.jit_compile not in JIT_CHOICES:
        raise ValueError(f"--jit-compile must be one of {list(JIT_CHOICES)}; found {args.jit_compile!r}.")
    for name in ("epochs", "batch_size", "steps_per_execution"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer; found {getattr(args, name)}.")
    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_dtype_policy(args.precision)
    plan = setup_distribution(args.distribute, args.batch_size)

    image_size_for_folders = args.image_size or PRESETS.get(args.preset, {}).get("image_size") or (
        28 if args.preset == "seed" else 224)
    splits = vdata.load_dataset(args.dataset, data_dir=args.data_dir, image_size=image_size_for_folders,
                                val_fraction=args.val_fraction, seed=args.seed)
    config = model_config(args, splits.image_shape, splits.num_classes)
    size = config["image_size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    augment = args.augment or vdata.default_augmentation(splits.image_shape[-1])
    train_ds, val_ds, test_ds = vdata.pipelines(
        splits, size, plan.global_batch, augment=augment, mixup=args.mixup, cutmix=args.cutmix, seed=args.seed)
    train_ds, val_ds = plan.shard(train_ds), (plan.shard(val_ds) if val_ds is not None else None)
    test_ds = plan.shard(test_ds) if test_ds is not None else None
    steps_per_epoch = max(1, math.ceil(splits.sizes["train"] / plan.global_batch))
    if args.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, args.steps_per_epoch)
        train_ds = train_ds.repeat()

    output = pathlib.Path(args.output or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}")
    resuming = (output / "backup").is_dir()
    with plan.scope():
        model = build_model(config, args)
        optimizer = make_optimizer(
            model, learning_rate=plan.scale_learning_rate(args.lr), total_steps=steps_per_epoch * args.epochs,
            warmup_steps=int(round(args.warmup * steps_per_epoch)), weight_decay=args.weight_decay,
            clipnorm=args.clipnorm, ema=args.ema, layer_decay=args.layer_decay)
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=args.label_smoothing),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
            **compile_options(args),
        )

    run_config = {
        "command": "vit-keras train " + " ".join(getattr(args, "argv", None) or sys.argv[2:]),
        "args": {k: v for k, v in vars(args).items() if k not in ("func", "argv")},
        "backend": keras.backend.backend(),
        "versions": _versions(),
        "hardware": _hardware(),
        "model": config,
        "parameters": int(model.count_params()),
        "dataset": {"source": splits.source, "sizes": splits.sizes, "num_classes": splits.num_classes,
                    "class_names": splits.class_names, "image_shape": list(splits.image_shape)},
        "augment": augment,
        "steps_per_epoch": steps_per_epoch,
        "global_batch": plan.global_batch,
        "distribute": {"mode": plan.mode, "replicas": plan.num_replicas},
    }
    if plan.is_chief:
        output.mkdir(parents=True, exist_ok=True)
        _write_json(output / "config.json", run_config)
    _say(args, f"{'Resuming' if resuming else 'Training'} {config.get('name', args.preset)} "
               f"({model.count_params():,} parameters) on {splits.source}: {splits.sizes}, "
               f"backend {keras.backend.backend()}, run directory {output}")

    # All workers resume from the chief's backup in `output`. JAX processes save together, so
    # there the others run the chief's saving callbacks too, into a scratch folder.
    worker_output = output if plan.is_chief else pathlib.Path(plan.output_path(output))
    backup = plan.backup_callback(str(output / "backup"), save_freq=args.backup_every or "epoch", delete_checkpoint=True)
    if plan.is_chief or plan.collective_save:
        worker_output.mkdir(parents=True, exist_ok=True)
        callbacks = [backup] + [c for c in make_callbacks(worker_output, args, resuming)
                                if not isinstance(c, keras.callbacks.BackupAndRestore)]
    else:
        callbacks = [backup, keras.callbacks.TerminateOnNaN()]
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    fit_started = time.time()
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=args.epochs, steps_per_epoch=steps_per_epoch if args.steps_per_epoch else None,
        callbacks=list(callbacks) + list(extra_callbacks), verbose=verbose, shuffle=False,
    )
    fit_seconds = time.time() - fit_started
    repair_ema_after_fit(model.optimizer)
    losses = history.history.get("loss", [])
    diverged = bool(losses) and not math.isfinite(float(losses[-1]))
    if diverged and (output / "last.keras").is_file():
        model = keras.saving.load_model(output / "last.keras", compile=False)
        model.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])

    results = {"status": "nan_loss" if diverged else "finished", "epochs_run": len(losses),
               "fit_seconds": round(fit_seconds, 1), "backend": keras.backend.backend()}
    if val_ds is not None and not diverged:
        val_loss, val_acc = model.evaluate(val_ds, verbose=0)
        results.update(val_loss=float(val_loss), val_accuracy=float(val_acc))
    if test_ds is not None and not diverged:
        test_loss, test_acc = model.evaluate(test_ds, verbose=0)
        results.update(test_loss=float(test_loss), test_accuracy=float(test_acc), test_examples=splits.sizes["test"])
    results["wall_seconds"] = round(time.time() - started, 1)

    if plan.is_chief or plan.collective_save:  # JAX: every process joins the saves
        out = worker_output
        if not diverged:
            model.save(out / "model.keras")
        elif (out / "last.keras").is_file():
            model.save(out / "model.keras")
        if (out / "metrics.csv").is_file():
            try:
                plot_training_curves(out / "metrics.csv", out / "curves.png")
            except ValueError:
                pass
        export_path = _export(model, out, splits.class_names) if args.export and not diverged else None
        if export_path and plan.is_chief:
            results["saved_model"] = str(export_path)
        _write_json(out / "results.json", results)
    results["output"] = str(output)
    return results


def _export(model, output, class_names):
    try:
        from vit_keras.export import export_saved_model
    except ModuleNotFoundError as error:
        if error.name == "vit_keras.export":
            return None
        raise
    return export_saved_model(model, str(output / "saved_model"), class_names=class_names, overwrite=True)


def _train_command(args):
    try:
        results = train(args)
    except (ValueError, FileNotFoundError, TrainingError) as error:
        print(f"vit-keras train: error: {error}", file=sys.stderr)
        return 2
    output = pathlib.Path(results["output"])
    if args.quiet:
        print(json.dumps({"event": "done", **results}), flush=True)
    else:
        print(f"\nRun directory: {output}")
        for name in RUN_FILES + ("best.keras", "last.keras", "tensorboard"):
            if (output / name).exists():
                print(f"  {output / name}")
        if "test_accuracy" in results:
            print(f"Test accuracy: {results['test_accuracy']:.4f}  (loss {results['test_loss']:.4f}, "
                  f"{results['test_examples']} examples)")
        if results.get("saved_model"):
            print(f"SavedModel: {results['saved_model']}")
        print(f"Wall time: {results['wall_seconds']:.0f} s")
    return 1 if results["status"] == "nan_loss" else 0


# ----------------------------------------------------------------------------- evaluate / predict


def load_run_model(path):
    """(model, run config or {}) from a run directory or a `.keras` file."""
    path = pathlib.Path(path)
    config = {}
    if path.is_dir():
        if (path / "config.json").is_file():
            config = json.loads((path / "config.json").read_text())
        model_path = path / "model.keras"
        if not model_path.is_file():
            raise FileNotFoundError(f"run directory {path} has no model.keras.")
    elif path.is_file():
        model_path = path
        if (path.parent / "config.json").is_file():
            config = json.loads((path.parent / "config.json").read_text())
    else:
        raise FileNotFoundError(f"model: {path} is neither a run directory nor a .keras file.")
    if model_path.suffix != ".keras":
        raise ValueError(f"model: expected a .keras file; found {model_path.name}.")
    import vit_keras.optim  # noqa: F401  (registers LayerDecayAdamW for loading)

    try:
        model = keras.saving.load_model(model_path, compile=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"model: {model_path} cannot be loaded: {error}") from error
    return model, config


def evaluate(path, dataset=None, data_dir=None, batch_size=128):
    """Test loss and accuracy of a run's (or a `.keras` file's) model on its dataset's test split."""
    model, config = load_run_model(path)
    run_args = config.get("args", {})
    dataset = dataset or run_args.get("dataset") or "mnist-sample"
    data_dir = data_dir or run_args.get("data_dir")
    if model.data_format != "channels_last":
        raise ValueError("evaluate: only channels_last models are supported.")
    height, width = model.image_size
    splits = vdata.load_dataset(dataset, data_dir=data_dir, image_size=(height, width), val_fraction=0.0,
                                seed=run_args.get("seed", 0))
    if splits.test is None:
        raise ValueError(f"dataset {dataset} has no test split to evaluate.")
    classes = model.get_layer("head").units
    if splits.num_classes > classes:
        raise ValueError(f"dataset {dataset} has {splits.num_classes} classes; the model predicts {classes}.")
    test = vdata.make_pipeline(splits.test, (height, width), batch_size, classes)
    model.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=model.classifier_activation is None),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    loss, accuracy = model.evaluate(test, verbose=0)
    return {"dataset": splits.source, "test_examples": splits.sizes["test"],
            "test_loss": float(loss), "test_accuracy": float(accuracy)}


def _evaluate_command(args):
    try:
        results = evaluate(args.model, args.dataset, args.data_dir, args.batch_size)
    except (ValueError, FileNotFoundError) as error:
        print(f"vit-keras evaluate: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(results))
    return 0


def load_images(paths, image_size, channels):
    """A float32 batch of raw-pixel images from files, resized to `image_size`."""
    images = []
    color_mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels)
    if color_mode is None:
        raise ValueError(f"model: expected 1, 3 or 4 input channels; found {channels}.")
    for path in paths:
        if not pathlib.Path(path).is_file():
            raise FileNotFoundError(f"image {path} does not exist.")
        try:
            image = keras.utils.load_img(path, color_mode=color_mode, target_size=image_size)
        except Exception as error:  # PIL raises UnidentifiedImageError and friends
            raise ValueError(f"image {path} cannot be decoded: {error}") from error
        images.append(keras.utils.img_to_array(image, data_format="channels_last"))
    return np.stack(images).astype("float32")


def predict(path, images, top_k=5):
    """[{image, top: [(class name, score), ...]}] for image files with a run's model."""
    model, config = load_run_model(path)
    if model.data_format != "channels_last":
        raise ValueError("predict: only channels_last models are supported.")
    batch = load_images(images, tuple(model.image_size), model.in_channels)
    outputs = keras.ops.convert_to_numpy(model.predict(batch, verbose=0)).astype("float64")
    if model.classifier_activation is None:
        outputs = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        outputs /= outputs.sum(axis=1, keepdims=True)
    names = config.get("dataset", {}).get("class_names") or [str(i) for i in range(outputs.shape[1])]
    predictions = []
    for image, scores in zip(images, outputs):
        order = np.argsort(-scores)[:top_k]
        predictions.append({"image": str(image), "top": [(names[i], float(scores[i])) for i in order]})
    return predictions


def _predict_command(args):
    try:
        predictions = predict(args.model, args.images, args.top_k)
    except (ValueError, FileNotFoundError) as error:
        print(f"vit-keras predict: error: {error}", file=sys.stderr)
        return 2
    for p in predictions:
        if args.json:
            print(json.dumps(p))
        else:
            print(p["image"] + ": " + ", ".join(f"{name} {score:.3f}" for name, score in p["top"]))
    return 0


# ----------------------------------------------------------------------------- CLI


def add_train_arguments(parser):
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="mnist-sample",
                      help="mnist-sample (bundled, default) | mnist | idx:PATH | npz:PATH | folder:PATH | tfds:NAME")
    data.add_argument("--data-dir", help="folder of the MNIST IDX files for --dataset mnist; TFDS data dir")
    data.add_argument("--val-fraction", type=float, default=0.1, help="share of train held out (seeded); 0.1")
    data.add_argument("--augment", choices=vdata.AUGMENTATIONS,
                      help="default: digits (1 channel) or natural (colour)")
    data.add_argument("--mixup", type=float, default=0.0, help="MixUp alpha (0: off)")
    data.add_argument("--cutmix", type=float, default=0.0, help="CutMix alpha (0: off)")

    model = parser.add_argument_group("model")
    model.add_argument("--preset", default="vit_mnist", choices=MODEL_CHOICES,
                       help="architecture: seed (1 block, width 100, patch 7) or a preset; vit_mnist")
    model.add_argument("--image-size", type=int, help="default: the preset's or the dataset's")
    model.add_argument("--patch-size", type=int)
    model.add_argument("--embed-dim", type=int)
    model.add_argument("--depth", type=int)
    model.add_argument("--num-heads", type=int)
    model.add_argument("--mlp-dim", type=int)
    model.add_argument("--dropout", type=float)
    model.add_argument("--attention-dropout", type=float)
    model.add_argument("--drop-path", type=float)
    model.add_argument("--pooling", choices=("token", "gap"))
    model.add_argument("--stem", choices=STEMS,
                       help="patch (the paper's patchify Conv2D, default) or conv (3x3 stride-2 convolutions)")
    model.add_argument("--preprocessing", choices=("mnist", "unit", "symmetric", "imagenet", "none"),
                       help="input normalisation layer; default mnist (1 channel) or imagenet")
    model.add_argument("--weights", help="pretrained weights: a path, URL or published name")
    model.add_argument("--freeze-backbone", action="store_true", help="train the head only")

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, default=5)
    opt.add_argument("--batch-size", type=int, default=128, help="per device")
    opt.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    opt.add_argument("--weight-decay", type=float, default=0.05)
    opt.add_argument("--warmup", type=float, default=1.0, help="warm-up epochs (linear), then cosine")
    opt.add_argument("--label-smoothing", type=float, default=0.1)
    opt.add_argument("--clipnorm", type=float, default=1.0, help="global gradient-norm clip (0: off)")
    opt.add_argument("--ema", type=float, help="EMA momentum of the weights, e.g. 0.999 (off by default)")
    opt.add_argument("--layer-decay", type=float, help="layer-wise LR decay factor, e.g. 0.75")
    opt.add_argument("--precision", default="float32", choices=PRECISIONS)
    opt.add_argument("--seed", type=int, default=0)
    opt.add_argument("--jit-compile", default="auto", choices=JIT_CHOICES,
                     help="XLA: auto (on for TensorFlow/JAX, off for PyTorch), on, off")
    opt.add_argument("--steps-per-execution", type=int, default=1,
                     help="training steps per compiled call (TensorFlow/JAX; callbacks see every Nth step)")
    opt.add_argument("--steps-per-epoch", type=int, help="cap the batches per epoch (quick runs)")

    run = parser.add_argument_group("run")
    run.add_argument("--output", help="run directory (default runs/train-<time>); rerun to resume")
    run.add_argument("--early-stopping", type=int, default=0, metavar="PATIENCE", help="epochs (0: off)")
    run.add_argument("--backup-every", type=int, default=0, metavar="BATCHES",
                     help="save the resumable state every N batches as well as every epoch")
    run.add_argument("--no-tensorboard", dest="tensorboard", action="store_false")
    run.add_argument("--no-export", dest="export", action="store_false", help="skip the SavedModel export")
    run.add_argument("--distribute", default="none", choices=DISTRIBUTE_MODES)
    run.add_argument("--quiet", action="store_true", help="no progress bar; JSON lines on stdout")
    return parser


def register_cli(subparsers):
    """Add `train`, `evaluate` and `predict` to the `vit-keras` command line."""
    train_parser = subparsers.add_parser(
        "train", help="train a ViT (default: the bundled MNIST sample)",
        description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(train_parser)
    train_parser.set_defaults(func=_train_command)

    evaluate_parser = subparsers.add_parser("evaluate", help="test loss and accuracy of a run or .keras model")
    evaluate_parser.add_argument("model", help="a run directory or a .keras file")
    evaluate_parser.add_argument("--dataset", help="default: the run's dataset, else mnist-sample")
    evaluate_parser.add_argument("--data-dir")
    evaluate_parser.add_argument("--batch-size", type=int, default=256)
    evaluate_parser.set_defaults(func=_evaluate_command)

    predict_parser = subparsers.add_parser("predict", help="top-k classes of image files")
    predict_parser.add_argument("model", help="a run directory or a .keras file")
    predict_parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    predict_parser.add_argument("--top-k", type=int, default=5)
    predict_parser.add_argument("--json", action="store_true", help="one JSON object per image")
    predict_parser.set_defaults(func=_predict_command)


def parse_train_args(argv=()):
    """Parse `vit-keras train` arguments (for scripts and tests)."""
    args = add_train_arguments(argparse.ArgumentParser(prog="vit-keras train")).parse_args(list(argv))
    args.argv = list(argv)
    return args


def main(argv=None):
    """`vit-keras train` without the other commands: `python -m vit_keras.train ARGS`."""
    return _train_command(parse_train_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
