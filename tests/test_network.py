import numpy as np
import pytest

from mipnet import InvalidNetworkError, MipnetError, Network


def test_forward_matches_manual_composition():
    net = Network.random([4, 7, 5, 3], seed=0)
    X = np.random.default_rng(1).normal(size=(20, 4))
    h = X
    for W, b in net.layers[:-1]:
        h = np.maximum(h @ W.T + b, 0)
    y = h @ net.weights[-1].T + net.biases[-1]
    np.testing.assert_allclose(net.forward(X), y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(net.forward(X[0]), y[0], rtol=0, atol=1e-12)
    assert net.widths == (4, 7, 5, 3)
    assert net.hidden_widths == (7, 5)
    assert net.num_hidden_neurons == 12
    assert net.num_parameters == 4 * 7 + 7 + 7 * 5 + 5 + 5 * 3 + 3


def test_weights_are_float64_and_immutable():
    W = np.ones((2, 2), dtype=np.float32)
    net = Network([W, np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    assert net.weights[0].dtype == np.float64
    W[0, 0] = 5.0  # the network keeps its own copy
    assert net.weights[0][0, 0] == 1.0
    with pytest.raises(ValueError):
        net.weights[0][0, 0] = 3.0


def test_activation_pattern_and_local_affine_map():
    net = Network.random([3, 6, 4, 2], seed=3)
    X = np.random.default_rng(0).uniform(-1, 1, size=(50, 3))
    P = net.activation_pattern(X)
    assert P.shape == (50, 10) and P.dtype == bool
    for x, p in zip(X, P):
        A, c = net.affine_map_of_pattern(p)
        np.testing.assert_allclose(A @ x + c, net.forward(x), atol=1e-12)
        A2, c2 = net.local_affine_map(x)
        np.testing.assert_allclose(A, A2)


def test_density_counts_zeros():
    net = Network([np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[1.0, 0.0]])], [np.zeros(2), np.zeros(1)])
    assert net.num_nonzero_weights == 3
    assert net.density == pytest.approx(3 / 6)
    assert net.layer_densities() == [0.5, 0.5]


@pytest.mark.parametrize(
    "weights,biases,match",
    [
        ([], [], "at least one affine layer"),
        ([np.ones((2, 3))], [np.ones(3)], r"bias shape \(3,\) does not match"),
        ([np.ones((2, 3)), np.ones((1, 4))], [np.ones(2), np.ones(1)], "takes 4 inputs but layer 0 has 2"),
        ([np.array([[np.nan]])], [np.zeros(1)], "NaN or inf"),
        ([np.ones(3)], [np.ones(3)], "must be 2-D"),
        ([np.ones((2, 3))], [np.ones(2), np.ones(1)], "one bias per layer"),
    ],
)
def test_invalid_networks_raise_clear_errors(weights, biases, match):
    with pytest.raises(InvalidNetworkError, match=match):
        Network(weights, biases)


def test_errors_are_catchable_as_builtin_and_base():
    with pytest.raises(ValueError):
        Network([np.ones((2, 3))], [np.ones(3)])
    with pytest.raises(MipnetError):
        Network([np.ones((2, 3))], [np.ones(3)])


def test_forward_rejects_wrong_input_size():
    net = Network.random([3, 4, 1])
    with pytest.raises(InvalidNetworkError, match=r"expected \(N, 3\)"):
        net.forward(np.ones(4))
