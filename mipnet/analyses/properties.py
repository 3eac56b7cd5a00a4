"""Equivalence properties of two networks f = ``net_a``, g = ``net_b`` (m outputs each).

Each property is a small object with three faces, all on the outputs ``f(x), g(x)``:

(a) :meth:`Property.margin`: the float64 check of a witness. ``margin(fa, fb) > 0`` exactly
    when x is a counterexample (strictly), and the value says by how much;
(b) :meth:`Property.subproblems`: MILP rows for the joint encoding of both networks
    (:class:`~mipnet.analyses.equivalence.GapProblem`): each subproblem maximises a margin
    variable t subject to ``C [f; g] - t - M s >= lo - M`` (binaries s only where M > 0,
    ``sum s = choose``); the property holds on D iff every subproblem has ``t* <= 0``.
    :func:`search_property` runs them with a cutoff at ``tol`` (early stop at the first
    verified counterexample);
(c) :meth:`Property.upper_bound`: a sound bound on ``max margin`` from output bounds
    (:class:`OutputBounds`: boxes of f, g and of ``f - g``) over any set where they hold;
    ``<= tol`` settles the property there without a MILP.

Per leaf of an input branch and bound (a sub-box or sub-domain D' of D): ``prop.margin(f(X),
g(X)) > 0`` on any evaluated point is a counterexample (a); ``prop.upper_bound(OutputBounds(
a_lo, a_hi, b_lo, b_hi, d_lo, d_hi)) <= tol`` with sound bounds of f, g and f - g on D' proves
the leaf (c); a small leaf goes to ``search_property(GapProblem.build(net_a, net_b, D'), prop,
tol=tol, deadline=...)`` (b), which returns ``upper <= tol`` (proven) or a verified witness.

(d) the face of the input branch and bound (:mod:`mipnet.analyses.bab`), on a *measure*
    ``measure(fa, fb) = margin + offset`` (``offset``: ``eps`` for the gap properties, else 0;
    the gap itself for those): refuted by a point whose measure exceeds ``threshold``
    (= ``offset``), proven on a box when a sound bound ``upper(bb)`` from its
    :class:`~mipnet.analyses.differential.BoxBounds` is ``<= proven`` (= ``offset + tol``);
    ``spec(m)`` asks for extra rows ``Ca f + Cb g`` in those bounds, ``widen(upper, err)`` is
    the bound when g is only known within ``err`` (an aligned copy), ``milp(problem,
    deadline, notes) -> (lower, upper, witness, num_milps)`` decides a leaf box (measure units).
    ``with_tol(tol)`` sets the tolerance (default ``1e-6``).

Properties (``c = argmax f``, first index on ties):

``LinfGap(eps)``   ``max_k |f_k - g_k| <= eps``;          margin ``max_k |f_k - g_k| - eps``.
``L1Gap(eps)``     ``sum_k |f_k - g_k| <= eps``;          margin ``sum_k |f_k - g_k| - eps``.
``TopK(k)``        the top class of f is among the top k classes of g (Kleine Büning, Kern and
                   Sinz, CP 2020, "top-k equivalence"). A counterexample has at least k classes
                   j != c with ``g_j > g_c``; margin ``min(f_c - max_{j != c} f_j, kth_j(g_j - g_c))``
                   (kth: the k-th largest over j != c); ``TopK(1)`` is top-1 equivalence.
``DeltaTop1(d)``   (``TopK(1, delta=d)``) if f is confident, i.e. its *logit margin*
                   ``f_c - max_{j != c} f_j >= d``, then ``argmax g = c``; margin
                   ``min(f_c - max_{j != c} f_j - d, max_{j != c} g_j - g_c)``.
                   ``TopK(k, delta)`` combines both.
``OutputDisjunction``  a VNN-LIB output constraint (the unsafe set): x is a counterexample iff
                   ``y = [f; g]`` satisfies some conjunction ``C_i y <= b_i``; margin
                   ``max_i min_j (b_ij - C_ij y)`` (:mod:`mipnet.io.vnnlib`).

MILP of TopK for a class c (one per c; per pair (c, j) with ``split="pair"``): maximise t with
``f_c - f_j - t >= delta`` (all j != c) and, for the candidate rivals j (those whose bound can
reach ``tol``), ``g_j - g_c - t >= -M_j (1 - s_j)``, ``sum_j s_j = k``, ``s`` binary, with
``M_j = T_c - (min g_j - g_c)``, ``T_c = min_j max(f_c - f_j) - delta`` (the encoding of the
CP 2020 paper with the top class of f enumerated instead of chosen by binaries).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.sparse as sp

from mipnet.analyses.common import Status, Verdict, deadline_after, remaining, solve_or_partial, witness_from_solution
from mipnet.analyses.joint import EquivalenceResult, GapProblem
from mipnet.bounds import gamma
from mipnet.core.domain import as_domain
from mipnet.core.errors import Interrupted, InvalidArgumentError, InvalidNetworkError, SolverError
from mipnet.core.network import Network
from mipnet.core.numerics import in_domain
from mipnet.core.results import json_float
from mipnet.solver.highs import INF

__all__ = [
    "OutputBounds",
    "Subproblem",
    "Property",
    "LinfGap",
    "L1Gap",
    "TopK",
    "DeltaTop1",
    "OutputDisjunction",
    "property_for_mode",
    "search_property",
    "attack",
    "verify_property",
    "trivially_true",
    "check_property_pair",
]

_EPS = np.finfo(np.float64).eps


def _up(x: float, mag: float) -> float:
    """``x`` rounded up by a few ulps of the magnitude of the terms it came from."""
    return float(x + 8 * _EPS * mag) if math.isfinite(x) else x


@dataclass(frozen=True, eq=False)
class OutputBounds:
    """Sound boxes ``a_lo <= f <= a_hi``, ``b_lo <= g <= b_hi`` and optionally ``d_lo <= f - g <= d_hi``."""

    a_lo: np.ndarray
    a_hi: np.ndarray
    b_lo: np.ndarray
    b_hi: np.ndarray
    d_lo: Optional[np.ndarray] = None
    d_hi: Optional[np.ndarray] = None

    @classmethod
    def from_problem(cls, problem) -> "OutputBounds":
        """The bounds of a :class:`~mipnet.analyses.equivalence.GapProblem` (its units)."""
        A, B = problem.bounds_a.output, problem.bounds_b.output
        return cls(A.lower, A.upper, B.lower, B.upper, problem.d_lo, problem.d_hi)

    def difference(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds on ``f - g``: the differential box intersected with ``a - b`` (rounded outwards)."""
        lo, hi = self.a_lo - self.b_hi, self.a_hi - self.b_lo
        w = 4 * _EPS
        lo, hi = lo - w * np.abs(lo), hi + w * np.abs(hi)
        if self.d_lo is not None:
            lo, hi = np.maximum(lo, self.d_lo), np.minimum(hi, self.d_hi)
        return lo, hi

    @property
    def magnitude(self) -> float:
        parts = [self.a_lo, self.a_hi, self.b_lo, self.b_hi] + ([self.d_lo, self.d_hi] if self.d_lo is not None else [])
        return float(max(np.max(np.abs(p)) for p in parts))


