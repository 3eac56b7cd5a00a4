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

A neuron can be *identically* zero on a region: its local affine map ``G_i x + g_i`` on
the region's activation pattern is zero (e.g. all-zero weights and bias, or
``h_3 - h_4 + 1`` where ``h_4 = h_3 + 1``). Its pre-activation is then 0 at every point of
the region (it is off there, as in :meth:`~mipnet.core.network.Network.activation_pattern`),
so no point of the region can have it non-zero. :func:`zero_map_mask` finds such neurons
(the map computed in float64, entries within ``noise`` of the magnitude of their terms
snapped to 0, as the forward pass snaps values) and the strict witness check exempts them.

Analyses that rest on witnesses take a :class:`Tolerances` (default :data:`DEFAULT`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from mipnet.core.domain import Domain, L1BallDomain
from mipnet.core.network import Network

__all__ = [
    "Tolerances",
    "DEFAULT",
    "preactivation_scales",
    "snapped_preactivations",
    "snapped_pattern",
    "in_domain",
    "pattern_maps",
    "zero_map_mask",
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


def in_domain(domain: Optional[Domain], X, tol: Tolerances = DEFAULT) -> np.ndarray:
    """Mask of the points of X (N, n) inside ``domain`` within the relative slack ``tol.domain``.

    ``domain=None`` accepts every point (callers whose points lie in their set by
    construction, e.g. on a slice of the input space).
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    if domain is None:
        return np.ones(X.shape[0], dtype=bool)
    slack_lo = tol.domain * (1.0 + np.abs(domain.lower))
    slack_hi = tol.domain * (1.0 + np.abs(domain.upper))
    ok = np.all((X >= domain.lower - slack_lo) & (X <= domain.upper + slack_hi), axis=1)
    if domain.has_constraints:
        lhs = X @ domain.A.T
        scale = 1.0 + np.abs(X) @ np.abs(domain.A).T + np.abs(domain.c)
        ok &= np.all(lhs <= domain.c + tol.domain * scale, axis=1)
    if isinstance(domain, L1BallDomain):  # sum |x - center| <= radius, same relative slack
        dist = domain.l1_distance(X)
        ok &= dist <= domain.l1_radius + tol.domain * (1.0 + domain.l1_radius + np.abs(X).sum(axis=1))
    return ok


def pattern_maps(net: Network, patterns, tol: Tolerances = DEFAULT, *,
                 max_elems: float = 2e7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hidden pre-activations as affine maps of the input on the regions of ``patterns``.

    Returns ``(G, g, zero)`` with shapes (P, N, n0), (P, N), (P, N): on the region of
    pattern p, neuron i's pre-activation is ``G[p, i] @ x + g[p, i]``. Entries within
    ``tol.noise`` of the magnitude of the terms they sum (``|W| |G_prev|``, ``|W| |g_prev| + |b|``)
    are snapped to 0, the forward pass's rule; ``zero[p, i]`` says the whole map is 0
    (the neuron is identically zero on that region). Batched, in chunks of ``max_elems``.
    """
    P = np.atleast_2d(np.asarray(patterns, dtype=bool))
    n0, N = net.input_dim, net.num_hidden_neurons
    G = np.zeros((P.shape[0], N, n0))
    g = np.zeros((P.shape[0], N))
    off = net.hidden_offsets
    step = max(1, int(max_elems // (max(max(net.widths), 1) * max(n0, 1) * 2)))
    for s0 in range(0, P.shape[0], step):
        pat = P[s0:s0 + step]
        k = pat.shape[0]
        J = np.broadcast_to(np.eye(n0), (k, n0, n0))
        Jabs = J
        c = np.zeros((k, n0))
        cabs = c
        for l, (W, b) in enumerate(net.layers[:-1]):
            aW = np.abs(W)
            Gl = np.einsum("ij,pjk->pik", W, J)
            Ga = np.einsum("ij,pjk->pik", aW, Jabs)
            gl = c @ W.T + b
            ga = cabs @ aW.T + np.abs(b)
            Gl[np.abs(Gl) <= tol.noise * Ga] = 0.0
            gl[np.abs(gl) <= tol.noise * ga] = 0.0
            G[s0:s0 + k, off[l]:off[l + 1]] = Gl
            g[s0:s0 + k, off[l]:off[l + 1]] = gl
            on = pat[:, off[l]:off[l + 1]]
            J, Jabs = Gl * on[:, :, None], Ga * on[:, :, None]
            c, cabs = gl * on, ga * on
    zero = ~np.any(G != 0.0, axis=2) & (g == 0.0)
    return G, g, zero


def zero_map_mask(net: Network, patterns, tol: Tolerances = DEFAULT) -> np.ndarray:
    """Mask (P, N): neurons whose pre-activation is identically zero on the region of each pattern."""
    return pattern_maps(net, patterns, tol)[2]


def check_witnesses(net: Network, domain: Optional[Domain], X, patterns=None, *, strict: bool = True,
                    tol: Tolerances = DEFAULT) -> np.ndarray:
    """The one witness check: a mask of the points of X that are valid witnesses.

    A point passes if it lies in ``domain`` (:func:`in_domain`; ``None``: no domain test)
    and, when ``patterns`` are given, its snapped activation pattern equals its pattern.
    With ``strict`` (default) the point must also lie in the *interior* of its region (a
    witness of a full-dimensional region, not of a boundary): no hidden pre-activation may
    be floating-point zero, except for neurons that are identically zero on the region
    (:func:`zero_map_mask`): those are 0 on the whole region, so every point of it has them
    at 0 and they bound nothing.
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    ok = in_domain(domain, X, tol)
    if patterns is not None:
        P = np.atleast_2d(np.asarray(patterns, dtype=bool))
        Y, Q = snapped_pattern(net, X, tol)
        ok &= np.all(Q == P, axis=1)
        if strict:
            Yz = Y == 0.0
            rows = np.flatnonzero(ok & np.any(Yz, axis=1))
            if rows.size:
                zero = zero_map_mask(net, Q[rows], tol)
                ok[rows] = ~np.any(Yz[rows] & ~zero, axis=1)
    return ok
