"""Input branch and bound with differential bounds (analyses/bab.py, differential.py, properties.py)."""

from __future__ import annotations

import json
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mipnet import Box, Network
from mipnet.analyses.bab import BabOptions
from mipnet.analyses.compression import compress, load_neuron_map, neuron_map_path, save_neuron_map
from mipnet.analyses.differential import DiffPair, align, box_bounds, match_neurons
from mipnet.analyses.equivalence import top1_margin, verify_equivalence
from mipnet.analyses.properties import L1Gap, LinfGap, TopK, property_for_mode


def permuted_rescaled(net: Network, seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    L = [(W.copy(), b.copy()) for W, b in net.layers]
    for l in range(net.num_hidden_layers):
        n = L[l][0].shape[0]
        p, c = rng.permutation(n), rng.uniform(0.5, 2.0, n)
        L[l] = (L[l][0][p] * c[:, None], L[l][1][p] * c)
        L[l + 1] = (L[l + 1][0][:, p] / c[None, :], L[l + 1][1])
    return Network.from_layers(L)


def test_match_and_align_recover_a_permuted_rescaled_copy():
    f = Network.random([3, 10, 7, 2], seed=3)
    g = permuted_rescaled(f, seed=1)
    corr = match_neurons(f, g)
    assert corr.matched == 17
    A, B, exact = align(f, g, corr)
    assert not exact  # factors are not powers of two: the alignment error is bounded instead
    X = Box(-1, 1, dim=3).sample(500, seed=0)
    np.testing.assert_allclose(A.forward(X), f.forward(X), rtol=0, atol=0)
    np.testing.assert_allclose(B.forward(X), g.forward(X), rtol=1e-12, atol=1e-12)
    res = verify_equivalence(f, g, Box(-1, 1, dim=3), mode="exact", engine="bab")
    assert res.verdict == "equivalent" and res.search["boxes_closed"] == 1 and res.num_milps == 0
    assert res.gap_upper_bound < 1e-10


def _pair_nets(draw_seed, widths_b):
    f = Network.random([2, 6, 5, 3], seed=draw_seed)
    g = Network.random([2] + list(widths_b) + [3], seed=draw_seed + 100)
    return f, g


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), wb=st.sampled_from([(6, 5), (8,), (4, 4, 4)]),
       shrink=st.floats(0.05, 1.0), same=st.booleans())
def test_box_bounds_are_sound_on_sampled_points(seed, wb, shrink, same):
    f, g = _pair_nets(seed, wb)
    if same:  # a perturbed copy: aligned, differential intervals in play
        rng = np.random.default_rng(seed)
        g = Network([W + 0.05 * rng.normal(size=W.shape) for W in f.weights], list(f.biases))
    rng = np.random.default_rng(seed + 1)
    c = rng.uniform(-1, 1, 2)
    lo, hi = c - shrink, c + shrink
    prop = TopK(1).with_tol(1e-6)
    pair = DiffPair.build(f, g, Box(lo, hi), spec=prop.spec(3))
    bb = box_bounds(pair, lo, hi)
    X = np.concatenate([rng.uniform(lo, hi, (400, 2)), np.array([[lo[0], lo[1]], [hi[0], hi[1]]])])
    fa, fb = f.forward(X), g.forward(X)
    D = fa - fb
    assert np.all(D >= bb.d_lo - 1e-12) and np.all(D <= bb.d_hi + 1e-12)
    assert np.all(fa >= bb.fa_lo - 1e-12) and np.all(fb <= bb.fb_hi + 1e-12)
    for p in (prop, LinfGap(0.0).with_tol(1e-6), L1Gap(0.0).with_tol(1e-6)):
        assert np.all(p.measure(fa, fb) <= p.upper(bb) + 1e-12)


def test_compressed_net_is_proven_at_the_root_with_its_neuron_map(tmp_path):
    net = Network.random([6, 20, 16, 4], seed=1, bias_scale=1.5)
    dom = Box(-1, 1, dim=6)
    c = compress(net, dom)
    assert c.report.neurons_removed > 0
    nmap = list(c.neuron_map)
    for m, n_after in zip(nmap, c.network.hidden_widths):
        assert len(m["kept"]) == n_after and not set(m["kept"]) & set(m["removed_inactive"])
    path = save_neuron_map(c, tmp_path / "small.npz")
    assert path == neuron_map_path(tmp_path / "small.npz")
    assert [m["kept"] for m in load_neuron_map(path)] == [m["kept"] for m in nmap]
    res = verify_equivalence(net, c.network, dom, mode="exact", correspondence=load_neuron_map(path))
    assert res.verdict == "equivalent" and res.num_milps == 0 and res.search["boxes_closed"] == 1
    assert any("stability claims proven" in n for n in res.notes)
    # without the map: the unmatched neurons are found and proven dead the same way
    res2 = verify_equivalence(net, c.network, dom, mode="exact")
    assert res2.verdict == "equivalent" and res2.search["boxes_closed"] == 1
    X = dom.sample(20000, seed=2, include_vertices=True)
    assert np.abs(net.forward(X) - c.network.forward(X)).max() <= res.gap_upper_bound + 1e-12


