"""Runs the worker processes of scripts/benchmark.py and collects their raw timings.

`run_group` starts a group's workers (they build and warm up side by side; nothing is timed
yet), then interleaves their timed repeats (ours, peer, ours, peer, ... with the order rotated
each round) with the matmul peak in the same rotation, so load from other processes hits everyone
alike. `run_tf_repeats` runs one TensorFlow training worker again and again in fresh processes,
one after the other and alone, to show the run-to-run spread, with the machine's float32 matmul
rate timed beside each of its repeats.

Nothing here imports a deep-learning framework.
"""

import json
import os
import statistics
import subprocess
import sys
import time

from bench.specs import label

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, "worker.py")
TAG = "@@BENCH "
# Pause before each timed repeat: the previous worker's thread pools (OpenMP, Eigen) spin for up
# to a few hundred ms after their last step and would take cores from a repeat of tens of ms.
SETTLE_SECONDS = 0.5


class Worker:
    """A live worker process running one spec.

    Args:
        spec: the worker's JSON spec (see bench/workloads.py).
        log_dir: folder for the worker's stderr log.
        wait: wait for the worker's ready line (else call `read()` later and set `ready`).
        log_name: the log's file name stem (default: the spec's label).
    """

    def __init__(self, spec, log_dir, wait=True, log_name=None):
        self.spec = spec
        self.name = label(spec)
        stem = log_name or f"{spec.get('section', 0)}-{self.name}"
        self.log_path = os.path.join(log_dir, stem.replace(" ", "_").replace("/", "-") + ".log")
        env = dict(os.environ, KERAS_BACKEND=spec.get("backend") or "tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
        env["PYTHONUNBUFFERED"] = "1"
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
        self.times, self.loads, self.usages, self.call_seconds, self.round_calls = [], [], [], [], []

    def read(self):
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line[len(TAG) :])
        return {"error": f"worker exited with code {self.proc.wait()} (log: {self.log_path})"}

    def request(self, command, count):
        """Send `command count` ('run' or 'latency') and return the reply; RuntimeError on a worker error."""
        self.proc.stdin.write(f"{command} {count}\n")
        self.proc.stdin.flush()
        reply = self.read()
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']} (log: {self.log_path})")
        return reply

    def timed_repeat(self, steps, latency_calls=0):
        """One timed repeat: `steps` steps (rounded up to the step multiple), then the latency calls."""
        multiple = self.ready["step_multiple"]
        steps = max(steps + (-steps % multiple), multiple)
        reply = self.request("run", steps)
        self.times.append(reply["seconds"] / reply["steps"])
        self.loads.append(reply["load"])
        self.usages.append(reply["usage"])
        if latency_calls and self.ready.get("has_latency"):
            calls = self.request("latency", latency_calls)["call_seconds"]
            self.call_seconds += calls
            self.round_calls.append(calls)

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


def _record(worker, final):
    """The raw record of a closed worker for bench.report.summarise (`final`: its reply to quit)."""
    return dict(
        spec=worker.spec,
        name=worker.name,
        ready=worker.ready,
        step_times=worker.times,
        loads=worker.loads,
        usages=worker.usages,
        call_seconds=worker.call_seconds,
        round_call_seconds=worker.round_calls,
        peak_rss_mb=final.get("peak_rss_mb"),
    )


def _matmul_worker(args, log_dir):
    """Start the matmul-peak worker without waiting for it (`_matmul_ready` reads its ready line)."""
    device = "gpu" if args.gpu else "cpu"
    spec = dict(impl="matmul", task="peak", backend="torch" if args.gpu else "tensorflow", device=device)
    return Worker(dict(spec, warmup_steps=1), log_dir, wait=False)


def _matmul_ready(matmul, peak_info):
    """Wait for the matmul worker's ready line; record what the peak runs on."""
    matmul.ready = matmul.read()
    if "error" in matmul.ready:
        print(f"  matmul peak not measured: {matmul.ready['error']}", flush=True)
    else:
        peak_info.update(matmul.ready["info"])
    return matmul


def _start(specs, log_dir, results):
    """Start the workers side by side; return those that came up (the others go to `results`)."""
    start = time.perf_counter()
    started = [Worker(spec, log_dir, wait=False) for spec in specs]
    workers = []
    for worker in started:
        worker.ready = worker.read()
        print(f"  ready after {time.perf_counter() - start:.0f} s: {worker.name}", flush=True)
    for worker in started:
        if "error" in worker.ready:
            print(f"  SKIPPED {worker.name}: {worker.ready['error']}", flush=True)
            results.append(dict(spec=worker.spec, name=worker.name, error=worker.ready["error"]))
            worker.close()
        else:
            workers.append(worker)
    return workers


