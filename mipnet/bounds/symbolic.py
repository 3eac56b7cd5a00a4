"""Back-substitution bounds: DeepPoly (Singh et al. POPL 2019) / CROWN (Zhang et al. NeurIPS 2018).

Each bound is a linear function of x obtained by pushing the linear ReLU relaxations back to
the input, maximised over the domain's box in closed form; intersected with interval bounds.

Floating point: every product and sum of the back-substitution is rounded, and cancellation
can make the final coefficients far smaller than the intermediate ones, so an error bound
relative to the *final* function would not be sound. Each step instead adds the rounding error
of its own operations, measured on the magnitudes it multiplies (``|Lambda| |W| |h|``,
``|Lambda| |b|``, the relaxation's coefficients), using the bounds already known for
``|y^j|`` and ``|h^j|`` (see :func:`mipnet.bounds.interval.rounding_error`).
"""

from __future__ import annotations

import time

import numpy as np

from mipnet.bounds.interval import UNIT_ROUNDOFF, gamma, interval_layers
from mipnet.core.bounds import Bounds, LayerBounds, NeuronState, classify_neurons
from mipnet.core.domain import Domain, as_domain
from mipnet.core.network import Network

__all__ = ["symbolic_bounds", "symbolic_layers", "relu_relaxation", "relaxation_lines"]

_TINY = float(np.finfo(np.float64).tiny)


def relu_relaxation(lb: LayerBounds):
    """Linear ReLU relaxation per neuron: slopes/intercepts of lower and upper lines.

    Returns ``(sl, su, tu)``: ``sl y <= relu(y) <= su y + tu`` for y in ``[lower, upper]``.
    """
    return relaxation_lines(lb.lower, lb.upper)[:3]


def relaxation_lines(lower: np.ndarray, upper: np.ndarray):
    """:func:`relu_relaxation` on bound arrays of any shape (e.g. one row per box), with the line
    error: ``(sl, su, tu, e_line)``.

    ``e_line``: how far the float64 upper line ``su y + tu`` may lie below the exact chord.
    ``s = U / (U - L)`` and ``t = -s L`` carry three roundings; on ``|y| <= m`` the line moves
    by at most ``gamma_3 s (|y| + 2 |L|) <= 3 gamma_3 s m``; stable neurons have exact lines.
    """
    L, U = lower, upper
    states = classify_neurons(L, U)
    unstable = states == NeuronState.UNSTABLE
    active = states == NeuronState.ACTIVE
    su = np.where(active, 1.0, 0.0)
    tu = np.zeros_like(L)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(unstable, U / np.where(unstable, U - L, 1.0), 0.0)
    su = np.where(unstable, s, su)
    tu = np.where(unstable, -s * L, tu)
    # CROWN's adaptive lower line: h >= y when U >= -L, else h >= 0
    sl = np.where(active | (unstable & (U >= -L)), 1.0, 0.0)
    m = np.maximum(np.abs(L), np.abs(U))
    e_line = np.where(unstable, 4.0 * gamma(3) * su * m, 0.0)
    return sl, su, tu, e_line


def symbolic_layers(net: Network, domain: Domain, initial=None) -> list[LayerBounds]:
    """Back-substitution bounds of every affine layer on a (validated) domain.

    ``initial`` (optional): sound bounds of every affine layer on a set containing the domain
    (e.g. the parent box of an input branch and bound). They are intersected into each layer
    before its relaxation is formed, and a hidden neuron they already prove stable is not
    back-substituted again (its bounds are ``initial`` intersected with the interval bounds; its
    relaxation is exact either way), so a sub-box costs only its parent's unstable rows.

    For layer k, ``y^k = Lambda h^{k-1} + const`` is pushed back through every
    earlier layer, replacing each ReLU by its upper line where the coefficient
    is positive (lower line where negative) for the upper bound, and the other
    way round for the lower bound; the final linear function of x is
    maximised/minimised over the domain's box in closed form, widened by the
    accumulated rounding error and intersected with interval bounds.
    """
    ia = interval_layers(net, domain.lower, domain.upper)
    xmag = np.maximum(np.abs(domain.lower), np.abs(domain.upper))
    layers: list[LayerBounds] = []
    relax = []  # per hidden layer j: (sl, su, tu, line error, |y^j| bound, |W_j| |h^{j-1}| + |b_j|)
    hmag_prev = xmag
    for k, (W_full, b_full) in enumerate(net.layers):
        if k == 0 and domain.is_box:
            # over a box the first layer's linear functions are the interval bounds (the same
            # closed form up to the rounding terms): nothing to back-substitute
            lo, hi = ia[0].lower.copy(), ia[0].upper.copy()
            if initial is not None:
                lo, hi = np.maximum(lo, initial[0].lower), np.minimum(hi, initial[0].upper)
        else:
            lo, hi = _back_substitute(net, domain, k, relax, ia, initial)
        lb = LayerBounds(lo, np.maximum(hi, lo))
        layers.append(lb)
        if k < len(net.layers) - 1:
            sl, su, tu, e_line = relaxation_lines(lb.lower, lb.upper)
            ymag = np.maximum(np.abs(lb.lower), np.abs(lb.upper))
            wmag = np.abs(W_full) @ hmag_prev + np.abs(b_full)
            relax.append((sl, su, tu, e_line, ymag, wmag))
            hmag_prev = np.maximum(lb.upper, 0.0)
    return layers


