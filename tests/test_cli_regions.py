"""``mipnet regions ...`` through mipnet.cli.main, checked against the Python API."""

import json
import math

import numpy as np
import pytest

from mipnet import Box, Network
from mipnet.cli import main
from mipnet.io import save_network
from mipnet.analyses.regions import count_regions


@pytest.fixture
def model(tmp_path):
    net = Network.random([2, 6, 4, 3], seed=3)
    path = tmp_path / "net.npz"
    save_network(net, path)
    return net, str(path)


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_count_json_matches_api(model, capsys, tmp_path):
    net, path = model
    expected = count_regions(net, Box(-1, 1, dim=2)).regions
    assert main(["regions", "count", path, "--box", "-1", "1", "--json", "--linear-regions",
                 "--save-regions", str(tmp_path / "r.npz")]) == 0
    d = _json(capsys)
    assert d["regions"] == expected and d["exact"] is True and d["method"] == "fast"
    assert isinstance(d["seconds"], float) and d["linear_regions"] <= d["regions"]
    saved = np.load(tmp_path / "r.npz")
    assert saved["patterns"].shape == (expected, 10)
    assert np.array_equal(net.activation_pattern(saved["interior_points"]), saved["patterns"])
    # the MILP baseline gives the same number
    assert main(["regions", "count", path, "--box", "-1", "1", "--method", "milp", "--json"]) == 0
    assert _json(capsys)["regions"] == expected


def test_count_budget_and_text(model, capsys):
    _, path = model
    assert main(["regions", "count", path, "--box", "-1", "1", "--max-regions", "3", "--json"]) == 0
    d = _json(capsys)
    assert d["regions"] == 3 and d["exact"] is False and d["status"] == "max_regions"
    assert main(["regions", "count", path, "--box", "-1", "1", "--time-limit", "30"]) == 0
    assert "activation regions of Network(2-6-4-3)" in capsys.readouterr().out


def test_bound_widths_and_network_specific(model, capsys):
    net, path = model
    assert main(["regions", "bound", "--widths", "784,100,100,10", "--density", "1.0", "--json"]) == 0
    d = _json(capsys)
    assert d["widths"] == [784, 100, 100, 10]
    assert d["bounds"]["serra2018"]["value"] > 0
    assert d["bounds"]["montufar2014"]["value"] == 2 ** 200
    # MATH.md reference: dense 784-100-100-10 expected-rank bound, ln B = 144.92
    assert d["bounds"]["cai2023_expected_rank"]["log_value"] == pytest.approx(144.92, abs=0.5)
    exact = count_regions(net, Box(-1, 1, dim=2)).regions
    assert main(["regions", "bound", path, "--network-specific", "--box", "-1", "1", "--json"]) == 0
    d = _json(capsys)
    ns = d["bounds"]["serra_ramalingam2020"]
    assert ns["value"] >= exact and ns["log_value"] == pytest.approx(math.log(ns["value"]))
    assert d["network_specific"]["max_active"] == [6, 3]
    for b in d["bounds"].values():
        if b["exact_integer"]:
            assert b["value"] >= exact


def test_sample_and_estimate(model, capsys):
    net, path = model
    exact = count_regions(net, Box(-1, 1, dim=2)).regions
    assert main(["regions", "sample", path, "--box", "-1", "1", "--samples", "5000", "--json"]) == 0
    d = _json(capsys)
    assert 0 < d["regions"] <= exact and d["samples"] == 5000
    assert main(["regions", "estimate", path, "--box", "-1", "1", "--parity", "0", "--trials", "2", "--json"]) == 0
    d = _json(capsys)
    assert d["parity"]["k"] == 0 and d["parity"]["lower_bound"] == 0.5
    assert main(["regions", "estimate", path, "--box", "-1", "1", "--trials", "2", "--samples", "100"]) == 0
    out = capsys.readouterr().out
    assert "XOR constraints" in out and "distinct patterns" in out


def test_slice_axes_and_points(model, capsys, tmp_path):
    net, path = model
    exact = count_regions(net, Box(-1, 1, dim=2)).regions
    png = tmp_path / "s.png"
    assert main(["regions", "slice", path, "--axes", "0", "1", "--box", "-1", "1", "-o", str(png),
                 "--color-by", "class", "--json"]) == 0
    d = _json(capsys)
    assert d["regions"] == exact and png.stat().st_size > 1000
    pts = []
    for name, x in (("a", [0.1, 0.2]), ("b", [-0.5, 0.3]), ("c", [0.2, -0.7])):
        np.save(tmp_path / f"{name}.npy", np.array(x))
        pts.append(str(tmp_path / f"{name}.npy"))
    assert main(["regions", "slice", path, "--points", *pts, "--box", "-1", "1", "--json"]) == 0
    d = _json(capsys)
    assert 0 < d["regions"] <= exact


def test_errors(model, capsys):
    _, path = model
    assert main(["regions", "bound", "--json"]) == 3
    assert "give either MODEL or --widths" in capsys.readouterr().err
    assert main(["regions", "bound", "--widths", "784,100,100,10", "--network-specific"]) == 3
    assert "needs a MODEL" in capsys.readouterr().err
    assert main(["regions", "count", path]) == 3
    assert "give an input domain" in capsys.readouterr().err
    assert main(["regions", "count", path, "--box", "-1", "1", "--max-regions", "0"]) == 3
    assert "max_regions must be a positive integer" in capsys.readouterr().err
    assert main(["regions", "estimate", path, "--box", "-1", "1", "--parity", "x"]) == 3
    assert "--parity must be" in capsys.readouterr().err
    assert main(["regions"]) == 3
    assert "required: SUBCOMMAND" in capsys.readouterr().err
