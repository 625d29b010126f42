"""Every input a served model can be sent, and an export process that is killed.

The signatures (`vit_keras.serving.signatures`) get empty batches, NaN / infinite / out-of-range
pixels, wrong shapes and dtypes, every image format in every source mode decoded to every channel
count, and damaged bytes. Two tiny models are exported once: an RGB one (in-process graph) and a
gray, channels-first one with an XLA-compiled forward pass (its assertions must survive XLA).
The export graph is the same whichever backend trained the model, so this runs under TensorFlow;
the kill test starts its own JAX process, whose export goes through the TensorFlow subprocess.
"""

import io
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_export import CLASS_NAMES, IMAGE_SIZE, tiny_vit

import vit_keras
from vit_keras import export as vexport
from vit_keras.serving.signatures import GRAY_WEIGHTS, ServingFunctions

pytestmark = pytest.mark.single_backend
HERE = pathlib.Path(__file__).resolve().parent
OUTPUTS = {"logits": tf.float32, "probabilities": tf.float32, "top_k_indices": tf.int32, "top_k_scores": tf.float32}


def gray_vit():
    return tiny_vit(in_channels=1, preprocessing="mnist", data_format="channels_first")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """{channels: (model, loaded SavedModel)}: RGB with class names; gray, channels first, XLA."""
    root = tmp_path_factory.mktemp("faults")
    loaded = {}
    models = ((3, tiny_vit(), dict(class_names=CLASS_NAMES)), (1, gray_vit(), dict(jit_compile=True)))
    for channels, model, options in models:
        path = vit_keras.export_saved_model(model, root / f"c{channels}", **options)
        loaded[channels] = (model, tf.saved_model.load(path))
    return loaded


def call(served, channels, signature, **inputs):
    return {k: v.numpy() for k, v in served[channels][1].signatures[signature](**inputs).items()}


def pixels(count, channels, value=128, dtype=np.float32):
    return np.full((count,) + IMAGE_SIZE + (channels,), value, dtype)


# ----------------------------------------------------------------------------- empty batches


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("signature", ["serving_default", "serving_uint8", "serving_bytes"])
def test_empty_batch_gives_empty_outputs(served, channels, signature):
    inputs = {
        "serving_default": {"images": tf.constant(pixels(0, channels))},
        "serving_uint8": {"images": tf.constant(pixels(0, channels, dtype=np.uint8))},
        "serving_bytes": {"image_bytes": tf.constant([], tf.string)},
    }[signature]
    out = served[channels][1].signatures[signature](**inputs)
    expected = dict(OUTPUTS, **({"top_k_labels": tf.string} if channels == 3 else {}))
    assert {k: (tuple(v.shape), v.dtype) for k, v in out.items()} == {k: ((0, 5), d) for k, d in expected.items()}


# ----------------------------------------------------------------------------- pixel values


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize(
    "value, counts",
    [(np.nan, r"\[1\] \[NaN and\] \[0\]"), (np.inf, r"\[0\] \[NaN and\] \[1\]"), (-np.inf, r"\[0\] \[NaN and\] \[1\]")],
)
def test_non_finite_pixels_are_refused(served, channels, value, counts):
    images = pixels(4, channels)
    images[3, 2, 1, 0] = value
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be finite pixels; .*" + counts):
        call(served, channels, "serving_default", images=tf.constant(images))


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("value", [-1.0, -0.001, 255.01, 1e6])
def test_pixels_outside_0_255_are_refused(served, channels, value):
    images = pixels(2, channels)
    images[1, 0, 0, 0] = value
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be raw pixels in 0\.\.255 \(clip them"):
        call(served, channels, "serving_default", images=tf.constant(images))


def test_pixel_diagnostics_are_computed_only_for_a_refused_request(served):
    """The counts and extremes in the messages cost passes over the pixels: they live in the failing
    branch of a cond, not in the graph every valid request runs; a refused request still gets them."""
    functions = ServingFunctions(tiny_vit())
    spec = tf.TensorSpec((None,) + IMAGE_SIZE + (3,), tf.float32)
    graph = tf.function(functions.check_pixels, autograph=False).get_concrete_function(spec).graph
    kinds = {op.type for op in graph.get_operations()}
    assert {"IsFinite", "All"} <= kinds  # the checks themselves run on every request
    assert not kinds & {"IsNan", "IsInf", "Min", "Max"}, kinds
    images = pixels(2, 3)
    images[0, 0, 0, 0], images[1, 1, 1, 1] = -1.0, 300.0
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"found values from\] \[-1\] \[to\] \[300\]"):
        call(served, 3, "serving_default", images=tf.constant(images))


