"""Activation regions of a ReLU network on an input domain: exact counts, estimates, bounds.

An *activation pattern* says which hidden neurons are on (pre-activation > 0). mipnet
counts the patterns whose *activation region* inside the domain D has non-empty interior
(Serra, Tjandraatmadja and Ramalingam, ICML 2018, arXiv:1711.02114). Such a region is a
convex polytope: the pattern fixes every pre-activation as an affine function of x.

Exact counting (:func:`count_regions`)
--------------------------------------
``"vertex"`` (the fast method for at most 7 free inputs)
    Depth-first construction of the arrangement, layer by layer and neuron by neuron, with
    every cell held by its vertices and, per vertex, the set of constraints tight at it
    (the double-description representation; Fukuda and Prodon, "Double description method
    revisited", 1996). Whether a neuron's hyperplane cuts a cell is read off the signs of
    its affine function at the vertices -- no LP at all. A cut computes the new vertices on
    the edges that cross the hyperplane; two vertices span an edge iff no third vertex is
    tight on every constraint tight at both (the combinatorial adjacency test). Inside a
    region of the layers before, the next layer's pre-activations are affine in x
    (``W diag(pattern) ...``), so the same cut applies to every layer.
``"lp"`` (the fast method in any dimension)
    The same depth-first search with each cell held as rows of one HiGHS LP (rows are
    appended when descending and deleted when backtracking). Each cell keeps a certified
    interior ball (centre, radius); a hyperplane closer to the centre than the radius
    cuts the cell without an LP, and the ball of each side follows in closed form.
    Otherwise one Chebyshev LP ``max t s.t. a_i x + ||a_i|| t <= b_i`` on the far side
    decides it (and, if that side is empty, the neuron's side becomes a row of the cell).
    Neurons stable on all of D by symbolic bounds never need an LP.
``"milp"`` (baseline and cross-check)
    Serra et al. 2018: the MILP of the network plus an interior variable f with
    ``f <= h_i + (1 - z_i) F`` and ``f <= hbar_i + z_i F`` (``hbar_i = h_i - y_i``) for
    every unstable neuron and ``f >= milp_margin``; any solution is a pattern, which is
    then excluded by the no-good cut ``sum_{z_i=0} z_i + sum_{z_i=1} (1 - z_i) >= 1`` and
    the MILP re-solved (HiGHS has no solution pool) until it is proven infeasible: no
    pattern with margin ``f >= milp_margin`` is left. Expected to be slow: it is the
    cross-check.

Every counted region's interior point is re-checked by a float64 forward pass: its
activation pattern must equal the region's pattern exactly (``verified`` in the result;
a point that fails is re-centred by a Chebyshev LP of its region and checked again).

Speed (4-16-16-2 net on [-1, 1]^4, 9,013 regions, a shared 2-core machine): vertex
~4,700 regions/s, LP ~80-150 regions/s, MILP ~1-2 regions/s.

Tolerances
----------
``tol`` (default 1e-9) is relative to the diameter ``diam`` of the domain's box. The
vertex method splits a cell only if both sides have a vertex farther than ``tol * diam``
from the hyperplane (a vertex closer than that lies on it); the LP method only if both
sides contain a ball of radius ``> tol * diam``. The MILP accepts a pattern iff its
pre-activation margin f exceeds ``milp_margin`` (default 1e-6, above the feasibility
tolerance 1e-9 it sets in HiGHS). Regions thinner than these thresholds are not counted,
so the methods agree except on nets with such slivers. One more difference, by
construction of the MILP: a region on which some neuron that is unstable on D has a
pre-activation *identically* zero (its inputs all off and its bias 0) has margin f = 0,
so the MILP misses it; the geometric methods count it with that neuron off, as the
forward pass does.

Inputs whose box has lower == upper are fixed; regions are counted in the remaining
(free) coordinates.

Estimates and bounds
--------------------
:func:`sample_regions` (distinct patterns seen at random inputs: a lower bound),
:func:`parity_lower_bound` (MIPBound, Serra and Ramalingam, AAAI 2020, arXiv:1810.03370:
a probabilistic lower bound from random XOR constraints on the MILP's binaries), and
:func:`network_specific_bound` (the upper bound of the same paper, with stable-neuron
counts and the MILP maximum of simultaneously active units per layer).

Work units
----------
The depth-first searches are pure functions of (network, domain, start cell): any
subtree can be explored independently, which is how a distributed engine would split
the count later (``DESIGN.md``).
"""

from __future__ import annotations

import logging
import math
import numbers
import sys
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mipnet.core.domain import Domain, as_domain
from mipnet.core.errors import InvalidArgumentError, InvalidDomainError, InvalidNetworkError, SolverError
from mipnet.core.network import Network

__all__ = [
    "Region",
    "RegionCount",
    "count_regions",
    "SampleCount",
    "sample_regions",
    "ParityBound",
    "parity_lower_bound",
    "NetworkSpecificBound",
    "network_specific_bound",
    "METHODS",
]

log = logging.getLogger(__name__)

METHODS = ("fast", "vertex", "lp", "milp")
#: the vertex method is used by "fast" up to this input dimension (the box has 2^n vertices)
VERTEX_MAX_DIM = 7
_INF = float("inf")
_VERIFY_CHUNK = 4096


# ============================================================================ results
@dataclass(frozen=True, eq=False)
class Region:
    """One activation region: its pattern, a point inside it, and the network on it.

    Attributes
    ----------
    pattern : bool array (N,)
        ``pre-activation > 0`` of every hidden neuron (as :meth:`Network.activation_pattern`).
    interior_point : array (n0,)
        A point of the region's interior; its float64 forward-pass pattern equals ``pattern``
        (pre-activations within rounding noise of zero, which only occur where a neuron is
        identically zero on the region, count as off).
    A, c : arrays (n_out, n0), (n_out,)
        ``f(x) = A x + c`` on the region.
    """

    pattern: np.ndarray
    interior_point: np.ndarray
    A: np.ndarray
    c: np.ndarray

    def to_dict(self) -> dict:
        return {
            "pattern": "".join("1" if b else "0" for b in self.pattern),
            "interior_point": self.interior_point.tolist(),
            "A": self.A.tolist(),
            "c": self.c.tolist(),
        }

    def __str__(self) -> str:
        bits = "".join("1" if b else "0" for b in self.pattern)
        return f"Region(pattern={bits}, x={np.array2string(self.interior_point, precision=4)})"


@dataclass(frozen=True, eq=False)
class RegionCount:
    """The number of activation regions (non-empty interior) of a network on a domain.

    Attributes
    ----------
    regions : int
        Regions found. The exact count when ``exact``; otherwise a lower bound (every
        counted region has a verified interior point and distinct pattern).
    exact : bool
        True iff the search finished (no time limit or region budget hit).
    method, algorithm : str
        The method asked for and the algorithm that ran (``vertex``, ``lp``, ``milp``).
    seconds : float
    lp_solves, milp_solves : int
        Solver calls made (the vertex method needs none).
    status : str
        ``complete``, ``time_limit`` or ``max_regions``.
    message : str
    linear_regions : int or None
        With ``merge_linear``: the regions after merging adjacent activation regions
        with identical affine maps (linear regions).
    region_list : tuple of Region or None
        With ``return_regions``.
    verified, unverified : int
        Regions whose interior point passed / failed the float64 forward-pass check.
    """

    regions: int
    exact: bool
    method: str
    algorithm: str
    seconds: float
    lp_solves: int = 0
    milp_solves: int = 0
    status: str = "complete"
    message: str = ""
    linear_regions: Optional[int] = None
    region_list: Optional[tuple] = None
    verified: int = 0
    unverified: int = 0
    nodes: int = 0
    tol: float = 1e-9
    widths: tuple = ()
    free_inputs: int = 0

    @property
    def lower_bound(self) -> int:
        """The count as a lower bound (equal to the count when exact)."""
        return self.regions

    @property
    def regions_per_second(self) -> float:
        return self.regions / self.seconds if self.seconds > 0 else float("inf")

    def patterns(self) -> np.ndarray:
        """Patterns of the returned regions, shape (regions, N); needs ``return_regions``."""
        if self.region_list is None:
            raise InvalidArgumentError("no regions kept: call count_regions(..., return_regions=True)")
        if not self.region_list:
            return np.zeros((0, sum(self.widths[1:-1])), dtype=bool)
        return np.stack([r.pattern for r in self.region_list])

    def to_dict(self, *, include_regions: bool = True) -> dict:
        d = {
            "regions": int(self.regions),
            "exact": bool(self.exact),
            "method": self.method,
            "algorithm": self.algorithm,
            "seconds": float(self.seconds),
            "regions_per_second": float(self.regions_per_second) if self.seconds > 0 else None,
            "lp_solves": int(self.lp_solves),
            "milp_solves": int(self.milp_solves),
            "status": self.status,
            "message": self.message,
            "verified": int(self.verified),
            "unverified": int(self.unverified),
            "nodes": int(self.nodes),
            "tol": float(self.tol),
            "widths": list(self.widths),
            "free_inputs": int(self.free_inputs),
        }
        if self.linear_regions is not None:
            d["linear_regions"] = int(self.linear_regions)
        if include_regions and self.region_list is not None:
            d["region_list"] = [r.to_dict() for r in self.region_list]
        return d

    def __str__(self) -> str:
        net = "-".join(map(str, self.widths))
        head = f"{self.regions:,} activation regions" if self.exact else f"at least {self.regions:,} activation regions"
        s = (f"{head} of Network({net}) ({self.algorithm} method, {self.seconds:.3g} s, "
             f"{self.lp_solves} LP / {self.milp_solves} MILP solves)")
        if self.linear_regions is not None:
            s += f"; {self.linear_regions:,} linear regions after merging"
        if not self.exact:
            s += f"; stopped: {self.status} -- a lower bound"
        if self.unverified:
            s += f"; WARNING {self.unverified} regions failed the forward-pass check"
        return s


