"""scripts/benchmark.py: the numbers BENCHMARKS.md quotes come from here, so its plumbing is tested.

The harness starts its own worker processes, one per Keras backend whichever backend pytest runs
under: the end-to-end tests read one small run of it (the `harness_run` fixture); the others call its
functions directly.
No test needs timm or keras-hub: the peers' rows are checked on synthetic timings.
"""

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import threading
import time

import pytest
from conftest import REPO, benchmark_script

benchmark = benchmark_script()  # puts scripts/ on sys.path: the bench package imports below
from bench import cpu_use, outputs  # noqa: E402
from bench.machine import cpu_description  # noqa: E402
from bench.micro import median_seconds, parse_repeats  # noqa: E402
from bench.report import paired_ratios, summarise_tf_repeats  # noqa: E402
from bench.specs import group_key, label  # noqa: E402
from bench.tables import config_table, markdown_section, tf_repeats_table  # noqa: E402

# The tutorial model (vit_mnist_p7) at 28 px: 16 patches + class token, width 100, MLP 400, one block, 10 classes.
SEED_FORWARD_FLOPS = 2 * (
    16 * 7 * 7 * 1 * 100  # patch projection
    + 4 * 17 * 100 * 100
    + 2 * 17 * 17 * 100
    + 2 * 17 * 100 * 400  # attention projections, scores, MLP
    + 100 * 10  # head
)


BACKENDS = ("tensorflow", "jax", "torch")
TITLE = "harness test"
BATCH = 4


@pytest.fixture(scope="module")
def harness_run(tmp_path_factory):
    """One small run of scripts/benchmark.py, shared by the end-to-end tests below.

    It trains the tutorial model on every Keras backend (a worker process each), serves its
    exported SavedModel, runs the TensorFlow training worker once more in a fresh process and
    compares with timm, hidden from the workers so that theirs fail to start and the run carries
    on without them. The Markdown goes into a file that already holds a section of the same title
    and day, followed by another section.

    Returns:
        dict with `result` (the run's JSON), `markdown` (the file's text after the run), `csv` (the
        CSV file's lines), `stdout`, `out` (the run's folder) and `date` (the section's day).
    """
    out = tmp_path_factory.mktemp("benchmark")
    hidden = tmp_path_factory.mktemp("no_timm")
    (hidden / "timm.py").write_text('raise ImportError("timm is hidden from this test")\n')
    markdown = out / "BENCH.md"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    markdown.write_text(f"# Benchmarks\n\n### {TITLE} ({date})\n\nold table\n\n## Known limits\n\nkept\n")
    command = [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--backends", ",".join(BACKENDS)]
    command += (
        f"--preset vit_mnist_p7 --image-size 28 --batch-size {BATCH} --num-classes 10 --tasks train,serve".split()
    )
    command += "--compare timm --repeats 1 --steps 2 --latency-calls 3 --tf-repeats 1 --tf-control timm".split()
    command += ["--title", TITLE, "--out", str(out), "--markdown", str(markdown)]
    python_path = os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=python_path)  # the workers inherit it: `import timm` fails there
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (result_file,) = out.glob("benchmark-*.json")
    (csv_file,) = out.glob("benchmark-*.csv")
    return dict(
        result=json.loads(result_file.read_text()),
        markdown=markdown.read_text(),
        csv=csv_file.read_text().strip().splitlines(),
        stdout=run.stdout,
        out=out,
        date=date,
    )


def _assert_measured(row, result):
    """A row's numbers follow from its step times, the model's FLOPs and the run's matmul peak."""
    assert row["repeats"] == 1  # --repeats 1
    assert row["images_per_s"] == pytest.approx(BATCH / (row["step_ms_median"] / 1e3))
    assert row["step_ms_min"] <= row["step_ms_median"] <= row["step_ms_max"]
    factor = 3 if row["task"] == "train" else 1
    assert row["gflops_per_image"] * 1e9 == pytest.approx(factor * SEED_FORWARD_FLOPS)
    peak = result["matmul_peak_gflops"]["float32"]
    assert 0 < row["pct_f32_peak"] == pytest.approx(100 * row["achieved_gflops"] / peak)
    assert row["info"]["backend"] == row["backend"]
    assert 0 < row["parallelism"] <= 2 * result["machine"]["cores"]  # process CPU time / timed wall time
    assert row["busy_threads"] is None or row["busy_threads"] >= 1  # None: under 5 clock ticks of CPU time


