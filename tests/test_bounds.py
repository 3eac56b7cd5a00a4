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
    LP_OPTIONS,
    METHODS,
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
@pytest.mark.parametrize("method", ["ia", "symbolic", "alpha", "lp", "auto"])
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
    for b in (symbolic_bounds(net, dom), lp_bounds(net, dom), compute_bounds(net, dom, method="auto")):
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


def test_every_consumer_validates_bounds_the_same_way():
    from mipnet.analyses.equivalence import verify_equivalence
    from mipnet.analyses.gap import pruning_gap
    from mipnet.analyses.regions import count_regions
    from mipnet.analyses.stability import find_stable_neurons
    from mipnet.core.errors import InvalidArgumentError

    net, dom = Network.random([2, 4, 1], seed=0), Box(-1, 1, dim=2)
    other = interval_bounds(Network.random([2, 4, 4, 1], seed=0), dom)  # another network's bounds
    calls = [lambda b: find_stable_neurons(net, dom, bounds=b),
             lambda b: verify_equivalence(net, net, dom, bounds_a=b),
             lambda b: pruning_gap(net, net, dom, bounds=b),
             lambda b: count_regions(net, dom, method="milp", bounds=b)]
    for call in calls:
        with pytest.raises(InvalidArgumentError, match="unknown bounds method 'crown'; use one of ia, symbolic"):
            call("crown")
    for call in calls[:2]:
        with pytest.raises(InvalidArgumentError, match="must be a mipnet.bounds.Bounds computed for this network"):
            call(other)


# ---------------------------------------------------------------------------- soundness in floating point
def _scaled(widths, seed, scale):
    net = Network.random(widths, seed=seed, bias_scale=1.0)
    return Network([W * scale for W in net.weights], [b * scale for b in net.biases])


@pytest.mark.parametrize(
    "widths,seed,scale,box",
    [
        ([4, 16, 16, 3], 0, 1.0, (-1.0, 1.0)),
        ([4, 16, 16, 3], 0, 1e3, (-1.0, 1.0)),
        ([6, 20, 20, 20, 2], 1, 1e3, (-1e4, 1e4)),
        ([8, 24, 24, 2], 2, 1.0, (0.0, 1e8)),
        ([6, 20, 20, 20, 2], 3, 1e-3, (0.0, 16.0)),
        ([12, 16, 16, 4], 4, 1e3, (-1e6, 1e6)),
    ],
)
@pytest.mark.parametrize("method", ["ia", "symbolic", "alpha", "lp", "auto", "lp-exact"])
def test_bounds_contain_1e5_samples_at_any_magnitude(widths, seed, scale, box, method):
    net = _scaled(widths, seed, scale)
    dom = Box(box[0], box[1], dim=widths[0])
    X = _adversarial_points(net, dom, n=100_000, seed=seed)  # all 2^n0 vertices lead the sample
    if method == "lp-exact":
        b = lp_bounds(net, dom, sign_only=False)
    else:
        b = compute_bounds(net, dom, method=method)
    for y, lb in zip(net.preactivations(X), b.layers):
        assert np.all(y >= lb.lower) and np.all(y <= lb.upper)


def test_interval_bounds_cover_the_rounding_of_long_dot_products():
    # 1 + 782 * 1e-16 + 1: each tiny term is below half an ulp of the running sum, so the
    # float64 dot product loses ~5e-15, more than a fixed 8 eps widening (3.6e-15) covers
    import math

    n = 784
    W = np.full((1, n), 1e-16)
    W[0, 0] = W[0, -1] = 1.0
    net = Network([W, np.ones((1, 1))], [np.zeros(1), np.zeros(1)])
    dom = Box(1.0, 1.0, dim=n)
    exact = math.fsum(W[0])  # the pre-activation at the only point of the domain, computed exactly
    for b in (interval_bounds(net, dom), symbolic_bounds(net, dom), lp_bounds(net, dom)):
        assert b.layers[0].lower[0] <= exact <= b.layers[0].upper[0]


