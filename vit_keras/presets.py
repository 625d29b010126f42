"""Named ViT configurations from the paper (Table 1), plus a small one for MNIST digits."""

from vit_keras.model import ViT

# name -> architecture; the ViT-Ti and ViT-S widths are DeiT's, as in timm.
PRESETS = {
    "vit_ti16": dict(patch_size=16, embed_dim=192, depth=12, num_heads=3, mlp_dim=768),
    "vit_s16": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6, mlp_dim=1536),
    "vit_b16": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_dim=3072),
    "vit_b32": dict(patch_size=32, embed_dim=768, depth=12, num_heads=12, mlp_dim=3072),
    "vit_l16": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16, mlp_dim=4096),
    "vit_l32": dict(patch_size=32, embed_dim=1024, depth=24, num_heads=16, mlp_dim=4096),
    "vit_h14": dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16, mlp_dim=5120),
    "vit_mnist": dict(
        image_size=28, in_channels=1, num_classes=10, patch_size=4,
        embed_dim=128, depth=6, num_heads=4, mlp_dim=256,
    ),
}


def preset_config(name, **overrides):
    """The keyword arguments of `ViT` for preset `name`, with `overrides` applied."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}; found {name!r}.")
    return {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}


def build_preset(name, weights=None, **overrides):
    """Build preset `name` with `overrides`; `weights` names or points to a checkpoint."""
    model = ViT(name=name, **preset_config(name, **overrides))
    if weights is not None:
        from vit_keras.pretrained import load_preset_weights

        load_preset_weights(model, name, weights)
    return model


def _preset_builder(name):
    def builder(image_size=PRESETS[name].get("image_size", 224), num_classes=PRESETS[name].get("num_classes", 1000), weights=None, **overrides):
        return build_preset(name, weights=weights, image_size=image_size, num_classes=num_classes, **overrides)

    arch = PRESETS[name]
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (
        f"{name}: patch {arch['patch_size']}, width {arch['embed_dim']}, depth {arch['depth']}, "
        f"{arch['num_heads']} heads, MLP {arch['mlp_dim']}. Keyword arguments override `ViT`'s; "
        f"`weights` loads a checkpoint (a path, URL or published name)."
    )
    return builder


vit_ti16 = _preset_builder("vit_ti16")
vit_s16 = _preset_builder("vit_s16")
vit_b16 = _preset_builder("vit_b16")
vit_b32 = _preset_builder("vit_b32")
vit_l16 = _preset_builder("vit_l16")
vit_l32 = _preset_builder("vit_l32")
vit_h14 = _preset_builder("vit_h14")
vit_mnist = _preset_builder("vit_mnist")
