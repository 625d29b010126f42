#!/usr/bin/env python
"""Benchmark vit_keras training and inference against timm and keras-hub in the same run.

Every measured configuration runs in its own worker process (scripts/bench/worker.py), so
backends never mix. All workers of one task are built and warmed up one after another, then
their timed repeats are interleaved (ours, peer, ours, peer, ... with the order rotated each
round) so that load from other processes hits everyone alike. The machine's matmul peak is
measured in the same rotation. Results are quoted as ratios to the peers of the same run.

    .venv/bin/python scripts/benchmark.py --preset vit_ti16 --image-size 224 --batch-size 32 \
        --precisions float32,mixed_bfloat16 --compare timm,keras-hub --markdown BENCHMARKS.md

On a GPU machine, `--gpu` measures ViT-B/16 in bfloat16 against timm with torch.compile.
"""

import argparse
import csv
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "bench", "worker.py")
TAG = "@@BENCH "
PEERS = ("timm", "keras-hub")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="vit_ti16", help="vit_keras preset (timm/keras-hub get the same architecture)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument(
        "--tasks",
        default="train,infer,savedmodel",
        help="comma list of train (fit steps), infer (Keras model / eager torch), savedmodel (ours)",
    )
    p.add_argument("--backends", default="tensorflow", help="Keras backends for vit_keras (comma list)")
    p.add_argument("--precisions", default="float32", help="precisions for vit_keras (comma list)")
    p.add_argument("--jit-compile", default="true", choices=("true", "false", "auto"), help="vit_keras compile")
    p.add_argument(
        "--steps-per-execution",
        type=int,
        default=None,
        help="vit_keras training steps per execution (default: --steps)",
    )
    p.add_argument(
        "--variants",
        default="",
        help="extra vit_keras runs, ';'-separated 'backend:precision:jit:spe' (e.g. tensorflow:float32:false:1)",
    )
    p.add_argument("--compare", default="timm,keras-hub", help="peers (comma list; empty for none)")
    p.add_argument("--peer-precision", default="float32", help="precision the peers run at")
    p.add_argument("--keras-hub-backends", default="tensorflow,jax")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per configuration")
    p.add_argument("--steps", type=int, default=4, help="steps per timed repeat")
    p.add_argument("--warmup", type=int, default=1, help="warm-up steps (compilation) before timing")
    p.add_argument(
        "--gpu",
        action="store_true",
        help="GPU run: defaults to vit_b16, mixed_bfloat16 for all, timm with torch.compile",
    )
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "benchmark"), help="folder for JSON and CSV")
    p.add_argument("--markdown", default=None, help="append the table to this Markdown file (e.g. BENCHMARKS.md)")
    p.add_argument("--title", default=None, help="heading of the appended table")
    args = p.parse_args(argv)
    if args.gpu:
        if args.preset == "vit_ti16":
            args.preset = "vit_b16"
        if args.precisions == "float32":
            args.precisions = "mixed_bfloat16"
        if args.peer_precision == "float32":
            args.peer_precision = "mixed_bfloat16"
    for name in ("repeats", "steps", "batch_size", "image_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1; found {getattr(args, name)}")
    peers = [x for x in args.compare.split(",") if x]
    for peer in peers:
        if peer not in PEERS:
            p.error(f"--compare takes peers from {list(PEERS)}; found {peer!r}")
    return args


def _list(text):
    return [item for item in text.split(",") if item]


def job_specs(args):
    """One spec per worker: (task group, spec)."""
    base = dict(
        preset=args.preset,
        image_size=args.image_size,
        batch_size=args.batch_size,
        num_classes=args.num_classes,
        warmup_steps=args.warmup,
        device="gpu" if args.gpu else "cpu",
    )
    spe = args.steps_per_execution or args.steps
    ours = [(b, p, args.jit_compile, spe) for b in _list(args.backends) for p in _list(args.precisions)]
    for variant in filter(None, args.variants.split(";")):
        backend, precision, jit, v_spe = variant.split(":")
        ours.append((backend, precision, jit, int(v_spe)))
    specs = []
    for task in _list(args.tasks):
        for backend, precision, jit, v_spe in ours:
            if task == "savedmodel" and backend != "tensorflow":
                continue
            if backend == "torch":  # Keras on PyTorch runs eagerly, one step per call (fast_compile_options)
                jit, v_spe = "false", 1
            specs.append(
                dict(
                    base,
                    impl="vit_keras",
                    task=task,
                    backend=backend,
                    precision=precision,
                    jit_compile=jit,
                    steps_per_execution=v_spe if task == "train" else 1,
                )
            )
        if task == "savedmodel":
            continue
        for peer in _list(args.compare):
            backends = _list(args.keras_hub_backends) if peer == "keras-hub" else ["torch"]
            for backend in backends:
                specs.append(
                    dict(
                        base,
                        impl=peer,
                        task=task,
                        backend=backend,
                        precision=args.peer_precision,
                        torch_compile=args.gpu,
                    )
                )
    return specs


