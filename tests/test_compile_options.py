"""`--jit-compile`: "auto" compiles with XLA on TensorFlow only for runs long enough to pay for the
compile (`vit_keras.performance.pick_jit_compile`), always on JAX, never on PyTorch; "on" / "off"
are kept (`vit_keras.train.compile_options`); the trainer compiles as decided and says so."""

import json
import re

import keras
import numpy as np
import pytest
from conftest import sample_subset_dataset

from vit_keras import cli, performance, train
from vit_keras.train_config import TrainConfig

BACKEND = keras.backend.backend()
LEAST = performance.XLA_MIN_TRAINING_STEPS
# Plumbing runs: the tutorial model made smaller, 4 batches of 64 per epoch, no validation split.
QUICK = ["--preset", "vit_mnist_p7", "--embed-dim", "16", "--mlp-dim", "32", "--augment", "none"]
QUICK += ["--batch-size", "64", "--steps-per-epoch", "4", "--val-fraction", "0", "--no-tensorboard", "--no-export"]


def xla_expected(training_steps):
    """What "auto" gives on this backend for a run of `training_steps` optimizer steps."""
    return {"tensorflow": training_steps >= LEAST, "jax": True, "torch": False}[BACKEND]


# ----------------------------------------------------------------------------- the rule


@pytest.mark.single_backend
@pytest.mark.parametrize("steps", [1, 40, LEAST - 1, LEAST, LEAST + 1, 100_000])
def test_tensorflow_compiles_from_the_threshold_on(steps):
    xla, reason = performance.pick_jit_compile(steps, backend="tensorflow")
    assert xla is (steps >= LEAST)
    assert reason.startswith(f"{steps:,} training steps {'>=' if xla else '<'} {LEAST}, ")


@pytest.mark.single_backend
@pytest.mark.parametrize("steps", [1, LEAST - 1, LEAST, 100_000])
def test_jax_always_compiles_and_pytorch_never(steps):
    assert performance.pick_jit_compile(steps, backend="jax") == (
        True,
        "JAX runs its steps several times slower without XLA",
    )
    xla, reason = performance.pick_jit_compile(steps, backend="torch")
    assert xla is False and reason.startswith("PyTorch runs eagerly")


@pytest.mark.single_backend
@pytest.mark.parametrize("precision", ["mixed_bfloat16", "bfloat16"])
def test_tensorflow_trains_bfloat16_on_the_cpu_without_xla(monkeypatch, precision):
    monkeypatch.setattr(performance, "has_gpu", lambda: False)
    xla, reason = performance.pick_jit_compile(100_000, backend="tensorflow", precision=precision)
    assert xla is False and reason.startswith("XLA computes bfloat16 in float32 on the CPU")
    assert performance.pick_jit_compile(100_000, backend="tensorflow", precision="float32")[0] is True
    assert performance.pick_jit_compile(100_000, backend="jax", precision=precision)[0] is True
    monkeypatch.setattr(performance, "has_gpu", lambda: True)  # XLA's GPU dots run bfloat16 natively
    assert performance.pick_jit_compile(100_000, backend="tensorflow", precision=precision)[0] is True


@pytest.mark.single_backend
@pytest.mark.parametrize("bad", [0, -3, 2.5, "300", None, True])
def test_pick_jit_compile_rejects_bad_step_counts(bad):
    with pytest.raises(ValueError, match=re.escape(f"training_steps must be a positive int; found {bad!r}.")):
        performance.pick_jit_compile(bad, backend="tensorflow")


@pytest.mark.parametrize("steps", [4, LEAST - 1, LEAST, 10 * LEAST])
def test_auto_follows_the_run_length_on_this_backend(steps):
    options, reason = train.compile_options(TrainConfig(steps_per_execution=4), steps)
    assert options["jit_compile"] is xla_expected(steps)
    assert reason == f"--jit-compile auto: {performance.pick_jit_compile(steps)[1]}"
    # Steps per execution do not depend on XLA: TensorFlow runs them in one graph call without it too.
    assert options["steps_per_execution"] == (1 if BACKEND == "torch" else 4)


