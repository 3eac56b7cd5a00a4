import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mipnet import Box, LinfBall, Network, Polytope
from mipnet.bounds import (
    Bounds,
    LayerBounds,
    NeuronState,
    classify_neurons,
    compute_bounds,
    interval_bounds,
    lp_bounds,
    symbolic_bounds,
)

from conftest import random_nets


def _adversarial_points(net, dom, n=10_000, seed=0):
    """Random points, box vertices, and points that push single neurons to their extremes."""
    X = dom.sample(n, seed=seed, include_vertices=True)
    # first-layer extremisers: the vertex maximising / minimising each first-layer neuron
    W = net.weights[0]
    ext = np.concatenate([np.where(W > 0, dom.upper, dom.lower), np.where(W > 0, dom.lower, dom.upper)])
    return np.concatenate([X, ext[dom.contains(ext)]])


def test_classify_neurons():
    s = classify_neurons([-2, -1, 0, 1, -1], [-1, 0, 2, 3, 1])
    assert list(s) == [-1, -1, 1, 1, 0]
    s = classify_neurons([-1e-9], [1.0], tol=1e-8)
    assert s[0] == NeuronState.ACTIVE


@pytest.mark.parametrize("widths,seed", random_nets())
@pytest.mark.parametrize("method", ["ia", "symbolic", "lp"])
def test_bounds_contain_random_and_vertex_inputs(widths, seed, method):
    net = Network.random(widths, seed=seed)
    dom = Box(-1, 1, dim=widths[0])
    b = compute_bounds(net, dom, method=method)
    assert len(b.layers) == len(net.layers)
    assert b.contains(net, _adversarial_points(net, dom), tol=0)


@pytest.mark.parametrize("widths,seed", random_nets())
def test_lp_bounds_are_at_least_as_tight_as_interval(widths, seed):
    net = Network.random(widths, seed=seed)
    dom = Box(-1, 1, dim=widths[0])
    ia, sym, lp = interval_bounds(net, dom), symbolic_bounds(net, dom), lp_bounds(net, dom)
    assert sym.tighter_or_equal(ia, tol=0)
    assert lp.tighter_or_equal(sym, tol=0)
    if len(widths) > 3:  # deeper nets: LP must strictly improve something
        assert sum(np.sum(a.upper - a.lower) for a in lp.layers) < sum(np.sum(a.upper - a.lower) for a in ia.layers)
    assert lp.num_unstable <= ia.num_unstable


def test_lp_bounds_on_polytope_and_ball():
    net = Network.random([3, 10, 8, 2], seed=7)
    poly = Polytope([[1.0, 1.0, 1.0], [-1.0, 0.0, 1.0]], [0.5, 0.2], -1, 1)
    ball = LinfBall([0.2, -0.3, 0.9], 0.3, -1, 1)
    for dom in (poly, ball):
        b = lp_bounds(net, dom)
        assert b.contains(net, dom.sample(5000, seed=1), tol=0)
        assert b.tighter_or_equal(interval_bounds(net, dom), tol=0)
    # the polytope's rows must matter: tighter than the bounds of its bounding box
    box_b = lp_bounds(net, Box(-1, 1, dim=3))
    poly_b = lp_bounds(net, poly)
    assert poly_b.tighter_or_equal(box_b, tol=1e-6)
    assert np.sum(poly_b.layers[0].upper) < np.sum(box_b.layers[0].upper)


def test_lp_bounds_are_near_tight_for_one_hidden_layer_output():
    # for a network with one hidden layer the LP bound of layer 1 on a box is exact (IA is exact)
    net = Network.random([2, 6, 1], seed=2)
    dom = Box(-1, 1, dim=2)
    b = lp_bounds(net, dom)
    Y = net.preactivations(dom.sample(20000, seed=0, include_vertices=True))[0]
    np.testing.assert_allclose(b.layers[0].upper, Y.max(0), atol=1e-6)
    np.testing.assert_allclose(b.layers[0].lower, Y.min(0), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    depth=st.integers(1, 3),
    width=st.integers(1, 8),
    n0=st.integers(1, 4),
    radius=st.floats(0.0, 2.0),
)
def test_property_bounds_are_sound(seed, depth, width, n0, radius):
    net = Network.random([n0] + [width] * depth + [2], seed=seed)
    center = np.random.default_rng(seed).uniform(-1, 1, n0)
    dom = LinfBall(center, radius)
    X = _adversarial_points(net, dom, n=500, seed=seed)
    for b in (symbolic_bounds(net, dom), lp_bounds(net, dom)):
        assert b.contains(net, X, tol=0)


def test_states_and_counts_and_dict():
    W1 = np.array([[1.0], [1.0], [1.0]])
    b1 = np.array([-5.0, 5.0, 0.0])  # on [-1, 1]: inactive, active, unstable
    net = Network([W1, np.ones((1, 3))], [b1, np.zeros(1)])
    b = interval_bounds(net, Box(-1, 1, dim=1))
    assert list(b.states()[0]) == [-1, 1, 0]
    assert b.counts() == [{"inactive": 1, "active": 1, "unstable": 1}]
    d = b.to_dict()
    assert d["layers"][0]["unstable"] == 1 and len(d["layers"][0]["upper"]) == 3
    assert "unstable" in str(b)


def test_layer_bounds_validation():
    with pytest.raises(ValueError, match="lower > upper at neuron 0"):
        LayerBounds([1.0], [0.0])
    with pytest.raises(ValueError, match="unknown bounds method"):
        compute_bounds(Network.random([1, 1]), Box(0, 1, dim=1), method="crown")
