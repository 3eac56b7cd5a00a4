"""Notebook 01 (counting regions) runs end to end and shows what it claims to show."""

from __future__ import annotations

import re

from notebook_runner import cell_text, check_no_errors, check_saved_without_outputs, find_cell, has_image

#: Run once per module by the ``executed`` fixture of conftest.py.
NOTEBOOK = "01_count_regions.ipynb"


def _count(text: str, label: str) -> tuple[int, bool]:
    m = re.search(rf"^{label}: (\d+) regions \(exact=(True|False)", text, re.M)
    assert m, f"no line '{label}: N regions (exact=...)' in:\n{text}"
    return int(m.group(1)), m.group(2) == "True"


def test_saved_notebook_has_no_outputs():
    check_saved_without_outputs(NOTEBOOK)


def test_runs_without_errors(executed):
    check_no_errors(executed)


def test_fast_and_milp_counts_agree(executed):
    fast_n, fast_exact = _count(cell_text(find_cell(executed, 'method="fast"')), "fast")
    milp_text = cell_text(find_cell(executed, 'method="milp"'))
    milp_n, milp_exact = _count(milp_text, "MILP")
    assert fast_exact and milp_exact
    assert fast_n == milp_n >= 2
    assert f"fast and MILP agree: {fast_n} regions, the same activation patterns" in milp_text


def test_forward_pass_check_and_bounds(executed):
    fast_n, _ = _count(cell_text(find_cell(executed, 'method="fast"')), "fast")
    check = cell_text(find_cell(executed, "net.activation_pattern(X)"))
    assert "forward pass reproduces every pattern: True" in check
    assert "every point in the domain: True" in check
    bounds = cell_text(find_cell(executed, "all_bounds(net)"))
    for name in ("montufar2014", "montufar2017", "serra2018", "serra_ramalingam2020 (on the ball)"):
        assert f"upper bound {name}" in bounds, name
    sampled = int(re.search(r"lower bound by sampling [\d,]+ points: (\d+)", bounds).group(1))
    assert 1 <= sampled <= fast_n


def test_slice_picture_and_mipbound(executed):
    cell = find_cell(executed, "plot_plane_partition(")
    assert has_image(cell)
    assert re.search(r"\d+ activation regions", cell_text(cell))
    pb = cell_text(find_cell(executed, "parity_lower_bound("))
    m = re.search(r"MIPBound: >= ([\d.e+]+) regions with probability >= ([\d.]+); exact count (\d+)", pb)
    assert m, pb
    assert 0.0 < float(m.group(2)) <= 1.0 and int(m.group(3)) >= 2
    secs = int(re.search(r"notebook ran in (\d+) s", pb).group(1))
    assert secs < 120  # the notebook is meant to run in well under a minute on an idle machine
