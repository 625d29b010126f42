"""Input pipelines: readers, splits, shapes, dtypes, seeded order, augmentation and bad input."""

import gzip
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import MNIST_DIR

from vit_keras import data as vdata
from vit_keras.data import pipeline as data_pipeline
from vit_keras.data import tfds as data_tfds

# Tests marked single_backend are tf.data plumbing, the same on every backend. The unmarked RandAugment tests at
# the end run Keras layers switched to TensorFlow ops, which depends on the Keras backend: they run on every backend.


def write_idx(path, array, gz=True):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    (gzip.open if gz else open)(path, "wb").write(payload)


def write_mnist_folder(folder, n_train=60, n_test=20, gz=True, rng=None):
    rng = rng or np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels, gz)
        arrays[split] = (images, labels)
    return arrays


def first_labels(dataset, batches=2):
    return np.concatenate([np.argmax(y.numpy(), axis=1) for _, y in dataset.take(batches)])


# ----------------------------------------------------------------------------- readers


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.single_backend
def test_idx_folder_round_trips(tmp_path, gz):
    arrays = write_mnist_folder(tmp_path, gz=gz)
    (x_train, y_train), (x_test, y_test) = vdata.load_idx_folder(tmp_path)
    np.testing.assert_array_equal(x_train, arrays["train"][0])
    np.testing.assert_array_equal(y_train, arrays["train"][1])
    assert x_test.shape == (20, 28, 28) and x_test.dtype == np.uint8 and y_test.dtype == np.int32


@pytest.mark.single_backend
def test_corrupt_idx_header_is_named(tmp_path):
    write_mnist_folder(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x12\x34\x08\x03garbage"))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz has a corrupt header"):
        vdata.load_dataset(f"idx:{tmp_path}")


@pytest.mark.single_backend
def test_truncated_idx_body_is_reported(tmp_path):
    write_mnist_folder(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"declares shape \(20, 28, 28\).*holds 15580 values"):
        vdata.load_idx_folder(tmp_path)


@pytest.mark.single_backend
def test_label_count_mismatch_is_reported(tmp_path):
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(59))
    with pytest.raises(ValueError, match="59 labels for 60 images"):
        vdata.load_dataset(f"idx:{tmp_path}")