@pytest.mark.single_backend  # one run spawns a worker per Keras backend, whichever backend pytest runs under
def test_a_run_trains_on_every_backend_and_serves_with_flops_and_peak_fraction(harness_run):
    result = harness_run["result"]
    assert result["matmul_peak_gflops"]["float32"] > 1.0
    assert result["matmul_peak_info"]["backend"] == "tensorflow"
    rows = {(row["impl"], row["backend"], row["task"]): row for row in result["rows"]}
    assert set(rows) == {("vit_keras", b, "train") for b in BACKENDS} | {("vit_keras", "tensorflow", "serve")}
    for row in rows.values():
        _assert_measured(row, result)


@pytest.mark.single_backend
def test_tensorflow_and_jax_train_with_xla_two_steps_per_call_and_torch_eagerly(harness_run):
    rows = {(row["backend"], row["task"]): row for row in harness_run["result"]["rows"]}
    # Keras on PyTorch runs eagerly, one step per call; TensorFlow and JAX run XLA, 2 steps per call.
    for backend in BACKENDS:
        expected = (False, 1) if backend == "torch" else (True, 2)
        info = rows[(backend, "train")]["info"]
        assert (info["jit_compile"], info["steps_per_execution"]) == expected
    serve = rows[("tensorflow", "serve")]["info"]
    assert (serve["exported_with_xla"], serve["signature"]) == (True, "serving_default")


@pytest.mark.single_backend
def test_serving_reports_the_batch_1_latency_of_the_savedmodel(harness_run):
    (serve,) = [row for row in harness_run["result"]["rows"] if row["task"] == "serve"]
    assert serve["latency_calls"] == 3 and 0 < serve["latency_ms_median"] <= serve["latency_ms_p90"]
    assert all("latency_calls" not in row for row in harness_run["result"]["rows"] if row["task"] == "train")


@pytest.mark.single_backend
def test_a_tensorflow_repeat_reruns_the_training_worker_in_a_fresh_process(harness_run):
    result = harness_run["result"]
    (run,) = result["tf_rows"]
    assert result["tf_name"] == "vit_keras train tensorflow float32 jit=true spe=2"
    assert (run["tf_repeat"], run["name"]) == (1, f"tf repeat 1: {result['tf_name']}")
    assert (run["task"], run["info"]["jit_compile"], run["info"]["steps_per_execution"]) == ("train", True, 2)
    _assert_measured(run, result)
    assert [path.name for path in harness_run["out"].glob("logs-*/tf-repeat-*.log")] == ["tf-repeat-1.log"]
    assert [path.name for path in harness_run["out"].glob("logs-*/tf-control-*.log")] == ["tf-control-1.log"]
    assert run["matmul_f32_gflops"] > 1.0  # the machine's float32 matmul rate, timed beside the run
    assert run["images_per_s_per_tflops"] == pytest.approx(1e3 * run["images_per_s"] / run["matmul_f32_gflops"])
    assert len(result["tf_raw"][0]["matmul_gflops"]) == 1  # one per timed repeat (--repeats 1)
    assert run["control_images_per_s"] is None and run["over_control"] is None  # the control (timm) failed
    assert [(r["run"], r["control"], "error" in r) for r in result["tf_raw"]] == [(1, False, False), (1, True, True)]
    assert result["tf_spread"] is None and set(result["tf_spreads"].values()) == {None}  # spreads need two runs
    assert "Spread over the runs (max / min images/s): —×; of images/s over the machine's" in harness_run["markdown"]


@pytest.mark.single_backend
def test_a_peer_that_fails_to_start_is_reported_and_the_run_carries_on(harness_run):
    result = harness_run["result"]
    peers, control = ["timm train torch float32", "timm serve torch float32"], "timm train torch float32"
    assert [name for name, _ in result["errors"]] == peers + [control]  # the --tf-control process too
    assert all("Error" in error for _, error in result["errors"])  # the worker's exception, by type
    assert all(row["ratios"] == {} and "best_peer" not in row for row in result["rows"])  # no peer measured
    for name, error in result["errors"]:
        assert f"Not measured: {name}: {error}" in harness_run["markdown"]


