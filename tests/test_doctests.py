"""The `>>>` examples in the docstrings of every vit_keras module run and print what they show."""

import doctest
import importlib

import keras
import pytest
from conftest import REPO

PACKAGE = REPO / "vit_keras"


def _modules_with_examples():
    """Dotted names of the modules under vit_keras/ whose source has a `>>>` example."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = path.relative_to(REPO).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


@pytest.mark.single_backend
def test_examples_are_found():
    assert {"vit_keras.architectures", "vit_keras.model", "vit_keras.layers.encoder_block"} <= set(MODULES)


@pytest.mark.single_backend
@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name):
    keras.utils.set_random_seed(0)
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [test for test in finder.find(module, module_name) if test.examples]
    assert tests, f"{module_name} has `>>>` in its source but no docstring example was found"
    for test in tests:
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed in {module_name}"
