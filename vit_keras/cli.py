"""The `vit-keras` command line: train, evaluate, predict, export and plot.

Every parser and command wrapper lives here; the work is done by the library
(`vit_keras.train.train`, `vit_keras.predict`, `vit_keras.export`, `vit_keras.visualize`).
Building the parser imports neither Keras nor TensorFlow, JAX or PyTorch: the choices come from
the pure-data modules `vit_keras.architectures`, `vit_keras.choices` and `vit_keras.train_config`,
so `--help`, `--version` and bad arguments answer at once. A command imports the library when it
runs, holding back the start-up lines TensorFlow writes to stderr from C++ while it loads.

An error the user can fix (a bad value, a missing or unreadable file) ends a command with one
line on stderr, `vit-keras COMMAND: error: MESSAGE`, and exit status 2; the message names the
command's flags (`--overwrite`), not the library's keywords.

`vit-keras` starts in `vit_keras_cli` (outside the package), which applies `--backend` and
defers the package's `__init__` (it imports Keras). `python -m vit_keras.cli` works too, but
imports Keras before it parses.
"""

import argparse
import contextlib
import dataclasses
import importlib
import os
import re
import sys

from vit_keras.architectures import ARCHITECTURES, POOLINGS, STEMS
from vit_keras.choices import AUGMENTATIONS, BACKENDS, DISTRIBUTE_MODES, EXPORT_FORMATS, EXPORT_PRECISIONS, PRECISIONS
from vit_keras.train_config import JIT_CHOICES, PREPROCESSING_CHOICES, TrainConfig, check_data_dir

DISTRIBUTION = "vit-keras3"  # the package's name on PyPI (pyproject.toml)

# Lines TensorFlow (absl/glog, from C++) prints while it is imported, whatever TF_CPP_MIN_LOG_LEVEL says.
STARTUP_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:.]+\s+\d+ (\S+/)?(cudart_stub|cuda_fft|cuda_dnn|cuda_blas|cuda_executor|cuda_driver"
    r"|cpu_feature_guard|port|computation_placer)\.cc:\d+\] "
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"
)


# ----------------------------------------------------------------------------- parser plumbing


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, `PROG: error: MESSAGE`, with exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, except None and False (the help text says what those mean)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _VersionAction(argparse.Action):
    """`--version`: print `vit-keras VERSION` (from the installed package's metadata) and exit."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"vit-keras {package_version()}")
        parser.exit(0)


def package_version():
    """The installed version of the package (its metadata; Keras is not imported)."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer; found {text!r}")
    return value


def _count(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0; found {text!r}")
    return value


def _add_backend(parser, default):
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=default,
        help="Keras backend, applied before Keras is imported (default: $KERAS_BACKEND, else tensorflow)",
    )


def _add_command(commands, name, handler, summary, description, keywords=None):
    """A sub-command parser; `keywords` maps library keyword names to its option dests (for errors)."""
    parser = commands.add_parser(name, help=summary, description=description, formatter_class=_HelpFormatter)
    _add_backend(parser, argparse.SUPPRESS)  # not to overwrite a --backend given before the command
    parser.set_defaults(handler=handler, command_parser=parser, keywords=keywords or {})
    return parser


def build_parser():
    """The `vit-keras` parser with its commands; builds without importing Keras."""
    parser = _Parser(prog="vit-keras", description=__doc__.splitlines()[0], formatter_class=_HelpFormatter)
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    _add_backend(parser, None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_train_parser, _add_evaluate_parser, _add_predict_parser, _add_export_parser, _add_plot_parser):
        add(commands)
    return parser


# ----------------------------------------------------------------------------- train


TRAIN_DESCRIPTION = """\
Train a ViT, evaluate it on the test split and export it as a TF Serving SavedModel.

With no options it trains vit_mnist on the MNIST sample bundled in the package. The run
directory (--output) holds config.json, metrics.csv, curves.png, best.keras, last.keras,
model.keras, results.json, tensorboard/ and saved_model/1/; rerunning the same command with
the same --output resumes an interrupted run (--overwrite starts it again)."""


