"""alpha-CROWN bounds (mipnet.bounds.alpha): soundness on samples and box vertices, never looser
than CROWN, never tighter than the LP with the same intermediate bounds, f - g, determinism."""

import numpy as np
import pytest

from mipnet import Box, LinfBall, Network, Polytope
from mipnet.bounds import LayerBounds, symbolic_bounds
from mipnet.bounds.alpha import (
    AlphaOptions,
    alpha_bounds,
    alpha_difference_bounds,
    alpha_output_bounds,
    crown_lower,
    difference_network,
)
from mipnet.core.errors import InvalidArgumentError, InvalidNetworkError
from mipnet.milp.encoding import HighsModel

from conftest import random_nets

NETS = random_nets() + [([8, 20, 20, 20, 4], 5), ([10, 32, 32, 5], 6)]


def _points(net, dom, n=20_000, seed=0):
    """Random points, box vertices (all, or n // 2 random ones) and first-layer extremisers."""
    X = dom.sample(n, seed=seed, include_vertices=True)
    W = net.weights[0]
    ext = np.concatenate([np.where(W > 0, dom.upper, dom.lower), np.where(W > 0, dom.lower, dom.upper)])
    return np.concatenate([X, ext[dom.contains(ext)]])


def _width(b):
    return sum(float(np.sum(lb.upper - lb.lower)) for lb in b.layers)


@pytest.mark.parametrize("widths,seed", NETS)
def test_alpha_bounds_contain_samples_and_vertices(widths, seed):
    net = Network.random(widths, seed=seed)
    dom = Box(-1, 1, dim=widths[0])
    b = alpha_bounds(net, dom)
    assert b.method == "alpha" and len(b.layers) == len(net.layers)
    assert b.contains(net, _points(net, dom), tol=0)


def test_alpha_bounds_on_ball_polytope_and_large_magnitudes():
    net = Network.random([6, 16, 16, 3], seed=11)
    ball = LinfBall(np.linspace(-0.5, 0.5, 6), 0.3, -1, 1)
    poly = Polytope([[1.0] * 6, [-1.0, 1.0, 0, 0, 0, 0]], [0.5, 0.2], -1, 1)
    for dom in (ball, poly):
        assert alpha_bounds(net, dom).contains(net, _points(net, dom), tol=0)
    # weights x 1e3 on a box of +-1e4: the widening is relative to the magnitudes
    big = Network([W * 1e3 for W in net.weights], [b * 1e3 for b in net.biases])
    dom = Box(-1e4, 1e4, dim=6)
    assert alpha_bounds(big, dom).contains(big, _points(big, dom), tol=0)


@pytest.mark.parametrize("widths,seed", NETS)
def test_alpha_never_looser_than_symbolic(widths, seed):
    net = Network.random(widths, seed=seed)
    dom = Box(-1, 1, dim=widths[0])
    sym, alpha = symbolic_bounds(net, dom), alpha_bounds(net, dom)
    assert alpha.tighter_or_equal(sym, tol=0)
    assert alpha.num_unstable <= sym.num_unstable


def test_alpha_is_strictly_tighter_on_a_typical_net():
    net = Network.random([8, 20, 20, 20, 4], seed=5)
    dom = Box(-1, 1, dim=8)
    sym, alpha = symbolic_bounds(net, dom), alpha_bounds(net, dom)
    gains = [np.max(np.concatenate([a.lower - s.lower, s.upper - a.upper])) for a, s in zip(alpha.layers, sym.layers)]
    assert gains[0] == 0.0  # the first layer is exact for both
    assert max(gains) > 1e-3 * max(np.max(s.upper - s.lower) for s in sym.layers)
    assert _width(alpha) < 0.95 * _width(sym)  # and by a clear margin overall


