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


def is_google_checkpoint(keys):
    """True if `keys` look like a Google ViT checkpoint."""
    return "Transformer/posembed_input/pos_embedding" in keys


def google_to_canonical(arrays):
    """Rename Google checkpoint arrays ({key: array}) to canonical names; layouts already match."""
    canonical = {}
    for key, array in arrays.items():
        if key in _TOP_MAP:
            canonical[_TOP_MAP[key]] = array
            continue
        if key.startswith("Transformer/encoderblock_"):
            block, _, rest = key[len("Transformer/encoderblock_"):].partition("/")
            if rest in _BLOCK_MAP:
                canonical[f"encoder_block_{block}/{_BLOCK_MAP[rest]}"] = array
    return canonical
