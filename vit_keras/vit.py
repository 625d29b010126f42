"""Drop-in `vit` module of the older, TensorFlow-only vit-keras library, on Keras 3.

Code written for that library runs unchanged, on any backend:

    from vit_keras import vit
    model = vit.vit_b16(image_size=224, activation="sigmoid", pretrained=True,
                        include_top=True, pretrained_top=False, classes=10)
    y = model.predict(vit.preprocess_inputs(images))

Same functions, argument names, defaults and meanings (`vit_b16`, `vit_b32`, `vit_l16`,
`vit_l32`, `build_model`, `preprocess_inputs`, `load_pretrained`); the models are
`vit_keras.ViT` and the weights come from Google's official `.npz` releases, cached by
`vit_keras.pretrained.download` in the same place and under the same names as before
(`~/.keras/weights/ViT-B_16_imagenet21k+imagenet2012.npz`). Where the old library
asserted, this module raises a ValueError.
"""

import warnings

import keras

from vit_keras.architectures import ARCHITECTURES
from vit_keras.model import ViT
from vit_keras.pretrained.canonical import assign_weights
from vit_keras.pretrained.download import download
from vit_keras.pretrained.files import read_checkpoint
from vit_keras.pretrained.labels import imagenet_classes
from vit_keras.pretrained.loader import set_class_names, to_canonical
from vit_keras.pretrained.registry import GOOGLE_BUCKET


def _old_config(architecture):
    """The old library's config dict (its argument names, dropout 0.1) of a `vit_keras.architectures` entry."""
    arch = ARCHITECTURES[architecture]
    return {
        "dropout": 0.1,
        "mlp_dim": arch["mlp_dim"],
        "num_heads": arch["num_heads"],
        "num_layers": arch["depth"],
        "hidden_size": arch["embed_dim"],
    }


CONFIG_B = _old_config("vit_b16")
CONFIG_L = _old_config("vit_l16")

# weights name -> classes of its head (as in the old library)
WEIGHTS = {"imagenet21k": 21_843, "imagenet21k+imagenet2012": 1_000}
SIZES = {"B_16", "B_32", "L_16", "L_32"}


def preprocess_inputs(X):
    """Scale 0-255 RGB images to [-1, 1], the input the pretrained models expect."""
    return keras.applications.imagenet_utils.preprocess_input(X, data_format=None, mode="tf")


def interpret_image_size(image_size_arg):
    """(height, width) from an int or a pair of ints."""
    if isinstance(image_size_arg, int):
        return (image_size_arg, image_size_arg)
    if (
        isinstance(image_size_arg, (tuple, list))
        and len(image_size_arg) == 2
        and all(isinstance(v, int) for v in image_size_arg)
    ):
        return tuple(image_size_arg)
    raise ValueError(
        f"The image_size argument must be a tuple of 2 integers or a single integer. Received: {image_size_arg}"
    )


def build_model(
    image_size,
    patch_size,
    num_layers,
    hidden_size,
    num_heads,
    name,
    mlp_dim,
    classes,
    dropout=0.1,
    activation="linear",
    include_top=True,
    representation_size=None,
):
    """Build a ViT (a `vit_keras.ViT`) from the old library's arguments.

    Args:
        image_size: int or (height, width); a multiple of `patch_size`.
        patch_size: side of the square patches.
        num_layers: transformer blocks.
        hidden_size: token width.
        num_heads: attention heads.
        name: model name.
        mlp_dim: MLP hidden width.
        classes: outputs of the head (if `include_top`).
        dropout: dropout rate.
        activation: activation of the head ("linear" gives logits).
        include_top: add the head; otherwise the output is the (batch, hidden_size) class token.
        representation_size: width of a tanh pre-logits layer before the head, if any.
    """
    return ViT(
        image_size=interpret_image_size(image_size),
        patch_size=patch_size,
        in_channels=3,
        num_classes=classes,
        embed_dim=hidden_size,
        depth=num_layers,
        num_heads=num_heads,
        mlp_dim=mlp_dim,
        dropout=dropout,
        pooling="token",
        include_top=include_top,
        classifier_activation=activation,
        representation_size=representation_size,
        name=name,
    )


