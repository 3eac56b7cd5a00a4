"""Certified Chebyshev balls of polytopes: the one LP that decides "does this cell have interior?".

A cell is ``{u in box : a_k . u <= beta_k}`` with unit normals ``a_k`` (rows known up to
absolute errors ``ea_k`` of the normal and ``eb_k`` of the offset). Its Chebyshev LP is

    max t   s.t.   a_k . u + t <= beta_k,   lower <= u <= upper.

HiGHS solves it to its tolerances (about 1e-10 here); the answer is then *certified* in
float64, so that a decision never rests on a solver tolerance:

* lower bound: at the solver's point ``u`` (clipped to the box), ``t_lo = min_k (beta_k -
  a_k . u - err_k(u))`` where ``err_k(u) = ea_k |u| + eb_k`` plus rounding: a ball of radius
  ``t_lo`` around ``u`` lies in the cell (when ``t_lo > 0``);
* upper bound: any ``y >= 0`` gives ``t sum(y) <= sum(y beta) - (sum y a) . u`` for every
  feasible ``(u, t)``; the worst ``u`` of the box bounds the last term, so
  ``t_hi = (sum(y beta) + max_box(-(sum y a) . u) + sum(y err)) / sum(y)`` bounds the radius
  of every ball in the cell. ``y`` are the solver's row duals, polished by a least-squares
  step on their support so that ``sum y a`` is exactly 0 where it should be (two opposite
  rows of duplicated neurons certify ``t_hi = 0``);
* polish of the primal point: the square system of the active rows, solved in float64.

:meth:`ChebyshevLP.decide` returns ``FULL`` (a certified ball of radius above the floor),
``EMPTY`` (certified: no ball of radius above the floor) or ``AMBIGUOUS`` (neither could be
certified: the cell is at the resolution limit; callers then withdraw "exact").
"""

from __future__ import annotations

import enum
from typing import Optional

import numpy as np

from mipnet.core.errors import SolverError

from .problem import EPS, Problem

__all__ = ["Decision", "ChebyshevLP", "certified_upper", "LP_OPTIONS"]

#: HiGHS options of the Chebyshev LPs: tiny LPs re-solved from a warm basis (no presolve),
#: at HiGHS's tightest feasibility tolerances (on one thread, like every model: mipnet.solver.highs).
LP_OPTIONS = {
    "presolve": "off",
    "primal_feasibility_tolerance": 1e-10,
    "dual_feasibility_tolerance": 1e-10,
}

_INF = float("inf")
#: a solver optimum below this (normalised units) is empty beyond any tolerance: no certificate needed
_CLEARLY_EMPTY = -1e-6


class Decision(enum.Enum):
    FULL = "full"
    EMPTY = "empty"
    AMBIGUOUS = "ambiguous"


def certified_upper(A, beta, ea, eb, lower, upper, y) -> float:
    """Upper bound on the radius of any ball in the cell from multipliers ``y >= 0`` (module docstring)."""
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    Y = float(y.sum())
    if not (Y > 0) or not np.isfinite(Y):
        return _INF
    g = y @ A
    worst = float(np.sum(np.maximum(-g * lower, -g * upper)))
    R = float(np.linalg.norm(np.maximum(np.abs(lower), np.abs(upper))))
    num = float(y @ beta) + worst + float(y @ (ea * R + eb))
    slack = 8 * EPS * (float(y @ np.abs(beta)) + float(np.abs(g) @ np.maximum(np.abs(lower), np.abs(upper))) + Y)
    return (num + slack) / Y