@pytest.mark.parametrize("channels", [3, 1])
def test_the_bounds_0_and_255_are_pixels(served, channels):
    images = pixels(2, channels)
    images[0], images[1, :, :, 0] = 0.0, 255.0
    expected = call(served, channels, "serving_uint8", images=tf.constant(images.astype(np.uint8)))["logits"]
    logits = call(served, channels, "serving_default", images=tf.constant(images))["logits"]
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_a_model_without_preprocessing_takes_any_finite_values():
    functions = ServingFunctions(tiny_vit(preprocessing=None))
    check = tf.function(functions.check_pixels)
    images = pixels(2, 3, value=-7.5)
    images[1] = 1000.0
    np.testing.assert_array_equal(check(tf.constant(images)).numpy(), images)
    images[0, 0, 0, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="images must be finite pixels"):
        check(tf.constant(images))


# ----------------------------------------------------------------------------- shapes and dtypes


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("signature", ["serving_default", "serving_uint8"])
@pytest.mark.parametrize("shape", ["other_channels_empty", "rank5", "no_batch", "transposed"])
def test_pixels_of_the_wrong_shape_are_refused(served, channels, signature, shape):
    other = 4 - channels  # 1 <-> 3
    height, width = IMAGE_SIZE
    shape = {
        "other_channels_empty": (0, height, width, other),
        "rank5": (2, height, width, channels, 1),
        "no_batch": (height, width, channels),
        "transposed": (2, width, height, channels),
    }[shape]
    dtype = tf.float32 if signature == "serving_default" else tf.uint8
    message = rf"images must be a batch of shape .*\(batch, 16, 12, {channels}\)"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        call(served, channels, signature, images=tf.zeros(shape, dtype))


@pytest.mark.parametrize(
    "signature, name, value, expected",
    [
        ("serving_default", "images", tf.zeros((2, 16, 12, 3), tf.int32), "float"),
        ("serving_default", "images", tf.zeros((2, 16, 12, 3), tf.float64), "float"),
        ("serving_default", "images", tf.zeros((2, 16, 12, 3), tf.uint8), "float"),
        ("serving_uint8", "images", tf.zeros((2, 16, 12, 3), tf.float32), "uint8"),
        ("serving_bytes", "image_bytes", tf.zeros((2,), tf.float32), "string"),
    ],
)
def test_the_wrong_dtype_is_refused(served, signature, name, value, expected):
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"was expected to be a {expected} tensor"):
        call(served, 3, signature, **{name: value})


@pytest.mark.parametrize("value", [tf.constant([[b"a"], [b"b"]]), tf.constant(b"a")])
def test_image_bytes_must_be_a_vector(served, value):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes must be a vector \(batch,\)"):
        call(served, 3, "serving_bytes", image_bytes=value)


# ----------------------------------------------------------------------------- formats x channels


def _smooth_rgba():
    """A 16x12 RGBA image that JPEG keeps within a few levels, with a varying alpha."""
    rows, cols = np.mgrid[0 : IMAGE_SIZE[0], 0 : IMAGE_SIZE[1]]
    image = np.stack([rows * 15, cols * 20, 255 - rows * 10 - cols * 5, 80 + rows * 10], axis=-1)
    return np.clip(image, 0, 255).astype(np.uint8)


SOURCES = {  # name: (PIL format, PIL mode, save options)
    "png_gray": ("PNG", "L", {}),
    "png_gray_alpha": ("PNG", "LA", {}),
    "png_rgb": ("PNG", "RGB", {}),
    "png_rgba": ("PNG", "RGBA", {}),
    "png_palette": ("PNG", "P", {}),
    "jpeg_gray": ("JPEG", "L", {"quality": 95}),
    "jpeg_rgb": ("JPEG", "RGB", {"quality": 95}),
    "bmp_gray_8bit": ("BMP", "L", {}),
    "bmp_palette_8bit": ("BMP", "P", {}),
    "bmp_rgb": ("BMP", "RGB", {}),
    "bmp_rgba": ("BMP", "RGBA", {}),
    "gif_gray": ("GIF", "L", {}),
    "gif_rgb": ("GIF", "RGB", {}),
}