def test_symbolic_first_layer_is_the_interval_layer_on_a_box_and_tighter_on_a_ball():
    """On a box the first layer's back-substitution is the interval form (not repeated); on an
    L1 ball its support function is tighter than the ball's bounding box."""
    from mipnet import L1Ball

    net = Network.random([6, 12, 8, 2], seed=3)
    dom = Box(-0.7, 1.3, dim=6)
    ia, sym = interval_bounds(net, dom).layers[0], symbolic_bounds(net, dom).layers[0]
    assert np.array_equal(ia.lower, sym.lower) and np.array_equal(ia.upper, sym.upper)
    ball = L1Ball(np.full(6, 0.3), 0.5, -1, 1)
    ia, sym = interval_bounds(net, ball).layers[0], symbolic_bounds(net, ball).layers[0]
    assert np.all(sym.upper - sym.lower < 0.8 * (ia.upper - ia.lower))


@pytest.mark.parametrize("seed", range(4))
def test_symbolic_bounds_contain_the_exact_values_at_every_vertex(seed):
    """Exact rational forward passes at every vertex of boxes whose ends are not dyadic (the
    midpoint and radius of the concretisation are rounded): every layer's bounds contain them."""
    import itertools
    from fractions import Fraction

    rng = np.random.default_rng(seed)
    net = Network.random([4, 10, 10, 3], seed=seed)
    lo = rng.uniform(-2, 1, size=4) + 0.1
    dom = Box(lo, lo + rng.uniform(1e-12, 1.0, size=4) / 3)
    b = symbolic_bounds(net, dom)
    for v in itertools.product(*zip(dom.lower, dom.upper)):
        h = [Fraction(float(x)) for x in v]
        for k, (W, bias) in enumerate(net.layers):
            y = [sum((Fraction(float(w)) * x for w, x in zip(row, h)), Fraction(float(c))) for row, c in zip(W, bias)]
            lb = b.layers[k]
            assert all(Fraction(float(l)) <= yi <= Fraction(float(u)) for l, yi, u in zip(lb.lower, y, lb.upper))
            h = [max(yi, Fraction(0)) for yi in y]


@pytest.mark.parametrize("options", [{}, LP_OPTIONS], ids=["highs-defaults", "lp-options"])
def test_lp_widening_covers_the_solver_tolerance(options):
    # small weights: the LP optimum is ~1e-3 while HiGHS's absolute tolerances (1e-7) leave
    # errors of ~1.4e-7 (a widening of 1e-7 (1 + |v|) is not enough); a re-solve at
    # tolerance 1e-10 is the reference
    from mipnet.bounds import lp_slack
    from mipnet.milp.encoding import HighsModel

    net = _scaled([64, 50, 50, 50, 10], 3, 1e-3)
    dom = Box(-1.0, 1.0, dim=64)
    sym = symbolic_bounds(net, dom)
    tight = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
    models = [HighsModel(dom, options=options), HighsModel(dom, options={**options, **tight})]
    cols = [m.input_cols for m in models]
    hmag = np.maximum(sym.layers[0].upper, 0.0)
    worst_old = worst_new = -np.inf
    for l in range(net.num_hidden_layers):
        W, b = net.layers[l]
        if l > 0:
            for i in range(W.shape[0]):
                for sense in (1, -1):
                    v, ref = (m.optimize_affine(c, W[i], b[i], maximize=sense == 1) for m, c in zip(models, cols))
                    if v is None or ref is None:
                        continue
                    err = sense * (ref - v)  # > 0: the default solve is not conservative
                    worst_old = max(worst_old, err - 1e-7 * (1 + abs(v)))
                    worst_new = max(worst_new, err - lp_slack(v, W[i], b[i], hmag))
            hmag = np.maximum(sym.layers[l].upper, 0.0)
        cols = [m.add_layer(c, W, b, sym.layers[l], relax=True).h_cols for m, c in zip(models, cols)]
    if not options:
        assert worst_old > 0  # the old absolute widening missed the solver error somewhere
    assert worst_new < 0  # the widening relative to tolerance and magnitudes covers it


