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

from mipnet.bounds.interval import UNIT_ROUNDOFF, gamma
from mipnet.bounds.symbolic import relaxation_lines
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


def _rowdot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.einsum("rn,rn->r", A, B)


#: rows that :func:`_back` pushes back together: a block's (rows x width) arrays stay in cache (3,200
#: rows of a 100-wide layer, two layers back: 40.7 ms in one piece, 10.3 ms in blocks of 512)
BACK_ROWS = 512


def _back(net: Network, relax: list, k: int, bi: np.ndarray, Lu, Ll, cu, cl, eu, el):
    """:func:`_back_block` on blocks of :data:`BACK_ROWS` rows. Each row's result depends on that row
    alone: the same values up to the order in which BLAS sums a product with fewer rows (a few
    ulps; the rounding terms bound any order, so both are sound)."""
    R = bi.size
    if R <= BACK_ROWS:
        return _back_block(net, relax, k, bi, Lu, Ll, cu, cl, eu, el)
    parts = [_back_block(net, relax, k, bi[s:s + BACK_ROWS], Lu[s:s + BACK_ROWS], Ll[s:s + BACK_ROWS],
                         cu[s:s + BACK_ROWS], cl[s:s + BACK_ROWS], eu[s:s + BACK_ROWS], el[s:s + BACK_ROWS])
             for s in range(0, R, BACK_ROWS)]
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(6))


def _back_block(net: Network, relax: list, k: int, bi: np.ndarray, Lu, Ll, cu, cl, eu, el):
    """Push the rows ``Lu h + cu`` (upper) and ``Ll h + cl`` (lower) over ``h = h^{k-1}`` (the
    post-activation of hidden layer k-1; k = 0: the input) back to the input, as
    :func:`symbolic_layers` does; ``relax[j]`` holds hidden layer j's batched relaxation
    ``(sl, su - sl, tu, T)`` (see :func:`_layer_relaxation`). (Sound in the same way; the
    rounding terms differ from :func:`symbolic_layers`'s by a relative ~1e-16 of ~1e-13 of the bound.

    The rounding terms of one step are bounded together: :func:`symbolic_layers` adds
    ``Lambda_+ . (e_line + g tu)`` for the relaxation and ``|Lambda'| . (u |y| + g wmag)`` for the
    product with ``W_j``, where ``Lambda'`` is ``Lambda`` times slopes in [0, 1], so
    ``|Lambda| . T`` with ``T = e_line + g tu + 2 u |y| + g wmag`` bounds both. ``Lambda'`` is
    formed as ``Lambda sl + Lambda_+ (su - sl)`` (``sl`` is 0 or 1, ``su - sl`` exact by Sterbenz's
    lemma since ``su >= 1/2`` where ``sl = 1``): at most two roundings, relative to
    ``|Lambda| (1 - su)`` and ``|Lambda'|``, so ``2 u |Lambda|`` covers them.)"""
    for j in range(k - 1, -1, -1):
        sl, d, tu, T = relax[j]
        g = gamma(sl.shape[1] + 1)
        SL, D, TU, TT = sl[bi], d[bi], tu[bi], T[bi]
        Lu_p = np.maximum(Lu, 0)
        Ll_n = np.minimum(Ll, 0)
        eu = eu + _rowdot(np.abs(Lu), TT) + g * np.abs(cu)
        el = el + _rowdot(np.abs(Ll), TT) + g * np.abs(cl)
        cu = cu + _rowdot(Lu_p, TU)
        cl = cl + _rowdot(Ll_n, TU)
        # the upper line where the coefficient is positive (upper rows) / negative (lower rows):
        # Lu_p su + Lu_n sl = Lu sl + Lu_p (su - sl), Ll_p sl + Ll_n su = Ll sl + Ll_n (su - sl)
        Lu = Lu * SL + Lu_p * D
        Ll = Ll * SL + Ll_n * D
        eu = eu + g * np.abs(cu)
        el = el + g * np.abs(cl)
        Wj, bj = net.layers[j]
        cu, cl = cu + Lu @ bj, cl + Ll @ bj
        Lu, Ll = Lu @ Wj, Ll @ Wj
    return Lu, Ll, cu, cl, eu, el


