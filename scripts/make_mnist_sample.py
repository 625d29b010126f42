"""Make the MNIST sample bundled in the package: `vit_keras/assets/mnist_sample.npz`.

A seeded, class-stratified draw of 10,000 train and 2,000 test digits from the IDX files in
`../shared/data/mnist` (or --data-dir), written as a compressed `.npz` (x_train, y_train,
x_test, y_test; uint8, 28x28) so that `vit-keras train` runs offline on a fresh machine.

    .venv/bin/python scripts/make_mnist_sample.py [--data-dir DIR] [--output PATH]
"""

import argparse
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vit_keras.data import load_idx_folder  # noqa: E402


def stratified_draw(labels, count, rng):
    """Indices of `count` examples with the classes in the proportions of `labels`, shuffled."""
    classes = np.unique(labels)
    picked = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        share = int(round(count * len(members) / len(labels)))
        picked.append(rng.choice(members, size=share, replace=False))
    picked = np.concatenate(picked)
    if len(picked) > count:
        picked = picked[:count]
    elif len(picked) < count:
        rest = np.setdiff1d(np.arange(len(labels)), picked)
        picked = np.concatenate([picked, rng.choice(rest, count - len(picked), replace=False)])
    return rng.permutation(picked)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--output", default=str(REPO / "vit_keras" / "assets" / "mnist_sample.npz"))
    parser.add_argument("--train", type=int, default=10_000)
    parser.add_argument("--test", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = load_idx_folder(args.data_dir)
    rng = np.random.default_rng(args.seed)
    train = stratified_draw(y_train, args.train, rng)
    test = stratified_draw(y_test, args.test, rng)
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        output,
        x_train=x_train[train],
        y_train=y_train[train],
        x_test=x_test[test],
        y_test=y_test[test],
    )
    print(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB): {len(train)} train + {len(test)} test digits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
