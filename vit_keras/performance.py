"""The fast paths: XLA compilation, steps per execution, bfloat16 where it is measured faster, all CPUs.

    keras.mixed_precision.set_global_policy(fast_precision(width=192))   # embed_dim; before building
    model = vit_keras.vit_ti16()
    model.compile(optimizer, loss, metrics, **fast_compile_options())
    vit_keras.export_saved_model(model, "saved_models/vit", jit_compile=True)  # XLA-compiled serving

(The SavedModel exporter is `vit_keras.export.export_saved_model`; `jit_compile=True` is its fast path.)

The trainer (`vit_keras.train`) calls `configure_cpu_threads()` before its first TensorFlow op,
resolves `--precision auto` with `resolve_precision` and `--jit-compile auto` with `pick_jit_compile`
(XLA on TensorFlow only for runs long enough to pay for its compile).
"""

import os
import sys

import keras

from vit_keras.choices import PRECISIONS

BFLOAT16 = "mixed_bfloat16"
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bfloat16 matmuls
# `pick_jit_compile` gives TensorFlow XLA from this many optimizer steps on. Measured on a
# 2-vCPU AMD EPYC (Zen 3, AVX2), batch 128, 28 px, AdamW, Keras 3.15 / TF 2.21: vit_mnist_p7's
# first step (with the compile) took 8.4 s with XLA and 3.9 s without, its steps 15 ms and 33 ms
# (break-even about 250 steps); vit_mnist_tiny's first step 10.1-10.7 s and 6.0-6.9 s, its steps
# 133-135 ms and 129-143 ms (break-even 500+ steps).
XLA_MIN_TRAINING_STEPS = 300
# On the CPU, `pick_precision` gives TensorFlow bfloat16 only for models at least this wide (the
# width is the inner size of most of the model's products), and JAX none. Training images/s on a
# 2-vCPU AMD EPYC (Zen 4, AVX512_BF16), bfloat16 over float32: ViT-Ti/16 (width 192): TensorFlow
# 1.34x (without XLA, over float32 with XLA), JAX 0.84x (9.2 / 11.0, a run of JAX alone), PyTorch
# 1.93x; vit_mnist_p7 (width 100, batch 128): TensorFlow 0.47x, JAX 0.62x, PyTorch 1.04x;
# vit_mnist_tiny (width 64, batch 128): TensorFlow 1.00x, JAX 0.84x, PyTorch 1.28x. PyTorch gets
# bfloat16 at every width.
CPU_BF16_MIN_WIDTH = 128


def fast_compile_options(steps_per_execution=8):
    """Keyword arguments for `model.compile` that give the fastest steps on this backend.

    XLA (`jit_compile=True`) on TensorFlow and JAX: Keras' "auto" turns XLA off on CPU-only
    TensorFlow, where it is the biggest single lever. Eager on PyTorch (torch.compile through
    Keras is slower for this model). `steps_per_execution` runs several steps per call, keeping
    Python out of the hot loop; it only changes how often callbacks and progress bars update
    (Keras' PyTorch backend supports only 1, which it gets there). TensorFlow on the CPU under a
    bfloat16 global policy runs without XLA (see `xla_slows_bfloat16`). For a run of a few hundred
    steps or fewer, `pick_jit_compile` says whether XLA's compile pays for itself on TensorFlow.
    """
    if not isinstance(steps_per_execution, int) or steps_per_execution < 1:
        raise ValueError(f"steps_per_execution must be a positive int; found {steps_per_execution!r}.")
    backend = keras.backend.backend()
    compiled = backend in ("tensorflow", "jax")
    return {
        "jit_compile": compiled and not xla_slows_bfloat16(backend),
        "steps_per_execution": steps_per_execution if compiled else 1,
    }


