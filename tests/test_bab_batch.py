"""Vectorised box bounds and box evaluation of the input branch and bound (bounds/batch.py,
differential.box_bounds_batch, bab._evaluate_batch): the same values as the per-box path, sound."""

from __future__ import annotations

import numpy as np
import pytest

from mipnet import Box, Network
from mipnet.analyses.bab import (BabOptions, OpenBoxes, _search, _search_batch, branch_and_bound, evaluate_box,
                                 evaluate_boxes)
from mipnet.analyses.differential import DiffPair, box_bounds, box_bounds_batch
from mipnet.analyses.properties import L1Gap, LinfGap, TopK
from mipnet.bounds import symbolic_layers
from mipnet.bounds.batch import symbolic_layers_batch
from mipnet.core.domain import Domain


def _pair(seed: int, widths_b=(40,), m: int = 2):
    f = Network.random([5, 24, 24, m], seed=seed)
    g = Network.random([5, *widths_b, m], seed=seed + 50)
    return f, g


def _boxes(rng, n: int, w: float):
    lo = rng.uniform(-1, 1 - w, (n, 5))
    return lo, lo + w * rng.uniform(0.3, 1.0, (n, 5))


def _close(a, b, tol=1e-9):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("seed", [0, 1])
def test_symbolic_layers_batch_equals_per_box(seed):
    f, _ = _pair(seed)
    rng = np.random.default_rng(seed)
    lo, hi = _boxes(rng, 7, 0.8)
    got, _ = symbolic_layers_batch(f, lo, hi)
    parents = [symbolic_layers(f, Domain(-np.ones(5), np.ones(5)))] * 7
    init = [(np.stack([p[k].lower for p in parents]), np.stack([p[k].upper for p in parents]))
            for k in range(len(f.layers))]
    got_p, _ = symbolic_layers_batch(f, lo, hi, init)
    for b in range(7):
        ref = symbolic_layers(f, Domain(lo[b], hi[b]))
        ref_p = symbolic_layers(f, Domain(lo[b], hi[b]), initial=parents[b])
        for k in range(len(f.layers)):
            _close(got[k][0][b], ref[k].lower)
            _close(got[k][1][b], ref[k].upper)
            _close(got_p[k][0][b], ref_p[k].lower)
            _close(got_p[k][1][b], ref_p[k].upper)
    # each box with a parent of its own, as in the branch and bound: different neurons left
    # unstable per box, some stable in every box (the second layer bounds only the others' rows)
    small_lo, small_hi = _boxes(rng, 7, 0.15)
    own = [symbolic_layers(f, Domain(small_lo[b] - 0.05, small_hi[b] + 0.05)) for b in range(7)]
    init = [(np.stack([p[k].lower for p in own]), np.stack([p[k].upper for p in own])) for k in range(len(f.layers))]
    unstable = (init[1][0] < 0) & (init[1][1] > 0)
    assert unstable.any() and not unstable.any(axis=0).all() and (unstable.sum(axis=1) != unstable.sum(axis=1)[0]).any()
    got_o, _ = symbolic_layers_batch(f, small_lo, small_hi, init)
    for b in range(7):
        ref = symbolic_layers(f, Domain(small_lo[b], small_hi[b]), initial=own[b])
        for k in range(len(f.layers)):
            _close(got_o[k][0][b], ref[k].lower)
            _close(got_o[k][1][b], ref[k].upper)