def _add_train_data(parser):
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", help="mnist-sample (bundled), mnist, idx:PATH, npz:PATH, folder:PATH or tfds:NAME")
    data.add_argument("--data-dir", help="folder of the MNIST IDX files for --dataset mnist; the TFDS data folder")
    data.add_argument("--val-fraction", type=float, help="share of the training split held out for validation")
    data.add_argument(
        "--augment",
        choices=AUGMENTATIONS,
        help="training augmentation (default: digits for 1-channel images, else natural)",
    )
    data.add_argument("--mixup", type=float, help="MixUp alpha (0: off)")
    data.add_argument("--cutmix", type=float, help="CutMix alpha (0: off)")
    data.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip folder images that do not decode (and count them) instead of stopping",
    )


def _add_train_model(parser):
    model = parser.add_argument_group("model (the options that follow the preset override its fields)")
    model.add_argument("--preset", choices=tuple(ARCHITECTURES), help="the architecture")
    model.add_argument("--image-size", type=int, help="input side (default: the preset's, else the dataset's)")
    for name in ("patch-size", "embed-dim", "depth", "num-heads", "mlp-dim"):
        model.add_argument(f"--{name}", type=int, help="default: the preset's")
    for name in ("dropout", "attention-dropout", "drop-path"):
        model.add_argument(f"--{name}", type=float, help="rate (default: the preset's)")
    model.add_argument(
        "--pooling",
        choices=POOLINGS,
        help="token (the class token) or gap (mean of the patch tokens) (default: the preset's)",
    )
    model.add_argument(
        "--stem",
        choices=STEMS,
        help="patch (the paper's PxP convolution) or conv (3x3 stride-2 convolutions) (default: the preset's)",
    )
    model.add_argument(
        "--preprocessing",
        choices=PREPROCESSING_CHOICES,
        help="normalisation of the raw 0-255 pixels (default: mnist for 1 channel, else imagenet)",
    )
    model.add_argument("--weights", help="pretrained weights: a path, URL or published name")
    model.add_argument("--freeze-backbone", action="store_true", help="train the classification head only")


def _add_train_optimisation(parser):
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, help="default: chosen from the training-set size (and printed)")
    opt.add_argument("--batch-size", type=int, help="per device (default: chosen from the training-set size)")
    opt.add_argument("--lr", type=float, help="peak learning rate of AdamW")
    opt.add_argument("--weight-decay", type=float, help="AdamW's decoupled weight decay")
    opt.add_argument(
        "--warmup", type=float, help="linear warm-up epochs before the cosine decay (default: chosen with --epochs)"
    )
    opt.add_argument("--label-smoothing", type=float, help="label smoothing of the training loss")
    opt.add_argument("--clipnorm", type=float, help="global gradient-norm clip (0: off)")
    opt.add_argument("--ema", type=float, help="EMA momentum of the weights, e.g. 0.999 (default: off)")
    opt.add_argument("--layer-decay", type=float, help="layer-wise learning-rate decay, e.g. 0.75 (default: off)")
    opt.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="Keras dtype policy; auto: mixed_bfloat16 on a GPU of compute capability >= 8 or a CPU with "
        "AVX512_BF16/AMX (on TensorFlow and JAX for models of width >= 128; TensorFlow then trains without XLA), "
        "else float32",
    )
    opt.add_argument("--seed", type=int, help="seed of the weights, the validation split and the augmentation")
    opt.add_argument(
        "--jit-compile",
        choices=JIT_CHOICES,
        help="XLA: auto (TensorFlow: on only for runs of enough training steps, epochs x steps per epoch, to "
        "pay for its compile; JAX: on; PyTorch: off; the trainer prints its choice), on or off",
    )
    opt.add_argument("--steps-per-execution", type=int, help="training steps per compiled call")
    opt.add_argument("--steps-per-epoch", type=int, help="cap the batches per epoch (default: the whole split)")


