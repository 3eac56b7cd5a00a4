"""Equivalence properties as small objects: what the input branch and bound checks on each box.

A property of two networks f, g says ``measure(f(x), g(x)) <= threshold`` for every x of the
domain; it is *proven* when a sound bound on the measure is ``<= proven`` (threshold plus the
numerical tolerance) and *refuted* by a point whose float64 measure is ``> threshold``. The
branch and bound (:mod:`mipnet.analyses.bab`) only talks to this protocol:

``spec(m) -> (Ca, Cb) or None``
    Extra linear rows ``Ca f + Cb g`` (shape (r, m) each) whose bounds the property needs, on
    top of ``d = f - g``, ``f`` and ``g`` (always provided).
``upper(bb) -> float``
    A sound upper bound on the measure over a box from its
    :class:`~mipnet.analyses.differential.BoxBounds` (``d_lo/d_hi``, ``fa_lo/fa_hi``,
    ``fb_lo/fb_hi``, ``spec_lo/spec_hi``, all sound).
``measure(fa, fb) -> ndarray``
    The measure at points (rows of outputs), float64.
``widen(upper, err) -> float``
    The bound when ``g`` is only known within ``err`` (per output; an aligned copy).
``milp(problem, deadline, notes) -> (lower, upper, witness, num_milps)``
    Decide the property on a :class:`~mipnet.analyses.joint.GapProblem` (a leaf box) by
    MILP, values in the original units; ``witness`` only if its measure exceeds the threshold.
    Raises :class:`~mipnet.core.errors.Interrupted` when Ctrl-C stopped a solve.

Kinds here: :class:`LinfGap` (``exact`` and ``epsilon``), :class:`L1Gap`, :class:`Top1`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from mipnet.bounds import gamma

__all__ = ["Property", "LinfGap", "L1Gap", "Top1", "make_property"]


class Property:
    """Base class of the protocol above (see the module docstring)."""

    kind: str = "property"
    threshold: float = 0.0
    proven: float = 0.0

    def spec(self, m: int) -> Optional[tuple]:
        return None

    def upper(self, bb) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def measure(self, fa: np.ndarray, fb: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def widen(self, upper: float, err: np.ndarray) -> float:
        return upper + 2.0 * float(np.max(err, initial=0.0))

    def milp(self, problem, deadline, notes: list):  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class _GapBelow(Property):
    """A norm of ``f - g`` at most ``eps``: refuted above ``eps``, proven at ``eps + tol``."""

    eps: float
    tol: float

    @property
    def threshold(self) -> float:
        return self.eps

    @property
    def proven(self) -> float:
        return self.eps + self.tol


@dataclass(frozen=True)
class LinfGap(_GapBelow):
    """``max_k |f_k - g_k| <= eps`` (``exact``: ``eps = tol``)."""

    kind: str = "linf"

    def upper(self, bb) -> float:
        return float(np.max(np.maximum(-bb.d_lo, bb.d_hi)))

    def measure(self, fa, fb):
        return np.max(np.abs(np.atleast_2d(fa) - np.atleast_2d(fb)), axis=1)

    def widen(self, upper, err):
        return upper + float(np.max(err, initial=0.0))

    def milp(self, problem, deadline, notes):
        from mipnet.analyses.common import Status
        from mipnet.analyses.joint import gap_search
        from mipnet.core.errors import Interrupted

        g = gap_search(problem, threshold=self.eps, stop_on_violation=True, tol=self.tol, deadline=deadline)
        notes.extend(g.notes)
        if g.status == Status.INTERRUPTED:
            raise Interrupted("interrupted during a leaf MILP")
        return g.lower, g.upper, (g.witness if g.lower > self.eps else None), g.num_milps


@dataclass(frozen=True)
class L1Gap(_GapBelow):
    """``sum_k |f_k - g_k| <= eps``."""

    kind: str = "l1"

    def upper(self, bb) -> float:
        g = np.maximum(-bb.d_lo, bb.d_hi)
        return float(np.sum(g) * (1.0 + 2.0 * gamma(g.size)))

    def measure(self, fa, fb):
        return np.sum(np.abs(np.atleast_2d(fa) - np.atleast_2d(fb)), axis=1)

    def widen(self, upper, err):
        return (upper + float(np.sum(err))) * (1.0 + 2.0 * gamma(np.size(err) + 1))

    def milp(self, problem, deadline, notes):
        from mipnet.analyses.joint import l1_search

        return l1_search(problem, self.eps, self.tol, deadline, notes)


@dataclass(frozen=True)
class Top1(Property):
    """Same argmax: the measure is the disagreement margin
    ``min(f_c - max_{j != c} f_j, max_{k != c} g_k - g_c)``, ``c = argmax f`` (> 0 exactly at strict
    disagreements); proven when its bound is ``<= tol``.

    Bound on a box: a disagreement (c, k) of margin t needs ``f_c - f_j >= t`` for all j,
    ``g_k - g_c >= t``, and, with ``d = f - g``, ``g_k - g_c = (f_k - f_c) + d_c - d_k <= -t + d_c - d_k``,
    so ``t <= (d_c - d_k) / 2``: tight when the nets are close.
    """

    tol: float
    kind: str = "top1"

    @property
    def threshold(self) -> float:
        return 0.0

    @property
    def proven(self) -> float:
        return self.tol

    def _pairs(self, m):
        c, k = np.nonzero(~np.eye(m, dtype=bool))
        return c, k

    def spec(self, m):
        c, k = self._pairs(m)
        n = c.size
        E = np.eye(m)
        Fa = E[c] - E[k]  # f_c - f_k
        Gb = E[k] - E[c]  # g_k - g_c
        return np.vstack([Fa, np.zeros((n, m))]), np.vstack([np.zeros((n, m)), Gb])

    def upper(self, bb) -> float:
        m = bb.d_lo.size
        c, k = self._pairs(m)
        n = c.size
        f_hi = bb.spec_hi[:n].reshape(m, m - 1)  # ub(f_c - f_j), j != c, row c
        f_hi = np.minimum(f_hi, (bb.fa_hi[:, None] - bb.fa_lo[None, :])[~np.eye(m, dtype=bool)].reshape(m, m - 1))
        g_hi = np.minimum(bb.spec_hi[n:], bb.fb_hi[k] - bb.fb_lo[c])
        first = f_hi.min(axis=1)  # ub of f_c - max_j f_j
        half = (bb.d_hi[c] - bb.d_lo[k]) / 2.0
        t = np.minimum(np.minimum(first[c], g_hi), np.minimum(half, f_hi.reshape(-1)))
        top = float(t.max())
        return top + 4.0 * gamma(2) * abs(top) + 0.0  # the rounded differences above

    def measure(self, fa, fb):
        from mipnet.analyses.joint import top1_margin

        return top1_margin(fa, fb)

    def milp(self, problem, deadline, notes):
        from mipnet.analyses.joint import top1_search

        return top1_search(problem, self.tol, deadline, notes)


def make_property(mode: str, *, epsilon: Optional[float] = None, norm: str = "linf", tol: float = 1e-6) -> Property:
    """The property of ``verify_equivalence``'s ``mode`` / ``epsilon`` / ``norm``."""
    if mode == "top1":
        return Top1(tol)
    eps = tol if mode == "exact" else float(epsilon)
    return L1Gap(eps, tol) if (mode == "epsilon" and norm == "l1") else LinfGap(eps, tol)
