"""The one numerical policy (mipnet.core.numerics): snapped forward pass, zero maps, the witness check.

Independent routes: Network.affine_map_of_pattern (maps), exact arithmetic on small integer
nets (which pre-activations are exactly zero), and scaling invariance (a ReLU net scaled by a
power of two per layer has the same patterns and witnesses).
"""

from __future__ import annotations

import numpy as np
import pytest

from mipnet import Box, Network, Polytope
from mipnet.core.numerics import (
    DEFAULT,
    Tolerances,
    check_witnesses,
    in_domain,
    pattern_maps,
    snapped_pattern,
    snapped_preactivations,
    zero_map_mask,
)


def _cancel_net():
    # layer-1 neurons 0 and 1 equal up to the bias (h1 = h0 + 1 where both are on), so layer-2
    # neuron 0 (h1 - h0 - 1) is identically zero on the region where both are on; layer-1
    # neuron 2 has all-zero weights and bias: identically zero everywhere
    W1 = np.array([[0.3, 0.7], [0.3, 0.7], [0.0, 0.0]])
    b1 = np.array([0.1, 1.1, 0.0])
    W2 = np.array([[-1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    b2 = np.array([-1.0, -0.2])
    return Network([W1, W2, np.ones((1, 2))], [b1, b2, np.zeros(1)])


def test_snapped_forward_pass_reads_identically_zero_neurons_as_zero():
    net = _cancel_net()
    X = np.array([[0.5, 0.5], [0.9, 0.2], [0.7, 0.8]])  # all with neurons 0 and 1 on
    raw = net.preactivations(X)[1][:, 0]
    assert np.all(np.abs(raw) < 1e-12) and np.any(raw != 0)  # rounding noise, not zero
    Y = snapped_preactivations(net, X)
    assert np.all(Y[1][:, 0] == 0.0) and np.all(Y[0][:, 2] == 0.0)
    _, P = snapped_pattern(net, X)
    assert not P[:, [2, 3]].any()  # zero is off


def test_pattern_maps_match_the_network_and_find_zero_maps():
    rng = np.random.default_rng(0)
    net = Network.random([3, 6, 5, 2], seed=4)
    P = rng.random((25, net.num_hidden_neurons)) < 0.5
    G, g, zero = pattern_maps(net, P)
    off = net.hidden_offsets
    for p in range(len(P)):
        # independent route: the composed map of the layers before, from affine_map_of_pattern
        # of the truncated network (its output layer is the hidden layer l)
        for l in range(net.num_hidden_layers):
            sub = Network(list(net.weights[:l + 1]), list(net.biases[:l + 1]))
            A, c = sub.affine_map_of_pattern(P[p, :off[l]])
            assert np.allclose(G[p, off[l]:off[l + 1]], A, atol=1e-12)
            assert np.allclose(g[p, off[l]:off[l + 1]], c, atol=1e-12)
    # a generic net has no identically-zero neuron unless every input of a layer is off
    off_all = ~P[:, :6].any(axis=1)
    assert np.array_equal(zero[:, 6:].all(axis=1), off_all)
    assert not zero[:, :6].any()
    z = zero_map_mask(_cancel_net(), np.array([[1, 1, 0, 0, 1], [1, 0, 0, 1, 1]], bool))
    assert z.tolist() == [[False, False, True, True, False], [False, False, True, False, False]]


def test_check_witnesses_interior_pattern_and_domain():
    net = Network([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    dom = Box(-1, 1, dim=2)
    X = np.array([[0.5, 0.5], [0.5, -0.5], [0.0, 0.5], [1.5, 0.5], [0.5, 0.5]])
    P = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [0, 0]], bool)
    ok = check_witnesses(net, dom, X, P)
    # a point on a hyperplane is no interior witness; outside the box fails; wrong pattern fails
    assert ok.tolist() == [True, True, False, False, False]
    assert check_witnesses(net, dom, X, P, strict=False).tolist() == [True, True, True, False, False]
    assert check_witnesses(net, None, X, P).tolist() == [True, True, False, True, False]
    assert check_witnesses(net, dom, X).tolist() == [True, True, True, False, True]


def test_strict_check_exempts_identically_zero_neurons_only():
    net = _cancel_net()
    dom = Box(-1, 2, dim=2)
    X = np.array([[0.5, 0.5], [-1.0, -0.9], [0.2 - 0.1 / 0.3 + 1e-3, -0.0]])
    _, P = snapped_pattern(net, X)
    ok = check_witnesses(net, dom, X, P)
    # points 0 and 1: only identically-zero neurons are 0 there -> valid interior witnesses
    assert ok[:2].all()
    # a point on neuron 0's hyperplane (0.3 x + 0.7 y + 0.1 = 0) is not
    x = np.array([[-0.1 / 0.3, 0.0]])
    _, Pb = snapped_pattern(net, x)
    assert snapped_preactivations(net, x)[0][0, 0] == 0.0
    assert not check_witnesses(net, dom, x, Pb)[0]
    # an all-zero neuron never blocks a witness
    z = Network([np.zeros((1, 2)), np.ones((1, 1))], [np.zeros(1), np.zeros(1)])
    assert check_witnesses(z, dom, np.array([[0.3, 0.4]]), np.array([[False]]))[0]


@pytest.mark.parametrize("k", [-20, 0, 20, 40])
def test_the_check_is_relative_scale_invariant(k):
    # scaling every weight and bias of a layer by 2^k, and the inputs by 2^k, changes no pattern
    # and no decision of the check (tolerances relative to the magnitudes involved)
    rng = np.random.default_rng(1)
    net = Network.random([3, 5, 4, 1], seed=2)
    s = 2.0 ** k
    scaled = Network([net.weights[0], net.weights[1], net.weights[2]],
                     [net.biases[0] * s, net.biases[1] * s, net.biases[2] * s])
    X = rng.uniform(-1, 1, size=(200, 3))
    X[:5] = [[-net.biases[0][0] / net.weights[0][0, 0], 0, 0]] * 5  # on neuron 0's plane (x1 = x2 = 0)
    X[:5, 1:] = 0.0
    _, P = snapped_pattern(net, X)
    a = check_witnesses(net, Box(-2, 2, dim=3), X, P)
    b = check_witnesses(scaled, Box(-2 * s, 2 * s, dim=3), X * s, P)
    assert np.array_equal(a, b) and not a[:5].any() and a[5:].mean() > 0.9


def test_in_domain_relative_slack_and_rows():
    dom = Polytope(np.array([[1.0, 1.0]]), np.array([1.0]), -np.ones(2) * 1e12, np.ones(2) * 1e12)
    X = np.array([[0.5, 0.5], [0.5, 0.5 + 1e-12], [0.5, 0.6], [1e12 * (1 + 1e-12), 0.0], [1e12 * 1.001, 0.0]])
    assert in_domain(dom, X).tolist() == [True, True, False, False, False]
    assert in_domain(Box(-1e12, 1e12, dim=2), X).tolist() == [True, True, True, True, False]
    with pytest.raises(ValueError, match="Tolerances.noise"):
        Tolerances(noise=0.5)
    assert DEFAULT.noise == 1e-12
