import numpy as np
import pytest

from mipnet import Box, Domain, InvalidDomainError, LinfBall, Polytope, as_domain


def test_box_broadcasts_scalars():
    d = Box(0, 16, dim=4)
    assert d.dim == 4
    assert np.all(d.lower == 0) and np.all(d.upper == 16)


def test_ball_is_clipped():
    d = LinfBall([0.0, 5.0, 16.0], 1.0, 0, 16)
    np.testing.assert_array_equal(d.lower, [0, 4, 15])
    np.testing.assert_array_equal(d.upper, [1, 6, 16])


def test_polytope_contains_and_sample():
    d = Polytope([[1.0, 1.0]], [1.0], [0, 0], [1, 1])
    X = d.sample(500, seed=0)
    assert X.shape == (500, 2)
    assert np.all(X.sum(1) <= 1 + 1e-12)
    assert d.contains([0.2, 0.2]) and not d.contains([0.9, 0.9])


def test_sample_with_vertices_hits_corners():
    d = Box(-1, 1, dim=3)
    X = d.sample(100, seed=1, include_vertices=True)
    assert np.any(np.all(np.abs(X) == 1, axis=1))
    assert np.all(d.contains(X))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Box(1, 0, dim=2), "lower > upper at input 0"),
        (lambda: Box(0, np.inf, dim=2), "must be finite"),
        (lambda: Box(0, 1), "scalar bounds need the dimension"),
        (lambda: Box([0, 0], [1, 1, 1]), "has 3 entries, expected 2"),
        (lambda: LinfBall([0, 0], -1), "radius must be finite and >= 0"),
        (lambda: LinfBall([20, 20], 1, 0, 16), "does not meet the clipping box"),
        (lambda: Domain([0, 0], [1, 1], A=[[1, 1]]), "give both A and c"),
        (lambda: Polytope([[1, 1, 1]], [1], [0, 0], [1, 1]), "A has 3 columns, the domain has 2 inputs"),
        (lambda: as_domain("box"), "expected a Domain"),
    ],
)
def test_invalid_domains(make, match):
    with pytest.raises(InvalidDomainError, match=match):
        make()


def test_dimension_check():
    with pytest.raises(InvalidDomainError, match="the domain has 2 inputs but the network takes 3"):
        Box(0, 1, dim=2).check_dim(3)


# ---------------------------------------------------------------------------- L1 balls
from hypothesis import given, settings, strategies as st  # noqa: E402
from scipy.optimize import linprog  # noqa: E402

from mipnet import L1Ball  # noqa: E402
from mipnet.core.numerics import in_domain  # noqa: E402


def _lp_support(dom, w):
    """max w.x over ball ∩ box by scipy's LP on (x, p, q): an independent route to the support."""
    n = dom.dim
    c = np.concatenate([-w, np.zeros(2 * n)])
    A_eq = np.hstack([np.eye(n), -np.eye(n), np.eye(n)])
    A_ub = np.concatenate([np.zeros(n), np.ones(2 * n)])[None, :]
    bounds = [(lo, hi) for lo, hi in zip(dom.lower, dom.upper)] + [(0, None)] * (2 * n)
    res = linprog(c, A_ub=A_ub, b_ub=[dom.l1_radius], A_eq=A_eq, b_eq=dom.l1_center, bounds=bounds, method="highs")
    assert res.status == 0
    return -res.fun


def test_l1_ball_contains_sample_vertices():
    c = np.array([1.0, 2.0, 3.0])
    d = L1Ball(c, 1.5, 0, 2.5)  # the centre is outside the clip box in coordinate 2
    assert d.dim == 3 and not d.is_box
    assert np.allclose(d.lower, [0, 0.5, 1.5]) and np.allclose(d.upper, [2.5, 2.5, 2.5])
    assert d.contains(d.center) and np.allclose(d.center, [1, 2, 2.5])
    X = d.sample(500, seed=0, include_vertices=True)
    assert X.shape == (500, 3) and d.contains(X).all() and in_domain(d, X).all()
    assert np.abs(X[:6] - c).sum(axis=1).max() == pytest.approx(1.5)  # clipped vertices on the sphere
    assert not d.contains(np.array([0.0, 2.0, 2.0]))  # in the box, L1 distance 1 + 0 + 1 = 2 > 1.5
    assert not in_domain(d, np.array([[0.0, 2.0, 2.0]]))[0]


