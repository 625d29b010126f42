"""Hugging Face transformers ViT checkpoints (`ViTModel`, `ViTForImageClassification`) to canonical.

Keys as in transformers' `modeling_vit.py`: `vit.embeddings.patch_embeddings.projection`,
`vit.encoder.layer.{i}.attention.attention.{query,key,value}`, `...attention.output.dense`,
`...intermediate.dense`, `...output.dense`, `...layernorm_{before,after}`, `vit.layernorm`,
`classifier`, and `pooler.dense` (a `ViTModel`'s tanh pooler: the pre-logits layer of the
ImageNet-21k releases). A bare `ViTModel` has the same keys without the `vit.` prefix.

A snapshot's `config.json` (transformers' `ViTConfig`) becomes `vit_keras.ViT` arguments with
`vit_arguments`, and its `preprocessor_config.json` (`ViTImageProcessor`) a `preprocessing` name
with `preprocessing_of`.
"""

import logging
import math
import numbers
import pathlib

import numpy as np

from vit_keras.architectures import NORMALIZATIONS
from vit_keras.pretrained.files import CheckpointError, read_json_object
from vit_keras.pretrained.timm import attention_output, attention_projection, conv_kernel, dense_kernel

_PATCH_KEY = "embeddings.patch_embeddings.projection.weight"

_TOP_PARAMS = {
    "embeddings.patch_embeddings.projection.weight": ("patch_embedding/kernel", conv_kernel),
    "embeddings.patch_embeddings.projection.bias": ("patch_embedding/bias", np.asarray),
    "embeddings.cls_token": ("class_token", np.asarray),
    "embeddings.position_embeddings": ("position_embedding", np.asarray),
    "layernorm.weight": ("encoder_norm/scale", np.asarray),
    "layernorm.bias": ("encoder_norm/bias", np.asarray),
    "pooler.dense.weight": ("pre_logits/kernel", dense_kernel),
    "pooler.dense.bias": ("pre_logits/bias", np.asarray),
    "classifier.weight": ("head/kernel", dense_kernel),
    "classifier.bias": ("head/bias", np.asarray),
}
_BLOCK_PARAMS = {
    "layernorm_before.weight": ("norm1/scale", np.asarray),
    "layernorm_before.bias": ("norm1/bias", np.asarray),
    "layernorm_after.weight": ("norm2/scale", np.asarray),
    "layernorm_after.bias": ("norm2/bias", np.asarray),
    "intermediate.dense.weight": ("mlp_in/kernel", dense_kernel),
    "intermediate.dense.bias": ("mlp_in/bias", np.asarray),
    "output.dense.weight": ("mlp_out/kernel", dense_kernel),
    "output.dense.bias": ("mlp_out/bias", np.asarray),
}
_PROJECTIONS = ("query", "key", "value")
_CONSUMED_BIASES = {f"attention.attention.{p}.bias" for p in _PROJECTIONS} | {"attention.output.dense.bias"}


def _strip(key):
    return key.removeprefix("module.").removeprefix("vit.")


def is_huggingface_checkpoint(keys):
    """True if `keys` look like a Hugging Face transformers ViT checkpoint."""
    return any(_strip(key) == _PATCH_KEY for key in keys)


def huggingface_to_canonical(arrays, num_heads):
    """Convert a transformers ViT state dict; returns (canonical dict, keys it did not recognise)."""
    arrays = {_strip(k): v for k, v in arrays.items()}
    canonical, unused = {}, []
    for key, array in arrays.items():
        if key in _TOP_PARAMS:
            name, convert = _TOP_PARAMS[key]
            canonical[name] = convert(array)
            continue
        block, _, rest = key.removeprefix("encoder.layer.").partition(".")
        if not key.startswith("encoder.layer.") or not block.isdigit():
            unused.append(key)
            continue
        prefix = f"encoder_block_{block}"
        part = rest.removeprefix("attention.attention.").removesuffix(".weight")
        if rest in _BLOCK_PARAMS:
            name, convert = _BLOCK_PARAMS[rest]
            canonical[f"{prefix}/{name}"] = convert(array)
        elif rest.startswith("attention.attention.") and part in _PROJECTIONS:
            bias = arrays.get(f"encoder.layer.{block}.attention.attention.{part}.bias")
            if bias is None:
                bias = np.zeros(np.shape(array)[:1], np.float32)  # qkv_bias=False
            canonical.update(attention_projection(f"{prefix}/attention/{part}", array, bias, num_heads))
        elif rest == "attention.output.dense.weight":
            bias = arrays.get(f"encoder.layer.{block}.attention.output.dense.bias")
            canonical.update(attention_output(f"{prefix}/attention/out", array, bias, num_heads))
        elif rest in _CONSUMED_BIASES:
            continue  # read with its weight
        else:
            unused.append(key)
    return canonical, unused


