"""Every named ViT architecture and the choices of ViT's string arguments, as plain data.

This module imports nothing, so command-line parsers, benchmark scripts and registries can
read it without loading Keras. Everything else derives from it: `vit_keras.presets` builds
the models, `vit_keras.model.ViT` checks `pooling` and `stem` against `POOLINGS` and
`STEMS`, and `vit_keras.preprocessing` maps the `NORMALIZATIONS` names to layers.

`ARCHITECTURES[name]` holds keyword arguments of `vit_keras.ViT`. The paper presets
(Dosovitskiy et al., 2021, Table 1; the ViT-Ti and ViT-S widths are DeiT's, as in timm) give
only the architecture: `image_size` (224) and `num_classes` (1000) are chosen when building.

Example:

>>> from vit_keras.architectures import ARCHITECTURES
>>> sorted(ARCHITECTURES["vit_b16"].items())
[('depth', 12), ('embed_dim', 768), ('mlp_dim', 3072), ('num_heads', 12), ('patch_size', 16)]
>>> ARCHITECTURES["vit_mnist_p7"]["patch_size"], ARCHITECTURES["vit_mnist_p7"]["mlp_dim"]
(7, 400)
"""

# name -> `ViT` keyword arguments.
ARCHITECTURES = {
    "vit_ti16": dict(patch_size=16, embed_dim=192, depth=12, num_heads=3, mlp_dim=768),
    "vit_s16": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6, mlp_dim=1536),
    "vit_b16": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_dim=3072),
    "vit_b32": dict(patch_size=32, embed_dim=768, depth=12, num_heads=12, mlp_dim=3072),
    "vit_l16": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16, mlp_dim=4096),
    "vit_l32": dict(patch_size=32, embed_dim=1024, depth=24, num_heads=16, mlp_dim=4096),
    "vit_h14": dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16, mlp_dim=5120),
    # A small ViT for 28x28 digits: 49 patches of 4x4, 6 blocks.
    "vit_mnist": dict(
        image_size=28,
        in_channels=1,
        num_classes=10,
        patch_size=4,
        embed_dim=128,
        depth=6,
        num_heads=4,
        mlp_dim=256,
    ),
    # The default of `vit-keras train`: a convolutional stem (28x28 -> 7x7 tokens), two blocks of width 64.
    "vit_mnist_tiny": dict(
        image_size=28,
        in_channels=1,
        num_classes=10,
        stem="conv",
        patch_size=4,
        embed_dim=64,
        depth=2,
        num_heads=4,
        mlp_dim=128,
        pooling="gap",
    ),
    # The model of the original PyTorch MNIST tutorial: 16 patches of 7x7, one block, one head.
    "vit_mnist_p7": dict(
        image_size=28,
        in_channels=1,
        num_classes=10,
        patch_size=7,
        embed_dim=100,
        depth=1,
        num_heads=1,
        mlp_dim=400,
        dropout=0.1,
    ),
}

# The paper's presets, in order of size (the ones with published checkpoints).
PAPER_ARCHITECTURES = ("vit_ti16", "vit_s16", "vit_b16", "vit_b32", "vit_l16", "vit_l32", "vit_h14")

# How the image representation is read off the tokens: the class token, or the mean of the patch tokens.
POOLINGS = ("token", "gap")

# How images become tokens: the paper's P x P stride-P convolution, or ViT_C's 3x3 stride-2 convolutions.
STEMS = ("patch", "conv")

# The layouts a ViT takes its images in.
DATA_FORMATS = ("channels_last", "channels_first")

# preprocessing name -> (mean, std) in [0, 1] pixel units, applied to raw 0-255 pixels.
NORMALIZATIONS = {
    "unit": (0.0, 1.0),  # x / 255
    "symmetric": (0.5, 0.5),  # x / 127.5 - 1, Google's ViT checkpoints
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # timm's default
    "mnist": (0.1307, 0.3081),
}
