"""Data-parallel and multi-worker training (vit_keras.distribute).

Several devices are simulated by splitting the CPU, several workers by processes on 127.0.0.1;
each run is a subprocess of tests/distribute_worker.py (on the current backend) because the
device layout must be fixed before TensorFlow or JAX starts. On torch, Keras has no distribution
engine: the same tests check that it is refused clearly.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import FAST_XLA_FLAGS

from vit_keras import distribute, runs
from vit_keras.distribute import parse_keras_cluster, parse_tf_config, setup_distribution

WORKER = os.path.join(os.path.dirname(__file__), "distribute_worker.py")
TIMEOUT = 240
single_backend = pytest.mark.single_backend


def child_env(backend, **extra):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    for name in ("TF_CONFIG", "XLA_FLAGS", *distribute.KERAS_ENV):
        env.pop(name, None)
    env.update(extra)
    env["XLA_FLAGS"] = f"{extra.get('XLA_FLAGS', '')} {FAST_XLA_FLAGS}".strip()
    return env


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(envs, command_for, log_dir):
    """Start `command_for(i)` once per env, wait for all (timeout), kill any left; return the exit codes."""
    processes = []
    try:
        for i, env in enumerate(envs):
            log = open(os.path.join(log_dir, f"worker{i}.log"), "ab")
            processes.append(subprocess.Popen(command_for(i), env=env, stdout=log, stderr=log))
            log.close()
        return [p.wait(timeout=TIMEOUT) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()


def logs(log_dir):
    return "\n".join(
        open(os.path.join(log_dir, name), errors="replace").read()[-3000:]
        for name in sorted(os.listdir(log_dir))
        if name.endswith(".log")
    )


# --- several devices on one machine ----------------------------------------------------------

BACKEND = keras.backend.backend()
TORCH_REFUSAL = "not available on the 'torch' backend"


def test_two_replicas_match_one_replica_at_the_same_global_batch(tmp_path):
    if BACKEND == "torch":  # Keras has no distribution engine for torch: a clear refusal
        with pytest.raises(ValueError, match=TORCH_REFUSAL):
            setup_distribution("data-parallel", global_batch=8)
        return
    out = tmp_path / "report.json"
    env = child_env(BACKEND, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    result = subprocess.run(
        [sys.executable, WORKER, "equivalence", "--out", str(out), "--epochs", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["backend"] == BACKEND
    assert report["num_replicas"] == 2 and report["per_device_batch"] == 4
    # Same global batch, same seed: same training up to float summation order.
    assert report["max_weight_diff"] < 1e-4, report
    np.testing.assert_allclose(report["parallel_loss"], report["single_loss"], rtol=1e-4)
    assert report["parallel_loss"][-1] < 0.9 * report["parallel_loss"][0], report
    # A global batch of 5 cannot be split over 2 replicas: refused before training.
    assert "global_batch must be divisible by the number of replicas (2)" in report["batch_error"]


# --- several workers as processes -------------------------------------------------------------


def cluster_envs(count):
    """Environments for `count` workers on 127.0.0.1 (free ports), for the current backend."""
    if BACKEND == "tensorflow":
        cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(count)]}
        return [
            child_env(BACKEND, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
            for i in range(count)
        ]
    address = f"127.0.0.1:{free_ports(1)[0]}"
    return [
        child_env(
            BACKEND,
            KERAS_DISTRIBUTION_JOB_ADDRESSES=address,
            KERAS_DISTRIBUTION_NUM_PROCESSES=str(count),
            KERAS_DISTRIBUTION_PROCESS_ID=str(i),
        )
        for i in range(count)
    ]


def two_worker_run(tmp_path, name, epochs, die_after_epoch=0):
    """Run two workers; each gets its own run dir (only the chief may create it), one shared backup."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)

    def args_for(i):
        args = [
            "--out",
            str(tmp_path / f"{name}{i}.json"),
            "--epochs",
            str(epochs),
            "--run-dir",
            str(tmp_path / f"run{i}"),
            "--backup-dir",
            str(tmp_path / "backup"),
        ]
        return args + (["--die-after-epoch", str(die_after_epoch)] if die_after_epoch else [])

    codes = run_workers(cluster_envs(2), lambda i: [sys.executable, WORKER, "worker", *args_for(i)], str(log_dir))
    return codes, logs(str(log_dir))


