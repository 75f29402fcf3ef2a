"""notebooks/walkthrough.ipynb runs top to bottom (CI executes it; about two minutes on two cores)."""
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "walkthrough.ipynb"


@pytest.mark.slow
def test_walkthrough_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="the notebook test needs the `test` extra (nbclient)")
    nbclient = pytest.importorskip("nbclient", reason="the notebook test needs the `test` extra (nbclient)")
    import erase.evaluate.cache as cache

    monkeypatch.setenv("ERASE_CACHE", str(cache.CACHE_DIR))  # the kernel shares this session's evaluation cache
    monkeypatch.setenv("ERASE_INCEPTION", "none")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 8
    assert (tmp_path / "runs" / "walkthrough-compare" / "compare.csv").is_file()
