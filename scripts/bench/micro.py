"""What the single-kernel benchmarks (matmul_libraries.py, xla_products.py, dropout_draws.py,
bfloat16_kernels.py) share: their `--repeats` command line, the CPU line they print first, the
median timing of one call and their workers in fresh processes.

Nothing here imports a deep-learning framework.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench.machine import cpu_description, describe_flags


def parse_repeats(description, what, argv=None, repeats=9, rounds=None):
    """Parse `--repeats N` (timed calls per `what`, default `repeats`; the median is reported) and,
    when `rounds` is given, `--rounds N` (alternating rounds, default `rounds`); exit on N < 1."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=repeats, help=f"timed calls per {what} (median reported)")
    if rounds is not None:
        parser.add_argument("--rounds", type=int, default=rounds, help="alternating rounds (median reported)")
    args = parser.parse_args(argv)
    for name in ("repeats", "rounds"):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name} must be >= 1; found {getattr(args, name)}")
    return args


def print_cpu():
    """Print the CPU model, its logical CPUs and the vector flags that decide its speed."""
    cpu = cpu_description()
    print(f"CPU: {cpu['model']} ({cpu['cores']} logical CPUs; {describe_flags(cpu['flags'])})")


def median_seconds(fn, repeats):
    """Median wall time of `repeats` calls of `fn`, after one untimed call (compilation, warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_in_process(script, variable, framework, repeats, keras_backend):
    """Run `script` again in a fresh process as the worker of `framework`; return its JSON line.

    The worker sees `variable`=`framework` (it then prints its measurements as one JSON line) and
    KERAS_BACKEND=`keras_backend`, with TensorFlow's C++ logging off.
    """
    command = [sys.executable, os.path.abspath(script), "--repeats", str(repeats)]
    env = dict(os.environ, **{variable: framework}, KERAS_BACKEND=keras_backend, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])
