"""timm's `VisionTransformer` state dict (PyTorch layout) to canonical names and layouts.

PyTorch stores a Linear weight as (out, in) and a Conv2d weight as (out, in, kH, kW);
the canonical (Google) layout is (in, out) and (kH, kW, in, out), with attention kernels
split per head. The helpers here are shared with the Hugging Face converter.
"""

import numpy as np

from vit_keras.pretrained.files import CheckpointError


def dense_kernel(weight):
    """(out, in) Linear weight -> (in, out) kernel."""
    return np.asarray(weight).T


def conv_kernel(weight):
    """(out, in, kH, kW) Conv2d weight -> (kH, kW, in, out) kernel."""
    weight = np.asarray(weight)
    return weight.transpose(2, 3, 1, 0) if weight.ndim == 4 else weight


def _split_last(array, num_heads):
    """(..., H*d) -> (..., H, d); left as is when it does not divide (assign_weights then names the shape)."""
    if array.ndim == 0 or array.shape[-1] % num_heads:
        return array
    return array.reshape(array.shape[:-1] + (num_heads, array.shape[-1] // num_heads))


def attention_projection(prefix, weight, bias, num_heads):
    """Canonical {query|key|value} kernel (D, H, D/H) and bias (H, D/H) from a torch Linear."""
    return {
        f"{prefix}/kernel": _split_last(dense_kernel(weight), num_heads),
        f"{prefix}/bias": _split_last(np.asarray(bias), num_heads),
    }


def attention_output(prefix, weight, bias, num_heads):
    """Canonical attention output kernel (H, D/H, D) and bias (D,) from a torch Linear."""
    kernel = dense_kernel(weight)
    if kernel.ndim and kernel.shape[0] % num_heads == 0:
        kernel = kernel.reshape((num_heads, kernel.shape[0] // num_heads) + kernel.shape[1:])
    converted = {f"{prefix}/kernel": kernel}
    if bias is not None:  # absent: assign_weights reports it missing
        converted[f"{prefix}/bias"] = np.asarray(bias)
    return converted


def is_timm_checkpoint(keys):
    """True if `keys` look like a timm ViT state dict."""
    return "patch_embed.proj.weight" in keys


_BLOCK_PARAMS = {
    "norm1.weight": ("norm1/scale", np.asarray),
    "norm1.bias": ("norm1/bias", np.asarray),
    "norm2.weight": ("norm2/scale", np.asarray),
    "norm2.bias": ("norm2/bias", np.asarray),
    "mlp.fc1.weight": ("mlp_in/kernel", dense_kernel),
    "mlp.fc1.bias": ("mlp_in/bias", np.asarray),
    "mlp.fc2.weight": ("mlp_out/kernel", dense_kernel),
    "mlp.fc2.bias": ("mlp_out/bias", np.asarray),
}
_TOP_PARAMS = {
    "patch_embed.proj.weight": ("patch_embedding/kernel", conv_kernel),
    "patch_embed.proj.bias": ("patch_embedding/bias", np.asarray),
    "cls_token": ("class_token", np.asarray),
    "pos_embed": ("position_embedding", np.asarray),
    "norm.weight": ("encoder_norm/scale", np.asarray),
    "norm.bias": ("encoder_norm/bias", np.asarray),
    "pre_logits.fc.weight": ("pre_logits/kernel", dense_kernel),
    "pre_logits.fc.bias": ("pre_logits/bias", np.asarray),
    "head.weight": ("head/kernel", dense_kernel),
    "head.bias": ("head/bias", np.asarray),
}


def _split_qkv(key, array, bias_key, bias):
    """The fused (3D, D) `qkv` weight and (3D,) bias split into query, key and value.

    Raises a CheckpointError naming the key for a weight or bias that does not split in three.
    """
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[0] % 3:
        raise CheckpointError(f"weight {key!r} has shape {array.shape}; expected (3 * D, D), a fused qkv weight.")
    bias = np.zeros(array.shape[0], np.float32) if bias is None else np.asarray(bias)
    if bias.shape != (array.shape[0],):
        raise CheckpointError(
            f"weight {bias_key!r} has shape {bias.shape}; expected ({array.shape[0]},), its qkv bias."
        )
    return zip(("query", "key", "value"), np.split(array, 3), np.split(bias, 3))


def timm_to_canonical(arrays, num_heads):
    """Convert a timm ViT state dict; returns (canonical dict, keys it did not recognise).

    The fused `attn.qkv` (3D, D) is split into query, key and value in that order and
    reshaped to `num_heads` heads; a CheckpointError names a `qkv` weight or bias that does not split.
    """
    arrays = {k.removeprefix("module."): v for k, v in arrays.items()}
    canonical, unused = {}, []
    for key, array in arrays.items():
        if key in _TOP_PARAMS:
            name, convert = _TOP_PARAMS[key]
            canonical[name] = convert(array)
            continue
        block, _, rest = key.removeprefix("blocks.").partition(".")
        if not key.startswith("blocks.") or not block.isdigit():
            unused.append(key)
        elif rest in _BLOCK_PARAMS:
            name, convert = _BLOCK_PARAMS[rest]
            canonical[f"encoder_block_{block}/{name}"] = convert(array)
        elif rest == "attn.qkv.weight":
            bias_key = f"blocks.{block}.attn.qkv.bias"
            for part, weight, bias in _split_qkv(key, array, bias_key, arrays.get(bias_key)):
                canonical.update(
                    attention_projection(f"encoder_block_{block}/attention/{part}", weight, bias, num_heads)
                )
        elif rest == "attn.qkv.bias":
            continue  # consumed with the weight
        elif rest == "attn.proj.weight":
            canonical.update(
                attention_output(
                    f"encoder_block_{block}/attention/out",
                    array,
                    arrays.get(f"blocks.{block}.attn.proj.bias"),
                    num_heads,
                )
            )
        elif rest == "attn.proj.bias":
            continue
        else:
            unused.append(key)
    return canonical, unused