@pytest.mark.parametrize("mode,eps", [("epsilon", 0.3), ("top1", None), ("epsilon", 5.0)])
def test_bab_matches_milp_and_is_deterministic_under_executors(mode, eps):
    f = Network.random([2, 8, 6, 3], seed=5)
    g = Network([W + 0.08 * np.random.default_rng(1).normal(size=W.shape) for W in f.weights], list(f.biases))
    dom = Box(-1, 1, dim=2)
    kw = dict(mode=mode, epsilon=eps, time_limit=60, samples=100)
    ref = verify_equivalence(f, g, dom, engine="milp", **kw)
    opts = BabOptions(batch=4, milp_unstable=0)  # bounds and search only: many boxes
    inproc = verify_equivalence(f, g, dom, engine="bab", bab_options=opts, **kw)
    with ThreadPoolExecutor(2) as ex:
        par = verify_equivalence(f, g, dom, engine="bab", bab_options=opts, executor=ex, **kw)
    assert inproc.verdict == ref.verdict == par.verdict
    assert inproc.gap_upper_bound == par.gap_upper_bound and inproc.search["boxes_closed"] == par.search["boxes_closed"]
    if inproc.verdict == "not_equivalent":
        np.testing.assert_array_equal(inproc.counterexample, par.counterexample)
        x = inproc.counterexample
        fa, fb = f.forward(x), g.forward(x)
        assert (top1_margin(fa, fb)[0] > 0) if mode == "top1" else (np.abs(fa - fb).max() > eps)
    else:
        X = dom.sample(20000, seed=3, include_vertices=True)
        m = property_for_mode(mode, epsilon=eps).measure(f.forward(X), g.forward(X))
        assert m.max() <= inproc.gap_upper_bound + 1e-9


def test_l1_bab_agrees_with_milp():
    f = Network.random([2, 6, 3], seed=8)
    g = Network.random([2, 9, 3], seed=9)
    dom = Box(-0.5, 0.5, dim=2)
    X = dom.sample(50000, seed=0, include_vertices=True)
    top = np.abs(f.forward(X) - g.forward(X)).sum(axis=1).max()
    for eps, want in ((1.05 * top, "equivalent"), (0.9 * top, "not_equivalent")):
        a = verify_equivalence(f, g, dom, mode="epsilon", epsilon=eps, norm="l1", engine="bab", time_limit=60)
        b = verify_equivalence(f, g, dom, mode="epsilon", epsilon=eps, norm="l1", engine="milp", time_limit=60)
        assert a.verdict == b.verdict == want


def test_time_limit_gives_unknown_with_the_largest_open_box():
    f = Network.random([3, 30, 30, 2], seed=0)
    g = Network.random([3, 40, 2], seed=1)
    dom = Box(-1, 1, dim=3)
    gap = np.abs(f.forward(dom.sample(20000, seed=0)) - g.forward(dom.sample(20000, seed=0))).max()
    res = verify_equivalence(f, g, dom, mode="epsilon", epsilon=10 * gap + 50, time_limit=0.3, engine="bab",
                             bab_options=BabOptions(milp_unstable=0, batch=2))
    if res.verdict == "unknown":
        assert res.status == "time_limit" and np.isfinite(res.gap_upper_bound)
        lo, hi = (np.asarray(v) for v in res.search["largest_open"])
        assert np.all(lo >= -1) and np.all(hi <= 1) and np.all(hi > lo)
        assert "largest open box" in str(res)
    json.dumps(res.to_dict())


class _CtrlC(Executor):
    def submit(self, fn, *args, **kwargs):
        raise KeyboardInterrupt


