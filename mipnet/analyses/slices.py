"""Exact activation regions of a ReLU network on a 1-D segment or a 2-D plane section.

On a line or a plane the arrangement of a ReLU network can be built with geometry
alone, no LP solver: layer by layer, every current piece (an interval, or a convex
polygon) carries the network's pre-activations of the next layer as affine functions
of the slice coordinates; each piece is cut where a neuron's pre-activation changes
sign inside it. This is the construction used by Hanin and Rolnick, "Complexity of
linear regions in deep networks" (ICML 2019, arXiv:1901.09021) for 1-D lines, and by
SplineCam (Humayun, Balestriero, Balakrishnan, Baraniuk, CVPR 2023,
arXiv:2302.12828) and regioncam for 2-D sections.

The slice of an activation region with a plane is convex (the region is a polytope),
so every activation pattern of the slice is one interval or one convex polygon.
Inside a region the output is affine, so the exact decision regions of the slice
(:meth:`PlanePartition.class_regions`) follow by one more round of cuts.

Coordinates
-----------
Segment: ``x(t) = a + t (b - a)``, ``t`` in [0, 1].
Plane: ``x(s, t) = origin + s u + t v`` over a rectangle or convex polygon in
``(s, t)``. An activation pattern is the concatenated ``pre-activation > 0`` of all
hidden neurons, exactly as :meth:`mipnet.Network.activation_pattern` defines it.

Tolerances
----------
A plane section is normalised as the region counts normalise theirs
(:func:`mipnet.analyses.regions.problem.prepare`: the slice's bounding box becomes about
[-1, 1]^2, every neuron is divided by a power of two) and its tests are relative to the
local magnitudes, never to the size of the slice: a vertex ``v`` lies on a neuron's zero
line ``f = G . v + g = 0`` when ``|f(v)| <= |G| E_v + tol (|G| |v| + |g|)``, ``E_v`` the
vertex's tracked error bound (a crossing point interpolated between much larger vertices is
refined on its two lines); a cut that would leave a piece of area below ``min_area * s^2``
(``s`` the piece's largest coordinate) is not made (counted in
``PlanePartition.slivers_skipped``). So a slice of +-1e12 around an arrangement of unit
size resolves it. Pieces of a segment shorter than ``tol`` (in ``t``) are merged.

Status
------
Every partition carries a ``status`` (:class:`mipnet.analyses.regions.RegionStatus`) and
``exact``: ``complete`` only if every piece's witness (a polygon's centroid or vertex mean,
an interval's midpoint) passes :func:`mipnet.core.numerics.check_witnesses` -- the same
check as the region counts -- and no sliver cut was skipped nor root merged. On Ctrl-C
(``KeyboardInterrupt``) the pieces made so far are returned at once with status
``interrupted``: each holds at least one region, so their number is a lower bound. On a
segment the tolerance stays relative to its length (``t`` in [0, 1]): roots closer than
``tol`` are merged and counted in ``merged_roots`` (then the partition is not exact). The
point location and adjacency queries of :class:`PlanePartition` pad by ``tol * diameter``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np

from mipnet.analyses.regions.common import (
    RegionStatus,
    check_net,
    connected_labels,
    pattern_key,
    readonly,
    same_affine_map,
)
from mipnet.core.errors import InvalidDomainError
from mipnet.core.network import Network
from mipnet.core.numerics import DEFAULT, check_witnesses, snapped_pattern

__all__ = [
    "SegmentPartition",
    "PlanePartition",
    "SlicePlane",
    "segment_regions",
    "plane_regions",
    "plane_through_points",
    "plane_along_axes",
    "pattern_key",
]

log = logging.getLogger(__name__)

# one implementation of each, shared with mipnet.analyses.regions
_ro = readonly
_check_net = check_net
_same_map = same_affine_map

#: roots of a segment closer than this (in t) are the same root (coincident hyperplanes)
_SAME_ROOT = 1e-13
_EPS = float(np.finfo(np.float64).eps)


# ============================================================================ validation
def _point(name: str, x, dim: int) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidDomainError(f"{name} must be a numeric vector, got {type(x).__name__}") from None
    if a.size != dim:
        raise InvalidDomainError(f"{name} has {a.size} entries, the network takes {dim} inputs")
    if not np.all(np.isfinite(a)):
        raise InvalidDomainError(f"{name} contains NaN or inf; give finite coordinates")
    return a


def _positive(name: str, value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidDomainError(f"{name} must be a number, got {value!r}") from None
    if not (np.isfinite(x) and x >= 0):
        raise InvalidDomainError(f"{name} must be finite and >= 0, got {value!r}")
    return x


# ============================================================================ 1-D segments
@dataclass(frozen=True, eq=False)
class SegmentPartition:
    """The exact partition of ``x(t) = a + t (b - a)``, ``t`` in [0, 1], into activation regions.

    Attributes
    ----------
    a, b : arrays (n0,)
        End points of the segment.
    breakpoints : array (k + 1,)
        ``0 = t_0 < t_1 < ... < t_k = 1``; piece ``i`` is ``[t_i, t_{i+1}]``.
    patterns : bool array (k, N)
        Activation pattern (pre-activation > 0) of all N hidden neurons on each piece.
    offsets, slopes : arrays (k, n_out)
        The network on piece ``i`` is ``f(x(t)) = offsets[i] + t * slopes[i]``.
    breakpoint_neurons : int array (k - 1,)
        Index (into the concatenated hidden pattern) of the neuron whose pre-activation
        is zero at each interior breakpoint.
    widths : tuple
        The network's widths.
    seconds : float
        Time taken.
    status : RegionStatus
        ``complete`` (every piece's midpoint passed :func:`mipnet.core.numerics.check_witnesses`
        and no root was merged into a different one), ``unverified`` (some did not, or a piece
        shorter than ``tol`` was merged away) or ``interrupted`` (Ctrl-C: the pieces found so
        far, a lower bound; patterns of unfinished layers read at the midpoints).
    verified : int
        Pieces whose midpoint passed the witness check.
    merged_roots : int
        Roots (breakpoints) within ``tol`` of another but not coincident with it: pieces
        shorter than ``tol`` were not made.
    """

    a: np.ndarray
    b: np.ndarray
    breakpoints: np.ndarray
    patterns: np.ndarray
    offsets: np.ndarray
    slopes: np.ndarray
    breakpoint_neurons: np.ndarray
    widths: tuple
    seconds: float
    tol: float
    status: RegionStatus = RegionStatus.COMPLETE
    verified: int = 0
    merged_roots: int = 0

    @property
    def exact(self) -> bool:
        """True iff ``status`` is ``complete``."""
        return self.status is RegionStatus.COMPLETE

    @property
    def num_pieces(self) -> int:
        """Number of pieces (activation regions met by the segment)."""
        return int(self.patterns.shape[0])

    def count_pieces(self) -> int:
        """Number of activation regions the segment passes through (pieces of positive length)."""
        return self.num_pieces

    @property
    def lengths(self) -> np.ndarray:
        """Length of each piece in ``t``."""
        return np.diff(self.breakpoints)

    def linear_piece_labels(self, *, tol: float = 1e-9) -> np.ndarray:
        """Label per piece; adjacent pieces whose affine maps agree within ``tol`` share one.

        Maps are compared through their slopes and offsets relative to the largest
        slope/offset of the segment.
        """
        tol = _positive("tol", tol)
        k = self.num_pieces
        if k <= 1:
            return np.zeros(k, dtype=int)
        sM = max(float(np.abs(self.slopes).max(initial=0.0)), 1e-300)
        sm = max(float(np.abs(self.offsets).max(initial=0.0)), sM, 1e-300)
        same = _same_map(self.slopes[:-1], self.offsets[:-1], self.slopes[1:], self.offsets[1:], tol, sM, sm)
        i = np.flatnonzero(same)
        return connected_labels(k, np.stack([i, i + 1], axis=1))

    def count_linear_pieces(self, *, tol: float = 1e-9) -> int:
        """Number of maximal sub-intervals on which the network is affine (merges pieces)."""
        lab = self.linear_piece_labels(tol=tol)
        return int(lab[-1] + 1) if lab.size else 0

    def locate(self, t) -> np.ndarray:
        """Index of the piece containing each ``t`` (the left piece at a breakpoint); -1 outside [0, 1]."""
        t = np.asarray(t, dtype=np.float64)
        idx = np.searchsorted(self.breakpoints, t, side="right") - 1
        idx = np.where(t == self.breakpoints[-1], self.num_pieces - 1, idx)
        return np.where((t < 0) | (t > 1) | ~np.isfinite(t), -1, idx)

    def points(self, t=None) -> np.ndarray:
        """Input points ``x(t)`` (default: at the breakpoints), shape (len(t), n0)."""
        t = self.breakpoints if t is None else np.asarray(t, dtype=np.float64).reshape(-1)
        return self.a[None, :] + t[:, None] * (self.b - self.a)[None, :]

    def outputs(self, t) -> np.ndarray:
        """The network's output along the segment from the piecewise affine maps, (len(t), n_out)."""
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        i = np.clip(self.locate(t), 0, self.num_pieces - 1)
        return self.offsets[i] + t[:, None] * self.slopes[i]

    def pattern_set(self) -> set:
        """The set of :func:`pattern_key` of the pieces' patterns."""
        return {pattern_key(p) for p in self.patterns}

    def to_dict(self, *, include_pieces: bool = False) -> dict:
        """JSON-ready summary; ``include_pieces`` adds breakpoints and patterns (hex)."""
        L = self.lengths
        d = {
            "kind": "segment",
            "widths": list(self.widths),
            "pieces": self.num_pieces,
            "linear_pieces": self.count_linear_pieces(),
            "length": float(np.linalg.norm(self.b - self.a)),
            "min_piece_length_t": float(L.min()),
            "median_piece_length_t": float(np.median(L)),
            "tol": self.tol,
            "seconds": self.seconds,
            "status": RegionStatus(self.status).value,
            "exact": self.exact,
            "verified": int(self.verified),
            "merged_roots": int(self.merged_roots),
        }
        if include_pieces:
            d["breakpoints"] = self.breakpoints.tolist()
            d["patterns"] = [np.packbits(p).tobytes().hex() for p in self.patterns]
            d["breakpoint_neurons"] = self.breakpoint_neurons.tolist()
        return d

    def __str__(self) -> str:
        return (
            f"SegmentPartition of Network({'-'.join(map(str, self.widths))}): "
            f"{self.num_pieces} activation regions, {self.count_linear_pieces()} linear pieces "
            f"on a segment of length {np.linalg.norm(self.b - self.a):.4g} ({self.seconds:.3g} s)"
        )


