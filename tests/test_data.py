"""Input pipelines: readers, splits, shapes, dtypes, seeded order, augmentation and bad input."""

import gzip
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from vit_keras import data as vdata

pytestmark = pytest.mark.single_backend  # tf.data plumbing: the same on every backend


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
def test_idx_folder_round_trips(tmp_path, gz):
    arrays = write_mnist_folder(tmp_path, gz=gz)
    (x_train, y_train), (x_test, y_test) = vdata.load_idx_folder(tmp_path)
    np.testing.assert_array_equal(x_train, arrays["train"][0])
    np.testing.assert_array_equal(y_train, arrays["train"][1])
    assert x_test.shape == (20, 28, 28) and x_test.dtype == np.uint8 and y_test.dtype == np.int32


def test_corrupt_idx_header_is_named(tmp_path):
    write_mnist_folder(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x12\x34\x08\x03garbage"))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz has a corrupt header"):
        vdata.load_dataset(f"idx:{tmp_path}")


def test_truncated_idx_body_is_reported(tmp_path):
    write_mnist_folder(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"declares shape \(20, 28, 28\).*holds 15580 values"):
        vdata.load_idx_folder(tmp_path)


def test_label_count_mismatch_is_reported(tmp_path):
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(59))
    with pytest.raises(ValueError, match="59 labels for 60 images"):
        vdata.load_dataset(f"idx:{tmp_path}")


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
def test_bad_dataset_specs(spec, error, message):
    with pytest.raises(error, match=message):
        vdata.load_dataset(spec, image_size=28)


def test_npz_dataset(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "digits.npz", x_train=rng.integers(0, 255, (50, 8, 8), dtype=np.uint8),
             y_train=np.arange(50) % 3, x_test=np.zeros((10, 8, 8), np.uint8), y_test=np.arange(10) % 3)
    splits = vdata.load_dataset(f"npz:{tmp_path / 'digits.npz'}", val_fraction=0.2)
    assert splits.sizes == {"train": 40, "validation": 10, "test": 10}
    assert splits.image_shape == (8, 8, 1) and splits.num_classes == 3
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((5, 8, 8)))
    with pytest.raises(ValueError, match=r"missing \['x_test', 'y_test', 'y_train'\]"):
        vdata.load_npz(tmp_path / "bad.npz")


# ----------------------------------------------------------------------------- bundled sample, splits


def test_bundled_mnist_sample():
    assert vdata.SAMPLE_PATH.stat().st_size <= 3 * 1024**2
    splits = vdata.load_dataset("mnist-sample", val_fraction=0.1, seed=0)
    assert splits.sizes == {"train": 9000, "validation": 1000, "test": 2000}
    assert splits.image_shape == (28, 28, 1) and splits.num_classes == 10
    image, label = next(iter(splits.test))
    assert image.shape == (28, 28, 1) and image.dtype == tf.uint8 and label.dtype == tf.int32
    test_labels = np.array([int(y) for _, y in splits.test])
    assert np.bincount(test_labels).min() > 150  # every digit is there


@pytest.mark.skipif(not (vdata.pathlib.Path(__file__).resolve().parents[2] / "shared/data/mnist").is_dir(),
                    reason="needs ../shared/data/mnist")
def test_full_mnist_from_data_dir():
    folder = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    splits = vdata.load_dataset("mnist", data_dir=str(folder), val_fraction=0.1)
    assert splits.sizes == {"train": 54000, "validation": 6000, "test": 10000}


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


def test_pipeline_shapes_dtypes_and_raw_pixels(sample):
    train, val, test = vdata.pipelines(sample, (28, 28), 32, augment="none", seed=0)
    for ds in (train, val, test):
        x, y = next(iter(ds))
        assert x.shape == (32, 28, 28, 1) and x.dtype == tf.float32
        assert y.shape == (32, 10) and y.dtype == tf.float32
        np.testing.assert_allclose(y.numpy().sum(axis=1), 1.0)
        assert 200 < float(tf.reduce_max(x)) <= 255.0  # raw pixels: the model normalises
    assert sum(int(x.shape[0]) for x, _ in test) == 2000


def test_pipelines_do_not_autotune(sample):
    # tf.data autotuning takes cores from the training step on small machines (BENCHMARKS.md)
    for ds in vdata.pipelines(sample, (28, 28), 32, augment="digits", seed=0):
        assert ds.options().autotune.enabled is False


def test_pipeline_order_is_seeded(sample):
    def labels(seed):
        return first_labels(vdata.make_pipeline(sample.train, (28, 28), 64, 10, training=True, seed=seed))

    np.testing.assert_array_equal(labels(7), labels(7))
    assert not np.array_equal(labels(7), labels(8))
    # evaluation pipelines keep the stored order
    test_a = first_labels(vdata.make_pipeline(sample.test, (28, 28), 64, 10))
    np.testing.assert_array_equal(test_a, [int(y) for _, y in sample.test.take(128)])


