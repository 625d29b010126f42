"""The Vision Transformer model: a functional `keras.Model` built from the ViT layers."""

import difflib
import inspect

import keras
import numpy as np

from vit_keras.architectures import DATA_FORMATS, POOLINGS, STEMS
from vit_keras.layers import (
    ClassToken,
    ConvStem,
    Dropout,
    PatchEmbedding,
    PositionEmbedding,
    TokenPooling,
    TransformerEncoderBlock,
)
from vit_keras.layers.conv_stem import stem_widths
from vit_keras.preprocessing import normalization_stats, preprocessing_layer
from vit_keras.validation import (
    check_choice,
    check_divisible,
    check_optional,
    check_positive,
    check_positive_number,
    check_rate,
    image_hw,
)

__all__ = ["ViT", "POOLINGS", "STEMS"]

# The arguments that define a ViT (besides Keras' `name`, `trainable` and `dtype`), in `get_config` order.
ARCHITECTURE_ARGUMENTS = (
    "image_size",
    "patch_size",
    "in_channels",
    "num_classes",
    "embed_dim",
    "depth",
    "num_heads",
    "mlp_dim",
    "dropout",
    "attention_dropout",
    "drop_path",
    "pooling",
    "include_top",
    "classifier_activation",
    "representation_size",
    "data_format",
    "preprocessing",
    "layer_norm_epsilon",
    "stem",
)


def _one_of(setting, default, **spellings):
    """The value of a setting that has several argument names; raise if the given ones disagree."""
    given = {name: value for name, value in spellings.items() if value is not None}
    if len(set(given.values())) > 1:
        found = ", ".join(f"{name}={value!r}" for name, value in given.items())
        raise ValueError(f"{' and '.join(given)} all set the {setting} and must agree; found {found}.")
    return next(iter(given.values()), default)


MODEL_KEYWORDS = ("trainable",)  # what `keras.Model` takes besides the ViT's own arguments


def _check_keywords(kwargs):
    """Refuse keyword arguments that are neither the ViT's nor `MODEL_KEYWORDS` (a misspelt
    `num_class=10` would otherwise be dropped by `keras.Model` and give a 1000-class model)."""
    unknown = sorted(set(kwargs) - set(MODEL_KEYWORDS))
    if not unknown:
        return
    known = [*inspect.signature(ViT.__init__).parameters][1:-1] + list(MODEL_KEYWORDS)
    found = ", ".join(
        repr(name) + "".join(f" (did you mean {close!r}?)" for close in difflib.get_close_matches(name, known, 1))
        for name in unknown
    )
    raise TypeError(f"ViT got unexpected keyword arguments: {found}; it takes {', '.join(known)}.")


def _mlp_width(mlp_dim, mlp_ratio, embed_dim):
    """`mlp_dim`, or `mlp_ratio * embed_dim` (ratio 4 if neither is given); raise if both are given and differ."""
    if mlp_dim is None:
        return int(round((mlp_ratio or 4.0) * embed_dim))
    if mlp_ratio is not None and int(round(mlp_ratio * embed_dim)) != mlp_dim:
        raise ValueError(
            f"mlp_dim and mlp_ratio must agree; found mlp_dim={mlp_dim}, "
            f"mlp_ratio={mlp_ratio} (x embed_dim={embed_dim} = {mlp_ratio * embed_dim})."
        )
    return mlp_dim


def _check_arguments(args, mlp_ratio):
    """Check each argument of `ViT` on its own; return `args` with the rates as floats."""
    for name in ("patch_size", "in_channels", "embed_dim", "depth", "num_heads"):
        check_positive(name, args[name])
    check_optional(check_positive, "mlp_dim", args["mlp_dim"])
    check_optional(check_positive_number, "mlp_ratio", mlp_ratio)
    check_optional(check_positive, "representation_size", args["representation_size"])
    check_positive_number("layer_norm_epsilon", args["layer_norm_epsilon"])
    for name in ("dropout", "attention_dropout", "drop_path"):
        args[name] = check_rate(name, args[name])
    check_choice("data_format", args["data_format"], DATA_FORMATS)
    check_choice("stem", args["stem"], STEMS)
    if args["preprocessing"] is not None:
        normalization_stats(args["preprocessing"], args["in_channels"])  # raises on a bad spec
    return args


