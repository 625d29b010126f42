"""The timed workloads: one model, one task (train / infer / savedmodel), one framework.

`build_workload(spec)` returns a `Workload` whose `run(steps)` performs `steps` steps and
returns the seconds they took, synchronised (results are materialised before the clock stops).
Every framework gets the same synthetic batch: `synthetic_batch(spec)` is seeded.

Tasks: "train" (`model.fit` steps; timm: its own loop), "infer" (the Keras model's
`predict_on_batch`; timm: eager forward under `torch.inference_mode`), "savedmodel" (ours only:
the exported SavedModel's `serving_default`) and "serve": the same two inference paths (ours
through the SavedModel, timm eager), plus `Workload.latency(calls)`, the seconds of each of
`calls` single-image calls (the batch-1 latency of a serving request).

Frameworks ("impl"):
  vit_keras  this library on the Keras backend of the worker process (KERAS_BACKEND)
  timm       timm's VisionTransformer on PyTorch (eager, or torch.compile with spec["torch_compile"])
  keras-hub  keras_hub's ViTBackbone + ViTImageClassifier with their compile defaults
  matmul     not a model: the machine's matmul peak in float32 and bfloat16 (TensorFlow on the CPU,
             PyTorch on CUDA with spec["device"] == "gpu")

Dropout: a preset's own dropout is dropped; spec["dropout"] (default 0) is the rate every
implementation trains with, on the same four tensors of each model: the tokens after the position
embedding, the attention output (after its output projection), the MLP hidden activation and the
MLP output. Attention weights and the classifier's input are never dropped.
  vit_keras  `ViT(dropout=rate, attention_dropout=0)`: its `embedding_dropout` layer and each
             encoder block's dropout (after the attention, the MLP activation and the MLP output)
  timm       `VisionTransformer(pos_drop_rate=rate, proj_drop_rate=rate, attn_drop_rate=0,
             drop_rate=0)`: `pos_drop`; each block's `attn.proj_drop`, `mlp.drop1` and `mlp.drop2`.
             timm's `drop_rate` is its head dropout (before the classifier), which ours lacks: 0
  keras-hub  `ViTBackbone(dropout_rate=rate, attention_dropout=0)`: `ViTEncoder`'s input dropout
             (after the position embedding) and each block's dropout after the attention and
             inside its MLP (after dense_1's GELU and after dense_2); the classifier's own
             `dropout` (before its head) stays 0
Each workload's `info` records the arguments it was built with.
"""

import dataclasses
import os
import shutil
import tempfile
import time

import numpy as np

IMPLS = ("vit_keras", "timm", "keras-hub", "matmul")
TASKS = ("train", "infer", "savedmodel", "serve")


@dataclasses.dataclass
class Workload:
    run: callable  # run(steps) -> seconds
    info: dict  # what was actually configured (reported with the results)
    step_multiple: int = 1  # steps must be a multiple of this (steps_per_execution)
    latency: callable = None  # latency(calls) -> [seconds of each batch-1 call]; task "serve" only
    model: object = None  # the framework's model (None for the matmul peak), for inspection


def preset_architecture(name):
    """The architecture dict of a `vit_keras` preset without its dropout rates (the spec's `dropout` decides)."""
    from vit_keras.architectures import ARCHITECTURES

    dropped = ("dropout", "attention_dropout", "drop_path")
    return {key: value for key, value in ARCHITECTURES[name].items() if key not in dropped}


def synthetic_batch(spec):
    """The seeded (images, labels) batch every framework trains and infers on, channels-last."""
    arch = preset_architecture(spec["preset"])
    channels = arch.get("in_channels", 3)
    rng = np.random.default_rng(0)
    size = spec["image_size"]
    images = rng.uniform(0.0, 1.0, (spec["batch_size"], size, size, channels)).astype("float32")
    labels = rng.integers(0, spec["num_classes"], (spec["batch_size"],)).astype("int32")
    return images, labels


