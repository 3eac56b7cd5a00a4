"""Differential fuzz of the exact region counters over degenerate networks (hypothesis).

Networks: 2-4 inputs, 1-2 hidden layers of 2-6 neurons, with zero neurons, opposite
neurons, duplicated and near-duplicated neurons (bias shifted by 1e-9..1e-7), integer
weights, weights scaled by 1e-6, on the unit box, on a huge box (+-1e10 around a
unit-size arrangement) and on a tiny box (+-1e-6, the arrangement scaled with it).

Properties, with every witness re-checked by this file's own float64 forward pass (not
mipnet's numerics):

* a count reported exact has a valid witness for every region, distinct patterns;
* vertex, lp and milp agree (count and pattern set) whenever each says exact;
* a count that is not exact is a subset of an exact one (a lower bound), its witnesses valid;
* the distinct patterns of random samples are a subset of the exact set;
* the tiny box (net scaled by 1e-6 with it) has the same count as the unit box;
* the count split into sign-prefix units with budgets of 1-6 regions (units hand on the cells
  they did not reach) is exact exactly when the serial count is, with the same patterns.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mipnet import Box, Network
from mipnet.analyses.regions import count_regions, sample_regions

NOISE = 1e-12  # the zero rule re-implemented here: |y| <= 1e-12 (|W| |h| + |b|) is zero


# ============================================================================ an independent witness check
def witness_ok(net: Network, lo, hi, X: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Per point: in the box (relative slack 1e-9), snapped forward pattern == P, and every
    pre-activation non-zero unless the neuron's map on the region is identically zero."""
    X = np.atleast_2d(X)
    slack_lo, slack_hi = 1e-9 * (1 + np.abs(lo)), 1e-9 * (1 + np.abs(hi))
    ok = np.all((X >= lo - slack_lo) & (X <= hi + slack_hi), axis=1)
    h = X
    n0 = net.input_dim
    J = np.broadcast_to(np.eye(n0), (len(X), n0, n0))
    Ja = J
    c = np.zeros((len(X), n0))
    ca = c
    off = net.hidden_offsets
    for l, (W, b) in enumerate(net.layers[:-1]):
        y = h @ W.T + b
        y = np.where(np.abs(y) <= NOISE * (np.abs(h) @ np.abs(W).T + np.abs(b)), 0.0, y)
        on = y > 0
        ok &= np.all(on == P[:, off[l]:off[l + 1]], axis=1)
        # the neuron's affine map on the region, snapped by the same rule
        G = np.einsum("ij,pjk->pik", W, J)
        Ga = np.einsum("ij,pjk->pik", np.abs(W), Ja)
        g = c @ W.T + b
        ga = ca @ np.abs(W).T + np.abs(b)
        zero = np.all(np.abs(G) <= NOISE * Ga, axis=2) & (np.abs(g) <= NOISE * ga)
        ok &= np.all((y != 0) | zero, axis=1)
        h = np.maximum(y, 0.0)
        J, Ja = G * on[:, :, None], Ga * on[:, :, None]
        c, ca = g * on, ga * on
    return ok


def patterns_of(res) -> set:
    return {r.pattern.tobytes() for r in res.region_list}


def check_result(net, lo, hi, res) -> None:
    """Every returned region (exact or a lower bound) is certified and distinct."""
    assert len(res.region_list) == res.regions
    assert len(patterns_of(res)) == res.regions
    if res.regions:
        X = np.stack([r.interior_point for r in res.region_list])
        P = np.stack([r.pattern for r in res.region_list])
        ok = witness_ok(net, lo, hi, X, P)
        assert ok.all(), f"{res.algorithm}: {int((~ok).sum())} witnesses fail ({res.status})"


