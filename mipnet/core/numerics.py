"""One numerical policy: tolerances, the snapped forward pass and the witness check.

Every "exact", "proven" or "equivalent" that mipnet reports rests on witnesses (input
points) that pass :func:`check_witnesses`, a float64 forward pass with one rule for what
counts as zero. The tolerances are *relative* to the magnitudes involved, so the policy
behaves the same for weights around 1e-6 and for boxes of +-1e12:

* a pre-activation ``y_i = W_i h + b_i`` computed in float64 has a rounding error of a few
  ulps of ``s_i = |W_i| |h| + |b_i|``; ``|y_i| <= noise * s_i`` is *floating-point zero*
  (neither on nor off: its sign is not a fact about the network);
* a point lies in the domain if it violates no bound by more than
  ``domain * (1 + |bound|)`` (and no row ``a.x <= c`` by more than
  ``domain * (1 + |a| |x| + |c|)``).

Analyses that rest on witnesses take a :class:`Tolerances` (default :data:`DEFAULT`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mipnet.core.domain import Domain
from mipnet.core.network import Network

__all__ = [
    "Tolerances",
    "DEFAULT",
    "preactivation_scales",
    "snapped_preactivations",
    "snapped_pattern",
    "in_domain",
    "check_witnesses",
]


@dataclass(frozen=True)
class Tolerances:
    """Relative tolerances of the numerical policy (see the module docstring).

    Parameters
    ----------
    noise : float
        A pre-activation with ``|y| <= noise * (|W| |h| + |b|)`` is floating-point zero
        (default 1e-12, about 5000 ulps: above the error of any float64 dot product of
        fewer than ~10^3 terms, far below any margin a solver reports).
    domain : float
        Relative slack of the domain's bounds and rows for a witness (default 1e-9).
    """

    noise: float = 1e-12
    domain: float = 1e-9

    def __post_init__(self) -> None:
        for name in ("noise", "domain"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.floating)) and 0 <= float(v) < 1e-2):
                raise ValueError(f"Tolerances.{name} must be a number in [0, 0.01), got {v!r}")


#: The tolerances every analysis uses unless given others.
DEFAULT = Tolerances()


def preactivation_scales(net: Network, X) -> list[np.ndarray]:
    """``|W^l| |h^{l-1}| + |b^l|`` for every hidden layer at the inputs X: the magnitude
    against which the rounding error of ``y^l`` is measured."""
    h = np.atleast_2d(np.asarray(X, dtype=np.float64))
    out = []
    for W, b in net.layers[:-1]:
        out.append(np.abs(h) @ np.abs(W).T + np.abs(b))
        h = np.maximum(h @ W.T + b, 0.0)
    return out


def snapped_preactivations(net: Network, X, tol: Tolerances = DEFAULT) -> list[np.ndarray]:
    """Hidden pre-activations at X (batched), with floating-point zeros set to exactly 0.

    The next layer is fed with the snapped values, so a neuron that is identically zero
    on a region (``h_3 - h_4 + 1`` with ``h_4 = h_3 + 1`` there) reads as 0, not +-1e-16.
    """
    h = np.atleast_2d(np.asarray(X, dtype=np.float64))
    out = []
    for W, b in net.layers[:-1]:
        y = h @ W.T + b
        noise = tol.noise * (np.abs(h) @ np.abs(W).T + np.abs(b))
        y = np.where(np.abs(y) <= noise, 0.0, y)
        out.append(y)
        h = np.maximum(y, 0.0)
    return out


def snapped_pattern(net: Network, X, tol: Tolerances = DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """``(Y, P)``: snapped hidden pre-activations concatenated (N, neurons), and the
    activation patterns ``Y > 0`` (zero is off, as in :meth:`Network.activation_pattern`)."""
    X2 = np.atleast_2d(np.asarray(X, dtype=np.float64))
    ys = snapped_preactivations(net, X2, tol)
    if not ys:
        return np.zeros((X2.shape[0], 0)), np.zeros((X2.shape[0], 0), dtype=bool)
    Y = np.concatenate(ys, axis=1)
    return Y, Y > 0


def in_domain(domain: Domain, X, tol: Tolerances = DEFAULT) -> np.ndarray:
    """Mask of the points of X (N, n) inside ``domain`` within the relative slack ``tol.domain``."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    slack_lo = tol.domain * (1.0 + np.abs(domain.lower))
    slack_hi = tol.domain * (1.0 + np.abs(domain.upper))
    ok = np.all((X >= domain.lower - slack_lo) & (X <= domain.upper + slack_hi), axis=1)
    if domain.has_constraints:
        lhs = X @ domain.A.T
        scale = 1.0 + np.abs(X) @ np.abs(domain.A).T + np.abs(domain.c)
        ok &= np.all(lhs <= domain.c + tol.domain * scale, axis=1)
    return ok


def check_witnesses(net: Network, domain: Domain, X, patterns=None, *, strict: bool = True,
                    tol: Tolerances = DEFAULT) -> np.ndarray:
    """The one witness check: a mask of the points of X that are valid witnesses.

    A point passes if it lies in ``domain`` (:func:`in_domain`) and, when ``patterns`` are
    given, its snapped activation pattern equals its pattern; with ``strict`` (default)
    also no hidden pre-activation may be floating-point zero, so the point lies in the
    *interior* of its region (a witness of a full-dimensional region, not of a boundary).
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    ok = in_domain(domain, X, tol)
    if patterns is not None:
        P = np.atleast_2d(np.asarray(patterns, dtype=bool))
        Y, Q = snapped_pattern(net, X, tol)
        ok &= np.all(Q == P, axis=1)
        if strict:
            ok &= np.all(Y != 0.0, axis=1)
    return ok
