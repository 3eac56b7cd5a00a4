"""Equivalence and output gaps, checked against exact answers computed independently on 1-D slices."""

import json

import numpy as np
import pytest

from mipnet import Box, Network
from mipnet.analyses.equivalence import (
    differential_bounds,
    max_output_gap,
    top1_margin,
    verify_equivalence,
)
from mipnet.core.errors import InvalidNetworkError


# ---------------------------------------------------------------------------- independent 1-D oracle
def breakpoints_1d(net: Network, lo: float, hi: float) -> np.ndarray:
    """Every point of [lo, hi] where some neuron of ``net`` (1 input) changes sign.

    Exact partition: on each piece every pre-activation is affine in x, so its
    root is found in closed form; pieces are refined layer by layer.
    """
    pieces = [(lo, hi)]
    for l in range(net.num_hidden_layers):
        new = []
        for a, b in pieces:
            m = (a + b) / 2
            pattern = net.activation_pattern(np.array([m]))
            # affine map of layer l's pre-activation on this piece: use the pattern of the earlier layers
            A = np.eye(1)
            c = np.zeros(1)
            off = net.hidden_offsets
            for k in range(l + 1):
                W, bb = net.layers[k]
                A, c = W @ A, W @ c + bb
                if k < l:
                    on = pattern[off[k]:off[k + 1]].astype(float)
                    A, c = A * on[:, None], c * on
            slope, icpt = A[:, 0], c
            with np.errstate(divide="ignore", invalid="ignore"):
                roots = -icpt / slope
            roots = np.sort(roots[np.isfinite(roots) & (roots > a) & (roots < b)])
            cuts = [a, *roots.tolist(), b]
            new.extend(zip(cuts[:-1], cuts[1:]))
        pieces = new
    return np.unique(np.array([p[0] for p in pieces] + [hi]))


def true_gaps_1d(f: Network, g: Network, lo: float, hi: float):
    """Exact max over [lo, hi] of |f_k - g_k| per output, and of sum_k |f_k - g_k|:
    f - g is piecewise linear with breaks at the union of both nets' breakpoints."""
    pts = np.union1d(breakpoints_1d(f, lo, hi), breakpoints_1d(g, lo, hi))[:, None]
    D = f.forward(pts) - g.forward(pts)
    return np.abs(D).max(axis=0), np.abs(D).sum(axis=1).max()


def one_d_pair(seed=0):
    f = Network.random([1, 8, 6, 3], seed=seed)
    rng = np.random.default_rng(seed + 100)
    g = Network([W + rng.normal(0, 0.02, W.shape) for W in f.weights],
                [b + rng.normal(0, 0.02, b.shape) for b in f.biases])
    return f, g


def test_oracle_sanity():
    f, g = one_d_pair()
    X = np.linspace(-2, 2, 200_001)[:, None]
    dense = np.abs(f.forward(X) - g.forward(X)).max(axis=0)
    exact, _ = true_gaps_1d(f, g, -2.0, 2.0)
    assert np.all(exact >= dense - 1e-12) and np.all(exact <= dense + 1e-3)


# ---------------------------------------------------------------------------- gap and epsilon
def test_max_output_gap_matches_exact_1d():
    f, g = one_d_pair()
    dom = Box(-2.0, 2.0, dim=1)
    exact, _ = true_gaps_1d(f, g, -2.0, 2.0)
    res = max_output_gap(f, g, dom, mip_rel_gap=1e-9)
    assert res.complete and res.differential
    up, low = res.per_output_upper(), res.per_output_lower()
    assert np.all(up >= exact - 1e-7) and np.all(low <= exact + 1e-9)
    np.testing.assert_allclose(up, exact, rtol=1e-6, atol=1e-7)
    assert res.upper == pytest.approx(exact.max(), rel=1e-6)
    # the witness attains the lower value (float64 re-check)
    assert np.abs(f.forward(res.witness) - g.forward(res.witness)).max() == pytest.approx(res.lower, rel=1e-12)
    json.dumps(res.to_dict())
    sub = max_output_gap(f, g, dom, outputs=[1])
    assert {e.output for e in sub.entries} == {1}