def _back_substitute(net, domain, k, relax, ia, initial):
    """Layer k's bounds by back-substitution through the relaxations ``relax`` of the layers
    before it (see :func:`symbolic_layers`), intersected with ``ia[k]`` and ``initial[k]``."""
    W_full, b_full = net.layers[k]
    xl, xu = domain.lower, domain.upper
    u = UNIT_ROUNDOFF
    n_layers = len(net.layers)
    rows = None
    if initial is not None and k < n_layers - 1:
        il = initial[k]
        rows = np.flatnonzero((il.lower < 0) & (il.upper > 0))
        if rows.size == W_full.shape[0]:
            rows = None
    W, b = (W_full, b_full) if rows is None else (W_full[rows], b_full[rows])
    # the upper bounds of y (first n rows) and of -y (the lower bounds, negated) as one stack:
    # L h + c over h = h^{k-1}; e: accumulated rounding errors (negation is exact)
    n = W.shape[0]
    L = np.concatenate([W, -W])
    c = np.concatenate([b, -b])
    e = np.zeros(2 * n)
    for j in range(k - 1, -1, -1):
        sl, su, tu, e_line, ymag, wmag = relax[j]
        g = gamma(su.size + 1)
        P, N = np.maximum(L, 0), np.minimum(L, 0)
        # relaxation: the upper line where the coefficient is positive, the lower one elsewhere
        e += P @ (e_line + g * tu) + g * np.abs(c)
        c = c + P @ tu
        L = P * su + N * sl
        # y^j = W_j h^{j-1} + b_j: the products Lambda W_j and Lambda b_j, and the rounded Lambda
        e += np.abs(L) @ (u * ymag + g * wmag) + g * np.abs(c)
        Wj, bj = net.layers[j]
        c = c + L @ bj
        L = L @ Wj
    # max over the box in midpoint-radius form, L mid + |L| rad: |mid| + rad >= |x| on the box up
    # to the rounding of mid and rad, which the doubled gamma term covers (as in interval_layer)
    g0 = gamma(xl.size + 2)
    mid, rad = (xl + xu) / 2, (xu - xl) / 2
    absL = np.abs(L)
    up = L @ mid + absL @ rad + c
    e += g0 * (absL @ (np.abs(mid) + rad) + np.abs(c))
    if not domain.is_box:  # hook: the exact support of an L1 ball (Domain.support), rounding widened
        up = np.minimum(up, domain.support(L) + c)
        g1 = gamma(2 * xl.size + 4)
        e += 3 * g1 * (absL @ (np.abs(mid) + rad) + np.abs(c))
    # doubled: the error sums are rounded too
    up = up + 2.0 * e + np.where(e > 0, _TINY, 0.0)
    lo_r, hi_r = -up[n:], up[:n]
    lo, hi = ia[k].lower.copy(), ia[k].upper.copy()
    sel = slice(None) if rows is None else rows
    lo[sel] = np.maximum(lo[sel], lo_r)
    hi[sel] = np.minimum(hi[sel], hi_r)
    if initial is not None:
        lo, hi = np.maximum(lo, initial[k].lower), np.minimum(hi, initial[k].upper)
    return lo, hi


def symbolic_bounds(net: Network, domain) -> Bounds:
    """Back-substitution (DeepPoly/CROWN) bounds, intersected with interval bounds (see
    :func:`symbolic_layers`)."""
    t0 = time.perf_counter()
    domain = as_domain(domain, net.input_dim)
    return Bounds(tuple(symbolic_layers(net, domain)), "symbolic", time.perf_counter() - t0)
