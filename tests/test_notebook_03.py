"""Notebook 03 (equivalence of a pruned net, lossless compression) runs end to end and shows what it claims."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NB = NOTEBOOKS / "03_verify_pruned_equivalence.ipynb"


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


def test_pruned_net_has_a_checked_counterexample(executed):
    text = _text(_find(executed, 'mode="top1"'))
    assert "pruned vs original (top-1): not_equivalent" in text, text
    m = re.search(r"inside the ball True, original -> (\d), pruned -> (\d), margin ([\d.e+-]+) > 0", text)
    assert m, text
    assert m.group(1) != m.group(2) and float(m.group(3)) > 0
    picture = _find(executed, "plt.subplots(1, 3")
    assert any("image/png" in o.get("data", {}) for o in picture.outputs)


def test_compressed_net_proven_and_sampled_equivalent(executed):
    comp = _text(_find(executed, "compress(l1net"))
    m = re.search(r"(\d+) of (\d+) hidden neurons", comp)
    assert m and int(m.group(1)) >= 1, comp
    text = _text(_find(executed, 'mode="exact"'))
    assert "compressed vs L1 net (exact): equivalent" in text, text
    gap = float(re.search(r"max \|f - g\| = ([\d.e+-]+)", text).group(1))
    assert gap <= 1e-6
    assert "same top-1 everywhere: True" in text
    secs = int(re.search(r"notebook ran in (\d+) s", text).group(1))
    assert secs < 120  # meant to run in well under a minute on an idle machine