def xla_slows_bfloat16(backend=None, precision=None):
    """Whether XLA would run this bfloat16 training slower than TensorFlow's own kernels.

    True for TensorFlow on the CPU with a bfloat16 policy: XLA's CPU dots compute bfloat16 in
    float32, while TensorFlow's oneDNN kernels use the CPU's native bfloat16 instructions. On a
    2-vCPU AMD EPYC (Zen 4, AVX512_BF16) a 6304 x 192 x 768 bfloat16 matmul ran at 145 GFLOP/s
    under XLA (162 in float32) and 274 in TensorFlow without XLA; ViT-Ti/16 training in
    `mixed_bfloat16` took 15.9 images/s with XLA and 23.2 without (float32 with XLA: 17.3).

    Args:
        backend: the Keras backend name; default: the current one.
        precision: the dtype policy name; default: the global policy's.
    """
    backend = backend or keras.backend.backend()
    precision = precision or keras.config.dtype_policy().name
    return backend == "tensorflow" and "bfloat16" in precision and not has_gpu()


def pick_jit_compile(training_steps, backend=None, precision=None):
    """Whether XLA pays for its compile in a training run of `training_steps` optimizer steps, and why.

    TensorFlow: XLA from `XLA_MIN_TRAINING_STEPS` steps on; in shorter runs its one-off compile
    costs more time than its faster steps save. Never for bfloat16 on the CPU, where XLA computes
    it in float32 (`xla_slows_bfloat16`). JAX: always (its steps without XLA were measured
    7-14x slower, and even its first step slower). PyTorch: never (it runs eagerly, as in
    `fast_compile_options`). This is what `vit-keras train --jit-compile auto` does;
    `fast_compile_options` gives XLA on TensorFlow regardless, for runs known to be long.

    Args:
        training_steps: the optimizer steps the run takes (epochs x steps per epoch), a positive int.
        backend: the Keras backend name; default: the current one.
        precision: the run's dtype policy name; default: the global policy's.

    Returns:
        (jit_compile, reason): the `jit_compile` value for `model.compile` and one sentence saying why.

    Raises:
        ValueError: `training_steps` is not a positive int.

    Example:

    >>> pick_jit_compile(40, backend="tensorflow")
    (False, "40 training steps < 300, too few to pay for XLA's compile on TensorFlow")
    """
    if isinstance(training_steps, bool) or not isinstance(training_steps, int) or training_steps < 1:
        raise ValueError(f"training_steps must be a positive int; found {training_steps!r}.")
    backend = backend or keras.backend.backend()
    if backend == "jax":
        return True, "JAX runs its steps several times slower without XLA"
    if backend == "torch":
        return False, "PyTorch runs eagerly (torch.compile through Keras is slower for this model)"
    if backend != "tensorflow":
        return False, f"the {backend} backend has no XLA"
    if xla_slows_bfloat16(backend, precision):
        return False, "XLA computes bfloat16 in float32 on the CPU; TensorFlow's own kernels run it natively"
    steps, least = f"{training_steps:,} training steps", XLA_MIN_TRAINING_STEPS
    if training_steps < least:
        return False, f"{steps} < {least}, too few to pay for XLA's compile on TensorFlow"
    return True, f"{steps} >= {least}, enough to pay for XLA's compile on TensorFlow"


def _cpuinfo(field):
    """The value of `field` for the first CPU in /proc/cpuinfo; "" where it is not available."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                name, _, value = line.partition(":")
                if name.strip() == field:
                    return value.strip()
    except OSError:
        pass
    return ""


def cpu_flags():
    """The CPU feature flags of this machine (empty where /proc/cpuinfo is not available)."""
    return set(_cpuinfo("flags").split())


def cpu_vendor():
    """The CPU vendor, e.g. "GenuineIntel" or "AuthenticAMD" ("" where /proc/cpuinfo is not available)."""
    return _cpuinfo("vendor_id")


def has_gpu():
    """Whether the backend sees a GPU."""
    return any(device.startswith(("gpu", "cuda")) for device in _devices())


def _devices():
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.device_type.lower() for d in tf.config.list_physical_devices()]
    if backend == "jax":
        import jax

        return [d.platform.lower() for d in jax.devices()]
    if backend == "torch":
        import torch

        return ["cuda"] if torch.cuda.is_available() else ["cpu"]
    return ["cpu"]


def bfloat16_supported():
    """Whether bfloat16 matmuls run natively: a GPU of compute capability >= 8 (Ampere) or
    TPU, or a CPU with AVX512_BF16 or AMX-BF16."""
    if has_gpu():
        return gpu_compute_capability() >= (8, 0)
    return bool(cpu_flags() & set(CPU_BF16_FLAGS))


def gpu_compute_capability():
    """(major, minor) CUDA compute capability of the first GPU the backend sees; (0, 0) when unknown."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        elif backend == "torch":
            import torch

            capability = torch.cuda.get_device_capability(0)
        else:
            import jax

            capability = str(getattr(jax.devices("gpu")[0], "compute_capability", "0.0")).split(".")
        return tuple(int(part) for part in capability[:2])
    except (AssertionError, IndexError, ValueError, RuntimeError):  # no GPU, or a CPU-only build
        return (0, 0)