@dataclass(frozen=True, eq=False)
class Subproblem:
    """``max t`` s.t. ``C y - t - M s >= lo - M`` (rows with ``M > 0`` get a binary s), ``sum s = choose``.

    ``y = [f; g]`` (2m outputs). ``label`` names it in reports (e.g. ``{"c": 3, "k": 5}``).
    """

    label: dict
    C: np.ndarray
    lo: np.ndarray
    M: Optional[np.ndarray] = None
    choose: int = 0


class Property:
    """Base class: see the module docstring for the three faces (a), (b), (c)."""

    name = "property"

    def margin(self, fa, fb) -> np.ndarray:
        """(a) Float64 margin per row of ``fa``, ``fb`` (N, m); ``> 0`` exactly at counterexamples."""
        raise NotImplementedError

    def upper_bound(self, ob: OutputBounds) -> float:
        """(c) A sound upper bound on the margin wherever the bounds ``ob`` hold."""
        raise NotImplementedError

    def margin_weights(self, fa, fb) -> np.ndarray:
        """(N, 2m) weights w with ``margin = w . [f; g] + const`` near each row (its active piece;
        the search direction of :func:`attack`)."""
        raise NotImplementedError

    def attack_targets(self, m: int) -> list:
        """Properties whose margins :func:`attack` ascends one at a time, each ``<= 0`` wherever this
        margin is (so a point where one is positive is a counterexample here too; every point is
        re-checked with :meth:`margin` anyway). Default: this property alone."""
        return [self]

    def settled(self, ob: OutputBounds, tol: float = 0.0) -> bool:
        """(c) True if the bounds prove the property (margin ``<= tol``) where they hold."""
        return self.upper_bound(ob) <= tol

    def subproblems(self, ob: OutputBounds, tol: float, X=None, FA=None, FB=None) -> list:
        """(b) The MILPs (:class:`Subproblem`) whose maxima bound the margin; those the bounds
        settle (``<= tol``) are left out. ``FA``, ``FB``: outputs at sample points, to order them."""
        raise NotImplementedError(f"{type(self).__name__} has no MILP here; use verify_equivalence's mode")

    def scaled(self, a: float) -> "Property":
        """The same property on outputs divided by ``a`` (the margin divides by ``a``)."""
        raise NotImplementedError

    def verify(self, net_a: Network, net_b: Network, domain, **kw):
        """:func:`verify_property` of this property (what ``verify_equivalence(mode=prop)`` calls)."""
        return verify_property(net_a, net_b, domain, self, **kw)

    def to_dict(self) -> dict:
        return {"name": self.name}

    # (d) the input branch and bound's face (module docstring)
    tol: float = 1e-6

    def with_tol(self, tol: float) -> "Property":
        """A copy whose branch-and-bound face proves at ``offset + tol``."""
        p = copy.copy(self)
        p.tol = _nonneg("tol", tol)
        return p

    @property
    def offset(self) -> float:
        return 0.0

    @property
    def threshold(self) -> float:
        return self.offset

    @property
    def proven(self) -> float:
        return self.offset + self.tol

    def spec(self, m: int) -> Optional[tuple]:
        return None

    def measure(self, fa, fb) -> np.ndarray:
        return self.margin(fa, fb) + self.offset

    def upper(self, bb) -> float:
        ob = OutputBounds(bb.fa_lo, bb.fa_hi, bb.fb_lo, bb.fb_hi, bb.d_lo, bb.d_hi)
        return _up(self.upper_bound(ob) + self.offset, ob.magnitude + self.offset)

    def widen(self, upper: float, err) -> float:
        return upper + 2.0 * float(np.max(err, initial=0.0))

    def box_rows(self, m: int) -> Optional[np.ndarray]:
        """The rows of the difference network's output (``[f - g; f; g; spec]``, m outputs per net)
        that :meth:`upper` and :meth:`bab_rows` read: the vectorised boxes back-substitute only
        these, the others keep interval bounds (sound, looser). None: all of them."""
        return None

    def bab_rows(self, bb) -> list:
        """Rows ``(i, s)`` of the difference network's output (``[f - g; f; g; spec]``) whose bound
        ``s y_i <= ...`` an optimised bound (alpha-CROWN) should tighten on a box: all of them."""
        n = bb.d_lo.size + bb.fa_lo.size + bb.fb_lo.size + bb.spec_lo.size
        return [(i, s) for i in range(n) for s in (1, -1)]

    def milp(self, problem, deadline, notes: list):
        r = search_property(problem, self, tol=self.tol, deadline=deadline)
        notes.extend(r["notes"])
        if r["interrupted"]:
            raise Interrupted("interrupted during a leaf MILP")
        wit = r["witness"] if r["witness"] is not None and r["lower"] > 0 else None
        return r["lower"] + self.offset, r["upper"] + self.offset, wit, r["num_milps"]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "name")
        return f"{type(self).__name__}({args})"


