"""Damaged dataset files and inconsistent datasets: each gives a one-line ValueError naming the file.

IDX files (raw and .gz), .npz datasets and image folders are truncated at seeded random offsets,
emptied, have bytes flipped or are another kind of file renamed; datasets get labels outside the
classes, classes without examples, non-integer labels and empty splits. Every error is raised by
`load_dataset`, before any training, as one line that names the file (or split) at fault.
"""

import gzip
import io
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vit_keras import data as vdata
from vit_keras.data import folders as data_folders
from vit_keras.data import images as data_images

pytestmark = pytest.mark.single_backend  # file checks: the same on every backend


def raises_one_line(call, *names):
    """The message of the ValueError that `call()` raises; it is one line and contains each of `names`."""
    with pytest.raises(ValueError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message, message
    for name in names:
        assert str(name) in message, f"{name!r} not in: {message}"
    return message


def flip(data, *positions):
    data = bytearray(data)
    for position in positions:
        data[position] ^= 0xFF
    return bytes(data)


def offsets(length, count, low=1):
    """`count` distinct offsets in [low, length), drawn with a seed fixed by the arguments."""
    rng = np.random.default_rng([2024, length, count, low])
    return sorted(int(o) for o in rng.choice(np.arange(low, length), size=count, replace=False))


def png_bytes(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png_with_size(width, height):
    """A 16x16 PNG whose header (IHDR, checksum fixed) declares `width` x `height` pixels."""
    data = bytearray(png_bytes(np.zeros((16, 16, 3), np.uint8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# ----------------------------------------------------------------------------- IDX files


def write_idx(path, array, gz):
    array = np.asarray(array, dtype=np.uint8)
    payload = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload += array.tobytes()
    path.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)


@pytest.fixture(params=[True, False], ids=["gz", "raw"])
def idx_folder(request, tmp_path):
    """An MNIST-style IDX folder (60 train / 20 test 28x28 images of 10 classes), .gz or raw."""
    rng = np.random.default_rng(0)
    suffix = ".gz" if request.param else ""
    for split, count in (("train", 60), ("t10k", 20)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (count, 28, 28)), request.param)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte{suffix}", np.arange(count) % 10, request.param)
    return tmp_path, suffix


def load_idx(folder):
    return vdata.load_dataset(f"idx:{folder}")


def test_intact_idx_folder_loads(idx_folder):
    folder, _ = idx_folder
    splits = load_idx(folder)
    assert splits.sizes == {"train": 54, "validation": 6, "test": 20} and splits.num_classes == 10


@pytest.mark.parametrize("stem", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
def test_truncated_idx_files(idx_folder, stem):
    folder, suffix = idx_folder
    path = folder / f"{stem}{suffix}"
    intact = path.read_bytes()
    for cut in offsets(len(intact), 4):
        path.write_bytes(intact[:cut])
        message = raises_one_line(lambda: load_idx(folder), path)
        assert ("gzip" in message) if suffix else ("corrupt header" in message or "truncated" in message)
        assert "intact copy" in message


@pytest.mark.parametrize("stem", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
def test_empty_idx_files(idx_folder, stem):
    folder, suffix = idx_folder
    path = folder / f"{stem}{suffix}"
    path.write_bytes(b"")
    assert "an empty file (0 bytes)" in raises_one_line(lambda: load_idx(folder), path)


@pytest.mark.parametrize(
    "position, expected",
    [
        (0, "corrupt header"),
        (1, "corrupt header"),
        (2, "expected unsigned-byte data"),
        (3, "corrupt header"),
        (5, "header declares shape"),
        (9, "header declares shape"),
        (15, "header declares shape"),
    ],
    ids=["magic0", "magic1", "type", "ndim", "count", "height", "width"],
)
def test_idx_header_bytes_flipped(idx_folder, position, expected):
    folder, suffix = idx_folder
    path = folder / f"train-images-idx3-ubyte{suffix}"
    raw = gzip.decompress(path.read_bytes()) if suffix else path.read_bytes()
    damaged = flip(raw, position)
    path.write_bytes(gzip.compress(damaged) if suffix else damaged)
    assert expected in raises_one_line(lambda: load_idx(folder), path)


def test_gzip_stream_bytes_flipped(tmp_path):
    """Flipped bytes in the gzip header, the deflate data or the trailer's checksum."""
    rng = np.random.default_rng(1)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (60, 28, 28)), True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(60) % 10, True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)), True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10, True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    intact = path.read_bytes()
    for position in [2, 3] + offsets(len(intact) - 8, 3, low=10) + [len(intact) - 6]:
        path.write_bytes(flip(intact, position))
        assert "damaged gzip stream" in raises_one_line(lambda: load_idx(tmp_path), path)


@pytest.mark.parametrize(
    "content, looks_like",
    [
        (png_bytes(np.zeros((4, 4), np.uint8)), "a PNG image"),
        (b"train images go here\n", "text"),
        (b"PK\x03\x04" + bytes(40), "a zip archive"),
    ],
    ids=["png", "text", "zip"],
)
def test_other_files_renamed_to_idx(idx_folder, content, looks_like):
    folder, suffix = idx_folder
    path = folder / f"t10k-images-idx3-ubyte{suffix}"
    path.write_bytes(content)
    assert looks_like in raises_one_line(lambda: load_idx(folder), path)


def test_idx_images_and_labels_swapped(idx_folder):
    folder, suffix = idx_folder
    images, labels = folder / f"train-images-idx3-ubyte{suffix}", folder / f"train-labels-idx1-ubyte{suffix}"
    swap = folder / "swap"
    shutil.move(images, swap)
    shutil.move(labels, images)
    shutil.move(swap, labels)
    assert "expected images of shape" in raises_one_line(lambda: load_idx(folder), images)


# ----------------------------------------------------------------------------- .npz datasets


def npz_arrays(n_train=30, n_test=9, classes=3):
    rng = np.random.default_rng(0)
    return dict(
        x_train=rng.integers(0, 256, (n_train, 8, 8), dtype=np.uint8),
        y_train=np.arange(n_train) % classes,
        x_test=rng.integers(0, 256, (n_test, 8, 8), dtype=np.uint8),
        y_test=np.arange(n_test) % classes,
    )


def save_npz(path, compressed=False, **arrays):
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def load_npz_spec(path):
    return vdata.load_dataset(f"npz:{path}")


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_truncated_npz(tmp_path, compressed):
    path = save_npz(tmp_path / "digits.npz", compressed, **npz_arrays())
    intact = path.read_bytes()
    assert load_npz_spec(path).sizes["train"] == 27
    for cut in offsets(len(intact), 5):
        path.write_bytes(intact[:cut])
        raises_one_line(lambda: load_npz_spec(path), path, "save it again")


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_npz_bytes_flipped(tmp_path, compressed):
    """Flipped bytes in the first zip entry's signature, inside x_train's data and in the end-of-archive record."""
    path = save_npz(tmp_path / "digits.npz", compressed, **npz_arrays(n_train=200))
    intact = path.read_bytes()
    for position in [0] + offsets(1000, 3, low=300) + [len(intact) - 22]:
        path.write_bytes(flip(intact, position))
        raises_one_line(lambda: load_npz_spec(path), path, "save it again")


@pytest.mark.parametrize(
    "content, looks_like",
    [
        (b"", "is empty (0 bytes)"),
        (b"x_train,y_train\n1,2\n", "text"),
        (png_bytes(np.zeros((4, 4), np.uint8)), "PNG"),
        (gzip.compress(b"\x00\x00\x08\x01" + bytes(8)), "gzip"),
        (None, "a .npy array"),
    ],
    ids=["empty", "csv", "png", "gzip", "npy"],
)
def test_not_an_npz(tmp_path, content, looks_like):
    path = tmp_path / "digits.npz"
    if content is None:
        np.save(tmp_path / "array.npy", np.zeros((3, 8, 8), np.uint8))
        shutil.move(tmp_path / "array.npy", path)
    else:
        path.write_bytes(content)
    assert looks_like in raises_one_line(lambda: load_npz_spec(path), path)


def test_npz_missing_arrays(tmp_path):
    arrays = npz_arrays()
    del arrays["y_test"]
    path = save_npz(tmp_path / "digits.npz", **arrays)
    assert "missing ['y_test']" in raises_one_line(lambda: load_npz_spec(path), path)


def test_npz_object_arrays_are_not_unpickled(tmp_path):
    arrays = npz_arrays()
    arrays["y_train"] = np.array([str(i % 3) for i in range(30)], dtype=object)
    path = save_npz(tmp_path / "digits.npz", **arrays)
    assert "array y_train holds Python objects" in raises_one_line(lambda: load_npz_spec(path), path)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("x_train", np.zeros((30, 8, 8), np.complex64), "expected numeric pixel values; found dtype complex64"),
        ("x_train", np.full((30, 8, 8), "a"), "expected numeric pixel values"),
        ("x_train", np.random.default_rng(0).random((30, 8, 8)), "multiply them by 255"),
        ("x_test", np.full((9, 8, 8), -1.5), "expected raw pixels in [0, 255]; found values in [-1.5, -1.5]"),
        ("x_test", np.full((9, 8, 8), 300, np.int16), "found values in [300, 300]"),
        ("x_train", np.full((30, 8, 8), np.nan, np.float32), "NaN or infinite"),
        ("y_train", np.arange(30) % 3 + 0.5, "labels must be integer class indices; found 0.5 at index 0"),
        ("y_test", np.array(["cat", "dog", "emu"] * 3), "found dtype <U3 (first: np.str_('cat'))"),
        ("x_train", np.zeros((30, 64), np.uint8), "expected images of shape (N, H, W) or (N, H, W, C)"),
        ("x_train", np.zeros((30, 3, 8, 8), np.uint8), "(channels last); found shape (30, 3, 8, 8)"),
        ("y_train", np.eye(3)[np.arange(30) % 3], "one-hot labels?"),
        ("y_train", np.arange(29) % 3, "29 labels for 30 images"),
        ("x_test", np.zeros((9, 10, 10), np.uint8), "train and test images differ in shape"),
    ],
    ids=[
        "complex",
        "strings",
        "unit-floats",
        "negative",
        "over-255",
        "nan",
        "fractional-labels",
        "string-labels",
        "flat-images",
        "channels-first",
        "one-hot",
        "count-mismatch",
        "shape-mismatch",
    ],
)
def test_npz_wrong_dtypes_and_shapes(tmp_path, key, value, expected):
    path = save_npz(tmp_path / "digits.npz", **{**npz_arrays(), key: value})
    names = [path, key] if expected != "train and test images differ in shape" else [path]
    assert expected in raises_one_line(lambda: load_npz_spec(path), *names)


