"""Attention rollout, position-embedding similarity, confusion matrices and `vit-keras plot`."""

import keras
import numpy as np
import pytest
from conftest import REPO
from PIL import Image

import vit_keras
from vit_keras import visualize
from vit_keras.cli import main as cli_main
from vit_keras.curves import read_metrics
from vit_keras.data import SAMPLE_PATH
from vit_keras.runs import write_metrics_csv

# The seed's model: 28x28 digits, patches of 7 (a 4x4 grid), one block of width 100, one head.
SEED_MODEL = dict(
    image_size=28,
    in_channels=1,
    embed_dim=100,
    patch_size=7,
    depth=1,
    num_heads=1,
    num_classes=10,
    mlp_ratio=4.0,
    dropout=0.1,
    preprocessing="mnist",
)


def png_size(path):
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def digit_regions(images):
    """(ink, halo): the digit's pixels, and those within 2 pixels of one (the stroke's blur)."""
    ink = images[..., 0] > 0
    halo = np.zeros_like(ink)
    padded = np.pad(ink, ((0, 0), (2, 2), (2, 2)))
    for dy in range(5):
        for dx in range(5):
            halo |= padded[:, dy : dy + 28, dx : dx + 28]
    return ink, halo


@pytest.fixture(scope="module")
def mnist():
    with np.load(SAMPLE_PATH) as arrays:
        return {key: arrays[key] for key in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(scope="module")
def fitted_run(trained_run):
    """(model, run directory) of the session's short `vit-keras train` run (conftest's `trained_run`)."""
    run_dir, _ = trained_run
    return keras.saving.load_model(run_dir / "model.keras"), run_dir


def untrained(**overrides):
    keras.utils.set_random_seed(1)
    return vit_keras.ViT(**{**SEED_MODEL, **overrides})


# ----------------------------------------------------------------------------- rollout


@pytest.mark.single_backend
def test_rollout_adds_identity_renormalises_and_multiplies_through_layers():
    rng = np.random.default_rng(0)
    layers = [rng.dirichlet(np.ones(5), size=(2, 3, 5)) for _ in range(2)]  # (batch, heads, T, T)
    expected = []
    for b in range(2):
        joint = np.eye(5)
        for weights in layers:
            a = weights[b].mean(axis=0) + np.eye(5)
            joint = (a / a.sum(axis=1, keepdims=True)) @ joint
        expected.append(joint[0, 1:])
    np.testing.assert_allclose(visualize.rollout(layers), np.stack(expected), rtol=1e-12)
    # Uniform attention spreads the class token evenly over the patches.
    uniform = [np.full((1, 2, 5, 5), 0.2)]
    np.testing.assert_allclose(visualize.rollout(uniform), np.full((1, 4), 0.1))
    gap = visualize.rollout(layers, pooling="gap")
    assert gap.shape == (2, 4) and not np.allclose(gap, visualize.rollout(layers))


@pytest.mark.parametrize(
    "overrides, layout",
    [
        ({}, (28, 28, 1)),
        (
            dict(
                image_size=32,
                in_channels=3,
                patch_size=4,
                embed_dim=32,
                depth=2,
                num_heads=4,
                pooling="gap",
                data_format="channels_first",
                preprocessing="unit",
            ),
            (3, 32, 32),
        ),
    ],
)
def test_attention_rollout_maps_are_normalised_and_leave_the_model_alone(overrides, layout, tmp_path):
    model = untrained(**overrides)
    images = np.random.default_rng(0).uniform(0, 255, (5,) + layout).astype("float32")
    before = model.predict(images, verbose=0)
    maps = visualize.attention_rollout(model, images)
    height, width = (28, 28) if layout[0] == 28 else (32, 32)
    assert maps.shape == (5, height, width) and maps.dtype == np.float32
    assert np.all(np.isfinite(maps)) and maps.min() >= 0
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1.0, rtol=1e-6)
    assert np.all(maps.std(axis=(1, 2)) > 0)  # a map, not a constant
    scores = visualize.attention_scores(model, images)
    assert len(scores) == model.depth
    tokens = 1 + model.grid_size[0] * model.grid_size[1]
    assert scores[0].shape == (5, model.num_heads, tokens, tokens)
    np.testing.assert_allclose(scores[-1].sum(axis=-1), 1.0, rtol=1e-5)
    # The separate pass leaves the model's own forward pass (and its outputs) unchanged.
    assert len(model.outputs) == 1
    np.testing.assert_array_equal(model.predict(images, verbose=0), before)
    model.save(tmp_path / "m.keras")  # and saving it still writes the model's own graph only
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert [layer.name for layer in reloaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), before, atol=1e-5)