class LinfGap(Property):
    """``max_k |f_k - g_k| <= eps`` (exact equivalence: ``eps`` = the numerical tolerance)."""

    name = "linf_gap"

    def __init__(self, eps: float) -> None:
        self.eps = _nonneg("eps", eps)

    def margin(self, fa, fb):
        fa, fb = np.atleast_2d(fa), np.atleast_2d(fb)
        return np.abs(fa - fb).max(axis=1) - self.eps

    def upper_bound(self, ob):
        lo, hi = ob.difference()
        return _up(float(max(hi.max(), (-lo).max())) - self.eps, self.eps)

    def margin_weights(self, fa, fb):
        D = np.atleast_2d(fa) - np.atleast_2d(fb)
        n, m = D.shape
        k = np.argmax(np.abs(D), axis=1)
        s = np.where(D[np.arange(n), k] >= 0, 1.0, -1.0)
        w = np.zeros((n, 2 * m))
        w[np.arange(n), k], w[np.arange(n), m + k] = s, -s
        return w

    def subproblems(self, ob, tol, X=None, FA=None, FB=None):
        lo, hi = ob.difference()
        m = lo.size
        out = []
        for k in range(m):
            for sgn, b in ((1.0, hi[k]), (-1.0, -lo[k])):
                if _up(b - self.eps, ob.magnitude + self.eps) > tol:
                    C = np.zeros((1, 2 * m))
                    C[0, k], C[0, m + k] = sgn, -sgn
                    out.append(Subproblem({"output": k, "sign": int(sgn)}, C, np.array([self.eps])))
        return out

    def scaled(self, a):
        return LinfGap(self.eps / a)

    @property
    def offset(self) -> float:
        return self.eps

    def upper(self, bb) -> float:
        return float(np.max(np.maximum(-bb.d_lo, bb.d_hi)))

    def widen(self, upper, err):
        return upper + float(np.max(err, initial=0.0))

    def box_rows(self, m):
        return np.arange(m)  # the gap rows f - g only

    def bab_rows(self, bb) -> list:
        """Only the gap bounds still above ``proven``: row ``(k, -1)`` (a lower bound of ``-(f_k - g_k)``)
        tightens ``max (f_k - g_k)``, row ``(k, 1)`` tightens ``max (g_k - f_k)``."""
        p = self.proven
        return [(k, s) for k in range(bb.d_lo.size) for s, v in ((-1, bb.d_hi[k]), (1, -bb.d_lo[k])) if v > p]

    def milp(self, problem, deadline, notes):
        from mipnet.analyses.joint import gap_search

        g = gap_search(problem, threshold=self.eps, stop_on_violation=True, tol=self.tol, deadline=deadline)
        notes.extend(g.notes)
        if g.status == Status.INTERRUPTED:
            raise Interrupted("interrupted during a leaf MILP")
        return g.lower, g.upper, (g.witness if g.lower > self.eps else None), g.num_milps

    def to_dict(self):
        return {"name": self.name, "eps": self.eps}


class L1Gap(Property):
    """``sum_k |f_k - g_k| <= eps``."""

    name = "l1_gap"

    def __init__(self, eps: float) -> None:
        self.eps = _nonneg("eps", eps)

    def margin(self, fa, fb):
        fa, fb = np.atleast_2d(fa), np.atleast_2d(fb)
        return np.abs(fa - fb).sum(axis=1) - self.eps

    def upper_bound(self, ob):
        lo, hi = ob.difference()
        s = float(np.maximum(np.abs(lo), np.abs(hi)).sum()) * (1 + 2 * gamma(lo.size))
        return _up(s - self.eps, s + self.eps)

    def margin_weights(self, fa, fb):
        S = np.sign(np.atleast_2d(fa) - np.atleast_2d(fb))
        return np.hstack([S, -S])

    def scaled(self, a):
        return L1Gap(self.eps / a)

    @property
    def offset(self) -> float:
        return self.eps

    def upper(self, bb) -> float:
        g = np.maximum(-bb.d_lo, bb.d_hi)
        return float(np.sum(g) * (1.0 + 2.0 * gamma(g.size)))

    def widen(self, upper, err):
        return (upper + float(np.sum(err))) * (1.0 + 2.0 * gamma(np.size(err) + 1))

    def box_rows(self, m):
        return np.arange(m)  # the gap rows f - g only

    def bab_rows(self, bb) -> list:
        """The signed gap rows ``+-(f_k - g_k)`` (the bound sums their magnitudes)."""
        return [(k, s) for k in range(bb.d_lo.size) for s in (1, -1)]

    def milp(self, problem, deadline, notes):
        from mipnet.analyses.joint import l1_search

        return l1_search(problem, self.eps, self.tol, deadline, notes)

    def to_dict(self):
        return {"name": self.name, "eps": self.eps}