@pytest.mark.parametrize("sign_only", [False, True])
def test_lp_time_limit_per_lp_takes_effect(sign_only):
    net = Network.random([784, 32, 32, 10], seed=0)
    dom = Box(0.0, 1.0, dim=784)
    full = lp_bounds(net, dom, sign_only=sign_only)
    assert not full.notes
    rushed = lp_bounds(net, dom, time_limit_per_lp=1e-6, sign_only=sign_only)
    assert rushed.notes and all("LP not solved (time limit)" in n for n in rushed.notes)
    assert rushed.tighter_or_equal(symbolic_bounds(net, dom), tol=0)  # kept the previous bounds
    assert full.tighter_or_equal(rushed, tol=0) and not rushed.tighter_or_equal(full, tol=0)
    assert rushed.contains(net, dom.sample(20_000, seed=0, include_vertices=True), tol=0)


@pytest.mark.parametrize("sign_only,at", [(False, 7), (True, 2)])
def test_lp_bounds_interrupted_returns_sound_partial_bounds(monkeypatch, sign_only, at):
    from mipnet.core.errors import Interrupted
    from mipnet.milp.encoding import HighsModel

    net = Network.random([4, 12, 12, 12, 2], seed=1)
    dom = Box(-1.0, 1.0, dim=4)
    real = HighsModel.solve
    calls = []

    def flaky(self, *a, **kw):
        calls.append(1)
        if len(calls) == at:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    monkeypatch.setattr(HighsModel, "solve", flaky)
    with pytest.raises(Interrupted) as info:
        lp_bounds(net, dom, sign_only=sign_only)
    part = info.value.partial
    assert isinstance(part, Bounds) and len(part.layers) == len(net.layers)
    assert any("interrupted" in n for n in part.notes)
    assert part.contains(net, _adversarial_points(net, dom, n=20_000), tol=0)


# ---------------------------------------------------------------------------- LP only where it pays
def _exact(net, dom):
    return lp_bounds(net, dom, sign_only=False)


SIGN_NETS = [([3, 8, 6, 2], 1), ([4, 6, 6, 6, 3], 2), ([6, 12, 8, 4], 4), ([8, 20, 20, 20, 4], 5),
             ([10, 32, 32, 5], 6)]


def _domains(n0, seed):
    c = np.random.default_rng(seed).uniform(-0.5, 0.5, n0)
    return [Box(-1, 1, dim=n0), LinfBall(c, 0.2, -1, 1)]


@pytest.mark.parametrize("widths,seed", SIGN_NETS)
def test_sign_only_lp_settles_what_the_exact_lp_settles(widths, seed):
    net = Network.random(widths, seed=seed)
    for dom in _domains(widths[0], seed):
        exact = _exact(net, dom)
        fast = lp_bounds(net, dom, sign_only=True, start="alpha")
        fast_sym = lp_bounds(net, dom, sign_only=True, start="symbolic")
        auto = compute_bounds(net, dom, method="auto")
        for b in (fast, fast_sym, auto):
            assert np.array_equal(b.state_vector(), exact.state_vector())
            assert b.lp_solves <= exact.lp_solves
        X = _adversarial_points(net, dom, n=10_000, seed=seed)
        for b in (exact, fast, fast_sym, auto):
            assert b.contains(net, X, tol=0)
        # wherever the exact path ran an LP (the sides it moved from its symbolic start), its value
        # is inside every other bound, up to the LP's slack (stable neurons keep symbolic bounds)
        sym = symbolic_bounds(net, dom)
        for b in (fast, fast_sym, auto, sym):
            for a, e, s0 in zip(b.layers, exact.layers, sym.layers):
                tol = 1e-5 * (1 + np.abs(e.lower) + np.abs(e.upper))  # the LP values carry lp_slack
                lo_lp, hi_lp = e.lower != s0.lower, e.upper != s0.upper
                assert np.all(~lo_lp | (a.lower <= e.lower + tol)) and np.all(~hi_lp | (a.upper >= e.upper - tol))


