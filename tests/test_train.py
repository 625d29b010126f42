"""Training: the optimizer pieces, `train(TrainConfig)`, evaluate/predict, resumption and bad input."""

import json
import pathlib

import keras
import numpy as np
import pytest
from conftest import sample_subset_dataset

from vit_keras import ViT, cli, optim, performance, predict, train
from vit_keras.choices import PRECISIONS
from vit_keras.curves import plot_training_curves
from vit_keras.train_config import TrainConfig

QUICK = ["--preset", "vit_mnist_p7", "--augment", "none", "--no-tensorboard", "--no-export", "--batch-size", "64"]
# For the plumbing runs below: on TensorFlow, XLA's compile takes longer than their few steps; JAX's
# steps run slower without XLA than its compile takes, so JAX keeps the default. The trainer's
# default (`auto`: on TensorFlow XLA only for runs of `performance.XLA_MIN_TRAINING_STEPS` steps or
# more) is covered by tests/test_compile_options.py and test_jit_compile_..._reach_the_model[auto].
PLUMBING_JIT = False if keras.backend.backend() == "tensorflow" else "auto"  # `jit_compile` of model.compile
NO_XLA = ["--jit-compile", "off"] if PLUMBING_JIT is False else []
# A smaller model for runs that check plumbing, not learning (what the preset is, they do not check).
SMALL = ["--embed-dim", "16", "--mlp-dim", "32"]


def tiny_vit(**kwargs):
    config = dict(
        image_size=8, patch_size=4, in_channels=1, num_classes=3, embed_dim=8, depth=2, num_heads=2, mlp_dim=16
    )
    return ViT(**{**config, **kwargs})


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    """`npz:PATH` of 512 train + 128 test digits from the bundled sample (fast plumbing runs)."""
    return sample_subset_dataset(tmp_path_factory.mktemp("tiny") / "digits.npz", train=512, test=128)