@pytest.mark.single_backend
def test_missing_idx_files_are_listed(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\[.gz\].*notes.txt"):
        vdata.load_idx_folder(tmp_path)


@pytest.mark.parametrize(
    "spec, error, message",
    [
        ("imagenet-22k", ValueError, r"dataset must be one of \['mnist-sample', 'mnist'"),
        ("idx:/no/such/folder", FileNotFoundError, "/no/such/folder does not exist"),
        ("folder:/no/such/folder", FileNotFoundError, "folder /no/such/folder does not exist"),
        ("tfds:", ValueError, "dataset must be one of"),
    ],
)
@pytest.mark.single_backend
def test_bad_dataset_specs(spec, error, message):
    with pytest.raises(error, match=message):
        vdata.load_dataset(spec, image_size=28)


@pytest.mark.single_backend
def test_npz_dataset(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(
        tmp_path / "digits.npz",
        x_train=rng.integers(0, 255, (50, 8, 8), dtype=np.uint8),
        y_train=np.arange(50) % 3,
        x_test=np.zeros((10, 8, 8), np.uint8),
        y_test=np.arange(10) % 3,
    )
    splits = vdata.load_dataset(f"npz:{tmp_path / 'digits.npz'}", val_fraction=0.2)
    assert splits.sizes == {"train": 40, "validation": 10, "test": 10}
    assert splits.image_shape == (8, 8, 1) and splits.num_classes == 3
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((5, 8, 8)))
    with pytest.raises(ValueError, match=r"missing \['x_test', 'y_test', 'y_train'\]"):
        vdata.load_npz(tmp_path / "bad.npz")


# ----------------------------------------------------------------------------- bundled sample, splits


@pytest.mark.single_backend
def test_bundled_mnist_sample():
    assert vdata.SAMPLE_PATH.stat().st_size <= 3 * 1024**2
    splits = vdata.load_dataset("mnist-sample", val_fraction=0.1, seed=0)
    assert splits.sizes == {"train": 9000, "validation": 1000, "test": 2000}
    assert splits.image_shape == (28, 28, 1) and splits.num_classes == 10
    image, label = next(iter(splits.test))
    assert image.shape == (28, 28, 1) and image.dtype == tf.uint8 and label.dtype == tf.int32
    test_labels = np.array([int(y) for _, y in splits.test])
    assert np.bincount(test_labels).min() > 150  # every digit is there


@pytest.mark.single_backend
def test_mnist_from_data_dir(mnist_digits, tmp_path):
    """dataset "mnist" reads the IDX files in data_dir: the full MNIST when it is there, else the sample's digits."""
    if mnist_digits.full:
        folder = MNIST_DIR
    else:
        folder = tmp_path
        for split, (x, y) in {
            "train": (mnist_digits.x_train, mnist_digits.y_train),
            "t10k": (mnist_digits.x_test, mnist_digits.y_test),
        }.items():
            write_idx(folder / f"{split}-images-idx3-ubyte.gz", x[..., 0])
            write_idx(folder / f"{split}-labels-idx1-ubyte.gz", y)
    splits = vdata.load_dataset("mnist", data_dir=str(folder), val_fraction=0.1)
    n_train, n_test = len(mnist_digits.y_train), len(mnist_digits.y_test)
    assert splits.sizes == {"train": n_train * 9 // 10, "validation": n_train // 10, "test": n_test}
    assert splits.num_classes == 10 and splits.image_shape == (28, 28, 1)
    image, label = next(iter(splits.test))
    np.testing.assert_array_equal(image.numpy(), mnist_digits.x_test[0])
    assert int(label) == mnist_digits.y_test[0]


@pytest.mark.single_backend
def test_validation_split_is_seeded_and_disjoint():
    keep, held = vdata.validation_split(1000, 0.1, seed=3)
    assert len(held) == 100 and len(keep) == 900
    assert not set(keep) & set(held) and set(keep) | set(held) == set(range(1000))
    again, _ = vdata.validation_split(1000, 0.1, seed=3)
    other, _ = vdata.validation_split(1000, 0.1, seed=4)
    np.testing.assert_array_equal(keep, again)
    assert not np.array_equal(keep, other)
    with pytest.raises(ValueError, match=r"validation fraction must be in \[0, 1\); found 1.5"):
        vdata.validation_split(10, 1.5, 0)


# ----------------------------------------------------------------------------- pipelines


@pytest.fixture(scope="module")
def sample():
    return vdata.load_dataset("mnist-sample", seed=0)


@pytest.mark.single_backend
def test_pipeline_shapes_dtypes_and_raw_pixels(sample):
    train, val, test = vdata.pipelines(sample, (28, 28), 32, augment="none", seed=0)
    for ds in (train, val, test):
        x, y = next(iter(ds))
        assert x.shape == (32, 28, 28, 1) and x.dtype == tf.float32
        assert y.shape == (32, 10) and y.dtype == tf.float32
        np.testing.assert_allclose(y.numpy().sum(axis=1), 1.0)
        assert 200 < float(tf.reduce_max(x)) <= 255.0  # raw pixels: the model normalises
    assert sum(int(x.shape[0]) for x, _ in test) == 2000


@pytest.mark.single_backend
def test_pipelines_do_not_autotune(sample):
    # tf.data autotuning takes cores from the training step on small machines (BENCHMARKS.md)
    for ds in vdata.pipelines(sample, (28, 28), 32, augment="digits", seed=0):
        assert ds.options().autotune.enabled is False


@pytest.mark.single_backend
def test_pipeline_order_is_seeded(sample):
    def labels(seed):
        return first_labels(vdata.make_pipeline(sample.train, (28, 28), 64, 10, training=True, seed=seed))

    np.testing.assert_array_equal(labels(7), labels(7))
    assert not np.array_equal(labels(7), labels(8))
    # evaluation pipelines keep the stored order
    test_a = first_labels(vdata.make_pipeline(sample.test, (28, 28), 64, 10))
    np.testing.assert_array_equal(test_a, [int(y) for _, y in sample.test.take(128)])


@pytest.mark.single_backend
def test_pipeline_resizes_to_the_model_size(sample):
    x, _ = next(iter(vdata.make_pipeline(sample.test, (32, 48), 8, 10)))
    assert x.shape == (8, 32, 48, 1)


@pytest.mark.single_backend
def test_digit_augmentation_jitters_but_keeps_shapes(sample):
    plain = vdata.make_pipeline(sample.train, (28, 28), 64, 10, training=True, seed=1)
    jittered = vdata.make_pipeline(sample.train, (28, 28), 64, 10, training=True, augment="digits", seed=1)
    (x0, y0), (x1, y1) = next(iter(plain)), next(iter(jittered))
    np.testing.assert_array_equal(y0.numpy(), y1.numpy())  # same seeded order
    assert x1.shape == x0.shape and x1.dtype == tf.float32
    assert float(tf.reduce_mean(tf.abs(x1 - x0))) > 1.0
    assert float(tf.reduce_max(x1)) <= 255.5
    assert float(tf.math.reduce_std(x1)) > 0.92 * float(tf.math.reduce_std(x0))  # jitter, not blur


@pytest.mark.single_backend
def test_shift_augmentation_moves_digits_by_whole_pixels(sample):
    plain = vdata.make_pipeline(sample.train, (28, 28), 64, 10, training=True, seed=1)
    shifted = vdata.make_pipeline(sample.train, (28, 28), 64, 10, training=True, augment="shift", seed=1)
    x0, x1 = next(iter(plain))[0].numpy()[..., 0], next(iter(shifted))[0].numpy()[..., 0]
    moved = 0
    for a, b in zip(x0, x1):  # each image equals the original shifted by (dy, dx), |dy|, |dx| <= 2
        padded = np.pad(a, 2)
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(padded[2 - dy : 30 - dy, 2 - dx : 30 - dx], b)
        ]
        assert matches, "not a whole-pixel shift of at most 2 px"
        moved += (0, 0) not in matches
    assert moved > 32  # most images moved


@pytest.mark.single_backend
def test_mixup_gives_soft_labels(sample):
    ds = vdata.make_pipeline(sample.train, (28, 28), 64, 10, training=True, mixup=0.4, seed=0)
    _, y = next(iter(ds))
    y = y.numpy()
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    assert (y.max(axis=1) < 0.999).any()


@pytest.mark.single_backend
def test_natural_image_augmentation_crops_and_flips():
    images = np.tile(np.arange(32, dtype=np.uint8)[None, None, :, None], (16, 32, 1, 3)) * 8
    ds = tf.data.Dataset.from_tensor_slices((images, np.zeros(16, np.int32)))
    pipeline = vdata.make_pipeline(ds, (32, 32), 16, 2, training=True, augment="randaugment", seed=0)
    x, _ = next(iter(pipeline))
    assert x.shape == (16, 32, 32, 3) and x.dtype == tf.float32
    assert not np.allclose(x.numpy(), images.astype("float32"))
    np.testing.assert_array_equal(next(iter(pipeline))[0].numpy(), x.numpy())  # drawn from (seed, epoch, batch)
    with pytest.raises(ValueError, match="augment must be one of"):
        vdata.augmentation_layers("strong", (32, 32))


# ----------------------------------------------------------------------------- image folders


def write_image_folder(root, classes=("cat", "dog"), per_class=6, size=(20, 24), channels=3):
    import keras

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 255, size=size + (channels,)).astype("uint8")
            keras.utils.save_img(str(root / c / f"{i}.png"), image, scale=False)