def test_ctrl_c_returns_the_partial_result():
    f = Network.random([3, 30, 30, 2], seed=0)
    g = Network.random([3, 40, 2], seed=1)
    dom = Box(-1, 1, dim=3)
    X = dom.sample(20000, seed=0, include_vertices=True)
    gap = np.abs(f.forward(X) - g.forward(X)).max()  # 2.36; eps 1.1x needs ~40 boxes (in-process)
    # the boxes near the root are split in-process until every worker can get some (2 open boxes a
    # worker; an executor that does not say counts as one, mipnet.parallel.workers_of); Ctrl-C when
    # the first unit goes out
    res = verify_equivalence(f, g, dom, mode="epsilon", epsilon=1.1 * gap, engine="bab", executor=_CtrlC(),
                             bab_options=BabOptions(milp_unstable=0), samples=0)
    assert res.verdict == "unknown" and res.status == "interrupted" and res.search["boxes_open"] >= 2
    assert gap <= res.gap_upper_bound < np.inf


def test_property_objects():
    p = property_for_mode("exact", tol=1e-6)
    assert isinstance(p, LinfGap) and p.threshold == 1e-6 and p.proven == 2e-6
    assert isinstance(property_for_mode("epsilon", epsilon=0.1, norm="l1"), L1Gap)
    t = property_for_mode("top1")
    Ca, Cb = t.spec(3)
    assert Ca.shape == Cb.shape == (12, 3)
    fa, fb = np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]])
    assert t.measure(fa, fb)[0] == pytest.approx(1.0)


def test_false_neuron_map_claims_are_not_facts():
    from mipnet.analyses.compression import prove_neuron_claims

    net = Network.random([3, 8, 6, 2], seed=2, bias_scale=1.5)
    dom = Box(-1, 1, dim=3)
    X = dom.sample(5000, seed=0, include_vertices=True)
    ys = net.preactivations(X)
    live = [np.flatnonzero(y.max(axis=0) > 1e-3) for y in ys[:-1]]
    claims = [{"removed_inactive": l.tolist(), "kept": []} for l in live]  # all false
    facts, proven, claimed = prove_neuron_claims(net, dom, claims)
    assert claimed == sum(l.size for l in live) and proven == 0
    assert all(np.all(np.isinf(hi)) for _, hi in facts)
    # a wrong map (neurons paired in reverse) only costs tightness: net vs itself is still not refuted
    wrong = [{"kept": list(range(n))[::-1], "removed_inactive": [], "folded_active": []} for n in net.hidden_widths]
    res = verify_equivalence(net, net, dom, mode="exact", correspondence=wrong, engine="bab", time_limit=3)
    assert res.verdict in ("equivalent", "unknown") and res.counterexample is None
    assert res.gap_upper_bound >= 0


# ---------------------------------------------------------------------------- issue 10: tighter, cheaper boxes
def _trained_like_pair(seed: int):
    """Two 5-input nets of different depths (no neuron map)."""
    f = Network.random([5, 24, 24, 2], seed=seed)
    g = Network.random([5, 40, 2], seed=seed + 50)
    return f, g


def _preacts(net: Network, X: np.ndarray) -> list:
    out, h = [], X
    for i, (W, b) in enumerate(net.layers):
        y = h @ W.T + b
        out.append(y)
        h = np.maximum(y, 0.0)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_symbolic_layers_with_parent_bounds_are_sound_and_no_looser(seed):
    from mipnet.bounds import symbolic_layers
    from mipnet.core.domain import Domain

    f, g = _trained_like_pair(seed)
    pair = DiffPair.build(f, g, Box(-1, 1, dim=5))
    P = pair.product
    parent = symbolic_layers(P, Domain(-np.ones(5), np.ones(5)))
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-1, 0.2, 5)
    hi = np.minimum(lo + rng.uniform(0.1, 0.8, 5), 1.0)
    child = symbolic_layers(P, Domain(lo, hi), initial=parent)
    plain = symbolic_layers(P, Domain(lo, hi))
    X = np.concatenate([rng.uniform(lo, hi, (3000, 5)), np.where(rng.integers(0, 2, (64, 5)) > 0, hi, lo)])
    for lb, pl, pa, y in zip(child, plain, parent, _preacts(P, X)):
        assert np.all(y >= lb.lower) and np.all(y <= lb.upper)
        assert np.all(lb.lower >= pl.lower) and np.all(lb.upper <= pl.upper)  # intersected: never looser
        assert np.all(lb.lower >= pa.lower) and np.all(lb.upper <= pa.upper)