class TopK(Property):
    """The top class of f is among the top ``k`` classes of g, wherever f's logit margin is
    ``>= delta`` (``delta = 0``: everywhere). See the module docstring for the margin and MILP.

    ``split``: ``"class"`` (default) one MILP per top class c of f, binaries choosing the k
    rivals; ``"pair"`` (k = 1 only) one MILP per pair (c, j) without binaries (faster on easy
    instances, up to 3x slower on the hard CP 2020 rows).
    """

    def __init__(self, k: int = 1, delta: float = 0.0, split: str = "class") -> None:
        if int(k) != k or k < 1:
            raise InvalidArgumentError(f"k must be an integer >= 1, got {k!r}")
        if split not in ("class", "pair"):
            raise InvalidArgumentError(f"split must be 'class' or 'pair', got {split!r}")
        self.k = int(k)
        self.delta = _nonneg("delta", delta)
        self.split = split

    @property
    def name(self) -> str:
        base = "top1" if self.k == 1 else f"top{self.k}"
        return base if self.delta == 0 else f"delta_{base}"

    def attack_targets(self, m: int) -> list:
        """One target per class c of f: the margin with c held as f's top class (``f_c - max_j f_j
        - delta`` is then negative wherever c is not on top, so each is ``<=`` the margin). A
        counterexample may need f's top class to change, which the margin's gradient at f's
        current top class does not see (on the CP 2020 rows whose counterexamples took Gurobi
        ~1800 s, the untargeted attack stayed below 0 on all 5, targeted on none)."""
        return [self] if self.k > m - 1 else [_TopKFor(self, c) for c in range(m)]

    def margin(self, fa, fb, c=None):
        """``c``: hold class ``c`` (an int) as f's top class instead of its argmax."""
        fa, fb = np.atleast_2d(np.asarray(fa, dtype=np.float64)), np.atleast_2d(np.asarray(fb, dtype=np.float64))
        n, m = fa.shape
        if self.k > m - 1:
            return np.full(n, -np.inf)
        r = np.arange(n)
        c = np.argmax(fa, axis=1) if c is None else np.full(n, int(c))
        fo = fa.copy()
        fo[r, c] = -np.inf
        s = fb - fb[r, c][:, None]
        s[r, c] = -np.inf
        kth = -np.partition(-s, self.k - 1, axis=1)[:, self.k - 1]
        return np.minimum(fa[r, c] - fo.max(axis=1) - self.delta, kth)

    def margin_weights(self, fa, fb, c=None):
        fa, fb = np.atleast_2d(fa), np.atleast_2d(fb)
        n, m = fa.shape
        w = np.zeros((n, 2 * m))
        if self.k > m - 1:
            return w
        r = np.arange(n)
        c = np.argmax(fa, axis=1) if c is None else np.full(n, int(c))
        fo = fa.copy()
        fo[r, c] = -np.inf
        j = np.argmax(fo, axis=1)
        sb = fb - fb[r, c][:, None]
        sb[r, c] = -np.inf
        jk = np.argsort(-sb, axis=1, kind="stable")[:, self.k - 1]
        a_part = fa[r, c] - fa[r, j] - self.delta
        b_part = sb[r, jk]
        ua = a_part < b_part
        w[r[ua], c[ua]] += 1.0
        w[r[ua], j[ua]] -= 1.0
        w[r[~ua], m + jk[~ua]] += 1.0
        w[r[~ua], m + c[~ua]] -= 1.0
        return w

    def _rival_bounds(self, ob: OutputBounds):
        """``(T, U)``: ``T[c]`` bounds f's margin minus delta when c is on top; ``U[c, j]`` bounds
        t for a rival j among the k: ``t <= g_j - g_c`` and ``2 t <= d_c - d_j - delta``."""
        m = ob.a_lo.size
        T = np.array([np.min(np.delete(ob.a_hi[c] - ob.a_lo, c)) for c in range(m)]) - self.delta
        U = ob.b_hi[None, :] - ob.b_lo[:, None]  # U[c, j] = max g_j - min g_c
        if ob.d_lo is not None:
            U = np.minimum(U, (ob.d_hi[:, None] - ob.d_lo[None, :] - self.delta) / 2)
        np.fill_diagonal(U, -np.inf)
        return T, U

    def class_upper_bounds(self, ob: OutputBounds) -> np.ndarray:
        """(c) per class c: a sound bound on the margin at inputs where f ranks c first."""
        m = ob.a_lo.size
        if self.k > m - 1:
            return np.full(m, -np.inf)
        T, U = self._rival_bounds(ob)
        kth = -np.partition(-U, self.k - 1, axis=1)[:, self.k - 1]
        mag = ob.magnitude + self.delta
        return np.array([_up(v, mag) for v in np.minimum(T, kth)])

    def upper_bound(self, ob):
        return float(np.max(self.class_upper_bounds(ob)))

    def subproblems(self, ob, tol, X=None, FA=None, FB=None):
        m = ob.a_lo.size
        ub = self.class_upper_bounds(ob)
        T, U = self._rival_bounds(ob)
        mag = ob.magnitude + self.delta
        have = FA is not None and len(FA)
        first = np.argmax(FA, axis=1) if have else np.zeros(0, dtype=int)
        counts = np.bincount(first, minlength=m) if have else np.zeros(m)
        out = []
        for c in (int(c) for c in np.argsort(-counts, kind="stable")):
            if ub[c] <= tol:
                continue
            rivals = [j for j in range(m) if j != c and _up(U[c, j], mag) > tol]
            if len(rivals) < self.k:
                continue
            sel = first == c
            score = {j: float(np.max(FB[sel, j] - FB[sel, c])) if sel.any() else 0.0 for j in rivals}
            rivals.sort(key=lambda j: -score[j])
            others = [j for j in range(m) if j != c]
            F = np.zeros((m - 1, 2 * m))
            F[np.arange(m - 1), c] = 1.0
            F[np.arange(m - 1), others] = -1.0
            Flo = np.full(m - 1, self.delta)

            def g_rows(js):
                G = np.zeros((len(js), 2 * m))
                G[np.arange(len(js)), m + np.asarray(js)] = 1.0
                G[:, m + c] = -1.0
                return G

            if self.k == 1 and self.split == "pair":
                for j in rivals:
                    out.append(Subproblem({"c": c, "k": j}, np.vstack([F, g_rows([j])]), np.append(Flo, 0.0)))
            else:
                Mj = np.array([max(0.0, T[c] - (ob.b_lo[j] - ob.b_hi[c])) for j in rivals])
                Mj = Mj + 1e-9 * (1 + Mj) + 16 * _EPS * mag
                M = np.concatenate([np.zeros(m - 1), Mj])
                out.append(Subproblem({"c": c, "k": None}, np.vstack([F, g_rows(rivals)]),
                                      np.concatenate([Flo, np.zeros(len(rivals))]), M, self.k))
        return out

    def scaled(self, a):
        return TopK(self.k, self.delta / a, self.split)

    # (d) plain top-1 (k = 1, delta = 0) on a box: the pairwise rows f_c - f_k and g_k - g_c
    # in the box bounds, and the top-1 MILP searches of the joint encoding
    @property
    def _plain_top1(self) -> bool:
        return self.k == 1 and self.delta == 0

    @staticmethod
    def _pairs(m):
        return np.nonzero(~np.eye(m, dtype=bool))

    def spec(self, m):
        if not self._plain_top1:
            return None
        c, k = self._pairs(m)
        n = c.size
        E = np.eye(m)
        return np.vstack([E[c] - E[k], np.zeros((n, m))]), np.vstack([np.zeros((n, m)), E[k] - E[c]])

    def upper(self, bb) -> float:
        """Plain top-1: a disagreement (c, k) of margin t needs ``f_c - f_j >= t`` for all j and
        ``g_k - g_c >= t``; with ``d = f - g``, ``g_k - g_c = (f_k - f_c) + d_c - d_k <= -t + d_c - d_k``,
        so also ``t <= (d_c - d_k) / 2``: tight when the nets are close."""
        if not self._plain_top1 or bb.spec_hi is None:
            return super().upper(bb)
        m = bb.d_lo.size
        c, k = self._pairs(m)
        n = c.size
        off = ~np.eye(m, dtype=bool)
        f_hi = bb.spec_hi[:n].reshape(m, m - 1)  # ub(f_c - f_j), j != c, row c
        f_hi = np.minimum(f_hi, (bb.fa_hi[:, None] - bb.fa_lo[None, :])[off].reshape(m, m - 1))
        g_hi = np.minimum(bb.spec_hi[n:], bb.fb_hi[k] - bb.fb_lo[c])
        first = f_hi.min(axis=1)  # ub of f_c - max_j f_j
        half = (bb.d_hi[c] - bb.d_lo[k]) / 2.0
        t = np.minimum(np.minimum(first[c], g_hi), np.minimum(half, f_hi.reshape(-1)))
        top = float(t.max())
        return top + 4.0 * gamma(2) * abs(top)  # the rounded differences above

    def milp(self, problem, deadline, notes):
        if not self._plain_top1:
            return super().milp(problem, deadline, notes)
        from mipnet.analyses.joint import top1_search

        return top1_search(problem, self.tol, deadline, notes)

    def to_dict(self):
        return {"name": self.name, "k": self.k, "delta": self.delta}