def test_npz_labels_of_shape_n_by_1_and_float_integers_load(tmp_path):
    """keras.datasets.cifar10 labels (N, 1) and whole-number float labels are class indices."""
    arrays = npz_arrays()
    path = save_npz(tmp_path / "digits.npz", **{**arrays, "y_train": arrays["y_train"][:, None].astype(float)})
    splits = load_npz_spec(path)
    assert splits.num_classes == 3 and splits.sizes["train"] == 27


# ----------------------------------------------------------------------------- dataset checks


@pytest.mark.parametrize(
    "train_labels, test_labels, expected",
    [
        (np.arange(30) % 4 * (np.arange(30) % 4 != 2), np.arange(9) % 4, "class 2 of classes 0..3 has no training"),
        (np.arange(30) % 3, np.arange(9) % 3 + 2, "y_test: label 3 at index 1 is outside the classes 0..2"),
        (np.arange(30) % 3 - 1, np.arange(9) % 3, "labels must be class indices 0..K-1; found -1 at index 0"),
        (np.zeros(30, int), np.zeros(9, int), "at least two classes; every label is 0 (30 examples)"),
    ],
    ids=["gap", "test-only-classes", "negative", "one-class"],
)
def test_label_checks(tmp_path, train_labels, test_labels, expected):
    path = save_npz(tmp_path / "digits.npz", **{**npz_arrays(), "y_train": train_labels, "y_test": test_labels})
    assert expected in raises_one_line(lambda: load_npz_spec(path), path)


