"""Exact 1-D and 2-D slices (mipnet.slices) and their pictures (mipnet.plotting).

Every exact answer is checked by an independent route: float64 forward passes on dense
grids (patterns, outputs), closed-form counts of line arrangements (Zaslavsky), the
segment algorithm against the plane algorithm, and area sums.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest

from mipnet import InvalidDomainError, InvalidNetworkError, MipnetError, Network
from mipnet.analyses.slices import (
    PlanePartition,
    pattern_key,
    plane_along_axes,
    plane_regions,
    plane_through_points,
    segment_regions,
)


# ============================================================================ helpers
def distance_to_boundary(net: Network, origin, u, v, st) -> np.ndarray:
    """Exact distance (in s, t) from each point to the boundary of its activation region.

    Independent of mipnet.slices: the region of a point is the intersection of the
    half-planes ``sign y_j``, with y_j affine in (s, t) with the point's pattern; the
    distance is min_j |y_j| / |grad y_j| (computed by a batched forward pass).
    """
    X = origin[None, :] + st[:, :1] * u[None, :] + st[:, 1:] * v[None, :]
    J = np.broadcast_to(np.stack([u, v], axis=1), (len(st), len(u), 2))
    h = X
    dist = np.full(len(st), np.inf)
    for W, b in net.layers[:-1]:
        y = h @ W.T + b
        Jy = np.matmul(W, J)
        g = np.linalg.norm(Jy, axis=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(g > 0, np.abs(y) / g, np.inf)
        dist = np.minimum(dist, d.min(axis=1))
        on = y > 0
        h = np.where(on, y, 0.0)
        J = on[:, :, None] * Jy
    return dist


def grid(bounds, n, inset=1e-3):
    (s0, s1), (t0, t1) = bounds
    s = np.linspace(s0 + inset * (s1 - s0), s1 - inset * (s1 - s0), n)
    t = np.linspace(t0 + inset * (t1 - t0), t1 - inset * (t1 - t0), n)
    S, T = np.meshgrid(s, t)
    return np.stack([S.ravel(), T.ravel()], axis=1)


def check_sampling(net, part: PlanePartition, st, min_dist=1e-7):
    """Sampled patterns are the polygons' patterns; locate agrees with the forward pass."""
    X = part.to_input(st)
    pats = net.activation_pattern(X)
    keys = {pattern_key(p) for p in pats}
    assert keys <= part.pattern_set()
    far = distance_to_boundary(net, part.origin, part.u, part.v, st) > min_dist * part.diameter
    assert far.mean() > 0.99
    idx = part.locate(st[far])
    assert np.all(idx >= 0)
    assert np.array_equal(part.patterns[idx], pats[far])
    # the affine map of the located polygon reproduces the forward pass
    out = np.einsum("nkd,nd->nk", part.maps_M[idx], st[far]) + part.maps_m[idx]
    ref = net.forward(X[far])
    assert np.allclose(out, ref, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(ref).max()))
    return len(keys)


def check_polygons(net, part: PlanePartition):
    """Areas sum to the domain, polygons are convex CCW, patterns unique, maps exact at vertices."""
    P = part.count_regions()
    assert P == len(part.polygons) == len(part.areas) == len(part.pattern_set())
    assert np.all(part.areas > 0)
    assert abs(part.areas.sum() - part.domain_area) <= 1e-9 * part.domain_area
    for poly in part.polygons:
        E = np.roll(poly, -1, axis=0) - poly
        cr = E[:, 0] * np.roll(E, -1, axis=0)[:, 1] - E[:, 1] * np.roll(E, -1, axis=0)[:, 0]
        assert cr.min() >= -1e-9 * part.diameter ** 2
    # (d) the polygon's affine map equals the network at every vertex
    pid = np.repeat(np.arange(P), part.counts)
    ref = net.forward(part.to_input(part.vertices))
    mine = np.einsum("nkd,nd->nk", part.maps_M[pid], part.vertices) + part.maps_m[pid]
    assert np.allclose(mine, ref, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(ref).max()))
    # the forward pattern at each centroid is the polygon's pattern (all but slivers)
    perim = np.array([np.linalg.norm(np.roll(p, -1, 0) - p, axis=1).sum() for p in part.polygons])
    thick = part.areas / perim > 1e-8 * part.diameter
    cen_pat = net.activation_pattern(part.to_input(part.centroids))
    assert np.array_equal(cen_pat[thick], part.patterns[thick])
    assert thick.mean() > 0.99
    # classes are the argmax at the centroid
    assert np.array_equal(np.argmax(net.forward(part.to_input(part.centroids)), axis=1), part.classes)


