"""Sparsity allocation from the expected-rank bound (Cai et al. 2023)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mipnet import InvalidArgumentError, Network
from mipnet.cli import main
from mipnet.sparsity import (
    SparsityAllocation,
    allocate_sparsity,
    density_curve,
    parse_prunable,
    plot_bound_vs_density,
    sparse_log_bound,
)
from mipnet.theory import expected_rank_bound

MNIST = (784, 100, 100, 10)


def _spent(a: SparsityAllocation) -> float:
    return sum(a.densities[i] * a.widths[i] * a.widths[i + 1] for i in a.prunable)


# ---------------------------------------------------------------------------- reference values
def test_reference_allocation_density_0_001():
    a = allocate_sparsity(MNIST, density=0.001)
    assert a.log_bound >= 137.7
    assert a.uniform_log_bound == pytest.approx(119.8, abs=0.05)
    assert a.dense_log_bound == pytest.approx(144.92, abs=0.01)
    p1, p2, p3 = a.densities
    assert p1 == pytest.approx(0.00059, rel=0.1) and p2 == pytest.approx(0.0042, rel=0.1) and p3 == 1.0
    assert _spent(a) <= a.budget * (1 + 1e-9)
    assert a.budget == pytest.approx(88.4)
    # the reported bound is the bound of the reported densities, by the theory module
    assert a.log_bound == pytest.approx(
        expected_rank_bound(MNIST[:-1], a.densities[:2], output_width=10).log_value, rel=1e-12)


def test_reference_allocation_density_0_0001():
    a = allocate_sparsity(MNIST, density=0.0001)
    assert a.log_bound == pytest.approx(70.0, abs=0.5)
    assert a.uniform_log_bound == pytest.approx(62.8, abs=0.5)


def test_contract_one_density_per_weight_matrix():
    a = allocate_sparsity(MNIST, density=0.01)
    assert len(a.densities) == 3 and a.densities[-1] == 1.0
    net = Network.random((6, 5, 4, 3, 2), seed=0)
    b = allocate_sparsity(net, density=0.3)
    assert len(b.densities) == 4 and b.densities[-1] == 1.0
    assert b.widths == net.widths
    c = allocate_sparsity((6, 5, 4, 3), output_width=2, density=0.3)
    assert c.densities == b.densities


def test_saturated_bound_keeps_uniform_and_spends_budget():
    for D in (0.5, 1.0):
        a = allocate_sparsity(MNIST, density=D)
        assert a.densities == pytest.approx((D, D, 1.0))
        assert a.log_bound == pytest.approx(a.dense_log_bound)


# ---------------------------------------------------------------------------- optimality
def test_two_layers_matches_brute_force_over_the_budget_line():
    """Fine 1-D enumeration of p2 (p1 takes the rest) with the theory module's evaluator."""
    w, D = (30, 12, 10, 3), 0.05
    a = allocate_sparsity(w, density=D)
    s1, s2 = 30 * 12, 12 * 10
    budget = D * (s1 + s2)
    best = -np.inf
    for p2 in np.geomspace(1 / s2 * 0.999, min(1.0, (budget - 1) / s2), 1500):
        p1 = min(1.0, (budget - p2 * s2) / s1)
        best = max(best, expected_rank_bound(w[:-1], [p1, p2], output_width=3).log_value)
    assert a.log_bound >= best - 1e-9
    assert a.log_bound <= best + 1e-3


def test_two_layers_beats_every_feasible_grid_pair():
    """2-D enumeration including allocations that leave budget unspent."""
    w, D = (20, 8, 8, 2), 0.1
    a = allocate_sparsity(w, density=D)
    s1, s2 = 160, 64
    budget = D * (s1 + s2)
    for p1 in np.linspace(0.01, 0.14, 14):
        for p2 in np.linspace(0.01, 0.35, 18):
            if p1 * s1 + p2 * s2 <= budget:
                assert expected_rank_bound(w[:-1], [p1, p2], output_width=2).log_value <= a.log_bound + 1e-9