def test_label_beyond_the_class_names():
    x = np.zeros((12, 4, 4), np.uint8)
    message = raises_one_line(
        lambda: vdata.splits_from_arrays(
            (x, np.arange(12) % 3), (x[:3], [0, 1, 3]), source="cats", class_names=["a", "b", "c"]
        ),
        "cats test labels",
    )
    assert "label 3 at index 2 is outside the class range 0..2 of the 3 class names" in message


def test_idx_test_label_beyond_the_training_classes_names_the_test_labels_file(tmp_path):
    """A test label past the training classes is reported against the test labels file, not the training one."""
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (60, 28, 28)), False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(60) % 10, False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)), False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(20) % 12, False)  # labels 10 and 11 at 10, 11
    message = raises_one_line(lambda: load_idx(tmp_path), tmp_path / "t10k-labels-idx1-ubyte")
    assert message.startswith(f"IDX file {tmp_path / 't10k-labels-idx1-ubyte'}: label 10 at index 10 is outside")
    assert "the classes 0..9 of the training labels" in message and "2 such labels" in message


def test_a_one_class_train_split_is_reported_before_test_labels_beyond_it():
    x = np.zeros((12, 4, 4), np.uint8)
    message = raises_one_line(
        lambda: vdata.splits_from_arrays((x, np.zeros(12, int)), (x[:3], [0, 1, 2]), source="cats"), "cats train"
    )
    assert "at least two classes; every label is 0" in message


