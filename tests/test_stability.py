"""Stable neurons: two MILP methods agree, claims hold on samples, witnesses verify, time limits give unknowns."""

import json

import numpy as np
import pytest

from mipnet import Box, Network, Polytope
from mipnet.bounds import lp_bounds
from mipnet.core.errors import InvalidDomainError, InvalidNetworkError
from mipnet.analyses.stability import UNKNOWN, find_stable_neurons
from mipnet.core.numerics import snapped_preactivations

# (widths, seed): small random nets where LP bounds leave some stable neurons to the MILPs
NETS = [([4, 10, 10, 2], 0), ([3, 8, 8, 8, 1], 3), ([2, 6, 6, 2], 7)]


def _net(widths, seed):
    return Network.random(widths, seed=seed, bias_scale=1.0)


def _check_claims(net, dom, res, n=10_000):
    """Independent check: stable claims on 10^4 samples (box corners first), witnesses by forward pass."""
    X = dom.sample(n, seed=123, include_vertices=True)
    ys = net.preactivations(X)[:-1]
    for l, ls in enumerate(res.layers):
        ina = ls.states == -1
        act = ls.states == 1
        assert np.all(ys[l][:, ina] <= res.tol)
        assert np.all(ys[l][:, act] >= -res.tol)
        assert np.all(ls.upper[ina] <= res.tol) and np.all(ls.lower[act] >= -res.tol)  # certificates
        # every reported bound holds (sound, not only the sign claims)
        assert np.all(ys[l] >= ls.lower) and np.all(ys[l] <= ls.upper)
        uns = np.flatnonzero(ls.states == 0)
        if uns.size:
            pos = res.witnesses[ls.witness_pos[uns]]
            neg = res.witnesses[ls.witness_neg[uns]]
            assert np.all(dom.contains(pos)) and np.all(dom.contains(neg))
            assert np.all(net.preactivations(pos)[l][np.arange(uns.size), uns] > 0)
            assert np.all(net.preactivations(neg)[l][np.arange(uns.size), uns] < 0)
    # a neuron seen with both signs on the samples can never be called stable
    for l, ls in enumerate(res.layers):
        both = (ys[l].max(axis=0) > res.tol) & (ys[l].min(axis=0) < -res.tol)
        assert not np.any(np.isin(ls.states[both], (-1, 1)))


def _same_states_fewer_milps(a, b):
    """``a`` (a search with an extra step) and ``b`` (without it): both complete, the same exact
    states, fewer MILPs for ``a``."""
    assert a.complete and b.complete
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_array_equal(la.states, lb.states)
    assert a.num_milps < b.num_milps


@pytest.mark.parametrize("widths,seed", NETS)
def test_methods_agree_and_claims_hold(widths, seed):
    net = _net(widths, seed)
    dom = Box(-1.0, 1.0, dim=widths[0])
    bounds = lp_bounds(net, dom)
    per = find_stable_neurons(net, dom, method="per_neuron", bounds=bounds)
    one = find_stable_neurons(net, dom, method="one_milp", bounds=bounds)
    assert per.complete and one.complete
    for a, b in zip(per.states, one.states):
        np.testing.assert_array_equal(a, b)
    _check_claims(net, dom, per)
    _check_claims(net, dom, one)


@pytest.mark.parametrize("method", ["per_neuron", "one_milp"])
def test_reported_bounds_hold_next_to_neurons_stable_within_tol(method):
    # neuron 0 of layer 1 peaks at 5e-7 <= tol at x = (1, 1): stably inactive *within tol*, yet
    # h_0 = 5e-7 there, and the layer-2 neuron -h_0/4 - h_1 + 4 reaches -1.25e-7 at that point.
    # Treating h_0 as exactly 0 when propagating bounds reported a lower bound of ~0 for it.
    W1 = np.array([[1.0, 1.0], [1.0, 0.0], [-1.0, 1.0]])
    b1 = np.array([-2.0 + 5e-7, 3.0, 0.0])
    net = Network([W1, np.array([[-0.25, -1.0, 0.0]]), np.ones((1, 1))], [b1, np.array([4.0]), np.zeros(1)])
    dom = Box(-1.0, 1.0, dim=2)
    res = find_stable_neurons(net, dom, method=method)
    assert res.complete
    assert list(res.states[0]) == [-1, 1, 0] and list(res.states[1]) == [1]
    y = net.preactivations(np.array([1.0, 1.0]))[1][0]
    assert y == pytest.approx(-1.25e-7, rel=1e-6)
    assert res.layers[1].lower[0] <= y  # the reported bound holds where the neuron is lowest
    _check_claims(net, dom, res, n=100_000)