def test_grid_optimum_without_refinement_is_best_on_its_grid():
    w, D = (30, 12, 10, 3), 0.05
    a = allocate_sparsity(w, density=D, refine=False, grid=9)
    b = allocate_sparsity(w, density=D, refine=True, grid=9)
    assert a.log_bound == a.grid_log_bound
    assert b.log_bound >= a.log_bound and b.grid_log_bound == a.grid_log_bound
    finer = allocate_sparsity(w, density=D, refine=False, grid=200)
    assert finer.grid_log_bound >= a.grid_log_bound - 1e-12
    assert b.log_bound >= finer.grid_log_bound - 1e-6


def test_four_prunable_layers_beat_random_feasible_allocations():
    w, D = (40, 10, 10, 10, 10, 3), 0.08
    a = allocate_sparsity(w, density=D)
    sizes = np.array([400, 100, 100, 100])
    budget = D * sizes.sum()
    rng = np.random.default_rng(0)
    for _ in range(150):
        share = rng.dirichlet(np.ones(4))
        p = np.minimum(1.0, share * budget / sizes)
        lb = expected_rank_bound(w[:-1], list(p), output_width=3).log_value
        assert lb <= a.log_bound + 1e-9
    assert _spent(a) <= budget * (1 + 1e-9)
    assert a.log_bound > a.uniform_log_bound


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=3, max_size=5), st.integers(1, 5), st.floats(0.0, 1.0))
def test_allocation_never_worse_than_uniform(w, n_out, t):
    w = tuple(w) + (n_out,)
    sizes = [w[i] * w[i + 1] for i in range(len(w) - 1)]
    total = sum(sizes[:-1])
    d_min = (len(w) - 2) / total
    D = d_min + t * (1 - d_min)
    a = allocate_sparsity(w, density=D, grid=6)
    assert a.log_bound >= a.uniform_log_bound - 1e-9
    assert _spent(a) <= a.budget * (1 + 1e-9) + 1e-9
    assert all(0 < p <= 1 for p in a.densities) and a.densities[-1] == 1.0
    assert a.log_bound <= a.dense_log_bound + 1e-9


def test_prunable_output_layer_and_subset():
    a = allocate_sparsity(MNIST, density=0.001, prunable="all")
    assert a.prunable == (0, 1, 2) and a.densities[2] < 1.0
    assert _spent(a) <= a.budget * (1 + 1e-9)
    b = allocate_sparsity(MNIST, density=0.001, prunable=[1])
    assert b.densities[0] == 1.0 and b.densities[2] == 1.0
    assert b.densities[1] == pytest.approx(0.001)


def test_exclude_output_from_bound():
    a = allocate_sparsity(MNIST, density=0.001, output_in_bound=False)
    assert a.dense_log_bound == pytest.approx(expected_rank_bound(MNIST[:-1], 1.0).log_value)
    assert a.log_bound > a.uniform_log_bound


def test_sampled_rank_model_allocation():
    a = allocate_sparsity((60, 20, 20, 4), density=0.01, rank_model="sampled", n_samples=32)
    assert a.log_bound >= a.uniform_log_bound - 1e-9
    b = allocate_sparsity((60, 20, 20, 4), density=0.01)
    assert a.log_bound <= b.log_bound + 0.5  # structural rank <= non-zero rows


def test_four_layer_mlp_is_fast():
    allocate_sparsity((784, 100, 100, 100, 10), density=0.001)
    t = time.perf_counter()
    a = allocate_sparsity((784, 100, 100, 100, 10), density=0.001)
    assert time.perf_counter() - t < 1.0
    assert a.log_bound > a.uniform_log_bound + 20


# ---------------------------------------------------------------------------- curves, output
def test_density_curve():
    ds = [1e-4, 1e-3, 1e-2, 1.0]
    c = density_curve(MNIST, ds)
    assert c == pytest.approx([62.82, 119.80, 144.92, 144.92], abs=0.01)
    assert np.all(np.diff(c) >= -1e-12)
    assert c[1] == pytest.approx(sparse_log_bound(MNIST, [1e-3, 1e-3, 1.0]))
    no_out = sparse_log_bound(MNIST, [1e-3, 1e-3, 0.5], output_in_bound=False)
    assert no_out == pytest.approx(expected_rank_bound(MNIST[:-1], 1e-3).log_value)
    with pytest.raises(InvalidArgumentError, match="densities is empty"):
        density_curve(MNIST, [])