def test_idx_label_byte_flipped_is_a_class_without_examples(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (60, 28, 28)), False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)), False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(20) % 10, False)
    labels = np.arange(60) % 10
    labels[7] = 200  # a flipped label byte
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels, False)
    message = raises_one_line(lambda: load_idx(tmp_path), tmp_path / "train-labels-idx1-ubyte")
    assert "classes 10, 11, 12, 13, 14 and 185 more of classes 0..200 have no training examples" in message


@pytest.mark.parametrize(
    "arrays, val_fraction, expected",
    [
        (dict(x_train=np.zeros((0, 8, 8), np.uint8), y_train=np.zeros(0, int)), 0.1, "x_train: no examples found"),
        (dict(x_test=np.zeros((0, 8, 8), np.uint8), y_test=np.zeros(0, int)), 0.1, "x_test: no examples found"),
        (
            dict(x_train=np.zeros((2, 8, 8), np.uint8), y_train=np.arange(2), y_test=np.arange(9) % 2),
            0.9,
            "validation fraction 0.9 of 2 examples leaves none to train on",
        ),
    ],
    ids=["empty-train", "empty-test", "validation-takes-all"],
)
def test_empty_splits(tmp_path, arrays, val_fraction, expected):
    path = save_npz(tmp_path / "digits.npz", **{**npz_arrays(), **arrays})
    assert expected in raises_one_line(lambda: vdata.load_dataset(f"npz:{path}", val_fraction=val_fraction), path)


# ----------------------------------------------------------------------------- image folders


def write_folder(root, classes=("cat", "dog"), per_class=5, size=(12, 10), channels=3, fmt="png"):
    """Class sub-folders of random images; returns {class: [files]}."""
    rng = np.random.default_rng(0)
    files = {}
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        files[name] = []
        for i in range(per_class):
            pixels = rng.integers(0, 256, size + ((channels,) if channels > 1 else ()), dtype=np.uint8)
            path = root / name / f"{i}.{fmt}"
            path.write_bytes(png_bytes(pixels) if fmt == "png" else jpeg_bytes(pixels))
            files[name].append(path)
    return files


def load_folder(root, **options):
    return vdata.load_dataset(f"folder:{root}", image_size=8, **options)


def test_intact_folder_is_decoded_before_training(tmp_path):
    files = write_folder(tmp_path / "train")
    write_folder(tmp_path / "test", per_class=2)
    splits = load_folder(tmp_path, val_fraction=0.2)
    assert splits.sizes == {"train": 8, "validation": 2, "test": 4} and splits.skipped == []
    assert splits.image_shape == (8, 8, 3) and splits.class_names == ["cat", "dog"]
    image, label = next(iter(splits.test))  # test order: class folders, then files, as listed
    expected = data_images.resize_pixels(np.asarray(Image.open(tmp_path / "test" / "cat" / "0.png")), (8, 8))
    np.testing.assert_array_equal(image.numpy(), expected)
    assert int(label) == 0 and len(files["cat"]) == 5


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_zero_byte_images(tmp_path, fmt):
    write_folder(tmp_path, fmt=fmt)
    bad = tmp_path / "dog" / f"3.{fmt}"
    bad.write_bytes(b"")
    assert "the file is empty (0 bytes)" in raises_one_line(lambda: load_folder(tmp_path), bad, "skip_bad_images=True")


