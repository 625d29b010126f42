"""The quick-start notebook runs from top to bottom (nbclient); any failing cell fails the test."""

import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "scripts" / "quickstart.ipynb"


@pytest.mark.single_backend
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKSTART_OUT", str(tmp_path))
    monkeypatch.setenv("QUICKSTART_EPOCHS", "3")  # the notebook trains 4; 3 still pass its check (accuracy > 0.7)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}})
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"a cell of {NOTEBOOK.name} failed:\n{error}")

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pictures = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(pictures) == 4  # curves, confusion matrix, attention maps, position embeddings
    for name in (
        "metrics.csv",
        "curves.png",
        "confusion_matrix.png",
        "attention.png",
        "position_embeddings.png",
        "saved_model/1/saved_model.pb",
    ):
        assert (tmp_path / name).is_file() and (tmp_path / name).stat().st_size > 0, name
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "predicted" in text
    accuracy = re.search(r"test accuracy (\d\.\d+)", text)
    assert accuracy and float(accuracy.group(1)) > 0.7, text  # it learned (chance is 0.1)
    assert len((tmp_path / "metrics.csv").read_text().strip().splitlines()) == 1 + 3  # header and 3 epochs
