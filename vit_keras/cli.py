"""The `vit-keras` command line: train, evaluate, predict, export and plot.

Each command lives in the module that does the work; that module's `register_cli(subparsers)`
adds its sub-commands, each with `set_defaults(func=...)`. The `vit-keras` script starts in
`vit_keras_cli`, which applies `--backend` before this package (and Keras) is imported.
"""

import argparse
import importlib
import sys

CLI_MODULES = ("vit_keras.train", "vit_keras.export", "vit_keras.visualize")
BACKENDS = ("tensorflow", "jax", "torch")


def build_parser():
    parser = argparse.ArgumentParser(prog="vit-keras", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", choices=BACKENDS, help="Keras backend (default: $KERAS_BACKEND or tensorflow)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in CLI_MODULES:
        importlib.import_module(name).register_cli(subparsers)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    import keras

    if args.backend and keras.backend.backend() != args.backend:
        parser.error(
            f"--backend {args.backend}: Keras was already imported with the "
            f"{keras.backend.backend()!r} backend; run the `vit-keras` command or set KERAS_BACKEND."
        )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