def _checked_class_names(names, num_classes):
    """`names` as a list of strings, one per head output; raise a one-line ValueError otherwise."""
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"class_names must be a list of strings; found {names!r:.80}.")
    names = list(names)
    if num_classes is None or len(names) != num_classes:
        raise ValueError(
            f"class_names must have one name per head output (num_classes={num_classes}); found {len(names)} names."
        )
    return names


def _dtype_policy(dtype):
    """The `keras.DTypePolicy` for `ViT`'s `dtype` argument; None gives the global policy."""
    if dtype is None:
        return keras.config.dtype_policy()
    try:
        return keras.dtype_policies.get(dtype)
    except (TypeError, ValueError):
        raise ValueError(
            f"dtype must be None, a dtype policy name (e.g. 'float32', 'mixed_bfloat16') or a "
            f"keras.DTypePolicy; found {dtype!r}."
        ) from None


def _data_image_shape(x):
    """The image shape of model input data (array, tensor, tf.data.Dataset, or an (x, y) tuple)."""
    if isinstance(x, (tuple, list)) and x:
        x = x[0]
    shape = getattr(x, "shape", None)
    if shape is not None:
        return tuple(shape)
    spec = getattr(x, "element_spec", None)  # a tf.data.Dataset
    if isinstance(spec, (tuple, list)) and spec:
        spec = spec[0]
    shape = getattr(spec, "shape", None)
    return None if shape is None or shape.rank is None else tuple(shape.as_list())


def _image_input(args, policy):
    """The `images` input and the channels-last, preprocessed images."""
    height, width = args["image_size"]
    if args["data_format"] == "channels_first":
        inputs = keras.Input((args["in_channels"], height, width), name="images")
        x = keras.layers.Permute((2, 3, 1), dtype=policy, name="to_channels_last")(inputs)
    else:
        inputs = keras.Input((height, width, args["in_channels"]), name="images")
        x = inputs
    if args["preprocessing"] is not None:
        x = preprocessing_layer(args["preprocessing"], args["in_channels"], dtype=policy)(x)
    return inputs, x