def test_epsilon_verdicts_on_both_sides_of_the_true_gap():
    f, g = one_d_pair()
    dom = Box(-2.0, 2.0, dim=1)
    exact, l1 = true_gaps_1d(f, g, -2.0, 2.0)
    gap = exact.max()
    above = verify_equivalence(f, g, dom, mode="epsilon", epsilon=gap * 1.01, samples=0)
    assert above.verdict == "equivalent" and above.gap_upper_bound <= gap * 1.01 + 1e-6
    below = verify_equivalence(f, g, dom, mode="epsilon", epsilon=gap * 0.99, samples=0)
    assert below.verdict == "not_equivalent"
    x = below.counterexample
    assert dom.contains(x) and np.abs(f.forward(x) - g.forward(x)).max() > gap * 0.99
    assert below.max_gap <= gap + 1e-12
    # L1 norm of the output difference
    a1 = verify_equivalence(f, g, dom, mode="epsilon", epsilon=l1 * 1.01, norm="l1", samples=0)
    b1 = verify_equivalence(f, g, dom, mode="epsilon", epsilon=l1 * 0.99, norm="l1", samples=0)
    assert a1.verdict == "equivalent" and b1.verdict == "not_equivalent"
    assert np.abs(f.forward(b1.counterexample) - g.forward(b1.counterexample)).sum() > l1 * 0.99


def test_network_against_itself():
    f = Network.random([3, 8, 8, 2], seed=1)
    dom = Box(-1.0, 1.0, dim=3)
    for mode in ("exact", "top1"):
        res = verify_equivalence(f, f, dom, mode=mode)
        assert res.verdict == "equivalent" and res.counterexample is None
    gap = max_output_gap(f, f, dom)
    assert gap.upper == 0.0 and gap.num_milps == 0  # differential bounds settle it


def test_pruned_network_is_not_equivalent():
    f = Network.random([3, 8, 6, 2], seed=2)
    W = [w.copy() for w in f.weights]
    W[0][np.abs(W[0]) < 0.3] = 0.0  # magnitude pruning of the first layer
    g = Network(W, list(f.biases))
    dom = Box(-1.0, 1.0, dim=3)
    res = verify_equivalence(f, g, dom, mode="exact", samples=0)
    assert res.verdict == "not_equivalent"
    x = res.counterexample
    assert dom.contains(x)
    np.testing.assert_array_equal(res.outputs_a, f.forward(x))
    assert np.abs(f.forward(x) - g.forward(x)).max() > res.tol
    d = json.loads(json.dumps(res.to_dict()))
    assert d["verdict"] == "not_equivalent" and len(d["counterexample"]) == 3


@pytest.mark.parametrize("strategy", ["pair", "class"])
def test_top1_verdicts(strategy):
    f = Network.random([2, 6, 5, 3], seed=3)
    dom = Box(-1.0, 1.0, dim=2)
    # scaling and shifting all logits keeps the argmax: top-1 equivalent, not exactly equal
    W, b = f.layers[-1]
    g = Network(list(f.weights[:-1]) + [3.0 * W], list(f.biases[:-1]) + [3.0 * b + 1.0])
    res = verify_equivalence(f, g, dom, mode="top1", samples=0, top1_strategy=strategy)
    assert res.verdict == "equivalent" and res.num_milps >= 1 and res.gap_upper_bound <= res.tol
    assert verify_equivalence(f, g, dom, mode="exact").verdict == "not_equivalent"
    # a copy with a bias shift on one logit disagrees somewhere
    X = dom.sample(20000, seed=0)
    h = Network(list(f.weights), list(f.biases[:-1]) + [f.biases[-1] + np.array([0.0, 0.5, 0.0])])
    assert np.any(np.argmax(f.forward(X), 1) != np.argmax(h.forward(X), 1))  # sampled truth
    res = verify_equivalence(f, h, dom, mode="top1", samples=0, top1_strategy=strategy)
    assert res.verdict == "not_equivalent"
    fa, fb = f.forward(res.counterexample), h.forward(res.counterexample)
    assert np.argmax(fa) != np.argmax(fb)
    assert top1_margin(fa, fb)[0] > 0  # strict: both argmaxes unique
    assert res.max_gap == pytest.approx(top1_margin(fa, fb)[0])


