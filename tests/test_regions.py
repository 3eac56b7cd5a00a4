"""Activation-region counting: several independent routes to the same number.

Routes: the vertex method, the LP method, the MILP of Serra et al. 2018, Zaslavsky's
identity, dense grids, the exact 2-D slice of mipnet.slices, sampling, a float64 forward
pass of every returned interior point, and an independent brute-force oracle (scipy's LP
per branch of the pattern tree, no mipnet code) for the regression tests of the numerical
bugs (near-duplicate neurons, weights of 1e-6, boxes of +-1e12). Ctrl-C is tested on real
subprocesses (SIGINT) through the Python API and the CLI.
"""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mipnet import Box, Domain, LinfBall, Network, Polytope
from mipnet.core.errors import InvalidDomainError, InvalidNetworkError
from mipnet.analyses.regions import (
    count_regions,
    network_specific_bound,
    parity_lower_bound,
    sample_regions,
)


def _ball(n):
    return LinfBall(np.full(n, 0.3), 0.5, -0.5 * np.ones(n), np.ones(n))


def _poly(n, seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(3, n))
    c = np.abs(rng.normal(size=3)) * 0.5 + 0.1
    return Polytope(A, c, -np.ones(n), np.ones(n))


def _domain(kind, n, seed=0):
    if kind == "box":
        return Box(-1.0, 1.0, dim=n)
    if kind == "ball":
        return _ball(n)
    return _poly(n, seed)


def _pattern_set(res):
    return {r.pattern.tobytes() for r in res.region_list}


# ----------------------------------------------------------------------------- fast == MILP
@pytest.mark.parametrize(
    "widths, seed, kind, expected",
    [
        ([2, 5, 3], 0, "box", 14),
        ([2, 5, 3], 0, "poly", 11),
        ([2, 6, 4, 1], 3, "ball", 12),
        ([1, 6, 5, 1], 7, "box", 6),
        ([4, 6, 2], 2, "ball", 18),
        ([3, 4, 3, 3, 1], 5, "ball", 15),
    ],
)
def test_vertex_lp_and_milp_agree(widths, seed, kind, expected):
    net = Network.random(widths, seed=seed)
    dom = _domain(kind, widths[0], seed)
    res = {m: count_regions(net, dom, method=m, return_regions=True) for m in ("vertex", "lp", "milp")}
    for m, r in res.items():
        assert r.exact and r.status == "complete", m
        assert r.regions == expected, (m, r.regions)
        assert r.verified == r.regions and r.unverified == 0
    # the same patterns, not only the same number
    sets = [_pattern_set(r) for r in res.values()]
    assert sets[0] == sets[1] == sets[2]
    # the MILP's closure walk certifies the regions next to each one found and cuts them at once:
    # at least one MILP that finds a region and the final infeasible one, at most one per region
    assert res["vertex"].lp_solves == 0 and 2 <= res["milp"].milp_solves <= expected + 1


@pytest.mark.parametrize("widths, seed, kind", [([3, 8, 6, 2], 1, "box"), ([4, 6, 6, 2], 0, "poly"),
                                                ([5, 6, 4, 1], 2, "box"), ([2, 8, 8, 8, 1], 3, "ball")])
def test_vertex_and_lp_agree_on_larger_nets(widths, seed, kind):
    net = Network.random(widths, seed=seed)
    dom = _domain(kind, widths[0], seed)
    a = count_regions(net, dom, method="vertex", return_regions=True)
    b = count_regions(net, dom, method="lp", return_regions=True)
    assert a.exact and b.exact and a.regions == b.regions > 20
    assert _pattern_set(a) == _pattern_set(b)
    # sampling never sees a pattern that was not counted
    s = sample_regions(net, dom, 20_000, seed=1, return_patterns=True)
    assert s.regions <= a.regions
    N = net.num_hidden_neurons
    assert {p.tobytes() for p in s.patterns[:, :N]} <= _pattern_set(a)


def test_fast_uses_lp_in_high_dimension_and_agrees_with_milp():
    net = Network.random([9, 4, 3, 1], seed=0)
    dom = Box(-1.0, 1.0, dim=9)
    fast = count_regions(net, dom)
    assert fast.algorithm == "lp" and fast.method == "fast"
    milp = count_regions(net, dom, method="milp")
    vert = count_regions(net, dom, method="vertex")
    assert fast.regions == milp.regions == vert.regions > 5


# ----------------------------------------------------------------------------- identities
@pytest.mark.parametrize("d, k", [(2, 7), (3, 8), (4, 9)])
def test_zaslavsky_one_layer_general_position(d, k):
    rng = np.random.default_rng(d * 10 + k)
    W = rng.normal(size=(k, d))
    P = rng.uniform(-0.05, 0.05, size=(k, d))  # every hyperplane passes near the centre
    b = -np.sum(W * P, axis=1)
    net = Network([W, np.ones((1, k))], [b, np.zeros(1)])
    dom = Box(-100.0, 100.0, dim=d)  # holds every intersection point
    expected = sum(math.comb(k, i) for i in range(d + 1))
    assert count_regions(net, dom, method="vertex").regions == expected
    assert count_regions(net, dom, method="lp").regions == expected


@pytest.mark.parametrize("d, k", [(2, 6), (3, 6), (4, 7)])
def test_central_arrangement_degenerate_vertex(d, k):
    # k hyperplanes through the origin: 2 sum_{i<d} C(k-1, i) regions, one very degenerate vertex
    rng = np.random.default_rng(k)
    net = Network([rng.normal(size=(k, d)), np.ones((1, k))], [np.zeros(k), np.zeros(1)])
    expected = 2 * sum(math.comb(k - 1, i) for i in range(d))
    assert count_regions(net, Box(-1, 1, dim=d), method="vertex").regions == expected
    assert count_regions(net, Box(-1, 1, dim=d), method="lp").regions == expected


def test_duplicate_and_parallel_neurons():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(3, 2))
    b = rng.normal(size=3) * 0.3
    W = np.vstack([W, W[:1], 2 * W[1:2]])  # coincident hyperplanes
    b = np.r_[b, b[0], 2 * b[1]]
    net = Network([W, np.ones((1, 5))], [b, np.zeros(1)])
    dom = Box(-1, 1, dim=2)
    v = count_regions(net, dom, method="vertex").regions
    assert v == count_regions(net, dom, method="lp").regions == count_regions(net, dom, method="milp").regions
    assert v == sample_regions(net, dom, 50_000, seed=0).regions


