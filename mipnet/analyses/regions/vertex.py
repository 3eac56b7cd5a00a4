"""The vertex method: depth-first construction of the arrangement with cells held by their vertices.

Every cell is the convex hull of its vertices ``V`` with, per vertex, the set ``Z`` of
constraints tight at it (the double-description representation; Fukuda and Prodon,
"Double description method revisited", 1996). Whether a neuron's hyperplane cuts a cell
is read off the signs of its distance at the vertices -- no LP. A cut computes the new
vertices on the edges that cross the hyperplane; two vertices span an edge iff no third
vertex is tight on every constraint tight at both (the combinatorial adjacency test).
Inside a region of the layers before, the next layer's pre-activations are affine in the
input, so the same cut applies to every layer.

Thresholds relative to the magnitudes involved
----------------------------------------------
A vertex ``v`` lies on the hyperplane ``a . u + c = 0`` (unit ``a``) when its computed
distance is at most ``theta = E_v + ea |v| + eb + tol (|v| + |c|)``: ``E_v`` bounds the
error of the vertex itself (tracked through the cuts that made it: a vertex on an edge
nearly parallel to the cutting plane is ill-conditioned and carries a large ``E_v``),
``ea, eb`` bound the error of the hyperplane (a composed layer map is computed with
rounding), and ``tol`` (default 1e-12) is the resolution relative to the local
magnitudes. Nothing is relative to the size of the domain: a box of +-1e12 around an
arrangement of unit size resolves the arrangement (its vertices near the centre are small
numbers), and so does a box of +-1e-6 (the domain is normalised to the unit box first).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from mipnet.core.errors import InvalidDomainError

from .problem import EPS, Problem, layer_maps
from .sink import Sink, layer_rho

__all__ = ["count_vertex"]

log = logging.getLogger("mipnet.analyses.regions")

if hasattr(np, "bitwise_count"):
    def _popcount(a: np.ndarray) -> np.ndarray:
        return np.bitwise_count(a)
else:  # pragma: no cover - numpy < 2.0
    _BYTE_COUNTS = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount(a: np.ndarray) -> np.ndarray:
        b = a[..., None].view(np.uint8)
        return _BYTE_COUNTS[b].sum(-1)


def _box_polytope(lo: np.ndarray, hi: np.ndarray, words: int):
    """Vertices of a box and their incidence bitsets (bit 2i: u_i = lo_i, bit 2i+1: u_i = hi_i).

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


def _split(VX, Z, d, thr, pa: float, pb: float, n: int, bit: int, geo: float, refine=None):
    """Split conv(V) by the hyperplane with signed distances ``d`` at the vertices.

    ``VX`` holds per vertex its coordinates, its error bound and its norm: ``[V | E | |V|]``
    (shape (m, n + 2)). ``thr``: per-vertex on-the-plane threshold; ``pa |v| + pb`` bounds the
    error of ``d`` at a vertex v. Returns ``((VX+, Z+), (VX-, Z-))``. Vertices within ``thr`` of the
    hyperplane lie on it (both sides keep them); new vertices lie on the edges that cross
    it. Two vertices span an edge iff they share at least n - 1 tight constraints and no
    third vertex is tight on all the constraints tight at both (the combinatorial test of
    the double description method), which stays right at degenerate vertices.
    ``refine``: ``(planes, path)`` to recompute badly cancelled new vertices (:class:`_Planes`).
    """
    pos = d > thr
    neg = d < -thr
    ip = pos.nonzero()[0]
    im = neg.nonzero()[0]
    iz = (~(pos | neg)).nonzero()[0]
    Zp, Zm = Z[ip], Z[im]
    if Z.ndim == 1:
        common = Zp[:, None] & Zm[None, :]
        a, b = (_popcount(common) >= n - 1).nonzero()
        com = common[a, b]
        # a vertex w contains the common face iff (com & ~Z[w]) == 0
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
    gap = da - d[vb]
    Xa, Xb = VX[va], VX[vb]
    step = Xb[:, :n] - Xa[:, :n]
    new = np.empty_like(Xa)
    Vn = new[:, :n]
    np.multiply(step, (da / gap)[:, None], out=Vn)
    Vn += Xa[:, :n]
    mx = np.maximum(Xa[:, n:], Xb[:, n:])  # larger error and norm of the two end points
    # error of the new vertex: its end points' errors (the computed edge is the exact edge of
    # slightly moved end points), plus the hyperplane's error at the crossing amplified by the
    # edge's slope against it (edge length over distance gap) and the rounding of the step
    slope = np.sqrt(np.einsum("ij,ij->i", step, step)) / gap
    new[:, n] = mx[:, 0] + (pa * mx[:, 1] + pb) * slope + (8 * EPS) * mx[:, 1]
    new[:, n + 1] = np.sqrt(np.einsum("ij,ij->i", Vn, Vn))
    com |= m
    if refine is not None and new.shape[0]:
        # catastrophic cancellation (a small vertex interpolated between large ones, e.g. near the
        # centre of a huge box): recompute it from the hyperplanes tight at it
        trig = (8 * EPS) * mx[:, 1] > 1e-2 * geo * new[:, n + 1]
        if trig.any():
            refine[0].refine(new, com, trig, refine[1])
    Xz = VX[iz]
    Zz = Z[iz] | m
    return ((np.concatenate([VX[ip], Xz, new]), np.concatenate([Zp, Zz, com])),
            (np.concatenate([VX[im], Xz, new]), np.concatenate([Zm, Zz, com])))