def run_group(specs, args, log_dir, peak, peak_info):
    """Start the group's workers, then interleave their timed repeats; return their raw records.

    Args:
        specs: the group's worker specs (one section, task and precision; see bench/specs.py).
        args: the parsed arguments (repeats, latency_calls, gpu).
        log_dir: folder for the workers' logs.
        peak: {dtype: GFLOP/s}, raised to the best matmul rate measured in this group.
        peak_info: filled with what the matmul peak ran on.

    Returns:
        One dict per spec: the timings, or `error` for a worker that did not come up.
    """
    matmul = _matmul_worker(args, log_dir)  # comes up alongside the group's workers
    results = []
    workers = _start(specs, log_dir, results)
    _matmul_ready(matmul, peak_info)
    try:
        for round_ in range(args.repeats):
            shift = round_ % len(workers) if workers else 0
            # --latency-calls batch-1 calls per worker in all, spread evenly over the rounds
            calls = args.latency_calls // args.repeats + (round_ < args.latency_calls % args.repeats)
            for worker in workers[shift:] + workers[:shift]:
                time.sleep(SETTLE_SECONDS)
                worker.timed_repeat(worker.spec["steps"], calls)
            if "error" not in matmul.ready:
                for dtype, rate in matmul.request("run", 3)["seconds"].items():
                    peak[dtype] = max(peak.get(dtype, 0.0), rate)
            rates = ", ".join(f"{w.name} {w.spec['batch_size'] / w.times[-1]:.1f} img/s" for w in workers)
            print(f"  round {round_ + 1}/{args.repeats}: {rates}; load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        for worker in workers:
            results.append(_record(worker, worker.close()))
        matmul.close()
    return results


def run_tf_repeats(spec, args, log_dir, control=None):
    """Run `spec`'s worker `args.tf_repeats` times, each in a fresh process, one after the other.

    Each process builds and warms up, then times `args.repeats` repeats of the spec's steps; after
    each repeat the matmul-peak worker (one process for all runs) times the float32 2048² product,
    the machine's own speed at that moment. With a `control` spec (another framework's training,
    `--tf-control`), each TensorFlow process is followed by a fresh process of the control, timed
    the same way: a spread that the control shares is the machine's, not TensorFlow's.

    Returns:
        One raw record per process (as `run_group`'s), with `run` (1, 2, ...), `control` (True for
        the control's processes) and `matmul_gflops` (the float32 matmul rates measured beside its
        repeats; empty if that worker failed) added.
    """
    matmul = _matmul_ready(_matmul_worker(args, log_dir), {})
    records = []
    try:
        for run in range(1, args.tf_repeats + 1):
            records.append(_fresh_run(spec, args, log_dir, run, matmul))
            if control:
                records.append(_fresh_run(control, args, log_dir, run, matmul, is_control=True))
    finally:
        matmul.close()
    return records


def _fresh_run(spec, args, log_dir, run, matmul, is_control=False):
    """One fresh process of `run_tf_repeats`: its raw record."""
    kind = "tf control" if is_control else "tf repeat"
    worker = Worker(spec, log_dir, log_name=f"{kind.replace(' ', '-')}-{run}")
    if "error" in worker.ready:
        print(f"  {kind} {run}: SKIPPED: {worker.ready['error']}", flush=True)
        worker.close()
        return dict(spec=spec, name=worker.name, run=run, control=is_control, error=worker.ready["error"])
    rates = []
    try:
        for _ in range(args.repeats):
            worker.timed_repeat(spec["steps"])
            if "error" not in matmul.ready:
                rates.append(matmul.request("run", 3)["seconds"]["float32"])
    finally:
        record = dict(_record(worker, worker.close()), run=run, control=is_control, matmul_gflops=rates)
    rate = spec["batch_size"] / statistics.median(worker.times)
    beside = f"; float32 matmul {statistics.median(rates):.0f} GFLOP/s" if rates else ""
    print(f"  {kind} {run}/{args.tf_repeats}: {rate:.1f} img/s{beside}; load {os.getloadavg()[0]:.1f}", flush=True)
    return record