def test_identically_zero_neuron_counted_as_off():
    # layer-2 neuron 2 is sum(relu(x)) >= 0: identically 0 on the negative orthant (off there).
    net = Network([np.eye(3), np.ones((3, 3)), np.ones((1, 3))],
                  [np.zeros(3), np.array([-1.0, 0.0, -0.5]), np.zeros(1)])
    dom = Box(-1, 1, dim=3)
    v = count_regions(net, dom, method="vertex", return_regions=True)
    assert v.regions == count_regions(net, dom, method="lp").regions == 19
    assert v.unverified == 0
    assert sample_regions(net, dom, 50_000, seed=0).regions == 19
    # the MILP's interior margin is 0 on that region: the MILP misses it, its closure check
    # (walking across the found regions' facets) finds it, and the count is not claimed exact
    milp = count_regions(net, dom, method="milp", return_regions=True)
    assert milp.regions == 19 and not milp.exact and milp.status == "incomplete"
    assert _pattern_set(milp) == _pattern_set(v)


def test_rounding_noise_neuron_does_not_fake_patterns():
    # neurons 3 and 4 of layer 1 are equal up to the bias, so layer-2 neuron 2 (-h2 - h3 + h4 - 1)
    # is identically 0 where both are on; the float forward pass reads +-2e-16 there.
    W1 = np.array([[-1, -1, 1], [-1, -1, 0], [1, -1, 1], [1, -1, 1], [-1, 0, 0]], float)
    W2 = np.array([[-1, 0, 1, 1, -1], [0, -1, -1, 1, 0], [1, -1, -1, -1, -1]], float)
    net = Network([W1, W2, np.array([[-1.0, 0, 0]])],
                  [np.array([0.5, -1, 0, 1, 1]), np.array([-0.5, -1, -0.5]), np.array([1.0])])
    dom = Box(-1, 1, dim=3)
    v = count_regions(net, dom, method="vertex", return_regions=True)
    lp = count_regions(net, dom, method="lp", return_regions=True)
    assert v.regions == lp.regions == 13 and v.unverified == lp.unverified == 0
    assert _pattern_set(v) == _pattern_set(lp)
    s = sample_regions(net, dom, 20_000, seed=50, return_patterns=True)
    assert {p.tobytes() for p in s.patterns} <= _pattern_set(v)


def test_integer_weight_nets_vertex_equals_lp():
    # small integer weights: axis-parallel, coincident and vertex-touching hyperplanes
    rng = np.random.default_rng(7)
    for _ in range(12):
        n0 = int(rng.integers(2, 4))
        widths = [n0] + [int(rng.integers(2, 6)) for _ in range(int(rng.integers(1, 3)))] + [1]
        Ws = [rng.integers(-1, 2, size=(widths[i + 1], widths[i])).astype(float) for i in range(len(widths) - 1)]
        bs = [rng.integers(-2, 3, size=widths[i + 1]) / 2.0 for i in range(len(widths) - 1)]
        net = Network(Ws, bs)
        dom = Box(-1, 1, dim=n0)
        v = count_regions(net, dom, method="vertex", return_regions=True)
        lp = count_regions(net, dom, method="lp", return_regions=True)
        assert _pattern_set(v) == _pattern_set(lp), widths
        assert v.unverified == lp.unverified == 0
        s = sample_regions(net, dom, 5000, seed=1, return_patterns=True)
        assert {p.tobytes() for p in s.patterns} <= _pattern_set(v)


def test_digits_model_in_a_small_ball(shared_models):
    import json as _json

    from mipnet.io import load_network

    net = load_network(shared_models / "pruned8x8" / "mnist8x8_10p_retrain.npz")
    centres = _json.loads((shared_models / "pruned8x8" / "cluster_centres.json").read_text())
    x0 = np.array(centres["clusters"][0]["centre"], dtype=float)
    dom = LinfBall(x0, 0.2, 0.0, 16.0)
    fast = count_regions(net, dom, return_regions=True)
    assert fast.algorithm == "lp" and fast.exact
    milp = count_regions(net, dom, method="milp", return_regions=True)
    assert fast.regions == milp.regions == 12
    assert _pattern_set(fast) == _pattern_set(milp)


# ----------------------------------------------------------------------------- 2-D: grids and slices
@pytest.mark.parametrize("widths, seed", [([2, 8, 6, 1], 0), ([2, 10, 10, 3], 4), ([2, 6, 6, 6, 2], 9)])
def test_2d_grid_and_exact_slice(widths, seed):
    from mipnet.analyses.slices import plane_along_axes

    net = Network.random(widths, seed=seed)
    dom = Box(-1.0, 1.0, dim=2)
    res = count_regions(net, dom, return_regions=True)
    counted = _pattern_set(res)
    g = np.linspace(-1, 1, 301)
    X = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    seen = {p.tobytes() for p in np.unique(net.activation_pattern(X), axis=0)}
    assert seen <= counted
    assert len(seen) >= 0.8 * res.regions
    # third route: the exact geometric 2-D construction of mipnet.slices
    plane = plane_along_axes(2, 0, 1, lo=-1.0, hi=1.0)
    part = plane.regions(net)
    assert part.count_regions() == res.regions
    assert {p.tobytes() for p in part.patterns} == counted


def test_fixed_input_equals_slice_count():
    from mipnet.analyses.slices import plane_regions

    net = Network.random([3, 7, 6, 1], seed=4)
    dom = Domain(np.array([-1.0, 0.2, -1.0]), np.array([1.0, 0.2, 1.0]))
    res = count_regions(net, dom)
    assert res.free_inputs == 2
    part = plane_regions(net, [0.0, 0.2, 0.0], [1.0, 0, 0], [0, 0, 1.0], bounds=((-1, 1), (-1, 1)))
    assert res.regions == part.count_regions()
    assert res.regions == count_regions(net, dom, method="lp").regions


# ----------------------------------------------------------------------------- witnesses and maps
def test_region_witnesses_and_affine_maps():
    net = Network.random([3, 6, 5, 2], seed=2)
    dom = _poly(3, 2)
    for method in ("vertex", "lp"):
        res = count_regions(net, dom, method=method, return_regions=True)
        assert len(res.region_list) == res.regions
        P = res.patterns()
        assert len({p.tobytes() for p in P}) == res.regions
        X = np.stack([r.interior_point for r in res.region_list])
        assert np.all(dom.contains(X))
        assert np.array_equal(net.activation_pattern(X), P)
        for r in res.region_list[:50]:
            A, c = net.affine_map_of_pattern(r.pattern)
            assert np.allclose(r.A, A) and np.allclose(r.c, c)
            assert np.allclose(r.A @ r.interior_point + r.c, net.forward(r.interior_point), atol=1e-10)