def read_reports(tmp_path, name):
    reports = [json.loads((tmp_path / f"{name}{i}.json").read_text()) for i in range(2)]
    weights = [np.load(tmp_path / f"{name}{i}.json.npz") for i in range(2)]
    return reports, [[w[k] for k in sorted(w.files, key=lambda k: int(k.split("_")[1]))] for w in weights]


def test_two_workers_train_identically_and_resume_from_the_chief_backup(tmp_path):
    if BACKEND == "torch":
        with pytest.raises(ValueError, match=TORCH_REFUSAL):
            setup_distribution("multi-worker", global_batch=8)
        return
    # First launch: both workers are lost after epoch 1 (the chief backed up epoch 1).
    codes, text = two_worker_run(tmp_path, "first", epochs=3, die_after_epoch=1)
    assert codes == [3, 3], text
    assert sorted(os.listdir(tmp_path / "backup")) == ["backup.json", "epoch-00001.weights.h5"]
    assert not (tmp_path / "run1").exists()
    # Relaunch: both resume at epoch 1 from the chief's backup and finish epochs 2 and 3.
    codes, text = two_worker_run(tmp_path, "second", epochs=3)
    assert codes == [0, 0], text
    reports, weights = read_reports(tmp_path, "second")
    assert [r["backend"] for r in reports] == [BACKEND, BACKEND]
    assert [r["is_chief"] for r in reports] == [True, False]
    assert all(r["num_replicas"] == 2 and r["num_workers"] == 2 for r in reports)
    assert all(r["epochs_run"] == [1, 2] for r in reports), reports
    assert reports[0]["loss"] == pytest.approx(reports[1]["loss"], rel=1e-5)
    assert reports[0]["loss"][-1] < reports[0]["loss"][0]
    assert len(weights[0]) == len(weights[1]) > 0
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # Only the chief wrote the run directory, and it removed the backup when training ended.
    assert sorted(os.listdir(tmp_path / "run0")) == ["final.weights.h5", "log.csv"]
    assert not (tmp_path / "run1").exists()
    assert not (tmp_path / "backup").exists()


