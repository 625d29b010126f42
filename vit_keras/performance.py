"""The fast paths: XLA compilation, steps per execution, bfloat16 where the hardware has it.

    keras.mixed_precision.set_global_policy(fast_precision())   # before building the model
    model = vit_keras.vit_ti16()
    model.compile(optimizer, loss, metrics, **fast_compile_options())
    vit_keras.export_saved_model(model, "saved_models/vit", jit_compile=True)  # XLA-compiled serving

(The SavedModel exporter is `vit_keras.export.export_saved_model`; `jit_compile=True` is its fast path.)
"""

import keras


def fast_compile_options(steps_per_execution=8):
    """Keyword arguments for `model.compile` that give the fastest steps on this backend.

    XLA (`jit_compile=True`) on TensorFlow and JAX: Keras' "auto" turns XLA off on CPU-only
    TensorFlow, where it is the biggest single lever. Eager on PyTorch (torch.compile through
    Keras is slower for this model). `steps_per_execution` runs several steps per call, keeping
    Python out of the hot loop; it only changes how often callbacks and progress bars update
    (Keras' PyTorch backend supports only 1, which it gets there).
    """
    if not isinstance(steps_per_execution, int) or steps_per_execution < 1:
        raise ValueError(f"steps_per_execution must be a positive int; found {steps_per_execution!r}.")
    compiled = keras.backend.backend() in ("tensorflow", "jax")
    return {"jit_compile": compiled, "steps_per_execution": steps_per_execution if compiled else 1}


def cpu_flags():
    """The CPU feature flags of this machine (empty where /proc/cpuinfo is not available)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


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
        return _gpu_has_bf16()
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def _gpu_has_bf16():
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        return tuple(capability) >= (8, 0)
    if backend == "torch":
        import torch

        return torch.cuda.is_bf16_supported()
    return True  # JAX: recent NVIDIA GPUs and TPUs


def fast_precision():
    """ "mixed_bfloat16" where the hardware runs bfloat16 natively, else "float32"."""
    return "mixed_bfloat16" if bfloat16_supported() else "float32"