def fast_precision(backend=None, width=None):
    """The faster dtype policy on this machine: the policy of `pick_precision(backend, width)`.

    Args:
        backend: the Keras backend name; default: the current one.
        width: the model's width (`embed_dim`); default: unknown, treated as wide enough.

    Returns:
        "mixed_bfloat16" where it was measured faster than float32 (see `pick_precision`), else "float32".
    """
    return pick_precision(backend, width)[0]


def pick_precision(backend=None, width=None):
    """The dtype policy `--precision auto` resolves to on this machine, and why.

    bfloat16 (`"mixed_bfloat16"`) only where it was measured faster than float32: a GPU of compute
    capability >= 8.0, or a CPU with AVX512_BF16 or AMX-BF16 on PyTorch, and on TensorFlow for
    models of width `CPU_BF16_MIN_WIDTH` or more (narrower models' products are too small for
    bfloat16 to pay); never JAX on a CPU, whose XLA computes bfloat16 products through float32.
    Measured on a 2-vCPU AMD EPYC (Zen 4, AVX512_BF16), ViT-Ti/16 training images/s in
    `mixed_bfloat16` against float32: PyTorch 29.3 / 15.2, TensorFlow without XLA 23.2 against
    float32 with XLA 17.3 (with XLA, bfloat16 took 15.9: TensorFlow trains bfloat16 on the CPU
    without XLA, see `xla_slows_bfloat16`), JAX 9.2 / 11.0 (BENCHMARKS.md).

    Args:
        backend: the Keras backend name; default: the current one.
        width: the model's width (`embed_dim`); default: unknown, treated as wide enough.

    Returns:
        (policy, reason): a value of `vit_keras.choices.PRECISIONS` other than "auto", and one
        sentence naming the device, CPU flag, backend or model width it was picked for.

    Example:

    >>> policy, reason = pick_precision("torch")
    >>> policy in ("float32", "mixed_bfloat16")
    True
    """
    backend = backend or keras.backend.backend()
    if has_gpu():
        major, minor = gpu_compute_capability()
        if (major, minor) >= (8, 0):
            return BFLOAT16, f"GPU of compute capability {major}.{minor}: native bfloat16"
        return "float32", f"GPU of compute capability {major}.{minor}: below 8.0, no native bfloat16"
    native = sorted(cpu_flags() & set(CPU_BF16_FLAGS))
    if not native:
        return "float32", f"CPU without {' or '.join(CPU_BF16_FLAGS)}: bfloat16 would be emulated"
    if backend == "jax":
        return "float32", (
            f"JAX on a CPU (with {native[0]}): XLA computes bfloat16 products through float32, "
            "bfloat16 trained slower than float32"
        )
    if backend == "tensorflow" and width is not None and width < CPU_BF16_MIN_WIDTH:
        return "float32", (
            f"{backend} on a CPU with {native[0]}, model width {width} (below {CPU_BF16_MIN_WIDTH}): "
            "its products are too small for bfloat16 to pay"
        )
    if backend == "tensorflow":
        return BFLOAT16, f"TensorFlow on a CPU with {native[0]}: native bfloat16 in TensorFlow's kernels, without XLA"
    return BFLOAT16, f"{backend} on a CPU with {native[0]}: native bfloat16"