def trainer_workers(tmp_path, count, *train_args):
    """`vit-keras train --distribute multi-worker` in `count` processes on 127.0.0.1; (exit codes, logs)."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "vit_keras.cli", "train", "--distribute", "multi-worker", *train_args]
    codes = run_workers(cluster_envs(count), lambda i: command, str(log_dir))
    return codes, logs(str(log_dir))


def test_trainer_workers_stop_early_together_then_evaluate_and_export(tmp_path):
    """`vit-keras train` in two workers: early stopping ends `fit` on both at the same epoch, then
    both evaluate and export (collective under a multi-worker strategy) and only the chief's files
    land in the run directory. A worker that trained on, or left, while the chief evaluated would
    meet it in mismatched collective ops."""
    if BACKEND == "torch":
        return  # no multi-worker engine on torch (test_torch_refuses_distribution_others_accept_it)
    # A learning rate too small to move a float32 weight, and no batch statistics (patch stem):
    # the validation loss repeats, so patience 1 stops training after its second epoch of 6.
    args = ["--preset", "vit_mnist_p7", "--lr", "1e-12", "--warmup", "0", "--early-stopping", "1"]
    args += ["--epochs", "6", "--steps-per-epoch", "2", "--batch-size", "64", "--augment", "none"]
    args += ["--jit-compile", "off", "--output", str(tmp_path / "run")]
    # TensorFlow's export runs under the strategy on every worker; on JAX it is a TensorFlow
    # subprocess per worker, tested single-process elsewhere, and would double this test's time.
    args += [] if BACKEND == "tensorflow" else ["--no-export"]
    codes, text = trainer_workers(tmp_path, 2, *args)
    assert codes == [0, 0], text
    assert text.count("Epoch 2/6") == 2 and "Epoch 3/6" not in text, text
    metrics = (tmp_path / "run" / runs.METRICS).read_text().splitlines()
    assert [line.split(",")[0] for line in metrics[1:]] == ["0", "1"], metrics
    results = json.loads((tmp_path / "run" / runs.RESULTS).read_text())
    assert results["status"] == "finished" and results["epochs_run"] == 2, results
    assert 0 <= results["test_accuracy"] <= 1, results
    assert (tmp_path / "run" / runs.SAVED_MODEL / "1").is_dir() is (BACKEND == "tensorflow")


# --- bad input, refused before anything is configured -----------------------------------------


@single_backend
@pytest.mark.parametrize("mode", ["data_parallel", "mirrored", "", None, 2])
def test_unknown_mode_is_refused(mode):
    with pytest.raises(ValueError, match=r"distribute must be one of \['none', 'data-parallel', 'multi-worker'\]"):
        setup_distribution(mode)


WORKERS = {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}


@single_backend
@pytest.mark.parametrize(
    "text, message",
    [
        (None, "needs TF_CONFIG"),
        ("", "needs TF_CONFIG"),
        ("{cluster: ", "must be valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), r"TF_CONFIG\['cluster'\] must be a non-empty object"),
        (json.dumps({"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}), "jobs must be among"),
        (json.dumps({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}), "non-empty list"),
        (
            json.dumps({"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}),
            "'host:port'; found 'localhost'",
        ),
        (json.dumps({"cluster": WORKERS}), r"TF_CONFIG\['task'\] must be an object"),
        (
            json.dumps({"cluster": WORKERS, "task": {"type": "chief", "index": 0}}),
            r"\['task'\]\['type'\] must be one of",
        ),
        (
            json.dumps({"cluster": WORKERS, "task": {"type": "worker", "index": 2}}),
            r"must be an integer in \[0, 2\).*found 2",
        ),
        (json.dumps({"cluster": WORKERS, "task": {"type": "worker", "index": "0"}}), r"found '0'"),
    ],
)
def test_malformed_tf_config_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_tf_config(text)


@single_backend
def test_tf_config_roles():
    config = parse_tf_config(json.dumps({"cluster": WORKERS, "task": {"type": "worker", "index": 1}}))
    assert distribute._tf_config_role(config) == (False, 1, 2)
    with_chief = {"chief": ["127.0.0.1:2221"], **WORKERS}
    config = parse_tf_config(json.dumps({"cluster": with_chief, "task": {"type": "chief", "index": 0}}))
    assert distribute._tf_config_role(config) == (True, 0, 3)
    config = parse_tf_config(json.dumps({"cluster": with_chief, "task": {"type": "worker", "index": 0}}))
    assert distribute._tf_config_role(config) == (False, 1, 3)


@single_backend
@pytest.mark.parametrize(
    "values, message",
    [
        ((None, "2", "0"), "needs KERAS_DISTRIBUTION_JOB_ADDRESSES"),
        (("127.0.0.1:1234", None, "0"), "needs KERAS_DISTRIBUTION_NUM_PROCESSES"),
        (("127.0.0.1", "2", "0"), "must be 'host:port' of process 0"),
        (("127.0.0.1:1234", "two", "0"), "must be integers"),
        (("127.0.0.1:1234", "0", "0"), "must be a positive integer; found 0"),
        (("127.0.0.1:1234", "2", "2"), r"must be in \[0, 2\); found 2"),
    ],
)
def test_malformed_jax_cluster_is_refused(values, message, monkeypatch):
    for name in distribute.KERAS_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match=message):
        parse_keras_cluster(*values)


@single_backend
def test_jax_cluster_from_environment(monkeypatch):
    monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "10.0.0.1:1234,10.0.0.2:1234")
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
    assert parse_keras_cluster() == ("10.0.0.1:1234", 2, 1)


@single_backend
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"per_device_batch": 8, "global_batch": 16}, "not both"),
        ({"global_batch": 0}, "global_batch must be a positive integer; found 0"),
        ({"per_device_batch": 2.5}, "per_device_batch must be a positive integer"),
    ],
)
def test_bad_batch_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        setup_distribution("none", **kwargs)


def test_single_device_plan_and_learning_rate_rule():
    plan = setup_distribution("none", global_batch=64)
    assert (plan.num_replicas, plan.per_device_batch, plan.global_batch, plan.is_chief) == (1, 64, 64, True)
    assert plan.scale_learning_rate(1e-3) == pytest.approx(1e-3)
    eight = distribute.DistributionPlan(num_replicas=8, per_device_batch=32)
    assert eight.scale_learning_rate(1e-3) == pytest.approx(8e-3)
    assert distribute.DistributionPlan(num_replicas=8, per_device_batch=32).global_batch == 256


def test_torch_refuses_distribution_others_accept_it():
    import keras

    if keras.backend.backend() == "torch":
        with pytest.raises(ValueError, match="not available on the 'torch' backend"):
            setup_distribution("data-parallel", per_device_batch=8)
    else:
        plan = setup_distribution("data-parallel", per_device_batch=8)
        assert plan.num_replicas >= 1 and plan.global_batch == 8 * plan.num_replicas
        with plan.scope():
            import keras

            layer = keras.layers.Dense(2)
            layer.build((None, 3))
        setup_distribution("none")


@single_backend
def test_jax_multi_worker_shard_splits_each_global_batch_evenly():
    import tensorflow as tf

    # 22 examples, global batch 8 over 2 workers: 2 full global batches, the partial one dropped.
    dataset = tf.data.Dataset.range(22).map(lambda i: (i, -i)).batch(8)
    parts = []
    for index in range(2):
        plan = distribute.DistributionPlan(
            mode="multi-worker",
            num_replicas=2,
            per_device_batch=4,
            distribution=object(),
            num_workers=2,
            worker_index=index,
        )
        parts.append([(x.numpy().tolist(), y.numpy().tolist()) for x, y in plan.shard(dataset)])
    assert parts[0] == [([0, 1, 2, 3], [0, -1, -2, -3]), ([8, 9, 10, 11], [-8, -9, -10, -11])]
    assert parts[1] == [([4, 5, 6, 7], [-4, -5, -6, -7]), ([12, 13, 14, 15], [-12, -13, -14, -15])]
    one_process = distribute.DistributionPlan(num_replicas=2, per_device_batch=4, distribution=object())
    assert [len(x) for x, _ in one_process.shard(dataset)] == [8, 8]


@single_backend
def test_only_the_chief_writes(tmp_path):
    chief = distribute.DistributionPlan(is_chief=True)
    other = distribute.DistributionPlan(is_chief=False, worker_index=1)
    target = str(tmp_path / "run" / "model.keras")
    assert chief.output_path(target) == target
    scratch = other.output_path(target)
    assert os.path.basename(scratch) == "model.keras" and not scratch.startswith(str(tmp_path))
    assert os.path.isdir(os.path.dirname(scratch))
    assert other.output_path(str(tmp_path / "x.h5")).startswith(os.path.dirname(scratch))
    callback = other.backup_callback(str(tmp_path / "backup"))
    assert isinstance(callback, runs.RunBackup) and not callback.is_chief
    callback.on_epoch_end(0, {"loss": 1.0})  # a non-chief backup writes nothing (no model needed to prove it)
    assert not (tmp_path / "backup").exists()


@single_backend
def test_cli_refuses_an_unknown_distribute_mode(capsys):
    from vit_keras import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["train", "--distribute", "mirrored"])
    assert exit_info.value.code == 2
    assert "--distribute: invalid choice: 'mirrored'" in capsys.readouterr().err