# ============================================================================ problem setup
@dataclass(frozen=True, eq=False)
class _Problem:
    """The network and domain restricted to the free input coordinates."""

    net: Network
    rnet: Network
    domain: Domain
    free: np.ndarray
    x_fixed: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    A: Optional[np.ndarray]  # unit-normal rows, reduced
    c: Optional[np.ndarray]
    diam: float

    @property
    def n(self) -> int:
        return int(self.free.size)

    def rdomain(self) -> Domain:
        return Domain(self.lower, self.upper, self.A, self.c)

    def lift(self, Xr) -> np.ndarray:
        Xr = np.atleast_2d(np.asarray(Xr, dtype=np.float64))
        X = np.repeat(self.x_fixed[None, :], Xr.shape[0], axis=0)
        X[:, self.free] = Xr
        return X


def _check_net(net) -> Network:
    if not isinstance(net, Network):
        raise InvalidNetworkError(
            f"net must be a mipnet.Network, got {type(net).__name__}; "
            "convert torch/ONNX models with mipnet.io.load_network or mipnet.torch_io"
        )
    return net


def _prepare(net, domain) -> _Problem:
    net = _check_net(net)
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
    W1, b1 = net.layers[0]
    rb1 = b1 + W1[:, fixed] @ x_fixed[fixed] if fixed.any() else b1
    rnet = Network((W1[:, free],) + tuple(net.weights[1:]), (rb1,) + tuple(net.biases[1:]))
    A = c = None
    if domain.has_constraints:
        A = domain.A[:, free]
        c = domain.c - domain.A[:, fixed] @ x_fixed[fixed] if fixed.any() else domain.c.copy()
        nrm = np.linalg.norm(A, axis=1)
        zero = nrm <= 1e-14 * (1.0 + np.abs(c))
        if np.any(zero & (c < -1e-12)):
            raise InvalidDomainError("the domain is empty: a constraint row reads 0 <= c with c < 0")
        A, c, nrm = A[~zero], c[~zero], nrm[~zero]
        A = A / nrm[:, None]
        c = c / nrm
        if A.shape[0] == 0:
            A = c = None
    diam = float(np.linalg.norm(hi[free] - lo[free]))
    return _Problem(net, rnet, domain, free, x_fixed, lo[free].copy(), hi[free].copy(), A, c, diam)


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_)) and math.isfinite(float(x))


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def _check_options(method, time_limit, max_regions, tol, milp_margin) -> None:
    if method not in METHODS:
        raise InvalidArgumentError(f"method must be one of {METHODS}, got {method!r}")
    if time_limit is not None and not (_is_real(time_limit) and time_limit > 0):
        raise InvalidArgumentError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
    if max_regions is not None and not (_is_int(max_regions) and max_regions >= 1):
        raise InvalidArgumentError(f"max_regions must be a positive integer or None, got {max_regions!r}")
    if not (_is_real(tol) and 0 < tol < 1e-2):
        raise InvalidArgumentError(f"tol must be in (0, 0.01) (relative to the domain diameter), got {tol!r}")
    if not (_is_real(milp_margin) and milp_margin > 0):
        raise InvalidArgumentError(f"milp_margin must be > 0, got {milp_margin!r}")


# ============================================================================ helpers
if hasattr(np, "bitwise_count"):
    def _popcount(a: np.ndarray) -> np.ndarray:
        return np.bitwise_count(a)
else:  # pragma: no cover - numpy < 2.0
    _BYTE_COUNTS = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount(a: np.ndarray) -> np.ndarray:
        b = a[..., None].view(np.uint8)
        return _BYTE_COUNTS[b].sum(-1)


#: a pre-activation within this fraction of the magnitude of its terms is floating-point zero
_NOISE = 1e-12


