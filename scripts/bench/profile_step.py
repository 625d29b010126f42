"""Where the time of one training step goes, by operator (torch.profiler, CPU self time).

Profiles vit_keras on the Keras PyTorch backend and timm's ViT on the same batch: the operator
mix (matmuls, attention, norms, GELU, optimizer) is what every backend has to execute.

    KERAS_BACKEND=torch .venv/bin/python scripts/bench/profile_step.py --preset vit_ti16 --image-size 224
"""

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.workloads import build_workload  # noqa: E402


def profile(impl, args):
    import torch

    spec = dict(
        impl=impl,
        task="train",
        preset=args.preset,
        image_size=args.image_size,
        batch_size=args.batch_size,
        num_classes=args.num_classes,
        precision=args.precision,
        jit_compile="false",
        steps_per_execution=1,
        backend="torch",
    )
    workload = build_workload(spec)
    workload.run(2)  # warm-up
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        seconds = workload.run(args.steps)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(
        f"\n== {impl} ({args.preset}, {args.image_size} px, batch {args.batch_size}, {args.precision}): "
        f"{seconds / args.steps:.2f} s/step under the profiler"
    )
    print(f"{'operator':44s} {'self CPU %':>10s} {'calls':>7s}")
    for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        print(f"{event.key[:44]:44s} {100 * event.self_cpu_time_total / total:9.1f}% {event.count:7d}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="vit_ti16")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--precision", default="float32")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--impls", default="vit_keras,timm")
    args = p.parse_args()
    for impl in args.impls.split(","):
        profile(impl, args)


if __name__ == "__main__":
    main()
