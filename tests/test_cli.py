"""The `vit-keras` command line: light parsing, one-line errors, quiet JSON output, `--backend`.

The end-to-end cases run the installed `vit-keras` script in subprocesses; the ones that load
the library (and TensorFlow) start together (`outcomes`), sharing the cores.
"""

import argparse
import dataclasses
import importlib.metadata
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import REPO

import vit_keras
import vit_keras_cli
from vit_keras import cli
from vit_keras.train_config import TrainConfig

VIT_KERAS = str(pathlib.Path(sys.executable).parent / "vit-keras")
FRAMEWORKS = ("tensorflow", "keras", "jax", "torch")
COMMANDS = ("train", "evaluate", "predict", "export", "plot")
# `--backend tensorflow` after the command overrides KERAS_BACKEND=torch in the environment.
QUIET_TRAIN = [
    "train",
    "--backend",
    "tensorflow",
    "--quiet",
    "--preset",
    "vit_mnist_p7",
    "--epochs",
    "1",
    "--batch-size",
    "64",
    "--lr",
    "3e-3",
    "--warmup",
    "0",
    "--augment",
    "none",
    "--jit-compile",
    "off",
    "--no-tensorboard",
    "--no-export",
]


def _environment(backend="tensorflow"):
    """The caller's environment without the test suite's log settings: the launcher sets its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY")}
    return {**env, "KERAS_BACKEND": backend}


def _start(argv, cwd, backend="tensorflow"):
    return subprocess.Popen(
        [VIT_KERAS, *map(str, argv)],
        cwd=cwd,
        env=_environment(backend),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _run(argv, cwd=REPO):
    return subprocess.run([VIT_KERAS, *argv], cwd=cwd, env=_environment(), text=True, capture_output=True, timeout=120)


# ----------------------------------------------------------------------------- parsing (no library)

PROBE = """
import json, sys
import vit_keras_cli
report = []
for argv in json.loads(sys.argv[1]):
    try:
        code = vit_keras_cli.main(argv)
    except SystemExit as exit:
        code = exit.code
    report.append([argv, code, sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)])