# ============================================================================ segments
@pytest.fixture(scope="module")
def deep_net():
    return Network.random([6, 14, 12, 10, 4], seed=3)


def test_segment_breakpoints_are_zeros_of_their_neurons(deep_net):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=6) * 2, rng.normal(size=6) * 2
    seg = segment_regions(deep_net, a, b)
    assert seg.count_pieces() > 10
    t = seg.breakpoints
    assert t[0] == 0.0 and t[-1] == 1.0 and np.all(np.diff(t) > 0)
    y = np.concatenate(deep_net.preactivations(seg.points(t[1:-1]))[:-1], axis=1)
    scale = np.abs(y).max()
    own = y[np.arange(len(t) - 2), seg.breakpoint_neurons]
    assert np.all(np.abs(own) <= 1e-9 * scale)
    assert np.all(np.abs(y).min(axis=1) <= 1e-9 * scale)


def test_segment_matches_dense_forward_pass(deep_net):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=6) * 2, rng.normal(size=6) * 2
    seg = segment_regions(deep_net, a, b)
    n = 100_000
    t = (np.arange(n) + 0.5) / n
    idx = seg.locate(t)
    near = np.abs(t[:, None] - seg.breakpoints[None, 1:-1]).min(axis=1) < 1e-9
    pats = deep_net.activation_pattern(seg.points(t))
    assert np.array_equal(pats[~near], seg.patterns[idx[~near]])
    # pieces longer than the grid spacing are all sampled; nothing else is sampled
    sampled = {pattern_key(p) for p in pats}
    long_ = {pattern_key(p) for p, L in zip(seg.patterns, seg.lengths) if L > 2.0 / n}
    assert long_ <= sampled <= seg.pattern_set()
    # every piece, however short: forward pattern at its midpoint
    mids = 0.5 * (seg.breakpoints[:-1] + seg.breakpoints[1:])
    assert np.array_equal(deep_net.activation_pattern(seg.points(mids)), seg.patterns)
    # consecutive pieces differ, and the piecewise affine outputs are the network's
    assert np.all(np.any(seg.patterns[1:] != seg.patterns[:-1], axis=1))
    ref = deep_net.forward(seg.points(t))
    assert np.allclose(seg.outputs(t), ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    assert seg.count_linear_pieces() <= seg.count_pieces()


def test_segment_one_layer_has_one_piece_per_crossing():
    rng = np.random.default_rng(2)
    n, d = 9, 3
    a, b = rng.normal(size=d), rng.normal(size=d)
    W = rng.normal(size=(n, d))
    roots = np.sort(rng.uniform(0.05, 0.95, n))
    bias = -(W @ a + roots * (W @ (b - a)))  # neuron j vanishes at t = roots[j]
    net = Network([W, rng.normal(size=(2, n))], [bias, np.zeros(2)])
    seg = segment_regions(net, a, b)
    assert seg.count_pieces() == n + 1
    assert np.allclose(seg.breakpoints[1:-1], roots, atol=1e-12)
    assert sorted(seg.breakpoint_neurons.tolist()) == list(range(n))
    assert seg.count_linear_pieces() == n + 1


def test_segment_merges_pieces_of_a_neuron_without_effect(deep_net):
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=6) * 2, rng.normal(size=6) * 2
    aug = with_silent_neuron(deep_net, a + np.linspace(0, 1, 101)[:, None] * (b - a))
    base = segment_regions(deep_net, a, b)
    seg = segment_regions(aug, a, b)
    assert seg.count_pieces() > base.count_pieces()
    assert seg.count_linear_pieces() == base.count_linear_pieces() == base.count_pieces()


def test_segment_result_object(deep_net):
    seg = segment_regions(deep_net, np.zeros(6), np.ones(6))
    d = seg.to_dict()
    assert d["pieces"] == seg.count_pieces() and "breakpoints" not in d
    import json

    json.dumps(seg.to_dict(include_pieces=True))
    assert "activation regions" in str(seg)
    with pytest.raises(Exception):
        seg.breakpoints[0] = 1.0  # read-only
    assert seg.locate([-0.1, 0.0, 1.0, 1.1]).tolist() == [-1, 0, seg.num_pieces - 1, -1]


