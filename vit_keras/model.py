"""The Vision Transformer model: a functional `keras.Model` built from the ViT layers."""

import keras
import numpy as np

from vit_keras.layers import (
    ClassToken,
    ConvStem,
    PatchEmbedding,
    PositionEmbedding,
    TokenPooling,
    TransformerEncoderBlock,
)
from vit_keras.layers.conv_stem import stem_widths
from vit_keras.layers.token_pooling import POOLING_MODES
from vit_keras.preprocessing import normalization_stats, preprocessing_layer
from vit_keras.validation import check_choice, check_positive, check_rate, image_hw


STEMS = ("patch", "conv")


def _one_of(setting, default, **spellings):
    """The value of a setting that has several argument names; raise if the given ones disagree."""
    given = {name: value for name, value in spellings.items() if value is not None}
    if len(set(given.values())) > 1:
        found = ", ".join(f"{name}={value!r}" for name, value in given.items())
        raise ValueError(f"{' and '.join(given)} all set the {setting} and must agree; found {found}.")
    return next(iter(given.values()), default)


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


@keras.saving.register_keras_serializable(package="vit_keras")
class ViT(keras.Model):
    """Vision Transformer ("An Image is Worth 16x16 Words"), a functional Keras model.

    Images -> [preprocessing] -> PatchEmbedding (or ConvStem) -> ClassToken -> PositionEmbedding -> dropout
    -> `depth` x TransformerEncoderBlock -> LayerNorm -> pooling -> [pre-logits] -> head.

    Args:
        image_size: int or (height, width); must be divisible by `patch_size`.
        patch_size: side of the square patches.
        in_channels: image channels.
        num_classes: head outputs (ignored with `include_top=False`).
        embed_dim: token width; must be divisible by `num_heads`.
        depth: encoder blocks (also accepted as `num_layers` or `num_encoders`).
        num_heads: attention heads.
        mlp_dim: MLP hidden width; defaults to `mlp_ratio * embed_dim`.
        mlp_ratio: MLP width as a multiple of `embed_dim` (also accepted as `expansion`); 4.0.
        dropout: dropout after the position embedding, attention and MLP layers.
        attention_dropout: dropout on the attention weights.
        drop_path: stochastic-depth rate of the last block, rising linearly from 0.
        pooling: "token" (class token) or "gap" (mean of the patch tokens); with
            `include_top=False`, None returns the whole token sequence.
        include_top: add the classification head; False returns the features.
        classifier_activation: activation of the head; None gives logits.
        representation_size: width of a tanh pre-logits layer before the head, if any.
        data_format: "channels_last" (batch, H, W, C) or "channels_first" (batch, C, H, W).
        preprocessing: None (inputs taken as given) or how to map raw 0-255 pixels:
            "unit", "symmetric", "imagenet", "mnist" or {"mean": ..., "std": ...}.
        layer_norm_epsilon: epsilon of every LayerNorm.
        stem: "patch" (the paper's P x P stride-P Conv2D) or "conv" (ViT_C: 3x3 stride-2
            convolutions with BatchNorm, for a power-of-two `patch_size`; trains faster on
            small images, but pretrained checkpoints have the patch stem).
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
        name="vit",
        **kwargs,
    ):
        depth = _one_of("depth", 12, depth=depth, num_layers=num_layers, num_encoders=num_encoders)
        mlp_ratio = _one_of("MLP ratio", None, mlp_ratio=mlp_ratio, expansion=expansion)
        image_size = image_hw("image_size", image_size)
        check_positive("patch_size", patch_size)
        check_positive("in_channels", in_channels)
        check_positive("embed_dim", embed_dim)
        check_positive("depth", depth)
        check_positive("num_heads", num_heads)
        for side in image_size:
            if side % patch_size:
                raise ValueError(
                    f"image_size must be divisible by patch_size={patch_size}; found image_size {image_size}."
                )
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim must be divisible by num_heads={num_heads}; found embed_dim={embed_dim}."
            )
        if mlp_ratio is not None and (not isinstance(mlp_ratio, (int, float)) or mlp_ratio <= 0):
            raise ValueError(f"mlp_ratio must be a positive number; found {mlp_ratio!r}.")
        if mlp_dim is None:
            mlp_dim = int(round((mlp_ratio or 4.0) * embed_dim))
        elif mlp_ratio is not None and int(round(mlp_ratio * embed_dim)) != mlp_dim:
            raise ValueError(
                f"mlp_dim and mlp_ratio must agree; found mlp_dim={mlp_dim}, "
                f"mlp_ratio={mlp_ratio} (x embed_dim={embed_dim} = {mlp_ratio * embed_dim})."
            )
        check_positive("mlp_dim", mlp_dim)
        dropout = check_rate("dropout", dropout)
        check_rate("attention_dropout", attention_dropout)
        check_rate("drop_path", drop_path)
        check_choice("data_format", data_format, ("channels_last", "channels_first"))
        check_choice("stem", stem, STEMS)
        if stem == "conv":
            stem_widths(patch_size, embed_dim)  # raises unless patch_size is a power of two
        if include_top:
            check_positive("num_classes", num_classes)
            check_choice("pooling", pooling, POOLING_MODES)
        else:
            check_choice("pooling", pooling, POOLING_MODES + (None,))
        if representation_size is not None:
            check_positive("representation_size", representation_size)
        if preprocessing is not None:
            normalization_stats(preprocessing, in_channels)  # raises on a bad spec

        height, width = image_size
        if data_format == "channels_first":
            inputs = keras.Input((in_channels, height, width), name="images")
            x = keras.layers.Permute((2, 3, 1), name="to_channels_last")(inputs)
        else:
            inputs = keras.Input((height, width, in_channels), name="images")
            x = inputs
        if preprocessing is not None:
            x = preprocessing_layer(preprocessing, in_channels)(x)
        if stem == "conv":
            x = ConvStem(patch_size, embed_dim, name="conv_stem")(x)
        else:
            x = PatchEmbedding(patch_size, embed_dim, name="patch_embedding")(x)
        x = ClassToken(name="class_token")(x)
        grid = (height // patch_size, width // patch_size)
        x = PositionEmbedding(grid_size=grid, name="position_embedding")(x)
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
        for i, rate in enumerate(np.linspace(0.0, drop_path, depth)):
            x = TransformerEncoderBlock(
                num_heads,
                mlp_dim,
                dropout=dropout,
                attention_dropout=attention_dropout,
                drop_path=float(rate),
                layer_norm_epsilon=layer_norm_epsilon,
                name=f"encoder_block_{i}",
            )(x)
        x = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="encoder_norm")(x)
        if pooling is not None:
            x = TokenPooling(pooling, name="pooling")(x)
        if representation_size is not None:
            x = keras.layers.Dense(representation_size, activation="tanh", name="pre_logits")(x)
        if include_top:
            # The head computes in float32 so logits and losses stay exact under mixed precision.
            x = keras.layers.Dense(
                num_classes, activation=classifier_activation, dtype="float32", name="head"
            )(x)
        super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)
        self.input_spec = None  # `call` checks images itself, with a clearer message

        self.image_size = image_size
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.drop_path = drop_path
        self.pooling = pooling
        self.include_top = include_top
        self.classifier_activation = classifier_activation
        self.representation_size = representation_size
        self.data_format = data_format
        self.preprocessing = preprocessing
        self.layer_norm_epsilon = layer_norm_epsilon
        self.stem = stem

    @property
    def input_layout(self):
        """The per-image input shape, in the model's data format."""
        height, width = self.image_size
        if self.data_format == "channels_first":
            return (self.in_channels, height, width)
        return (height, width, self.in_channels)

    def check_images(self, images):
        """Raise a ValueError naming the mismatch if `images` (or their shape) do not fit the model."""
        shape = tuple(getattr(images, "shape", images))
        expected = self.input_layout
        if len(shape) != 4 or any(
            found is not None and found != want for found, want in zip(shape[1:], expected)
        ):
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
        self._check_data(x)
        if kwargs.get("validation_data") is not None:
            self._check_data(kwargs["validation_data"])
        return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        self._check_data(x)
        return super().evaluate(x, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._check_data(x)
        return super().predict(x, *args, **kwargs)

    @property
    def grid_size(self):
        """The (rows, columns) patch grid."""
        return (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": list(self.image_size),
            "patch_size": self.patch_size,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "embed_dim": self.embed_dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "mlp_dim": self.mlp_dim,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "drop_path": self.drop_path,
            "pooling": self.pooling,
            "include_top": self.include_top,
            "classifier_activation": self.classifier_activation,
            "representation_size": self.representation_size,
            "data_format": self.data_format,
            "preprocessing": self.preprocessing,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "stem": self.stem,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)