@pytest.mark.parametrize("scale,radius", [(1e3, 1e3), (1e-3, 1.0)])
def test_reported_bounds_hold_at_large_and_small_magnitudes(scale, radius):
    base = _net([4, 10, 10, 2], 0)
    net = Network([W * scale for W in base.weights], [b * scale for b in base.biases])
    dom = Box(-radius, radius, dim=4)
    res = find_stable_neurons(net, dom, method="per_neuron")
    assert res.complete
    _check_claims(net, dom, res, n=100_000)


def test_milp_proves_more_than_bounds():
    net = _net([4, 10, 10, 2], 0)
    dom = Box(-1.0, 1.0, dim=4)
    bounds = lp_bounds(net, dom)
    res = find_stable_neurons(net, dom, method="per_neuron", bounds=bounds, branching=False)
    by_bounds = sum(int(np.sum(s != 0)) for s in bounds.states())
    assert res.num_stable > by_bounds  # the MILP settles neurons the LP bounds cannot
    proofs = np.concatenate([ls.proof for ls in res.layers])
    assert "milp" in proofs and "bounds" in proofs and "witness" in proofs
    assert res.num_milps >= 1
    # the branch and bound before the MILPs settles them too, with the same answer
    bab = find_stable_neurons(net, dom, method="per_neuron", bounds=bounds)
    for a, b in zip(res.layers, bab.layers):
        np.testing.assert_array_equal(a.states, b.states)
    assert "bab" in np.concatenate([ls.proof for ls in bab.layers]) and bab.num_milps < res.num_milps


def test_constructed_stable_neurons():
    net = _net([3, 8, 6, 2], 1)
    W = [w.copy() for w in net.weights]
    b = [x.copy() for x in net.biases]
    b[0][[0, 1]] = -50.0  # dead on [-1, 1]^3
    b[0][[2]] = 50.0  # always on
    net = Network(W, b)
    dom = Box(-1.0, 1.0, dim=3)
    res = find_stable_neurons(net, dom, method="one_milp")
    assert list(res.states[0][[0, 1, 2]]) == [-1, -1, 1]
    assert res.layers[0].proof[0] == "bounds"
    _check_claims(net, dom, res)


def test_polytope_domain_and_data():
    net = _net([2, 6, 6, 2], 7)
    # the triangle x0 + x1 <= 0 inside [-1, 1]^2
    dom = Polytope(np.array([[1.0, 1.0]]), np.array([0.0]), [-1.0, -1.0], [1.0, 1.0])
    data = np.array([[0.5, 0.5], [-0.5, -0.2], [0.9, -0.95]])  # the first one lies outside D
    per = find_stable_neurons(net, dom, method="per_neuron", data=data)
    one = find_stable_neurons(net, dom, method="one_milp", data=data, samples=0)
    for a, b in zip(per.states, one.states):
        np.testing.assert_array_equal(a, b)
    _check_claims(net, dom, per)
    assert not any(np.allclose(w, [0.5, 0.5]) for w in per.witnesses)  # data outside D is no witness


