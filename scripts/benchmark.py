#!/usr/bin/env python
"""Benchmark vit_keras training, inference and serving against timm and keras-hub in one run.

Every measured configuration runs in its own worker process (scripts/bench/worker.py), so
backends never mix. Workers are grouped by model, task and precision; a group's workers are
built and warmed up side by side, then their timed repeats are interleaved (ours, peer, ours,
peer, ... with the order rotated each round) so that load from other processes hits everyone
alike. The machine's matmul peak is measured in the same rotation. Results are quoted as ratios
to the peers of the same run: of the median times, and paired round by round (the median and
range of the ratios within each round, where the same load hit both).

What one run can measure:
  - training and inference images/s (tasks train, infer), ours on each Keras backend and
    precision against timm (eager; bfloat16 through torch.autocast) and keras-hub;
  - more models in the same run (`--model preset=...,image_size=...,batch_size=...`);
  - models trained with dropout (`--dropout RATE`, or `dropout=RATE` in a `--model`): every
    implementation drops the same tensors at that rate (after the position embedding, the
    attention output projection, the MLP activation and the MLP output; no attention-weight or
    head dropout; see scripts/bench/workloads.py). The tables name a non-zero rate in the
    model's headings, the JSON and CSV rows carry it in a `dropout` column (0: nothing dropped);
  - serving (task serve): our exported SavedModel's `serving_default` signature (exported with
    `vit_keras.export_saved_model`, loaded with `tf.saved_model.load`) against timm's eager
    inference (`torch.inference_mode`): images/s at the model's batch size and the batch-1
    latency (median and p90 over `--latency-calls` calls);
  - TensorFlow's run-to-run spread (`--tf-repeats N`): our TensorFlow training worker run N
    times in fresh processes, one after the other, with each run's cores used and the machine's
    float32 matmul rate timed beside it; `--tf-control timm` runs timm's training in a fresh
    process after each one, the machine's control.
Each run writes JSON and CSV into --out; `--markdown FILE` appends a dated section with the
tables (or replaces the section of the same title and day).

The full CPU run (ViT-Ti/16 training in float32 and bfloat16, the tutorial model's training at
batch 128 with its dropout 0.1, ViT-Ti/16 serving, three TensorFlow repeats):

    python scripts/benchmark.py --preset vit_ti16 --image-size 224 --batch-size 32 \\
        --tasks train,serve --backends tensorflow,jax,torch --precisions float32,mixed_bfloat16 \\
        --compare timm,keras-hub --peer-precisions float32,mixed_bfloat16 \\
        --keras-hub-backends tensorflow,jax --keras-hub-precisions float32 \\
        --repeats 3 --steps 2 --latency-calls 30 --tf-repeats 3 \\
        --model preset=vit_mnist_p7,image_size=28,batch_size=128,num_classes=10,tasks=train,steps=10,dropout=0.1 \\
        --markdown BENCHMARKS.md

About 20 minutes on a 2-vCPU AMD EPYC (Zen 3), from the step times in BENCHMARKS.md (ViT-Ti/16,
batch 32, one training step: timm 2.3 s, ours on PyTorch 2.8 s, ours on TensorFlow + XLA 3.8 s,
keras-hub on TensorFlow 4.3 s; JAX taken as 6.5 s, bfloat16 as 1.3x float32): float32 training
(6 workers, 6 timed + 2 warm-up steps each, plus XLA compilation) about 6 min, bfloat16 training
(4 workers) about 4.5 min, serving about 2 min, the tutorial model (tens of ms per step) about
3 min, three TensorFlow repeats about 1.5 min each. The float32 training group holds six
ViT-Ti/16 training processes at once: about 20 GB of memory.

On a GPU machine, `--gpu` measures ViT-B/16 in bfloat16 against timm with torch.compile.
"""

import argparse
import datetime
import os
import shlex
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench import outputs  # noqa: E402
from bench.machine import cpu_description  # noqa: E402
from bench.report import summarise, summarise_tf_repeats  # noqa: E402
from bench.runner import run_group, run_tf_repeats  # noqa: E402
from bench.specs import (  # noqa: E402
    BACKENDS,
    PRECISIONS,
    check_dropout,
    check_section,
    group_key,
    job_specs,
    label,
    parse_model,
    section_title,
    split_list,
    tf_control_spec,
    tf_repeat_spec,
)
from bench.tables import heading, markdown_section  # noqa: E402

