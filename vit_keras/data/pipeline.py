"""Batched `tf.data` pipelines for `model.fit`: resize, augment (Keras preprocessing layers), shuffle, batch."""

import contextlib
import functools

import keras
import tensorflow as tf

from vit_keras.choices import AUGMENTATIONS

CACHE_LIMIT_BYTES = 2 * 1024**3


def augmentation_layers(kind, image_size, seed=0, channels=3):
    """Keras preprocessing layers for augmentation `kind` (applied to raw-pixel batches).

    "randaugment" adds a `SeededRandAugment` (Keras' RandAugment operations, made of public
    Keras layers) to the crop and flip of "natural", for colour images only. `seed` seeds the
    layers' own generators, which draw when the layers are called; `TrainingEpochs` passes each
    batch a seed of its own instead.
    """
    if kind not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {list(AUGMENTATIONS)}; found {kind!r}.")
    height, width = image_size
    if kind == "none":
        return []
    if kind == "shift":  # whole-pixel shifts of up to 1/14 of the side (2 px on 28x28), like a padded random crop
        return [
            keras.layers.RandomTranslation(1 / 14, 1 / 14, fill_mode="constant", interpolation="nearest", seed=seed)
        ]
    if kind == "digits":  # small affine jitter; digits are not flipped. Only the rotation
        # interpolates: three bilinear resamplings in a row blur the strokes (pixel std -12%),
        # a train/test mismatch that costs accuracy.
        return [
            keras.layers.RandomRotation(10 / 360, fill_mode="constant", seed=seed),
            keras.layers.RandomZoom(0.1, fill_mode="constant", interpolation="nearest", seed=seed + 1),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", interpolation="nearest", seed=seed + 2),
        ]
    pad = max(1, height // 8), max(1, width // 8)  # crop a jittered window of a padded image
    layers = [
        keras.layers.Resizing(height + 2 * pad[0], width + 2 * pad[1]),
        keras.layers.RandomCrop(height, width, seed=seed),
        keras.layers.RandomFlip("horizontal", seed=seed + 1),
    ]
    if kind == "randaugment" and channels == 3:
        layers.append(SeededRandAugment(value_range=(0, 255), seed=seed + 2))
    return layers


class SeededRandAugment:
    """RandAugment made of public Keras preprocessing layers, drawn from an explicit seed.

    The operations and their strengths are those of `keras.layers.RandAugment` with the same
    arguments: shear, translation, rotation, brightness, colour degeneration, contrast,
    sharpness, posterization, solarization, auto-contrast and equalization, each the Keras
    layer of that name at strength `factor`. Each batch applies `num_ops` operations in a row,
    each chosen uniformly among the 11 (the same operation may come twice); an operation's
    parameters are drawn per image, once per batch. Keras' own layer ignores the `seed` of
    `get_random_transformation`; this one draws the choice of operations and every
    operation's parameters from it, in TensorFlow ops whatever the Keras backend, so it runs
    inside `tf.data` on every backend.

    Args:
        value_range: the range of the pixel values, `(0, 255)` for raw pixels.
        num_ops: how many operations each batch goes through.
        factor: the strength, in [0, 1]: a number (strengths drawn in [0, `factor`]) or a
            `(low, high)` pair.
        interpolation: `"bilinear"` or `"nearest"`, for shear, translation and rotation.
        seed: an int seeding the draws of calls without a seed of their own.

    Example:

    >>> import numpy as np
    >>> augment = SeededRandAugment()
    >>> images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype("float32")
    >>> first, again = augment(images, seed=(1, 2)), augment(images, seed=(1, 2))
    >>> tuple(first.shape), bool(np.array_equal(first, again))
    ((4, 16, 16, 3), True)
    """

    def __init__(self, value_range=(0, 255), num_ops=2, factor=0.5, interpolation="bilinear", seed=None):
        if not isinstance(num_ops, int) or num_ops < 1:
            raise ValueError(f"num_ops must be a positive integer; found {num_ops!r}.")
        self.value_range, self.num_ops, self.interpolation = value_range, num_ops, interpolation
        self.factor = _strength_range(factor)
        self.operations = _rand_augment_operations(value_range, self.factor, interpolation, seed)
        self.compute_dtype = self.operations[0].compute_dtype
        self.seed, self.generator = seed, None

    def __call__(self, images, training=True, seed=None):
        """`images` (a batch, NHWC) augmented; unchanged (cast to `compute_dtype`) unless `training`.

        Args:
            images: a batch of images in `value_range`, as a tensor or array.
            training: False returns the images as they are.
            seed: a stateless seed, two ints (or a `[2]` int tensor) that fix every draw; None
                draws one from this layer's generator (seeded by the constructor's `seed`).

        Returns:
            A TensorFlow tensor of the images' shape, of dtype `compute_dtype`.
        """
        images = tf.convert_to_tensor(images)
        if seed is None:
            seed = self._next_seed()
        seeds = _StatelessSeeds(tf.cast(seed, tf.int64))
        transformation = self.get_random_transformation(images, training=training, seed=seeds)
        return self.transform_images(images, transformation, training=training)

    def get_random_transformation(self, data, training=True, seed=None):
        """The operations of one batch and their parameters, drawn from `seed`.

        Args:
            data: the batch of images, or a dict with the batch under `"images"`.
            training: False draws nothing (returns None).
            seed: a `keras.random.SeedGenerator` whose `next()` gives TensorFlow seeds (the
                pipeline's per-batch seeds); None draws a seed from this layer's generator.

        Returns:
            `{"operations": int32 [num_ops] indices into operations, "transforms": each
            operation's transformation}`, or None when not `training`.
        """
        if not training:
            return None
        seed = seed if seed is not None else _StatelessSeeds(self._next_seed())
        chosen = tf.random.stateless_uniform(
            (self.num_ops,), _int32_seed(seed.next()), minval=0, maxval=len(self.operations), dtype=tf.int32
        )
        transforms = []
        for operation in self.operations:
            with _tensorflow_ops(operation):
                transforms.append(operation.get_random_transformation(data, training=True, seed=seed))
        return {"operations": chosen, "transforms": tuple(transforms)}

    def transform_images(self, images, transformation, training=True):
        """`images` through the operations `transformation` chose, in order, with their parameters.

        Only the chosen operation runs at each step, and the steps share one graph of the 11
        operations (a loop), which keeps the traced function small.
        """
        images = tf.cast(images, self.compute_dtype)
        if not training or transformation is None:
            return images

        def step(images, index):
            branches = [
                functools.partial(self._apply, operation, transform, images)
                for operation, transform in zip(self.operations, transformation["transforms"])
            ]
            return tf.ensure_shape(tf.switch_case(index, branches), images.shape)

        return tf.foldl(step, transformation["operations"], initializer=images)

    def transform_labels(self, labels, transformation, training=True):
        """`labels` unchanged: the operations keep what the image shows."""
        return labels

    def _apply(self, operation, transform, images):
        with _tensorflow_ops(operation):
            return tf.cast(operation.transform_images(images, transform), self.compute_dtype)

    def _next_seed(self):
        """A `[2]` seed from this layer's generator, made at the first call (outside any traced function)."""
        if self.generator is None:
            with tf.init_scope(), tf.device("/CPU:0"):
                make = tf.random.Generator.from_non_deterministic_state
                self.generator = make() if self.seed is None else tf.random.Generator.from_seed(self.seed)
        return self.generator.make_seeds(1)[:, 0]


def _strength_range(factor):
    """`factor` of `SeededRandAugment` as a `(low, high)` pair in [0, 1] (a number x: (0, x))."""
    pair = tuple(factor) if isinstance(factor, (tuple, list)) else (0.0, factor)
    if len(pair) != 2 or not all(isinstance(f, (int, float)) and 0 <= f <= 1 for f in pair):
        raise ValueError(f"factor must be a number or a (low, high) pair in [0, 1]; found {factor!r}.")
    return tuple(sorted(pair))


def _rand_augment_operations(value_range, factor, interpolation, seed):
    """The 11 operations of `keras.layers.RandAugment(value_range, factor=factor, ...)`, in its order."""
    colour = dict(value_range=value_range, seed=seed)
    geometry = dict(interpolation=interpolation, seed=seed)
    layers = keras.layers
    return (
        layers.RandomShear(x_factor=factor, y_factor=factor, **geometry),
        layers.RandomTranslation(height_factor=factor, width_factor=factor, **geometry),
        layers.RandomRotation(factor=factor, **geometry),
        layers.RandomBrightness(factor=factor, **colour),
        layers.RandomColorDegeneration(factor=factor, **colour),
        layers.RandomContrast(factor=factor, **colour),
        layers.RandomSharpness(factor=factor, **colour),
        layers.RandomPosterization(factor=max(1, int(8 * factor[1])), **colour),  # bits kept: 8 to 8(1 - high)
        layers.Solarization(addition_factor=factor, threshold_factor=factor, **colour),
        layers.AutoContrast(value_range=value_range),
        layers.Equalization(value_range=value_range),
    )


def _int32_seed(seed):
    """A `[2]` seed as `tf.random.stateless_*` take it under XLA (int32), as Keras' TensorFlow random ops do."""
    return seed if seed.dtype == tf.int32 else tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)


