"""The joint MILP of two ReLU networks on shared inputs: output gaps, top-1 and L1 searches.

Both networks are encoded in one HiGHS model on a shared input vector (Kleine Büning,
Kern and Sinz, CP 2020); :class:`GapProblem` holds the pair with its bounds, candidate
inputs and the model. For networks of the same shape, *differential* bounds on
``y_a - y_b`` layer by layer (ReluDiff: Paulsen, Wang and Wang, ICSE 2020,
arXiv:2001.03662) are added as rows linking the two encodings. The searches here are the
MILP side of :func:`mipnet.analyses.equivalence.verify_equivalence` (whose docstring
states the properties) and of the leaf MILPs of the input branch and bound
(:mod:`mipnet.analyses.bab`, through :mod:`mipnet.analyses.properties`).
"""

from __future__ import annotations

import enum
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import scipy.sparse as sp

from mipnet.analyses.common import (
    Scaling,
    Status,
    Verdict,
    candidate_points,
    deadline_after,
    remaining,
    solve_or_partial,
    witness_from_solution,
)
from mipnet.bounds import check_bounds_arg as check_bounds  # noqa: F401 -- re-exported (equivalence, gap)
from mipnet.bounds import Bounds, LayerBounds, compute_bounds, gamma, interval_bounds, interval_layer
from mipnet.core.domain import Domain, as_domain
from mipnet.core.errors import InvalidNetworkError, SolverError
from mipnet.core.network import Network
from mipnet.core.results import json_float
from mipnet.solver.highs import INF, check_options

__all__ = [
    "EntryStatus",
    "EquivalenceResult",
    "GapProblem",
    "gap_search",
    "interval_gap_bounds",
    "reconcile_bound",
    "OutputGap",
    "GapResult",
    "DifferentialBounds",
    "differential_bounds",
    "differential_layers",
    "max_output_gap",
    "top1_margin",
    "top1_milps",
    "l1_milps",
    "l1_search",
    "top1_search",
    "validate_pair",
    "check_bounds",
    "check_time_limit",
    "check_tol",
    "check_samples",
]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- validation
def validate_pair(net_a, net_b, domain) -> Domain:
    for name, net in (("net_a", net_a), ("net_b", net_b)):
        if not isinstance(net, Network):
            raise InvalidNetworkError(f"{name} must be a mipnet.Network, got {type(net).__name__}; "
                                      "load a model with mipnet.io.load_network")
    if net_a.input_dim != net_b.input_dim:
        raise InvalidNetworkError(f"net_a takes {net_a.input_dim} inputs but net_b takes {net_b.input_dim}; "
                                  "equivalence needs the same input space")
    if net_a.output_dim != net_b.output_dim:
        raise InvalidNetworkError(f"net_a has {net_a.output_dim} outputs but net_b has {net_b.output_dim}; "
                                  "equivalence compares outputs one to one")
    return as_domain(domain, net_a.input_dim)


def _pair_bounds(net: Network, domain: Domain, bounds, scaling: Scaling, deadline: Optional[float] = None) -> Bounds:
    """The bounds of one net of a pair in the problem's units: given (rescaled), by name, or LP
    (no LP after ``deadline``, a ``time.perf_counter()`` value)."""
    if isinstance(bounds, Bounds):
        return scaling.bounds(bounds)
    return compute_bounds(net, domain, method=bounds or "lp", deadline=deadline)