def _embed(x, args, policy):
    """Images -> patch tokens, class token prepended, positions added, embedding dropout."""
    patch_size, embed_dim = args["patch_size"], args["embed_dim"]
    if args["stem"] == "conv":
        x = ConvStem(patch_size, embed_dim, dtype=policy, name="conv_stem")(x)
    else:
        x = PatchEmbedding(patch_size, embed_dim, dtype=policy, name="patch_embedding")(x)
    x = ClassToken(dtype=policy, name="class_token")(x)
    grid = (args["image_size"][0] // patch_size, args["image_size"][1] // patch_size)
    x = PositionEmbedding(grid_size=grid, dtype=policy, name="position_embedding")(x)
    return Dropout(args["dropout"], dtype=policy, name="embedding_dropout")(x)


def _encode(x, args, policy):
    """`depth` encoder blocks (stochastic depth rising linearly from 0 to `drop_path`), then LayerNorm.

    When the read-out takes the class token alone (`pooling="token"`), the last block computes
    that token only (`output_tokens=1`): its other outputs would be discarded.
    """
    readout_tokens = 1 if args["pooling"] == "token" else None
    for i, rate in enumerate(np.linspace(0.0, args["drop_path"], args["depth"])):
        x = TransformerEncoderBlock(
            args["num_heads"],
            args["mlp_dim"],
            dropout=args["dropout"],
            attention_dropout=args["attention_dropout"],
            drop_path=float(rate),
            layer_norm_epsilon=args["layer_norm_epsilon"],
            dtype=policy,
            name=f"encoder_block_{i}",
        )(x, output_tokens=readout_tokens if i == args["depth"] - 1 else None)
    return keras.layers.LayerNormalization(epsilon=args["layer_norm_epsilon"], dtype=policy, name="encoder_norm")(x)


def _read_out(x, args, policy):
    """Tokens -> pooled features -> optional pre-logits -> optional head."""
    if args["pooling"] is not None:
        x = TokenPooling(args["pooling"], dtype=policy, name="pooling")(x)
    if args["representation_size"] is not None:
        x = keras.layers.Dense(args["representation_size"], activation="tanh", dtype=policy, name="pre_logits")(x)
    if args["include_top"]:
        # The head computes in float32 so logits and losses stay exact under mixed precision.
        x = keras.layers.Dense(
            args["num_classes"], activation=args["classifier_activation"], dtype="float32", name="head"
        )(x)
    return x


def _build_graph(args, policy):
    """The functional graph of a ViT.

    Args:
        args: the checked `ViT` arguments, as in `ARCHITECTURE_ARGUMENTS`.
        policy: the `keras.DTypePolicy` of every layer but the float32 head.

    Returns:
        (inputs, outputs): the `images` input tensor and the model's output tensor.
    """
    inputs, x = _image_input(args, policy)
    x = _embed(x, args, policy)
    x = _encode(x, args, policy)
    return inputs, _read_out(x, args, policy)


@keras.saving.register_keras_serializable(package="vit_keras")
class ViT(keras.Model):
    """Vision Transformer ("An Image is Worth 16x16 Words", Dosovitskiy et al., 2021).

    A functional Keras model: images -> [preprocessing] -> `PatchEmbedding` (or `ConvStem`)
    -> `ClassToken` -> `PositionEmbedding` -> dropout -> `depth` x `TransformerEncoderBlock`
    -> LayerNorm -> `TokenPooling` -> [tanh pre-logits] -> head. Named configurations are in
    `vit_keras.architectures` and built by `vit_keras.presets`. With `pooling="token"` the
    last encoder block computes the class token alone, the one token the read-out uses (same
    values, about 7% fewer FLOPs at depth 12); build with `pooling=None` for every token.

    Args:
        image_size: int or (height, width); both must be divisible by `patch_size`.
        patch_size: side of the square patches.
        in_channels: image channels.
        num_classes: head outputs (ignored with `include_top=False`).
        embed_dim: token width; must be divisible by `num_heads`.
        depth: encoder blocks (also accepted as `num_layers` or `num_encoders`); 12.
        num_heads: attention heads.
        mlp_dim: MLP hidden width; defaults to `mlp_ratio * embed_dim`.
        mlp_ratio: MLP width as a multiple of `embed_dim` (also accepted as `expansion`); 4.0.
        dropout: dropout after the position embedding, attention and MLP layers.
        attention_dropout: dropout on the attention weights.
        drop_path: stochastic-depth rate of the last block, rising linearly from 0 at the first.
        pooling: one of `vit_keras.architectures.POOLINGS`: "token" (the class token) or "gap"
            (the mean of the patch tokens); with `include_top=False`, None returns the whole
            (batch, 1 + patches, embed_dim) token sequence.
        include_top: add the classification head; False returns the features.
        classifier_activation: activation of the head; None gives logits.
        representation_size: width of a tanh pre-logits layer before the head, if any.
        data_format: "channels_last" (batch, H, W, C) or "channels_first" (batch, C, H, W).
        preprocessing: None (inputs taken as given) or how to map raw 0-255 pixels: one of
            `vit_keras.architectures.NORMALIZATIONS` ("unit", "symmetric", "imagenet", "mnist")
            or {"mean": ..., "std": ...} in [0, 1] units.
        layer_norm_epsilon: epsilon of every LayerNorm.
        stem: "patch" (the paper's P x P stride-P Conv2D) or "conv" (ViT_C: 3x3 stride-2
            convolutions with BatchNorm, for a power-of-two `patch_size`; trains faster on
            small images, but pretrained checkpoints have the patch stem).
        dtype: dtype policy of the layers (e.g. "mixed_bfloat16"); None takes the global
            policy. The head always computes in float32.
        class_names: None, or one name per head output (`num_classes` strings); saved with
            the model, read by `vit-keras predict` and the SavedModel's `top_k_labels`.
        name: model name.
        **kwargs: passed to `keras.Model` (e.g. `trainable`).

    Call arguments:
        inputs: a batch of images of shape `(batch,) + model.input_layout`.
        training: Python bool; True applies dropout, stochastic depth and batch statistics.

    Returns:
        (batch, num_classes) outputs of the head; with `include_top=False`, (batch, embed_dim)
        pooled features, or (batch, 1 + patches, embed_dim) tokens when `pooling=None`.

    Raises:
        ValueError: naming the argument, for a bad or inconsistent argument (on construction)
            and for images of the wrong shape (on call, `fit`, `evaluate` and `predict`).

    Example:

    >>> import numpy as np
    >>> model = ViT(image_size=28, patch_size=7, in_channels=1, num_classes=10,
    ...             embed_dim=32, depth=1, num_heads=2)
    >>> model.grid_size, model.mlp_dim
    ((4, 4), 128)
    >>> tuple(model(np.zeros((4, 28, 28, 1), "float32")).shape)
    (4, 10)
    >>> features = ViT(image_size=28, patch_size=7, in_channels=1, embed_dim=32, depth=1,
    ...                num_heads=2, include_top=False, pooling=None)
    >>> tuple(features(np.zeros((4, 28, 28, 1), "float32")).shape)
    (4, 17, 32)
    """

    def __init__(
        self,
        image_size=224,
        patch_size=16,
        in_channels=3,
        num_classes=1000,
        embed_dim=768,
        depth=None,
        num_heads=12,
        mlp_dim=None,
        mlp_ratio=None,
        dropout=0.0,
        attention_dropout=0.0,
        drop_path=0.0,
        pooling="token",
        include_top=True,
        classifier_activation=None,
        representation_size=None,
        data_format="channels_last",
        preprocessing=None,
        layer_norm_epsilon=1e-6,
        num_layers=None,
        num_encoders=None,
        expansion=None,
        stem="patch",
        dtype=None,
        class_names=None,
        name="vit",
        **kwargs,
    ):
        _check_keywords(kwargs)
        depth = _one_of("depth", 12, depth=depth, num_layers=num_layers, num_encoders=num_encoders)
        mlp_ratio = _one_of("MLP ratio", None, mlp_ratio=mlp_ratio, expansion=expansion)
        args = dict(
            image_size=image_hw("image_size", image_size),
            patch_size=patch_size,
            in_channels=in_channels,
            num_classes=num_classes,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_dim=mlp_dim,
            dropout=dropout,
            attention_dropout=attention_dropout,
            drop_path=drop_path,
            pooling=pooling,
            include_top=include_top,
            classifier_activation=classifier_activation,
            representation_size=representation_size,
            data_format=data_format,
            preprocessing=preprocessing,
            layer_norm_epsilon=layer_norm_epsilon,
            stem=stem,
        )
        _check_arguments(args, mlp_ratio)
        # Checks that span layers: the patch grid, the attention heads, the MLP width, the stem, the head.
        check_divisible("image_size", args["image_size"], "patch_size", patch_size)
        check_divisible("embed_dim", embed_dim, "num_heads", num_heads)
        args["mlp_dim"] = _mlp_width(mlp_dim, mlp_ratio, embed_dim)
        if stem == "conv":
            stem_widths(patch_size, embed_dim)  # raises unless patch_size is a power of two
        if include_top:
            check_positive("num_classes", num_classes)
        check_choice("pooling", pooling, POOLINGS if include_top else POOLINGS + (None,))

        policy = _dtype_policy(dtype)
        inputs, outputs = _build_graph(args, policy)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.dtype_policy = policy  # a functional model ignores its `dtype` argument
        self.input_spec = None  # `call` checks images itself, with a clearer message
        for key in ARCHITECTURE_ARGUMENTS:
            setattr(self, key, args[key])
        self.class_names = class_names

    @property
    def class_names(self):
        """One name per head output (a list of `num_classes` strings), or None."""
        return self._class_names

    @class_names.setter
    def class_names(self, names):
        self._class_names = _checked_class_names(names, self.num_classes if self.include_top else None)

    @property
    def input_layout(self):
        """The per-image input shape, in the model's data format: (H, W, C) or (C, H, W)."""
        height, width = self.image_size
        if self.data_format == "channels_first":
            return (self.in_channels, height, width)
        return (height, width, self.in_channels)

    @property
    def grid_size(self):
        """The (rows, columns) patch grid."""
        return (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)

    def check_images(self, images):
        """Check that `images` fit the model.

        Args:
            images: a batch of images, or its shape; unknown sizes (None) are accepted.

        Raises:
            ValueError: naming the expected and the found shape, if they differ.
        """
        shape = tuple(getattr(images, "shape", images))
        expected = self.input_layout
        if len(shape) != 4 or any(found is not None and found != want for found, want in zip(shape[1:], expected)):
            raise ValueError(
                f"images must have shape (batch,) + {expected} (image_size={self.image_size}, "
                f"in_channels={self.in_channels}, data_format={self.data_format!r}); found shape {shape}."
            )

    def _check_data(self, x):
        """Check the image part of `fit`/`evaluate`/`predict` data before any work starts."""
        shape = _data_image_shape(x)
        if shape is not None:
            self.check_images(shape)

    def call(self, inputs, training=None, mask=None, **kwargs):
        self.check_images(inputs)
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def fit(self, x=None, *args, **kwargs):
        """`keras.Model.fit`, after checking the shape of the training and validation images."""
        self._check_data(x)
        if kwargs.get("validation_data") is not None:
            self._check_data(kwargs["validation_data"])
        return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        """`keras.Model.evaluate`, after checking the shape of the images."""
        self._check_data(x)
        return super().evaluate(x, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict`, after checking the shape of the images."""
        self._check_data(x)
        return super().predict(x, *args, **kwargs)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """`keras.Model.export`. Under TensorFlow, `format="onnx"` first teaches tf2onnx the exact
        GELU's `Erfc` (as 1 - Erf), without which onnxruntime refuses the file. For TF Serving
        signatures that take raw pixels and encoded images, use `vit_keras.export_saved_model`."""
        if format == "onnx" and keras.backend.backend() == "tensorflow":
            from vit_keras.serving.onnx_graph import register_erfc_handler

            register_erfc_handler()
        return super().export(filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs)

    def get_config(self):
        """The constructor arguments, with `dtype` (the policy) so mixed-precision models round-trip."""
        config = {"name": self.name, "trainable": self.trainable}
        config.update({key: getattr(self, key) for key in ARCHITECTURE_ARGUMENTS})
        config["image_size"] = list(self.image_size)
        config["dtype"] = keras.dtype_policies.serialize(self.dtype_policy)
        config["class_names"] = None if self.class_names is None else list(self.class_names)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A ViT from `get_config`'s dict; keys missing from older files take their defaults, keys
        this version does not know (written by another version) are left out."""
        known = set(inspect.signature(cls.__init__).parameters) | set(MODEL_KEYWORDS)
        return cls(**{key: value for key, value in config.items() if key in known})
