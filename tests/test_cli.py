"""The `vit-keras` launcher: the backend is chosen before Keras is imported."""

import os
import subprocess
import sys

import keras
import pytest

from conftest import REPO
from vit_keras.cli import main as cli_main


@pytest.mark.single_backend
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backend_option_selects_the_keras_backend(backend):
    script = (
        "import vit_keras_cli\n"
        f"code = vit_keras_cli.main(['--backend', {backend!r}])\n"
        "import keras\n"
        "print(code, keras.backend.backend())\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == f"2 {backend}"  # no command: help, exit 2


def test_backend_option_after_keras_import_is_refused(capsys):
    other = "jax" if keras.backend.backend() != "jax" else "torch"
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--backend", other, "plot", "nowhere"])
    assert exit_info.value.code == 2
    assert f"--backend {other}: Keras was already imported" in capsys.readouterr().err