@pytest.mark.single_backend
def test_image_folder_with_train_and_test(tmp_path):
    write_image_folder(tmp_path / "train")
    write_image_folder(tmp_path / "test", per_class=2)
    splits = vdata.load_dataset(f"folder:{tmp_path}", image_size=16, val_fraction=0.25, seed=0)
    assert splits.class_names == ["cat", "dog"] and splits.num_classes == 2
    assert splits.sizes == {"train": 9, "validation": 3, "test": 4}
    x, y = next(iter(vdata.make_pipeline(splits.train, (16, 16), 4, 2, training=True, augment="natural")))
    assert x.shape == (4, 16, 16, 3) and y.shape == (4, 2)


@pytest.mark.single_backend
def test_undecodable_image_is_named(tmp_path):
    write_image_folder(tmp_path)
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match=r"dog/broken.jpg cannot be decoded"):
        vdata.load_dataset(f"folder:{tmp_path}", image_size=16)


@pytest.mark.single_backend
def test_empty_image_folders_are_reported(tmp_path):
    with pytest.raises(ValueError, match="expected one sub-folder of images per class; found none"):
        vdata.load_dataset(f"folder:{tmp_path}", image_size=16)
    (tmp_path / "cat").mkdir()
    with pytest.raises(ValueError, match=r"no images .* in class sub-folders \['cat'\]"):
        vdata.load_dataset(f"folder:{tmp_path}", image_size=16)


