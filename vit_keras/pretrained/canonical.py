"""The canonical checkpoint: a flat {name: array} dict in Google's layout, keyed by our layers.

Every checkpoint format is first converted to this dict, which `assign_weights` then puts
into a model after checking every shape, so a load either applies whole or not at all.

Names: `patch_embedding/{kernel,bias}`, `class_token`, `position_embedding`,
`encoder_block_{i}/{norm1,norm2}/{scale,bias}`,
`encoder_block_{i}/attention/{query,key,value,out}/{kernel,bias}`,
`encoder_block_{i}/{mlp_in,mlp_out}/{kernel,bias}`, `encoder_norm/{scale,bias}`,
`pre_logits/{kernel,bias}` (optional), `head/{kernel,bias}` (optional).

The attention weights keep Google's per-head shapes (query, key and value kernels
(D, heads, d), biases (heads, d), out kernel (heads, d, D), bias (D,)); `model_variables`
maps them onto blocks of each encoder block's fused `SelfAttention` variables.
"""

import logging

import keras
import numpy as np

from vit_keras.layers.self_attention import QKV_PARTS, qkv_block
from vit_keras.pretrained.files import CheckpointError
from vit_keras.pretrained.resample import resample_table

log = logging.getLogger("vit_keras")


class CanonicalWeight:
    """One canonical weight: a model variable, or a block of a fused attention variable.

    Attributes:
        name: the canonical name.
        variable: the `keras.Variable` that holds the weight.
        index: the slice of `variable` it occupies (`()`: the whole variable).
        shape: the canonical shape, which `variable[index]` takes when reshaped.
        dtype: the variable's dtype.
    """

    def __init__(self, name, variable, index=(), shape=None):
        self.name = name
        self.variable = variable
        self.index = index
        self.shape = tuple(variable.shape) if shape is None else tuple(shape)
        self.dtype = variable.dtype

    def numpy(self):
        """The weight's current value, a NumPy array of `shape`."""
        return self.read(keras.ops.convert_to_numpy(self.variable))

    def read(self, value):
        """This weight's block of `value`, a NumPy array of the variable's shape."""
        return np.asarray(value)[self.index].reshape(self.shape)

    def write(self, value, array):
        """Write `array` (of `shape`) into this weight's block of `value`, in place."""
        value[self.index] = np.reshape(array, value[self.index].shape)

    def __repr__(self):
        return f"<CanonicalWeight {self.name} shape={self.shape} of {self.variable.path}>"


def _layer_norm(layer):
    return {"scale": layer.gamma, "bias": layer.beta}


def _dense(layer):
    return {"kernel": layer.kernel, "bias": layer.bias}


