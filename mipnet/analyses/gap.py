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

from mipnet.analyses.common import Status, candidate_points, deadline_after, project_to_domain
from mipnet.analyses.equivalence import EntryStatus, GapProblem, gap_search, interval_gap_bounds, reconcile_bound
from mipnet.bounds import METHODS as BOUNDS_METHODS
from mipnet.bounds import check_bounds_arg
from mipnet.core.domain import Domain, as_domain
from mipnet.core.errors import InvalidArgumentError, InvalidNetworkError, SolverError
from mipnet.core.network import Network
from mipnet.core.numerics import in_domain
from mipnet.core.results import json_float
from mipnet.io.convert import as_network
from mipnet.solver.highs import check_options

__all__ = [
    "PruningGap",
    "pruning_gap",
    "data_gap_stats",
    "data_array",
]

log = logging.getLogger(__name__)

_QUANTILES = (50, 90, 99)


# ---------------------------------------------------------------------------- small helpers
def data_array(data, dim: int, name: str = "data") -> Optional[np.ndarray]:
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
    status : Status
        ``complete`` (the L-inf maximum settled), ``time_limit``, ``interrupted`` (Ctrl-C) or
        ``incomplete`` (see ``notes``).
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
    status: Status
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
            "lower": json_float(self.lower),
            "upper": json_float(self.upper),
            "exact": self.exact,
            "status": str(self.status),
            "witness": self.witness.tolist(),
            "witness_outputs": [self.witness_outputs[0].tolist(), self.witness_outputs[1].tolist()],
            "witness_relative_gap": json_float(self.witness_relative_gap),
            "per_output_lower": [json_float(v) for v in self.per_output_lower],
            "per_output_upper": [json_float(v) for v in self.per_output_upper],
            "per_output": self.per_output,
            "data": None if self.data is None else dict(self.data),
            "epsilon": self.epsilon,
            "certified": self.certified,
            "ratio_lower": json_float(self.ratio_lower),
            "ratio_upper": json_float(self.ratio_upper),
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


def _ascent(f: Network, g: Network, dom: Domain, X0: np.ndarray, *, iterations: int = 40,
            deadline: Optional[float] = None) -> np.ndarray:
    """Sign-gradient ascent of ``||f(x) - g(x)||_inf`` from the rows of X0, projected on D's box.

    A cheap heuristic (projected gradient ascent as in PGD, Madry et al. 2018,
    arXiv:1706.06083): it only supplies good witness candidates, so that the
    MILPs start from a high threshold. Returns the best point of every start (in D), after
    ``iterations`` steps or the last step started before ``deadline`` (a ``time.perf_counter()``
    value).
    """
    width = dom.upper - dom.lower
    X = X0.copy()
    best = X.copy()
    D = f.forward(X) - g.forward(X)
    val = np.abs(D).max(axis=1)
    steps = np.geomspace(1.0, 1e-3, iterations)
    for step in steps:
        if deadline is not None and time.perf_counter() >= deadline:
            break
        k = np.argmax(np.abs(D), axis=1)
        sgn = np.sign(D[np.arange(len(X)), k])
        sgn[sgn == 0] = 1.0
        G = _gap_gradient(f, g, X, k, sgn)
        Y, ok = project_to_domain(dom, X + step * np.sign(G) * width)
        Y[~ok] = X[~ok]
        DY = f.forward(Y) - g.forward(Y)
        vy = np.abs(DY).max(axis=1)
        up = vy > val
        best[up], val[up] = Y[up], vy[up]
        X, D = best.copy(), f.forward(best) - g.forward(best)
    return best

