"""Build the named architectures of `vit_keras.architectures`.

`PRESETS` is `vit_keras.architectures.ARCHITECTURES` (the one table of names), and each
name has a builder function here (`vit_b16`, `vit_mnist_p7`, ...) that takes `ViT`'s keyword
arguments as overrides and, with `weights`, loads a checkpoint.

Example:

>>> from vit_keras.presets import preset_config, vit_mnist_p7
>>> preset_config("vit_b16", image_size=384)["image_size"]
384
>>> model = vit_mnist_p7()
>>> model.name, model.input_layout, model.mlp_dim, model.count_params()
('vit_mnist_p7', (28, 28, 1), 400, 129310)
"""

from vit_keras.architectures import ARCHITECTURES
from vit_keras.model import ViT

PRESETS = ARCHITECTURES

__all__ = ["PRESETS", "build_preset", "preset_config"] + list(ARCHITECTURES)


def preset_config(name, **overrides):
    """The keyword arguments of `ViT` for a named architecture.

    Args:
        name: a key of `PRESETS`.
        **overrides: `ViT` keyword arguments that replace the preset's; None values are ignored.

    Returns:
        A new dict of `ViT` keyword arguments.

    Raises:
        ValueError: if `name` is not a preset.
    """
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}; found {name!r}.")
    return {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}


def build_preset(name, weights=None, **overrides):
    """Build a named architecture, optionally with pretrained weights.

    Args:
        name: a key of `PRESETS`; also the model's name.
        weights: None, or a checkpoint path, URL or published name for
            `vit_keras.pretrained.load_preset_weights`.
        **overrides: `ViT` keyword arguments that replace the preset's.

    Returns:
        A `vit_keras.ViT`.

    Raises:
        ValueError: for an unknown `name` or a bad override (as `ViT`).
    """
    if weights is not None:  # a published checkpoint brings its input normalisation (given overrides win)
        from vit_keras.pretrained import preset_weight_defaults

        given = {key: value for key, value in overrides.items() if value is not None}
        overrides = {**preset_weight_defaults(name, weights, overrides.get("image_size")), **given}
    model = ViT(name=name, **preset_config(name, **overrides))
    if weights is not None:
        from vit_keras.pretrained import load_preset_weights

        load_preset_weights(model, name, weights)
    return model


def _describe(name):
    """One line on a preset's architecture, for its builder's docstring."""
    arch = PRESETS[name]
    size = arch.get("image_size", 224)
    return (
        f"{name}: {size}x{size} images, patch {arch['patch_size']}, width {arch['embed_dim']}, "
        f"depth {arch['depth']}, {arch['num_heads']} heads, MLP {arch['mlp_dim']}"
    )


def _preset_builder(name):
    """The builder function of preset `name`: its defaults are the preset's image size and classes."""
    arch = PRESETS[name]
    default_size, default_classes = arch.get("image_size", 224), arch.get("num_classes", 1000)

    def builder(image_size=default_size, num_classes=default_classes, weights=None, **overrides):
        return build_preset(name, weights=weights, image_size=image_size, num_classes=num_classes, **overrides)

    builder.__name__ = builder.__qualname__ = name
    builder.__module__ = __name__
    builder.__doc__ = (
        f"Build {_describe(name)}.\n\n"
        "    Args:\n"
        f"        image_size: int or (height, width); {arch.get('image_size', 224)}.\n"
        f"        num_classes: head outputs; {arch.get('num_classes', 1000)}.\n"
        "        weights: None, or a checkpoint path, URL or published name to load.\n"
        "        **overrides: other `vit_keras.ViT` keyword arguments.\n\n"
        "    Returns:\n"
        f"        A `vit_keras.ViT` named {name!r}.\n"
    )
    return builder


globals().update({name: _preset_builder(name) for name in ARCHITECTURES})
