"""The ViT training optimizer: AdamW, warm-up + cosine schedule, clipping, EMA, layer-wise LR decay.

Weight decay skips biases, LayerNorm parameters, the class token and the position table
(every variable of rank < 2, plus those two tables). Layer-wise learning-rate decay scales
the rate of encoder block i by `layer_decay ** (depth - i)` (embeddings: `** (depth + 1)`),
as in BEiT / MAE fine-tuning.
"""

import re

import keras

NO_DECAY_LAYERS = ("class_token", "position_embedding")


def warmup_cosine(learning_rate, total_steps, warmup_steps=0, final_fraction=0.0):
    """Linear warm-up from 0 to `learning_rate` over `warmup_steps`, then cosine decay."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive; found {total_steps!r}.")
    warmup_steps = int(min(max(warmup_steps, 0), total_steps - 1))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=final_fraction,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def no_decay_variables(model):
    """The variables weight decay must skip: rank < 2, the class token and the position table."""
    skip = [v for v in model.trainable_variables if len(v.shape) < 2]
    for name in NO_DECAY_LAYERS:
        try:
            skip += model.get_layer(name).trainable_variables
        except ValueError:
            pass
    unique = {id(v): v for v in skip}
    return list(unique.values())


def layer_scales(model, layer_decay):
    """{variable path: learning-rate scale} for layer-wise decay `layer_decay` (< 1)."""
    depth = sum(1 for layer in model.layers if layer.name.startswith("encoder_block_"))
    scales = {}
    for layer in model.layers:
        match = re.fullmatch(r"encoder_block_(\d+)", layer.name)
        if match:
            level = int(match.group(1)) + 1
        elif layer.name in ("patch_embedding", "conv_stem", "class_token", "position_embedding", "preprocessing"):
            level = 0
        else:
            level = depth + 1
        for variable in layer.trainable_variables:
            scales[variable.path] = float(layer_decay ** (depth + 1 - level))
    return scales


@keras.saving.register_keras_serializable(package="vit_keras")
class LayerDecayAdamW(keras.optimizers.AdamW):
    """AdamW whose learning rate is scaled per variable (`scales`: {variable path: factor})."""

    def __init__(self, scales=None, **kwargs):
        super().__init__(**kwargs)
        self.scales = dict(scales or {})

    def build(self, var_list):
        super().build(var_list)
        self._lr_scales = [self.scales.get(v.path, 1.0) for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        scale = self._lr_scales[self._get_variable_index(variable)]
        if scale != 1.0:
            learning_rate = learning_rate * scale
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "scales": self.scales}


def make_optimizer(
    model,
    learning_rate=1e-3,
    total_steps=1000,
    warmup_steps=0,
    weight_decay=0.05,
    clipnorm=1.0,
    ema=None,
    layer_decay=None,
):
    """AdamW for `model` with the schedule, exclusions, clipping, EMA and layer decay above.

    `ema`: None or the EMA momentum (e.g. 0.999); the EMA weights replace the model's at the
    end of `fit`. `layer_decay`: None or a factor in (0, 1].
    """
    if layer_decay is not None and not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1]; found {layer_decay!r}.")
    if ema is not None and not 0.0 < ema < 1.0:
        raise ValueError(f"ema must be a momentum in (0, 1); found {ema!r}.")
    options = dict(
        learning_rate=warmup_cosine(learning_rate, total_steps, warmup_steps),
        weight_decay=weight_decay,
        global_clipnorm=clipnorm or None,
        use_ema=ema is not None,
        ema_momentum=ema if ema is not None else 0.99,
    )
    if layer_decay is not None and layer_decay < 1.0:
        optimizer = LayerDecayAdamW(scales=layer_scales(model, layer_decay), **options)
    else:
        optimizer = keras.optimizers.AdamW(**options)
    optimizer.exclude_from_weight_decay(var_list=no_decay_variables(model))
    return optimizer


def repair_ema_after_fit(optimizer):
    """Work around Keras 3 on JAX losing the EMA buffers after `fit`.

    `fit` ends by copying the averages into the model's variables, which then share their
    buffers; the next jitted `evaluate`/`predict` donates (deletes) those buffers and with
    them the optimizer's averages, so `model.save` fails. Give the averages their own copies.
    """
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    if not getattr(optimizer, "use_ema", False) or not averages:
        return
    for average, variable in zip(averages, optimizer._trainable_variables):
        average.assign(keras.ops.copy(variable.value))
