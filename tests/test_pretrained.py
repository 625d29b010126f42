"""Loading Google, timm and Hugging Face checkpoints: parity with timm's logits, and loads that
fail whole (missing key, wrong shape, corrupt file, hash mismatch) without touching the model."""

import functools
import hashlib
import http.server
import json
import logging
import threading

import numpy as np
import pytest
import safetensors.numpy
from conftest import FIXTURES, to_numpy

import vit_keras
from vit_keras.pretrained import (
    PUBLISHED,
    CheckpointError,
    load_preset_weights,
    load_pretrained,
    model_variables,
    resolve_published,
)
from vit_keras.pretrained.download import cache_name

PARITY = FIXTURES / "vit_parity"
CONFIG = json.loads((PARITY / "config.json").read_text())
GOOGLE = PARITY / "vit_google.npz"
TIMM = PARITY / "vit_timm.safetensors"
TOLERANCE = 1e-4


def build(image_size=CONFIG["img"], **overrides):
    kwargs = dict(
        image_size=image_size,
        patch_size=CONFIG["patch"],
        in_channels=CONFIG["ch"],
        embed_dim=CONFIG["dim"],
        depth=CONFIG["depth"],
        num_heads=CONFIG["heads"],
        mlp_dim=CONFIG["mlp"],
        num_classes=CONFIG["classes"],
    )
    return vit_keras.ViT(**{**kwargs, **overrides})


def reference(image_size):
    suffix = "" if image_size == CONFIG["img"] else f"_{image_size}"
    return np.load(PARITY / f"inputs{suffix}.npy"), np.load(PARITY / f"logits{suffix}.npy")


def max_error(model, image_size):
    inputs, logits = reference(image_size)
    return float(np.abs(to_numpy(model(inputs)) - logits).max())


def snapshot(model):
    return [to_numpy(v).copy() for v in model.weights]


def assert_unchanged(model, before):
    after = snapshot(model)
    assert len(after) == len(before)
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)


def timm_state():
    return dict(safetensors.numpy.load_file(str(TIMM)))


def timm_to_huggingface(state, prefix="vit."):
    """timm's state dict renamed to transformers' ViTForImageClassification layout.

    The public mapping of transformers' `convert_vit_timm_to_pytorch.py`: qkv split into
    query/key/value rows in that order, everything else renamed.
    """
    dim = CONFIG["dim"]
    out = {}
    for i in range(CONFIG["depth"]):
        src, dst = f"blocks.{i}.", f"{prefix}encoder.layer.{i}."
        for a, b in [
            ("norm1", "layernorm_before"),
            ("norm2", "layernorm_after"),
            ("attn.proj", "attention.output.dense"),
            ("mlp.fc1", "intermediate.dense"),
            ("mlp.fc2", "output.dense"),
        ]:
            for leaf in ("weight", "bias"):
                out[f"{dst}{b}.{leaf}"] = state[f"{src}{a}.{leaf}"]
        for j, part in enumerate(("query", "key", "value")):
            out[f"{dst}attention.attention.{part}.weight"] = state[f"{src}attn.qkv.weight"][j * dim : (j + 1) * dim]
            out[f"{dst}attention.attention.{part}.bias"] = state[f"{src}attn.qkv.bias"][j * dim : (j + 1) * dim]
    out[f"{prefix}embeddings.cls_token"] = state["cls_token"]
    out[f"{prefix}embeddings.position_embeddings"] = state["pos_embed"]
    out[f"{prefix}embeddings.patch_embeddings.projection.weight"] = state["patch_embed.proj.weight"]
    out[f"{prefix}embeddings.patch_embeddings.projection.bias"] = state["patch_embed.proj.bias"]
    out[f"{prefix}layernorm.weight"] = state["norm.weight"]
    out[f"{prefix}layernorm.bias"] = state["norm.bias"]
    out["classifier.weight"] = state["head.weight"]
    out["classifier.bias"] = state["head.bias"]
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def save_torch(state, path, wrap=None):
    torch = pytest.importorskip("torch")
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    torch.save({wrap: tensors, "epoch": 3} if wrap else tensors, str(path))
    return path


# --- parity with timm --------------------------------------------------------------------------