def run_cli(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def config_of(argv):
    """The `TrainConfig` of `vit-keras train ARGV`."""
    return cli.train_config(cli.build_parser().parse_args(["train"] + list(argv)))


# ----------------------------------------------------------------------------- optimizer


def test_weight_decay_skips_biases_norms_class_token_and_position_table():
    model = tiny_vit()
    skipped = {v.path for v in optim.no_decay_variables(model)}
    assert any("class_token" in p for p in skipped) and any("position_embedding" in p for p in skipped)
    assert any(p.endswith("bias") for p in skipped) and any(p.endswith("gamma") for p in skipped)
    assert not any(p.endswith("kernel") for p in skipped)
    optimizer = optim.make_optimizer(model, learning_rate=1e-3, total_steps=10, weight_decay=0.1)
    optimizer.build(model.trainable_variables)
    decayed = {v.path for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    assert decayed and not decayed & skipped
    assert "head/kernel" in decayed


def test_warmup_then_cosine_schedule():
    schedule = optim.warmup_cosine(1e-3, total_steps=110, warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 60, 110)]
    np.testing.assert_allclose(values, [0.0, 5e-4, 1e-3, 5e-4, 0.0], atol=1e-9)


def test_layer_decay_scales_the_learning_rate_per_block():
    # Fewer distinct variable shapes (8x8 MLP and head): on JAX, eager Adam compiles its ops once per shape.
    model = tiny_vit(mlp_dim=8, num_classes=8)
    scales = optim.layer_scales(model, 0.5)
    assert scales["head/kernel"] == 1.0
    assert scales[model.get_layer("encoder_block_1").trainable_variables[0].path] == 0.5
    assert scales[model.get_layer("encoder_block_0").trainable_variables[0].path] == 0.25
    assert scales[model.get_layer("patch_embedding").trainable_variables[0].path] == 0.125
    optimizer = optim.make_optimizer(
        model, learning_rate=1e-2, total_steps=10, weight_decay=0.0, clipnorm=0, layer_decay=0.5
    )
    before = {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}
    optimizer.apply_gradients([(keras.ops.ones(v.shape), v) for v in model.trainable_variables])
    step = {v.path: np.abs(keras.ops.convert_to_numpy(v) - before[v.path]).max() for v in model.trainable_variables}
    np.testing.assert_allclose(step["head/kernel"], 1e-2, rtol=1e-3)  # Adam's first step is lr * sign
    np.testing.assert_allclose(step[model.get_layer("patch_embedding").trainable_variables[0].path], 1.25e-3, rtol=1e-3)
    with pytest.raises(ValueError, match=r"layer_decay must be in \(0, 1\]; found 1.5"):
        optim.make_optimizer(model, layer_decay=1.5)


def test_ema_weights_replace_the_trained_weights_at_the_end_of_fit(rng):
    """With `ema`, the model ends `fit` holding the moving average of its per-step weights."""

    class Weights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.steps = []

        def on_train_batch_end(self, batch, logs=None):
            self.steps.append([keras.ops.convert_to_numpy(v) for v in self.model.trainable_variables])

    model, seen, momentum = tiny_vit(), Weights(), 0.5
    model.compile(
        optimizer=optim.make_optimizer(
            model, learning_rate=1e-2, total_steps=100, weight_decay=0.0, clipnorm=0, ema=momentum
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=PLUMBING_JIT,
    )
    x, y = rng.normal(size=(16, 8, 8, 1)).astype("float32"), rng.integers(0, 3, size=16)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[seen])
    optim.repair_ema_after_fit(model.optimizer)
    expected = seen.steps[0]  # Keras starts the average at the first step's weights
    for step in seen.steps[1:]:
        expected = [momentum * e + (1 - momentum) * w for e, w in zip(expected, step)]
    final = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    assert len(seen.steps) == 4
    assert max(np.abs(f - w).max() for f, w in zip(final, seen.steps[-1])) > 1e-4  # not the last step's
    for f, e in zip(final, expected):
        np.testing.assert_allclose(f, e, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- training runs


# `trained_run` (conftest): a short run of the vit_mnist_p7 model on the bundled MNIST sample.


def test_short_fit_on_the_bundled_sample_learns(trained_run):
    output, results = trained_run
    assert results["status"] == "finished" and results["epochs_run"] == 2
    assert results["test_examples"] == 2000
    assert results["test_accuracy"] > 0.5, results  # chance is 0.1


def test_run_directory_holds_every_artifact(trained_run):
    output, results = trained_run
    for name in ("config.json", "metrics.csv", "curves.png", "model.keras", "results.json", "best.keras", "last.keras"):
        assert (output / name).is_file(), name
    assert not (output / "backup").exists()  # deleted once the run finished
    config = json.loads((output / "config.json").read_text())
    assert config["backend"] == keras.backend.backend()
    assert config["versions"]["keras"] == keras.__version__
    assert config["args"]["lr"] == 3e-3 and config["args"]["ema"] == 0.9
    assert config["model"]["preprocessing"] == "mnist" and config["model"]["patch_size"] == 7
    assert config["model"]["pooling"] == "gap" and config["steps_per_epoch"] == 60
    assert config["dataset"]["sizes"] == {"train": 9000, "validation": 1000, "test": 2000}
    saved = json.loads((output / "results.json").read_text())
    assert saved["test_accuracy"] == pytest.approx(results["test_accuracy"])
    lines = (output / "metrics.csv").read_text().strip().splitlines()
    assert lines[0].startswith("epoch") and "val_accuracy" in lines[0] and len(lines) == 3
    assert float(lines[2].split(",")[1]) > float(lines[1].split(",")[1])  # accuracy rose
    assert (output / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_and_predict_take_raw_images(trained_run, tmp_path):
    output, results = trained_run
    evaluated = predict.evaluate(output)
    assert evaluated["test_accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-6)
    assert evaluated["test_loss"] == pytest.approx(results["test_loss"], rel=1e-4)  # both plain cross-entropy
    assert "without label smoothing" in results["test_loss_kind"]

    from vit_keras.data import SAMPLE_PATH, load_npz

    _, (x_test, y_test) = load_npz(SAMPLE_PATH)
    paths = []
    for i in range(8):
        paths.append(str(tmp_path / f"digit{i}.png"))
        keras.utils.save_img(paths[-1], x_test[i][..., None], scale=False)
    predictions = predict.predict(output, paths, top_k=3)
    assert [len(p["top"]) for p in predictions] == [3] * 8
    for p in predictions:
        scores = [s for _, s in p["top"]]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    hits = sum(p["top"][0][0] == str(y) for p, y in zip(predictions, y_test[:8]))
    assert hits >= 5


class StopAfter(keras.callbacks.Callback):
    """Simulate a killed process: raise after `batches` batches of epoch `epoch` (0-based)."""

    def __init__(self, epoch, batches):
        super().__init__()
        self.epoch, self.batches, self.current = epoch, batches, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch + 1 == self.batches:
            raise KeyboardInterrupt("killed")


class EpochsSeen(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_a_killed_run_resumes_where_it_stopped(tmp_path, tiny_npz):
    """Interrupted mid-epoch 1: the rerun restarts epoch 1 from the backup of epoch 0's end."""
    output = tmp_path / "run"
    argv = QUICK + NO_XLA + SMALL + tiny_npz + ["--epochs", "3", "--steps-per-epoch", "4", "--val-fraction", "0.05"]
    argv += ["--output", str(output), "--quiet"]  # 4 full batches an epoch: one compiled batch shape
    with pytest.raises(KeyboardInterrupt):
        train.train(config_of(argv), callbacks=[StopAfter(epoch=1, batches=2)])
    assert (output / "backup").is_dir() and not (output / "results.json").exists()
    assert json.loads((output / "backup" / "backup.json").read_text())["epoch"] == 1
    assert json.loads((output / "state.json").read_text())["phase"] == "training"

    seen = EpochsSeen()
    results = train.train(config_of(argv), callbacks=[seen])
    assert seen.epochs == [1, 2]  # resumed in the interrupted epoch, not from scratch
    assert results["status"] == "finished"
    rows = (output / "metrics.csv").read_text().strip().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [0, 1, 2]
    model = keras.saving.load_model(output / "model.keras", compile=False)
    assert np.isfinite(keras.ops.convert_to_numpy(model.get_layer("head").kernel)).all()
    assert not (output / "backup").exists()
    assert json.loads((output / "state.json").read_text())["phase"] == "finished"


class ScriptedValLoss(keras.callbacks.Callback):
    """Report `losses[epoch]` as each epoch's validation loss; listed first, every later callback sees it."""

    def __init__(self, losses):
        super().__init__()
        self.losses = losses

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.losses[epoch]


def test_early_stopping_survives_a_resume(tmp_path, tiny_npz, monkeypatch):
    """Killed one epoch past the best, then killed after stopping early: stops where an uninterrupted run does."""
    losses = [2.0, 1.0, 1.5, 1.2, 0.5]  # best at epoch 1; patience 2 stops at epoch 3, before the last epoch improves

    make_callbacks = train.make_callbacks  # the trainer's callbacks see the scripted curve, early stopping included
    monkeypatch.setattr(train, "make_callbacks", lambda *args: [ScriptedValLoss(losses), *make_callbacks(*args)])

    def run(output, *callbacks):
        argv = QUICK + NO_XLA + SMALL + tiny_npz + ["--epochs", "5", "--steps-per-epoch", "4", "--val-fraction", "0.05"]
        argv += ["--dropout", "0"]  # no dropout: exactly resumable
        config = config_of(argv + ["--early-stopping", "2", "--output", str(output), "--quiet"])
        return train.train(config, callbacks=callbacks)

    def rows(output):
        return (output / "metrics.csv").read_text().strip().splitlines()

    reference = run(tmp_path / "reference")
    assert reference["epochs_run"] == 4
    output = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # killed mid-epoch 3: epochs 0-2 committed, one without improvement
        run(output, StopAfter(epoch=3, batches=2))
    seen = EpochsSeen()
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):  # killed after stopping early
        patch.setattr(train, "_evaluate", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt("killed")))
        run(output, seen)
    assert seen.epochs == [3]  # resumed in epoch 3 and stopped there
    assert json.loads((output / "state.json").read_text())["phase"] == "training"
    seen = EpochsSeen()
    results = run(output, seen)
    assert seen.epochs == [] and results["status"] == "finished" and results["epochs_run"] == 4
    assert rows(output)[0] == rows(tmp_path / "reference")[0]
    got, expected = (np.array([r.split(",") for r in rows(o)[1:]], float) for o in (output, tmp_path / "reference"))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    loss = rows(output)[0].split(",").index("loss")
    assert got[-1, loss] < got[0, loss]  # it learned while the scripted validation loss stalled


def test_a_run_killed_after_its_last_epoch_finishes_without_training(tmp_path, tiny_npz, monkeypatch):
    """No epoch is left to train: the rerun only evaluates (JAX and PyTorch still read a batch to build)."""
    output = tmp_path / "run"
    argv = QUICK + NO_XLA + SMALL + tiny_npz + ["--epochs", "1", "--steps-per-epoch", "3", "--val-fraction", "0"]
    argv += ["--output", str(output), "--quiet"]
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(train, "_evaluate", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt("killed")))
        train.train(config_of(argv))
    seen = EpochsSeen()
    results = train.train(config_of(argv), callbacks=[seen])
    assert seen.epochs == [] and results["status"] == "finished" and results["epochs_run"] == 1
    assert "test_accuracy" in json.loads((output / "results.json").read_text())


@pytest.mark.single_backend
def test_nan_loss_stops_the_run_and_keeps_the_last_good_model(tmp_path, tiny_npz):
    class Poison(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                kernel = self.model.get_layer("head").kernel
                kernel.assign(keras.ops.full(kernel.shape, float("nan")))

    output = tmp_path / "run"
    argv = QUICK + NO_XLA + tiny_npz + ["--epochs", "3", "--steps-per-epoch", "4", "--output", str(output), "--quiet"]
    results = train.train(config_of(argv), callbacks=[Poison()])
    assert results["status"] == "nan_loss" and results["epochs_run"] == 2
    for name in ("model.keras", "last.keras", "best.keras"):  # none holds the diverged epoch
        model = keras.saving.load_model(output / name, compile=False)
        assert np.isfinite(keras.ops.convert_to_numpy(model.get_layer("head").kernel)).all(), name
    rows = (output / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"] and "nan" in rows[2]
    assert "test_loss" not in json.loads((output / "results.json").read_text())


@pytest.mark.single_backend
def test_cli_train_quiet_prints_json_lines(tmp_path, capsys, tiny_npz):
    output = tmp_path / "cli"
    argv = ["train"] + QUICK + NO_XLA + tiny_npz + ["--epochs", "1", "--steps-per-epoch", "3", "--output", str(output)]
    argv += ["--quiet"]
    code, out, _ = run_cli(argv, capsys)
    assert code == 0
    assert "NaN" not in out and "Infinity" not in out
    records = [json.loads(line) for line in out.strip().splitlines()]  # stdout: JSON lines only
    assert records[0]["event"] == "start" and records[0]["picked"] == {"warmup": 0.1}
    assert records[1]["event"] == "epoch" and "val_accuracy" in records[1]
    assert records[-1]["event"] == "done" and records[-1]["output"] == str(output)
    code, out, _ = run_cli(argv, capsys)
    assert code == 0 and json.loads(out.splitlines()[0])["event"] == "already_finished"
    code, out, _ = run_cli(["evaluate", str(output)], capsys)
    assert code == 0 and json.loads(out)["test_examples"] == 128


@pytest.mark.single_backend
def test_cli_train_says_in_one_line_that_the_loss_diverged_and_exits_1(tmp_path, capsys, tiny_npz):
    argv = ["train"] + QUICK + NO_XLA + tiny_npz + ["--epochs", "2", "--steps-per-epoch", "3", "--lr", "1e30"]
    code, out, err = run_cli(argv + ["--output", str(tmp_path / "run"), "--quiet"], capsys)
    assert code == 1 and json.loads(out.strip().splitlines()[-1])["status"] == "nan_loss"
    (line,) = [line for line in err.splitlines() if line.startswith("vit-keras train:")]
    assert "loss became NaN or infinite in epoch 1" in line and "--lr below 1e+30" in line


class CompiledWith(keras.callbacks.Callback):
    """Records how the trainer compiled the model, then ends training after the first step
    (the flags are what is checked; further steps add nothing to the check)."""

    def on_train_begin(self, logs=None):
        self.jit_compile = self.model.jit_compile
        self.steps_per_execution = self.model.steps_per_execution

    def on_train_batch_end(self, batch, logs=None):
        self.model.stop_training = True


@pytest.mark.parametrize("choice", ["auto", "off"])
def test_jit_compile_and_steps_per_execution_reach_the_model(tmp_path, tiny_npz, choice):
    seen = CompiledWith()
    # One epoch of 4 full batches (one call of 4 steps) and no validation split: without XLA, JAX
    # runs every step and evaluation op by op, compiling each op for every new batch shape.
    argv = QUICK + SMALL + tiny_npz + ["--epochs", "1", "--steps-per-epoch", "4", "--val-fraction", "0"]
    argv += ["--jit-compile", choice, "--steps-per-execution", "4", "--output", str(tmp_path / "r"), "--quiet"]
    results = train.train(config_of(argv + ["--lr", "3e-3"]), callbacks=[seen])
    compiled = keras.backend.backend() in ("tensorflow", "jax")
    assert seen.jit_compile is (choice == "auto" and performance.pick_jit_compile(4)[0])
    assert seen.steps_per_execution == (4 if compiled else 1)  # Keras on PyTorch runs one step per call
    assert results["status"] == "finished" and np.isfinite(results["test_loss"])
    recorded = json.loads((tmp_path / "r" / "config.json").read_text())["xla"]
    assert recorded["jit_compile"] is seen.jit_compile and recorded["reason"]  # the run says what it compiled with


def test_cli_trains_a_conv_stem_model(tmp_path, tiny_npz):
    output = tmp_path / "stem"
    argv = QUICK + NO_XLA + SMALL + tiny_npz + ["--stem", "conv", "--patch-size", "4", "--epochs", "1"]
    argv += ["--steps-per-epoch", "2", "--val-fraction", "0.05", "--output", str(output), "--quiet"]
    results = train.train(config_of(argv))
    assert results["status"] == "finished" and np.isfinite(results["test_loss"])
    assert json.loads((output / "config.json").read_text())["model"]["stem"] == "conv"
    model = keras.saving.load_model(output / "model.keras", compile=False)
    assert model.stem == "conv" and model.get_layer("conv_stem").patch_size == 4


@pytest.mark.single_backend
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dataset", "imagenet-22k"], "dataset must be one of"),
        (["--dataset", "folder:/no/such/dir"], "folder /no/such/dir does not exist"),
        (["--image-size", "30"], "--image-size 30 is not divisible by the patch size 7"),
        (["--stem", "conv"], "stem='conv' needs a --patch-size that is a power of two"),
        # a mistyped path is named before the conv stem's misfit with checkpoints
        (["--preset", "vit_mnist_tiny", "--weights", "/no/such.npz"], "--weights must be an existing checkpoint"),
        (["--epochs", "0"], "--epochs must be a positive integer; found 0"),
        (["--steps-per-execution", "0"], "--steps-per-execution must be a positive integer; found 0"),
    ],
)
def test_cli_bad_input_fails_before_training(tmp_path, capsys, extra, message):
    code, _, err = run_cli(["train"] + QUICK + ["--output", str(tmp_path / "r")] + extra, capsys)
    assert code == 2 and message in err


@pytest.mark.single_backend
def test_a_dataset_image_size_the_patch_does_not_divide_is_named_with_the_dataset(tmp_path, capsys):
    from vit_keras import data as vdata

    (x_train, y_train), (x_test, y_test) = vdata.load_npz(vdata.SAMPLE_PATH)
    path = tmp_path / "cropped.npz"  # 26 x 26 digits: the preset's patch 4 does not divide them
    np.savez(
        path, x_train=x_train[:64, 1:-1, 1:-1], y_train=y_train[:64], x_test=x_test[:16, 1:-1, 1:-1], y_test=y_test[:16]
    )
    argv = ["train", "--dataset", f"npz:{path}", "--output", str(tmp_path / "r"), "--epochs", "1"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "the image size 26 (from the dataset's images (26 x 26)) is not divisible" in err, err
    assert "pass --image-size with a multiple of 4" in err and not (tmp_path / "r").exists()
    assert not (tmp_path / "r" / "metrics.csv").exists()


@pytest.mark.single_backend
def test_cli_evaluate_and_predict_bad_paths(tmp_path, capsys):
    code, _, err = run_cli(["evaluate", str(tmp_path / "missing")], capsys)
    assert code == 2 and "neither a run directory nor a .keras file" in err
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    code, _, err = run_cli(["predict", str(tmp_path / "model.keras"), "x.png"], capsys)
    assert code == 2 and "is not a .keras archive" in err and str(tmp_path / "model.keras") in err


@pytest.mark.single_backend
def test_plot_training_curves(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.2,0.6,1.0\n1,0.7,0.8,0.75,0.7\n")
    png = plot_training_curves(csv, tmp_path / "out" / "curves.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    with pytest.raises(FileNotFoundError, match="metrics_csv"):
        plot_training_curves(tmp_path / "none.csv", tmp_path / "x.png")


@pytest.mark.single_backend
def test_fine_tuning_from_pretrained_weights_with_a_frozen_backbone_in_bfloat16(tmp_path):
    from test_data import write_image_folder

    from vit_keras.pretrained import load_pretrained

    write_image_folder(tmp_path / "photos", per_class=8, size=(32, 32))
    checkpoint = str(pathlib.Path(__file__).parent / "fixtures" / "vit_parity" / "vit_google.npz")
    arch = [
        "--preset",
        "vit_ti16",
        "--image-size",
        "32",
        "--patch-size",
        "8",
        "--embed-dim",
        "48",
        "--depth",
        "2",
        "--num-heads",
        "3",
        "--mlp-dim",
        "96",
    ]
    output = tmp_path / "run"
    argv = (
        arch
        + NO_XLA
        + [
            "--dataset",
            f"folder:{tmp_path / 'photos'}",
            "--weights",
            checkpoint,
            "--freeze-backbone",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--lr",
            "1e-2",
            "--precision",
            "mixed_bfloat16",
            "--no-tensorboard",
            "--output",
            str(output),
            "--quiet",
        ]
    )
    results = train.train(config_of(argv))
    assert results["status"] == "finished" and "test_accuracy" not in results  # no test/ folder
    reference = ViT(image_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, mlp_dim=96, num_classes=2)
    load_pretrained(reference, checkpoint)
    tuned = keras.saving.load_model(output / "model.keras", compile=False)
    for name in ("patch_embedding", "encoder_block_1"):
        for got, want in zip(tuned.get_layer(name).weights, reference.get_layer(name).weights):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))
    config = json.loads((output / "config.json").read_text())
    assert config["args"]["precision"] == "mixed_bfloat16" and config["model"]["num_classes"] == 2
    # The SavedModel serves in float32 (full speed on every CPU), whatever the training precision.
    import tensorflow as tf

    as_float32 = ViT(**{**tuned.get_config(), "dtype": "float32"})
    as_float32.set_weights(tuned.get_weights())
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    loaded = tf.saved_model.load(results["saved_model"])
    served = loaded.signatures["serving_default"](images=tf.constant(images))["logits"].numpy()
    np.testing.assert_allclose(served, keras.ops.convert_to_numpy(as_float32(images)), rtol=1e-4, atol=1e-4)


@pytest.mark.single_backend
@pytest.mark.parametrize(
    "train_size, batch_size, epochs, warmup",
    [(900, 16, 18, 1.0), (9000, 128, 15, 1.0), (54000, 128, 5, 0.5), (100, 8, 50, None)],
)
def test_schedule_picked_from_the_dataset_size(train_size, batch_size, epochs, warmup):
    """A ~1,000-image folder gets 57 steps per epoch (not 8 at batch 128) and about 1,000 steps in all."""
    if warmup is None:
        with pytest.raises(ValueError, match="--warmup must be fewer epochs than --epochs"):
            train.pick_schedule(TrainConfig(warmup=60.0), train_size)
        picked = train.pick_schedule(TrainConfig(), train_size)
        assert (picked["batch_size"], picked["epochs"]) == (batch_size, epochs)  # 13 steps: the most epochs allowed
        return
    picked = train.pick_schedule(TrainConfig(), train_size)
    assert (picked["batch_size"], picked["epochs"], picked["warmup"]) == (batch_size, epochs, min(warmup, epochs / 10))
    assert picked["picked"] == ["batch_size", "epochs", "warmup"]
    assert picked["steps_per_epoch"] * picked["epochs"] >= 1000 or picked["epochs"] == 50
    given = train.pick_schedule(TrainConfig(batch_size=64, epochs=3, warmup=0.0), train_size)
    assert given["picked"] == [] and (given["batch_size"], given["epochs"], given["warmup"]) == (64, 3, 0.0)


@pytest.mark.single_backend
@pytest.mark.parametrize(
    "field, value, message",
    [
        ("label_smoothing", 2.0, "--label-smoothing must be a number in [0, 1); found 2.0."),
        ("label_smoothing", 1.0, "--label-smoothing must be a number in [0, 1); found 1.0."),
        ("lr", 0.0, "--lr must be a finite number > 0; found 0.0."),
        ("lr", float("nan"), "--lr must be a finite number > 0; found nan."),
        ("lr", float("inf"), "--lr must be a finite number > 0; found inf."),
        ("lr", 1e300, "--lr must be at most 3.403e+38, float32's largest number; found 1e+300."),
        ("clipnorm", 1e39, "--clipnorm must be at most 3.403e+38, float32's largest number; found 1e+39."),
        ("ema", 1.0, "--ema must be a momentum in (0, 1), e.g. 0.999; found 1.0."),
        ("layer_decay", 0.0, "--layer-decay must be a factor in (0, 1]; found 0.0."),
        ("mixup", -0.2, "--mixup must be a finite number >= 0; found -0.2."),
        ("cutmix", float("nan"), "--cutmix must be a finite number >= 0; found nan."),
        ("val_fraction", 1.0, "--val-fraction must be a number in [0, 1); found 1.0."),
        ("dropout", -0.1, "--dropout must be a number in [0, 1); found -0.1."),
        ("warmup", -1.0, "--warmup must be a finite number of epochs >= 0; found -1.0."),
        ("warmup", 5.0, "--warmup must be fewer epochs than --epochs (5); found 5.0."),
        ("epochs", 0, "--epochs must be a positive integer; found 0."),
        ("batch_size", 2.5, "--batch-size must be a positive integer; found 2.5."),
        ("steps_per_epoch", -3, "--steps-per-epoch must be a positive integer; found -3."),
        ("image_size", 30, "--image-size 30 is not divisible by the patch size 4"),
        ("early_stopping", -1, "--early-stopping must be an integer >= 0; found -1."),
        ("weight_decay", float("inf"), "--weight-decay must be a finite number >= 0; found inf."),
        ("precision", "float16", f"--precision must be one of {list(PRECISIONS)}"),
        ("preset", "seed", "--preset must be one of"),
        ("quiet", "yes", "--quiet must be True or False; found 'yes'."),
    ],
)
def test_train_config_checks_every_option_before_anything_is_written(tmp_path, field, value, message):
    config = TrainConfig(**{"epochs": 5, "output": str(tmp_path / "run"), field: value})
    with pytest.raises(ValueError) as error:
        train.train(config)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()
