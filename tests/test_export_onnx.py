"""ONNX export (`vit_keras.export_onnx`, `vit-keras export --format onnx`) checked with onnxruntime.

The module-scoped export runs under the current backend (TensorFlow in-process; JAX and PyTorch
through the TensorFlow-backend subprocess), so CI proves all three routes.
"""

import pathlib

import numpy as np
import onnx
import onnxruntime
import pytest
from test_export import IMAGE_SIZE, keras_logits
from test_export import tiny_vit as one_block_vit

import vit_keras
from vit_keras.cli import main as cli_main


def tiny_vit(**overrides):
    """test_export's tiny classifier with two encoder blocks."""
    return one_block_vit(**{"depth": 2, **overrides})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, path, onnxruntime session) for one export under this backend."""
    root = tmp_path_factory.mktemp("onnx")
    model = tiny_vit()
    path = vit_keras.export_onnx(model, root / "tiny.onnx")
    return model, pathlib.Path(path), onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])


def test_graph_names_inputs_and_outputs(exported):
    _, path, session = exported
    (images,) = session.get_inputs()
    assert (images.name, images.type, images.shape) == ("images", "tensor(float)", ["batch", 16, 12, 3])
    names = [o.name for o in session.get_outputs()]
    assert names == ["logits", "probabilities", "top_k_indices", "top_k_scores"]
    onnx.checker.check_model(onnx.load(path))
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no staging file left


@pytest.mark.parametrize("batch", [1, 64])
def test_onnxruntime_matches_keras(exported, batch):
    model, _, session = exported
    images = np.random.default_rng(batch).uniform(0, 255, (batch,) + IMAGE_SIZE + (3,)).astype("float32")
    logits, probabilities, indices, scores = session.run(None, {"images": images})
    expected = keras_logits(model, images)
    assert logits.shape == (batch, 5)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(indices[:, 0], expected.argmax(-1))
    np.testing.assert_allclose(scores, np.take_along_axis(probabilities, indices.astype(int), -1), atol=1e-6)


def test_conv_stem_model_exports_with_its_batchnorm_statistics(tmp_path):
    model = tiny_vit(stem="conv")
    rng = np.random.default_rng(0)
    for norm in model.get_layer("conv_stem").stages[1::3]:
        norm.moving_mean.assign(rng.normal(size=norm.moving_mean.shape).astype("float32"))
        norm.moving_variance.assign(rng.uniform(0.5, 2.0, size=norm.moving_variance.shape).astype("float32"))
    path = vit_keras.export_onnx(model, tmp_path / "stem.onnx")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    images = rng.uniform(0, 255, (8,) + IMAGE_SIZE + (3,)).astype("float32")
    np.testing.assert_allclose(session.run(["logits"], {"images": images})[0], keras_logits(model, images), atol=1e-5)


def test_empty_batch_gives_empty_outputs(exported):
    _, _, session = exported
    outputs = session.run(None, {"images": np.zeros((0,) + IMAGE_SIZE + (3,), "float32")})
    assert [(o.shape, o.dtype) for o in outputs] == [
        ((0, 5), np.float32),
        ((0, 5), np.float32),
        ((0, 5), np.int32),
        ((0, 5), np.float32),
    ]


@pytest.mark.parametrize(
    "value, guard",
    [
        (np.nan, "images_must_be_finite"),
        (np.inf, "images_must_be_finite"),
        (-np.inf, "images_must_be_finite"),
        (-1.0, "images_must_be_0_to_255"),
        (255.5, "images_must_be_0_to_255"),
    ],
)
def test_non_finite_or_out_of_range_pixels_are_refused(exported, value, guard):
    _, _, session = exported
    images = np.full((3,) + IMAGE_SIZE + (3,), 128, "float32")
    images[2, 5, 6, 1] = value
    with pytest.raises(Exception, match=f"Reshape node. Name:'{guard}'"):
        session.run(None, {"images": images})
    images[2, 5, 6, 1] = 255.0  # the bounds themselves are valid pixels
    images[1, 0, 0, 0] = 0.0
    assert np.isfinite(session.run(["logits"], {"images": images})[0]).all()


def test_onnxruntime_rejects_the_wrong_channels(exported):
    _, _, session = exported
    with pytest.raises(Exception, match="images"):
        session.run(None, {"images": np.zeros((2,) + IMAGE_SIZE + (1,), "float32")})


def test_existing_file_is_refused_and_overwrite_replaces_it(exported):
    model, path, _ = exported
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        vit_keras.export_onnx(model, path)
    assert path.read_bytes() == before
    other = tiny_vit(num_classes=3)
    vit_keras.export_onnx(other, path, overwrite=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape == ["batch", 3]


@pytest.mark.single_backend
def test_keras_own_onnx_export_of_a_vit_runs_in_onnxruntime(tmp_path):
    """Keras' `model.export(format="onnx")` (TensorFlow) leaves the exact GELU's `Erfc` in the file,
    which onnxruntime refuses; `ViT.export` first teaches tf2onnx `1 - Erf` for it. The ViT's own
    MLP writes the GELU with `Erf`; a LoRA-enabled MLP layer runs Keras' `Dense` (and its `Erfc`)."""
    model = tiny_vit()
    images = np.random.default_rng(3).uniform(0, 255, (4,) + IMAGE_SIZE + (3,)).astype("float32")
    model(images[:1])
    mlp_in = [layer for layer in model._flatten_layers() if layer.name == "mlp_in"]
    assert len(mlp_in) == 2
    mlp_in[0].enable_lora(2)
    model.export(str(tmp_path / "keras.onnx"), format="onnx", verbose=False)
    assert "Erfc" not in {node.op_type for node in onnx.load(tmp_path / "keras.onnx").graph.node}
    session = onnxruntime.InferenceSession(str(tmp_path / "keras.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: images})
    np.testing.assert_allclose(logits, keras_logits(model, images), atol=1e-5)


@pytest.mark.single_backend
def test_failed_conversion_leaves_no_file(tmp_path, monkeypatch):
    import vit_keras.serving.onnx_graph as onnx_graph

    def broken(model, path, **kwargs):
        pathlib.Path(path).write_bytes(b"half")
        raise RuntimeError("conversion failed")

    monkeypatch.setattr(onnx_graph, "write_onnx", broken)
    with pytest.raises(RuntimeError, match="conversion failed"):
        vit_keras.export_onnx(tiny_vit(), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.single_backend
@pytest.mark.parametrize("opset", [12, "17", True])
def test_bad_opset_is_rejected(tmp_path, opset):
    with pytest.raises(ValueError, match="opset"):
        vit_keras.export_onnx(tiny_vit(), tmp_path / "m.onnx", opset=opset)


@pytest.mark.single_backend
def test_missing_model_path_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.keras is neither a run directory nor a .keras file"):
        vit_keras.export_onnx(tmp_path / "nope.keras", tmp_path / "m.onnx")


@pytest.mark.single_backend
def test_cli_exports_onnx_from_a_keras_file(tmp_path, capsys):
    model = tiny_vit()
    model.save(tmp_path / "model.keras")
    assert (
        cli_main(["export", str(tmp_path / "model.keras"), "--output", str(tmp_path / "out"), "--format", "onnx"]) == 0
    )
    written = pathlib.Path(capsys.readouterr().out.strip())
    assert written == tmp_path / "out" / "model.onnx"
    session = onnxruntime.InferenceSession(str(written), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).uniform(0, 255, (3,) + IMAGE_SIZE + (3,)).astype("float32")
    np.testing.assert_allclose(session.run(["logits"], {"images": images})[0], keras_logits(model, images), atol=1e-5)
    assert (
        cli_main(
            [
                "export",
                str(tmp_path / "model.keras"),
                "--output",
                str(tmp_path / "out"),
                "--format",
                "onnx",
                "--version",
                "2",
            ]
        )
        == 2
    )
    assert "--version" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "export",
                str(tmp_path / "model.keras"),
                "--output",
                str(tmp_path / "o2"),
                "--format",
                "onnx",
                "--precision",
                "float32",
            ]
        )
        == 2
    )
    assert "--precision apply to --format saved_model only (ONNX computes in float32)" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