def test_plot_bound_vs_density(tmp_path):
    out = plot_bound_vs_density((30, 10, 10, 3), tmp_path / "curve.png", densities=[0.02, 0.1, 0.5, 1.0], mark=0.1)
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_result_to_dict_and_str():
    a = allocate_sparsity(MNIST, density=0.001)
    d = json.loads(json.dumps(a.to_dict()))
    assert d["densities"] == list(a.densities) and d["gain"] > 18
    s = str(a)
    assert "ln B allocated: 137.8" in s and "ln B uniform:   119.80" in s and "W3" in s


def test_parse_prunable():
    assert parse_prunable(None, 3) == (0, 1)
    assert parse_prunable("all", 3) == (0, 1, 2)
    assert parse_prunable("0,2", 3) == (0, 2)
    assert parse_prunable([-1], 3) == (2,)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, match", [
    (dict(density=0.0), r"must be in \(0, 1\]"),
    (dict(density=1.5), r"must be in \(0, 1\]"),
    (dict(density=float("nan")), r"must be in \(0, 1\]"),
    (dict(), "either density .* or budget"),
    (dict(density=0.1, budget=10), "either density .* or budget"),
    (dict(budget=1), "too small: keep at least one weight per prunable layer"),
    (dict(density=1e-6), "too small"),
    (dict(budget=10**6), "exceeds the 88400 prunable weights"),
    (dict(density=0.1, prunable=[3]), "out of range"),
    (dict(density=0.1, prunable=[0, 0]), "twice"),
    (dict(density=0.1, prunable="first"), "layer indices like"),
    (dict(density=0.1, prunable="all", output_in_bound=False), "output layer is prunable"),
    (dict(density=0.1, rank_model="exact"), "rank_model"),
    (dict(density=0.1, grid=1), "grid must be"),
])
def test_allocation_errors(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        allocate_sparsity(MNIST, **kwargs)


def test_widths_errors():
    with pytest.raises(InvalidArgumentError, match="no weight matrix"):
        allocate_sparsity((784,), density=0.1)
    with pytest.raises(InvalidArgumentError, match="must be >= 1"):
        allocate_sparsity((784, 0, 10), density=0.1)


# ---------------------------------------------------------------------------- CLI
def test_cli_allocate_json(capsys):
    assert main(["sparsity", "allocate", "--widths", "784,100,100,10", "--density", "0.001", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["log_bound"] >= 137.7 and abs(d["uniform_log_bound"] - 119.8) < 0.05
    assert len(d["densities"]) == 3 and d["densities"][2] == 1.0


def test_cli_allocate_table_budget_and_plot(capsys, tmp_path):
    png = tmp_path / "b.png"
    assert main(["sparsity", "allocate", "--widths", "30,10,10,3", "--budget", "40", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "ln B allocated" in out and "W1" in out and "budget: 40 of 400" in out
    assert png.exists()


def test_cli_allocate_model_file(capsys, tmp_path):
    from mipnet.io import save_network

    net = Network.random((12, 8, 6, 3), seed=0)
    path = tmp_path / "net.npz"
    save_network(net, path)
    assert main(["sparsity", "allocate", str(path), "--density", "0.2", "--prunable", "all", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["widths"] == [12, 8, 6, 3] and d["prunable"] == [0, 1, 2]
    assert d["model_layer_densities"] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("argv, match", [
    (["--widths", "784,100,100,10", "--density", "2"], r"must be in \(0, 1\]"),
    (["--widths", "784,x1,10", "--density", "0.1"], "empty entry"),
    (["--widths", "784,1a,10", "--density", "0.1"], "not an integer"),
    (["--widths", "784", "--density", "0.1"], "at least an input and an output width"),
    (["--density", "0.1"], "either a MODEL file or --widths"),
    (["--widths", "784,100,10", "--budget", "0.5"], "too small"),
])
def test_cli_errors(capsys, argv, match):
    assert main(["sparsity", "allocate", *argv]) == 3
    import re

    assert re.search(match, capsys.readouterr().err)
