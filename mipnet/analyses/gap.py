"""Pruning error certificates: the exact worst-case output gap of a pruned network.

Provable pruning methods bound how far a pruned network ``g`` may stray from the
original ``f``, but only in a typical case: SiPP (Baykal, Liebenwein et al.,
arXiv:1910.05422) bounds the relative output error for most inputs drawn from the
data distribution; Qian and Klabjan (ICML 2021, arXiv:2105.10065) bound the output
gap of randomly and magnitude-pruned networks with high probability over the
random mask. This module measures the *worst case* over a whole input domain D,

    Delta(D) = max_{x in D} || f(x) - g(x) ||_inf ,

with the MILP of :func:`mipnet.equivalence.max_output_gap` (both networks on one
input, Kleine Büning, Kern and Sinz, CP 2020; differential bounds of ReluDiff,
Paulsen, Wang and Wang, ICSE 2020, arXiv:2001.03662), and sets it beside the gap
measured on data.

Definitions
-----------
gap at x
    ``||f(x) - g(x)||_inf`` (largest absolute output difference).
relative gap at x
    ``||f(x) - g(x)||_inf / ||f(x)||_inf`` (norm-wise; points with ``f(x) = 0`` are
    left out). SiPP states its guarantee entry-wise, ``g_k(x) in (1 +- eps) f_k(x)``;
    the entry-wise ratio explodes wherever an output crosses zero, so we report the
    norm-wise one, which is at most the largest entry-wise ratio.
worst-case gap
    ``Delta(D)``: ``lower`` is attained at ``witness`` (re-checked by a float64
    forward pass of both networks), ``upper`` is proven (finished MILPs or the dual
    bounds of timed-out ones). Exact when both agree up to the stated tolerances.
ratio
    ``Delta(D) / max_{data} gap``: how far the typical case is from the worst case
    (both bounds of Delta are divided).

How Delta is found (``per_output=False``)
-----------------------------------------
The best gap on data and random points of D gives a threshold L. Output by output
(largest candidates first), one early-stopped MILP per sign decides
``sign (f_k - g_k) <= L + tol`` (a cutoff prunes every node that cannot exceed L)
or finds an input above L; only then is that output maximised outright and L
raised. Most outputs are settled by a cutoff, which is far cheaper than the
``2 m`` maximisations that ``per_output=True`` runs to get every output's exact
worst case.

Work units are pure functions of their arguments (:func:`pruning_gap`,
:func:`gap_run`), so sweeps can be spread over processes (DESIGN.md).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from mipnet.core.domain import Domain, as_domain
from mipnet.core.errors import InvalidArgumentError, InvalidNetworkError, SolverError
from mipnet.core.network import Network

__all__ = [
    "PruningGap",
    "pruning_gap",
    "data_gap_stats",
    "GapSweep",
    "gap_run",
    "gap_sweep",
    "LayerSensitivity",
    "layer_sensitivity",
    "GAP_METHODS",
]

log = logging.getLogger(__name__)

#: Pruning methods of the sweeps (names of :func:`mipnet.pruning.prune`).
GAP_METHODS = ("random", "magnitude", "sipp")

_QUANTILES = (50, 90, 99)


# ---------------------------------------------------------------------------- small helpers
def _f(v) -> Optional[float]:
    """JSON-safe float: None for infinities and NaN."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _as_network(net, name: str) -> Network:
    """A :class:`Network`; torch modules are converted at the edge (lazy import)."""
    if isinstance(net, Network):
        return net
    if hasattr(net, "state_dict") and hasattr(net, "modules"):
        from mipnet.io.torch import from_torch

        return from_torch(net)
    raise InvalidNetworkError(f"{name} must be a mipnet.Network or a torch MLP, got {type(net).__name__}; "
                              "load a file with mipnet.io.load_network")


def _data_array(data, dim: int, name: str = "data") -> Optional[np.ndarray]:
    """Data points as a float64 (N, dim) array: a Dataset's test split, or an array."""
    if data is None:
        return None
    if hasattr(data, "X_test"):
        X = data.X_test
    elif isinstance(data, tuple) and len(data) == 2:
        X = data[0]
    else:
        X = data
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a Dataset, an (X, y) pair or an array of inputs") from None
    if X.ndim == 1 and X.size == dim:
        X = X[None, :]
    X = X.reshape(len(X), -1) if X.ndim >= 2 else X
    if X.ndim != 2 or X.shape[1] != dim:
        raise InvalidArgumentError(f"{name} must hold inputs with {dim} features (the networks' input size), "
                                   f"got shape {np.shape(X)}")
    if len(X) == 0:
        raise InvalidArgumentError(f"{name} is empty; give at least one input or data=None")
    if not np.all(np.isfinite(X)):
        raise InvalidArgumentError(f"{name} contains NaN or inf")
    return X


def _check_positive(v, name, *, allow_none=True) -> Optional[float]:
    if v is None and allow_none:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a positive number{' or None' if allow_none else ''}, "
                                   f"got {v!r}") from None
    if not (x > 0 and math.isfinite(x)):
        raise InvalidArgumentError(f"{name} must be a positive finite number{' or None' if allow_none else ''}, "
                                   f"got {v!r}")
    return x


def _check_nonneg(v, name) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a finite number >= 0, got {v!r}") from None
    if not (x >= 0 and math.isfinite(x)):
        raise InvalidArgumentError(f"{name} must be a finite number >= 0, got {v!r}")
    return x


def _check_quantiles(qs) -> tuple:
    try:
        q = tuple(float(x) for x in qs)
    except TypeError:
        raise InvalidArgumentError(f"quantiles must be a sequence of percentages in [0, 100], got {qs!r}") from None
    if not all(0 <= x <= 100 for x in q):
        raise InvalidArgumentError(f"quantiles must be percentages in [0, 100], got {list(q)}")
    return q


def _qkey(q: float) -> str:
    return f"p{q:g}"