def test_zero_iterations_is_crown():
    """With no optimisation step the slopes are CROWN's: the symbolic bounds, intersected with the
    intervals from the layer before (which symbolic_bounds does not take), up to rounding."""
    from mipnet.bounds import interval_layer

    net = Network.random([5, 12, 12, 3], seed=3)
    dom = Box(-1, 1, dim=5)
    sym = symbolic_bounds(net, dom)
    a0 = alpha_bounds(net, dom, iterations=0)
    for k, (a, s) in enumerate(zip(a0.layers, sym.layers)):
        lo, hi = s.lower, s.upper
        if k:
            ia_lo, ia_hi = interval_layer(*net.layers[k], *sym.layers[k - 1].post_activation())
            lo, hi = np.maximum(lo, ia_lo), np.minimum(hi, ia_hi)
        scale = 1e-9 * (1 + np.max(np.abs(hi)))
        assert np.all(a.lower >= s.lower) and np.all(a.upper <= s.upper)
        assert np.allclose(a.lower, lo, atol=scale) and np.allclose(a.upper, hi, atol=scale)


def _lp_values(net, dom, layers, k):
    """Exact LP min and max of every neuron of layer k over the triangle relaxation of the
    layers before it, with the given intermediate bounds ``layers[:k]`` (values unwidened)."""
    m = HighsModel(dom)
    cols = m.input_cols
    for j in range(k):
        cols = m.add_layer(cols, *net.layers[j], layers[j], relax=True).h_cols
    W, b = net.layers[k]
    lo = np.array([m.optimize_affine(cols, W[i], b[i], maximize=False) for i in range(W.shape[0])])
    hi = np.array([m.optimize_affine(cols, W[i], b[i], maximize=True) for i in range(W.shape[0])])
    return lo, hi


@pytest.mark.parametrize("widths,seed", [([3, 8, 6, 2], 1), ([4, 6, 6, 6, 3], 2), ([8, 20, 20, 20, 4], 5)])
def test_alpha_never_tighter_than_the_lp_with_the_same_intermediate_bounds(widths, seed):
    """A CROWN bound with any slopes is a feasible point of the LP's dual: it cannot beat the LP."""
    net = Network.random(widths, seed=seed)
    dom = Box(-1, 1, dim=widths[0])
    alpha = alpha_bounds(net, dom, iterations=100, patience=100)
    close = 0
    for k in range(1, len(net.layers)):
        lo, hi = _lp_values(net, dom, alpha.layers, k)
        a = alpha.layers[k]
        tol = 1e-6 * (1 + np.abs(lo) + np.abs(hi))
        assert np.all(a.lower <= lo + tol) and np.all(a.upper >= hi - tol)
        # and the optimisation gets close to the LP (Salman et al. 2019: at the optimum they meet)
        close += np.sum(a.upper - a.lower <= (hi - lo) * 1.02 + tol)
    assert close >= 0.9 * sum(net.widths[2:])


def test_crown_lower_is_sound_for_any_slopes():
    """The re-evaluation does not trust the optimiser: random slopes in [0, 1] give sound bounds."""
    net = Network.random([6, 14, 14, 4], seed=8)
    dom = Box(-1, 1, dim=6)
    sym = symbolic_bounds(net, dom)
    X = _points(net, dom)
    ys = net.preactivations(X)
    rng = np.random.default_rng(0)
    for k in (1, 2):
        n = net.layers[k][0].shape[0]
        C = np.concatenate([np.eye(n), -np.eye(n), rng.normal(size=(5, n))])
        uns = [np.flatnonzero((lb.lower < 0) & (lb.upper > 0)) for lb in sym.layers[:k]]
        for trial in range(3):
            slopes = [rng.uniform(-3.0, 4.0, size=(C.shape[0], u.size)) for u in uns]  # clamped inside
            v = crown_lower(net, sym.layers, k, C, slopes, dom)
            assert np.all(ys[k] @ C.T >= v), (k, trial)
            # a line alpha y with alpha outside [0, 1] is not below relu: such slopes are clamped
            assert np.array_equal(v, crown_lower(net, sym.layers, k, C, [np.clip(S, 0, 1) for S in slopes], dom))
        v_crown = crown_lower(net, sym.layers, k, C[:2 * n], None, dom)
        assert np.all(v_crown[:n] <= sym.layers[k].lower + 1e-9) or np.allclose(
            np.maximum(v_crown[:n], sym.layers[k].lower), sym.layers[k].lower)