@pytest.mark.parametrize("seed,widths_b", [(0, (40,)), (1, (16, 16, 16)), (2, (24, 24))])
def test_box_bounds_batch_equals_box_bounds_and_is_sound(seed, widths_b):
    f, g = _pair(seed, widths_b)
    prop = TopK(1).with_tol(1e-6)
    pair = DiffPair.build(f, g, Box(-1, 1, dim=5), spec=prop.spec(2))
    rng = np.random.default_rng(seed + 3)
    lo, hi = _boxes(rng, 6, 0.7)
    roots, Lu, Ll = box_bounds_batch(pair, lo, hi)
    assert Lu.shape == Ll.shape == (6, pair.product.output_dim, 5)
    # children of each box (its lower half along input 0), with the parents' layer bounds
    clo, chi = lo.copy(), hi.copy()
    chi[:, 0] = (lo[:, 0] + hi[:, 0]) / 2
    kids, _, _ = box_bounds_batch(pair, clo, chi, [r.product_layers for r in roots])
    for b in range(6):
        for got, ref in ((roots[b], box_bounds(pair, lo[b], hi[b], aligned=False)),
                         (kids[b], box_bounds(pair, clo[b], chi[b], aligned=False,
                                              parent_layers=roots[b].product_layers))):
            # the same back-substitution; the output rows are also intersected with intervals from the
            # last hidden layer's symbolic bounds (the per-box path: from the input's), so never looser
            for name in ("d_lo", "fa_lo", "fb_lo", "spec_lo"):
                assert np.all(getattr(got, name) >= getattr(ref, name) - 1e-9 * (1 + np.abs(getattr(ref, name))))
            for name in ("d_hi", "fa_hi", "fb_hi", "spec_hi"):
                assert np.all(getattr(got, name) <= getattr(ref, name) + 1e-9 * (1 + np.abs(getattr(ref, name))))
            # hidden layers: the same, except the shallower net's padding identity layers, which are
            # the exact post-activation bounds here (tighter than their back-substitution there)
            for x, y in zip(got.product_layers[:-1], ref.product_layers[:-1]):
                assert np.all(x.lower >= y.lower - 1e-9 * (1 + np.abs(y.lower)))
                assert np.all(x.upper <= y.upper + 1e-9 * (1 + np.abs(y.upper)))
            if f.num_hidden_layers == g.num_hidden_layers:
                for x, y in zip(got.product_layers[:-1], ref.product_layers[:-1]):
                    _close(x.lower, y.lower)
                    _close(x.upper, y.upper)
            # the per-net path sees the padding identity layers as exactly stable
            assert got.unstable <= ref.unstable
        X = np.concatenate([rng.uniform(clo[b], chi[b], (2000, 5)),
                            np.where(rng.integers(0, 2, (32, 5)) > 0, chi[b], clo[b])])
        fa, fb = f.forward(X), g.forward(X)
        bb = kids[b]
        assert np.all(fa - fb >= bb.d_lo) and np.all(fa - fb <= bb.d_hi)
        assert np.all(fa >= bb.fa_lo) and np.all(fa <= bb.fa_hi) and np.all(fb >= bb.fb_lo) and np.all(fb <= bb.fb_hi)
        for p in (prop, LinfGap(0.0).with_tol(1e-6), L1Gap(0.0).with_tol(1e-6)):
            assert np.all(p.measure(fa, fb) <= p.upper(bb))
        for lb, y in zip(bb.product_layers, _preacts(pair.product, X)):
            assert np.all(y >= lb.lower) and np.all(y <= lb.upper)
    # only the gap rows (what an epsilon property reads): the same gap bounds and coefficients,
    # the other rows' interval bounds (sound, never tighter)
    rows = LinfGap(0.1).box_rows(pair.m)
    part, Lu_p, Ll_p = box_bounds_batch(pair, lo, hi, rows=rows)
    _close(Lu_p[:, rows], Lu[:, rows])
    _close(Ll_p[:, rows], Ll[:, rows])
    assert not Lu_p[:, pair.m:].any() and not Ll_p[:, pair.m:].any()
    for got, full in zip(part, roots):
        _close(got.d_lo, full.d_lo)
        _close(got.d_hi, full.d_hi)
        for name in ("fa", "fb", "spec"):
            assert np.all(getattr(got, name + "_lo") <= getattr(full, name + "_lo"))
            assert np.all(getattr(got, name + "_hi") >= getattr(full, name + "_hi"))
    X = rng.uniform(lo[0], hi[0], (500, 5))
    fa, fb = f.forward(X), g.forward(X)
    assert np.all(fa >= part[0].fa_lo) and np.all(fa <= part[0].fa_hi)
    assert np.all(fb >= part[0].fb_lo) and np.all(fb <= part[0].fb_hi)