class ChebyshevLP:
    """One HiGHS LP over ``(u, t)`` whose rows can be pushed and truncated (a depth-first search).

    The box rows ``+-u_j + t <= ...`` and the domain's rows come first (``base`` of them).
    """

    def __init__(self, prob: Problem, *, tmax: Optional[float] = None) -> None:
        from mipnet.solver.highs import LinearModel

        self.prob = prob
        n = prob.n
        self.n = n
        self.model = LinearModel(options=LP_OPTIONS, interruptible=False)
        self.ucols = self.model.add_cols(prob.lower, prob.upper)
        tm = float(tmax) if tmax is not None else 2.0 * max(prob.radius, 1.0)
        self.tcol = self.model.add_cols(np.array([-_INF]), np.array([tm]))
        self.tmax = tm
        self.cols32 = np.concatenate([self.ucols, self.tcol]).astype(np.int32)
        I = np.eye(n)
        rows = [I, -I]
        beta = [prob.upper, -prob.lower]
        if prob.A is not None:
            rows.append(prob.A)
            beta.append(prob.c)
        A0 = np.vstack(rows)
        b0 = np.concatenate(beta)
        e0 = np.zeros(A0.shape[0])
        if prob.A is not None:
            e0[2 * n:] = 2 * EPS
        self.model.add_rows(np.full(A0.shape[0], -_INF), b0, np.hstack([A0, np.ones((A0.shape[0], 1))]),
                            cols=self.cols32)
        self.model.set_objective(self.tcol, [1.0], maximize=True)
        # a copy of the rows in numpy (capacity doubles as needed) for the certificates
        cap = max(64, 2 * A0.shape[0])
        self._A = np.zeros((cap, n))
        self._b = np.zeros(cap)
        self._ea = np.zeros(cap)
        self._eb = np.zeros(cap)
        # per-row terms of certified_lower, kept with the rows: ea + c and eb + c |beta|
        # (c bounds the rounding of the n-term products a . u)
        self._c = 4 * EPS * max(1, n)
        self._eac = np.zeros(cap)
        self._ebc = np.zeros(cap)
        self._k = 0
        self._row = np.ones(n + 1)
        self._append(A0, b0, e0, e0 * np.abs(b0))
        self.base = self._k
        self.solves = 0

    @property
    def nrows(self) -> int:
        return self._k

    # ---------------------------------------------------------------- rows
    def _reserve(self, m: int) -> None:
        k = self._k
        if k + m > len(self._b):
            cap = max(2 * len(self._b), k + m)
            for name in ("_A", "_b", "_ea", "_eb", "_eac", "_ebc"):
                old = getattr(self, name)
                new = np.zeros((cap,) + old.shape[1:])
                new[:k] = old[:k]
                setattr(self, name, new)

    def _append(self, A, b, ea, eb) -> None:
        m = len(b)
        self._reserve(m)
        k = self._k
        self._A[k:k + m] = A
        self._b[k:k + m] = b
        self._ea[k:k + m] = ea
        self._eb[k:k + m] = eb
        self._eac[k:k + m] = self._ea[k:k + m] + self._c
        self._ebc[k:k + m] = self._eb[k:k + m] + self._c * np.abs(self._b[k:k + m])
        self._k = k + m

    def push(self, a: np.ndarray, beta: float, ea: float = 0.0, eb: float = 0.0) -> None:
        """Add the row ``a . u + t <= beta`` (unit ``a``) with error bounds ``ea`` (normal) and ``eb``."""
        self._row[:-1] = a
        self.model.add_row(-_INF, float(beta), self.cols32, self._row)
        self._reserve(1)
        k = self._k
        self._A[k] = a
        self._b[k] = beta
        self._ea[k] = ea
        self._eb[k] = eb
        self._eac[k] = ea + self._c
        self._ebc[k] = eb + self._c * abs(beta)
        self._k = k + 1

    def push_many(self, A: np.ndarray, beta: np.ndarray, ea: np.ndarray, eb: np.ndarray) -> None:
        if len(beta) == 0:
            return
        self.model.add_rows(np.full(len(beta), -_INF), beta, np.hstack([A, np.ones((len(beta), 1))]),
                            cols=self.cols32)
        self._append(A, beta, np.broadcast_to(ea, beta.shape), np.broadcast_to(eb, beta.shape))

    def truncate(self, k: int) -> None:
        if self._k > k:
            self.model.truncate_rows(k)
            self._k = k

    def arrays(self):
        k = self._k
        return self._A[:k], self._b[:k], self._ea[:k], self._eb[:k]

    # ---------------------------------------------------------------- solving
    def solve_raw(self):
        """HiGHS's ``(u, t, row_duals)``; ``(None, -inf, None)`` if infeasible."""
        res = self.model.solve()
        self.solves += 1
        if res.status == "infeasible":
            return None, -_INF, None
        if res.status != "optimal":
            raise SolverError(f"Chebyshev LP ended with status {res.highs_status}")
        v = res.values
        u = np.minimum(np.maximum(v[:self.n], self.prob.lower), self.prob.upper)  # the u columns come first
        return u, float(v[self.n]), None

    def certified_lower(self, u: np.ndarray) -> float:
        """Radius of a ball around ``u`` inside every row of the cell (module docstring): the least
        ``beta_k - a_k . u - (ea_k + c) |u| - (eb_k + c |beta_k|)``, sound up to float64 rounding of
        this formula; the per-row terms are kept with the rows."""
        k = self._k
        if k == 0:
            return _INF
        un = float(np.sqrt(u @ u))
        res = self._b[:k] - self._A[:k] @ u
        res -= self._eac[:k] * un
        res -= self._ebc[:k]
        return float(res.min())

    def _duals(self) -> np.ndarray:
        sol = self.model.highs.getSolution()
        return np.asarray(sol.row_dual, dtype=np.float64)

    def decide(self, floor: float):
        """``(Decision, u, t_lo)``: is there a ball of radius > ``floor`` in the cell? (module docstring)"""
        u, t, _ = self.solve_raw()
        if u is None:
            return Decision.EMPTY, None, -_INF
        t_lo = min(self.certified_lower(u), self.tmax)
        if t_lo > floor:
            return Decision.FULL, u, t_lo
        if t < _CLEARLY_EMPTY:
            return Decision.EMPTY, None, t_lo
        A, b, ea, eb = self.arrays()
        # certify emptiness with the (polished) duals
        lo, hi = self.prob.lower, self.prob.upper
        d = self._duals()
        best = _INF
        for y0 in (np.maximum(d, 0.0), np.maximum(-d, 0.0)):
            if not y0.any():
                continue
            best = min(best, certified_upper(A, b, ea, eb, lo, hi, y0))
            y1 = _polish_duals(A, y0)
            if y1 is not None:
                best = min(best, certified_upper(A, b, ea, eb, lo, hi, y1))
        if best <= floor:
            return Decision.EMPTY, None, t_lo
        # polish the primal point on the active rows
        u2 = _polish_primal(A, b, d, u, lo, hi)
        if u2 is not None:
            t2 = min(self.certified_lower(u2), self.tmax)
            if t2 > floor:
                return Decision.FULL, u2, t2
        return Decision.AMBIGUOUS, u, t_lo