def _validate_gap(original, pruned, domain, epsilon, time_limit, time_limit_per_milp, tol, mip_rel_gap,
                  samples, quantiles, solver_options):
    f = as_network(original, "original")
    g = as_network(pruned, "pruned")
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
    return f, g, dom, eps, tl, tlm, qs, check_options(solver_options)


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
    bounds: Optional[str] = None,
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
        HiGHS options for the MILPs (on top of :data:`mipnet.solver.MILP_OPTIONS`).
    bounds : {"ia", "symbolic", "alpha", "lp", "auto"}, optional
        How both networks' neuron bounds are computed (:func:`mipnet.bounds.compute_bounds`;
        default ``"lp"``): they decide which neurons get binaries and the big-M constants.

    Returns
    -------
    PruningGap
        On Ctrl-C: the bounds reached (``exact`` only if they meet), status ``"interrupted"``.

    Raises
    ------
    SolverError
        If a witness fails its float64 re-check or lies outside D (never expected).

    Notes
    -----
    Where the box or the networks' values are far from 1, the search runs on an exact
    power-of-two rescaling of both networks and the domain
    (:class:`~mipnet.analyses.common.Scaling`): HiGHS's absolute tolerances then act as
    relative ones. Every proven bound is re-checked against every input evaluated (samples,
    data in D, ascent points, MILP solutions); a bound that one of them beats is not reported
    as proven (:func:`mipnet.analyses.equivalence.gap_search`).

    Examples
    --------
    >>> f = Network([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.zeros(1)])
    >>> g = Network([np.array([[1.0], [-1.0]]), np.array([[1.0, 0.0]])], [np.zeros(2), np.zeros(1)])
    >>> res = pruning_gap(f, g, ([-2.0], [1.0]))      # |x| vs relu(x): gap relu(-x), max 2 at x = -2
    >>> round(res.lower, 6), round(res.upper, 6), res.exact, res.witness.tolist()
    (2.0, 2.0, True, [-2.0])
    """
    t0 = time.perf_counter()
    f, g, dom, eps, tl, tlm, qs, options = _validate_gap(original, pruned, domain, epsilon, time_limit,
                                                         time_limit_per_milp, tol, mip_rel_gap, samples, quantiles,
                                                         solver_options)
    if bounds is not None and not isinstance(bounds, str):
        raise InvalidArgumentError(f"bounds must be a method name ({', '.join(BOUNDS_METHODS)}) or None, "
                                   f"got {type(bounds).__name__}")
    check_bounds_arg("bounds", bounds, f)
    X = data_array(data, f.input_dim)
    deadline = deadline_after(tl, t0)
    m = f.output_dim
    notes: list[str] = []

    # --- the data gaps (independent of the domain)
    data_stats = None
    inside = None
    if X is not None:
        FX, GX = f.forward(X), g.forward(X)
        data_stats = data_gap_stats(FX, GX, epsilon=eps, quantiles=qs)
        inside = in_domain(dom, X)
        data_stats["in_domain"] = int(inside.sum())
        if not inside.all():
            notes.append(f"{int((~inside).sum())} of {len(X)} data points lie outside D: they count in the data "
                         "gaps but not as witnesses")

    # --- candidate witnesses: the centre, random points and data of D (raises if D is empty)
    C = candidate_points(dom, None if X is None else X[inside], int(samples), seed)
    witnesses = [C]  # every point whose gap may be the lower bound (original units)
    up_k = np.full(m, np.inf)
    settled = np.zeros(m, dtype=bool)
    num_milps = 0
    timed_out = interrupted = False
    problem = None
    try:
        # --- one problem for every MILP (bounds, rescaling, the joint model of max_output_gap)
        problem = GapProblem.build(f, g, dom, points=C, options=options, bounds_a=bounds, bounds_b=bounds,
                                   deadline=deadline)
        sc = problem.scaling
        if len(C) and ascent_starts:
            gC = np.abs(problem.FA - problem.FB).max(axis=1)
            top = np.argsort(-gC, kind="stable")[:int(ascent_starts)]
            A = _ascent(problem.net_a, problem.net_b, problem.domain, problem.X[top], deadline=deadline)
            problem.add_points(A)
            witnesses.append(sc.to_input(A))

        def run(k, threshold):
            nonlocal num_milps, timed_out, interrupted
            dl = deadline
            if tlm is not None:
                dl = min(np.inf if dl is None else dl, time.perf_counter() + tlm)
            if dl is not None and dl <= time.perf_counter():
                timed_out = True
                return None
            res = gap_search(problem, outputs=[k], threshold=threshold, tol=float(tol), deadline=dl,
                             mip_rel_gap=float(mip_rel_gap))
            num_milps += res.num_milps
            notes.extend(f"output {k}: {n}" for n in res.notes)
            witnesses.extend(e.witness[None, :] for e in res.entries if e.witness is not None)
            timed_out = timed_out or res.status == Status.TIME_LIMIT
            interrupted = interrupted or res.status == Status.INTERRUPTED
            up_k[k] = res.upper
            return res

        lo_k = np.abs(problem.FA - problem.FB).max(axis=0) * sc.output_scale if len(problem.X) else np.zeros(m)
        for k in (int(k) for k in np.argsort(-lo_k, kind="stable")):
            if interrupted:
                break
            if per_output:
                res = run(k, None)
                settled[k] = res is not None and res.status == Status.COMPLETE
                continue
            # decide this output at the best gap known (a cutoff settles most outputs)
            L = max(float(np.max(lo_k)), 0.0)
            res = run(k, L)
            if res is None:
                continue
            if not any(e.status in (EntryStatus.EXCEEDED, EntryStatus.OPEN) for e in res.entries):
                settled[k] = res.status == Status.COMPLETE
            elif not interrupted:
                res = run(k, None)  # a gap above L: maximise this output outright
                settled[k] = res is not None and res.status == Status.COMPLETE
            if res is not None:
                lo_k[k] = max(lo_k[k], max(e.lower for e in res.entries))
    except KeyboardInterrupt:  # outside a solve (a solve's Ctrl-C comes back as a partial result)
        interrupted = True
    if interrupted:
        notes.append("interrupted (Ctrl-C): outputs not settled keep the bounds reached")
    # outputs never examined (time limit, Ctrl-C): the bounds before any MILP
    if problem is not None:
        before = np.maximum(problem.d_hi, -problem.d_lo) * problem.scaling.output_scale
    else:
        lo, hi = interval_gap_bounds(f, g, dom)
        before = np.maximum(hi, -lo)
    up_k = np.where(np.isfinite(up_k), up_k, before)

    # --- the witness: the candidate with the largest L-inf gap, re-checked in float64
    W = np.concatenate(witnesses)
    Dw = np.abs(f.forward(W) - g.forward(W))
    gw = Dw.max(axis=1)
    j = int(np.argmax(gw))
    witness = W[j].copy()
    fa, fb = f.forward(witness), g.forward(witness)
    lower = float(np.abs(fa - fb).max())
    # the batched and the single forward pass round differently (matrix-matrix vs matrix-vector
    # products): relative to the outputs, whose difference the gap is (outputs of 1e32 differ by 1e26)
    scale = 1.0 + abs(lower) + float(np.abs(fa).max()) + float(np.abs(fb).max())
    if not in_domain(dom, witness)[0] or abs(lower - gw[j]) > 1e-9 * scale:
        raise SolverError("internal error: the worst-case witness failed its float64 re-check")
    lo_k = Dw.max(axis=0)
    # --- every proven bound against every input evaluated
    unit = 1.0 if problem is None else problem.scaling.output_scale
    refuted = np.zeros(m, dtype=bool)
    for k in np.flatnonzero(lo_k > up_k):
        bound, proven = reconcile_bound(float(lo_k[k]), float(up_k[k]), float(before[k]), unit)
        what = "widened (solver tolerance)" if proven else "not proven: it falls back to the bound before any MILP"
        notes.append(f"output {int(k)}: an input with gap {lo_k[k]:.12g} beats the bound {up_k[k]:.12g}; {what}, "
                     f"{bound:.12g}")
        up_k[k], refuted[k] = bound, not proven
    settled &= ~refuted
    upper = float(np.max(up_k))
    slack = float(tol) + float(mip_rel_gap) * max(1.0, abs(upper)) + 1e-9
    closed = bool(not refuted.any() and upper - lower <= slack)
    # the L-inf maximum is settled once the bounds meet, even if a smaller output timed out
    if settled.all() or closed:
        status = Status.COMPLETE
    elif interrupted:
        status = Status.INTERRUPTED
    else:
        status = Status.TIME_LIMIT if timed_out else Status.INCOMPLETE
    if data_stats is not None and data_stats["in_domain"] == data_stats["n"] and data_stats["max"] > upper:
        raise SolverError(f"internal error: a data point of D has gap {data_stats['max']:.12g} above the proven "
                          f"bound {upper:.12g}")
    return PruningGap(lower=lower, upper=upper, witness=witness, exact=closed, status=status,
                      per_output_lower=lo_k, per_output_upper=up_k, witness_outputs=(fa, fb), data=data_stats,
                      epsilon=eps, seconds=time.perf_counter() - t0, num_milps=int(num_milps), tol=float(tol),
                      mip_rel_gap=float(mip_rel_gap), per_output=bool(per_output), domain=dom,
                      notes=tuple(dict.fromkeys(notes)))