def _attention(prefix, layer):
    """The canonical per-head weights of a `SelfAttention`, as blocks of its fused variables."""
    dim, heads = layer.out_kernel.shape[0], layer.num_heads
    per_head = (heads, dim // heads)
    weights = {}
    for part in QKV_PARTS:
        block = qkv_block(part, dim)
        weights[f"{prefix}/{part}/kernel"] = (layer.qkv_kernel, (slice(None), block), (dim,) + per_head)
        weights[f"{prefix}/{part}/bias"] = (layer.qkv_bias, (block,), per_head)
    weights[f"{prefix}/out/kernel"] = (layer.out_kernel, (), per_head + (dim,))
    weights[f"{prefix}/out/bias"] = (layer.out_bias, (), None)
    return {name: CanonicalWeight(name, *spec) for name, spec in weights.items()}


def model_variables(model):
    """The canonical weights of a ViT model (the head and pre-logits when present).

    Args:
        model: a `vit_keras.ViT` with the patch stem.

    Returns:
        {canonical name: `CanonicalWeight`}: each names the model variable that holds the
        weight (`.variable`), the block of it (`.index`), the canonical `.shape` and `.dtype`,
        and reads the value with `.numpy()`. The attention weights keep Google's per-head
        shapes (query kernel (D, heads, d), ...) and are blocks of the fused `SelfAttention`
        variables; every other weight is a whole variable.

    Example:

    >>> import vit_keras
    >>> model = vit_keras.ViT(image_size=28, patch_size=7, in_channels=1, num_classes=10,
    ...                       embed_dim=16, depth=1, num_heads=2, mlp_dim=32)
    >>> weight = model_variables(model)["encoder_block_0/attention/query/kernel"]
    >>> weight.shape, weight.variable.path, weight.numpy().shape
    ((16, 2, 8), 'encoder_block_0/attention/qkv_kernel', (16, 2, 8))
    """
    weights = {}

    def add(group, leaves):
        weights.update({f"{group}/{leaf}": CanonicalWeight(f"{group}/{leaf}", v) for leaf, v in leaves.items()})

    add("patch_embedding", _dense(model.get_layer("patch_embedding").projection))
    add("encoder_norm", _layer_norm(model.get_layer("encoder_norm")))
    for i in range(model.depth):
        block = model.get_layer(f"encoder_block_{i}")
        add(f"encoder_block_{i}/norm1", _layer_norm(block.norm1))
        add(f"encoder_block_{i}/norm2", _layer_norm(block.norm2))
        weights.update(_attention(f"encoder_block_{i}/attention", block.attention))
        add(f"encoder_block_{i}/mlp_in", _dense(block.mlp_in))
        add(f"encoder_block_{i}/mlp_out", _dense(block.mlp_out))
    names = {layer.name for layer in model.layers}
    for optional in ("pre_logits", "head"):
        if optional in names:
            add(optional, _dense(model.get_layer(optional)))
    weights["class_token"] = CanonicalWeight("class_token", model.get_layer("class_token").token)
    weights["position_embedding"] = CanonicalWeight("position_embedding", model.get_layer("position_embedding").table)
    return weights


_OPTIONAL = ("head/", "pre_logits/")


def _consistent_top(variables, weights, source):
    """Drop the checkpoint's head when exactly one of model and checkpoint has a pre-logits layer.

    The head's inputs then mean different things, so a head of matching shape would still
    give wrong logits. A pre-logits layer or head the model lacks is logged and not used.
    """
    model_has = "pre_logits/kernel" in variables
    checkpoint_has = "pre_logits/kernel" in weights
    if checkpoint_has and not model_has:
        log.warning(
            "%s: has a pre-logits (representation) layer the model lacks; it is not used "
            "(build with representation_size=%s to keep it).",
            source,
            np.shape(weights["pre_logits/kernel"])[-1],
        )
    drop = set()
    if model_has != checkpoint_has:
        drop.add("head/")
    if "head/kernel" not in variables and "head/kernel" in weights:
        log.warning("%s: has a classification head the model (include_top=False) lacks; it is not used.", source)
    drop.update(group for group in _OPTIONAL if f"{group}kernel" not in variables)
    return {k: v for k, v in weights.items() if not k.startswith(tuple(drop))}


def _name_list(names, limit=3):
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{names[:limit]}{more}"


def _depth(names):
    blocks = {n.split("/")[0] for n in names if n.startswith("encoder_block_")}
    return len(blocks)


def check_names(variables, weights, source):
    """Raise a CheckpointError unless `weights` and the model's `variables` have the same names.

    The head and pre-logits may be absent on either side (they are then left as initialised);
    every other weight must be in both.
    """
    missing = [n for n in variables if n not in weights and not n.startswith(_OPTIONAL)]
    unexpected = [n for n in weights if n not in variables]
    depths = f" (the checkpoint has {_depth(weights)} encoder blocks, the model {_depth(variables)})"
    depths = depths if _depth(weights) != _depth(variables) else ""
    if missing:
        raise CheckpointError(
            f"{source} is missing {len(missing)} weights the model needs, e.g. {_name_list(missing)}{depths}; "
            "build the model with the checkpoint's architecture."
        )
    if unexpected:
        raise CheckpointError(
            f"{source} has {len(unexpected)} weights the model has no place for, e.g. "
            f"{_name_list(unexpected)}{depths}; build the model with the checkpoint's architecture."
        )


def adapt_input_channels(kernel, channels, source="checkpoint"):
    """A (P, P, 3, D) patch kernel for `channels` input channels, as timm's `adapt_input_conv`.

    One channel: the sum over the checkpoint's channels (a grey image through an RGB filter).
    Another count: the RGB channels repeated and scaled by 3 / channels.

    Raises:
        CheckpointError: for a kernel of another channel count than 3 (timm adapts RGB
            kernels only: a 4-channel kernel cut to 3 would compute something else).
    """
    kernel = np.asarray(kernel)
    found = kernel.shape[2]
    if found != 3:
        raise CheckpointError(
            f"{source}: weight 'patch_embedding/kernel' has {found} input channels and the model {channels}; "
            "only a 3-channel (RGB) kernel is adapted to another channel count: build the model with "
            f"in_channels={found}."
        )
    if channels == 1:
        adapted = kernel.sum(axis=2, keepdims=True)
    else:
        repeats = -(-channels // found)
        adapted = np.tile(kernel, (1, 1, repeats, 1))[:, :, :channels] * (found / channels)
    log.warning(
        "%s: patch kernel adapted from %d to %d input channels (%s).",
        source,
        found,
        channels,
        "summed over channels" if channels == 1 else "channels repeated and rescaled",
    )
    return adapted.astype(kernel.dtype)


def _numpy_dtype(variable):
    """The NumPy dtype of `variable`'s values (float32 where NumPy does not know the name)."""
    try:
        return np.dtype(keras.backend.standardize_dtype(variable.dtype))
    except TypeError:
        return np.dtype("float32")


def _check_floating(name, array, source):
    """Raise a CheckpointError unless `array` holds real floating-point numbers."""
    if not np.issubdtype(array.dtype, np.floating):
        raise CheckpointError(
            f"{source}: weight {name!r} has dtype {array.dtype}; expected floating-point values "
            "(float16, bfloat16, float32 or float64): the file is corrupt or not a checkpoint of weights."
        )


def _as_variable_values(name, array, weight, source):
    """`array` cast to `weight`'s dtype; a CheckpointError where a value overflows it.

    Done before any variable is assigned, so that no cast can fail halfway through a load.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        cast = array.astype(_numpy_dtype(weight.variable))
    if not np.isfinite(cast).all():
        raise CheckpointError(
            f"{source}: weight {name!r} has values beyond the range of the model's {weight.dtype} "
            f"(largest magnitude {float(np.abs(array).max()):.3g}): the file is corrupt, or the model's dtype "
            "is too narrow for it."
        )
    return cast


def _fit(name, array, weight, context):
    """`array` made to `weight`'s shape where a rule allows (position table, input channels)."""
    expected = tuple(weight.shape)
    if array.shape == expected:
        return array
    if name == "position_embedding":
        try:
            return resample_table(
                array, context["grid"], context["interpolation"], context["antialias"], context["prefix"]
            )
        except ValueError as error:
            raise CheckpointError(
                f"{context['source']}: weight 'position_embedding' has shape {array.shape}, which cannot be "
                f"resampled to the model's {expected} ({error})."
            ) from None
    if (
        name == "patch_embedding/kernel"
        and array.ndim == 4
        and array.shape[:2] + array.shape[3:] == (expected[:2] + expected[3:])
    ):
        return adapt_input_channels(array, expected[2], context["source"])
    return array


def assign_weights(model, weights, source="checkpoint", interpolation="bilinear", antialias=False):
    """Put canonical `weights` into `model`, all or nothing.

    Args:
        model: a `vit_keras.ViT` with the patch stem.
        weights: {canonical name: array}.
        source: how the weights are named in messages (a file name).
        interpolation: "bilinear" or "bicubic": how the position table is resampled to the
            model's grid (torch's `F.interpolate`, align_corners=False, class row kept).
        antialias: resample with antialiasing, as timm does for its own state dicts.

    A head (or pre-logits) whose shape differs, or that the checkpoint or model lacks, is left
    as initialised and logged; a 3-channel patch kernel is summed into a 1-channel model's
    (logged). Any other missing name, name the model has no place for, or shape mismatch
    raises a ValueError (`CheckpointError`) before a single variable changes.

    Returns:
        The list of canonical names that were loaded.
    """
    variables = model_variables(model)
    weights = _consistent_top(variables, weights, source)
    check_names(variables, weights, source)
    table_layer = model.get_layer("position_embedding")
    context = dict(
        source=source,
        grid=table_layer.grid_size,
        prefix=table_layer.num_prefix_tokens,
        interpolation=interpolation,
        antialias=antialias,
    )
    plan, skipped = [], [name for name in variables if name not in weights]
    for name, weight in variables.items():
        if name in skipped:
            continue
        array = np.asarray(weights[name])
        _check_floating(name, array, source)
        array = _fit(name, array, weight, context)
        expected = weight.shape
        if array.shape != expected:
            if name.startswith(_OPTIONAL):
                skipped.append(name)
                continue
            raise CheckpointError(f"{source}: weight {name!r} has shape {array.shape}; the model expects {expected}.")
        plan.append((name, weight, _as_variable_values(name, array, weight, source)))
    for group in _OPTIONAL:  # a layer loads whole or not at all
        if any(name.startswith(group) for name in skipped):
            skipped += [name for name, _, _ in plan if name.startswith(group)]
            plan = [entry for entry in plan if not entry[0].startswith(group)]
    if skipped:
        log.warning("%s: left freshly initialised (absent or shaped for another head): %s", source, ", ".join(skipped))
    _write(plan)
    return [name for name, _, _ in plan]


def _write(plan):
    """Assign each planned (name, `CanonicalWeight`, array); blocks of one variable in one assign."""
    blocks = {}
    for _, weight, array in plan:
        variable = weight.variable
        if weight.index == ():
            variable.assign(np.reshape(array, variable.shape))
        else:
            blocks.setdefault(id(variable), (variable, []))[1].append((weight, array))
    for variable, parts in blocks.values():
        covered = sum(int(np.prod(weight.shape)) for weight, _ in parts) == int(np.prod(variable.shape))
        dtype = _numpy_dtype(variable)
        value = np.zeros(variable.shape, dtype) if covered else keras.ops.convert_to_numpy(variable).astype(dtype)
        for weight, array in parts:
            weight.write(value, array)
        variable.assign(value)