def test_output_bounds_of_linear_functions():
    net = Network.random([5, 16, 16, 4], seed=9)
    dom = Box(-1, 1, dim=5)
    C = np.array([[1.0, -1.0, 0.0, 0.0], [0.5, 0.5, -2.0, 1.0]])
    ob = alpha_output_bounds(net, dom, C)
    vals = net.forward(_points(net, dom)) @ C.T
    assert np.all(vals >= ob.lower) and np.all(vals <= ob.upper)
    # tighter than the interval bound of C y from the output layer's alpha bounds
    a = alpha_bounds(net, dom)
    naive_lo = np.minimum(C, 0) @ a.output.upper + np.maximum(C, 0) @ a.output.lower
    assert np.all(ob.lower >= naive_lo - 1e-9) and np.any(ob.lower > naive_lo + 1e-6)
    default = alpha_output_bounds(net, dom)  # C = I: the output layer's bounds
    assert np.allclose(default.lower, a.output.lower, rtol=1e-6, atol=1e-9)


def test_difference_network_computes_f_minus_g():
    f = Network.random([4, 10, 8, 3], seed=1)
    g = Network.random([4, 6, 3], seed=2)  # shallower: carried forward by identity layers
    h = Network.random([4, 3], seed=3)  # no hidden layer at all
    X = Box(-2, 2, dim=4).sample(500, seed=0)
    for a, b in ((f, g), (g, f), (f, h), (h, f), (f, f)):
        d = difference_network(a, b)
        assert np.allclose(d.forward(X), a.forward(X) - b.forward(X), atol=1e-12)
    assert difference_network(f, g).hidden_widths == (16, 14)
    with pytest.raises(InvalidNetworkError):
        difference_network(f, Network.random([5, 6, 3], seed=0))


def test_difference_bounds_contain_sampled_gaps_and_beat_subtraction():
    f = Network.random([6, 20, 20, 3], seed=4)
    # g: f with small weights pruned (a structurally similar net, as in equivalence checks)
    g = Network([np.where(np.abs(W) < 0.1, 0.0, W) for W in f.weights], list(f.biases))
    dom = Box(-1, 1, dim=6)
    d = alpha_difference_bounds(f, g, dom)
    X = _points(f, dom)
    gap = f.forward(X) - g.forward(X)
    assert np.all(gap >= d.lower) and np.all(gap <= d.upper)
    bf, bg = alpha_bounds(f, dom).output, alpha_bounds(g, dom).output
    assert np.all(d.upper - d.lower < (bf.upper - bg.lower) - (bf.lower - bg.upper))


def test_deterministic():
    net = Network.random([8, 20, 20, 20, 4], seed=5)
    dom = Box(-1, 1, dim=8)
    a, b = alpha_bounds(net, dom), alpha_bounds(net, dom)
    for x, y in zip(a.layers, b.layers):
        assert np.array_equal(x.lower, y.lower) and np.array_equal(x.upper, y.upper)


def test_options_are_checked():
    net = Network.random([3, 4, 2], seed=0)
    dom = Box(-1, 1, dim=3)
    for bad in (dict(iterations=-1), dict(lr=0.0), dict(lr_decay=1.5), dict(device="tpu"), dict(threads=0),
                dict(max_batch=0)):
        with pytest.raises(InvalidArgumentError):
            alpha_bounds(net, dom, **bad)
    with pytest.raises(InvalidArgumentError):
        alpha_bounds(net, dom, options=AlphaOptions(), iterations=3)
    with pytest.raises(InvalidArgumentError):
        alpha_output_bounds(net, dom, np.ones((1, 3)))
    # each quantity has its own slopes: chunked batches give the bounds of one batch (no early stop)
    big = Network.random([5, 12, 12, 3], seed=1)
    d5 = Box(-1, 1, dim=5)
    one = alpha_bounds(big, d5, iterations=30, patience=30)
    chunked = alpha_bounds(big, d5, iterations=30, patience=30, max_batch=5)
    for x, y in zip(one.layers, chunked.layers):
        assert np.allclose(x.lower, y.lower, atol=1e-9) and np.allclose(x.upper, y.upper, atol=1e-9)
    assert isinstance(one.layers[0], LayerBounds)