@pytest.mark.single_backend
def test_a_bfloat16_model_exports_a_float32_graph(tmp_path):
    import keras

    model = tiny_vit(dtype="mixed_bfloat16")
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.2, w.shape).astype(w.dtype) for w in model.get_weights()])
    reference = tiny_vit(dtype="float32")
    reference.set_weights(model.get_weights())
    path = vit_keras.export_onnx(model, tmp_path / "bf16.onnx")
    graph = onnx.load(path).graph
    bfloat16 = onnx.TensorProto.BFLOAT16
    assert not [n.name for n in graph.initializer if n.data_type == bfloat16]
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    images = rng.uniform(0, 255, (3,) + IMAGE_SIZE + (3,)).astype("float32")
    logits = session.run(["logits"], {"images": images})[0]
    np.testing.assert_allclose(logits, keras.ops.convert_to_numpy(reference(images)), atol=1e-4)


@pytest.mark.single_backend
def test_a_mixed_precision_model_other_than_a_vit_is_refused(tmp_path):
    import keras

    inputs = keras.Input(IMAGE_SIZE + (3,))
    model = keras.Model(inputs, keras.layers.Dense(2, dtype="mixed_bfloat16")(keras.layers.Flatten()(inputs)))
    model.dtype_policy = keras.dtype_policies.get("mixed_bfloat16")
    with pytest.raises(ValueError, match=r"in precision 'float32' needs a vit_keras.ViT; found a Functional"):
        vit_keras.export_onnx(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
