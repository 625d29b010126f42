"""Where the time of one training step goes, by operator.

On the Keras PyTorch backend (the default): vit_keras and timm's ViT (the `bench` extra) on the
same batch under torch.profiler (self CPU time per operator); the operator mix (matmuls, attention, norms, GELU,
optimizer) is what every backend has to execute. With `--backend tensorflow` (or `jax`): vit_keras
trained by TensorFlow (JAX) + XLA (`model.fit`, 2 steps per execution), traced by the backend's
profiler with XLA's per-thunk trace events; the time is summed per XLA operation kind (the HLO
instruction name without its number: `MatMul` for the dense projections, `dot` for the attention's
batched products, `*_fusion` for the fused element-wise and reduction kernels, `ynn_fusion` for
the products XLA hands to YNNPACK under JAX). JAX's Python trace events (`$...`) are left out.
`--task savedmodel` profiles the exported SavedModel's `serving_default` forward pass instead (the
XLA-compiled model, plus the signature's TensorFlow ops: input checks, top-k); `--task infer`
the model's own inference call.

    .venv/bin/python scripts/bench/profile_step.py --preset vit_ti16 --image-size 224
    .venv/bin/python scripts/bench/profile_step.py --backend tensorflow --impls vit_keras
    .venv/bin/python scripts/bench/profile_step.py --backend jax --impls vit_keras
    .venv/bin/python scripts/bench/profile_step.py --backend tensorflow --impls vit_keras --task savedmodel
"""

import argparse
import collections
import glob
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Enclosing trace events (the Python call, the executor, the whole XLA program): not operations.
_XLA_WRAPPERS = re.compile(
    r"^(\$|ThunkExecutor|CpuExecutable|BlockUntilReady|Eager|TFE_|KernelAndDevice|ExecutorState|"
    r"__inference|signature_wrapper|multi_step|one_step|end: )"
)


def _spec(impl, args):
    xla = args.backend in ("tensorflow", "jax")
    return dict(
        impl=impl,
        task=args.task,
        preset=args.preset,
        image_size=args.image_size,
        batch_size=args.batch_size,
        num_classes=args.num_classes,
        precision=args.precision,
        jit_compile="true" if xla else "false",
        steps_per_execution=2 if xla else 1,
        backend=args.backend,
    )


def _print_table(title, shares, top):
    """Print the `top` largest {operation: (share of the total, calls)} entries under `title`."""
    print(f"\n== {title}")
    print(f"{'operation':44s} {'time %':>8s} {'calls':>7s}")
    for name, (share, calls) in sorted(shares.items(), key=lambda item: -item[1][0])[:top]:
        print(f"{name[:44]:44s} {100 * share:7.1f}% {calls:7d}")


def profile_torch(impl, args):
    import torch

    from bench.workloads import build_workload

    workload = build_workload(_spec(impl, args))
    workload.run(2)  # warm-up
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        seconds = workload.run(args.steps)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares = {e.key: (e.self_cpu_time_total / total, e.count) for e in events}
    title = f"{impl} on PyTorch ({args.preset}, {args.image_size} px, batch {args.batch_size}, {args.precision})"
    _print_table(f"{title}: {seconds / args.steps:.2f} s/step under the profiler", shares, args.top)


def xla_operation_times(xspace_file):
    """{XLA operation kind: (seconds, calls)} summed over every thread of a TensorFlow profiler trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xspace_file, "rb") as f:
        space.ParseFromString(f.read())
    seconds, calls = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = re.sub(r"\.\d+$", "", names.get(event.metadata_id, "?"))
                if not _XLA_WRAPPERS.match(name):
                    seconds[name] += event.duration_ps / 1e12
                    calls[name] += 1
    return {name: (seconds[name], calls[name]) for name in seconds}


def _xla_profiler(backend):
    """(start(logdir), stop()) of the profiler of `backend` ("tensorflow" or "jax"); both write XSpace files."""
    if backend == "jax":
        import jax

        return jax.profiler.start_trace, jax.profiler.stop_trace
    import tensorflow as tf

    return tf.profiler.experimental.start, tf.profiler.experimental.stop


def profile_xla(impl, args):
    from bench.workloads import build_workload
    from vit_keras.performance import configure_cpu_threads

    configure_cpu_threads()
    start, stop = _xla_profiler(args.backend)
    workload = build_workload(_spec(impl, args))
    steps = max(2, args.steps - args.steps % 2)
    workload.run(2)
    workload.run(2)  # warm-up: the first call compiles
    with tempfile.TemporaryDirectory() as logdir:
        start(logdir)
        seconds = workload.run(steps)
        stop()
        (xspace_file,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        times = xla_operation_times(xspace_file)
    total = sum(t for t, _ in times.values())
    shares = {name: (t / total, calls) for name, (t, calls) in times.items()}
    framework = {"tensorflow": "TensorFlow", "jax": "JAX"}[args.backend]
    title = f"{impl} on {framework} + XLA ({args.preset}, {args.image_size} px, batch {args.batch_size})"
    timing = f"{seconds / steps:.2f} s/step under the profiler, operations {total / steps:.2f} s/step (all threads)"
    _print_table(f"{title}: {timing}", shares, args.top)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("torch", "tensorflow", "jax"), default="torch")
    p.add_argument("--task", choices=("train", "infer", "savedmodel"), default="train")
    p.add_argument("--preset", default="vit_ti16")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--precision", default="float32")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--impls", help="comma list (default: vit_keras,timm on PyTorch, vit_keras on TensorFlow)")
    args = p.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    profile = profile_torch
    if args.backend in ("tensorflow", "jax"):
        # XLA's per-thunk trace events; read when TensorFlow is first imported.
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true").strip()
        profile = profile_xla
    default = "vit_keras,timm" if args.backend == "torch" else "vit_keras"
    for impl in (args.impls or default).split(","):
        try:
            profile(impl, args)
        except ImportError as error:  # a peer without the bench extra installed
            extra = "needs the bench extra (pip install -e .[bench])"
            raise SystemExit(f"profile_step.py: --impls {impl} {extra}; {error}") from None


if __name__ == "__main__":
    main()
