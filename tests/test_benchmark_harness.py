"""scripts/benchmark.py: the numbers BENCHMARKS.md quotes come from here, so its plumbing is tested.

The harness starts its own worker processes; the end-to-end test times this run's backend
(KERAS_BACKEND), the rest is backend-independent plumbing.
"""

import importlib.util
import json
import subprocess
import sys

import keras
import pytest
from conftest import REPO


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("vit_benchmark", REPO / "scripts" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchmark = _load_benchmark()

# The tutorial model (vit_mnist_p7) at 28 px: 16 patches + class token, width 100, MLP 400, one block, 10 classes.
SEED_FORWARD_FLOPS = 2 * (
    16 * 7 * 7 * 1 * 100  # patch projection
    + 4 * 17 * 100 * 100
    + 2 * 17 * 17 * 100
    + 2 * 17 * 100 * 400  # attention projections, scores, MLP
    + 100 * 10  # head
)


def test_a_run_times_training_and_inference_with_flops_peak_fraction_and_a_markdown_row(tmp_path):
    backend = keras.backend.backend()
    markdown = tmp_path / "BENCH.md"
    command = [
        sys.executable,
        str(REPO / "scripts" / "benchmark.py"),
        "--preset",
        "vit_mnist_p7",
        "--image-size",
        "28",
        "--batch-size",
        "16",
        "--num-classes",
        "10",
        "--tasks",
        "train,infer",
        "--backends",
        backend,
        "--compare",
        "",
        "--repeats",
        "2",
        "--steps",
        "2",
        "--out",
        str(tmp_path),
        "--markdown",
        str(markdown),
        "--title",
        "harness test",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    (result_file,) = tmp_path.glob("benchmark-*.json")
    result = json.loads(result_file.read_text())
    assert result["matmul_peak_gflops"]["float32"] > 1.0
    assert result["matmul_peak_info"]["backend"] == "tensorflow"
    rows = {(row["backend"], row["task"]): row for row in result["rows"]}
    assert set(rows) == {(backend, "train"), (backend, "infer")}
    for (_, task), row in rows.items():
        assert row["repeats"] == 2
        assert row["images_per_s"] == pytest.approx(16 / (row["step_ms_median"] / 1e3))
        assert row["step_ms_min"] <= row["step_ms_median"] <= row["step_ms_max"]
        factor = 3 if task == "train" else 1
        assert row["gflops_per_image"] * 1e9 == pytest.approx(factor * SEED_FORWARD_FLOPS)
        assert (
            0
            < row["pct_f32_peak"]
            == pytest.approx(100 * row["achieved_gflops"] / result["matmul_peak_gflops"]["float32"])
        )
        assert row["info"]["backend"] == backend
    # Keras on PyTorch runs eagerly, one step per call; TensorFlow and JAX run XLA, 2 steps per call.
    expected = (False, 1) if backend == "torch" else (True, 2)
    info = rows[(backend, "train")]["info"]
    assert (info["jit_compile"], info["steps_per_execution"]) == expected

    text = markdown.read_text()
    assert "### harness test" in text and "--preset vit_mnist_p7" in text
    assert sum(line.startswith("| vit_keras ") for line in text.splitlines()) == 2
    (csv_file,) = tmp_path.glob("benchmark-*.csv")
    assert len(csv_file.read_text().strip().splitlines()) == 1 + 2


@pytest.mark.single_backend
def test_ratios_are_to_the_fastest_peer_of_the_same_task():
    def result(impl, task, step_s, backend="tensorflow"):
        spec = dict(impl=impl, task=task, backend=backend, precision="float32", batch_size=32)
        return dict(
            spec=spec,
            name=f"{impl} {task} {backend}",
            step_times=[step_s, step_s * 1.1, step_s * 0.9],
            loads=[0.0],
            peak_rss_mb=1.0,
            ready=dict(forward_flops=1e9, info={}),
        )

    results = [
        result("vit_keras", "train", 1.0),
        result("timm", "train", 2.0, "torch"),
        result("keras-hub", "train", 4.0),
        result("vit_keras", "savedmodel", 0.5),
        result("timm", "infer", 0.4, "torch"),
        result("keras-hub", "infer", 0.8),
    ]
    rows = {(r["impl"], r["task"]): r for r in benchmark.summarise(results, {"float32": 100.0}, None)}
    train = rows[("vit_keras", "train")]
    assert train["best_peer"] == "timm train torch"
    assert train["ratio_to_best_peer"] == pytest.approx(2.0)
    assert train["ratios"]["keras-hub train tensorflow"] == pytest.approx(4.0)
    assert train["achieved_gflops"] == pytest.approx(3 * 1e9 * 32 / 1.0 / 1e9)  # training = 3 x forward
    assert train["pct_f32_peak"] == pytest.approx(96.0)
    saved = rows[("vit_keras", "savedmodel")]  # exported model: compared with the peers' inference
    assert saved["best_peer"] == "timm infer torch"
    assert saved["ratio_to_best_peer"] == pytest.approx(0.8)


@pytest.mark.single_backend
def test_gpu_run_measures_vit_b16_in_bfloat16_against_compiled_timm():
    args = benchmark.parse_args(["--gpu", "--tasks", "train", "--compare", "timm"])
    specs = benchmark.job_specs(args)
    assert {s["preset"] for s in specs} == {"vit_b16"}
    assert {s["device"] for s in specs} == {"gpu"}
    assert {s["precision"] for s in specs} == {"mixed_bfloat16"}
    (timm,) = [s for s in specs if s["impl"] == "timm"]
    assert timm["torch_compile"] is True
    assert benchmark.label(timm).endswith("torch.compile")


@pytest.mark.single_backend
def test_gpu_peak_without_a_gpu_is_a_clear_error():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from bench.workloads import build_workload
    finally:
        sys.path.remove(str(REPO / "scripts"))
    import torch

    if torch.cuda.is_available():
        pytest.skip("this test is about machines without CUDA")
    with pytest.raises(RuntimeError, match="device 'gpu'.*torch.cuda.is_available"):
        build_workload(dict(impl="matmul", task="peak", device="gpu"))


@pytest.mark.single_backend
def test_unknown_peer_and_bad_counts_are_rejected_by_name(capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--compare", "timm,tensorflow-models"])
    assert "--compare" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--repeats", "0"])
    assert "--repeats must be >= 1; found 0" in capsys.readouterr().err