@pytest.mark.parametrize("steps", [4, LEAST, 10 * LEAST])
@pytest.mark.parametrize("choice", ["on", "off"])
def test_explicit_on_and_off_ignore_the_run_length(choice, steps):
    options, reason = train.compile_options(TrainConfig(jit_compile=choice, steps_per_execution=4), steps)
    assert options == {"jit_compile": choice == "on", "steps_per_execution": 1 if BACKEND == "torch" else 4}
    assert reason == "asked for with --jit-compile"


# ----------------------------------------------------------------------------- the trainer


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory):
    """`--dataset npz:PATH` of 256 train + 64 test digits from the bundled sample."""
    return sample_subset_dataset(tmp_path_factory.mktemp("compile") / "digits.npz", train=256, test=64)


class CompiledWith(keras.callbacks.Callback):
    """Records `model.jit_compile` as `fit` starts, then ends training after the first step (the
    flag is what is checked; the planned run length is what decides it)."""

    def on_train_begin(self, logs=None):
        self.jit_compile = self.model.jit_compile

    def on_train_batch_end(self, batch, logs=None):
        self.model.stop_training = True


def train_with(argv):
    """(results, the `CompiledWith` of the run) of `vit-keras train ARGV`."""
    seen = CompiledWith()
    config = cli.train_config(cli.build_parser().parse_args(["train", *argv]))
    return train.train(config, callbacks=[seen]), seen


def test_a_short_run_compiles_as_decided_and_prints_why(tmp_path, small_npz, capsys):
    steps = 4  # 1 epoch of 4 steps
    results, seen = train_with(QUICK + small_npz + ["--epochs", "1", "--output", str(tmp_path / "r")])
    out = capsys.readouterr().out.splitlines()
    xla, reason = performance.pick_jit_compile(steps)
    assert seen.jit_compile is xla is xla_expected(steps)
    assert f"XLA: {'on' if xla else 'off'} (--jit-compile auto: {reason})" in out
    precision = next(i for i, line in enumerate(out) if line.startswith("Precision: "))
    assert out[precision + 1].startswith("XLA: ")  # beside the trainer's other picked settings
    assert results["status"] == "finished" and np.isfinite(results["test_loss"])


def test_a_long_bfloat16_run_on_a_tensorflow_cpu_compiles_without_xla(tmp_path, small_npz, capsys, monkeypatch):
    """100 epochs of 4 steps is long enough for XLA in float32, but bfloat16 on a CPU runs without it
    on TensorFlow (the run is ended after its first step: the compile flag is what is checked)."""
    monkeypatch.setattr(performance, "has_gpu", lambda: False)
    argv = QUICK + small_npz + ["--epochs", "100", "--precision", "mixed_bfloat16", "--output", str(tmp_path / "r")]
    results, seen = train_with(argv)
    out = capsys.readouterr().out.splitlines()
    assert seen.jit_compile is {"tensorflow": False, "jax": True, "torch": False}[BACKEND]
    if BACKEND == "tensorflow":
        assert "XLA: off (--jit-compile auto: XLA computes bfloat16 in float32 on the CPU; " in "\n".join(out)
    assert results["status"] == "finished"


def test_the_whole_run_length_decides_and_reaches_the_start_event(tmp_path, small_npz, capsys, monkeypatch):
    """epochs x steps per epoch go to the rule, not the steps of one epoch; its answer reaches
    `model.compile` and the `--quiet` start event. The rule is stood in for: no TensorFlow XLA
    compile for a 12-step run, and JAX keeps XLA (its eager steps are the slow ones)."""
    asked, xla = [], BACKEND == "jax"

    def rule(training_steps, precision):
        asked.append((training_steps, precision))
        return xla, "stand-in"

    monkeypatch.setattr(train, "pick_jit_compile", rule)
    argv = QUICK + small_npz + ["--epochs", "3", "--output", str(tmp_path / "r"), "--quiet"]
    results, seen = train_with(argv)
    start = json.loads(capsys.readouterr().out.splitlines()[0])
    assert asked == [(3 * 4, start["precision"])] and start["epochs"] * start["steps_per_epoch"] == 3 * 4
    assert seen.jit_compile is xla
    assert start["event"] == "start"
    assert (start["jit_compile"], start["jit_compile_reason"]) == (xla, "--jit-compile auto: stand-in")
    assert results["status"] == "finished"