class _TopKFor:
    """:meth:`TopK.attack_targets`' target: ``prop``'s margin with class ``c`` held on top."""

    def __init__(self, prop: TopK, c: int) -> None:
        self.prop, self.c = prop, int(c)

    def margin(self, fa, fb):
        return self.prop.margin(fa, fb, self.c)

    def margin_weights(self, fa, fb):
        return self.prop.margin_weights(fa, fb, self.c)


def DeltaTop1(delta: float) -> TopK:
    """Delta-top-1: wherever f's logit margin ``f_c - max_{j != c} f_j >= delta``, ``argmax g = c``."""
    return TopK(1, delta)


class OutputDisjunction(Property):
    """Counterexample iff ``y = [f; g]`` lies in some ``{y : C_i y <= b_i}`` (a VNN-LIB unsafe set).

    ``terms``: list of ``(C_i, b_i)`` with ``C_i`` of shape (r_i, 2m) (or (r_i, m) with
    ``outputs="a"``/``"b"``/``"diff"``: the rows act on f, on g, or on ``f - g``).
    """

    name = "vnnlib"

    def __init__(self, terms, m: int) -> None:
        self.m = int(m)
        clean = []
        for C, b in terms:
            C = np.atleast_2d(np.asarray(C, dtype=np.float64))
            b = np.asarray(b, dtype=np.float64).reshape(-1)
            if C.shape != (b.size, 2 * self.m):
                raise InvalidArgumentError(f"a conjunction needs C of shape (rows, {2 * self.m}), got {C.shape}")
            clean.append((C, b))
        if not clean:
            raise InvalidArgumentError("an output disjunction needs at least one conjunction")
        self.terms = tuple(clean)

    @classmethod
    def from_vnnlib(cls, spec) -> "OutputDisjunction":
        """The unsafe set of a parsed VNN-LIB file (:class:`mipnet.io.vnnlib.VnnlibSpec`)."""
        return cls(spec.terms, spec.m)

    def margin(self, fa, fb):
        y = np.hstack([np.atleast_2d(fa), np.atleast_2d(fb)]).astype(np.float64)
        per = [np.min(b[None, :] - y @ C.T, axis=1) if len(b) else np.full(len(y), np.inf) for C, b in self.terms]
        return np.max(np.stack(per, axis=1), axis=1)

    def margin_weights(self, fa, fb):
        y = np.hstack([np.atleast_2d(fa), np.atleast_2d(fb)]).astype(np.float64)
        best = np.full(len(y), -np.inf)
        w = np.zeros_like(y)
        for C, b in self.terms:
            if not len(b):
                continue
            v = b[None, :] - y @ C.T
            j = np.argmin(v, axis=1)
            val = v[np.arange(len(y)), j]
            up = val > best
            best[up] = val[up]
            w[up] = -C[j[up]]
        return w

    def _term_bounds(self, ob):
        lo = np.concatenate([ob.a_lo, ob.b_lo])
        hi = np.concatenate([ob.a_hi, ob.b_hi])
        mag = ob.magnitude
        out = []
        for C, b in self.terms:
            if not len(b):
                out.append(np.inf)
                continue
            min_cy = np.where(C > 0, C * lo, C * hi).sum(axis=1)
            v = float(np.min(b - min_cy))
            out.append(_up(v, (np.abs(C).sum(axis=1).max() + 1) * mag + np.abs(b).max()))
        return np.array(out)

    def upper_bound(self, ob):
        return float(np.max(self._term_bounds(ob)))

    # (d) on a box: every row of every conjunction is a spec row of the difference network, so its
    # lower bound comes from one linear bound of ``C_ij [f; g]`` (the shared input correlates f and g)
    def spec(self, m):
        rows = [C for C, b in self.terms if len(b)]
        if not rows:
            return None
        C = np.vstack(rows)
        return C[:, :self.m], C[:, self.m:]

    def upper(self, bb) -> float:
        base = Property.upper(self, bb)
        if bb.spec_lo is None or not bb.spec_lo.size:
            return base
        out, r = [], 0
        mag = float(np.max(np.abs(np.concatenate([bb.spec_lo, bb.spec_hi])), initial=0.0))
        for C, b in self.terms:
            if not len(b):
                out.append(np.inf)
                continue
            lo = bb.spec_lo[r:r + len(b)]
            r += len(b)
            out.append(_up(float(np.min(b - lo)), mag + float(np.abs(b).max())))
        return min(base, float(np.max(out)))

    def subproblems(self, ob, tol, X=None, FA=None, FB=None):
        ub = self._term_bounds(ob)
        return [Subproblem({"disjunct": i}, -C, -b) for i, (C, b) in enumerate(self.terms) if ub[i] > tol]

    def scaled(self, a):
        return OutputDisjunction([(C, b / a) for C, b in self.terms], self.m)

    def to_dict(self):
        return {"name": self.name, "disjuncts": len(self.terms), "outputs": 2 * self.m}