def test_png_with_valid_header_and_truncated_body(tmp_path):
    write_folder(tmp_path, size=(40, 40))
    bad = tmp_path / "cat" / "2.png"
    intact = bad.read_bytes()
    for cut in offsets(len(intact) - 20, 4, low=60):  # past the 8-byte signature and the IHDR chunk
        bad.write_bytes(intact[:cut])
        assert "pixel data is damaged" in raises_one_line(lambda: load_folder(tmp_path), bad)


def test_jpeg_truncated_mid_scan(tmp_path):
    write_folder(tmp_path, size=(40, 40), fmt="jpg")
    bad = tmp_path / "dog" / "0.jpg"
    intact = bad.read_bytes()
    scan = intact.index(b"\xff\xda") + 20  # past the start-of-scan marker
    for cut in offsets(len(intact) - 10, 4, low=scan):
        bad.write_bytes(intact[:cut])
        assert "image file is truncated" in raises_one_line(lambda: load_folder(tmp_path), bad)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("notes.png", b"these are my notes, not a picture\n", "it looks like text"),
        ("photo.jpg", b"\x00\x01\x02\x03" * 10, "it looks like bytes 00 01 02 03"),
        ("archive.png", b"PK\x03\x04" + bytes(60), "it looks like a zip archive"),
        ("magic.png", flip(png_bytes(np.zeros((8, 8), np.uint8)), 1), "not a PNG, JPEG, GIF or BMP image"),
    ],
    ids=["text", "binary", "zip", "png-magic-flipped"],
)
def test_other_files_renamed_to_images(tmp_path, name, content, expected):
    write_folder(tmp_path)
    (tmp_path / "dog" / name).write_bytes(content)
    assert expected in raises_one_line(lambda: load_folder(tmp_path), tmp_path / "dog" / name)


def test_png_data_bytes_flipped(tmp_path):
    write_folder(tmp_path, size=(40, 40))
    bad = tmp_path / "cat" / "1.png"
    intact = bad.read_bytes()
    start = intact.index(b"IDAT") + 8
    for position in offsets(len(intact) - 20, 3, low=start):
        bad.write_bytes(flip(intact, position))
        assert "pixel data is damaged" in raises_one_line(lambda: load_folder(tmp_path), bad)


@pytest.mark.parametrize(
    "width, height, expected",
    [
        (0, 16, "not a PNG, JPEG, GIF or BMP image"),
        (10_000, 10_000, "declares 10000 x 10000 pixels"),
        (100_000, 100_000, "header declares too many pixels"),
    ],
    ids=["zero-width", "over-limit", "decompression-bomb"],
)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_unreadable_image_sizes(tmp_path, width, height, expected):
    write_folder(tmp_path)
    bad = tmp_path / "cat" / "huge.png"
    bad.write_bytes(png_with_size(width, height))
    assert expected in raises_one_line(lambda: load_folder(tmp_path), bad)


def test_many_bad_files_are_counted(tmp_path):
    write_folder(tmp_path)
    for i in range(3):
        (tmp_path / "cat" / f"{i}.png").write_bytes(b"")
    message = raises_one_line(lambda: load_folder(tmp_path), tmp_path / "cat" / "0.png")
    assert "(2 more of 10 files cannot be decoded, e.g. cat/1.png)" in message


def test_mixed_channel_counts_become_rgb(tmp_path):
    """Grayscale images among colour ones are replicated into RGB; an all-grayscale folder stays 1-channel."""
    write_folder(tmp_path, size=(8, 8))
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    (tmp_path / "dog" / "gray.png").write_bytes(png_bytes(gray))
    Image.fromarray(np.full((8, 8, 4), 200, np.uint8)).save(tmp_path / "dog" / "rgba.png")
    splits = load_folder(tmp_path, val_fraction=0.0)
    assert splits.image_shape == (8, 8, 3)
    images = [x.numpy() for x, _ in splits.train]
    assert all(x.shape == (8, 8, 3) for x in images) and len(images) == 12
    assert any(np.array_equal(x, np.repeat(gray[..., None], 3, -1)) for x in images)
    assert any(np.array_equal(x, np.full((8, 8, 3), 200, np.uint8)) for x in images)  # alpha dropped
    gray_only = tmp_path / "gray"
    write_folder(gray_only, channels=1)
    assert load_folder(gray_only).image_shape == (8, 8, 1)