# ---------------------------------------------------------------------------- data gaps
def data_gap_stats(f_out: np.ndarray, g_out: np.ndarray, *, epsilon: Optional[float] = None,
                   quantiles: Sequence[float] = _QUANTILES) -> dict:
    """Statistics of the gap ``||f(x) - g(x)||_inf`` and the relative gap over data points.

    Parameters
    ----------
    f_out, g_out : arrays (N, m)
        Outputs of the original and the pruned network at the N data points.
    epsilon : float, optional
        Also report the fraction of points with gap ``<= epsilon``.
    quantiles : sequence of float
        Percentiles of the gap and of the relative gap to report.

    Returns
    -------
    dict
        ``n``, ``mean``, ``max``, ``argmax``, ``p50``... (gap); ``relative_mean``,
        ``relative_max``, ``relative_p50``...; ``max_per_output``; ``fraction_within``
        (None without epsilon).

    Notes
    -----
    Relative gap: ``||f - g||_inf / ||f||_inf`` per point, points with ``f(x) = 0``
    left out (see the module notes on SiPP's entry-wise guarantee).

    Examples
    --------
    >>> s = data_gap_stats(np.array([[1.0, 2.0], [0.0, 4.0]]), np.array([[1.5, 2.0], [0.0, 3.0]]),
    ...                    epsilon=0.5, quantiles=(50,))
    >>> s["max"], s["mean"], s["relative_max"], s["fraction_within"]
    (1.0, 0.75, 0.25, 0.5)
    """
    qs = _check_quantiles(quantiles)
    D = np.abs(np.asarray(f_out, dtype=np.float64) - np.asarray(g_out, dtype=np.float64))
    gap = D.max(axis=1)
    norm_f = np.abs(np.asarray(f_out, dtype=np.float64)).max(axis=1)
    ok = norm_f > 0
    rel = gap[ok] / norm_f[ok]
    out = {"n": int(gap.size), "mean": float(gap.mean()), "max": float(gap.max()), "argmax": int(np.argmax(gap))}
    for q in qs:
        out[_qkey(q)] = float(np.percentile(gap, q))
    out["relative_mean"] = float(rel.mean()) if rel.size else None
    out["relative_max"] = float(rel.max()) if rel.size else None
    for q in qs:
        out["relative_" + _qkey(q)] = float(np.percentile(rel, q)) if rel.size else None
    out["max_per_output"] = D.max(axis=0).tolist()
    out["fraction_within"] = None if epsilon is None else float(np.mean(gap <= float(epsilon)))
    return out