def test_l1_ball_errors():
    with pytest.raises(InvalidDomainError, match="radius"):
        L1Ball(np.zeros(2), -1.0)
    with pytest.raises(InvalidDomainError, match="empty"):
        L1Ball(np.array([5.0, 5.0]), 0.9, 0, 4.5)  # the nearest box point (4.5, 4.5) is at distance 1


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.floats(0.0, 3.0), st.integers(0, 10_000))
def test_l1_support_matches_lp_and_clip_lands_inside(n, r, seed):
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 0.5, n)  # partly outside the upper clip below: the anchor differs from c
    hi = rng.uniform(0.0, 1.5, n) - 0.5
    R = float(np.maximum(c - hi, 0).sum()) + r + 1.0  # the ball always meets the clip box
    d = L1Ball(c, R, -1.2, hi)
    W = rng.normal(size=(4, n))
    s = d.support(W)
    for w, v in zip(W, s):
        assert v == pytest.approx(_lp_support(d, w), abs=1e-7)
    X = d.sample(50, seed=seed, include_vertices=True)
    assert np.all(X @ W.T <= s + 1e-9)
    S = d.linear_maximizer(W)  # the point where the support is reached
    assert d.contains(S).all()
    np.testing.assert_allclose((S * W).sum(axis=1), s, atol=1e-7)
    B = Box(-1.2, hi)
    np.testing.assert_allclose((B.linear_maximizer(W) * W).sum(axis=1), B.support(W), atol=1e-12)
    Y = d.clip(rng.uniform(-3, 3, size=(20, n)))
    assert d.contains(Y).all()
    h = d.rescaled(4.0)
    assert h.contains(X / 4.0).all() and h.l1_radius == pytest.approx(R / 4)


def test_l1_ball_milp_encoding_matches_support():
    from mipnet.milp.encoding import HighsModel

    rng = np.random.default_rng(3)
    d = L1Ball(rng.uniform(0, 16, 8), 5.0, 0, 16)
    model = HighsModel(d)
    for w in rng.normal(size=(3, 8)):
        model.set_objective(model.input_cols, w, maximize=True)
        res = model.solve()
        assert res.objective == pytest.approx(float(d.support(w)[0]), abs=1e-6)
        assert d.contains(d.clip(res.values[model.input_cols]))


def test_bounds_on_l1_ball_are_sound_and_tighter():
    from mipnet import Network
    from mipnet.bounds import lp_bounds, symbolic_bounds

    net = Network.random([6, 10, 8, 3], seed=2)
    d = L1Ball(np.zeros(6), 0.5, -1, 1)
    box = Box(d.lower, d.upper)
    X = d.sample(3000, seed=1, include_vertices=True)
    Y = net.forward(X)
    for b in (symbolic_bounds(net, d), lp_bounds(net, d)):
        assert np.all(Y >= b.output.lower - 1e-9) and np.all(Y <= b.output.upper + 1e-9)
    sb, bb = symbolic_bounds(net, d), symbolic_bounds(net, box)
    assert np.all(sb.output.upper <= bb.output.upper + 1e-12) and np.any(sb.output.upper < bb.output.upper - 1e-3)
    lb, lbox = lp_bounds(net, d), lp_bounds(net, box)
    assert np.all(lb.output.upper - lb.output.lower <= lbox.output.upper - lbox.output.lower + 1e-9)


@pytest.mark.parametrize("kind", ["box", "linf", "polytope", "l1"])
def test_every_domain_kind_works_with_verify(kind):
    from mipnet import Network
    from mipnet.analyses.equivalence import verify_equivalence

    f = Network.random([3, 6, 3], seed=4)
    W = [w.copy() for w in f.weights]
    W[0][np.abs(W[0]) < 0.3] = 0.0
    g = Network(W, list(f.biases))
    c = np.zeros(3)
    dom = {"box": Box(-1, 1, dim=3), "linf": LinfBall(c, 0.5, -1, 1),
           "polytope": Polytope(np.ones((1, 3)), [0.5], -1, 1), "l1": L1Ball(c, 0.8, -1, 1)}[kind]
    res = verify_equivalence(f, g, dom, mode="top1", samples=200)
    assert res.verdict in ("equivalent", "not_equivalent")
    if res.counterexample is not None:
        assert dom.contains(res.counterexample)
        assert np.argmax(f.forward(res.counterexample)) != np.argmax(g.forward(res.counterexample))
    else:
        X = dom.sample(3000, seed=0)
        assert np.all(np.argmax(f.forward(X), axis=1) == np.argmax(g.forward(X), axis=1))