def test_segment_input_errors(deep_net):
    with pytest.raises(InvalidDomainError, match="coincide"):
        segment_regions(deep_net, np.ones(6), np.ones(6))
    with pytest.raises(InvalidDomainError, match="has 5 entries"):
        segment_regions(deep_net, np.ones(5), np.zeros(6))
    with pytest.raises(InvalidDomainError, match="NaN or inf"):
        segment_regions(deep_net, np.full(6, np.nan), np.zeros(6))
    with pytest.raises(InvalidNetworkError, match="mipnet.Network"):
        segment_regions("net", np.ones(6), np.zeros(6))
    with pytest.raises(InvalidDomainError, match="tol"):
        segment_regions(deep_net, np.ones(6), np.zeros(6), tol=-1)


# ============================================================================ planes
def with_silent_neuron(net: Network, X) -> Network:
    """Add to the last hidden layer a neuron with zero outgoing weights: same function.

    Its incoming weights are random; its bias puts its zero level at the median over the
    sample ``X``, so that its boundary does cross the slice.
    """
    layers = net.layers
    W, b = layers[-2]
    Wo, bo = layers[-1]
    w = np.random.default_rng(0).normal(size=W.shape[1])
    h = np.maximum(net.preactivations(X)[-3], 0.0) if net.num_hidden_layers > 1 else X
    W2 = np.vstack([W, w])
    b2 = np.append(b, -np.median(h @ w))
    Wo2 = np.hstack([Wo, np.zeros((Wo.shape[0], 1))])
    return net.replace_layers(layers[:-2] + [(W2, b2), (Wo2, bo)])


@pytest.fixture(scope="module")
def net2d():
    return Network.random([2, 12, 10, 8, 3], seed=5)


@pytest.fixture(scope="module")
def part2d(net2d):
    return plane_regions(net2d, [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], bounds=((-2.0, 2.5), (-1.5, 2.0)))


def test_plane_2d_net_polygons(net2d, part2d):
    assert part2d.count_regions() > 50
    check_polygons(net2d, part2d)


def test_plane_2d_net_dense_grid(net2d, part2d):
    st = grid(((-2.0, 2.5), (-1.5, 2.0)), 350)
    seen = check_sampling(net2d, part2d, st)
    assert seen > 0.9 * part2d.count_regions()


def test_plane_slice_of_5d_net():
    net = Network.random([5, 16, 12, 8, 4], seed=6)
    rng = np.random.default_rng(7)
    origin, u, v = rng.normal(size=5), rng.normal(size=5), rng.normal(size=5)  # u, v not orthonormal
    part = plane_regions(net, origin, u, v, bounds=((-1.5, 1.0), (-1.0, 1.2)))
    assert part.count_regions() > 50
    check_polygons(net, part)
    check_sampling(net, part, grid(((-1.5, 1.0), (-1.0, 1.2)), 300))
    # a convex polygon domain: same checks
    hexagon = 1.2 * np.array([[np.cos(a), np.sin(a)] for a in np.linspace(0, 2 * np.pi, 7)[:-1]])
    hp = plane_regions(net, origin, u, v, polygon=hexagon[::-1])  # clockwise input is accepted
    check_polygons(net, hp)
    st = grid(((-1.2, 1.2), (-1.2, 1.2)), 250)
    r = np.linalg.norm(st, axis=1)
    check_sampling(net, hp, st[r < 1.0])
    assert np.all(hp.locate(np.array([[2.0, 0.0], [0.0, -1.5]])) == -1)


def test_plane_segment_cross_check():
    """Segments inside the plane meet exactly patterns of the plane partition, in located polygons."""
    net = Network.random([4, 10, 10, 6, 3], seed=8)
    rng = np.random.default_rng(9)
    origin, u, v = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4)
    part = plane_regions(net, origin, u, v, bounds=((-1.0, 1.0), (-1.0, 1.0)))
    adj = {tuple(p) for p in part.adjacency().tolist()}
    for _ in range(20):
        p, q = rng.uniform(-0.95, 0.95, size=(2, 2))
        seg = segment_regions(net, part.to_input(p)[0], part.to_input(q)[0])
        assert seg.pattern_set() <= part.pattern_set()
        mids = 0.5 * (seg.breakpoints[:-1] + seg.breakpoints[1:])
        st = p[None, :] + mids[:, None] * (q - p)[None, :]
        idx = part.locate(st)
        ok = seg.lengths > 1e-6
        assert np.array_equal(part.patterns[idx[ok]], seg.patterns[ok])
        # consecutive polygons met by the segment are adjacent (or meet at a vertex only)
        for i, j in zip(idx[:-1], idx[1:]):
            if i != j and ok.all():
                assert (min(i, j), max(i, j)) in adj or _meet_at_point(part, i, j)