def test_merge_linear_regions():
    from mipnet.analyses.slices import plane_along_axes

    rng = np.random.default_rng(3)
    W1 = rng.normal(size=(4, 2))
    b1 = rng.normal(size=4) * 0.4
    # the output ignores neuron 3: it splits activation regions but not linear regions
    net = Network([W1, np.array([[1.0, -2.0, 0.5, 0.0]])], [b1, np.zeros(1)])
    dom = Box(-1, 1, dim=2)
    res = count_regions(net, dom, merge_linear=True)
    part = plane_along_axes(2, 0, 1).regions(net)
    assert res.regions == part.count_regions()
    assert res.linear_regions == part.count_linear_regions() < res.regions
    three = Network([W1[:3], np.array([[1.0, -2.0, 0.5]])], [b1[:3], np.zeros(1)])
    assert res.linear_regions == count_regions(three, dom).regions
    generic = count_regions(Network.random([2, 6, 5, 1], seed=1), dom, merge_linear=True)
    assert generic.linear_regions == generic.regions


@pytest.mark.parametrize("seed, regions, linear", [(0, 52, 17), (2, 57, 27)])
def test_merge_linear_two_layers_matches_slice(seed, regions, linear):
    from mipnet.analyses.slices import plane_along_axes

    net = Network.random([2, 8, 6, 1], seed=seed)
    W = [w.copy() for w in net.weights]
    W[2][:, :3] = 0.0  # three layer-2 neurons never reach the output
    W[1][3:, :2] = 0.0
    W[1][:3, 6:] = 0.0
    net = Network(W, net.biases)
    res = count_regions(net, Box(-1, 1, dim=2), merge_linear=True)
    part = plane_along_axes(2, 0, 1).regions(net)
    assert res.regions == part.count_regions() == regions
    assert res.linear_regions == part.count_linear_regions() == linear


# ----------------------------------------------------------------------------- partial results
@pytest.mark.parametrize("method", ["vertex", "lp", "milp"])
def test_budget_gives_lower_bound(method):
    net = Network.random([2, 6, 4, 1], seed=3)
    dom = Box(-1, 1, dim=2)
    full = count_regions(net, dom, method="vertex", return_regions=True)
    part = count_regions(net, dom, method=method, max_regions=5, return_regions=True)
    assert part.regions == 5 and not part.exact and part.status == "max_regions"
    assert "lower bound" in part.message and "at least" in str(part)
    assert _pattern_set(part) <= _pattern_set(full)


def test_time_limit_gives_lower_bound():
    net = Network.random([4, 16, 16, 2], seed=0)
    res = count_regions(net, Box(-1, 1, dim=4), time_limit=0.2)
    assert not res.exact and res.status == "time_limit"
    assert 0 < res.regions < 9013 and res.verified == res.regions


def test_budget_equal_to_count_is_still_exact_when_search_ends():
    net = Network.random([2, 5, 3], seed=0)
    res = count_regions(net, Box(-1, 1, dim=2), max_regions=14)
    assert res.exact and res.regions == 14


# ----------------------------------------------------------------------------- estimates
def test_sampling_is_a_lower_bound():
    net = Network.random([3, 8, 6, 2], seed=1)
    dom = Box(-1, 1, dim=3)
    exact = count_regions(net, dom, return_regions=True)
    few = sample_regions(net, dom, 200, seed=0)
    many = sample_regions(net, dom, 50_000, seed=0, return_patterns=True)
    assert few.regions <= many.regions <= exact.regions
    assert {p.tobytes() for p in many.patterns} <= _pattern_set(exact)
    assert many.samples == 50_000 and many.to_dict()["lower_bound"] is True
    json.dumps(many.to_dict())


def test_parity_bound():
    net = Network.random([2, 6, 4, 1], seed=3)
    dom = Box(-1, 1, dim=2)
    exact = count_regions(net, dom).regions  # 34
    zero = parity_lower_bound(net, dom, k=0, trials=2, alpha=1.0)
    assert zero.k == 0 and zero.lower_bound == 0.5 and zero.levels[0]["all_feasible"]
    assert zero.confidence == pytest.approx(1 - 2.0 ** -2)
    auto = parity_lower_bound(net, dom, trials=3, alpha=1.0, seed=0)
    assert 1 <= auto.certain_lower_bound <= exact
    assert auto.lower_bound <= exact and auto.k >= 1
    assert auto.confidence == pytest.approx(1 - 2.0 ** -3 / (1 - 2.0 ** -3))
    d = auto.to_dict()
    assert d["ln_lower_bound"] == pytest.approx(math.log(auto.lower_bound))
    json.dumps(d)


def test_parity_bound_stopped_before_any_level_is_consistent():
    """A time limit before the first level finished printed 'at least 2^0 = 0 activation regions'
    (lower_bound 0, log2_lower_bound 0); now the certain count, at least 1, with its own log."""
    net = Network.random([20, 60, 60, 10], seed=1)
    r = parity_lower_bound(net, Box(-1, 1, dim=20), time_limit=1e-6)
    assert r.k == -1 and r.status == "time_limit" and r.confidence == 1.0
    assert r.lower_bound >= 1 and r.lower_bound == max(r.certain_lower_bound, 1)
    assert r.log2_lower_bound == pytest.approx(math.log2(r.lower_bound))
    assert "2^" not in str(r) and "before any level finished" in r.message


def test_parity_bound_sees_regions_where_a_zero_bias_neuron_is_identically_zero():
    """Serra et al.'s interior MILP asks every unstable neuron for a margin, so a region on which a
    neuron after the first layer is identically 0 (its inputs all off, bias 0: a pruned net's) was
    invisible: relu(x) - relu(x) gave 'at least 0 regions' and x -> relu(relu(x)) found only x > 0.
    Such trials are solved again letting those neurons be off at 0; every witness is checked."""
    cancel = Network([np.array([[1.], [1.]]), np.array([[1., -1.], [1., 0.]]), np.ones((1, 2))],
                     [np.zeros(2), np.zeros(2), np.zeros(1)])
    chain = Network([np.array([[1.0]]), np.array([[1.0]]), np.array([[1.0]])], [np.zeros(1)] * 3)
    dom = Box(-1, 1, dim=1)
    for net in (cancel, chain):
        exact = count_regions(net, dom).regions
        assert exact == 2
        zero = parity_lower_bound(net, dom, k=0, trials=3, seed=0)
        assert zero.k == 0 and zero.levels[0]["all_feasible"] and 1 <= zero.certain_lower_bound <= exact
    found = set()
    for seed in range(6):  # the chain's two regions, x < 0 included, turn up under random XORs
        r = parity_lower_bound(chain, dom, k=1, trials=2, seed=seed)
        found.add(r.certain_lower_bound)
        assert r.certain_lower_bound <= 2 and r.lower_bound <= 2
    assert 2 in found