def _bits(com: np.ndarray, K: int) -> np.ndarray:
    """Bool matrix (rows, K) of incidence bitsets (uint64 words, little-endian bit order)."""
    b = np.ascontiguousarray(com).view(np.uint8).reshape(com.shape[0], -1)
    return np.unpackbits(b, axis=1, bitorder="little")[:, :K].astype(bool)


class _Planes:
    """The constraint of every incidence bit: box faces, domain rows, then the cuts of a path."""

    def __init__(self, prob: Problem) -> None:
        n = prob.n
        A = np.zeros((2 * n, n))
        c = np.zeros(2 * n)
        A[0::2] = np.eye(n)
        A[1::2] = np.eye(n)
        c[0::2] = -prob.lower
        c[1::2] = -prob.upper
        ea = np.zeros(2 * n)
        eb = np.zeros(2 * n)
        if prob.A is not None:
            A = np.vstack([A, prob.A])
            c = np.concatenate([c, -prob.c])
            ea = np.concatenate([ea, np.full(len(prob.c), 2 * EPS)])
            eb = np.concatenate([eb, 2 * EPS * np.abs(prob.c)])
        self.A, self.c, self.ea, self.eb = A, c, ea, eb
        self.n = n

    def refine(self, new: np.ndarray, com: np.ndarray, mask: np.ndarray, path: tuple) -> None:
        """Recompute the new vertices ``new[mask]`` (rows ``[v | E | |v|]``, in place) from the
        constraints tight at them (their incidence ``com``; ``path``: the cuts (a, c, ea, eb)
        after the domain's constraints), keeping the result when its error bound is smaller."""
        n = self.n
        if path:
            PA = np.vstack([self.A, np.array([p[0] for p in path])])
            Pc = np.concatenate([self.c, [p[1] for p in path]])
            Pea = np.concatenate([self.ea, [p[2] for p in path]])
            Peb = np.concatenate([self.eb, [p[3] for p in path]])
        else:
            PA, Pc, Pea, Peb = self.A, self.c, self.ea, self.eb
        idx = np.flatnonzero(mask)
        B = _bits(com[idx], len(Pc))
        for r, i in enumerate(idx):
            S = np.flatnonzero(B[r])
            if S.size < n:
                continue
            AS, cS = PA[S], Pc[S]
            v0 = new[i, :n]
            r0 = AS @ v0 + cS
            delta, _, rank, sv = np.linalg.lstsq(AS, -r0, rcond=None)
            if rank < n or not sv[-1] > 0:
                continue
            v1 = v0 + delta
            r1 = AS @ v1 + cS
            v1n = float(np.linalg.norm(v1))
            err = (float(np.max(np.abs(r1))) + float(np.max(Pea[S] * v1n + Peb[S]))
                   + 4 * EPS * (v1n + float(np.max(np.abs(cS)))) * n) / sv[-1]
            if err < new[i, n]:
                new[i, :n], new[i, n], new[i, n + 1] = v1, err, v1n