def test_time_limit_gives_unknown():
    from mipnet.analyses.compression import compress

    f = Network.random([3, 8, 8, 2], seed=5)
    g = compress(f, Box(-1.0, 1.0, dim=3), merge="never").network  # equal on D, other widths
    res = verify_equivalence(f, g, Box(-1.0, 1.0, dim=3), mode="exact", time_limit=1e-3, samples=0)
    assert res.verdict == "unknown" and res.status == "time_limit"
    assert res.counterexample is None and "time limit" in res.message
    assert res.gap_upper_bound > res.epsilon + res.tol  # only the bound reached is reported


def test_differential_bounds_are_sound_and_tight():
    f, g = one_d_pair(1)
    dom = Box(-2.0, 2.0, dim=1)
    diff = differential_bounds(f, g, dom)
    X = dom.sample(5000, seed=2, include_vertices=True)
    ya, yb = f.preactivations(X), g.preactivations(X)
    for l, (dy, dh) in enumerate(diff.hidden):
        d = ya[l] - yb[l]
        assert np.all(d >= dy.lower - 1e-12) and np.all(d <= dy.upper + 1e-12)
        e = np.maximum(ya[l], 0) - np.maximum(yb[l], 0)
        assert np.all(e >= dh.lower - 1e-12) and np.all(e <= dh.upper + 1e-12)
    d = ya[-1] - yb[-1]
    assert np.all(d >= diff.output.lower - 1e-12) and np.all(d <= diff.output.upper + 1e-12)
    same = differential_bounds(f, f, dom)
    assert np.abs(same.output.upper).max() < 1e-12 and np.abs(same.output.lower).max() < 1e-12
    with pytest.raises(InvalidNetworkError, match="same widths"):
        differential_bounds(f, Network.random([1, 5, 3], seed=0), dom)


def test_top1_margin():
    fa = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.0]])
    fb = np.array([[1.0, 2.0, 0.0], [0.0, 5.0, 1.0]])
    np.testing.assert_allclose(top1_margin(fa, fb), [1.0, -4.0])


def test_errors():
    f = Network.random([2, 4, 3], seed=0)
    dom = Box(-1, 1, dim=2)
    with pytest.raises(ValueError, match="mode must be one of"):
        verify_equivalence(f, f, dom, mode="close")
    with pytest.raises(ValueError, match="needs epsilon"):
        verify_equivalence(f, f, dom, mode="epsilon")
    with pytest.raises(ValueError, match="only used with mode='epsilon'"):
        verify_equivalence(f, f, dom, mode="exact", epsilon=0.1)
    with pytest.raises(ValueError, match="epsilon must be a finite number >= 0"):
        verify_equivalence(f, f, dom, mode="epsilon", epsilon=-1)
    with pytest.raises(ValueError, match="norm must be one of"):
        verify_equivalence(f, f, dom, mode="epsilon", epsilon=1, norm="l2")
    with pytest.raises(ValueError, match="time_limit must be a positive"):
        verify_equivalence(f, f, dom, time_limit=-1)
    with pytest.raises(InvalidNetworkError, match="net_a has 3 outputs but net_b has 2"):
        verify_equivalence(f, Network.random([2, 4, 2], seed=0), dom)
    with pytest.raises(InvalidNetworkError, match="net_a takes 2 inputs but net_b takes 3"):
        verify_equivalence(f, Network.random([3, 4, 3], seed=0), dom)
    with pytest.raises(InvalidNetworkError, match="net_b must be a mipnet.Network"):
        max_output_gap(f, "b.onnx", dom)
    with pytest.raises(ValueError, match=r"outputs must be indices in \[0, 3\)"):
        max_output_gap(f, f, dom, outputs=[3])
    with pytest.raises(ValueError, match="'bogus' is not a HiGHS option"):
        verify_equivalence(f, f, dom, solver_options={"bogus": 1})
    with pytest.raises(ValueError, match="top1_strategy must be"):
        verify_equivalence(f, f, dom, mode="top1", top1_strategy="all")


