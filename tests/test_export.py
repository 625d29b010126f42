"""SavedModel export for TF Serving: parity in a fresh process, signatures, versions, bad input.

The module-scoped export runs under the current backend (TensorFlow in-process; JAX and PyTorch
through the TensorFlow-backend subprocess), so CI proves all three routes.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import vit_keras
from vit_keras import export as vexport
from vit_keras.cli import main as cli_main

HERE = pathlib.Path(__file__).resolve().parent
CLASS_NAMES = ["cat", "dog", "fox", "owl", "yak"]
IMAGE_SIZE = (16, 12)  # not square, so a height/width swap cannot pass


def tiny_vit(**overrides):
    keras.utils.set_random_seed(0)
    config = dict(
        image_size=IMAGE_SIZE,
        patch_size=4,
        in_channels=3,
        num_classes=5,
        embed_dim=16,
        depth=1,
        num_heads=2,
        mlp_dim=32,
        preprocessing="imagenet",
    )
    return vit_keras.ViT(**{**config, **overrides})


def keras_logits(model, images):
    return keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, images, export path, fresh-process outputs) for one export under this backend."""
    root = tmp_path_factory.mktemp("export")
    model = tiny_vit()
    images = np.random.default_rng(1).integers(0, 256, (64,) + IMAGE_SIZE + (3,), dtype=np.uint8)
    path = vit_keras.export_saved_model(model, root / "tiny", class_names=CLASS_NAMES)
    np.savez(root / "inputs.npz", images=images)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run(
        [sys.executable, str(HERE / "serving_fresh_process.py"), path, root / "inputs.npz", root / "out.npz"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = dict(np.load(root / "out.npz", allow_pickle=True))
    return model, images, pathlib.Path(path), outputs


def test_export_writes_version_1_with_saved_model(exported):
    _, _, path, _ = exported
    assert path.name == "1"
    assert (path / "saved_model.pb").is_file() and (path / "variables").is_dir()
    assert [p.name for p in path.parent.iterdir()] == ["1"]  # no staging folder left behind


def test_fresh_process_never_imports_keras(exported):
    assert list(exported[3]["modules"]) == []


@pytest.mark.parametrize("case", ["float", "uint8", "png", "png_resized"])
def test_fresh_process_logits_match_keras(exported, case):
    model, images, _, outputs = exported
    expected = keras_logits(model, images)
    logits = outputs[f"{case}/logits"]
    assert logits.shape == (64, 5)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", ["float_batch1", "png_batch1"])
def test_batch_of_one(exported, case):
    model, images, _, outputs = exported
    np.testing.assert_allclose(outputs[f"{case}/logits"], keras_logits(model, images[:1]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", ["float_empty", "uint8_empty", "png_empty"])
def test_empty_batch_gives_empty_outputs(exported, case):
    outputs = exported[3]
    shapes = {
        name.split("/")[1]: (value.shape, value.dtype.kind)
        for name, value in outputs.items()
        if name.startswith(case + "/")
    }
    assert shapes == {
        "logits": ((0, 5), "f"),
        "probabilities": ((0, 5), "f"),
        "top_k_indices": ((0, 5), "i"),
        "top_k_scores": ((0, 5), "f"),
        "top_k_labels": ((0, 5), "O"),
    }


def test_outputs_are_consistent(exported):
    _, _, _, outputs = exported
    logits, probabilities = outputs["float/logits"], outputs["float/probabilities"]
    np.testing.assert_allclose(probabilities, keras.ops.convert_to_numpy(keras.ops.softmax(logits)), atol=1e-6)
    indices, scores = outputs["float/top_k_indices"], outputs["float/top_k_scores"]
    assert indices.shape == scores.shape == (64, 5)
    np.testing.assert_array_equal(indices[:, 0], logits.argmax(axis=1))
    np.testing.assert_allclose(scores, np.take_along_axis(probabilities, indices, axis=1), atol=1e-7)
    assert np.all(np.diff(scores, axis=1) <= 0)
    labels = np.vectorize(bytes.decode)(outputs["float/top_k_labels"])
    np.testing.assert_array_equal(labels, np.array(CLASS_NAMES)[indices])


def parse_saved_model_cli(text):
    """{signature: {"inputs"/"outputs": {name: (dtype, shape)}}} from `saved_model_cli show --all`."""
    signatures = {}
    for block in text.split("signature_def['")[1:]:
        name = block.split("'")[0]
        inputs_text, _, outputs_text = block.partition("output(s):")
        signatures[name] = {
            side: {
                m[0]: (m[1], m[2]) for m in re.findall(r"\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\S.*)", part)
            }
            for side, part in (("inputs", inputs_text), ("outputs", outputs_text))
        }
    return signatures


def test_saved_model_cli_lists_the_signatures(exported):
    path = exported[2]
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
    done = subprocess.run([str(cli), "show", "--all", "--dir", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    signatures = parse_saved_model_cli(done.stdout)
    assert signatures["serving_default"]["inputs"] == {"images": ("DT_FLOAT", "(-1, 16, 12, 3)")}
    assert signatures["serving_uint8"]["inputs"] == {"images": ("DT_UINT8", "(-1, 16, 12, 3)")}
    assert signatures["serving_bytes"]["inputs"] == {"image_bytes": ("DT_STRING", "(-1)")}
    expected_outputs = {
        "logits": ("DT_FLOAT", "(-1, 5)"),
        "probabilities": ("DT_FLOAT", "(-1, 5)"),
        "top_k_indices": ("DT_INT32", "(-1, 5)"),
        "top_k_scores": ("DT_FLOAT", "(-1, 5)"),
        "top_k_labels": ("DT_STRING", "(-1, 5)"),
    }
    for name in ("serving_default", "serving_uint8", "serving_bytes"):
        assert signatures[name]["outputs"] == expected_outputs, name


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported[2]))


def test_corrupt_image_bytes_give_a_clear_error(loaded, exported):
    serve = loaded.signatures["serving_bytes"]
    good = tf.io.encode_png(exported[1][0]).numpy()
    not_an_image = r"image_bytes\[1\]\] \[is not a JPEG, PNG, GIF or BMP image"
    with pytest.raises(tf.errors.InvalidArgumentError, match=not_an_image):
        serve(image_bytes=tf.constant([good, b"not an image at all"]))
    with pytest.raises(tf.errors.InvalidArgumentError):
        serve(image_bytes=tf.constant([good[: len(good) // 2]]))  # a truncated PNG
    assert serve(image_bytes=tf.constant([good]))["logits"].shape == (1, 5)  # still serving


@pytest.mark.parametrize("shape", [(2, 16, 12, 1), (2, 16, 12, 4), (2, 12, 16, 3), (2, 32, 24, 3), (2, 16, 12)])
def test_pixels_of_the_wrong_shape_are_rejected(loaded, shape):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be a batch of shape .*\(batch, 16, 12, 3\)"):
        loaded.signatures["serving_default"](images=tf.zeros(shape))


def test_existing_version_is_refused(exported):
    model, _, path, _ = exported
    before = sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(FileExistsError, match="version 1 already exists"):
        vit_keras.export_saved_model(model, path.parent, version=1)
    assert sorted(p.name for p in path.parent.iterdir()) == before


def test_class_names_must_match_the_outputs(tmp_path):
    with pytest.raises(ValueError, match=r"one name per model output \(5\); found 2"):
        vit_keras.export_saved_model(tiny_vit(), tmp_path / "m", class_names=["a", "b"])
    assert not (tmp_path / "m").exists()


# ----------------------------------------------------------------------------- backend-independent


@pytest.mark.single_backend
def test_next_version_is_one_more_than_the_highest(tmp_path):
    assert vexport.next_version(tmp_path / "missing") == 1
    for name in ("1", "3", "notes", ".7.partial-x"):
        (tmp_path / name).mkdir()
    (tmp_path / "12").write_text("a file, not a version")
    assert vexport.existing_versions(tmp_path) == [1, 3]
    assert vexport.next_version(tmp_path) == 4


@pytest.mark.single_backend
@pytest.mark.parametrize("version", [0, -1, "x", 1.5, True])
def test_bad_version_is_rejected(tmp_path, version):
    with pytest.raises(ValueError, match="version must be a positive integer"):
        vit_keras.export_saved_model(tiny_vit(), tmp_path, version=version)


@pytest.mark.single_backend
def test_failed_export_leaves_no_version_folder(tmp_path, monkeypatch):
    def half_write(model, path, scratch, **options):
        path.mkdir()
        (path / "variables").mkdir()
        raise vexport.ExportError("disk full halfway")

    monkeypatch.setattr(vexport, "_write", half_write)
    with pytest.raises(vexport.ExportError, match="disk full"):
        vit_keras.export_saved_model(tiny_vit(), tmp_path / "m", version=3)
    assert list(tmp_path.iterdir()) == []  # nor the folder the export created for it


def _refuse_to_write(model, path, scratch, **options):
    raise AssertionError(f"the export started writing {path} before checking its output path")


@pytest.mark.parametrize("export", ["saved_model", "onnx"])
def test_an_empty_output_path_is_refused_not_taken_as_the_current_folder(tmp_path, monkeypatch, export):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(vexport, "_write", _refuse_to_write)
    name, write = {"saved_model": ("base_dir", vit_keras.export_saved_model), "onnx": ("path", vit_keras.export_onnx)}[
        export
    ]
    for empty in ("", " "):
        with pytest.raises(ValueError, match=f"^{name} must be a path; found an empty string"):
            write(tiny_vit(), empty)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("export", ["saved_model", "onnx"])
def test_an_output_under_a_file_is_refused_in_one_line(tmp_path, monkeypatch, export):
    monkeypatch.setattr(vexport, "_write", _refuse_to_write)
    (tmp_path / "afile").write_text("not a folder")
    name, write = {"saved_model": ("base_dir", vit_keras.export_saved_model), "onnx": ("path", vit_keras.export_onnx)}[
        export
    ]
    # ONNX: a path without .onnx is a folder, so `afile` itself is refused as one
    for output in [tmp_path / "afile" / "sub"] + ([tmp_path / "afile"] if export == "onnx" else []):
        with pytest.raises(
            NotADirectoryError, match=f"^{name} must be writable: .* because {tmp_path / 'afile'} is a file"
        ):
            write(tiny_vit(), output)
    assert (tmp_path / "afile").read_text() == "not a folder"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc, where no file can be created")
@pytest.mark.parametrize("export", ["saved_model", "onnx"])
def test_an_unwritable_output_is_refused_before_the_conversion(monkeypatch, export):
    monkeypatch.setattr(vexport, "_write", _refuse_to_write)
    name, write, output = {
        "saved_model": ("base_dir", vit_keras.export_saved_model, "/proc/vit_keras_export_test"),
        "onnx": ("path", vit_keras.export_onnx, "/proc/vit_keras_export_test.onnx"),
    }[export]
    with pytest.raises(PermissionError, match=f"^{name} must be writable: cannot (create|write into) the folder /proc"):
        write(tiny_vit(), output)


def test_an_onnx_path_that_is_a_folder_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "model.onnx").mkdir()
    for overwrite in (False, True):
        with pytest.raises(IsADirectoryError, match="path must be a .onnx file; found a folder at"):
            vit_keras.export_onnx(tiny_vit(), tmp_path / "model.onnx", overwrite=overwrite)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


@pytest.mark.parametrize("export", ["saved_model", "onnx"])
def test_a_failed_export_removes_the_folders_it_created(tmp_path, monkeypatch, export):
    def fail(model, path, scratch, **options):
        path.mkdir() if export == "saved_model" else path.write_bytes(b"half")
        raise vexport.ExportError("disk full halfway")

    monkeypatch.setattr(vexport, "_write", fail)
    (tmp_path / "kept").mkdir()
    write, output = {
        "saved_model": (vit_keras.export_saved_model, tmp_path / "kept" / "new" / "deeper"),
        "onnx": (vit_keras.export_onnx, tmp_path / "kept" / "new" / "deeper" / "m.onnx"),
    }[export]
    with pytest.raises(vexport.ExportError, match="disk full"):
        write(tiny_vit(), output)
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"] and list((tmp_path / "kept").iterdir()) == []


def test_cli_refuses_an_empty_or_blocked_output_in_one_line(tmp_path, capsys):
    tiny_vit().save(tmp_path / "m.keras")
    (tmp_path / "afile").write_text("x")
    for output, fmt, expected in [
        ("", "saved_model", "--output must be a path; found an empty string."),
        (str(tmp_path / "afile" / "v"), "saved_model", f"--output must be writable: {tmp_path / 'afile' / 'v'} cannot"),
        (str(tmp_path / "afile"), "onnx", f"because {tmp_path / 'afile'} is a file, not a folder."),
    ]:
        assert cli_main(["export", str(tmp_path / "m.keras"), "--output", output, "--format", fmt]) == 2
        error = capsys.readouterr().err.strip()
        assert expected in error and len(error.splitlines()) == 1, error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "m.keras"]


@pytest.mark.parametrize("export", ["saved_model", "onnx"])
@pytest.mark.parametrize("top_k", [0, -1, 2.5, True])
def test_a_bad_top_k_is_refused_before_anything_is_written(tmp_path, export, top_k):
    write, output = {
        "saved_model": (vit_keras.export_saved_model, tmp_path / "m"),
        "onnx": (vit_keras.export_onnx, tmp_path / "m.onnx"),
    }[export]
    with pytest.raises(ValueError, match=rf"^top_k must be a positive integer; found {re.escape(repr(top_k))}\.$"):
        write(tiny_vit(), output, top_k=top_k)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.single_backend  # the worker is a TensorFlow-backend process whatever the caller's backend
def test_a_failing_tensorflow_worker_is_reported_in_one_line(tmp_path):
    """What the JAX and PyTorch exports report when their TensorFlow-backend worker fails."""
    (tmp_path / "bad.keras").write_bytes(b"PK not a model")
    with pytest.raises(vexport.ExportError) as error:
        vexport._write_in_subprocess(tmp_path / "bad.keras", tmp_path / "out", {})
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message, message
    assert message.startswith(f"the TensorFlow-backend export of {tmp_path / 'bad.keras'} failed: ValueError: ")
    assert (
        message.endswith("is not a .keras archive (truncated or another file type).")
        and not (tmp_path / "out").exists()
    )


@pytest.mark.single_backend
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the one-step swap is Linux's renameat2")
def test_a_reader_finds_a_complete_version_at_every_step_of_an_overwrite(tmp_path, monkeypatch):
    """Between any two file-system steps of an overwrite (where a kill could stop it), the version
    folder holds the old or the new SavedModel, never nothing."""
    target = tmp_path / "m" / "2"
    target.mkdir(parents=True)
    (target / "saved_model.pb").write_text("old")
    seen = []

    def reader_view():
        seen.append((target / "saved_model.pb").read_text() if (target / "saved_model.pb").is_file() else None)

    def watched(function):
        def step(*args, **kwargs):
            reader_view()
            result = function(*args, **kwargs)
            reader_view()
            return result

        return step

    def fake_write(model, path, scratch, **options):
        path.mkdir()
        (path / "saved_model.pb").write_text("new")

    monkeypatch.setattr(vexport, "_write", fake_write)
    monkeypatch.setattr(pathlib.Path, "rename", watched(pathlib.Path.rename))
    monkeypatch.setattr(vexport.shutil, "rmtree", watched(vexport.shutil.rmtree))
    monkeypatch.setattr(vexport, "exchange_paths", watched(vexport.exchange_paths))
    vit_keras.export_saved_model(tiny_vit(), tmp_path / "m", version=2, overwrite=True)
    assert seen and None not in seen and seen[-1] == "new", seen
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["2"]


@pytest.mark.single_backend
def test_overwrite_replaces_the_version_atomically(tmp_path, monkeypatch):
    def fake_write(model, path, scratch, **options):
        path.mkdir()
        (path / "saved_model.pb").write_text("new")

    (tmp_path / "m" / "2").mkdir(parents=True)
    (tmp_path / "m" / "2" / "saved_model.pb").write_text("old")
    monkeypatch.setattr(vexport, "_write", fake_write)
    with pytest.raises(FileExistsError):
        vit_keras.export_saved_model(tiny_vit(), tmp_path / "m", version=2)
    assert (tmp_path / "m" / "2" / "saved_model.pb").read_text() == "old"
    path = vit_keras.export_saved_model(tiny_vit(), tmp_path / "m", version=2, overwrite=True)
    assert pathlib.Path(path).name == "2" and (tmp_path / "m" / "2" / "saved_model.pb").read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["2"]
    assert vit_keras.export_saved_model(tiny_vit(), tmp_path / "m").endswith(os.sep + "3")


@pytest.mark.parametrize("damage", ["empty", "truncated", "not_a_zip", "bad_config"])
def test_damaged_keras_file_is_a_one_line_value_error(tmp_path, damage):
    tiny_vit().save(tmp_path / "good.keras")
    data = (tmp_path / "good.keras").read_bytes()
    if damage == "bad_config":
        import zipfile

        with zipfile.ZipFile(tmp_path / "good.keras") as good, zipfile.ZipFile(tmp_path / "m.keras", "w") as bad:
            for item in good.infolist():
                bad.writestr(item, b"{not json" if item.filename == "config.json" else good.read(item))
    else:
        damaged = {"empty": b"", "truncated": data[: len(data) // 2], "not_a_zip": b"PK not really"}[damage]
        (tmp_path / "m.keras").write_bytes(damaged)
    for export in (
        lambda: vit_keras.export_saved_model(tmp_path / "m.keras", tmp_path / "out"),
        lambda: vit_keras.export_onnx(tmp_path / "m.keras", tmp_path / "out.onnx"),
    ):
        with pytest.raises(ValueError, match=re.escape(str(tmp_path / "m.keras"))) as error:
            export()
        assert "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.keras", "m.keras"]  # nothing written


@pytest.mark.single_backend
@pytest.mark.parametrize("flag", ["jit_compile", "overwrite"])
def test_flags_must_be_booleans(tmp_path, flag):
    with pytest.raises(ValueError, match=f"{flag} must be True or False; found 'yes'"):
        vit_keras.export_saved_model(tiny_vit(), tmp_path / "m", **{flag: "yes"})
    assert not (tmp_path / "m").exists()


@pytest.mark.single_backend
def test_cli_reports_a_missing_model(tmp_path, capsys):
    assert cli_main(["export", str(tmp_path / "no_such_run"), "--output", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "neither a run directory nor a .keras file" in error and "no_such_run" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.single_backend
def test_cli_exports_a_run_directory(tmp_path, capsys):
    """A channels-first, 1-channel run: class names from config.json, grayscale PNGs, transposed input."""
    model = tiny_vit(in_channels=1, data_format="channels_first", preprocessing="mnist")
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "config.json").write_text(json.dumps({"dataset": {"class_names": CLASS_NAMES}}))
    assert cli_main(["export", str(run), "--output", str(tmp_path / "served"), "--version", "7"]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(tmp_path / "served" / "7")

    images = np.random.default_rng(2).integers(0, 256, (3,) + IMAGE_SIZE + (1,), dtype=np.uint8)
    expected = keras_logits(model, np.transpose(images, (0, 3, 1, 2)))
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](images=tf.constant(images, tf.float32))
    np.testing.assert_allclose(out["logits"].numpy(), expected, atol=1e-5)
    rgb = np.repeat(images, 3, axis=-1)  # an RGB PNG of a gray image decodes back to the same gray
    png = tf.constant([tf.io.encode_png(image).numpy() for image in rgb])
    out = loaded.signatures["serving_bytes"](image_bytes=png)
    np.testing.assert_allclose(out["logits"].numpy(), expected, atol=1e-5)
    assert out["top_k_labels"].numpy()[0, 0].decode() == CLASS_NAMES[int(expected[0].argmax())]

    assert cli_main(["export", str(run), "--output", str(tmp_path / "served"), "--version", "7"]) == 2
    assert "version 7 already exists" in capsys.readouterr().err
