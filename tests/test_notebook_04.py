"""Notebook 04 (pruning gap) runs end to end and shows what it claims to show."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NB = NOTEBOOKS / "04_pruning_gap.ipynb"


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


def test_worst_case_and_data(executed):
    text = _text(_find(executed, "res = pruning_gap(f, g, D"))
    assert "worst-case gap on D (L-inf)" in text and "witness re-checked" in text
    m = re.search(r"data \((\d+) points, (\d+) in D\)", text)
    assert m and m.group(1) == m.group(2)  # every test image lies in the box
    ratio = _text(_find(executed, "worst case / data max ="))
    r = float(re.search(r"worst case / data max = ([\d.]+)", ratio).group(1))
    assert r >= 1.0  # the worst case over the box is at least the largest gap on the data
    assert "relative gap on data: mean" in ratio and "relative gap at the witness" in ratio
    pic = _find(executed, "a1.imshow(res.witness.reshape(8, 8)")
    assert any("image/png" in o.get("data", {}) for o in pic.outputs)


def test_ball_and_sensitivity(executed):
    ball = _text(_find(executed, "LinfBall(x0, 1.0, 0, 16)"))
    m = re.search(r"gap at the image ([\d.e+-]+); worst case within radius 1: ([\d.e+-]+)", ball)
    assert m and float(m.group(2)) >= float(m.group(1)) - 1e-9
    sens = _text(_find(executed, "layer_sensitivity(model, digits"))
    assert "most tolerant first" in sens and sens.count("layer ") >= 2