def segment_regions(net: Network, a, b, *, tol: float = 1e-10) -> SegmentPartition:
    """Exact partition of the segment from ``a`` to ``b`` into activation regions.

    Parameters
    ----------
    net : Network
    a, b : array_like (n0,)
        End points; ``x(t) = a + t (b - a)``.
    tol : float, keyword-only
        Breakpoints closer than ``tol`` (in ``t``) to another breakpoint are merged.

    Returns
    -------
    SegmentPartition

    Notes
    -----
    Layer by layer (Hanin and Rolnick 2019, arXiv:1901.09021): on piece ``i`` the
    hidden vector of layer ``l - 1`` is ``p_i + t q_i``; the pre-activations
    ``alpha_i + t beta_i = W^l (p_i + t q_i) + b^l`` vanish at ``t = -alpha/beta``; the
    roots inside their piece become new breakpoints; the sign at each new piece's
    midpoint gives its pattern. All pieces and neurons of a layer are handled at once.

    Examples
    --------
    >>> net = Network([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.zeros(1)])
    >>> seg = segment_regions(net, [-1.0], [1.0])
    >>> seg.breakpoints.tolist(), seg.count_pieces()
    ([0.0, 0.5, 1.0], 2)
    """
    t0 = time.perf_counter()
    net = _check_net(net)
    a = _point("a", a, net.input_dim)
    b = _point("b", b, net.input_dim)
    if np.array_equal(a, b):
        raise InvalidDomainError("a and b coincide; a segment needs two distinct end points")
    tol = _positive("tol", tol)

    ts = np.array([0.0, 1.0])
    P = a[None, :]
    Q = (b - a)[None, :]
    pats: list[np.ndarray] = []
    causes = np.zeros(0, dtype=np.int64)  # neuron of each interior breakpoint
    off = net.hidden_offsets
    merged = 0
    status = RegionStatus.COMPLETE
    try:
        for l, (W, bias) in enumerate(net.layers[:-1]):
            alpha = P @ W.T + bias  # (k, n_l)
            beta = Q @ W.T
            with np.errstate(divide="ignore", invalid="ignore"):
                r = -alpha / beta
            old_lo = ts[:-1]
            lo, hi = ts[:-1, None], ts[1:, None]
            inside = (beta != 0) & (r > lo) & (r < hi)
            valid = inside & (r > lo + tol) & (r < hi - tol)
            # roots within tol of a piece's end but not on it: a piece shorter than tol is not made
            near = inside & ~valid & (r - lo > _SAME_ROOT) & (hi - r > _SAME_ROOT)
            merged += int(np.count_nonzero(near))
            piece, neuron = np.nonzero(valid)
            roots = r[piece, neuron]
            if roots.size:
                order = np.argsort(roots, kind="stable")
                roots, neuron = roots[order], neuron[order]
                gaps = np.diff(roots)
                keep = np.concatenate([[True], gaps > tol])
                merged += int(np.count_nonzero((gaps <= tol) & (gaps > _SAME_ROOT)))
                roots, neuron = roots[keep], neuron[keep]
                all_t = np.concatenate([ts, roots])
                all_c = np.concatenate([[-1], causes, [-1], off[l] + neuron])
                order = np.argsort(all_t, kind="stable")
                ts, c_sorted = all_t[order], all_c[order]
                causes = c_sorted[1:-1]
            mids = 0.5 * (ts[:-1] + ts[1:])
            parent = np.searchsorted(old_lo, mids, side="right") - 1
            y = alpha[parent] + mids[:, None] * beta[parent]
            # the one rule for zero (mipnet.core.numerics): within noise of |W| |h| + |b| is 0, off
            hmid = np.abs(P[parent] + mids[:, None] * Q[parent])
            y = np.where(np.abs(y) <= DEFAULT.noise * (hmid @ np.abs(W).T + np.abs(bias)), 0.0, y)
            on = y > 0
            P = np.where(on, alpha[parent], 0.0)
            Q = np.where(on, beta[parent], 0.0)
            pats = [p[parent] for p in pats] + [on]
        W, bias = net.layers[-1]
        offsets = P @ W.T + bias
        slopes = Q @ W.T
        patterns = np.concatenate(pats, axis=1) if pats else np.zeros((len(ts) - 1, 0), dtype=bool)
    except KeyboardInterrupt:
        # the breakpoints found so far split the segment into pieces that each meet at least one
        # region: a lower bound; their patterns and maps are read at the midpoints
        status = RegionStatus.INTERRUPTED
        mids = 0.5 * (ts[:-1] + ts[1:])
        _, patterns = snapped_pattern(net, a[None, :] + mids[:, None] * (b - a)[None, :])
        offsets, slopes = _segment_maps(net, a, b - a, patterns)
        causes = causes[:max(len(ts) - 2, 0)] if causes.size >= len(ts) - 2 else np.full(len(ts) - 2, -1)
    mids = 0.5 * (ts[:-1] + ts[1:])
    ok = check_witnesses(net, None, a[None, :] + mids[:, None] * (b - a)[None, :], patterns, strict=True)
    if status is RegionStatus.COMPLETE and (not ok.all() or merged):
        status = RegionStatus.UNVERIFIED
    res = SegmentPartition(
        a=_ro(a), b=_ro(b), breakpoints=_ro(ts), patterns=_ro(patterns, bool),
        offsets=_ro(offsets), slopes=_ro(slopes), breakpoint_neurons=_ro(causes, np.int64),
        widths=net.widths, seconds=time.perf_counter() - t0, tol=tol,
        status=status, verified=int(ok.sum()), merged_roots=int(merged),
    )
    log.debug("segment: %d pieces in %.3g s", res.num_pieces, res.seconds)
    return res



def _segment_maps(net: Network, a: np.ndarray, d: np.ndarray, patterns: np.ndarray):
    """``(offsets, slopes)`` of the network along ``a + t d`` on pieces with the given patterns."""
    P = np.broadcast_to(a, (len(patterns), a.size))
    Q = np.broadcast_to(d, (len(patterns), d.size))
    off = net.hidden_offsets
    for l, (W, bias) in enumerate(net.layers[:-1]):
        on = patterns[:, off[l]:off[l + 1]]
        P = np.where(on, P @ W.T + bias, 0.0)
        Q = np.where(on, Q @ W.T, 0.0)
    W, bias = net.layers[-1]
    return P @ W.T + bias, Q @ W.T


