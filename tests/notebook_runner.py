"""The notebook runner shared by tests/test_notebook_*.py.

A notebook test module sets ``NOTEBOOK = "01_count_regions.ipynb"`` (a file in ``notebooks/``)
and asks for the module-scoped ``executed`` fixture of ``tests/conftest.py``, which runs the
notebook once per module with :func:`execute_notebook`. The helpers below read what a cell
printed; :func:`check_saved_without_outputs` and :func:`check_no_errors` are the two checks
every notebook test makes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

#: Seconds one cell may run before the kernel is interrupted.
CELL_TIMEOUT = 300


def _nb_modules():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    return nbformat, nbclient


def notebook_path(name: str) -> Path:
    path = NOTEBOOKS / name
    if not path.is_file():
        raise FileNotFoundError(f"no notebook {name!r} in {NOTEBOOKS}")
    return path


def read_notebook(name: str):
    nbformat, _ = _nb_modules()
    return nbformat.read(notebook_path(name), as_version=4)


def execute_notebook(name: str, *, timeout: int = CELL_TIMEOUT):
    """Run ``notebooks/NAME`` top to bottom in a fresh python3 kernel (cwd: notebooks/) and
    return the executed notebook; matplotlib draws with Agg (the kernel inherits the environment)."""
    _, nbclient = _nb_modules()
    nb = read_notebook(name)
    old = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"
    try:
        client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=timeout,
                                         resources={"metadata": {"path": str(NOTEBOOKS)}})
        client.execute()
    finally:
        if old is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = old
    return nb


def cell_text(cell) -> str:
    """What a code cell printed on stdout and the text of its results."""
    out = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream" and o.name == "stdout":
            out.append(o.text)
        elif o.output_type in ("execute_result", "display_data"):
            out.append(o.data.get("text/plain", ""))
    return "".join(out)


def find_cell(nb, needle: str):
    """The first code cell whose source contains ``needle``."""
    cells = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    assert cells, f"no code cell contains {needle!r}"
    return cells[0]


def has_image(cell) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


def check_saved_without_outputs(name: str) -> None:
    """The notebook is committed clean: no outputs, no execution counts."""
    for c in read_notebook(name).cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None, c.source


def check_no_errors(nb) -> None:
    for c in nb.cells:
        if c.cell_type == "code":
            assert not [o for o in c.outputs if o.output_type == "error"], c.source