def _preacts(net, X):
    out, h = [], X
    for W, b in net.layers:
        y = h @ W.T + b
        out.append(y)
        h = np.maximum(y, 0.0)
    return out


def test_search_batch_equals_per_box_search():
    f, g = _pair(4)
    pair = DiffPair.build(f, g, Box(-1, 1, dim=5))
    prop = LinfGap(0.5).with_tol(1e-6)
    opts = BabOptions()
    rng = np.random.default_rng(0)
    lo, hi = _boxes(rng, 9, 0.5)
    hi[3] = lo[3]  # a degenerate box
    keys = list(range(10, 19))
    best, X, grad = _search_batch(pair, prop, lo, hi, opts, keys)
    for b, key in enumerate(keys):
        rb, rx, rg = _search(pair, prop, None, lo[b], hi[b], opts, key)
        _close(best[b], rb, 1e-12)
        _close(X[b], rx, 1e-12)
        _close(grad[b], rg, 1e-6)


def _provable(seed: int):
    """A pair on [-1, 1]^5, eps 1.2 x its sampled max gap (true: a proof by splitting), bounds and
    search only: ``(pair, prop, dom, opts)``."""
    f, g = _pair(seed)
    dom = Box(-1, 1, dim=5)
    Xd = dom.sample(20_000, seed=1, include_vertices=True)
    prop = LinfGap(1.2 * float(np.abs(f.forward(Xd) - g.forward(Xd)).max())).with_tol(1e-6)
    return DiffPair.build(f, g, dom, spec=prop.spec(2)), prop, dom, BabOptions(milp_unstable=0)


def test_evaluate_boxes_vectorised_equals_per_box_and_branch_and_bound_agrees():
    pair, prop, dom, opts = _provable(5)
    root = evaluate_box(pair, prop, dom.lower, dom.upper, opts, 0, aligned=False)
    rng = np.random.default_rng(2)
    lo, hi = _boxes(rng, 5, 0.6)
    tasks = [((pair, prop, lo[b], hi[b], opts, b + 1), dict(aligned=False, parent_bound=root.bound,
                                                              parent_layers=root.layers)) for b in range(5)]
    got = evaluate_boxes(tasks)
    ref = [evaluate_box(*a, **k) for a, k in tasks]
    for o, r in zip(got, ref):
        _close(o.bound, r.bound)
        assert o.closed == r.closed and o.key == r.key
        assert (o.witness is None) == (r.witness is None)
        if not r.closed:  # a closed box gets no search in the vectorised path
            _close(o.best, r.best, 1e-12)
    # the whole search: same verdict with and without vectorisation (the bound is sound both ways)
    r1 = branch_and_bound(pair, prop, dom, options=BabOptions(milp_unstable=0), time_limit=60)
    r0 = branch_and_bound(pair, prop, dom, options=BabOptions(milp_unstable=0, vectorize=False), time_limit=60)
    assert str(r1.status) == str(r0.status) == "proven"
    assert r1.upper <= prop.proven and r1.witness is None


