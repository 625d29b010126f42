"""Hugging Face transformers ViT checkpoints (`ViTModel`, `ViTForImageClassification`) to canonical.

Keys as in transformers' `modeling_vit.py`: `vit.embeddings.patch_embeddings.projection`,
`vit.encoder.layer.{i}.attention.attention.{query,key,value}`, `...attention.output.dense`,
`...intermediate.dense`, `...output.dense`, `...layernorm_{before,after}`, `vit.layernorm`,
`classifier`, and `pooler.dense` (a `ViTModel`'s tanh pooler: the pre-logits layer of the
ImageNet-21k releases). A bare `ViTModel` has the same keys without the `vit.` prefix.
"""

import numpy as np

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
                bias = np.zeros(np.asarray(array).shape[0], np.float32)  # qkv_bias=False
            canonical.update(attention_projection(f"{prefix}/attention/{part}", array, bias, num_heads))
        elif rest == "attention.output.dense.weight":
            bias = arrays.get(f"encoder.layer.{block}.attention.output.dense.bias")
            canonical.update(attention_output(f"{prefix}/attention/out", array, bias, num_heads))
        elif rest in _CONSUMED_BIASES:
            continue  # read with its weight
        else:
            unused.append(key)
    return canonical, unused