def test_sign_lp_stops_at_the_objective_bound():
    """HiGHS's objective bound on an LP minimisation: stopped once the sign is proven, and the
    bound returned never exceeds the true optimum."""
    from mipnet.bounds.lp import _sign_lp  # noqa: PLC2701 - the unit under test
    from mipnet.milp.encoding import HighsModel

    net = Network.random([20, 30, 30, 2], seed=3)
    dom = Box(-1, 1, dim=20)
    sym = symbolic_bounds(net, dom)
    m = HighsModel(dom, options=LP_OPTIONS)
    cols = m.add_layer(m.input_cols, *net.layers[0], sym.layers[0], relax=True).h_cols
    hmag = np.maximum(sym.layers[0].upper, 0.0)
    W, b = net.layers[1]
    opt = {(i, sense): m.optimize_affine(cols, sense * W[i], sense * b[i], maximize=False)
           for i in range(W.shape[0]) for sense in (1.0, -1.0)}
    stopped = 0
    for i in range(W.shape[0]):
        for sense in (1.0, -1.0):
            # shift the bias so that the minimum of sense * y is +0.5: the sign is provable
            shift = 0.5 - opt[i, sense]
            m.optimize_affine(cols, W[i], b[i], maximize=sense > 0)  # start from the opposite optimum
            val, x = _sign_lp(m, cols, W[i], b[i] + sense * shift, sense, hmag, 1e-7)
            assert val is not None and 0 < val <= 0.5 + 1e-6
            stopped += x is None
            # and a sign that does not hold: solved to optimality, the optimum as the bound
            val2, x2 = _sign_lp(m, cols, W[i], b[i] + sense * (shift - 1.0), sense, hmag, 1e-7)
            assert x2 is not None and -0.5 - 1e-4 <= val2 <= -0.5 + 1e-6
    assert stopped >= W.shape[0]  # most proofs stop early (the dual objective passes the margin)


def test_witnesses_never_show_a_stable_neuron_unstable():
    from mipnet.bounds.lp import Witnesses

    W1 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b1 = np.array([-5.0, 5.0, 0.0])  # on [-1, 1]^2: inactive, active, unstable
    net = Network([W1, np.ones((1, 3))], [b1, np.zeros(1)])
    dom = Box(-1, 1, dim=2)
    w = Witnesses(net, dom, interval_bounds(net, dom).layers)
    w.add(dom.sample(1000, seed=0, include_vertices=True))
    w.search(0, np.array([0, 1]), np.array([1.0, -1.0]), dom.sample(10, seed=1))
    assert list(w.pos[0]) == [False, True, True] and list(w.neg[0]) == [True, False, True]
    assert list(w.unstable(0)) == [False, False, True]
    w.add(np.array([[5.0, 5.0]]))  # clipped to the box first
    assert not w.pos[0][0]


def test_compute_bounds_names_and_auto_route():
    net = Network.random([6, 12, 12, 3], seed=2)
    dom = LinfBall(np.zeros(6), 0.05, -1, 1)
    for m in METHODS:
        assert compute_bounds(net, dom, method=m).method == m
    with pytest.raises(ValueError, match="takes no options"):
        compute_bounds(net, dom, method="ia", output=False)
    tiny = compute_bounds(net, LinfBall(np.zeros(6), 1e-6, -1, 1), method="auto")
    assert tiny.num_unstable == 0 and tiny.notes[0] == "route: symbolic"  # nothing left for alpha
    small = compute_bounds(net, Box(-1, 1, dim=6), method="auto")  # a few open neurons: LPs are cheaper
    assert small.notes[0] == "route: symbolic -> sign-only LPs"
    big = Network.random([6, 80, 80, 3], seed=2)  # >= ALPHA_MIN_OPEN open beyond the first layer
    wide = compute_bounds(big, Box(-1, 1, dim=6), method="auto")
    assert wide.notes[0].startswith("route: symbolic -> alpha")
    assert wide.tighter_or_equal(symbolic_bounds(big, Box(-1, 1, dim=6)), tol=0)
    with pytest.raises(ValueError):
        lp_bounds(net, dom, start="crown")
    # both starts of the LP path settle the same neurons
    a = lp_bounds(big, Box(-1, 1, dim=6), start="alpha")
    s_ = lp_bounds(big, Box(-1, 1, dim=6), start="symbolic")
    assert np.array_equal(a.state_vector(), s_.state_vector())