@contextlib.contextmanager
def _tensorflow_ops(layer):
    """Within: the Keras preprocessing `layer` computes with TensorFlow ops, whatever the Keras backend.

    `layer(...)` does this by itself inside `tf.data`; calling `get_random_transformation` and
    `transform_*` with an explicit seed needs it done here. The pipeline's one use of Keras
    internals: `layer.backend`, the switchable backend of Keras' data layers (not exported).

    Raises:
        RuntimeError: when `layer` has no switchable `backend` in this version of Keras.
    """
    backend = getattr(layer, "backend", None)
    if not (callable(getattr(backend, "set_backend", None)) and callable(getattr(backend, "reset", None))):
        raise RuntimeError(
            f"vit_keras augments in tf.data through the `backend.set_backend` of Keras' preprocessing layers; "
            f"{type(layer).__name__} of Keras {keras.__version__} has none."
        )
    backend.set_backend("tensorflow")
    try:
        yield layer
    finally:
        backend.reset()


def make_pipeline(
    dataset,
    image_size,
    batch_size,
    num_classes,
    training=False,
    augment="none",
    mixup=0.0,
    cutmix=0.0,
    seed=0,
    cache=True,
    shuffle_buffer=20_000,
    drop_remainder=False,
    epoch=0,
):
    """Batched (float32 raw pixels, one-hot float32 labels) for `model.fit` / `evaluate`.

    Resizes to `image_size` (height, width); when `training`, shuffles epoch `epoch` in the
    order (`seed`, `epoch`) gives, augments with `augment` and mixes with MixUp
    (`mixup` = alpha) or CutMix (`cutmix` = alpha) when > 0. `TrainingEpochs` gives every
    epoch of the same pipeline in a row.
    """
    if training:
        epochs = TrainingEpochs(
            dataset,
            image_size,
            batch_size,
            num_classes,
            augment,
            mixup,
            cutmix,
            seed,
            cache,
            shuffle_buffer,
            drop_remainder,
        )
        return epochs.stream(epoch, epoch + 1)
    examples = _examples(dataset, image_size, batch_size, num_classes, cache)
    return finish(examples.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE))


