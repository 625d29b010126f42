"""The code blocks of README.md and docs/*.md run as written.

Every fenced ```python block runs in a fresh subprocess of this interpreter, every ```bash / ```sh
block with bash (`-e -o pipefail`, with this interpreter's bin folder, which holds `vit-keras`, first
on PATH). All pages share one temporary working directory, README.md first, so later pages use the
run that the README's tour trains (`runs/mnist`). The test provides the placeholders the pages name:
`digit.png` (an MNIST digit), `photos/` (two class folders of small colour images) and
`tests/fixtures/` (the repository's fixtures). A block preceded by the HTML comment
`<!-- not-tested: REASON -->` is skipped; nothing else is.
"""

import os
import pathlib
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
RUNNERS = {"python": [sys.executable], "bash": ["bash", "-e", "-o", "pipefail"], "sh": ["bash", "-e", "-o", "pipefail"]}
SUFFIX = {"python": ".py", "bash": ".sh", "sh": ".sh"}
FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"^<!--\s*not-tested:\s*(\S[^>]*?)\s*-->[ \t]*$", re.MULTILINE)
BLOCK_TIMEOUT_S = 300

pytestmark = pytest.mark.single_backend


def code_blocks(page):
    """[(line, language, code, skip_reason or None)] of the fenced blocks of `page`."""
    text = page.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        marker = MARKER.match(before[-1].strip()) if before else None
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, match.group(1).lower(), match.group(2), marker.group(1) if marker else None))
    return blocks


def _label(page, line):
    return f"{page.relative_to(REPO)}:{line}"


def _write_placeholders(work):
    """digit.png, photos/<class>/*.png and tests/fixtures, as the pages assume them."""
    from PIL import Image

    with np.load(REPO / "vit_keras" / "assets" / "mnist_sample.npz") as sample:
        Image.fromarray(sample["x_test"][0].astype("uint8")).save(work / "digit.png")
    rng = np.random.default_rng(0)
    for label, colour in (("cat", (200, 80, 40)), ("dog", (40, 90, 210))):
        folder = work / "photos" / label
        folder.mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(rng.normal(colour, 30, (40, 40, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"{label}_{i}.png")
    (work / "tests").mkdir()
    (work / "tests" / "fixtures").symlink_to(REPO / "tests" / "fixtures")


def _environment(work):
    env = dict(os.environ)
    bin_dir = str(pathlib.Path(sys.executable).parent)
    env.update(
        PATH=bin_dir + os.pathsep + env.get("PATH", ""),
        KERAS_BACKEND="tensorflow",
        KERAS_HOME=str(work / ".keras"),
        TF_CPP_MIN_LOG_LEVEL="3",
        MPLBACKEND="Agg",
        PYTHONUNBUFFERED="1",
    )
    return env


def _run_block(work, env, index, language, code):
    """Run one block in `work`; return (exit status, the tail of its output)."""
    script = work / ".blocks" / f"block_{index:02d}{SUFFIX[language]}"
    script.parent.mkdir(exist_ok=True)
    script.write_text(code)
    process = subprocess.Popen(
        RUNNERS[language] + [str(script)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the block's own process group: bash and what it started
        process.communicate()
        return "timeout", f"still running after {BLOCK_TIMEOUT_S} s"
    return process.returncode, "\n".join(output.strip().splitlines()[-15:])


def test_pages_mark_what_they_skip():
    """Markers precede runnable blocks and name a reason; the README stays short; links resolve."""
    assert len((REPO / "README.md").read_text().splitlines()) <= 200
    for page in PAGES:
        text = page.read_text()
        assert "../shared" not in text, f"{page.name} names a path that a clone does not have"
        blocks = code_blocks(page)
        marked = sum(reason is not None for _, _, _, reason in blocks)
        assert marked == len(MARKER.findall(text)), f"{page.name}: a not-tested marker is not right before a block"
        for line, language, _, reason in blocks:
            if reason is not None:
                assert language in RUNNERS, f"{_label(page, line)}: marker before a {language!r} block"
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not re.match(r"[a-z]+:", target):
                assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_code_blocks_run(tmp_path):
    """Every unmarked python/bash block of README.md and docs/*.md exits with status 0."""
    _write_placeholders(tmp_path)
    env = _environment(tmp_path)
    ran, failures = 0, []
    for page in PAGES:
        for line, language, code, reason in code_blocks(page):
            if language not in RUNNERS or reason is not None:
                continue
            status, tail = _run_block(tmp_path, env, ran, language, code)
            ran += 1
            if status != 0:
                failures.append(f"{_label(page, line)} ({language}) exited {status}:\n{tail}")
    assert ran >= 10, f"only {ran} blocks ran"
    assert not failures, "\n\n".join(failures)