# ----------------------------------------------------------------------------- TFDS (offline)


TINY_TFDS = "vit_keras_test_digits"


@pytest.fixture(scope="module")
def tiny_tfds_builder():
    """A TFDS dataset built from generated local arrays (nothing to download): 3 classes of 8x8x1 images."""
    import tensorflow_datasets as tfds

    class VitKerasTestDigits(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(names=["a", "b", "c"]),
                }
            )
            return tfds.core.DatasetInfo(builder=self, features=features, supervised_keys=("image", "label"))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(40, 0), "test": self._generate_examples(9, 1)}

        def _generate_examples(self, count, seed):
            rng = np.random.default_rng(seed)
            for i in range(count):  # class c: pixels around 80 * c
                yield i, {"image": (rng.integers(0, 40, (8, 8, 1)) + 80 * (i % 3)).astype(np.uint8), "label": i % 3}

    assert VitKerasTestDigits.name == TINY_TFDS
    return VitKerasTestDigits


@pytest.mark.single_backend
def test_tfds_load_end_to_end_from_local_files(tiny_tfds_builder, tmp_path, no_network):
    """The real tfds.load path: prepared from local data on the first load, read back on the second."""
    splits = vdata.load_dataset(f"tfds:{TINY_TFDS}", data_dir=str(tmp_path), val_fraction=0.25, seed=0)
    assert splits.source == f"tfds:{TINY_TFDS}" and splits.num_classes == 3 and splits.class_names == ["a", "b", "c"]
    assert splits.image_shape == (8, 8, 1) and splits.sizes == {"train": 30, "validation": 10, "test": 9}
    train, val, test = vdata.pipelines(splits, (8, 8), 8, augment="none")
    assert sum(int(x.shape[0]) for x, _ in train) == 30 and sum(int(x.shape[0]) for x, _ in val) == 10
    for x, y in test:
        np.testing.assert_array_equal(np.argmax(y.numpy(), 1), (x.numpy().mean(axis=(1, 2, 3)) // 80).astype(int))
    again = vdata.load_dataset(f"tfds:{TINY_TFDS}", data_dir=str(tmp_path), val_fraction=0.25, seed=0)
    assert again.sizes == splits.sizes


def _assert_download_failure(error, name):
    message = str(error)
    assert "\n" not in message, message
    assert f"dataset tfds:{name} is not in" in message and "downloading" in message, message
    assert "No internet?" in message and "'idx:FOLDER'" in message, message
    causes, cause = [], error
    while cause is not None:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    assert not any(isinstance(c, ImportError) for c in causes), causes  # not an import failure
    return causes


@pytest.mark.single_backend
def test_tfds_offline_fails_at_once_in_one_line(tmp_path, no_network):
    """MNIST is not in data_dir and its host cannot be reached: a one-line error within seconds."""
    start = time.perf_counter()
    with pytest.raises(ValueError) as raised:
        vdata.load_dataset("tfds:mnist", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 30
    causes = _assert_download_failure(raised.value, "mnist")
    assert "downloading it failed: storage.googleapis.com:443 cannot be reached" in str(raised.value)
    assert any(isinstance(c, OSError) and "network disabled in tests" in str(c) for c in causes)


@pytest.mark.single_backend
def test_tfds_load_itself_fails_on_the_download(tmp_path, no_network, monkeypatch):
    """Past the reachability probe, tfds.load runs until its download fails (not on an import)."""
    import requests
    import urllib3

    monkeypatch.setattr(data_tfds, "_check_download_reachable", lambda *args: None)
    monkeypatch.setattr(urllib3.util.retry.Retry, "get_backoff_time", lambda self: 0)  # TFDS retries 10 times
    with pytest.raises(ValueError) as raised:
        vdata.load_dataset("mnist", data_dir=str(tmp_path / "tfds"))  # no IDX files there: TFDS
    causes = _assert_download_failure(raised.value, "mnist")
    assert "downloading or preparing it failed: ConnectionError" in str(raised.value)
    assert any(isinstance(c, requests.exceptions.ConnectionError) for c in causes), causes


@pytest.mark.single_backend
def test_unknown_tfds_name():
    with pytest.raises(ValueError, match="tfds:no_such_dataset_xyz is not a known TFDS dataset") as raised:
        vdata.load_dataset("tfds:no_such_dataset_xyz")
    assert "\n" not in str(raised.value)


# ----------------------------------------------------------------------------- augmentation on resume


def synthetic_epochs(images, seed=5, **kwargs):
    """`TrainingEpochs` of `images` (uint8, NHWC) labelled 0, 1, ... (one class per image), batches of 8."""
    labels = np.arange(len(images)) % 8
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    return vdata.TrainingEpochs(dataset, images.shape[1:3], 8, 8, seed=seed, **kwargs)


def batches_of(stream):
    return [(x.numpy(), y.numpy()) for x, y in stream]


def random_images(count=40, size=12):
    return np.random.default_rng(0).integers(0, 256, (count, size, size, 1), dtype=np.uint8)


@pytest.mark.single_backend
def test_a_stream_of_a_trillion_epochs_starts_with_the_first_epochs():
    """The epochs are made as the stream is read: joining 10^12 of them up front never ends."""
    images = random_images()
    few = batches_of(synthetic_epochs(images, augment="digits").stream(0, 2))
    endless = iter(synthetic_epochs(images, augment="digits").stream(0, 10**12))
    many = [(x.numpy(), y.numpy()) for (x, y), _ in zip(endless, range(len(few) + 1))]
    assert len(few) == 10 and len(many) == 11
    for (x0, y0), (x1, y1) in zip(few, many):
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y0, y1)
    assert many[10][0].shape == few[0][0].shape  # epoch 2 follows


@pytest.mark.single_backend
def test_the_epoch_order_is_the_pipelines_seeds_alone_whatever_the_global_seed():
    """The trainer sets a global seed (0 by default); the order must not depend on it, nor fail with it."""
    images = random_images()
    orders = []
    for global_seed in (0, 5):
        keras.utils.set_random_seed(global_seed)
        orders.append([y.argmax(axis=1) for _, y in batches_of(synthetic_epochs(images).stream(0, 2))])
    np.testing.assert_array_equal(np.stack(orders[0]), np.stack(orders[1]))
    assert not np.array_equal(orders[0][0], orders[0][5])  # epochs 0 and 1 are shuffled differently


@pytest.mark.parametrize(
    "kwargs", [dict(augment="digits"), dict(augment="shift", mixup=0.4, cutmix=1.0)], ids=["digits", "mixup-cutmix"]
)
@pytest.mark.single_backend
def test_resumed_epoch_is_augmented_as_in_an_uninterrupted_run(kwargs):
    """Epoch 2 read on its own (a run resumed there) equals, bit for bit, epoch 2 of a run from epoch 0."""
    images = random_images()
    uninterrupted = batches_of(synthetic_epochs(images, **kwargs).stream(0, 3))
    resumed = batches_of(synthetic_epochs(images, **kwargs).stream(2, 3))
    assert len(uninterrupted) == 15 and len(resumed) == 5
    for (x0, y0), (x1, y1) in zip(uninterrupted[10:], resumed):
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y0, y1)
    plain = batches_of(synthetic_epochs(images).stream(2, 3))
    assert not np.array_equal(plain[0][0], resumed[0][0])  # augmented: the equality above is not trivial
    if "mixup" in kwargs:
        assert (resumed[0][1].max(axis=1) < 0.999).any()  # mixed labels were compared too


@pytest.mark.single_backend
def test_augmented_pipeline_read_twice_gives_the_same_batches():
    epochs = synthetic_epochs(random_images(), augment="digits", mixup=0.4)
    stream = epochs.stream(0, 2)
    first, again = batches_of(stream), batches_of(stream)
    for (x0, y0), (x1, y1) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y0, y1)


