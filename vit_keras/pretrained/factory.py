"""Every architecture and published checkpoint by one name: `list_models()` and `create_model()`.

Names are `ARCHITECTURE` (e.g. "vit_b16", any key of `vit_keras.architectures.ARCHITECTURES`)
or `ARCHITECTURE.TAG` for published weights (e.g. "vit_b16.augreg_in21k_ft_in1k"), as timm's
`list_models(pretrained=True)` / `create_model` spell them. A Hugging Face transformers ViT,
`hf://ORG/NAME[@REVISION]` or its local folder, is built from its own `config.json`.
"""

import fnmatch
import pathlib
import re

from vit_keras.architectures import ARCHITECTURES
from vit_keras.model import ViT
from vit_keras.pretrained.download import download
from vit_keras.pretrained.files import check_sha256, checkpoint_file, read_checkpoint, read_json_object
from vit_keras.pretrained.hub import hub_snapshot, is_hub_source, parse_hub_source
from vit_keras.pretrained.huggingface import (
    check_config_matches_weights,
    head_arguments,
    preprocessing_of,
    vit_arguments,
)
from vit_keras.pretrained.loader import load_local
from vit_keras.pretrained.registry import ALIASES, PUBLISHED, published_names, resolve_published

# The weights `create_model(ARCHITECTURE, pretrained=True)` loads: timm's default tag.
DEFAULT_TAG = "augreg_in21k_ft_in1k"


def list_models(pretrained=False, *, filter=None):
    """Sorted names that `create_model` builds.

    Args:
        pretrained: False: every architecture; True: every `ARCHITECTURE.TAG` with published weights.
        filter: an fnmatch pattern, e.g. "vit_b*" or "*in21k*".

    Returns:
        A sorted list of names.
    """
    if pretrained:
        names = [f"{arch}.{tag}" for arch, tags in PUBLISHED.items() for tag in tags]
    else:
        names = list(ARCHITECTURES)
    return sorted(n for n in names if filter is None or fnmatch.fnmatch(n, filter))


def _split_name(name):
    if not isinstance(name, str) or name.partition(".")[0] not in ARCHITECTURES:
        raise ValueError(
            f"name must be one of list_models() (optionally .TAG), hf://ORG/NAME or a Hugging Face model "
            f"folder; found {name!r}."
        )
    arch, _, tag = name.partition(".")
    tag = ALIASES.get(tag, tag)
    if tag and tag not in PUBLISHED.get(arch, {}):
        raise ValueError(
            f"name {name!r}: {arch} has no published weights {tag!r}; it has {published_names(arch) or 'none'}."
        )
    return arch, tag


def pretrained_defaults(arch, tag, image_size=None):
    """(`ViT` keyword arguments that match the published `arch.tag` weights, its registry Checkpoint).

    The keyword arguments are the checkpoint's input normalisation (`preprocessing`), head size,
    pre-logits width and, unless `image_size` is given, its resolution.
    """
    checkpoint = resolve_published(arch, tag, 224 if image_size is None else image_size)
    defaults = dict(
        preprocessing=checkpoint.preprocessing,
        num_classes=checkpoint.num_classes,
        representation_size=checkpoint.representation_size,
        image_size=checkpoint.resolution if image_size is None else image_size,
    )
    return defaults, checkpoint


def preset_weight_defaults(preset, weights, image_size=None):
    """`ViT` keyword arguments for `preset` built to take `weights` (see `pretrained_defaults`).

    Returns {} unless `weights` is a name published for `preset` (a path or URL tells nothing).
    """
    tag = ALIASES.get(weights, weights) if isinstance(weights, str) else None
    if tag not in PUBLISHED.get(preset, {}):
        return {}
    return pretrained_defaults(preset, tag, image_size)[0]