def test_child_bounds_hold_on_each_half_and_travel_with_the_box():
    """An open vectorised box bounds both halves along its split input from its own linear
    functions: each bound contains the property's measure at 4,000 points of its half (and at
    its vertices), is at most the box's bound, and survives packing into columns."""
    import itertools

    from mipnet.analyses.bab import _pack_boxes, _unpack_list

    pair, prop, dom, opts = _provable(3)
    rng = np.random.default_rng(6)
    checked = 0
    for w in (0.9, 0.5, 0.25):
        lo, hi = _boxes(rng, 16, w)
        tasks = lambda p: [((pair, p, lo[b], hi[b], opts, 100 + b), dict(aligned=False)) for b in range(16)]  # noqa: E731
        # a threshold below most boxes' bounds (the bounds do not depend on it): open boxes whose
        # halves their lines may close
        prop_w = LinfGap(0.85 * float(np.median([o.bound for o in evaluate_boxes(tasks(prop))]))).with_tol(1e-6)
        outs = evaluate_boxes(tasks(prop_w))
        for o in outs:
            if o.child_bounds is None:
                continue
            d = o.split
            mid = o.lower[d] + (o.upper[d] - o.lower[d]) / 2
            for j, (a, b) in enumerate(((o.lower, np.where(np.arange(5) == d, mid, o.upper)),
                                        (np.where(np.arange(5) == d, mid, o.lower), o.upper))):
                half = Box(a, b)
                X = np.concatenate([half.sample(4000, seed=checked), np.array(list(itertools.product(*zip(a, b))))])
                v = prop_w.measure(pair.net_a.forward(X), pair.net_b.forward(X))
                assert v.max() <= o.child_bounds[j] <= o.bound
                checked += 1
        back = _unpack_list(_pack_boxes([o for o in outs if not o.closed and o.witness is None]))
        assert [o.child_bounds for o in back] == [o.child_bounds for o in outs if not o.closed and o.witness is None]
    assert checked >= 10


def test_halves_closed_by_their_parents_lines_leave_the_proof_unchanged():
    """Halves whose parent's linear functions already prove them close without an evaluation:
    the proof, its bound and its best point are those of a search that evaluates every half (the
    parents' child bounds removed), with fewer boxes evaluated."""
    from mipnet.analyses import bab as B

    pair, prop, dom, opts = _provable(7)
    prop = LinfGap(prop.eps / 1.2 * 1.02).with_tol(1e-6)  # 2 % above the sampled gap: a deeper tree
    evaluated = []
    orig_eval, orig_child = B.evaluate_boxes, B._child_bounds

    def counting(tasks):
        evaluated[-1] += len(tasks)
        return orig_eval(tasks)

    try:
        B.evaluate_boxes = counting
        evaluated.append(0)
        r1 = branch_and_bound(pair, prop, dom, options=opts, time_limit=120)
        B._child_bounds = lambda *a, **k: None
        evaluated.append(0)
        r0 = branch_and_bound(pair, prop, dom, options=opts, time_limit=120)
    finally:
        B.evaluate_boxes, B._child_bounds = orig_eval, orig_child
    assert str(r1.status) == str(r0.status) == "proven"
    assert r1.upper <= prop.proven and r0.upper <= prop.proven
    assert r1.lower == r0.lower
    assert evaluated[0] < evaluated[1]


def test_deep_boxes_get_the_light_search_in_both_paths():
    """Boxes at depth >= deep_search x inputs get the light search (their centre alone), by their
    key alone: the vectorised and the per-box paths find the same best points, the centre on deep
    boxes, and every best value is the measure at its point."""
    from mipnet.analyses.bab import _depth, _search_options

    pair, prop, dom, opts = _provable(5)
    prop = LinfGap(prop.eps / 1.2 * 0.9).with_tol(1e-6)  # below the sampled max gap: boxes stay open
    assert [_depth(k) for k in (0, 1, 2, 3, 6, 2 ** 10 - 1)] == [0, 1, 1, 2, 2, 10]
    light = _search_options(opts, 2 ** 10 - 1, 5)
    assert _search_options(opts, 2 ** 9, 5) is opts and light.samples == 0 and light.ascent_steps == 0
    rng = np.random.default_rng(4)
    lo, hi = _boxes(rng, 6, 0.9)
    keys = [1, 2, 2 ** 10 - 1, 2 ** 10, 2 ** 12 + 5, 7]  # three shallow, three deep
    tasks = [((pair, prop, lo[b], hi[b], opts, keys[b]), dict(aligned=False)) for b in range(6)]
    got = evaluate_boxes(tasks)
    ref = [evaluate_box(*a, **k) for a, k in tasks]
    assert sum(not r.closed for r in ref[2:5]) >= 2  # deep boxes that were searched
    for b, (o, r) in enumerate(zip(got, ref)):
        if 2 <= b < 5:  # deep: the centre
            np.testing.assert_array_equal(o.best_point, (lo[b] + hi[b]) / 2)
        if not r.closed:
            _close(o.best, r.best, 1e-12)
            np.testing.assert_allclose(o.best_point, r.best_point, atol=1e-12)
            x = o.best_point[None, :]
            _close(o.best, float(prop.measure(pair.net_a.forward(x), pair.net_b.forward(x))[0]), 1e-9)


