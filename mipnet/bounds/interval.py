"""Interval-arithmetic bounds (the first step of MIPVerify's progression, Tjeng et al. 2019).

With h in [hl, hu], mid = (hl + hu) / 2, rad = (hu - hl) / 2:
y in [W mid + b - |W| rad, W mid + b + |W| rad], widened by the rounding error of the products.
"""

from __future__ import annotations

import time

import numpy as np

from mipnet.core.bounds import Bounds, LayerBounds
from mipnet.core.domain import as_domain
from mipnet.core.network import Network

__all__ = ["interval_layer", "interval_bounds"]


def interval_layer(W, b, hl, hu) -> tuple[np.ndarray, np.ndarray]:
    mid = (hl + hu) / 2
    rad = (hu - hl) / 2
    c = W @ mid + b
    r = np.abs(W) @ rad
    # widen by the rounding error of the two products (sound in floating point)
    eps = 8 * np.finfo(np.float64).eps * (np.abs(W) @ (np.abs(mid) + rad) + np.abs(b))
    return c - r - eps, c + r + eps


def interval_bounds(net: Network, domain) -> Bounds:
    """Interval-arithmetic bounds of every layer over the domain's bounding box."""
    t0 = time.perf_counter()
    domain = as_domain(domain, net.input_dim)
    hl, hu = domain.lower, domain.upper
    layers = []
    for l, (W, b) in enumerate(net.layers):
        lo, hi = interval_layer(W, b, hl, hu)
        layers.append(LayerBounds(lo, hi))
        hl, hu = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    return Bounds(tuple(layers), "ia", time.perf_counter() - t0)