def scramble(model, seed=0):
    """Overwrite every weight with noise, so that only a real load can restore the logits."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0, 0.5, size=tuple(variable.shape)).astype("float32"))


@pytest.mark.parametrize("image_size", [CONFIG["img"], CONFIG["resize"]])
def test_google_timm_and_huggingface_checkpoints_give_timms_logits(tmp_path, image_size):
    """Google `.npz`, timm `.safetensors`, and an HF snapshot directory (`model.safetensors`)
    and `pytorch_model.bin` written from the same weights: timm's logits within 1e-4. The 48 px
    logits were made with a bilinear table (the fixture's README), so every source is loaded so."""
    snapshot_dir = tmp_path / "hf-vit"  # a save_pretrained() directory
    snapshot_dir.mkdir()
    huggingface = timm_to_huggingface(timm_state())
    safetensors.numpy.save_file(huggingface, str(snapshot_dir / "model.safetensors"))
    bin_file = save_torch(huggingface, tmp_path / "pytorch_model.bin")
    model = build(image_size)
    for seed, source in enumerate((GOOGLE, TIMM, snapshot_dir, bin_file)):
        scramble(model, seed)
        assert max_error(model, image_size) > 1.0
        loaded = load_pretrained(model, source, interpolation="bilinear")
        assert "head/kernel" in loaded and "position_embedding" in loaded
        assert max_error(model, image_size) < TOLERANCE, source


@pytest.mark.single_backend
def test_timm_pth_with_a_training_wrapper_loads(tmp_path):
    path = save_torch(timm_state(), tmp_path / "checkpoint.pth", wrap="model")
    model = build()
    load_pretrained(model, path)
    assert max_error(model, CONFIG["img"]) < TOLERANCE


@pytest.mark.single_backend
def test_bare_huggingface_vitmodel_loads_features(tmp_path):
    """A `ViTModel` (no `vit.` prefix, no classifier) gives the same features as the Google file."""
    state = timm_to_huggingface(timm_state(), prefix="")
    del state["classifier.weight"], state["classifier.bias"]
    safetensors.numpy.save_file(state, str(tmp_path / "model.safetensors"))
    features = build(include_top=False)
    load_pretrained(features, tmp_path / "model.safetensors")
    expected = build(include_top=False)
    load_pretrained(expected, GOOGLE)
    inputs, _ = reference(CONFIG["img"])
    np.testing.assert_allclose(to_numpy(features(inputs)), to_numpy(expected(inputs)), atol=1e-5)


# --- the head, pre-logits and presets ------------------------------------------------------------


@pytest.mark.single_backend
def test_head_of_another_size_stays_initialised_and_is_logged(caplog):
    model = build(num_classes=CONFIG["classes"] + 2)
    head_before = to_numpy(model.get_layer("head").kernel).copy()
    with caplog.at_level(logging.WARNING, logger="vit_keras"):
        loaded = load_pretrained(model, TIMM)
    assert not any(name.startswith("head/") for name in loaded)
    assert "head/kernel" in caplog.text
    np.testing.assert_array_equal(to_numpy(model.get_layer("head").kernel), head_before)
    reference_model = build()
    load_pretrained(reference_model, GOOGLE)
    np.testing.assert_array_equal(
        to_numpy(model.get_layer("encoder_norm").gamma), to_numpy(reference_model.get_layer("encoder_norm").gamma)
    )


def google_with_pre_logits(path, width=16):
    rng = np.random.default_rng(1)
    arrays = dict(np.load(GOOGLE))
    arrays["pre_logits/kernel"] = rng.normal(size=(CONFIG["dim"], width)).astype("float32")
    arrays["pre_logits/bias"] = rng.normal(size=(width,)).astype("float32")
    arrays["head/kernel"] = rng.normal(size=(width, CONFIG["classes"])).astype("float32")
    np.savez(path, **arrays)
    return arrays


@pytest.mark.single_backend
def test_pre_logits_load_when_the_model_has_them(tmp_path, caplog):
    arrays = google_with_pre_logits(tmp_path / "rep.npz")
    model = build(representation_size=16)
    loaded = load_pretrained(model, tmp_path / "rep.npz")
    assert {"pre_logits/kernel", "head/kernel"} <= set(loaded)
    np.testing.assert_array_equal(to_numpy(model.get_layer("pre_logits").kernel), arrays["pre_logits/kernel"])
    np.testing.assert_array_equal(to_numpy(model.get_layer("head").kernel), arrays["head/kernel"])

    # Without a pre-logits layer the checkpoint's head would read other features: not loaded.
    plain = build()
    head_before = to_numpy(plain.get_layer("head").kernel).copy()
    with caplog.at_level(logging.WARNING, logger="vit_keras"):
        loaded = load_pretrained(plain, tmp_path / "rep.npz")
    assert "encoder_norm/scale" in loaded and not any(n.startswith("head/") for n in loaded)
    assert "pre-logits" in caplog.text
    np.testing.assert_array_equal(to_numpy(plain.get_layer("head").kernel), head_before)


def write_google_checkpoint(path, preset, num_classes=1000, grid=14, seed=0):
    """A Google-layout `.npz` with random weights shaped like the published `preset`."""
    arch = vit_keras.PRESETS[preset]
    d, p, h, m = arch["embed_dim"], arch["patch_size"], arch["num_heads"], arch["mlp_dim"]
    rng = np.random.default_rng(seed)

    def r(*shape):
        return rng.normal(0, 0.02, size=shape).astype("float32")

    arrays = {
        "embedding/kernel": r(p, p, 3, d),
        "embedding/bias": r(d),
        "cls": r(1, 1, d),
        "Transformer/posembed_input/pos_embedding": r(1, grid * grid + 1, d),
        "Transformer/encoder_norm/scale": 1 + r(d),
        "Transformer/encoder_norm/bias": r(d),
        "head/kernel": r(d, num_classes),
        "head/bias": r(num_classes),
    }
    for i in range(arch["depth"]):
        b = f"Transformer/encoderblock_{i}/"
        for norm in ("LayerNorm_0", "LayerNorm_2"):
            arrays[b + norm + "/scale"], arrays[b + norm + "/bias"] = 1 + r(d), r(d)
        for part in ("query", "key", "value"):
            arrays[b + f"MultiHeadDotProductAttention_1/{part}/kernel"] = r(d, h, d // h)
            arrays[b + f"MultiHeadDotProductAttention_1/{part}/bias"] = r(h, d // h)
        arrays[b + "MultiHeadDotProductAttention_1/out/kernel"] = r(h, d // h, d)
        arrays[b + "MultiHeadDotProductAttention_1/out/bias"] = r(d)
        arrays[b + "MlpBlock_3/Dense_0/kernel"], arrays[b + "MlpBlock_3/Dense_0/bias"] = r(d, m), r(m)
        arrays[b + "MlpBlock_3/Dense_1/kernel"], arrays[b + "MlpBlock_3/Dense_1/bias"] = r(m, d), r(d)
    np.savez(path, **arrays)
    return arrays


@pytest.mark.single_backend
def test_preset_weights_name_resolves_to_the_cached_official_file(tmp_path, monkeypatch):
    """vit_ti16(weights="augreg_in21k_ft_in1k", image_size=32, num_classes=10): the official
    URL's cached copy is loaded (no download here), its 14x14 table resampled to 2x2."""
    checkpoint = resolve_published("vit_ti16", "augreg_in21k_ft_in1k", 32)
    cached = tmp_path / "vit_keras" / cache_name(checkpoint.url)
    cached.parent.mkdir()
    arrays = write_google_checkpoint(cached, "vit_ti16")
    monkeypatch.setenv("VIT_KERAS_CACHE", str(tmp_path))
    model = vit_keras.vit_ti16(weights="augreg_in21k_ft_in1k", image_size=32, num_classes=10)
    block = model.get_layer("encoder_block_11")
    np.testing.assert_array_equal(
        to_numpy(block.mlp_in.kernel), arrays["Transformer/encoderblock_11/MlpBlock_3/Dense_0/kernel"]
    )
    table = to_numpy(model.get_layer("position_embedding").table)
    assert table.shape == (1, 5, 192)
    np.testing.assert_array_equal(table[0, 0], arrays["Transformer/posembed_input/pos_embedding"][0, 0])
    assert to_numpy(model.get_layer("head").kernel).shape == (192, 10)

    # The CLI's `--weights NAME` path: the preset is recognised from the model's architecture.
    scramble(model)
    load_pretrained(model, "augreg_in21k_ft_in1k")
    np.testing.assert_array_equal(
        to_numpy(block.mlp_in.kernel), arrays["Transformer/encoderblock_11/MlpBlock_3/Dense_0/kernel"]
    )


@pytest.mark.single_backend
def test_published_names_resolve_to_googles_urls():
    b16 = resolve_published("vit_b16", "augreg_in21k_ft_in1k", 384)
    assert b16.url == (
        "https://storage.googleapis.com/vit_models/augreg/B_16-i21k-300ep-lr_0.001-aug_medium1-"
        "wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.01-res_384.npz"
    )
    assert resolve_published("vit_b16", "augreg_in21k_ft_in1k", 224).url.endswith("res_224.npz")
    assert resolve_published("vit_b16", "augreg_in21k_ft_in1k", (160, 200)).resolution == 224
    in21k = resolve_published("vit_b16", "imagenet21k", 224)  # the old library's name
    assert in21k.url.endswith("/imagenet21k/ViT-B_16.npz") and in21k.representation_size == 768
    assert resolve_published("vit_l16", "in21k_ft_in1k", 224).url.endswith("ViT-L_16-224.npz")
    assert all(
        c.url.startswith("https://storage.googleapis.com/vit_models/")
        for names in PUBLISHED.values()
        for cs in names.values()
        for c in cs
    )
    with pytest.raises(ValueError, match=r"vit_b16.*augreg_in21k_ft_in1k.*'nope'"):
        resolve_published("vit_b16", "nope")


# --- downloads --------------------------------------------------------------------------------


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.single_backend
def test_file_url_downloads_once_into_the_cache_with_sha256(tmp_path):
    source = tmp_path / "published" / "vit.npz"
    source.parent.mkdir()
    source.write_bytes(GOOGLE.read_bytes())
    url, cache = source.as_uri(), tmp_path / "cache"
    model = build()
    load_pretrained(model, url, sha256=sha256(GOOGLE), cache_dir=cache)
    assert max_error(model, CONFIG["img"]) < TOLERANCE
    cached = cache / "vit_keras" / cache_name(url)
    assert sha256(cached) == sha256(GOOGLE)
    source.unlink()  # now only the cache has it
    again = build()
    load_pretrained(again, url, sha256=sha256(GOOGLE), cache_dir=cache)
    assert max_error(again, CONFIG["img"]) < TOLERANCE


@pytest.mark.single_backend
def test_http_url_download(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "model.safetensors").write_bytes(TIMM.read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/model.safetensors"
        model = build()
        load_pretrained(model, url, cache_dir=tmp_path / "cache")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert max_error(model, CONFIG["img"]) < TOLERANCE


# --- failures leave the model untouched -------------------------------------------------------


@pytest.fixture(scope="module")
def victim():
    """One model that every failing load is tried on; its weights must never change."""
    model = build()
    return model, snapshot(model)


def failing_load(victim, source, error, match, **kwargs):
    model, before = victim
    with pytest.raises(error, match=match):
        load_pretrained(model, source, **kwargs)
    assert_unchanged(model, before)


def test_missing_key_raises_before_any_change(victim, tmp_path):
    arrays = dict(np.load(GOOGLE))
    del arrays["Transformer/encoderblock_1/MlpBlock_3/Dense_1/bias"]
    np.savez(tmp_path / "missing.npz", **arrays)
    failing_load(victim, tmp_path / "missing.npz", ValueError, r"missing 1 weights.*encoder_block_1/mlp_out/bias")


# A weight that is no real floating-point array (or overflows the model's dtype) once went into
# the variables assigned before it: the check runs before any variable changes, on every backend.
NOT_FLOAT = [
    (lambda a: np.array(["x"] * a.size), "dtype <U1; expected floating-point"),
    (lambda a: a.astype(complex) + 1j, "dtype complex128; expected floating-point"),
    (lambda a: np.ones(a.shape, bool), "dtype bool; expected floating-point"),
    (lambda a: np.full(a.shape, 3, np.int64), "dtype int64; expected floating-point"),
    (lambda a: np.full(a.shape, 1e300), "values beyond the range of the model's float32"),
]


@pytest.mark.parametrize("damage, match", NOT_FLOAT)
def test_weight_that_is_not_a_float_array_raises_before_any_change(victim, tmp_path, damage, match):
    arrays = dict(np.load(GOOGLE))
    arrays["Transformer/encoder_norm/scale"] = damage(arrays["Transformer/encoder_norm/scale"])
    np.savez(tmp_path / "typed.npz", **arrays)
    failing_load(victim, tmp_path / "typed.npz", CheckpointError, f"typed.npz: weight 'encoder_norm/scale' has {match}")


@pytest.mark.single_backend
def test_wrong_shape_names_expected_and_found(victim, tmp_path):
    state = timm_state()
    state["blocks.0.mlp.fc1.weight"] = state["blocks.0.mlp.fc1.weight"][:64]
    safetensors.numpy.save_file(state, str(tmp_path / "narrow.safetensors"))
    failing_load(
        victim,
        tmp_path / "narrow.safetensors",
        ValueError,
        r"'encoder_block_0/mlp_in/kernel' has shape \(48, 64\); the model expects \(48, 96\)",
    )


@pytest.mark.single_backend
@pytest.mark.parametrize("name", ["vit_google.npz", "vit_timm.safetensors", "timm.pth"])
def test_truncated_file_raises_before_any_change(victim, tmp_path, name):
    source = PARITY / name if name != "timm.pth" else save_torch(timm_state(), tmp_path / "full.pth")
    data = source.read_bytes()
    truncated = tmp_path / f"truncated_{name}"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    failing_load(victim, truncated, CheckpointError, "truncated|corrupt")


@pytest.mark.single_backend
def test_corrupt_bytes_inside_an_npz_raise(victim, tmp_path):
    data = bytearray(GOOGLE.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64  # damages one member: CRC fails on read
    (tmp_path / "corrupt.npz").write_bytes(bytes(data))
    failing_load(victim, tmp_path / "corrupt.npz", CheckpointError, "could not be read|not a readable")


@pytest.mark.single_backend
def test_sha256_mismatch_raises_for_paths_and_urls(victim, tmp_path):
    wrong = "0" * 64
    failing_load(victim, GOOGLE, CheckpointError, f"expected {wrong}, found {sha256(GOOGLE)}", sha256=wrong)
    cache = tmp_path / "cache"
    failing_load(victim, GOOGLE.as_uri(), CheckpointError, "does not match", sha256=wrong, cache_dir=cache)
    assert not (cache / "vit_keras" / cache_name(GOOGLE.as_uri())).exists()  # no unverified file kept


@pytest.mark.single_backend
def test_unknown_architecture_keys_and_layouts_raise(victim, tmp_path):
    state = timm_state()
    state["blocks.0.ls1.gamma"] = np.ones(CONFIG["dim"], "float32")  # layer scale: another model
    safetensors.numpy.save_file(state, str(tmp_path / "layerscale.safetensors"))
    failing_load(victim, tmp_path / "layerscale.safetensors", CheckpointError, r"blocks\.0\.ls1\.gamma")
    np.savez(tmp_path / "other.npz", conv1=np.zeros(3))
    failing_load(victim, tmp_path / "other.npz", CheckpointError, "none of the known ViT layouts")


@pytest.mark.single_backend
def test_missing_paths_and_unknown_names_raise(victim, tmp_path):
    failing_load(victim, tmp_path / "absent.npz", FileNotFoundError, "absent.npz")
    failing_load(victim, tmp_path, FileNotFoundError, "model.safetensors")  # a directory without one
    model, before = victim
    with pytest.raises(ValueError, match="names published for vit_b16"):
        load_preset_weights(model, "vit_b16", "augreg_in42k")
    with pytest.raises(FileNotFoundError, match="no/such.npz"):
        load_preset_weights(model, "vit_b16", "no/such.npz")
    failing_load(victim, "augreg_in21k", ValueError, "matches no preset")  # the fixture is no preset
    assert_unchanged(model, before)


@pytest.mark.single_backend
def test_conv_stem_model_refuses_patch_stem_checkpoints():
    model = build(stem="conv")
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"patch stem; model has stem='conv'.*stem='patch'"):
        load_pretrained(model, GOOGLE)
    assert_unchanged(model, before)


@pytest.mark.single_backend
def test_canonical_names_cover_every_model_weight():
    model = build(representation_size=8)
    variables = model_variables(model)
    # 8 canonical attention weights per block are blocks of its 4 fused SelfAttention variables.
    assert len(variables) == len(model.weights) + 4 * model.depth
    assert {id(w.variable) for w in variables.values()} == {id(v) for v in model.weights}
    for variable in model.weights:  # together the weights fill each variable exactly once
        parts = [w for w in variables.values() if w.variable is variable]
        assert sum(int(np.prod(w.shape)) for w in parts) == int(np.prod(variable.shape)), variable.path
    dim, heads = CONFIG["dim"], CONFIG["heads"]
    key = variables["encoder_block_0/attention/key/kernel"]
    fused = to_numpy(model.get_layer("encoder_block_0").attention.qkv_kernel)
    assert key.shape == (dim, heads, dim // heads) and key.dtype == "float32"
    np.testing.assert_array_equal(key.numpy(), fused[:, dim : 2 * dim].reshape(key.shape))


# --- fine-tuning from the command line ---------------------------------------------------------


@pytest.mark.single_backend
def test_cli_fine_tunes_a_new_head_on_the_frozen_checkpoint(tmp_path, capsys):
    """`vit-keras train --weights CHECKPOINT --freeze-backbone`: the timm checkpoint's backbone
    is loaded and kept, a new 2-class head learns dark vs bright images."""
    import keras

    from vit_keras import cli

    rng = np.random.default_rng(0)

    def split(n):
        labels = rng.integers(0, 2, n)
        dark, bright = rng.integers(0, 106, (n, 32, 32, 3)), rng.integers(150, 256, (n, 32, 32, 3))
        return np.where(labels[:, None, None, None] == 1, bright, dark).astype("uint8"), labels

    (x_train, y_train), (x_test, y_test) = split(320), split(64)
    np.savez(tmp_path / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    output = tmp_path / "run"
    code = cli.main(
        [
            "train",
            "--dataset",
            f"npz:{tmp_path / 'data.npz'}",
            "--preset",
            "vit_ti16",
            "--image-size",
            "32",
            "--patch-size",
            str(CONFIG["patch"]),
            "--embed-dim",
            str(CONFIG["dim"]),
            "--depth",
            str(CONFIG["depth"]),
            "--num-heads",
            str(CONFIG["heads"]),
            "--mlp-dim",
            str(CONFIG["mlp"]),
            "--preprocessing",
            "symmetric",
            "--augment",
            "none",
            "--weights",
            str(TIMM),
            "--freeze-backbone",
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--lr",
            "0.01",
            "--warmup",
            "0",
            "--no-tensorboard",
            "--no-export",
            "--quiet",
            "--output",
            str(output),
        ]
    )
    capsys.readouterr()
    assert code == 0
    results = json.loads((output / "results.json").read_text())
    assert results["test_accuracy"] >= 0.9
    tuned = keras.saving.load_model(output / "model.keras", compile=False)
    reference_model = build()
    load_pretrained(reference_model, GOOGLE)
    for name in ("patch_embedding", "encoder_block_1", "encoder_norm"):
        for got, want in zip(tuned.get_layer(name).weights, reference_model.get_layer(name).weights):
            np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
    assert to_numpy(tuned.get_layer("head").kernel).shape == (CONFIG["dim"], 2)


# --- resampling the position table as each source's library does -------------------------------------


def torch_resized_table(table, grid, mode, antialias):
    """The table resized by torch's F.interpolate, as timm's `resample_abs_pos_embed` and
    transformers' `interpolate_pos_encoding` call it (class row kept)."""
    torch = pytest.importorskip("torch")
    side = int(np.sqrt(table.shape[1] - 1))
    patches = torch.from_numpy(table[:, 1:]).reshape(1, side, side, -1).permute(0, 3, 1, 2)
    resized = torch.nn.functional.interpolate(patches, size=grid, mode=mode, antialias=antialias, align_corners=False)
    return np.concatenate([table[:, :1], resized.permute(0, 2, 3, 1).reshape(1, -1, table.shape[-1]).numpy()], 1)


def test_position_table_is_resampled_as_each_source_does(tmp_path):
    """At 48 px (a 6x6 grid from 4x4): Google `.npz` bilinear (timm's `_load_weights`: the
    fixture's logits), timm state dicts bicubic with antialiasing (timm's `checkpoint_filter_fn`),
    Hugging Face folders bicubic (transformers' `interpolate_pos_encoding`); `interpolation=` overrides."""
    size, grid = CONFIG["resize"], (CONFIG["resize"] // CONFIG["patch"],) * 2
    table = timm_state()["pos_embed"]
    model = build(size)
    load_pretrained(model, GOOGLE)
    assert max_error(model, size) < TOLERANCE
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    safetensors.numpy.save_file(timm_to_huggingface(timm_state()), str(hf_dir / "model.safetensors"))
    for source, mode, antialias in [(TIMM, "bicubic", True), (hf_dir, "bicubic", False)]:
        load_pretrained(model, source)
        got = to_numpy(model.get_layer("position_embedding").table)
        np.testing.assert_allclose(got, torch_resized_table(table, grid, mode, antialias), atol=2e-6)
        assert max_error(model, size) > 1e-3  # not the bilinear table of the fixture's logits
    load_pretrained(model, TIMM, interpolation="bilinear")
    assert max_error(model, size) < TOLERANCE


@pytest.mark.single_backend
@pytest.mark.parametrize("old, new", [(4, 6), (14, 2), (24, 14), (7, 5)])
def test_resample_table_matches_torch_interpolate(old, new):
    from vit_keras.pretrained import resample_table

    table = np.random.default_rng(old).normal(size=(1, 1 + old * old, 8)).astype("float32")
    for mode in ("bilinear", "bicubic"):
        for antialias in (False, True):
            expected = torch_resized_table(table, (new, new), mode, antialias)
            np.testing.assert_allclose(resample_table(table, (new, new), mode, antialias), expected, atol=1e-5)


# --- a 3-channel checkpoint into a 1-channel model ---------------------------------------------------


def test_rgb_checkpoint_into_a_grey_model_sums_the_patch_kernel(caplog):
    """timm's `adapt_input_conv`: a grey image through the summed kernel gives the RGB model's
    logits for the same image with its channel repeated three times."""
    grey = build(in_channels=1)
    with caplog.at_level(logging.WARNING, logger="vit_keras"):
        load_pretrained(grey, GOOGLE)
    assert "patch kernel adapted from 3 to 1 input channels (summed over channels)" in caplog.text
    kernel = np.load(GOOGLE)["embedding/kernel"]
    np.testing.assert_allclose(
        to_numpy(grey.get_layer("patch_embedding").projection.kernel), kernel.sum(axis=2, keepdims=True), atol=1e-6
    )
    rgb = build()
    load_pretrained(rgb, GOOGLE)
    images = np.random.default_rng(0).normal(size=(2, CONFIG["img"], CONFIG["img"], 1)).astype("float32")
    np.testing.assert_allclose(to_numpy(grey(images)), to_numpy(rgb(np.repeat(images, 3, axis=-1))), atol=1e-4)


# --- every preset and its published weights by name ----------------------------------------------------


@pytest.mark.single_backend
def test_list_models_names_every_architecture_and_published_checkpoint():
    from vit_keras.architectures import ARCHITECTURES

    assert vit_keras.pretrained.list_models() == sorted(ARCHITECTURES)
    published = vit_keras.pretrained.list_models(pretrained=True)
    assert len(published) == sum(len(tags) for tags in PUBLISHED.values())
    assert "vit_b16.augreg_in21k_ft_in1k" in published and "vit_h14.in21k" in published
    assert vit_keras.pretrained.list_models(True, filter="vit_s16.*") == [
        "vit_s16.augreg_in21k",
        "vit_s16.augreg_in21k_ft_in1k",
    ]
    defaults = vit_keras.pretrained.preset_weight_defaults("vit_b16", "imagenet21k")  # the old library's name
    assert defaults == dict(preprocessing="symmetric", num_classes=21843, representation_size=768, image_size=224)
    assert vit_keras.pretrained.preset_weight_defaults("vit_b16", "augreg_in21k_ft_in1k", 384)["image_size"] == 384
    assert vit_keras.pretrained.preset_weight_defaults("vit_b16", "/path/to/file.npz") == {}


@pytest.mark.single_backend
def test_create_model_by_name_from_the_cached_download(tmp_path, monkeypatch):
    """create_model("vit_ti16.augreg_in21k_ft_in1k", image_size=32): the official URL's cached copy
    (no download here) is loaded; the model normalises to [-1, 1] and names its 1,000 classes."""
    from vit_keras.pretrained import create_model, imagenet_classes

    checkpoint = resolve_published("vit_ti16", "augreg_in21k_ft_in1k", 224)
    cached = tmp_path / "vit_keras" / cache_name(checkpoint.url)
    cached.parent.mkdir()
    arrays = write_google_checkpoint(cached, "vit_ti16")
    monkeypatch.setenv("VIT_KERAS_CACHE", str(tmp_path))
    model = create_model("vit_ti16.augreg_in21k_ft_in1k", image_size=32)
    assert (model.name, model.preprocessing, model.num_classes) == ("vit_ti16", "symmetric", 1000)
    np.testing.assert_array_equal(to_numpy(model.get_layer("head").kernel), arrays["head/kernel"])
    assert model.class_names == imagenet_classes() and len(model.class_names) == 1000
    assert model.class_names[0] == "tench, Tinca tinca"
    white = to_numpy(model.get_layer("preprocessing")(np.full((1, 1, 1, 3), 255.0, "float32")))
    np.testing.assert_allclose(white, 1.0)

    tuned = create_model("vit_ti16.augreg_in21k_ft_in1k", image_size=32, num_classes=10, checkpoint_path=cached)
    assert to_numpy(tuned.get_layer("head").kernel).shape == (192, 10) and tuned.class_names is None
    np.testing.assert_array_equal(
        to_numpy(tuned.get_layer("encoder_block_3").mlp_in.kernel),
        arrays["Transformer/encoderblock_3/MlpBlock_3/Dense_0/kernel"],
    )
    plain = create_model("vit_mnist_p7")
    assert plain.preprocessing is None and plain.mlp_dim == 400
    with pytest.raises(ValueError, match=r"vit_b16 has no published weights 'in42k'; it has \['augreg_in21k'"):
        create_model("vit_b16.in42k")
    with pytest.raises(ValueError, match="name must be one of list_models"):
        create_model("resnet50")


# --- hf://ORG/NAME through huggingface_hub's cache ---------------------------------------------------


def hub_cache(root, repo, files, revision="0123456789abcdef0123456789abcdef01234567"):
    """A Hugging Face hub cache holding one snapshot of `repo`: models--ORG--NAME/{refs/main, snapshots/REV/}."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name, write in files.items():
        write(snapshot / name)
    return revision


@pytest.mark.single_backend
def test_hub_source_loads_offline_from_the_cache(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    labels = {str(i): f"label {i}" for i in range(CONFIG["classes"])}
    config = {"model_type": "vit", "num_attention_heads": CONFIG["heads"], "id2label": labels}
    revision = hub_cache(
        tmp_path,
        "acme/tiny-vit",
        {
            "config.json": lambda p: p.write_text(json.dumps(config)),
            "model.safetensors": lambda p: safetensors.numpy.save_file(timm_to_huggingface(timm_state()), str(p)),
        },
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for source in ("hf://acme/tiny-vit", f"hf://acme/tiny-vit@{revision}"):
        model = build()
        load_pretrained(model, source, cache_dir=tmp_path)
        assert max_error(model, CONFIG["img"]) < TOLERANCE
        assert model.class_names == [f"label {i}" for i in range(CONFIG["classes"])]
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE is set and no snapshot of acme/other"):
        load_pretrained(build(), "hf://acme/other", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="hf://ORG/NAME"):
        load_pretrained(build(), "hf://just-a-name", cache_dir=tmp_path)


# --- Hugging Face transformers models built from their config.json, sharded checkpoints ------------


def huggingface_config(**changes):
    """The transformers `ViTConfig` (config.json) of the fixture's ViT."""
    config = {
        "architectures": ["ViTForImageClassification"],
        "model_type": "vit",
        "hidden_size": CONFIG["dim"],
        "num_hidden_layers": CONFIG["depth"],
        "num_attention_heads": CONFIG["heads"],
        "intermediate_size": CONFIG["mlp"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "layer_norm_eps": 1e-6,
        "image_size": CONFIG["img"],
        "patch_size": CONFIG["patch"],
        "num_channels": CONFIG["ch"],
        "qkv_bias": True,
        "id2label": {str(i): f"class {i}" for i in range(CONFIG["classes"])},
    }
    return {**config, **changes}


def write_sharded(folder, state, shards=3, suffix=".safetensors"):
    """`state` as transformers' `save_pretrained(max_shard_size=...)` writes it: `shards` files
    (model-00001-of-0000N.safetensors or pytorch_model-...bin) and their `*.index.json`."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = "model" if suffix == ".safetensors" else "pytorch_model"
    keys, weight_map = sorted(state), {}
    for i, part in enumerate(np.array_split(np.array(keys), shards)):
        name = f"{stem}-{i + 1:05d}-of-{shards:05d}{suffix}"
        tensors = {str(k): state[str(k)] for k in part}
        if suffix == ".safetensors":
            safetensors.numpy.save_file(tensors, str(folder / name))
        else:
            save_torch(tensors, folder / name)
        weight_map.update({str(k): name for k in part})
    index = folder / f"{stem}{suffix}.index.json"
    total = sum(int(v.nbytes) for v in state.values())
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return index


def huggingface_folder(folder, config=None, shards=3, state=None):
    """A sharded save_pretrained() folder of the fixture's weights with its config.json."""
    write_sharded(folder, timm_to_huggingface(timm_state()) if state is None else state, shards)
    (folder / "config.json").write_text(json.dumps(huggingface_config() if config is None else config))
    return folder


def test_create_model_builds_a_sharded_huggingface_folder_from_its_config(tmp_path):
    """config.json alone decides the architecture; three safetensors shards load as one checkpoint:
    timm's logits, the config's epsilon and id2label names."""
    folder = huggingface_folder(tmp_path / "tiny-vit")
    model = vit_keras.create_model(str(folder))
    assert (model.name, model.embed_dim, model.depth, model.num_heads, model.mlp_dim) == ("tiny_vit", 48, 2, 3, 96)
    assert (model.num_classes, model.layer_norm_epsilon, model.preprocessing) == (CONFIG["classes"], 1e-6, None)
    assert model.class_names == [f"class {i}" for i in range(CONFIG["classes"])]
    assert max_error(model, CONFIG["img"]) < TOLERANCE


@pytest.mark.single_backend
def test_sharded_bin_and_index_file_sources_load_into_a_built_model(tmp_path):
    """`pytorch_model.bin.index.json` folders, and an index file named directly, load like one file."""
    state = timm_to_huggingface(timm_state())
    bin_index = write_sharded(tmp_path / "bin", state, shards=2, suffix=".bin")
    st_index = write_sharded(tmp_path / "st", state, shards=4)
    model = build()
    for seed, source in enumerate((tmp_path / "bin", bin_index, st_index)):
        scramble(model, seed)
        assert "head/kernel" in load_pretrained(model, source)
        assert max_error(model, CONFIG["img"]) < TOLERANCE, source


@pytest.mark.single_backend
def test_create_model_from_hf_hub_snapshot_offline(tmp_path, monkeypatch):
    """create_model("hf://ORG/NAME"): a sharded snapshot in the hub cache; the processor's 0.5 / 0.5
    normalisation becomes preprocessing="symmetric", transformers' placeholder labels no class names."""
    pytest.importorskip("huggingface_hub")
    state = timm_to_huggingface(timm_state())
    placeholders = huggingface_config(id2label={str(i): f"LABEL_{i}" for i in range(CONFIG["classes"])})
    processor = {"do_rescale": True, "rescale_factor": 1 / 255, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}

    def shards(snapshot_file):
        write_sharded(snapshot_file.parent, state, shards=2)

    hub_cache(
        tmp_path,
        "acme/vit-tiny-patch8",
        {
            "config.json": lambda p: p.write_text(json.dumps(placeholders)),
            "preprocessor_config.json": lambda p: p.write_text(json.dumps(processor)),
            "model.safetensors.index.json": shards,
        },
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = vit_keras.pretrained.create_model("hf://acme/vit-tiny-patch8", cache_dir=tmp_path)
    assert (model.name, model.preprocessing, model.class_names) == ("vit_tiny_patch8", "symmetric", None)
    inputs, logits = reference(CONFIG["img"])
    pixels = (inputs + 1) * 127.5  # what the model's symmetric preprocessing maps back to `inputs`
    assert float(np.abs(to_numpy(model(pixels)) - logits).max()) < TOLERANCE


@pytest.mark.single_backend
def test_create_model_from_a_vitmodel_folder_and_without_weights(tmp_path):
    """A `ViTModel` (pooler, no classifier) builds a features model with its pre-logits layer;
    pretrained=False builds from config.json alone; overrides replace the head."""
    state = timm_to_huggingface(timm_state(), prefix="")
    del state["classifier.weight"], state["classifier.bias"]
    rng = np.random.default_rng(0)
    state["pooler.dense.weight"] = rng.normal(size=(CONFIG["dim"], CONFIG["dim"])).astype("float32")
    state["pooler.dense.bias"] = rng.normal(size=(CONFIG["dim"],)).astype("float32")
    folder = huggingface_folder(tmp_path / "features", huggingface_config(architectures=["ViTModel"]), 2, state)
    features = vit_keras.create_model(folder)
    assert (features.include_top, features.representation_size) == (False, CONFIG["dim"])
    np.testing.assert_array_equal(to_numpy(features.get_layer("pre_logits").kernel), state["pooler.dense.weight"].T)
    fresh = vit_keras.create_model(folder, pretrained=False)
    assert (fresh.include_top, fresh.num_classes, fresh.class_names) == (True, CONFIG["classes"], None)
    assert max_error(fresh, CONFIG["img"]) > 1e-3
    classifier = huggingface_folder(tmp_path / "classifier")
    tuned = vit_keras.create_model(classifier, num_classes=7, dropout=0.1)
    assert (tuned.num_classes, tuned.dropout, tuned.class_names) == (7, 0.1, None)
    reference_model = build()
    load_pretrained(reference_model, GOOGLE)
    np.testing.assert_array_equal(
        to_numpy(tuned.get_layer("encoder_norm").gamma), to_numpy(reference_model.get_layer("encoder_norm").gamma)
    )