def check_time_limit(time_limit) -> None:
    if time_limit is not None and not (time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")


def check_tol(tol) -> None:
    if not (tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")


def check_samples(samples) -> None:
    if int(samples) != samples or samples < 0:
        raise ValueError(f"samples must be a non-negative integer, got {samples!r}")


# ---------------------------------------------------------------------------- differential bounds
def _add_intervals(a, b):
    lo, hi = a[0] + b[0], a[1] + b[1]
    eps = 4 * np.finfo(np.float64).eps
    return lo - eps * np.abs(lo), hi + eps * np.abs(hi)


@dataclass(frozen=True, eq=False)
class DifferentialBounds:
    """Bounds on ``y_a - y_b`` and ``h_a - h_b`` per hidden layer, and on ``f - g``.

    ``hidden[l] = (dy, dh)`` (two :class:`~mipnet.bounds.LayerBounds`); ``output``: ``f - g``.
    """

    hidden: tuple
    output: LayerBounds


def differential_bounds(net_a: Network, net_b: Network, domain, *, bounds_a: Optional[Bounds] = None,
                        bounds_b: Optional[Bounds] = None) -> DifferentialBounds:
    """Bounds on ``y_a^l(x) - y_b^l(x)`` for every affine layer of two same-shaped networks.

    With ``dh = h_a - h_b`` (zero at the input)::

        dy = W_a dh + (W_a - W_b) h_b + (b_a - b_b) = W_b dh + (W_a - W_b) h_a + (b_a - b_b),

    both evaluated by interval arithmetic and intersected with ``y_a - y_b`` from
    the separate bounds; then ``dh = relu(y_a) - relu(y_b)`` lies in
    ``[min(0, dy_lo), max(0, dy_hi)]`` (ReLU is monotone and 1-Lipschitz), equals
    ``dy`` when both neurons are stably active and 0 when both are stably
    inactive (ReluDiff, Paulsen, Wang and Wang, ICSE 2020, arXiv:2001.03662).
    Tight when ``W_a - W_b`` is small or sparse (pruning, perturbation).

    Returns
    -------
    DifferentialBounds
    """
    domain = validate_pair(net_a, net_b, domain)
    if net_a.widths != net_b.widths:
        raise InvalidNetworkError(f"differential bounds need networks of the same widths; got "
                                  f"{net_a.widths} and {net_b.widths}")
    check_bounds("bounds_a", bounds_a, net_a)
    check_bounds("bounds_b", bounds_b, net_b)
    unit = Scaling()  # the original units
    bounds_a, bounds_b = _pair_bounds(net_a, domain, bounds_a, unit), _pair_bounds(net_b, domain, bounds_b, unit)
    return differential_layers(net_a, net_b, domain, bounds_a, bounds_b)


def differential_layers(net_a: Network, net_b: Network, domain: Domain, bounds_a: Bounds,
                  bounds_b: Bounds) -> DifferentialBounds:
    """:func:`differential_bounds` on validated arguments (same widths, bounds given; no checks)."""
    dh_lo = dh_hi = np.zeros(net_a.input_dim)
    ha_lo = hb_lo = domain.lower
    ha_hi = hb_hi = domain.upper
    hidden = []
    n_layers = len(net_a.layers)
    for l, ((Wa, ba), (Wb, bb), A, B) in enumerate(zip(net_a.layers, net_b.layers, bounds_a.layers,
                                                       bounds_b.layers)):
        dW = Wa - Wb
        db = ba - bb
        zero = np.zeros(Wa.shape[0])
        f1 = _add_intervals(interval_layer(Wa, db, dh_lo, dh_hi), interval_layer(dW, zero, hb_lo, hb_hi))
        f2 = _add_intervals(interval_layer(Wb, db, dh_lo, dh_hi), interval_layer(dW, zero, ha_lo, ha_hi))
        sep = _add_intervals((A.lower, A.upper), (-B.upper, -B.lower))
        lo = np.maximum(np.maximum(f1[0], f2[0]), sep[0])
        hi = np.minimum(np.minimum(f1[1], f2[1]), sep[1])
        hi = np.maximum(hi, lo)
        if l == n_layers - 1:
            return DifferentialBounds(tuple(hidden), LayerBounds(lo, hi))
        ha_lo, ha_hi = A.post_activation()
        hb_lo, hb_hi = B.post_activation()
        dh_lo = np.maximum(np.minimum(0.0, lo), _add_intervals((ha_lo, ha_hi), (-hb_hi, -hb_lo))[0])
        dh_hi = np.minimum(np.maximum(0.0, hi), _add_intervals((ha_lo, ha_hi), (-hb_hi, -hb_lo))[1])
        both_active = (A.lower >= 0) & (B.lower >= 0)
        both_inactive = (A.upper <= 0) & (B.upper <= 0)
        dh_lo = np.where(both_active, lo, np.where(both_inactive, 0.0, dh_lo))
        dh_hi = np.where(both_active, hi, np.where(both_inactive, 0.0, dh_hi))
        dh_hi = np.maximum(dh_hi, dh_lo)
        hidden.append((LayerBounds(lo, hi), LayerBounds(dh_lo, dh_hi)))
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------- the joint model
class _Joint:
    """Both networks in one HiGHS model on shared inputs, with differential rows when available."""

    def __init__(self, net_a, net_b, domain, bounds_a, bounds_b, diff, options=None) -> None:
        from mipnet.milp.encoding import HighsModel

        self.model = HighsModel(domain, options=options)
        self.va = self.model.add_network(net_a, bounds_a)
        self.vb = self.model.add_network(net_b, bounds_b, input_cols=self.model.input_cols)
        self.diff_rows = 0
        if diff is not None:
            self._add_diff_rows(diff, bounds_a, bounds_b)

    def _add_diff_rows(self, diff, bounds_a, bounds_b) -> None:
        """Rows ``dlo <= y_a - y_b <= dhi`` where the differential bound beats the separate ones."""
        ca, cb, lo, hi = [], [], [], []
        rows = []  # (cols of a, cols of b, dlo, dhi, separate lo, separate hi)
        for lva, lvb, (dy, dh), A, B in zip(self.va.layers, self.vb.layers, diff.hidden, bounds_a.layers,
                                           bounds_b.layers):
            rows.append((lva.y_cols, lvb.y_cols, dy.lower, dy.upper, A.lower - B.upper, A.upper - B.lower))
            (hal, hau), (hbl, hbu) = A.post_activation(), B.post_activation()
            rows.append((lva.h_cols, lvb.h_cols, dh.lower, dh.upper, hal - hbu, hau - hbl))
        A, B = bounds_a.output, bounds_b.output
        rows.append((self.va.output_cols, self.vb.output_cols, diff.output.lower, diff.output.upper,
                     A.lower - B.upper, A.upper - B.lower))
        for ya, yb, dlo, dhi, sep_lo, sep_hi in rows:
            scale = 1e-9 * (1 + np.abs(sep_lo) + np.abs(sep_hi))
            useful = (ya >= 0) & (yb >= 0) & ((dlo > sep_lo + scale) | (dhi < sep_hi - scale))
            useful &= ya != yb
            ca.append(ya[useful])
            cb.append(yb[useful])
            lo.append(dlo[useful])
            hi.append(dhi[useful])
        ca, cb = np.concatenate(ca), np.concatenate(cb)
        k = ca.size
        if k:
            r = np.arange(k)
            A = sp.csr_matrix((np.concatenate([np.ones(k), -np.ones(k)]), (np.concatenate([r, r]),
                               np.concatenate([ca, cb]))), shape=(k, self.model.num_cols))
            self.model.add_rows(np.concatenate(lo), np.concatenate(hi), A)
            self.diff_rows = k
        for lva, lvb, (dy, _) in zip(self.va.layers, self.vb.layers, diff.hidden):
            self._add_link_rows(lva, lvb, dy.lower, dy.upper)

    def _add_link_rows(self, lva, lvb, Dl, Du) -> None:
        """Big-M rows with the *differential* bounds as M, linking the two networks' binaries.

        With ``dy = y_a - y_b`` in [Dl, Du] and ``dh = h_a - h_b``, the four cases of
        (z_a, z_b) give ``dh <= dy`` if z_a = 1, ``dh <= 0`` if z_a = 0, ``dh >= dy``
        if z_b = 1 and ``dh >= 0`` if z_b = 0; linearised::

            dh - dy + m (z_a - 1) <= 0     dh - M z_a <= 0
            dh - dy + M (1 - z_b) >= 0     dh + m z_b >= 0

        with ``m = max(0, -Dl)``, ``M = max(0, Du)``: small when the networks are
        close, so even the LP relaxation keeps ``h_a - h_b`` near ``y_a - y_b`` or 0.
        A stable neuron has a constant z (1 if active) folded into the right-hand side.
        """
        from mipnet.bounds import NeuronState

        both = (lva.y_cols >= 0) & (lvb.y_cols >= 0) & ((lva.z_cols >= 0) | (lvb.z_cols >= 0))
        idx = np.flatnonzero(both)
        if idx.size == 0:
            return
        m_ = np.maximum(0.0, -Dl[idx])
        M_ = np.maximum(0.0, Du[idx])
        m_ = m_ + 1e-9 * (1 + m_)
        M_ = M_ + 1e-9 * (1 + M_)
        ha, hb, ya, yb = lva.h_cols[idx], lvb.h_cols[idx], lva.y_cols[idx], lvb.y_cols[idx]
        za, zb = lva.z_cols[idx], lvb.z_cols[idx]
        za_const = (lva.states[idx] == NeuronState.ACTIVE).astype(float)  # used where za < 0
        zb_const = (lvb.states[idx] == NeuronState.ACTIVE).astype(float)
        rows_r, rows_c, rows_v, lo, hi = [], [], [], [], []
        n = idx.size
        one = np.ones(n)
        base = 0

        def add(cols_vals, z, zcoef, zconst, lo_v, hi_v):
            nonlocal base
            r = base + np.arange(n)
            for c, v in cols_vals:
                rows_r.append(r)
                rows_c.append(c)
                rows_v.append(v)
            has = z >= 0
            rows_r.append(r[has])
            rows_c.append(z[has])
            rows_v.append(zcoef[has])
            shift = np.where(has, 0.0, zcoef * zconst)  # constant z moved to the right-hand side
            lo.append(lo_v - shift)
            hi.append(hi_v - shift)
            base += n

        dh_dy = [(ha, one), (hb, -one), (ya, -one), (yb, one)]
        dh = [(ha, one), (hb, -one)]
        add(dh_dy, za, m_, za_const, np.full(n, -INF), m_)            # dh - dy + m z_a <= m
        add(dh, za, -M_, za_const, np.full(n, -INF), np.zeros(n))     # dh - M z_a <= 0
        add(dh_dy, zb, -M_, zb_const, -M_, np.full(n, INF))           # dh - dy - M z_b >= -M
        add(dh, zb, m_, zb_const, np.zeros(n), np.full(n, INF))       # dh + m z_b >= 0
        # a stably active neuron has h == y (same column): merge duplicate entries by summing
        A = sp.coo_matrix((np.concatenate(rows_v), (np.concatenate(rows_r), np.concatenate(rows_c))),
                          shape=(base, self.model.num_cols)).tocsr()
        A.sum_duplicates()
        A.eliminate_zeros()
        self.model.add_rows(np.concatenate(lo), np.concatenate(hi), A)
        self.diff_rows += base


# ---------------------------------------------------------------------------- gap results
class EntryStatus(str, enum.Enum):
    """How one output and sign (or one top-1 class pair) was settled."""

    OPTIMAL = "optimal"  #: maximised to optimality
    CUTOFF = "cutoff"  #: proven ``<= threshold + tol`` by an early-stopped MILP
    BOUNDS = "bounds"  #: settled by bounds, no MILP
    EXCEEDED = "exceeded"  #: an input above the threshold was found (re-checked); not maximised further
    OPEN = "open"  #: the MILP stopped without a verified input or proof (see notes)
    TIME_LIMIT = "time_limit"
    INTERRUPTED = "interrupted"  #: Ctrl-C during its MILP: ``upper`` is the dual bound reached
    SKIPPED = "skipped"  #: not examined (the search stopped earlier): ``upper`` from bounds
    PROVEN = "proven"  #: top-1: no disagreement of margin > tol
    NEVER_FIRST = "never_first"  #: top-1: f never ranks this class first
    COUNTEREXAMPLE = "counterexample"  #: top-1: a verified disagreement

    def __str__(self) -> str:
        return self.value


_SETTLED = (EntryStatus.OPTIMAL, EntryStatus.CUTOFF, EntryStatus.BOUNDS, EntryStatus.EXCEEDED)


@dataclass(frozen=True, eq=False)
class OutputGap:
    """The gap ``sign * (f_k - g_k)`` of one output and sign over the domain.

    ``upper`` is a proven upper bound on its maximum; ``lower`` a value attained
    at ``witness`` (float64 forward pass; ``-inf`` without witness). ``status``: an
    :class:`EntryStatus` (``optimal``, ``cutoff``, ``bounds``, ``exceeded``, ``open``,
    ``time_limit``, ``interrupted``, ``skipped``) or, rarely, the solver's own status.
    """

    output: int
    sign: int
    lower: float
    upper: float
    witness: Optional[np.ndarray]
    status: str
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "output": self.output,
            "sign": self.sign,
            "lower": json_float(self.lower),
            "upper": json_float(self.upper),
            "status": str(self.status),
            "seconds": self.seconds,
            "witness": None if self.witness is None else self.witness.tolist(),
        }


@dataclass(frozen=True, eq=False)
class GapResult:
    """Largest output gap ``max_x max_k |f_k(x) - g_k(x)|`` between two networks on a domain.

    ``upper`` is proven (from bounds and finished or timed-out solves' dual
    bounds); ``lower`` is attained at ``witness`` (float64 forward pass).
    ``entries`` holds one :class:`OutputGap` per output and sign examined.
    """

    entries: tuple
    lower: float
    upper: float
    witness: Optional[np.ndarray]
    seconds: float
    num_milps: int
    status: Status
    message: str = ""
    threshold: Optional[float] = None
    tol: float = 0.0
    differential: bool = False
    notes: tuple = field(default_factory=tuple)

    @property
    def complete(self) -> bool:
        """Every output and sign examined and settled (no time limit, no early stop)."""
        return self.status == Status.COMPLETE

    def per_output_upper(self, m: Optional[int] = None) -> np.ndarray:
        """Proven bound on ``max_x |f_k - g_k|`` per output (``nan`` where not examined)."""
        m = m if m is not None else 1 + max(e.output for e in self.entries)
        out = np.full(m, np.nan)
        for e in self.entries:
            out[e.output] = e.upper if np.isnan(out[e.output]) else max(out[e.output], e.upper)
        return out

    def per_output_lower(self, m: Optional[int] = None) -> np.ndarray:
        m = m if m is not None else 1 + max(e.output for e in self.entries)
        out = np.full(m, -np.inf)
        for e in self.entries:
            out[e.output] = max(out[e.output], e.lower)
        return out

    def to_dict(self) -> dict:
        return {
            "lower": json_float(self.lower),
            "upper": json_float(self.upper),
            "status": str(self.status),
            "complete": self.complete,
            "message": self.message,
            "threshold": self.threshold,
            "tol": self.tol,
            "differential_bounds": self.differential,
            "seconds": self.seconds,
            "num_milps": self.num_milps,
            "witness": None if self.witness is None else self.witness.tolist(),
            "entries": [e.to_dict() for e in self.entries],
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        lines = [f"Output gap (L-inf): found {self.lower:.6g}, proven <= {self.upper:.6g} "
                 f"({self.status}, {self.seconds:.2f} s, {self.num_milps} MILPs)"]
        for e in self.entries:
            lines.append(f"  output {e.output} sign {e.sign:+d}: [{e.lower:.6g}, {e.upper:.6g}] {e.status}")
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- shared preparation
# ---------------------------------------------------------------------------- equivalence results
# (here, beside GapResult, so that both engines and the property module share it without a cycle)
@dataclass(frozen=True, eq=False)
class EquivalenceResult:
    """Verdict of an equivalence check between two networks on a domain.

    Attributes
    ----------
    verdict : Verdict
        ``"equivalent"``, ``"not_equivalent"`` or ``"unknown"`` (a ``str`` enum).
    mode : {"exact", "epsilon", "top1"}
    max_gap : float
        For ``equivalent``/``unknown``: the proven upper bound on the gap (or the
        bound reached); for ``not_equivalent``: the gap at the counterexample.
        The gap is ``max_k |f_k - g_k|`` (linf), ``sum_k |f_k - g_k|`` (l1), or the
        top-1 disagreement margin ``min(f_c - max_{j != c} f_j, max_{k != c} g_k - g_c)``
        with ``c = argmax f`` (top1; positive exactly at strict disagreements).
    gap_lower_bound, gap_upper_bound : float
        Attained (at a verified input) and proven values of the largest gap.
    counterexample : ndarray or None
        An input of the domain where the property fails, checked in float64.
    outputs_a, outputs_b : ndarray or None
        Both networks' outputs at the counterexample.
    per_output : tuple of dict
        Per output and sign (exact/epsilon linf) or per class pair (top1).
    """

    verdict: Verdict
    mode: str
    epsilon: float
    norm: str
    tol: float
    max_gap: float
    gap_lower_bound: float
    gap_upper_bound: float
    counterexample: Optional[np.ndarray]
    outputs_a: Optional[np.ndarray]
    outputs_b: Optional[np.ndarray]
    per_output: tuple
    seconds: float
    num_milps: int
    status: Status
    message: str = ""
    notes: tuple = field(default_factory=tuple)
    search: Optional[dict] = None  #: the input branch and bound's statistics (engine bab)

    @property
    def equivalent(self) -> bool:
        return self.verdict == Verdict.EQUIVALENT

    def to_dict(self) -> dict:
        return {
            "verdict": str(self.verdict),
            "mode": self.mode,
            "epsilon": self.epsilon,
            "norm": self.norm,
            "tol": self.tol,
            "max_gap": json_float(self.max_gap),
            "gap_lower_bound": json_float(self.gap_lower_bound),
            "gap_upper_bound": json_float(self.gap_upper_bound),
            "counterexample": None if self.counterexample is None else self.counterexample.tolist(),
            "outputs_a": None if self.outputs_a is None else self.outputs_a.tolist(),
            "outputs_b": None if self.outputs_b is None else self.outputs_b.tolist(),
            "seconds": self.seconds,
            "num_milps": self.num_milps,
            "status": str(self.status),
            "message": self.message,
            "per_output": list(self.per_output),
            "notes": list(self.notes),
            "search": self.search,
        }

    def __str__(self) -> str:
        what = {"exact": f"exact (tol {self.tol:g})", "epsilon": f"epsilon {self.epsilon:g} ({self.norm})",
                "top1": "top-1"}.get(self.mode, self.mode)
        lines = [f"{self.verdict.upper()}: {what}; gap found {self.gap_lower_bound:.6g}, "
                 f"proven <= {self.gap_upper_bound:.6g} ({self.seconds:.2f} s, {self.num_milps} MILPs)"]
        if self.counterexample is not None:
            lines.append(f"  counterexample: argmax a = {int(np.argmax(self.outputs_a))}, "
                         f"argmax b = {int(np.argmax(self.outputs_b))}, "
                         f"max |a - b| = {float(np.max(np.abs(self.outputs_a - self.outputs_b))):.6g}")
        if self.search is not None:
            lines.append(f"  input branch and bound: {self.search['boxes_closed']} boxes closed, "
                         f"{self.search['boxes_open']} open")
            if self.search.get("largest_open") is not None:
                lo, hi = (np.asarray(v) for v in self.search["largest_open"])
                lines.append(f"  largest open box: widths up to {float(np.max(hi - lo)):.4g}, centre "
                             f"{np.array2string((lo + hi) / 2, precision=4, threshold=8)}")
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)


class GapProblem:
    """Two networks on one domain as the MILPs see them: bounds, candidate inputs, the joint MILP.

    Everything inside is in the units of :attr:`scaling` (identity unless the box or the values
    are far from 1): ``net_a``, ``net_b``, ``domain``, the bounds, the points ``X`` and their
    outputs ``FA``, ``FB``; :func:`gap_search` reports in the original units. Build it with
    :meth:`build` from validated arguments; the joint MILP is made on first use and shared by
    every search on the problem.
    """

    def __init__(self, net_a: Network, net_b: Network, domain: Domain, scaling: Scaling, bounds_a: Bounds,
                 bounds_b: Bounds, diff: Optional[DifferentialBounds], X: np.ndarray,
                 options: Optional[dict] = None) -> None:
        self.net_a, self.net_b, self.domain, self.scaling = net_a, net_b, domain, scaling
        self.bounds_a, self.bounds_b, self.diff = bounds_a, bounds_b, diff
        A, B = bounds_a.output, bounds_b.output
        self.d_lo, self.d_hi = _add_intervals((A.lower, A.upper), (-B.upper, -B.lower))
        if diff is not None:
            self.d_lo = np.maximum(self.d_lo, diff.output.lower)
            self.d_hi = np.minimum(self.d_hi, diff.output.upper)
        self.X = np.zeros((0, net_a.input_dim))
        self.FA = np.zeros((0, net_a.output_dim))
        self.FB = np.zeros((0, net_a.output_dim))
        self.add_points(X)
        self.options = options
        self._joint: Optional[_Joint] = None

    @classmethod
    def build(cls, net_a: Network, net_b: Network, domain: Domain, *, bounds_a: Optional[Bounds] = None,
              bounds_b: Optional[Bounds] = None, differential: bool = True, samples: int = 0, seed=0,
              points: Optional[np.ndarray] = None, options: Optional[dict] = None,
              rescale: bool = True, deadline: Optional[float] = None) -> "GapProblem":
        """The problem of ``net_a`` vs ``net_b`` on ``domain`` (all validated, in the original units).

        ``bounds_a``, ``bounds_b``: bounds of each net on the domain: a Bounds, a method name of
        :func:`mipnet.bounds.compute_bounds` (computed in the problem's units), or None (LP bounds).
        ``points``: the candidate inputs (default: :func:`~mipnet.analyses.common.candidate_points`
        with ``samples`` and ``seed``). ``rescale``: allow the exact power-of-two change of units.
        ``deadline``: a ``time.perf_counter()`` value after which the bounds start no LP.
        Raises :class:`~mipnet.core.errors.Interrupted` (a ``KeyboardInterrupt``) on Ctrl-C.
        """
        scaling = Scaling.for_problem((net_a, net_b), domain) if rescale else Scaling()
        if points is None:
            points = candidate_points(domain, None, samples, seed)
        na, nb, dom = scaling.net(net_a), scaling.net(net_b), scaling.domain(domain)
        ba = _pair_bounds(na, dom, bounds_a, scaling, deadline)
        bb = _pair_bounds(nb, dom, bounds_b, scaling, deadline)
        diff = differential_layers(na, nb, dom, ba, bb) if differential and na.widths == nb.widths else None
        return cls(na, nb, dom, scaling, ba, bb, diff, points / scaling.input_scale, options)

    def add_points(self, X: np.ndarray) -> None:
        """More candidate inputs (scaled units) and their outputs."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if len(X):
            self.X = np.concatenate([self.X, X])
            self.FA = np.concatenate([self.FA, self.net_a.forward(X)])
            self.FB = np.concatenate([self.FB, self.net_b.forward(X)])

    def bound_upper(self, k: int, sign: int) -> float:
        """The bound on ``max sign * (f_k - g_k)`` before any MILP (scaled units)."""
        return float(self.d_hi[k] if sign > 0 else -self.d_lo[k])

    @property
    def joint(self) -> _Joint:
        if self._joint is None:
            self._joint = _Joint(self.net_a, self.net_b, self.domain, self.bounds_a, self.bounds_b, self.diff,
                                 self.options)
        return self._joint


def interval_gap_bounds(net_a: Network, net_b: Network, domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` with ``lo <= f - g <= hi`` on D from interval (and differential) bounds alone:
    no solver, what is left when Ctrl-C stops the LP bounds (validated arguments)."""
    ba, bb = interval_bounds(net_a, domain), interval_bounds(net_b, domain)
    lo, hi = _add_intervals((ba.output.lower, ba.output.upper), (-bb.output.upper, -bb.output.lower))
    if net_a.widths == net_b.widths:
        d = differential_layers(net_a, net_b, domain, ba, bb).output
        lo, hi = np.maximum(lo, d.lower), np.minimum(hi, d.upper)
    return lo, hi


# ---------------------------------------------------------------------------- max output gap
def _validate_gap(net_a, net_b, domain, outputs, time_limit, threshold, tol, samples, solver_options):
    domain = validate_pair(net_a, net_b, domain)
    check_time_limit(time_limit)
    check_tol(tol)
    m = net_a.output_dim
    if outputs is None:
        outputs = list(range(m))
    else:
        outputs = [int(k) for k in np.atleast_1d(outputs)]
        bad = [k for k in outputs if not 0 <= k < m]
        if bad:
            raise ValueError(f"outputs must be indices in [0, {m}); got {bad}")
    if threshold is not None and not (threshold >= 0 and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number >= 0 or None, got {threshold!r}")
    check_samples(samples)
    return domain, outputs, check_options(solver_options)


def gap_search(problem: GapProblem, *, outputs: Optional[Sequence[int]] = None, threshold: Optional[float] = None,
               stop_on_violation: bool = False, tol: float = 1e-6, deadline: Optional[float] = None,
               mip_rel_gap: Optional[float] = None, start: Optional[float] = None) -> GapResult:
    """The MILPs of :func:`max_output_gap` on a built problem; values in the original units.

    ``threshold`` and ``tol`` are in the original units, ``deadline`` a ``time.perf_counter()``
    value. On Ctrl-C the interrupted MILP's dual bound is kept and the search stops (status
    ``interrupted``); outputs not examined keep their bound before any MILP.
    """
    t0 = time.perf_counter() if start is None else start
    p = problem
    a = p.scaling.output_scale
    m = p.net_a.output_dim
    outputs = list(range(m)) if outputs is None else [int(k) for k in outputs]
    thr = None if threshold is None else float(threshold) / a
    cut = None if thr is None else thr + p.scaling.margin(tol)
    D = p.FA - p.FB
    notes: list[str] = []
    if p.scaling.resolution > 0:
        notes.append(f"the networks' values span many orders of magnitude: each MILP bound carries HiGHS's "
                     f"tolerance in the smallest layer's units, {p.scaling.resolution * a:.3g} here, so bounds "
                     f"may not meet")
    todo = [(k, s) for k in outputs for s in (1, -1)]
    info = {}
    for k, s in todo:
        lower, wit = -np.inf, None
        if len(D):
            j = int(np.argmax(s * D[:, k]))
            lower, wit = float(s * D[j, k]), p.X[j].copy()
        info[(k, s)] = dict(lower=lower, upper=p.bound_upper(k, s), witness=wit, status=EntryStatus.SKIPPED,
                            seconds=0.0)
    # most promising first: likely violations (threshold) or largest bounds (maximisation)
    key = (lambda ks: -info[ks]["lower"]) if thr is not None else (lambda ks: -info[ks]["upper"])
    todo.sort(key=key)
    num_milps = 0
    stopped = timed_out = interrupted = False
    try:
        for k, s in todo:
            e = info[(k, s)]
            if stopped or interrupted:
                break
            if cut is not None:
                if e["upper"] <= cut:
                    e["status"] = EntryStatus.BOUNDS
                    continue
                if e["lower"] > thr:
                    e["status"] = EntryStatus.EXCEEDED
                    stopped = stop_on_violation
                    continue
            elif e["upper"] - e["lower"] <= 1e-9 * (1 + abs(e["upper"])):
                e["status"] = EntryStatus.BOUNDS
                continue
            if deadline is not None and time.perf_counter() >= deadline:
                timed_out = True
                e["status"] = EntryStatus.TIME_LIMIT
                continue
            joint = p.joint
            model = joint.model
            model.set_objective(np.array([joint.va.output_cols[k], joint.vb.output_cols[k]]), [s, -s],
                                maximize=True)
            res, stopped = solve_or_partial(model, cutoff=cut, target=cut, time_limit=remaining(deadline),
                                            mip_rel_gap=mip_rel_gap)
            interrupted |= stopped
            num_milps += 1
            e["seconds"] = res.seconds
            _record_gap_solve(p, e, k, s, res, cut, thr, notes)
            timed_out = timed_out or e["status"] == EntryStatus.TIME_LIMIT
            stopped = stop_on_violation and e["status"] == EntryStatus.EXCEEDED
    except KeyboardInterrupt:  # outside a solve (a solve's Ctrl-C comes back as its partial result)
        interrupted = True
    _recheck_gap_bounds(p, info, notes)
    entries = tuple(OutputGap(k, s, e["lower"] * a + 0.0, e["upper"] * a + 0.0, p.scaling.to_input(e["witness"]),
                              e["status"], e["seconds"])
                    for (k, s), e in sorted(info.items()))
    lower = max(e.lower for e in entries) + 0.0  # + 0.0: no "-0" in reports
    upper = max(e.upper for e in entries) + 0.0
    best = max(entries, key=lambda e: e.lower)
    if all(e.status in _SETTLED for e in entries):
        status, msg = Status.COMPLETE, ""
    elif stopped:
        status, msg = Status.STOPPED, "stopped at the first verified input above the threshold"
    elif interrupted:
        status, msg = Status.INTERRUPTED, "interrupted (Ctrl-C); upper is the bound reached"
    elif timed_out:
        status, msg = Status.TIME_LIMIT, "time limit reached; upper is the bound reached"
    else:
        status, msg = Status.INCOMPLETE, "some outputs were not settled (see entries and notes)"
    return GapResult(entries, lower, upper, best.witness, time.perf_counter() - t0, num_milps, status, msg,
                     threshold, float(tol), p.diff is not None, tuple(notes))


def _record_gap_solve(p: GapProblem, e: dict, k: int, s: int, res, cut, thr, notes: list) -> None:
    """What one gap MILP says about output k, sign s: a checked witness, a proof, a bound."""
    a = p.scaling.output_scale
    if res.has_solution:
        x = witness_from_solution(res.values, p.joint.model.input_cols, p.domain)
        if x is not None:
            val = float(s * (p.net_a.forward(x)[k] - p.net_b.forward(x)[k]))
            if res.objective is not None and abs(val - res.objective) > 1e-5 * (1 + abs(val)):
                notes.append(f"output {k} sign {s:+d}: solver objective {res.objective * a:.9g} but the "
                             f"forward pass gives {val * a:.9g}")
            if val > e["lower"]:
                e["lower"], e["witness"] = val, x
    if res.status == "infeasible":
        if cut is None:
            raise SolverError(f"output {k}: the joint MILP is infeasible; is the domain empty?")
        e["upper"] = min(e["upper"], cut)
        e["status"] = EntryStatus.CUTOFF
        return
    db = res.dual_bound
    if db is not None and math.isfinite(db):
        db += p.scaling.resolution  # how far the solver's values may be off (0 unless rescaled)
        e["upper"] = min(e["upper"], max(db, cut) if cut is not None else db)
    if res.status == "optimal":
        e["status"] = EntryStatus.CUTOFF if cut is not None and e["upper"] <= cut else EntryStatus.OPTIMAL
    elif res.status == "objective_target":
        e["status"] = EntryStatus.EXCEEDED if e["lower"] > thr else EntryStatus.OPEN
        if e["status"] == EntryStatus.OPEN:
            notes.append(f"output {k} sign {s:+d}: the solver's input above the threshold did not "
                         "verify in float64 (numerical tolerance); left open")
    elif res.status == "interrupted":
        e["status"] = EntryStatus.EXCEEDED if thr is not None and e["lower"] > thr else EntryStatus.INTERRUPTED
    elif res.status == "time_limit":
        e["status"] = EntryStatus.TIME_LIMIT
    else:
        e["status"] = res.status
        notes.append(f"output {k} sign {s:+d}: solver status {res.highs_status}")


def reconcile_bound(lower: float, upper: float, before: float, unit: float = 1.0) -> tuple[float, bool]:
    """The bound to report when a verified value may beat a solver's bound: ``(bound, still_proven)``.

    ``lower`` is attained at a verified input, ``upper`` the solver's bound, ``before`` the sound
    bound before any MILP. A solver's bound beaten by at most its tolerance
    (``1e-6 (unit + |upper|)``; ``unit`` is the size of the problem's values, 1 after the
    rescaling of :class:`~mipnet.analyses.common.Scaling`) is widened by twice the excess; one
    beaten by more is refuted: the bound falls back to ``before`` and is no longer proven.
    """
    excess = lower - upper
    if not excess > 0:
        return upper, True
    if excess <= 1e-6 * (unit + abs(upper)):
        return lower + excess, True
    if lower > before:
        raise SolverError(f"internal error: a verified value {lower:.12g} beats the sound bound {before:.12g}")
    return before, False


def _recheck_gap_bounds(p: GapProblem, info: dict, notes: list) -> None:
    """Every proven bound against the inputs verified on the way (the float64 re-check of a proof,
    :func:`reconcile_bound`); a refuted output is left ``open``."""
    a = p.scaling.output_scale
    for (k, s), e in info.items():
        if not e["lower"] > e["upper"]:
            continue
        bound, proven = reconcile_bound(e["lower"], e["upper"], p.bound_upper(k, s))
        what = "widened (solver tolerance)" if proven else "not proven: it falls back to the bound before any MILP"
        notes.append(f"output {k} sign {s:+d}: an input with gap {e['lower'] * a:.12g} beats the solver's bound "
                     f"{e['upper'] * a:.12g}; {what}, {bound * a:.12g}")
        e["upper"] = bound
        if not proven:
            e["status"] = EntryStatus.OPEN


def max_output_gap(
    net_a: Network,
    net_b: Network,
    domain,
    *,
    time_limit: Optional[float] = None,
    outputs: Optional[Sequence[int]] = None,
    threshold: Optional[float] = None,
    stop_on_violation: bool = False,
    tol: float = 1e-6,
    bounds_a: Optional[Bounds] = None,
    bounds_b: Optional[Bounds] = None,
    differential: bool = True,
    samples: int = 1000,
    seed: int = 0,
    mip_rel_gap: Optional[float] = None,
    solver_options: Optional[dict] = None,
) -> GapResult:
    """Bound ``max_{x in D} |f_k(x) - g_k(x)|`` for every output k, both signs.

    One MILP per output and sign on the joint encoding of both networks. Without
    ``threshold`` each is solved to optimality (``mip_rel_gap``): ``upper`` is the
    proven maximum, ``lower`` the attained one. With ``threshold`` each only
    decides ``<= threshold + tol`` (cutoff; proven) or ``> threshold`` (first input
    found; then ``upper`` is the bound reached), which is much faster.

    Parameters
    ----------
    net_a, net_b : Network
        Same input and output sizes; any hidden widths.
    domain : Domain or (lower, upper)
    time_limit : float, optional
        Seconds in all; a timed-out MILP keeps its dual bound as ``upper``.
    outputs : sequence of int, optional
        Outputs to examine (default all).
    threshold : float, optional
        Decide each output against this value instead of maximising it.
    stop_on_violation : bool
        With ``threshold``: stop everything at the first verified input above it.
    tol : float
        Numerical tolerance: a cutoff at ``threshold + tol`` proves ``<= threshold + tol``.
    bounds_a, bounds_b : Bounds, optional
        LP bounds of each net on the domain (computed if not given).
    differential : bool
        Use differential bounds (ReluDiff) when both networks have the same widths.
    samples, seed : int
        Random inputs evaluated first (cheap lower bounds and witnesses).
    mip_rel_gap : float, optional
        HiGHS's relative gap for the maximisations (default HiGHS's 1e-4).
    solver_options : dict, optional
        HiGHS options on top of :data:`mipnet.solver.MILP_OPTIONS`.

    Returns
    -------
    GapResult
        On Ctrl-C: the bounds reached, status ``"interrupted"``.

    Examples
    --------
    >>> import numpy as np
    >>> from mipnet import Network, Box
    >>> f = Network([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.zeros(1)])
    >>> g = Network([np.array([[1.0], [-1.0]]), np.array([[1.0, 0.5]])], [np.zeros(2), np.zeros(1)])
    >>> res = max_output_gap(f, g, Box(-2, 2, dim=1))    # |x| vs relu(x) + relu(-x)/2
    >>> round(res.upper, 6), round(res.lower, 6)
    (1.0, 1.0)
    """
    t0 = time.perf_counter()
    domain, outputs, options = _validate_gap(net_a, net_b, domain, outputs, time_limit, threshold, tol, samples,
                                             solver_options)
    check_bounds("bounds_a", bounds_a, net_a)
    check_bounds("bounds_b", bounds_b, net_b)
    try:
        problem = GapProblem.build(net_a, net_b, domain, bounds_a=bounds_a, bounds_b=bounds_b,
                                   differential=differential, samples=samples, seed=seed, options=options,
                                   deadline=deadline_after(time_limit, t0))
    except KeyboardInterrupt:
        lo, hi = interval_gap_bounds(net_a, net_b, domain)
        entries = tuple(OutputGap(k, s, -np.inf, float(hi[k] if s > 0 else -lo[k]), None, EntryStatus.SKIPPED)
                        for k in outputs for s in (1, -1))
        return GapResult(entries, -np.inf, max(e.upper for e in entries), None, time.perf_counter() - t0, 0,
                         Status.INTERRUPTED, "interrupted (Ctrl-C) while computing bounds; upper from interval "
                         "bounds", threshold, float(tol), False, ())
    return gap_search(problem, outputs=outputs, threshold=threshold, stop_on_violation=stop_on_violation,
                      tol=float(tol), deadline=deadline_after(time_limit, t0), mip_rel_gap=mip_rel_gap, start=t0)



# ---------------------------------------------------------------------------- top-1
def top1_margin(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """Disagreement margin ``min(f_c - max_{j != c} f_j, max_{k != c} g_k - g_c)``, ``c = argmax f``.

    Positive exactly where both argmaxes are unique and differ (a strict
    top-1 disagreement); rows of ``fa``, ``fb`` are inputs.
    """
    fa, fb = np.atleast_2d(fa), np.atleast_2d(fb)
    n, m = fa.shape
    r = np.arange(n)
    c = np.argmax(fa, axis=1)
    fa_other = fa.copy()
    fa_other[r, c] = -np.inf
    fb_other = fb.copy()
    fb_other[r, c] = -np.inf
    return np.minimum(fa[r, c] - fa_other.max(axis=1), fb_other.max(axis=1) - fb[r, c])


def _top1_rows(pair: GapProblem, strategy: str) -> dict:
    """Switchable rows for the top-1 MILPs, added once to the joint model.

    ``F[c, j]``: ``f_c - f_j - t >= 0``. Strategy ``pair``: ``G[c, k]``:
    ``g_k - g_c - t >= 0``. Strategy ``class``: binaries ``s[c, k]`` (fixed to 0 until
    used) choosing which k beats c, ``g_k - g_c - t - M s_k >= -M`` and
    ``sum_k s[c, k] = 1``; ``M = T_c - min(g_k - g_c)`` with ``T_c = min_j max(f_c - f_j)``.
    Rows start switched off (bounds -inf..inf).
    """
    joint = pair.joint
    model = joint.model
    m = pair.net_a.output_dim
    A, B = pair.bounds_a.output, pair.bounds_b.output
    fo, go = joint.va.output_cols, joint.vb.output_cols
    t_col = int(model.add_cols([-INF], [INF])[0])
    s_cols = {}
    if strategy == "class":
        S = model.add_binaries(m * (m - 1))
        model.change_col_bounds(S, 0.0, 0.0)
        it = iter(S)
        for c in range(m):
            for k in range(m):
                if k != c:
                    s_cols[(c, k)] = int(next(it))
    rows0 = model.num_rows
    rr, cc, vv, index = [], [], [], {}
    r = 0

    def row(key, cols, vals):
        nonlocal r
        rr.extend([r] * len(cols))
        cc.extend(cols)
        vv.extend(vals)
        index[key] = rows0 + r
        r += 1

    big_m = {}
    for c in range(m):
        T_c = float(np.min(np.delete(A.upper[c] - A.lower, c)))
        for j in range(m):
            if j != c:
                row(("F", c, j), [fo[c], fo[j], t_col], [1.0, -1.0, -1.0])
        for k in range(m):
            if k == c:
                continue
            if strategy == "pair":
                row(("G", c, k), [go[k], go[c], t_col], [1.0, -1.0, -1.0])
            else:
                M = max(0.0, T_c - (B.lower[k] - B.upper[c]))
                M = M + 1e-9 * (1 + M)
                big_m[(c, k)] = M
                row(("G", c, k), [go[k], go[c], t_col, s_cols[(c, k)]], [1.0, -1.0, -1.0, -M])
        if strategy == "class":
            row(("S", c), [s_cols[(c, k)] for k in range(m) if k != c], [1.0] * (m - 1))
    model.add_rows(np.full(r, -INF), np.full(r, INF), sp.csr_matrix((vv, (rr, cc)), shape=(r, model.num_cols)))
    return dict(index=index, t=t_col, s=s_cols, big_m=big_m, strategy=strategy)


def _top1_switch(pair: GapProblem, rows: dict, c: int, ks, on: bool) -> None:
    model = pair.joint.model
    m = pair.net_a.output_dim
    index = rows["index"]
    f_rows = np.array([index[("F", c, j)] for j in range(m) if j != c], dtype=np.int32)
    g_rows = np.array([index[("G", c, k)] for k in ks], dtype=np.int32)
    model.change_row_bounds(f_rows, 0.0 if on else -INF, INF)
    if rows["strategy"] == "pair":
        model.change_row_bounds(g_rows, 0.0 if on else -INF, INF)
        return
    M = np.array([rows["big_m"][(c, k)] for k in ks])
    model.change_row_bounds(g_rows, -M if on else -INF, INF)
    s = np.array([rows["s"][(c, k)] for k in ks], dtype=np.int64)
    model.change_col_bounds(s, 0.0, 1.0 if on else 0.0)
    model.change_row_bounds([index[("S", c)]], 1.0 if on else -INF, 1.0 if on else INF)


class _FirstClassScreen:
    """A MILP over ``net_a`` alone: can f rank class c first with margin >= tol?"""

    def __init__(self, pair: GapProblem) -> None:
        from mipnet.milp.encoding import HighsModel

        self.model = HighsModel(pair.domain, options=pair.options)
        nva = self.model.add_network(pair.net_a, pair.bounds_a)
        self.m = m = pair.net_a.output_dim
        self.t = int(self.model.add_cols([-INF], [INF])[0])
        self.rows0 = self.model.num_rows
        rr, cc, vv = [], [], []
        r = 0
        for c in range(m):
            for j in range(m):
                if j != c:  # f_c - f_j - t >= 0, switched on per class
                    rr += [r, r, r]
                    cc += [nva.output_cols[c], nva.output_cols[j], self.t]
                    vv += [1.0, -1.0, -1.0]
                    r += 1
        self.model.add_rows(np.full(r, -INF), np.full(r, INF),
                            sp.csr_matrix((vv, (rr, cc)), shape=(r, self.model.num_cols)))

    def solve(self, c: int, tol: float, time_limit):
        """``(result, interrupted)`` of the question for class c (see :func:`solve_or_partial`)."""
        m = self.m
        idx = np.arange(self.rows0 + c * (m - 1), self.rows0 + (c + 1) * (m - 1), dtype=np.int32)
        self.model.change_row_bounds(idx, 0.0, INF)
        self.model.set_objective([self.t], [1.0], maximize=True)
        try:
            return solve_or_partial(self.model, cutoff=tol, target=tol, time_limit=time_limit)
        finally:
            self.model.change_row_bounds(idx, -INF, INF)


def top1_milps(pair: GapProblem, deadline, tol: float, notes: list, strategy: str = "pair") -> dict:
    """Top-1 search: per class c (``strategy="class"``, one MILP choosing k by binaries)
    or per pair (c, k) (``"pair"``); both maximise the margin t (see module docstring).

    In the problem's units (``tol`` too). On Ctrl-C the search stops with ``interrupted`` set and
    ``upper`` infinite (the pairs not examined have no bound), unless the interrupted MILP's
    incumbent is a verified counterexample.
    """
    out = dict(lower=-np.inf, upper=np.inf, witness=None, pairs=[], num_milps=0, timed_out=False,
               interrupted=False)
    try:
        _top1_search(pair, deadline, tol, notes, strategy, out)
    except KeyboardInterrupt:
        out["interrupted"] = True
    if out["interrupted"] and out["witness"] is None:
        out["upper"] = np.inf
    return out


def _top1_search(pair: GapProblem, deadline, tol: float, notes: list, strategy: str, out: dict) -> None:
    net_a, net_b, domain = pair.net_a, pair.net_b, pair.domain
    m = net_a.output_dim
    if len(pair.X):
        tm = top1_margin(pair.FA, pair.FB)
        j = int(np.argmax(tm))
        out["lower"] = float(tm[j])
        if tm[j] > 0:
            out["witness"] = pair.X[j].copy()
            return
    A, B = pair.bounds_a.output, pair.bounds_b.output
    counts = np.bincount(np.argmax(pair.FA, axis=1), minlength=m) if len(pair.X) else np.zeros(m)
    classes = [int(c) for c in np.argsort(-counts, kind="stable")]
    first = np.argmax(pair.FA, axis=1) if len(pair.X) else np.zeros(0, dtype=int)
    rows = None
    upper = float(tol)
    screen = None
    for c in classes:
        if np.any(np.delete(A.lower, c) > A.upper[c]):
            out["pairs"].append(dict(c=c, k=None, status=EntryStatus.NEVER_FIRST, upper=None, seconds=0.0))
            continue
        if counts[c] == 0:
            # no sample has argmax f = c: ask a small MILP over f alone whether f can rank c first
            if deadline is not None and time.perf_counter() >= deadline:
                out["timed_out"] = True
                out["pairs"].append(dict(c=c, k=None, status=EntryStatus.TIME_LIMIT, upper=None, seconds=0.0))
                upper = np.inf
                continue
            if screen is None:
                screen = _FirstClassScreen(pair)
            res, stopped = screen.solve(c, tol, remaining(deadline))
            out["interrupted"] |= stopped
            out["num_milps"] += 1
            if res.status == "infeasible":
                out["pairs"].append(dict(c=c, k=None, status=EntryStatus.NEVER_FIRST, upper=tol,
                                         seconds=res.seconds))
                continue
            if out["interrupted"]:
                out["pairs"].append(dict(c=c, k=None, status=EntryStatus.INTERRUPTED, upper=None,
                                         seconds=res.seconds))
                return
            if res.status == "time_limit" and not res.has_solution:
                out["timed_out"] = True
                out["pairs"].append(dict(c=c, k=None, status=EntryStatus.TIME_LIMIT, upper=None,
                                         seconds=res.seconds))
                upper = np.inf
                continue
        ks = [k for k in range(m) if k != c and B.upper[k] - B.lower[c] >= tol]
        if not ks:  # no logit of g can beat g_c by tol anywhere
            out["pairs"].append(dict(c=c, k=None, status=EntryStatus.BOUNDS, upper=None, seconds=0.0))
            continue
        sel = first == c
        score = {k: float(np.max(pair.FB[sel, k] - pair.FB[sel, c])) if sel.any() else 0.0 for k in ks}
        ks.sort(key=lambda k: -score[k])
        subproblems = [ks] if strategy == "class" else [[k] for k in ks]
        if rows is None:
            rows = _top1_rows(pair, strategy)
        model = pair.joint.model
        for K in subproblems:
            label = dict(c=c, k=K[0] if len(K) == 1 else None)
            if deadline is not None and time.perf_counter() >= deadline:
                out["timed_out"] = True
                out["pairs"].append(dict(label, status=EntryStatus.TIME_LIMIT, upper=None, seconds=0.0))
                upper = np.inf
                continue
            _top1_switch(pair, rows, c, K, True)
            model.set_objective([rows["t"]], [1.0], maximize=True)
            entry = dict(label, status="", upper=None, seconds=0.0)
            found = None
            for attempt in range(2):
                # first stop at any input with margin >= tol; if it does not verify, maximise t properly
                res, stopped = solve_or_partial(model, cutoff=tol, target=tol if attempt == 0 else None,
                                                time_limit=remaining(deadline))
                out["interrupted"] |= stopped
                out["num_milps"] += 1
                entry["seconds"] += res.seconds
                if res.has_solution:
                    x = witness_from_solution(res.values, model.input_cols, domain)
                    if x is not None:
                        tmx = float(top1_margin(net_a.forward(x), net_b.forward(x))[0])
                        out["lower"] = max(out["lower"], tmx)
                        if tmx > 0:
                            found = x
                if found is not None or res.status != "objective_target" or out["interrupted"]:
                    break
                notes.append(f"class {c}: the solver's input with margin >= tol did not verify in float64; "
                             "maximising the margin")
            _top1_switch(pair, rows, c, K, False)
            if found is not None:
                entry["status"] = EntryStatus.COUNTEREXAMPLE
                out["pairs"].append(entry)
                out["witness"] = found
                return
            if res.status == "infeasible":
                entry.update(status=EntryStatus.PROVEN, upper=tol)
            else:
                db = res.dual_bound
                ub = max(db, tol) if db is not None and math.isfinite(db) else np.inf
                entry.update(status=res.status, upper=ub)
                upper = max(upper, ub)
                if res.status == "optimal" and ub <= tol:
                    entry["status"] = EntryStatus.PROVEN
                elif res.status == "time_limit":
                    out["timed_out"] = True
                elif res.status == "interrupted":
                    entry["status"] = EntryStatus.INTERRUPTED
                elif res.status != "optimal":
                    notes.append(f"class {c}: solver status {res.highs_status}")
            out["pairs"].append(entry)
            if out["interrupted"]:
                return
    out["upper"] = upper


# ---------------------------------------------------------------------------- L1 epsilon
def l1_milps(pair: GapProblem, eps: float, deadline, tol: float, notes: list) -> dict:
    """max sum_k |f_k - g_k| with cutoff eps + tol: one binary per output whose sign is open (problem units)."""
    D = pair.FA - pair.FB
    m = pair.d_lo.size
    before = float(np.sum(np.maximum(np.abs(pair.d_lo), np.abs(pair.d_hi)))) * (1.0 + 2.0 * gamma(m))
    out = dict(lower=-np.inf, upper=before, witness=None, num_milps=0, timed_out=False, interrupted=False,
               status=EntryStatus.BOUNDS)
    if len(D):
        g = np.abs(D).sum(axis=1)
        j = int(np.argmax(g))
        out["lower"], out["witness"] = float(g[j]), pair.X[j].copy()
        if g[j] > eps:
            out["status"] = EntryStatus.EXCEEDED
            return out
    out["witness"] = None
    if out["upper"] <= eps + tol:
        return out
    try:
        _l1_milp(pair, eps, deadline, tol, notes, out)
    except KeyboardInterrupt:
        out["interrupted"] = True
        out["status"] = EntryStatus.INTERRUPTED
    return out


def _l1_milp(pair: GapProblem, eps: float, deadline, tol: float, notes: list, out: dict) -> None:
    joint = pair.joint
    model = joint.model
    dlo, dhi = pair.d_lo, pair.d_hi
    m = dlo.size
    fo, go = joint.va.output_cols, joint.vb.output_cols
    dcol = model.add_cols(dlo, dhi)
    acol = model.add_cols(np.zeros(m), np.maximum(np.abs(dlo), np.abs(dhi)))
    r = np.arange(m)
    one = np.ones(m)
    # d - f + g = 0 ; a - d >= 0 ; a + d >= 0
    A = sp.csr_matrix((np.concatenate([one, -one, one, one, -one, one, one]),
                       (np.concatenate([r, r, r, m + r, m + r, 2 * m + r, 2 * m + r]),
                        np.concatenate([dcol, fo, go, acol, dcol, acol, dcol]))), shape=(3 * m, model.num_cols))
    model.add_rows(np.concatenate([np.zeros(m), np.zeros(2 * m)]), np.concatenate([np.zeros(m), np.full(2 * m, INF)]), A)
    open_ = np.flatnonzero((dlo < 0) & (dhi > 0))
    if open_.size:
        # s = 1: a <= d + 2 (-dlo) (1 - s) ;  s = 0: a <= -d + 2 dhi s
        k = open_.size
        s = model.add_binaries(k)
        rk = np.arange(k)
        M1, M2 = -2 * dlo[open_], 2 * dhi[open_]
        one = np.ones(k)
        A = sp.csr_matrix((np.concatenate([one, -one, M1, one, one, -M2]),
                           (np.concatenate([rk, rk, rk, k + rk, k + rk, k + rk]),
                            np.concatenate([acol[open_], dcol[open_], s, acol[open_], dcol[open_], s]))),
                          shape=(2 * k, model.num_cols))
        model.add_rows(np.full(2 * k, -INF), np.concatenate([M1, np.zeros(k)]), A)
    closed = np.setdiff1d(r, open_)
    if closed.size:  # sign known: a = |d| exactly
        sgn = np.where(dlo[closed] >= 0, 1.0, -1.0)
        kc = closed.size
        rc = np.arange(kc)
        A = sp.csr_matrix((np.concatenate([np.ones(kc), -sgn]), (np.concatenate([rc, rc]),
                           np.concatenate([acol[closed], dcol[closed]]))), shape=(kc, model.num_cols))
        model.add_rows(np.zeros(kc), np.zeros(kc), A)
    model.set_objective(acol, 1.0, maximize=True)
    cut = eps + tol
    res, stopped = solve_or_partial(model, cutoff=cut, target=cut, time_limit=remaining(deadline))
    out["interrupted"] |= stopped
    out["num_milps"] = 1
    if res.has_solution:
        x = witness_from_solution(res.values, model.input_cols, pair.domain)
        if x is not None:
            val = float(np.abs(pair.net_a.forward(x) - pair.net_b.forward(x)).sum())
            if val > out["lower"]:
                out["lower"] = val
            if val > eps:
                out["witness"] = x
                out["status"] = EntryStatus.EXCEEDED
                return
    if res.status == "infeasible":
        out["upper"], out["status"] = min(out["upper"], cut), EntryStatus.CUTOFF
        return
    db = res.dual_bound
    if db is not None and math.isfinite(db):
        out["upper"] = min(out["upper"], max(db, cut))
    out["status"] = EntryStatus.INTERRUPTED if out["interrupted"] else res.status
    out["timed_out"] = res.status == "time_limit"
    if res.status == "objective_target":
        notes.append("the solver's input above eps did not verify in float64 (numerical tolerance)")


# ---------------------------------------------------------------------------- MILP hooks of the properties
def l1_search(problem: GapProblem, eps: float, tol: float, deadline, notes: list):
    """The L1 MILP on a built problem: ``(lower, upper, witness, num_milps)`` in the original units
    (the :meth:`~mipnet.analyses.properties.Property.milp` hook)."""
    from mipnet.core.errors import Interrupted

    a = problem.scaling.output_scale
    r = l1_milps(problem, eps / a, deadline, problem.scaling.margin(tol), notes)
    if r["interrupted"]:
        raise Interrupted("interrupted during a leaf MILP")
    wit = problem.scaling.to_input(r["witness"]) if r["status"] == EntryStatus.EXCEEDED else None
    return r["lower"] * a, r["upper"] * a, wit, r["num_milps"]


def top1_search(problem: GapProblem, tol: float, deadline, notes: list):
    """The top-1 MILPs on a built problem: ``(lower, upper, witness, num_milps)`` in the original units."""
    from mipnet.core.errors import Interrupted

    a = problem.scaling.output_scale
    r = top1_milps(problem, deadline, problem.scaling.margin(tol), notes, strategy="pair")
    if r["interrupted"]:
        raise Interrupted("interrupted during a leaf MILP")
    upper = r["upper"] * a
    return r["lower"] * a, upper, problem.scaling.to_input(r["witness"]), r["num_milps"]