@pytest.mark.parametrize("radius", [1.0, 1e10])
def test_verdicts_and_gap_bounds_at_any_magnitude(radius):
    # on [-1e10, 1e10]^3 the MILPs run on an exact power-of-two rescaling of the problem
    from mipnet.analyses.common import Scaling

    f = Network.random([3, 8, 6, 2], seed=2)
    W = [w.copy() for w in f.weights]
    W[0][np.abs(W[0]) < 0.3] = 0.0
    g = Network(W, list(f.biases))
    dom = Box(-radius, radius, dim=3)
    assert Scaling.for_problem((f, g), dom).identity == (radius == 1.0)
    res = verify_equivalence(f, g, dom, mode="exact")
    assert res.verdict == "not_equivalent" and dom.contains(res.counterexample)
    assert np.abs(f.forward(res.counterexample) - g.forward(res.counterexample)).max() > res.tol
    assert verify_equivalence(f, f, dom, mode="top1").verdict == "equivalent"
    gap = max_output_gap(f, g, dom)
    S = dom.sample(100_000, seed=1, include_vertices=True)
    D = np.abs(f.forward(S) - g.forward(S))
    assert gap.complete and gap.upper >= D.max() and gap.lower <= gap.upper
    assert np.all(gap.per_output_upper() >= D.max(axis=0))
    w = gap.witness
    assert dom.contains(w) and np.abs(f.forward(w) - g.forward(w)).max() == gap.lower


def test_scaling_is_exact():
    from mipnet.analyses.common import Scaling

    f = Network.random([3, 8, 6, 2], seed=2)
    dom = Box(-1e10, 1e10, dim=3)
    sc = Scaling.for_problem((f,), dom)
    assert not sc.identity and np.log2(sc.input_scale) % 1 == 0 and np.log2(sc.output_scale) % 1 == 0
    X = dom.sample(1000, seed=0)
    fs, ds = sc.net(f), sc.domain(dom)
    np.testing.assert_array_equal(sc.to_output(fs.forward(X / sc.input_scale)), f.forward(X))  # bit for bit
    assert np.all(np.abs(ds.upper) <= 2.0) and ds.contains(X / sc.input_scale).all()


def test_reconcile_bound_widens_tolerance_excess_and_refutes_the_rest():
    from mipnet.analyses.equivalence import reconcile_bound
    from mipnet.core.errors import SolverError

    assert reconcile_bound(0.5, 1.0, 9.0) == (1.0, True)  # not beaten: the proof stands
    bound, proven = reconcile_bound(1.0 + 1e-7, 1.0, 9.0)  # beaten within the solver's tolerance
    assert proven and bound == pytest.approx(1.0 + 2e-7)
    assert reconcile_bound(2.0, 1.0, 9.0) == (9.0, False)  # refuted: the sound bound before any MILP
    assert reconcile_bound(1e10 + 1e3, 1e10, 2e10, unit=2.0**33) == (1e10 + 2e3, True)  # relative at 1e10
    with pytest.raises(SolverError, match="beats the sound bound"):
        reconcile_bound(10.0, 1.0, 9.0)
