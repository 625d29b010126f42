"""`load_pretrained`: any Google, timm or Hugging Face ViT checkpoint into a vit_keras model."""

import logging
import pathlib

from vit_keras.pretrained.canonical import assign_weights
from vit_keras.pretrained.download import download, is_url
from vit_keras.pretrained.files import CheckpointError, check_sha256, checkpoint_file, read_checkpoint
from vit_keras.pretrained.google import google_to_canonical, is_google_checkpoint
from vit_keras.pretrained.huggingface import huggingface_to_canonical, is_huggingface_checkpoint
from vit_keras.pretrained.registry import is_published_name, resolve_published
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
    if kind == "google":
        canonical, unused = google_to_canonical(arrays)
    elif kind == "timm":
        canonical, unused = timm_to_canonical(arrays, num_heads)
    else:
        canonical, unused = huggingface_to_canonical(arrays, num_heads)
    if unused:
        raise CheckpointError(
            f"{source} ({kind} layout) has {len(unused)} weights this ViT has no place for, "
            f"e.g. {sorted(unused)[:6]}; it is a different architecture."
        )
    return kind, canonical


def _preset_of(model):
    """The preset whose architecture `model` has, or None."""
    from vit_keras.presets import PRESETS

    arch = (model.patch_size, model.embed_dim, model.depth, model.num_heads, model.mlp_dim)
    for name, config in PRESETS.items():
        fields = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_dim")
        if tuple(config[f] for f in fields) == arch:
            return name
    return None


def _local_path(model, source, sha256, cache_dir):
    """The local checkpoint file or directory for a path, URL or published name."""
    if isinstance(source, pathlib.PurePath):
        source = str(source)
    if not isinstance(source, str) or not source:
        raise TypeError(f"source must be a checkpoint path, URL or published name; found {source!r}.")
    if is_url(source):
        return download(source, sha256=sha256, cache_dir=cache_dir)
    path = pathlib.Path(source).expanduser()
    if not path.exists() and is_published_name(source):
        preset = _preset_of(model)
        if preset is None:
            raise ValueError(
                f"source {source!r} is a published checkpoint name, but the model's architecture "
                "(patch_size, embed_dim, depth, num_heads, mlp_dim) matches no preset; pass a path or URL."
            )
        checkpoint = resolve_published(preset, source, model.image_size)
        return download(checkpoint.url, sha256=sha256, cache_dir=cache_dir)
    if not path.exists():
        raise FileNotFoundError(
            f"source must be an existing checkpoint path, a URL or a published name; "
            f"{source!r} is none of these."
        )
    if sha256 is not None:
        check_sha256(checkpoint_file(path), sha256)
    return path


def load_pretrained(model, source, sha256=None, cache_dir=None):
    """Load a Google (`.npz`), timm or Hugging Face ViT checkpoint into `model`, all or nothing.

    Args:
        model: a `vit_keras.ViT`.
        source: a local file (`.npz`, `.safetensors`, `.pth`/`.bin`), a Hugging Face model
            directory, an http(s)/file URL (downloaded once into the cache), or a
            published name such as "augreg_in21k_ft_in1k" (the model must match a preset).
        sha256: expected hex digest of the file; a mismatch raises before loading.
        cache_dir: download cache root (default: $VIT_KERAS_CACHE, $KERAS_HOME or ~/.keras).

    The format is detected from the keys. The position table is resampled to the model's
    grid (bilinear, class row kept). The head (and pre-logits) load when their shapes match
    and are otherwise left freshly initialised, with a log line. Any missing weight, wrong
    shape, unknown weight, unreadable file or hash mismatch raises before a variable changes.
    Returns the list of canonical weight names that were loaded.
    """
    if getattr(model, "stem", "patch") != "patch":
        raise ValueError(
            f"pretrained ViT checkpoints have the patch stem; model has stem={model.stem!r}. "
            f"Build it with stem='patch' to load {source!r}."
        )
    path = _local_path(model, source, sha256, cache_dir)
    arrays = read_checkpoint(path)
    kind, canonical = to_canonical(arrays, model.num_heads, source=str(path))
    loaded = assign_weights(model, canonical, source=str(path))
    log.info("loaded %d weights from %s (%s layout)", len(loaded), path, kind)
    return loaded


def load_preset_weights(model, preset, weights, sha256=None, cache_dir=None):
    """Load `weights` (a published name for `preset`, a path or a URL) into a preset model."""
    if isinstance(weights, str) and not is_url(weights) and not pathlib.Path(weights).expanduser().exists():
        if not is_published_name(weights) and any(c in weights for c in "/\\."):
            raise FileNotFoundError(f"weights file not found: {weights}")
        checkpoint = resolve_published(preset, weights, model.image_size)  # raises on an unknown name
        source = checkpoint.url
    else:
        source = weights
    return load_pretrained(model, source, sha256=sha256, cache_dir=cache_dir)
