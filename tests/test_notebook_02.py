"""Notebook 02 (sparsity allocation) runs end to end and shows what it claims to show."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NB = NOTEBOOKS / "02_sparsity_allocation.ipynb"


@pytest.fixture(scope="module")
def executed():
    nb = nbformat.read(NB, as_version=4)
    old = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"  # the kernel inherits the environment
    try:
        client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                         resources={"metadata": {"path": str(NOTEBOOKS)}})
        client.execute()
    finally:
        if old is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = old
    return nb


def _text(cell) -> str:
    out = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream" and o.name == "stdout":
            out.append(o.text)
        elif o.output_type in ("execute_result", "display_data"):
            out.append(o.data.get("text/plain", ""))
    return "".join(out)


def _find(nb, needle):
    cells = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    assert cells, f"no code cell contains {needle!r}"
    return cells[0]


def test_saved_notebook_has_no_outputs():
    nb = nbformat.read(NB, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None


def test_runs_without_errors(executed):
    for c in executed.cells:
        if c.cell_type == "code":
            assert not [o for o in c.outputs if o.output_type == "error"], c.source


def test_bound_curve_and_allocation(executed):
    curve = _text(_find(executed, "density_curve(widths, ok)"))
    assert "784-100-100-10" in curve and "p=0.001:  119.8" in curve and "p=1:  144.9" in curve
    alloc = _text(_find(executed, "allocate_sparsity(FMNIST, density=0.001)"))
    m = re.search(r"allocated densities: \[([^\]]*)\]", alloc)
    assert m, alloc
    p1, p2, p3 = (float(x) for x in m.group(1).split(","))
    assert p1 == pytest.approx(0.00059, abs=2e-5) and p2 == pytest.approx(0.0042, abs=2e-4) and p3 == 1.0
    assert "ln B allocated: 137.8" in alloc and "ln B uniform:   119.8" in alloc
    digits_alloc = _text(_find(executed, "allocate_sparsity(DIGITS, density=d)"))
    assert digits_alloc.count("digits net, density") == 3


def test_accuracy_section(executed):
    sweep = _text(_find(executed, "sparsity_sweep(digits"))
    assert "uniform" in sweep and "allocated" in sweep and "2 seed(s)" in sweep
    accs = [float(x) for x in re.findall(r"(\d\.\d{4}) ±", sweep)]
    assert len(accs) == 1 + 6 and all(0.0 <= a <= 1.0 for a in accs)  # dense + 2 methods x 3 densities
    cmp = _text(_find(executed, 'sweep.compare("allocated", "uniform")'))
    assert cmp.count("difference") == 3
    for needle in ("plot_log_bound_vs_density(FMNIST", "plot_accuracy_vs_density(sweep)"):
        cell = _find(executed, needle)
        assert any("image/png" in o.get("data", {}) for o in cell.outputs), needle
