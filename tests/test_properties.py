"""Properties of two networks (mipnet.analyses.properties): margins, bounds, MILP search, verify."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mipnet import Box, L1Ball, Network
from mipnet.analyses.equivalence import GapProblem, top1_margin, verify_equivalence
from mipnet.analyses.properties import (
    DeltaTop1,
    L1Gap,
    LinfGap,
    OutputBounds,
    OutputDisjunction,
    TopK,
    property_for_mode,
    search_property,
    verify_property,
)
from mipnet.bounds import interval_bounds
from mipnet.core.errors import InvalidArgumentError


def _brute_topk(fa, fb, k, delta=0.0):
    """Counterexample test written from the definition: A confident (margin >= delta, > 0 strictly
    for delta = 0) and at least k classes of B strictly above B's logit of A's top class."""
    c = int(np.argmax(fa))
    margin = fa[c] - np.max(np.delete(fa, c))
    above = int(np.sum(np.delete(fb, c) > fb[c]))
    return margin > delta and above >= k


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6), st.integers(1, 5), st.floats(0, 1), st.integers(0, 10_000))
def test_topk_margin_matches_definition(m, k, delta, seed):
    rng = np.random.default_rng(seed)
    fa, fb = rng.normal(size=(20, m)), rng.normal(size=(20, m))
    p = TopK(k, delta)
    mg = p.margin(fa, fb)
    for a, b, v in zip(fa, fb, mg):
        assert (v > 0) == _brute_topk(a, b, k, delta)
    if k == 1 and delta == 0:
        assert np.allclose(mg, top1_margin(fa, fb))


def test_property_definitions_and_errors():
    fa, fb = np.array([[3.0, 1.0, 0.0]]), np.array([[0.0, 2.0, 1.0]])
    assert TopK(1).margin(fa, fb)[0] == pytest.approx(2.0)  # min(3 - 1, 2 - 0)
    assert TopK(2).margin(fa, fb)[0] == pytest.approx(1.0)  # second largest of g_j - g_0 = (2, 1)
    assert TopK(3).margin(fa, fb)[0] == -np.inf  # k > m - 1: always holds
    assert DeltaTop1(2.5).margin(fa, fb)[0] == pytest.approx(-0.5)  # A's margin 2 < 2.5: not confident
    assert DeltaTop1(1.0).margin(fa, fb)[0] == pytest.approx(1.0)
    assert LinfGap(1.0).margin(fa, fb)[0] == pytest.approx(2.0)
    assert L1Gap(1.0).margin(fa, fb)[0] == pytest.approx(4.0)  # 3 + 1 + 1 - 1
    assert TopK(2).name == "top2" and DeltaTop1(0.5).name == "delta_top1" and TopK(1).name == "top1"
    assert isinstance(property_for_mode("epsilon", epsilon=0.1, norm="l1"), L1Gap)
    for bad in (lambda: TopK(0), lambda: TopK(1.5), lambda: DeltaTop1(-1), lambda: LinfGap(float("nan")),
                lambda: property_for_mode("nope")):
        with pytest.raises(InvalidArgumentError):
            bad()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["top1", "top2", "delta", "linf", "l1", "dnf"]))
def test_upper_bound_from_output_bounds_is_sound(seed, which):
    f = Network.random([3, 8, 4], seed=seed % 97)
    g = Network.random([3, 8, 4], seed=seed % 89 + 100)
    dom = Box(-1, 1, dim=3)
    A, B = interval_bounds(f, dom).output, interval_bounds(g, dom).output
    ob = OutputBounds(A.lower, A.upper, B.lower, B.upper)
    rng = np.random.default_rng(seed)
    C = rng.normal(size=(2, 8))
    p = {"top1": TopK(1), "top2": TopK(2), "delta": DeltaTop1(0.3), "linf": LinfGap(0.1), "l1": L1Gap(0.1),
         "dnf": OutputDisjunction([(C, np.zeros(2)), (C[:1], np.ones(1))], 4)}[which]
    X = dom.sample(2000, seed=seed, include_vertices=True)
    assert np.max(p.margin(f.forward(X), g.forward(X))) <= p.upper_bound(ob)
    if which in ("top1", "top2", "delta"):  # with the difference box too (d = f - g)
        D = f.forward(X) - g.forward(X)
        ob2 = OutputBounds(A.lower, A.upper, B.lower, B.upper, D.min(axis=0), D.max(axis=0))
        assert np.max(p.margin(f.forward(X), g.forward(X))) <= p.upper_bound(ob2) + 1e-12


def _shifted_pair(shift):
    """f = (x0, x1, x2) (a ReLU layer that is the identity on [1, 2]^3); g = f + (0, 0, shift)."""
    I = np.eye(3)
    f = Network([I, I], [np.zeros(3), np.zeros(3)])
    g = Network([I, I], [np.zeros(3), np.array([0.0, 0.0, shift])])
    return f, g, Box(1, 2, dim=3)


def test_topk_holds_where_top1_fails():
    f, g, dom = _shifted_pair(10.0)  # class 2 always on top for g; f's top class is second in g
    r1 = verify_equivalence(f, g, dom, mode=TopK(1))
    assert r1.verdict == "not_equivalent"
    x = r1.counterexample
    assert dom.contains(x) and np.argmax(f.forward(x)) != np.argmax(g.forward(x))
    r2 = verify_equivalence(f, g, dom, mode=TopK(2), samples=0)
    assert r2.verdict == "equivalent" and r2.gap_upper_bound <= 1e-6
    # delta-top-1: f's logit margin is at most 1 on [1, 2]^3, so delta = 1.5 never triggers
    assert verify_equivalence(f, g, dom, mode=DeltaTop1(1.5)).verdict == "equivalent"
    r = verify_equivalence(f, g, dom, mode=DeltaTop1(0.5), samples=0)
    assert r.verdict == "not_equivalent"
    fa = f.forward(r.counterexample)
    assert np.sort(fa)[-1] - np.sort(fa)[-2] >= 0.5 and np.argmax(g.forward(r.counterexample)) == 2


def test_reversed_net_fails_top2_by_milp():
    f, _, dom = _shifted_pair(0.0)
    g = Network([np.eye(3), -np.eye(3)], [np.zeros(3), np.zeros(3)])  # g = -f: f's top class is g's last
    r = verify_equivalence(f, g, dom, mode=TopK(2), samples=0)
    assert r.verdict == "not_equivalent" and r.num_milps >= 1
    assert TopK(2).margin(f.forward(r.counterexample), g.forward(r.counterexample))[0] > 0
    assert verify_equivalence(f, g, dom, mode=TopK(3)).verdict == "equivalent"  # k > m - 1


def _pruned_pair(seed):
    f = Network.random([4, 10, 8, 4], seed=seed, bias_scale=1.0)
    W = [w.copy() for w in f.weights]
    W[1][np.abs(W[1]) < 0.25] = 0.0
    return f, Network(W, list(f.biases))


@pytest.mark.parametrize("seed, radius", [(0, 1.5), (1, 1.5), (1, 0.5), (2, 0.5)])
def test_topk_agrees_with_top1_mode_and_sampling(seed, radius):
    f, g = _pruned_pair(seed)
    dom = L1Ball(np.zeros(4), radius, -1, 1)
    ours = verify_equivalence(f, g, dom, mode=TopK(1), samples=0)
    base = verify_equivalence(f, g, dom, mode="top1", samples=0)
    assert ours.verdict == base.verdict != "unknown"
    assert verify_equivalence(f, g, dom, mode=TopK(1, split="pair"), samples=0).verdict == base.verdict
    X = dom.sample(5000, seed=seed, include_vertices=True)
    for k in (1, 2):
        r = verify_equivalence(f, g, dom, mode=TopK(k), samples=0)
        viol = TopK(k).margin(f.forward(X), g.forward(X)) > 0
        if r.verdict == "equivalent":
            assert not viol.any()
        else:
            assert r.verdict == "not_equivalent" and dom.contains(r.counterexample)
            assert TopK(k).margin(f.forward(r.counterexample), g.forward(r.counterexample))[0] > 0


def test_l1_ball_decides_what_its_box_cannot():
    """f0 = x0 - x1, g0 = x0 - x1 + 0.5, f1 = g1 = 0: top-1 disagrees iff 0 < x1 - x0 < 0.5.
    On the L1 ball around (0.5, -0.5) of radius 0.9, x1 - x0 <= -0.1: equivalent; its box reaches 0.8."""
    W0 = np.eye(2)
    b0 = np.full(2, 2.0)  # active on [-1, 1]^2
    W1 = np.array([[1.0, -1.0], [0.0, 0.0]])
    f = Network([W0, W1], [b0, np.zeros(2)])
    g = Network([W0, W1], [b0, np.array([0.5, 0.0])])
    ball = L1Ball(np.array([0.5, -0.5]), 0.9, -1, 1)
    assert verify_equivalence(f, g, ball, mode=TopK(1), samples=0).verdict == "equivalent"
    rb = verify_equivalence(f, g, Box(ball.lower, ball.upper), mode=TopK(1), samples=0)
    assert rb.verdict == "not_equivalent" and not ball.contains(rb.counterexample)


def test_linf_gap_property_agrees_with_epsilon_mode():
    f, g = _pruned_pair(4)
    dom = Box(-1, 1, dim=4)
    gap = verify_equivalence(f, g, dom, mode="epsilon", epsilon=0.0, samples=0).gap_lower_bound
    for eps in (0.5 * gap, 2 * gap + 0.1):
        a = verify_equivalence(f, g, dom, mode=LinfGap(eps), samples=0)
        b = verify_equivalence(f, g, dom, mode="epsilon", epsilon=eps, samples=0)
        assert a.verdict == b.verdict != "unknown"


def test_output_disjunction_is_top1_for_two_classes():
    f, g = _pruned_pair(5)
    f = Network(list(f.weights[:-1]) + [f.weights[-1][:2]], list(f.biases[:-1]) + [f.biases[-1][:2]])
    g = Network(list(g.weights[:-1]) + [g.weights[-1][:2]], list(g.biases[:-1]) + [g.biases[-1][:2]])
    # unsafe: (f0 >= f1 and g0 <= g1) or (f0 <= f1 and g0 >= g1), over y = [f0, f1, g0, g1]
    C1 = np.array([[-1.0, 1, 0, 0], [0, 0, 1, -1]])
    p = OutputDisjunction([(C1, np.zeros(2)), (-C1, np.zeros(2))], 2)
    for dom in (Box(-1, 1, dim=4), L1Ball(np.zeros(4), 0.3, -1, 1)):
        a = verify_property(f, g, dom, p, samples=0)
        b = verify_equivalence(f, g, dom, mode="top1", samples=0)
        assert a.verdict == b.verdict != "unknown"


def test_search_property_on_a_built_problem_and_time_limit():
    f, g = _pruned_pair(6)
    dom = Box(-1, 1, dim=4)
    pb = GapProblem.build(f, g, dom, samples=0)
    r = search_property(pb, TopK(2), tol=1e-6)
    assert set(r) >= {"lower", "upper", "witness", "entries", "num_milps"}
    res = verify_equivalence(f, g, dom, mode=TopK(1), samples=0, time_limit=1e-6)
    assert res.verdict in ("unknown", "equivalent", "not_equivalent")
    if res.verdict == "unknown":
        assert str(res.status) == "time_limit"
    with pytest.raises(ValueError):
        verify_equivalence(f, g, dom, mode=TopK(1), epsilon=0.1)


@pytest.mark.parametrize("prop", [TopK(1), TopK(2), DeltaTop1(0.2), LinfGap(0.0), L1Gap(0.0)])
def test_attack_stays_inside_and_never_loses_margin(prop):
    from mipnet.analyses.properties import attack

    f, g = _pruned_pair(0)
    for dom in (L1Ball(np.zeros(4), 1.5, -1, 1), Box(-1, 1, dim=4)):
        X0 = dom.sample(10, seed=3)
        X = attack(f, g, dom, prop, X0, starts=10, iterations=15)
        assert len(X) and dom.contains(X).all()
        assert prop.margin(f.forward(X), g.forward(X)).max() >= prop.margin(f.forward(X0), g.forward(X0)).max()


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6), st.integers(1, 4), st.floats(0, 1), st.integers(0, 10_000))
def test_topk_attack_targets_are_below_the_margin_and_reach_it(m, k, delta, seed):
    """Each target of TopK (class c held as f's top class) is <= 0 wherever the margin is, equals it
    where c is f's argmax, so their maximum is the margin wherever that is positive."""
    rng = np.random.default_rng(seed)
    fa, fb = rng.normal(size=(40, m)), rng.normal(size=(40, m))
    prop = TopK(k, delta=delta)
    full = prop.margin(fa, fb)
    parts = np.array([t.margin(fa, fb) for t in prop.attack_targets(m)])
    if k > m - 1:
        assert np.all(full == -np.inf)
        return
    assert parts.shape == (m, 40)
    assert np.all(parts[:, full <= 0] <= 0)
    np.testing.assert_array_equal(parts[np.argmax(fa, axis=1), np.arange(40)], full)


def test_attack_refutes_published_rows_that_took_gurobi_half_an_hour(shared_models):
    """Kleine Büning, Kern and Sinz (CP 2020) rows whose counterexamples Gurobi found only at its
    1800 s limit: the attack (targeted classes, Frank-Wolfe steps on the L1 ball) refutes them
    before any MILP; the witness passes a plain numpy forward pass of the published weights."""
    import json

    from mipnet.io import load_network

    folder = shared_models / "pruned8x8"
    rows = json.loads((folder / "published_milp_results_fixed_radius.json").read_text())["rows"]
    centres = json.loads((folder / "cluster_centres.json").read_text())["clusters"]
    for i in (58, 265):
        row = rows[i]
        assert row["verdict"] == "counterexample_found" and row["seconds"] > 1800
        nets, weights = [], []
        for name in (row["net_1"], row["net_2"]):
            nets.append(load_network(folder / f"{name}.onnx"))
            w = np.load(folder / f"{name}.npz")
            weights.append([(w[f"W{j}"].astype(np.float64), w[f"b{j}"].astype(np.float64)) for j in range(3)])
        centre = np.asarray(centres[row["cluster"]]["centre"], dtype=np.float64)
        dom = L1Ball(centre, row["manhattan_radius"], 0, 16)
        res = verify_equivalence(nets[0], nets[1], dom, mode=TopK(row["top_k"]), time_limit=30)
        assert res.verdict == "not_equivalent" and res.num_milps == 0
        x = np.asarray(res.counterexample, dtype=np.float64)
        assert np.all((x >= 0) & (x <= 16)) and np.abs(x - centre).sum() <= row["manhattan_radius"] * (1 + 1e-9)
        fa, fb = (np.maximum(np.maximum(x @ w[0][0] + w[0][1], 0) @ w[1][0] + w[1][1], 0) @ w[2][0] + w[2][1]
                  for w in weights)
        c = int(np.argmax(fa))
        assert np.sum(np.delete(fb, c) > fb[c]) >= row["top_k"]  # k classes of net_2 above net_1's top class


# ---------------------------------------------------------------------------- the input branch and bound (issue 10)
def _check_verdict(f, g, dom, prop, res, n=20_000, seed=0):
    """An equivalent verdict: no sampled violation; a counterexample: float64 margin > 0, in the domain."""
    if res.verdict == "equivalent":
        X = dom.sample(n, seed=seed, include_vertices=True)
        assert not np.any(prop.margin(f.forward(X), g.forward(X)) > 0)
    elif res.verdict == "not_equivalent":
        x = np.asarray(res.counterexample)
        assert dom.contains(x) and prop.margin(f.forward(x), g.forward(x))[0] > 0


@pytest.mark.parametrize("prop, seed", [(TopK(1), 0), (TopK(1), 1), (TopK(1), 3), (TopK(2), 0), (TopK(2), 3),
                                        (DeltaTop1(0.3), 1), (DeltaTop1(0.3), 3)])
def test_bab_engine_decides_topk_and_delta_top1_like_the_milp(prop, seed):
    f, g = _pruned_pair(seed)
    dom = Box(-1, 1, dim=4)
    milp = verify_equivalence(f, g, dom, mode=prop, samples=0)
    bab = verify_equivalence(f, g, dom, mode=prop, engine="bab", time_limit=60)
    assert bab.search is not None and bab.search["engine"] == "bab"
    assert bab.verdict == milp.verdict != "unknown"
    assert bab.mode == prop.name
    _check_verdict(f, g, dom, prop, bab, seed=seed)


def test_bab_engine_decides_an_output_disjunction_with_its_rows_as_spec():
    f, g = _pruned_pair(5)
    f = Network(list(f.weights[:-1]) + [f.weights[-1][:2]], list(f.biases[:-1]) + [f.biases[-1][:2]])
    g = Network(list(g.weights[:-1]) + [g.weights[-1][:2]], list(g.biases[:-1]) + [g.biases[-1][:2]])
    C1 = np.array([[-1.0, 1, 0, 0], [0, 0, 1, -1]])
    p = OutputDisjunction([(C1, np.zeros(2)), (-C1, np.zeros(2))], 2)  # argmax disagreement
    Ca, Cb = p.spec(2)
    assert Ca.shape == (4, 2) and Cb.shape == (4, 2)
    for dom in (Box(-1, 1, dim=4), Box(-0.2, 0.2, dim=4)):
        a = verify_equivalence(f, g, dom, mode=p, engine="bab", time_limit=60)
        b = verify_equivalence(f, g, dom, mode="top1", samples=0)
        assert a.verdict == b.verdict != "unknown"
        _check_verdict(f, g, dom, p, a)
    # a property that always holds (f0 - f1 <= 100 is never violated here): proven at the root
    q = OutputDisjunction([(np.array([[-1.0, 1, 0, 0]]), np.array([-100.0]))], 2)
    r = verify_equivalence(f, g, Box(-1, 1, dim=4), mode=q, engine="bab")
    assert r.verdict == "equivalent" and r.search["boxes_closed"] == 1


@pytest.mark.parametrize("seed, radius", [(1, 0.5), (2, 0.5)])
def test_bab_engine_on_l1_balls_agrees_with_the_milp(seed, radius):
    f, g = _pruned_pair(seed)
    dom = L1Ball(np.zeros(4), radius, -1, 1)
    for mode in ("top1", TopK(2)):
        prop = TopK(1) if mode == "top1" else mode
        milp = verify_equivalence(f, g, dom, mode=mode, samples=0, engine="milp")
        bab = verify_equivalence(f, g, dom, mode=mode, engine="bab", time_limit=60)
        assert bab.verdict == milp.verdict != "unknown"
        _check_verdict(f, g, dom, prop, bab, seed=seed)
    X = dom.sample(20_000, seed=seed, include_vertices=True)
    eps = 1.2 * float(np.abs(f.forward(X) - g.forward(X)).max())
    r = verify_equivalence(f, g, dom, mode="epsilon", epsilon=eps, engine="bab", time_limit=60)
    assert r.verdict == "equivalent"
    _check_verdict(f, g, dom, LinfGap(eps), r, seed=seed + 1)


def test_bab_on_an_l1_ball_never_reports_a_witness_outside_it():
    """The ball's box contains disagreements that the ball excludes (test_l1_ball_decides_what_its_box_cannot)."""
    W0 = np.eye(2)
    b0 = np.full(2, 2.0)
    W1 = np.array([[1.0, -1.0], [0.0, 0.0]])
    f = Network([W0, W1], [b0, np.zeros(2)])
    g = Network([W0, W1], [b0, np.array([0.5, 0.0])])
    ball = L1Ball(np.array([0.5, -0.5]), 0.9, -1, 1)
    r = verify_equivalence(f, g, ball, mode=TopK(1), engine="bab", time_limit=60)
    assert r.verdict == "equivalent"
    rb = verify_equivalence(f, g, Box(ball.lower, ball.upper), mode=TopK(1), engine="bab", time_limit=60)
    assert rb.verdict == "not_equivalent" and not ball.contains(rb.counterexample)


def test_top_k_with_k_at_least_the_number_of_classes_holds_everywhere():
    """A single output (top-1, delta-top-1) or k >= m classes: the property holds at every input.
    The branch and bound and TopK's MILPs raised numpy's 'zero-size array' error on one output."""
    from mipnet.analyses.properties import DeltaTop1, TopK

    one = Network.random([2, 4, 1], seed=0)
    other = Network([W * 1.1 for W in one.weights], one.biases)
    three = Network.random([2, 4, 3], seed=0)
    box = Box(-1, 1, dim=2)
    cases = [(one, other, m) for m in ("top1", TopK(1), DeltaTop1(0.1))] + [(three, Network.random([2, 5, 3], seed=1),
                                                                            TopK(3))]
    for a, b, mode in cases:
        for engine in ("auto", "bab", "milp"):
            r = verify_equivalence(a, b, box, mode=mode, engine=engine)
            assert r.verdict == "equivalent" and r.num_milps == 0 and r.counterexample is None
        assert not np.isfinite(r.gap_upper_bound)
    # k < m is still decided by the analysis: two different 3-class nets disagree somewhere
    r = verify_equivalence(three, Network.random([2, 5, 3], seed=1), box, mode=TopK(1))
    assert r.verdict == "not_equivalent"
