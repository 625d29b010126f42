"""Train the small MNIST ViT shipped in `saved_models/vit_mnist/` (the recipe in saved_models/README.md).

    KERAS_BACKEND=jax .venv/bin/python scripts/train_shipped_mnist.py --output runs/vit_mnist_ship

Real MNIST from ../shared/data/mnist: the last 5,000 training images are the validation split
(used to pick the epoch); the test split is only evaluated once, at the end. `--shift N` adds
random shifts of up to N pixels (off by default); `--init-from M.keras` continues from a
trained model with a fresh warm-up + cosine schedule. Writes OUTPUT/model.keras (best validation accuracy),
OUTPUT/history.json and OUTPUT/results.json.
"""

import argparse
import gzip
import json
import os
import time

import keras
import numpy as np

import vit_keras

ARCH = dict(
    image_size=28, in_channels=1, num_classes=10, patch_size=4, embed_dim=64, depth=4,
    num_heads=4, mlp_dim=128, dropout=0.0, pooling="gap", preprocessing="mnist",
)
CLASS_NAMES = [str(d) for d in range(10)]


def read_idx(path):
    """An IDX (.gz) file as a uint8 array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(data_dir):
    """(x_train, y_train), (x_test, y_test) as (N, 28, 28, 1) uint8 images and int labels."""
    def part(prefix):
        x = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))[..., None]
        y = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz")).astype("int32")
        return x, y

    return part("train"), part("t10k")


def random_shift(x, rng, max_shift=2):
    """Each image shifted by up to `max_shift` pixels in each direction (zero fill)."""
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--output", default="runs/vit_mnist_ship")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--shift", type=int, default=0, help="random shift augmentation, in pixels")
    parser.add_argument("--init-from", help="a .keras model to continue from (same ARCH) instead of a fresh one")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    (x_all, y_all), (x_test, y_test) = load_mnist(args.data_dir)
    x_train, y_train = x_all[:-5000], y_all[:-5000]
    x_val, y_val = x_all[-5000:].astype("float32"), y_all[-5000:]

    model = vit_keras.ViT(name="vit_mnist", **ARCH)
    if args.init_from:
        model.set_weights(keras.saving.load_model(args.init_from, compile=False).get_weights())
    steps = args.epochs * int(np.ceil(len(x_train) / args.batch_size))
    warmup = steps // (2 * args.epochs)  # half an epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps - warmup, warmup_target=args.learning_rate, warmup_steps=warmup
    )
    model.compile(
        keras.optimizers.AdamW(schedule, weight_decay=0.05, clipnorm=1.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    os.makedirs(args.output, exist_ok=True)
    best, history, start = -1.0, [], time.time()
    for epoch in range(args.epochs):
        order = rng.permutation(len(x_train))
        x_epoch = x_train[order] if not args.shift else random_shift(x_train[order], rng, args.shift)
        x_epoch = x_epoch.astype("float32")
        progress = keras.callbacks.LambdaCallback(on_batch_end=lambda batch, logs: batch % 100 or print(
            f"epoch {epoch + 1} batch {batch} loss {logs['loss']:.4f} {time.time() - start:.0f}s", flush=True))
        fit = model.fit(x_epoch, y_train[order], batch_size=args.batch_size, epochs=1, verbose=0,
                        callbacks=[progress])
        val_loss, val_acc = model.evaluate(x_val, y_val, batch_size=500, verbose=0)
        history.append(dict(epoch=epoch + 1, loss=fit.history["loss"][0], val_loss=val_loss,
                            val_accuracy=val_acc, seconds=time.time() - start))
        print(json.dumps(history[-1]), flush=True)
        if val_acc > best:
            best = val_acc
            model.save(os.path.join(args.output, "model.keras"))
        with open(os.path.join(args.output, "history.json"), "w") as f:
            json.dump(history, f, indent=1)

    model = keras.saving.load_model(os.path.join(args.output, "model.keras"))
    _, test_acc = model.evaluate(x_test.astype("float32"), y_test, batch_size=500, verbose=0)
    results = dict(init_from=args.init_from, best_val_accuracy=best, test_accuracy=test_acc, backend=keras.backend.backend(),
                   train_seconds=time.time() - start, arch=ARCH, epochs=args.epochs,
                   batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                   class_names=CLASS_NAMES)
    with open(os.path.join(args.output, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.output, "config.json"), "w") as f:
        json.dump(dict(class_names=CLASS_NAMES, model=model.get_config()), f, indent=1)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
