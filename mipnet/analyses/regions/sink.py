"""Where every counting method puts its regions: the witness check, repairs and duplicates.

A method proposes ``(u, pattern)``: a point (normalised coordinates) claimed to lie in the
interior of the region of ``pattern``. The sink lifts the points to the original inputs
and checks them in batches with :func:`mipnet.core.numerics.check_witnesses` (in the
domain, snapped pattern equal to the pattern, interior). A point that fails is *repaired*:
the certified Chebyshev LP of the pattern (:mod:`.chebyshev`) either gives a new centre,
checked again, or proves that the pattern has no interior (the candidate is *rejected*:
not a region), or cannot decide (the candidate stays *unverified*). Only verified,
distinct patterns are counted; a count with any unverified candidate is not exact.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mipnet.core.numerics import check_witnesses
from mipnet.parallel import report_progress

from .chebyshev import ChebyshevLP, Decision
from .common import packed_keys
from .problem import EPS, Problem, layer_maps

__all__ = ["Sink", "pattern_rows", "PatternLP"]

log = logging.getLogger("mipnet.analyses.regions")

_CHUNK = 4096


@dataclass(frozen=True, eq=False)
class PatternRows:
    """Rows ``A u + t <= b`` of the region of a pattern (normalised coordinates), one per neuron
    whose map depends on ``u``: ``A = -side a``, ``b = side c`` for the neuron's unit-normal
    pre-activation ``a . u + c``; error bounds ``ea`` (normal) and ``eb`` (offset); ``neuron``:
    the hidden neuron of each row; ``ok`` False if a constant neuron contradicts the pattern."""

    A: np.ndarray
    b: np.ndarray
    ea: np.ndarray
    eb: np.ndarray
    neuron: np.ndarray
    side: np.ndarray
    ok: bool

    def plane(self, k: int):
        """``(a, c)``: the unit-normal pre-activation of row k (sign-free)."""
        return -self.side[k] * self.A[k], self.side[k] * self.b[k]


def pattern_rows(prob: Problem, pattern: np.ndarray) -> PatternRows:
    """The rows of the region of ``pattern`` (:class:`PatternRows`)."""
    net = prob.rnet
    n = prob.n
    noise = prob.tol.noise
    A, c = np.eye(n), np.zeros(n)
    M, m = np.eye(n), np.zeros(n)
    on = np.ones(n)
    off = net.hidden_offsets
    parts = []
    ok = True
    for l in range(net.num_hidden_layers):
        W, b = net.layers[l]
        A, c, M, m, Au, cu, ea, eb, const = layer_maps(W, b, on, A, c, M, m, noise, layer_rho(prob, l))
        p = np.asarray(pattern[off[l]:off[l + 1]], dtype=bool)
        if np.any(const & (p != (c > 0))):
            ok = False
        keep = np.flatnonzero(~const)
        s = np.where(p, 1.0, -1.0)[keep]
        parts.append((-s[:, None] * Au[keep], s * cu[keep], ea[keep], eb[keep], off[l] + keep, s))
        on = p.astype(np.float64)
    if not parts:
        z = np.zeros(0)
        return PatternRows(np.zeros((0, n)), z, z, z, np.zeros(0, dtype=np.int64), z, ok)
    return PatternRows(*(np.concatenate([q[i] for q in parts]) if i else np.vstack([q[0] for q in parts])
                         for i in range(6)), ok)


def layer_rho(prob: Problem, l: int) -> float:
    """Relative rounding error of the composed map of hidden layer ``l`` (0-based).

    The map ``W^l diag(on) ... W^1`` is a product of dot products: its error is at most
    ``gamma * |W^l| ... |W^1|`` (the magnitudes :func:`.problem.layer_maps` carries) with
    ``gamma`` about the unit roundoff times the summed fan-ins of layers 2..l, plus the
    normalisation to a unit normal; doubled for safety.
    """
    w = prob.rnet.widths
    fan = sum(w[k] for k in range(1, l + 1))  # fan-ins of layers 2 .. l + 1
    return 4 * EPS * (2 + fan)


class PatternLP:
    """Certified Chebyshev LPs of whole patterns (repairs, closure checks, facets), one HiGHS model."""

    def __init__(self, prob: Problem) -> None:
        self.prob = prob
        self._lp: Optional[ChebyshevLP] = None

    @property
    def lp(self) -> ChebyshevLP:
        if self._lp is None:
            self._lp = ChebyshevLP(self.prob)
        return self._lp

    @property
    def solves(self) -> int:
        return 0 if self._lp is None else self._lp.solves

    def floor(self) -> float:
        return self.prob.geo * (1.0 + self.prob.radius)

    def decide(self, pattern: np.ndarray, rows: Optional[PatternRows] = None):
        """``(Decision, u, t_lo)`` for the region of ``pattern``."""
        R = rows if rows is not None else pattern_rows(self.prob, pattern)
        if not R.ok:
            return Decision.EMPTY, None, -np.inf
        lp = self.lp
        lp.truncate(lp.base)
        lp.push_many(R.A, R.b, R.ea, R.eb)
        try:
            return lp.decide(self.floor())
        finally:
            lp.truncate(lp.base)

    def facet(self, rows: PatternRows, k: int, *, coincide: float = 1e-13):
        """The largest ball inside the hyperplane of row k keeping every other row's sign.

        Rows whose hyperplane coincides with row k's (same unit normal and offset up to
        sign, within ``coincide``, a rounding error of the normalised rows: duplicated, opposite or
        -- on this region -- equal neurons; a near-duplicate 1e-12 away is a different hyperplane
        of later layers) are left out: they change sign across the facet together with k.
        Returns ``(u, t)`` (solver values; ``u`` None when the LP is infeasible).
        """
        a, c = rows.plane(k)
        P = -rows.side[:, None] * rows.A
        q = rows.side * rows.b
        same = np.all(np.abs(P - a) <= coincide, axis=1) & (np.abs(q - c) <= coincide)
        opp = np.all(np.abs(P + a) <= coincide, axis=1) & (np.abs(q + c) <= coincide)
        keep = ~(same | opp)
        lp = self.lp
        lp.truncate(lp.base)
        lp.push_many(rows.A[keep], rows.b[keep], rows.ea[keep], rows.eb[keep])
        r = lp.model.add_row(-c, -c, lp.ucols.astype(np.int32), a)
        try:
            u, t, _ = lp.solve_raw()
        finally:
            lp.model.truncate_rows(r)
            lp.truncate(lp.base)
        return u, t


class Sink:
    """Collects candidate regions, certifies them in batches, keeps them if asked."""

    def __init__(self, prob: Problem, *, keep: bool, max_regions: Optional[int], progress: bool,
                 pattern_lp: PatternLP) -> None:
        self.prob = prob
        self.keep = keep
        self.max_regions = max_regions
        self.keys: set = set()
        self.verified = 0
        self.unverified = 0
        self.rejected = 0
        self.repaired = 0
        self.duplicates = 0
        self._bu: list = []
        self._bp: list = []
        self.points: list = []
        self.patterns: list = []
        self.pattern_lp = pattern_lp
        self.repair = True
        self.keep_patterns = False  # keep the verified patterns even without ``keep`` (closure checks)
        self._bar = None
        if progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=max_regions, unit="region", desc="regions", file=sys.stderr,
                             mininterval=0.5, smoothing=0.1)
        self._shown = 0

    @property
    def count(self) -> int:
        """Verified distinct regions so far."""
        return self.verified

    @property
    def pending(self) -> int:
        return len(self._bu)

    @property
    def full(self) -> bool:
        return self.max_regions is not None and self.verified >= self.max_regions

    def add(self, u: np.ndarray, pattern: np.ndarray) -> None:
        self._bu.append(u)
        self._bp.append(pattern)
        if len(self._bu) >= _CHUNK or (
            self.max_regions is not None and self.verified + len(self._bu) >= self.max_regions
        ):
            self.flush()

    def tick(self) -> None:
        report_progress(regions=self.verified)  # a work unit of a parallel count: to the run's bar
        if self._bar is not None and self.verified > self._shown:
            self._bar.update(self.verified - self._shown)
            self._shown = self.verified

    def check(self, U: np.ndarray, P: np.ndarray) -> np.ndarray:
        X = self.prob.lift(U)
        return check_witnesses(self.prob.net, self.prob.domain, X, P, strict=True, tol=self.prob.tol)

    def flush(self, *, deadline: float = float("inf")) -> None:
        """Check the pending candidates; repair failures (until ``deadline``); count the verified."""
        if not self._bu:
            return
        U = np.array(self._bu)
        P = np.array(self._bp, dtype=bool).reshape(len(self._bu), -1)
        self._bu, self._bp = [], []
        ok = self.check(U, P)
        for i in np.flatnonzero(~ok):
            if not self.repair or time.perf_counter() > deadline:
                self.unverified += 1
                continue
            dec, u, t = self.pattern_lp.decide(P[i])
            if dec is Decision.FULL and self.check(u[None, :], P[i:i + 1])[0]:
                U[i] = u
                ok[i] = True
                self.repaired += 1
            elif dec is Decision.EMPTY:
                self.rejected += 1
            else:
                self.unverified += 1
        if not ok.any():
            self.tick()
            return
        idx = np.flatnonzero(ok)
        keys = packed_keys(P[idx])
        fresh = []
        for i, k in zip(idx, keys):
            if k in self.keys:
                self.duplicates += 1
                continue
            if self.max_regions is not None and self.verified >= self.max_regions:
                break
            self.keys.add(k)
            self.verified += 1
            fresh.append(i)
        if self.duplicates:
            log.debug("%d duplicate patterns dropped", self.duplicates)
        if fresh and (self.keep or self.keep_patterns):
            fresh = np.asarray(fresh)
            if self.keep:
                self.points.append(self.prob.lift(U[fresh]))
            self.patterns.append(P[fresh])
        self.tick()

    def close(self, **kw) -> None:
        self.flush(**kw)
        if self._bar is not None:
            self.tick()
            self._bar.close()

    def pattern_array(self) -> np.ndarray:
        N = self.prob.net.num_hidden_neurons
        return np.concatenate(self.patterns) if self.patterns else np.zeros((0, N), dtype=bool)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        n0 = self.prob.net.input_dim
        N = self.prob.net.num_hidden_neurons
        X = np.concatenate(self.points) if self.points else np.zeros((0, n0))
        P = np.concatenate(self.patterns) if self.patterns else np.zeros((0, N), dtype=bool)
        return X, P