def test_network_specific_and_theory_bounds_hold():
    from mipnet.theory import all_bounds

    for widths, seed, kind in [([2, 6, 4, 1], 3, "box"), ([3, 8, 6, 2], 1, "ball"), ([3, 5, 4, 2], 1, "poly")]:
        net = Network.random(widths, seed=seed)
        dom = _domain(kind, widths[0], seed)
        exact = count_regions(net, dom).regions
        nsb = network_specific_bound(net, dom)
        assert nsb.value >= exact
        assert all(nsb.max_active_proven)
        for b in all_bounds(net):
            if b.exact_integer:
                assert b.value >= exact, b.name
        json.dumps(nsb.to_dict())
    # a layer stably inactive on the domain collapses the bound to 1 region
    net = Network([np.eye(2), -np.ones((2, 2)), np.ones((1, 2))],
                  [np.zeros(2), np.array([-0.5, -1.0]), np.zeros(1)])
    nsb = network_specific_bound(net, Box(0.1, 1.0, dim=2))
    assert nsb.stable_active == [2, 0] and nsb.stable_inactive == [0, 2]
    assert nsb.value == 1 == count_regions(net, Box(0.1, 1.0, dim=2)).regions


# ----------------------------------------------------------------------------- results and validation
def test_result_object():
    net = Network.random([2, 5, 3], seed=0)
    res = count_regions(net, Box(-1, 1, dim=2), return_regions=True, merge_linear=True)
    d = res.to_dict()
    assert d["regions"] == 14 and d["exact"] is True and d["method"] == "fast" and d["algorithm"] == "vertex"
    assert len(d["region_list"]) == 14 and d["linear_regions"] == 14
    json.dumps(d)
    assert "14 activation regions" in str(res)
    with pytest.raises(AttributeError):
        res.regions = 3


def test_no_hidden_layer_and_single_pattern():
    net = Network([np.ones((1, 3))], [np.zeros(1)])
    assert count_regions(net, Box(-1, 1, dim=3)).regions == 1
    net = Network.random([2, 3, 1], seed=0)
    res = count_regions(net, Box(5.0, 5.0001, dim=2), method="milp")
    assert res.regions == count_regions(net, Box(5.0, 5.0001, dim=2)).regions


def test_errors():
    net = Network.random([2, 4, 1], seed=0)
    dom = Box(-1, 1, dim=2)
    with pytest.raises(ValueError, match="method must be one of"):
        count_regions(net, dom, method="exact")
    with pytest.raises(ValueError, match="time_limit must be a positive"):
        count_regions(net, dom, time_limit=-1)
    with pytest.raises(ValueError, match="max_regions must be a positive integer"):
        count_regions(net, dom, max_regions=0)
    with pytest.raises(ValueError, match="tol must be in"):
        count_regions(net, dom, tol=0.5)
    with pytest.raises(InvalidDomainError, match="the domain has 3 inputs"):
        count_regions(net, Box(-1, 1, dim=3))
    with pytest.raises(InvalidNetworkError, match="net must be a mipnet.Network"):
        count_regions("net.onnx", dom)
    with pytest.raises(InvalidDomainError, match="single point"):
        count_regions(net, Box(0.0, 0.0, dim=2))
    flat = Polytope(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([0.0, 0.0]), -np.ones(2), np.ones(2))
    with pytest.raises(InvalidDomainError, match="no interior"):
        count_regions(net, flat)
    with pytest.raises(InvalidDomainError, match="no interior"):
        count_regions(net, flat, method="lp")
    with pytest.raises(ValueError, match="n \\(number of samples\\)"):
        sample_regions(net, dom, 0)
    with pytest.raises(ValueError, match="trials must be"):
        parity_lower_bound(net, dom, trials=0)
    with pytest.raises(ValueError, match="k must be a non-negative"):
        parity_lower_bound(net, dom, k=-1)


# ============================================================================ an independent oracle
def _oracle_count(net, lo, hi, thr=1e-11):
    """Regions of ``net`` on the box [lo, hi], by brute force and no mipnet code.

    Depth-first over the neurons, layer by layer; each sign of each neuron is kept iff the
    Chebyshev LP (scipy's linprog, HiGHS at tight tolerances) of the box scaled to [-1, 1]^n
    with the signs so far has radius > thr; a leaf is a region iff its Chebyshev centre's
    float64 forward pattern (values within 1e-12 of their terms' magnitude are zero) is the
    leaf's pattern. Returns (set of pattern bytes, number of leaves that failed that check).
    """
    from scipy.optimize import linprog

    Ws, bs = list(net.weights), list(net.biases)
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    m, s, n = (lo + hi) / 2, (hi - lo) / 2, lo.size
    found, unknown = set(), [0]

    def cheb(rows, rhs):
        A = [np.hstack([np.eye(n), np.ones((n, 1))]), np.hstack([-np.eye(n), np.ones((n, 1))])]
        B = [np.ones(n), np.ones(n)]
        if rows:
            R = np.array(rows)
            nr = np.linalg.norm(R, axis=1)
            A.append(np.hstack([R / nr[:, None], np.ones((len(R), 1))]))
            B.append(np.array(rhs) / nr)
        res = linprog(np.r_[np.zeros(n), -1.0], A_ub=np.vstack(A), b_ub=np.concatenate(B),
                      bounds=[(-1, 1)] * n + [(None, 2)], method="highs",
                      options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10})
        return (None, -np.inf) if res.status != 0 else (res.x[:n], -res.fun)

    def forward(x):
        h, out = x[None, :], []
        for W, b in zip(Ws[:-1], bs[:-1]):
            y = h @ W.T + b
            y = np.where(np.abs(y) <= 1e-12 * (np.abs(h) @ np.abs(W).T + np.abs(b)), 0.0, y)
            out.append(y > 0)
            h = np.maximum(y, 0)
        return np.concatenate(out, axis=1)[0]

    def layer(l, G, g, rows, rhs, pat):
        if l == len(Ws) - 1:
            u, t = cheb(rows, rhs)
            if u is not None and t > thr:
                if np.array_equal(forward(m + s * u), np.array(pat, bool)):
                    found.add(np.array(pat, bool).tobytes())
                else:
                    unknown[0] += 1
            return
        A, c = Ws[l] @ G, Ws[l] @ g + bs[l]

        def neuron(i, rows, rhs, on):
            if i == len(c):
                o = np.array(on, float)
                layer(l + 1, A * o[:, None], c * o, rows, rhs, pat + on)
                return
            scale = (np.abs(Ws[l][i]) @ np.abs(G)).sum() + 1e-300
            if np.linalg.norm(A[i]) <= 1e-13 * scale:  # constant on this branch
                cs = np.abs(Ws[l][i]) @ np.abs(g) + abs(bs[l][i])
                neuron(i + 1, rows, rhs, on + [bool(c[i] > 1e-13 * cs)])
                return
            for side in (True, False):
                sg = 1.0 if side else -1.0
                r2, h2 = rows + [-sg * A[i]], rhs + [sg * c[i]]
                u, t = cheb(r2, h2)
                if u is not None and t > thr:
                    neuron(i + 1, r2, h2, on + [side])

        neuron(0, rows, rhs, [])

    layer(0, np.diag(s), m.copy(), [], [], [])
    return found, unknown[0]