def rollout_on_digit_statistics(maps, images):
    """How the rollout `maps` (batch, 28, 28) of MNIST `images` sit on the digits.

    Returns:
        dict: `share`, the mean share of a map's mass on its digit and 2-pixel halo (a uniform map
        gets the halo's area, about 0.43); `mostly_on_digit`, the fraction of maps with over half
        their mass there; `ink_density`, the median ratio of the mean attention on the strokes to
        that on the background; `follows_digit`, the mean of a map's share on its own digit minus
        its share on the next image's digit (0 for a map that ignores where this digit is).
    """
    ink, halo = digit_regions(images)
    mass = maps.sum(axis=(1, 2))
    own = (maps * halo).sum(axis=(1, 2)) / mass
    other = (maps * np.roll(halo, 1, axis=0)).sum(axis=(1, 2)) / mass
    on_ink = (maps * ink).sum(axis=(1, 2)) / ink.sum(axis=(1, 2))
    on_background = (maps * ~halo).sum(axis=(1, 2)) / (~halo).sum(axis=(1, 2))
    return {
        "share": np.mean(own),
        "mostly_on_digit": np.mean(own > 0.5),
        "ink_density": np.median(on_ink / on_background),
        "follows_digit": np.mean(own - other),
    }


# Bounds on `rollout_on_digit_statistics`. Measured on the first 200 test digits of the sample: the
# shipped model clears each; the same architecture untrained (seeds 0-2 on each backend: share 0.38-0.47,
# mostly_on_digit 0.10-0.37, ink_density 0.8-1.2, follows_digit -0.01 to 0.01) and random 7x7 patch
# weights (0.43, 0.24, 1.0, 0.00) clear none.
ON_DIGIT_FLOORS = {"share": 0.6, "mostly_on_digit": 0.9, "ink_density": 2.5, "follows_digit": 0.03}


def test_rollout_of_a_trained_model_falls_on_the_digit(mnist):
    # The shipped MNIST ViT (99.5% test accuracy; 7x7 tokens, 6 blocks, GAP): fixed weights, so the
    # bounds hold alike on every backend. Its maps: share 0.69, mostly_on_digit 0.99, ink_density 3.8,
    # follows_digit 0.06 on these 200 test digits.
    trained = keras.saving.load_model(REPO / "saved_models" / "vit_mnist.keras")
    images = mnist["x_test"][:200, ..., None].astype("float32")
    accuracy = np.mean(np.argmax(trained.predict(images, verbose=0), axis=-1) == mnist["y_test"][:200])
    assert accuracy > 0.95, f"the shipped model did not load as trained: test accuracy {accuracy:.3f}"
    assert digit_regions(images)[1].mean() < 0.45  # the digit and its halo cover under half the image
    statistics = rollout_on_digit_statistics(visualize.attention_rollout(trained, images), images)
    for name, floor in ON_DIGIT_FLOORS.items():
        assert statistics[name] > floor, f"trained model: {name} {statistics[name]:.3f}, needs > {floor}"
    # The same statistics fail every bound for the same architecture untrained: the bounds measure training.
    keras.utils.set_random_seed(1)
    untrained_model = vit_keras.ViT.from_config(trained.get_config())
    baseline = rollout_on_digit_statistics(visualize.attention_rollout(untrained_model, images), images)
    for name, floor in ON_DIGIT_FLOORS.items():
        assert baseline[name] < floor, f"untrained model: {name} {baseline[name]:.3f}, expected < {floor}"


# ----------------------------------------------------------------------------- pictures


def test_plot_attention_writes_one_row_per_image(fitted_run, mnist, tmp_path):
    model, _ = fitted_run
    one = visualize.plot_attention(model, mnist["x_test"][0].astype("float32"), tmp_path / "one.png")
    assert png_size(one) == (900, 300)  # (H, W) grey image accepted for a 1-channel model
    rows = visualize.plot_attention(model, mnist["x_test"][:3, ..., None], tmp_path / "sub" / "three.png")
    assert png_size(rows) == (900, 900)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["one.png", "sub", "three.png"]  # no leftovers
    pixels = np.asarray(Image.open(one).convert("L"), dtype=float)
    assert pixels.std() > 20  # a picture, not a blank canvas


