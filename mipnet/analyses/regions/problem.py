"""The counting problem in normalised coordinates, and the layer maps on a region.

Normalisation (exact up to one rounding of the first layer's bias)
------------------------------------------------------------------
Activation patterns do not change under an affine change of the input variables, nor
under a positive scaling of a neuron (scale row i of ``(W^l, b^l)`` by ``1/r_i`` and column
i of ``W^{l+1}`` by ``r_i``: ReLU is positively homogeneous, so every later pre-activation
and the output are unchanged). Before counting:

* the inputs fixed by the domain (``lower == upper``) are folded into the first bias;
* the free inputs are centred on the box and divided by a power of two close to the
  half-width of the box, ``x = m + s u``: the box becomes (about) ``[-1, 1]^n``;
* every hidden neuron is divided by a power of two close to the magnitude of its
  pre-activation over the box (interval arithmetic), so every pre-activation lies in
  about ``[-1, 1]``; the output rows likewise (the normalised network's outputs are
  rescaled: only its patterns are used).

Powers of two make the scalings exact in floating point, so the normalised network has
exactly the patterns of the original one (the translation rounds once). The counts are
then independent of the units of the weights (1e-6 or 1e6) and of the size of the box;
the witnesses are lifted back (``Problem.lift``) and checked on the original network and
domain (:func:`mipnet.core.numerics.check_witnesses`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mipnet.core.domain import Domain, L1BallDomain, as_domain
from mipnet.core.errors import InvalidArgumentError, InvalidDomainError, InvalidNetworkError
from mipnet.core.network import Network
from mipnet.core.numerics import DEFAULT, Tolerances

from .common import check_net

__all__ = ["Problem", "prepare", "reduced_bounds", "layer_maps", "EPS", "L1_MAX_FREE"]

EPS = float(np.finfo(np.float64).eps)
#: an L1 ball domain is counted on exactly (its 2^n facets as polytope rows) up to this many free inputs
L1_MAX_FREE = 12


def _pow2(x: np.ndarray) -> np.ndarray:
    """The power of two nearest to each positive x (1 where x is 0 or not finite)."""
    x = np.asarray(x, dtype=np.float64)
    good = np.isfinite(x) & (x > 0)
    e = np.zeros(x.shape)
    e[good] = np.round(np.log2(x[good]))
    return np.ldexp(1.0, e.astype(np.int64))


@dataclass(frozen=True, eq=False)
class Problem:
    """The network and domain in normalised free coordinates ``u`` (``x[free] = center + scale * u``).

    ``rnet`` takes ``u``; its hidden neurons are scaled by ``1 / neuron_scale`` (powers of two).
    ``lower, upper``: the box in ``u``; ``A, c``: the domain's rows in ``u`` (unit normals).
    """

    net: Network
    domain: Domain
    free: np.ndarray
    x_fixed: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    rnet: Network
    neuron_scale: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    A: Optional[np.ndarray]
    c: Optional[np.ndarray]
    tol: Tolerances
    geo: float

    @property
    def n(self) -> int:
        return int(self.free.size)

    @property
    def radius(self) -> float:
        """Largest |u| in the box (about 1)."""
        return float(np.max(np.maximum(np.abs(self.lower), np.abs(self.upper))))

    def rdomain(self) -> Domain:
        return Domain(self.lower, self.upper, self.A, self.c)

    def lift(self, U) -> np.ndarray:
        """Original input points (N, n0) of normalised free coordinates (N, n)."""
        U = np.atleast_2d(np.asarray(U, dtype=np.float64))
        X = np.repeat(self.x_fixed[None, :], U.shape[0], axis=0)
        X[:, self.free] = self.center + self.scale * U
        return X


def prepare(net, domain, tol: Tolerances = DEFAULT, geo: float = 1e-12, *, l1_box: bool = False) -> Problem:
    """Validate, fold fixed inputs, and normalise (module docstring).

    An L1 ball becomes its facets (:func:`_l1_rows`), rows of the polytope every method works
    on; with more than :data:`L1_MAX_FREE` free inputs that is an error, unless ``l1_box``
    (callers for which a superset of the domain is sound): its enclosing box is then kept.
    """
    net = check_net(net)
    domain = as_domain(domain, net.input_dim)
    lo, hi = domain.lower, domain.upper
    mag = 1.0 + np.maximum(np.abs(lo), np.abs(hi))
    fixed = (hi - lo) <= 1e-12 * mag
    free = np.flatnonzero(~fixed)
    if free.size == 0:
        raise InvalidDomainError(
            "the domain is a single point (lower == upper in every input); "
            "give lower < upper in at least one input"
        )
    x_fixed = np.where(fixed, (lo + hi) / 2, 0.0)
    center = (lo[free] + hi[free]) / 2
    scale = _pow2((hi[free] - lo[free]) / 2)
    x0 = x_fixed.copy()
    x0[free] = center
    lower = (lo[free] - center) / scale
    upper = (hi[free] - center) / scale

    # ---- network in u, hidden neurons scaled by powers of two
    Ws, bs = [], []
    rs = []
    W1, b1 = net.layers[0]
    W = W1[:, free] * scale
    b = b1 + W1 @ x0
    hlo, hhi = lower, upper
    L = net.num_hidden_layers
    for l in range(L + 1):
        if l == L:
            # the output rows too (the counters never read the outputs of the normalised network:
            # the regions' affine maps come from the original one), so no coefficient is huge
            Wp, Wn = np.maximum(W, 0.0), np.minimum(W, 0.0)
            r = _pow2(np.maximum(np.abs(Wp @ hhi + Wn @ hlo + b), np.abs(Wp @ hlo + Wn @ hhi + b)))
            Ws.append(W / r[:, None])
            bs.append(b / r)
            break
        Wp, Wn = np.maximum(W, 0.0), np.minimum(W, 0.0)
        up = Wp @ hhi + Wn @ hlo + b
        dn = Wp @ hlo + Wn @ hhi + b
        with np.errstate(over="ignore", invalid="ignore"):
            r = _pow2(np.maximum(np.abs(up), np.abs(dn)))
        if not (np.all(np.isfinite(up)) and np.all(np.isfinite(dn)) and np.all(np.isfinite(r))):
            raise _overflow(l + 1, W)
        Ws.append(W / r[:, None])
        bs.append(b / r)
        rs.append(r)
        hlo = np.zeros(W.shape[0])
        hhi = np.maximum(up / r, 0.0)
        Wn_, bn_ = net.layers[l + 1]
        with np.errstate(over="ignore"):
            W = Wn_ * r[None, :]
        if not np.all(np.isfinite(W)):
            raise _overflow(l + 2, Wn_)
        b = bn_.copy()
    rnet = Network(Ws, bs)
    nscale = np.concatenate(rs) if rs else np.zeros(0)

    # ---- domain rows in u
    A = c = None
    if domain.has_constraints:
        A = domain.A[:, free] * scale
        c = domain.c - domain.A @ x0
    if isinstance(domain, L1BallDomain):
        A1, c1 = _l1_rows(domain, free, x_fixed, center, scale, lower, upper, l1_box)
        if A1 is not None:
            A = A1 if A is None else np.vstack([A, A1])
            c = c1 if c is None else np.concatenate([c, c1])
    if A is not None:
        nrm = np.linalg.norm(A, axis=1)
        zero = nrm <= 1e-14 * (1.0 + np.abs(c))
        if np.any(zero & (c < -1e-12)):
            raise InvalidDomainError("the domain is empty: a constraint row reads 0 <= c with c < 0")
        A, c, nrm = A[~zero], c[~zero], nrm[~zero]
        A = A / nrm[:, None]
        c = c / nrm
        if A.shape[0] == 0:
            A = c = None
    return Problem(net, domain, free, x_fixed, center, scale, rnet, nscale, lower, upper, A, c, tol, float(geo))


def _overflow(layer: int, W: np.ndarray) -> InvalidNetworkError:
    return InvalidNetworkError(f"layer {layer}: the network's values overflow float64 on the domain "
                               f"(largest |weight| {float(np.abs(W).max(initial=0.0)):.3g}); rescale the network")


def _l1_rows(domain: L1BallDomain, free, x_fixed, center, scale, lower, upper, l1_box: bool):
    """The facets ``sum_i s_i (x_i - l1_center_i) <= l1_radius`` (s in {-1, 1}^n) of an L1 ball as
    rows ``A u <= c`` in the free normalised coordinates (``x = center + scale u``), the fixed inputs'
    distance taken off the radius; facets that no point of the box ``[lower, upper]`` reaches are
    left out. ``(None, None)`` with ``l1_box`` and too many free inputs (the enclosing box stays)."""
    n = int(free.size)
    if n > L1_MAX_FREE:
        if l1_box:
            return None, None
        raise InvalidArgumentError(
            f"an L1Ball domain is supported for at most {L1_MAX_FREE} free inputs (its 2^n facets become "
            f"the rows of the polytope the region counters work on); this one has {n}: count on a Box, "
            "LinfBall or Polytope domain instead"
        )
    x0 = domain.l1_center
    fixed = np.ones(x0.size, dtype=bool)
    fixed[free] = False
    radius = domain.l1_radius - float(np.abs(x_fixed[fixed] - x0[fixed]).sum())
    if not radius > 0:
        raise InvalidDomainError("the domain has no interior: the fixed inputs use up the L1 ball's radius")
    S = 1.0 - 2.0 * ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1)  # every sign vector
    A = S * scale
    c = radius - S @ (center - x0[free])  # one rounding per coordinate in center - x0
    reach = np.maximum(A * lower, A * upper).sum(axis=1)
    slack = 8 * EPS * (np.abs(A) @ np.maximum(np.abs(lower), np.abs(upper)) + np.abs(c))
    keep = reach + slack > c
    return A[keep], c[keep]


def reduced_bounds(prob: Problem, bounds, deadline: Optional[float] = None):
    """LP bounds of the normalised network (or the named method's), or the user's bounds of the
    original one, rescaled. No LP starts after ``deadline`` (a ``time.perf_counter()`` value or
    None; the neurons left keep their symbolic or alpha bounds)."""
    from mipnet.bounds import Bounds, compute_bounds, lp_bounds
    from mipnet.core.bounds import LayerBounds

    if deadline is not None and not math.isfinite(deadline):
        deadline = None
    if bounds is None:
        return lp_bounds(prob.rnet, prob.rdomain(), output=False, deadline=deadline)
    if isinstance(bounds, str):
        return compute_bounds(prob.rnet, prob.rdomain(), method=bounds, deadline=deadline)
    if not isinstance(bounds, Bounds) or len(bounds.layers) != len(prob.net.layers):
        raise InvalidNetworkError(
            "bounds must be a mipnet.bounds.Bounds computed for this network (one entry per layer)"
        )
    off = prob.rnet.hidden_offsets
    layers = []
    for l, lb in enumerate(bounds.layers):
        if l < prob.rnet.num_hidden_layers:
            r = prob.neuron_scale[off[l]:off[l + 1]]
            layers.append(LayerBounds(lb.lower / r, lb.upper / r))
        else:
            layers.append(lb)
    return Bounds(tuple(layers), method=bounds.method)


def layer_maps(W: np.ndarray, b: np.ndarray, on: np.ndarray, A: np.ndarray, c: np.ndarray,
               M: np.ndarray, m: np.ndarray, noise: float, rho: float):
    """The next layer's pre-activations ``A' x + c'`` on a region, with what the geometry needs.

    ``A, c`` are the previous layer's pre-activation maps (rows: neurons) and ``M, m`` their
    magnitudes (the same products with ``|W|``): rounding errors are at most a small multiple
    of them. Returns ``(A', c', M', m', Au, cu, ea, eb, const)``: the unit-normal form
    ``Au x + cu`` (distance to the neuron's hyperplane), absolute error bounds ``ea`` of the
    unit normal and ``eb`` of the offset, and ``const``: neurons whose map has no
    x-dependence above rounding noise (their value ``c'`` is then snapped to 0 when it is
    noise too: identically-zero neurons are off).
    """
    Wo = W * on
    aWo = np.abs(Wo)
    A2 = Wo @ A
    c2 = Wo @ c + b
    M2 = aWo @ M
    m2 = aWo @ m + np.abs(b)
    nrm = np.sqrt(np.einsum("ij,ij->i", A2, A2))
    mnrm = np.sqrt(np.einsum("ij,ij->i", M2, M2))
    const = nrm <= noise * mnrm
    c2 = np.where(np.abs(c2) <= noise * m2, 0.0, c2)
    inv = 1.0 / np.where(const, 1.0, nrm)
    Au = A2 * inv[:, None]
    cu = c2 * inv
    ea = rho * mnrm * inv
    eb = rho * m2 * inv
    return A2, c2, M2, m2, Au, cu, ea, eb, const
