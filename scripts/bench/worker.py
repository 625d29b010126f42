"""One benchmark worker process: builds one workload, then times it on request.

Protocol (line-based, so the orchestrator can interleave several live workers):
  argv[1] is the JSON spec; the worker prints `@@BENCH {"ready": ...}` once built and warmed up,
  then for each stdin line `run STEPS` prints `@@BENCH {"seconds": ..., "load": ...}`,
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

    try:
        start = time.perf_counter()
        workload = build_workload(spec)
        built = time.perf_counter() - start
        warmup = max(int(spec.get("warmup_steps", 1)), 1)
        warmup += -warmup % workload.step_multiple
        first = workload.run(warmup)  # compiles / traces, then settles the allocator and autotuners
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
                "info": workload.info,
            }
        )
    except Exception as error:  # reported to the orchestrator, which carries on without this worker
        traceback.print_exc()
        emit({"error": f"{type(error).__name__}: {error}"})
        return 1

    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "quit":
            break
        steps = int(command[1])
        load = os.getloadavg()[0]
        try:
            emit({"seconds": workload.run(steps), "steps": steps, "load": load})
        except Exception as error:
            traceback.print_exc()
            emit({"error": f"{type(error).__name__}: {error}"})
            return 1
    emit({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    return 0


if __name__ == "__main__":
    sys.exit(main())
