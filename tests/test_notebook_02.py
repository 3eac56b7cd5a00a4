"""Notebook 02 (sparsity allocation) runs end to end and shows what it claims to show."""

from __future__ import annotations

import re

import pytest
from notebook_runner import cell_text, check_no_errors, check_saved_without_outputs, find_cell, has_image

#: Run once per module by the ``executed`` fixture of conftest.py.
NOTEBOOK = "02_sparsity_allocation.ipynb"


def test_saved_notebook_has_no_outputs():
    check_saved_without_outputs(NOTEBOOK)


def test_runs_without_errors(executed):
    check_no_errors(executed)


def test_bound_curve_and_allocation(executed):
    curve = cell_text(find_cell(executed, "density_curve(widths, ok)"))
    assert "784-100-100-10" in curve and "p=0.001:  119.8" in curve and "p=1:  144.9" in curve
    alloc = cell_text(find_cell(executed, "allocate_sparsity(FMNIST, density=0.001)"))
    m = re.search(r"allocated densities: \[([^\]]*)\]", alloc)
    assert m, alloc
    p1, p2, p3 = (float(x) for x in m.group(1).split(","))
    assert p1 == pytest.approx(0.00059, abs=2e-5) and p2 == pytest.approx(0.0042, abs=2e-4) and p3 == 1.0
    assert "ln B allocated: 137.8" in alloc and "ln B uniform:   119.8" in alloc
    digits_alloc = cell_text(find_cell(executed, "allocate_sparsity(DIGITS, density=d)"))
    assert digits_alloc.count("digits net, density") == 3


def test_accuracy_section(executed):
    sweep = cell_text(find_cell(executed, "sparsity_sweep(digits"))
    assert "uniform" in sweep and "allocated" in sweep and "2 seed(s)" in sweep
    accs = [float(x) for x in re.findall(r"(\d\.\d{4}) ±", sweep)]
    assert len(accs) == 1 + 6 and all(0.0 <= a <= 1.0 for a in accs)  # dense + 2 methods x 3 densities
    cmp = cell_text(find_cell(executed, 'sweep.compare("allocated", "uniform")'))
    assert cmp.count("difference") == 3
    for needle in ("plot_log_bound_vs_density(FMNIST", "plot_accuracy_vs_density(sweep)"):
        cell = find_cell(executed, needle)
        assert has_image(cell), needle
