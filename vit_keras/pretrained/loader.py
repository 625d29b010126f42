"""`load_pretrained`: any Google, timm or Hugging Face ViT checkpoint into a vit_keras model."""

import logging
import pathlib

from vit_keras.pretrained.canonical import assign_weights
from vit_keras.pretrained.download import download, is_url
from vit_keras.pretrained.files import CheckpointError, check_sha256, checkpoint_file, read_checkpoint
from vit_keras.pretrained.google import google_to_canonical, is_google_checkpoint
from vit_keras.pretrained.hints import check_head_count, class_names, head_count_hints, read_config
from vit_keras.pretrained.hub import hub_snapshot, is_hub_source
from vit_keras.pretrained.huggingface import huggingface_to_canonical, is_huggingface_checkpoint
from vit_keras.pretrained.labels import label_set_names
from vit_keras.pretrained.registry import architecture_of, is_published_name, resolve_published
from vit_keras.pretrained.resample import INTERPOLATIONS, SOURCE_RESAMPLING
from vit_keras.pretrained.timm import is_timm_checkpoint, timm_to_canonical

log = logging.getLogger("vit_keras")


def detect_format(keys):
    """'google', 'timm' or 'huggingface' from a checkpoint's keys; ValueError if none fits."""
    keys = list(keys)
    if is_google_checkpoint(keys):
        return "google"
    if is_timm_checkpoint([k.removeprefix("module.") for k in keys]):
        return "timm"
    if is_huggingface_checkpoint(keys):
        return "huggingface"
    raise CheckpointError(
        "checkpoint keys match none of the known ViT layouts (Google `.npz`: "
        "'Transformer/posembed_input/pos_embedding'; timm: 'patch_embed.proj.weight'; "
        "Hugging Face: 'vit.embeddings.patch_embeddings.projection.weight'); "
        f"found {len(keys)} keys, e.g. {sorted(keys)[:6]}."
    )


def to_canonical(arrays, num_heads, source="checkpoint"):
    """Convert a checkpoint's {key: array} to canonical names, detecting its format.

    Raises a CheckpointError naming any key that belongs to no ViT part the model has
    (layer scale, register tokens, a norm after pooling, ...): loading without it would
    silently compute something else.
    """
    kind = detect_format(arrays)
    try:
        if kind == "google":
            canonical, unused = google_to_canonical(arrays)
        elif kind == "timm":
            canonical, unused = timm_to_canonical(arrays, num_heads)
        else:
            canonical, unused = huggingface_to_canonical(arrays, num_heads)
    except CheckpointError as error:
        raise CheckpointError(f"{source} ({kind} layout): {error}") from None
    if unused:
        raise CheckpointError(
            f"{source} ({kind} layout) has {len(unused)} weights this ViT has no place for, "
            f"e.g. {sorted(unused)[:6]}; it is a different architecture."
        )
    return kind, canonical


def _published_checkpoint(model, source):
    """The registry's `Checkpoint` for a published name, for the paper architecture `model` has."""
    preset = architecture_of(model)
    if preset is None:
        raise ValueError(
            f"source {source!r} is a published checkpoint name, but the model's architecture "
            "(patch_size, embed_dim, depth, num_heads, mlp_dim) matches no preset; pass a path or URL."
        )
    return resolve_published(preset, source, model.image_size)


def _local_path(model, source, sha256, cache_dir):
    """(local checkpoint file or directory, registry Checkpoint or None) for any kind of source."""
    if isinstance(source, pathlib.PurePath):
        source = str(source)
    if not isinstance(source, str) or not source:
        raise TypeError(f"source must be a checkpoint path, URL or published name; found {source!r}.")
    if is_hub_source(source):
        return hub_snapshot(source, cache_dir=cache_dir), None
    if is_url(source):
        return download(source, sha256=sha256, cache_dir=cache_dir), None
    path = pathlib.Path(source).expanduser()
    if not path.exists() and is_published_name(source):
        checkpoint = _published_checkpoint(model, source)
        return download(checkpoint.url, sha256=sha256, cache_dir=cache_dir), checkpoint
    if not path.exists():
        raise FileNotFoundError(
            f"source must be an existing checkpoint path, a URL, hf://ORG/NAME or a published name; "
            f"{source!r} is none of these."
        )
    if sha256 is not None:
        check_sha256(checkpoint_file(path), sha256)
    return path, None


def _resampling(kind, interpolation):
    if interpolation == "auto":
        return SOURCE_RESAMPLING[kind]
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be 'auto' or one of {INTERPOLATIONS}; found {interpolation!r}.")
    return interpolation, False


def _check_model(model, source, interpolation):
    local = isinstance(source, (str, pathlib.PurePath)) and str(source) and not is_hub_source(str(source))
    if local and not is_url(str(source)) and not is_published_name(str(source)):
        if not pathlib.Path(source).expanduser().exists():  # a mistyped path: say so before the model's fit
            _local_path(model, source, None, None)
    if getattr(model, "stem", "patch") != "patch":
        raise ValueError(
            f"pretrained ViT checkpoints have the patch stem; model has stem={model.stem!r}. "
            f"Build it with stem='patch' to load {source!r}."
        )
    if interpolation != "auto" and interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be 'auto' or one of {INTERPOLATIONS}; found {interpolation!r}.")