def test_plot_attention_labels_rows_and_draws_a_colour_bar(fitted_run, mnist, tmp_path):
    model, _ = fitted_run
    images, labels = mnist["x_test"][:2, ..., None], mnist["y_test"][:2]
    plain = visualize.plot_attention(model, images, tmp_path / "plain.png")
    labelled = visualize.plot_attention(model, images, tmp_path / "labelled.png", labels=labels)
    assert png_size(labelled) == (900, 600)
    pixels = np.asarray(Image.open(labelled).convert("RGB"), dtype=float)
    bar = pixels[100:500, 830:841]  # the colour bar, right of the panels: inferno, dark to light
    assert bar.std() > 40 and bar[:20].mean() > bar[-20:].mean()
    left = pixels[:, :40]  # the row labels, left of the images
    assert (left < 128).any() and not np.array_equal(
        np.asarray(Image.open(plain).convert("RGB"))[:, :40], left.astype("uint8")
    )
    with pytest.raises(ValueError, match="labels must have one entry per image \\(2\\); found 3"):
        visualize.plot_attention(model, images, tmp_path / "x.png", labels=[1, 2, 3])
    assert not (tmp_path / "x.png").exists()


def test_attention_map_weights_the_image_by_its_rollout_like_vit_keras():
    model = untrained()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (28, 28, 1)).astype("uint8")
    weighted = visualize.attention_map(model, image)
    assert weighted.dtype == np.uint8 and weighted.shape == (28, 28, 1)
    rollout = visualize.attention_rollout(model, image[None].astype("float32"))[0]
    np.testing.assert_array_equal(weighted, (rollout[..., None] * image).astype("uint8"))
    assert np.all(weighted <= image) and weighted.max() > 0
    # Any size: resized to the model's input, the map resized back; (H, W) for a grey model.
    big = rng.integers(0, 256, (56, 42)).astype("float32")
    big[:, :10] = 0
    weighted = visualize.attention_map(model, big)
    assert weighted.shape == (56, 42) and weighted.dtype == np.uint8
    assert np.all(weighted[:, :10] == 0) and np.all(weighted <= big) and weighted.std() > 0
    for bad in (np.zeros((28, 28, 3)), np.zeros((2, 28, 28, 1)), np.zeros((0, 28, 1))):
        with pytest.raises(ValueError, match=r"image must be one image of shape \(height, width, 1\)"):
            visualize.attention_map(model, bad)


def test_position_embedding_similarity_and_plot(tmp_path):
    model = untrained(image_size=32, patch_size=4, embed_dim=64, num_heads=2)
    rows, cols = model.grid_size
    # A 2-D sine-cosine table: nearby patches are more alike than distant ones.
    ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    freqs = 1.0 / 10000 ** (np.arange(16) / 16)
    angles = np.concatenate([ys.reshape(-1, 1) * freqs, xs.reshape(-1, 1) * freqs], axis=1)
    table = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    table = np.concatenate([np.zeros((1, 64)), table])[None].astype("float32")
    model.get_layer("position_embedding").set_table(table)
    similarity = visualize.position_similarity(model)
    assert similarity.shape == (rows, cols, rows, cols)
    flat = similarity.reshape(rows * cols, rows * cols)
    np.testing.assert_allclose(np.diag(flat), 1.0, rtol=1e-6)
    np.testing.assert_allclose(flat, flat.T, atol=1e-12)
    assert similarity[3, 3, 3, 4] > similarity[3, 3, 3, 7] and similarity[3, 3, 4, 3] > similarity[3, 3, 7, 3]
    assert np.argmax(similarity[2, 5].reshape(-1)) == 2 * cols + 5
    path = visualize.plot_position_embeddings(model, tmp_path / "pos.png")
    assert png_size(path) == (600, 600)
    bigger = visualize.plot_position_embeddings(model, tmp_path / "big.png", size_inches=8)
    assert png_size(bigger) == (800, 800)