def test_cli_bounds_methods(tmp_path, capsys):
    import json

    from mipnet.cli import main
    from mipnet.io import save_network

    path = tmp_path / "n.npz"
    save_network(Network.random([3, 6, 6, 2], seed=0), path)
    out = {}
    for m in METHODS:
        assert main(["bounds", str(path), "--box", "-1", "1", "--method", m, "--json"]) == 0
        out[m] = json.loads(capsys.readouterr().out)
        assert out[m]["method"] == m
    assert main(["bounds", str(path), "--box", "-1", "1", "--exact-lp", "--json"]) == 0
    exact = json.loads(capsys.readouterr().out)
    assert [l["unstable"] for l in exact["layers"][:-1]] == [l["unstable"] for l in out["lp"]["layers"][:-1]]
    assert main(["bounds", str(path), "--box", "-1", "1", "--method", "alpha", "--exact-lp"]) == 3
    assert "only used with --method lp" in capsys.readouterr().err


def test_tighten_neurons_is_a_pure_group_function():
    """Groups of a layer tightened separately (pickled in and out, as a worker process would get
    them) give the bounds of the serial LP pass over the same starting bounds."""
    import pickle

    from mipnet.bounds import tighten_neurons

    net = Network.random([6, 20, 16, 3], seed=7)
    dom = Box(-1, 1, dim=6)
    sym = symbolic_bounds(net, dom)
    serial = lp_bounds(net, dom, initial=sym, output=False, sign_only=False)
    open1 = np.flatnonzero((sym.layers[1].lower < 0) & (sym.layers[1].upper > 0))
    assert open1.size >= 4
    lo, hi = sym.layers[1].lower.copy(), sym.layers[1].upper.copy()
    solves = 0
    for group in np.array_split(np.arange(16), 3):
        args = pickle.loads(pickle.dumps((net, dom, sym, 1, group)))
        g = pickle.loads(pickle.dumps(tighten_neurons(*args)))
        assert g.layer == 1 and np.array_equal(g.neurons, group)
        lo[g.neurons], hi[g.neurons] = np.maximum(lo[g.neurons], g.lower), np.minimum(hi[g.neurons], g.upper)
        solves += g.lp_solves
    # the serial pass also intersects layer 1 with intervals from layer 0 (exact there on a box): same LPs
    tol = 1e-6 * (1 + np.abs(serial.layers[1].lower) + np.abs(serial.layers[1].upper))
    assert np.all(np.abs(lo - serial.layers[1].lower) <= tol) and np.all(np.abs(hi - serial.layers[1].upper) <= tol)
    assert open1.size <= solves <= 2 * open1.size
    # sign-only groups settle the same signs; the output layer gets both LPs per output
    sg = tighten_neurons(net, dom, sym, 1, open1, sign_only=True)
    states = classify_neurons(sg.lower, sg.upper)
    assert np.array_equal(states, classify_neurons(serial.layers[1].lower[open1], serial.layers[1].upper[open1]))
    out = tighten_neurons(net, dom, serial, 2, range(3))
    assert out.lp_solves == 6
    X = dom.sample(20_000, seed=1, include_vertices=True)
    y = net.preactivations(X)
    assert np.all(y[1][:, open1] >= sg.lower) and np.all(y[1][:, open1] <= sg.upper)
    assert np.all(y[2] >= out.lower) and np.all(y[2] <= out.upper)
    with pytest.raises(ValueError):
        tighten_neurons(net, dom, sym, 1, [16])
    with pytest.raises(ValueError):
        tighten_neurons(net, dom, sym.layers[:2], 1, [0])