def architecture(spec):
    """The preset's architecture with the spec's image size, classes and dropout rate (default 0)."""
    arch = preset_architecture(spec["preset"])
    arch.update(image_size=spec["image_size"], num_classes=spec["num_classes"], dropout=spec_dropout(spec))
    arch.setdefault("in_channels", 3)
    return arch


def spec_dropout(spec):
    """The spec's dropout rate as a float (0 when the spec has none)."""
    return float(spec.get("dropout") or 0.0)


def timm_dropout_arguments(rate):
    """timm `VisionTransformer` arguments that drop the tensors `ViT(dropout=rate)` drops (module docstring)."""
    return dict(pos_drop_rate=rate, proj_drop_rate=rate, attn_drop_rate=0.0, drop_rate=0.0)


def keras_hub_dropout_arguments(rate):
    """(ViTBackbone, ViTImageClassifier) arguments that drop the tensors `ViT(dropout=rate)` drops."""
    return dict(dropout_rate=rate, attention_dropout=0.0), dict(dropout=0.0)


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------- vit_keras


def _keras_loss():
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _keras_optimizer():
    import keras

    return keras.optimizers.AdamW(learning_rate=1e-4)


def _parse_jit(value):
    return {"true": True, "false": False, "auto": "auto"}[str(value).lower()]


def vit_keras_workload(spec):
    import keras

    from vit_keras import ViT

    images, labels = synthetic_batch(spec)
    keras.mixed_precision.set_global_policy(spec["precision"])
    model = ViT(**architecture(spec))
    jit = _parse_jit(spec.get("jit_compile", "true"))
    spe = int(spec.get("steps_per_execution", 1))
    info = {"backend": keras.backend.backend(), "jit_compile": jit, "steps_per_execution": spe}
    info.update(dropout=model.dropout, attention_dropout=model.attention_dropout)
    if spec["task"] in ("savedmodel", "serve"):
        return _savedmodel_workload(model, images, jit, info, with_latency=spec["task"] == "serve")
    model.compile(optimizer=_keras_optimizer(), loss=_keras_loss(), jit_compile=jit, steps_per_execution=spe)
    return _keras_workload(model, spec["task"], (images, labels), info, step_multiple=spe)


def _keras_workload(model, task, batch, info, step_multiple=1):
    """A compiled Keras model's workload: `model.fit` steps on the repeated batch ("train"), else
    `predict_on_batch` calls."""
    images, labels = batch
    if task == "train":
        dataset = _repeated_dataset(images, labels)

        def run(steps):
            return _timed(lambda: model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0))

        return Workload(run, info, step_multiple=step_multiple, model=model)

    def run(steps):
        return _timed(lambda: [model.predict_on_batch(images) for _ in range(steps)])

    return Workload(run, info, model=model)


def _repeated_dataset(images, labels):
    """One batch, repeated, for `model.fit`: no tf.data autotuning and no prefetch thread.

    On the 2-core machines here tf.data's autotuning competes with the training step for the
    cores: ViT-Ti/16 `fit` steps on TensorFlow + XLA took 6.8 s with `prefetch(AUTOTUNE)` and
    4.2-4.3 s without it (`train_on_batch`, which bypasses tf.data: 4.0-4.1 s). The batch is
    already in memory, so there is nothing to prefetch.
    """
    import tensorflow as tf

    from vit_keras.data import fixed_parallelism_options

    return tf.data.Dataset.from_tensors((images, labels)).repeat().with_options(fixed_parallelism_options())


