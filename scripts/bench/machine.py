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


def _first_fields(text):
    """{field: value} of a /proc/cpuinfo text, each field's first non-empty value (the first processor's)."""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if value.strip():
            fields.setdefault(key.strip(), value.strip())
    return fields


def parse_cpuinfo(text):
    """The first processor's model name and flag set in a /proc/cpuinfo text.

    Args:
        text: the contents of /proc/cpuinfo.

    Returns:
        (model name or None, set of flags; empty when the text lists none).
    """
    fields = _first_fields(text)
    return fields.get("model name"), set(fields.get("flags", "").split())


def cpu_generation(text):
    """`family F, model M` of the first processor in a /proc/cpuinfo text, or None.

    Virtual machines often report a bare model name ("AMD EPYC"); the family and model numbers
    still tell the generations apart (AMD family 25: Zen 3 and Zen 4, family 26: Zen 5).
    """
    fields = _first_fields(text)
    if "cpu family" not in fields or "model" not in fields:
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