def _domain_polytope(prob: Problem, words: int):
    V, Z = _box_polytope(prob.lower, prob.upper, words)
    n = prob.n
    VX = np.zeros((V.shape[0], n + 2))
    VX[:, :n] = V
    VX[:, n + 1] = np.sqrt(np.einsum("ij,ij->i", V, V))
    k = 2 * n
    geo = prob.geo
    if prob.A is not None:
        for a, c in zip(prob.A, prob.c):
            d = VX[:, :n] @ a - c
            vn = VX[:, n + 1]
            pa, pb = 2 * EPS * n, 2 * EPS * n * abs(c)
            thr = VX[:, n] + pa * vn + pb + geo * (vn + abs(c))
            if not np.any(d < -thr):
                raise InvalidDomainError(
                    "the domain has no interior: its constraints A x <= c leave no full-dimensional set in the box"
                )
            if np.any(d > thr):
                _, (VX, Z) = _split(VX, Z, d, thr, pa, pb, n, k, geo)
            k += 1
    return VX, Z, k


def _fused(Au, cu, ea, eb, geo: float, n: int):
    """``(B, o)`` with ``[V | E | |V|] @ B + o = [D | thr]``: every neuron's distance at the vertices
    and its on-the-plane threshold, ``E + (ea + geo) |v| + eb + geo |c|``, in one product."""
    N = cu.size
    B = np.zeros((n + 2, 2 * N))
    B[:n, :N] = Au.T
    B[n, N:] = 1.0
    B[n + 1, N:] = ea + geo
    o = np.concatenate([cu, eb + geo * np.abs(cu)])
    return B, o


#: the careful path is used when every first-layer hyperplane passes this close to the centre of
#: the normalised box (an arrangement much smaller than the box: a huge box, or planes through 0)
CAREFUL_SPREAD = 1e-3


def needs_care(prob: Problem) -> bool:
    """Whether the arrangement is small against the box (then vertex magnitudes differ widely)."""
    W1, b1 = prob.rnet.layers[0]
    nrm = np.linalg.norm(W1, axis=1)
    live = nrm > 0
    if not live.any():
        return False
    return bool(np.max(np.abs(b1[live]) / nrm[live]) < CAREFUL_SPREAD * max(prob.radius, 1e-300))


def count_vertex(prob: Problem, sink: Sink, *, deadline: float, stats: dict, careful=None) -> str:
    """Depth-first vertex enumeration; returns the status (``complete``, ``time_limit``, ``max_regions``).

    Two paths with one logic: the *plain* path (thresholds per hyperplane, relative to the size
    of the normalised box and to the hyperplane's offset) and the *careful* path (per-vertex
    thresholds and error bounds, and refinement of cancelled vertices), used when the
    arrangement is small against the box (:func:`needs_care`) or when ``careful`` says so.
    """
    if careful is None:
        careful = needs_care(prob)
    stats["careful"] = bool(careful)
    if careful:
        return _count_careful(prob, sink, deadline=deadline, stats=stats)
    return _count_plain(prob, sink, deadline=deadline, stats=stats)


