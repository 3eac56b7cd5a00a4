"""Activation-region counting: several independent routes to the same number.

Routes: the vertex method, the LP method, the MILP of Serra et al. 2018, Zaslavsky's
identity, dense grids, the exact 2-D slice of mipnet.slices, sampling, and a float64
forward pass of every returned interior point.
"""

import json
import math

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
    assert res["vertex"].lp_solves == 0 and res["milp"].milp_solves == expected + 1


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
    # the MILP's interior margin is 0 on that region: it misses exactly that one (documented)
    assert count_regions(net, dom, method="milp").regions == 18


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
