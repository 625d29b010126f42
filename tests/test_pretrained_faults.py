"""Every damaged, foreign or mismatched checkpoint fails with one line naming the file, and the
model it was loaded into keeps every weight bit for bit.

Cases per file format (Google `.npz`, timm `.safetensors`, torch zip `.pth`, torch legacy pickle
`.bin`, Hugging Face folder): truncated at six offsets, zero length, flipped bytes, another kind
of file under the checkpoint's name; weights missing from or unexpected by the model in both
directions; the head count where the weights do not show it.
"""

import importlib
import json
import logging

import numpy as np
import pytest
import safetensors.numpy
from conftest import FIXTURES, to_numpy

import vit_keras
from vit_keras.pretrained import CheckpointError, load_pretrained

PARITY = FIXTURES / "vit_parity"
CONFIG = json.loads((PARITY / "config.json").read_text())
GOOGLE = PARITY / "vit_google.npz"
TIMM = PARITY / "vit_timm.safetensors"

pytestmark = pytest.mark.single_backend  # file handling; the loads that succeed run on every backend elsewhere


def build(**overrides):
    kwargs = dict(
        image_size=CONFIG["img"],
        patch_size=CONFIG["patch"],
        in_channels=CONFIG["ch"],
        embed_dim=CONFIG["dim"],
        depth=CONFIG["depth"],
        num_heads=CONFIG["heads"],
        mlp_dim=CONFIG["mlp"],
        num_classes=CONFIG["classes"],
    )
    return vit_keras.ViT(**{**kwargs, **overrides})


@pytest.fixture(scope="module")
def victim():
    """One model that every failing load is tried on, with its weights as they must stay."""
    model = build()
    return model, [to_numpy(v).copy() for v in model.weights]


def assert_fails(victim, source, match, error=CheckpointError, **kwargs):
    """The load raises `error` with a one-line message naming the file; the model is unchanged."""
    model, before = victim
    with pytest.raises(error, match=match) as caught:
        load_pretrained(model, source, **kwargs)
    message = str(caught.value)
    assert "\n" not in message, message
    assert getattr(source, "name", str(source).rsplit("/", 1)[-1]) in message, message
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, to_numpy(new))


def timm_state():
    return dict(safetensors.numpy.load_file(str(TIMM)))


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    """{suffix: an intact checkpoint file of that format}, all holding the fixture's weights."""
    torch = pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("formats")
    tensors = {k: torch.from_numpy(v) for k, v in timm_state().items()}
    torch.save(tensors, str(folder / "timm.pth"))
    torch.save(tensors, str(folder / "timm.bin"), _use_new_zipfile_serialization=False)
    return {".npz": GOOGLE, ".safetensors": TIMM, ".pth": folder / "timm.pth", ".bin": folder / "timm.bin"}


# --- damaged files: 4 formats x (6 truncations + zero length + flipped bytes) --------------------

