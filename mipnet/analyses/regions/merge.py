"""Linear regions: adjacent activation regions with one affine map, merged.

Two regions are merged when their patterns differ in one neuron i, their output maps
agree (:func:`.common.same_affine_map`, relative to the largest entry), and they share a
facet on ``y_i = 0`` (a ball of positive radius inside that hyperplane keeps every other
neuron's sign: :meth:`.sink.PatternLP.facet`). The merged regions are the connected
components of that graph (:func:`.common.connected_labels`, the same merge the exact slices
use). Candidate pairs are found by sorting, for every neuron at once, the patterns with
that neuron's bit cleared: equal keys differ exactly in that bit.
"""

from __future__ import annotations

import numpy as np

from mipnet.core.network import Network

from .common import connected_labels, same_affine_map
from .problem import Problem
from .sink import PatternLP, pattern_rows

__all__ = ["output_maps", "output_maps_iter", "merge_linear"]


def output_maps_iter(net: Network, patterns: np.ndarray, *, max_elems: float = 2e7):
    """Yield ``(start, A, c)``: affine maps ``f(x) = A_p x + c_p`` of chunks of patterns.

    Chunks keep the (chunk, width, n0) intermediate arrays below ``max_elems`` entries.
    """
    P = patterns.shape[0]
    n0 = net.input_dim
    off = net.hidden_offsets
    step = max(1, int(max_elems // (max(net.widths) * n0)))
    L = net.num_hidden_layers
    for s in range(0, P, step):
        pat = patterns[s:s + step]
        A = c = None
        for l, (W, b) in enumerate(net.layers):
            if l == 0:
                A = np.broadcast_to(W, (pat.shape[0],) + W.shape)
                c = np.broadcast_to(b, (pat.shape[0], b.size))
            else:
                A = np.einsum("ij,pjk->pik", W, A)
                c = c @ W.T + b
            if l < L:
                on = pat[:, off[l]:off[l + 1]].astype(np.float64)
                A = A * on[:, :, None]
                c = c * on
        yield s, np.ascontiguousarray(A), np.ascontiguousarray(c)


def output_maps(net: Network, patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched affine maps of many patterns: (P, n_out, n0), (P, n_out)."""
    P = patterns.shape[0]
    A = np.zeros((P, net.output_dim, net.input_dim))
    c = np.zeros((P, net.output_dim))
    for s, As, cs in output_maps_iter(net, patterns):
        A[s:s + len(As)] = As
        c[s:s + len(cs)] = cs
    return A, c


def _one_flip_pairs(P: np.ndarray) -> np.ndarray:
    """Pairs (r, r2, i) of rows of P that differ exactly in column i (vectorised over all i)."""
    R, N = P.shape
    if R < 2 or N == 0:
        return np.zeros((0, 3), dtype=np.int64)
    packed = np.packbits(P, axis=1)
    B = packed.shape[1]
    cols = np.arange(N)
    byte, bit = cols // 8, (7 - cols % 8).astype(np.uint8)
    keys = np.repeat(packed[None, :, :], N, axis=0)  # (N, R, B)
    keys[cols, :, byte] &= ~(np.uint8(1) << bit)[:, None]
    ids = np.repeat(cols.astype(np.int32)[:, None], R, axis=1).view(np.uint8).reshape(N, R, 4)
    rec = np.concatenate([keys, ids], axis=2).reshape(N * R, B + 4)
    rec = np.ascontiguousarray(rec)
    view = rec.view(np.dtype((np.void, rec.shape[1]))).reshape(-1)
    _, inv, cnt = np.unique(view, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    dup = cnt[inv] == 2
    flat = np.flatnonzero(dup)
    order = flat[np.argsort(inv[flat], kind="stable")]
    a, b = order[0::2], order[1::2]
    i = a // R
    return np.stack([a % R, b % R, i], axis=1).astype(np.int64)


def merge_linear(prob: Problem, P: np.ndarray, plp: PatternLP, *, tol: float = 1e-9) -> int:
    """Number of linear regions among the activation regions with patterns ``P`` (module docstring)."""
    R = P.shape[0]
    if R <= 1:
        return R
    A, c = output_maps(prob.net, P)
    pairs = _one_flip_pairs(P)
    if pairs.size:
        sA = max(float(np.abs(A).max(initial=0.0)), 1e-300)
        sc = max(float(np.abs(c).max(initial=0.0)), 1e-300)
        same = same_affine_map(A[pairs[:, 0]], c[pairs[:, 0]], A[pairs[:, 1]], c[pairs[:, 1]], tol, sA, sc)
        pairs = pairs[same]
    edges: list = []
    fl = plp.floor()
    labels = np.arange(R)
    fresh = 0
    for r, r2, i in pairs:
        if labels[r] == labels[r2]:
            continue  # already joined (labels are refreshed every few edges)
        rows = pattern_rows(prob, P[r])
        k = np.flatnonzero(rows.neuron == i)
        if rows.ok and k.size and plp.facet(rows, int(k[0]))[1] > fl:
            edges.append((r, r2))
            fresh += 1
            if fresh >= 64:
                labels = connected_labels(R, np.array(edges))
                fresh = 0
    return int(np.unique(connected_labels(R, np.array(edges, dtype=np.int64).reshape(-1, 2))).size)
