"""Shared test helpers.

`mnist_digits` (session fixture) is the full MNIST where `$VIT_KERAS_SHARED/data/mnist` holds its
four IDX files (default `../shared` beside the repository), otherwise the digits of the bundled
sample `vit_keras/assets/mnist_sample.npz`; the pytest header says which. `no_network` makes
every connection to a non-local address fail at once. `FAST_XLA_FLAGS` (added to `XLA_FLAGS`
here when KERAS_BACKEND=jax) turn off XLA's slow CPU optimisations for the test session.
`trained_run` (session fixture) is one short `vit-keras train` run directory shared by the tests
that read a trained run.
"""

import dataclasses
import functools
import importlib.util
import ipaddress
import os
import pathlib
import socket

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# On JAX, XLA compiles every new model and shape, and its CPU optimisation passes cost more compile
# time than they save on the tests' tiny models: 5 epochs of a 2-block ViT took 29 s of CPU with
# XLA's defaults and 14 s with these flags; test_visualize.py on JAX ran in 2/3 of the time (the
# other way round for long fits: 120 steps of vit_mnist_p7 took 1.3x the CPU, and TensorFlow,
# whose tests run longer fits, gained little). They change how XLA compiles, not what the compiled
# code computes; subprocesses inherit them. VIT_KERAS_TEST_FULL_XLA=1 keeps XLA's defaults.
FAST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if (
    os.environ.get("KERAS_BACKEND") == "jax"
    and os.environ.get("VIT_KERAS_TEST_FULL_XLA") != "1"
    and FAST_XLA_FLAGS not in os.environ.get("XLA_FLAGS", "")
):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_XLA_FLAGS}".strip()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


@functools.cache
def benchmark_script():
    """scripts/benchmark.py as a module, executed once per test process (it puts scripts/ on
    sys.path, so the `bench` package imports after it)."""
    spec = importlib.util.spec_from_file_location("vit_benchmark", REPO / "scripts" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHARED = pathlib.Path(os.environ.get("VIT_KERAS_SHARED") or REPO.parent / "shared")
MNIST_DIR = SHARED / "data" / "mnist"
SAMPLE_NPZ = REPO / "vit_keras" / "assets" / "mnist_sample.npz"
# The original PyTorch MNIST tutorial's call, with its spellings (num_layers, num_encoders, expansion).
TUTORIAL_KWARGS = dict(
    image_size=28,
    in_channels=1,
    embed_dim=100,
    patch_size=7,
    num_layers=1,
    num_heads=1,
    num_encoders=1,
    num_classes=10,
    expansion=4,
    dropout=0.1,
)


def sample_subset_dataset(path, train, test):
    """The first `train` training and `test` test digits of the bundled sample, saved as an npz at
    `path`; returns the trainer's `--dataset npz:PATH` arguments (fast plumbing runs)."""
    from vit_keras import data as vdata

    (x_train, y_train), (x_test, y_test) = vdata.load_npz(SAMPLE_NPZ)
    np.savez(path, x_train=x_train[:train], y_train=y_train[:train], x_test=x_test[:test], y_test=y_test[:test])
    return ["--dataset", f"npz:{path}"]


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts and ends under the float32 policy."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


# ----------------------------------------------------------------------------- MNIST digits


def full_mnist_available():
    """Whether the full MNIST (four IDX .gz files) is at `MNIST_DIR`."""
    return all(
        (MNIST_DIR / f"{stem}.gz").is_file()
        for stem in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    )


@dataclasses.dataclass(frozen=True)
class Digits:
    """MNIST digits for tests: uint8 images (N, 28, 28, 1) and int32 labels (N,).

    `full` is True for the full MNIST (60,000 train / 10,000 test), False for the bundled
    sample (10,000 train / 2,000 test, drawn from MNIST): tests scale what they assert by it.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    full: bool
    source: str


def describe_digits():
    if full_mnist_available():
        return f"full MNIST from {MNIST_DIR} (60,000 train / 10,000 test)"
    return f"bundled MNIST sample {SAMPLE_NPZ.name} (10,000 train / 2,000 test): no full MNIST at {MNIST_DIR}"


def pytest_report_header(config):
    return f"MNIST digits for tests: {describe_digits()} (set VIT_KERAS_SHARED to the folder holding data/mnist)"


@pytest.fixture(scope="session")
def mnist_digits():
    """`Digits`: the full MNIST when available (see `MNIST_DIR`), else the bundled sample's digits."""
    from vit_keras import data as vdata

    if full_mnist_available():
        (x_train, y_train), (x_test, y_test) = vdata.load_idx_folder(MNIST_DIR)
        full = True
    else:
        (x_train, y_train), (x_test, y_test) = vdata.load_npz(SAMPLE_NPZ)
        full = False
    return Digits(
        x_train[..., None],
        np.asarray(y_train, np.int32),
        x_test[..., None],
        np.asarray(y_test, np.int32),
        full=full,
        source=describe_digits(),
    )


# ----------------------------------------------------------------------------- a trained run

TRAINED_RUN_ARGV = (
    "--preset vit_mnist_p7 --augment none --no-tensorboard --no-export --batch-size 64 --epochs 2 "
    "--steps-per-epoch 60 --pooling gap --lr 3e-3 --warmup 0.2 --ema 0.9 --quiet"
).split()


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """(run directory, results) of `vit-keras train TRAINED_RUN_ARGV` on the bundled MNIST sample.

    A short run of the tutorial model (120 steps), trained once per session and read by
    test_train (the run directory, evaluate, predict) and test_visualize (plots of a run); tests
    must not write into it.
    """
    from vit_keras import cli, train

    output = tmp_path_factory.mktemp("trained_run") / "p7"
    args = cli.build_parser().parse_args(["train", *TRAINED_RUN_ARGV, "--output", str(output)])
    return output, train.train(cli.train_config(args))


# ----------------------------------------------------------------------------- no network


def _is_local(address):
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str) or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def no_network(monkeypatch):
    """Connections and name look-ups of non-local hosts fail at once with OSError (no test may download)."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            raise OSError(f"network disabled in tests: connect to {address}")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_local(host):
            raise socket.gaierror(socket.EAI_NONAME, f"network disabled in tests: look-up of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
