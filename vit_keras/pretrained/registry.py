"""Published ViT checkpoints by name: `vit_b16(weights="augreg_in21k_ft_in1k")` -> Google's URL.

The files are Google's releases (google-research/vision_transformer, gs://vit_models), as
listed in timm's `default_cfgs`. A name may have files at several resolutions; the one
closest to the model's image size is taken (the position table is resampled to fit).
"""

import collections

from vit_keras.architectures import ARCHITECTURES, PAPER_ARCHITECTURES

GOOGLE_BUCKET = "https://storage.googleapis.com/vit_models/"

# preprocessing: the input normalisation the checkpoint was trained with (a `ViT(preprocessing=)`
# name); every Google release takes [-1, 1] inputs ("symmetric"; timm's cfgs give them
# IMAGENET_INCEPTION_MEAN/STD = 0.5/0.5). labels: the label set of its head
# ("imagenet1k": `vit_keras.pretrained.imagenet_classes()`; "imagenet21k": names not shipped).
Checkpoint = collections.namedtuple(
    "Checkpoint",
    "url resolution num_classes representation_size preprocessing labels",
    defaults=("symmetric", None),
)
LABEL_SETS = {1000: "imagenet1k", 21843: "imagenet21k"}

# The old vit-keras library's names for the same releases.
ALIASES = {"imagenet21k": "in21k", "imagenet21k+imagenet2012": "in21k_ft_in1k"}

# The AugReg ("How to train your ViT?") runs: the ImageNet-21k file stem and the
# ImageNet-1k fine-tuning learning rate of each released model.
_AUGREG = {
    "vit_ti16": ("Ti_16-i21k-300ep-lr_0.001-aug_none-wd_0.03-do_0.0-sd_0.0", "0.03"),
    "vit_s16": ("S_16-i21k-300ep-lr_0.001-aug_light1-wd_0.03-do_0.0-sd_0.0", "0.03"),
    "vit_b16": ("B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0", "0.01"),
    "vit_b32": ("B_32-i21k-300ep-lr_0.001-aug_medium1-wd_0.03-do_0.0-sd_0.0", "0.03"),
    "vit_l16": ("L_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.1-sd_0.1", "0.01"),
}
# timm's ViT-B/32 at 384 px comes from a different AugReg run than its 224 px model.
_AUGREG_STEM_AT = {("vit_b32", 384): "B_32-i21k-300ep-lr_0.001-aug_light1-wd_0.1-do_0.0-sd_0.0"}

# The original paper releases: {preset: (file name, {resolution: fine-tuned file})}.
_ORIGINAL = {
    "vit_b16": ("ViT-B_16", {224: "ViT-B_16-224", 384: "ViT-B_16"}),
    "vit_b32": ("ViT-B_32", {384: "ViT-B_32"}),
    "vit_l16": ("ViT-L_16", {224: "ViT-L_16-224", 384: "ViT-L_16"}),
    "vit_l32": ("ViT-L_32", {384: "ViT-L_32"}),
    "vit_h14": ("ViT-H_14", {}),
}


def _checkpoint(url, resolution, num_classes, representation_size=None):
    return Checkpoint(url, resolution, num_classes, representation_size, "symmetric", LABEL_SETS[num_classes])


def _published():
    table = collections.defaultdict(dict)
    for preset, (stem, lr) in _AUGREG.items():
        table[preset]["augreg_in21k"] = [_checkpoint(f"{GOOGLE_BUCKET}augreg/{stem}.npz", 224, 21843)]
        table[preset]["augreg_in21k_ft_in1k"] = [
            _checkpoint(
                f"{GOOGLE_BUCKET}augreg/{_AUGREG_STEM_AT.get((preset, res), stem)}"
                f"--imagenet2012-steps_20k-lr_{lr}-res_{res}.npz",
                res,
                1000,
            )
            for res in (224, 384)
        ]
    for preset, (name, finetuned) in _ORIGINAL.items():
        width = ARCHITECTURES[preset]["embed_dim"]  # these releases keep a pre-logits layer
        table[preset]["in21k"] = [_checkpoint(f"{GOOGLE_BUCKET}imagenet21k/{name}.npz", 224, 21843, width)]
        if finetuned:
            table[preset]["in21k_ft_in1k"] = [
                _checkpoint(f"{GOOGLE_BUCKET}imagenet21k+imagenet2012/{file}.npz", res, 1000)
                for res, file in finetuned.items()
            ]
    for preset in ("vit_b16", "vit_b32"):  # sharpness-aware minimisation, ImageNet-1k only
        file = _ORIGINAL[preset][0]
        table[preset]["sam_in1k"] = [_checkpoint(f"{GOOGLE_BUCKET}sam/{file}.npz", 224, 1000)]
    return {preset: dict(names) for preset, names in table.items()}


PUBLISHED = _published()


def published_names(preset):
    """The checkpoint names `weights=` accepts for `preset` (empty if it has none)."""
    return sorted(PUBLISHED.get(preset, {}))


def is_published_name(name):
    """True if `name` is a published checkpoint name (of any preset)."""
    name = ALIASES.get(name, name)
    return any(name in names for names in PUBLISHED.values())


def resolve_published(preset, name, image_size=224):
    """The `Checkpoint` published as `name` for `preset`, at the resolution closest to `image_size`."""
    name = ALIASES.get(name, name)
    if name not in PUBLISHED.get(preset, {}):
        raise ValueError(
            f"weights must be a checkpoint path, a URL or one of the names published for {preset}: "
            f"{published_names(preset) or 'none'}; found {name!r}."
        )
    side = max(image_size) if isinstance(image_size, (tuple, list)) else int(image_size)
    return min(PUBLISHED[preset][name], key=lambda c: (abs(c.resolution - side), c.resolution))


_ARCH_FIELDS = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_dim")


def architecture_of(model):
    """The name of the paper architecture that `model` has (see `vit_keras.architectures`), or None."""
    found = tuple(getattr(model, field, None) for field in _ARCH_FIELDS)
    for name in PAPER_ARCHITECTURES:
        if tuple(ARCHITECTURES[name][field] for field in _ARCH_FIELDS) == found:
            return name
    return None