def _add_train_run(parser):
    run = parser.add_argument_group("run")
    run.add_argument("--output", help="run directory (default: runs/train-<time>)")
    run.add_argument(
        "--overwrite", action="store_true", help="start the run in --output again instead of resuming or refusing it"
    )
    run.add_argument(
        "--early-stopping",
        type=int,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without a better validation loss (0: off)",
    )
    run.add_argument(
        "--backup-every",
        type=int,
        metavar="BATCHES",
        help="no effect, kept for old scripts: the resumable state is saved at every epoch end, and an "
        "interrupted epoch restarts from it",
    )
    run.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, help="write RUN/tensorboard/")
    run.add_argument(
        "--export", action=argparse.BooleanOptionalAction, help="export the TF Serving SavedModel RUN/saved_model/1/"
    )
    run.add_argument("--distribute", choices=DISTRIBUTE_MODES, help="how to spread the training")
    run.add_argument(
        "--quiet",
        action="store_true",
        help='no progress bar: JSON lines on stdout, one per epoch and a last {"event": "done", ...}',
    )


def _add_train_parser(commands):
    parser = _add_command(
        commands,
        "train",
        _train,
        "train, evaluate and export a ViT",
        TRAIN_DESCRIPTION,
        keywords={"source": "weights"},  # load_pretrained's argument is --weights here
    )
    for add in (_add_train_data, _add_train_model, _add_train_optimisation, _add_train_run):
        add(parser)
    parser.set_defaults(**dataclasses.asdict(TrainConfig()))  # TrainConfig owns the defaults


def train_config(args):
    """The `TrainConfig` of parsed `vit-keras train` arguments (its fields are the option dests)."""
    return TrainConfig(**{field.name: getattr(args, field.name) for field in dataclasses.fields(TrainConfig)})


def parse_train_config(argv=()):
    """The `TrainConfig` of `vit-keras train ARGV` (not yet validated; `vit_keras.train.train` does that).

    Example: `parse_train_config(["--epochs", "3", "--no-export"])`.
    """
    return train_config(build_parser().parse_args(["train", *map(str, argv)]))


def _train(args, load):
    config = train_config(args)
    with startup_lines_filtered():
        config.validate()  # before the library loads: a bad option is reported at once
    results = load("vit_keras.train").train(config)
    if results.get("already_finished"):
        return 0  # the library said so, in one line (a JSON event under --quiet)
    if args.quiet:
        print(load("vit_keras.runs").json_line({"event": "done", **results}), flush=True)
    else:
        _print_training_summary(results)
    if results.get("status") != "nan_loss":
        return 0
    print(
        f"vit-keras train: the training loss became NaN or infinite in epoch {results.get('epochs_run')}; the run "
        f"stopped there and was neither evaluated nor exported. A --lr below {config.lr:g} usually avoids it.",
        file=sys.stderr,
    )
    return 1


def _print_training_summary(results):
    print(f"\nRun directory: {results['output']}")
    if results.get("test_accuracy") is not None:
        loss = results.get("test_loss")
        print(
            f"Test accuracy: {results['test_accuracy']:.4f}"
            + (f"  (loss {loss:.4f}, {results.get('test_examples')} examples)" if loss is not None else "")
        )
    if results.get("saved_model"):
        print(f"SavedModel: {results['saved_model']}")


# ----------------------------------------------------------------------------- evaluate, predict


def _add_evaluate_parser(commands):
    parser = _add_command(
        commands,
        "evaluate",
        _evaluate,
        "test loss and accuracy of a run or a .keras file",
        "Print the test loss (plain cross-entropy) and accuracy of a run's model as JSON.",
    )
    parser.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="a `vit-keras train` run directory or a .keras file")
    parser.add_argument("--dataset", help="default: the run's dataset, else mnist-sample")
    parser.add_argument("--data-dir", help="data folder of --dataset (default: the run's)")
    parser.add_argument("--batch-size", type=_positive_int, default=256, help="images per batch")


def check_data_options(args):
    """Refuse an empty `--dataset` or `--data-dir`, and a `--data-dir` that the given `--dataset` ignores.

    Used by `evaluate` and `plot`, whose `--dataset` and `--data-dir` default to the run's.

    Raises:
        ValueError: one line naming the flag, what was expected and what was found.
    """
    for flag, value, expected in (("--dataset", args.dataset, "spec"), ("--data-dir", args.data_dir, "path")):
        if value is not None and not value.strip():
            raise ValueError(f"{flag} must be a non-empty {expected}; found {value!r}.")
    if args.dataset is not None:  # without --dataset, the run's dataset decides what --data-dir means
        check_data_dir(args.dataset, args.data_dir)


