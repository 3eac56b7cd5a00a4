"""Interval-arithmetic bounds (the first step of MIPVerify's progression, Tjeng et al. 2019),
and the rounding-error bound that every bound of :mod:`mipnet.bounds` is widened by.

With h in [hl, hu], mid = (hl + hu) / 2, rad = (hu - hl) / 2:
y in [W mid + b - |W| rad, W mid + b + |W| rad], widened by the rounding error of the products.

Rounding errors (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., Thm 3.1
and Sec. 3.5): an n-term float64 dot product ``fl(w . h)`` differs from ``w . h`` by at most
``gamma_n |w| . |h|`` with ``gamma_n = n u / (1 - n u)``, ``u = 2^-53``, whatever the order of
summation (BLAS blocking included). A pre-activation ``y = W h + b`` over ``|h| <= m`` is
thus off by at most ``gamma_{n+1} (|W| m + |b|)``: the error is relative to the *magnitudes*
``|W| |h| + |b|``, not to ``|y|`` (which cancellation can make arbitrarily small).
"""

from __future__ import annotations

import time

import numpy as np

from mipnet.core.bounds import Bounds, LayerBounds
from mipnet.core.domain import Domain, as_domain
from mipnet.core.network import Network

__all__ = ["UNIT_ROUNDOFF", "gamma", "rounding_error", "interval_layer", "interval_layers", "interval_bounds"]

#: u = 2^-53, the unit roundoff of float64 (round to nearest).
UNIT_ROUNDOFF = float(np.finfo(np.float64).eps) / 2
_TINY = float(np.finfo(np.float64).tiny)


def gamma(n: int) -> float:
    """``gamma_n = n u / (1 - n u)``: relative error bound of an n-term float64 sum or dot product."""
    nu = n * UNIT_ROUNDOFF
    return nu / (1.0 - nu)


def rounding_error(absW: np.ndarray, mag: np.ndarray, absb: np.ndarray) -> np.ndarray:
    """A bound on the float64 rounding error of ``W h + b`` (and of its interval form) for ``|h| <= mag``.

    ``2 gamma_{n+2} (|W| mag + |b|)`` with n the fan-in (``absW`` holds ``|W|``, ``absb``
    ``|b|``): ``gamma_{n+1}`` covers the dot product and the bias, the factor 2 and the
    extra term cover the rounding of this bound itself and of the final additions that
    apply it; a few multiples of the smallest normal number cover underflow (an exact zero,
    all terms zero, stays exact).
    """
    n = absW.shape[1]
    m = absW @ mag + absb
    return 2.0 * gamma(n + 2) * m + np.where(m > 0, (n + 2) * _TINY, 0.0)


def interval_layer(W, b, hl, hu) -> tuple[np.ndarray, np.ndarray]:
    """Sound bounds on ``W h + b`` for every h with ``hl <= h <= hu`` (float64 rounding included)."""
    absW = np.abs(W)
    mid = (hl + hu) / 2
    rad = (hu - hl) / 2
    c = W @ mid + b
    r = absW @ rad
    # |mid| + rad >= |h| on the box, up to the rounding of mid and rad (covered by rounding_error)
    eps = rounding_error(absW, np.abs(mid) + rad, np.abs(b))
    return c - r - eps, c + r + eps


def interval_layers(net: Network, lower: np.ndarray, upper: np.ndarray) -> list[LayerBounds]:
    """Interval bounds of every affine layer for inputs in the box ``[lower, upper]`` (no checks)."""
    hl, hu = lower, upper
    layers = []
    for W, b in net.layers:
        lo, hi = interval_layer(W, b, hl, hu)
        layers.append(LayerBounds(lo, hi))
        hl, hu = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    return layers


def interval_bounds(net: Network, domain) -> Bounds:
    """Interval-arithmetic bounds of every layer over the domain's bounding box."""
    t0 = time.perf_counter()
    domain: Domain = as_domain(domain, net.input_dim)
    layers = interval_layers(net, domain.lower, domain.upper)
    return Bounds(tuple(layers), "ia", time.perf_counter() - t0)
