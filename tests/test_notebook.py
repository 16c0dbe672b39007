"""experiments/quickstart.ipynb runs top to bottom in a headless kernel, on tiny synthetic data."""

from __future__ import annotations

import json

import nbformat
import pytest
from conftest import REPO, tiny_overrides
from nbclient import NotebookClient

NOTEBOOK = REPO / "experiments" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_trains_and_shows_its_figures(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv(
        "FASHION_LAB_NOTEBOOK_OVERRIDES", json.dumps(tiny_overrides(tiny_data, tmp_path))
    )
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on an error

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 3, "curves, confusion matrix, sample predictions"
    assert "cnn: test accuracy" in text
    assert "Ankle boot" in text and "all" in text, "the per-class table"

    [results] = (tmp_path / "notebook").glob("*_cnn/results.json")
    results = json.loads(results.read_text())
    assert results["status"] == "completed" and results["epochs"] == 2
    [evaluation] = (tmp_path / "notebook").glob("*_cnn/evaluation/metrics.json")
    metrics = json.loads(evaluation.read_text())
    assert abs(metrics["test_acc"] - results["test_acc"]) < 1e-6, "the same best checkpoint"
    assert f"{metrics['test_acc']:.2%}" in text
