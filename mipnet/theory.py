"""Closed-form upper bounds on the number of activation regions of a ReLU network.

No solver is involved: every bound here is a formula in the layer widths (and, for the
refined bounds, in per-layer ranks, stable-neuron counts or weight densities).

Widths convention: ``widths = (n0, n1, ..., nL)`` lists the input size and the hidden
(ReLU) layer sizes. The affine output layer creates no region and is not listed, except in
:func:`expected_rank_bound`, whose reference implementation (Cai et al. 2023) multiplies
the output layer in as a last factor (pass ``output_width``). Every function also accepts a
:class:`~mipnet.core.network.Network`, whose input and hidden widths are used.

Exact values are Python integers (``math.comb``, never floats); ``log_value`` is the
natural logarithm. The expected-rank bound is a real number computed in log space.

References
----------
- G. Montufar, R. Pascanu, K. Cho, Y. Bengio, "On the number of linear regions of deep
  neural networks", NeurIPS 2014, arXiv:1402.1869.
- G. Montufar, "Notes on the number of linear regions of deep neural networks", SampTA 2017.
- M. Raghu, B. Poole, J. Kleinberg, S. Ganguli, J. Sohl-Dickstein, "On the expressive power
  of deep neural networks", ICML 2017, arXiv:1606.05336.
- T. Serra, C. Tjandraatmadja, S. Ramalingam, "Bounding and counting linear regions of deep
  neural networks", ICML 2018, arXiv:1711.02114.
- T. Serra, S. Ramalingam, "Empirical bounds on linear regions of deep rectifier networks",
  AAAI 2020, arXiv:1810.03370.
- J. Cai, K.-N. Nguyen, N. Shrestha, A. Good, R. Tu, X. Yu, S. Zhe, T. Serra, "Getting away
  with more network pruning: from sparsity to geometry and linear regions", CPAIOR 2023,
  arXiv:2301.07966.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mipnet.core.errors import InvalidArgumentError

__all__ = [
    "RegionBound",
    "widths_of",
    "parse_widths",
    "montufar2014_bound",
    "montufar2017_bound",
    "raghu2017_bound",
    "serra2018_bound",
    "serra_ramalingam2020_bound",
    "expected_rank_bound",
    "rank_distribution",
    "all_bounds",
    "RANK_MODELS",
    # building blocks of the expected-rank recurrence (used by mipnet.sparsity)
    "binomial_rank_logpmf",
    "sample_ranks",
    "layer_S",
    "mix_rank",
]

log = logging.getLogger(__name__)

RANK_MODELS = ("binomial", "sampled")


# ---------------------------------------------------------------------------- result type
@dataclass(frozen=True)
class RegionBound:
    """An upper bound on the number of activation regions.

    Attributes
    ----------
    name : str
        Short identifier of the bound (``"serra2018"``, ...).
    value : int or None
        The bound as an exact integer, or None when it is not an integer (expected-rank
        bound) or only an order of magnitude (Raghu et al.).
    log_value : float
        Natural logarithm of the bound (always set).
    exact_integer : bool
        True when ``value`` is the exact integer value of a proven upper bound.
    note : str
        What the bound assumes and where it comes from.
    """

    name: str
    value: int | None
    log_value: float
    exact_integer: bool
    note: str = ""

    @property
    def log10_value(self) -> float:
        return self.log_value / math.log(10.0)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "value": self.value,
            "log_value": self.log_value,
            "log10_value": self.log10_value,
            "exact_integer": self.exact_integer,
            "note": self.note,
        }

    def __str__(self) -> str:
        if self.value is not None and self.value < 10**15:
            shown = f"{self.value:,}"
        else:
            mant_exp = self.log10_value
            e = math.floor(mant_exp)
            shown = f"{'~' if not self.exact_integer else ''}{10 ** (mant_exp - e):.3f}e+{e:d}"
        return f"{self.name}: {shown} (ln {self.log_value:.2f}){'  [' + self.note + ']' if self.note else ''}"


def _int_log(v: int) -> float:
    """Natural log of a positive Python integer of any size."""
    return math.log(v) if v > 0 else float("-inf")


# ---------------------------------------------------------------------------- validation
def _network_type():
    from mipnet.core.network import Network

    return Network


def widths_of(net_or_widths) -> tuple[int, ...]:
    """``(n0, n1, ..., nL)``: input and hidden widths of a network or a width sequence.

    Parameters
    ----------
    net_or_widths : Network or sequence of int
        A :class:`~mipnet.core.network.Network` (its ``input_dim`` and ``hidden_widths`` are
        used; the output layer is left out) or the widths themselves, input first.

    Raises
    ------
    InvalidArgumentError
        If a width is not a positive integer or the sequence is empty.
    """
    if isinstance(net_or_widths, _network_type()):
        return (int(net_or_widths.input_dim),) + tuple(int(w) for w in net_or_widths.hidden_widths)
    if isinstance(net_or_widths, str):
        return parse_widths(net_or_widths)
    try:
        raw = list(net_or_widths)
    except TypeError:
        raise InvalidArgumentError(
            f"widths must be a Network or a sequence of positive integers (n0, n1, ..., nL), "
            f"got {type(net_or_widths).__name__}"
        ) from None
    if len(raw) == 0:
        raise InvalidArgumentError("widths is empty; give at least the input width n0, e.g. (784, 100, 100)")
    out = []
    for i, w in enumerate(raw):
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, (int, np.integer)):
            if isinstance(w, (float, np.floating)) and float(w).is_integer():
                w = int(w)
            else:
                raise InvalidArgumentError(f"widths[{i}] = {w!r} is not an integer; widths are layer sizes like 784,100,100")
        if int(w) < 1:
            raise InvalidArgumentError(f"widths[{i}] = {w} must be >= 1; every layer needs at least one neuron")
        out.append(int(w))
    return tuple(out)


def parse_widths(text: str) -> tuple[int, ...]:
    """Parse ``"784,100,100,10"`` (``,``, ``x``, ``-``, ``;`` or spaces between) into ints.

    Raises
    ------
    InvalidArgumentError
        If the text is empty, has an empty entry, or a part is not a positive integer.
    """
    import re

    s = str(text).strip()
    if not s:
        raise InvalidArgumentError(f"widths {text!r} are empty; write them like 784,100,100,10")
    neg = re.search(r"(?:^|[,;x\s])\s*-(\d+)", s)  # '-' also separates widths: '784,-100' is a sign
    if neg:
        raise InvalidArgumentError(f"widths {text!r}: -{neg.group(1)} is negative; widths are positive integers "
                                   "like 784,100,100,10")
    parts = re.split(r"\s*[,;x\-]\s*|\s+", s)
    out = []
    for p in parts:
        if p == "":
            raise InvalidArgumentError(f"widths {text!r} have an empty entry; write widths like 784,100,100,10")
        try:
            v = int(p)
        except ValueError:
            raise InvalidArgumentError(
                f"widths {text!r}: {p!r} is not an integer; write widths like 784,100,100,10"
            ) from None
        if v < 1:
            raise InvalidArgumentError(f"widths {text!r}: {v} must be >= 1; every layer needs at least one neuron")
        out.append(v)
    return tuple(out)


def _per_layer_ints(values, L: int, name: str, *, default, lo=None, hi=None,
                    lo_why: str = "", hi_why: str = "layer width") -> list[int]:
    """Validate an optional per-hidden-layer integer list (length L; a scalar is broadcast)."""
    if values is None:
        return list(default)
    if np.isscalar(values):
        values = [values] * L
    try:
        values = list(values)
    except TypeError:
        raise InvalidArgumentError(f"{name} must be an integer or a list of integers, one per hidden layer, "
                                   f"got {type(values).__name__}") from None
    if len(values) != L:
        raise InvalidArgumentError(f"{name} has {len(values)} entries but the network has {L} hidden layers; give one per hidden layer")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise InvalidArgumentError(f"{name}[{i}] = {v!r} must be an integer")
        v = int(v)
        if lo is not None and v < lo[i]:
            raise InvalidArgumentError(f"{name}[{i}] = {v} must be >= {lo[i]}" + (f" ({lo_why})" if lo_why else ""))
        if hi is not None and v > hi[i]:
            raise InvalidArgumentError(f"{name}[{i}] = {v} must be <= {hi[i]} ({hi_why} of hidden layer {i + 1})")
        out.append(v)
    return out


# ---------------------------------------------------------------------------- simple bounds
def montufar2014_bound(net_or_widths) -> RegionBound:
    """Trivial bound ``2^N`` with N the number of hidden neurons (Montufar et al. 2014).

    Examples
    --------
    >>> montufar2014_bound((2, 3, 3)).value
    64
    """
    w = widths_of(net_or_widths)
    N = sum(w[1:])
    return RegionBound("montufar2014", 1 << N, N * math.log(2.0), True,
                       f"2^N with N = {N} hidden neurons (Montufar et al. 2014)")


def montufar2017_bound(net_or_widths) -> RegionBound:
    """``prod_l sum_{j=0}^{d_l} C(n_l, j)`` with ``d_l = min(n0, ..., n_l)`` (Montufar 2017).

    Examples
    --------
    >>> montufar2017_bound((1, 3)).value   # 3 breakpoints on a line: 4 pieces
    4
    """
    w = widths_of(net_or_widths)
    total = 1
    d = w[0]
    for n in w[1:]:
        d = min(d, n)
        s, c = 0, 1
        for j in range(d + 1):
            s += c
            c = c * (n - j) // (j + 1)
        total *= s
    return RegionBound("montufar2017", total, _int_log(total), True,
                       "prod_l sum_{j<=d_l} C(n_l, j), d_l = min(n0..n_l) (Montufar 2017)")


def raghu2017_bound(net_or_widths) -> RegionBound:
    """Order-of-magnitude bound ``O(k^{m n})`` of Raghu et al. (ICML 2017).

    For n hidden layers of width k on m inputs. With unequal widths, k is the largest
    hidden width. The O(.) hides constants: ``log_value = m n ln k`` is an order of
    magnitude only, never a proven numeric bound, so ``value`` is None.
    """
    w = widths_of(net_or_widths)
    m, n = w[0], len(w) - 1
    k = max(w[1:]) if n else 1
    lv = m * n * math.log(k) if n else 0.0
    return RegionBound("raghu2017", None, lv, False,
                       f"order of magnitude O(k^(m n)) with k = {k}, m = {m}, n = {n}; constants unknown (Raghu et al. 2017)")


# ---------------------------------------------------------------------------- Serra recurrence
def _serra_recurrence_exact(n0: int, layers: Sequence[tuple[int, int, int, int]]) -> int:
    """Exact value of the generalised Serra et al. recurrence.

    ``layers`` lists ``(u, na, r, a)`` per hidden layer: u units can switch (binomial top),
    na units exist (a region with j switchable units inactive has na - j active ones), r caps
    the dimension (rank), a caps the number of active units. The recurrence is

        R(l, d) = sum_{j=0}^{min(u, e)} C(u, j) R(l+1, min(na - j, e, a)),   e = min(d, r),
        R(L+1, d) = 1.

    R(l, .) depends on d only through min(d, r), so R_l is stored for e = 0..r. For each e
    the sum splits at t = na - min(e, a): terms j <= t use R(l+1, min(e, a)), terms j > t use
    R(l+1, na - j); prefix sums make a layer O(r + u) big-integer operations.
    """
    Rn = [1]  # R(L+1, .) = 1
    for (u, na, r, a) in reversed(layers):
        top = len(Rn) - 1

        def Rnext(x: int) -> int:
            return Rn[x if x < top else top]

        # prefix sums PC[i] = sum_{j<=i} C(u, j); PCc[i] = sum_{j<=i} C(u, j) Rnext(na - j)
        PC, PCc = [], []
        c, s1, s2 = 1, 0, 0
        for j in range(u + 1):
            s1 += c
            s2 += c * Rnext(na - j)
            PC.append(s1)
            PCc.append(s2)
            c = c * (u - j) // (j + 1)
        R = []
        for e in range(r + 1):
            J = min(u, e)
            g = min(e, a)
            t = na - g  # >= 0 because a <= na
            val = Rnext(g) * PC[min(J, t)] if t >= 0 else 0
            if J > t:
                val += PCc[J] - (PCc[t] if t >= 0 else 0)
            R.append(val)
        Rn = R
    return Rn[min(n0, len(Rn) - 1)]


def _brute_force_serra(widths: Sequence[int], ranks: Sequence[int] | None = None) -> int:
    """Theorem 1 / 7 of Serra et al. (2018) by explicit enumeration of J (tests only)."""
    w = list(widths)
    L = len(w) - 1
    ranks = list(ranks) if ranks is not None else w[1:]

    def rec(l: int, dims_min: int, rank_min: int) -> int:
        if l > L:
            return 1
        n = w[l]
        rm = min(rank_min, ranks[l - 1])
        total = 0
        for j in range(0, min(dims_min, rm, n) + 1):
            total += math.comb(n, j) * rec(l + 1, min(dims_min, n - j), rm)
        return total

    return rec(1, w[0], w[0])


def serra2018_bound(net_or_widths, ranks=None, *, use_rank: bool = False) -> RegionBound:
    """Serra, Tjandraatmadja and Ramalingam (ICML 2018), Theorem 1, with the rank refinement.

    Parameters
    ----------
    net_or_widths : Network or sequence of int
        ``(n0, n1, ..., nL)`` or a network.
    ranks : sequence of int, optional
        ``rank W^l`` per hidden layer (Theorem 7): caps the dimension from layer l on.
    use_rank : bool
        With a Network, use the actual ranks of its hidden weight matrices.

    Notes
    -----
    Sum over ``(j_1..j_L)`` in J of ``prod_l C(n_l, j_l)`` with
    ``J = {0 <= j_l <= min(n0, n1 - j1, ..., n_{l-1} - j_{l-1}, n_l, rank W^1..rank W^l)}``,
    evaluated as the recurrence ``R(l, d) = sum_{j=0}^{min(r_l, d)} C(n_l, j)
    R(l+1, min(n_l - j, d, r_l))``, ``R(L+1, .) = 1``, bound ``R(1, n0)``, exactly in
    integers in O(sum_l n_l) big-integer operations.

    Examples
    --------
    >>> serra2018_bound((784, 11, 11)).value
    2449868
    >>> serra2018_bound((2, 4)).value      # one layer: Zaslavsky, C(4,0)+C(4,1)+C(4,2)
    11
    """
    w = widths_of(net_or_widths)
    L = len(w) - 1
    if use_rank:
        if not isinstance(net_or_widths, _network_type()):
            raise InvalidArgumentError("use_rank=True needs a Network (to read its weight ranks); with widths pass ranks=[...] instead")
        if ranks is None:
            ranks = [int(np.linalg.matrix_rank(W)) for W in net_or_widths.weights[:-1]]
    hi = [min(w[l], w[l - 1]) for l in range(1, L + 1)]
    ranks_v = _per_layer_ints(ranks, L, "ranks", default=hi, lo=[0] * L, hi=hi, hi_why="min(fan-out, fan-in)")
    layers = [(w[l], w[l], ranks_v[l - 1], w[l]) for l in range(1, L + 1)]
    v = _serra_recurrence_exact(w[0], layers)
    note = "Theorem 1 of Serra et al. 2018"
    if ranks is not None:
        note += f", rank-refined with ranks {ranks_v}"
    return RegionBound("serra2018", v, _int_log(v), True, note)


def serra_ramalingam2020_bound(net_or_widths, *, stable_inactive=None, stable_active=None,
                               max_active=None, ranks=None) -> RegionBound:
    """Network-specific bound in the style of Serra and Ramalingam (AAAI 2020).

    Parameters
    ----------
    net_or_widths : Network or sequence of int
        ``(n0, n1, ..., nL)`` or a network.
    stable_inactive, stable_active : sequence of int, optional
        Per hidden layer, the number of neurons proven stably inactive / stably active on
        the input domain (e.g. by MILP, :mod:`mipnet.analyses.stability`). Default 0.
    max_active : sequence of int, optional
        Per hidden layer, an upper bound on the number of units simultaneously active
        anywhere in the domain (``max sum_i z_i`` over the MILP). Default: no cap.
    ranks : sequence of int, optional
        Per hidden layer, an upper bound on ``rank W^l`` (as in Serra et al. 2018, Thm 7).

    Notes
    -----
    With ``n'_l = n_l - S^-_l`` neurons left after removing the stably inactive ones,
    ``u_l = n'_l - S^+_l`` neurons that can switch, rank cap ``r_l`` and active cap
    ``A_l`` (``S^+_l <= A_l <= n'_l``), the bound is

        R(l, d) = sum_{j=0}^{min(u_l, e)} C(u_l, j) R(l+1, min(n'_l - j, e, A_l)),
        e = min(d, r_l),  R(L+1, .) = 1,  bound = R(1, n0).

    Reasoning (our reading of the paper's activation-based Theorem; the paper states it
    with per-layer maxima of active and inactive units found by MILP):

    - a stably inactive neuron is zero on the whole domain: it neither splits a region nor
      contributes to the image, so the layer behaves as one of width ``n'_l``;
    - only the ``u_l`` unstable neurons define hyperplanes inside a region, so the per-layer
      lemma of Serra et al. 2018 applies to an arrangement of ``u_l`` hyperplanes: at most
      ``C(u_l, j)`` child regions in class j, j <= the region's dimension. A stably active
      neuron is never counted as inactive, so a child of class j has ``n'_l - j`` active
      units (the S^+ stably active included), which bounds its image dimension;
    - the image of a region through layer l has dimension at most the number of active
      units, hence at most ``A_l``, and at most ``rank W^l``.

    With no counts given it equals :func:`serra2018_bound`.

    Examples
    --------
    >>> serra_ramalingam2020_bound((784, 11, 11)).value
    2449868
    >>> serra_ramalingam2020_bound((784, 11, 11), stable_inactive=[11, 0]).value  # layer 1 dead
    1
    """
    w = widths_of(net_or_widths)
    L = len(w) - 1
    n = w[1:]
    s_in = _per_layer_ints(stable_inactive, L, "stable_inactive", default=[0] * L, lo=[0] * L, hi=n)
    s_ac = _per_layer_ints(stable_active, L, "stable_active", default=[0] * L, lo=[0] * L, hi=n)
    for l in range(L):
        if s_in[l] + s_ac[l] > n[l]:
            raise InvalidArgumentError(
                f"layer {l + 1}: stable_inactive ({s_in[l]}) + stable_active ({s_ac[l]}) exceeds its width {n[l]}"
            )
    n_eff = [n[l] - s_in[l] for l in range(L)]
    a_v = _per_layer_ints(max_active, L, "max_active", default=n_eff, lo=s_ac, hi=n_eff,
                          lo_why="the stably active units of that layer are always active",
                          hi_why="width minus stably inactive units")
    hi_r = [min(n[l], w[l]) for l in range(L)]
    r_v = _per_layer_ints(ranks, L, "ranks", default=hi_r, lo=[0] * L, hi=hi_r, hi_why="min(fan-out, fan-in)")
    layers = []
    for l in range(L):
        u = n_eff[l] - s_ac[l]
        layers.append((u, n_eff[l], min(r_v[l], n_eff[l]), a_v[l]))
    v = _serra_recurrence_exact(w[0], layers)
    parts = []
    if stable_inactive is not None:
        parts.append(f"stably inactive {s_in}")
    if stable_active is not None:
        parts.append(f"stably active {s_ac}")
    if max_active is not None:
        parts.append(f"max active {a_v}")
    if ranks is not None:
        parts.append(f"ranks {r_v}")
    note = "Serra & Ramalingam 2020 activation-based bound" + (": " + ", ".join(parts) if parts else "")
    return RegionBound("serra_ramalingam2020", v, _int_log(v), True, note)


# ---------------------------------------------------------------------------- expected rank
def _check_rank_model(rank_model: str) -> str:
    if rank_model not in RANK_MODELS:
        raise InvalidArgumentError(f"rank_model must be one of {RANK_MODELS}, got {rank_model!r}")
    return rank_model


def binomial_rank_logpmf(R: int, C: int, p) -> np.ndarray:
    """log P(rank = k), k = 0..min(R, C), under the closed-form model of Cai et al. 2023.

    The rank is taken to be the number of non-zero rows (fan-in C >= fan-out R): each row is
    non-zero with probability ``q = 1 - (1 - p)^C``, so ``r ~ Binomial(R, q)``; rows and
    columns swap roles when C < R. ``p`` may be an array: the result has shape
    ``p.shape + (min(R, C) + 1,)``.
    """
    from scipy.special import gammaln

    if C < R:
        R, C = C, R
    p = np.asarray(p, dtype=float)
    with np.errstate(divide="ignore"):
        logq = np.log(-np.expm1(C * np.log1p(-np.minimum(p, 1.0))))  # log(1 - (1-p)^C)
        log1mq = np.where(p >= 1.0, -np.inf, C * np.log1p(-np.minimum(p, 1.0)))  # log((1-p)^C)
    k = np.arange(R + 1, dtype=float)
    lc = gammaln(R + 1) - gammaln(k + 1) - gammaln(R - k + 1)
    logq = logq[..., None]
    log1mq = log1mq[..., None]
    with np.errstate(invalid="ignore"):
        t1 = np.where(k > 0, k * logq, 0.0)
        t2 = np.where(R - k > 0, (R - k) * log1mq, 0.0)
    out = lc + t1 + t2
    return np.where(np.isnan(out), -np.inf, out)


def _structural_rank(rows: np.ndarray, cols: np.ndarray, R: int, C: int) -> int:
    """Size of a maximum matching of the bipartite graph of the entries (rows, cols).

    Equals the rank of a matrix with that support and generic (e.g. Gaussian) values.
    Duplicate entries are harmless.
    """
    from scipy import sparse
    from scipy.sparse.csgraph import maximum_bipartite_matching

    o = np.argsort(rows, kind="stable")
    indptr = np.zeros(R + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=R), out=indptr[1:])
    m = sparse.csr_matrix((np.ones(len(rows)), cols[o].astype(np.int32), indptr), shape=(R, C))
    m.sum_duplicates()
    return int(np.count_nonzero(maximum_bipartite_matching(m, perm_type="column") >= 0))


def sample_ranks(R: int, C: int, ps, *, n_samples: int, seed: int) -> np.ndarray:
    """Ranks of ``n_samples`` Gaussian R x C matrices with a Bernoulli(p) mask, per p.

    Common random numbers: sample s uses one uniform matrix U_s for every p (mask ``U_s < p``),
    so ranks are monotone in p. A Gaussian matrix with a given support has, with probability
    one, rank equal to the structural rank of the support (the size of a maximum matching of
    its bipartite graph); we compute that exactly with
    :func:`scipy.sparse.csgraph.structural_rank`, which avoids SVD tolerances. Returns an
    int array of shape ``(len(ps), n_samples)``.
    """
    ps = np.atleast_1d(np.asarray(ps, dtype=float))
    out = np.zeros((ps.size, n_samples), dtype=np.int64)
    ss = np.random.SeedSequence([int(seed), int(R), int(C)])
    order_p = np.argsort(ps)
    K = min(R, C)
    below = ps[ps < 1.0]
    p_cut = float(below.max()) if below.size else 0.0
    for s, child in enumerate(ss.spawn(n_samples)):
        U = np.random.default_rng(child).random(R * C)
        cand = np.flatnonzero(U < p_cut)  # only entries some p < 1 can keep
        order = cand[np.argsort(U[cand])]
        Us = U[order]
        rows, cols = np.divmod(order, C)
        counts = np.searchsorted(Us, ps, side="left")  # entries with U < p
        prev_t, prev_r = -1, 0
        for i in order_p:
            if ps[i] >= 1.0:
                out[i, s] = K  # full support: structural rank min(R, C)
                continue
            t = int(counts[i])
            if t == prev_t:
                r = prev_r
            elif t == 0:
                r = 0
            elif prev_r == K:
                r = K  # ranks are monotone in p under common random numbers
            else:
                r = _structural_rank(rows[:t], cols[:t], R, C)
            out[i, s] = r
            prev_t, prev_r = t, r
    return out


def rank_distribution(fan_out: int, fan_in: int, density, *, rank_model: str = "binomial",
                      n_samples: int = 128, seed: int = 0) -> np.ndarray:
    """Probabilities ``P(rank W = k)``, k = 0..min(fan_out, fan_in), of a pruned matrix.

    Parameters
    ----------
    fan_out, fan_in : int
        Shape of W (rows, columns).
    density : float or array of float in [0, 1]
        Fraction of weights kept (each independently, Bernoulli(p)).
    rank_model : {"binomial", "sampled"}
        ``"binomial"``: closed form of Cai et al. 2023 (number of non-zero rows, or columns
        when fan-in < fan-out). ``"sampled"``: Monte-Carlo over masks of Gaussian matrices.

    Returns
    -------
    ndarray of shape ``density.shape + (min(fan_out, fan_in) + 1,)``, rows sum to 1.
    """
    _check_rank_model(rank_model)
    for name, v in (("fan_out", fan_out), ("fan_in", fan_in)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidArgumentError(f"{name} must be a positive integer (a dimension of W), got {v!r}")
    try:
        d = np.asarray(density, dtype=float)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"density must be a number or an array of numbers in [0, 1], got {density!r}") from None
    if np.any(~np.isfinite(d)) or np.any(d < 0) or np.any(d > 1):
        raise InvalidArgumentError(f"density must be in [0, 1], got {density!r}")
    return np.exp(_rank_logpmf(fan_out, fan_in, d, rank_model=rank_model, n_samples=n_samples, seed=seed))


def _rank_logpmf(R, C, p, *, rank_model, n_samples=128, seed=0) -> np.ndarray:
    if rank_model == "binomial":
        return binomial_rank_logpmf(R, C, p)
    p = np.asarray(p, dtype=float)
    ranks = sample_ranks(R, C, p.reshape(-1), n_samples=n_samples, seed=seed)
    K = min(R, C)
    counts = np.stack([np.bincount(r, minlength=K + 1) for r in ranks]).astype(float)
    with np.errstate(divide="ignore"):
        lp = np.log(counts / n_samples)
    return lp.reshape(p.shape + (K + 1,))


def _log_binom_row(n: int) -> np.ndarray:
    from scipy.special import gammaln

    j = np.arange(n + 1, dtype=float)
    return gammaln(n + 1) - gammaln(j + 1) - gammaln(n - j + 1)


def layer_S(Bn: np.ndarray, n: int, K: int) -> np.ndarray:
    """``S[..., e] = logsumexp_{j=0}^{e} ln C(n, j) + Bn[..., min(n - j, e)]``, e = 0..K <= n.

    Bn has its last axis over d = 0..Dn and stands for ``Bn[min(d, Dn)]``; leading axes
    are a batch. O(n) per batch entry: terms with ``j <= min(e, n - e)`` all use
    ``Bn[e]`` (a prefix sum of binomials), and the remaining terms ``j in (n - e, e]`` use
    ``Bn[n - j]``, independent of e, over a window symmetric about (n + 1)/2 that grows by
    two per step of e: a cumulative log-sum in order of distance from the centre. Only
    log-additions are used (no cancellation).
    """
    if K > n:
        raise InvalidArgumentError(f"K = {K} must not exceed n = {n} (the layer width)")
    Dn = Bn.shape[-1] - 1
    lC = _log_binom_row(n)
    ext = Bn[..., np.minimum(np.arange(n + 1), Dn)]  # Bn[min(x, Dn)], x = 0..n
    e = np.arange(K + 1)
    LCC = np.logaddexp.accumulate(lC)
    part1 = ext[..., e] + LCC[np.minimum(e, n - e)]
    j = np.arange(1, n + 1)
    order = j[np.argsort(np.abs(2 * j - (n + 1)), kind="stable")]
    c = lC[order] + ext[..., n - order]
    cs = np.logaddexp.accumulate(c, axis=-1)
    cnt = 2 * e - n
    has = cnt >= 1
    part2 = np.full(part1.shape, -np.inf)
    if np.any(has):
        part2[..., has] = cs[..., cnt[has] - 1]
    return np.logaddexp(part1, part2)


def layer_S_direct(Bn: np.ndarray, n: int, K: int) -> np.ndarray:
    """O(n^2) reference for :func:`layer_S` (tests)."""
    from scipy.special import logsumexp

    lC = _log_binom_row(n)
    Dn = Bn.shape[-1] - 1
    e = np.arange(K + 1)[:, None]
    jj = np.arange(n + 1)[None, :]
    idx = np.minimum(np.minimum(n - jj, e), Dn)
    A = np.where(jj <= e, lC[None, :] + Bn[..., idx], -np.inf)
    return logsumexp(A, axis=-1)


def mix_rank(S: np.ndarray, lp: np.ndarray) -> np.ndarray:
    """``B[..., d] = logsumexp_k lp[..., k] + S[..., min(k, d)]``, d = 0..K (broadcasting).

    Uses ``sum_{k<d} P(k) S[k] + P(k >= d) S[d]`` with cumulative log-sums.
    """
    S, lp = np.broadcast_arrays(S, lp)
    with np.errstate(invalid="ignore"):
        cum = np.logaddexp.accumulate(lp + S, axis=-1)
        logsf = np.logaddexp.accumulate(lp[..., ::-1], axis=-1)[..., ::-1]
        B = logsf + S
        B[..., 1:] = np.logaddexp(cum[..., :-1], B[..., 1:])
    return np.nan_to_num(B, nan=-np.inf)


def _expected_log_bound(n0: int, fan_outs, fan_ins, logpmfs) -> float:
    """ln B(1, n0) of the expected-rank recurrence for fixed per-layer rank log-pmfs."""
    Bn = np.zeros(1)
    for n, C, lp in zip(reversed(fan_outs), reversed(fan_ins), reversed(logpmfs)):
        K = min(n, C)
        S = layer_S(Bn, n, K)
        Bn = mix_rank(S, lp)
    return float(Bn[min(n0, Bn.shape[-1] - 1)])


def _check_density_list(densities, L: int, name: str = "densities") -> list[float]:
    if np.isscalar(densities):
        densities = [densities] * L
    try:
        ds = [float(x) for x in densities]
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a number or a list of numbers in [0, 1] (one per layer), "
                                   f"got {densities!r}") from None
    if len(ds) != L:
        raise InvalidArgumentError(f"{name} has {len(ds)} entries but {L} are needed (one per layer)")
    for i, x in enumerate(ds):
        if not (0.0 <= x <= 1.0) or not math.isfinite(x):
            raise InvalidArgumentError(f"{name}[{i}] = {x} must be in [0, 1] (fraction of weights kept)")
    return ds


def expected_rank_bound(net_or_widths, densities=None, *, rank_model: str = "binomial",
                        output_width: int | None = None, output_density: float | None = None,
                        n_samples: int = 128, seed: int = 0) -> RegionBound:
    """Expected-rank bound of Cai et al. (CPAIOR 2023) for a randomly pruned network.

    Parameters
    ----------
    net_or_widths : Network or sequence of int
        ``(n0, n1, ..., nL)`` (input and hidden widths) or a network.
    densities : float or sequence of float, optional
        Fraction of weights kept per hidden layer (length L), or length L + 1 with the
        output layer's density last when an output layer is included. A scalar applies to
        every hidden layer. With a Network, defaults to the network's own layer densities.
    rank_model : {"binomial", "sampled"}
        How ``rank W^l`` is distributed at density p_l (see :func:`rank_distribution`).
    output_width : int, optional
        Include the output layer as a last factor of the recurrence (as the authors' code
        does; this reproduces their published numbers). With a Network it defaults to the
        network's output width; pass 0 to leave the output layer out.
    output_density : float, optional
        Density of the output layer (default 1.0, or the network's own).
    n_samples, seed : int
        Monte-Carlo settings of the ``"sampled"`` model.

    Notes
    -----
    ``B(l, d) = sum_k P(r_l = k) sum_{j=0}^{min(k, d)} C(n_l, j) B(l+1, min(n_l - j, d, k))``,
    ``B(L+1, .) = 1``, bound ``B(1, n0)``: Theorem 7 of Serra et al. 2018 (rank-refined
    recurrence) taken in expectation over the ranks. Computed in log space: the inner sum
    ``S(e)`` does not depend on the rank distribution, and the outer expectation is a
    cumulative log-sum, so each layer costs O(n_l^2).

    Examples
    --------
    >>> round(expected_rank_bound((784, 100, 100), [1.0, 1.0], output_width=10).log_value, 2)
    144.92
    """
    _check_rank_model(rank_model)
    is_net = isinstance(net_or_widths, _network_type())
    w = widths_of(net_or_widths)
    L = len(w) - 1
    if output_width is None and is_net:
        output_width = int(net_or_widths.output_dim)
    if output_width is not None:
        if isinstance(output_width, bool) or not isinstance(output_width, (int, np.integer)) or output_width < 0:
            raise InvalidArgumentError(f"output_width must be a non-negative integer, got {output_width!r}")
        output_width = int(output_width) or None
    if densities is None:
        if not is_net:
            raise InvalidArgumentError("give densities (one per hidden layer, in [0, 1]) or a Network")
        own = net_or_widths.layer_densities()
        densities = own[:L]
        if output_density is None:
            output_density = own[-1]
    if np.isscalar(densities):
        dens = _check_density_list(densities, L)
    else:
        try:
            raw = list(densities)
        except TypeError:
            raise InvalidArgumentError(f"densities must be a number or a list of numbers in [0, 1] (one per hidden "
                                       f"layer), got {type(densities).__name__}") from None
        if output_width is not None and len(raw) == L + 1:
            if output_density is not None:
                raise InvalidArgumentError("the output density is given twice: as densities[-1] and as output_density; give one")
            output_density = raw[-1]
            raw = raw[:L]
        dens = _check_density_list(raw, L)
    fan_outs = list(w[1:])
    fan_ins = list(w[:-1])
    if output_width is not None:
        od = 1.0 if output_density is None else output_density
        od = _check_density_list([od], 1, "output_density")[0]
        dens = dens + [od]
        fan_outs.append(output_width)
        fan_ins.append(w[-1])
    lps = [_rank_logpmf(n, C, p, rank_model=rank_model, n_samples=n_samples, seed=seed + i)
           for i, (n, C, p) in enumerate(zip(fan_outs, fan_ins, dens))]
    lv = _expected_log_bound(w[0], fan_outs, fan_ins, lps)
    note = (f"expected-rank bound (Cai et al. 2023), {rank_model} rank model, densities "
            f"{[float(f'{x:.4g}') for x in dens]}" + (", output layer included" if output_width else ""))
    return RegionBound("cai2023_expected_rank", None, lv, False, note)


# ---------------------------------------------------------------------------- all bounds
def all_bounds(net_or_widths, *, densities=None, rank_model: str = "binomial",
               output_width: int | None = None) -> list[RegionBound]:
    """Every closed-form bound that applies, loosest first.

    Parameters
    ----------
    net_or_widths : Network or sequence of int
        ``(n0, n1, ..., nL)`` or a network. With a Network the Serra 2018 bound uses the
        actual weight ranks and the expected-rank bound the actual layer densities.
    densities : float or sequence of float, optional
        Per-layer densities for the expected-rank bound (see :func:`expected_rank_bound`);
        without them (and without a Network) that bound is left out.
    rank_model : {"binomial", "sampled"}
    output_width : int, optional
        Output width for the expected-rank bound (Cai et al. include the output layer).
    """
    _check_rank_model(rank_model)
    is_net = isinstance(net_or_widths, _network_type())
    widths_of(net_or_widths)  # validate early
    out = [
        montufar2014_bound(net_or_widths),
        raghu2017_bound(net_or_widths),
        montufar2017_bound(net_or_widths),
        serra2018_bound(net_or_widths),
    ]
    if is_net:
        b = serra2018_bound(net_or_widths, use_rank=True)
        out.append(RegionBound("serra2018_rank", b.value, b.log_value, True, b.note))
    if densities is not None or is_net:
        out.append(expected_rank_bound(net_or_widths, densities, rank_model=rank_model, output_width=output_width))
    return out