def test_subtree_unit_searches_its_boxes_and_stops_on_boxes_too_small_to_split():
    """A distributed B&B unit runs the in-process search from the boxes it is sent: from the root,
    with time enough, it proves what branch_and_bound proves, closing the same boxes; a box whose
    split input has no width left comes back open and marked stuck, so it is not dealt out again."""
    import dataclasses

    from mipnet.analyses.bab import subtree_unit

    pair, prop, dom, opts = _provable(7)
    common = dict(domain=None, sensitivity=np.ones(5), aligned=False)
    root = evaluate_box(pair, prop, dom.lower, dom.upper, opts, 0, **common)
    assert not root.closed
    finished, v = subtree_unit((pair, prop, opts, common, [root], opts.vector_batch, 600.0), None)
    ref = branch_and_bound(pair, prop, dom, options=opts)
    assert finished and not v["open"] and not v["stuck"] and v["witness"] is None
    assert ref.status == "proven" and v["closed"] == ref.boxes_closed > 1
    # a unit that starts at the run's end sends nothing back (the caller still holds its boxes),
    # marked final and untouched
    import time

    finished, v = subtree_unit((pair, prop, opts, common, [root], opts.vector_batch, 600.0), time.time() - 1.0)
    assert not finished and v["final"] and v["untouched"] and not len(v["open"]) and v["evaluated"] == 0
    # one whose rounds reach the deadline returns its open boxes without their layer bounds (nobody
    # will split them; they would only weigh on the way back)
    hard = LinfGap(prop.eps / 1.2 * 1.01).with_tol(1e-6)  # eps 1.01 x the sampled gap: ~350 boxes, true
    hard_root = evaluate_box(pair, hard, dom.lower, dom.upper, opts, 0, **common)
    finished, v = subtree_unit((pair, hard, opts, common, [hard_root], 1, 600.0), time.time() + 1.0)
    assert not v.get("untouched") and v["evaluated"] > 0 and v["witness"] is None
    if not finished:  # (a machine fast enough proves it within the second)
        assert v["final"] and len(v["open"]) and all(o.layers is None for o in v["open"])
    flat = dataclasses.replace(root, upper=np.where(np.arange(5) == root.split, root.lower, root.upper))
    finished, v = subtree_unit((pair, prop, opts, common, [flat], opts.vector_batch, 600.0), None)
    assert not finished and v["stuck"] and [o.key for o in v["open"]] == [0]