def test_time_limit_gives_unknown_never_stable():
    net = _net([4, 10, 10, 2], 0)
    dom = Box(-1.0, 1.0, dim=4)
    bounds = lp_bounds(net, dom)
    full = find_stable_neurons(net, dom, method="per_neuron", bounds=bounds)
    for method in ("per_neuron", "one_milp"):
        res = find_stable_neurons(net, dom, method=method, bounds=bounds, time_limit=1e-9, samples=0)
        assert res.status == "time_limit" and not res.complete
        assert res.num_unknown > 0 and "unknown" in res.message
        for part, done in zip(res.states, full.states):
            stable = np.isin(part, (-1, 1))
            np.testing.assert_array_equal(part[stable], done[stable])  # only proven claims
            assert np.all(part[~stable] != -1)
            assert np.all((part[~stable] == 0) | (part[~stable] == UNKNOWN))
        assert all(np.all(ls.proof[ls.states == UNKNOWN] == "") for ls in res.layers)


def test_gradient_search_finds_rare_witnesses():
    # y = x0 + x1 + x2 - 2.9 on [-1, 1]^3 is positive only on a tiny corner (volume ~1e-4 of the box)
    W1 = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 0.0]])
    net = Network([W1, np.array([[1.0, 1.0]])], [np.array([-2.9, 0.0]), np.zeros(1)])
    dom = Box(-1.0, 1.0, dim=3)
    res = find_stable_neurons(net, dom, samples=200, seed=0)
    assert res.states[0][0] == 0 and res.num_milps == 0  # unstable, shown without any MILP
    x = res.witnesses[res.layers[0].witness_pos[0]]
    assert x.sum() > 2.9
    off = find_stable_neurons(net, dom, samples=200, seed=0, search_steps=0)
    assert off.states[0][0] == 0 and off.num_milps >= 1  # the MILP finds it instead


def test_result_serialises_and_prints():
    net = _net([2, 6, 6, 2], 7)
    res = find_stable_neurons(net, Box(-1, 1, dim=2))
    d = json.loads(json.dumps(res.to_dict()))
    assert d["complete"] and len(d["layers"]) == 2
    assert set(d["layers"][0]["states"]) <= {"inactive", "active", "unstable", "unknown"}
    assert "layer 1" in str(res) and "MILPs" in str(res)
    masks = res.stably_active[0] | res.stably_inactive[0] | res.unstable[0] | res.unknown[0]
    assert masks.all()


def test_tightened_bounds_drop_binaries():
    net = _net([4, 10, 10, 2], 0)
    dom = Box(-1.0, 1.0, dim=4)
    bounds = lp_bounds(net, dom)
    res = find_stable_neurons(net, dom, bounds=bounds)
    tight = res.to_bounds(bounds)
    # encoded with the stability tolerance, the stable neurons get no binary
    assert sum(int(np.sum(s == 0)) for s in tight.states(res.tol)) == sum(int(np.sum(s == 0)) for s in res.states)
    assert tight.tighter_or_equal(bounds, tol=0)
    assert tight.contains(net, dom.sample(2000, seed=1, include_vertices=True), tol=0)  # still sound


def test_witness_margin_ignores_rounding_noise():
    # y = x0 - x1 is exactly 0 at x0 == x1: the rounding guard must report 0, not a sign
    net = Network([np.array([[1.0, -1.0]]), np.array([[1.0]])], [np.zeros(1), np.zeros(1)])
    y = snapped_preactivations(net, np.array([[0.1 + 0.2, 0.3], [1.0, 0.0]]))[0]
    assert y[0, 0] == 0.0 and y[1, 0] == 1.0


def test_cutoff_convention_is_calibrated():
    from mipnet.milp.encoding import HighsModel

    net = Network([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.array([0.0, 0.0]), np.zeros(1)])
    dom = Box(-1.0, 1.0, dim=1)
    model = HighsModel(dom)
    nv = model.add_network(net, lp_bounds(net, dom))
    model.set_objective(nv.output_cols, [1.0], maximize=True)  # max |x| = 1
    assert model.solve(cutoff=1.5).status == "infeasible"
    assert model.solve(cutoff=0.5).objective == pytest.approx(1.0)
    assert model.solve().objective == pytest.approx(1.0)  # options were reset