def _evaluate(args, load):
    check_data_options(args)
    results = load("vit_keras.predict").evaluate(
        args.model, dataset=args.dataset, data_dir=args.data_dir, batch_size=args.batch_size
    )
    print(load("vit_keras.runs").json_line(results))


def _add_predict_parser(commands):
    parser = _add_command(
        commands,
        "predict",
        _predict,
        "top-k classes of image files",
        "Print the top-k classes and probabilities of each image file.",
    )
    parser.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="a `vit-keras train` run directory or a .keras file")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files (PNG, JPEG, GIF, BMP)")
    parser.add_argument("--top-k", type=_positive_int, default=5, help="classes per image")
    parser.add_argument("--json", action="store_true", help="one JSON object per image")


def _predict(args, load):
    predictions = load("vit_keras.predict").predict(args.model, args.images, top_k=args.top_k)
    json_line = load("vit_keras.runs").json_line
    for prediction in predictions:
        if args.json:
            print(json_line(prediction))
        else:
            print(f"{prediction['image']}: " + ", ".join(f"{name} {score:.3f}" for name, score in prediction["top"]))


# ----------------------------------------------------------------------------- export, plot


EXPORT_DESCRIPTION = """\
Export a run directory (its model.keras) or a .keras file as a TF Serving SavedModel at
OUTPUT/<version>/, with the signatures serving_default (float32 raw pixels), serving_uint8 and
serving_bytes (encoded JPEG/PNG); or, with --format onnx, as one ONNX file (OUTPUT if it ends
in .onnx, else OUTPUT/model.onnx)."""


def _add_export_parser(commands):
    parser = _add_command(
        commands,
        "export",
        _export,
        "export a trained model as a TF Serving SavedModel or ONNX",
        EXPORT_DESCRIPTION,
        keywords={"base_dir": "output", "path": "output"},
    )
    parser.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="a `vit-keras train` run directory or a .keras file")
    parser.add_argument("--output", required=True, help="the model's folder, e.g. saved_models/vit_mnist")
    parser.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default=EXPORT_FORMATS[0],
        help="saved_model (TF Serving) or onnx (needs the onnx extra)",
    )
    parser.add_argument("--version", type=_positive_int, help="numeric version (default: the next free one)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version or file")
    parser.add_argument("--class-names", help="comma-separated class names (default: the run's config.json)")
    parser.add_argument("--top-k", type=_positive_int, default=5, help="classes returned by top_k_*")
    parser.add_argument(
        "--jit-compile",
        action="store_true",
        help="compile the SavedModel's forward pass with XLA (input checks stay outside it)",
    )
    parser.add_argument(
        "--precision",
        choices=EXPORT_PRECISIONS,
        help="the dtype policy to serve in (default: the model's own); mixed_bfloat16 with --jit-compile "
        "is the fastest on CPUs with AVX512_BF16 or AMX",
    )


def _export(args, load):
    export = load("vit_keras.export")
    class_names = [name.strip() for name in args.class_names.split(",")] if args.class_names else None
    if args.format == "onnx":
        if args.version is not None or class_names or args.jit_compile or args.precision:
            raise ValueError(
                "--version, --class-names, --jit-compile and --precision apply to --format saved_model only "
                "(ONNX computes in float32)."
            )
        path = export.export_onnx(args.model, args.output, overwrite=args.overwrite, top_k=args.top_k)
    else:
        path = export.export_saved_model(
            args.model,
            args.output,
            version=args.version,
            class_names=class_names,
            overwrite=args.overwrite,
            top_k=args.top_k,
            jit_compile=args.jit_compile,
            precision=args.precision,
        )
    print(path)


