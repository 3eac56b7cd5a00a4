"""Notebook 01 (counting regions) runs end to end and shows what it claims to show."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NB = NOTEBOOKS / "01_count_regions.ipynb"


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


def _count(text: str, label: str) -> tuple[int, bool]:
    m = re.search(rf"^{label}: (\d+) regions \(exact=(True|False)", text, re.M)
    assert m, f"no line '{label}: N regions (exact=...)' in:\n{text}"
    return int(m.group(1)), m.group(2) == "True"


def test_saved_notebook_has_no_outputs():
    nb = nbformat.read(NB, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None


def test_runs_without_errors(executed):
    for c in executed.cells:
        if c.cell_type == "code":
            assert not [o for o in c.outputs if o.output_type == "error"], c.source


def test_fast_and_milp_counts_agree(executed):
    fast_n, fast_exact = _count(_text(_find(executed, 'method="fast"')), "fast")
    milp_text = _text(_find(executed, 'method="milp"'))
    milp_n, milp_exact = _count(milp_text, "MILP")
    assert fast_exact and milp_exact
    assert fast_n == milp_n >= 2
    assert f"fast and MILP agree: {fast_n} regions, the same activation patterns" in milp_text


def test_forward_pass_check_and_bounds(executed):
    fast_n, _ = _count(_text(_find(executed, 'method="fast"')), "fast")
    check = _text(_find(executed, "net.activation_pattern(X)"))
    assert "forward pass reproduces every pattern: True" in check
    assert "every point in the domain: True" in check
    bounds = _text(_find(executed, "all_bounds(net)"))
    for name in ("montufar2014", "montufar2017", "serra2018", "serra_ramalingam2020 (on the ball)"):
        assert f"upper bound {name}" in bounds, name
    sampled = int(re.search(r"lower bound by sampling [\d,]+ points: (\d+)", bounds).group(1))
    assert 1 <= sampled <= fast_n


def test_slice_picture_and_mipbound(executed):
    cell = _find(executed, "plot_plane_partition(")
    assert any("image/png" in o.get("data", {}) for o in cell.outputs)
    assert re.search(r"\d+ activation regions", _text(cell))
    pb = _text(_find(executed, "parity_lower_bound("))
    m = re.search(r"MIPBound: >= ([\d.e+]+) regions with probability >= ([\d.]+); exact count (\d+)", pb)
    assert m, pb
    assert 0.0 < float(m.group(2)) <= 1.0 and int(m.group(3)) >= 2
    secs = int(re.search(r"notebook ran in (\d+) s", pb).group(1))
    assert secs < 120  # the notebook is meant to run in well under a minute on an idle machine
