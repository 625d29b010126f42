"""One benchmark worker process: builds one workload, then times it on request.

Protocol (line-based, so the orchestrator can interleave several live workers):
  argv[1] is the JSON spec; the worker prints `@@BENCH {"ready": ...}` once built and warmed up,
  then for each stdin line `run STEPS` prints `@@BENCH {"seconds": ..., "load": ..., "usage": ...}`
  (`usage`: CPU and wall time of the call, per thread; see bench/cpu_use.py), for `latency CALLS`
  (workloads with a batch-1 path: the "serve" task) prints `@@BENCH {"call_seconds": [...]}`,
  and for `quit` prints `@@BENCH {"peak_rss_mb": ...}` and exits. Errors print `@@BENCH {"error": ...}`.
"""

import json
import os
import resource
import sys
import time
import traceback

TAG = "@@BENCH "


def emit(payload):
    sys.stdout.write(TAG + json.dumps(payload) + "\n")
    sys.stdout.flush()


def main():
    spec = json.loads(sys.argv[1])
    if spec.get("backend"):
        os.environ["KERAS_BACKEND"] = spec["backend"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench.flops import preset_forward_flops
    from bench.workloads import build_workload

    cpu_threads = None
    if spec["impl"] == "vit_keras":  # what the trainer does before its first op (peers keep their defaults)
        from vit_keras.performance import configure_cpu_threads

        cpu_threads = configure_cpu_threads()["summary"]
    workload = _build_and_warm_up(spec, preset_forward_flops, build_workload, cpu_threads)
    if workload is None:
        return 1
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "quit":
            break
        try:
            emit(_serve_command(workload, command[0], int(command[1])))
        except Exception as error:
            traceback.print_exc()
            emit({"error": f"{type(error).__name__}: {error}"})
            return 1
    emit({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    return 0


def _build_and_warm_up(spec, preset_forward_flops, build_workload, cpu_threads=None):
    """Build the workload, run its warm-up, print the ready line; None (error printed) on failure."""
    try:
        start = time.perf_counter()
        workload = build_workload(spec)
        built = time.perf_counter() - start
        warmup = max(int(spec.get("warmup_steps", 1)), 1)
        warmup += -warmup % workload.step_multiple
        first = workload.run(warmup)  # compiles / traces, then settles the allocator and autotuners
        if workload.latency is not None:
            workload.latency(warmup)  # the batch-1 path compiles separately
        flops = None
        if spec["impl"] != "matmul":
            flops = preset_forward_flops(spec["preset"], spec["image_size"], spec["num_classes"])
        emit(
            {
                "ready": True,
                "build_s": built,
                "first_run_s": first,
                "forward_flops": flops,
                "step_multiple": workload.step_multiple,
                "has_latency": workload.latency is not None,
                "info": workload.info,
                "cpu_threads": cpu_threads,
            }
        )
    except Exception as error:  # reported to the orchestrator, which carries on without this worker
        traceback.print_exc()
        emit({"error": f"{type(error).__name__}: {error}"})
        return None
    return workload


def _serve_command(workload, command, count):
    """The reply to `run STEPS` or `latency CALLS`."""
    from bench import cpu_use

    if command == "latency":
        if workload.latency is None:
            raise ValueError("command 'latency' needs a workload with a batch-1 path (task 'serve')")
        return {"call_seconds": workload.latency(count)}
    if command != "run":
        raise ValueError(f"command must be 'run', 'latency' or 'quit'; found {command!r}")
    load = os.getloadavg()[0]
    before = cpu_use.snapshot()
    seconds = workload.run(count)
    return {"seconds": seconds, "steps": count, "load": load, "usage": cpu_use.usage(before, cpu_use.snapshot())}


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip the interpreter's teardown of TensorFlow, JAX and PyTorch (2-3 s a worker)