def _near_duplicate_net(seed, n0=3, h1=6, h2=5, delta=1e-7):
    """Layer 1: neuron 1 = -neuron 0 (opposite), neuron 2 = neuron 0 with its bias + delta."""
    rng = np.random.default_rng(seed)
    W1 = rng.normal(size=(h1, n0))
    b1 = rng.normal(size=h1) * 0.3
    W1[1], b1[1] = -W1[0], -b1[0]
    W1[2], b1[2] = W1[0], b1[0] + delta
    W2, b2 = rng.normal(size=(h2, h1)), rng.normal(size=h2) * 0.3
    return Network([W1, W2, rng.normal(size=(1, h2))], [b1, b2, np.zeros(1)])


def _check_all_witnesses(net, dom, res):
    """Every returned region: distinct pattern, witness in D whose float64 pattern is the region's."""
    P = res.patterns()
    X = np.stack([r.interior_point for r in res.region_list]) if res.region_list else np.zeros((0, net.input_dim))
    assert len({p.tobytes() for p in P}) == res.regions == len(res.region_list)
    assert np.all(dom.contains(X, tol=1e-9))
    assert np.array_equal(net.activation_pattern(X), P)


# ----------------------------------------------------------------------------- bug 1: near-duplicates
def test_regression_near_duplicate_neurons_lp_counted_unverified_regions():
    # before: the LP method counted 129 regions (4 of them with witnesses failing the forward
    # pass) and said exact; the vertex method, the MILP and the oracle count 125
    net = _near_duplicate_net(3)
    dom = Box(-1, 1, dim=3)
    oracle, unknown = _oracle_count(net, -np.ones(3), np.ones(3))
    assert len(oracle) == 125 and unknown == 0
    for method in ("vertex", "lp"):
        res = count_regions(net, dom, method=method, return_regions=True)
        assert res.exact and res.regions == 125 and res.unverified == 0, (method, res.regions, res.status)
        assert _pattern_set(res) == oracle
        _check_all_witnesses(net, dom, res)


def test_regression_near_duplicate_neurons_milp_finds_the_slivers():
    # before: the MILP's absolute margin (1e-6) missed the regions between the near-duplicate
    # hyperplanes (a slab 1e-7 thick): 29 regions, "exact"; the truth is 34
    net = _near_duplicate_net(7)
    dom = Box(-1, 1, dim=3)
    oracle, unknown = _oracle_count(net, -np.ones(3), np.ones(3))
    assert len(oracle) == 34 and unknown == 0
    res = count_regions(net, dom, method="milp", return_regions=True)
    assert res.exact and res.regions == 34 and _pattern_set(res) == oracle
    _check_all_witnesses(net, dom, res)
    # with a margin above the slab's, the MILP misses them, and its closure check says so
    coarse = count_regions(net, dom, method="milp", milp_margin=1e-6, return_regions=True)
    assert not coarse.exact and coarse.status == "incomplete" and _pattern_set(coarse) == oracle


def _milp_run(net, dom, interleave, margin=1e-8):
    """count_milp with the closure walk interleaved (the default) or only after the plain loop."""
    from mipnet.analyses.regions.milp import count_milp
    from mipnet.analyses.regions.problem import prepare
    from mipnet.analyses.regions.sink import PatternLP, Sink

    prob = prepare(net, dom)
    sink = Sink(prob, keep=False, max_regions=None, progress=False, pattern_lp=PatternLP(prob))
    stats = {}
    st, _ = count_milp(prob, sink, deadline=float("inf"), margin=margin, bounds=None, stats=stats,
                       interleave=interleave)
    sink.close()
    return st, {p.tobytes() for p in sink.pattern_array()}, stats


@pytest.mark.parametrize("case", ["random", "zero", "slivers_coarse"])
def test_milp_interleaved_walk_matches_the_plain_loop(case):
    # the interleaved walk must give the plain Serra loop's answer (count, patterns, status):
    # the plain loop finds every region with margin >= milp_margin by itself (one MILP each)
    margin = 1e-8
    if case == "random":
        net, dom = Network.random([2, 5, 3], seed=0), Box(-1, 1, dim=2)
    elif case == "zero":
        net = Network([np.eye(3), np.ones((3, 3)), np.ones((1, 3))],
                      [np.zeros(3), np.array([-1.0, 0.0, -0.5]), np.zeros(1)])
        dom = Box(-1, 1, dim=3)
    else:
        net, dom = _near_duplicate_net(1, n0=2, h1=4, h2=3), Box(-1, 1, dim=2)
        margin = 1e-6  # above the slivers' margin: the MILP misses them, the walk finds them
    st0, P0, s0 = _milp_run(net, dom, False, margin)
    st1, P1, s1 = _milp_run(net, dom, True, margin)
    assert (st0, P0) == (st1, P1)
    assert s0["milp_solves"] >= len(P0) - s0["closure_added"] + 1  # one MILP per visible region + 1
    assert s1["milp_solves"] < s0["milp_solves"] and s1["closure_added"] == s0["closure_added"]
    assert st0 == ("complete" if case == "random" else "incomplete")


def test_regression_near_duplicate_neurons_fast_above_seven_inputs():
    # 8 inputs: "fast" runs the LP method; before: 105 regions, one unverified, "exact"
    net = _near_duplicate_net(1, n0=8, h1=6, h2=4)
    dom = Box(-1, 1, dim=8)
    fast = count_regions(net, dom, return_regions=True)
    assert fast.algorithm == "lp" and fast.exact and fast.regions == 104
    vert = count_regions(net, dom, method="vertex", return_regions=True)
    oracle, unknown = _oracle_count(net, -np.ones(8), np.ones(8))
    assert len(oracle) == 104 and unknown == 0
    assert _pattern_set(fast) == _pattern_set(vert) == oracle
    _check_all_witnesses(net, dom, fast)


