"""Back-substitution bounds (:func:`~mipnet.bounds.symbolic_layers`) for many boxes at once.

The input branch and bound (:mod:`mipnet.analyses.bab`) bounds thousands of small boxes of one
network; one box of a 5-input, 300-ReLU pair costs microseconds of arithmetic and milliseconds
of Python. Here the boxes are stacked (batch dimension first) and every step of the
back-substitution is one numpy operation for all of them:

* the rows still to bound are *ragged*: box ``b``'s neuron ``i`` of layer k is back-substituted
  only where the parent box left it unstable (``initial``, as in :func:`symbolic_layers`); the
  rows of all boxes sit in one ``(R, n)`` matrix with their box index ``bi``, the relaxation of
  each row's own box gathered per row, and each product ``Lambda W_j`` is one matrix product;
* the formulas, rounding-error terms included, are those of :func:`symbolic_layers`, so box b's
  bounds equal ``symbolic_layers(net, Domain(lower[b], upper[b]), initial=...)`` up to the
  order of floating-point sums (a few ulps; both are sound).

:func:`linear_bounds_batch` back-substitutes given rows (e.g. the rows ``f - g`` of a
difference network, split per net) to linear functions of x *without* concretising them, so
that two networks' parts can be added before the maximum over the box is taken.
"""

from __future__ import annotations

import numpy as np

from mipnet.bounds.interval import UNIT_ROUNDOFF, gamma, rounding_error
from mipnet.core.network import Network

__all__ = ["interval_layers_batch", "symbolic_layers_batch", "linear_bounds_batch", "concretize_batch"]

_TINY = float(np.finfo(np.float64).tiny)


def interval_layers_batch(net: Network, lower: np.ndarray, upper: np.ndarray) -> list:
    """:func:`~mipnet.bounds.interval_layers` for boxes ``lower[b], upper[b]`` (shape (N, n0)):
    a list of ``(lo, hi)`` arrays of shape (N, n_l) per affine layer."""
    hl, hu = lower, upper
    out = []
    for W, b in net.layers:
        absW = np.abs(W)
        mid = (hl + hu) / 2
        rad = (hu - hl) / 2
        c = mid @ W.T + b
        r = rad @ absW.T
        n = W.shape[1]
        m = (np.abs(mid) + rad) @ absW.T + np.abs(b)
        eps = 2.0 * gamma(n + 2) * m + np.where(m > 0, (n + 2) * _TINY, 0.0)
        lo, hi = c - r - eps, c + r + eps
        out.append((lo, hi))
        hl, hu = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    return out


def _relaxation(lo: np.ndarray, hi: np.ndarray):
    """:func:`~mipnet.bounds.relu_relaxation` and its line error, batched: ``(sl, su, tu, e_line)``."""
    active = lo >= 0.0
    inactive = hi <= 0.0
    unstable = ~active & ~inactive
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(unstable, hi / np.where(unstable, hi - lo, 1.0), 0.0)
    su = np.where(unstable, s, np.where(active, 1.0, 0.0))
    tu = np.where(unstable, -s * lo, 0.0)
    sl = np.where(active | (unstable & (hi >= -lo)), 1.0, 0.0)
    m = np.maximum(np.abs(lo), np.abs(hi))
    e_line = np.where(unstable, 4.0 * gamma(3) * su * m, 0.0)
    return sl, su, tu, e_line


def _rowdot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.einsum("rn,rn->r", A, B)


def _back(net: Network, relax: list, k: int, bi: np.ndarray, Lu, Ll, cu, cl, eu, el):
    """Push the rows ``Lu h + cu`` (upper) and ``Ll h + cl`` (lower) over ``h = h^{k-1}`` (the
    post-activation of hidden layer k-1; k = 0: the input) back to the input, exactly as
    :func:`symbolic_layers` does; ``relax[j]`` holds hidden layer j's batched relaxation."""
    u = UNIT_ROUNDOFF
    for j in range(k - 1, -1, -1):
        sl, su, tu, e_line, ymag, wmag = relax[j]
        g = gamma(su.shape[1] + 1)
        SL, SU, TU = sl[bi], su[bi], tu[bi]
        Lu_p, Lu_n = np.maximum(Lu, 0), np.minimum(Lu, 0)
        Ll_p, Ll_n = np.maximum(Ll, 0), np.minimum(Ll, 0)
        T = e_line[bi] + g * TU
        eu = eu + _rowdot(Lu_p, T) + g * np.abs(cu)
        el = el + _rowdot(-Ll_n, T) + g * np.abs(cl)
        cu = cu + _rowdot(Lu_p, TU)
        cl = cl + _rowdot(Ll_n, TU)
        Lu = Lu_p * SU + Lu_n * SL
        Ll = Ll_p * SL + Ll_n * SU
        step = u * ymag[bi] + g * wmag[bi]
        eu = eu + _rowdot(np.abs(Lu), step) + g * np.abs(cu)
        el = el + _rowdot(np.abs(Ll), step) + g * np.abs(cl)
        Wj, bj = net.layers[j]
        cu, cl = cu + Lu @ bj, cl + Ll @ bj
        Lu, Ll = Lu @ Wj, Ll @ Wj
    return Lu, Ll, cu, cl, eu, el


