"""The weight layout is Google's: assigning the fixture's arrays reproduces timm's logits."""

import json

import numpy as np
import pytest
from conftest import FIXTURES, to_numpy

import vit_keras
from vit_keras.pretrained import assign_weights, google_to_canonical, model_variables

PARITY = FIXTURES / "vit_parity"
CONFIG = json.loads((PARITY / "config.json").read_text())


def fixture_model(image_size):
    return vit_keras.ViT(
        image_size=image_size,
        patch_size=CONFIG["patch"],
        in_channels=CONFIG["ch"],
        embed_dim=CONFIG["dim"],
        depth=CONFIG["depth"],
        num_heads=CONFIG["heads"],
        mlp_dim=CONFIG["mlp"],
        num_classes=CONFIG["classes"],
    )


@pytest.mark.parametrize("image_size, suffix", [(CONFIG["img"], ""), (CONFIG["resize"], "_48")])
def test_google_arrays_reproduce_timm_logits(image_size, suffix):
    model = fixture_model(image_size)
    arrays = dict(np.load(PARITY / "vit_google.npz"))
    canonical, unused = google_to_canonical(arrays)
    assert unused == []
    loaded = assign_weights(model, canonical)
    assert sorted(loaded) == sorted(model_variables(model)) == sorted(canonical)
    logits = to_numpy(model(np.load(PARITY / f"inputs{suffix}.npy")))
    expected = np.load(PARITY / f"logits{suffix}.npy")
    assert logits.shape == expected.shape
    assert np.abs(logits - expected).max() < 1e-4


def test_wrong_shape_raises_before_any_weight_changes():
    model = fixture_model(CONFIG["img"])
    before = [to_numpy(w).copy() for w in model.weights]
    canonical, _ = google_to_canonical(dict(np.load(PARITY / "vit_google.npz")))
    canonical["encoder_block_1/mlp_in/kernel"] = np.zeros((48, 95), "float32")
    with pytest.raises(ValueError, match=r"'encoder_block_1/mlp_in/kernel' has shape \(48, 95\); the model expects"):
        assign_weights(model, canonical)
    del canonical["encoder_block_1/mlp_in/kernel"]
    with pytest.raises(ValueError, match=r"missing 1 weights .*encoder_block_1/mlp_in/kernel"):
        assign_weights(model, canonical)
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, to_numpy(new))


def test_checkpoint_with_other_head_count_raises_before_any_weight_changes():
    """The fused attention variables have the same shapes for any head count; the per-head
    canonical shapes do not, so a 4-head checkpoint is refused by a 3-head model."""
    model = fixture_model(CONFIG["img"])
    before = [to_numpy(w).copy() for w in model.weights]
    canonical, _ = google_to_canonical(dict(np.load(PARITY / "vit_google.npz")))
    dim = CONFIG["dim"]
    for name, array in list(canonical.items()):  # regroup every attention weight into 4 heads of 12
        if name.endswith("attention/out/kernel"):
            canonical[name] = array.reshape(4, dim // 4, dim)
        elif "/attention/" in name and not name.endswith("out/bias"):
            canonical[name] = array.reshape(array.shape[:-2] + (4, dim // 4))
    with pytest.raises(
        ValueError,
        match=r"'encoder_block_0/attention/query/kernel' has shape \(48, 4, 12\); "
        r"the model expects \(48, 3, 16\)",
    ):
        assign_weights(model, canonical)
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, to_numpy(new))