@pytest.mark.single_backend
def test_the_markdown_section_of_the_same_title_and_day_is_replaced_in_place(harness_run):
    text, heading = harness_run["markdown"], f"### {TITLE} ({harness_run['date']})"
    assert text.startswith(f"# Benchmarks\n\n{heading}\n\n") and text.count(heading) == 1 and "old table" not in text
    assert text.endswith("\n## Known limits\n\nkept\n") and "replaced the section in" in harness_run["stdout"]
    assert "--preset vit_mnist_p7" in text
    assert f"Machine: {harness_run['result']['machine']['model']}" in text and "avx512_bf16" in text and "amx" in text
    assert (
        f"#### vit_mnist_p7, 28 px, batch {BATCH}: training" in text
        and "| vit_keras serve tensorflow float32 jit=true |" in text
    )
    assert "#### TensorFlow run to run: 1 fresh processes of `vit_keras train tensorflow float32" in text
    assert sum(line.startswith("| vit_keras ") for line in text.splitlines()) == len(BACKENDS) + 1
    header, *lines = harness_run["csv"]
    assert len(lines) == len(BACKENDS) + 1 + 1 and "latency_ms_p90" in header and "tf_repeat" in header


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
    args = benchmark.parse_args(["--gpu", "--tasks", "train,serve", "--compare", "timm"])
    specs = benchmark.job_specs(args)
    assert sorted(label(s) for s in specs if s["task"] == "serve") == [
        "timm serve torch mixed_bfloat16 autocast torch.compile",
        "vit_keras serve tensorflow mixed_bfloat16 jit=true",
    ]
    specs = [s for s in specs if s["task"] == "train"]
    assert {s["preset"] for s in specs} == {"vit_b16"}
    assert {s["device"] for s in specs} == {"gpu"}
    assert {s["precision"] for s in specs} == {"mixed_bfloat16"}
    (timm,) = [s for s in specs if s["impl"] == "timm"]
    assert timm["torch_compile"] is True
    assert label(timm).endswith("torch.compile")


@pytest.mark.single_backend
def test_gpu_peak_without_a_gpu_is_a_clear_error():
    import torch
    from bench.workloads import build_workload

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


def _full_run_args():
    """The full-run command of scripts/benchmark.py's docstring, parsed."""
    doc = benchmark.__doc__
    block = doc[doc.index("python scripts/benchmark.py") :].split("\n\n")[0]
    argv = shlex.split(block.replace("\\\n", " "))[2:]
    return benchmark.parse_args(argv)


@pytest.mark.single_backend
def test_the_documented_full_run_measures_every_comparison():
    args = _full_run_args()
    groups = {}
    for spec in benchmark.job_specs(args):
        groups.setdefault(group_key(spec), []).append(label(spec))
    ours = {f"vit_keras train {b} {{}} jit={j} spe={s}" for b, j, s in [("tensorflow", "true", 2), ("jax", "true", 2)]}
    ours.add("vit_keras train torch {} jit=false spe=1")
    assert set(groups[(0, "train", "float32")]) == {o.format("float32") for o in ours} | {
        "timm train torch float32",
        "keras-hub train tensorflow float32",
        "keras-hub train jax float32",
    }
    bf16 = set(groups[(0, "train", "mixed_bfloat16")])
    assert bf16 == {o.format("mixed_bfloat16") for o in ours} | {"timm train torch mixed_bfloat16 autocast"}
    assert groups[(0, "serve", "float32")] == [
        "vit_keras serve tensorflow float32 jit=true",
        "timm serve torch float32",
    ]
    tutorial = args.sections[1]
    assert (tutorial["preset"], tutorial["image_size"], tutorial["batch_size"], tutorial["num_classes"]) == (
        "vit_mnist_p7",
        28,
        128,
        10,
    )
    assert "timm train torch float32" in groups[(1, "train", "float32")]
    assert "vit_keras train tensorflow float32 jit=true spe=10" in groups[(1, "train", "float32")]
    assert args.sections[0]["preset"] == "vit_ti16" and args.sections[0]["batch_size"] == 32
    assert args.tf_repeats == 3 and args.markdown == "BENCHMARKS.md"