def test_errors():
    net = _net([2, 4, 1], 0)
    dom = Box(-1, 1, dim=2)
    with pytest.raises(ValueError, match="method must be one of"):
        find_stable_neurons(net, dom, method="magic")
    with pytest.raises(ValueError, match="time_limit must be a positive"):
        find_stable_neurons(net, dom, time_limit=0)
    with pytest.raises(ValueError, match="tol must be"):
        find_stable_neurons(net, dom, tol=-1)
    with pytest.raises(InvalidDomainError, match="the domain has 3 inputs but the network takes 2"):
        find_stable_neurons(net, Box(-1, 1, dim=3))
    with pytest.raises(InvalidNetworkError, match="must be a mipnet.Network"):
        find_stable_neurons("net.onnx", dom)
    with pytest.raises(InvalidNetworkError, match="no hidden layer"):
        find_stable_neurons(Network([np.ones((1, 2))], [np.zeros(1)]), dom)
    with pytest.raises(ValueError, match=r"data must have shape \(N, 2\)"):
        find_stable_neurons(net, dom, data=np.zeros((3, 5)))
    with pytest.raises(ValueError, match="bounds must be a mipnet.bounds.Bounds"):
        find_stable_neurons(net, dom, bounds=lp_bounds(_net([2, 4, 4, 1], 0), dom))
    with pytest.raises(ValueError, match="search_steps must be a non-negative integer"):
        find_stable_neurons(net, dom, search_steps=-1)
    with pytest.raises(ValueError, match="'mip_speed' is not a HiGHS option"):
        find_stable_neurons(net, dom, solver_options={"mip_speed": 1})
    empty = Polytope(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([-0.5, -0.5]), [-1, -1], [1, 1])
    with pytest.raises(Exception, match="empty"):
        find_stable_neurons(net, empty)


@pytest.mark.parametrize("bounds", ["ia", "symbolic", "alpha", "lp", "auto"])
def test_bounds_by_method_name_settle_the_same_neurons(bounds):
    """Any bounds method gives the same (exact) stable sets; only the work before the MILPs differs."""
    net = Network.random([4, 12, 12, 2], seed=3, bias_scale=1.5)
    dom = Box(-1.0, 1.0, dim=4)
    ref = find_stable_neurons(net, dom)
    assert ref.bounds_method == "auto"
    res = find_stable_neurons(net, dom, bounds=bounds)
    assert res.bounds_method == bounds
    assert all(np.array_equal(a.states, b.states) for a, b in zip(ref.layers, res.layers))
    res.check(net, dom.sample(5000, seed=0, include_vertices=True), dom)


def test_bounds_name_is_checked():
    net = Network.random([3, 6, 2], seed=0)
    with pytest.raises(ValueError, match="one of"):
        find_stable_neurons(net, Box(-1, 1, dim=3), bounds="crown")