def _savedmodel_workload(model, images, jit, info, with_latency=False):
    """Export `model` with `vit_keras.export_saved_model` (XLA when `jit`), reload it with
    `tf.saved_model.load`, time `serving_default` (the model plus its input checks, softmax and
    top-k) on the batch and, `with_latency`, on its first image alone, call by call."""
    import tensorflow as tf

    from vit_keras.export import export_saved_model

    root = tempfile.mkdtemp(prefix="vit_bench_")
    path = export_saved_model(model, os.path.join(root, "savedmodel"), jit_compile=jit is True)
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    shutil.rmtree(root, ignore_errors=True)
    batch, single = tf.constant(images), tf.constant(images[:1])
    info = dict(info, exported_with_xla=jit is True, signature="serving_default")

    def run(steps):
        return _timed(lambda: [serve(images=batch)["logits"].numpy() for _ in range(steps)])

    def latency(calls):
        return [_timed(lambda: serve(images=single)["logits"].numpy()) for _ in range(calls)]

    run.loaded = loaded  # the signature needs the loaded object (its variables) alive
    return Workload(run, info, latency=latency if with_latency else None, model=model)


# ---------------------------------------------------------------- keras-hub


def keras_hub_workload(spec):
    import keras
    import keras_hub

    images, labels = synthetic_batch(spec)
    arch = architecture(spec)
    backbone_dropout, classifier_dropout = keras_hub_dropout_arguments(arch["dropout"])
    keras.mixed_precision.set_global_policy(spec["precision"])
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(arch["image_size"], arch["image_size"], arch["in_channels"]),
        patch_size=arch["patch_size"],
        num_layers=arch["depth"],
        num_heads=arch["num_heads"],
        hidden_dim=arch["embed_dim"],
        mlp_dim=arch["mlp_dim"],
        **backbone_dropout,
    )
    model = keras_hub.models.ViTImageClassifier(
        backbone=backbone, num_classes=arch["num_classes"], **classifier_dropout
    )
    model.compile(optimizer=_keras_optimizer(), loss=_keras_loss())  # jit_compile: keras-hub's default
    info = {"backend": keras.backend.backend(), "jit_compile": "default", **backbone_dropout}
    info["classifier_dropout"] = classifier_dropout["dropout"]
    return _keras_workload(model, spec["task"], (images, labels), info)


# ---------------------------------------------------------------- timm


def _import_torchvision():
    """Import torchvision even where its C++ ops cannot load.

    PyPI's Linux torchvision wheel is a CUDA build: next to the CPU-only torch its `_C.so` does not
    load, and its import then fails registering fakes for `torchvision::nms`/`qnms`. timm's models do
    not use those ops, so declaring the two schemas lets the import (and timm) go through.
    """
    import sys

    import torch

    try:
        import torchvision  # noqa: F401

        return
    except RuntimeError as error:
        if "torchvision::nms" not in str(error):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    library = torch.library.Library("torchvision", "FRAGMENT")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _import_torchvision.library = library  # keep the definitions alive
    import torchvision  # noqa: F401,F811


def timm_workload(spec):
    import contextlib

    import torch

    _import_torchvision()
    import timm  # noqa: F401  (fails early with a clear ImportError when the extra is missing)
    from timm.models.vision_transformer import VisionTransformer

    images, labels = synthetic_batch(spec)
    arch = architecture(spec)
    device = "cuda" if spec.get("device") == "gpu" else "cpu"
    model = VisionTransformer(
        img_size=arch["image_size"],
        patch_size=arch["patch_size"],
        in_chans=arch["in_channels"],
        num_classes=arch["num_classes"],
        embed_dim=arch["embed_dim"],
        depth=arch["depth"],
        num_heads=arch["num_heads"],
        mlp_ratio=arch["mlp_dim"] / arch["embed_dim"],
        **timm_dropout_arguments(arch["dropout"]),
    ).to(device)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).to(device)
    y = torch.from_numpy(labels.astype("int64")).to(device)
    bf16 = spec["precision"] == "mixed_bfloat16"
    autocast = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    compiled = bool(spec.get("torch_compile"))
    forward = torch.compile(model) if compiled else model
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    info = {"backend": "torch", "device": device, "torch_compile": compiled, "threads": torch.get_num_threads()}
    info.update(timm_dropout_arguments(arch["dropout"]))

    if spec["task"] == "train":
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = torch.nn.functional.cross_entropy(forward(x), y)
            loss.backward()
            optimizer.step()
    else:
        model.eval()

        def step(inputs=x):
            with torch.inference_mode(), autocast():
                forward(inputs)

    def run(steps):
        def steps_fn():
            for _ in range(steps):
                step()
            sync()

        return _timed(steps_fn)

    def latency(calls):
        return [_timed(lambda: (step(x[:1]), sync())) for _ in range(calls)]

    return Workload(run, info, latency=latency if spec["task"] == "serve" else None, model=model)