# ----------------------------------------------------------------------------- bug 2: weights of 1e-6
def test_regression_tiny_weights_milp_margin_is_relative():
    # before: the MILP's absolute margin of 1e-6 found 0 regions of this net and said exact
    base = Network.random([5, 6, 4, 1], seed=0)
    net = Network([w * 1e-6 for w in base.weights], [b * 1e-6 for b in base.biases])
    dom = Box(-1, 1, dim=5)
    oracle, unknown = _oracle_count(net, -np.ones(5), np.ones(5))
    assert len(oracle) == 33 and unknown == 0
    for method in ("milp", "vertex", "lp"):
        res = count_regions(net, dom, method=method, return_regions=True)
        assert res.exact and res.regions == 33, (method, res.regions)
        assert _pattern_set(res) == oracle


# ----------------------------------------------------------------------------- bug 3: a box of +-1e12
@pytest.mark.parametrize("widths, seed, expected", [([2, 8, 6, 1], 0, 105), ([3, 6, 5, 1], 1, 159)])
def test_regression_huge_box_counts_what_a_smaller_box_holds(widths, seed, expected):
    # before: 26 (resp. 94) regions on +-1e12 against 105 (159) on +-1e4, a box that already
    # holds every region: the tolerance was relative to the diameter of the domain
    net = Network.random(widths, seed=seed)
    n = widths[0]
    small = count_regions(net, Box(-1e4, 1e4, dim=n), method="vertex", return_regions=True)
    assert small.exact and small.regions == expected
    for R in (1e8, 1e12):
        for method in ("vertex", "fast"):
            res = count_regions(net, Box(-R, R, dim=n), method=method, return_regions=True)
            assert res.exact and res.regions == expected, (R, method, res.regions)
            assert _pattern_set(res) == _pattern_set(small)
            _check_all_witnesses(net, Box(-R, R, dim=n), res)
    # the LP method cannot resolve unit-size regions in a box of 1e12 (HiGHS's tolerances are
    # absolute): it must say so, and what it counts is certified
    lp = count_regions(net, Box(-1e12, 1e12, dim=n), method="lp", return_regions=True)
    assert lp.exact == (lp.regions == expected) and lp.regions <= expected
    assert _pattern_set(lp) <= _pattern_set(small)
    _check_all_witnesses(net, Box(-1e12, 1e12, dim=n), lp)


@pytest.mark.parametrize("d, k, R", [(2, 7, 1e9), (3, 8, 1e6)])
def test_zaslavsky_in_a_huge_box(d, k, R):
    # k hyperplanes in general position near the origin, a box holding every vertex: the count is
    # sum_{i <= d} C(k, i) however large the box (the vertex method's careful path)
    rng = np.random.default_rng(d * 100 + k)
    W = rng.normal(size=(k, d))
    b = -np.sum(W * rng.uniform(-1, 1, size=(k, d)), axis=1)
    net = Network([W, np.ones((1, k))], [b, np.zeros(1)])
    expected = sum(math.comb(k, i) for i in range(d + 1))
    res = count_regions(net, Box(-R, R, dim=d), method="vertex")
    assert res.exact and res.regions == expected
    milp = count_regions(net, Box(-100.0, 100.0, dim=d), method="milp")
    assert milp.exact and milp.regions == expected


def test_vertex_plain_and_careful_paths_agree(monkeypatch):
    import mipnet.analyses.regions.vertex as vertex

    cases = [(Network.random([3, 8, 6, 2], seed=1), Box(-1, 1, dim=3)),
             (_near_duplicate_net(5), Box(-1, 1, dim=3)),
             (Network([np.array([[1.0, 0], [0, 1], [1, -1], [1, 1], [1, 0]]), np.ones((1, 5))],
                      [np.array([0.0, 0, 0, 0, -1]), np.zeros(1)]), Box(-1, 1, dim=2))]
    plain = [count_regions(net, dom, method="vertex", return_regions=True) for net, dom in cases]
    monkeypatch.setattr(vertex, "CAREFUL_SPREAD", 1e300)  # every problem takes the careful path
    careful = [count_regions(net, dom, method="vertex", return_regions=True) for net, dom in cases]
    for a, b in zip(plain, careful):
        assert a.exact and b.exact and _pattern_set(a) == _pattern_set(b)


@pytest.mark.parametrize("careful", [False, True])
@pytest.mark.parametrize("budget", [1, 7, 60])
def test_stopped_search_frontier_holds_exactly_the_regions_not_found(budget, careful, monkeypatch):
    """A search stopped at ``max_regions`` returns the cells it had not reached as sign prefixes;
    counting their sub-domains (independently, from scratch) gives exactly the missing regions:
    disjoint from the found ones, and together the complete count's patterns."""
    import mipnet.analyses.regions.vertex as vertex
    from mipnet.analyses.regions.parallel import prefix_domain
    from mipnet.core.errors import InvalidDomainError

    if careful:
        monkeypatch.setattr(vertex, "CAREFUL_SPREAD", 1e300)  # every problem takes the careful path
    net, dom = Network.random([3, 8, 6, 1], seed=4), Box(-1, 1, dim=3)
    full = count_regions(net, dom, method="vertex", return_regions=True)
    part = count_regions(net, dom, method="vertex", return_regions=True, max_regions=budget)
    assert full.exact and full.frontier is None and part.regions == budget and not part.exact
    assert part.frontier and all(f.dtype == bool and 0 < f.size <= net.num_hidden_neurons for f in part.frontier)
    found = _pattern_set(part)
    rest = set()
    for f in part.frontier:
        try:
            sub = count_regions(net, prefix_domain(net, dom, f), method="vertex", return_regions=True)
        except InvalidDomainError:  # a cell thinner than the resolution: no interior
            continue
        assert sub.exact and all(np.array_equal(p[:f.size], f) for p in sub.patterns())
        assert not (_pattern_set(sub) & rest)  # the frontier's cells are disjoint
        rest |= _pattern_set(sub)
    assert not (found & rest) and found | rest == _pattern_set(full)


