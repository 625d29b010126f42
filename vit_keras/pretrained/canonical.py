"""The canonical checkpoint: a flat {name: array} dict in Google's layout, keyed by our layers.

Every checkpoint format is first converted to this dict, which `assign_weights` then puts
into a model after checking every shape, so a load either applies whole or not at all.

Names: `patch_embedding/{kernel,bias}`, `class_token`, `position_embedding`,
`encoder_block_{i}/{norm1,norm2}/{scale,bias}`,
`encoder_block_{i}/attention/{query,key,value,out}/{kernel,bias}`,
`encoder_block_{i}/{mlp_in,mlp_out}/{kernel,bias}`, `encoder_norm/{scale,bias}`,
`pre_logits/{kernel,bias}` (optional), `head/{kernel,bias}` (optional).
"""

import logging

import numpy as np

log = logging.getLogger("vit_keras")


def _layer_norm(layer):
    return {"scale": layer.gamma, "bias": layer.beta}


def _dense(layer):
    return {"kernel": layer.kernel, "bias": layer.bias}


def model_variables(model):
    """{canonical name: keras variable} for a ViT model (the head and pre-logits when present)."""
    names = {layer.name for layer in model.layers}
    groups = {
        "patch_embedding": _dense(model.get_layer("patch_embedding").projection),
        "encoder_norm": _layer_norm(model.get_layer("encoder_norm")),
    }
    for i in range(model.depth):
        block = model.get_layer(f"encoder_block_{i}")
        attention = block.attention
        groups[f"encoder_block_{i}/norm1"] = _layer_norm(block.norm1)
        groups[f"encoder_block_{i}/norm2"] = _layer_norm(block.norm2)
        groups[f"encoder_block_{i}/attention/query"] = _dense(attention.query_dense)
        groups[f"encoder_block_{i}/attention/key"] = _dense(attention.key_dense)
        groups[f"encoder_block_{i}/attention/value"] = _dense(attention.value_dense)
        groups[f"encoder_block_{i}/attention/out"] = _dense(attention.output_dense)
        groups[f"encoder_block_{i}/mlp_in"] = _dense(block.mlp_in)
        groups[f"encoder_block_{i}/mlp_out"] = _dense(block.mlp_out)
    for optional in ("pre_logits", "head"):
        if optional in names:
            groups[optional] = _dense(model.get_layer(optional))
    variables = {f"{group}/{leaf}": v for group, leaves in groups.items() for leaf, v in leaves.items()}
    variables["class_token"] = model.get_layer("class_token").token
    variables["position_embedding"] = model.get_layer("position_embedding").table
    return variables


def _consistent_top(variables, weights, source):
    """Drop the checkpoint's head when exactly one of model and checkpoint has a pre-logits layer.

    The head's inputs then mean different things, so a head of matching shape would still
    give wrong logits. A pre-logits layer the model lacks is logged and not used.
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
    if model_has != checkpoint_has and "head/kernel" in weights:
        weights = {k: v for k, v in weights.items() if not k.startswith("head/")}
    return weights


def assign_weights(model, weights, source="checkpoint"):
    """Put canonical `weights` into `model`, all or nothing.

    The position table is resampled to the model's grid; a head (or pre-logits) whose shape
    differs, or that the checkpoint lacks, is left as initialised and logged. Any other
    missing name or shape mismatch raises a ValueError before a single variable changes.
    Returns the list of canonical names that were loaded.
    """
    from vit_keras.layers.position_embedding import resample_position_table

    variables = model_variables(model)
    weights = _consistent_top(variables, weights, source)
    plan, skipped = [], []
    missing = [name for name in variables if name not in weights]
    required_missing = [n for n in missing if not n.startswith(("head/", "pre_logits/"))]
    if required_missing:
        raise ValueError(
            f"{source} is missing {len(required_missing)} weights the model needs, e.g. "
            f"{required_missing[:5]}."
        )
    table_layer = model.get_layer("position_embedding")
    for name, variable in variables.items():
        if name in missing:
            skipped.append(name)
            continue
        array = np.asarray(weights[name])
        expected = tuple(variable.shape)
        if name == "position_embedding" and array.shape != expected:
            try:
                array = resample_position_table(
                    array, table_layer.grid_size, num_prefix_tokens=table_layer.num_prefix_tokens
                )
            except ValueError as error:
                raise ValueError(
                    f"{source}: weight 'position_embedding' has shape {array.shape}, which cannot be "
                    f"resampled to the model's {expected} ({error})"
                ) from error
        if array.shape != expected:
            if name.startswith(("head/", "pre_logits/")):
                skipped.append(name)
                continue
            raise ValueError(
                f"{source}: weight {name!r} has shape {array.shape}; the model expects {expected}."
            )
        plan.append((name, variable, array))
    for group in ("head/", "pre_logits/"):  # a layer loads whole or not at all
        if any(name.startswith(group) for name in skipped):
            skipped += [name for name, _, _ in plan if name.startswith(group)]
            plan = [entry for entry in plan if not entry[0].startswith(group)]
    if skipped:
        log.warning(
            "%s: left freshly initialised (absent or shaped for another head): %s",
            source,
            ", ".join(skipped),
        )
    for _, variable, array in plan:
        variable.assign(array.astype(variable.dtype))
    return [name for name, _, _ in plan]
