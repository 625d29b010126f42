"""`TrainConfig`: every option of `vit-keras train`, with its default and its allowed range.

This module imports only plain-data modules (no Keras). The field names are the command
line's option names (`label_smoothing` is `--label-smoothing`).
`batch_size`, `epochs` and `warmup` may be None: the trainer then picks them from the size of
the training split (`vit_keras.train.pick_schedule`) and says what it picked.

>>> from vit_keras.train_config import TrainConfig
>>> TrainConfig(epochs=3, label_smoothing=0.0, output="runs/quick").validate().epochs
3
"""

import dataclasses
import math

import numpy as np

from vit_keras.architectures import ARCHITECTURES, NORMALIZATIONS, POOLINGS, STEMS
from vit_keras.choices import AUGMENTATIONS, DISTRIBUTE_MODES, PRECISIONS

JIT_CHOICES = ("auto", "on", "off")
PREPROCESSING_CHOICES = tuple(NORMALIZATIONS) + ("none",)
# Options that change nothing a run computes: a rerun may differ in them and still resume.
RUN_ONLY_OPTIONS = ("output", "overwrite", "quiet")
MAX_SEED = 2**32 - 1  # Keras' and NumPy's seeds are unsigned 32-bit integers
MAX_TOKENS = 128 * 128  # patch tokens per image: a 128 x 128 grid, e.g. 2048 px at patch 16
FLOAT32_MAX = float(np.finfo(np.float32).max)  # larger hyperparameters become inf in the optimizer
MAX_PARAMETERS = 2**31  # about 2.1 B weights (ViT-H/14 has 632 M): beyond it the weights alone take 8+ GiB
# The fields that override the preset's `ViT` keyword arguments when given (see `TrainConfig.architecture`).
MODEL_OVERRIDES = (
    "patch_size",
    "embed_dim",
    "depth",
    "num_heads",
    "mlp_dim",
    "dropout",
    "attention_dropout",
    "drop_path",
    "pooling",
    "stem",
)


def uses_data_dir(dataset):
    """Whether dataset spec `dataset` reads `--data-dir`: "mnist" (its IDX files, else TFDS) and "tfds:NAME".

    >>> uses_data_dir("mnist"), uses_data_dir("tfds:cifar10"), uses_data_dir("folder:photos")
    (True, True, False)
    """
    return dataset == "mnist" or (isinstance(dataset, str) and dataset.startswith("tfds:"))


def check_data_dir(dataset, data_dir):
    """Raise a one-line ValueError when `--data-dir` is given with a dataset that does not read it.

    Args:
        dataset: the `--dataset` spec.
        data_dir: the `--data-dir` folder, or None.

    Raises:
        ValueError: `data_dir` is given and `dataset` is neither "mnist" nor "tfds:NAME" (the
            folder would be ignored).
    """
    if data_dir is not None and not uses_data_dir(dataset):
        raise ValueError(
            f"--data-dir applies to --dataset mnist and tfds:NAME only; found --data-dir {data_dir!r} with "
            f"--dataset {dataset!r}, which would ignore it: drop --data-dir (idx:PATH, npz:PATH and folder:PATH "
            "name their data in the spec; mnist-sample is bundled)."
        )


def flag(name):
    """The command-line spelling of field `name`: `label_smoothing` -> `--label-smoothing`."""
    return "--" + name.replace("_", "-")


