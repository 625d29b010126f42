"""Named architectures: the one table, the paper's presets (timm's parameter counts), the MNIST models."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, TUTORIAL_KWARGS

import vit_keras
from vit_keras import architectures, presets
from vit_keras.architectures import ARCHITECTURES
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


@pytest.mark.parametrize("name", ["vit_mnist", "vit_mnist_tiny", "vit_mnist_p7"])
def test_mnist_presets_take_digits(name):
    model = getattr(vit_keras, name)()
    assert model.input_layout == (28, 28, 1) and model.num_classes == 10 and model.name == name


def test_preset_overrides_and_unknown_name():
    model = vit_keras.vit_ti16(image_size=32, num_classes=7, depth=2)
    assert (model.image_size, model.num_classes, model.depth, model.embed_dim) == ((32, 32), 7, 2, 192)
    with pytest.raises(ValueError, match=r"preset must be one of .*found 'vit_x99'"):
        preset_config("vit_x99")


def test_tutorial_preset_is_the_tutorial_model():
    """vit_mnist_p7 is the original PyTorch tutorial's ViT: 28x28x1, patch 7, width 100, 1 block, 1 head, MLP 400."""
    model = vit_keras.vit_mnist_p7()
    tutorial = vit_keras.ViT(**TUTORIAL_KWARGS)
    expected = {**tutorial.get_config(), "name": "vit_mnist_p7"}
    assert model.get_config() == expected
    assert model.count_params() == tutorial.count_params() == 129_310


def test_every_architecture_has_a_builder_and_is_the_one_table():
    assert PRESETS is ARCHITECTURES
    assert set(architectures.PAPER_ARCHITECTURES) | {"vit_mnist", "vit_mnist_tiny", "vit_mnist_p7"} == set(
        ARCHITECTURES
    )
    for name, arch in ARCHITECTURES.items():
        builder = getattr(vit_keras, name)
        assert builder is getattr(presets, name) and builder.__name__ == name
        assert f"width {arch['embed_dim']}" in builder.__doc__
        assert preset_config(name) == arch and preset_config(name) is not arch  # a copy


ARCHITECTURES_FILE = REPO / "vit_keras" / "architectures.py"


def test_architectures_module_imports_nothing():
    """Pure data: the command line reads it without loading Keras or anything else."""
    source = (REPO / "vit_keras" / "architectures.py").read_text()
    assert "import " not in source.replace(">>> from vit_keras.architectures import", "")
    # Loaded from its file, as a module of its own: the package's __init__ imports Keras.
    script = (
        "import importlib.util, json, sys; before = set(sys.modules); "
        f"spec = importlib.util.spec_from_file_location('architectures', {str(ARCHITECTURES_FILE)!r}); "
        "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KERAS_BACKEND": "jax"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout)
    assert not [name for name in loaded if name.split(".")[0] in ("keras", "tensorflow", "jax", "torch", "numpy")]
