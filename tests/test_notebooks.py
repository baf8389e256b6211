"""The tutorial notebooks run from top to bottom, in small mode, and are stored without outputs.

Every ``notebooks/*.ipynb`` is executed in a fresh Jupyter kernel (nbclient, ipykernel: the
``test`` extra) with ``NANOTRANSPORT_NOTEBOOK_SMALL=1`` (the notebooks shrink their grids,
horizons and study sizes) and ``JAX_DISABLE_MOST_OPTIMIZATIONS=1`` (compilation dominates such
tiny runs; XLA's optimization passes cost more than they save there).  The kernel's working
directory is a temporary folder, so whatever a notebook writes stays out of the checkout.
"""
import json
import time
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
SMALL_ENV = {"NANOTRANSPORT_NOTEBOOK_SMALL": "1", "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}


def test_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"getting_started", "design_optimization", "parameter_scan"} <= names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                f"{path.name}: cell {i} has outputs; strip them (e.g. jupyter nbconvert "
                "--clear-output --inplace)")


#: the longest notebooks (1-3 min each on 2 cores, mostly compilation) carry the ``slow`` marker
#: (run with ``pytest -m slow``); what they use is tested by test_design, test_cli (optimize)
#: and test_imaging in the default run.
SLOW_NOTEBOOKS = {"design_optimization", "theranostics"}


@pytest.mark.parametrize("path", [
    pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW_NOTEBOOKS else p for p in NOTEBOOKS
], ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path, monkeypatch, record_property):
    import nbformat
    from nbclient import NotebookClient

    for key, value in SMALL_ENV.items():  # the kernel inherits this environment
        monkeypatch.setenv(key, value)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError (with the cell and traceback) on failure
    seconds = time.perf_counter() - t0
    record_property("seconds", round(seconds, 1))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    print(f"{path.name}: {seconds:.1f} s")