# ---------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class PruningGap:
    """How far a pruned network ``g`` strays from the original ``f``: worst case on D and on data.

    Attributes
    ----------
    lower : float
        ``||f(w) - g(w)||_inf`` at ``witness`` (float64 forward pass): a gap attained in D.
    upper : float
        Proven bound on ``max_{x in D} ||f(x) - g(x)||_inf``.
    witness : ndarray (n0,)
        An input of D where the gap ``lower`` is attained.
    exact : bool
        ``upper - lower <= tol + mip_rel_gap * max(1, upper)``: the maximum is known (the
        bounds meet; this can happen under a time limit when only smaller outputs timed out).
    status : str
        ``complete`` (the L-inf maximum settled), ``time_limit`` or ``incomplete`` (see ``notes``).
    per_output_lower, per_output_upper : ndarray (m,)
        ``max |f_k - g_k|`` attained at known inputs of D / proven, per output. Exact
        per output only with ``per_output=True``; otherwise outputs decided by a cutoff
        have ``upper`` = the L-inf threshold reached.
    witness_outputs : (ndarray, ndarray)
        ``f(witness)``, ``g(witness)``.
    data : dict or None
        :func:`data_gap_stats` over the data points (all of them, in D or not), plus
        ``in_domain`` (how many lie in D).
    epsilon : float or None
    certified : bool or None
        ``upper <= epsilon``: the pruned net is proven within epsilon on all of D.
    ratio_lower, ratio_upper : float or None
        ``lower / data max`` and ``upper / data max``: worst case over typical case.
    seconds, num_milps, tol, mip_rel_gap, domain : as named
    notes : tuple of str
    """

    lower: float
    upper: float
    witness: np.ndarray
    exact: bool
    status: str
    per_output_lower: np.ndarray
    per_output_upper: np.ndarray
    witness_outputs: tuple
    data: Optional[dict]
    epsilon: Optional[float]
    seconds: float
    num_milps: int
    tol: float
    mip_rel_gap: float
    per_output: bool
    domain: Domain
    notes: tuple = field(default_factory=tuple)

    @property
    def certified(self) -> Optional[bool]:
        return None if self.epsilon is None else bool(self.upper <= self.epsilon)

    @property
    def data_max(self) -> Optional[float]:
        return None if self.data is None else self.data["max"]

    @property
    def ratio_lower(self) -> Optional[float]:
        dm = self.data_max
        return None if not dm else self.lower / dm

    @property
    def ratio_upper(self) -> Optional[float]:
        dm = self.data_max
        return None if not dm else self.upper / dm

    @property
    def witness_relative_gap(self) -> Optional[float]:
        fa, fb = self.witness_outputs
        nf = float(np.abs(fa).max())
        return None if nf == 0 else float(np.abs(fa - fb).max()) / nf

    def to_dict(self) -> dict:
        return {
            "lower": _f(self.lower),
            "upper": _f(self.upper),
            "exact": self.exact,
            "status": self.status,
            "witness": self.witness.tolist(),
            "witness_outputs": [self.witness_outputs[0].tolist(), self.witness_outputs[1].tolist()],
            "witness_relative_gap": _f(self.witness_relative_gap),
            "per_output_lower": [_f(v) for v in self.per_output_lower],
            "per_output_upper": [_f(v) for v in self.per_output_upper],
            "per_output": self.per_output,
            "data": None if self.data is None else dict(self.data),
            "epsilon": self.epsilon,
            "certified": self.certified,
            "ratio_lower": _f(self.ratio_lower),
            "ratio_upper": _f(self.ratio_upper),
            "seconds": self.seconds,
            "num_milps": self.num_milps,
            "tol": self.tol,
            "mip_rel_gap": self.mip_rel_gap,
            "domain": {"lower": self.domain.lower.tolist(), "upper": self.domain.upper.tolist(),
                       "constraints": 0 if self.domain.A is None else int(self.domain.A.shape[0])},
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        if self.exact:
            head = f"worst-case gap on D (L-inf): {self.upper:.6g} (exact; witness re-checked)"
        else:
            head = (f"worst-case gap on D (L-inf): between {self.lower:.6g} (found, witness re-checked) "
                    f"and {self.upper:.6g} (proven) [{self.status}]")
        lines = [head + f", {self.seconds:.2f} s, {self.num_milps} MILPs"]
        r = self.witness_relative_gap
        if r is not None:
            lines.append(f"  relative gap at the witness: {r:.4g}")
        if self.data is not None:
            d = self.data
            qs = " ".join(f"{k}={d[k]:.4g}" for k in d if k.startswith("p") and k[1:].replace(".", "").isdigit())
            lines.append(f"  data ({d['n']} points, {d['in_domain']} in D): gap mean {d['mean']:.4g}, {qs}, "
                         f"max {d['max']:.4g}")
            if d.get("relative_mean") is not None:
                lines.append(f"  relative gap on data: mean {d['relative_mean']:.4g}, max {d['relative_max']:.4g}")
            rl, ru = self.ratio_lower, self.ratio_upper
            if rl is not None:
                lines.append(f"  worst case / data max: {rl:.3g}" if self.exact else
                             f"  worst case / data max: between {rl:.3g} and {ru:.3g}")
            if d.get("fraction_within") is not None:
                lines.append(f"  data within epsilon={self.epsilon:g}: {100 * d['fraction_within']:.1f}%")
        if self.epsilon is not None:
            lines.append(f"  certified |f - g| <= {self.epsilon:g} on all of D: "
                         f"{'yes' if self.certified else ('no' if self.lower > self.epsilon else 'unknown')}")
        for n in self.notes:
            lines.append(f"  note: {n}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- the worst case

def _gap_gradient(f: Network, g: Network, X: np.ndarray, k: np.ndarray, sgn: np.ndarray) -> np.ndarray:
    """Gradient of ``sgn_i (f_{k_i} - g_{k_i})`` at every row ``x_i`` of X (one backward pass per net)."""
    grads = []
    for net, c in ((f, 1.0), (g, -1.0)):
        ys = net.preactivations(X)[:-1]
        v = (c * sgn)[:, None] * net.weights[-1][k]
        for l in range(len(ys) - 1, -1, -1):
            v = (v * (ys[l] > 0)) @ net.weights[l]
        grads.append(v)
    return grads[0] + grads[1]


def _ascent(f: Network, g: Network, dom: Domain, X0: np.ndarray, *, iterations: int = 40) -> np.ndarray:
    """Sign-gradient ascent of ``||f(x) - g(x)||_inf`` from the rows of X0, projected on D's box.

    A cheap heuristic (projected gradient ascent as in PGD, Madry et al. 2018,
    arXiv:1706.06083): it only supplies good witness candidates, so that the
    MILPs start from a high threshold. Returns the best point of every start (in D).
    """
    width = dom.upper - dom.lower
    X = X0.copy()
    best = X.copy()
    D = f.forward(X) - g.forward(X)
    val = np.abs(D).max(axis=1)
    steps = np.geomspace(1.0, 1e-3, iterations)
    for step in steps:
        k = np.argmax(np.abs(D), axis=1)
        sgn = np.sign(D[np.arange(len(X)), k])
        sgn[sgn == 0] = 1.0
        G = _gap_gradient(f, g, X, k, sgn)
        Y = np.clip(X + step * np.sign(G) * width, dom.lower, dom.upper)
        if dom.has_constraints:
            ok = dom.contains(Y, tol=0.0)
            Y[~ok] = X[~ok]
        DY = f.forward(Y) - g.forward(Y)
        vy = np.abs(DY).max(axis=1)
        up = vy > val
        best[up], val[up] = Y[up], vy[up]
        X, D = best.copy(), f.forward(best) - g.forward(best)
    return best

def _bounds_only(f: Network, g: Network, dom: Domain, ba, bb) -> np.ndarray:
    """``max |f_k - g_k|`` per output from LP bounds (and differential bounds for equal widths)."""
    A, B = ba.output, bb.output
    lo, hi = A.lower - B.upper, A.upper - B.lower
    if f.widths == g.widths:
        from mipnet.analyses.equivalence import differential_bounds

        d = differential_bounds(f, g, dom, bounds_a=ba, bounds_b=bb).output
        lo, hi = np.maximum(lo, d.lower), np.minimum(hi, d.upper)
    return np.maximum(np.abs(lo), np.abs(hi))


def _validate_gap(original, pruned, domain, epsilon, time_limit, time_limit_per_milp, tol, mip_rel_gap,
                  samples, quantiles):
    f = _as_network(original, "original")
    g = _as_network(pruned, "pruned")
    if f.input_dim != g.input_dim or f.output_dim != g.output_dim:
        raise InvalidNetworkError(f"original ({f.input_dim} inputs, {f.output_dim} outputs) and pruned "
                                  f"({g.input_dim} inputs, {g.output_dim} outputs) must have the same input and "
                                  "output sizes")
    dom = as_domain(domain, f.input_dim)
    eps = None if epsilon is None else _check_nonneg(epsilon, "epsilon")
    tl = _check_positive(time_limit, "time_limit")
    tlm = _check_positive(time_limit_per_milp, "time_limit_per_milp")
    _check_nonneg(tol, "tol")
    if not (0 <= float(mip_rel_gap) < 1):
        raise InvalidArgumentError(f"mip_rel_gap must lie in [0, 1), got {mip_rel_gap!r}")
    if isinstance(samples, bool) or int(samples) != samples or samples < 0:
        raise InvalidArgumentError(f"samples must be an integer >= 0, got {samples!r}")
    qs = _check_quantiles(quantiles)
    return f, g, dom, eps, tl, tlm, qs


def pruning_gap(
    original,
    pruned,
    domain,
    *,
    data=None,
    epsilon: Optional[float] = None,
    time_limit: Optional[float] = None,
    time_limit_per_milp: Optional[float] = None,
    per_output: bool = False,
    tol: float = 1e-6,
    mip_rel_gap: float = 1e-6,
    samples: int = 1000,
    seed: int = 0,
    ascent_starts: int = 32,
    quantiles: Sequence[float] = _QUANTILES,
    solver_options: Optional[dict] = None,
) -> PruningGap:
    """The worst-case output gap of a pruned network on a domain, next to its gap on data.

    Parameters
    ----------
    original, pruned : Network or torch MLP
        ``f`` and ``g``: same input and output sizes (any hidden widths; same widths
        turn on the differential bounds that make these MILPs fast).
    domain : Domain or (lower, upper)
    data : Dataset, (X, y) or array (N, n0), optional
        Points for the data gaps (a Dataset gives its test split). Those in D also
        seed the worst-case search.
    epsilon : float, optional
        Report the fraction of data points with gap ``<= epsilon`` and whether the
        whole domain is certified (``upper <= epsilon``).
    time_limit : float, optional
        Seconds for the whole worst-case search; past it, ``lower``/``upper`` are the
        bounds reached (``exact`` False).
    time_limit_per_milp : float, optional
        Seconds per output (both signs): keeps one hard output from eating the budget.
    per_output : bool
        Maximise every output and sign (``2 m`` MILPs) for exact per-output worst cases,
        instead of settling most outputs by a cutoff at the L-inf maximum.
    tol : float
        Numerical tolerance of the cutoffs: a cutoff proves ``<= L + tol``.
    mip_rel_gap : float
        HiGHS's relative gap for every MILP (a decision at threshold L whose true
        maximum is L itself ends with this gap instead of a cutoff).
    samples, seed : int
        Random inputs of D tried first (witness candidates).
    ascent_starts : int
        The best candidates are improved by projected sign-gradient ascent of the gap
        (a cheap heuristic that raises the first threshold; 0 turns it off).
    quantiles : sequence of float
        Percentiles of the data gaps.
    solver_options : dict, optional
        HiGHS options for the MILPs (passed to :func:`mipnet.equivalence.max_output_gap`,
        whose tuned defaults they update).

    Returns
    -------
    PruningGap

    Raises
    ------
    SolverError
        If a witness fails its float64 re-check or lies outside D (never expected).

    Examples
    --------
    >>> f = Network([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.zeros(1)])
    >>> g = Network([np.array([[1.0], [-1.0]]), np.array([[1.0, 0.0]])], [np.zeros(2), np.zeros(1)])
    >>> res = pruning_gap(f, g, ([-2.0], [1.0]))      # |x| vs relu(x): gap relu(-x), max 2 at x = -2
    >>> round(res.lower, 6), round(res.upper, 6), res.exact, res.witness.tolist()
    (2.0, 2.0, True, [-2.0])
    """
    t0 = time.perf_counter()
    f, g, dom, eps, tl, tlm, qs = _validate_gap(original, pruned, domain, epsilon, time_limit, time_limit_per_milp,
                                                tol, mip_rel_gap, samples, quantiles)
    X = _data_array(data, f.input_dim)
    deadline = None if tl is None else t0 + tl
    m = f.output_dim
    notes: list[str] = []

    # --- the data gaps (independent of the domain)
    data_stats = None
    if X is not None:
        FX, GX = f.forward(X), g.forward(X)
        data_stats = data_gap_stats(FX, GX, epsilon=eps, quantiles=qs)
        inside = dom.contains(X, tol=0.0)
        data_stats["in_domain"] = int(inside.sum())
        if not inside.all():
            notes.append(f"{int((~inside).sum())} of {len(X)} data points lie outside D: they count in the data "
                         "gaps but not as witnesses")

    # --- candidate witnesses: data in D and random points of D
    cands = [dom.center[None, :]] if dom.contains(dom.center, tol=0.0) else []
    if samples:
        try:
            cands.append(dom.sample(int(samples), seed=seed))
        except Exception:  # a thin polytope: rejection sampling gives up; the MILPs find points
            pass
    if X is not None and data_stats["in_domain"]:
        cands.append(X[inside])
    C = np.concatenate(cands) if cands else np.zeros((0, f.input_dim))
    if len(C) and ascent_starts:
        gC = np.abs(f.forward(C) - g.forward(C)).max(axis=1)
        top = np.argsort(-gC, kind="stable")[:int(ascent_starts)]
        C = np.concatenate([C, _ascent(f, g, dom, C[top])])
    witnesses = [C]  # every point whose gap may be the lower bound

    lo_k = np.full(m, -np.inf)  # attained |f_k - g_k| per output
    if len(C):
        lo_k = np.abs(f.forward(C) - g.forward(C)).max(axis=0)
    up_k = np.full(m, np.inf)

    # --- the MILPs (mipnet.equivalence.max_output_gap, never a second encoding)
    from mipnet.bounds import lp_bounds
    from mipnet.analyses.equivalence import max_output_gap

    ba, bb = lp_bounds(f, dom), lp_bounds(g, dom)
    kw = dict(tol=float(tol), bounds_a=ba, bounds_b=bb, samples=0 if len(C) else int(samples), seed=seed)
    if solver_options is not None:
        kw["solver_options"] = dict(solver_options)
    num_milps = 0
    settled = np.zeros(m, dtype=bool)
    timed_out = False

    def remaining_for_one():
        if deadline is None and tlm is None:
            return None
        r = np.inf if deadline is None else max(deadline - time.perf_counter(), 0.0)
        if tlm is not None:
            r = min(r, tlm)
        return r

    def run(k, threshold):
        nonlocal num_milps, timed_out
        lim = remaining_for_one()
        if lim is not None and lim <= 0:
            timed_out = True
            return None
        res = max_output_gap(f, g, dom, outputs=[k], threshold=threshold, time_limit=lim,
                             mip_rel_gap=float(mip_rel_gap), **kw)
        num_milps += res.num_milps
        notes.extend(f"output {k}: {n}" for n in res.notes)
        for e in res.entries:
            if e.witness is not None:
                witnesses.append(e.witness[None, :])
                if e.lower > lo_k[k]:
                    lo_k[k] = e.lower
        if res.status == "time_limit":
            timed_out = True
        return res

    # a sound bound before any MILP: the interval / differential bounds of max_output_gap
    order = np.argsort(-lo_k, kind="stable") if np.all(np.isfinite(lo_k)) else np.arange(m)
    for k in order:
        k = int(k)
        if per_output:
            res = run(k, None)
            if res is None:
                continue
            up_k[k] = res.upper
            settled[k] = res.status == "complete"
            continue
        L = float(np.max(lo_k)) if np.any(np.isfinite(lo_k)) else 0.0
        L = max(L, 0.0)
        res = run(k, L)
        if res is None:
            continue
        up_k[k] = res.upper
        if not any(e.status in ("exceeded", "open") for e in res.entries):
            settled[k] = res.status == "complete"
            continue
        res2 = run(k, None)  # a gap above L: maximise this output outright
        if res2 is None:
            continue
        up_k[k] = res2.upper
        settled[k] = res2.status == "complete"
    if not np.all(np.isfinite(up_k)):  # never examined (time limit): the bound before any MILP
        hi = _bounds_only(f, g, dom, ba, bb)
        up_k = np.where(np.isfinite(up_k), up_k, hi)

    # --- the witness: the candidate with the largest L-inf gap, re-checked in float64
    W = np.concatenate(witnesses)
    Dw = np.abs(f.forward(W) - g.forward(W))
    gw = Dw.max(axis=1)
    j = int(np.argmax(gw))
    witness = W[j].copy()
    fa, fb = f.forward(witness), g.forward(witness)
    lower = float(np.abs(fa - fb).max())
    if not dom.contains(witness, tol=1e-9) or abs(lower - gw[j]) > 1e-9 * (1.0 + abs(lower)):
        raise SolverError("internal error: the worst-case witness failed its float64 re-check")
    lo_k = np.maximum(lo_k, Dw.max(axis=0))
    upper = float(np.max(up_k))
    if lower > upper:
        notes.append(f"the attained gap {lower:.12g} exceeds the proven bound {upper:.12g} (solver tolerance); "
                     "the bound is raised to it")
        upper = lower
    up_k = np.maximum(up_k, lo_k)
    closed = (upper - lower) <= float(tol) + float(mip_rel_gap) * max(1.0, abs(upper)) + 1e-9
    # the L-inf maximum is settled once the bounds meet, even if a smaller output timed out
    status = "complete" if settled.all() or closed else ("time_limit" if timed_out else "incomplete")
    exact = bool(closed)
    if data_stats is not None and data_stats["in_domain"] == data_stats["n"] and data_stats["max"] > upper + 1e-9:
        raise SolverError(f"internal error: a data point of D has gap {data_stats['max']:.12g} above the proven "
                          f"bound {upper:.12g}")
    return PruningGap(lower=lower, upper=upper, witness=witness, exact=bool(exact), status=status,
                      per_output_lower=lo_k, per_output_upper=up_k, witness_outputs=(fa, fb), data=data_stats,
                      epsilon=eps, seconds=time.perf_counter() - t0, num_milps=int(num_milps), tol=float(tol),
                      mip_rel_gap=float(mip_rel_gap), per_output=bool(per_output), domain=dom,
                      notes=tuple(dict.fromkeys(notes)))


# ---------------------------------------------------------------------------- sweeps: validation
def _check_methods(methods) -> tuple:
    from mipnet.nn.pruning import PRUNING_METHODS

    if isinstance(methods, str):
        methods = (methods,)
    ms = tuple(methods)
    bad = [m for m in ms if m not in ("random", "magnitude", "sipp")]
    if bad or not ms:
        hint = " (the others prune globally and take no per-layer densities)" if set(bad) & set(PRUNING_METHODS) else ""
        raise InvalidArgumentError(f"methods must be a non-empty list from {GAP_METHODS}, got {list(ms)}{hint}")
    if len(set(ms)) != len(ms):
        raise InvalidArgumentError(f"methods lists a value twice: {list(ms)}")
    return ms


def _check_density_spec(d, n_layers: int, name: str):
    """A float in (0, 1] (hidden layers; output dense) or one density per weight matrix."""
    if np.ndim(d) == 0:
        try:
            x = float(d)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"{name} must be a number in (0, 1] or a per-layer list, got {d!r}") from None
        if not (0 < x <= 1):
            raise InvalidArgumentError(f"{name} = {d!r} must lie in (0, 1] (the fraction of weights kept)")
        return x
    try:
        v = tuple(float(x) for x in d)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a number in (0, 1] or a per-layer list, got {d!r}") from None
    if len(v) == n_layers - 1:
        v = v + (1.0,)
    if len(v) != n_layers:
        raise InvalidArgumentError(f"{name} has {len(v)} entries, the model has {n_layers} weight matrices; give one "
                                   f"density per matrix (or {n_layers - 1}: the output layer then stays dense)")
    if not all(0 < x <= 1 for x in v):
        raise InvalidArgumentError(f"{name} = {list(v)}: every per-layer density must lie in (0, 1]")
    return v


def _check_stages(finetune_epochs) -> tuple:
    if isinstance(finetune_epochs, (int, np.integer)) and not isinstance(finetune_epochs, bool):
        finetune_epochs = (0, int(finetune_epochs)) if finetune_epochs > 0 else (0,)
    try:
        st = tuple(int(e) for e in finetune_epochs)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"finetune_epochs must be a list of epoch counts >= 0, e.g. (0, 10), "
                                   f"got {finetune_epochs!r}") from None
    if not st or any(e < 0 for e in st) or list(st) != sorted(set(st)):
        raise InvalidArgumentError(f"finetune_epochs must be increasing epoch counts >= 0, e.g. (0, 10), got {list(st)}")
    return st


