"""What the benchmark ran on: the CPU model and the vector / matrix flags that decide its speed.

Read from /proc/cpuinfo (Linux); elsewhere the model falls back to `platform.processor()` and
the flags are unknown. Nothing here imports a deep-learning framework.
"""

import os
import platform

# Flags quoted in the tables: name in the table -> /proc/cpuinfo flags that stand for it.
CPU_FLAGS = {
    "avx2": ("avx2",),
    "fma": ("fma",),
    "avx512f": ("avx512f",),
    "avx512_bf16": ("avx512_bf16",),
    "amx": ("amx_tile", "amx_bf16", "amx_int8"),
}


def parse_cpuinfo(text):
    """The first processor's model name and flag set in a /proc/cpuinfo text.

    Args:
        text: the contents of /proc/cpuinfo.

    Returns:
        (model name or None, set of flags; empty when the text lists none).
    """
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def cpu_generation(text):
    """`family F, model M` of the first processor in a /proc/cpuinfo text, or None.

    Virtual machines often report a bare model name ("AMD EPYC"); the family and model numbers
    still tell the generations apart (AMD family 25: Zen 3 and Zen 4, family 26: Zen 5).
    """
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("cpu family", "model") and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    if not {"cpu family", "model"} <= set(fields):
        return None
    return f"family {fields['cpu family']}, model {fields['model']}"


def cpu_description(cpuinfo_path="/proc/cpuinfo"):
    """The CPU as the benchmark tables report it.

    Args:
        cpuinfo_path: where to read the CPU description (Linux's /proc/cpuinfo).

    Returns:
        A dict: `model` (str: the model name and, where /proc/cpuinfo gives them, its family and
        model numbers), `cores` (logical CPUs), `flags` ({table flag: True/False}, or
        None values when the flags cannot be read).
    """
    try:
        with open(cpuinfo_path) as f:
            text = f.read()
        (model, flags), generation = parse_cpuinfo(text), cpu_generation(text)
    except OSError:
        model, flags, generation = None, None, None
    if model and generation:
        model = f"{model} ({generation})"
    found = {
        name: (None if not flags else any(flag in flags for flag in aliases)) for name, aliases in CPU_FLAGS.items()
    }
    return {"model": model or platform.processor() or "unknown CPU", "cores": os.cpu_count(), "flags": found}


def describe_flags(flags):
    """`avx2 yes, fma yes, avx512f no, ...` for the Markdown header."""
    words = {True: "yes", False: "no", None: "unknown"}
    return ", ".join(f"{name} {words[value]}" for name, value in flags.items())