def test_cuda_request_without_a_gpu_is_an_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        net = Network.random([5, 12, 12, 3], seed=1)
        dom = Box(-1, 1, dim=5)
        a, b = alpha_bounds(net, dom, device="cuda"), alpha_bounds(net, dom)
        assert a.contains(net, _points(net, dom), tol=0)
        assert abs(_width(a) - _width(b)) <= 1e-6 * _width(b)
    else:
        from mipnet.core.errors import DeviceUnavailableError

        with pytest.raises(DeviceUnavailableError):
            alpha_bounds(Network.random([3, 4, 2], seed=0), Box(-1, 1, dim=3), device="cuda")


def test_spec_bounds_on_a_difference_of_nets():
    """spec= on f - g (the joint net [f; g] with spec @ [I, -I]): sound on samples, and a margin
    row is tighter than the difference of its per-output bounds."""
    f = Network.random([5, 16, 12, 3], seed=21)
    g = Network.random([5, 10, 3], seed=22)
    dom = Box(-1, 1, dim=5)
    spec = np.array([[1.0, -1.0, 0.0], [0.0, 2.0, -1.0]])
    s = alpha_difference_bounds(f, g, dom, spec=spec)
    X = _points(f, dom)
    vals = (f.forward(X) - g.forward(X)) @ spec.T
    assert np.all(vals >= s.lower) and np.all(vals <= s.upper)
    per_output = alpha_difference_bounds(f, g, dom)
    naive = np.maximum(spec, 0) @ per_output.lower + np.minimum(spec, 0) @ per_output.upper
    assert np.all(s.lower >= naive - 1e-9) and np.any(s.lower > naive + 1e-6)
    same = alpha_output_bounds(difference_network(f, g), dom, spec=spec)
    assert np.array_equal(same.lower, s.lower) and np.array_equal(same.upper, s.upper)


# ---------------------------------------------------------------------------- bounds under splits (beta-CROWN)
@pytest.mark.parametrize("widths,seed", [([5, 12, 12, 3], 0), ([4, 10, 10, 10, 2], 1)])
def test_split_lower_bounds_hold_on_their_branch_and_tighten(widths, seed):
    """Each branch's bound holds on 10^5 samples of that branch (points whose ReLUs take the
    branch's signs); the candidate points lie in the box."""
    from mipnet.bounds.alpha import split_lower_bounds

    net = Network.random(widths, seed=seed)
    dom = Box(-1, 1, dim=widths[0])
    b = symbolic_bounds(net, dom)
    k = net.num_hidden_layers - 1  # the last hidden layer, splits on all layers before it
    layers = list(b.layers[:k])
    rng = np.random.default_rng(seed)
    n_k = net.hidden_widths[k]
    B = 40
    C = rng.normal(size=(B, n_k))
    splits = []
    for j in range(k):
        uns = np.flatnonzero((layers[j].lower < 0) & (layers[j].upper > 0))
        s = np.zeros((B, net.hidden_widths[j]), dtype=np.int8)
        for r in range(1, B):  # row 0: the root
            pick = rng.choice(uns, size=min(3, uns.size), replace=False)
            s[r, pick] = rng.choice([-1, 1], size=pick.size)
        splits.append(s)
    sb, _ = split_lower_bounds(net, layers, k, C, splits, dom, options=AlphaOptions(iterations=30))
    root, _ = split_lower_bounds(net, layers, k, C, [np.zeros_like(s) for s in splits], dom,
                                 options=AlphaOptions(iterations=30))
    X = dom.sample(100_000, seed=seed, include_vertices=False)
    ys = net.preactivations(X)
    vals = ys[k] @ C.T  # (N, B)
    for r in range(B):
        on = np.ones(len(X), dtype=bool)
        for j in range(k):
            for i in np.flatnonzero(splits[j][r]):
                on &= splits[j][r, i] * ys[j][:, i] >= 0
        if on.any():
            assert vals[on, r].min() >= sb.lower[r] - 1e-12
    # (a branch's own bound may be looser than the root's: the box minimisation ignores the region
    # outside the branch, where an exact split ReLU is below its relaxation; the driver keeps the parent's)
    assert np.all(np.isfinite(root.lower))
    assert np.all(np.isfinite(sb.lower)) and sb.points.shape == (B, widths[0])
    assert np.all((sb.points >= -1) & (sb.points <= 1))