@pytest.mark.parametrize("seed", [0, 1])
def test_alpha_spec_bounds_sound_no_looser_than_crown_and_warm_startable(seed):
    from mipnet.bounds import AlphaOptions, alpha_spec_bounds, symbolic_layers
    from mipnet.core.domain import Domain

    f, g = _trained_like_pair(seed)
    pair = DiffPair.build(f, g, Box(-1, 1, dim=5))
    P = pair.product
    dom = Domain(-0.5 * np.ones(5), 0.5 * np.ones(5))
    layers = symbolic_layers(P, dom)
    rng = np.random.default_rng(seed)
    C = np.zeros((4, P.output_dim))
    C[[0, 1, 2, 3], [0, 0, 1, 1]] = [1.0, -1.0, 1.0, -1.0]  # +-(f_k - g_k)
    crown, _, _ = alpha_spec_bounds(P, dom, layers[:-1], C, options=AlphaOptions(iterations=0))
    opt, slopes, coef = alpha_spec_bounds(P, dom, layers[:-1], C, options=AlphaOptions(iterations=30))
    assert np.all(opt >= crown) and np.any(opt > crown + 1e-9)  # optimised: tighter somewhere
    assert coef.shape == (4, 5) and [s.shape for s in slopes] == [(4, lb.lower.size) for lb in layers[:-1]]
    # any slopes in [0, 1] are sound: a random warm start, and the returned slopes reused
    init = [rng.uniform(0, 1, s.shape) for s in slopes]
    warm, _, _ = alpha_spec_bounds(P, dom, layers[:-1], C, init=init, options=AlphaOptions(iterations=5))
    again, _, _ = alpha_spec_bounds(P, dom, layers[:-1], C, init=slopes, options=AlphaOptions(iterations=1))
    assert np.all(again >= opt - 1e-12)  # warm start from the best slopes: no worse
    X = np.concatenate([rng.uniform(dom.lower, dom.upper, (5000, 5)),
                        np.where(rng.integers(0, 2, (64, 5)) > 0, dom.upper, dom.lower)])
    Y = P.forward(X) @ C.T
    for v in (crown, opt, warm, again):
        assert np.all(Y >= v[None, :])


@pytest.mark.parametrize("alpha", [0, 10])
def test_evaluate_box_bound_is_sound_with_parent_layers_and_alpha(alpha):
    from mipnet.analyses.bab import evaluate_box

    f, g = _trained_like_pair(4)
    dom = Box(-1, 1, dim=5)
    Xd = dom.sample(20_000, seed=1, include_vertices=True)
    prop = LinfGap(1.2 * float(np.abs(f.forward(Xd) - g.forward(Xd)).max())).with_tol(1e-6)  # no witness
    pair = DiffPair.build(f, g, dom, spec=prop.spec(2))
    opts = BabOptions(alpha_iterations=alpha, milp_unstable=0)
    root = evaluate_box(pair, prop, dom.lower, dom.upper, opts, 0)
    lo, hi = dom.lower.copy(), dom.upper.copy()
    hi[root.split] = 0.0
    child = evaluate_box(pair, prop, lo, hi, opts, 1, parent_bound=root.bound, parent_layers=root.layers,
                         parent_slopes=root.slopes)
    assert child.bound <= root.bound
    X = np.concatenate([Box(lo, hi).sample(5000, seed=2, include_vertices=True)])
    gap = np.abs(f.forward(X) - g.forward(X)).max(axis=1)
    assert root.witness is None and child.witness is None and not child.closed
    assert np.all(gap <= child.bound)  # sound on the child
    if alpha:
        assert child.slopes is not None and set(child.slopes) <= {(0, 1), (0, -1), (1, 1), (1, -1)}


def _close_copy(seed: int, noise: float):
    """f and a copy of another depth that computes f plus a small perturbation (g = f + noise net)."""
    f = Network.random([4, 16, 16, 2], seed=seed)
    h = Network.random([4, 8, 2], seed=seed + 7)
    # g(x) = f(x) + noise * h(x), one wider net: hidden [f; h] side by side, output [W_f, noise W_h]
    from mipnet.analyses.differential import difference_network

    I = np.eye(2)
    g, _ = difference_network(f, h, I, noise * I)
    return f, g


@pytest.mark.parametrize("seed,alpha,split", [(0, 0, "bound"), (1, 8, "bound"), (2, 0, "grad")])
def test_bab_proves_epsilon_equivalence_of_a_structurally_different_copy(seed, alpha, split):
    f, g = _close_copy(seed, 0.02)
    dom = Box(-1, 1, dim=4)
    X = dom.sample(100_000, seed=seed, include_vertices=True)
    sampled = float(np.abs(f.forward(X) - g.forward(X)).max())
    eps = 1.3 * sampled
    res = verify_equivalence(f, g, dom, mode="epsilon", epsilon=eps, engine="bab", time_limit=60,
                             bab_options=BabOptions(alpha_iterations=alpha, split=split))
    if res.verdict == "equivalent":
        assert res.gap_upper_bound <= eps + 2e-6
        Y = dom.sample(200_000, seed=seed + 11, include_vertices=True)
        assert float(np.abs(f.forward(Y) - g.forward(Y)).max()) <= eps
    else:  # a counterexample must survive an independent float64 forward pass
        assert res.verdict == "not_equivalent"
        x = np.asarray(res.counterexample)
        assert dom.contains(x) and float(np.abs(f.forward(x) - g.forward(x)).max()) > eps
    assert res.verdict == "equivalent"  # these pairs are equivalent at 1.3x the sampled maximum