@pytest.mark.single_backend
def test_confusion_matrix_counts_and_plot(tmp_path):
    labels = np.array([0, 0, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 2, 0, 2])
    np.testing.assert_array_equal(visualize.confusion_matrix(labels, predictions, 3), [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    path = visualize.plot_confusion_matrix(labels, predictions, tmp_path / "cm.png", ["a", "b", "c"])
    assert png_size(path) == (600, 600)
    with pytest.raises(ValueError, match="predictions must be integer classes in \\[0, 3\\)"):
        visualize.confusion_matrix(labels, predictions + 1, 3)
    with pytest.raises(ValueError, match="same length"):
        visualize.confusion_matrix(labels, predictions[:4], 3)
    with pytest.raises(ValueError, match="class_names must have num_classes=4 entries; found 3"):
        visualize.plot_confusion_matrix(labels, predictions, tmp_path / "x.png", ["a", "b", "c"], 4)


# ----------------------------------------------------------------------------- bad input


def test_bad_images_models_and_paths_raise_clear_errors(tmp_path):
    model = untrained()
    good = np.zeros((2, 28, 28, 1), "float32")
    expected = r"images must have shape \(batch,\) \+ \(28, 28, 1\).*found shape \(2, 32, 32, 1\)"
    with pytest.raises(ValueError, match=expected):
        visualize.attention_rollout(model, np.zeros((2, 32, 32, 1), "float32"))
    with pytest.raises(ValueError, match=r"found shape \(2, 28, 28, 3\)"):
        visualize.attention_rollout(model, np.zeros((2, 28, 28, 3), "float32"))
    with pytest.raises(ValueError, match=r"found shape \(1, 28, 28, 3\)"):
        visualize.plot_attention(model, np.zeros((28, 28, 3)), tmp_path / "a.png")
    with pytest.raises(ValueError, match="images must be finite"):
        visualize.attention_rollout(model, np.full_like(good, np.nan))
    with pytest.raises(ValueError, match="images must be real numbers"):
        visualize.attention_rollout(model, np.full(good.shape, "x"))

    plain = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match="model must contain TransformerEncoderBlock layers"):
        visualize.attention_rollout(plain, good)
    with pytest.raises(ValueError, match="model must contain a PositionEmbedding layer"):
        visualize.plot_position_embeddings(plain, tmp_path / "p.png")

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="cannot create its directory"):
        visualize.plot_attention(model, good[0], blocker / "attention.png")
    with pytest.raises(OSError, match="cannot create its directory"):
        visualize.plot_position_embeddings(model, blocker / "sub" / "pos.png")
    with pytest.raises(ValueError, match="path must end in .png; found"):
        visualize.plot_position_embeddings(model, tmp_path / "pos.jpg")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(IsADirectoryError, match="found the directory"):
        visualize.plot_position_embeddings(model, tmp_path / "dir.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "dir.png"]  # nothing half-written


# ----------------------------------------------------------------------------- vit-keras plot


def test_cli_plot_writes_curves_confusion_attention_and_positions(fitted_run, tmp_path, capsys):
    _, run_dir = fitted_run
    losses = read_metrics(run_dir / "metrics.csv")["loss"]
    assert len(losses) == 2 and losses[1] < losses[0]  # the short fit learned something
    out = tmp_path / "plots"
    assert cli_main(["plot", str(run_dir), "--out", str(out), "--examples", "2"]) == 0
    names = ("curves", "confusion_matrix", "attention", "position_embeddings")
    assert capsys.readouterr().out.split() == [str(out / f"{n}.png") for n in names]
    assert png_size(out / "attention.png") == (900, 600)
    assert png_size(out / "position_embeddings.png") == (600, 600)
    assert png_size(out / "confusion_matrix.png") == (600, 600)
    png_size(out / "curves.png")


def test_plot_run_without_a_test_split_writes_the_other_pictures_and_says_what_it_skipped(
    fitted_run, mnist, tmp_path, caplog
):
    _, run_dir = fitted_run
    folder = tmp_path / "digits"  # class folders and no test/ folder: a dataset without a test split
    for label in (3, 7):
        (folder / str(label)).mkdir(parents=True)
        for i, digit in enumerate(mnist["x_train"][mnist["y_train"] == label][:3]):
            Image.fromarray(digit).save(folder / str(label) / f"{i}.png")
    out = tmp_path / "plots"
    with caplog.at_level("WARNING", logger="vit_keras.visualize"):
        result = visualize.plot_run(run_dir, out, dataset=f"folder:{folder}", examples=2)
    assert sorted(result) == ["attention", "curves", "position_embeddings"]
    assert result.skipped == {"confusion_matrix": "the dataset has no test split"}
    assert "skipped confusion_matrix.png: the dataset has no test split" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["attention.png", "curves.png", "position_embeddings.png"]
    assert png_size(out / "attention.png") == (900, 600)


@pytest.mark.single_backend
def test_plot_run_of_a_run_without_a_model_skips_the_model_pictures(tmp_path):
    metrics_only = tmp_path / "run"
    metrics_only.mkdir()
    epochs = [
        dict(epoch=0, loss=1.9, accuracy=0.35, val_loss=1.2, val_accuracy=0.62, learning_rate=3e-3),
        dict(epoch=1, loss=0.9, accuracy=0.71, val_loss=0.7, val_accuracy=0.78, learning_rate=1e-3),
    ]
    write_metrics_csv(metrics_only / "metrics.csv", epochs)  # what `vit-keras train` writes, without training
    result = visualize.plot_run(metrics_only)
    assert list(result) == ["curves"] and png_size(result["curves"])
    assert set(result.skipped) == {"confusion_matrix", "attention", "position_embeddings"}
    assert all("holds no model.keras" in reason for reason in result.skipped.values())


@pytest.mark.single_backend
def test_cli_plot_rejects_a_missing_or_empty_run_directory(tmp_path, capsys):
    assert cli_main(["plot", str(tmp_path / "nope")]) == 2
    assert "RUN_DIR:" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli_main(["plot", str(tmp_path / "empty")]) == 2
    assert "holds neither metrics.csv nor model.keras" in capsys.readouterr().err


# ----------------------------------------------------------------------------- hostile input


def small_run(tmp_path, model=None, metrics=True):
    """A run directory with a small 28x28 ViT (or `model`) as model.keras and a two-epoch metrics.csv."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True)
    (model or untrained(embed_dim=16, num_heads=2)).save(run_dir / "model.keras")
    if metrics:
        epochs = [dict(epoch=e, loss=1.0 - 0.1 * e, accuracy=0.5 + 0.1 * e) for e in range(2)]
        write_metrics_csv(run_dir / "metrics.csv", epochs)
    return run_dir


@pytest.mark.single_backend
@pytest.mark.parametrize("damage", ["model", "dataset", "examples", "output"])
def test_a_failing_plot_run_writes_no_picture(tmp_path, damage):
    run_dir = small_run(tmp_path)
    out, options = tmp_path / "plots", {}
    if damage == "model":
        (run_dir / "model.keras").write_bytes(b"PK\x03\x04 damaged")
        message = "model.keras is not a .keras archive"
    elif damage == "dataset":
        options, message = {"dataset": f"npz:{tmp_path / 'missing.npz'}"}, "missing.npz does not exist"
    elif damage == "examples":
        # rather than a hang drawing 5,000 examples
        options, message = {"examples": 5000}, r"examples must be an integer in \[0, 64\]; found 5000"
    else:
        out.write_text("a file, not a folder")
        message = "out_dir: .* exists and is not a directory"
    with pytest.raises((ValueError, OSError), match=message):
        visualize.plot_run(run_dir, out, **options)
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.csv", "model.keras"]
    assert not out.is_dir()  # rather than curves.png written before the model or the dataset failed


def test_plot_run_refuses_non_finite_weights_and_skips_the_confusion_matrix_of_a_headless_model(tmp_path, caplog):
    broken = untrained(embed_dim=16, num_heads=2)
    broken.set_weights([np.full_like(w, np.nan) for w in broken.get_weights()])
    with pytest.raises(ValueError, match=r"model .*model.keras holds non-finite weights"):
        visualize.plot_run(small_run(tmp_path / "nan", broken), tmp_path / "nan_plots")  # rather than NaN pictures
    assert not (tmp_path / "nan_plots").exists()
    headless = untrained(embed_dim=16, num_heads=2, include_top=False, pooling="token")
    with caplog.at_level("WARNING", logger="vit_keras.visualize"):
        result = visualize.plot_run(small_run(tmp_path / "features", headless), tmp_path / "plots", examples=1)
    assert sorted(result) == ["attention", "curves", "position_embeddings"]  # rather than a 16-"class" confusion matrix
    assert result.skipped == {"confusion_matrix": "the model has no classification head (include_top=False)"}
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(f"{n}.png" for n in result)
    assert png_size(result["attention"]) == (900, 300)


@pytest.mark.single_backend
def test_unreadable_metrics_and_foreign_models_are_named(tmp_path, capsys):
    run_dir = small_run(tmp_path)
    (run_dir / "metrics.csv").write_bytes(bytes(range(128, 256)))
    assert cli_main(["plot", str(run_dir), "--output", str(tmp_path / "plots")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics.csv is not a readable CSV file" in err[0], err  # rather than no file named
    plain = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    plain.save(run_dir / "model.keras")
    write_metrics_csv(run_dir / "metrics.csv", [dict(epoch=0, loss=1.0)])
    with pytest.raises(ValueError, match=r"model .*model.keras: model must contain TransformerEncoderBlock layers"):
        visualize.plot_run(run_dir, tmp_path / "plots")
    assert not (tmp_path / "plots").exists()


def test_bad_arguments_of_the_picture_functions_raise_one_line_errors(tmp_path):
    model = untrained(embed_dim=16, num_heads=2)
    good = np.zeros((2, 28, 28, 1), "float32")
    for batch_size in (0, -1, 1.5, None):  # rather than range() or concatenate errors, or a silent empty predict
        with pytest.raises(ValueError, match=f"batch_size must be a positive integer; found {batch_size}"):
            visualize.attention_rollout(model, good, batch_size=batch_size)
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            visualize.attention_scores(model, good, batch_size=batch_size)
    with pytest.raises(ValueError, match="images must be one array of equally shaped images; found a ragged list"):
        visualize.attention_rollout(model, [np.zeros((28, 28)), np.zeros((27, 28))])
    for pixels, found in ((1000.0, "[1000.0, 1000.0]"), (-3.0, "[-3.0, -3.0]"), (np.inf, "[inf, inf]")):
        with pytest.raises(ValueError, match=r"image must hold raw pixels in \[0, 255\]") as error:
            visualize.attention_map(model, np.full((28, 28, 1), pixels))  # rather than uint8 wrap-around
        assert found in str(error.value)
    with pytest.raises(ValueError, match="image must hold real numbers"):
        visualize.attention_map(model, np.full((28, 28, 1), "x"))
    with pytest.raises(ValueError, match=r"images: plot_attention draws at most 64 images \(rows\); found 65"):
        visualize.plot_attention(model, np.zeros((65, 28, 28, 1)), tmp_path / "a.png")
    for path in (None, 5):
        with pytest.raises(TypeError, match="path must be a str or path-like .png file name"):
            visualize.plot_attention(model, good, path)
    for size in (0, -1, 1e4, float("nan")):  # rather than "cannot write empty image", std::bad_alloc
        with pytest.raises(ValueError, match=r"size_inches must be a number in \[1, 50\]"):
            visualize.plot_position_embeddings(model, tmp_path / "p.png", size_inches=size)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.single_backend
def test_bad_confusion_matrix_and_rollout_inputs_raise_one_line_errors(tmp_path):
    cases = [  # (labels, predictions, num_classes, message); each rather than NaN-to-int, IndexError, ufunc errors
        (np.array([0, np.nan]), np.array([0, 1]), None, "labels must be a non-empty array of integer classes"),
        ([], [], None, "labels must be a non-empty array of integer classes"),
        (["a"], ["b"], None, "labels must be a non-empty array of integer classes; found dtype <U1"),
        ([0], [0], -1, "num_classes must be a positive integer; found -1"),
        ([0], [0], 2.5, "num_classes must be a positive integer; found 2.5"),
        ([0], [0], 10**6, r"num_classes must be at most 1000 for a picture; found 1000000"),
    ]
    for labels, predictions, num_classes, message in cases:
        with pytest.raises(ValueError, match=message):
            visualize.plot_confusion_matrix(labels, predictions, tmp_path / "c.png", num_classes=num_classes)
    with pytest.raises(ValueError, match="num_classes must be a positive integer; found 0"):
        visualize.confusion_matrix([], [], 0)
    with pytest.raises(ValueError, match=r"scores must be a non-empty list of \(batch, heads, T, T\) arrays"):
        visualize.rollout([])
    with pytest.raises(ValueError, match="scores must be finite"):
        visualize.rollout([np.full((1, 1, 3, 3), np.nan)])  # rather than NaN maps
    assert list(tmp_path.iterdir()) == []