PEERS = ("timm", "keras-hub")


def _parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="vit_ti16", help="vit_keras preset (timm/keras-hub get the same architecture)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--tasks", default="train,infer,savedmodel", help="comma list of train, infer, savedmodel, serve")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="another model in the same run: key=value pairs (preset, image_size, batch_size, num_classes, "
        "tasks joined by '+', steps, spe, dropout); the others' values by default. Repeatable.",
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        metavar="RATE",
        help="dropout rate in [0, 1) every implementation trains the main model with (default 0: none)",
    )
    p.add_argument("--backends", default="tensorflow", help="Keras backends for vit_keras (comma list)")
    p.add_argument("--precisions", default="float32", help="precisions for vit_keras (comma list)")
    p.add_argument("--jit-compile", default="true", choices=("true", "false", "auto"), help="vit_keras compile")
    p.add_argument("--steps-per-execution", type=int, default=None, help="vit_keras training (default: --steps)")
    p.add_argument("--variants", default="", help="extra vit_keras runs, ';'-separated 'backend:precision:jit:spe'")
    p.add_argument("--compare", default="timm,keras-hub", help="peers (comma list; empty for none)")
    p.add_argument("--peer-precisions", "--peer-precision", default="float32", help="precisions of the peers")
    p.add_argument("--keras-hub-backends", default="tensorflow,jax")
    p.add_argument("--keras-hub-precisions", default=None, help="keras-hub's precisions (default: --peer-precisions)")
    p.add_argument("--serve-precisions", default="float32", help="precisions of the serve task (ours and timm)")
    p.add_argument("--latency-calls", type=int, default=50, help="batch-1 calls per serve worker (split over repeats)")
    p.add_argument("--tf-repeats", type=int, default=0, help="run our TensorFlow training worker N more times, fresh")
    p.add_argument(
        "--tf-control",
        choices=["", "timm"],
        default="",
        help="with --tf-repeats: timm's training in a fresh process after each TensorFlow one (the machine's control)",
    )
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per configuration")
    p.add_argument("--steps", type=int, default=4, help="steps per timed repeat")
    p.add_argument("--warmup", type=int, default=1, help="warm-up steps (compilation) before timing")
    p.add_argument("--gpu", action="store_true", help="defaults to vit_b16, mixed_bfloat16 for all, torch.compile")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "benchmark"), help="folder for JSON and CSV")
    p.add_argument("--markdown", default=None, help="append the dated section to this Markdown file")
    p.add_argument("--title", default=None, help="title of the Markdown section")
    return p


def _check_lists(args):
    """Raise a one-line ValueError naming the flag whose comma list holds an unknown name."""
    choices = dict(
        compare=PEERS,
        backends=BACKENDS,
        keras_hub_backends=BACKENDS,
        precisions=PRECISIONS,
        peer_precisions=PRECISIONS,
        keras_hub_precisions=PRECISIONS,
        serve_precisions=PRECISIONS,
    )
    for name, allowed in choices.items():
        for item in split_list(getattr(args, name) or ""):
            if item not in allowed:
                raise ValueError(f"--{name.replace('_', '-')} takes names from {list(allowed)}; found {item!r}")
    if not split_list(args.precisions):
        raise ValueError("--precisions must name at least one precision; found none")