def test_envelope_lines_are_valid_and_contain_the_chord():
    """Every line of envelope_lines lies above the ReLU on the box (10^5 samples and the box's
    extremisers of each neuron); slopes sigma = U / (U - L) give the chord (up to the widening)."""
    from mipnet.bounds.alpha import envelope_lines

    net = Network.random([6, 15, 4], seed=3)
    dom = Box(-1, 2, dim=6)
    b = symbolic_bounds(net, dom).layers[0]
    W, bias = net.layers[0]
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0, 1, size=(5, 15, 6))
    sigma[0] = np.clip(b.upper / (b.upper - b.lower), 0, 1)[:, None]
    A, t = envelope_lines(net, dom, sigma)
    X = dom.sample(100_000, seed=1, include_vertices=True)
    h = np.maximum(X @ W.T + bias, 0.0)
    for g in range(5):
        assert np.all(X @ A[g].T + t[g] >= h - 1e-12)
    uns = (b.lower < 0) & (b.upper > 0)
    s = b.upper / (b.upper - b.lower)
    np.testing.assert_allclose(t[0][uns], s[uns] * (bias[uns] - b.lower[uns]), rtol=1e-9, atol=1e-12)


def test_envelope_tightens_split_bounds_soundly():
    """First-layer envelope lines tuned by optimise_envelope: the bound holds on 10^5 samples and is
    tighter than the chords' (alpha-CROWN) bound for some rows."""
    from mipnet.bounds.alpha import envelope_lines, optimise_envelope, split_lower_bounds

    net = Network.random([12, 30, 8, 2], seed=4)
    dom = Box(0, 1, dim=12)
    layers = list(symbolic_bounds(net, dom).layers[:1])
    C = np.vstack([np.eye(8), -np.eye(8)])
    zero = [np.zeros((16, 30), dtype=np.int8)]
    plain, _ = split_lower_bounds(net, layers, 1, C, zero, dom, options=AlphaOptions(iterations=40))
    sigma = optimise_envelope(net, layers, 1, C, dom, iterations=60)
    A, t = envelope_lines(net, dom, sigma)
    env, _ = split_lower_bounds(net, layers, 1, C, zero, dom, options=AlphaOptions(iterations=40),
                                envelope=(A, t, np.arange(16)))
    y = net.preactivations(dom.sample(100_000, seed=2, include_vertices=False))[1] @ C.T
    assert np.all(y.min(0) >= env.lower - 1e-12)
    assert np.all(env.lower >= plain.lower - 1e-9)
    assert np.any(env.lower > plain.lower + 1e-3 * (1 + np.abs(plain.lower)))


@pytest.mark.parametrize("widths,seed", [([8, 20, 20, 20, 4], 5), ([10, 32, 32, 5], 6)])
def test_stop_on_states_keeps_the_states_and_soundness(widths, seed):
    """Stopping the slope optimisation once no neuron settles: same states as the full run on these
    nets, bounds that contain 2*10^4 samples, never looser than CROWN, and no more steps; the
    output rows are still optimised (rel_tol at least FAST_OUTPUT_REL_TOL)."""
    net = Network.random(widths, seed=seed)
    dom = Box(-1, 1, dim=widths[0])
    full = alpha_bounds(net, dom)
    fast = alpha_bounds(net, dom, stop_on_states=True)
    crown = alpha_bounds(net, dom, iterations=0)
    for a, b, c in zip(full.hidden, fast.hidden, crown.hidden):
        np.testing.assert_array_equal(a.states(), b.states())
        assert np.all(b.upper - b.lower <= c.upper - c.lower + 1e-12)
    out_fast, out_crown = (np.mean(b.layers[-1].upper - b.layers[-1].lower) for b in (fast, crown))
    assert out_fast < 0.99 * out_crown
    X = _points(net, dom)
    for lb, y in zip(fast.layers, net.preactivations(X)):
        assert np.all(y >= lb.lower - 1e-9) and np.all(y <= lb.upper + 1e-9)