def test_bab_refutes_a_too_small_epsilon_with_a_float64_witness():
    f, g = _close_copy(3, 0.05)
    dom = Box(-1, 1, dim=4)
    X = dom.sample(20_000, seed=0, include_vertices=True)
    eps = 0.8 * float(np.abs(f.forward(X) - g.forward(X)).max())
    res = verify_equivalence(f, g, dom, mode="epsilon", epsilon=eps, engine="bab", time_limit=30)
    assert res.verdict == "not_equivalent"
    x = np.asarray(res.counterexample)
    assert dom.contains(x) and float(np.abs(f.forward(x) - g.forward(x)).max()) > eps


def test_a_tie_broken_by_rounding_is_not_a_counterexample():
    """g = f with every hidden neuron split in two halves: the same real function. At a tie of
    two top logits float64 rounding can make the argmaxes differ (margin ~1e-17); the branch and
    bound must not report that as a counterexample (it needs a margin above the forward passes'
    rounding bound) and proves top-1 equivalence instead."""
    f = Network.random([2, 6, 6, 3], seed=1)
    Ws, bs = [], []
    for l, (W, b) in enumerate(f.layers):
        if l == 0:
            Ws.append(np.vstack([W, W]))
            bs.append(np.concatenate([b, b]))
        elif l < len(f.layers) - 1:
            Ws.append(np.block([[W / 2, W / 2], [W / 2, W / 2]]))
            bs.append(np.concatenate([b, b]))
        else:
            Ws.append(np.hstack([W / 2, W / 2]))
            bs.append(b.copy())
    g = Network(Ws, bs)
    x = np.array([0.40948753, 0.1594884])  # near a tie of outputs 0 and 2 that the search reached
    assert abs(float(top1_margin(f.forward(x), g.forward(x))[0])) < 1e-3
    res = verify_equivalence(f, g, Box(-1.0, 1.0, dim=2), mode="top1", engine="bab", time_limit=60)
    assert res.verdict == "equivalent"


def _proportional_net():
    """A 2-5-1 net whose hidden neurons 3 and 4 are positive multiples of each other (fuzzed)."""
    W0 = np.array([[0.11697789597436108, 1.3504366578363611], [0.11500058549973152, 0.09416511336076491],
                   [1.2568430609451824, -0.2911015781902846], [-1.3327643836151128, -8.820109251454413],
                   [-0.30745643460547256, -2.0347177465285973]])
    b0 = np.array([0.1445775013214864, 0.12179694243108302, 1.3919758843800782, 0.7972060792261528,
                   0.1839080799111936])
    W1 = np.array([[0.2328715785284405, -0.4146783406396213, -0.22366599453825622, 0.5954393064763287,
                    0.22397334701203347]])
    return Network([W0, W1], [b0, np.array([-1.0754034684303562])]), Box([-1.21399126843241, -0.7267656081822911],
                                                                         [0.8362266067742243, 1.0766722770691657])


@pytest.mark.parametrize("mode, eps", [("exact", None), ("epsilon", 1e-3)])
def test_a_net_with_proportional_neurons_is_equivalent_to_itself_and_its_rescaled_copy(mode, eps):
    """match_neurons aligned the two proportional neurons crosswise (factors 4.33 and 0.23), whose
    rounding error pushed every leaf MILP's cutoff proof past the threshold: `unknown` after 5 s for a
    net against itself. Now the factor nearest 1 wins: an exact copy aligns by the identity, and a
    permuted, rescaled copy is proven too."""
    from mipnet.analyses.differential import match_neurons

    net, box = _proportional_net()
    np.testing.assert_array_equal(match_neurons(net, net).index[0], np.arange(5))
    rng = np.random.default_rng(3)
    p, c = rng.permutation(5), rng.uniform(0.5, 2.0, 5)
    copy = Network([net.weights[0][p] * c[:, None], net.weights[1][:, p] / c[None, :]],
                   [net.biases[0][p] * c, net.biases[1]])
    for other in (net, copy):
        for engine in ("bab", "milp"):
            r = verify_equivalence(net, other, box, mode=mode, epsilon=eps, engine=engine, time_limit=30)
            assert r.verdict == "equivalent", (engine, r)
