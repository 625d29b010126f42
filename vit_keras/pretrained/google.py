"""Google's checkpoint layout (google-research/vision_transformer `.npz`) to canonical names."""

_BLOCK = "Transformer/encoderblock_{i}/"
_BLOCK_MAP = {
    "LayerNorm_0/scale": "norm1/scale",
    "LayerNorm_0/bias": "norm1/bias",
    "LayerNorm_2/scale": "norm2/scale",
    "LayerNorm_2/bias": "norm2/bias",
    "MlpBlock_3/Dense_0/kernel": "mlp_in/kernel",
    "MlpBlock_3/Dense_0/bias": "mlp_in/bias",
    "MlpBlock_3/Dense_1/kernel": "mlp_out/kernel",
    "MlpBlock_3/Dense_1/bias": "mlp_out/bias",
    **{
        f"MultiHeadDotProductAttention_1/{part}/{leaf}": f"attention/{part}/{leaf}"
        for part in ("query", "key", "value", "out")
        for leaf in ("kernel", "bias")
    },
}
_TOP_MAP = {
    "embedding/kernel": "patch_embedding/kernel",
    "embedding/bias": "patch_embedding/bias",
    "cls": "class_token",
    "Transformer/posembed_input/pos_embedding": "position_embedding",
    "Transformer/encoder_norm/scale": "encoder_norm/scale",
    "Transformer/encoder_norm/bias": "encoder_norm/bias",
    "pre_logits/kernel": "pre_logits/kernel",
    "pre_logits/bias": "pre_logits/bias",
    "head/kernel": "head/kernel",
    "head/bias": "head/bias",
}


# Some releases hold the whole optimizer state: the parameters sit under this prefix.
_OPTIMIZER_PREFIX = "opt/target/"


def is_google_checkpoint(keys):
    """True if `keys` look like a Google ViT checkpoint."""
    return any(k.removeprefix(_OPTIMIZER_PREFIX) == "Transformer/posembed_input/pos_embedding" for k in keys)


def google_to_canonical(arrays):
    """Rename Google checkpoint arrays ({key: array}) to canonical names; layouts already match.

    Returns (canonical dict, keys it did not recognise). In a checkpoint saved with its
    optimizer state, the parameters under `opt/target/` are taken and the rest ignored.
    """
    if any(k.startswith(_OPTIMIZER_PREFIX) for k in arrays):
        arrays = {k[len(_OPTIMIZER_PREFIX) :]: v for k, v in arrays.items() if k.startswith(_OPTIMIZER_PREFIX)}
    canonical, unused = {}, []
    for key, array in arrays.items():
        block, _, rest = key.removeprefix("Transformer/encoderblock_").partition("/")
        if key in _TOP_MAP:
            canonical[_TOP_MAP[key]] = array
        elif key.startswith("Transformer/encoderblock_") and block.isdigit() and rest in _BLOCK_MAP:
            canonical[f"encoder_block_{block}/{_BLOCK_MAP[rest]}"] = array
        else:
            unused.append(key)
    return canonical, unused