@pytest.mark.single_backend
def test_augmentation_differs_between_epochs_batches_and_seeds():
    """40 copies of one digit-like image: every batch holds the same input, so any difference is the draw."""
    image = np.zeros((12, 12, 1), np.uint8)
    image[3:9, 5:7] = 255
    copies = np.repeat(image[None], 40, axis=0)

    def epoch_images(seed, epoch, **kwargs):
        epochs = synthetic_epochs(copies, seed, augment="digits", **kwargs)
        return [x for x, _ in batches_of(epochs.stream(epoch, epoch + 1))]

    epoch0, epoch1, other_seed = epoch_images(5, 0), epoch_images(5, 1), epoch_images(6, 0)
    worker0, worker1 = epoch_images(5, 0, worker=0), epoch_images(5, 0, worker=1)
    for a, b in zip(epoch0, epoch0[1:]):  # batches of one epoch
        assert not np.array_equal(a, b)
    for a, b, c in zip(epoch0, epoch1, other_seed):  # the same batch in another epoch, or with another seed
        assert not np.array_equal(a, b) and not np.array_equal(a, c)
    for a, w0, w1 in zip(epoch0, worker0, worker1, strict=True):  # data-parallel workers' slices of one batch
        np.testing.assert_array_equal(a, w0)
        assert not np.array_equal(w0, w1)
    first = epoch0[0].reshape(8, -1)  # images of one batch are transformed independently
    assert len({row.tobytes() for row in first}) == 8