def _polish_duals(A: np.ndarray, y: np.ndarray) -> Optional[np.ndarray]:
    """The smallest correction of ``y`` on its support with ``sum y a = 0`` and ``sum y = 1``."""
    s = np.flatnonzero(y > 1e-12 * y.max())
    if s.size == 0:
        return None
    M = np.vstack([A[s].T, np.ones((1, s.size))])
    target = np.zeros(M.shape[0])
    target[-1] = 1.0
    ys = y[s] / y[s].sum()
    try:
        delta = np.linalg.lstsq(M, target - M @ ys, rcond=None)[0]
    except np.linalg.LinAlgError:
        return None
    out = np.zeros_like(y)
    out[s] = np.maximum(ys + delta, 0.0)
    return out


def _polish_primal(A, b, d, u, lo, hi) -> Optional[np.ndarray]:
    """The point where the rows with the largest duals are tight (least squares), clipped to the box."""
    n = u.size
    order = np.argsort(-np.abs(d))
    s = order[:n + 1]
    s = s[np.abs(d[s]) > 0]
    if s.size < 1:
        return None
    M = np.hstack([A[s], np.ones((s.size, 1))])
    try:
        z = np.linalg.lstsq(M, b[s], rcond=None)[0]
    except np.linalg.LinAlgError:
        return None
    return np.clip(z[:n], lo, hi)