def _meet_at_point(part, i, j) -> bool:
    A, B = part.polygon(i), part.polygon(j)
    d = np.linalg.norm(A[:, None, :] - B[None, :, :], axis=2)
    return bool((d < 1e-9).sum() == 1)


def test_plane_adjacency_is_one_neuron_flip(part2d):
    """Generic nets: regions sharing an edge differ in exactly one neuron; short hops confirm it."""
    adj = part2d.adjacency()
    assert len(adj) >= part2d.count_regions() - 1  # the adjacency graph is connected
    flips = (part2d.patterns[adj[:, 0]] != part2d.patterns[adj[:, 1]]).sum(axis=1)
    assert np.all(flips == 1)
    import networkx as nx

    G = nx.Graph()
    G.add_nodes_from(range(part2d.count_regions()))
    G.add_edges_from(adj.tolist())
    assert nx.is_connected(G)
    # Euler's formula for the subdivision of the rectangle: V - E + F = 1, and every edge is
    # either on the rectangle's boundary or shared by exactly one adjacent pair
    key = {}
    vid = np.array([key.setdefault(tuple(np.round(x, 9)), len(key)) for x in part2d.vertices])
    edges, boundary = set(), 0
    for i in range(part2d.count_regions()):
        ids = vid[part2d.offsets[i]:part2d.offsets[i + 1]]
        P = part2d.polygon(i)
        for k, (a, b) in enumerate(zip(ids, np.roll(ids, -1))):
            if a != b and (min(a, b), max(a, b)) not in edges:
                edges.add((min(a, b), max(a, b)))
                mid = 0.5 * (P[k] + P[(k + 1) % len(P)])
                boundary += bool(np.min(np.abs(mid[:, None] - [[-2.0, 2.5], [-1.5, 2.0]])) < 1e-9)
    assert len(key) - len(edges) + part2d.count_regions() == 1
    assert len(edges) == len(adj) + boundary
    # independent: tiny steps that cross exactly one neuron line join adjacent polygons
    rng = np.random.default_rng(10)
    p = rng.uniform([-2.0, -1.5], [2.5, 2.0], size=(4000, 2))
    q = p + 1e-3 * rng.normal(size=p.shape)
    inside = (q[:, 0] > -2) & (q[:, 0] < 2.5) & (q[:, 1] > -1.5) & (q[:, 1] < 2.0)
    i, j = part2d.locate(p[inside]), part2d.locate(q[inside])
    pairs = {tuple(x) for x in adj.tolist()}
    hops = 0
    for a, b, pp, qq in zip(i, j, p[inside], q[inside]):
        if a == b:
            continue
        seg = segment_regions(Network.random([2, 12, 10, 8, 3], seed=5), pp, qq)
        if seg.count_pieces() == 2 and seg.lengths.min() > 1e-3:
            hops += 1
            assert (min(a, b), max(a, b)) in pairs
    assert hops > 20


@pytest.mark.parametrize("n", [6, 13])
def test_plane_one_layer_zaslavsky(n):
    """n lines in general position, all crossings inside the domain: 1 + n + C(n, 2) regions."""
    rng = np.random.default_rng(n)
    ang = np.pi * (np.arange(n) + rng.uniform(0.1, 0.9, n)) / n
    normals = np.stack([np.cos(ang), np.sin(ang)], axis=1) * rng.uniform(0.5, 2.0, size=(n, 1))
    pts = rng.uniform(-1, 1, size=(n, 2)) * 0.7
    bias = -(normals * pts).sum(axis=1)
    net = Network([normals, rng.normal(size=(3, n))], [bias, rng.normal(size=3)])
    # precondition: every pairwise intersection is inside the rectangle
    for i, j in itertools.combinations(range(n), 2):
        x = np.linalg.solve(normals[[i, j]], -bias[[i, j]])
        assert np.all(np.abs(x) < 60)
    part = plane_regions(net, [0, 0], [1, 0], [0, 1], bounds=((-60, 60), (-60, 60)))
    assert part.count_regions() == 1 + n + math.comb(n, 2)
    check_polygons(net, part)
    # one hidden layer, generic output weights: no two adjacent regions share a map
    assert part.count_linear_regions() == part.count_regions()