def test_stop_on_states_counts_the_neurons_settled_at_iteration_0():
    """A batch stops at its first check (``patience`` steps) when no neuron settled after
    iteration 0: the neurons CROWN's slopes settle are not new ones."""
    from mipnet.bounds.alpha import _Schedule

    opts = AlphaOptions(stop_on_states=True, patience=5)
    first = np.array([0.3, -1.0, 0.2, -0.5])  # two rows settled by CROWN's slopes
    sched = _Schedule(opts, first)
    rows = np.arange(4)
    better = first + np.array([0.1, 0.5, 0.1, 0.2])  # gains, but nothing new above 0
    assert sched.due(5) and not sched.keep(better, rows).any()
    sched = _Schedule(opts, first)
    keep = sched.keep(first + np.array([0.0, 0.0, 0.0, 0.6]), rows)  # a new one: the batch goes on
    assert keep is None or keep.any()


def _relaxations(net, layers, dom, k):
    from mipnet.bounds.alpha import _relaxation

    relax, hmag = [], np.maximum(np.abs(dom.lower), np.abs(dom.upper))
    for j in range(k):
        relax.append(_relaxation(layers[j], *net.layers[j], hmag))
        hmag = np.maximum(layers[j].upper, 0.0)
    return relax


@pytest.mark.parametrize("widths,seed,radius", [([6, 20, 20, 20, 4], 1, 0.2), ([10, 32, 32, 5], 6, 0.15),
                                                ([5, 15, 3], 2, 0.2), ([7, 12, 9, 11, 8, 3], 4, 0.1)])
def test_numpy_gradient_is_autograds(widths, seed, radius):
    """The hand-derived gradient of the CROWN bound in the lower slopes (alpha._Chain) equals
    torch autograd's on the same bound, to 1e-8, on nets with active, inactive and unstable
    neurons, random rows and random slopes; and the bound is the one crown_lower re-evaluates."""
    torch = pytest.importorskip("torch")
    from mipnet.bounds.alpha import _crown_gradient_np

    net = Network.random(widths, seed=seed)
    rng = np.random.default_rng(seed)
    dom = LinfBall(rng.uniform(-0.5, 0.5, size=widths[0]), radius)
    layers = alpha_bounds(net, dom, iterations=0).layers
    states = np.concatenate([lb.states() for lb in layers[:-1]])
    assert len(np.unique(states)) == 3  # active, inactive and unstable neurons all occur
    for k in range(1, len(net.layers)):
        relax = _relaxations(net, layers, dom, k)
        C = rng.normal(size=(7, widths[k + 1]))
        slopes = [rng.uniform(0, 1, size=(7, r.uns.size)) for r in relax]
        lo, grads = _crown_gradient_np(net, relax, k, C, slopes, dom.lower, dom.upper)
        T = lambda a: torch.as_tensor(np.array(a, dtype=np.float64))  # noqa: E731
        alphas = [T(s).requires_grad_(True) for s in slopes]
        Lam, c = T(C @ net.layers[k][0]), T(C @ net.layers[k][1])
        for j in range(k - 1, -1, -1):
            r = relax[j]
            pos, neg = Lam.clamp(min=0), Lam.clamp(max=0)
            S = T(r.sl).expand(7, -1).index_copy(1, torch.as_tensor(r.uns), alphas[j])
            c = c + neg @ T(r.tu)
            Lam = pos * S + neg * T(r.su)
            c = c + Lam @ T(net.layers[j][1])
            Lam = Lam @ T(net.layers[j][0])
        ref = Lam @ T((dom.lower + dom.upper) / 2) - Lam.abs() @ T((dom.upper - dom.lower) / 2) + c
        ref_g = torch.autograd.grad(ref.sum(), [a for a, r in zip(alphas, relax) if r.uns.size])
        np.testing.assert_allclose(lo, ref.detach().numpy(), rtol=1e-10, atol=1e-10)
        ours = [g for g, r in zip(grads, relax) if r.uns.size]
        assert len(ours) == len(ref_g) and len(ours) > 0
        for g, rg in zip(ours, ref_g):
            rg = rg.numpy()
            assert g.shape == rg.shape
            assert np.all(np.abs(g - rg) <= 1e-8 * (1 + np.abs(rg))), (k, np.max(np.abs(g - rg)))
        sound = crown_lower(net, layers, k, C, slopes, dom)
        assert np.all(sound <= lo) and np.all(lo - sound <= 1e-9 * (1 + np.abs(lo)))