def test_skip_bad_images_lists_and_excludes_them(tmp_path):
    write_folder(tmp_path / "train", classes=("a", "b", "c"), per_class=6, size=(8, 8))
    write_folder(tmp_path / "test", classes=("a", "b", "c"), per_class=2, size=(8, 8))
    bad = [tmp_path / "train" / "a" / "0.png", tmp_path / "train" / "a" / "1.png", tmp_path / "test" / "c" / "1.png"]
    bad[0].write_bytes(b"")
    bad[1].write_bytes(bad[1].read_bytes()[:70])
    bad[2].write_text("not an image")
    message = raises_one_line(lambda: load_folder(tmp_path), bad[2], "skip_bad_images=True")  # the first, sorted
    assert "(2 more of 24 files cannot be decoded, e.g. train/a/0.png)" in message
    splits = load_folder(tmp_path, skip_bad_images=True, val_fraction=0.25)
    assert splits.skipped == sorted(str(p) for p in bad)
    assert splits.sizes == {"train": 12, "validation": 4, "test": 5}
    labels = [int(y) for ds in (splits.train, splits.validation) for _, y in ds]
    assert np.bincount(labels).tolist() == [4, 6, 6]  # class a lost its 2 bad files
    assert sorted(int(y) for _, y in splits.test) == [0, 0, 1, 1, 2]
    train, _, _ = vdata.pipelines(splits, (8, 8), 5, augment="none")
    assert sum(int(x.shape[0]) for x, _ in train) == 12  # a whole epoch runs


def test_class_without_images(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "emu").mkdir()
    raises_one_line(lambda: load_folder(tmp_path), tmp_path / "emu", "has no images")
    (tmp_path / "emu" / "0.png").write_bytes(b"")
    message = raises_one_line(lambda: load_folder(tmp_path, skip_bad_images=True), tmp_path / "emu")
    assert "has no images after skipping 1 undecodable files" in message


@pytest.mark.parametrize(
    "options, expected",
    [
        (dict(image_size=0), "image_size must be a positive int or (height, width); found 0"),
        (dict(image_size=(8, 8, 3)), "found (8, 8, 3)"),
        (dict(image_size=8, channels=2), "channels must be 1, 3, 4"),
    ],
    ids=["zero-size", "three-sizes", "two-channels"],
)
def test_bad_folder_arguments(tmp_path, options, expected):
    write_folder(tmp_path)
    assert expected in raises_one_line(lambda: vdata.load_image_folder(tmp_path, **options))


def test_one_class_folder(tmp_path):
    write_folder(tmp_path, classes=("cat",))
    assert "at least two class sub-folders" in raises_one_line(lambda: load_folder(tmp_path), tmp_path)


def test_folder_too_big_to_keep_is_decoded_from_the_files(tmp_path, monkeypatch):
    """Above IN_MEMORY_LIMIT_BYTES the files are checked, then decoded again while training: same pixels."""
    write_folder(tmp_path, size=(10, 12))
    kept = load_folder(tmp_path, val_fraction=0.0)
    monkeypatch.setattr(data_folders, "IN_MEMORY_LIMIT_BYTES", 0)
    streamed = load_folder(tmp_path, val_fraction=0.0)
    for (x0, y0), (x1, y1) in zip(kept.train, streamed.train, strict=True):
        np.testing.assert_array_equal(x0.numpy(), x1.numpy())
        assert int(y0) == int(y1)
    for path in tmp_path.rglob("*.png"):  # the streamed split decodes the files again, the kept one does not
        path.write_bytes(png_bytes(np.zeros((10, 12, 3), np.uint8)))
    assert not any(x.numpy().any() for x, _ in streamed.train)
    assert all(x.numpy().any() for x, _ in kept.train)
    (tmp_path / "cat" / "4.png").write_bytes(b"GIF89a")
    raises_one_line(lambda: load_folder(tmp_path), tmp_path / "cat" / "4.png")
