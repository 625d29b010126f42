"""Launcher of the `vit-keras` command.

It lives outside the `vit_keras` package because importing that package imports Keras, and
Keras reads its backend once, at import: `--backend NAME` is applied here, first.
"""

import argparse
import os
import sys


def select_backend(argv):
    """Set KERAS_BACKEND from `--backend NAME` in argv (the full parser validates the name)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend")
    known, _ = pre.parse_known_args(argv)
    if known.backend:
        os.environ["KERAS_BACKEND"] = known.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    select_backend(argv)
    from vit_keras.cli import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