@pytest.mark.single_backend
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "preset=vit_ti16,size=3"], "--model takes key=value pairs"),
        (["--model", "batch_size=x"], "--model batch_size must be an integer; found 'x'"),
        (["--model", "tasks=train+fly"], "tasks must be among"),
        (["--model", "steps=0"], "steps must be >= 1; found 0"),
        (["--tasks", "train,serving"], "--tasks/--steps: tasks must be among"),
        (["--precisions", "float16"], "--precisions takes names from ['float32', 'mixed_bfloat16']; found 'float16'"),
        (["--keras-hub-backends", "cntk"], "--keras-hub-backends takes names from"),
        (["--tf-repeats", "-1"], "--tf-repeats must be >= 0; found -1"),
        (["--tf-control", "timm"], "--tf-control timm needs --tf-repeats N >= 1; found --tf-repeats 0"),
        (["--latency-calls", "0"], "--latency-calls must be >= 1; found 0"),
        (["--markdown", "/no/such/folder/B.md"], "--markdown must be in an existing folder; found no folder"),
        (["--out", __file__], "--out must be a folder (created if missing); found a file at"),
        (["--model", "dropout=1.5"], "--model 'dropout=1.5': dropout must be a rate in [0, 1); found 1.5"),
        (["--model", "preset=vit_ti16,dropout=-0.5"], "dropout must be a rate in [0, 1); found -0.5"),
        (["--model", "dropout=x"], "--model dropout must be a number; found 'x' in 'dropout=x'"),
        (["--dropout", "-0.1"], "--dropout must be a rate in [0, 1); found -0.1"),
        (["--dropout", "1"], "--dropout must be a rate in [0, 1); found 1.0"),
        (["--dropout", "nan"], "--dropout must be a rate in [0, 1); found nan"),
        (["--dropout", "x"], "argument --dropout: invalid float value: 'x'"),
    ],
)
def test_bad_arguments_are_rejected_in_one_line_by_name(argv, message, capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(argv)
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error and "Traceback" not in error


def _record(impl, task, step_s, precision="float32", backend="tensorflow", calls=None, usages=None):
    spec = dict(impl=impl, task=task, backend=backend, precision=precision, batch_size=32, section=0)
    return dict(
        spec=spec,
        name=f"{impl} {task} {backend} {precision}",
        step_times=[step_s, step_s * 1.2],
        loads=[1.0],
        usages=usages or [],
        call_seconds=calls or [],
        peak_rss_mb=1.0,
        ready=dict(forward_flops=1e9, info={}),
    )


@pytest.mark.single_backend
def test_serving_latency_and_bfloat16_rows_are_compared_with_the_right_peers():
    results = [
        _record("vit_keras", "train", 1.0, "mixed_bfloat16"),
        _record("timm", "train", 1.5, "mixed_bfloat16", "torch"),
        _record("timm", "train", 2.0, "float32", "torch"),
        _record("keras-hub", "train", 4.0),
        _record("vit_keras", "serve", 0.5, calls=[0.010, 0.012, 0.011, 0.030, 0.013]),
        _record("timm", "serve", 0.4, backend="torch", calls=[0.020, 0.022, 0.024, 0.021, 0.023]),
    ]
    rows = {(r["impl"], r["task"], r["precision"]): r for r in benchmark.summarise(results, {})}
    bf16 = rows[("vit_keras", "train", "mixed_bfloat16")]
    assert bf16["best_peer"] == "timm train torch mixed_bfloat16"  # the peer at our precision
    assert bf16["ratio_to_best_peer"] == pytest.approx(1.5)
    assert bf16["ratio_to_best_f32_peer"] == pytest.approx(2.0)  # timm float32, not keras-hub
    serve = rows[("vit_keras", "serve", "float32")]
    assert serve["images_per_s"] == pytest.approx(32 / 0.55)  # the median of 0.5 and 0.6
    assert serve["ratio_to_best_peer"] == pytest.approx(0.44 / 0.55)
    assert serve["latency_ms_median"] == pytest.approx(12.0)
    assert serve["latency_ms_p90"] == pytest.approx(1e3 * (0.013 + 0.6 * (0.030 - 0.013)))
    assert serve["latency_ratio_to_timm"] == pytest.approx(12.0 / 22.0)
    assert "keras-hub" not in " ".join(serve["ratios"])  # serving is compared with timm only

    report = dict(
        machine=cpu_description(),
        matmul_peak_gflops={},
        matmul_peak_info={},
        command="python scripts/benchmark.py --tasks serve",
        started="2026-12-01 12:00",
        rows=list(rows.values()),
        sections=[dict(preset="vit_ti16", image_size=224, batch_size=32)],
    )
    text = markdown_section(report, "t", "2026-12-01")
    line = "| vit_keras serve tensorflow float32 | 58.2 | **0.80×** | 0.80 (0.80-0.80) | 12.0 | 23.2 | **0.55×** | — |"
    assert line in text
    assert "#### vit_ti16, 224 px, batch 32: training" in text and "avx2" in text


@pytest.mark.single_backend
def test_ratios_paired_round_by_round_cancel_a_slow_round_and_pair_only_the_same_group():
    def record(impl, precision, times, task="train"):
        return dict(_record(impl, task, 1.0, precision, "torch" if impl == "timm" else "tensorflow"), step_times=times)

    results = [
        record("vit_keras", "float32", [1.0, 2.0, 1.0]),  # round 2 ran while the machine was busy
        record("timm", "float32", [1.2, 2.2, 1.5]),
        record("vit_keras", "mixed_bfloat16", [1.0, 1.0, 1.0]),  # no bfloat16 peer: compared with float32
        record("vit_keras", "float32", [1.0, 1.0, 1.0], task="savedmodel"),  # its peer is timed in another group
        record("timm", "float32", [1.0, 1.0, 1.0], task="infer"),
    ]
    rows = {(r["impl"], r["precision"], r["task"]): r for r in benchmark.summarise(results, {})}
    mine = rows[("vit_keras", "float32", "train")]
    assert mine["ratio_to_best_peer"] == pytest.approx(1.5 / 1.0)  # the medians' ratio keeps the slow round
    paired = (mine["paired_ratio_median"], mine["paired_ratio_min"], mine["paired_ratio_max"])
    assert paired == pytest.approx((1.2, 1.1, 1.5))
    assert "paired_ratio_median" not in rows[("vit_keras", "mixed_bfloat16", "train")]
    assert "paired_ratio_median" not in rows[("vit_keras", "float32", "savedmodel")]
    table = "\n".join(config_table([mine, rows[("vit_keras", "mixed_bfloat16", "train")]]))
    assert "| **1.50×** | 1.20 (1.10-1.50) | timm train torch float32 |" in table
    assert "| **1.50×** | — | timm train torch float32 |" in table
    assert paired_ratios(rows[("timm", "float32", "train")]["round_step_s"], [1.0, 2.0]) is None  # uneven rounds

    def serve(impl, rounds):
        calls = [c for r in rounds for c in r]
        return dict(record(impl, "float32", [1.0, 1.0], "serve"), call_seconds=calls, round_call_seconds=rounds)

    ours = [[0.010, 0.012, 0.011], [0.030, 0.031, 0.029]]  # the second round on a busy machine
    theirs = [[0.020, 0.021, 0.019], [0.031, 0.030, 0.032]]
    (row,) = [r for r in benchmark.summarise([serve("vit_keras", ours), serve("timm", theirs)], {}) if "ratios" in r]
    assert row["latency_ratio_to_timm"] == pytest.approx((0.012 + 0.029) / (0.021 + 0.030))  # medians of all calls
    assert row["paired_latency_ratio_median"] == pytest.approx((0.011 / 0.020 + 0.030 / 0.031) / 2)


@pytest.mark.single_backend
def test_tf_repeats_report_each_runs_speed_cores_used_and_the_spread():
    one_core = [dict(wall_s=1.0, cpu_s=1.0, thread_cpu_s={"1": 0.95, "2": 0.05})]
    two_cores = [dict(wall_s=1.0, cpu_s=1.9, thread_cpu_s={"1": 0.9, "2": 0.9, "3": 0.1})]
    records = [
        dict(_record("vit_keras", "train", 2.0, usages=one_core), run=1, matmul_gflops=[100.0, 120.0, 110.0]),
        dict(_record("vit_keras", "train", 1.0, usages=two_cores), run=2, matmul_gflops=[200.0]),
        dict(spec={}, name="vit_keras train", run=3, error="worker exited with code 1"),
    ]
    rows, spreads = summarise_tf_repeats(records)
    assert [(r["tf_repeat"], r["busy_threads"]) for r in rows] == [(1, 1), (2, 2)]
    too_short = [dict(wall_s=0.01, cpu_s=0.01, thread_cpu_s={"1": 0.01})]
    assert cpu_use.busy_threads(cpu_use.combine(too_short)) is None  # under 5 clock ticks: no count
    assert [r["parallelism"] for r in rows] == pytest.approx([1.0, 1.9])
    assert spreads["images_per_s"] == pytest.approx(2.0)
    # the second run took half the time on a machine whose matmul ran 200 / 110 times as fast:
    # divided by the machine's speed, the runs differ by 2.0 / (200 / 110)
    assert [r["matmul_f32_gflops"] for r in rows] == [110.0, 200.0]
    assert spreads["over_matmul"] == pytest.approx(2.0 / (200 / 110))
    assert spreads["control"] is None and spreads["over_control"] is None  # no control ran
    no_matmul = [dict(record, matmul_gflops=[]) for record in records[:2]]
    rows, spreads = summarise_tf_repeats(no_matmul)  # the matmul worker failed: no second spread
    assert spreads["images_per_s"] == pytest.approx(2.0) and spreads["over_matmul"] is None
    assert rows[0]["images_per_s_per_tflops"] is None


@pytest.mark.single_backend
def test_tf_repeats_pair_each_run_with_its_control_process():
    def run(seconds, number, control=False):
        return dict(_record("timm" if control else "vit_keras", "train", seconds), run=number, control=control)

    # the machine slowed down in run 2: ours and the control both took 1.5x the time; run 3's control failed
    records = [run(1.0, 1), run(2.0, 1, True), run(1.5, 2), run(3.0, 2, True), run(1.2, 3)]
    records.append(dict(spec={}, name="timm train", run=3, control=True, error="worker exited with code 1"))
    rows, spreads = summarise_tf_repeats(records)
    assert [r["tf_repeat"] for r in rows] == [1, 2, 3]  # the control's processes are not rows of their own
    assert [r["over_control"] for r in rows[:2]] == pytest.approx([2.0, 2.0]) and rows[2]["over_control"] is None
    assert spreads["images_per_s"] == pytest.approx(1.5) and spreads["control"] == pytest.approx(1.5)
    assert spreads["over_control"] is None  # run 3 has no control to pair with
    rows, spreads = summarise_tf_repeats(records[:4])
    assert spreads["over_control"] == pytest.approx(1.0)  # the whole spread was the machine's
    lines = tf_repeats_table(rows, spreads)
    assert lines[2].split(" | ")[5:7] == [f"{rows[0]['control_images_per_s']:.1f}", "2.00"]
    assert lines[-1].endswith("of the control: 1.50×; of ours over the control, run by run: 1.00×.")


@pytest.mark.single_backend
def test_cpu_use_counts_the_thread_that_did_the_work():
    done, release = threading.Event(), threading.Event()

    def spin():  # 0.2 s of CPU time however loaded the machine is, then stay alive until measured
        while time.thread_time() < 0.2:
            pass
        done.set()
        release.wait()

    before = cpu_use.snapshot()
    worker = threading.Thread(target=spin)
    worker.start()
    done.wait()
    used = cpu_use.combine([cpu_use.usage(before, cpu_use.snapshot())])
    release.set()
    worker.join()
    assert used["cpu_s"] >= 0.2 and cpu_use.parallelism(used) == pytest.approx(used["cpu_s"] / used["wall_s"])
    assert cpu_use.busy_threads(used) >= 1
    assert max(used["thread_cpu_s"].values()) >= 0.15  # the spinning thread, at clock-tick resolution


@pytest.mark.single_backend
def test_cpu_flags_come_from_cpuinfo(tmp_path):
    sapphire = tmp_path / "sapphire"
    sapphire.write_text("model name\t: Intel Xeon Platinum\nflags\t\t: fpu avx2 fma avx512f avx512_bf16 amx_tile\n")
    zen3 = tmp_path / "zen3"
    zen3.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx2 fma\n\nprocessor\t: 1\n")
    assert cpu_description(str(sapphire))["flags"] == dict(
        avx2=True, fma=True, avx512f=True, avx512_bf16=True, amx=True
    )
    zen = cpu_description(str(zen3))
    assert zen["model"] == "AMD EPYC 7B13"
    assert zen["flags"] == dict(avx2=True, fma=True, avx512f=False, avx512_bf16=False, amx=False)
    assert set(cpu_description(str(tmp_path / "missing"))["flags"].values()) == {None}
    zen5 = tmp_path / "zen5"  # a VM's bare model name: the family and model numbers tell the generation
    zen5.write_text("cpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\nflags\t\t: avx2 avx512f\n")
    assert cpu_description(str(zen5))["model"] == "AMD EPYC (family 26, model 2)"


@pytest.mark.single_backend
def test_markdown_sections_are_appended_then_replaced_in_place(tmp_path):
    path = tmp_path / "B.md"
    path.write_text("# Benchmarks\n\n## Speed\n\nintro\n")
    first = "### run (2026-12-01)\n\n#### table\n\nv1\n"
    assert outputs.write_markdown(str(path), "### run (2026-12-01)", first) is False
    path.write_text(path.read_text() + "\n## Known limits\n\nkept\n")
    assert outputs.write_markdown(str(path), "### run (2026-12-01)", first.replace("v1", "v2")) is True
    text = path.read_text()
    assert (
        text
        == "# Benchmarks\n\n## Speed\n\nintro\n\n### run (2026-12-01)\n\n#### table\n\nv2\n\n## Known limits\n\nkept\n"
    )
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.single_backend
def test_single_kernel_benchmarks_take_a_median_after_a_warm_up_and_reject_zero_repeats(capsys, monkeypatch):
    calls, clock = [], iter([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # timed calls of 1, 3 and 2 s
    monkeypatch.setattr("bench.micro.time.perf_counter", lambda: next(clock))
    assert median_seconds(lambda: calls.append(1), 3) == 2.0 and len(calls) == 4  # one untimed warm-up call
    assert parse_repeats("d", "case", []).repeats == 9
    with pytest.raises(SystemExit):
        parse_repeats("d", "case", ["--repeats", "0"])
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("error: --repeats must be >= 1; found 0")


def test_bfloat16_kernels_measures_every_product_of_this_backend():
    from bench import bfloat16_kernels

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    measured = bfloat16_kernels.WORKERS[backend](1)
    prefix = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}[backend]
    libraries = [name for name in bfloat16_kernels.LIBRARIES if name.startswith(prefix)]
    expected = {f"{library} {dtype}" for library in libraries for dtype in ("float32", "bfloat16")}
    if backend == "torch":
        expected |= {f"attention {name}" for name in ("flash float32", "flash bfloat16", "matmuls bfloat16")}
    assert set(measured) == expected
    assert all(0 < value < float("inf") for value in measured.values())


def test_attention_paths_times_both_paths_and_they_agree(capsys):
    import keras
    import numpy as np
    from bench import attention_paths

    argv = ["--preset", "vit_mnist_p7", "--image-size", "28", "--batch-size", "4", "--num-classes", "10"]
    if keras.backend.backend() == "torch":
        with pytest.raises(SystemExit):
            attention_paths.main(argv + ["--rounds", "1"])
        assert "KERAS_BACKEND must be tensorflow or jax; found 'torch'" in capsys.readouterr().err
        return
    times = attention_paths.main(argv + ["--rounds", "2"])
    calls = ("forward", "forward, batch 1", "training step")
    assert set(times) == {(path, call) for path in attention_paths.PATHS for call in calls}
    assert all(len(t) == 2 and all(0 < s < 60 for s in t) for t in times.values())
    assert capsys.readouterr().out.count("ratio") == 3
    spec = dict(preset="vit_mnist_p7", image_size=28, batch_size=4, num_classes=10, precision="float32")
    models, images = attention_paths.build_models(argparse.Namespace(**spec))
    keras_op, ours = (models[path][0](images) for path in attention_paths.PATHS)
    np.testing.assert_allclose(ours, keras_op, rtol=1e-4, atol=1e-4)  # same weights (seed), same function
    with pytest.raises(SystemExit):
        attention_paths.main(argv + ["--rounds", "0"])
    assert "--rounds must be >= 1; found 0" in capsys.readouterr().err


@pytest.mark.single_backend
def test_profile_step_names_the_missing_bench_extra_in_one_line(monkeypatch):
    from bench import profile_step, workloads

    def no_timm(spec):
        raise ModuleNotFoundError("No module named 'timm'")

    monkeypatch.setattr(workloads, "build_workload", no_timm)
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "tensorflow"))  # main sets it; restored after
    with pytest.raises(SystemExit) as raised:
        profile_step.main(["--impls", "timm", "--steps", "1"])
    message = str(raised.value)
    assert "--impls timm needs the bench extra (pip install -e .[bench])" in message and "'timm'" in message
    assert "\n" not in message


