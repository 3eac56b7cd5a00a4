"""Closed-form region bounds: reference values, identities, and independent routes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mipnet import InvalidArgumentError, Network
from mipnet.theory import (
    RegionBound,
    _brute_force_serra,
    layer_S,
    layer_S_direct,
    sample_ranks,
    _structural_rank,
    all_bounds,
    expected_rank_bound,
    montufar2014_bound,
    montufar2017_bound,
    parse_widths,
    raghu2017_bound,
    rank_distribution,
    serra2018_bound,
    serra_ramalingam2020_bound,
    widths_of,
)

small_widths = st.lists(st.integers(1, 7), min_size=2, max_size=5).map(tuple)


# ---------------------------------------------------------------------------- Serra 2018
@pytest.mark.parametrize("hidden, expected", [
    ((1, 21), 23),
    ((5, 17), 35_443),
    ((11, 11), 2_449_868),
    ((17, 5), 4_185_195),
    ((21, 1), 4_194_303),
])
def test_serra2018_reference_values(hidden, expected):
    b = serra2018_bound((784,) + hidden)
    assert b.value == expected
    assert b.exact_integer
    assert b.log_value == pytest.approx(math.log(expected), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(small_widths)
def test_serra2018_equals_theorem_sum_over_J(w):
    """The O(n) prefix-sum recurrence against the explicit sum over J (Theorem 1)."""
    assert serra2018_bound(w).value == _brute_force_serra(w)


@settings(max_examples=60, deadline=None)
@given(small_widths, st.data())
def test_serra2018_rank_refined_equals_theorem7_sum(w, data):
    ranks = [data.draw(st.integers(0, min(w[l], w[l - 1]))) for l in range(1, len(w))]
    assert serra2018_bound(w, ranks=ranks).value == _brute_force_serra(w, ranks)


@pytest.mark.parametrize("n0, n1", [(1, 1), (1, 5), (2, 4), (3, 3), (3, 10), (784, 20), (5, 40)])
def test_one_hidden_layer_is_zaslavsky(n0, n1):
    assert serra2018_bound((n0, n1)).value == sum(math.comb(n1, i) for i in range(min(n0, n1) + 1))


@pytest.mark.parametrize("hidden", [(3,), (3, 4), (5, 3, 7), (10, 10, 10, 10)])
def test_one_input_gives_product_of_widths_plus_one(hidden):
    """n0 = 1, widths >= 3: the bound equals the known maximum prod (n_l + 1)."""
    assert serra2018_bound((1,) + hidden).value == math.prod(n + 1 for n in hidden)


@settings(max_examples=80, deadline=None)
@given(small_widths)
def test_bound_ordering(w):
    s = serra2018_bound(w).value
    m17 = montufar2017_bound(w).value
    m14 = montufar2014_bound(w).value
    assert 1 <= s <= m17 <= m14 == 2 ** sum(w[1:])


@settings(max_examples=60, deadline=None)
@given(small_widths, st.data())
def test_serra2018_monotone_in_widths(w, data):
    i = data.draw(st.integers(0, len(w) - 1))
    bigger = list(w)
    bigger[i] += data.draw(st.integers(1, 3))
    assert serra2018_bound(tuple(bigger)).value >= serra2018_bound(w).value


def test_serra2018_big_network_is_fast_and_exact():
    b = serra2018_bound((784, 1000, 1000, 1000))
    assert b.exact_integer and b.value > 0
    assert b.log_value == pytest.approx(math.log(b.value), rel=1e-12)
    assert b.value < 2 ** 3000


def test_sampled_patterns_never_exceed_serra_bound():
    """Distinct activation patterns seen on random inputs are distinct regions (a lower bound)."""
    for widths, seed in [((2, 6, 5, 1), 0), ((2, 8, 1), 1), ((3, 5, 4, 3, 1), 2)]:
        net = Network.random(widths, seed=seed)
        x = np.random.default_rng(seed).uniform(-30, 30, size=(60_000, widths[0]))
        seen = len(np.unique(np.packbits(net.activation_pattern(x), axis=1), axis=0))
        assert seen <= serra2018_bound(net).value
        assert seen <= serra2018_bound(net, use_rank=True).value


def test_one_hidden_layer_random_net_reaches_zaslavsky_on_a_big_box():
    """General position: sampling a large box finds all sum_{i<=2} C(4, i) = 11 regions."""
    net = Network.random((2, 4, 1), seed=3)
    x = np.random.default_rng(0).uniform(-200, 200, size=(200_000, 2))
    seen = len(np.unique(net.activation_pattern(x), axis=0))
    assert seen == serra2018_bound(net).value == 11


def test_serra2018_rank_from_network():
    rng = np.random.default_rng(0)
    W1 = np.outer(rng.normal(size=6), rng.normal(size=4))  # rank 1
    net = Network([W1, rng.normal(size=(5, 6)), rng.normal(size=(1, 5))], [rng.normal(size=6), rng.normal(size=5), np.zeros(1)])
    full = serra2018_bound(net)
    ranked = serra2018_bound(net, use_rank=True)
    assert ranked.value == serra2018_bound((4, 6, 5), ranks=[1, 5]).value
    assert ranked.value < full.value
    # rank 1 first layer: every region lies in a 1-D image: at most prod over a line
    assert ranked.value <= (6 + 1) * (5 + 1)


# ---------------------------------------------------------------------------- Serra & Ramalingam 2020
def _brute_force_sr2020(w, s_in, s_ac, a, r):
    """Explicit enumeration of the generalised recurrence, tuple by tuple (tests only)."""
    L = len(w) - 1

    def rec(l, d):
        if l > L:
            return 1
        n_eff = w[l] - s_in[l - 1]
        u = n_eff - s_ac[l - 1]
        e = min(d, r[l - 1])
        return sum(math.comb(u, j) * rec(l + 1, min(n_eff - j, e, a[l - 1])) for j in range(min(u, e) + 1))

    return rec(1, w[0])


@settings(max_examples=60, deadline=None)
@given(small_widths, st.data())
def test_sr2020_matches_explicit_recurrence(w, data):
    L = len(w) - 1
    s_in, s_ac, a, r = [], [], [], []
    for l in range(1, L + 1):
        i = data.draw(st.integers(0, w[l]))
        s = data.draw(st.integers(0, w[l] - i))
        s_in.append(i)
        s_ac.append(s)
        a.append(data.draw(st.integers(s, w[l] - i)))
        r.append(data.draw(st.integers(0, min(w[l], w[l - 1]))))
    b = serra_ramalingam2020_bound(w, stable_inactive=s_in, stable_active=s_ac, max_active=a, ranks=r)
    r_eff = [min(r[l], w[l + 1] - s_in[l]) for l in range(L)]
    assert b.value == _brute_force_sr2020(w, s_in, s_ac, a, r_eff)
    assert b.value <= serra2018_bound(w).value


@settings(max_examples=40, deadline=None)
@given(small_widths)
def test_sr2020_without_counts_equals_serra2018(w):
    assert serra_ramalingam2020_bound(w).value == serra2018_bound(w).value


def test_sr2020_monotone_in_counts():
    w = (6, 8, 8, 6)
    base = serra_ramalingam2020_bound(w).value
    prev = base
    for k in range(1, 5):
        v = serra_ramalingam2020_bound(w, stable_inactive=[k, 0, 0]).value
        assert v <= prev
        prev = v
    prev = base
    for k in range(1, 5):
        v = serra_ramalingam2020_bound(w, stable_active=[0, k, 0]).value
        assert v <= prev
        prev = v
    prev = base
    for a in range(8, 0, -1):
        v = serra_ramalingam2020_bound(w, max_active=[8, a, 6]).value
        assert v <= prev
        prev = v


def test_sr2020_dead_or_fully_stable_layer():
    w = (5, 6, 7, 4)
    # layer 2 entirely stably inactive: the net is constant after it; regions of layer 1 only
    assert serra_ramalingam2020_bound(w, stable_inactive=[0, 7, 0]).value == serra2018_bound((5, 6)).value
    # a layer of stably active units splits nothing
    v = serra_ramalingam2020_bound(w, stable_active=[0, 7, 0]).value
    assert v == serra2018_bound((5, 6, 4)).value


def test_sr2020_bound_holds_on_a_net_with_stable_units():
    """Force stable units with big biases on a box, count sampled patterns."""
    rng = np.random.default_rng(5)
    W1, b1 = rng.normal(size=(7, 2)), rng.normal(size=7) * 0.3
    b1[:2] = -100.0   # stably inactive on [-1, 1]^2
    b1[2:4] = 100.0   # stably active
    W2, b2 = rng.normal(size=(5, 7)), rng.normal(size=5) * 0.3
    b2[0] = -1000.0   # stably inactive
    net = Network([W1, W2, rng.normal(size=(1, 5))], [b1, b2, np.zeros(1)])
    x = rng.uniform(-1, 1, size=(100_000, 2))
    pat = net.activation_pattern(x)
    assert not pat[:, :2].any() and pat[:, 2:4].all() and not pat[:, 7].any()
    seen = len(np.unique(pat, axis=0))
    b = serra_ramalingam2020_bound(net, stable_inactive=[2, 1], stable_active=[2, 0])
    assert seen <= b.value < serra2018_bound(net).value


# ---------------------------------------------------------------------------- simple bounds
def test_montufar_and_raghu_values():
    assert montufar2014_bound((784, 100, 100)).value == 2 ** 200
    assert montufar2017_bound((2, 3, 5)).value == (1 + 3 + 3) * (1 + 5 + 10)
    r = raghu2017_bound((784, 100, 100))
    assert r.value is None and not r.exact_integer
    assert r.log_value == pytest.approx(784 * 2 * math.log(100))
    assert "order of magnitude" in r.note


def test_region_bound_to_dict_and_str():
    b = serra2018_bound((784, 11, 11))
    d = b.to_dict()
    assert d["value"] == 2449868 and d["exact_integer"] is True
    assert d["log10_value"] == pytest.approx(math.log10(2449868))
    assert "2,449,868" in str(b)
    big = montufar2014_bound((784, 100, 100))
    assert "e+60" in str(big)
    assert isinstance(big, RegionBound)


def test_widths_of_network_and_sequences():
    net = Network.random((5, 4, 3, 2), seed=0)
    assert widths_of(net) == (5, 4, 3)
    assert widths_of([5, 4, 3]) == (5, 4, 3)
    assert widths_of(np.array([5, 4])) == (5, 4)
    assert widths_of("5,4,3") == (5, 4, 3)
    assert parse_widths("784x100x10") == (784, 100, 10)
    assert parse_widths("784-100-10") == parse_widths("784 - 100 - 10") == (784, 100, 10)
    for text in ("784 -100 10", "784,-100,10", "-784,100"):  # '-' separates widths, but not before a number
        with pytest.raises(InvalidArgumentError, match="is negative"):
            parse_widths(text)
    assert serra2018_bound(net).value == serra2018_bound((5, 4, 3)).value


# ---------------------------------------------------------------------------- expected rank
@pytest.mark.parametrize("densities, expected", [
    ([1.0, 1.0], 144.92),
    ([0.001, 0.001], 119.8),
    ([0.00059, 0.0042], 137.8),
    ([0.0001, 0.0001], 62.8),
])
def test_cai2023_reference_values(densities, expected):
    b = expected_rank_bound((784, 100, 100), densities, output_width=10, output_density=1.0)
    assert abs(b.log_value - expected) < 0.1
    assert b.value is None and not b.exact_integer


def test_expected_rank_at_density_one_equals_serra():
    for w in [(784, 100, 100), (5, 3, 8, 2), (3, 7)]:
        b = expected_rank_bound(w, 1.0)
        assert b.log_value == pytest.approx(serra2018_bound(w).log_value, rel=1e-12)
        with_out = expected_rank_bound(w, 1.0, output_width=4)
        assert with_out.log_value == pytest.approx(serra2018_bound(w + (4,)).log_value, rel=1e-12)
    assert expected_rank_bound((4, 3, 3), 0.0).log_value == 0.0  # nothing kept: one region


def _enumerate_expectation(widths, ps, rank_of_mask):
    """E[Serra(ranks)] over every mask of every layer (independent layers), by enumeration."""
    shapes = [(widths[l + 1], widths[l]) for l in range(len(widths) - 1)]
    per_layer = []
    for (R, C), p in zip(shapes, ps):
        dist = {}
        for bits in itertools.product([0, 1], repeat=R * C):
            m = np.array(bits, dtype=bool).reshape(R, C)
            k = int(m.sum())
            pr = p ** k * (1 - p) ** (R * C - k)
            r = rank_of_mask(m)
            dist[r] = dist.get(r, 0.0) + pr
        per_layer.append(dist)
    total = 0.0
    for combo in itertools.product(*[list(d.items()) for d in per_layer]):
        ranks = [r for r, _ in combo]
        prob = math.prod(p for _, p in combo)
        total += prob * serra2018_bound(widths, ranks=ranks).value
    return total


def _nonzero_lines(m):
    R, C = m.shape
    return int(m.any(axis=1).sum()) if C >= R else int(m.any(axis=0).sum())


def test_expected_rank_binomial_equals_enumeration_over_masks():
    """Independent route: exact expectation over all masks of the non-zero-row count."""
    widths, ps = (3, 2, 3, 1), [0.3, 0.6, 0.5]
    exact = _enumerate_expectation(widths, ps, _nonzero_lines)
    b = expected_rank_bound(widths[:-1], ps[:-1], output_width=1, output_density=ps[-1])
    assert b.log_value == pytest.approx(math.log(exact), rel=1e-10)


def test_expected_rank_sampled_matches_enumeration_of_true_ranks():
    """The sampled model estimates E over masks of the rank of Gaussian matrices."""
    widths, ps = (3, 2, 3), [0.3, 0.5]
    G = {s: np.random.default_rng(7).normal(size=s) for s in [(2, 3), (3, 2)]}
    exact = _enumerate_expectation(widths, ps, lambda m: int(np.linalg.matrix_rank(np.where(m, G[m.shape], 0.0))))
    b = expected_rank_bound(widths, ps, rank_model="sampled", n_samples=4000, seed=1)
    assert b.log_value == pytest.approx(math.log(exact), abs=0.03)


def test_structural_rank_equals_rank_of_gaussian_matrices():
    rng = np.random.default_rng(0)
    for R, C, p in [(5, 9, 0.15), (9, 5, 0.2), (12, 12, 0.1), (20, 30, 0.05), (8, 8, 0.5)]:
        for _ in range(20):
            m = rng.random((R, C)) < p
            A = np.where(m, rng.normal(size=(R, C)), 0.0)
            assert _structural_rank(*np.nonzero(m), R, C) == np.linalg.matrix_rank(A)


def test_binomial_rank_distribution_against_mask_counts():
    R, C, p = 10, 40, 0.02
    pmf = rank_distribution(R, C, p)
    assert pmf.shape == (11,) and pmf.sum() == pytest.approx(1.0)
    q = 1 - (1 - p) ** C
    assert (pmf * np.arange(11)).sum() == pytest.approx(R * q)
    rng = np.random.default_rng(0)
    counts = (rng.random((20_000, R, C)) < p).any(axis=2).sum(axis=1)
    assert counts.mean() == pytest.approx(R * q, rel=0.02)
    swapped = rank_distribution(C, R, p)  # fan-in < fan-out: count non-zero columns
    np.testing.assert_allclose(swapped, pmf)


def test_sampled_ranks_are_monotone_and_bounded():
    ps = np.array([0.0, 0.001, 0.01, 0.05, 0.3, 1.0])
    r = sample_ranks(30, 80, ps, n_samples=20, seed=0)
    assert r.shape == (6, 20)
    assert (np.diff(r, axis=0) >= 0).all()
    assert (r[0] == 0).all() and (r[-1] == 30).all()


def test_sampled_vs_binomial_rank_models():
    w = (784, 100, 100)
    dense_b = expected_rank_bound(w, 1.0, output_width=10)
    dense_s = expected_rank_bound(w, 1.0, output_width=10, rank_model="sampled", n_samples=8)
    assert dense_s.log_value == pytest.approx(dense_b.log_value, rel=1e-12)
    # at 5% density a 100x784 or 100x100 mask is almost surely of full structural rank
    b = expected_rank_bound(w, 0.05, output_width=10)
    s = expected_rank_bound(w, 0.05, output_width=10, rank_model="sampled", n_samples=32)
    assert s.log_value == pytest.approx(b.log_value, abs=0.05)
    # very sparse: rank <= non-zero rows sample by sample, so the sampled bound is lower, but close
    b = expected_rank_bound(w, 0.001, output_width=10)
    s = expected_rank_bound(w, 0.001, output_width=10, rank_model="sampled", n_samples=64)
    assert b.log_value - 8 < s.log_value < b.log_value


def test_layer_S_fast_equals_direct():
    rng = np.random.default_rng(1)
    for n, K, Dn in [(1, 1, 0), (4, 2, 9), (7, 7, 3), (8, 5, 8), (31, 31, 40), (100, 60, 100)]:
        Bn = np.sort(rng.random((4, Dn + 1)) * 20, axis=1)
        np.testing.assert_allclose(layer_S(Bn, n, K), layer_S_direct(Bn, n, K), rtol=1e-12, atol=1e-12)


def test_expected_rank_bound_is_fast():
    import time

    expected_rank_bound((784, 100, 100), 0.001, output_width=10)
    t = time.perf_counter()
    for _ in range(10):
        expected_rank_bound((784, 100, 100), 0.001, output_width=10)
    assert (time.perf_counter() - t) / 10 < 0.05


def test_expected_rank_with_network_uses_its_densities():
    rng = np.random.default_rng(0)
    net = Network.random((6, 5, 4, 2), seed=0)
    layers = [(W * (rng.random(W.shape) < 0.5), b) for W, b in net.layers]
    pruned = Network.from_layers(layers)
    b = expected_rank_bound(pruned)
    d = pruned.layer_densities()
    assert b.log_value == pytest.approx(
        expected_rank_bound((6, 5, 4), d[:2], output_width=2, output_density=d[2]).log_value)
    no_out = expected_rank_bound(pruned, output_width=0)
    assert no_out.log_value == pytest.approx(expected_rank_bound((6, 5, 4), d[:2]).log_value)


def test_all_bounds():
    names = [b.name for b in all_bounds((784, 100, 100))]
    assert names == ["montufar2014", "raghu2017", "montufar2017", "serra2018"]
    bs = all_bounds((784, 100, 100), densities=0.001, output_width=10)
    assert bs[-1].name == "cai2023_expected_rank" and abs(bs[-1].log_value - 119.8) < 0.1
    net = Network.random((4, 6, 6, 2), seed=0)
    names = [b.name for b in all_bounds(net)]
    assert "serra2018_rank" in names and "cai2023_expected_rank" in names
    for b in all_bounds(net):
        assert isinstance(b.to_dict()["log_value"], float)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad, match", [
    ([], "empty"),
    ([4, 0], "must be >= 1"),
    ([4, 2.5], "not an integer"),
    ("784,a,10", "not an integer"),
    ("", "empty"),
    (3.0, "sequence of positive integers"),
])
def test_widths_errors(bad, match):
    with pytest.raises(InvalidArgumentError, match=match):
        serra2018_bound(bad)


def test_argument_errors():
    with pytest.raises(InvalidArgumentError, match=r"ranks\[0\] = 5 must be <= 4"):
        serra2018_bound((4, 6), ranks=[5])
    with pytest.raises(InvalidArgumentError, match="one per hidden layer"):
        serra2018_bound((4, 6, 6), ranks=[2])
    with pytest.raises(InvalidArgumentError, match="use_rank=True needs a Network"):
        serra2018_bound((4, 6), use_rank=True)
    with pytest.raises(InvalidArgumentError, match="exceeds its width"):
        serra_ramalingam2020_bound((4, 6), stable_inactive=[4], stable_active=[3])
    with pytest.raises(InvalidArgumentError, match="always active"):
        serra_ramalingam2020_bound((4, 6), stable_active=[3], max_active=[2])
    with pytest.raises(InvalidArgumentError, match="must be in"):
        expected_rank_bound((4, 6), [1.5])
    with pytest.raises(InvalidArgumentError, match="rank_model"):
        expected_rank_bound((4, 6), [0.5], rank_model="svd")
    with pytest.raises(InvalidArgumentError, match="give densities"):
        expected_rank_bound((4, 6))
    with pytest.raises(InvalidArgumentError, match="given twice"):
        expected_rank_bound((4, 6), [0.5, 0.5], output_width=2, output_density=0.3)
    with pytest.raises(InvalidArgumentError, match="integer or a list of integers"):
        serra2018_bound((4, 6), ranks=object())
    with pytest.raises(InvalidArgumentError, match="densities must be a number or a list"):
        expected_rank_bound((4, 6), "abc")
    with pytest.raises(InvalidArgumentError, match="densities must be a number or a list"):
        expected_rank_bound((4, 6), object())
    with pytest.raises(InvalidArgumentError, match="K = 5 must not exceed n = 4"):
        layer_S(np.zeros(3), 4, 5)
    with pytest.raises(InvalidArgumentError, match="density must be a number or an array"):
        rank_distribution(3, 4, "abc")
    with pytest.raises(InvalidArgumentError, match="fan_out must be a positive integer"):
        rank_distribution("3", 4, 0.5)
    with pytest.raises(InvalidArgumentError, match="fan_in must be a positive integer"):
        rank_distribution(3, float("nan"), 0.5)