@dataclasses.dataclass
class TrainConfig:
    """The options of one training run (see `vit-keras train --help` for each one's meaning)."""

    # data
    dataset: str = "mnist-sample"
    data_dir: str | None = None
    val_fraction: float = 0.1
    augment: str | None = None
    mixup: float = 0.0
    cutmix: float = 0.0
    skip_bad_images: bool = False
    # model
    preset: str = "vit_mnist_tiny"
    image_size: int | None = None
    patch_size: int | None = None
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    mlp_dim: int | None = None
    dropout: float | None = None
    attention_dropout: float | None = None
    drop_path: float | None = None
    pooling: str | None = None
    stem: str | None = None
    preprocessing: str | None = None
    weights: str | None = None
    freeze_backbone: bool = False
    # optimisation
    epochs: int | None = None
    batch_size: int | None = None
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup: float | None = None
    label_smoothing: float = 0.1
    clipnorm: float = 1.0
    ema: float | None = None
    layer_decay: float | None = None
    precision: str = "auto"
    seed: int = 0
    jit_compile: str = "auto"
    steps_per_execution: int = 1
    steps_per_epoch: int | None = None
    # run
    output: str | None = None
    overwrite: bool = False
    early_stopping: int = 0
    backup_every: int = 0
    tensorboard: bool = True
    export: bool = True
    distribute: str = "none"
    quiet: bool = False

    def validate(self):
        """Check every field's type and range; return `self`.

        Raises:
            ValueError: one line naming the command-line flag, the expected and the found value.
        """
        for check in (_check_choices, _check_counts, _check_rates, _check_numbers, _check_model, _check_flags):
            check(self)
        return self

    def architecture(self):
        """The preset's `ViT` keyword arguments with the model flags that were given applied.

        The dataset's image shape and classes are not in it yet (`vit_keras.train.model_config`).
        """
        overrides = {k: getattr(self, k) for k in MODEL_OVERRIDES if getattr(self, k) is not None}
        return {**ARCHITECTURES[self.preset], **overrides}

    def run_options(self):
        """{field: value} of the options a run's results depend on (all but output, overwrite, quiet)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RUN_ONLY_OPTIONS}


def _fail(name, expected, value):
    raise ValueError(f"{flag(name)} must be {expected}; found {value!r}.")


def _is_number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _is_int(value):
    return not isinstance(value, bool) and isinstance(value, int)


def _check_choices(config):
    choices = dict(
        preset=tuple(ARCHITECTURES),
        augment=AUGMENTATIONS,
        pooling=POOLINGS,
        stem=STEMS,
        preprocessing=PREPROCESSING_CHOICES,
        precision=PRECISIONS,
        jit_compile=JIT_CHOICES,
        distribute=DISTRIBUTE_MODES,
    )
    optional = ("augment", "pooling", "stem", "preprocessing")
    for name, allowed in choices.items():
        value = getattr(config, name)
        if not (value is None and name in optional) and value not in allowed:
            _fail(name, f"one of {list(allowed)}", value)
    for name in ("dataset",):
        if not isinstance(config.dataset, str) or not config.dataset:
            _fail(name, "a dataset spec such as mnist-sample or folder:PATH", config.dataset)
    for name in ("data_dir", "weights", "output"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, str) or not value):
            _fail(name, "a non-empty path", value)
    check_data_dir(config.dataset, config.data_dir)


def _check_counts(config):
    positive = (
        "epochs",
        "batch_size",
        "steps_per_execution",
        "steps_per_epoch",
        "image_size",
        "patch_size",
        "embed_dim",
        "depth",
        "num_heads",
        "mlp_dim",
    )
    for name in positive:
        value = getattr(config, name)
        if value is not None and not (_is_int(value) and value > 0):
            _fail(name, "a positive integer", value)
    for name in ("early_stopping", "backup_every"):
        value = getattr(config, name)
        if not (_is_int(value) and value >= 0):
            _fail(name, "an integer >= 0", value)
    if not (_is_int(config.seed) and 0 <= config.seed <= MAX_SEED):
        _fail("seed", f"an integer in [0, {MAX_SEED}]", config.seed)


def _check_rates(config):
    for name in ("val_fraction", "label_smoothing", "dropout", "attention_dropout", "drop_path"):
        value = getattr(config, name)
        if value is not None and not (_is_number(value) and 0.0 <= value < 1.0):
            _fail(name, "a number in [0, 1)", value)
    if config.ema is not None and not (_is_number(config.ema) and 0.0 < config.ema < 1.0):
        _fail("ema", "a momentum in (0, 1), e.g. 0.999", config.ema)
    if config.layer_decay is not None and not (_is_number(config.layer_decay) and 0.0 < config.layer_decay <= 1.0):
        _fail("layer_decay", "a factor in (0, 1]", config.layer_decay)


def _check_numbers(config):
    if not (_is_number(config.lr) and config.lr > 0):
        _fail("lr", "a finite number > 0", config.lr)
    for name in ("weight_decay", "clipnorm", "mixup", "cutmix"):
        value = getattr(config, name)
        if not (_is_number(value) and value >= 0):
            _fail(name, "a finite number >= 0", value)
    warmup = config.warmup
    if warmup is not None and not (_is_number(warmup) and warmup >= 0):
        _fail("warmup", "a finite number of epochs >= 0", warmup)
    if warmup is not None and config.epochs is not None and warmup >= config.epochs:
        _fail("warmup", f"fewer epochs than --epochs ({config.epochs})", warmup)
    for name in ("lr", "weight_decay", "clipnorm", "mixup", "cutmix"):
        if getattr(config, name) > FLOAT32_MAX:  # the optimizer and the mixing hold them in float32
            _fail(name, f"at most {FLOAT32_MAX:.4g}, float32's largest number", getattr(config, name))


def _check_model(config):
    model = config.architecture()
    patch = model["patch_size"]
    size = config.image_size or model.get("image_size")
    if size is not None and size % patch:
        raise ValueError(
            f"--image-size {size} is not divisible by the patch size {patch}: "
            f"choose an image size that is a multiple of {patch}."
        )
    if size is not None and (size // patch) ** 2 > MAX_TOKENS:
        raise ValueError(
            f"--image-size {size} at patch size {patch} makes {(size // patch) ** 2:,} patch tokens per image; "
            f"at most {MAX_TOKENS:,} ({math.isqrt(MAX_TOKENS)} x {math.isqrt(MAX_TOKENS)}) are supported: "
            "choose a smaller --image-size or a larger --patch-size."
        )
    embed, heads = model["embed_dim"], model["num_heads"]
    if embed % heads:
        raise ValueError(f"--embed-dim {embed} must be divisible by --num-heads {heads}.")
    _check_model_size(model)


def _check_model_size(model):
    """Refuse a model whose encoder has more than `MAX_PARAMETERS` weights (it would not fit in memory)."""
    embed, depth, mlp = model["embed_dim"], model["depth"], model["mlp_dim"]
    parameters = depth * (4 * embed * embed + 2 * embed * mlp)  # attention and MLP weights of the blocks
    if parameters > MAX_PARAMETERS:
        raise ValueError(
            f"--depth {depth}, --embed-dim {embed} and --mlp-dim {mlp} make an encoder of about {parameters:,} "
            f"weights; at most {MAX_PARAMETERS:,} are supported: choose smaller values."
        )


def _check_flags(config):
    for name in ("skip_bad_images", "freeze_backbone", "overwrite", "tensorboard", "export", "quiet"):
        value = getattr(config, name)
        if not isinstance(value, bool):
            _fail(name, "True or False", value)