def _add_plot_parser(commands):
    parser = _add_command(
        commands,
        "plot",
        _plot,
        "plot a run: curves, confusion matrix, attention maps, position embeddings",
        "Write a run's pictures: curves.png (loss and accuracy, train vs validation), confusion_matrix.png "
        "(test split), attention.png (attention rollout) and position_embeddings.png.",
        keywords={"out_dir": "output"},
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a `vit-keras train` run directory")
    parser.add_argument("--output", help="folder of the PNGs (default: RUN_DIR)")
    parser.add_argument("--out", dest="output", help=argparse.SUPPRESS)  # the former spelling
    parser.add_argument("--dataset", help="dataset of the confusion matrix (default: the run's)")
    parser.add_argument("--data-dir", help="data folder of --dataset (default: the run's)")
    parser.add_argument("--examples", type=_count, default=4, help="test images in attention.png")
    parser.add_argument("--batch-size", type=_positive_int, default=128, help="prediction batch size")


def _plot(args, load):
    check_data_options(args)
    written = load("vit_keras.visualize").plot_run(
        args.run_dir,
        out_dir=args.output,
        dataset=args.dataset,
        data_dir=args.data_dir,
        examples=args.examples,
        batch_size=args.batch_size,
    )
    for path in written.values():
        print(path)


# ----------------------------------------------------------------------------- running a command


@contextlib.contextmanager
def startup_lines_filtered():
    """Hold back TensorFlow's start-up lines on stderr (fd 2) for the duration; pass every other line on.

    TensorFlow writes them from C++ before Python can configure logging, so they are caught at
    the file descriptor and filtered (`STARTUP_LINE`) when the block ends, even on an exception.
    """
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not STARTUP_LINE.match(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def _library_loader(run_package_init):
    """`load(module_name)`: import a library module, after the package's deferred `__init__` if any."""
    pending = [run_package_init] if run_package_init else []

    def load(name):
        with startup_lines_filtered():
            while pending:
                pending.pop()()
            return importlib.import_module(name)

    return load


def is_user_error(error):
    """Whether `error` reports bad input the user can fix (printed in one line, not as a traceback)."""
    return isinstance(error, (ValueError, OSError)) or type(error).__module__.startswith("vit_keras.")


def cli_spelling(message, parser, keywords=None):
    """`message` with the library's keyword names spelled as `parser`'s flags.

    `top_k must be ...` becomes `--top-k must be ...`, `pass overwrite=True` becomes `pass
    --overwrite`; `keywords` maps other keyword names to option dests (`base_dir` -> `output`).
    """
    flags = {
        a.dest: a.option_strings[0]
        for a in parser._actions
        if a.option_strings and a.help != argparse.SUPPRESS and a.option_strings[0].startswith("--")
    }
    names = {**flags, **{k: flags[v] for k, v in (keywords or {}).items() if v in flags}}
    for name, flag in sorted(names.items(), key=lambda item: -len(item[0])):
        message = re.sub(rf"(?<![\w./-]){name}=True\b", flag, message)
        if "_" in name:
            message = re.sub(rf"(?<![\w./-]){name}\b(?![\w./-])", flag, message)
        message = re.sub(rf"^{name} must\b", f"{flag} must", message)
    return message


def _one_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " | ".join(lines) or type(error).__name__


def run_command(args, load):
    """Run the parsed command; a user error becomes one line on stderr and exit status 2.

    Returns:
        The exit status: the command's (0 unless it says otherwise), 2 for a user error, 130 if
        interrupted. Other exceptions (bugs) propagate with their traceback.
    """
    try:
        return args.handler(args, load) or 0
    except KeyboardInterrupt:
        print(f"vit-keras {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if not is_user_error(error):
            raise
        message = cli_spelling(_one_line(error), args.command_parser, args.keywords)
        print(f"vit-keras {args.command}: error: {message}", file=sys.stderr, flush=True)
        return 2


def _apply_backend(parser, backend):
    if backend is None:
        return
    keras = sys.modules.get("keras")
    if keras is None:
        os.environ["KERAS_BACKEND"] = backend
    elif keras.backend.backend() != backend:
        parser.error(
            f"--backend {backend}: Keras was already imported with the {keras.backend.backend()!r} "
            f"backend; run the `vit-keras` command or set KERAS_BACKEND."
        )


def main(argv=None, run_package_init=None):
    """Run `vit-keras ARGS`; return the exit status.

    Args:
        argv: the arguments (default: `sys.argv[1:]`).
        run_package_init: runs the `vit_keras` package's deferred `__init__` (`vit_keras_cli`
            defers it so that parsing stays light); None when the package is already imported.
    """
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    _apply_backend(parser, args.backend)
    return run_command(args, _library_loader(run_package_init))


if __name__ == "__main__":
    sys.exit(main())