@pytest.mark.parametrize("widths,seed", [([8, 20, 20, 20, 4], 5), ([10, 32, 32, 5], 6), ([6, 16, 16, 16, 16, 3], 3)])
@pytest.mark.parametrize("stop_on_states", [False, True])
def test_numpy_backend_is_sound_and_matches_torch(widths, seed, stop_on_states):
    """The numpy optimiser (the CPU default) and the torch one: bounds that contain 10^4 samples
    and box vertices, never looser than CROWN, the same states and the same widths up to 0.1 %."""
    pytest.importorskip("torch")
    net = Network.random(widths, seed=seed)
    dom = LinfBall(np.full(widths[0], 0.1), 0.6)
    fast = alpha_bounds(net, dom, backend="numpy", stop_on_states=stop_on_states)
    ref = alpha_bounds(net, dom, backend="torch", stop_on_states=stop_on_states)
    crown = alpha_bounds(net, dom, iterations=0)
    assert fast.num_unstable == ref.num_unstable
    for a, b, c in zip(fast.layers, ref.layers, crown.layers):
        np.testing.assert_array_equal(a.states(), b.states())
        assert np.all(a.upper - a.lower <= c.upper - c.lower + 1e-12)
    assert abs(_width(fast) - _width(ref)) <= 1e-3 * _width(ref)
    assert _width(fast) < _width(crown)
    X = _points(net, dom, n=10_000)
    for lb, y in zip(fast.layers, net.preactivations(X)):
        assert np.all(y >= lb.lower) and np.all(y <= lb.upper)
    with pytest.raises(InvalidArgumentError):
        AlphaOptions(backend="jax")
    with pytest.raises(InvalidArgumentError):
        AlphaOptions(backend="numpy", device="cuda")


def test_numpy_optimiser_with_a_stable_top_layer_and_dead_layers():
    """Layers without unstable neurons above free ones (all active: nothing of the top layer's
    coefficients is free; all inactive: the layer drops out of the numpy optimiser's weights):
    the numpy optimiser's states and widths are torch's, and its bounds are sound."""
    pytest.importorskip("torch")
    net = Network.random([6, 14, 12, 10, 3], seed=11)
    layers = [list(l) for l in net.layers]
    layers[2][1] = layers[2][1] + 50.0  # the third hidden layer: always active
    dead = Network.from_layers([(W, b) for W, b in layers[:2]] + [(layers[2][0], layers[2][1] - 100.0)]
                               + [tuple(layers[3])])
    net = Network.from_layers([tuple(l) for l in layers])
    dom = Box(-1, 1, dim=6)
    for n in (net, dead):
        fast, ref = alpha_bounds(n, dom, backend="numpy"), alpha_bounds(n, dom, backend="torch")
        assert [lb.states().tolist() for lb in fast.hidden] == [lb.states().tolist() for lb in ref.hidden]
        assert abs(_width(fast) - _width(ref)) <= 1e-6 * (1 + _width(ref))
        assert fast.contains(n, _points(n, dom, n=5_000), tol=0)
    states = alpha_bounds(net, dom).hidden[2].states()
    assert np.all(states == 1)
    assert np.all(alpha_bounds(dead, dom).hidden[2].states() == -1)
