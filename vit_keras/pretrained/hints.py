"""What a checkpoint says about itself beyond its weights: head count and class names.

A fused timm `qkv` (3D, D) or a Hugging Face query weight (D, D) does not record how many
attention heads split it, so a checkpoint loads into a model with another head count without
a shape error and computes something else. The hints read here are every other record there is:
a Hugging Face `config.json` (`num_attention_heads`, `id2label`), a timm Hub `config.json`
(`architecture`, `model_args`, `label_names`) and `num_heads` / `architecture` / `pretrained_cfg`
entries in a `.safetensors` header's metadata. Google `.npz` files split their kernels per head.
"""

import json
import numbers
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


def _head_count(value, where, key):
    """`value` (an int, or digits in a string: metadata values are strings) as a head count."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and int(value) > 0:
        return int(value)
    raise CheckpointError(
        f"{where}: {key!r} must be a positive integer (the attention-head count); found {value!r:.60}."
    )


def _heads_in(mapping, where):
    """The head count a config or metadata mapping states, or None; a CheckpointError for a malformed one."""
    for key in ("num_attention_heads", "num_heads"):
        if key in mapping:
            return _head_count(mapping[key], where, key)
    model_args = mapping.get("model_args")
    if isinstance(model_args, dict) and "num_heads" in model_args:
        return _head_count(model_args["num_heads"], where, "model_args.num_heads")
    for key in ("pretrained_cfg", "config"):
        nested = mapping.get(key)
        if isinstance(nested, str):
            try:
                nested = json.loads(nested)
            except json.JSONDecodeError:
                nested = None
        if isinstance(nested, dict):
            heads = _heads_in(nested, where)
            if heads:
                return heads
    return _heads_of_timm_name(mapping.get("architecture"))


def head_count_hints(path, config, num_heads=None):
    """[(where, heads)] of every record of the checkpoint's head count.

    Raises:
        CheckpointError: a record that is no positive integer (naming the file and key).
        ValueError: a `num_heads` argument that is no positive integer.
    """
    hints = []
    if num_heads is not None:
        if isinstance(num_heads, bool) or not isinstance(num_heads, numbers.Integral) or num_heads <= 0:
            raise ValueError(f"num_heads must be a positive integer (or None); found {num_heads!r}.")
        hints.append(("the num_heads argument", int(num_heads)))
    if config is not None:
        config_path = f"{pathlib.Path(path) / 'config.json'}"
        heads = _heads_in(config, config_path)
        if heads:
            hints.append((config_path, heads))
    heads = _heads_in(checkpoint_metadata(path), f"{path} (safetensors metadata)")
    if heads:
        hints.append(("its safetensors metadata", heads))
    return hints


def check_head_count(model_heads, hints, source):
    """Raise a CheckpointError naming the record if any hint disagrees with the model's head count."""
    for where, heads in hints:
        if heads != model_heads:
            raise CheckpointError(
                f"{source}: {where} gives {heads} attention heads; the model has {model_heads}: "
                f"build it with num_heads={heads}."
            )


def class_names(config, config_path="config.json"):
    """The class names a config records (transformers `id2label`, timm `label_names`), or None.

    Raises:
        CheckpointError: names that are not strings (naming `config_path` and the key), found
            before any weight is loaded.
    """
    if not config:
        return None
    names = config.get("label_names")
    if isinstance(names, list) and names:
        _check_names(names, config_path, "label_names")
        return list(names)
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        try:
            names = [id2label[str(i)] for i in range(len(id2label))]
        except KeyError:
            return None
        _check_names(names, config_path, "id2label")
        if not all(n == f"LABEL_{i}" for i, n in enumerate(names)):  # transformers' placeholders
            return names
    return None


def _check_names(names, config_path, key):
    wrong = next((n for n in names if not isinstance(n, str)), None)
    if wrong is not None:
        raise CheckpointError(f"{config_path}: {key!r} must map to class names (strings); found {wrong!r:.60}.")