# ============================================================================ Ctrl-C
def test_interrupt_in_process_returns_certified_partial_result():
    import _thread
    import threading

    net = Network.random([6, 32, 32, 1], seed=0)  # runs far longer than a second
    dom = Box(-1, 1, dim=6)
    # Ctrl-C after 1.5 s: at 0.7 s, with the other xdist worker busy, the count had certified no
    # region yet (4,784 nodes in 0.99 s, once in a CI run)
    after = 1.5
    timer = threading.Timer(after, _thread.interrupt_main)
    timer.start()
    t0 = time.perf_counter()
    try:
        res = count_regions(net, dom, return_regions=True)
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < after + 2.3  # stops within 2.3 s of the Ctrl-C
    assert res.status == "interrupted" and not res.exact and res.regions > 0
    assert "lower bound" in res.message and "at least" in str(res)
    assert json.loads(json.dumps(res.to_dict()))["status"] == "interrupted"
    _check_all_witnesses(net, dom, res)


_CHILD = textwrap.dedent("""
    import json, sys
    from mipnet import Box, Network
    from mipnet.analyses.regions import count_regions
    method, widths = sys.argv[1], [int(w) for w in sys.argv[2].split(",")]
    net = Network.random(widths, seed=0)
    print("ready", file=sys.stderr, flush=True)
    res = count_regions(net, Box(-1, 1, dim=widths[0]), method=method)
    print(json.dumps(res.to_dict(include_regions=False)), flush=True)
    sys.exit(130 if res.status == "interrupted" else 0)
""")


_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: subprocesses run this working tree's mipnet, whatever is installed
_ENV = dict(os.environ, PYTHONPATH=_REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONUNBUFFERED="1")


def _sigint_after(cmd, delay, *, wait_line: bool):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_REPO, env=_ENV)
    try:
        if wait_line:
            p.stderr.readline()
        time.sleep(delay)
        assert p.poll() is None, "the count ended before the signal: use a larger network"
        t0 = time.perf_counter()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        return p.returncode, out, err, time.perf_counter() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


@pytest.mark.parametrize("method, widths", [("fast", "6,32,32,1"), ("lp", "4,16,16,2"), ("milp", "4,16,16,2")])
def test_sigint_subprocess_python_api(method, widths):
    # every count below runs for more than 10 s (vertex: ~10^5 regions; LP: ~150 s; MILP: hours)
    rc, out, err, dt = _sigint_after([sys.executable, "-c", _CHILD, method, widths], 2.0, wait_line=True)
    assert dt < 2.0, f"took {dt:.2f} s to stop after SIGINT"
    assert rc == 130, (rc, err[-500:])
    d = json.loads(out)
    # (the MILP may still be computing its bounds after 2 s: 0 regions is a valid lower bound)
    assert d["exact"] is False and d["status"] == "interrupted" and d["regions"] >= (method != "milp")


def test_sigint_subprocess_cli(tmp_path):
    """``mipnet regions count --json``: partial JSON on stdout, exit code 130 (the CLI's part)."""
    from mipnet.io import save_network

    path = tmp_path / "net.npz"
    save_network(Network.random([4, 16, 16, 2], seed=0), path)
    # ``python -m mipnet`` is the ``mipnet`` console script, run from this working tree
    cmd = [sys.executable, "-m", "mipnet", "regions", "count", str(path), "--box", "-1", "1",
           "--method", "lp", "--json"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_REPO, env=_ENV)
    try:
        time.sleep(4.0)  # imports and LP bounds first; the LP count then runs ~150 s
        assert p.poll() is None
        t0 = time.perf_counter()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        dt = time.perf_counter() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert dt < 2.0
    assert p.returncode == 130, (p.returncode, err[-500:])
    d = json.loads(out)
    assert d["exact"] is False and d["status"] == "interrupted" and d["regions"] >= 1


@pytest.mark.parametrize("method", ["vertex", "lp"])
def test_count_arrays_holds_the_regions_of_count_regions(method):
    """count_arrays (the units' count, without Region objects) returns the patterns and witnesses of
    count_regions' region_list, in its order, and every witness has its pattern in float64."""
    from mipnet.analyses.regions.engine import count_arrays

    net, dom = Network.random([3, 7, 6, 2], seed=4), Box(-1, 1, dim=3)
    full = count_regions(net, dom, method=method, return_regions=True)
    r, X, P = count_arrays(net, dom, method=method, keep=True)
    assert r.region_list is None and r.regions == full.regions == X.shape[0] == P.shape[0] > 10
    np.testing.assert_array_equal(P, full.patterns())
    np.testing.assert_array_equal(X, np.stack([g.interior_point for g in full.region_list]))
    ys = net.preactivations(X)
    np.testing.assert_array_equal(np.concatenate([y > 0 for y in ys[:-1]], axis=1), P)


# ============================================================================ MILP: badly scaled networks
def _tiny(widths, seed, s=1e-8):
    """A random network with every weight and bias times ``s``: each layer's input dependence is
    ~s times its bias, so in the normalised network the later layers' weights fall below 1e-9."""
    n0 = Network.random(widths, seed=seed)
    return Network([W * s for W in n0.weights], [b * s for b in n0.biases])


@pytest.mark.parametrize("domain", ["box1e-3", "box1e-5", "box1e-7", "linf_clipped"])
def test_milp_every_neuron_stable_on_a_tiny_domain_is_one_exact_region(domain):
    """Regression: with every neuron stable (weights 1e-8, a small domain), the MILP method raised
    SolverError ("... without unstable neurons ended with Infeasible"): HiGHS dropped the
    normalised network's sub-1e-9 weights, and the stable neurons' pre-activations could no
    longer meet their tight bounds. Now: one region, exact, as the vertex and LP methods say."""
    net = _tiny([2, 4, 4, 1], seed=3 if domain == "linf_clipped" else 1)
    c = np.array([0.3, -0.2])
    if domain == "linf_clipped":
        dom = LinfBall(c, 1.0, c + 1 - 1e-9, None)  # clipped to a box of width 1e-9
    else:
        w = float(domain[3:])
        dom = Box(c - w, c + w)
    ref = count_regions(net, dom, method="vertex", return_regions=True)
    r = count_regions(net, dom, method="milp", return_regions=True)
    assert ref.exact and ref.regions == 1
    assert r.exact and r.regions == 1 and r.status == "complete"
    assert _pattern_set(r) == _pattern_set(ref)
    x = r.region_list[0].interior_point
    assert dom.contains(x)
    np.testing.assert_array_equal(np.concatenate([y[0] > 0 for y in net.preactivations(x[None])[:-1]]),
                                  r.region_list[0].pattern)