@pytest.mark.single_backend
def test_shift_draws_rows_and_columns_independently():
    """One lit pixel per image: its displacement is the drawn shift, (dy, dx) in [-2, 2]^2, not dy == dx."""
    image = np.zeros((28, 28, 1), np.uint8)
    image[14, 14] = 255
    batches = batches_of(synthetic_epochs(np.repeat(image[None], 64, axis=0), augment="shift").stream(0, 1))
    shifts = set()
    for x, _ in batches:
        for shifted in x[..., 0]:
            dy, dx = np.unravel_index(np.argmax(shifted), shifted.shape)
            shifts.add((int(dy) - 14, int(dx) - 14))
    assert all(abs(dy) <= 2 and abs(dx) <= 2 for dy, dx in shifts)
    assert len(shifts) >= 12 and any(dy != dx for dy, dx in shifts)


# ----------------------------------------------------------------------------- RandAugment


def colour_images(count=8, size=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def seeds(a, b):
    """The per-batch seeds the pipeline gives each layer, from the stateless seed (a, b)."""
    return data_pipeline._StatelessSeeds(tf.constant([a, b], tf.int64))


def test_rand_augment_is_drawn_from_the_seed():
    augment, images = data_pipeline.SeededRandAugment(), colour_images()
    drawn = {}
    for seed in [(0, 0), (0, 1), (1, 0), (2, 5), (3, 9), (7, 7)]:
        drawn[seed] = augment(images, seed=seed).numpy()
        np.testing.assert_array_equal(augment(images, seed=seed).numpy(), drawn[seed])  # same seed, same images
        np.testing.assert_array_equal(augment(images, seed=tf.constant(seed)).numpy(), drawn[seed])
    assert len({x.tobytes() for x in drawn.values()}) == len(drawn)  # every seed draws its own
    assert all(not np.array_equal(x, images) for x in drawn.values())
    copies = np.repeat(images[:1], 8, axis=0)  # the parameters are drawn per image
    chosen = augment.get_random_transformation(copies, seed=seeds(2, 5))["operations"].numpy()
    assert not {0, 1, 2}.isdisjoint(chosen), "the check below needs a geometric operation"
    assert len({x.tobytes() for x in augment(copies, seed=(2, 5)).numpy()}) == 8
    np.testing.assert_array_equal(augment(images, training=False).numpy(), images.astype("float32"))


def test_rand_augment_draws_unseeded_calls_from_its_own_seed():
    images = colour_images()
    first, second = data_pipeline.SeededRandAugment(seed=4), data_pipeline.SeededRandAugment(seed=4)
    a, b = first(images).numpy(), first(images).numpy()
    np.testing.assert_array_equal(second(images).numpy(), a)
    assert not np.array_equal(a, b)  # each call draws anew


@pytest.mark.single_backend  # the pipeline test below runs the layer in tf.data on every backend
def test_unseeded_rand_augment_maps_a_tf_data_dataset():
    images = colour_images()
    expected = data_pipeline.SeededRandAugment(seed=4)(images).numpy()
    mapped = tf.data.Dataset.from_tensors(images).repeat(2).map(data_pipeline.SeededRandAugment(seed=4))
    first, second = [x.numpy() for x in mapped]  # its generator is made while the map is traced
    np.testing.assert_array_equal(first, expected)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_every_rand_augment_operation_keeps_range_shape_and_dtype(dtype):
    augment = data_pipeline.SeededRandAugment()
    images = colour_images().astype(dtype)
    images[0] = 0  # a black and a white image: edge cases of the contrast and histogram operations
    images[1] = 255
    transformation = augment.get_random_transformation(images, seed=seeds(1, 2))
    for index, operation in enumerate(augment.operations):
        twice = dict(transformation, operations=tf.constant([index] * augment.num_ops, tf.int32))
        x = augment.transform_images(images, twice).numpy()
        name = type(operation).__name__
        assert x.shape == images.shape and x.dtype == np.float32, name
        assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 255, f"{name}: {x.min()}..{x.max()}"
    chosen = {
        int(i) for s in range(40) for i in augment.get_random_transformation(images, seed=seeds(s, 0))["operations"]
    }
    assert chosen == set(range(len(augment.operations)))  # each of the 11 operations is drawn


@pytest.mark.single_backend  # Keras' RandAugment computes with the backend's own ops outside tf.data
def test_rand_augment_applies_what_keras_rand_augment_applies():
    """For the same draws, keras.layers.RandAugment (same arguments) gives the same images, bit for bit."""
    ours, theirs = data_pipeline.SeededRandAugment(), keras.layers.RandAugment(value_range=(0, 255))
    images = colour_images().astype("float32")
    names = list(theirs.get_random_transformation(images)["transforms"])
    assert len(names) == len(ours.operations), f"Keras' RandAugment has the operations {names}"
    for seed in range(8):
        drawn = ours.get_random_transformation(images, seed=seeds(seed, 3))
        as_keras = {"transforms": dict(zip(names, drawn["transforms"])), "layer_idxes": drawn["operations"]}
        expected = theirs.transform_images(images, as_keras)
        np.testing.assert_array_equal(ours.transform_images(images, drawn).numpy(), expected.numpy())


def test_rand_augment_pipeline_runs_and_reads_the_same_batches_twice():
    images = colour_images(16, 16)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(16, np.int32)))
    pipeline = vdata.make_pipeline(dataset, (16, 16), 8, 2, training=True, augment="randaugment", seed=3)
    first, again = batches_of(pipeline), batches_of(pipeline)
    plain = batches_of(vdata.make_pipeline(dataset, (16, 16), 8, 2, training=True, seed=3))
    for (x, _), (x_again, _), (x_plain, _) in zip(first, again, plain, strict=True):
        assert x.shape == (8, 16, 16, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255
        np.testing.assert_array_equal(x_again, x)
        assert not np.array_equal(x, x_plain)


@pytest.mark.single_backend  # the seeds are the same on every backend (the test above runs the layer on each)
def test_rand_augment_pipeline_resumes_bit_for_bit():
    """Epoch 1 read on its own (a run resumed there) equals, bit for bit, epoch 1 of a run from epoch 0."""

    def batches(first, end):
        dataset = tf.data.Dataset.from_tensor_slices((colour_images(24, 16), np.arange(24) % 8))
        epochs = vdata.TrainingEpochs(dataset, (16, 16), 8, 8, augment="randaugment", seed=5)
        return batches_of(epochs.stream(first, end))

    uninterrupted, resumed = batches(0, 2), batches(1, 2)
    assert len(uninterrupted) == 6 and len(resumed) == 3
    for (x0, y0), (x1, y1) in zip(uninterrupted[3:], resumed, strict=True):
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y0, y1)


@pytest.mark.single_backend
def test_bad_rand_augment_arguments_are_named():
    with pytest.raises(ValueError, match=r"factor must be a number or a \(low, high\) pair in \[0, 1\]; found 1.5"):
        data_pipeline.SeededRandAugment(factor=1.5)
    with pytest.raises(ValueError, match="num_ops must be a positive integer; found 0"):
        data_pipeline.SeededRandAugment(num_ops=0)
    with pytest.raises(RuntimeError, match=f"object of Keras {keras.__version__} has none"):
        with data_pipeline._tensorflow_ops(object()):
            pass