def _linear_count(model) -> int:
    from torch import nn

    if not isinstance(model, nn.Module):
        raise InvalidNetworkError(f"model must be a trained torch MLP (nn.Module), got {type(model).__name__}")
    n = sum(1 for m in model.modules() if isinstance(m, nn.Linear))
    if n < 2:
        raise InvalidNetworkError("model must be an MLP with at least one hidden layer (two nn.Linear layers)")
    return n


def _density_label(d) -> str:
    return f"{d:g}" if np.ndim(d) == 0 else "/".join(f"{x:g}" for x in d)


# ---------------------------------------------------------------------------- the work unit
def gap_run(
    model,
    dataset,
    domain,
    *,
    method: str,
    density,
    seed: int = 0,
    finetune_epochs=(0,),
    data=None,
    epsilon: Optional[float] = None,
    time_limit: Optional[float] = None,
    time_limit_per_milp: Optional[float] = None,
    lr: float = 1e-2,
    batch_size: int = 128,
    num_threads: Optional[int] = 1,
    gap_kw: Optional[dict] = None,
    original: Optional[Network] = None,
) -> list:
    """Prune a copy of ``model`` once, then measure its gaps at each fine-tuning stage.

    A pure function of its arguments (the unit a sweep distributes).

    Parameters
    ----------
    model : torch.nn.Module
        The trained original (deep-copied, never changed).
    dataset : Dataset
        SiPP's batch and the fine-tuning data; its test split is the default ``data``.
    domain : Domain
    method : {"random", "magnitude", "sipp"}
    density : float or sequence of float
        A float prunes every hidden layer to it (output layer dense); a sequence gives
        one density per weight matrix.
    seed : int
        Seeds the random mask, SiPP's batch and the fine-tuning order.
    finetune_epochs : sequence of int
        Increasing epoch counts; the gap is measured after each (0: right after pruning).
    data : array, optional
        Points for the data gaps (default: the dataset's test split).
    epsilon, time_limit, time_limit_per_milp
        Passed to :func:`pruning_gap` (time limits per stage).
    lr, batch_size, num_threads
        Fine-tuning options (:func:`mipnet.training.finetune`, SGD).
    gap_kw : dict, optional
        More options for :func:`pruning_gap`.
    original : Network, optional
        ``from_torch(model)`` if already converted.

    Returns
    -------
    list of dict
        One row per stage: method, density, seed, finetune_epochs, achieved per-layer
        densities, test accuracy, worst-case bounds, data gaps, ratios, time.
    """
    import copy

    from mipnet.nn.pruning import achieved_densities, make_permanent, prune
    from mipnet.io.torch import from_torch
    from mipnet.nn.training import evaluate, finetune
    from mipnet.nn.workflow import _torch_threads

    if method not in GAP_METHODS:
        raise InvalidArgumentError(f"method must be one of {GAP_METHODS}, got {method!r}")
    n_lin = _linear_count(model)
    dens = _check_density_spec(density, n_lin, "density")
    stages = _check_stages(finetune_epochs)
    f = original if original is not None else from_torch(model)
    X = _data_array(data if data is not None else dataset, f.input_dim)
    dom = as_domain(domain, f.input_dim)
    rows = []
    t0 = time.perf_counter()
    with _torch_threads(num_threads):
        m = copy.deepcopy(model)
        kw = {"seed": int(seed)}
        if method == "sipp":
            kw["data"] = dataset
        if np.ndim(dens) == 0:
            prune(m, method, dens, **kw)
        else:
            prune(m, method, min(dens), densities=list(dens), **kw)
        achieved = tuple(achieved_densities(m))
    done = 0
    for e in stages:
        if e > done:
            finetune(m, dataset, epochs=e - done, lr=lr, batch_size=batch_size, seed=int(seed), progress=False,
                     num_threads=num_threads)
            done = e
        snap = make_permanent(copy.deepcopy(m))
        with _torch_threads(num_threads):
            acc = evaluate(snap, dataset)
        g = from_torch(snap)
        res = pruning_gap(f, g, dom, data=X, epsilon=epsilon, time_limit=time_limit,
                          time_limit_per_milp=time_limit_per_milp, seed=int(seed), **(gap_kw or {}))
        d = res.data
        rows.append({
            "method": method,
            "density": dens if np.ndim(dens) == 0 else list(dens),
            "density_label": _density_label(dens),
            "seed": int(seed),
            "finetune_epochs": int(e),
            "achieved_densities": list(achieved),
            "accuracy": float(acc),
            "lower": float(res.lower),
            "upper": float(res.upper),
            "exact": bool(res.exact),
            "status": res.status,
            "data_mean": d["mean"],
            "data_p50": d.get("p50"),
            "data_p90": d.get("p90"),
            "data_p99": d.get("p99"),
            "data_max": d["max"],
            "relative_mean": d["relative_mean"],
            "relative_max": d["relative_max"],
            "witness_relative": _f(res.witness_relative_gap),
            "fraction_within": d["fraction_within"],
            "ratio_lower": _f(res.ratio_lower),
            "ratio_upper": _f(res.ratio_upper),
            "num_milps": res.num_milps,
            "seconds": res.seconds,
        })
        log.info("%s density %s seed %d, %d ft epochs: gap in [%.4g, %.4g], data max %.4g (%.1f s)", method,
                 _density_label(dens), seed, e, res.lower, res.upper, d["max"], res.seconds)
    log.debug("gap_run took %.1f s", time.perf_counter() - t0)
    return rows