def _first_step(net: Network, relax0, C: np.ndarray, c0: np.ndarray, N: int):
    """:func:`_back` of the same rows ``C h^0 + c0`` (over the first hidden layer's
    post-activation) on each of N boxes, as dense matrix products: the relaxed rows
    ``C sl + C_+ (su - sl)`` (upper) and ``C sl + C_- (su - sl)`` (lower) times ``W_0`` are
    ``C (sl W_0) + C_+ ((su - sl) W_0)``, one product with the per-box ``(n_1 x n_in)`` matrices
    side by side, never the ``(rows x n_1)`` relaxed matrices; the rounding terms are those of
    :func:`_back`. Returns :func:`_back`'s tuple, rows box-major (row ``b * len(C) + i``)."""
    sl, d, tu, T = relax0
    g = gamma(sl.shape[1] + 1)
    W0, b0 = net.layers[0]
    n1, r, n_in = sl.shape[1], C.shape[0], W0.shape[1]
    Cp, Cn, aC = np.maximum(C, 0), np.minimum(C, 0), np.abs(C)
    ac0 = np.abs(c0)
    e = T @ aC.T + g * ac0  # (N, r): |C| . T + g |c0|, the same for both
    cu = c0 + tu @ Cp.T
    cl = c0 + tu @ Cn.T
    eu = e + g * np.abs(cu)
    el = e + g * np.abs(cl)

    def times(M, S):  # M (r, n1) times diag(S_b) W_0 for every box b: (N, r, n_in)
        G = (S[:, :, None] * W0[None, :, :]).transpose(1, 0, 2).reshape(n1, N * n_in)
        return (M @ G).reshape(r, N, n_in).transpose(1, 0, 2)

    base = times(C, sl)
    Lu = (base + times(Cp, d)).reshape(N * r, n_in)
    Ll = (base + times(Cn, d)).reshape(N * r, n_in)
    sb, db = sl * b0, d * b0
    cu = cu + sb @ C.T + db @ Cp.T
    cl = cl + sb @ C.T + db @ Cn.T
    return Lu, Ll, cu.reshape(-1), cl.reshape(-1), eu.reshape(-1), el.reshape(-1)


def _layer_relaxation(lo, hi, W, b, hmag_prev):
    """Hidden layer's batched relaxation for :func:`_back`: ``(sl, su - sl, tu, T)`` with
    ``T = e_line + g tu + 2 u |y| + g (|W| |h_prev| + |b|)``, ``g = gamma_{n+1}``."""
    sl, su, tu, e_line = relaxation_lines(lo, hi)
    g = gamma(lo.shape[1] + 1)
    ymag = np.maximum(np.abs(lo), np.abs(hi))
    wmag = hmag_prev @ np.abs(W).T + np.abs(b)
    T = e_line + g * tu + 2.0 * UNIT_ROUNDOFF * ymag + g * wmag
    return sl, su - sl, tu, T


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
        if k == 1 and bi.size:
            # one step back to the input, dense (cheaper than gathering) over the rows unstable in
            # some box (in a branch and bound's deep boxes ~10 % per box, ~30 % in a chunk of 64)
            rows = np.flatnonzero(mask.any(axis=0))
            Lu, Ll, cu, cl, eu, el = _first_step(net, relax[0], W[rows], b[rows], N)
            lo_r, hi_r = concretize_batch(Lu, Ll, cu, cl, eu, el, xl, xu, np.repeat(np.arange(N), rows.size))
            sub = mask[:, rows]  # its entries in the order of np.nonzero(mask)
            lo_r, hi_r = lo_r.reshape(N, rows.size)[sub], hi_r.reshape(N, rows.size)[sub]
            lo[bi, ri] = np.maximum(lo[bi, ri], lo_r)
            hi[bi, ri] = np.minimum(hi[bi, ri], hi_r)
        elif bi.size:
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
            relax.append(_layer_relaxation(lo, hi, W, b, hmag_prev))
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
    if len(relax) == 1:
        return _first_step(net, relax[0], C, np.asarray(c0, dtype=np.float64), N) + (bi,)
    Lu = np.tile(C, (N, 1))
    cu = np.tile(np.asarray(c0, dtype=np.float64), N)
    z = np.zeros(bi.size)
    Lu, Ll, cu, cl, eu, el = _back(net, relax, len(relax), bi, Lu, Lu, cu, cu, z, z)
    return Lu, Ll, cu, cl, eu, el, bi