def encode(source):
    fmt, mode, options = SOURCES[source]
    image = Image.fromarray(_smooth_rgba(), "RGBA").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def reference_pixels(source, data, channels):
    """What `data` should decode to with `channels` channels: the image before encoding (PIL's
    decoding for the lossy JPEG and the palette-reducing GIF), through the documented conversions."""
    fmt, mode, _ = SOURCES[source]
    if fmt in ("JPEG", "GIF"):
        image = Image.open(io.BytesIO(data))
    else:
        image = Image.fromarray(_smooth_rgba(), "RGBA").convert(mode)
        image = image.convert("RGB") if (fmt, mode) == ("BMP", "P") else image  # a BMP palette has no alpha
    image = image.convert("RGBA" if image.mode in ("P", "RGBA", "LA", "PA") else "RGB" if image.mode != "L" else "L")
    array = np.asarray(image).astype(np.float64)
    array = array[..., None] if array.ndim == 2 else array
    gray = array.shape[-1] == 1 or np.ptp(array[..., :3], axis=-1).max() == 0
    rgb = np.repeat(array[..., :1], 3, axis=-1) if array.shape[-1] == 1 else array[..., :3]
    alpha = array[..., 3:] if array.shape[-1] == 4 else np.full(rgb.shape[:2] + (1,), 255.0)
    if channels == 1:
        return rgb[..., :1] if gray else np.round(rgb @ np.array(GRAY_WEIGHTS))[..., None]
    return rgb if channels == 3 else np.concatenate([rgb, alpha], axis=-1)