class Worker:
    """A live worker process running one spec."""

    def __init__(self, spec, log_dir, wait=True):
        self.spec = spec
        self.name = label(spec)
        self.log_path = os.path.join(log_dir, self.name.replace(" ", "_").replace("/", "-") + ".log")
        env = dict(
            os.environ,
            KERAS_BACKEND=spec.get("backend") or "tensorflow",
            TF_CPP_MIN_LOG_LEVEL="3",
            PYTHONUNBUFFERED="1",
        )
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self.ready = self.read() if wait else None
        self.times, self.loads = [], []

    def read(self):
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line[len(TAG) :])
        return {"error": f"worker exited with code {self.proc.wait()} (log: {self.log_path})"}

    def run(self, steps):
        self.proc.stdin.write(f"run {steps}\n")
        self.proc.stdin.flush()
        reply = self.read()
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']} (log: {self.log_path})")
        return reply

    def close(self):
        reply = {}
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                reply = self.read()
            except (BrokenPipeError, OSError):
                pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        return reply


def label(spec):
    if spec["impl"] == "matmul":
        return "matmul peak"
    text = f"{spec['impl']} {spec['task']} {spec['backend']} {spec['precision']}"
    if spec["impl"] == "vit_keras":
        text += f" jit={spec['jit_compile']}"
        if spec["task"] == "train":
            text += f" spe={spec['steps_per_execution']}"
    if spec.get("torch_compile") and spec["impl"] == "timm":
        text += " torch.compile"
    return text