def _note_inputs(model, path, checkpoint, names, loaded):
    """Record the head's class names on the model; log a preprocessing the model lacks."""
    if checkpoint is not None and checkpoint.preprocessing != getattr(model, "preprocessing", None):
        log.warning(
            "%s was trained on %s-normalised inputs; the model has preprocessing=%r: feed it such inputs "
            "or build it with preprocessing=%r.",
            path,
            checkpoint.preprocessing,
            getattr(model, "preprocessing", None),
            checkpoint.preprocessing,
        )
    if names is not None and "head/kernel" in loaded and len(names) == model.num_classes:
        set_class_names(model, names)


def set_class_names(model, names):
    """Give `model` a `class_names` attribute (one string per head output)."""
    model.class_names = list(names)


def load_pretrained(model, source, sha256=None, cache_dir=None, num_heads=None, interpolation="auto"):
    """Load a Google (`.npz`), timm or Hugging Face ViT checkpoint into `model`, all or nothing.

    Args:
        model: a `vit_keras.ViT` with the patch stem.
        source: a local file (`.npz`, `.safetensors`, `.pth`/`.bin`, a sharded checkpoint's
            `*.index.json`), a Hugging Face model directory (one file or shards), an http(s)/file
            URL (downloaded once into the cache), `hf://ORG/NAME[@REV]`
            (a Hugging Face Hub snapshot, through huggingface_hub and its cache; HF_HUB_OFFLINE=1
            honoured), or a published name such as "augreg_in21k_ft_in1k" (the model must match a preset).
        sha256: expected hex digest of the file; a mismatch raises before loading.
        cache_dir: download cache root (default: $VIT_KERAS_CACHE, $KERAS_HOME or ~/.keras; for
            hf:// sources the hub's cache).
        num_heads: the checkpoint's attention-head count, where its files do not record it (a
            timm `.safetensors`/`.pth` without config.json); must equal the model's.
        interpolation: how the position table is resampled to the model's grid: "auto" (as the
            checkpoint's own library does: bilinear for Google `.npz` as in timm, antialiased
            bicubic for timm state dicts, bicubic for Hugging Face), or "bilinear" / "bicubic"
            (torch's `F.interpolate`, align_corners=False, no antialiasing).

    The format is detected from the keys. The head (and pre-logits) load when their shapes match
    and are otherwise left freshly initialised, with a log line; a 3-channel patch kernel is summed
    into a 1-channel model's. Any missing weight, weight without a place in the model, wrong shape,
    contradicting head count, unreadable file or hash mismatch raises a one-line ValueError
    (`CheckpointError`) before a variable changes. A loaded ImageNet-1k or labelled Hugging Face
    head sets `model.class_names`.

    Returns:
        The list of canonical weight names that were loaded.
    """
    _check_model(model, source, interpolation)
    path, checkpoint = _local_path(model, source, sha256, cache_dir)
    return load_local(model, path, checkpoint, num_heads=num_heads, interpolation=interpolation)


def load_local(model, path, checkpoint=None, num_heads=None, interpolation="auto", arrays=None):
    """`load_pretrained` of a local file or folder; `checkpoint` is its registry entry, if any.

    `arrays` is the checkpoint's contents (`read_checkpoint(path)`) where the caller has read them.
    """
    arrays = read_checkpoint(path) if arrays is None else arrays
    config = read_config(path)
    kind, canonical = to_canonical(arrays, model.num_heads, source=str(path))
    hints = head_count_hints(path, config, num_heads)
    check_head_count(model.num_heads, hints, str(path))
    names = class_names(config, pathlib.Path(path) / "config.json") or (
        label_set_names(checkpoint.labels) if checkpoint else None
    )
    if kind != "google" and not hints:
        log.info(
            "%s records no attention-head count (%s layout); the model's %d is assumed (pass num_heads= to check it).",
            path,
            kind,
            model.num_heads,
        )
    mode, antialias = _resampling(kind, interpolation)
    loaded = assign_weights(model, canonical, source=str(path), interpolation=mode, antialias=antialias)
    _note_inputs(model, path, checkpoint, names, loaded)
    log.info(
        "loaded %d weights from %s (%s layout, position table: %s%s)",
        len(loaded),
        path,
        kind,
        mode,
        " antialiased" if antialias else "",
    )
    return loaded


def load_preset_weights(model, preset, weights, sha256=None, cache_dir=None, **kwargs):
    """Load `weights` (a published name for `preset`, a path, URL or hf:// source) into a preset model.

    Keyword arguments are those of `load_pretrained`.
    """
    if (
        isinstance(weights, str)
        and not is_url(weights)
        and not is_hub_source(weights)
        and not pathlib.Path(weights).expanduser().exists()
    ):
        if not is_published_name(weights) and any(c in weights for c in "/\\."):
            raise FileNotFoundError(f"weights file not found: {weights}")
        resolve_published(preset, weights, model.image_size)  # raises on a name not published for preset
    return load_pretrained(model, weights, sha256=sha256, cache_dir=cache_dir, **kwargs)
