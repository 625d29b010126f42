"""What one benchmark run measures: models ("sections"), their worker specs and how they are grouped.

A section is one model at one image size and batch size with its tasks and timed steps: the
main one comes from --preset/--image-size/--batch-size/--num-classes/--tasks/--steps/--dropout,
each `--model key=value,...` adds one (keys: preset, image_size, batch_size, num_classes, tasks
with '+' between tasks, steps, spe, dropout). A section's `dropout` (default 0) is the rate every
implementation trains its model with, on the same tensors (see `bench.workloads`); a non-zero
rate is named in the section's title. `job_specs` turns the sections into one spec per worker
process; `group_key` says which workers live (and are interleaved) together: one section, one
task (the SavedModel with the inference it is compared with) and one precision, so that at most
one precision's models are in memory at a time.
"""

TASKS = ("train", "infer", "savedmodel", "serve")
BACKENDS = ("tensorflow", "jax", "torch")
PRECISIONS = ("float32", "mixed_bfloat16")
MODEL_KEYS = dict(
    preset=str, image_size=int, batch_size=int, num_classes=int, tasks=str, steps=int, spe=int, dropout=float
)


def split_list(text):
    """'a,b,,c' -> ['a', 'b', 'c']."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_model(text, defaults):
    """One `--model` value, 'preset=vit_mnist_p7,image_size=28,...', as a section dict.

    Args:
        text: comma-separated key=value pairs; keys from `MODEL_KEYS`, tasks joined by '+'.
        defaults: the section dict whose values fill the keys not given.

    Returns:
        A section dict (keys of `MODEL_KEYS`, tasks as a list).

    Raises:
        ValueError: an unknown key, a pair without '=', a value of the wrong type.
    """
    section = dict(defaults)
    for pair in split_list(text):
        key, sep, value = pair.partition("=")
        if not sep or key not in MODEL_KEYS:
            raise ValueError(f"--model takes key=value pairs with keys {list(MODEL_KEYS)}; found {pair!r} in {text!r}")
        try:
            section[key] = MODEL_KEYS[key](value)
        except ValueError:
            kind = "a number" if MODEL_KEYS[key] is float else "an integer"
            raise ValueError(f"--model {key} must be {kind}; found {value!r} in {text!r}") from None
    if isinstance(section["tasks"], str):
        section["tasks"] = [task for task in section["tasks"].split("+") if task]
    return section


def check_dropout(rate, name):
    """Raise a one-line ValueError naming `name` unless `rate` is a dropout rate, in [0, 1)."""
    if not 0.0 <= rate < 1.0:  # also false for NaN
        raise ValueError(f"{name} must be a rate in [0, 1); found {rate}")


def check_section(section, where):
    """Raise a one-line ValueError naming `where` when a section's values are out of range."""
    for key in ("image_size", "batch_size", "num_classes", "steps"):
        if section[key] < 1:
            raise ValueError(f"{where} {key} must be >= 1; found {section[key]}")
    if section.get("spe") is not None and section["spe"] < 1:
        raise ValueError(f"{where} spe must be >= 1; found {section['spe']}")
    check_dropout(section.get("dropout", 0.0), f"{where} dropout")
    unknown = [task for task in section["tasks"] if task not in TASKS]
    if unknown or not section["tasks"]:
        raise ValueError(f"{where} tasks must be among {list(TASKS)}; found {section['tasks']}")


def dropout_note(section):
    """', dropout 0.1' for a section trained with dropout; '' without (today's titles unchanged)."""
    rate = section.get("dropout") or 0.0
    return f", dropout {rate:g}" if rate else ""


def section_title(section):
    """'vit_ti16, 224 px, batch 32'; with dropout 'vit_mnist_p7, 28 px, batch 128, dropout 0.1'."""
    return f"{section['preset']}, {section['image_size']} px, batch {section['batch_size']}{dropout_note(section)}"


def _ours(args, section):
    spe = section.get("spe") or args.steps_per_execution or section["steps"]
    ours = [(b, p, args.jit_compile, spe) for b in split_list(args.backends) for p in split_list(args.precisions)]
    for variant in filter(None, args.variants.split(";")):
        backend, precision, jit, v_spe = variant.split(":")
        ours.append((backend, precision, jit, int(v_spe)))
    return ours