def run_group(specs, args, log_dir, peak, peak_info):
    """Start the group's workers, then interleave their timed repeats."""
    workers, results = [], []
    matmul = Worker(
        dict(
            impl="matmul",
            task="peak",
            backend="torch" if args.gpu else "tensorflow",
            device="gpu" if args.gpu else "cpu",
            warmup_steps=1,
        ),
        log_dir,
    )
    if "error" in matmul.ready:
        print(f"  matmul peak not measured: {matmul.ready['error']}", flush=True)
    else:
        peak_info.update(matmul.ready["info"])
    start = time.perf_counter()
    # Workers build and warm up concurrently (nothing is timed yet); timing starts once all are ready.
    started = [Worker(spec, log_dir, wait=False) for spec in specs]
    for worker in started:
        worker.ready = worker.read()
        print(f"  ready after {time.perf_counter() - start:.0f} s: {worker.name}", flush=True)
    for worker in started:
        if "error" in worker.ready:
            print(f"  SKIPPED {worker.name}: {worker.ready['error']}", flush=True)
            results.append(dict(spec=worker.spec, name=worker.name, error=worker.ready["error"]))
            worker.close()
            continue
        workers.append(worker)
    try:
        for round_ in range(args.repeats):
            order = workers[round_ % len(workers) :] + workers[: round_ % len(workers)] if workers else []
            for worker in order:
                multiple = worker.ready["step_multiple"]
                steps = max(args.steps + (-args.steps % multiple), multiple)
                reply = worker.run(steps)
                worker.times.append(reply["seconds"] / reply["steps"])
                worker.loads.append(reply["load"])
            if "error" not in matmul.ready:
                for dtype, rate in matmul.run(3)["seconds"].items():
                    peak[dtype] = max(peak.get(dtype, 0.0), rate)
            print(
                f"  round {round_ + 1}/{args.repeats}: "
                + ", ".join(f"{w.name} {w.spec['batch_size'] / w.times[-1]:.1f} img/s" for w in workers)
                + f"; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    finally:
        for worker in workers:
            final = worker.close()
            results.append(
                dict(
                    spec=worker.spec,
                    name=worker.name,
                    ready=worker.ready,
                    step_times=worker.times,
                    loads=worker.loads,
                    peak_rss_mb=final.get("peak_rss_mb"),
                )
            )
        matmul.close()
    return results


def summarise(results, peak, args):
    """Add images/s, spread, FLOP rates and ratios to the peers of the same task."""
    rows = []
    for r in results:
        if "error" in r or not r.get("step_times"):
            continue
        spec, times = r["spec"], sorted(r["step_times"])
        median = statistics.median(times)
        fwd = r["ready"]["forward_flops"]
        flops_per_image = fwd * (3 if spec["task"] == "train" else 1)
        achieved = flops_per_image * spec["batch_size"] / median / 1e9
        rows.append(
            dict(
                name=r["name"],
                impl=spec["impl"],
                task=spec["task"],
                backend=spec["backend"],
                precision=spec["precision"],
                images_per_s=spec["batch_size"] / median,
                step_ms_median=1e3 * median,
                step_ms_min=1e3 * times[0],
                step_ms_max=1e3 * times[-1],
                spread_pct=100 * (times[-1] - times[0]) / median,
                repeats=len(times),
                gflops_per_image=flops_per_image / 1e9,
                achieved_gflops=achieved,
                pct_f32_peak=100 * achieved / peak["float32"] if peak.get("float32") else None,
                pct_bf16_peak=100 * achieved / peak["bfloat16"] if peak.get("bfloat16") else None,
                peak_rss_mb=r["peak_rss_mb"],
                load_mean=statistics.mean(r["loads"]),
                info=r["ready"]["info"],
            )
        )
    for row in rows:
        if row["impl"] != "vit_keras":
            continue
        baseline_task = "infer" if row["task"] == "savedmodel" else row["task"]
        peers = [p for p in rows if p["impl"] != "vit_keras" and p["task"] == baseline_task]
        row["ratios"] = {p["name"]: row["images_per_s"] / p["images_per_s"] for p in peers}
        if peers:
            best = max(peers, key=lambda p: p["images_per_s"])
            row["best_peer"] = best["name"]
            row["ratio_to_best_peer"] = row["images_per_s"] / best["images_per_s"]
    return rows


def markdown_table(rows, peak, peak_info, args, command, started):
    lines = [
        f"### {args.title or f'{args.preset}, {args.image_size} px, batch {args.batch_size}'} ({started} UTC)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {_machine(peak_info)}; matmul peak measured in this run: "
        f"{peak.get('float32', float('nan')):.0f} GFLOP/s float32, {peak.get('bfloat16', float('nan')):.0f} "
        f"GFLOP/s bfloat16 ({peak_info.get('backend', 'not measured')}, {peak_info.get('matmul_size', '?')}^2). "
        f"Ratios are to the best peer of the same task (SavedModel rows: to the peers' inference)"
        + ("; the % bf16 peak column is the model FLOPs utilisation." if args.gpu else "."),
        "",
        "| configuration | images/s | step ms (median, min-max) | × best peer | best peer "
        "| % f32 peak | % bf16 peak | peak RSS MB | load |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = f"**{row['ratio_to_best_peer']:.2f}×**" if row.get("ratio_to_best_peer") else "—"
        lines.append(
            f"| {row['name']} | {row['images_per_s']:.1f} | {row['step_ms_median']:.0f} "
            f"({row['step_ms_min']:.0f}-{row['step_ms_max']:.0f}) | {ratio} | {row.get('best_peer', '')} | "
            f"{_pct(row['pct_f32_peak'])} | {_pct(row['pct_bf16_peak'])} | {row['peak_rss_mb'] or 0:.0f} | "
            f"{row['load_mean']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _machine(peak_info):
    text = f"{os.cpu_count()} CPU cores"
    return f"{peak_info['gpu']}, {text}" if peak_info.get("gpu") else text


def _pct(value):
    return "—" if value is None else f"{value:.0f}%"


def main(argv=None):
    args = parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    command = "python scripts/benchmark.py " + " ".join(sys.argv[1:] if argv is None else argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(args.out, exist_ok=True)
    log_dir = os.path.join(args.out, f"logs-{stamp}")
    os.makedirs(log_dir, exist_ok=True)

    specs = job_specs(args)
    groups = {}
    for spec in specs:
        groups.setdefault("infer" if spec["task"] == "savedmodel" else spec["task"], []).append(spec)
    peak, peak_info, results = {}, {}, []
    for task, group in groups.items():
        print(f"== {task}: {len(group)} configurations", flush=True)
        results += run_group(group, args, log_dir, peak, peak_info)
    rows = summarise(results, peak, args)

    table = markdown_table(rows, peak, peak_info, args, command, started)
    print()
    print(table)
    for r in results:
        if "error" in r:
            print(f"not measured: {r['name']}: {r['error']}")
    base = os.path.join(args.out, f"benchmark-{stamp}")
    with open(base + ".json", "w") as f:
        json.dump(
            dict(
                command=command,
                started=started,
                args=vars(args),
                matmul_peak_gflops=peak,
                matmul_peak_info=peak_info,
                rows=rows,
                raw=results,
            ),
            f,
            indent=1,
            default=str,
        )
    with open(base + ".csv", "w", newline="") as f:
        fields = [k for k in rows[0] if k not in ("info", "ratios")] if rows else []
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {base}.json and {base}.csv")
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write("\n" + table)
        print(f"appended the table to {args.markdown}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