def resolve_precision(precision, backend=None, width=None):
    """`precision` itself, or for "auto" the policy `pick_precision` gives; and the reason.

    Args:
        precision: a value of `vit_keras.choices.PRECISIONS` ("auto", "float32", ...).
        backend: the Keras backend name; default: the current one.
        width: the model's width (`embed_dim`), for `pick_precision`; default: unknown.

    Returns:
        (policy, reason): the Keras dtype policy name and one sentence saying why it was chosen.

    Raises:
        ValueError: `precision` is not one of `PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}; found {precision!r}.")
    if precision != "auto":
        return precision, "asked for with --precision"
    policy, reason = pick_precision(backend, width)
    return policy, f"--precision auto: {reason}"


def process_cpus():
    """The CPUs this process may run on: the union of the affinity masks of all its threads.

    A `taskset` or cgroup limit applies to every thread and stays in the union; a library that pins
    only the calling thread (OpenMP runtimes bind the thread that starts them) does not shrink it.
    """
    cpus = set(os.sched_getaffinity(0))
    try:
        thread_ids = os.listdir("/proc/self/task")
    except OSError:  # no procfs: the calling thread's mask is all there is to go by
        return cpus
    for thread_id in thread_ids:
        try:
            cpus |= os.sched_getaffinity(int(thread_id))
        except OSError:  # the thread ended meanwhile
            pass
    return cpus


def configure_cpu_threads():
    """Let the backend's thread pools run on every CPU of the process; call before the first TF op.

    TensorFlow (and XLA) create their thread pools on first use, sized by and inheriting the CPU
    affinity of the thread that creates them. When that thread has been pinned to one core, every
    pool computes on that one core, whatever `TF_NUM_INTRAOP_THREADS` says. This widens the calling
    thread's affinity back to `process_cpus()` and, on TensorFlow, sets the intra- and inter-op
    pools to one thread per CPU (unless `TF_NUM_INTRAOP_THREADS` / `TF_NUM_INTEROP_THREADS` set them).

    Returns:
        {"cpus": sorted CPU ids, "widened_from": the calling thread's CPUs before, or None when
        they were all already allowed, "intra_op" and "inter_op": TensorFlow's pool sizes (an int
        set here; "N (TF_NUM_..._THREADS)" where that variable sets it; None on another backend or
        when TensorFlow was already running), "summary": one line saying what was set}.
    """
    cpus = process_cpus()
    before = set(os.sched_getaffinity(0))
    if before != cpus:
        os.sched_setaffinity(0, cpus)
    intra_op, inter_op, note = _set_tensorflow_pools(len(cpus))
    summary = f"{len(cpus)} of {os.cpu_count()} CPUs ({_cpu_list(cpus)})" + (
        f", this thread widened from {_cpu_list(before)}" if before != cpus else ""
    )
    if intra_op or inter_op:
        summary += f"; TensorFlow intra-op {intra_op}, inter-op {inter_op} threads"
    summary += note
    return {
        "cpus": sorted(cpus),
        "widened_from": sorted(before) if before != cpus else None,
        "intra_op": intra_op,
        "inter_op": inter_op,
        "summary": summary,
    }


def _set_tensorflow_pools(count):
    """(intra-op, inter-op, note): the pool sizes TensorFlow gets; it sizes its pools once, at its first op.

    A pool whose `TF_NUM_INTRAOP_THREADS` / `TF_NUM_INTEROP_THREADS` is set is left to TensorFlow.
    """
    if "tensorflow" not in sys.modules and keras.backend.backend() != "tensorflow":
        return None, None, ""
    import tensorflow as tf

    threading = tf.config.threading
    pools = {
        "TF_NUM_INTRAOP_THREADS": (
            threading.get_intra_op_parallelism_threads,
            threading.set_intra_op_parallelism_threads,
        ),
        "TF_NUM_INTEROP_THREADS": (
            threading.get_inter_op_parallelism_threads,
            threading.set_inter_op_parallelism_threads,
        ),
    }
    sizes = []
    try:
        for variable, (get, set_threads) in pools.items():
            if os.environ.get(variable):
                sizes.append(f"{os.environ[variable]} ({variable})")
                continue
            if get() != count:
                set_threads(count)
            sizes.append(count)
    except RuntimeError:  # TensorFlow already started its pools (an earlier op): they keep their size
        return None, None, " (TensorFlow was already running: its pools keep their sizes)"
    return sizes[0], sizes[1], ""


def _cpu_list(cpus):
    return ",".join(str(cpu) for cpu in sorted(cpus))