# ============================================================================ degenerate networks
@st.composite
def degenerate_problem(draw):
    n0 = draw(st.integers(2, 4))
    hidden = [draw(st.integers(2, 6)) for _ in range(draw(st.integers(1, 2)))]
    widths = [n0] + hidden + [1]
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    integer = draw(st.booleans())
    Ws, bs = [], []
    for i in range(len(widths) - 1):
        if integer:
            W = rng.integers(-1, 2, size=(widths[i + 1], widths[i])).astype(float)
            b = rng.integers(-2, 3, size=widths[i + 1]) / 2.0
        else:
            W = rng.normal(size=(widths[i + 1], widths[i]))
            b = rng.normal(size=widths[i + 1]) * 0.5
        if i < len(widths) - 2:  # hidden layer: degenerate neurons copied from earlier ones
            for k in range(1, widths[i + 1]):
                kind = draw(st.sampled_from(["plain", "plain", "zero", "opposite", "duplicate", "near"]))
                j = draw(st.integers(0, k - 1))
                if kind == "zero":
                    W[k], b[k] = 0.0, 0.0
                elif kind == "opposite":
                    W[k], b[k] = -W[j], -b[j]
                elif kind == "duplicate":
                    W[k], b[k] = W[j], b[j]
                elif kind == "near":
                    W[k], b[k] = W[j], b[j] + 10.0 ** draw(st.floats(-9, -7))
        Ws.append(W)
        bs.append(b)
    if draw(st.booleans()) and not integer:
        Ws, bs = [W * 1e-6 for W in Ws], [b * 1e-6 for b in bs]
    box = draw(st.sampled_from(["unit", "unit", "huge", "tiny"]))
    base = Network(Ws, bs)
    if box == "tiny":  # the whole arrangement scaled with the box: an exact transformation
        net = Network(Ws, [b * 1e-6 for b in bs])
        R = 1e-6
    else:
        net = base
        R = 1e10 if box == "huge" else 1.0
    return net, base, R, box


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(degenerate_problem())
def test_methods_agree_and_exact_means_certified(problem):
    net, base, R, box = problem
    n = net.input_dim
    lo, hi = -R * np.ones(n), R * np.ones(n)
    dom = Box(-R, R, dim=n)
    res = {m: count_regions(net, dom, method=m, return_regions=True) for m in ("vertex", "lp")}
    if res["vertex"].regions <= 40:
        res["milp"] = count_regions(net, dom, method="milp", return_regions=True, time_limit=3.0)
    for r in res.values():
        check_result(net, lo, hi, r)
    exact = [r for r in res.values() if r.exact]
    if not exact:
        return
    E = patterns_of(exact[0])
    for r in exact[1:]:
        assert patterns_of(r) == E, (box, {m: (x.regions, x.exact) for m, x in res.items()})
    for r in res.values():
        assert patterns_of(r) <= E and r.regions <= len(E)
    s = sample_regions(net, dom, 4000, seed=0, return_patterns=True)
    assert {p.tobytes() for p in s.patterns} <= E
    if box == "tiny":
        unit = count_regions(base, Box(-1.0, 1.0, dim=n), method="vertex")
        if unit.exact and res["vertex"].exact:
            assert unit.regions == res["vertex"].regions


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(degenerate_problem(), st.integers(1, 6), st.integers(0, 3))
def test_units_with_tiny_budgets_agree_with_the_serial_count(problem, budget, depth):
    """The count split into sign-prefix units whose budgets stop them after a few regions (each
    hands on its frontier) gives the serial count's patterns, every witness valid."""
    from mipnet.analyses.regions.parallel import count_regions_parallel

    net, _, R, box = problem
    n = net.input_dim
    dom = Box(-R, R, dim=n)
    serial = count_regions(net, dom, method="vertex", return_regions=True)
    units = count_regions_parallel(net, dom, counter=count_regions, method="vertex", unit_regions=budget,
                                   split_depth=depth, return_regions=True)
    check_result(net, -R * np.ones(n), R * np.ones(n), units)
    assert units.exact == serial.exact, (box, serial.status, units.status)
    if serial.exact:
        assert patterns_of(units) == patterns_of(serial), (box, serial.regions, units.regions)


def test_independent_check_rejects_bad_witnesses():
    """The fuzz's own check can fail: a boundary point, a wrong pattern, a point outside."""
    net = Network([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    lo, hi = -np.ones(2), np.ones(2)
    X = np.array([[0.5, 0.5], [0.0, 0.5], [0.5, -0.5], [2.0, 0.5]])
    P = np.array([[1, 1], [0, 1], [1, 1], [1, 1]], bool)
    assert witness_ok(net, lo, hi, X, P).tolist() == [True, False, False, False]
    zero = Network([np.zeros((1, 2)), np.ones((1, 1))], [np.zeros(1), np.zeros(1)])
    assert witness_ok(zero, lo, hi, X[:1], np.array([[False]])).tolist() == [True]