def test_tighten_neurons_warm_basis_and_seen_signs():
    """A group started from :func:`relaxation_basis` gets the bounds of a cold start with fewer
    simplex iterations; signs given as ``seen`` get no sign LP."""
    from mipnet.bounds import tighten_neurons
    from mipnet.bounds.lp import relaxation_basis

    net = Network.random([30, 40, 30, 3], seed=2)
    dom = Box(-1, 1, dim=30)
    sym = symbolic_bounds(net, dom)
    open1 = np.flatnonzero((sym.layers[1].lower < 0) & (sym.layers[1].upper > 0))
    assert open1.size >= 10
    basis = relaxation_basis(net, dom, sym, 1, open1)
    assert basis is not None
    for group in np.array_split(open1, 3):
        cold = tighten_neurons(net, dom, sym, 1, group)
        warm = tighten_neurons(net, dom, sym, 1, group, basis=basis)
        tol = 1e-6 * (1 + np.abs(cold.lower) + np.abs(cold.upper))
        assert np.all(np.abs(warm.lower - cold.lower) <= tol) and np.all(np.abs(warm.upper - cold.upper) <= tol)
        assert warm.lp_solves == cold.lp_solves
    width = net.layers[1][0].shape[0]
    none_seen = tighten_neurons(net, dom, sym, 1, open1, sign_only=True)
    all_seen = tighten_neurons(net, dom, sym, 1, open1, sign_only=True,
                               seen=(np.ones(width, bool), np.ones(width, bool)))
    assert none_seen.lp_solves > 0 and all_seen.lp_solves == 0
    assert np.array_equal(all_seen.lower, sym.layers[1].lower[open1])  # nothing settled, nothing claimed
    with pytest.raises(ValueError, match="boolean masks of length 30"):
        tighten_neurons(net, dom, sym, 1, open1, sign_only=True, seen=(np.ones(3, bool), np.ones(3, bool)))


def test_relaxation_basis_started_from_the_last_layers_basis():
    """The output layer's basis, started from the second layer's (extended), is optimal for the
    same LP (the same objective as a cold start's) and starts its groups to the same bounds."""
    from mipnet.bounds import tighten_neurons
    from mipnet.bounds.lp import relaxation_basis

    net = Network.random([30, 40, 30, 3], seed=2)
    dom = Box(-1, 1, dim=30)
    sym = symbolic_bounds(net, dom)
    open1 = np.flatnonzero((sym.layers[1].lower < 0) & (sym.layers[1].upper > 0))
    first = relaxation_basis(net, dom, sym, 1, open1)
    cold = relaxation_basis(net, dom, sym, 2)
    warm = relaxation_basis(net, dom, sym, 2, start=first)
    assert first is not None and cold is not None and warm is not None
    assert warm[0].size == cold[0].size > first[0].size and warm[1].size == cold[1].size > first[1].size
    outs = [tighten_neurons(net, dom, sym, 2, np.arange(3), basis=b) for b in (None, cold, warm)]
    for o in outs[1:]:
        tol = 1e-6 * (1 + np.abs(outs[0].lower) + np.abs(outs[0].upper))
        assert np.all(np.abs(o.lower - outs[0].lower) <= tol) and np.all(np.abs(o.upper - outs[0].upper) <= tol)


def test_chain_order_is_a_permutation_of_nearest_neighbours():
    from mipnet.bounds.lp import chain_order

    rng = np.random.default_rng(0)
    R = rng.normal(size=(30, 7))
    R[5] = 0.0  # a zero objective is still ordered
    order = chain_order(R)
    assert sorted(order) == list(range(30)) and order[0] == 0
    U = R / np.maximum(np.linalg.norm(R, axis=1), 1e-300)[:, None]
    for k in range(len(order) - 1):  # each next one is the most similar among those left
        left = order[k + 1:]
        assert np.isclose(U[order[k]] @ U[order[k + 1]], max(U[order[k]] @ U[j] for j in left))
    assert list(chain_order(R[:2])) == [0, 1] and chain_order(R[:0]).size == 0