def validate_pretrained_top(include_top, pretrained, classes, weights):
    """The head size to build when `pretrained_top` is set (warns if `classes` differs)."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {sorted(WEIGHTS)}; found {weights!r}.")
    expected_classes = WEIGHTS[weights]
    if classes != expected_classes:
        warnings.warn(
            f"Can only use pretrained_top with {weights} if classes = {expected_classes}. Setting manually.",
            UserWarning,
            stacklevel=4,
        )
    if not include_top:
        raise ValueError("pretrained_top=True needs include_top=True (pass pretrained_top=False).")
    if not pretrained:
        raise ValueError("pretrained_top=True needs pretrained=True (pass pretrained_top=False).")
    return expected_classes


def weights_url(size, weights):
    """Google's URL of the `weights` release of ViT-`size` (e.g. "B_16")."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}; found {size!r}.")
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {sorted(WEIGHTS)}; found {weights!r}.")
    return f"{GOOGLE_BUCKET}{weights}/ViT-{size}.npz"


def load_pretrained(size, weights, pretrained_top, model, image_size=None, patch_size=None):
    """Download (once) and load the `weights` release of ViT-`size` into `model`.

    The position table is resampled to the model's grid; with `pretrained_top=False` the
    head is left freshly initialised. `image_size` and `patch_size` are accepted for
    compatibility; the model knows both.
    """
    fname = f"ViT-{size}_{weights}.npz"
    path = download(weights_url(size, weights), fname=fname, cache_subdir="weights")
    _, canonical = to_canonical(read_checkpoint(path), model.num_heads, source=str(path))
    if not pretrained_top:
        canonical = {k: v for k, v in canonical.items() if not k.startswith("head/")}
    assign_weights(model, canonical, source=str(path))


def _constructor(size, config, patch_size, default_size, description):
    """The old package's `vit_<size>` function: its signature, defaults and pretrained loading."""

    def constructor(
        image_size=default_size,
        classes=1000,
        activation="linear",
        include_top=True,
        pretrained=True,
        pretrained_top=True,
        weights="imagenet21k+imagenet2012",
    ):
        if pretrained_top:
            classes = validate_pretrained_top(include_top, pretrained, classes, weights)
        elif pretrained and weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {sorted(WEIGHTS)}; found {weights!r}.")
        model = build_model(
            **config,
            name=f"vit-{size.lower().replace('_', '')}",
            patch_size=patch_size,
            image_size=default_size if image_size is None else image_size,
            classes=classes,
            activation=activation,
            include_top=include_top,
            representation_size=config["hidden_size"] if weights == "imagenet21k" else None,
        )
        if pretrained:
            load_pretrained(size=size, weights=weights, pretrained_top=pretrained_top, model=model)
            if pretrained_top and weights == "imagenet21k+imagenet2012":
                set_class_names(model, imagenet_classes())
        return model

    constructor.__name__ = constructor.__qualname__ = f"vit_{size.lower().replace('_', '')}"
    constructor.__doc__ = f"{description}, optionally with ImageNet weights."
    return constructor


vit_b16 = _constructor("B_16", CONFIG_B, 16, (224, 224), "ViT-B/16 (width 768, depth 12, 12 heads)")
vit_b32 = _constructor("B_32", CONFIG_B, 32, (224, 224), "ViT-B/32 (width 768, depth 12, 12 heads)")
vit_l16 = _constructor("L_16", CONFIG_L, 16, (384, 384), "ViT-L/16 (width 1024, depth 24, 16 heads)")
vit_l32 = _constructor("L_32", CONFIG_L, 32, (384, 384), "ViT-L/32 (width 1024, depth 24, 16 heads)")