# ---------------------------------------------------------------------------- the sweep
def _agg(values):
    v = np.array([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return None, None, None
    return float(v.mean()), float(v.min()), float(v.max())


@dataclass(frozen=True, eq=False)
class GapSweep:
    """Worst-case vs data gaps of pruned networks over methods, densities, masks and fine-tuning.

    ``rows`` holds one dict per (method, density, mask seed, fine-tuning stage), as
    returned by :func:`gap_run`; :meth:`table` aggregates over the masks.
    """

    dataset: str
    widths: tuple
    domain: dict
    methods: tuple
    densities: tuple
    masks_per_rate: int
    finetune_epochs: tuple
    dense_accuracy: float
    rows: tuple
    seconds: float
    settings: dict = field(default_factory=dict)

    def table(self) -> list:
        """One row per (method, density, stage): mean/min/max over masks of the gaps and ratios."""
        groups: dict = {}
        for r in self.rows:
            groups.setdefault((r["method"], r["density_label"], r["finetune_epochs"]), []).append(r)
        out = []
        for (m, dl, e), rs in groups.items():
            lo, lo_min, lo_max = _agg(r["lower"] for r in rs)
            up, _, up_max = _agg(r["upper"] for r in rs)
            dm, _, _ = _agg(r["data_max"] for r in rs)
            dmean, _, _ = _agg(r["data_mean"] for r in rs)
            rl, rl_min, _ = _agg(r["ratio_lower"] for r in rs)
            ru, _, ru_max = _agg(r["ratio_upper"] for r in rs)
            acc, _, _ = _agg(r["accuracy"] for r in rs)
            rel, _, _ = _agg(r["relative_mean"] for r in rs)
            out.append({"method": m, "density": rs[0]["density"], "density_label": dl, "finetune_epochs": e,
                        "masks": len(rs), "accuracy": acc, "lower": lo, "lower_min": lo_min, "lower_max": lo_max,
                        "upper": up, "upper_max": up_max, "data_max": dm, "data_mean": dmean,
                        "relative_mean": rel, "ratio_lower": rl, "ratio_lower_min": rl_min, "ratio_upper": ru,
                        "ratio_upper_max": ru_max, "exact": sum(r["exact"] for r in rs),
                        "seconds": float(sum(r["seconds"] for r in rs))})
        return out

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "widths": list(self.widths), "domain": dict(self.domain),
                "methods": list(self.methods),
                "densities": [d if np.ndim(d) == 0 else list(d) for d in self.densities],
                "masks_per_rate": self.masks_per_rate, "finetune_epochs": list(self.finetune_epochs),
                "dense_accuracy": self.dense_accuracy, "rows": [dict(r) for r in self.rows],
                "seconds": self.seconds, "settings": dict(self.settings)}

    @classmethod
    def from_dict(cls, d: dict) -> "GapSweep":
        try:
            return cls(dataset=d["dataset"], widths=tuple(d["widths"]), domain=dict(d["domain"]),
                       methods=tuple(d["methods"]),
                       densities=tuple(x if np.ndim(x) == 0 else tuple(x) for x in d["densities"]),
                       masks_per_rate=int(d["masks_per_rate"]), finetune_epochs=tuple(d["finetune_epochs"]),
                       dense_accuracy=float(d["dense_accuracy"]), rows=tuple(dict(r) for r in d["rows"]),
                       seconds=float(d["seconds"]), settings=dict(d.get("settings", {})))
        except (KeyError, TypeError) as exc:
            raise InvalidArgumentError(f"not a GapSweep dictionary (from GapSweep.to_dict): {exc}") from None

    def plot(self, path=None, **kw):
        """:func:`mipnet.plotting.plot_gap_vs_density` of this sweep."""
        from mipnet.plotting import plot_gap_vs_density

        return plot_gap_vs_density(self, path=path, **kw)

    def __str__(self) -> str:
        lines = [f"pruning gap sweep on {self.dataset}, {'-'.join(map(str, self.widths))} "
                 f"(dense accuracy {self.dense_accuracy:.4f}), domain {self.domain.get('description', '')}; "
                 f"{self.seconds:.0f} s",
                 f"{'method':>9} {'density':>9} {'ft':>3} {'masks':>5} {'acc':>6} {'worst found':>11} "
                 f"{'proven <=':>10} {'data max':>9} {'data mean':>9} {'worst/data max':>15}"]
        for r in self.table():
            ratio = (f"{r['ratio_lower']:.3g}" if r["exact"] == r["masks"] else
                     f"{r['ratio_lower']:.3g}..{r['ratio_upper']:.3g}")
            lines.append(f"{r['method']:>9} {r['density_label']:>9} {r['finetune_epochs']:>3} {r['masks']:>5} "
                         f"{r['accuracy']:>6.3f} {r['lower']:>11.4g} {r['upper']:>10.4g} {r['data_max']:>9.4g} "
                         f"{r['data_mean']:>9.4g} {ratio:>15}")
        return "\n".join(lines)


def _domain_info(dom: Domain) -> dict:
    lo, hi = dom.lower, dom.upper
    if np.all(lo == lo[0]) and np.all(hi == hi[0]) and not dom.has_constraints:
        desc = f"box [{lo[0]:g}, {hi[0]:g}]^{dom.dim}"
    else:
        desc = f"{type(dom).__name__} in {dom.dim} dimensions"
    return {"description": desc, "dim": dom.dim, "lower_min": float(lo.min()), "upper_max": float(hi.max()),
            "constraints": 0 if dom.A is None else int(dom.A.shape[0])}


def gap_sweep(
    model,
    dataset,
    domain=None,
    *,
    widths: Optional[Sequence[int]] = None,
    epochs: int = 30,
    train_kw: Optional[dict] = None,
    methods: Sequence[str] = GAP_METHODS,
    densities: Sequence = (0.7, 0.5, 0.3),
    masks_per_rate: int = 3,
    finetune_epochs=(0, 10),
    epsilon: Optional[float] = None,
    time_limit: Optional[float] = None,
    time_limit_per_milp: Optional[float] = None,
    seed: int = 0,
    lr: float = 1e-2,
    batch_size: int = 128,
    num_threads: Optional[int] = 1,
    gap_kw: Optional[dict] = None,
    progress: bool = False,
    on_row=None,
) -> GapSweep:
    """Worst-case vs data gaps over pruning methods, rates, random masks and fine-tuning.

    Parameters
    ----------
    model : torch.nn.Module or None
        The trained original; ``None`` trains ``make_mlp(widths)`` on ``dataset``
        first (:func:`mipnet.workflow.train_dense`, ``epochs``, ``train_kw``).
    dataset : Dataset
    domain : Domain, optional
        Default: the dataset's ``input_range`` box.
    methods : sequence of {"random", "magnitude", "sipp"}
    densities : sequence of float or of per-layer sequences
        Kept fractions (a float: every hidden layer, output dense).
    masks_per_rate : int
        Masks per (method, density), seeds ``seed, seed + 1, ...``; a method whose mask
        does not depend on the seed (magnitude) is run once.
    finetune_epochs : sequence of int
        Stages at which the gap is measured (0 = right after pruning).
    epsilon, time_limit, time_limit_per_milp, gap_kw
        Passed to :func:`pruning_gap` (time limits per pruned network and stage).
    seed, lr, batch_size, num_threads
        Seeds and fine-tuning options.
    progress : bool
        A tqdm bar on stderr.
    on_row : callable, optional
        Called with each finished row.

    Returns
    -------
    GapSweep

    Notes
    -----
    The typical-case guarantees this puts in perspective: SiPP (Baykal, Liebenwein et
    al., arXiv:1910.05422) and the random/magnitude pruning bounds of Qian and Klabjan
    (ICML 2021, arXiv:2105.10065).
    """
    from mipnet.io.torch import from_torch

    t0 = time.perf_counter()
    ms = _check_methods(methods)
    stages = _check_stages(finetune_epochs)
    if isinstance(masks_per_rate, bool) or int(masks_per_rate) != masks_per_rate or masks_per_rate < 1:
        raise InvalidArgumentError(f"masks_per_rate must be an integer >= 1, got {masks_per_rate!r}")
    if isinstance(densities, (str, bytes)) or not hasattr(densities, "__iter__") or len(densities) == 0:
        raise InvalidArgumentError(f"densities must be a non-empty sequence (floats or per-layer lists), "
                                   f"got {densities!r}")
    if model is None:
        if widths is None:
            raise InvalidArgumentError("give a trained model, or model=None with widths=(n0, ..., n_out) to train one")
        from mipnet.nn.workflow import train_dense

        model = train_dense(dataset, widths, epochs=epochs, seed=seed, num_threads=num_threads,
                            **(train_kw or {})).model
    n_lin = _linear_count(model)
    ds = tuple(_check_density_spec(d, n_lin, f"densities[{i}]") for i, d in enumerate(densities))
    f = from_torch(model)
    dom = as_domain(domain if domain is not None else
                    (np.full(f.input_dim, dataset.input_range[0]), np.full(f.input_dim, dataset.input_range[1])),
                    f.input_dim)
    from mipnet.nn.training import evaluate
    from mipnet.nn.workflow import _torch_threads

    with _torch_threads(num_threads):
        dense_acc = float(evaluate(model, dataset))
    jobs = [(m, d, seed + i) for m in ms for d in ds for i in range(1 if m == "magnitude" else int(masks_per_rate))]
    bar = None
    if progress:
        import sys

        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=f"gap sweep {dataset.name}", unit="mask", file=sys.stderr)
    rows = []
    try:
        for m, d, s in jobs:
            rs = gap_run(model, dataset, dom, method=m, density=d, seed=s, finetune_epochs=stages, epsilon=epsilon,
                         time_limit=time_limit, time_limit_per_milp=time_limit_per_milp, lr=lr,
                         batch_size=batch_size, num_threads=num_threads, gap_kw=gap_kw, original=f)
            rows.extend(rs)
            if on_row is not None:
                for r in rs:
                    on_row(r)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    settings = {"epsilon": epsilon, "time_limit": time_limit, "time_limit_per_milp": time_limit_per_milp,
                "seed": seed, "lr": lr, "batch_size": batch_size}
    return GapSweep(dataset=dataset.name, widths=tuple(f.widths), domain=_domain_info(dom), methods=ms,
                    densities=ds, masks_per_rate=int(masks_per_rate), finetune_epochs=stages,
                    dense_accuracy=dense_acc, rows=tuple(rows), seconds=time.perf_counter() - t0,
                    settings=settings)


