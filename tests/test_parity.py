"""The weight layout is Google's: assigning the fixture's arrays reproduces timm's logits."""

import json

import numpy as np
import pytest
from conftest import FIXTURES, to_numpy

import vit_keras
from vit_keras.pretrained import assign_weights, google_to_canonical

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
    assert len(loaded) == len(model.weights)
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