def _snapped_forward(net: Network, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hidden pre-activations of a batch with rounding noise snapped to zero, and the patterns.

    ``y_i`` counts as zero when ``|y_i| <= 1e-12 (|W_i| |h| + |b_i|)``, a bound well above the
    rounding error of the dot product. Without it a neuron that is *identically* zero on a
    region (e.g. ``h_3 - h_4 + 1`` with ``h_4 = h_3 + 1`` there) reads as +-1e-16 and fakes a
    pattern. Zero is off, as in :meth:`Network.activation_pattern`; elsewhere the patterns
    are those of the plain forward pass.
    """
    h = np.atleast_2d(np.asarray(X, dtype=np.float64))
    Ys = []
    for W, b in net.layers[:-1]:
        y = h @ W.T + b
        noise = _NOISE * (np.abs(h) @ np.abs(W).T + np.abs(b))
        y = np.where(np.abs(y) <= noise, 0.0, y)
        Ys.append(y)
        h = np.maximum(y, 0.0)
    if not Ys:
        return np.zeros((h.shape[0], 0)), np.zeros((h.shape[0], 0), dtype=bool)
    Y = np.concatenate(Ys, axis=1)
    return Y, Y > 0


def _hidden_maps(net: Network, pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pre-activations of every hidden neuron as affine maps ``G x + g`` on the pattern's region."""
    n0 = net.input_dim
    G_parts, g_parts = [], []
    A, c = np.eye(n0), np.zeros(n0)
    off = net.hidden_offsets
    for l in range(net.num_hidden_layers):
        W, b = net.layers[l]
        A, c = W @ A, W @ c + b
        G_parts.append(A)
        g_parts.append(c)
        on = pattern[off[l]:off[l + 1]]
        A, c = A * on[:, None], c * on
    if not G_parts:
        return np.zeros((0, n0)), np.zeros(0)
    return np.concatenate(G_parts), np.concatenate(g_parts)


def _output_maps_iter(net: Network, patterns: np.ndarray, *, max_elems: float = 2e7):
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
        A = np.broadcast_to(np.eye(n0), (pat.shape[0], n0, n0)) if L == 0 else None
        c = np.zeros((pat.shape[0], n0)) if L == 0 else None
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


def _output_maps(net: Network, patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched affine maps of many patterns: (P, n_out, n0), (P, n_out)."""
    P = patterns.shape[0]
    A = np.zeros((P, net.output_dim, net.input_dim))
    c = np.zeros((P, net.output_dim))
    for s, As, cs in _output_maps_iter(net, patterns):
        A[s:s + len(As)] = As
        c[s:s + len(cs)] = cs
    return A, c


class _PointLP:
    """``max t`` such that every neuron keeps the pattern's sign with a margin ``||a_i|| t`` (HiGHS)."""

    def __init__(self, prob: _Problem) -> None:
        self.prob = prob
        self.solves = 0

    def point(self, pattern: np.ndarray, *, skip: Optional[np.ndarray] = None,
              equal: Optional[int] = None) -> tuple[Optional[np.ndarray], float]:
        """Chebyshev centre (reduced coordinates) and radius of the region of ``pattern``.

        ``skip``: neurons left out; ``equal``: a neuron whose pre-activation is fixed at 0
        (the ball then lies inside that hyperplane: a facet test).
        """
        from mipnet.milp.encoding import HighsModel

        prob = self.prob
        G, g = _hidden_maps(prob.rnet, pattern)
        nrm = np.linalg.norm(G, axis=1)
        active = np.ones(nrm.size, dtype=bool)
        if skip is not None:
            active &= ~np.asarray(skip, dtype=bool)
        if equal is not None:
            active[equal] = False
        if np.any(active & (nrm == 0) & (pattern != (g > 0))):
            return None, -_INF  # a constant neuron contradicts the pattern
        keep = active & (nrm > 0)
        s = np.where(pattern, 1.0, -1.0)[keep]
        Gk, gk, nk = G[keep] / nrm[keep, None], g[keep] / nrm[keep], np.ones(int(keep.sum()))
        n = prob.n
        model = HighsModel(prob.rdomain())
        tcol = model.add_cols(np.array([-_INF]), np.array([max(prob.diam, 1.0)]))
        cols = np.concatenate([model.input_cols, tcol])
        rows = [np.hstack([np.eye(n), np.ones((n, 1))]), np.hstack([-np.eye(n), np.ones((n, 1))])]
        rhs = [prob.upper, -prob.lower]
        if prob.A is not None:
            rows.append(np.hstack([prob.A, np.ones((prob.A.shape[0], 1))]))
            rhs.append(prob.c)
        rows.append(np.hstack([-s[:, None] * Gk, nk[:, None]]))
        rhs.append(s * gk)
        M = np.vstack(rows)
        model.add_rows(np.full(M.shape[0], -_INF), np.concatenate(rhs), M, cols=cols)
        if equal is not None:
            a = G[equal] / max(nrm[equal], 1e-300)
            model.add_rows(np.array([-g[equal] / max(nrm[equal], 1e-300)]),
                           np.array([-g[equal] / max(nrm[equal], 1e-300)]), a[None, :], cols=model.input_cols)
        model.set_objective(tcol, [1.0], maximize=True)
        res = model.solve()
        self.solves += 1
        if res.status == "infeasible":
            return None, -_INF
        if res.status != "optimal":
            raise SolverError(f"Chebyshev LP of a region ended with status {res.highs_status}")
        return res.values[model.input_cols].copy(), float(res.values[tcol[0]])


class _Sink:
    """Collects found regions, verifies their interior points in batches, keeps them if asked."""

    def __init__(self, prob: _Problem, *, keep: bool, max_regions: Optional[int], progress: bool,
                 point_lp: _PointLP) -> None:
        self.prob = prob
        self.keep = keep
        self.max_regions = max_regions
        self.count = 0
        self.verified = 0
        self.unverified = 0
        self.repaired = 0
        self._bx: list = []
        self._bp: list = []
        self.points: list = []
        self.patterns: list = []
        self.point_lp = point_lp
        self._bar = None
        if progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=max_regions, unit="region", desc="regions", file=sys.stderr,
                             mininterval=0.5, smoothing=0.1)
        self._shown = 0

    @property
    def full(self) -> bool:
        return self.max_regions is not None and self.count >= self.max_regions

    def add(self, x_red: np.ndarray, pattern: np.ndarray) -> None:
        self._bx.append(x_red)
        self._bp.append(pattern)
        self.count += 1
        if len(self._bx) >= _VERIFY_CHUNK:
            self.flush()

    def tick(self) -> None:
        if self._bar is not None and self.count > self._shown:
            self._bar.update(self.count - self._shown)
            self._shown = self.count

    def flush(self) -> None:
        if not self._bx:
            return
        prob = self.prob
        Xr = np.array(self._bx)
        P = np.array(self._bp, dtype=bool)
        self._bx, self._bp = [], []
        ok = self._check(Xr, P)
        for i in np.flatnonzero(~ok):
            x, t = self.point_lp.point(P[i])
            if x is not None and t > 0 and self._check(x[None, :], P[i:i + 1])[0]:
                Xr[i] = x
                ok[i] = True
                self.repaired += 1
        self.verified += int(ok.sum())
        bad = int((~ok).sum())
        if bad:
            log.warning("%d regions failed the forward-pass check of their interior point", bad)
            self.unverified += bad
        if self.keep:
            self.points.append(prob.lift(Xr))
            self.patterns.append(P)
        self.tick()

    def _check(self, Xr: np.ndarray, P: np.ndarray) -> np.ndarray:
        X = self.prob.lift(Xr)
        return np.all(_snapped_forward(self.prob.net, X)[1] == P, axis=1) & self.prob.domain.contains(X, tol=1e-7)

    def close(self) -> None:
        self.flush()
        if self._bar is not None:
            self.tick()
            self._bar.close()

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        n0 = self.prob.net.input_dim
        N = self.prob.net.num_hidden_neurons
        X = np.concatenate(self.points) if self.points else np.zeros((0, n0))
        P = np.concatenate(self.patterns) if self.patterns else np.zeros((0, N), dtype=bool)
        return X, P


class _Stop(Exception):
    pass


# ============================================================================ vertex method
def _box_polytope(lo: np.ndarray, hi: np.ndarray, words: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of a box and their incidence bitsets (bit 2i: x_i = lo_i, bit 2i+1: x_i = hi_i).

    Bitsets are uint64 words, shape (m,) when one word suffices, else (m, words).
    """
    n = lo.size
    bits = ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)
    V = np.where(bits, hi, lo)
    Z = np.zeros((V.shape[0], words), dtype=np.uint64)
    for i in range(n):
        for k, mask in ((2 * i, ~bits[:, i]), (2 * i + 1, bits[:, i])):
            Z[mask, k // 64] |= np.uint64(1) << np.uint64(k % 64)
    return V, (Z[:, 0].copy() if words == 1 else Z)


def _split(V: np.ndarray, Z: np.ndarray, d: np.ndarray, eps: float, n: int, bit: int):
    """Split conv(V) by the hyperplane with signed distances ``d`` at the vertices.

    Returns ``((V+, Z+), (V-, Z-))``. Vertices within ``eps`` of the hyperplane lie on it
    (both sides keep them); new vertices lie on the edges that cross it. Two vertices
    span an edge iff they share at least n - 1 tight constraints and no third vertex is
    tight on all the constraints tight at both (the combinatorial test of the double
    description method; Fukuda and Prodon 1996), which stays right at degenerate vertices.
    """
    pos = d > eps
    neg = d < -eps
    ip = pos.nonzero()[0]
    im = neg.nonzero()[0]
    iz = (~(pos | neg)).nonzero()[0]
    Zp, Zm = Z[ip], Z[im]
    one_word = Z.ndim == 1
    if one_word:
        common = Zp[:, None] & Zm[None, :]
        a, b = (_popcount(common) >= n - 1).nonzero()
        com = common[a, b]
        # a vertex u contains the common face iff (com & ~Z[u]) == 0
        edge = np.count_nonzero((com[:, None] & ~Z[None, :]) == 0, axis=1) == 2
        m = np.uint64(1) << np.uint64(bit)
    else:
        common = Zp[:, None, :] & Zm[None, :, :]
        a, b = (_popcount(common).sum(axis=-1) >= n - 1).nonzero()
        com = common[a, b]
        edge = np.count_nonzero(~np.any(com[:, None, :] & ~Z[None, :, :], axis=-1), axis=1) == 2
        m = np.zeros(Z.shape[1], dtype=np.uint64)
        m[bit // 64] = np.uint64(1) << np.uint64(bit % 64)
    va, vb, com = ip[a[edge]], im[b[edge]], com[edge]
    da = d[va]
    ta = da / (da - d[vb])
    Va = V[va]
    Vn = Va + (V[vb] - Va) * ta[:, None]
    com |= m
    Zz = Z[iz] | m
    Vz = V[iz]
    plus = (np.concatenate([V[ip], Vz, Vn]), np.concatenate([Zp, Zz, com]))
    minus = (np.concatenate([V[im], Vz, Vn]), np.concatenate([Zm, Zz, com]))
    return plus, minus


def _domain_polytope(prob: _Problem, eps: float, words: int) -> tuple[np.ndarray, np.ndarray, int]:
    V, Z = _box_polytope(prob.lower, prob.upper, words)
    k = 2 * prob.n
    if prob.A is not None:
        for a, c in zip(prob.A, prob.c):
            d = V @ a - c
            if not np.any(d < -eps):
                raise InvalidDomainError(
                    "the domain has no interior: its constraints A x <= c leave no full-dimensional set in the box"
                )
            if np.any(d > eps):
                _, (V, Z) = _split(V, Z, d, eps, prob.n, k)
            k += 1
    return V, Z, k


def _layer_maps(W: np.ndarray, b: np.ndarray, on: np.ndarray, A: np.ndarray, c: np.ndarray):
    """Next layer's pre-activations ``A' x + c'`` on a region, their unit normals, and constant neurons."""
    Wo = W * on
    A2, c2 = Wo @ A, Wo @ c + b
    nrm = np.linalg.norm(A2, axis=1)
    const = nrm == 0
    inv = 1.0 / np.where(const, 1.0, nrm)
    return A2, c2, A2 * inv[:, None], c2 * inv, const


def _count_vertex(prob: _Problem, sink: _Sink, *, tol: float, deadline: float) -> tuple[str, int]:
    net = prob.rnet
    n = prob.n
    L = net.num_hidden_layers
    eps = tol * prob.diam
    rows = 0 if prob.A is None else prob.A.shape[0]
    words = max(1, -(-(2 * n + rows + net.num_hidden_neurons) // 64))
    V, Z, k0 = _domain_polytope(prob, eps, words)
    W1, b1 = net.layers[0]
    n1 = W1.shape[0]
    _, _, Au, cu, const = _layer_maps(np.eye(n1), b1, np.ones(n1), W1, np.zeros(n1))
    # a node: (vertices, incidence, next constraint bit, layer, on, undecided neurons,
    #          layer maps raw (A, c) and unit (Au, cu), patterns of finished layers)
    stack = [(V, Z, k0, 0, const & (b1 > 0), np.flatnonzero(~const), W1, b1, Au, cu, ())]
    nodes = 0
    layers = net.layers
    neps = -eps
    while stack:
        V, Z, k, l, on, und, Al, cl, Au, cu, prefix = stack.pop()
        nodes += 1
        if (nodes & 15) == 0:
            if time.perf_counter() > deadline:
                return "time_limit", nodes
            if (nodes & 1023) == 0:
                sink.tick()
        while True:
            if und.size:
                D = V @ Au[und].T + cu[und]
                anyp = D.max(axis=0) > eps
                anyn = D.min(axis=0) < neps
                cut = anyp & anyn
                ncut = int(np.count_nonzero(cut))
                if ncut < und.size:
                    on = on.copy()
                    settled = ~cut
                    sgn = anyp[settled]
                    thin = ~(anyp | anyn)[settled]
                    if thin.any():  # a cell thinner than eps across the plane: the side of its centre
                        sgn = sgn | (thin & (D[:, settled].mean(axis=0) > 0))
                    on[und[settled]] = sgn
                if ncut:
                    col = int(np.argmax(cut))
                    jj = und[col]
                    rest = und[cut]
                    rest = rest[rest != jj]
                    (Vp, Zp), (Vm, Zm) = _split(V, Z, D[:, col], eps, n, k)
                    if len(Vp) <= n or len(Vm) <= n:
                        log.warning("vertex method: a cut left a cell with <= %d vertices (numerically "
                                    "degenerate arrangement); cross-check with method='lp'", n)
                    onp = on.copy()
                    onp[jj] = True
                    onm = on.copy()
                    onm[jj] = False
                    stack.append((Vm, Zm, k + 1, l, onm, rest, Al, cl, Au, cu, prefix))
                    stack.append((Vp, Zp, k + 1, l, onp, rest, Al, cl, Au, cu, prefix))
                    break
            # layer l complete on this cell
            prefix = prefix + (on,)
            if l == L - 1:
                sink.add(V.mean(axis=0), np.concatenate(prefix))
                if sink.full:
                    return ("max_regions" if stack else "complete"), nodes
                break
            W, b = layers[l + 1]
            Al, cl, Au, cu, const = _layer_maps(W, b, on, Al, cl)
            on = const & (cl > 0)
            und = np.flatnonzero(~const)
            l += 1
    return "complete", nodes


# ============================================================================ LP method
class _ChebLP:
    """One HiGHS LP over (x, t): rows ``a.x + t <= beta`` with unit ``a``; ``max t``."""

    def __init__(self, prob: _Problem) -> None:
        from mipnet.milp.encoding import HighsModel

        self.prob = prob
        n = prob.n
        # presolve off: these LPs are tiny and re-solved from a warm basis (halves the time)
        self.model = HighsModel(prob.rdomain(), options={"presolve": "off"})
        self.xcols = self.model.input_cols
        self.tcol = self.model.add_cols(np.array([-_INF]), np.array([max(prob.diam, 1.0)]))
        self.cols = np.concatenate([self.xcols, self.tcol])
        rows = [np.hstack([np.eye(n), np.ones((n, 1))]), np.hstack([-np.eye(n), np.ones((n, 1))])]
        rhs = [prob.upper, -prob.lower]
        if prob.A is not None:
            rows.append(np.hstack([prob.A, np.ones((prob.A.shape[0], 1))]))
            rhs.append(prob.c)
        M = np.vstack(rows)
        self.model.add_rows(np.full(M.shape[0], -_INF), np.concatenate(rhs), M, cols=self.cols)
        self.model.set_objective(self.tcol, [1.0], maximize=True)
        self.nrows = self.model.num_rows
        self.base = self.nrows
        self.solves = 0
        self._idx = np.arange(n + 1, dtype=np.int32)
        self._cols32 = self.cols.astype(np.int32)

    def push(self, a: np.ndarray, beta: float) -> None:
        self.model.add_row(-_INF, float(beta), self._cols32, np.append(a, 1.0))
        self.nrows += 1

    def truncate(self, k: int) -> None:
        if self.nrows > k:
            self.model.truncate_rows(k)
            self.nrows = k

    def solve(self) -> tuple[np.ndarray, float]:
        res = self.model.solve()
        self.solves += 1
        if res.status == "infeasible":
            return None, -_INF
        if res.status != "optimal":
            raise SolverError(f"Chebyshev LP ended with status {res.highs_status}")
        return res.values[self.xcols].copy(), float(res.values[self.tcol[0]])


def _side_row(a: np.ndarray, c: float, side: bool) -> tuple[np.ndarray, float]:
    """Row ``-s a.x + t <= s c`` of ``s (a.x + c) >= t`` (unit a; s = +1 for the 'on' side)."""
    s = 1.0 if side else -1.0
    return -s * a, s * c


def _count_lp(prob: _Problem, sink: _Sink, *, tol: float, deadline: float) -> tuple[str, int, int]:
    net = prob.rnet
    L = net.num_hidden_layers
    rtol = tol * prob.diam
    lp = _ChebLP(prob)
    x0, r0 = lp.solve()
    if x0 is None or r0 <= rtol:
        raise InvalidDomainError("the domain has no interior (its Chebyshev radius is ~0)")
    # neurons stable on the whole domain by (cheap, sound) symbolic bounds need no LP anywhere
    from mipnet.bounds import symbolic_bounds

    sb = symbolic_bounds(net, prob.rdomain())
    st_off = [lb.upper <= 0 for lb in sb.hidden]
    st_on = [lb.lower > 0 for lb in sb.hidden]
    W1, b1 = net.layers[0]
    nrm1 = np.linalg.norm(W1, axis=1)
    const1 = nrm1 == 0
    nl1 = np.where(const1, 1.0, nrm1)
    on1 = (const1 & (b1 > 0)) | (~const1 & st_on[0])
    dec1 = const1 | st_off[0] | st_on[0]
    # a node: (rows of its ancestors, its own rows, ball centre, radius, reference radius,
    #          layer, on, decided, pre-activation maps (A, c) of the layer and row norms, prefix)
    stack = [(lp.base, (), x0, r0, r0, 0, on1, dec1, W1, b1, nl1, ())]
    nodes = 0
    layers = net.layers
    while stack:
        nbase, own, x, r, rref, l, on, dec, Al, cl, nl, prefix = stack.pop()
        nodes += 1
        if (nodes & 3) == 0:
            if time.perf_counter() > deadline:
                return "time_limit", nodes, lp.solves
            if (nodes & 255) == 0:
                sink.tick()
        lp.truncate(nbase)
        for a, beta in own:
            lp.push(a, beta)
        if r < 0.25 * rref:
            # the inherited ball became small: re-centre it (one LP) so that it settles more cuts
            xr, tr = lp.solve()
            if xr is not None and tr > r:
                x, r, rref = xr, tr, tr
        while True:
            und = np.flatnonzero(~dec)
            if und.size:
                d = (Al[und] @ x + cl[und]) / nl[und]
                ad = np.abs(d)
                free = ad < r - 2 * rtol
                other = None
                if free.any():
                    pos = int(np.argmax(free))
                else:
                    pos = int(np.argmin(ad))
                    j = und[pos]
                    s0 = bool(d[pos] >= 0)
                    au, cu = Al[j] / nl[j], cl[j] / nl[j]
                    lp.push(*_side_row(au, cu, not s0))
                    xo, to = lp.solve()
                    lp.truncate(lp.nrows - 1)
                    if xo is not None and to > rtol:
                        other = (xo, to)
                    else:
                        # neuron j is stable on this cell: its side becomes a row of the cell
                        lp.push(*_side_row(au, cu, s0))
                        on = on.copy()
                        dec = dec.copy()
                        on[j] = s0
                        dec[j] = True
                        if ad[pos] < r:
                            sg = 1.0 if s0 else -1.0
                            x = x + sg * au * (r - ad[pos]) / 2
                            r = (r + ad[pos]) / 2
                        continue
                j = und[pos]
                au, cu = Al[j] / nl[j], cl[j] / nl[j]
                s0 = bool(d[pos] >= 0)
                sg = 1.0 if s0 else -1.0
                dj = ad[pos]
                # the side holding the centre keeps a cap of the ball; the far side its cap or the LP ball
                if dj < r:
                    x_in, r_in = x + sg * au * (r - dj) / 2, (r + dj) / 2
                else:
                    x_in, r_in = x, r
                if other is None:
                    x_out, r_out = x - sg * au * (r + dj) / 2, (r - dj) / 2
                    ref_out = rref
                else:
                    (x_out, r_out), ref_out = other, other[1]
                dec2 = dec.copy()
                dec2[j] = True
                on_in = on.copy()
                on_in[j] = s0
                on_out = on.copy()
                on_out[j] = not s0
                base = lp.nrows
                stack.append((base, (_side_row(au, cu, not s0),), x_out, r_out, ref_out,
                              l, on_out, dec2, Al, cl, nl, prefix))
                stack.append((base, (_side_row(au, cu, s0),), x_in, r_in, rref,
                              l, on_in, dec2, Al, cl, nl, prefix))
                break
            prefix = prefix + (on,)
            if l == L - 1:
                sink.add(x.copy(), np.concatenate(prefix))
                if sink.full:
                    return ("max_regions" if stack else "complete"), nodes, lp.solves
                break
            W, b = layers[l + 1]
            Wo = W * on
            Al, cl = Wo @ Al, Wo @ cl + b
            nl = np.linalg.norm(Al, axis=1)
            const = nl == 0
            nl = np.where(const, 1.0, nl)
            l += 1
            on = np.where(const, cl > 0, st_on[l])
            dec = const | st_off[l] | st_on[l]
    return "complete", nodes, lp.solves


# ============================================================================ MILP method
_MILP_OPTIONS = {
    "mip_feasibility_tolerance": 1e-9,
    "primal_feasibility_tolerance": 1e-9,
    "dual_feasibility_tolerance": 1e-9,
}


def _interior_milp(prob: _Problem, bounds, margin: float):
    """The network's MILP on the (reduced) domain with Serra et al.'s interior variable f >= margin.

    Returns ``(model, nv, f_col, unstable z columns)``; the objective is ``max f``.
    """
    from mipnet.milp.encoding import HighsModel

    model = HighsModel(prob.rdomain(), options=_MILP_OPTIONS)
    nv = model.add_network(prob.rnet, bounds, output_bounds=False)
    h_parts, y_parts, z_parts, F_parts = [], [], [], []
    for lv, lb in zip(nv.layers, bounds.hidden):
        u = lv.unstable
        h_parts.append(lv.h_cols[u])
        y_parts.append(lv.y_cols[u])
        z_parts.append(lv.z_cols[u])
        F_parts.append(np.maximum(lb.upper[u], -lb.lower[u]))
    hc, yc, zc = (np.concatenate(p).astype(np.int64) for p in (h_parts, y_parts, z_parts))
    Fv = np.concatenate(F_parts)
    k = zc.size
    F = float(Fv.min()) if k else 1.0
    fcol = model.add_cols(np.array([margin]), np.array([max(F, margin)]))
    if k:
        import scipy.sparse as sp

        f = int(fcol[0])
        r = np.arange(k)
        one = np.ones(k)
        # f - h + F z <= F   (f <= h when z = 1)
        # f - h + y - F z <= 0   (f <= hbar = h - y when z = 0)
        rows = np.concatenate([r, r, r, k + r, k + r, k + r, k + r])
        cols = np.concatenate([np.full(k, f), hc, zc, np.full(k, f), hc, yc, zc])
        vals = np.concatenate([one, -one, np.full(k, F), one, -one, one, np.full(k, -F)])
        M = sp.csr_matrix((vals, (rows, cols)), shape=(2 * k, model.num_cols))
        model.add_rows(np.full(2 * k, -_INF), np.concatenate([np.full(k, F), np.zeros(k)]), M)
    model.set_objective(fcol, [1.0], maximize=True)
    model.set_options({"mip_max_improving_sols": 1})  # any pattern with f >= margin will do
    return model, nv, fcol, zc


def _reduced_bounds(prob: _Problem, bounds):
    from mipnet.bounds import Bounds, lp_bounds

    if bounds is None:
        return lp_bounds(prob.rnet, prob.rdomain(), output=False)
    if not isinstance(bounds, Bounds) or len(bounds.layers) != len(prob.net.layers):
        raise InvalidNetworkError(
            "bounds must be a mipnet.bounds.Bounds computed for this network (one entry per layer)"
        )
    return bounds


def _count_milp(prob: _Problem, sink: _Sink, *, deadline: float, margin: float, bounds) -> tuple[str, int, str]:
    bounds = _reduced_bounds(prob, bounds)
    model, nv, fcol, zc = _interior_milp(prob, bounds, margin)
    solves = 0
    if zc.size == 0:
        # no unstable neuron: one pattern, no binaries
        res = model.solve()
        solves += 1
        if not res.has_solution:
            raise SolverError(f"the MILP of a network without unstable neurons ended with {res.highs_status}")
        sink.add(np.clip(res.values[nv.input_cols], prob.lower, prob.upper), nv.pattern_from_solution(res.values))
        return "complete", solves, "no unstable neuron: a single region"
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return "time_limit", solves, "time limit reached: the count is a lower bound"
        res = model.solve(time_limit=min(left, 1e9))
        solves += 1
        if res.status == "infeasible":
            return "complete", solves, "the MILP proved that no further pattern has f >= milp_margin"
        if not res.has_solution:
            if res.status == "time_limit":
                return "time_limit", solves, "time limit reached inside a MILP solve: the count is a lower bound"
            raise SolverError(f"MILP re-solve ended with status {res.highs_status} and no solution")
        vals = res.values
        pattern = nv.pattern_from_solution(vals)
        sink.add(np.clip(vals[nv.input_cols], prob.lower, prob.upper), pattern)
        zv = vals[zc] > 0.5
        # no-good cut: sum_{z=0} z - sum_{z=1} z >= 1 - |{z = 1}|
        coef = np.where(zv, -1.0, 1.0)
        model.add_rows(np.array([1.0 - zv.sum()]), np.array([_INF]), coef[None, :], cols=zc)
        if sink.full:
            return "max_regions", solves, "region budget reached: the count is a lower bound"
        sink.tick()


# ============================================================================ merging into linear regions
class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def _merge_linear(prob: _Problem, P: np.ndarray, point_lp: _PointLP, rtol: float) -> int:
    """Number of linear regions: adjacent activation regions with equal affine maps merged.

    Two regions are merged when their output maps agree (to 1e-9 relative), their patterns
    differ in one neuron i, and they share a facet on ``y_i = 0`` (an LP finds a ball of
    radius > tol inside the hyperplane that keeps every other neuron's sign).
    """
    import hashlib

    R = P.shape[0]
    if R <= 1:
        return R
    scale = 1e-300
    for _, A, c in _output_maps_iter(prob.net, P):
        scale = max(scale, float(np.max(np.abs(A), initial=0.0)), float(np.max(np.abs(c), initial=0.0)))
    digests = []
    for _, A, c in _output_maps_iter(prob.net, P):
        M = np.round(np.concatenate([A.reshape(len(A), -1), c], axis=1) / scale, 9) + 0.0  # no -0.0
        digests.extend(hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in M)
    _, group = np.unique(np.array(digests, dtype=object), return_inverse=True)
    group = np.asarray(group).reshape(-1)
    uf = _UnionFind(R)
    packed = np.packbits(P, axis=1)
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(group[order]) != 0])
    ends = np.r_[starts[1:], R]
    for s0, s1 in zip(starts, ends):
        if s1 - s0 < 2:
            continue
        members = order[s0:s1]
        index = {packed[m].tobytes(): int(m) for m in members}
        for i in range(P.shape[1]):
            byte, bit = divmod(i, 8)
            flip = packed[members].copy()
            flip[:, byte] ^= np.uint8(1 << (7 - bit))
            for r, row in zip(members, flip):
                r2 = index.get(row.tobytes())
                if r2 is None or r2 < r or uf.find(int(r)) == uf.find(r2):
                    continue
                _, t = point_lp.point(P[r], equal=i)
                if t > rtol:
                    uf.union(int(r), r2)
    return int(len({uf.find(i) for i in range(R)}))


# ============================================================================ public: exact count
def count_regions(
    net: Network,
    domain,
    *,
    method: str = "fast",
    time_limit: Optional[float] = None,
    max_regions: Optional[int] = None,
    return_regions: bool = False,
    merge_linear: bool = False,
    progress: bool = False,
    tol: float = 1e-9,
    milp_margin: float = 1e-6,
    bounds=None,
) -> RegionCount:
    """Count the activation regions of ``net`` with non-empty interior inside ``domain``.

    Parameters
    ----------
    net : Network
    domain : Domain or (lower, upper)
        A box, a clipped L-infinity ball or a polytope.
    method : {"fast", "vertex", "lp", "milp"}
        ``"fast"`` picks ``"vertex"`` for at most 7 free inputs and ``"lp"`` otherwise
        (see the module docstring); ``"milp"`` is the Serra et al. 2018 baseline.
    time_limit : float, optional
        Seconds; when reached the result is a lower bound (``exact=False``).
    max_regions : int, optional
        Stop after this many regions (then ``exact=False`` unless the search had ended).
    return_regions : bool
        Keep every region (pattern, interior point, affine map) in ``region_list``.
    merge_linear : bool
        Also count linear regions: adjacent regions with identical affine maps merged.
    progress : bool
        Show a tqdm progress bar on stderr.
    tol : float
        Thickness threshold relative to the domain diameter (geometric methods).
    milp_margin : float
        The MILP accepts a pattern iff its pre-activation margin f >= milp_margin.
    bounds : mipnet.bounds.Bounds, optional
        Pre-activation bounds for the MILP (default: LP bounds).

    Returns
    -------
    RegionCount

    Notes
    -----
    Serra, Tjandraatmadja, Ramalingam, "Bounding and counting linear regions of deep
    neural networks", ICML 2018, arXiv:1711.02114 (the MILP method and the count).

    Examples
    --------
    >>> import numpy as np
    >>> from mipnet import Box, Network
    >>> net = Network([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    >>> count_regions(net, Box(-1, 1, dim=2)).regions
    4
    """
    _check_options(method, time_limit, max_regions, tol, milp_margin)
    prob = _prepare(net, domain)
    if method == "vertex" and prob.n > 16:
        raise InvalidArgumentError(
            f"method='vertex' needs at most 16 free inputs (the box has 2^n vertices), got {prob.n}; "
            "use method='lp' or 'fast'"
        )
    algorithm = method if method != "fast" else ("vertex" if prob.n <= VERTEX_MAX_DIM else "lp")
    t0 = time.perf_counter()
    deadline = t0 + time_limit if time_limit is not None else _INF
    point_lp = _PointLP(prob)
    keep = return_regions or merge_linear
    sink = _Sink(prob, keep=keep, max_regions=max_regions, progress=progress, point_lp=point_lp)
    lp_solves = milp_solves = nodes = 0
    message = ""
    try:
        if prob.net.num_hidden_layers == 0:
            x, t = point_lp.point(np.zeros(0, dtype=bool))
            if x is None or t <= tol * prob.diam:
                raise InvalidDomainError("the domain has no interior")
            sink.add(x, np.zeros(0, dtype=bool))
            status, message = "complete", "no hidden layer: one region"
        elif algorithm == "vertex":
            status, nodes = _count_vertex(prob, sink, tol=tol, deadline=deadline)
        elif algorithm == "lp":
            status, nodes, lp_solves = _count_lp(prob, sink, tol=tol, deadline=deadline)
        else:
            status, milp_solves, message = _count_milp(prob, sink, deadline=deadline, margin=milp_margin,
                                                       bounds=bounds)
    finally:
        sink.close()
    exact = status == "complete"
    if not message:
        message = {
            "complete": "search finished: the count is exact",
            "time_limit": "time limit reached: the count is a lower bound",
            "max_regions": "region budget reached: the count is a lower bound",
        }[status]
    linear = None
    region_list = None
    if keep:
        X, P = sink.arrays()
        if merge_linear:
            linear = _merge_linear(prob, P, point_lp, tol * prob.diam)
        if return_regions:
            A, c = _output_maps(prob.net, P) if P.shape[0] else (np.zeros((0,)), np.zeros((0,)))
            region_list = tuple(
                Region(_ro(P[i]), _ro(X[i]), _ro(A[i]), _ro(c[i])) for i in range(P.shape[0])
            )
    if sink.repaired:
        log.info("%d interior points were re-centred by an LP before passing the forward-pass check", sink.repaired)
    return RegionCount(
        regions=sink.count,
        exact=exact,
        method=method,
        algorithm=algorithm,
        seconds=time.perf_counter() - t0,
        lp_solves=lp_solves + point_lp.solves,
        milp_solves=milp_solves,
        status=status,
        message=message,
        linear_regions=linear,
        region_list=region_list,
        verified=sink.verified,
        unverified=sink.unverified,
        nodes=nodes,
        tol=tol,
        widths=prob.net.widths,
        free_inputs=prob.n,
    )


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


# ============================================================================ estimates: sampling
@dataclass(frozen=True, eq=False)
class SampleCount:
    """Distinct activation patterns seen at random inputs: a lower bound on the region count.

    Attributes
    ----------
    regions : int
        Distinct patterns among the samples. With probability one a random sample lies in
        the interior of its region, so each pattern seen is a region with interior.
    samples : int
        Samples drawn. ``on_boundary`` of them had a pre-activation that is zero up to
        rounding (``|y| <= 1e-12`` times the magnitude of its terms): that happens where a
        neuron is identically zero on a region; it is then off, as in the exact counters.
    singletons : int
        Patterns seen exactly once (many singletons: the sample is far from exhaustive).
    patterns : bool array (regions, N) or None
        With ``return_patterns``.
    """

    regions: int
    samples: int
    seed: Optional[int]
    seconds: float
    singletons: int
    on_boundary: int = 0
    patterns: Optional[np.ndarray] = None

    @property
    def lower_bound(self) -> int:
        return self.regions

    def to_dict(self) -> dict:
        d = {
            "regions": int(self.regions),
            "lower_bound": True,
            "samples": int(self.samples),
            "seed": self.seed,
            "seconds": float(self.seconds),
            "singletons": int(self.singletons),
            "on_boundary": int(self.on_boundary),
        }
        if self.patterns is not None:
            d["patterns"] = ["".join("1" if b else "0" for b in p) for p in self.patterns]
        return d

    def __str__(self) -> str:
        return (f"at least {self.regions:,} activation regions: distinct patterns in {self.samples:,} samples "
                f"({self.singletons:,} seen once; {self.seconds:.3g} s)")


def sample_regions(net: Network, domain, n: int = 10_000, seed: Optional[int] = 0, *,
                   batch: int = 65_536, return_patterns: bool = False) -> SampleCount:
    """Lower bound on the number of regions: distinct activation patterns at ``n`` random inputs.

    Inputs are drawn by ``domain.sample`` (uniform in the box, rejection for constraints).
    With probability one a sample lies in the interior of its region (hyperplanes have
    measure zero), so every distinct pattern counted is a region with non-empty interior.
    Pre-activations within rounding noise of zero (``|y| <= 1e-12`` times the magnitude of
    the terms summed) count as zero, hence off: in exact arithmetic they are zero on a whole
    region of a degenerate network, and the plain float sign would invent patterns.

    Examples
    --------
    >>> import numpy as np
    >>> from mipnet import Box, Network
    >>> net = Network([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    >>> sample_regions(net, Box(-1, 1, dim=2), 1000, seed=0).regions
    4
    """
    net = _check_net(net)
    domain = as_domain(domain, net.input_dim)
    if not _is_int(n) or n < 1:
        raise InvalidArgumentError(f"n (number of samples) must be a positive integer, got {n!r}")
    if not _is_int(batch) or batch < 1:
        raise InvalidArgumentError(f"batch must be a positive integer, got {batch!r}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    N = net.num_hidden_neurons
    width = max(1, (N + 7) // 8)
    keys, counts = np.zeros(0, dtype=np.dtype((np.void, width))), np.zeros(0, dtype=np.int64)
    boundary = 0
    done = 0
    while done < n:
        m = min(batch, n - done)
        X = domain.sample(m, seed=rng)
        if net.num_hidden_layers:
            Y, pat = _snapped_forward(net, X)
            boundary += int(np.count_nonzero(np.any(Y == 0, axis=1)))
            packed = np.packbits(pat, axis=1)
        else:
            packed = np.zeros((m, 1), dtype=np.uint8)
        if packed.shape[1] != width:
            packed = np.zeros((packed.shape[0], width), dtype=np.uint8)
        k = np.ascontiguousarray(packed).view(np.dtype((np.void, width))).reshape(-1)
        u, c = np.unique(k, return_counts=True)
        allk = np.concatenate([keys, u])
        allc = np.concatenate([counts, c])
        keys, inv = np.unique(allk, return_inverse=True)
        counts = np.bincount(inv.reshape(-1), weights=allc, minlength=keys.size).astype(np.int64)
        done += m
    patterns = None
    if return_patterns:
        raw = np.frombuffer(keys.tobytes(), dtype=np.uint8).reshape(keys.size, width)
        patterns = np.unpackbits(raw, axis=1, count=N).astype(bool) if N else np.zeros((keys.size, 0), bool)
    return SampleCount(int(keys.size), int(n), seed if isinstance(seed, (int, type(None))) else None,
                       time.perf_counter() - t0, int(np.sum(counts == 1)), boundary, patterns)


# ============================================================================ estimates: MIPBound
@dataclass(frozen=True, eq=False)
class ParityBound:
    """Probabilistic lower bound on the number of regions from random parity constraints.

    Attributes
    ----------
    lower_bound : float
        ``2^(k - alpha)``: with probability at least ``confidence`` the network has at
        least this many regions (Gomes, Sabharwal, Selman, AAAI 2006; Serra and
        Ramalingam, AAAI 2020, arXiv:1810.03370).
    log2_lower_bound : float
        ``k - alpha``.
    k : int
        Largest number of XOR constraints for which all ``trials`` stayed feasible (-1: none).
    certain_lower_bound : int
        Distinct verified patterns found by the trials: a deterministic lower bound.
    levels : tuple of dict
        Per k tried: trials run, feasible trials, seconds.
    """

    lower_bound: float
    log2_lower_bound: float
    confidence: float
    k: int
    alpha: float
    trials: int
    certain_lower_bound: int
    unstable: int
    seconds: float
    milp_solves: int
    status: str
    message: str
    levels: tuple = ()

    def to_dict(self) -> dict:
        return {
            "lower_bound": float(self.lower_bound),
            "log2_lower_bound": float(self.log2_lower_bound),
            "ln_lower_bound": float(self.log2_lower_bound * math.log(2.0)),
            "confidence": float(self.confidence),
            "k": int(self.k),
            "alpha": float(self.alpha),
            "trials": int(self.trials),
            "certain_lower_bound": int(self.certain_lower_bound),
            "unstable": int(self.unstable),
            "seconds": float(self.seconds),
            "milp_solves": int(self.milp_solves),
            "status": self.status,
            "message": self.message,
            "levels": list(self.levels),
        }

    def __str__(self) -> str:
        return (f"at least 2^{self.log2_lower_bound:g} = {self.lower_bound:,.6g} activation regions with "
                f"probability >= {self.confidence:.4f} (k = {self.k} XOR constraints, {self.trials} trials, "
                f"alpha = {self.alpha:g}); certainly at least {self.certain_lower_bound:,} "
                f"({self.milp_solves} MILP solves, {self.seconds:.3g} s)")


def _parity_trial(prob: _Problem, bounds, margin: float, k: int, rng, time_limit: float):
    """One MIPBound trial: is there a region whose pattern satisfies k random XORs?

    Returns ``(feasible, pattern, timed_out)``; a witness counts only after a float64
    forward pass confirms a pattern with every unstable pre-activation non-zero that
    satisfies every XOR.
    """
    model, nv, fcol, zc = _interior_milp(prob, bounds, margin)
    u = zc.size
    subsets = rng.random((k, u)) < 0.5
    parity = rng.integers(0, 2, size=k)
    for S, r in zip(subsets, parity):
        size = int(S.sum())
        if size < r:
            return False, None, False  # the empty XOR "0 = 1": infeasible by construction
        q = model.add_cols(np.array([0.0]), np.array([float((size - r) // 2)]), integer=True)
        cols = np.concatenate([zc[S], q])
        coef = np.concatenate([np.ones(size), [-2.0]])
        model.add_rows(np.array([float(r)]), np.array([float(r)]), coef[None, :], cols=cols)
    res = model.solve(time_limit=time_limit)
    if not res.has_solution:
        if res.status == "infeasible":
            return False, None, False
        return False, None, True
    x = np.clip(res.values[nv.input_cols], prob.lower, prob.upper)
    X = prob.lift(x[None, :])
    Y, P = _snapped_forward(prob.net, X)
    Y, pattern = Y[0], P[0]
    unstable = nv.unstable_mask
    ok = bool(np.all(Y[unstable] != 0)) and bool(prob.domain.contains(X[0]))
    bits = pattern[unstable].astype(np.int64)
    ok &= bool(np.all((subsets.astype(np.int64) @ bits) % 2 == parity))
    if not ok:
        log.warning("a parity-trial witness failed the forward-pass check; the trial counts as infeasible")
        return False, None, False
    return True, pattern, False


def parity_lower_bound(
    net: Network,
    domain,
    *,
    k: Optional[int] = None,
    trials: int = 5,
    alpha: float = 1.0,
    seed: Optional[int] = 0,
    time_limit: Optional[float] = None,
    bounds=None,
    milp_margin: float = 1e-6,
) -> ParityBound:
    """MIPBound: a probabilistic lower bound on the number of regions (random XOR constraints).

    For a given k, each of ``trials`` trials adds k random parity constraints over the
    unstable neurons' binaries to the interior MILP of Serra et al. (2018) (each binary
    joins a constraint with probability 1/2; the parity bit is random; linearised as
    ``sum_{i in S} z_i = 2 q + r`` with q integer). If all trials stay feasible,
    ``#regions >= 2^(k - alpha)`` with probability ``>= 1 - 2^(-alpha trials)``.

    Parameters
    ----------
    k : int, optional
        Number of XOR constraints. Default: search k = 0, 1, 2, ... until a trial is
        infeasible, keeping the last k at which every trial was feasible; the confidence
        then accounts for the search, ``1 - 2^(-alpha t) / (1 - 2^(-t))``.
    trials : int
    alpha : float
        Slack of the bound (> 0): larger alpha, smaller bound, higher confidence.
    time_limit : float, optional
        Over all trials; a level interrupted by it does not count.

    Notes
    -----
    T. Serra, S. Ramalingam, "Empirical bounds on linear regions of deep rectifier
    networks", AAAI 2020, arXiv:1810.03370; C. Gomes, A. Sabharwal, B. Selman, "Model
    counting: a new strategy for obtaining good bounds", AAAI 2006.
    """
    if k is not None and (not _is_int(k) or k < 0):
        raise InvalidArgumentError(f"k must be a non-negative integer or None (search), got {k!r}")
    if not _is_int(trials) or trials < 1:
        raise InvalidArgumentError(f"trials must be a positive integer, got {trials!r}")
    if not (_is_real(alpha) and alpha > 0):
        raise InvalidArgumentError(f"alpha must be > 0, got {alpha!r}")
    if time_limit is not None and not (_is_real(time_limit) and time_limit > 0):
        raise InvalidArgumentError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
    prob = _prepare(net, domain)
    t0 = time.perf_counter()
    deadline = t0 + time_limit if time_limit is not None else _INF
    rng = np.random.default_rng(seed)
    bounds = _reduced_bounds(prob, bounds)
    unstable = int(sum(np.count_nonzero(s == 0) for s in bounds.states()))
    found: set = set()
    levels = []
    solves = 0
    best = -1
    status, message = "complete", ""
    ks = [int(k)] if k is not None else range(0, unstable + 64)
    for kk in ks:
        feas = 0
        t_level = time.perf_counter()
        interrupted = False
        for _ in range(trials):
            left = deadline - time.perf_counter()
            if left <= 0:
                interrupted = True
                break
            ok, pattern, timed_out = _parity_trial(prob, bounds, milp_margin, kk, rng, min(left, 1e9))
            solves += 1
            if timed_out:
                interrupted = True
                break
            if not ok:
                break
            feas += 1
            found.add(np.packbits(pattern).tobytes())
        levels.append({"k": kk, "trials_run": feas + (0 if interrupted or feas == trials else 1),
                       "feasible": feas, "all_feasible": feas == trials and not interrupted,
                       "seconds": time.perf_counter() - t_level})
        if interrupted:
            status, message = "time_limit", f"time limit reached at k = {kk}; the bound uses k = {best}"
            break
        if feas < trials:
            message = f"a trial with k = {kk} XOR constraints was infeasible"
            break
        best = kk
    if not message:
        message = "all levels tried were feasible"
    t = trials
    if k is not None:
        confidence = 1.0 - 2.0 ** (-alpha * t)
    else:
        confidence = 1.0 - 2.0 ** (-alpha * t) / (1.0 - 2.0 ** (-t))
    if best < 0:
        log2b, confidence = 0.0, 1.0
        lower = float(len(found)) if found else 0.0
    else:
        log2b = best - alpha
        lower = 2.0 ** log2b
    return ParityBound(lower, log2b, max(confidence, 0.0), best, float(alpha), int(trials), len(found), unstable,
                       time.perf_counter() - t0, solves, status, message, tuple(levels))


# ============================================================================ network-specific upper bound
@dataclass(frozen=True, eq=False)
class NetworkSpecificBound:
    """Serra and Ramalingam's (AAAI 2020) upper bound, with its inputs computed on the domain.

    Attributes
    ----------
    bound : mipnet.theory.RegionBound
    stable_inactive, stable_active : list of int
        Per hidden layer, neurons proven stable on the domain (by the bounds).
    max_active : list of int
        Per hidden layer, an upper bound on the units active at once (MILP dual bound).
    max_active_proven : list of bool
        True where the MILP finished (the bound is then the exact maximum).
    """

    bound: object
    widths: tuple
    stable_inactive: list
    stable_active: list
    max_active: list
    max_active_proven: list
    bounds_method: str
    seconds: float
    milp_solves: int

    @property
    def value(self) -> int:
        return self.bound.value

    @property
    def log_value(self) -> float:
        return self.bound.log_value

    def to_dict(self) -> dict:
        return {
            **self.bound.to_dict(),
            "widths": list(self.widths),
            "stable_inactive": list(self.stable_inactive),
            "stable_active": list(self.stable_active),
            "max_active": list(self.max_active),
            "max_active_proven": list(self.max_active_proven),
            "bounds_method": self.bounds_method,
            "seconds": float(self.seconds),
            "milp_solves": int(self.milp_solves),
        }

    def __str__(self) -> str:
        return (f"{self.bound}; stably inactive {self.stable_inactive}, stably active {self.stable_active}, "
                f"max active {self.max_active} ({self.seconds:.3g} s)")


def network_specific_bound(
    net: Network,
    domain,
    *,
    bounds=None,
    max_active: bool = True,
    time_limit: Optional[float] = None,
) -> NetworkSpecificBound:
    """Upper bound on the regions of ``net`` on ``domain`` (Serra and Ramalingam, AAAI 2020).

    Inputs of :func:`mipnet.theory.serra_ramalingam2020_bound`, computed here:

    - stably inactive / active neurons per layer from ``bounds`` (default: LP bounds);
    - per layer, the most units active at once: ``max sum_i z_i`` over the layer's unstable
      binaries of the network's MILP on the domain, plus the stably active units. The
      MILP has no interior condition: its optimum counts neurons with ``y_i >= 0`` at any
      point of D, which is at least the number active (``y_i > 0``) in any region with
      interior, so the cap is sound without a tolerance. A solve stopped by the time
      limit contributes its dual bound (still an upper bound).

    The input dimension used is the number of free inputs (fixed inputs do not add regions).

    Notes
    -----
    T. Serra, S. Ramalingam, "Empirical bounds on linear regions of deep rectifier
    networks", AAAI 2020, arXiv:1810.03370.
    """
    from mipnet.milp.encoding import HighsModel
    from mipnet.theory import serra_ramalingam2020_bound

    if time_limit is not None and not (_is_real(time_limit) and time_limit > 0):
        raise InvalidArgumentError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
    prob = _prepare(net, domain)
    t0 = time.perf_counter()
    deadline = t0 + time_limit if time_limit is not None else _INF
    bounds = _reduced_bounds(prob, bounds)
    states = bounds.states()
    s_in = [int(np.count_nonzero(s == -1)) for s in states]
    s_ac = [int(np.count_nonzero(s == 1)) for s in states]
    widths = (prob.n,) + tuple(prob.net.hidden_widths)
    L = len(states)
    caps = [widths[l + 1] - s_in[l] for l in range(L)]
    proven = [True] * L
    solves = 0
    if max_active:
        model = HighsModel(prob.rdomain(), options=_MILP_OPTIONS)
        nv = model.add_network(prob.rnet, bounds, output_bounds=False)
        for l, lv in enumerate(nv.layers):
            z = lv.z_cols[lv.unstable]
            if z.size == 0:
                caps[l] = s_ac[l]
                continue
            left = deadline - time.perf_counter()
            if left <= 0:
                proven[l] = False
                continue
            model.set_objective(z, np.ones(z.size), maximize=True)
            res = model.solve(time_limit=left / (L - l))
            solves += 1
            if res.dual_bound is not None and math.isfinite(res.dual_bound):
                caps[l] = min(caps[l], s_ac[l] + int(math.floor(res.dual_bound + 1e-6)))
            proven[l] = res.status == "optimal"
        caps = [max(c, s) for c, s in zip(caps, s_ac)]
    b = serra_ramalingam2020_bound(widths, stable_inactive=s_in, stable_active=s_ac,
                                   max_active=caps if max_active else None)
    return NetworkSpecificBound(b, widths, s_in, s_ac, caps, proven, bounds.method,
                                time.perf_counter() - t0, solves)