TRUNCATIONS = [1, 8, 9, 200, 0.5, -1]  # bytes kept (negative: all but that many), or a fraction


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".pth", ".bin"])
@pytest.mark.parametrize("keep", TRUNCATIONS)
def test_truncated_file(victim, formats, tmp_path, suffix, keep):
    data = formats[suffix].read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path = tmp_path / f"truncated{suffix}"
    path.write_bytes(data[:cut])
    assert_fails(victim, path, "truncated|corrupt|not a readable")


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".pth", ".bin"])
def test_zero_length_file(victim, tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    assert_fails(victim, path, r"is empty \(0 bytes\): delete it and download or save it again")


# Where a byte flip is caught: the CRC-32 of every .npz / .pth member, a .safetensors header. Flips
# inside a .safetensors or legacy .bin tensor payload change numbers no format checks; sha256= does.
FLIPS = [
    (".npz", 0.5, "Bad CRC-32"),
    (".npz", 0.9, "Bad CRC-32"),
    (".pth", 0.5, "Bad CRC-32"),
    (".pth", 0.9, "Bad CRC-32"),
    (".safetensors", 20, "header is not JSON|truncated or corrupt"),
    (".safetensors", 2, "header claims"),
    (".bin", 0, "truncated or corrupt"),
]


@pytest.mark.parametrize("suffix, where, match", FLIPS)
def test_flipped_bytes(victim, formats, tmp_path, suffix, where, match):
    data = bytearray(formats[suffix].read_bytes())
    at = int(len(data) * where) if isinstance(where, float) else where
    data[at : at + 4] = bytes(b ^ 0xFF for b in data[at : at + 4])
    path = tmp_path / f"flipped{suffix}"
    path.write_bytes(bytes(data))
    assert_fails(victim, path, match)


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_flipped_payload_is_caught_by_sha256(victim, formats, tmp_path, suffix):
    data = bytearray(formats[suffix].read_bytes())
    intact = __import__("hashlib").sha256(bytes(data)).hexdigest()
    data[len(data) // 2] ^= 0x01
    path = tmp_path / f"flipped{suffix}"
    path.write_bytes(bytes(data))
    assert_fails(victim, path, f"expected {intact}", sha256=intact)


def test_nan_weights_are_refused(victim, tmp_path):
    arrays = dict(np.load(GOOGLE))
    arrays["Transformer/encoder_norm/scale"][3] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    assert_fails(victim, tmp_path / "nan.npz", "NaN or infinite values in 'Transformer/encoder_norm/scale'")


# --- another kind of file under a checkpoint's name ------------------------------------------------

FOREIGN = [
    ("image.npz", b"\x89PNG\r\n\x1a\n" + bytes(64), "a PNG image"),
    ("page.safetensors", b"<!DOCTYPE html><html><body>Not found</body></html>", "an HTML page"),
    ("weights.pth", b"\x89HDF\r\n\x1a\n" + bytes(64), "an HDF5 file"),
    ("pytorch_model.bin", b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n", "Git LFS pointer"),
    ("photo.npz", b"\xff\xd8\xff\xe0" + bytes(64), "a JPEG image"),
    ("model.safetensors", b'{"not": "a checkpoint"}', "a JSON text file"),
    ("notes.pth", b"just some text, long enough to read a header from", "truncated or corrupt"),
    ("notes.txt", b"just some text, long enough to read a header from", "not a readable checkpoint"),
]


@pytest.mark.parametrize("name, content, match", FOREIGN)
def test_other_kind_of_file(victim, tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    assert_fails(victim, tmp_path / name, match)


def test_keras_archive_and_other_zips(victim, tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "model.npz", "w") as archive:  # a .keras file renamed
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"\x89HDF")
    assert_fails(victim, tmp_path / "model.npz", "Keras model archive")
    with zipfile.ZipFile(tmp_path / "docs.npz", "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert_fails(victim, tmp_path / "docs.npz", "zip archive of 1 files")


def test_pickle_with_code_is_refused_by_weights_only(victim, tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"model": {"x": torch.zeros(2)}, "hook": logging.Logger}, str(tmp_path / "code.pth"))
    assert_fails(
        victim, tmp_path / "code.pth", r"weights_only=True\) refuses to run \(GLOBAL logging.Logger\).*state_dict\(\)"
    )


# --- Hugging Face folders -----------------------------------------------------------------------


def hf_folder(path, config):
    """A save_pretrained()-style folder with the fixture's weights and `config` (text or dict)."""
    from test_pretrained import timm_to_huggingface

    path.mkdir()
    safetensors.numpy.save_file(timm_to_huggingface(timm_state()), str(path / "model.safetensors"))
    (path / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return path


HF_CONFIG = {"model_type": "vit", "num_attention_heads": CONFIG["heads"], "hidden_size": CONFIG["dim"]}


@pytest.mark.parametrize(
    "config, match",
    [
        ('{"model_type": "vit", "num_attention', "config.json is not valid JSON"),
        ("[1, 2]", "config.json is not a JSON object"),
        ({"model_type": "vit", "hidden_size": 48}, "neither 'num_attention_heads'"),
        (
            {**HF_CONFIG, "num_attention_heads": 4},
            r"config.json gives 4 attention heads; the model has 3: .*num_heads=4",
        ),
    ],
)
def test_bad_huggingface_config(victim, tmp_path, config, match):
    folder = hf_folder(tmp_path / "hf", config)
    assert_fails(victim, folder, match)


def test_huggingface_folder_without_weights(victim, tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps(HF_CONFIG))
    assert_fails(
        victim, tmp_path / "hf", r"holds none of .*model.safetensors.*found \['config.json'\]", error=FileNotFoundError
    )


def test_huggingface_config_labels_become_class_names(tmp_path):
    labels = {str(i): f"class {i}" for i in range(CONFIG["classes"])}
    folder = hf_folder(tmp_path / "hf", {**HF_CONFIG, "id2label": labels})
    model = build()
    load_pretrained(model, folder)
    assert model.class_names == [f"class {i}" for i in range(CONFIG["classes"])]


# --- weights missing or unexpected, in both directions --------------------------------------------


def google_arrays(depth):
    """The fixture's Google arrays with `depth` blocks (extra blocks copy block 0)."""
    arrays = dict(np.load(GOOGLE))
    for key in list(arrays):
        if key.startswith("Transformer/encoderblock_"):
            block = int(key.split("/")[1].split("_")[1])
            if block >= depth:
                del arrays[key]
            elif block == 0:
                for extra in range(CONFIG["depth"], depth):
                    arrays[key.replace("encoderblock_0", f"encoderblock_{extra}")] = arrays[key]
    return arrays


@pytest.mark.parametrize(
    "depth, match",
    [
        (
            CONFIG["depth"] + 1,
            r"has 16 weights the model has no place for, e.g. \['encoder_block_2/.*and 13 more "
            r"\(the checkpoint has 3 encoder blocks, the model 2\)",
        ),
        (
            CONFIG["depth"] - 1,
            r"is missing 16 weights the model needs, e.g. \['encoder_block_1/.*and 13 more "
            r"\(the checkpoint has 1 encoder blocks, the model 2\)",
        ),
    ],
)
def test_google_checkpoint_of_another_depth(victim, tmp_path, depth, match):
    np.savez(tmp_path / "deep.npz", **google_arrays(depth))
    assert_fails(victim, tmp_path / "deep.npz", match)


def test_deeper_timm_and_huggingface_checkpoints(victim, tmp_path):
    from test_pretrained import timm_to_huggingface

    state = timm_state()
    for key in [k for k in state if k.startswith("blocks.0.")]:
        state[key.replace("blocks.0.", "blocks.2.")] = state[key]
    safetensors.numpy.save_file(state, str(tmp_path / "deep.safetensors"))
    assert_fails(victim, tmp_path / "deep.safetensors", r"has 16 weights the model has no place for")
    hf = timm_to_huggingface(timm_state())
    for key in [k for k in hf if ".layer.0." in k]:
        hf[key.replace(".layer.0.", ".layer.2.")] = hf[key]
    safetensors.numpy.save_file(hf, str(tmp_path / "model.safetensors"))
    assert_fails(victim, tmp_path / "model.safetensors", "no place for.*3 encoder blocks")


@pytest.mark.parametrize("drop", ["norm.bias", "blocks.1.attn.qkv.weight", "cls_token", "pos_embed"])
def test_timm_checkpoint_missing_a_weight(victim, tmp_path, drop):
    state = timm_state()
    del state[drop]
    safetensors.numpy.save_file(state, str(tmp_path / "partial.safetensors"))
    assert_fails(victim, tmp_path / "partial.safetensors", r"is missing \d+ weights the model needs")


def test_head_is_optional_in_both_directions(tmp_path, caplog):
    """A features model takes a classifier checkpoint (its head logged and unused), and a classifier
    takes a headless checkpoint (its head left as initialised, logged)."""
    features = build(include_top=False)
    with caplog.at_level(logging.WARNING, logger="vit_keras"):
        loaded = load_pretrained(features, GOOGLE)
    assert "classification head the model (include_top=False) lacks" in caplog.text
    assert not any(name.startswith("head/") for name in loaded)
    arrays = dict(np.load(GOOGLE))
    del arrays["head/kernel"], arrays["head/bias"]
    np.savez(tmp_path / "headless.npz", **arrays)
    model = build()
    head = to_numpy(model.get_layer("head").kernel).copy()
    loaded = load_pretrained(model, tmp_path / "headless.npz")
    np.testing.assert_array_equal(to_numpy(model.get_layer("head").kernel), head)
    assert "encoder_norm/scale" in loaded


# --- the head count, which fused/unsplit attention weights do not show -----------------------------


def test_head_count_hints(victim, tmp_path):
    """A 3-head checkpoint loads without a shape error into a model with 1 head (width 48 divides
    either way): every record of the head count is checked against the model."""
    state = timm_state()
    safetensors.numpy.save_file(state, str(tmp_path / "meta.safetensors"), metadata={"num_heads": "4"})
    assert_fails(victim, tmp_path / "meta.safetensors", "safetensors metadata gives 4 attention heads")
    meta = {"architecture": "vit_base_patch16_224.augreg_in21k_ft_in1k"}
    safetensors.numpy.save_file(state, str(tmp_path / "arch.safetensors"), metadata=meta)
    assert_fails(victim, tmp_path / "arch.safetensors", "gives 12 attention heads; the model has 3")
    assert_fails(victim, TIMM, r"the num_heads argument gives 6 attention heads; .*num_heads=6", num_heads=6)
    one_head = build(num_heads=1)
    with pytest.raises(CheckpointError, match="num_heads argument gives 3 attention heads; the model has 1"):
        load_pretrained(one_head, TIMM, num_heads=3)
    timm_folder = tmp_path / "timm-hub"
    timm_folder.mkdir()
    safetensors.numpy.save_file(state, str(timm_folder / "model.safetensors"))
    (timm_folder / "config.json").write_text(json.dumps({"architecture": "vit_small_patch16_224"}))
    assert_fails(victim, timm_folder, "config.json gives 6 attention heads")
    safetensors.numpy.save_file(state, str(tmp_path / "ok.safetensors"), metadata={"num_heads": "3"})
    model = build()
    assert "head/kernel" in load_pretrained(model, tmp_path / "ok.safetensors", num_heads=3)


def test_bad_interpolation_argument(victim):
    model, _ = victim
    with pytest.raises(ValueError, match=r"must be 'auto' or one of \('bilinear', 'bicubic'\); found 'area'"):
        load_pretrained(model, GOOGLE, interpolation="area")


# --- Hugging Face config.json that this ViT cannot build: refused before anything is built ----------

CONFIG_FAULTS = [  # (change to config.json, key, expected, found); None deletes the key
    ({"model_type": "deit"}, "model_type", "'vit' \\(transformers' ViTConfig\\)", "'deit'"),
    ({"model_type": None}, "model_type", "'vit' \\(transformers' ViTConfig\\)", "no such key"),
    ({"hidden_act": "gelu_new"}, "hidden_act", "'gelu' \\(exact, erf-based\\)", "'gelu_new'"),
    ({"hidden_size": 50}, "hidden_size", "a multiple of num_attention_heads=3", "50"),
    ({"num_hidden_layers": None}, "num_hidden_layers", "a positive integer", "no such key"),
    ({"intermediate_size": "96"}, "intermediate_size", "a positive integer", "'96'"),
    ({"patch_size": 0}, "patch_size", "a positive integer", "0"),
    ({"image_size": 36}, "image_size", "a multiple of patch_size=8", "36"),
    ({"image_size": [32]}, "image_size", "a positive integer or \\[height, width\\]", "\\[32\\]"),
    ({"layer_norm_eps": -1}, "layer_norm_eps", "a positive finite number", "-1"),
    ({"layer_norm_eps": float("inf")}, "layer_norm_eps", "a positive finite number", "inf"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob", "a number in \\[0, 1\\)", "1.5"),
    ({"num_channels": 0}, "num_channels", "a positive integer", "0"),
    ({"qkv_bias": "yes"}, "qkv_bias", "true or false", "'yes'"),
]


@pytest.mark.parametrize("change, key, expected, found", CONFIG_FAULTS)
def test_unbuildable_huggingface_config(tmp_path, monkeypatch, change, key, expected, found):
    from test_pretrained import huggingface_config, huggingface_folder

    from vit_keras.pretrained import factory

    config = {k: v for k, v in {**huggingface_config(), **change}.items() if v is not None}
    folder = huggingface_folder(tmp_path / "hf", config, shards=2)
    monkeypatch.setattr(factory, "ViT", lambda **kwargs: pytest.fail("a model was built"))
    monkeypatch.setattr(factory, "read_checkpoint", lambda path: pytest.fail("the weights were read"))
    with pytest.raises(ValueError, match=f"config.json: '{key}' must be {expected}; found {found}\\.$") as caught:
        vit_keras.create_model(str(folder))
    assert "\n" not in str(caught.value) and str(folder) in str(caught.value)


def test_create_model_needs_a_config_json(tmp_path):
    from test_pretrained import timm_to_huggingface, write_sharded

    write_sharded(tmp_path / "weights-only", timm_to_huggingface(timm_state()), shards=2)
    with pytest.raises(FileNotFoundError, match=r"weights-only/config.json not found: .*load_pretrained"):
        vit_keras.create_model(str(tmp_path / "weights-only"))
    with pytest.raises(CheckpointError, match=r"config.json is not valid JSON"):
        (tmp_path / "weights-only" / "config.json").write_text("{")
        vit_keras.create_model(tmp_path / "weights-only")


# --- sharded checkpoints: every shard is checked before any weight changes ----------------------------


@pytest.fixture
def sharded(tmp_path):
    """A folder with the fixture's weights in 3 safetensors shards and their index: (folder, index)."""
    from test_pretrained import timm_to_huggingface, write_sharded

    folder = tmp_path / "sharded"
    index = write_sharded(folder, timm_to_huggingface(timm_state()), shards=3)
    return folder, index


def edit_index(index, edit):
    content = json.loads(index.read_text())
    edit(content["weight_map"])
    index.write_text(json.dumps(content))
    return content["weight_map"]


def test_missing_shard(victim, sharded):
    folder, index = sharded
    (folder / "model-00002-of-00003.safetensors").unlink()
    assert_fails(
        victim,
        folder,
        r"model.safetensors.index.json lists the shard model-00002-of-00003.safetensors, which is not in .*sharded",
        error=FileNotFoundError,
    )


@pytest.mark.parametrize("keep", [0, 5, 0.5, -1])
def test_truncated_shard(victim, sharded, keep):
    folder, _ = sharded
    shard = folder / "model-00003-of-00003.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep % len(data)])
    assert_fails(
        victim, folder, r"model-00003-of-00003.safetensors (is empty|is truncated|is not a readable|could not)"
    )


def test_shard_of_another_kind(victim, sharded):
    folder, _ = sharded
    (folder / "model-00001-of-00003.safetensors").write_bytes(b"<!DOCTYPE html><html>Not found</html>")
    assert_fails(victim, folder, r"model-00001-of-00003.safetensors is an HTML page")


INDEX_FAULTS = [
    ('{"weight_map": {"cls', r"model.safetensors.index.json is not valid JSON"),
    ("[1, 2]", r"model.safetensors.index.json is not a JSON object \(found a JSON list\)"),
    ('{"metadata": {"total_size": 1}}', r"index.json must have a non-empty 'weight_map' .*found keys \['metadata'\]"),
    ('{"weight_map": []}', r"index.json must have a non-empty 'weight_map' .*found \[\]"),
    ("", r"model.safetensors.index.json is not valid JSON"),
]


@pytest.mark.parametrize("text, match", INDEX_FAULTS)
def test_unreadable_index(victim, sharded, text, match):
    folder, index = sharded
    index.write_text(text)
    assert_fails(victim, folder, match)


@pytest.mark.parametrize("shard", ["../model-00001-of-00003.safetensors", "/etc/passwd", "sub/../../x", "a\\..\\b", 7])
def test_index_naming_a_file_outside_its_folder(victim, sharded, shard):
    folder, index = sharded
    (folder.parent / "model-00001-of-00003.safetensors").write_bytes(
        (folder / "model-00001-of-00003.safetensors").read_bytes()
    )  # a real file there: the name alone is refused
    edit_index(index, lambda weight_map: weight_map.update({"vit.layernorm.bias": shard}))
    assert_fails(victim, folder, r"weight_map gives 'vit.layernorm.bias' the shard .*; expected a file name inside")


def test_index_that_disagrees_with_its_shards(victim, sharded):
    folder, index = sharded
    weight_map = json.loads(index.read_text())["weight_map"]
    key = next(k for k, v in weight_map.items() if v.startswith("model-00001"))
    edit_index(index, lambda m: m.update({key: "model-00002-of-00003.safetensors"}))
    assert_fails(
        victim, folder, f"weight_map puts '{key}' in model-00002-of-00003.safetensors; found it in model-00001"
    )
    edit_index(index, lambda m: m.update({"vit.extra": "model-00002-of-00003.safetensors", key: weight_map[key]}))
    assert_fails(victim, index, "weight_map puts 'vit.extra' in model-00002-of-00003.safetensors; found it in no shard")
    edit_index(index, lambda m: m.pop("vit.extra"))
    twice = {k: v for k, v in safetensors.numpy.load_file(str(folder / weight_map[key])).items()}
    safetensors.numpy.save_file(twice, str(folder / "model-00003-of-00003.safetensors"))
    assert_fails(victim, folder, r"is in two shards, model-00001-of-00003.safetensors and model-00003")


def test_sha256_of_a_sharded_checkpoint_is_refused(victim, sharded):
    folder, _ = sharded
    assert_fails(victim, folder, r"sha256= verifies one file; .*index of a sharded checkpoint", sha256="0" * 64)


def test_create_model_from_a_damaged_sharded_folder_builds_nothing(tmp_path, monkeypatch):
    from test_pretrained import huggingface_folder

    from vit_keras.pretrained import factory

    folder = huggingface_folder(tmp_path / "hf", shards=2)
    (folder / "model-00002-of-00002.safetensors").write_bytes(b"")
    monkeypatch.setattr(factory, "ViT", lambda **kwargs: pytest.fail("a model was built"))
    with pytest.raises(CheckpointError, match=r"model-00002-of-00002.safetensors is empty \(0 bytes\)") as caught:
        vit_keras.create_model(str(folder))
    assert "\n" not in str(caught.value)


# --- tensors whose shapes or records cannot be what they claim ---------------------------------------


@pytest.mark.parametrize(
    "key, shape, match",
    [
        (
            "blocks.0.attn.qkv.weight",
            (145, 48),
            r"'blocks.0.attn.qkv.weight' has shape \(145, 48\); expected \(3 \* D, D\)",
        ),
        ("blocks.0.attn.qkv.weight", (), r"'blocks.0.attn.qkv.weight' has shape \(\); expected \(3 \* D, D\)"),
        ("blocks.1.attn.qkv.bias", (143,), r"'blocks.1.attn.qkv.bias' has shape \(143,\); expected \(144,\)"),
    ],
)
def test_fused_qkv_that_does_not_split_in_three(victim, tmp_path, key, shape, match):
    state = timm_state()
    state[key] = np.ones(shape, np.float32)
    safetensors.numpy.save_file(state, str(tmp_path / "qkv.safetensors"))
    assert_fails(victim, tmp_path / "qkv.safetensors", r"qkv.safetensors \(timm layout\): weight " + match)


@pytest.mark.parametrize("channels", [1, 4])
def test_patch_kernel_of_another_channel_count_than_rgb_is_refused(victim, tmp_path, channels):
    """Only a 3-channel kernel is adapted (timm's `adapt_input_conv`); a 4-channel one was cut to 3."""
    state = timm_state()
    state["patch_embed.proj.weight"] = np.ones((CONFIG["dim"], channels, CONFIG["patch"], CONFIG["patch"]), "float32")
    safetensors.numpy.save_file(state, str(tmp_path / "channels.safetensors"))
    match = f"has {channels} input channels and the model 3; only a 3-channel .* in_channels={channels}"
    assert_fails(victim, tmp_path / "channels.safetensors", match)


@pytest.mark.parametrize(
    "config, match",
    [
        ({"num_attention_heads": "three"}, r"config.json: 'num_attention_heads' must be a positive integer .*'three'"),
        ({"num_attention_heads": 3.0}, r"config.json: 'num_attention_heads' must be a positive integer .*3.0"),
        ({"architecture": "vit_x", "model_args": {"num_heads": None}}, r"'model_args.num_heads' must be .*None"),
        ({"architecture": "vit_x", "model_args": {"num_heads": "x"}}, r"'model_args.num_heads' must be .*'x'"),
        ({**HF_CONFIG, "id2label": {str(i): i for i in range(CONFIG["classes"])}}, r"'id2label' must map to .*found 0"),
    ],
)
def test_malformed_config_records_are_refused_before_any_change(victim, tmp_path, config, match):
    assert_fails(victim, hf_folder(tmp_path / "hf", config), match)


def test_malformed_head_count_metadata_and_argument(victim, tmp_path):
    path = tmp_path / "meta.safetensors"
    safetensors.numpy.save_file(timm_state(), str(path), metadata={"num_heads": "abc"})
    assert_fails(victim, path, r"meta.safetensors \(safetensors metadata\): 'num_heads' must be a positive integer")
    cfg = json.dumps({"model_args": {"num_heads": "x"}})
    safetensors.numpy.save_file(timm_state(), str(path), metadata={"pretrained_cfg": cfg})
    assert_fails(victim, path, r"'model_args.num_heads' must be a positive integer .*'x'")
    for wrong in ("abc", 3.7, 0, True):
        with pytest.raises(ValueError, match=rf"num_heads must be a positive integer \(or None\); found {wrong!r}"):
            load_pretrained(victim[0], TIMM, num_heads=wrong)


@pytest.mark.parametrize(
    "change, key, found",
    [
        ({"hidden_size": 60}, "hidden_size", "60, but the weights in .*model.safetensors.index.json have 48"),
        ({"num_hidden_layers": 5}, "num_hidden_layers", "5, but the weights .* have 2"),
        ({"num_channels": 1}, "num_channels", "1, but the weights .* have 3"),
        ({"intermediate_size": 100}, "intermediate_size", "100, but the weights .* have 96"),
    ],
)
def test_config_json_that_contradicts_its_weights_builds_nothing(tmp_path, monkeypatch, change, key, found):
    from test_pretrained import huggingface_config, huggingface_folder

    from vit_keras.pretrained import factory

    folder = huggingface_folder(tmp_path / "hf", huggingface_config(**change), shards=2)
    monkeypatch.setattr(factory, "ViT", lambda **kwargs: pytest.fail("a model was built"))
    with pytest.raises(CheckpointError, match=f"config.json: '{key}' is {found}: the config.json does not belong"):
        vit_keras.create_model(str(folder))


def test_create_model_argument_types():
    with pytest.raises(TypeError, match="pretrained must be True, False or None; found 'no'"):
        vit_keras.create_model("vit_mnist_p7", pretrained="no")
    with pytest.raises(ValueError, match="name must be one of list_models.*found ''"):
        vit_keras.create_model("")


# --- URL downloads: all or nothing in the cache ----------------------------------------------------------


class Server:
    """An HTTP server on 127.0.0.1 whose first path part says how to (mis)behave."""

    def __init__(self, data):
        import http.server
        import threading

        self.data = data
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.answer(self, self.path.strip("/").split("/")[0])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, mode, name="model.safetensors"):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{mode}/{name}"

    def answer(self, handler, mode):
        import time

        data, status, length = self.data, 200, None
        if mode == "html":
            data = b"<!DOCTYPE html><html><body>Please sign in</body></html>"
        elif mode in ("404", "500"):
            data, status = b"error", int(mode)
        elif mode in ("short", "stall"):
            data, length = self.data[:1000], len(self.data)  # claims the whole file, sends less
        elif mode == "unsized":
            data, length = self.data[: len(self.data) // 2], ""  # no Content-Length, closes mid-file
        handler.send_response(status)
        if length != "":
            handler.send_header("Content-Length", str(length or len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
        if mode == "stall":
            time.sleep(3)
        handler.close_connection = True

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    serving = Server(TIMM.read_bytes())
    yield serving
    serving.stop()


def download_module():
    """The module `vit_keras.pretrained.download` (the package exports its function of the same name)."""
    return importlib.import_module("vit_keras.pretrained.download")


def cache_files(cache):
    return sorted(p.name for p in cache.rglob("*") if p.is_file())


DOWNLOAD_FAULTS = [
    ("short", OSError, "the server announced 196212 bytes and sent 1000"),
    ("stall", OSError, "TimeoutError: timed out"),
    (
        "unsized",
        CheckpointError,
        "no complete checkpoint: it is truncated or corrupt: its header describes 196212 bytes",
    ),
    ("html", CheckpointError, "no complete checkpoint: it is an HTML page"),
    ("404", OSError, "the server answered HTTP 404 Not Found"),
    ("500", OSError, "the server answered HTTP 500 Internal Server Error"),
]


@pytest.mark.parametrize("mode, error, match", DOWNLOAD_FAULTS)
def test_failed_download_caches_nothing(victim, server, tmp_path, monkeypatch, mode, error, match):
    """Every failed download names the URL in one line and leaves no file in the cache, so that
    the next load downloads again (an HTML page or half a file was cached and failed every load)."""
    monkeypatch.setattr(download_module(), "TIMEOUT_S", 0.5, raising=False)
    cache = tmp_path / "cache"
    for _ in range(2):
        assert_fails(victim, server.url(mode), f"{server.url(mode)}.*{match}", error=error, cache_dir=cache)
        assert cache_files(cache) == []


def test_interrupted_download_leaves_no_file_and_stale_parts_are_removed(server, tmp_path, monkeypatch):
    """A download interrupted mid-way (Ctrl-C) leaves nothing; a `.part` file of a killed process and a
    half-written cache entry (from a killed `keras.utils.get_file`) are replaced by the next download."""
    import io

    from vit_keras.pretrained.download import cache_name

    url, cache = server.url("ok"), tmp_path / "cache"
    real_open = io.open

    def interrupting_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if str(path).endswith(".part"):
            handle.write(b"half a file")
            raise KeyboardInterrupt
        return handle

    monkeypatch.setattr(download_module(), "open", interrupting_open, raising=False)
    with pytest.raises(KeyboardInterrupt):
        load_pretrained(build(), url, cache_dir=cache)
    assert cache_files(cache) == []
    monkeypatch.undo()

    folder, name = cache / "vit_keras", cache_name(url)
    (folder / name).write_bytes(TIMM.read_bytes()[:5000])  # what a killed download once left
    dead = f".{name}.999999999-0badcafe.part"  # no process has this pid
    (folder / dead).write_bytes(b"partial")
    model = build()
    load_pretrained(model, url, cache_dir=cache)
    assert cache_files(cache) == [name]
    assert (folder / name).read_bytes() == TIMM.read_bytes()


def test_unusable_cache_dir_and_sha256(victim, server, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(OSError, match=r"cache_dir .*file cannot hold the download cache .*VIT_KERAS_CACHE") as caught:
        load_pretrained(victim[0], server.url("ok"), cache_dir=not_a_folder)
    assert "\n" not in str(caught.value)
    with pytest.raises(TypeError, match="cache_dir must be a folder path or None; found 5"):
        load_pretrained(victim[0], server.url("ok"), cache_dir=5)
    with pytest.raises(ValueError, match="sha256 must be 64 hexadecimal digits .*found 'xyz'"):
        load_pretrained(victim[0], server.url("ok"), sha256="xyz", cache_dir=tmp_path / "cache")
    assert_fails(
        victim,
        server.url("ok"),
        "sha256 of the file downloaded from .* nothing was cached",
        sha256="0" * 64,
        cache_dir=tmp_path / "cache",
    )
    assert cache_files(tmp_path / "cache") == []