def _peers(args, task):
    """(impl, backend, precision) of each peer worker of `task`."""
    peers = []
    for peer in split_list(args.compare):
        if peer == "timm":
            peers += [("timm", "torch", p) for p in split_list(args.peer_precisions)]
        elif task != "serve":  # serving is compared with timm's eager inference only
            kh_precisions = split_list(args.keras_hub_precisions or args.peer_precisions)
            peers += [("keras-hub", b, p) for b in split_list(args.keras_hub_backends) for p in kh_precisions]
    return peers


def _base(args, section, index):
    """The spec fields every worker of a section shares."""
    return dict(
        section=index,
        preset=section["preset"],
        image_size=section["image_size"],
        batch_size=section["batch_size"],
        num_classes=section["num_classes"],
        steps=section["steps"],
        dropout=section.get("dropout") or 0.0,
        warmup_steps=args.warmup,
        device="gpu" if args.gpu else "cpu",
    )


def _section_specs(args, section, index):
    base = _base(args, section, index)
    specs = []
    for task in section["tasks"]:
        for backend, precision, jit, spe in _ours(args, section):
            if task in ("savedmodel", "serve") and backend != "tensorflow":
                continue  # the SavedModel is loaded and called through TensorFlow
            if task == "serve" and precision not in split_list(args.serve_precisions):
                continue
            if backend == "torch":  # Keras on PyTorch runs eagerly, one step per call (fast_compile_options)
                jit, spe = "false", 1
            ours = dict(impl="vit_keras", task=task, backend=backend, precision=precision, jit_compile=jit)
            specs.append(dict(base, **ours, steps_per_execution=spe if task == "train" else 1))
        if task == "savedmodel":
            continue
        for impl, backend, precision in _peers(args, task):
            if task == "serve" and precision not in split_list(args.serve_precisions):
                continue
            specs.append(dict(base, impl=impl, task=task, backend=backend, precision=precision, torch_compile=args.gpu))
    return specs


def job_specs(args):
    """One spec per worker process, section by section, in the order they are run.

    Args:
        args: the parsed arguments of scripts/benchmark.py (with `args.sections`).

    Returns:
        A list of spec dicts (the JSON each worker gets).
    """
    return [spec for index, section in enumerate(args.sections) for spec in _section_specs(args, section, index)]


def group_key(spec):
    """Workers with the same key run together, their timed repeats interleaved."""
    task = "infer" if spec["task"] == "savedmodel" else spec["task"]
    return spec.get("section", 0), task, spec["precision"]


def tf_repeat_spec(args):
    """The TensorFlow training worker `--tf-repeats` runs again in fresh processes: ours on the
    first section's model, the first precision, with the run's XLA and steps-per-execution choice."""
    section = args.sections[0]
    spe = section.get("spe") or args.steps_per_execution or section["steps"]
    ours = dict(impl="vit_keras", task="train", backend="tensorflow", jit_compile=args.jit_compile)
    return dict(_base(args, section, 0), **ours, precision=split_list(args.precisions)[0], steps_per_execution=spe)


def tf_control_spec(args):
    """The control `--tf-control timm` runs after each `--tf-repeats` process: timm's training of
    the same model, batch and precision, in a fresh process of its own."""
    base = tf_repeat_spec(args)
    return dict(
        _base(args, args.sections[0], 0), impl="timm", task="train", backend="torch", precision=base["precision"]
    )


def label(spec):
    """The configuration's name in tables and logs, e.g. 'vit_keras train tensorflow float32 jit=true spe=2'."""
    if spec["impl"] == "matmul":
        return "matmul peak"
    text = f"{spec['impl']} {spec['task']} {spec['backend']} {spec['precision']}"
    if spec["impl"] == "vit_keras":
        text += f" jit={spec['jit_compile']}"
        if spec["task"] == "train":
            text += f" spe={spec['steps_per_execution']}"
    if spec["impl"] == "timm" and spec["precision"] == "mixed_bfloat16":
        text += " autocast"
    if spec.get("torch_compile") and spec["impl"] == "timm":
        text += " torch.compile"
    return text