def _nonneg(name: str, v) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a number >= 0, got {v!r}") from None
    if not (v >= 0 and math.isfinite(v)):
        raise InvalidArgumentError(f"{name} must be a finite number >= 0, got {v!r}")
    return v


def property_for_mode(mode: str, *, epsilon: Optional[float] = None, norm: str = "linf", tol: float = 1e-6,
                      k: int = 1, delta: float = 0.0) -> Property:
    """The property object of a :func:`~mipnet.analyses.equivalence.verify_equivalence` mode
    (``exact``: LinfGap(tol); ``epsilon``: LinfGap/L1Gap(epsilon); ``top1``; ``topk``; ``delta_top1``), with ``tol`` for the branch and bound (:meth:`Property.with_tol`)."""
    if mode == "exact":
        return LinfGap(tol).with_tol(tol)
    if mode == "epsilon":
        return (L1Gap(epsilon) if norm == "l1" else LinfGap(epsilon)).with_tol(tol)
    if mode == "top1":
        return TopK(1).with_tol(tol)
    if mode == "topk":
        return TopK(k, delta).with_tol(tol)
    if mode == "delta_top1":
        return TopK(1, delta).with_tol(tol)
    raise InvalidArgumentError(f"unknown mode {mode!r}; use exact, epsilon, top1, topk or delta_top1")


# ---------------------------------------------------------------------------- MILP search
def search_property(problem, prop: Property, *, tol: float = 1e-6, deadline: Optional[float] = None) -> dict:
    """Run the MILPs of ``prop`` on a built :class:`~mipnet.analyses.equivalence.GapProblem`.

    Samples first (a verified counterexample among ``problem.X`` stops it), then each
    :class:`Subproblem` on the problem's joint model, cutoff and target at ``tol`` (a solver
    input at the target that fails the float64 check is followed by a full maximisation).
    Values in the original units. Returns a dict: ``lower`` (largest verified margin),
    ``upper`` (proven bound on the margin; ``<= tol`` means the property holds), ``witness``
    (a verified counterexample or None), ``entries`` (per subproblem), ``num_milps``,
    ``timed_out``, ``interrupted``, ``notes``.
    """
    a = problem.scaling.output_scale
    p = prop.scaled(a)
    t_ = problem.scaling.margin(tol)
    out = dict(lower=-np.inf, upper=-np.inf, witness=None, entries=[], num_milps=0, timed_out=False,
               interrupted=False, notes=[])
    try:
        _search(problem, p, t_, deadline, out)
    except KeyboardInterrupt:
        out["interrupted"] = True
    if out["interrupted"] and out["witness"] is None:
        out["upper"] = np.inf
    out["lower"] = out["lower"] * a
    out["upper"] = max(out["upper"], t_) * a if out["witness"] is None else out["upper"] * a
    out["witness"] = problem.scaling.to_input(out["witness"])
    for e in out["entries"]:
        if e["upper"] is not None:
            e["upper"] = float(e["upper"] * a)
    return out


def _search(pb, p: Property, tol: float, deadline, out: dict) -> None:
    if len(pb.X):
        mg = p.margin(pb.FA, pb.FB)
        j = int(np.argmax(mg))
        out["lower"] = float(mg[j])
        if mg[j] > 0:
            out["witness"] = pb.X[j].copy()
            out["upper"] = np.inf
            return
    ob = OutputBounds.from_problem(pb)
    subs = p.subproblems(ob, tol, pb.X, pb.FA, pb.FB)
    if not subs:
        out["upper"] = min(p.upper_bound(ob), tol)
        out["entries"].append(dict(label="bounds", status="bounds", upper=out["upper"], seconds=0.0))
        return
    joint = pb.joint
    model = joint.model
    y_cols = np.concatenate([joint.va.output_cols, joint.vb.output_cols])
    t_col = int(model.add_cols([-INF], [INF])[0])
    upper = -np.inf
    for sp_ in subs:
        entry = dict(label=sp_.label, status="", upper=None, seconds=0.0)
        if deadline is not None and time.perf_counter() >= deadline:
            out["timed_out"] = True
            entry["status"] = "time_limit"
            out["entries"].append(entry)
            upper = np.inf
            continue
        rows, bins = _add_subproblem(model, sp_, y_cols, t_col)
        try:
            model.set_objective([t_col], [1.0], maximize=True)
            found, res = None, None
            for attempt in range(2):
                res, stopped = solve_or_partial(model, cutoff=tol, target=tol if attempt == 0 else None,
                                                time_limit=remaining(deadline))
                out["interrupted"] |= stopped
                out["num_milps"] += 1
                entry["seconds"] += res.seconds
                if res.has_solution:
                    x = witness_from_solution(res.values, model.input_cols, pb.domain)
                    if x is not None:
                        v = float(p.margin(pb.net_a.forward(x), pb.net_b.forward(x))[0])
                        out["lower"] = max(out["lower"], v)
                        if v > 0:
                            found = x
                if found is not None or res.status != "objective_target" or out["interrupted"]:
                    break
                out["notes"].append(f"{sp_.label}: the solver's input with margin >= tol did not verify in "
                                    "float64; maximising the margin")
        finally:
            model.change_row_bounds(rows, -INF, INF)
            if len(bins):
                model.change_col_bounds(bins, 0.0, 0.0)
        if found is not None:
            entry["status"] = "counterexample"
            out["entries"].append(entry)
            out["witness"] = found
            out["upper"] = np.inf
            return
        if res.status == "infeasible":
            entry.update(status="proven", upper=tol)
        else:
            db = res.dual_bound
            ub = max(db, tol) if db is not None and math.isfinite(db) else np.inf
            entry.update(status=str(res.status), upper=ub)
            upper = max(upper, ub)
            if res.status == "optimal" and ub <= tol:
                entry["status"] = "proven"
            elif res.status == "time_limit":
                out["timed_out"] = True
            elif res.status != "optimal" and not out["interrupted"]:
                out["notes"].append(f"{sp_.label}: solver status {res.highs_status}")
        out["entries"].append(entry)
        if out["interrupted"]:
            return
    out["upper"] = max(upper, tol)