print(json.dumps(report))
"""


@pytest.mark.single_backend
def test_help_version_and_bad_arguments_import_no_framework():
    cases = {
        ("--help",): 0,
        ("--version",): 0,
        (): 2,
        ("train", "--label-smoothing", "2"): 2,
        ("train", "--epochs", "ten"): 2,
        ("predict", "m.keras", "a.png", "--top-k", "0"): 2,
        ("fit",): 2,
        ("train", "--no-such-flag"): 2,
    }
    cases.update({(command, "--help"): 0 for command in COMMANDS})
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([list(c) for c in cases]), json.dumps(FRAMEWORKS)],
        cwd=REPO,
        env=_environment(),
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert [(tuple(argv), code) for argv, code, _ in report] == list(cases.items())
    assert [imported for _, _, imported in report] == [[]] * len(cases)
    errors = done.stderr.splitlines()
    assert len(errors) == 6 and all(line.startswith("vit-keras") and ": error: " in line for line in errors)
    assert "vit-keras train: error: --label-smoothing must be a number in [0, 1); found 2.0." in errors
    assert "vit-keras predict: error: argument --top-k: must be a positive integer; found '0'" in errors


@pytest.mark.single_backend
def test_version_comes_from_the_package_metadata():
    done = _run(["--version"])
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"vit-keras {importlib.metadata.version('vit-keras3')}\n"
    assert done.stdout.split()[1] == vit_keras.__version__


@pytest.mark.single_backend
@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_shows_the_defaults(command):
    operands = {
        "train": [],
        "evaluate": ["run"],
        "predict": ["run", "a.png"],
        "export": ["run", "--output", "out"],
        "plot": ["run"],
    }
    sub = cli.build_parser().parse_args([command, *operands[command]]).command_parser
    text = " ".join(sub.format_help().split())
    shown = [
        a
        for a in sub._actions
        if argparse.SUPPRESS not in (a.help, a.default) and a.default is not None and a.default is not False
    ]
    assert shown and all(f"(default: {a.default})" in text for a in shown), text


@pytest.mark.single_backend
def test_train_options_are_the_train_config_fields():
    args = cli.build_parser().parse_args(["train"])
    dests = {a.dest for a in args.command_parser._actions} - {"help", "backend"}
    assert dests == {field.name for field in dataclasses.fields(TrainConfig)}
    assert cli.train_config(args) == TrainConfig()  # TrainConfig's defaults are the command's
    config = cli.parse_train_config(
        ["--label-smoothing", "0.2", "--no-export", "--skip-bad-images", "--overwrite", "--epochs", "3"]
    )
    assert (config.label_smoothing, config.export, config.skip_bad_images, config.overwrite, config.epochs) == (
        0.2,
        False,
        True,
        True,
        3,
    )


@pytest.mark.single_backend
@pytest.mark.parametrize("argv", [["--backend", "torch", "train"], ["train", "--backend", "torch"]])
def test_backend_is_read_before_or_after_the_command(argv, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    vit_keras_cli.select_backend(argv)
    assert os.environ["KERAS_BACKEND"] == "torch"
    assert cli.build_parser().parse_args(argv).backend == "torch"


@pytest.mark.single_backend
def test_backend_after_keras_import_is_refused_in_one_line(capsys):
    other = "jax" if keras.backend.backend() != "jax" else "torch"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plot", "nowhere", "--backend", other])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"vit-keras: error: --backend {other}: Keras was already imported with the {keras.backend.backend()!r} "
        f"backend; run the `vit-keras` command or set KERAS_BACKEND.\n"
    )


@pytest.mark.single_backend
def test_errors_name_the_command_flags():
    export = cli.build_parser().parse_args(["export", "m.keras", "--output", "out"])
    spell = lambda message: cli.cli_spelling(message, export.command_parser, export.keywords)  # noqa: E731
    assert spell("version 1 already exists at out/1; pass overwrite=True.") == (
        "version 1 already exists at out/1; pass --overwrite."
    )
    assert spell("top_k must be a positive integer; found 0.") == "--top-k must be a positive integer; found 0."
    assert spell("base_dir must be a folder; found a file at /tmp/top_k/x.") == (
        "--output must be a folder; found a file at /tmp/top_k/x."
    )


@pytest.mark.single_backend
def test_startup_lines_are_held_back_and_other_lines_pass(capfd):
    with pytest.raises(ValueError, match="bad"):
        with cli.startup_lines_filtered():
            os.write(
                2,
                b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                b"I0000 00:00:1796135025.546322    6514 cudart_stub.cc:31] Could not find cuda drivers\n"
                b"E0000 00:00:17961.5  77 external/local_xla/xla/cuda_fft.cc:477] Unable to register\n"
                b"a line of our own\n",
            )
            raise ValueError("bad")
    assert capfd.readouterr().err == "a line of our own\n"


# ----------------------------------------------------------------------------- commands (library loaded)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """{case: (exit status, stdout, stderr)} of the `vit-keras` runs that load the library, run together."""
    folder = tmp_path_factory.mktemp("cli")
    model = vit_keras.ViT(
        image_size=8, patch_size=4, in_channels=1, num_classes=3, embed_dim=8, depth=1, num_heads=1, mlp_dim=8
    )
    model.save(folder / "tiny.keras")
    (folder / "corrupt.keras").write_bytes(b"PK\x03\x04 not a zip archive")
    (folder / "notes.txt").write_text("not an image\n")
    image = folder / "digit.png"
    keras.utils.save_img(image, np.zeros((8, 8, 1), "uint8"), scale=False)
    cases = {
        "missing run directory": ["evaluate", folder / "no_such_run"],
        "corrupt .keras (evaluate)": ["evaluate", folder / "corrupt.keras"],
        "corrupt .keras (predict)": ["predict", folder / "corrupt.keras", image],
        "non-image file (predict)": ["predict", folder / "tiny.keras", folder / "notes.txt"],
    }
    running = {name: _start(argv, folder) for name, argv in cases.items()}
    running["quiet train"] = _start(QUIET_TRAIN + ["--output", folder / "run"], folder, backend="torch")
    finished = {name: process.communicate(timeout=900) for name, process in running.items()}
    return {name: (running[name].returncode, stdout, stderr) for name, (stdout, stderr) in finished.items()}


ERRORS = {
    "missing run directory": ("evaluate", "no_such_run"),
    "corrupt .keras (evaluate)": ("evaluate", "corrupt.keras"),
    "corrupt .keras (predict)": ("predict", "corrupt.keras"),
    "non-image file (predict)": ("predict", "notes.txt"),
}


@pytest.mark.single_backend
@pytest.mark.parametrize("case", sorted(ERRORS))
def test_a_failing_command_prints_one_line_and_exits_2(outcomes, case):
    status, stdout, stderr = outcomes[case]
    command, named = ERRORS[case]
    assert (status, stdout) == (2, ""), stderr
    assert stderr.count("\n") == 1 and stderr.startswith(f"vit-keras {command}: error: "), stderr
    assert named in stderr


@pytest.mark.single_backend
def test_quiet_train_prints_json_lines_only_and_learns(outcomes):
    status, stdout, stderr = outcomes["quiet train"]
    assert (status, stderr) == (0, ""), stderr[-3000:]  # no TensorFlow start-up lines either
    records = [json.loads(line) for line in stdout.splitlines()]
    assert [r["event"] for r in records if r["event"] in ("epoch", "done")] == ["epoch", "done"]
    done = records[-1]
    assert done["backend"] == "tensorflow"  # --backend after the command, over KERAS_BACKEND=torch
    assert done["status"] == "finished" and done["test_examples"] == 2000
    assert done["test_accuracy"] > 0.3, done  # chance is 0.1; one epoch reaches about 0.5
    assert pathlib.Path(done["output"], "model.keras").is_file()


HOSTILE_OPTIONS = {
    "seed above 32 bits": (
        ["train", "--seed", str(2**32)],
        "vit-keras train: error: --seed must be an integer in [0, 4294967295]; found 4294967296.",
    ),
    "image of too many tokens": (
        ["train", "--image-size", "100000"],
        "vit-keras train: error: --image-size 100000 at patch size 4 makes 625,000,000 patch tokens per image; "
        "at most 16,384",
    ),
    "encoder too deep": (
        ["train", "--depth", "1000000"],
        "vit-keras train: error: --depth 1000000, --embed-dim 64 and --mlp-dim 128 make an encoder of about "
        "32,768,000,000 weights",
    ),
    "encoder too wide": (["train", "--embed-dim", "100000", "--num-heads", "4"], "--embed-dim 100000"),
    "--data-dir ignored by mnist-sample": (
        ["train", "--data-dir", "mnist_files"],
        "vit-keras train: error: --data-dir applies to --dataset mnist and tfds:NAME only; found --data-dir "
        "'mnist_files' with --dataset 'mnist-sample'",
    ),
    "--data-dir ignored by folder:": (
        ["train", "--dataset", "folder:photos", "--data-dir", "photos"],
        "'folder:photos'",
    ),
    "evaluate: empty --dataset": (
        ["evaluate", "run", "--dataset", ""],
        "vit-keras evaluate: error: --dataset must be a non-empty spec; found ''.",
    ),
    "evaluate: blank --data-dir": (
        ["evaluate", "run", "--data-dir", " "],
        "vit-keras evaluate: error: --data-dir must be a non-empty path; found ' '.",
    ),
    "evaluate: --data-dir ignored": (
        ["evaluate", "run", "--dataset", "npz:digits.npz", "--data-dir", "mnist_files"],
        "vit-keras evaluate: error: --data-dir applies to --dataset mnist and tfds:NAME only",
    ),
    "plot: --data-dir ignored": (
        ["plot", "run", "--dataset", "mnist-sample", "--data-dir", "d"],
        "vit-keras plot: error: --data-dir applies to --dataset mnist and tfds:NAME only",
    ),
}


@pytest.mark.single_backend
@pytest.mark.parametrize("case", sorted(HOSTILE_OPTIONS))
def test_hostile_options_stop_in_one_line_before_any_file(case, tmp_path, monkeypatch, capsys):
    """Values that would run out of memory, fail deep in the library or be silently ignored end in one line,
    exit status 2, before any file is written."""
    argv, expected = HOSTILE_OPTIONS[case]
    monkeypatch.chdir(tmp_path)
    status = cli.main(argv)
    captured = capsys.readouterr()
    assert (status, captured.out) == (2, "")
    assert captured.err.count("\n") == 1 and expected in captured.err, captured.err
    assert list(tmp_path.iterdir()) == []  # no run directory, nothing written


@pytest.mark.single_backend
def test_data_dir_is_accepted_where_the_dataset_reads_it():
    for argv in (["--dataset", "mnist", "--data-dir", "d"], ["--dataset", "tfds:cifar10", "--data-dir", "d"]):
        assert cli.parse_train_config(argv).validate().data_dir == "d"
    assert cli.parse_train_config(["--seed", str(2**32 - 1)]).validate().seed == 2**32 - 1
    assert cli.parse_train_config(["--preset", "vit_h14", "--image-size", "224"]).validate().preset == "vit_h14"