@pytest.fixture(scope="module")
def decoders():
    """{channels: in-process decode function}: the code behind `serving_bytes`, for pixel-exact checks."""
    models = {1: gray_vit(), 3: tiny_vit(), 4: tiny_vit(in_channels=4, preprocessing="unit")}
    return {c: tf.function(ServingFunctions(m).decode) for c, m in models.items()}


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_format_decodes_to_every_channel_count(decoders, source, channels):
    data = encode(source)
    decoded = decoders[channels](tf.constant([data, data])).numpy()
    assert decoded.shape == (2,) + IMAGE_SIZE + (channels,)
    expected = reference_pixels(source, data, channels)
    # TensorFlow decodes JPEG with the fast integer IDCT and its own chroma upsampling, PIL with
    # the accurate ones (a few levels apart); libpng's own RGB -> gray rounds differently by one.
    tolerance = 12 if source.startswith("jpeg") else 1 if channels == 1 else 0
    np.testing.assert_allclose(decoded[1], expected, rtol=0, atol=tolerance)
    assert np.abs(decoded[1] - expected).mean() <= (3 if source.startswith("jpeg") else 0.5)
    if source.endswith(("_gray", "gray_8bit", "gray_alpha")) and channels > 1:
        np.testing.assert_array_equal(decoded[..., 0], decoded[..., 1])  # gray stays gray


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_the_bytes_signature_serves_every_format(served, decoders, source, channels):
    data = encode(source)
    pixels_of = decoders[channels](tf.constant([data])).numpy()
    expected = call(served, channels, "serving_default", images=tf.constant(pixels_of))
    out = call(served, channels, "serving_bytes", image_bytes=tf.constant([data]))
    np.testing.assert_allclose(out["logits"], expected["logits"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(out["top_k_indices"], expected["top_k_indices"])


# ----------------------------------------------------------------------------- damaged bytes


def _damaged(kind):
    png = encode("png_rgb")
    if kind == "empty":
        return b""
    if kind == "text":
        return b"not an image at all"
    if kind == "bmp_1bit":
        buffer = io.BytesIO()
        Image.fromarray(_smooth_rgba()).convert("1").save(buffer, "BMP")
        return buffer.getvalue()
    if kind == "bmp_header_only":
        return encode("bmp_rgb")[:20]
    if kind == "png_corrupt_body":
        middle = len(png) // 2
        return png[:middle] + bytes(16) + png[middle + 16 :]
    fmt, _, fraction = kind.split("_")  # e.g. png_cut_half
    data = encode({"png": "png_rgb", "jpeg": "jpeg_rgb", "bmp": "bmp_rgb", "gif": "gif_rgb"}[fmt])
    return data[: len(data) // 2] if fraction == "half" else data[:-12]


TRUNCATED_BMP = r"image_bytes\[1\]\] \[is a truncated BMP: its header declares\] \[630\] \[bytes; found\] \[315\]"


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty", r"image_bytes\[1\]\] \[is empty \(0 bytes\)"),
        ("text", r"image_bytes\[1\]\] \[is not a JPEG, PNG, GIF or BMP image"),
        ("bmp_1bit", r"image_bytes\[1\]\] \[is a BMP of\] \[1\] \[bits per pixel"),
        ("bmp_header_only", r"image_bytes\[1\]\] \[is a truncated BMP"),
        ("png_cut_half", r"PNG"),
        ("png_cut_end", r"PNG"),
        ("png_corrupt_body", r"PNG"),
        ("jpeg_cut_half", r"JPEG"),
        ("jpeg_cut_end", r"JPEG"),
        ("bmp_cut_half", TRUNCATED_BMP),
        ("gif_cut_half", r"GIF|gif"),
    ],
)
def test_damaged_bytes_are_refused_with_a_clear_error(served, kind, message):
    good = encode("png_rgb")
    with pytest.raises(tf.errors.InvalidArgumentError, match=message) as error:
        call(served, 3, "serving_bytes", image_bytes=tf.constant([good, _damaged(kind)]))
    assert "image_bytes" in str(error.value)  # our message, or the decoder's node under image_bytes/
    assert call(served, 3, "serving_bytes", image_bytes=tf.constant([good]))["logits"].shape == (1, 5)


def _declaring(fmt, height, width):
    """A small encoded image whose header declares `height` x `width` pixels (its body is a few rows)."""
    import struct
    import zlib

    if fmt == "png":

        def chunk(kind, body):
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

        rows = zlib.compress(b"\0" * (width + 1) * 4)
        header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    if fmt == "gif":
        return b"GIF89a" + struct.pack("<HH", width, height) + encode("gif_gray")[10:]
    if fmt == "bmp":
        data = bytearray(encode("bmp_rgb"))
        data[18:26] = struct.pack("<ii", width, -height)  # a negative height: rows stored top-down
        return bytes(data)
    data = bytearray(encode("jpeg_rgb"))
    frame = data.index(b"\xff\xc0")  # the baseline frame header: precision, height, width
    data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(
    "fmt, height, width", [("png", 20000, 10000), ("gif", 65535, 2000), ("bmp", 30000, 3000), ("jpeg", 30000, 30000)]
)
def test_images_declaring_too_many_pixels_are_refused_before_decoding(decoders, fmt, height, width):
    """A decompression bomb (a few hundred bytes that would decode into gigabytes) is refused by its header."""
    from vit_keras.serving.signatures import MAX_IMAGE_PIXELS

    assert height * width > MAX_IMAGE_PIXELS
    message = rf"image_bytes\[1\]\] \[declares\] \[{height}\] \[x\] \[{width}\] \[pixels \(height x width\), more than"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        decoders[1](tf.constant([encode("png_gray"), _declaring(fmt, height, width)]))


def _gif_of_frames(frames, width, height, screen=(1, 1)):
    """A GIF whose logical screen is `screen` and whose `frames` frames each declare width x height
    pixels (a few bytes of image data each: the check reads the descriptors, not the pixels)."""
    import struct

    out = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"  # 2-colour table
    for _ in range(frames):
        out += b"\x21\xf9\x04\x00\x00\x00\x00\x00"  # a graphic control extension
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return out + b"\x3b"


@pytest.mark.parametrize(
    "frames, width, height, found",
    [
        (30, 2000, 2000, r"\[23\] \[frames, decoded at\] \[4000000\]"),
        (1, 10000, 10000, r"\[1\] \[frames, decoded at\] \[100000000\]"),
    ],
)
def test_gifs_whose_frames_decode_beyond_the_pixel_limit_are_refused(decoders, frames, width, height, found):
    """TensorFlow decodes every GIF frame at the largest frame's size, whatever the logical screen
    (here 1 x 1) declares: frames x largest is checked from the image descriptors."""
    from vit_keras.serving.signatures import gif_frames

    assert [int(v) for v in gif_frames(tf.constant(_gif_of_frames(5, 40, 30)), 10**9)] == [5, 1200]
    message = r"\[image_bytes\[0\]\] \[is a GIF of at least\] " + found
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        decoders[1](tf.constant([_gif_of_frames(frames, width, height)]))
    animated = io.BytesIO()  # a real 3-frame animation still decodes: its first frame
    images = [Image.fromarray(np.full(IMAGE_SIZE, 60 * i, np.uint8), "L") for i in range(1, 4)]
    images[0].save(animated, "GIF", save_all=True, append_images=images[1:], duration=50)
    assert [int(v) for v in gif_frames(tf.constant(animated.getvalue()), 10**9)] == [3, IMAGE_SIZE[0] * IMAGE_SIZE[1]]
    decoded = decoders[1](tf.constant([animated.getvalue()])).numpy()
    assert decoded.shape == (1,) + IMAGE_SIZE + (1,) and np.all(decoded == 60)


def test_the_pixel_limit_reads_the_size_each_header_declares(monkeypatch):
    """Just above and at a lowered limit: the declared size is read right for every format."""
    from vit_keras.serving import signatures

    height, width = IMAGE_SIZE
    decode = {}
    for limit in (height * width - 1, height * width):  # the limit is read when the graph is built
        monkeypatch.setattr(signatures, "MAX_IMAGE_PIXELS", limit)
        decoder = tf.function(ServingFunctions(gray_vit()).decode)
        decode[limit] = decoder.get_concrete_function(tf.TensorSpec((None,), tf.string))  # traced now
    for source in ("png_gray", "gif_gray", "bmp_gray_8bit", "jpeg_gray"):
        data = tf.constant([encode(source)])
        with pytest.raises(tf.errors.InvalidArgumentError, match=rf"\[declares\] \[{height}\] \[x\] \[{width}\]"):
            decode[height * width - 1](data)
        assert decode[height * width](data).shape == (1,) + IMAGE_SIZE + (1,)


# ----------------------------------------------------------------------------- killed exports

PARENT = """
import sys
sys.path.insert(0, sys.argv[2])
import vit_keras
from test_export import tiny_vit
vit_keras.export_saved_model(tiny_vit(), sys.argv[1])
"""


def _children(pid):
    """The pids whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for_worker(parent, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and parent.poll() is None:
        for pid in _children(parent.pid):
            try:
                if b"tf_worker" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"no tf_worker child appeared (parent exit code {parent.poll()})")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and relies on PR_SET_PDEATHSIG")
def test_killed_export_takes_its_worker_along_and_the_next_export_cleans_up(tmp_path):
    base = tmp_path / "served"
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2")
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(base), str(HERE)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        worker = _wait_for_worker(parent)
        time.sleep(1.0)  # the worker is importing TensorFlow
        assert _running(worker)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(worker), "the export worker outlived its killed parent"
    finally:
        parent.kill()
    left = [p.name for p in base.iterdir()]
    assert any(name.startswith(f".1.scratch-{parent.pid}@") for name in left), left
    path = vit_keras.export_saved_model(tiny_vit(), base)  # in-process, into the same folder
    assert path == str(base / "1")
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def test_next_export_removes_only_the_leftovers_of_dead_exports(tmp_path, monkeypatch):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host, live = vexport._host_tag(), os.getpid()
    base = tmp_path / "m"
    leftovers = {
        f".2.partial-{dead.pid}@{host}-0000abcd": "gone",
        f".2.scratch-{dead.pid}@{host}-0000abce": "gone",
        f".1.old-{dead.pid}@{host}-0000abcf": "restored as 1",
        f".3.partial-{live}@{host}-0000abd0": "kept",
        f".4.partial-{dead.pid}@{'0' * 8 if host != '0' * 8 else '1' * 8}-0000abd1": "kept",
        ".5.partial-x": "kept",
    }
    for name in leftovers:
        (base / name).mkdir(parents=True)
        (base / name / "saved_model.pb").write_text(name)
    (base / f".model.onnx.partial-{dead.pid}@{host}-0000abd2").write_bytes(b"half an onnx file")

    def fake_write(model, path, scratch, **options):
        path.mkdir()
        (path / "saved_model.pb").write_text("new")

    monkeypatch.setattr(vexport, "_write", fake_write)
    assert vit_keras.export_saved_model(tiny_vit(), base) == str(base / "2")  # 1 is back: 2 is next
    kept = sorted(name for name, fate in leftovers.items() if fate == "kept")
    assert sorted(p.name for p in base.iterdir()) == sorted(["1", "2"] + kept)
    assert (base / "1" / "saved_model.pb").read_text() == f".1.old-{dead.pid}@{host}-0000abcf"