def _add_subproblem(model, s: Subproblem, y_cols: np.ndarray, t_col: int):
    """Rows ``C y - t - M s >= lo - M`` and ``sum s = choose`` (one addRows call); returns (rows, binaries)."""
    C = np.asarray(s.C, dtype=np.float64)
    r = C.shape[0]
    M = np.zeros(r) if s.M is None else np.asarray(s.M, dtype=np.float64)
    has = np.flatnonzero(M > 0)
    bins = model.add_binaries(has.size) if has.size else np.zeros(0, dtype=np.int64)
    Cs = sp.csr_matrix(C)
    rr, cc = Cs.nonzero()
    vals = [Cs.data, -np.ones(r), -M[has]]
    rows_r = [rr, np.arange(r), has]
    rows_c = [y_cols[cc], np.full(r, t_col), bins]
    lo = list(s.lo - M)
    hi = [INF] * r
    nrows = r
    if has.size:
        rows_r.append(np.full(has.size, r))
        rows_c.append(bins)
        vals.append(np.ones(has.size))
        lo.append(float(s.choose))
        hi.append(float(s.choose))
        nrows += 1
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows_r), np.concatenate(rows_c))),
                      shape=(nrows, model.num_cols))
    first = model.num_rows
    model.add_rows(np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64), A)
    return np.arange(first, first + nrows, dtype=np.int32), bins