def test_pipeline_resizes_to_the_model_size(sample):
    x, _ = next(iter(vdata.make_pipeline(sample.test, (32, 48), 8, 10)))
    assert x.shape == (8, 32, 48, 1)


def test_digit_augmentation_jitters_but_keeps_shapes(sample):
    plain = vdata.make_pipeline(sample.train, (28, 28), 64, 10, training=True, seed=1)
    jittered = vdata.make_pipeline(sample.train, (28, 28), 64, 10, training=True, augment="digits", seed=1)
    (x0, y0), (x1, y1) = next(iter(plain)), next(iter(jittered))
    np.testing.assert_array_equal(y0.numpy(), y1.numpy())  # same seeded order
    assert x1.shape == x0.shape and x1.dtype == tf.float32
    assert float(tf.reduce_mean(tf.abs(x1 - x0))) > 1.0
    assert float(tf.reduce_max(x1)) <= 255.5
    assert float(tf.math.reduce_std(x1)) > 0.92 * float(tf.math.reduce_std(x0))  # jitter, not blur


def test_shift_augmentation_moves_digits_by_whole_pixels(sample):
    plain = vdata.make_pipeline(sample.train, (28, 28), 64, 10, training=True, seed=1)
    shifted = vdata.make_pipeline(sample.train, (28, 28), 64, 10, training=True, augment="shift", seed=1)
    x0, x1 = next(iter(plain))[0].numpy()[..., 0], next(iter(shifted))[0].numpy()[..., 0]
    moved = 0
    for a, b in zip(x0, x1):  # each image equals the original shifted by (dy, dx), |dy|, |dx| <= 2
        padded = np.pad(a, 2)
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(padded[2 - dy : 30 - dy, 2 - dx : 30 - dx], b)]
        assert matches, "not a whole-pixel shift of at most 2 px"
        moved += (0, 0) not in matches
    assert moved > 32  # most images moved


def test_mixup_gives_soft_labels(sample):
    ds = vdata.make_pipeline(sample.train, (28, 28), 64, 10, training=True, mixup=0.4, seed=0)
    _, y = next(iter(ds))
    y = y.numpy()
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    assert (y.max(axis=1) < 0.999).any()


def test_natural_image_augmentation_crops_and_flips():
    images = np.tile(np.arange(32, dtype=np.uint8)[None, None, :, None], (16, 32, 1, 3)) * 8
    ds = tf.data.Dataset.from_tensor_slices((images, np.zeros(16, np.int32)))
    x, _ = next(iter(vdata.make_pipeline(ds, (32, 32), 16, 2, training=True, augment="randaugment", seed=0)))
    assert x.shape == (16, 32, 32, 3) and x.dtype == tf.float32
    assert not np.allclose(x.numpy(), images.astype("float32"))
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


def test_image_folder_with_train_and_test(tmp_path):
    write_image_folder(tmp_path / "train")
    write_image_folder(tmp_path / "test", per_class=2)
    splits = vdata.load_dataset(f"folder:{tmp_path}", image_size=16, val_fraction=0.25, seed=0)
    assert splits.class_names == ["cat", "dog"] and splits.num_classes == 2
    assert splits.sizes == {"train": 9, "validation": 3, "test": 4}
    x, y = next(iter(vdata.make_pipeline(splits.train, (16, 16), 4, 2, training=True, augment="natural")))
    assert x.shape == (4, 16, 16, 3) and y.shape == (4, 2)


def test_undecodable_image_is_named(tmp_path):
    write_image_folder(tmp_path)
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match=r"dog/broken.jpg cannot be decoded"):
        vdata.load_dataset(f"folder:{tmp_path}", image_size=16)


def test_empty_image_folders_are_reported(tmp_path):
    with pytest.raises(ValueError, match="expected one sub-folder of images per class; found none"):
        vdata.load_dataset(f"folder:{tmp_path}", image_size=16)
    (tmp_path / "cat").mkdir()
    with pytest.raises(ValueError, match=r"no images .* in class sub-folders \['cat'\]"):
        vdata.load_dataset(f"folder:{tmp_path}", image_size=16)


# ----------------------------------------------------------------------------- TFDS (offline)


def test_tfds_path_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        splits = vdata.load_dataset("tfds:mnist", val_fraction=0.25, seed=0)
        assert splits.source == "tfds:mnist" and splits.num_classes == 10
        assert splits.image_shape == (28, 28, 1)
        assert splits.sizes["train"] == 30 and splits.sizes["validation"] == 10
        train, val, test = vdata.pipelines(splits, (28, 28), 8, augment="digits")
        assert sum(int(x.shape[0]) for x, _ in train) == 30
        assert sum(int(x.shape[0]) for x, _ in val) == 10
        x, y = next(iter(test))
        assert x.shape == (8, 28, 28, 1) and x.dtype == tf.float32 and y.shape == (8, 10)


def test_unknown_tfds_name():
    with pytest.raises(ValueError, match="tfds:no_such_dataset_xyz is not a known TFDS dataset"):
        vdata.load_dataset("tfds:no_such_dataset_xyz")