def finish(dataset):
    """`dataset` with the input-pipeline options of `fixed_parallelism_options` and one batch of prefetch."""
    return dataset.with_options(fixed_parallelism_options()).prefetch(1)


def _examples(dataset, image_size, batch_size, num_classes, cache):
    """Unbatched (float32 pixels resized to `image_size`, one-hot labels), cached when `cache`."""
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer; found {batch_size!r}.")
    height, width = image_size

    def prepare(image, label):
        image = tf.cast(image, tf.float32)
        if image.shape.rank == 2:
            image = image[..., None]
        if image.shape[0] != height or image.shape[1] != width:
            image = tf.image.resize(image, (height, width))
        return image, tf.one_hot(label, num_classes)

    examples = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return examples.cache() if cache else examples


def _mixer(augment, image_size, channels, mixup, cutmix, seed, worker=0):
    """`(epoch, index, (images, labels)) -> (images, labels)`: augmentation, then MixUp / CutMix; None if none.

    Batch `index` of epoch `epoch` draws every random number from `_batch_seed(seed, epoch, index, worker)`
    alone, never from the layers' own seed generators.
    """
    layers = augmentation_layers(augment, image_size, seed, channels or 3)
    if mixup > 0:
        layers.append(keras.layers.MixUp(alpha=mixup))
    if cutmix > 0:
        layers.append(keras.layers.CutMix(factor=cutmix))
    if not layers:
        return None

    def apply(epoch, index, batch):
        seeds = _StatelessSeeds(_batch_seed(seed, epoch, index, worker))
        images, labels = batch
        for layer in layers:
            images, labels = _transform(layer, images, labels, seeds)
        return images, labels

    return apply