# ============================================================================ ragged polygons
# A set of convex polygons is stored flat: vertices V (total, 2) in counter-clockwise
# order, polygon p owning rows start[p] : start[p] + cnt[p]. All helpers below are
# vectorised over polygons.
def _starts(cnt: np.ndarray) -> np.ndarray:
    s = np.zeros(len(cnt), dtype=np.int64)
    np.cumsum(cnt[:-1], out=s[1:])
    return s


def _next_index(start: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """Flat index of the next vertex (cyclically) of every vertex."""
    nxt = np.arange(1, int(cnt.sum()) + 1)
    nxt[start + cnt - 1] = start
    return nxt


def _area_centroid(V: np.ndarray, cnt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shoelace areas and centroids of ragged polygons (relative to each first vertex)."""
    start = _starts(cnt)
    pid = np.repeat(np.arange(len(cnt)), cnt)
    ref = V[start]
    X = V - ref[pid]
    Xn = X[_next_index(start, cnt)]
    cr = X[:, 0] * Xn[:, 1] - Xn[:, 0] * X[:, 1]
    a2 = np.add.reduceat(cr, start)
    cx = np.add.reduceat((X[:, 0] + Xn[:, 0]) * cr, start)
    cy = np.add.reduceat((X[:, 1] + Xn[:, 1]) * cr, start)
    with np.errstate(divide="ignore", invalid="ignore"):
        cen = np.stack([cx, cy], axis=1) / (3.0 * a2[:, None])
    bad = ~np.all(np.isfinite(cen), axis=1)
    if bad.any():  # degenerate polygon: fall back to the vertex mean
        mean = np.stack([np.add.reduceat(X[:, 0], start), np.add.reduceat(X[:, 1], start)], 1) / cnt[:, None]
        cen[bad] = mean[bad]
    return 0.5 * a2, ref + cen


def _convex_polygon(poly) -> np.ndarray:
    """Validate a convex polygon in (s, t) and return its vertices counter-clockwise."""
    try:
        P = np.asarray(poly, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidDomainError("polygon must be a numeric array of shape (k, 2)") from None
    if P.ndim != 2 or P.shape[1] != 2 or P.shape[0] < 3:
        raise InvalidDomainError(f"polygon must have shape (k, 2) with k >= 3 vertices, got {P.shape}")
    if not np.all(np.isfinite(P)):
        raise InvalidDomainError("polygon vertices must be finite")
    area, _ = _area_centroid(P, np.array([len(P)]))
    if area[0] < 0:
        P = P[::-1].copy()
    E = np.roll(P, -1, axis=0) - P
    cr = E[:, 0] * np.roll(E, -1, axis=0)[:, 1] - E[:, 1] * np.roll(E, -1, axis=0)[:, 0]
    scale = float(np.max(np.abs(P - P.mean(0)))) ** 2
    if abs(area[0]) <= 1e-14 * max(scale, 1e-300):
        raise InvalidDomainError("polygon has zero area; give at least three non-collinear vertices")
    if np.any(cr < -1e-12 * max(scale, 1e-300)):
        raise InvalidDomainError("polygon must be convex with vertices in order around it (clockwise or counter-clockwise)")
    return P


def _bounds_polygon(bounds) -> np.ndarray:
    try:
        (s0, s1), (t0, t1) = [(float(lo), float(hi)) for lo, hi in bounds]
    except (TypeError, ValueError):
        raise InvalidDomainError("bounds must be ((s_lo, s_hi), (t_lo, t_hi))") from None
    if not all(np.isfinite([s0, s1, t0, t1])) or not (s0 < s1 and t0 < t1):
        raise InvalidDomainError(
            f"bounds must be finite with lo < hi on both axes, got (({s0}, {s1}), ({t0}, {t1}))"
        )
    return np.array([[s0, t0], [s1, t0], [s1, t1], [s0, t1]])


# ============================================================================ 2-D plane sections
@dataclass(frozen=True, eq=False)
class PlanePartition:
    """Exact partition of the plane section ``x(s, t) = origin + s u + t v`` into activation regions.

    Every region is a convex polygon in ``(s, t)`` coordinates (counter-clockwise).

    Attributes
    ----------
    origin, u, v : arrays (n0,)
        The plane.
    domain : array (k, 2)
        The rectangle or convex polygon in ``(s, t)`` that was partitioned.
    vertices : array (total, 2)
        All polygons' vertices, flat; polygon ``i`` is
        ``vertices[offsets[i]:offsets[i + 1]]`` (see :meth:`polygon`, :attr:`polygons`).
    offsets : int array (P + 1,)
    patterns : bool array (P, N)
        Activation pattern (pre-activation > 0) of every hidden neuron on each polygon.
    areas, centroids : arrays (P,), (P, 2)
        Area and centroid (an interior point) of each polygon.
    maps_M, maps_m : arrays (P, n_out, 2), (P, n_out)
        The network on polygon ``i``: ``f(x(s, t)) = maps_M[i] @ [s, t] + maps_m[i]``.
    classes : int array (P,)
        ``argmax`` of the output at each centroid.
    slivers_skipped : int
        Cuts not made because a side would have had area below ``min_area``.
    status : RegionStatus
        ``complete`` (every polygon's centroid passed
        :func:`mipnet.core.numerics.check_witnesses` and no sliver cut was skipped),
        ``unverified`` (not so) or ``interrupted`` (Ctrl-C: the polygons cut so far, each
        holding at least one region -- a lower bound; the patterns of unfinished layers and
        the maps are read at the centroids for as many polygons as half a second allows --
        the others have NaN maps, class -1 and those bits off; witnesses not checked).
    verified : int
        Polygons whose centroid (or vertex mean) passed the witness check.
    """

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    domain: np.ndarray
    vertices: np.ndarray
    offsets: np.ndarray
    patterns: np.ndarray
    areas: np.ndarray
    centroids: np.ndarray
    maps_M: np.ndarray
    maps_m: np.ndarray
    classes: np.ndarray
    widths: tuple
    tol: float
    min_area: float
    slivers_skipped: int
    seconds: float
    status: RegionStatus = RegionStatus.COMPLETE
    verified: int = 0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def exact(self) -> bool:
        """True iff ``status`` is ``complete``."""
        return self.status is RegionStatus.COMPLETE

    # ------------------------------------------------------------------ basic facts
    @property
    def num_regions(self) -> int:
        return int(self.patterns.shape[0])

    def count_regions(self) -> int:
        """Number of polygons = activation regions of the slice with non-empty 2-D interior."""
        return self.num_regions

    @property
    def counts(self) -> np.ndarray:
        """Number of vertices of each polygon."""
        return np.diff(self.offsets)

    def polygon(self, i: int) -> np.ndarray:
        """Vertices (k, 2) of polygon ``i``, counter-clockwise."""
        return self.vertices[self.offsets[i]:self.offsets[i + 1]]

    @property
    def polygons(self) -> list[np.ndarray]:
        """All polygons as a list of (k, 2) vertex arrays."""
        return np.split(self.vertices, self.offsets[1:-1])

    @property
    def domain_area(self) -> float:
        return float(_area_centroid(self.domain, np.array([len(self.domain)]))[0][0])

    @property
    def diameter(self) -> float:
        D = self.domain
        return float(np.max(np.linalg.norm(D[:, None, :] - D[None, :, :], axis=-1)))

    def to_input(self, points_st) -> np.ndarray:
        """Input points ``origin + s u + t v`` for (N, 2) slice coordinates."""
        st = np.asarray(points_st, dtype=np.float64).reshape(-1, 2)
        return self.origin[None, :] + st[:, :1] * self.u[None, :] + st[:, 1:] * self.v[None, :]

    def outputs(self, points_st) -> np.ndarray:
        """Network outputs from the polygons' affine maps at (N, 2) slice points (NaN outside)."""
        st = np.asarray(points_st, dtype=np.float64).reshape(-1, 2)
        i = self.locate(st)
        out = np.einsum("nkd,nd->nk", self.maps_M[np.maximum(i, 0)], st) + self.maps_m[np.maximum(i, 0)]
        out[i < 0] = np.nan
        return out

    def pattern_set(self) -> set:
        """The set of :func:`pattern_key` of all polygons' patterns."""
        return {pattern_key(p) for p in self.patterns}

    # ------------------------------------------------------------------ point location
    def _index(self):
        """Padded half-plane form of every polygon and a uniform grid over their boxes."""
        if "index" in self._cache:
            return self._cache["index"]
        cnt = self.counts
        start = self.offsets[:-1]
        P = len(cnt)
        kmax = int(cnt.max())
        kk = np.minimum(np.arange(kmax)[None, :], cnt[:, None] - 1)
        ia = start[:, None] + kk
        ib = start[:, None] + (kk + 1) % cnt[:, None]
        A = self.vertices[ia]
        E = self.vertices[ib] - A
        ln = np.hypot(E[..., 0], E[..., 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            nx, ny = -E[..., 1] / ln, E[..., 0] / ln  # inward unit normals (CCW)
        zero = ln <= 0
        nx[zero] = 0.0
        ny[zero] = 0.0
        c = nx * A[..., 0] + ny * A[..., 1]
        c[zero] = -np.inf
        # grid of about P cells over the domain's bounding box
        lo = self.domain.min(axis=0)
        hi = self.domain.max(axis=0)
        g = max(1, int(2 * np.sqrt(P)))
        cell = (hi - lo) / g
        pad = 2 * self.tol * self.diameter
        blo = np.stack([np.minimum.reduceat(self.vertices[:, k], start) for k in (0, 1)], 1) - pad
        bhi = np.stack([np.maximum.reduceat(self.vertices[:, k], start) for k in (0, 1)], 1) + pad
        i0 = np.clip(np.floor((blo - lo) / cell).astype(np.int64), 0, g - 1)
        i1 = np.clip(np.floor((bhi - lo) / cell).astype(np.int64), 0, g - 1)
        w = i1 - i0 + 1
        n = w[:, 0] * w[:, 1]
        poly = np.repeat(np.arange(P), n)
        k = np.arange(int(n.sum())) - np.repeat(_starts(n), n)
        cx = i0[poly, 0] + k % w[poly, 0]
        cy = i0[poly, 1] + k // w[poly, 0]
        cells = cy * g + cx
        order = np.argsort(cells, kind="stable")
        ptr = np.searchsorted(cells[order], np.arange(g * g + 1))
        idx = (nx, ny, c, lo, cell, g, poly[order], ptr)
        self._cache["index"] = idx
        return idx

    def _locate_margin(self, st: np.ndarray, chunk: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
        nx, ny, c, lo, cell, g, cand, ptr = self._index()
        N = len(st)
        ij = np.clip(np.floor((st - lo) / cell).astype(np.int64), 0, g - 1)
        qc = ij[:, 1] * g + ij[:, 0]
        nq = ptr[qc + 1] - ptr[qc]
        best = np.full(N, -1, dtype=np.int64)
        margin = np.full(N, -np.inf)
        # process in chunks of points so that pairs x vertices stays bounded
        kmax = nx.shape[1]
        cum = np.cumsum(nq)
        lim = max(1, chunk // max(kmax, 1))
        s0 = 0
        while s0 < N:
            base = cum[s0 - 1] if s0 else 0
            s1 = int(np.searchsorted(cum, base + lim, side="right"))
            s1 = min(max(s1, s0 + 1), N)
            q = np.arange(s0, s1)
            m = nq[q]
            qid = np.repeat(q, m)
            if qid.size:
                pos = np.arange(qid.size) - np.repeat(_starts(m), m) + np.repeat(ptr[qc[q]], m)
                p = cand[pos]
                mg = (nx[p] * st[qid, :1] + ny[p] * st[qid, 1:] - c[p]).min(axis=1)
                # deepest candidate per point (pairs are grouped by point)
                has = m > 0
                gstart = _starts(m)[has]
                gmax = np.maximum.reduceat(mg, gstart)
                hit = mg >= np.repeat(gmax, m[has])
                first = np.flatnonzero(hit)
                first = first[np.concatenate([[True], qid[first][1:] != qid[first][:-1]])]
                best[qid[first]] = p[first]
                margin[qid[first]] = mg[first]
            s0 = s1
        return best, margin

    def locate(self, points_st, *, tol: Optional[float] = None) -> np.ndarray:
        """Index of the polygon containing each (s, t) point; -1 outside the domain.

        Vectorised point-in-convex-polygon test (every inward edge normal) over the
        candidates of a uniform grid. A point on a boundary gets the polygon in which it
        lies deepest; points farther than ``tol * diameter`` (default: the partition's
        tolerance) outside every polygon get -1.
        """
        st = np.asarray(points_st, dtype=np.float64)
        if st.ndim == 1 and st.size == 2:
            st = st[None, :]
        if st.ndim != 2 or st.shape[1] != 2:
            raise InvalidDomainError(f"points_st must have shape (N, 2), got {np.shape(points_st)}")
        tol = self.tol if tol is None else _positive("tol", tol)
        finite = np.all(np.isfinite(st), axis=1)
        best = np.full(len(st), -1, dtype=np.int64)
        b, mg = self._locate_margin(st[finite])
        b[mg < -tol * self.diameter] = -1
        best[finite] = b
        return best

    # ------------------------------------------------------------------ adjacency and linear regions
    def adjacency(self) -> np.ndarray:
        """Pairs ``(i, j)``, ``i < j``, of polygons sharing a boundary segment of positive length.

        Vertices closer than ``10 tol * diameter`` are identified, edges are matched by their
        end points; an interior edge left unmatched (a T-junction) is resolved by locating a
        point just outside its midpoint.
        """
        if "adjacency" in self._cache:
            return self._cache["adjacency"]
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components
        from scipy.spatial import cKDTree

        V = self.vertices
        cnt = self.counts
        start = self.offsets[:-1]
        P = len(cnt)
        D = self.diameter
        r = 10 * self.tol * D
        pairs = cKDTree(V).query_pairs(r, output_type="ndarray")
        nv = len(V)
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(nv, nv))
        _, lab = connected_components(graph, directed=False)
        nxt = _next_index(start, cnt)
        pid = np.repeat(np.arange(P), cnt)
        ea, eb = lab, lab[nxt]
        real = ea != eb
        lo_, hi_ = np.minimum(ea, eb)[real], np.maximum(ea, eb)[real]
        key = lo_.astype(np.int64) * (int(lab.max()) + 1) + hi_
        owner = pid[real]
        edge_idx = np.flatnonzero(real)
        order = np.argsort(key, kind="stable")
        key, owner, edge_idx = key[order], owner[order], edge_idx[order]
        same = key[1:] == key[:-1]
        found = np.stack([owner[:-1][same], owner[1:][same]], axis=1)
        matched = np.zeros(len(key), dtype=bool)
        matched[:-1] |= same
        matched[1:] |= same
        # unmatched edges: boundary of the domain, or a T-junction; probe just outside
        e = edge_idx[~matched]
        A, B = V[e], V[nxt[e]]
        E = B - A
        ln = np.hypot(E[:, 0], E[:, 1])
        ok = ln > 10 * r
        e, A, E, ln = e[ok], A[ok], E[ok], ln[ok]
        probe = A + 0.5 * E + np.stack([E[:, 1], -E[:, 0]], 1) / ln[:, None] * (100 * r)
        hit = self.locate(probe, tol=0.0)
        good = (hit >= 0) & (hit != pid[e])
        extra = np.stack([pid[e][good], hit[good]], axis=1)
        allp = np.concatenate([found, extra]).reshape(-1, 2)
        allp = np.sort(allp, axis=1)
        allp = allp[allp[:, 0] != allp[:, 1]]
        allp = np.unique(allp, axis=0)
        allp.setflags(write=False)
        self._cache["adjacency"] = allp
        return allp

    def linear_region_labels(self, *, tol: float = 1e-9) -> np.ndarray:
        """Label per polygon: connected components of adjacent polygons with equal affine maps.

        Two maps agree when their gradients and offsets differ by at most ``tol`` times the
        largest gradient / offset entry of the partition (the merge of
        :func:`mipnet.analyses.regions.common.connected_labels`, shared with ``count_regions``).
        """
        tol = _positive("tol", tol)
        adj = self.adjacency()
        sM = max(float(np.abs(self.maps_M).max(initial=0.0)), 1e-300)
        R = float(np.abs(self.domain).max())
        sm = max(float(np.abs(self.maps_m).max(initial=0.0)), sM * R, 1e-300)
        i, j = adj[:, 0], adj[:, 1]
        same = _same_map(self.maps_M[i], self.maps_m[i], self.maps_M[j], self.maps_m[j], tol, sM, sm)
        return connected_labels(self.num_regions, adj[same])

    def count_linear_regions(self, *, tol: float = 1e-9) -> int:
        """Number of linear regions: adjacent polygons with the same affine map merged.

        Always ``<= count_regions()``.
        """
        return int(len(np.unique(self.linear_region_labels(tol=tol))))

    # ------------------------------------------------------------------ predicted classes
    def class_regions(self) -> tuple[list, np.ndarray, np.ndarray]:
        """The slice split exactly by the predicted class (argmax of the output).

        Inside one activation region the output is affine, so the set where class ``c``
        wins is a convex polygon cut by the lines ``f_c = f_k``; every polygon is cut by
        those pairwise lines that cross it, with the same clipping as the partition.

        Returns
        -------
        (polygons, classes, areas) : list of (k, 2) arrays, int array, float array
            Convex pieces (each inside one activation region) with constant argmax.
        """
        if "classes" in self._cache:
            return self._cache["classes"]
        V, cnt = np.array(self.vertices), self.counts.astype(np.int64)
        M, m = self.maps_M, self.maps_m
        K = M.shape[1]
        anc = np.arange(len(cnt))
        E = np.zeros(len(V))
        Ln = _edge_lines(V, cnt)
        if K > 1:
            ci, ck = np.triu_indices(K, 1)
            G = M[:, ci, :] - M[:, ck, :]
            g = m[:, ci] - m[:, ck]
            _, cp, cj = _layer_signs(V, E, cnt, anc, G, g, self.tol)
            C = np.zeros((len(cnt), G.shape[1]), dtype=bool)
            C[cp, cj] = True
            for j in np.flatnonzero(C.any(axis=0)):
                V, E, Ln, cnt, anc, _ = _cut_all(V, E, Ln, cnt, anc, G[:, j, :], g[:, j], C[:, j], self.tol,
                                                 self.min_area)
        areas, cen = _area_centroid(V, cnt)
        classes = np.argmax(np.einsum("pkd,pd->pk", M[anc], cen) + m[anc], axis=1)
        polys = np.split(V, np.cumsum(cnt)[:-1])
        out = (polys, classes, areas)
        self._cache["classes"] = out
        return out

    def class_areas(self) -> dict:
        """Exact area of the slice predicted as each class: ``{class: area}``."""
        _, classes, areas = self.class_regions()
        return {int(c): float(areas[classes == c].sum()) for c in np.unique(classes)}

    # ------------------------------------------------------------------ output
    def to_dict(self, *, include_polygons: bool = False) -> dict:
        """JSON-ready summary; ``include_polygons`` adds vertices, patterns (hex) and classes."""
        a = self.areas
        d = {
            "kind": "plane",
            "widths": list(self.widths),
            "regions": self.num_regions,
            "linear_regions": self.count_linear_regions(),
            "domain": self.domain.tolist(),
            "domain_area": self.domain_area,
            "area_min": float(a.min()),
            "area_median": float(np.median(a)),
            "area_max": float(a.max()),
            "vertices_per_polygon_mean": float(self.counts.mean()),
            "regions_per_class": {str(int(c)): int(n) for c, n in zip(*np.unique(self.classes, return_counts=True))},
            "area_per_class": {str(c): a for c, a in self.class_areas().items()},
            "slivers_skipped": self.slivers_skipped,
            "status": RegionStatus(self.status).value,
            "exact": self.exact,
            "verified": int(self.verified),
            "tol": self.tol,
            "min_area": self.min_area,
            "seconds": self.seconds,
        }
        if include_polygons:
            d["polygons"] = [p.tolist() for p in self.polygons]
            d["patterns"] = [np.packbits(p).tobytes().hex() for p in self.patterns]
            d["class_of_polygon"] = self.classes.tolist()
        return d

    def __str__(self) -> str:
        return (
            f"PlanePartition of Network({'-'.join(map(str, self.widths))}) on a 2-D section: "
            f"{self.num_regions} activation regions (convex polygons), area {self.domain_area:.4g}, "
            f"{len(np.unique(self.classes))} predicted classes ({self.seconds:.3g} s)"
        )


def plane_regions(
    net: Network,
    origin,
    u,
    v,
    *,
    bounds=None,
    polygon=None,
    tol: float = 1e-10,
    min_area: float = 1e-15,
) -> PlanePartition:
    """Exact partition of the plane section ``x(s, t) = origin + s u + t v`` into activation regions.

    Parameters
    ----------
    net : Network
    origin, u, v : array_like (n0,)
        The plane; ``u`` and ``v`` must be linearly independent (not necessarily orthonormal).
    bounds : ((s_lo, s_hi), (t_lo, t_hi)), keyword-only
        Rectangle in slice coordinates. Give exactly one of ``bounds`` and ``polygon``.
    polygon : array_like (k, 2), keyword-only
        Convex polygon in slice coordinates instead of a rectangle.
    tol : float
        A vertex lies on a neuron's zero line when the line's value there is at most ``tol``
        times the magnitude of its terms, plus the vertex's error bound (module docstring).
    min_area : float
        A cut leaving a piece of area below ``min_area * s^2`` (``s``: the piece's largest
        normalised coordinate) is not made.

    Returns
    -------
    PlanePartition

    Notes
    -----
    Start from the domain polygon. For hidden layer ``l`` every polygon ``p`` has
    the layer's pre-activations as an affine function ``G_p [s, t] + g_p`` (the
    composite map of its pattern so far, as in SplineCam, Humayun et al. CVPR 2023,
    arXiv:2302.12828). Neurons are processed one at a time, each against *all*
    current polygons at once: signs at the vertices (flat, vectorised) find the
    polygons its line crosses, and those are clipped into two convex pieces
    (Sutherland-Hodgman on a convex polygon: keep the vertices of one sign plus the
    two edge intersections). After the layer, ``G`` and ``g`` of the next layer
    follow from the pattern: ``G' = W^{l+1} diag(on) G``, ``g' = W^{l+1} diag(on) g + b^{l+1}``.

    Examples
    --------
    >>> net = Network([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    >>> part = plane_regions(net, [0, 0], [1, 0], [0, 1], bounds=((-1, 1), (-1, 1)))
    >>> part.count_regions(), sorted(part.areas.round(6).tolist())
    (4, [1.0, 1.0, 1.0, 1.0])
    """
    t_start = time.perf_counter()
    net = _check_net(net)
    n0 = net.input_dim
    origin = _point("origin", origin, n0)
    u = _point("u", u, n0)
    v = _point("v", v, n0)
    U = np.stack([u, v], axis=1)
    sv = np.linalg.svd(U, compute_uv=False)  # min(n0, 2) values: one for a 1-input net, never independent
    if sv.size < 2 or sv[-1] <= 1e-12 * max(sv[0], 1e-300):
        raise InvalidDomainError("u and v must be linearly independent (they span the plane); got parallel or zero vectors")
    if (bounds is None) == (polygon is None):
        raise InvalidDomainError(
            "give exactly one of bounds=((s_lo, s_hi), (t_lo, t_hi)) or polygon=(k, 2) vertices"
        )
    dom = _bounds_polygon(bounds) if bounds is not None else _convex_polygon(polygon)
    tol = _positive("tol", tol)
    min_area_rel = _positive("min_area", min_area)

    # the problem in normalised coordinates w (regions' normalisation: st = center + scale * w with
    # the polygon's bounding box about [-1, 1]^2, every hidden neuron scaled by a power of two)
    prob, net_w = _normalised_plane(net, origin, U, dom)
    center, scale = prob.center, prob.scale
    dom_w = (dom - center) / scale
    amin = min_area_rel

    V = dom_w.copy()
    E = np.zeros(len(V))  # error bound of each vertex (normalised units)
    Ln = _edge_lines(V)  # (a0, a1, c): the line of the edge leaving each vertex
    cnt = np.array([len(dom_w)], dtype=np.int64)
    anc = np.arange(1)
    W1, b1 = net_w.layers[0]
    G = np.array(W1)[None]  # (polygons, n_l, 2): the current layer's pre-activations per polygon
    g = np.array(b1)[None]
    pats = np.zeros((1, 0), dtype=bool)
    skipped = 0
    status = RegionStatus.COMPLETE
    layer = 0  # the layer being cut; (pats, G, g) are its inputs, per polygon at its start
    try:
        for l in range(net_w.num_hidden_layers):
            # which neurons cross which polygon at the start of the layer: a child polygon can
            # only be crossed by a neuron crossing its ancestor
            anc = np.arange(len(cnt))
            _, cp, cj = _layer_signs(V, E, cnt, anc, G, g, tol)
            C = np.zeros((len(cnt), G.shape[1]), dtype=bool)
            C[cp, cj] = True
            for j in np.flatnonzero(C.any(axis=0)):
                V, E, Ln, cnt, anc, sk = _cut_all(V, E, Ln, cnt, anc, G[:, j, :], g[:, j], C[:, j], tol,
                                                   amin)
                skipped += sk
            # pattern of the layer on each final polygon: the sign of its vertices; a polygon
            # left straddling a line (a skipped sliver cut) takes the sign at its centroid
            on, _, _ = _layer_signs(V, E, cnt, anc, G, g, tol)
            # next layer's pre-activations: G' = W diag(on) G, g' = W diag(on) g + b
            W, b = net_w.layers[l + 1]
            G2, g2 = _next_maps(W, b, G, g, anc, on)
            pats, G, g, layer = np.concatenate([pats[anc], on], axis=1), G2, g2, l + 1  # one step
            anc = np.arange(len(cnt))
            log.debug("plane: layer %d -> %d polygons", l + 1, len(cnt))
        M, m = G, g
        areas, cen = _area_centroid(V, cnt)
    except KeyboardInterrupt:
        # every polygon cut so far holds at least one region (a lower bound); the patterns of
        # the layers not finished are read at the centroids, the maps follow from them
        status = RegionStatus.INTERRUPTED
        if len(anc) != len(cnt) or len(E) != len(V) or len(Ln) != len(V):
            anc = np.arange(len(cnt))  # interrupted between a cut and its bookkeeping: none made
        areas, cen = _area_centroid(V, cnt)
        rest, M, m = _finish_maps(net_w, layer, G, g, anc, cen, budget=_INTERRUPT_BUDGET)
        pats = np.concatenate([pats[anc], rest], axis=1)
    # back to slice coordinates (s, t) = center + scale * w; the maps of the original outputs
    V = center + scale * V
    cen = center + scale * cen
    areas = areas * float(scale[0] * scale[1])
    M = M / scale
    m = m - np.einsum("pkd,d->pk", M, center)
    with np.errstate(invalid="ignore"):
        out = np.einsum("pkd,pd->pk", M, cen) + m
    classes = np.where(np.isnan(out).any(axis=1), -1, np.argmax(np.nan_to_num(out, nan=-np.inf), axis=1))
    offsets = np.concatenate([[0], np.cumsum(cnt)])
    # the witness check of every polygon: its centroid (or, for a sliver, its vertex mean); an
    # interrupted partition is a lower bound without it (each polygon holds at least one region)
    ok = np.zeros(len(cnt), dtype=bool)
    if status is not RegionStatus.INTERRUPTED:
        try:
            ok = check_witnesses(net, None, origin[None, :] + cen @ U.T, pats, strict=True)
        except KeyboardInterrupt:  # the partition is complete, its witnesses unchecked
            status = RegionStatus.INTERRUPTED
    if status is not RegionStatus.INTERRUPTED and not ok.all():
        bad = np.flatnonzero(~ok)
        start = offsets[:-1]
        vm = np.stack([np.add.reduceat(V[:, k], start) for k in (0, 1)], axis=1) / cnt[:, None]
        ok[bad] = check_witnesses(net, None, origin[None, :] + vm[bad] @ U.T, pats[bad], strict=True)
    if status is RegionStatus.COMPLETE and (not ok.all() or skipped):
        status = RegionStatus.UNVERIFIED
    res = PlanePartition(
        origin=_ro(origin), u=_ro(u), v=_ro(v), domain=_ro(dom), vertices=_ro(V),
        offsets=_ro(offsets, np.int64), patterns=_ro(pats, bool), areas=_ro(areas),
        centroids=_ro(cen), maps_M=_ro(M), maps_m=_ro(m), classes=_ro(classes, np.int64),
        widths=net.widths, tol=tol, min_area=min_area_rel, slivers_skipped=int(skipped),
        seconds=time.perf_counter() - t_start, status=status, verified=int(ok.sum()),
    )
    log.debug("plane: %d polygons in %.3g s", res.num_regions, res.seconds)
    return res


#: after Ctrl-C, at most this long is spent on the patterns and maps of the polygons cut so far
_INTERRUPT_BUDGET = 0.5


def _finish_maps(net: Network, layer: int, G: np.ndarray, g: np.ndarray, anc: np.ndarray,
                 points: np.ndarray, *, budget: float = float("inf"), chunk: int = 1024):
    """``(patterns, M, m)`` of hidden layers ``layer, layer + 1, ...`` at slice points, and the
    network's affine map there in slice coordinates; ``G[anc], g[anc]`` are the maps of layer
    ``layer`` at the points. Propagated in the plane's two coordinates, as the partition does
    (a pre-activation within noise of the magnitude of its map's terms is zero, off), in chunks
    of points; points not reached within ``budget`` seconds get NaN maps (and off bits)."""
    P = len(points)
    N = net.num_hidden_neurons - net.hidden_offsets[layer]
    K = net.output_dim
    patterns = np.zeros((P, N), dtype=bool)
    M = np.full((P, K, 2), np.nan)
    m = np.full((P, K), np.nan)
    end = time.perf_counter() + budget
    for s0 in range(0, P, chunk):
        if time.perf_counter() > end:
            log.warning("plane: interrupted; the maps of %d of %d polygons were not computed", P - s0, P)
            break
        sl = slice(s0, min(P, s0 + chunk))
        pt, Gc, gc = points[sl], G[anc[sl]], g[anc[sl]]
        ap = np.abs(pt)
        pats = []
        for l in range(layer, net.num_hidden_layers):
            y = np.einsum("pkd,pd->pk", Gc, pt) + gc
            on = y > DEFAULT.noise * (np.einsum("pkd,pd->pk", np.abs(Gc), ap) + np.abs(gc))
            pats.append(on)
            W, b = net.layers[l + 1]
            Gc, gc = _next_maps(W, b, Gc, gc, np.arange(len(pt)), on)
        if pats:
            patterns[sl] = np.concatenate(pats, axis=1)
        M[sl], m[sl] = Gc, gc
    return patterns, M, m


def _normalised_plane(net: Network, origin: np.ndarray, U: np.ndarray, dom: np.ndarray):
    """The slice as a 2-input problem, normalised as the region counts normalise theirs.

    The network on the plane, ``x = origin + U (s, t)``, is normalised by
    :func:`mipnet.analyses.regions.problem.prepare` on the bounding box of ``dom``: ``(s, t) =
    center + scale * w`` with the box about [-1, 1]^2 and every hidden neuron divided by a power
    of two (patterns unchanged). Returns ``(problem, net_w)``: ``net_w`` takes ``w``, has the
    normalised hidden layers and outputs equal to the original network's.
    """
    from mipnet.analyses.regions.problem import prepare
    from mipnet.core.domain import Box

    W1, b1 = net.layers[0]
    plane = Network([W1 @ U] + [W for W, _ in net.layers[1:]], [W1 @ origin + b1] + [b for _, b in net.layers[1:]])
    prob = prepare(plane, Box(dom.min(axis=0), dom.max(axis=0)))
    if prob.n != 2:
        raise InvalidDomainError("the slice's rectangle is too thin for its position (lower == upper in "
                                 "float64 on one axis); give a wider range")
    L = net.num_hidden_layers
    Ws = [W for W, _ in prob.rnet.layers[:-1]]
    bs = [b for _, b in prob.rnet.layers[:-1]]
    Wl, bl = net.layers[-1]
    if L:
        off = prob.rnet.hidden_offsets
        Wl = Wl * prob.neuron_scale[off[L - 1]:off[L]][None, :]  # undo the last hidden layer's scaling
    else:
        Wl, bl = (W1 @ U) * prob.scale, W1 @ (origin + U @ prob.center) + b1  # no hidden layer
    return prob, Network(Ws + [Wl], bs + [bl])


def _edge_lines(V: np.ndarray, cnt=None) -> np.ndarray:
    """``(a0, a1, c)`` per vertex: the line ``a . x + c = 0`` through it and the next vertex."""
    cnt = np.array([len(V)]) if cnt is None else cnt
    Vn = V[_next_index(_starts(cnt), cnt)]
    a = np.stack([Vn[:, 1] - V[:, 1], V[:, 0] - Vn[:, 0]], axis=1)
    return np.concatenate([a, -np.einsum("ij,ij->i", a, V)[:, None]], axis=1)


def _line_thr(V, E, G0, G1, gg, tol: float) -> np.ndarray:
    """Per-vertex threshold under which the value ``f = G0 v0 + G1 v1 + g`` at vertex v is zero:
    the vertex's own error bound ``E`` times the gradient's length, plus ``tol`` relative to the
    magnitudes of the terms of f (the regions' rule: never relative to the size of the slice)."""
    return np.hypot(G0, G1) * E + tol * (np.abs(G0) * np.abs(V[:, 0]) + np.abs(G1) * np.abs(V[:, 1]) + np.abs(gg))


def _layer_signs(V, E, cnt, anc, G, g, tol, block: int = 8192):
    """Sign of every neuron of a layer on every polygon, and the (polygon, neuron) pairs that cross.

    Polygon ``p`` uses the affine maps ``G[anc[p]], g[anc[p]]`` (shapes (n, 2), (n,)); ``E``: the
    vertices' error bounds; a vertex is on a line within :func:`_line_thr`. A disc around the
    centroid settles most pairs (``|f(c)| > |grad f| r`` plus the largest threshold of the
    disc); only the remaining pairs are evaluated at the polygon's vertices (ragged, vectorised).

    Returns ``on`` (P, n) bool (pre-activation > 0 on the polygon; a polygon that straddles
    a line takes the sign at its centroid) and ``(p, j)`` index arrays of crossing pairs.
    """
    P, n = len(cnt), G.shape[1]
    start = _starts(cnt)
    _, cen = _area_centroid(V, cnt)
    pid = np.repeat(np.arange(P), cnt)
    rad = np.maximum.reduceat(np.hypot(*(V - cen[pid]).T), start)
    emax = np.maximum.reduceat(E, start)
    on = np.empty((P, n), dtype=bool)
    near_p, near_j, near_fc = [], [], []
    G0, G1 = np.ascontiguousarray(G[:, :, 0]), np.ascontiguousarray(G[:, :, 1])
    Gn = np.hypot(G0, G1)
    for p0 in range(0, P, block):
        p1 = min(P, p0 + block)
        a = anc[p0:p1]
        c0, c1, r = cen[p0:p1, :1], cen[p0:p1, 1:], rad[p0:p1, None]
        fc = G0[a] * c0 + G1[a] * c1 + g[a]
        gn = Gn[a]
        big = gn * emax[p0:p1, None] + tol * (np.abs(G0[a]) * (np.abs(c0) + r) + np.abs(G1[a]) * (np.abs(c1) + r)
                                             + np.abs(g[a]))
        on[p0:p1] = fc > 0
        pp, jj = np.nonzero(np.abs(fc) <= gn * r + big)
        near_p.append(pp + p0)
        near_j.append(jj)
        near_fc.append(fc[pp, jj])
    p, j = np.concatenate(near_p), np.concatenate(near_j)
    if p.size == 0:
        return on, p, j
    fcen = np.concatenate(near_fc)
    m = cnt[p]
    ms = _starts(m)
    vert = np.repeat(start[p] - ms, m) + np.arange(int(m.sum()))
    a, jj = np.repeat(anc[p], m), np.repeat(j, m)
    g0, g1, gg = G0[a, jj], G1[a, jj], g[a, jj]
    Vv = V[vert]
    f = Vv[:, 0] * g0 + Vv[:, 1] * g1 + gg
    thr = _line_thr(Vv, E[vert], g0, g1, gg, tol)
    pos = np.logical_or.reduceat(f > thr, ms)
    cross = pos & np.logical_or.reduceat(f < -thr, ms)
    on[p, j] = np.where(cross, fcen > 0, pos)
    return on, p[cross], j[cross]


def _next_maps(W, b, G, g, anc, on, block: int = 2048):
    """``W diag(on) G[anc]`` and ``W diag(on) g[anc] + b`` per polygon, with BLAS, in blocks."""
    P = len(anc)
    Gn = np.empty((P, W.shape[0], 2))
    for p0 in range(0, P, block):
        p1 = min(P, p0 + block)
        Gh = on[p0:p1, :, None] * G[anc[p0:p1]]
        Gn[p0:p1] = np.tensordot(Gh, W, axes=([1], [1])).transpose(0, 2, 1)
    gn = (on * g[anc]) @ W.T + b
    return Gn, gn


def _cut_all(V, E, Ln, cnt, anc, Gj, gj, cand_anc, tol, min_area):
    """Cut every polygon crossed by one neuron's zero line; vectorised over polygons.

    Polygon ``p`` has the neuron's pre-activation ``Gj[anc[p]] . (s, t) + gj[anc[p]]``; only
    polygons with ``cand_anc[anc[p]]`` can be crossed. ``E``: the vertices' error bounds; a
    vertex within :func:`_line_thr` of the line lies on it. A cut is not made when a side would
    have area below ``min_area * s^2``, ``s`` the largest vertex coordinate of that side (a
    sliver relative to its own magnitude). ``Ln``: per vertex the line of the edge leaving it; a
    crossing point is refined on the two lines it lies on when that lowers its error bound.
    Returns ``(V, E, Ln, cnt, anc, skipped)``.
    """
    cand = cand_anc[anc]
    if not cand.any():
        return V, E, Ln, cnt, anc, 0
    P = len(cnt)
    pid = np.repeat(np.arange(P), cnt)
    ci = np.flatnonzero(cand)
    vi = np.flatnonzero(cand[pid])
    cc = cnt[ci]
    lp = np.repeat(np.arange(len(ci)), cc)  # local polygon of each candidate vertex
    Gc, gc = Gj[anc[ci]], gj[anc[ci]]
    Vs, Es = V[vi], E[vi]
    g0, g1, gg = Gc[lp, 0], Gc[lp, 1], gc[lp]
    f = Vs[:, 0] * g0 + Vs[:, 1] * g1 + gg
    thr = _line_thr(Vs, Es, g0, g1, gg, tol)
    ls = _starts(cc)
    cross = np.logical_or.reduceat(f > thr, ls) & np.logical_or.reduceat(f < -thr, ls)
    if not cross.any():
        return V, E, Ln, cnt, anc, 0
    # restrict to the crossed polygons
    vm = cross[lp]
    ci, cc, Gc, gc = ci[cross], cc[cross], Gc[cross], gc[cross]
    fc, thr = f[vm], thr[vm]
    fc[np.abs(fc) <= thr] = 0.0  # snap vertices lying on the line
    Vc, Ec = Vs[vm], Es[vm]
    Lc = Ln[vi][vm]
    nxt = _next_index(_starts(cc), cc)
    fn, Vn, En = fc[nxt], Vc[nxt], Ec[nxt]
    owner = np.repeat(np.arange(len(ci)), cc)
    ecross = fc * fn < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.where(ecross, fc - fn, 1.0)
        w = np.where(ecross, fc / gap, 0.0)
    step = Vn - Vc
    X = Vc + w[:, None] * step
    # error of a crossing point: its end points' errors, the rounding of the interpolation and the
    # error of f at the end points amplified by the edge's slope against the line
    mag = np.maximum(np.abs(Vc).max(axis=1), np.abs(Vn).max(axis=1))
    ferr = 8 * _EPS * (np.abs(Gc[owner]).sum(axis=1) * mag + np.abs(gc[owner]))
    EX = np.maximum(Ec, En) + 8 * _EPS * mag + ferr * np.hypot(step[:, 0], step[:, 1]) / np.abs(gap)
    cutl = np.concatenate([Gc[owner], gc[owner][:, None]], axis=1)  # the cut line, per vertex
    ie = np.flatnonzero(ecross)
    if ie.size:
        X[ie], EX[ie] = _refine(X[ie], EX[ie], Lc[ie], cutl[ie])
    # Sutherland-Hodgman on a convex polygon: every vertex contributes itself (to the sides
    # it lies on) and its edge's crossing point (to both sides), in order
    cand2 = np.empty((2 * len(fc), 2))
    cand2[0::2], cand2[1::2] = Vc, X
    err2 = np.empty(2 * len(fc))
    err2[0::2], err2[1::2] = Ec, np.where(ecross, EX, 0.0)
    own2 = np.repeat(owner, 2)
    pos = np.empty(2 * len(fc), dtype=bool)
    neg = np.empty(2 * len(fc), dtype=bool)
    pos[0::2], pos[1::2] = fc >= 0, ecross
    neg[0::2], neg[1::2] = fc <= 0, ecross
    Vp, Vq = cand2[pos], cand2[neg]
    Ep, Eq = err2[pos], err2[neg]
    # the line leaving each output vertex: a vertex keeps its edge's line unless it lies on the cut
    # and its edge goes to the other side; a crossing point leaves along the cut when its edge's
    # start is on the kept side, else along its edge's line
    line2 = np.empty((2 * len(fc), 3))
    line2[0::2], line2[1::2] = Lc, Lc
    lp2, lq2 = line2.copy(), line2
    lp2[0::2][(fc == 0) & (fn < 0)] = cutl[(fc == 0) & (fn < 0)]
    lp2[1::2][fc > 0] = cutl[fc > 0]
    lq2 = lq2.copy()
    lq2[0::2][(fc == 0) & (fn > 0)] = cutl[(fc == 0) & (fn > 0)]
    lq2[1::2][fc < 0] = cutl[fc < 0]
    Lp, Lq = lp2[pos], lq2[neg]
    cp = np.bincount(own2[pos], minlength=len(ci))
    cq = np.bincount(own2[neg], minlength=len(ci))
    ap, _ = _area_centroid(Vp, cp)
    aq, _ = _area_centroid(Vq, cq)
    sp2 = np.maximum.reduceat(np.abs(Vp).max(axis=1), _starts(cp)) ** 2 if len(Vp) else np.zeros(0)
    sq2 = np.maximum.reduceat(np.abs(Vq).max(axis=1), _starts(cq)) ** 2 if len(Vq) else np.zeros(0)
    ok = (cp >= 3) & (cq >= 3)
    ok[ok] &= (ap[ok] > min_area * sp2[ok]) & (aq[ok] > min_area * sq2[ok])
    skipped = int((~ok).sum())
    keep = np.ones(P, dtype=bool)
    keep[ci[ok]] = False
    sp = ci[ok]
    kv = keep[pid]
    okp, okq = np.repeat(ok, cp), np.repeat(ok, cq)
    V = np.concatenate([V[kv], Vp[okp], Vq[okq]])
    E = np.concatenate([E[kv], Ep[okp], Eq[okq]])
    Ln = np.concatenate([Ln[kv], Lp[okp], Lq[okq]])
    cnt = np.concatenate([cnt[keep], cp[ok], cq[ok]])
    parent = np.concatenate([np.flatnonzero(keep), sp, sp])
    return V, E, Ln, cnt, anc[parent], skipped


def _refine(X: np.ndarray, EX: np.ndarray, L1: np.ndarray, L2: np.ndarray):
    """One Newton step of the 2x2 system of the two lines through each point (catastrophic
    cancellation: a small vertex interpolated between large ones, e.g. near the centre of a huge
    slice); keeps the step where its error bound (residual over the smallest singular value,
    plus rounding) is smaller."""
    a, b, c, d = L1[:, 0], L1[:, 1], L2[:, 0], L2[:, 1]
    det = a * d - b * c
    r1 = a * X[:, 0] + b * X[:, 1] + L1[:, 2]
    r2 = c * X[:, 0] + d * X[:, 1] + L2[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        X1 = X - np.stack([d * r1 - b * r2, a * r2 - c * r1], axis=1) / det[:, None]
        s1 = a * X1[:, 0] + b * X1[:, 1] + L1[:, 2]
        s2 = c * X1[:, 0] + d * X1[:, 1] + L2[:, 2]
        ax = np.abs(X1)
        rnd = 8 * _EPS * (np.abs(L1[:, :2]) @ np.ones(2) * ax.max(axis=1) + np.abs(L1[:, 2])
                          + np.abs(L2[:, :2]) @ np.ones(2) * ax.max(axis=1) + np.abs(L2[:, 2]))
        err = (np.maximum(np.abs(s1), np.abs(s2)) + rnd) * np.sqrt(a * a + b * b + c * c + d * d) / np.abs(det)
    better = np.isfinite(err) & (err < EX) & np.all(np.isfinite(X1), axis=1)
    X = np.where(better[:, None], X1, X)
    return X, np.where(better, err, EX)


# ============================================================================ choosing a plane
@dataclass(frozen=True, eq=False)
class SlicePlane:
    """A plane ``origin + s u + t v`` with a rectangle of ``(s, t)`` and marked points.

    Unpacks as ``origin, u, v, bounds = plane`` for :func:`plane_regions`.
    """

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bounds: tuple
    points_st: np.ndarray

    def __iter__(self) -> Iterator:
        return iter((self.origin, self.u, self.v, self.bounds))

    def to_input(self, points_st) -> np.ndarray:
        st = np.asarray(points_st, dtype=np.float64).reshape(-1, 2)
        return self.origin[None, :] + st[:, :1] * self.u[None, :] + st[:, 1:] * self.v[None, :]

    def to_st(self, x) -> np.ndarray:
        """Least-squares slice coordinates of input points (exact for points on the plane)."""
        X = np.atleast_2d(np.asarray(x, dtype=np.float64)) - self.origin[None, :]
        U = np.stack([self.u, self.v], axis=1)
        return np.linalg.lstsq(U, X.T, rcond=None)[0].T

    def regions(self, net: Network, **options) -> PlanePartition:
        """:func:`plane_regions` on this plane and rectangle."""
        return plane_regions(net, self.origin, self.u, self.v, bounds=self.bounds, **options)

    def to_dict(self) -> dict:
        return {"bounds": [list(b) for b in self.bounds], "points_st": self.points_st.tolist(),
                "dim": int(self.origin.size)}

    def __str__(self) -> str:
        (s0, s1), (t0, t1) = self.bounds
        return f"SlicePlane in R^{self.origin.size}: s in [{s0:.4g}, {s1:.4g}], t in [{t0:.4g}, {t1:.4g}]"


def plane_through_points(x1, x2, x3, *, margin: float = 0.2) -> SlicePlane:
    """The plane through three inputs (e.g. three images), with a rectangle around them.

    ``origin`` is the triangle's centroid, ``u`` the unit vector from ``x1`` to ``x2``,
    ``v`` the unit Gram-Schmidt component of ``x3 - x1`` orthogonal to ``u``. The
    rectangle encloses the three points with ``margin`` times the triangle's extent
    on every side. ``points_st`` holds the three points' slice coordinates.
    """
    x1 = _point("x1", x1, np.size(x1))
    x2 = _point("x2", x2, x1.size)
    x3 = _point("x3", x3, x1.size)
    margin = _positive("margin", margin)
    d1 = x2 - x1
    n1 = np.linalg.norm(d1)
    if n1 == 0:
        raise InvalidDomainError("x1 and x2 coincide; give three distinct, non-collinear points")
    u = d1 / n1
    d2 = x3 - x1
    w = d2 - (d2 @ u) * u
    w = w - (w @ u) * u  # second Gram-Schmidt pass for accuracy
    n2 = np.linalg.norm(w)
    if n2 <= 1e-12 * max(n1, np.linalg.norm(d2)):
        raise InvalidDomainError("x1, x2, x3 are collinear; they do not span a plane")
    v = w / n2
    origin = (x1 + x2 + x3) / 3.0
    X = np.stack([x1, x2, x3]) - origin
    st = np.stack([X @ u, X @ v], axis=1)
    lo, hi = st.min(axis=0), st.max(axis=0)
    ext = float(np.max(hi - lo))
    lo, hi = lo - margin * ext, hi + margin * ext
    bounds = ((float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])))
    return SlicePlane(_ro(origin), _ro(u), _ro(v), bounds, _ro(st))


def plane_along_axes(dim: int, i: int, j: int, base_point=None, lo=-1.0, hi=1.0) -> SlicePlane:
    """The plane through ``base_point`` spanned by input axes ``i`` and ``j``.

    ``s`` and ``t`` are the input coordinates ``x_i`` and ``x_j`` themselves; the other
    inputs stay at ``base_point`` (default 0). ``lo``/``hi`` are scalars or ``(for_i, for_j)``.
    """
    try:
        dim, i, j = int(dim), int(i), int(j)
    except (TypeError, ValueError):
        raise InvalidDomainError("dim, i and j must be integers") from None
    if dim < 2:
        raise InvalidDomainError(f"dim must be >= 2 for a plane, got {dim}")
    for name, k in (("i", i), ("j", j)):
        if not 0 <= k < dim:
            raise InvalidDomainError(f"{name}={k} is not an input index in [0, {dim - 1}]")
    if i == j:
        raise InvalidDomainError("i and j must be different axes")
    base = np.zeros(dim) if base_point is None else _point("base_point", base_point, dim)
    lo2 = np.broadcast_to(np.asarray(lo, dtype=np.float64), (2,))
    hi2 = np.broadcast_to(np.asarray(hi, dtype=np.float64), (2,))
    origin = base.copy()
    origin[[i, j]] = 0.0
    u = np.zeros(dim)
    u[i] = 1.0
    v = np.zeros(dim)
    v[j] = 1.0
    bounds = ((float(lo2[0]), float(hi2[0])), (float(lo2[1]), float(hi2[1])))
    _bounds_polygon(bounds)
    return SlicePlane(_ro(origin), _ro(u), _ro(v), bounds, _ro(base[[i, j]][None, :]))