def test_open_boxes_travel_as_stacked_arrays_and_come_back_the_same():
    """The frontier a distributed unit returns pickles as a few arrays (not ~12 per box), and what
    is unpickled is the same boxes: every field, the layer bounds included, and so the same
    children when they are searched on."""
    import pickle

    from mipnet.analyses.bab import _Search

    pair, prop, dom, opts = _provable(7)
    common = dict(domain=None, sensitivity=np.ones(5), aligned=False)
    root = evaluate_box(pair, prop, dom.lower, dom.upper, opts, 0, **common)
    s = _Search(pair, prop, opts, common, 4)
    s.push(root)
    for _ in range(3):
        s.round(None)
    boxes = s.summary(False)["open"]
    assert isinstance(boxes, OpenBoxes) and len(boxes) > 3 and all(o.layers is not None for o in boxes)
    buffers = []
    back = pickle.loads(pickle.dumps(boxes, protocol=5, buffer_callback=buffers.append), buffers=buffers)
    assert len(buffers) <= 12 + 2 * len(root.layers)  # one per column, not one per box
    for a, b in zip(boxes, back):
        assert (a.key, a.bound, a.best, a.split, a.closed, a.num_milps) == (b.key, b.bound, b.best, b.split,
                                                                            b.closed, b.num_milps)
        np.testing.assert_array_equal(a.lower, b.lower)
        np.testing.assert_array_equal(a.upper, b.upper)
        for la, lb in zip(a.layers, b.layers):
            np.testing.assert_array_equal(la.lower, lb.lower)
            np.testing.assert_array_equal(la.upper, lb.upper)
    def search_on(roots):
        t = _Search(pair, prop, opts, common, 8)
        for o in roots:
            t.push(o)
        t.round(None)
        t.round(None)
        return t.summary(False)

    v1, v2 = search_on(list(boxes)), search_on(back)
    assert [(o.key, o.bound) for o in v1["open"]] == [(o.key, o.bound) for o in v2["open"]]
    assert v1["closed"] == v2["closed"] and v1["evaluated"] == v2["evaluated"] == 32
    # boxes that do not fit the columns (a witness, alpha slopes) travel as they are
    odd = OpenBoxes([dataclasses_replace(boxes[0], slopes={(0, 1): [np.ones(3)]})])
    again = pickle.loads(pickle.dumps(odd))
    assert again[0].slopes is not None and again[0].key == boxes[0].key


def dataclasses_replace(o, **kw):
    import dataclasses

    return dataclasses.replace(o, **kw)


def test_a_capped_frontier_goes_deepest_first_and_closes_the_same_tree():
    """Over ``max_open`` open boxes the search splits its deepest boxes first: the frontier stays
    near the cap, and the proof closes exactly the boxes of the best-first order (a box's outcome
    depends only on its key and parent), with the same verdict and bound."""
    pair, prop, dom, _ = _provable(5)
    best_first = branch_and_bound(pair, prop, dom, options=BabOptions(milp_unstable=0, vector_batch=8))
    capped = branch_and_bound(pair, prop, dom, options=BabOptions(milp_unstable=0, vector_batch=8, max_open=16))
    assert str(best_first.status) == str(capped.status) == "proven"
    assert capped.boxes_closed == best_first.boxes_closed
    # over the cap, each round adds at most its children's net growth (a round of 8 boxes: +8 while
    # none close), so the frontier ends a few rounds above the cap, far below the best-first one
    assert capped.peak_open <= 16 + 3 * 8 < best_first.peak_open
    assert capped.upper == pytest.approx(best_first.upper, abs=1e-12)


