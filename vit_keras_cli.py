"""Launcher of the `vit-keras` command.

It lives outside the `vit_keras` package because importing that package imports Keras, and
Keras reads its backend once, at import. Before anything heavy is imported it

- quiets TensorFlow's C++ logging (`TF_CPP_MIN_LOG_LEVEL=3` unless the caller set it);
- applies `--backend NAME` (given before or after the command) to `KERAS_BACKEND`;
- puts `vit_keras` in `sys.modules` without running its `__init__`, so `vit_keras.cli` and the
  pure-data modules it reads build the parser without Keras: `--help`, `--version` and bad
  arguments answer at once. The package's `__init__` runs when a command starts.
"""

import argparse
import importlib.util
import os
import sys

QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR"}


def select_backend(argv):
    """Set KERAS_BACKEND from `--backend NAME` anywhere in argv (the full parser reports a bad name)."""
    from vit_keras.choices import BACKENDS

    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--backend")
    known, _ = pre.parse_known_args(argv)
    if known.backend in BACKENDS:
        os.environ["KERAS_BACKEND"] = known.backend


def defer_package_init(name="vit_keras"):
    """Register package `name` without running its `__init__`; return the function that runs it.

    Submodules (`vit_keras.cli`, `vit_keras.architectures`, ...) import as usual meanwhile.
    Returns None when the package is already imported or cannot be found.
    """
    if name in sys.modules:
        return None
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return None
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package

    def run_package_init():
        spec.loader.exec_module(package)

    return run_package_init


def main(argv=None):
    """Run `vit-keras ARGS`; return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    run_package_init = defer_package_init()
    select_backend(argv)
    from vit_keras import cli

    return cli.main(argv, run_package_init=run_package_init)


if __name__ == "__main__":
    sys.exit(main())