def concretize_batch(Lu, Ll, cu, cl, eu, el, xl, xu, bi):
    """The maximum of ``Lu x + cu`` and minimum of ``Ll x + cl`` over each row's box
    ``[xl[bi], xu[bi]]``, widened by the accumulated errors ``eu``, ``el`` and the rounding of
    this step (as :func:`symbolic_layers`): ``(lo, hi)`` per row."""
    XL, XU = xl[bi], xu[bi]
    xmag = np.maximum(np.abs(XL), np.abs(XU))
    g0 = gamma(xl.shape[1] + 2)
    hi = _rowdot(np.maximum(Lu, 0), XU) + _rowdot(np.minimum(Lu, 0), XL) + cu
    lo = _rowdot(np.maximum(Ll, 0), XL) + _rowdot(np.minimum(Ll, 0), XU) + cl
    eu = eu + g0 * (_rowdot(np.abs(Lu), xmag) + np.abs(cu))
    el = el + g0 * (_rowdot(np.abs(Ll), xmag) + np.abs(cl))
    lo_r = lo - 2.0 * el - np.where(el > 0, _TINY, 0.0)
    hi_r = hi + 2.0 * eu + np.where(eu > 0, _TINY, 0.0)
    return lo_r, hi_r


def symbolic_layers_batch(net: Network, lower: np.ndarray, upper: np.ndarray, initial=None,
                          hidden_only: bool = False):
    """:func:`~mipnet.bounds.symbolic_layers` on N boxes at once.

    ``lower``, ``upper``: (N, n0); ``initial`` (optional): per affine layer ``(lo, hi)`` of
    shape (N, n_l), sound on a set containing box b (its parent box): intersected in, and a
    hidden neuron it proves stable is not back-substituted (as in :func:`symbolic_layers`).
    Returns ``(layers, relax)``: per affine layer ``(lo, hi)`` (N, n_l) (hidden layers only
    when ``hidden_only``), and the batched relaxation of every hidden layer (what
    :func:`linear_bounds_batch` needs).
    """
    xl = np.asarray(lower, dtype=np.float64)
    xu = np.asarray(upper, dtype=np.float64)
    N = xl.shape[0]
    ia = interval_layers_batch(net, xl, xu)
    xmag = np.maximum(np.abs(xl), np.abs(xu))
    n_layers = len(net.layers)
    stop = n_layers - 1 if hidden_only else n_layers
    layers, relax = [], []
    hmag_prev = xmag
    for k in range(stop):
        W, b = net.layers[k]
        n_out = W.shape[0]
        if initial is not None and k < n_layers - 1:
            il_lo, il_hi = initial[k]
            mask = (il_lo < 0) & (il_hi > 0)
        else:
            mask = np.ones((N, n_out), dtype=bool)
        bi, ri = np.nonzero(mask)
        lo, hi = ia[k][0].copy(), ia[k][1].copy()
        if bi.size:
            Lu = W[ri]
            cu = b[ri]
            z = np.zeros(bi.size)
            Lu, Ll, cu, cl, eu, el = _back(net, relax, k, bi, Lu, Lu, cu, cu, z, z)
            lo_r, hi_r = concretize_batch(Lu, Ll, cu, cl, eu, el, xl, xu, bi)
            lo[bi, ri] = np.maximum(lo[bi, ri], lo_r)
            hi[bi, ri] = np.minimum(hi[bi, ri], hi_r)
        if initial is not None:
            lo, hi = np.maximum(lo, initial[k][0]), np.minimum(hi, initial[k][1])
        hi = np.maximum(hi, lo)
        layers.append((lo, hi))
        if k < n_layers - 1:
            sl, su, tu, e_line = _relaxation(lo, hi)
            ymag = np.maximum(np.abs(lo), np.abs(hi))
            wmag = hmag_prev @ np.abs(W).T + np.abs(b)
            relax.append((sl, su, tu, e_line, ymag, wmag))
            hmag_prev = np.maximum(hi, 0.0)
    return layers, relax


def linear_bounds_batch(net: Network, relax: list, C: np.ndarray, c0: np.ndarray, N: int):
    """Linear bounds in x of the rows ``C h + c0`` over ``h``, the last hidden layer's
    post-activation of ``net`` (``relax`` from :func:`symbolic_layers_batch`), on each of N
    boxes: ``(Lu, Ll, cu, cl, eu, el, bi)`` with ``Ll x + cl - 2 el <= C h + c0 <= Lu x + cu + 2 eu``
    (rows box-major: row ``b * len(C) + r``; ``bi`` the box of each row). A net without
    hidden layers: ``h = x``."""
    r = C.shape[0]
    bi = np.repeat(np.arange(N), r)
    Lu = np.tile(C, (N, 1))
    cu = np.tile(np.asarray(c0, dtype=np.float64), N)
    z = np.zeros(bi.size)
    Lu, Ll, cu, cl, eu, el = _back(net, relax, len(relax), bi, Lu, Lu, cu, cu, z, z)
    return Lu, Ll, cu, cl, eu, el, bi