def _batch_seed(seed, epoch, index, worker=0):
    """The stateless seed of batch `index` (from 0) of epoch `epoch`: a `[2]` int64 tensor.

    Args:
        seed: the run's seed (a Python int).
        epoch, index: int64 scalars (tensors or ints).
        worker: the data-parallel worker (a Python int) whose slice of the batch this is.

    Returns:
        A `tf.random.stateless_*` seed fixed by (`seed`, `epoch`, `index`, `worker`) alone.
    """
    fold_in = tf.random.experimental.stateless_fold_in
    return fold_in(fold_in(tf.constant([seed, worker], tf.int64), epoch), index)


class _StatelessSeeds(keras.random.SeedGenerator):
    """A `keras.random.SeedGenerator` without state: its n-th seed is `seed` folded with n.

    Keras' random ops call `next()` once per draw; this gives the draws of one batch distinct
    seeds fixed by `seed` (a `[2]` int tensor) and the order of the draws in the traced function.
    It holds no variable, so nothing carries over from one batch to the next.
    """

    def __init__(self, seed):  # no super().__init__(): that makes the state variable this avoids
        self.seed, self.draws = seed, 0

    def next(self, ordered=True):
        drawn = tf.random.experimental.stateless_fold_in(self.seed, self.draws)
        self.draws += 1
        return drawn


def _transform(layer, images, labels, seeds):
    """`layer`'s random transformation of the batch (`images`, `labels`), drawn from `seeds`.

    What `layer(...)` does in a `tf.data` pipeline (TensorFlow ops whatever the Keras backend),
    with an explicit seed. `SeededRandAugment`, not a Keras layer, switches its own operations.
    """
    with _tensorflow_ops(layer) if isinstance(layer, keras.layers.Layer) else contextlib.nullcontext():
        data = {"images": images, "labels": labels}
        transformation = layer.get_random_transformation(data, training=True, seed=seeds)
        return layer.transform_images(images, transformation), layer.transform_labels(labels, transformation)