def test_open_boxes_store_their_layer_bounds_as_float32_rounded_outwards():
    """An open box keeps its layer bounds in float32 (half the memory), each rounded outwards, so
    that they still contain the float64 bounds; its children start from them in float64."""
    from mipnet.analyses.bab import _stored_layers, _used_layers

    pair, prop, dom, opts = _provable(7)
    root = evaluate_box(pair, prop, dom.lower, dom.upper, opts, 0, aligned=False)
    assert root.layers[0].lower.dtype == np.float64
    stored = _stored_layers(root.layers)
    assert _stored_layers(stored) is stored
    for s, f in zip(stored, root.layers):
        assert s.lower.dtype == s.upper.dtype == np.float32
        assert np.all(s.lower <= f.lower) and np.all(s.upper >= f.upper)
        assert np.all(np.abs(s.lower - f.lower) <= 1e-6 * (1 + np.abs(f.lower)))
    used = _used_layers(stored)
    assert all(u.lower.dtype == np.float64 and np.array_equal(u.lower, s.lower) for u, s in zip(used, stored))
    assert all(np.array_equal(u.upper, s.upper) for u, s in zip(used, stored))
    # the vectorised boxes store a whole chunk at once: the same float32 values, bit for bit
    from mipnet.analyses.bab import _stored_rows
    from mipnet.analyses.differential import box_bounds_chunk, layer_views

    rng = np.random.default_rng(5)
    lo, hi = _boxes(rng, 6, 0.5)
    _, _, _, M, sizes = box_bounds_chunk(pair, lo, hi)
    S = _stored_rows(M)
    assert S.dtype == np.float32 and np.all(S[:, :S.shape[1] // 2] <= M[:, :M.shape[1] // 2])
    for b in range(6):
        one = _stored_layers(layer_views(M[b].copy(), sizes))
        got = layer_views(S[b].copy(), sizes)
        assert all(np.array_equal(x.lower, y.lower) and np.array_equal(x.upper, y.upper) for x, y in zip(one, got))


def test_parent_bounds_are_stacked_from_one_buffer_per_box_as_from_the_layers():
    """Stored layer bounds are views of one buffer per box; the children's batched bounds stack
    those buffers in one call, with the same arrays as stacking layer by layer; layers that are
    not such views (rows of a chunk, a frontier's columns, or mixed) take the per-layer stack."""
    from mipnet.analyses.bab import _pack_boxes, _stored_layers, _unpack_list, _used_layers
    from mipnet.analyses.differential import _stacked_layers, layer_buffer

    pair, prop, dom, opts = _provable(7)
    rng = np.random.default_rng(1)
    lo, hi = _boxes(rng, 4, 0.6)
    bbs, _, _ = box_bounds_batch(pair, lo, hi)
    chunk_rows = [bb.product_layers for bb in bbs]
    assert all(layer_buffer(r) is None for r in chunk_rows)  # views of the chunk's 2-D arrays
    used = [_used_layers(_stored_layers(r)) for r in chunk_rows]
    assert all(layer_buffer(u) is not None for u in used)
    outs = [evaluate_box(pair, prop, lo[b], hi[b], opts, 2 * b + 1, aligned=False) for b in range(2)]
    unpacked = _unpack_list(_pack_boxes(outs))
    assert all(layer_buffer(o.layers) is None for o in unpacked)  # a frontier's columns
    for parents in (used, used[:2] + [o.layers for o in unpacked], [o.layers for o in unpacked]):
        fast = _stacked_layers(parents)
        for k, (a, b) in enumerate(fast):
            assert a.dtype == b.dtype == np.float64
            assert np.array_equal(a, np.stack([p[k].lower for p in parents]))
            assert np.array_equal(b, np.stack([p[k].upper for p in parents]))


def _small_frontier():
    """The open boxes (OpenBoxes, with their layer bounds) after 3 rounds of a search of the
    provable pair of seed 7."""
    from mipnet.analyses.bab import _Search

    pair, prop, dom, opts = _provable(7)
    common = dict(domain=None, sensitivity=np.ones(5), aligned=False)
    s = _Search(pair, prop, opts, common, 4)
    s.push(evaluate_box(pair, prop, dom.lower, dom.upper, opts, 0, **common))
    for _ in range(3):
        s.round(None)
    return s.summary(False)["open"]


def test_a_returned_frontier_is_dealt_from_its_stacked_columns():
    """Unpickled open boxes stay stacked: dealing them into units (by bound, then key) slices the
    columns without making an object per box, gives the same groups as dealing the objects, and a
    group pickles its columns as they are."""
    import pickle

    from mipnet.analyses.bab import _deal

    boxes = _small_frontier()
    back = pickle.loads(pickle.dumps(boxes))
    assert back._boxes is None and len(back) == len(boxes) > 5
    mine, theirs = _deal(boxes, 3), _deal(back, 3)
    assert back._boxes is None  # dealt from the columns
    assert [len(g) for g in mine] == [len(g) for g in theirs] and len(mine) == 3
    for a, b in zip(mine, theirs):
        assert [o.key for o in a] == [o.key for o in b]
        assert [o.bound for o in a] == [o.bound for o in b]
        bounds = [o.bound for o in a]
        assert bounds == sorted(bounds, reverse=True)
        for oa, ob in zip(a, b):
            for la, lb in zip(oa.layers, ob.layers):
                np.testing.assert_array_equal(la.lower, lb.lower)
    g = theirs[0]
    g2 = OpenBoxes._of(g._packed)
    assert g2.__reduce__()[1][0] is g._packed  # no stacking again on the way out


def test_a_final_frontier_packs_without_its_layers_as_the_copies_would():
    """At a run's end a unit packs its open boxes without layer bounds and slopes straight into
    columns: the same boxes as packing copies made by _without_layers, and the boxes it packed
    keep their layers (nothing is copied or changed)."""
    import pickle

    from mipnet.analyses.bab import _pack_boxes, _unpack_list, _without_layers

    boxes = _small_frontier().boxes
    assert len(boxes) > 5 and all(o.layers is not None for o in boxes)
    packed = _pack_boxes(boxes, layers=False)
    assert packed[0] == "columns" and packed[1]["layers"] is None
    assert all(o.layers is not None for o in boxes)
    via_copies = _unpack_list(_pack_boxes([_without_layers(o) for o in boxes]))
    got = _unpack_list(pickle.loads(pickle.dumps(OpenBoxes._of(packed)))._packed)
    assert len(got) == len(via_copies) == len(boxes)
    for a, b in zip(got, via_copies):
        assert a.layers is None and a.slopes is None
        assert (a.key, a.bound, a.best, a.split) == (b.key, b.bound, b.best, b.split)
        np.testing.assert_array_equal(a.lower, b.lower)
        np.testing.assert_array_equal(a.upper, b.upper)


def test_boxes_parked_at_the_end_of_a_distributed_run_count_as_if_pushed():
    """The open boxes that come back at a distributed run's end stay in their stacked columns
    (parked): the count, the bound and the largest open box are those of the same boxes pushed."""
    import pickle

    from mipnet.analyses.bab import _Search

    pair, prop, dom, opts = _provable(7)
    rng = np.random.default_rng(3)
    lo, hi = _boxes(rng, 9, 0.5)
    hi[4] = lo[4] + 0.5  # two boxes of the same largest volume: the smaller key wins
    hi[7] = lo[7] + 0.5
    outs = evaluate_boxes([((pair, prop, lo[b], hi[b], opts, 10 + b), {}) for b in range(9)])
    common = dict(domain=None, sensitivity=np.ones(5), aligned=False)
    pushed, parked = _Search(pair, prop, opts, common, 8), _Search(pair, prop, opts, common, 8)
    for o in outs:
        pushed.push(o)
    for o in outs[:3]:
        parked.push(o)
    parked.parked = [pickle.loads(pickle.dumps(OpenBoxes(outs[3:7]))), OpenBoxes(outs[7:]), OpenBoxes()]
    assert parked.parked[0]._columns() is not None  # still stacked
    assert parked.open_count() == pushed.open_count() == 9
    assert parked.open_bound() == pushed.open_bound() == max(o.bound for o in outs)
    a, b = parked.largest_open(5), pushed.largest_open(5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and np.array_equal(a[0], lo[4])


def test_back_substitution_in_blocks_gives_the_same_bits(monkeypatch):
    """Rows pushed back in blocks (to stay in cache) get the values of one piece, up to the order in
    which BLAS sums a product (a few ulps; the rounding terms hold for any order)."""
    import mipnet.bounds.batch as batch

    f, _ = _pair(2)
    rng = np.random.default_rng(4)
    lo, hi = _boxes(rng, 9, 0.9)
    whole = symbolic_layers_batch(f, lo, hi)[0]
    monkeypatch.setattr(batch, "BACK_ROWS", 7)  # far fewer than the unstable rows of 9 boxes
    blocks = symbolic_layers_batch(f, lo, hi)[0]
    assert sum(((a < 0) & (b > 0)).sum() for a, b in whole[1:]) > 7
    for (a, b), (c, d) in zip(whole, blocks):
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(d, b, rtol=1e-12, atol=1e-12)