def head_arguments(arrays):
    """The `ViT` read-out arguments a transformers state dict implies, from its weights' shapes.

    A `classifier` gives include_top=True and its num_classes; none (a `ViTModel`) gives
    include_top=False; a `pooler` gives representation_size (its tanh layer's width).
    Returns {} for a checkpoint of another layout.
    """
    if not is_huggingface_checkpoint(arrays):
        return {}
    arrays = {_strip(k): v for k, v in arrays.items()}
    arguments = {"include_top": "classifier.weight" in arrays}
    if arguments["include_top"]:
        arguments["num_classes"] = int(np.shape(arrays["classifier.weight"])[0])
    if "pooler.dense.weight" in arrays:
        arguments["representation_size"] = int(np.shape(arrays["pooler.dense.weight"])[0])
    return arguments


def _shapes_of(arrays):
    """{ViT argument: value} the shapes of a transformers state dict show (only those it shows)."""
    arrays = {_strip(k): v for k, v in arrays.items()}
    found = {}
    patch = np.shape(arrays.get(_PATCH_KEY, ()))
    if len(patch) == 4:  # (D, C, P, P)
        found.update(embed_dim=patch[0], in_channels=patch[1], patch_size=patch[2])
    mlp = np.shape(arrays.get("encoder.layer.0.intermediate.dense.weight", ()))
    if len(mlp) == 2:
        found["mlp_dim"] = mlp[0]
    layers = {key.split(".")[2] for key in arrays if key.startswith("encoder.layer.")}
    found["depth"] = len({layer for layer in layers if layer.isdigit()})
    return found


def check_config_matches_weights(arguments, arrays, config_path, weights_path):
    """Raise a CheckpointError where config.json's sizes contradict the weights' shapes.

    Checked before a model is built: a config.json that lies (a wider, deeper or 1-channel
    model than its weights) would otherwise build a model of the wrong size first.
    """
    keys = {"embed_dim": "hidden_size", "in_channels": "num_channels", "patch_size": "patch_size"}
    keys.update(mlp_dim="intermediate_size", depth="num_hidden_layers")
    for name, found in _shapes_of(arrays).items():
        if name in arguments and arguments[name] != found:
            raise CheckpointError(
                f"{config_path}: {keys[name]!r} is {arguments[name]!r}, but the weights in {weights_path} have "
                f"{found}: the config.json does not belong to these weights; download the model folder again."
            )


log = logging.getLogger("vit_keras")

# ViTConfig key -> ViT argument, for the keys every ViT config.json must state.
_REQUIRED = {
    "hidden_size": "embed_dim",
    "num_hidden_layers": "depth",
    "num_attention_heads": "num_heads",
    "intermediate_size": "mlp_dim",
    "patch_size": "patch_size",
}
# ViTConfig key -> (ViT argument, transformers' default, what it must be, test of a number) for the
# keys a config.json may leave out.
_OPTIONAL = {
    "num_channels": ("in_channels", 3, "a positive integer", lambda v: isinstance(v, int) and v > 0),
    "layer_norm_eps": ("layer_norm_epsilon", 1e-12, "a positive finite number", lambda v: 0 < v < math.inf),
    "hidden_dropout_prob": ("dropout", 0.0, "a number in [0, 1)", lambda v: 0 <= v < 1),
    "attention_probs_dropout_prob": ("attention_dropout", 0.0, "a number in [0, 1)", lambda v: 0 <= v < 1),
}


class _Absent:
    """What a config.json that lacks a key is said to hold there."""

    def __repr__(self):
        return "no such key"


_ABSENT = _Absent()


def _config_error(config_path, key, expected, found):
    return ValueError(f"{config_path}: {key!r} must be {expected}; found {found!r:.80}.")


def _positive_int(config_path, config, key):
    value = config.get(key, _ABSENT)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _config_error(config_path, key, "a positive integer", value)
    return value


