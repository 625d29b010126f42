"""Paper presets: architecture and timm's parameter counts."""

import pytest

import vit_keras
from vit_keras.presets import PRESETS, preset_config

# timm's VisionTransformer at 224 px with 1000 classes.
TIMM_PARAMS = {
    "vit_ti16": 5_717_416,
    "vit_s16": 22_050_664,
    "vit_b16": 86_567_656,
    "vit_b32": 88_224_232,
    "vit_l16": 304_326_632,
    "vit_l32": 306_535_400,
    "vit_h14": 632_045_800,
}
# The paper's Table 1 (hidden size D, MLP size, heads, layers).
PAPER = {
    "vit_b16": (768, 3072, 12, 12),
    "vit_l16": (1024, 4096, 16, 24),
    "vit_h14": (1280, 5120, 16, 32),
}


@pytest.mark.single_backend
@pytest.mark.parametrize("name", sorted(TIMM_PARAMS))
def test_preset_parameter_count_equals_timm(name):
    model = getattr(vit_keras, name)(image_size=224, num_classes=1000)
    assert model.count_params() == TIMM_PARAMS[name]
    assert model.name == name


@pytest.mark.parametrize("name", sorted(PAPER))
def test_presets_match_paper(name):
    config = PRESETS[name]
    assert (config["embed_dim"], config["mlp_dim"], config["num_heads"], config["depth"]) == PAPER[name]


def test_mnist_preset_takes_digits():
    model = vit_keras.vit_mnist()
    assert model.input_layout == (28, 28, 1) and model.num_classes == 10


def test_preset_overrides_and_unknown_name():
    model = vit_keras.vit_ti16(image_size=32, num_classes=7, depth=2)
    assert (model.image_size, model.num_classes, model.depth, model.embed_dim) == ((32, 32), 7, 2, 192)
    with pytest.raises(ValueError, match=r"preset must be one of .*found 'vit_x99'"):
        preset_config("vit_x99")