# ---------------------------------------------------------------------------- per-layer sensitivity
@dataclass(frozen=True, eq=False)
class LayerSensitivity:
    """Worst-case gap when one weight matrix at a time is pruned to ``density``.

    ``rows[i]`` prunes matrix ``layers[i]`` only (1.0 elsewhere). ``uniform`` prunes every
    hidden layer to ``density``; ``allocated`` uses the per-layer densities of
    :func:`mipnet.sparsity.allocate_sparsity` for the same overall hidden density
    (``allocation``), both with the same method: the allocation's choice of where to
    keep weights can be read against the layers' measured tolerance.
    """

    widths: tuple
    density: float
    method: str
    rows: tuple
    uniform: Optional[dict]
    allocated: Optional[dict]
    allocation: Optional[tuple]
    dense_accuracy: float
    seconds: float

    @property
    def ranking(self) -> list:
        """Layers from most tolerant (smallest proven worst-case gap) to most sensitive."""
        return [r["layer"] for r in sorted(self.rows, key=lambda r: (r["upper"], r["lower"]))]

    def to_dict(self) -> dict:
        return {"widths": list(self.widths), "density": self.density, "method": self.method,
                "rows": [dict(r) for r in self.rows], "uniform": self.uniform, "allocated": self.allocated,
                "allocation": None if self.allocation is None else list(self.allocation),
                "ranking": self.ranking, "dense_accuracy": self.dense_accuracy, "seconds": self.seconds}

    def __str__(self) -> str:
        w = "-".join(map(str, self.widths))
        lines = [f"per-layer sensitivity of {w} ({self.method} pruning, one matrix at density {self.density:g}; "
                 f"dense accuracy {self.dense_accuracy:.4f})",
                 f"{'pruned':>18} {'acc':>6} {'worst found':>11} {'proven <=':>10} {'data max':>9} {'worst/data':>10}"]

        def line(name, r):
            return (f"{name:>18} {r['accuracy']:>6.3f} {r['lower']:>11.4g} {r['upper']:>10.4g} "
                    f"{r['data_max']:>9.4g} {(r['ratio_lower'] or float('nan')):>10.3g}")

        for r in self.rows:
            lines.append(line(f"layer {r['layer']} ({self.widths[r['layer']]}->{self.widths[r['layer'] + 1]})", r))
        if self.uniform is not None:
            lines.append(line("all hidden (unif.)", self.uniform))
        if self.allocated is not None:
            lines.append(line("allocated", self.allocated))
            lines.append("  allocation: " + ", ".join(f"{x:.3g}" for x in self.allocation))
        lines.append(f"  most tolerant first: layers {self.ranking}")
        return "\n".join(lines)


