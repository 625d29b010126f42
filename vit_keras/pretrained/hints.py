"""What a checkpoint says about itself beyond its weights: head count and class names.

A fused timm `qkv` (3D, D) or a Hugging Face query weight (D, D) does not record how many
attention heads split it, so a checkpoint loads into a model with another head count without
a shape error and computes something else. The hints read here are every other record there is:
a Hugging Face `config.json` (`num_attention_heads`, `id2label`), a timm Hub `config.json`
(`architecture`, `model_args`, `label_names`) and `num_heads` / `architecture` / `pretrained_cfg`
entries in a `.safetensors` header's metadata. Google `.npz` files split their kernels per head.
"""

import json
import pathlib

from vit_keras.pretrained.files import CheckpointError, checkpoint_metadata, read_json_object

# timm ViT name -> heads: vit_{size}_patch{P}_{res}.
_TIMM_SIZES = {"tiny": 3, "small": 6, "base": 12, "large": 16, "huge": 16}


def read_config(path):
    """The `config.json` of a model folder `path` (a dict); None for a file or a folder without one."""
    config_path = pathlib.Path(path) / "config.json"
    if not pathlib.Path(path).is_dir() or not config_path.is_file():
        return None
    config = read_json_object(config_path, remedy="download the model folder again")
    if "architecture" not in config and "num_attention_heads" not in config:
        raise CheckpointError(
            f"{config_path} has neither 'num_attention_heads' (transformers) nor 'architecture' (timm), "
            f"found keys {sorted(config)[:8]}: download the model folder again."
        )
    return config


def _heads_of_timm_name(name):
    if not isinstance(name, str) or not name.startswith("vit_"):
        return None
    return _TIMM_SIZES.get(name.split("_")[1])


def _heads_in(mapping):
    """The head count a config or metadata mapping states, or None."""
    for key in ("num_attention_heads", "num_heads"):
        if str(mapping.get(key, "")).strip().isdigit():
            return int(mapping[key])
    model_args = mapping.get("model_args")
    if isinstance(model_args, dict) and "num_heads" in model_args:
        return int(model_args["num_heads"])
    for key in ("pretrained_cfg", "config"):
        nested = mapping.get(key)
        if isinstance(nested, str):
            try:
                nested = json.loads(nested)
            except json.JSONDecodeError:
                nested = None
        if isinstance(nested, dict) and _heads_in(nested):
            return _heads_in(nested)
    return _heads_of_timm_name(mapping.get("architecture"))


def head_count_hints(path, config, num_heads=None):
    """[(where, heads)] of every record of the checkpoint's head count."""
    hints = []
    if num_heads is not None:
        hints.append(("the num_heads argument", int(num_heads)))
    if config is not None and _heads_in(config):
        hints.append((f"{pathlib.Path(path) / 'config.json'}", _heads_in(config)))
    metadata = checkpoint_metadata(path)
    if _heads_in(metadata):
        hints.append(("its safetensors metadata", _heads_in(metadata)))
    return hints


def check_head_count(model_heads, hints, source):
    """Raise a CheckpointError naming the record if any hint disagrees with the model's head count."""
    for where, heads in hints:
        if heads != model_heads:
            raise CheckpointError(
                f"{source}: {where} gives {heads} attention heads; the model has {model_heads}: "
                f"build it with num_heads={heads}."
            )


def class_names(config):
    """The class names a config records (transformers `id2label`, timm `label_names`), or None."""
    if not config:
        return None
    names = config.get("label_names")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return list(names)
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        try:
            names = [id2label[str(i)] for i in range(len(id2label))]
        except KeyError:
            return None
        if not all(n == f"LABEL_{i}" for i, n in enumerate(names)):  # transformers' placeholders
            return names
    return None