class TrainingEpochs:
    """The training pipeline, epoch by epoch, each epoch's order fixed by (`seed`, epoch) alone.

    A run resumed at epoch k reads exactly the batches an uninterrupted run reads there, whatever
    iterators were made before (Keras' JAX and PyTorch trainers read a batch to build the model
    first, which with `reshuffle_each_iteration` would advance the shared shuffle state). The
    examples are decoded and cached once, shared by all epochs. Random augmentation and mixing
    are fixed the same way: batch i of epoch k (counted after `stream`'s `per_epoch`) draws all
    its random numbers from a stateless seed made of (`seed`, k, i), never from the layers' own
    seed generators, so its transformation is a function of (`seed`, k, i) and of the batch alone,
    whatever was read before and however the parallel map schedules the batches. Different
    epochs, and different batches of one epoch, draw different transformations.

    Args:
        dataset, image_size, batch_size, num_classes, augment, mixup, cutmix, seed, cache,
            shuffle_buffer, drop_remainder: as `make_pipeline`'s.
        worker: this process's index among data-parallel workers that each augment their own
            slice of every batch; folded into the batch seeds, so that the workers' slices of one
            batch draw different transformations (the shuffle order stays the same for all).

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> pixels = tf.data.Dataset.from_tensor_slices((np.zeros((10, 4, 4, 1), "uint8"), np.arange(10) % 2))
    >>> epochs = TrainingEpochs(pixels, (4, 4), batch_size=4, num_classes=2)
    >>> int(epochs.batches(0).cardinality()), len(list(epochs.stream(1, 3)))
    (3, 6)
    """

    def __init__(
        self,
        dataset,
        image_size,
        batch_size,
        num_classes,
        augment="none",
        mixup=0.0,
        cutmix=0.0,
        seed=0,
        cache=True,
        shuffle_buffer=20_000,
        drop_remainder=False,
        worker=0,
    ):
        self.examples = _examples(dataset, image_size, batch_size, num_classes, cache)
        channels = dataset.element_spec[0].shape[-1]
        self.mix = _mixer(augment, image_size, channels, mixup, cutmix, seed, int(worker))
        self.seed, self.batch_size = int(seed), batch_size
        self.shuffle_buffer, self.drop_remainder = shuffle_buffer, drop_remainder

    def batches(self, epoch):
        """Epoch `epoch` (an int or an int64 scalar tensor) shuffled and batched, before augmentation."""
        seed = self.seed * 1_000_003 + tf.cast(epoch, tf.int64)
        shuffled = self.examples.shuffle(self.shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
        return shuffled.batch(self.batch_size, drop_remainder=self.drop_remainder, num_parallel_calls=tf.data.AUTOTUNE)

    def stream(self, first_epoch, end_epoch, per_epoch=None):
        """Epochs `first_epoch` .. `end_epoch - 1` in a row, augmented, with `finish`'s options.

        The epochs are made one after another while the stream is read (`flat_map` over the
        epoch numbers), so building it takes the same time for 1 epoch or 10^9.

        Args:
            first_epoch: the first epoch (a resumed run's next one).
            end_epoch: one past the last epoch; no batch when it is not above `first_epoch`.
            per_epoch: `dataset -> dataset` applied to each epoch's batches before they are
                joined (e.g. sharding and a cut to the epoch's steps).
        """
        per_epoch = per_epoch or (lambda batches: batches)

        def epoch_batches(epoch):
            # `epoch` is a tensor, so is the shuffle seed: TensorFlow fails to pair a tensor seed with
            # a global seed of 0 (the trainer's default --seed). Without a global seed in this
            # function's graph, the order is a function of (`seed`, epoch) alone.
            tf.compat.v1.get_default_graph().seed = None
            return self._numbered(epoch, per_epoch(self.batches(epoch)))

        epochs = tf.data.Dataset.range(int(first_epoch), int(end_epoch))  # empty when end <= first
        joined = epochs.flat_map(epoch_batches)
        return finish(joined.map(self.mix, num_parallel_calls=tf.data.AUTOTUNE) if self.mix else joined)

    def _numbered(self, epoch, batches):
        """(`epoch`, index in the epoch, batch) for each batch of `batches` when there is `mix`; else `batches`."""
        if self.mix is None:
            return batches
        epochs = tf.data.Dataset.from_tensors(tf.cast(epoch, tf.int64)).repeat()
        return tf.data.Dataset.zip(epochs, tf.data.Dataset.counter(), batches)


def fixed_parallelism_options():
    """tf.data options without autotuning: parallel maps use one thread per core.

    Autotuning sizes the input pipeline as if the cores were idle; while the training step
    uses them it takes cores from the step (BENCHMARKS.md, "tf.data autotuning").
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def pipelines(splits, image_size, batch_size, augment="none", mixup=0.0, cutmix=0.0, seed=0, cache=None):
    """(train, validation, test) pipelines of `splits` (validation/test None when absent).

    The training pipeline is epoch 0 of `training_epochs` with the same arguments.
    """
    train = training_epochs(splits, image_size, batch_size, augment, mixup, cutmix, seed, cache).stream(0, 1)
    return (train, *evaluation_pipelines(splits, image_size, batch_size, cache))


def evaluation_pipelines(splits, image_size, batch_size, cache=None):
    """(validation, test) pipelines of `splits`, each None when the split is absent (`cache` as `training_epochs`')."""
    cache = _fits_in_cache(splits, image_size) if cache is None else cache
    common = dict(image_size=image_size, batch_size=batch_size, num_classes=splits.num_classes, cache=cache)
    return tuple(
        make_pipeline(split, **common) if split is not None else None for split in (splits.validation, splits.test)
    )


def training_epochs(
    splits, image_size, batch_size, augment="none", mixup=0.0, cutmix=0.0, seed=0, cache=None, worker=0
):
    """`TrainingEpochs` of `splits.train` (`cache` None: when all splits decoded fit in `CACHE_LIMIT_BYTES`)."""
    cache = _fits_in_cache(splits, image_size) if cache is None else cache
    return TrainingEpochs(
        splits.train,
        image_size,
        batch_size,
        splits.num_classes,
        augment,
        mixup,
        cutmix,
        seed,
        cache=cache,
        worker=worker,
    )


def _fits_in_cache(splits, image_size):
    count = sum(n or 0 for n in splits.sizes.values())
    return count * image_size[0] * image_size[1] * (splits.image_shape[-1] or 3) * 4 <= CACHE_LIMIT_BYTES


def default_augmentation(channels):
    """ "shift" for single-channel images (digits), "natural" for colour images."""
    return "shift" if channels == 1 else "natural"