def create_model(name, pretrained=None, checkpoint_path=None, sha256=None, cache_dir=None, **overrides):
    """Build any architecture, with its published weights, by name.

    Args:
        name: "ARCHITECTURE" or "ARCHITECTURE.TAG" (see `list_models`), e.g. "vit_b16.augreg_in21k_ft_in1k";
            or a Hugging Face transformers ViT: "hf://ORG/NAME[@REVISION]" or its local folder
            (`config.json` and the weights, one file or shards), built as its config.json says.
        pretrained: load the weights; default: True when `name` has a TAG or is a Hugging Face
            model. With no TAG, True loads DEFAULT_TAG.
        checkpoint_path: a local file to load instead of downloading the published one.
        sha256: expected sha256 of the file.
        cache_dir: download cache root (see `vit_keras.pretrained.download`; for hf:// the hub's cache).
        **overrides: `vit_keras.ViT` keyword arguments (e.g. num_classes=10, image_size=384). A head of
            another size is left freshly initialised.

    Returns:
        A `vit_keras.ViT` named ARCHITECTURE (a Hugging Face model: its NAME, non-word characters
        as "_"). With published weights it normalises raw 0-255 pixels
        as the checkpoint expects ("symmetric": [-1, 1]) and, with an ImageNet-1k head, has
        `class_names` (1,000 names). A Hugging Face model takes the inputs its
        preprocessor_config.json describes (raw 0-255 pixels where it matches a `preprocessing`
        name) and has its `id2label` names as `class_names` unless they are transformers'
        placeholders (LABEL_0, ...).

    Raises:
        ValueError: an unknown name or TAG; for a Hugging Face model, a config.json this ViT
            cannot compute (see `vit_keras.pretrained.huggingface.vit_arguments`), before
            anything is built.
    """
    if pretrained is not None and not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be True, False or None; found {pretrained!r}.")
    if _is_snapshot_source(name):
        if checkpoint_path is not None:
            raise ValueError(f"checkpoint_path is for published names; {name!r} names its own weights.")
        return _create_from_snapshot(name, pretrained, sha256, cache_dir, overrides)
    arch, tag = _split_name(name)
    pretrained = bool(tag) if pretrained is None else bool(pretrained)
    if pretrained and not tag:
        tag = DEFAULT_TAG if DEFAULT_TAG in PUBLISHED.get(arch, {}) else (published_names(arch) or [None])[0]
        if tag is None:
            raise ValueError(f"pretrained=True: {arch} has no published weights; pass pretrained=False.")
    checkpoint, config = None, dict(ARCHITECTURES[arch])
    if tag:
        defaults, checkpoint = pretrained_defaults(arch, tag, overrides.get("image_size"))
        config.update(defaults)
    config.update(overrides)
    model = ViT(**{"name": arch, **config})
    if pretrained:
        if checkpoint_path is not None and sha256 is not None:
            check_sha256(checkpoint_file(checkpoint_path), sha256)
        path = checkpoint_path or download(checkpoint.url, sha256=sha256, cache_dir=cache_dir)
        load_local(model, path, checkpoint)
    return model


def _is_snapshot_source(name):
    """True for `hf://ORG/NAME` or a folder (a Hugging Face model) rather than an architecture name."""
    if isinstance(name, pathlib.PurePath):
        return True
    if not isinstance(name, str) or not name or name.partition(".")[0] in ARCHITECTURES:
        return False
    return is_hub_source(name) or pathlib.Path(name).expanduser().is_dir()


def _snapshot_folder(source, cache_dir, weights=True):
    """(local folder, model name) of a hf:// source (its configs alone unless `weights`) or a folder path."""
    if is_hub_source(source):
        folder = hub_snapshot(source, cache_dir=cache_dir, weights=weights)
        label = parse_hub_source(source)[0].split("/")[1]
    else:
        folder = pathlib.Path(source).expanduser()
        label = folder.resolve().name
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder / 'config.json'} not found: building a model from {source} needs its transformers "
            "config.json (for other folders build a ViT and call load_pretrained)."
        )
    return folder, re.sub(r"\W", "_", label) or "vit"


def _create_from_snapshot(source, pretrained, sha256, cache_dir, overrides):
    """`create_model` of a Hugging Face transformers ViT folder or hf:// snapshot."""
    pretrained = True if pretrained is None else bool(pretrained)
    folder, label = _snapshot_folder(str(source), cache_dir, weights=pretrained)
    arguments = vit_arguments(
        read_json_object(folder / "config.json", "download the model folder again"), folder / "config.json"
    )
    arguments["preprocessing"] = preprocessing_of(folder)
    arrays = None
    if pretrained:
        if sha256 is not None:
            check_sha256(checkpoint_file(folder), sha256)
        arrays = read_checkpoint(folder)
        check_config_matches_weights(arguments, arrays, folder / "config.json", checkpoint_file(folder))
        arguments.update(head_arguments(arrays))
    model = ViT(**{"name": label, **arguments, **overrides})
    if pretrained:
        load_local(model, folder, arrays=arrays)
    return model