def layer_sensitivity(
    model,
    dataset,
    domain=None,
    *,
    density: float,
    method: str = "magnitude",
    layers: Optional[Sequence[int]] = None,
    compare: bool = True,
    seed: int = 0,
    finetune_epochs: int = 0,
    epsilon: Optional[float] = None,
    time_limit: Optional[float] = None,
    time_limit_per_milp: Optional[float] = None,
    num_threads: Optional[int] = 1,
    gap_kw: Optional[dict] = None,
) -> LayerSensitivity:
    """Prune one weight matrix at a time to ``density`` and measure the worst-case gap.

    Parameters
    ----------
    model : torch.nn.Module
        The trained original.
    dataset : Dataset
    domain : Domain, optional
        Default: the dataset's ``input_range`` box.
    density : float in (0, 1]
    method : {"magnitude", "random", "sipp"}
    layers : sequence of int, optional
        Weight matrices to prune, 0-based (default: all, the output layer included).
    compare : bool
        Also prune all hidden layers uniformly and at the allocation of
        :func:`mipnet.sparsity.allocate_sparsity` (same overall hidden density).
    seed, finetune_epochs, epsilon, time_limit, time_limit_per_milp, num_threads, gap_kw
        As in :func:`gap_run` (one stage: after ``finetune_epochs``).

    Returns
    -------
    LayerSensitivity
    """
    from mipnet.io.torch import from_torch
    from mipnet.nn.training import evaluate
    from mipnet.nn.workflow import _torch_threads, allocation_for

    t0 = time.perf_counter()
    if method not in GAP_METHODS:
        raise InvalidArgumentError(f"method must be one of {GAP_METHODS}, got {method!r}")
    n_lin = _linear_count(model)
    d = _check_density_spec(density, n_lin, "density")
    if np.ndim(d) != 0:
        raise InvalidArgumentError("density must be one number here: it is applied to one layer at a time")
    ls = list(range(n_lin)) if layers is None else [int(x) for x in layers]
    bad = [x for x in ls if not 0 <= x < n_lin]
    if bad or not ls:
        raise InvalidArgumentError(f"layers must be indices in [0, {n_lin}) of the model's weight matrices, got {bad or ls}")
    if isinstance(finetune_epochs, bool) or int(finetune_epochs) != finetune_epochs or finetune_epochs < 0:
        raise InvalidArgumentError(f"finetune_epochs must be an integer >= 0, got {finetune_epochs!r}")
    f = from_torch(model)
    dom = as_domain(domain if domain is not None else
                    (np.full(f.input_dim, dataset.input_range[0]), np.full(f.input_dim, dataset.input_range[1])),
                    f.input_dim)
    with _torch_threads(num_threads):
        dense_acc = float(evaluate(model, dataset))
    common = dict(seed=seed, finetune_epochs=(int(finetune_epochs),), epsilon=epsilon, time_limit=time_limit,
                  time_limit_per_milp=time_limit_per_milp, num_threads=num_threads, gap_kw=gap_kw, original=f)
    rows = []
    for layer in ls:
        vec = [1.0] * n_lin
        vec[layer] = d
        r = gap_run(model, dataset, dom, method=method, density=vec, **common)[-1]
        r["layer"] = layer
        rows.append(r)
    uniform = allocated = alloc = None
    if compare:
        uniform = gap_run(model, dataset, dom, method=method, density=d, **common)[-1]
        alloc = tuple(allocation_for(f.widths, d))
        allocated = gap_run(model, dataset, dom, method=method, density=[max(x, 1e-12) for x in alloc],
                            **common)[-1]
    return LayerSensitivity(widths=tuple(f.widths), density=float(d), method=method, rows=tuple(rows),
                            uniform=uniform, allocated=allocated, allocation=alloc, dense_accuracy=dense_acc,
                            seconds=time.perf_counter() - t0)
