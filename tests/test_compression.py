"""Lossless compression: the smaller network equals the original on the domain (samples and exact MILP)."""

import json

import numpy as np
import pytest

from mipnet import Box, Network
from mipnet.analyses.compression import compress, compress_with_states
from mipnet.analyses.equivalence import verify_equivalence
from mipnet.core.errors import InvalidNetworkError
from mipnet.analyses.stability import find_stable_neurons


def _assert_equal_on_domain(net, small, dom, *, n=10_000, atol=1e-9):
    X = dom.sample(n, seed=7, include_vertices=True)
    scale = 1.0 + np.abs(net.forward(X)).max()
    assert np.abs(small.forward(X) - net.forward(X)).max() <= atol * scale
    eq = verify_equivalence(net, small, dom, mode="exact")
    assert eq.verdict == "equivalent", eq


def _constructed():
    """4-10-8-2 with 3 dead and 3 always-on first-layer neurons, one of them a combination of two others."""
    net = Network.random([4, 10, 8, 2], seed=0)
    W = [w.copy() for w in net.weights]
    b = [x.copy() for x in net.biases]
    b[0][:3] -= 20.0  # stably inactive on [-1, 1]^4
    b[0][3:5] += 20.0  # stably active
    W[0][5] = 2.0 * W[0][3] - 0.5 * W[0][4]  # dependent on neurons 3 and 4 ...
    b[0][5] = 2.0 * b[0][3] - 0.5 * b[0][4] + 1.0  # ... and active too (y5 = 2 y3 - y4/2 + 1 > 0)
    b[1][:2] -= 30.0  # dead in layer 2
    return Network(W, b)


def test_compress_constructed_net():
    net = _constructed()
    dom = Box(-1.0, 1.0, dim=4)
    res = compress(net, dom)
    rep = res.report
    first = rep.layers[0]
    assert first.removed_inactive == 3 and first.folded_active == 1
    assert rep.layers[1].removed_inactive >= 2
    assert res.network.widths[1] == 10 - 3 - 1 and rep.neurons_removed >= 6
    assert rep.parameters_after < rep.parameters_before
    assert not rep.constant
    _assert_equal_on_domain(net, res.network, dom)


@pytest.mark.parametrize("method", ["per_neuron", "one_milp"])
def test_compress_random_nets(method):
    net = Network.random([3, 7, 5, 2], seed=3, bias_scale=1.5)
    dom = Box(-1.0, 1.0, dim=3)
    res = compress(net, dom, method=method)
    assert res.stability.complete and res.stability.method == method
    assert res.report.neurons_removed == sum(
        int(np.sum(s == -1)) for s in res.stability.states
    ) + sum(r.folded_active for r in res.report.layers) + sum(
        r.width - r.removed_inactive - r.folded_active for r in res.report.layers if r.merged
    )
    _assert_equal_on_domain(net, res.network, dom)


def test_constant_network_detected():
    net = Network.random([3, 6, 5, 2], seed=2)
    W = [w.copy() for w in net.weights]
    b = [x.copy() for x in net.biases]
    b[1][:] = -100.0  # the whole second hidden layer is dead: f is constant
    net = Network(W, b)
    dom = Box(-1.0, 1.0, dim=3)
    res = compress(net, dom)
    assert res.report.constant
    assert res.network.num_hidden_layers == 0 and res.network.widths == (3, 2)
    X = dom.sample(1000, seed=0)
    expected = net.forward(X)
    assert np.ptp(expected, axis=0).max() == 0.0  # independent: the original is constant
    np.testing.assert_allclose(res.network.forward(X), expected, atol=1e-12)
    np.testing.assert_allclose(res.report.constant_value, expected[0], atol=1e-12)
    assert "constant" in str(res.report)


def test_affine_layer_is_merged():
    net = Network.random([3, 5, 4, 2], seed=4)
    W = [w.copy() for w in net.weights]
    b = [x.copy() for x in net.biases]
    b[0][:] += 20.0  # every first-layer neuron always on: layer 1 is affine
    net = Network(W, b)
    dom = Box(-1.0, 1.0, dim=3)
    always = compress(net, dom, merge="always")
    assert always.report.layers[0].merged and always.network.num_hidden_layers == 1
    _assert_equal_on_domain(net, always.network, dom)
    never = compress(net, dom, merge="never", stability=always.stability)
    assert never.network.num_hidden_layers == 2
    _assert_equal_on_domain(net, never.network, dom)
    # "auto" merges only if it does not add parameters (3 inputs: W2 W1 is 4x3 vs 5x3 + 4x5)
    auto = compress(net, dom, stability=always.stability)
    assert auto.report.layers[0].merged


def test_mixed_active_inactive_layer_is_affine():
    net = Network.random([2, 4, 3, 1], seed=5)
    W = [w.copy() for w in net.weights]
    b = [x.copy() for x in net.biases]
    b[0][:2] += 20.0
    b[0][2:] -= 20.0
    net = Network(W, b)
    dom = Box(-1.0, 1.0, dim=2)
    res = compress(net, dom, merge="always")
    assert res.report.layers[0].removed_inactive == 2 and res.report.layers[0].merged
    _assert_equal_on_domain(net, res.network, dom)


def test_export_round_trip(tmp_path):
    from mipnet.io import load_network, save_network

    net = _constructed()
    dom = Box(-1.0, 1.0, dim=4)
    res = compress(net, dom)
    save_network(res.network, tmp_path / "small.onnx")
    back = load_network(tmp_path / "small.onnx")
    X = dom.sample(500, seed=3)
    np.testing.assert_allclose(back.forward(X), net.forward(X), atol=1e-9)
    from mipnet.io.torch import to_torch  # torch stays out of the analyses: convert at the edge

    seq = to_torch(res.network)
    assert sum(isinstance(m, __import__("torch").nn.Linear) for m in seq) == len(res.network.layers)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["report"]["neurons_removed"] == res.report.neurons_removed


def test_unknown_neurons_are_kept():
    net = _constructed()
    dom = Box(-1.0, 1.0, dim=4)
    stab = find_stable_neurons(net, dom, time_limit=1e-9, samples=0)
    res = compress(net, dom, stability=stab)
    assert res.network.widths[1] >= 10 - 3 - 1  # bound-proven neurons still go; unknown ones stay
    _assert_equal_on_domain(net, res.network, dom)


def test_errors():
    net = Network.random([2, 3, 1], seed=0)
    with pytest.raises(ValueError, match="merge must be one of"):
        compress_with_states(net, [np.zeros(3)], merge="sometimes")
    with pytest.raises(ValueError, match=r"one array per hidden layer with shapes \(3,\)"):
        compress_with_states(net, [np.zeros(4)])
    with pytest.raises(InvalidNetworkError, match="must be a mipnet.Network"):
        compress_with_states("net", [np.zeros(3)])
    other = find_stable_neurons(Network.random([2, 5, 1], seed=0), Box(-1, 1, dim=2))
    with pytest.raises(ValueError, match="other widths"):
        compress(net, Box(-1, 1, dim=2), stability=other)