def test_cli_stable_bounds_flag(tmp_path, capsys):
    import json

    from mipnet.cli import main
    from mipnet.io import save_network

    path = tmp_path / "n.npz"
    save_network(Network.random([4, 12, 12, 2], seed=3, bias_scale=1.5), path)
    states = {}
    for m in ("ia", "alpha"):
        assert main(["stable", str(path), "--box", "-1", "1", "--bounds", m, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["bounds_method"] == m
        states[m] = [(l["inactive"], l["active"], l["unstable"]) for l in out["layers"]]
    assert states["ia"] == states["alpha"]


def test_per_neuron_time_slices_give_the_exact_answer():
    """Under a time limit the per-neuron MILPs run in rounds of time slices (one hard neuron
    cannot starve the others); with time enough the answer is the unlimited one."""
    net = Network.random([4, 10, 10, 8, 2], seed=4, bias_scale=1.0)
    dom = Box(-1.0, 1.0, dim=4)
    kw = dict(bounds="symbolic", samples=20, search_steps=0, ascent=False)  # the witnesses left to MILPs
    free = find_stable_neurons(net, dom, **kw)
    sliced = find_stable_neurons(net, dom, time_limit=120.0, **kw)
    assert free.complete and sliced.complete and sliced.num_milps >= 1
    assert all(np.array_equal(a.states, b.states) for a, b in zip(free.layers, sliced.layers))
    sliced.check(net, dom.sample(5000, seed=0, include_vertices=True), dom)


# ---------------------------------------------------------------------------- branch and bound
@pytest.mark.parametrize("seed", [0, 1, 3])
def test_branch_and_bound_claims_match_the_exact_milp(seed):
    """The beta-CROWN-style branch and bound settles neurons before any MILP; its states are the
    exact ones (per-neuron MILPs without it), it needs fewer MILPs, and its claims hold on 10^5 samples."""
    net = Network.random([5, 16, 16, 12, 2], seed=seed)
    net = Network.from_layers([(W, b - 0.3 * np.abs(W).sum(1) * (seed % 2)) for W, b in net.layers])
    dom = Box(-1, 1, dim=5)
    kw = dict(bounds="symbolic", samples=20, search_steps=0, ascent=False)
    a = find_stable_neurons(net, dom, branching=True, **kw)
    _same_states_fewer_milps(a, find_stable_neurons(net, dom, branching=False, **kw))
    a.check(net, np.random.default_rng(seed).uniform(-1, 1, size=(100_000, 5)), dom)
    if seed % 2:
        assert any("bab" in set(ls.proof) for ls in a.layers)


def test_sign_branch_and_bound_skips_envelope_lines_that_would_overrun_the_deadline(monkeypatch):
    """The envelope lines' set-up ignored the deadline: `compress` of a 784-300-300-10 net with a
    0.5 s limit took 4.3 s, 1.4 s of it building lines for questions it had no time to branch on.
    Under a deadline too short for them the roots use the chords alone (and stay sound)."""
    import time as _time

    import mipnet.bounds.branching as br
    from mipnet.bounds import symbolic_bounds

    calls = []
    real = br.envelope_lines
    monkeypatch.setattr(br, "envelope_lines", lambda *a, **k: calls.append(1) or real(*a, **k))
    net = Network.random([784, 300, 300, 10], seed=11)
    dom = Box(0, 1, dim=784)
    layers = list(symbolic_bounds(net, dom).layers[:1])
    neurons, signs = np.arange(40), np.ones(40)
    ans = br.sign_branch_and_bound(net, dom, layers, 1, neurons, signs, deadline=_time.perf_counter() + 0.2)
    assert not calls and set(ans.status) <= {"proven", "witness", "open"}
    y = net.preactivations(dom.sample(2000, seed=0, include_vertices=True))[1][:, neurons]
    pr = ans.status == "proven"
    assert np.all(y.max(0)[pr] <= ans.bound[pr] + 1e-9)
    small = Network.random([4, 20, 10, 2], seed=2)  # a small problem keeps its lines under a deadline
    calls.clear()
    br.sign_branch_and_bound(small, Box(-1, 1, dim=4), list(symbolic_bounds(small, Box(-1, 1, dim=4)).layers[:1]),
                             1, np.arange(4), np.ones(4), deadline=_time.perf_counter() + 5.0, max_leaves=64)
    assert calls


def test_sign_branch_and_bound_proves_and_finds_witnesses():
    """Direct use: every question of layer 2 is answered, a proof is never contradicted by samples,
    a witness shows its sign, and an open question's bound is sound."""
    from mipnet.bounds import symbolic_bounds
    from mipnet.bounds.branching import sign_branch_and_bound

    net = Network.random([4, 20, 10, 2], seed=2)
    net = Network.from_layers([(W, b - 0.4 * np.abs(W).sum(1)) for W, b in net.layers])
    dom = Box(-1, 1, dim=4)
    layers = list(symbolic_bounds(net, dom).layers[:1])
    n = net.hidden_widths[1]
    neurons = np.concatenate([np.arange(n), np.arange(n)])
    signs = np.concatenate([np.ones(n), -np.ones(n)])
    ans = sign_branch_and_bound(net, dom, layers, 1, neurons, signs, max_leaves=2048)
    y = net.preactivations(dom.sample(100_000, seed=0, include_vertices=True))[1]
    smax = np.where(signs > 0, y.max(0)[neurons], -y.min(0)[neurons])
    assert set(ans.status) <= {"proven", "witness", "open"}
    assert np.all(ans.status != "open")
    pr = ans.status == "proven"
    assert pr.any() and (ans.status == "witness").any()
    assert np.all(smax[pr] <= ans.bound[pr] + 1e-12) and np.all(ans.bound[pr] <= 0)
    assert np.all(ans.branches >= 1)


@pytest.mark.parametrize("domain", ["box", "polytope", "l1"])
def test_dc_ascent_climbs_stays_in_the_domain_and_below_the_exact_bounds(domain):
    """NeuronAscent (DC ascent by LPs, layers 2 and 3 of a 4-layer net): from the domain's centre each
    run ends no lower than it started, every point it visits lies in the domain and its value is
    that of a float64 forward pass, and no value exceeds the exact (complete per-neuron MILP) bound."""
    from mipnet import L1Ball
    from mipnet.analyses.ascent import NeuronAscent

    net = Network.random([6, 20, 20, 20, 3], seed=0)
    if domain == "box":
        dom = Box(-1, 1, dim=6)
    elif domain == "polytope":
        dom = Polytope(np.array([[1.0, 1, 1, 0, 0, 0], [0, 0, 0, -1, 1, -1]]), np.array([0.5, 0.8]), -1, 1)
    else:
        dom = L1Ball(np.zeros(6), 2.0, -1, 1)
    exact = find_stable_neurons(net, dom, branching=False, search_steps=0, ascent=False, samples=10)
    assert exact.complete
    x0 = dom.sample(1, seed=0)[0] if domain == "polytope" else np.zeros(6)
    for l in (1, 2):
        asc = NeuronAscent(net, dom, l)
        reached = 0
        for i in range(20):
            for sign in (1.0, -1.0):
                x, v, trail = asc.run(i, sign, x0)
                assert v >= asc.value(x0, i, sign)[0] - 1e-12
                assert v == pytest.approx(sign * net.preactivations(x[None])[l][0, i], abs=1e-12)
                if trail:
                    assert np.all(dom.contains(np.asarray(trail)))
                bound = exact.layers[l].upper[i] if sign > 0 else -exact.layers[l].lower[i]
                assert v <= bound + 1e-7
                reached += (v > 0) == (bound > exact.tol)  # the sign the exact search found
        assert reached >= 30  # a local method, but from the centre it finds most signs (36-40 of 40 seen)


def test_dc_ascent_finds_witnesses_the_data_does_not_show():
    """Without samples, data or gradient steps, the ascent alone shows neurons of layers 2-3 unstable
    (before any MILP); the states equal those of the search without it, and the claims hold."""
    net = Network.random([6, 20, 20, 20, 3], seed=1)
    dom = Box(-1, 1, dim=6)
    kw = dict(samples=0, search_steps=0, branching=False)
    on = find_stable_neurons(net, dom, ascent=True, **kw)
    _same_states_fewer_milps(on, find_stable_neurons(net, dom, ascent=False, **kw))
    _check_claims(net, dom, on)


def test_a_polytope_without_volume_is_analysed():
    """An equality constraint (VNN-LIB's `=`: x0 + x1 = 0.3) leaves no volume to sample: the witness
    heuristics of the LP bounds raised 'could not sample the domain' and stopped `auto` bounds, the
    stable-neuron search and compression. They now skip the samples; the claims hold on the line."""
    from mipnet import compress, compute_bounds

    net = Network.random([2, 6, 6, 3], seed=0)
    a = np.array([1.0, 1.0])
    dom = Polytope(np.vstack([a, -a]), np.array([0.3, -0.3]), -1, 1)
    t = np.linspace(-0.7, 1.0, 2001)
    X = np.stack([t, 0.3 - t], axis=1)  # the whole segment of the domain
    assert np.all(dom.contains(X))
    b = compute_bounds(net, dom, method="auto")
    for lb, y in zip(b.layers, net.preactivations(X)):
        assert np.all(y >= lb.lower - 1e-9) and np.all(y <= lb.upper + 1e-9)
    res = find_stable_neurons(net, dom)
    assert res.complete
    res.check(net, X, dom)
    c = compress(net, dom)
    np.testing.assert_allclose(c.network.forward(X), net.forward(X), rtol=1e-9, atol=1e-9)
