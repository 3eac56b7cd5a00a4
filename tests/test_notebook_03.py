"""Notebook 03 (equivalence of a pruned net, lossless compression) runs end to end and shows what it claims."""

from __future__ import annotations

import re

from notebook_runner import cell_text, check_no_errors, check_saved_without_outputs, find_cell, has_image

#: Run once per module by the ``executed`` fixture of conftest.py.
NOTEBOOK = "03_verify_pruned_equivalence.ipynb"


def test_saved_notebook_has_no_outputs():
    check_saved_without_outputs(NOTEBOOK)


def test_runs_without_errors(executed):
    check_no_errors(executed)


def test_pruned_net_has_a_checked_counterexample(executed):
    text = cell_text(find_cell(executed, 'mode="top1"'))
    assert "pruned vs original (top-1): not_equivalent" in text, text
    m = re.search(r"inside the ball True, original -> (\d), pruned -> (\d), margin ([\d.e+-]+) > 0", text)
    assert m, text
    assert m.group(1) != m.group(2) and float(m.group(3)) > 0
    picture = find_cell(executed, "plt.subplots(1, 3")
    assert has_image(picture)


def test_compressed_net_proven_and_sampled_equivalent(executed):
    comp = cell_text(find_cell(executed, "compress(l1net"))
    m = re.search(r"(\d+) of (\d+) hidden neurons", comp)
    assert m and int(m.group(1)) >= 1, comp
    text = cell_text(find_cell(executed, 'mode="exact"'))
    assert "compressed vs L1 net (exact): equivalent" in text, text
    gap = float(re.search(r"max \|f - g\| = ([\d.e+-]+)", text).group(1))
    assert gap <= 1e-6
    assert "same top-1 everywhere: True" in text
    secs = int(re.search(r"notebook ran in (\d+) s", text).group(1))
    assert secs < 120  # meant to run in well under a minute on an idle machine
