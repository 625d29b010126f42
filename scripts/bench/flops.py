"""Analytic FLOPs of a ViT forward pass (2 FLOPs per multiply-add; training = 3x forward)."""


def vit_forward_flops(image_size, patch_size, in_channels, embed_dim, depth, mlp_dim, num_classes):
    """FLOPs of one image's forward pass: patch projection, attention, MLP and head matmuls.

    Norms, softmax, GELU and residual adds are left out (they are < 1% for ViT-Ti/16 and up).
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    patches = (height // patch_size) * (width // patch_size)
    tokens = patches + 1
    macs = patches * patch_size * patch_size * in_channels * embed_dim  # patch projection
    per_block = (
        4 * tokens * embed_dim * embed_dim  # q, k, v and output projections
        + 2 * tokens * tokens * embed_dim  # q.k^T and attention x v
        + 2 * tokens * embed_dim * mlp_dim  # the two MLP layers
    )
    macs += depth * per_block + embed_dim * num_classes
    return 2 * macs


def preset_forward_flops(preset, image_size, num_classes):
    """Forward FLOPs per image of a `vit_keras` preset at `image_size` with `num_classes`."""
    from bench.workloads import preset_architecture  # imports keras; the orchestrator keeps it out

    arch = preset_architecture(preset)
    return vit_forward_flops(
        image_size,
        arch["patch_size"],
        arch.get("in_channels", 3),
        arch["embed_dim"],
        arch["depth"],
        arch["mlp_dim"],
        num_classes,
    )
