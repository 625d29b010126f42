"""The trainer's set-up: `--precision auto` and the CPU threads (`vit_keras.performance`)."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import pytest

from vit_keras import cli, performance, train
from vit_keras.choices import PRECISIONS
from vit_keras.train_config import TrainConfig

REPO = pathlib.Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- --precision auto


def fake_hardware(monkeypatch, flags=(), gpu=None):
    """This process sees a CPU with `flags` and, when `gpu` is a (major, minor) capability, a GPU."""
    monkeypatch.setattr(performance, "cpu_flags", lambda: set(flags))
    monkeypatch.setattr(performance, "has_gpu", lambda: gpu is not None)
    monkeypatch.setattr(performance, "gpu_compute_capability", lambda: gpu or (0, 0))


@pytest.mark.single_backend
@pytest.mark.parametrize(
    "backend, flags, gpu, policy, because",
    [
        ("tensorflow", {"avx2", "fma"}, None, "float32", "CPU without avx512_bf16 or amx_bf16"),
        ("torch", {"avx2", "fma"}, None, "float32", "CPU without avx512_bf16 or amx_bf16"),
        ("tensorflow", {"avx512f", "avx512_bf16"}, None, "mixed_bfloat16", "TensorFlow on a CPU with avx512_bf16"),
        ("torch", {"avx512f", "avx512_bf16"}, None, "mixed_bfloat16", "torch on a CPU with avx512_bf16"),
        ("jax", {"amx_bf16", "amx_tile"}, None, "float32", "JAX on a CPU (with amx_bf16): XLA computes bfloat16"),
        ("tensorflow", {"avx2"}, (8, 0), "mixed_bfloat16", "GPU of compute capability 8.0"),
        ("jax", {"avx512_bf16"}, (7, 5), "float32", "GPU of compute capability 7.5: below 8.0"),
        ("torch", {"avx2"}, (9, 0), "mixed_bfloat16", "GPU of compute capability 9.0"),
    ],
)
def test_auto_precision_picks_bfloat16_only_where_it_was_measured_faster(
    monkeypatch, backend, flags, gpu, policy, because
):
    fake_hardware(monkeypatch, flags, gpu)
    picked, reason = performance.resolve_precision("auto", backend=backend)
    assert picked == policy and because in reason and reason.startswith("--precision auto: ")


@pytest.mark.single_backend
@pytest.mark.parametrize(
    "backend, width, policy, because",
    [
        ("tensorflow", 64, "float32", "tensorflow on a CPU with avx512_bf16, model width 64 (below 128)"),
        ("jax", 127, "float32", "JAX on a CPU (with avx512_bf16)"),
        ("tensorflow", 128, "mixed_bfloat16", "TensorFlow on a CPU with avx512_bf16"),
        ("jax", 192, "float32", "JAX on a CPU (with avx512_bf16): XLA computes bfloat16 products through float32"),
        ("torch", 64, "mixed_bfloat16", "torch on a CPU with avx512_bf16: native bfloat16"),
        ("tensorflow", None, "mixed_bfloat16", "TensorFlow on a CPU with avx512_bf16"),
    ],
)
def test_auto_precision_keeps_narrow_models_and_jax_in_float32_on_a_cpu(monkeypatch, backend, width, policy, because):
    fake_hardware(monkeypatch, {"avx512f", "avx512_bf16"})
    picked, reason = performance.resolve_precision("auto", backend=backend, width=width)
    assert (picked, because in reason) == (policy, True)
    assert performance.fast_precision(backend, width) == policy
    fake_hardware(monkeypatch, {"avx2"}, (8, 0))  # a GPU takes bfloat16 at any width
    assert performance.fast_precision(backend, 64) == "mixed_bfloat16"


def test_the_trainer_resolves_auto_precision_for_its_models_width(monkeypatch, tmp_path, capsys):
    fake_hardware(monkeypatch, {"avx512f", "avx512_bf16"})
    backend = keras.backend.backend()
    wide = "float32" if backend == "jax" else "mixed_bfloat16"  # JAX keeps float32 on a CPU
    for width, expected in ((100, "float32" if backend != "torch" else "mixed_bfloat16"), (128, wide)):
        argv = ["--preset", "vit_mnist_p7", "--embed-dim", str(width), "--epochs", "2", "--batch-size", "32"]
        argv += ["--steps-per-epoch", "2", "--no-tensorboard", "--no-export", "--quiet"]
        argv += ["--output", str(tmp_path / f"width{width}")]
        with pytest.raises(KeyboardInterrupt):
            train.train(cli.parse_train_config(argv), callbacks=[StopAtTrainBegin()])
        start = json.loads(capsys.readouterr().out.splitlines()[0])
        assert start["precision"] == expected and keras.mixed_precision.global_policy().name == expected
        narrow_on_tensorflow = backend == "tensorflow" and width == 100
        assert ("model width 100" in start["precision_reason"]) == narrow_on_tensorflow
        assert ("JAX on a CPU" in start["precision_reason"]) == (backend == "jax")


@pytest.mark.single_backend
@pytest.mark.parametrize("asked", [p for p in PRECISIONS if p != "auto"])
def test_an_explicit_precision_is_kept_on_any_hardware(monkeypatch, asked):
    fake_hardware(monkeypatch, {"avx512_bf16"}, (9, 0))
    assert performance.resolve_precision(asked, backend="torch") == (asked, "asked for with --precision")


@pytest.mark.single_backend
@pytest.mark.parametrize("bad", ["fp8", "", None, "AUTO"])
def test_resolve_precision_rejects_unknown_policies(bad):
    with pytest.raises(ValueError) as error:
        performance.resolve_precision(bad)
    message = str(error.value)
    assert message.startswith("precision must be one of ['auto',") and repr(bad) in message and "\n" not in message


@pytest.mark.single_backend
def test_auto_is_the_cli_default_and_the_help_states_the_rule(capsys):
    assert TrainConfig().precision == "auto" and cli.parse_train_config([]).precision == "auto"
    assert cli.parse_train_config(["--precision", "float32"]).precision == "float32"
    with pytest.raises(SystemExit) as done:
        cli.main(["train", "--help"])
    assert done.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps the line
    assert "auto: mixed_bfloat16 on a GPU of compute capability >= 8" in help_text
    assert "a CPU with AVX512_BF16/AMX (on TensorFlow and JAX for models of width >= 128;" in help_text
    assert "TensorFlow then trains without XLA), else float32 (default: auto)" in help_text


class StopAtTrainBegin(keras.callbacks.Callback):
    """Ends `fit` before its first step: the run directory has its config.json, nothing is trained."""

    def on_train_begin(self, logs=None):
        raise KeyboardInterrupt


@pytest.mark.single_backend
def test_the_run_records_the_resolved_precision_and_a_resume_must_match_it(monkeypatch, tmp_path, capsys):
    output = tmp_path / "run"
    argv = ["--preset", "vit_mnist_p7", "--epochs", "2", "--batch-size", "32", "--steps-per-epoch", "2"]
    argv += ["--no-tensorboard", "--no-export", "--quiet", "--output", str(output)]
    fake_hardware(monkeypatch, {"avx2"}, (8, 6))
    with pytest.raises(KeyboardInterrupt):
        train.train(cli.parse_train_config(argv), callbacks=[StopAtTrainBegin()])
    start = json.loads(capsys.readouterr().out.splitlines()[0])
    assert start["event"] == "start" and start["precision"] == "mixed_bfloat16"
    assert "GPU of compute capability 8.6" in start["precision_reason"]
    recorded = json.loads((output / "config.json").read_text())
    assert recorded["args"]["precision"] == "mixed_bfloat16"
    assert recorded["precision"] == {"policy": "mixed_bfloat16", "reason": start["precision_reason"]}

    fake_hardware(monkeypatch, {"avx2"})  # the same run resumed where auto means float32
    before = (output / "config.json").read_text()
    with pytest.raises(ValueError) as error:
        train.train(cli.parse_train_config(argv))
    message = str(error.value)
    assert "--precision auto (resolves to 'float32' here) (run has 'mixed_bfloat16')" in message
    assert "\n" not in message and (output / "config.json").read_text() == before

    with pytest.raises(KeyboardInterrupt):  # naming the recorded policy resumes it
        train.train(cli.parse_train_config(argv + ["--precision", "mixed_bfloat16"]), callbacks=[StopAtTrainBegin()])
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"


# ----------------------------------------------------------------------------- CPU threads

# A process whose main thread gets pinned to one CPU after its imports (as an OpenMP runtime binding
# its first thread does), before TensorFlow's first op; then a parallel matmul workload. It prints
# the threads started after the pinning: their allowed CPUs and the CPU seconds each spent.
PINNED_CHILD = textwrap.dedent(
    """
    import json, os, sys
    import tensorflow as tf
    from vit_keras import performance

    def threads():
        found = {}
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            found[tid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return found

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # a no-op for a child started on one CPU
    existing = set(os.listdir("/proc/self/task"))
    configured = performance.configure_cpu_threads() if sys.argv[1] == "configure" else None
    a = tf.random.uniform((1024, 1024))
    tf.linalg.matmul(a, a).numpy()  # the pools start here
    before = threads()
    for _ in range(10):
        tf.linalg.matmul(a, a).numpy()
    after = threads()
    started = {
        tid: {"cpus": sorted(os.sched_getaffinity(int(tid))), "seconds": after[tid] - before.get(tid, 0.0)}
        for tid in after
        if tid not in existing
    }
    print(json.dumps({"configured": configured, "threads": started}))
    """
)


def run_pinned_children(modes):
    """{name: the PINNED_CHILD report} for {name: (mode "configure" or "plain", the child's CPUs or None)}.

    The children run side by side; CPUs restrict the whole child from its start, as `taskset` does.
    """
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        env.pop(name, None)
    children = {
        name: subprocess.Popen(
            [sys.executable, "-c", PINNED_CHILD, mode],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=None if cpus is None else lambda cpus=cpus: os.sched_setaffinity(0, cpus),
        )
        for name, (mode, cpus) in modes.items()
    }
    reports = {}
    for mode, child in children.items():
        out, _ = child.communicate(timeout=300)
        assert child.returncode == 0, out
        reports[mode] = json.loads(out.strip().splitlines()[-1])
    return reports


@pytest.mark.single_backend
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs a process allowed on 2 or more CPUs")
def test_tensorflow_threads_run_on_all_cpus_after_the_main_thread_was_pinned():
    cpus = sorted(os.sched_getaffinity(0))
    reports = run_pinned_children(
        {"plain": ("plain", None), "configure": ("configure", None), "taskset": ("configure", {cpus[-1]})}
    )

    pinned = reports["plain"]["threads"]  # the failure mode: every new thread inherits the one CPU
    assert pinned and all(thread["cpus"] == [cpus[0]] for thread in pinned.values())

    configured = reports["configure"]
    assert configured["configured"]["cpus"] == cpus and configured["configured"]["widened_from"] == [cpus[0]]
    assert configured["configured"]["intra_op"] == len(cpus) == configured["configured"]["inter_op"]
    assert "widened from" in configured["configured"]["summary"]
    threads = configured["threads"].values()
    assert threads and all(thread["cpus"] == cpus for thread in threads)
    total = sum(thread["seconds"] for thread in threads)
    computing = [thread for thread in threads if thread["seconds"] >= 0.2 * total]
    assert len(computing) >= 2, configured["threads"]  # the matmuls ran on more than one thread

    restricted = reports["taskset"]  # a whole process started on one CPU (taskset -c N) keeps it
    assert restricted["configured"]["cpus"] == [cpus[-1]] and restricted["configured"]["widened_from"] is None
    assert f"1 of {os.cpu_count()} CPUs ({cpus[-1]})" in restricted["configured"]["summary"]
    assert all(thread["cpus"] == [cpus[-1]] for thread in restricted["threads"].values())