def test_gelu_forms_times_both_forms_which_compute_the_same_model(capsys):
    import keras
    import numpy as np
    from bench import gelu_forms

    argv = ["--preset", "vit_mnist_p7", "--image-size", "28", "--batch-size", "4", "--num-classes", "10"]
    if keras.backend.backend() != "tensorflow":
        with pytest.raises(SystemExit):
            gelu_forms.main(argv + ["--rounds", "1"])
        assert f"KERAS_BACKEND must be tensorflow; found '{keras.backend.backend()}'" in capsys.readouterr().err
        return
    times = gelu_forms.main(argv + ["--rounds", "2", "--mlp-dim", "64"])
    calls = ("forward", "forward, batch 1", "training step")
    assert set(times) == {(form, call) for form in gelu_forms.FORMS for call in calls}
    assert all(len(t) == 2 and all(0 < s < 60 for s in t) for t in times.values())
    out = capsys.readouterr().out
    assert out.count("per round") == 3 and "bias add + GELU, 8 x 64 float32" in out
    spec = dict(preset="vit_mnist_p7", image_size=28, batch_size=4, num_classes=10, precision="float32")
    models, images = gelu_forms.build_models(argparse.Namespace(**spec, jit_compile="true"))
    keras_gelu, ours = (models[form][0](images) for form in gelu_forms.FORMS)
    np.testing.assert_allclose(ours, keras_gelu, rtol=1e-5, atol=1e-5)  # same weights (seed), same function
    with pytest.raises(SystemExit):
        gelu_forms.main(argv + ["--rounds", "0"])
    assert "--rounds must be >= 1; found 0" in capsys.readouterr().err