def test_plane_one_layer_arrangement_count_in_small_box():
    """Lines partly outside the box: regions = 1 + (lines meeting the box) + (crossings inside)."""
    rng = np.random.default_rng(11)
    n = 25
    W = rng.normal(size=(n, 2))
    b = rng.normal(size=n) * 1.5
    net = Network([W, rng.normal(size=(2, n))], [b, np.zeros(2)])
    lo, hi = -1.0, 1.0
    corners = np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi]])
    vals = corners @ W.T + b
    meets = (vals.max(axis=0) > 0) & (vals.min(axis=0) < 0)
    crossings = 0
    for i, j in itertools.combinations(range(n), 2):
        x = np.linalg.solve(W[[i, j]], -b[[i, j]])
        crossings += bool(np.all((x > lo) & (x < hi)))
    part = plane_regions(net, [0, 0], [1, 0], [0, 1], bounds=((lo, hi), (lo, hi)))
    assert part.count_regions() == 1 + int(meets.sum()) + crossings


def test_plane_degenerate_lines_through_vertices():
    """Concurrent lines through the corners of the box: 8 equal triangles, no slivers."""
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0], [1.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    b = np.array([0.0, 0.0, 0.0, 0.0, 0.0, -1.0])  # a duplicate line, and one on the boundary x = 1
    net = Network([W, np.ones((1, 6))], [b, np.zeros(1)])
    part = plane_regions(net, [0, 0], [1, 0], [0, 1], bounds=((-1, 1), (-1, 1)))
    assert part.count_regions() == 8
    assert np.allclose(part.areas, 0.5, rtol=1e-12)
    assert part.slivers_skipped == 0
    assert not part.patterns[:, 5].any()  # x - 1 <= 0 on the whole box
    check_polygons(net, part)
    # no hidden layer at all: one polygon, the box
    lin = Network([np.array([[1.0, 2.0]])], [np.zeros(1)])
    p1 = plane_regions(lin, [0, 0], [1, 0], [0, 1], bounds=((0, 1), (0, 2)))
    assert p1.count_regions() == 1 and p1.count_linear_regions() == 1
    assert p1.patterns.shape == (1, 0)


def test_plane_linear_regions_merge_silent_neuron(net2d):
    bounds = ((-2.0, 2.5), (-1.5, 2.0))
    aug = with_silent_neuron(net2d, grid(bounds, 30))
    base = plane_regions(net2d, [0, 0], [1, 0], [0, 1], bounds=bounds)
    part = plane_regions(aug, [0, 0], [1, 0], [0, 1], bounds=bounds)
    assert part.count_regions() > base.count_regions()
    assert part.count_linear_regions() <= part.count_regions()
    assert part.count_linear_regions() == base.count_linear_regions()
    # polygons of one linear region share one affine map
    lab = part.linear_region_labels()
    for k in np.unique(lab):
        M = part.maps_M[lab == k]
        assert np.allclose(M, M[0], atol=1e-9 * np.abs(part.maps_M).max())
    # dropping the silent neuron from the patterns gives the base partition's patterns
    keep = np.ones(aug.num_hidden_neurons, dtype=bool)
    keep[aug.hidden_offsets[-1] - 1] = False
    assert {pattern_key(p[keep]) for p in part.patterns} == base.pattern_set()


def test_plane_class_regions_are_exact(net2d, part2d):
    polys, classes, areas = part2d.class_regions()
    assert len(polys) >= part2d.count_regions() and len(np.unique(classes)) > 1
    assert abs(areas.sum() - part2d.domain_area) <= 1e-9 * part2d.domain_area
    cen = np.array([p.mean(axis=0) for p in polys])  # vertex mean: inside a convex polygon
    perim = np.array([np.linalg.norm(np.roll(p, -1, 0) - p, axis=1).sum() for p in polys])
    thick = areas / perim > 1e-6
    assert thick.mean() > 0.95
    ref = np.argmax(net2d.forward(part2d.to_input(cen)), axis=1)
    assert np.array_equal(ref[thick], classes[thick])
    # class areas against the fraction of a dense grid (independent forward pass)
    st = grid(((-2.0, 2.5), (-1.5, 2.0)), 300, inset=1 / 600)
    frac = np.bincount(np.argmax(net2d.forward(part2d.to_input(st)), axis=1), minlength=3) / len(st)
    exact = np.array([part2d.class_areas().get(c, 0.0) for c in range(3)]) / part2d.domain_area
    assert np.allclose(frac, exact, atol=0.01)
    one = Network.random([2, 5, 1], seed=1)
    p1 = plane_regions(one, [0, 0], [1, 0], [0, 1], bounds=((-1, 1), (-1, 1)))
    assert p1.class_areas() == {0: pytest.approx(4.0)}


def test_plane_result_object(part2d):
    d = part2d.to_dict()
    assert d["regions"] == part2d.count_regions() and "polygons" not in d
    import json

    json.dumps(d)
    json.dumps(part2d.to_dict(include_polygons=True))
    s = str(part2d)
    assert "activation regions" in s and str(part2d.count_regions()) in s
    with pytest.raises(Exception):
        part2d.areas[0] = 1.0
    assert part2d.locate([0.1, 0.2]).shape == (1,)
    assert part2d.locate([[np.nan, 0.0], [9.0, 9.0]]).tolist() == [-1, -1]


def test_plane_input_errors(net2d):
    o, u, v = [0, 0], [1, 0], [0, 1]
    with pytest.raises(InvalidDomainError, match="exactly one of bounds"):
        plane_regions(net2d, o, u, v)
    with pytest.raises(InvalidDomainError, match="exactly one of bounds"):
        plane_regions(net2d, o, u, v, bounds=((0, 1), (0, 1)), polygon=[[0, 0], [1, 0], [0, 1]])
    with pytest.raises(InvalidDomainError, match="linearly independent"):
        plane_regions(net2d, o, u, [2, 0], bounds=((0, 1), (0, 1)))
    with pytest.raises(InvalidDomainError, match="linearly independent"):  # one input: no plane at all
        plane_regions(Network.random([1, 4, 1], seed=0), [0.0], [1.0], [2.0], bounds=((0, 1), (0, 1)))
    with pytest.raises(InvalidDomainError, match="lo < hi"):
        plane_regions(net2d, o, u, v, bounds=((1, 0), (0, 1)))
    with pytest.raises(InvalidDomainError, match="convex"):
        plane_regions(net2d, o, u, v, polygon=[[0, 0], [2, 0], [0.5, 0.5], [0, 2]])
    with pytest.raises(InvalidDomainError, match="zero area"):
        plane_regions(net2d, o, u, v, polygon=[[0, 0], [1, 1], [2, 2]])
    with pytest.raises(InvalidDomainError, match="has 3 entries"):
        plane_regions(net2d, [0, 0, 0], u, v, bounds=((0, 1), (0, 1)))
    with pytest.raises(InvalidDomainError, match="shape"):
        plane_regions(net2d, o, u, v, bounds=((0, 1), (0, 1))).locate(np.zeros((3, 3)))
    assert issubclass(InvalidDomainError, MipnetError)


# ============================================================================ choosing planes
def test_plane_through_points():
    rng = np.random.default_rng(13)
    xs = rng.uniform(size=(3, 50))
    plane = plane_through_points(*xs, margin=0.3)
    origin, u, v, bounds = plane
    assert abs(u @ u - 1) < 1e-12 and abs(v @ v - 1) < 1e-12 and abs(u @ v) < 1e-12
    assert np.allclose(plane.to_input(plane.points_st), xs, atol=1e-12)
    assert np.allclose(plane.to_st(xs), plane.points_st, atol=1e-12)
    (s0, s1), (t0, t1) = bounds
    assert np.all((plane.points_st > [s0, t0]) & (plane.points_st < [s1, t1]))
    net = Network.random([50, 16, 8, 3], seed=14)
    part = plane.regions(net)
    # the three inputs are located in polygons whose pattern is theirs
    idx = part.locate(plane.points_st)
    assert np.array_equal(part.patterns[idx], net.activation_pattern(xs))
    assert "SlicePlane" in str(plane) and plane.to_dict()["dim"] == 50
    with pytest.raises(InvalidDomainError, match="collinear"):
        plane_through_points(xs[0], xs[1], 2 * xs[1] - xs[0])
    with pytest.raises(InvalidDomainError, match="coincide"):
        plane_through_points(xs[0], xs[0], xs[1])


def test_plane_along_axes():
    base = np.arange(5.0)
    plane = plane_along_axes(5, 1, 3, base, lo=-2.0, hi=(1.0, 3.0))
    assert plane.bounds == ((-2.0, 1.0), (-2.0, 3.0))
    x = plane.to_input([[0.5, -0.25]])[0]
    assert np.allclose(x, [0, 0.5, 2, -0.25, 4])
    assert np.allclose(plane.points_st, [[1.0, 3.0]])
    with pytest.raises(InvalidDomainError, match="different"):
        plane_along_axes(5, 2, 2)
    with pytest.raises(InvalidDomainError, match="not an input index"):
        plane_along_axes(5, 0, 7)


# ============================================================================ speed
def test_plane_speed_64_32_16_10():
    net = Network.random([784, 64, 32, 16, 10], seed=0)
    plane = plane_along_axes(784, 0, 1, lo=-30.0, hi=30.0)
    plane_regions(net, *list(plane)[:3], bounds=((-1, 1), (-1, 1)))  # warm-up
    t0 = time.perf_counter()
    part = plane.regions(net)
    dt = time.perf_counter() - t0
    assert part.count_regions() > 2000
    assert dt < 5.0, f"{part.count_regions()} polygons took {dt:.2f} s"
    assert abs(part.areas.sum() - part.domain_area) <= 1e-9 * part.domain_area


# ============================================================================ pictures
def _png_colours(path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB")).astype(np.int64)
    return len(np.unique(arr[..., 0] * 65536 + arr[..., 1] * 256 + arr[..., 2]))


def test_plot_plane_partition(tmp_path, net2d, part2d):
    from matplotlib.figure import Figure

    from mipnet.plotting import plot_plane_partition

    path = tmp_path / "plane.png"
    fig = plot_plane_partition(part2d, show_points={"A": (0.0, 0.0), "B": (1.0, 1.0)}, path=path, dpi=100)
    assert isinstance(fig, Figure)
    assert path.exists() and path.stat().st_size > 20_000
    assert _png_colours(path) > 100
    path2 = tmp_path / "classes.png"
    plot_plane_partition(part2d, color_by="class", show_points=np.array([[0.0, 0.0]]), path=path2,
                         class_names=["a", "b", "c"], title="classes", dpi=60)
    assert path2.stat().st_size > 10_000 and _png_colours(path2) > 3
    path3 = tmp_path / "linear.png"
    plot_plane_partition(part2d, color_by="linear", path=path3, dpi=60)
    assert path3.stat().st_size > 10_000
    # drawing into given axes
    fig2 = Figure()
    ax = fig2.add_subplot()
    assert plot_plane_partition(part2d, ax=ax) is fig2
    with pytest.raises(ValueError, match="color_by"):
        plot_plane_partition(part2d, color_by="nope")
    with pytest.raises(ValueError, match="class_names"):
        plot_plane_partition(part2d, color_by="class", class_names=["a"])
    with pytest.raises(ValueError, match="show_points"):
        plot_plane_partition(part2d, show_points=[1, 2, 3])


def test_plot_segment_partition(tmp_path, deep_net):
    from mipnet.plotting import plot_segment_partition

    seg = segment_regions(deep_net, -np.ones(6), np.ones(6))
    path = tmp_path / "segment.png"
    fig = plot_segment_partition(seg, path=path, endpoint_labels=("x1", "x2"), dpi=100)
    assert fig is not None and path.stat().st_size > 20_000
    assert _png_colours(path) > 20
    plot_segment_partition(seg, outputs=[0, 2], path=tmp_path / "s2.png", max_lines=1, dpi=50)
    with pytest.raises(ValueError, match="out of range"):
        plot_segment_partition(seg, outputs=[7])


# ============================================================================ status, witnesses, Ctrl-C
def test_slice_status_and_witnesses(deep_net):
    seg = segment_regions(deep_net, -np.ones(6), np.ones(6))
    assert seg.exact and seg.status == "complete" and seg.verified == seg.count_pieces()
    assert seg.to_dict()["status"] == "complete" and seg.to_dict()["exact"] is True
    net = Network.random([2, 8, 6, 3], seed=0)
    part = plane_regions(net, [0, 0], [1, 0], [0, 1], bounds=((-1, 1), (-1, 1)))
    assert part.exact and part.verified == part.count_regions() and part.slivers_skipped == 0
    d = part.to_dict()
    assert d["status"] == "complete" and d["exact"] is True and d["verified"] == part.count_regions()


def test_segment_snaps_identically_zero_neurons():
    # layer-2 neuron 0 is h1 - h0 - 1 with h1 = h0 + 1 where both are on: identically zero there
    W1 = np.array([[0.3, 0.7], [0.3, 0.7]])
    net = Network([W1, np.array([[-1.0, 1.0]]), np.ones((1, 1))],
                  [np.array([0.1, 1.1]), np.array([-1.0]), np.zeros(1)])
    seg = segment_regions(net, [-2.0, -2.0], [2.0, 2.0])
    from mipnet.core.numerics import snapped_pattern

    mids = 0.5 * (seg.breakpoints[:-1] + seg.breakpoints[1:])
    _, P = snapped_pattern(net, seg.points(mids))
    assert np.array_equal(seg.patterns, P) and not seg.patterns[:, 2].any()
    assert seg.exact


def test_plane_interrupt_returns_partial_partition():
    import _thread
    import threading

    net = Network.random([784, 256, 256, 10], seed=0)  # about 15 s and 84,000 polygons in full
    plane = plane_along_axes(784, 0, 1, lo=-30.0, hi=30.0)
    timer = threading.Timer(1.5, _thread.interrupt_main)
    timer.start()
    t0 = time.perf_counter()
    try:
        part = plane.regions(net)
    finally:
        timer.cancel()
    dt = time.perf_counter() - t0
    assert dt < 1.5 + 1.5, f"stopped {dt - 1.5:.2f} s after the signal"
    assert part.status == "interrupted" and not part.exact and part.to_dict()["status"] == "interrupted"
    assert 1 <= part.count_regions() < 84_000
    # still a partition of the domain into convex polygons (each holds a region: a lower bound)
    assert abs(part.areas.sum() - part.domain_area) <= 1e-9 * part.domain_area
    # patterns and maps read at the centroids, for the polygons the half-second budget reached
    done = ~np.isnan(part.maps_m).any(axis=1)
    assert done.sum() >= 100 and np.all(part.classes[~done] == -1)
    X = part.to_input(part.centroids[done])
    assert np.array_equal(net.activation_pattern(X), part.patterns[done])
    out = np.einsum("nkd,nd->nk", part.maps_M[done], part.centroids[done]) + part.maps_m[done]
    assert np.allclose(out, net.forward(X), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("R", [1e8, 1e12])
def test_plane_huge_slice_resolves_unit_size_regions(R):
    # before: the slice's tolerance was relative to its diameter: on +-1e12, 53 polygons
    # ("complete") where the plane holds 197 regions, all near the origin. Now relative to the
    # local magnitudes (regions' normalisation): the same count, cross-checked against the
    # region counter on the same 2-D affine slice (a 2-input network) and a fine grid
    from mipnet import Box
    from mipnet.analyses.regions import count_regions
    from mipnet.analyses.slices import pattern_key

    rng = np.random.default_rng(3)
    net = Network.random([4, 10, 8, 1], seed=1)
    origin, u, v = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4)
    W1, b1 = net.layers[0]
    U = np.stack([u, v], axis=1)
    plane_net = Network([W1 @ U] + [W for W, _ in net.layers[1:]], [W1 @ origin + b1] + [b for _, b in net.layers[1:]])
    part = plane_regions(net, origin, u, v, bounds=((-R, R), (-R, R)))
    assert part.exact and part.slivers_skipped == 0
    oracle = count_regions(plane_net, Box(-R, R, dim=2), method="vertex", return_regions=True)
    assert oracle.exact and part.count_regions() == oracle.regions > 50
    assert part.pattern_set() == {pattern_key(p) for p in oracle.patterns()}
    small = plane_regions(net, origin, u, v, bounds=((-1e4, 1e4), (-1e4, 1e4)))
    assert small.pattern_set() == part.pattern_set()
    # fine grids at the scales of the arrangement: every pattern seen is a polygon's
    seen = set()
    for w in (3.0, 30.0, 300.0, 3000.0):
        S, T = np.meshgrid(np.linspace(-w, w, 301), np.linspace(-w, w, 301))
        X = origin + S.reshape(-1, 1) * u + T.reshape(-1, 1) * v
        seen |= {pattern_key(p) for p in net.activation_pattern(X)}
    assert seen <= part.pattern_set() and len(seen) > 0.8 * part.count_regions()