# ---------------------------------------------------------------- matmul peak


def matmul_workload(spec):
    """`run(steps)` returns {dtype: best GFLOP/s} of square matmuls; the orchestrator keeps the max.

    On the CPU the peak is TensorFlow's (the backend most of our rows run on); with
    `spec["device"] == "gpu"` it is PyTorch's on CUDA (float32 without TF32, and bfloat16), so the
    bfloat16 column of a `--gpu` run is the model FLOPs utilisation.
    """
    if spec.get("device") == "gpu":
        return _cuda_matmul_workload(int(spec.get("matmul_size", 8192)))
    import tensorflow as tf

    n = int(spec.get("matmul_size", 2048))
    operands = {
        dtype: (tf.random.normal((n, n), dtype=tf.float32), tf.random.normal((n, n), dtype=tf.float32))
        for dtype in ("float32", "bfloat16")
    }
    operands = {d: (tf.cast(a, d), tf.cast(b, d)) for d, (a, b) in operands.items()}
    matmul = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.linalg.matmul(a, b), tf.float32)))

    def run(steps):
        rates = {}
        for dtype, (a, b) in operands.items():
            matmul(a, b).numpy()  # warm-up / trace
            best = min(_timed(lambda a=a, b=b: matmul(a, b).numpy()) for _ in range(max(steps, 3)))
            rates[dtype] = 2 * n**3 / best / 1e9
        return rates

    return Workload(run, {"backend": "tensorflow", "device": "cpu", "matmul_size": n})


def _cuda_matmul_workload(n):
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("device 'gpu' was asked for, but torch.cuda.is_available() is False")
    torch.backends.cuda.matmul.allow_tf32 = False  # "float32" means float32, not TF32
    operands = {
        name: [torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2)]
        for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16))
    }

    def run(steps):
        rates = {}
        for name, (a, b) in operands.items():

            def ten_matmuls(a=a, b=b):
                for _ in range(10):
                    a @ b
                torch.cuda.synchronize()

            ten_matmuls()  # warm-up (cuBLAS heuristics)
            best = min(_timed(ten_matmuls) for _ in range(max(steps, 3)))
            rates[name] = 10 * 2 * n**3 / best / 1e9
        return rates

    return Workload(run, {"backend": "torch", "device": "cuda", "matmul_size": n, "gpu": torch.cuda.get_device_name()})


def build_workload(spec):
    builders = {
        "vit_keras": vit_keras_workload,
        "timm": timm_workload,
        "keras-hub": keras_hub_workload,
        "matmul": matmul_workload,
    }
    if spec["impl"] not in builders:
        raise ValueError(f"impl must be one of {list(builders)}; found {spec['impl']!r}.")
    if spec["impl"] != "matmul" and spec["task"] not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}; found {spec['task']!r}.")
    if spec["task"] == "savedmodel" and spec["impl"] != "vit_keras":
        raise ValueError(f"task 'savedmodel' is measured for vit_keras only; found impl {spec['impl']!r}.")
    if spec["task"] == "serve" and spec["impl"] not in ("vit_keras", "timm"):
        raise ValueError(f"task 'serve' is measured for vit_keras and timm; found impl {spec['impl']!r}.")
    return builders[spec["impl"]](spec)