def test_batch_pieces_times_the_whole_batch_and_its_pieces(capsys):
    import keras
    import numpy as np
    from bench import batch_pieces

    argv = ["--preset", "vit_mnist_p7", "--image-size", "28", "--batch-size", "4", "--num-classes", "10"]
    if keras.backend.backend() != "tensorflow":
        with pytest.raises(SystemExit):
            batch_pieces.main(argv + ["--rounds", "1", "--pieces", "2"])
        assert f"KERAS_BACKEND must be tensorflow; found '{keras.backend.backend()}'" in capsys.readouterr().err
        return
    times = batch_pieces.main(argv + ["--rounds", "2", "--pieces", "2,4"])
    expected = {"1 pieces", "2 pieces", "4 pieces", "2 pieces, one after another", "4 pieces, one after another"}
    assert set(times) == expected | {batch_pieces.SERVED}
    assert all(len(t) == 2 and all(0 < s < 60 for s in t) for t in times.values())
    assert capsys.readouterr().out.count("x the whole batch") == 6
    calls, images = batch_pieces.build_calls(
        argparse.Namespace(
            **dict(
                preset="vit_mnist_p7", image_size=28, batch_size=4, num_classes=10, precision="float32", pieces=[1, 4]
            )
        )
    )
    whole, pieces, served = (calls[name](images).numpy() for name in ("1 pieces", "4 pieces", batch_pieces.SERVED))
    np.testing.assert_allclose(pieces, whole, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(served, whole, rtol=1e-5, atol=1e-5)
    with pytest.raises(SystemExit):
        batch_pieces.main(argv + ["--pieces", "8"])
    assert "--pieces must be 1..batch size (4); found [1, 8]" in capsys.readouterr().err


@pytest.mark.single_backend
def test_one_image_threads_computes_the_same_parts_in_both_frameworks_and_tables_their_gains(capsys, monkeypatch):
    import numpy as np
    from bench import one_image_threads

    shape = dict(tokens=9, width=12, heads=3, mlp=24, depth=2)
    ours, timm_way = one_image_threads.tensorflow_parts(shape), one_image_threads.torch_parts(shape)
    assert set(ours) == set(timm_way) == set(one_image_threads.PARTS)
    for part in one_image_threads.PARTS:
        np.testing.assert_allclose(ours[part](), timm_way[part](), rtol=1e-4, atol=1e-4)
    for framework in one_image_threads.FRAMEWORKS:
        seconds = one_image_threads.measure(framework, 1, shape)
        assert set(seconds) == set(one_image_threads.PARTS) and all(0 < s < 60 for s in seconds.values())

    per_call = {("tensorflow", 1): 6.0, ("tensorflow", 4): 4.0, ("torch", 1): 6.0, ("torch", 4): 2.0}  # ms
    workers = []

    def fake_worker(framework, threads, repeats):
        workers.append((framework, threads, repeats))
        return {part: per_call[(framework, threads)] / 1e3 for part in one_image_threads.PARTS}

    monkeypatch.setattr(one_image_threads, "_run_worker", fake_worker)
    monkeypatch.setattr(one_image_threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    times = one_image_threads.main(["--rounds", "2", "--repeats", "3"])
    assert sorted(workers) == sorted(2 * [(framework, threads, 3) for framework, threads in per_call])
    assert all(len(seconds) == 2 for parts in times.values() for seconds in parts.values())
    rows = capsys.readouterr().out.splitlines()
    assert "| projections | 6.00 / 4.00 (1.50×) | 6.00 / 2.00 (3.00×) | 2.00× |" in rows
    assert "| attention | 6.00 / 4.00 (1.50×) | 6.00 / 2.00 (3.00×) | 2.00× |" in rows
    for bad in (["--rounds", "0"], ["--repeats", "0"]):
        with pytest.raises(SystemExit):
            one_image_threads.main(bad)
        assert f"{bad[0]} must be >= 1; found 0" in capsys.readouterr().err