def _split_plain(X, d, thr: float, n: int, w: int, bit: int):
    """The split of :func:`_split` for exact vertices (no error bounds): ``(X+, X-)``.

    ``X`` holds per vertex ``[v | 1 | incidence words]`` (shape (m, n + 1 + w)): homogeneous
    coordinates, so that one product gives every distance, and the incidence bitset stored
    in the same rows (its uint64 words viewed as float64, never computed with), so that one
    indexing and one concatenation move a vertex with its incidence.
    """
    n1 = n + 1
    pos = d > thr
    neg = d < -thr
    Xp = X[pos]
    Xm = X[neg]
    Xz = X[~(pos | neg)]
    if w == 1:
        Zp = Xp[:, n1].view(np.uint64)
        Zm = Xm[:, n1].view(np.uint64)
        common = np.bitwise_and.outer(Zp, Zm)
        a, b = (_popcount(common) >= n - 1).nonzero()
        com = common[a, b]
        # a vertex w contains the common face iff (com & ~Z[w]) == 0
        edge = np.add.reduce(np.bitwise_and.outer(com, ~X[:, n1].view(np.uint64)) == 0, axis=1) == 2
        m = np.uint64(1) << np.uint64(bit)
    else:
        Zp = Xp[:, n1:].view(np.uint64)
        Zm = Xm[:, n1:].view(np.uint64)
        common = Zp[:, None, :] & Zm[None, :, :]
        a, b = (np.add.reduce(_popcount(common), axis=-1) >= n - 1).nonzero()
        com = common[a, b]
        edge = np.add.reduce(~np.any(com[:, None, :] & ~X[:, n1:].view(np.uint64)[None, :, :], axis=-1),
                             axis=1) == 2
        m = np.zeros(w, dtype=np.uint64)
        m[bit // 64] = np.uint64(1) << np.uint64(bit % 64)
    a, b = a[edge], b[edge]
    da = d[pos][a]
    ta = da / (da - d[neg][b])
    new = Xp[a]
    new[:, :n1] += (Xm[b, :n1] - new[:, :n1]) * ta[:, None]  # the homogeneous 1 stays exactly 1
    if w == 1:
        new[:, n1] = (com[edge] | m).view(np.float64)
        zz = Xz[:, n1].view(np.uint64)
    else:
        new[:, n1:] = (com[edge] | m).view(np.float64)
        zz = Xz[:, n1:].view(np.uint64)
    zz |= m
    return np.concatenate([Xp, Xz, new]), np.concatenate([Xm, Xz, new])


def _plain_thr(cu, ea, eb, geo: float, R: float, n: int) -> np.ndarray:
    """Per-hyperplane on-the-plane threshold of the plain path: resolution ``geo`` relative to the
    box radius R and the offset, plus the hyperplane's error and the rounding of the distance."""
    return geo * (R + np.abs(cu)) + ea * R + eb + (8 * EPS * n) * (R + np.abs(cu))


def _plain_rows(Au, cu, ea, eb, geo: float, R: float, n: int) -> np.ndarray:
    """Per neuron ``[unit normal | offset | threshold]``: ``X[:, :n + 1] @ H[:, :n + 1].T`` are the
    distances at the vertices and ``H[:, n + 1]`` the on-the-plane thresholds."""
    return np.hstack([Au, cu[:, None], _plain_thr(cu, ea, eb, geo, R, n)[:, None]])


def _frontier(cells) -> list:
    """The cells left on the depth-first stack (``(on, und, prefix)`` of each, bottom first) of
    :func:`_count_plain` or :func:`_count_careful` as sign prefixes (bool arrays,
    the hidden neurons in order), in the order the search would have popped them.

    A cell on the stack lies in a region of the earlier layers (their patterns, ``prefix``) and,
    in its own layer, on a known side of every neuron before the first one still to test
    (``und``, ascending): the neurons were cut in index order and the others settled. Its cell is
    therefore the sub-domain of that sign prefix (the settled neurons' signs are implied), and
    the regions of these prefixes are exactly those the search had not reached: with the regions
    found, they make up the regions of the domain (Serra et al. 2018's count is additive over
    such a partition)."""
    out = []
    for on, und, prefix in reversed(list(cells)):
        m = int(und[0]) if und.size else on.size
        out.append(np.concatenate(prefix + (on[:m],)))
    return out


def _count_plain(prob: Problem, sink: Sink, *, deadline: float, stats: dict) -> str:
    net = prob.rnet
    n = prob.n
    n1 = n + 1
    L = net.num_hidden_layers
    geo = prob.geo
    noise = prob.tol.noise
    R = float(np.linalg.norm(np.maximum(np.abs(prob.lower), np.abs(prob.upper))))
    rows = 0 if prob.A is None else prob.A.shape[0]
    w = max(1, -(-(2 * n + rows + net.num_hidden_neurons) // 64))
    VX, Z, k0 = _domain_polytope(prob, w)
    X = np.empty((VX.shape[0], n1 + w))
    X[:, :n] = VX[:, :n]
    X[:, n] = 1.0
    X[:, n1:] = Z.reshape(len(Z), w).view(np.float64)
    W1, b1 = net.layers[0]
    A1, c1, M1, m1, Au, cu, ea, eb, const = layer_maps(W1, b1, np.ones(n), np.eye(n), np.zeros(n),
                                                       np.eye(n), np.zeros(n), noise, layer_rho(prob, 0))
    rhos = [layer_rho(prob, l) for l in range(L)]
    stack = [(X, k0, 0, const & (c1 > 0), np.flatnonzero(~const),
              (A1, c1, M1, m1, _plain_rows(Au, cu, ea, eb, geo, R, n)), ())]
    nodes = 0
    layers = net.layers
    vmax, vmin, vsum = np.maximum.reduce, np.minimum.reduce, np.add.reduce
    while stack:
        X, k, l, on, und, maps, prefix = stack.pop()
        nodes += 1
        if (nodes & 15) == 0:
            stats["nodes"] = nodes
            if time.perf_counter() > deadline:
                return "time_limit"
            if (nodes & 1023) == 0:
                sink.tick()
        while True:
            if und.size:
                H = maps[4][und]
                thr = H[:, n1]
                D = X[:, :n1] @ H[:, :n1].T
                anyp = vmax(D, axis=0) > thr
                anyn = vmin(D, axis=0) < -thr
                cut = anyp & anyn
                ncut = int(np.count_nonzero(cut))
                if ncut < und.size:
                    # the settled neurons' sides (a cut neuron's entry is set when it settles or is cut)
                    on = on.copy()
                    on[und] = anyp
                    thin = ~(anyp | anyn)
                    if thin.any():  # a cell thinner than the threshold across the plane: its centre's side
                        on[und[thin]] = vsum(D[:, thin], axis=0) > 0
                if ncut:
                    col = int(cut.argmax())
                    jj = und[col]
                    cut[col] = False
                    rest = und[cut]
                    onp = on.copy()
                    onp[jj] = True
                    on[jj] = False
                    if l == L - 1 and rest.size == 0:
                        # both sides are regions and nothing cuts them: a witness each, without the cells
                        # (points of the open segment from the vertex mean to the farthest vertex of
                        # each side, where the plane's distance is half that vertex's)
                        d = D[:, col]
                        cen = vsum(X[:, :n1], axis=0) * (1.0 / X.shape[0])
                        dc = float(cen @ H[col, :n1])
                        for side, i, pat in ((1.0, int(d.argmax()), onp), (-1.0, int(d.argmin()), on)):
                            half = 0.5 * float(d[i])
                            x = cen[:n]
                            if side * dc < side * half:
                                x = x + ((half - dc) / (float(d[i]) - dc)) * (X[i, :n] - x)
                            sink.add(x, np.concatenate(prefix + (pat,)))
                            if sink.full:
                                stats["nodes"] = nodes
                                if not stack and side < 0:
                                    return "complete"
                                rest_side = [np.concatenate(prefix + (on,))] if side > 0 else []
                                stats["frontier"] = rest_side + _frontier((e[3], e[4], e[6]) for e in stack)
                                return "max_regions"
                        break
                    Xp, Xm = _split_plain(X, D[:, col], float(thr[col]), n, w, k)
                    stack.append((Xm, k + 1, l, on, rest, maps, prefix))
                    stack.append((Xp, k + 1, l, onp, rest, maps, prefix))
                    break
            prefix = prefix + (on,)
            if l == L - 1:
                sink.add(vsum(X[:, :n], axis=0) * (1.0 / X.shape[0]), np.concatenate(prefix))
                if sink.full:
                    stats["nodes"] = nodes
                    if not stack:
                        return "complete"
                    stats["frontier"] = _frontier((e[3], e[4], e[6]) for e in stack)
                    return "max_regions"
                break
            W, b = layers[l + 1]
            A, c, M, m = maps[:4]
            A2, c2, M2, m2, Au, cu, ea, eb, const = layer_maps(W, b, on, A, c, M, m, noise, rhos[l + 1])
            maps = (A2, c2, M2, m2, _plain_rows(Au, cu, ea, eb, geo, R, n))
            on = const & (c2 > 0)
            und = np.flatnonzero(~const)
            l += 1
    stats["nodes"] = nodes
    return "complete"


def _count_careful(prob: Problem, sink: Sink, *, deadline: float, stats: dict) -> str:
    net = prob.rnet
    n = prob.n
    L = net.num_hidden_layers
    geo = prob.geo
    noise = prob.tol.noise
    rows = 0 if prob.A is None else prob.A.shape[0]
    words = max(1, -(-(2 * n + rows + net.num_hidden_neurons) // 64))
    VX, Z, k0 = _domain_polytope(prob, words)
    W1, b1 = net.layers[0]
    A1, c1, M1, m1, Au, cu, ea, eb, const = layer_maps(W1, b1, np.ones(n), np.eye(n), np.zeros(n),
                                                       np.eye(n), np.zeros(n), noise, layer_rho(prob, 0))
    planes = _Planes(prob)
    # a node: cell (per vertex [coordinates | error | norm], incidence), next constraint bit, layer,
    # on, undecided neurons, the layer's maps (raw A, c; magnitudes M, m; unit Au, cu; errors ea, eb),
    # patterns of the finished layers, the cuts made on the way (for refinements)
    stack = [(VX, Z, k0, 0, const & (c1 > 0), np.flatnonzero(~const),
              (A1, c1, M1, m1, Au, cu, ea, eb) + _fused(Au, cu, ea, eb, geo, n), (), ())]
    nodes = 0
    layers = net.layers
    eps4 = 4 * EPS
    while stack:
        VX, Z, k, l, on, und, maps, prefix, path = stack.pop()
        nodes += 1
        if (nodes & 15) == 0:
            stats["nodes"] = nodes
            if time.perf_counter() > deadline:
                return "time_limit"
            if (nodes & 1023) == 0:
                sink.tick()
        while True:
            if und.size:
                Au, cu, ea, eb, B, o = maps[4:]
                u = und.size
                cols = np.concatenate([und, und + cu.size])
                R = VX @ B[:, cols]
                R += o[cols]
                D, thr = R[:, :u], R[:, u:]
                pos = D > thr
                neg = D < -thr
                anyp = pos.any(axis=0)
                anyn = neg.any(axis=0)
                cut = anyp & anyn
                ncut = int(np.count_nonzero(cut))
                if ncut < und.size:
                    on = on.copy()
                    settled = ~cut
                    sgn = anyp[settled]
                    thin = ~(anyp | anyn)[settled]
                    if thin.any():  # a cell thinner than the threshold across the plane: its centre's side
                        sgn = sgn | (thin & (D[:, settled].mean(axis=0) > 0))
                    on[und[settled]] = sgn
                if ncut:
                    col = int(np.argmax(cut))
                    jj = und[col]
                    rest = und[cut]
                    rest = rest[rest != jj]
                    cjj = cu[jj]
                    path2 = path + ((Au[jj], cjj, ea[jj], eb[jj]),)
                    (Xp, Zp), (Xm, Zm) = _split(VX, Z, D[:, col], thr[:, col], ea[jj] + eps4,
                                                eb[jj] + eps4 * abs(cjj), n, k, geo, (planes, path2))
                    if len(Xp) <= n or len(Xm) <= n:
                        log.debug("vertex method: a cut left a cell with <= %d vertices (numerically "
                                  "degenerate arrangement); its witness decides", n)
                    onp = on.copy()
                    onp[jj] = True
                    onm = on.copy()
                    onm[jj] = False
                    stack.append((Xm, Zm, k + 1, l, onm, rest, maps, prefix, path2))
                    stack.append((Xp, Zp, k + 1, l, onp, rest, maps, prefix, path2))
                    break
            # layer l complete on this cell
            prefix = prefix + (on,)
            if l == L - 1:
                sink.add(VX[:, :n].mean(axis=0), np.concatenate(prefix))
                if sink.full:
                    stats["nodes"] = nodes
                    if not stack:
                        return "complete"
                    stats["frontier"] = _frontier((e[4], e[5], e[7]) for e in stack)
                    return "max_regions"
                break
            W, b = layers[l + 1]
            A, c, M, m = maps[:4]
            A2, c2, M2, m2, Au, cu, ea, eb, const = layer_maps(W, b, on, A, c, M, m, noise, layer_rho(prob, l + 1))
            maps = (A2, c2, M2, m2, Au, cu, ea, eb) + _fused(Au, cu, ea, eb, geo, n)
            on = const & (c2 > 0)
            und = np.flatnonzero(~const)
            l += 1
    stats["nodes"] = nodes
    return "complete"