@pytest.mark.parametrize("seed", [12, 14])
def test_milp_tiny_weights_with_an_unstable_neuron(seed):
    """The same dropped weights with an unstable neuron: the first MILP was infeasible and the count
    0 (not exact). HiGHS now keeps entries down to 1e-12: the exact count of the vertex method."""
    net = _tiny([2, 5, 4, 1], seed=seed)
    W1, b1 = net.layers[0]
    a = W1[0]
    c = np.array([0.3, -0.2])
    c = c - (a @ c + b1[0]) / (a @ a) * a  # on the hyperplane of neuron 0: it is unstable on the box
    dom = Box(c - 1e-2, c + 1e-2)
    ref = count_regions(net, dom, method="vertex", return_regions=True)
    r = count_regions(net, dom, method="milp", return_regions=True)
    assert ref.exact and ref.regions == 2
    assert r.exact and r.regions == ref.regions and _pattern_set(r) == _pattern_set(ref)


def test_milp_false_infeasibility_never_gives_a_zero_count(monkeypatch):
    """With HiGHS's default small_matrix_value (1e-9) the MILP of this network claims "infeasible"
    at once. The count must not be 0 for a domain with interior: the region at the domain's
    centre is certified and walked from, and a count is exact only if every check holds."""
    import mipnet.analyses.regions.milp as milp

    monkeypatch.setitem(milp.MILP_OPTIONS, "small_matrix_value", 1e-9)
    net = _tiny([2, 5, 4, 1], seed=12)
    W1, b1 = net.layers[0]
    a = W1[0]
    c = np.array([0.3, -0.2])
    c = c - (a @ c + b1[0]) / (a @ a) * a
    dom = Box(c - 1e-2, c + 1e-2)
    r = count_regions(net, dom, method="milp", return_regions=True)
    ref = count_regions(net, dom, method="vertex", return_regions=True)
    assert r.regions >= 1 and _pattern_set(r) <= _pattern_set(ref)
    if r.exact:
        assert r.regions == ref.regions


# ============================================================================ L1 ball domains
def _l1_cases():
    from mipnet import L1Ball

    c = np.array([0.1, -0.2, 0.3])
    return {
        "repro": (Network.random([2, 3, 1], seed=0), L1Ball(np.zeros(2), 1.0)),
        "plain": (Network.random([3, 6, 5, 1], seed=2), L1Ball(c, 1.0)),
        "clipped": (Network.random([3, 6, 5, 1], seed=2), L1Ball(c, 1.0, -0.5, 0.6)),
        "fixed_input": (Network.random([3, 6, 5, 1], seed=2), L1Ball(c, 1.0, [-2, 0.1, -2], [2, 0.1, 2])),
        "centre_outside_clip": (Network.random([2, 7, 1], seed=5), L1Ball(np.array([1.2, 0.0]), 1.0, -1, 1)),
    }


def _patterns_of(net, X):
    return np.concatenate([y > 0 for y in net.preactivations(X)[:-1]], axis=1)


@pytest.mark.parametrize("case", list(_l1_cases()))
def test_l1_ball_is_counted_exactly_on_the_ball(case):
    """Regression: an L1 ball was counted on its enclosing box; the regions outside the ball failed
    the witness check (never exact; the vertex method could report 0). Its facets are now rows of
    the polytope every method counts on: the same exact count and patterns from every method,
    every witness inside the ball, and every pattern a dense sample of the ball meets is counted."""
    net, dom = _l1_cases()[case]
    res = {m: count_regions(net, dom, method=m, return_regions=True) for m in ("vertex", "lp", "milp", "fast")}
    ref = res["vertex"]
    for m, r in res.items():
        assert r.exact and r.status == "complete" and r.unverified == 0, (m, r)
        assert r.regions == ref.regions >= 1 and _pattern_set(r) == _pattern_set(ref), m
        X = np.stack([g.interior_point for g in r.region_list])
        assert dom.contains(X).all(), m
        np.testing.assert_array_equal(_patterns_of(net, X), r.patterns())
    X = dom.sample(200_000, seed=1)
    Y = np.concatenate(net.preactivations(X)[:-1], axis=1)
    clear = np.all(np.abs(Y) > 1e-9, axis=1)
    sampled = {p.tobytes() for p in (Y[clear] > 0)}
    assert sampled <= _pattern_set(ref)
    if case == "repro":  # the box's 4 regions, but the old witnesses of one lay outside the ball
        assert ref.regions == len(sampled) == 4
    else:  # the ball holds fewer regions than its enclosing box: the L1 constraint matters
        assert ref.regions < count_regions(net, Box(dom.lower, dom.upper)).regions


def test_l1_ball_parallel_count_matches_the_serial_one():
    """The sign-prefix units of a parallel count keep the L1 ball (their sub-domains lie in it)."""
    from mipnet import L1Ball
    from mipnet.parallel import InProcess

    net, dom = Network.random([2, 8, 6, 1], seed=3), L1Ball(np.array([0.2, -0.1]), 1.2, -1, 1)
    serial = count_regions(net, dom, method="vertex", return_regions=True)
    assert serial.exact
    for m in ("vertex", "lp", "milp"):
        par = count_regions(net, dom, method=m, executor=InProcess(), return_regions=True)
        assert par.exact and par.regions == serial.regions and _pattern_set(par) == _pattern_set(serial), m
        assert dom.contains(np.stack([g.interior_point for g in par.region_list])).all()


def test_l1_ball_with_too_many_inputs_is_a_clear_error():
    from mipnet import L1Ball
    from mipnet.core.errors import InvalidArgumentError

    net = Network.random([13, 4, 1], seed=0)
    for m in ("fast", "lp", "milp", "vertex"):
        with pytest.raises(InvalidArgumentError, match=r"L1Ball domain is supported for at most 12 free inputs"):
            count_regions(net, L1Ball(np.zeros(13), 1.0), method=m)
    # the vertex method's cut of the box by 2^n facets: at most 7 free inputs (it names the others)
    with pytest.raises(InvalidArgumentError, match=r"method='vertex' takes an L1Ball domain with at most 7 free "
                                                   r"inputs.*use method='lp', 'milp' or 'fast'"):
        count_regions(Network.random([8, 4, 1], seed=0), L1Ball(np.zeros(8), 1.0), method="vertex")
    r = count_regions(Network.random([8, 4, 1], seed=0), L1Ball(np.zeros(8), 1.0), method="fast")
    assert r.exact and r.algorithm == "lp"
    # fixed inputs do not count: 12 free ones are counted exactly
    lo, hi = -np.ones(13), np.ones(13)
    lo[0] = hi[0] = 0.0
    small = Network.random([13, 3, 1], seed=0)
    r = count_regions(small, L1Ball(np.zeros(13), 1.0, lo, hi), method="lp", return_regions=True)
    assert r.exact and r.regions >= 1