def _image_size(config_path, config):
    value = config.get("image_size", _ABSENT)
    sides = value if isinstance(value, (list, tuple)) and len(value) == 2 else [value]
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sides):
        raise _config_error(config_path, "image_size", "a positive integer or [height, width]", value)
    return tuple(value) if len(sides) == 2 else value


def _check_supported(config_path, config):
    """Raise for a config.json of a model this ViT does not compute (another type or activation)."""
    if config.get("model_type") != "vit":
        found = config.get("model_type", _ABSENT)
        raise _config_error(config_path, "model_type", "'vit' (transformers' ViTConfig)", found)
    if config.get("hidden_act", "gelu") != "gelu":
        raise _config_error(config_path, "hidden_act", "'gelu' (exact, erf-based)", config.get("hidden_act"))
    if not isinstance(config.get("qkv_bias", True), bool):
        raise _config_error(config_path, "qkv_bias", "true or false", config.get("qkv_bias"))
    for key, (_, default, expected, fits) in _OPTIONAL.items():
        value = config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not fits(value):
            raise _config_error(config_path, key, expected, value)


def vit_arguments(config, config_path="config.json"):
    """`vit_keras.ViT` keyword arguments for a transformers ViT `config.json` (a dict).

    Args:
        config: the parsed config.json of a `ViTModel` / `ViTForImageClassification`.
        config_path: the file, for error messages.

    Returns:
        A dict of image_size, patch_size, in_channels, embed_dim, depth, num_heads, mlp_dim,
        layer_norm_epsilon, dropout, attention_dropout and, where the config has `id2label`,
        num_classes. (`qkv_bias: false` checkpoints load as zero biases.)

    Raises:
        ValueError: one line naming config.json, the key, what was expected and what was found,
            for a model_type other than "vit", a hidden_act other than "gelu", a missing or
            non-positive size, a hidden_size that num_attention_heads does not divide, or an
            image_size that patch_size does not divide.
    """
    _check_supported(config_path, config)
    arguments = {name: _positive_int(config_path, config, key) for key, name in _REQUIRED.items()}
    arguments["image_size"] = _image_size(config_path, config)
    for key, (name, default, _, _) in _OPTIONAL.items():
        arguments[name] = config.get(key, default)
    if arguments["embed_dim"] % arguments["num_heads"]:
        raise _config_error(
            config_path,
            "hidden_size",
            f"a multiple of num_attention_heads={arguments['num_heads']}",
            config["hidden_size"],
        )
    sides = arguments["image_size"] if isinstance(arguments["image_size"], tuple) else [arguments["image_size"]]
    if any(side % arguments["patch_size"] for side in sides):
        raise _config_error(
            config_path, "image_size", f"a multiple of patch_size={arguments['patch_size']}", config["image_size"]
        )
    if isinstance(config.get("id2label"), dict) and config["id2label"]:
        arguments["num_classes"] = len(config["id2label"])
    return arguments


def _close(found, expected):
    """True if `found` (numbers from a JSON file) equals `expected` per channel; False for non-numbers."""
    try:
        return bool(np.allclose(np.asarray(found, dtype="float64"), expected))
    except (TypeError, ValueError):
        return False


def preprocessing_of(folder):
    """The `ViT(preprocessing=)` name the snapshot's `preprocessor_config.json` describes, or None.

    A `ViTImageProcessor` that rescales by 1/255 and normalises with a mean and std of
    `vit_keras.architectures.NORMALIZATIONS` (Google's ViTs: 0.5 / 0.5, "symmetric"; no
    normalisation: "unit") gives that name; a folder without the file, or other statistics,
    give None (with a log line).
    """
    path = pathlib.Path(folder) / "preprocessor_config.json"
    if not path.is_file():
        return None
    config = read_json_object(path, remedy="download it again")
    rescale = config.get("rescale_factor", 1 / 255) if config.get("do_rescale", True) else 1.0
    mean, std = (config.get("image_mean"), config.get("image_std")) if config.get("do_normalize", True) else (0, 1)
    for name, (norm_mean, norm_std) in NORMALIZATIONS.items():
        if _close(rescale, 1 / 255) and _close(mean, norm_mean) and _close(std, norm_std):
            return name
    log.info(
        "%s: scaling %s then normalisation (mean %s, std %s) is none of %s; feed inputs normalised so.",
        path,
        rescale,
        mean,
        std,
        list(NORMALIZATIONS),
    )
    return None