def _check(args):
    """Validate the arguments and build `args.sections`; one-line errors, before anything runs."""
    for name in ("repeats", "steps", "batch_size", "image_size", "num_classes", "latency_calls", "warmup"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1; found {getattr(args, name)}")
    if args.tf_repeats < 0:
        raise ValueError(f"--tf-repeats must be >= 0; found {args.tf_repeats}")
    if args.tf_control and not args.tf_repeats:
        raise ValueError(f"--tf-control {args.tf_control} needs --tf-repeats N >= 1; found --tf-repeats 0")
    if args.steps_per_execution is not None and args.steps_per_execution < 1:
        raise ValueError(f"--steps-per-execution must be >= 1; found {args.steps_per_execution}")
    check_dropout(args.dropout, "--dropout")
    _check_lists(args)
    main_section = dict(
        preset=args.preset,
        image_size=args.image_size,
        batch_size=args.batch_size,
        num_classes=args.num_classes,
        tasks=split_list(args.tasks),
        steps=args.steps,
        spe=None,
        dropout=args.dropout,
    )
    check_section(main_section, "--tasks/--steps:")
    args.sections = [main_section]
    for text in args.model:
        section = parse_model(text, dict(main_section, tasks="+".join(main_section["tasks"])))
        check_section(section, f"--model {text!r}:")
        args.sections.append(section)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out must be a folder (created if missing); found a file at {args.out}")
    if args.markdown:
        outputs.check_markdown_path(args.markdown)


def parse_args(argv=None):
    """The run's arguments, checked, with `sections` (one dict per model) added; exits on bad input."""
    p = _parser()
    args = p.parse_args(argv)
    if args.gpu:
        args.preset = "vit_b16" if args.preset == "vit_ti16" else args.preset
        args.precisions = "mixed_bfloat16" if args.precisions == "float32" else args.precisions
        args.peer_precisions = "mixed_bfloat16" if args.peer_precisions == "float32" else args.peer_precisions
        args.serve_precisions = "mixed_bfloat16" if args.serve_precisions == "float32" else args.serve_precisions
    try:
        _check(args)
    except (ValueError, FileNotFoundError) as error:
        p.error(str(error))
    return args


def run_all(args, log_dir):
    """Run every group, then the TensorFlow repeats; return (results, peak, peak_info, tf_records)."""
    groups = {}
    for spec in job_specs(args):
        groups.setdefault(group_key(spec), []).append(spec)
    peak, peak_info, results = {}, {}, []
    for (section, task, precision), group in groups.items():
        title = section_title(args.sections[section])
        print(f"== {title}: {task} {precision}: {len(group)} configurations", flush=True)
        results += run_group(group, args, log_dir, peak, peak_info)
    tf_records = []
    if args.tf_repeats:
        spec = tf_repeat_spec(args)
        print(f"== TensorFlow run to run: {args.tf_repeats} fresh processes of {label(spec)}", flush=True)
        control = tf_control_spec(args) if args.tf_control else None
        tf_records = run_tf_repeats(spec, args, log_dir, control)
    return results, peak, peak_info, tf_records


def _report(args, measured, command, started):
    """Everything the tables and files show, as one dict."""
    results, peak, peak_info, tf_records = measured
    tf_rows, tf_spreads = summarise_tf_repeats(tf_records, peak)
    errors = [(r["name"], r["error"]) for r in results + tf_records if "error" in r]
    return dict(
        command=command,
        started=started,
        args=dict(vars(args)),
        machine=cpu_description(),
        matmul_peak_gflops=peak,
        matmul_peak_info=peak_info,
        sections=args.sections,
        rows=summarise(results, peak, args),
        tf_rows=tf_rows,
        tf_spread=tf_spreads["images_per_s"],
        tf_spreads=tf_spreads,
        tf_name=label(tf_repeat_spec(args)),
        errors=errors,
        raw=results,
        tf_raw=tf_records,
    )


def main(argv=None):
    args = parse_args(argv)
    now = datetime.datetime.now(datetime.timezone.utc)
    started, date = now.strftime("%Y-%m-%d %H:%M"), now.strftime("%Y-%m-%d")
    command = shlex.join(["python", "scripts/benchmark.py", *(sys.argv[1:] if argv is None else argv)])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = os.path.join(args.out, f"logs-{stamp}")
    os.makedirs(log_dir, exist_ok=True)

    report = _report(args, run_all(args, log_dir), command, started)
    title = args.title or " + ".join(section_title(s) for s in args.sections)
    text = markdown_section(report, title, date, gpu=args.gpu)
    print()
    print(text)
    base = os.path.join(args.out, f"benchmark-{stamp}")
    outputs.write_json(base + ".json", report)
    outputs.write_csv(base + ".csv", report["rows"] + report["tf_rows"])
    print(f"wrote {base}.json and {base}.csv")
    if args.markdown:
        replaced = outputs.write_markdown(args.markdown, heading(title, date), text)
        print(f"{'replaced the section in' if replaced else 'appended the section to'} {args.markdown}")
    return 0 if report["rows"] or report["tf_rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