# ---------------------------------------------------------------------------- attack
def _input_gradient(net: Network, X: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Rows ``V_i . d net(x_i) / dx`` (one backward pass through the activation pattern)."""
    ys = net.preactivations(X)[:-1]
    v = V @ net.weights[-1]
    for l in range(len(ys) - 1, -1, -1):
        v = (v * (ys[l] > 0)) @ net.weights[l]
    return v


def attack(net_a: Network, net_b: Network, domain, prop: Property, X0, *, starts: int = 32,
           iterations: int = 40, deadline: Optional[float] = None) -> np.ndarray:
    """Counterexample candidates: projected gradient ascent of the margin from the ``starts``
    best rows of X0 (and an L1 ball's clipped vertices). A heuristic (PGD, Madry et al. 2018,
    arXiv:1706.06083) that only supplies points; each is re-checked like any other.

    Each of :meth:`Property.attack_targets` (top-k: one per class of f held on top) is ascended
    from its own best rows (``starts`` in all, at least 8 a target). Steps: a box moves by
    ``step * width * sign(grad)``; an L1 ball by ``step * r / q`` along the signs of the q = n/8
    largest gradient entries, and by Frank-Wolfe steps ``x + gamma (s - x)``, ``gamma`` in 1,
    1/2, 1/4 and ``2 / (t + 3)``, towards ``s`` = :meth:`~mipnet.core.domain.Domain.linear_maximizer`
    of the gradient (the conditional gradient method, Frank and Wolfe 1956: a linear function
    over ball ∩ box peaks at a sparse point, which sign steps reach badly). The best point of
    each start is kept; points leave the domain only through
    :meth:`~mipnet.core.domain.Domain.clip`. No step starts after ``deadline`` (a
    ``time.perf_counter()`` value)."""
    from mipnet.core.domain import L1BallDomain

    domain = as_domain(domain, net_a.input_dim)
    X0 = np.atleast_2d(np.asarray(X0, dtype=np.float64))
    l1 = isinstance(domain, L1BallDomain)
    if l1:
        n = domain.dim
        E = np.concatenate([np.eye(n), -np.eye(n)]) * domain.l1_radius
        X0 = np.concatenate([X0, domain.clip(domain.l1_center + E)])
    X0 = X0[in_domain(domain, X0)] if len(X0) else X0
    if not len(X0):
        return X0
    m = net_a.output_dim
    targets = prop.attack_targets(m)
    per = max(8, -(-int(starts) // len(targets)))
    FA0, FB0 = net_a.forward(X0), net_b.forward(X0)
    width = domain.upper - domain.lower
    out = []
    for tgt in targets:
        X = X0[np.argsort(-tgt.margin(FA0, FB0), kind="stable")[:per]].copy()
        val = tgt.margin(net_a.forward(X), net_b.forward(X))

        def offer(Y):
            Y = domain.clip(Y)
            ok = in_domain(domain, Y)
            vy = np.where(ok, tgt.margin(net_a.forward(Y), net_b.forward(Y)), -np.inf)
            up = vy > val
            X[up], val[up] = Y[up], vy[up]

        for t, step in enumerate(np.geomspace(0.5, 1e-3, iterations)):
            if deadline is not None and time.perf_counter() >= deadline:
                break
            w = tgt.margin_weights(net_a.forward(X), net_b.forward(X))
            G = _input_gradient(net_a, X, w[:, :m]) + _input_gradient(net_b, X, w[:, m:])
            if l1:
                # sparse steepest ascent (an L1 ball's extreme points are sparse): the q largest |grad_i|
                q = max(1, domain.dim // 8)
                top = np.argsort(-np.abs(G), axis=1)[:, :q]
                D = np.zeros_like(G)
                np.put_along_axis(D, top, np.sign(np.take_along_axis(G, top, axis=1)), axis=1)
                offer(X + step * domain.l1_radius * D / q)
                S = domain.linear_maximizer(G)
                if S is not None:
                    for gamma_ in (1.0, 0.5, 0.25, 2.0 / (t + 3)):
                        offer(X + gamma_ * (S - X))
            else:
                offer(X + step * width * np.sign(G))
        out.append(X)
    return np.concatenate(out)


# ---------------------------------------------------------------------------- verify
def check_property_pair(net_a, net_b, prop, time_limit) -> None:
    """Validate the arguments both engines share: two networks of the same input and output sizes,
    a :class:`Property` over their outputs, a positive time limit or None."""
    if not isinstance(prop, Property):
        raise InvalidArgumentError(f"prop must be a mipnet.analyses.properties.Property, got {type(prop).__name__}")
    for name, net in (("net_a", net_a), ("net_b", net_b)):
        if not isinstance(net, Network):
            raise InvalidNetworkError(f"{name} must be a mipnet.Network, got {type(net).__name__}")
    if net_a.input_dim != net_b.input_dim or net_a.output_dim != net_b.output_dim:
        raise InvalidNetworkError(f"the networks must have the same input and output sizes; got "
                                  f"{net_a.input_dim}->{net_a.output_dim} and {net_b.input_dim}->{net_b.output_dim}")
    if isinstance(prop, OutputDisjunction) and prop.m != net_a.output_dim:
        raise InvalidArgumentError(f"the property is over {prop.m} outputs per network, the networks have "
                                   f"{net_a.output_dim}")
    if time_limit is not None and not time_limit > 0:
        raise InvalidArgumentError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")


def trivially_true(net_a, net_b, domain, mode, tol) -> Optional[EquivalenceResult]:
    """The ``equivalent`` result, without any bound or MILP, of a property that holds at every
    input: top-1 / top-k with ``k >=`` the number of classes (with one output, top-1 and
    delta-top-1 too; its margins, over an empty set of rival classes, are -inf). None otherwise."""
    if not (isinstance(net_a, Network) and isinstance(net_b, Network)) or net_a.output_dim != net_b.output_dim:
        return None
    m = net_a.output_dim
    k = 1 if (isinstance(mode, str) and mode == "top1") else (mode.k if isinstance(mode, TopK) else None)
    if k is None or k < m:
        return None
    as_domain(domain, net_a.input_dim)  # a bad domain is still an error
    name = "top1" if isinstance(mode, str) else mode.name
    eps = 0.0 if isinstance(mode, str) else float(mode.delta)
    msg = f"holds everywhere: top-{k} of {m} class{'es' if m > 1 else ''}"
    return EquivalenceResult(Verdict.EQUIVALENT, name, eps, "linf", float(tol), -np.inf, -np.inf, -np.inf, None, None,
                             None, (), 0.0, 0, Status.PROVEN, msg, (msg,))


def verify_property(net_a: Network, net_b: Network, domain, prop: Property, *, time_limit: Optional[float] = None,
                    tol: float = 1e-6, bounds_a=None, bounds_b=None, differential: bool = True, samples: int = 1000,
                    seed: int = 0, solver_options: Optional[dict] = None):
    """Prove ``prop`` for f = ``net_a``, g = ``net_b`` on ``domain`` or find a counterexample.

    Bounds first (:meth:`Property.upper_bound` on the LP and differential output bounds), then
    :func:`search_property`. Equivalent means every subproblem has margin ``<= tol``;
    a counterexample has margin ``> 0`` in a float64 forward pass of both networks and lies in
    the domain. Returns an :class:`~mipnet.analyses.equivalence.EquivalenceResult` whose
    ``mode`` is the property's name and whose gap is the property's margin.
    """
    from mipnet.solver.highs import check_options

    t0 = time.perf_counter()
    check_property_pair(net_a, net_b, prop, time_limit)
    trivial = trivially_true(net_a, net_b, domain, prop, tol)
    if trivial is not None:
        return trivial
    tol = _nonneg("tol", tol)
    domain = as_domain(domain, net_a.input_dim)
    options = check_options(solver_options)
    deadline = deadline_after(time_limit, t0)
    notes: list = []
    try:
        pb = GapProblem.build(net_a, net_b, domain, bounds_a=bounds_a, bounds_b=bounds_b, differential=differential,
                              samples=samples, seed=seed, options=options, deadline=deadline)
        if samples:  # the gradient attack, in the problem's units (a cheap search for counterexamples)
            pb.add_points(attack(pb.net_a, pb.net_b, pb.domain, prop.scaled(pb.scaling.output_scale), pb.X,
                                 deadline=deadline))
        r = search_property(pb, prop, tol=tol, deadline=deadline)
    except KeyboardInterrupt:
        r = dict(lower=-np.inf, upper=np.inf, witness=None, entries=[], num_milps=0, timed_out=False,
                 interrupted=True, notes=["interrupted (Ctrl-C) while computing bounds"])
    notes.extend(r["notes"])
    x = r["witness"]
    fa = fb = None
    if x is not None:
        fa, fb = net_a.forward(x), net_b.forward(x)
        if not (float(prop.margin(fa, fb)[0]) > 0 and in_domain(domain, x)[0]):
            raise SolverError("internal error: a counterexample failed its float64 re-check")
        verdict, status, msg, gap = Verdict.NOT_EQUIVALENT, Status.COUNTEREXAMPLE, (
            "counterexample found and re-checked by a float64 forward pass of both networks"), r["lower"]
    elif r["upper"] <= tol:
        verdict, status, msg, gap = Verdict.EQUIVALENT, Status.PROVEN, "", r["upper"]
    else:
        verdict, gap = Verdict.UNKNOWN, r["upper"]
        if r["interrupted"]:
            status, msg = Status.INTERRUPTED, "interrupted (Ctrl-C) before a decision"
        elif r["timed_out"]:
            status, msg = Status.TIME_LIMIT, f"time limit of {time_limit} s reached before a decision"
        else:
            status, msg = Status.INCOMPLETE, "not decided: some subproblems ended without proof (see notes)"
    per = tuple(dict(e, upper=json_float(e["upper"])) for e in r["entries"])
    eps = float(getattr(prop, "delta", getattr(prop, "eps", 0.0)))
    return EquivalenceResult(verdict, prop.name, eps, "linf", tol, float(gap) + 0.0, float(r["lower"]) + 0.0,
                             float(r["upper"]) + 0.0, x, fa, fb, per, time.perf_counter() - t0, int(r["num_milps"]),
                             status, msg, tuple(notes))
