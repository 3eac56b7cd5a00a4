"""Notebook 04 (pruning gap) runs end to end and shows what it claims to show."""

from __future__ import annotations

import re

from notebook_runner import cell_text, check_no_errors, check_saved_without_outputs, find_cell, has_image

#: Run once per module by the ``executed`` fixture of conftest.py.
NOTEBOOK = "04_pruning_gap.ipynb"


def test_saved_notebook_has_no_outputs():
    check_saved_without_outputs(NOTEBOOK)


def test_runs_without_errors(executed):
    check_no_errors(executed)


def test_worst_case_and_data(executed):
    text = cell_text(find_cell(executed, "res = pruning_gap(f, g, D"))
    assert "worst-case gap on D (L-inf)" in text and "witness re-checked" in text
    m = re.search(r"data \((\d+) points, (\d+) in D\)", text)
    assert m and m.group(1) == m.group(2)  # every test image lies in the box
    ratio = cell_text(find_cell(executed, "worst case / data max ="))
    r = float(re.search(r"worst case / data max = ([\d.]+)", ratio).group(1))
    assert r >= 1.0  # the worst case over the box is at least the largest gap on the data
    assert "relative gap on data: mean" in ratio and "relative gap at the witness" in ratio
    pic = find_cell(executed, "a1.imshow(res.witness.reshape(8, 8)")
    assert has_image(pic)


def test_ball_and_sensitivity(executed):
    ball = cell_text(find_cell(executed, "LinfBall(x0, 1.0, 0, 16)"))
    m = re.search(r"gap at the image ([\d.e+-]+); worst case within radius 1: ([\d.e+-]+)", ball)
    assert m and float(m.group(2)) >= float(m.group(1)) - 1e-9
    sens = cell_text(find_cell(executed, "layer_sensitivity(model, digits"))
    assert "most tolerant first" in sens and sens.count("layer ") >= 2
