"""Branch and bound over the input box for equivalence properties (input splitting).

Best-first bisection of the input box (the open box with the largest bound first). On every box
(:func:`evaluate_box`, a pure top-level function of picklable arguments, so any
``concurrent.futures.Executor`` can run boxes in parallel):

1. sound bounds on ``f - g`` and the property's rows (:func:`~mipnet.analyses.differential.box_bounds`:
   aligned differential intervals, ReluDiff, and DeepPoly on the difference network);
   ``bound <= proven`` closes the box;
2. a counterexample search: centre, random points and vertices, then signed finite-difference
   ascent steps on the property's measure (the nets are piecewise linear); a point whose float64
   measure exceeds the threshold by more than a bound on the rounding of the two forward passes
   refutes the property (so a tie broken by rounding is no counterexample);
3. on boxes where the two nets have few unstable neurons, the MILP of
   :class:`~mipnet.analyses.joint.GapProblem` (the property's ``milp`` hook) with a short
   time limit;
4. otherwise the box is split in two along the input of largest score: its relative width plus
   half its relative ``width_i |a_i|``, ``a`` the input coefficients of the worst row's linear
   bound (``BabOptions.split="bound"``), or (``"grad"``) its width times ``|d measure / d x_i|``
   (finite differences at the centre) plus the width times the static sensitivity
   ``|W_L| ... |W_1|`` of the difference network.

Where the pair allows it (a box domain, no aligned intervals, no alpha-CROWN steps), the boxes
of one work unit are evaluated together (:func:`_evaluate_batch`): the back-substitution bounds
and the search are vectorised over the boxes (:mod:`mipnet.bounds.batch`), ~1 ms a box instead
of ~15 ms on the 5-input, 300/400-ReLU pairs of the benchmark.

A box's outcome depends on the box alone: its key (children of box ``k``: ``2k + 1``, ``2k + 2``)
fixes its random points, and its parent's bounds are sent with it. In a proof every box whose
bound exceeds the threshold is split, whatever the order, so the verdict, the boxes closed and
the bound do not depend on the executor. With an executor (:func:`_distribute`), the tree is
grown here until every worker can get open boxes; they are dealt out in
:func:`subtree_unit` units, each running the same search and returning what it left open,
which is dealt out again, into as many units as there are idle workers (work stealing by
re-splitting: a worker is never left with a long subtree while the others idle, and only the
frontier travels, not every box). On Dask a unit returns when an event says that a worker
idles (after at least :data:`SLICE_MIN` seconds); on other executors every :data:`SLICE`
seconds, doubled (up to :data:`SLICE_MAX`) while no worker waits. The frontier travels as
stacked arrays (:class:`OpenBoxes`). A counterexample stops the run; which one is reported can
then depend on timing. (VeryDiff, Teuber, Kern and Sinz 2024, and NeuroDiff, Paulsen et al. 2020, split the input the
same way.) A time limit or Ctrl-C gives ``unknown`` with the proven bound (the largest bound of
an open box) and the largest box not closed.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import heapq
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from mipnet.analyses.common import Status, deadline_after, remaining
from mipnet.analyses.differential import BoxBounds, DiffPair, box_bounds, layer_buffer, layer_views, refine_rows
from mipnet.core.bounds import LayerBounds
from mipnet.core.domain import Domain, L1BallDomain
from mipnet.core.errors import MipnetError
from mipnet.core.numerics import in_domain

__all__ = ["BabOptions", "BoxOutcome", "BabResult", "evaluate_box", "evaluate_boxes", "branch_and_bound"]


@dataclass(frozen=True)
class BabOptions:
    """Knobs of the input branch and bound.

    ``milp_unstable``: run the leaf MILP when the two nets have at most this many unstable
    neurons on the box (0: never; None: 48 for more than 8 inputs, else 12 -- with few inputs
    splitting closes boxes faster: on the 5-input pairs of the benchmark, leaf MILPs at <= 48
    took 0.5-0.8 s each and a pair was not proven in 60 s, without them in 4-8 s);
    ``milp_time``: its time limit (s); ``samples``: random points per box; ``ascent_steps``:
    finite-difference ascent steps; ``batch``: boxes split per round (evaluated together,
    in this process or inside a worker's unit);
    ``seed``: of the random points (mixed with the box id); ``alpha_iterations``:
    slope-optimisation steps of alpha-CROWN on the difference network (warm-started from the
    parent box) on boxes the cheap bounds do not close (0: CROWN's slopes only; measured on the
    5-input student pair in-process: 20 steps proved the box [-0.1, 0.1]^5 with 200 boxes
    instead of 297 but in 17.3 s instead of 6.6 s, and on [-1, 1]^5 reached bound 2.88 in 60 s
    instead of 2.41: the optimised slopes pay only where a box costs much more than its bounds); ``split``: ``"bound"`` (the relative width ``w_i / max w`` plus half
    the relative ``w_i |a_i|``, ``a`` the input coefficients of the worst row's linear bound, see
    :func:`evaluate_box`) or ``"grad"`` (the measure's gradient and the static sensitivity
    only). The width term (isotropic bisection) because what the bound loses on a box comes from
    its unstable neurons, which any input's split thins out, more than from the linear part
    ``a``: on the 5-input student pair at eps 0.118 the sub-boxes [-1, 0]^5 and [0, 1]^5 were
    proven with 16729 and 17527 closed boxes instead of 20555 and 20908 with ``w_i |a_i|`` plus a
    quarter of the gradient score (the previous rule; ``w_i |a_i|`` alone: 22528 on [-1, 0]^5),
    the pair on [-0.1, 0.1]^5 with 331 instead of 298 boxes, the retrained pair there with 95
    instead of 139; ``aligned``: use the aligned differential intervals on every box
    (``"on"``), never (``"off"``), or where they beat the difference network's own bound at the
    root box (``"auto"``); ``blas_threads``: numpy's BLAS threads while a box is evaluated
    (None: unchanged; the matrices are small, and on a busy 2-core machine 2 BLAS threads made
    the bounds of one box 5-15x slower than 1); ``vectorize``: evaluate the boxes of a round
    together where the pair allows it (a box domain, no aligned intervals, no alpha-CROWN
    steps: :func:`_evaluate_batch`), with ``vector_batch`` boxes split per round instead of
    ``batch`` (a vectorised box costs ~0.5 ms instead of ~15 ms, so rounds must be large for
    the numpy calls to pay); ``deep_search``: boxes at depth ``>= deep_search x inputs`` of the
    tree (every input halved that often, on average) get a light search: their centre alone,
    which every box gets anyway (None: the full search everywhere). Their ancestors' searches
    covered them already, and in a proof the search is wasted work: on the 5-input student pair
    on [-0.3, 0.3]^5 (9,808 boxes) the full search at every box was ~40 % of the time (15.5-17.7 s
    instead of 20.1-21.5 s with 2 points, 2 vertices and 2 ascent steps from depth 10; the best
    point found 0.0634 instead of 0.0641), and the centre alone from depth 10 took 9.7-10.8 s
    instead of 12.2-13.0 s with those 2 + 2 + 2 (same 9,801 boxes; 2026-12-07). Refutations of
    that pair at eps 0.0644 / 0.0642 / 0.0638 (a gradient attack from 20,000 starts found 0.06444)
    took 25.5 / 20.5 / 14.2 s instead of 29.2 / 25.9 / 17.1 s, the counterexample found at the
    same box in the first two; ``max_open``: open boxes a
    search keeps (in-process, and in each worker's unit) before it splits its deepest boxes
    first instead of those of largest bound, until it is back under half of that. The boxes that
    close are the same in either order (a box's outcome depends only on its key and its parent),
    so a proof closes the same tree; deep boxes close soonest, so the frontier, and the memory
    (~6 KB of stored layer bounds a box on the 5-input student pair, see
    :func:`_stored_layers`), stays bounded. Best first otherwise,
    because the bound reported at a time limit falls fastest that way.
    """

    milp_unstable: Optional[int] = None
    milp_time: float = 5.0
    samples: int = 16
    ascent_steps: int = 6
    batch: int = 8
    seed: int = 0
    alpha_iterations: int = 0
    aligned: str = "auto"
    blas_threads: Optional[int] = 1
    split: str = "bound"
    vectorize: bool = True
    vector_batch: int = 256
    deep_search: Optional[int] = 2
    max_open: int = 50_000


@dataclass(frozen=True, eq=False)
class BoxOutcome:
    """What :func:`evaluate_box` found on one box."""

    key: int
    lower: np.ndarray
    upper: np.ndarray
    bound: float
    best: float
    best_point: Optional[np.ndarray]
    witness: Optional[np.ndarray]
    closed: bool
    split: int
    num_milps: int = 0
    milp_tried: bool = False
    notes: tuple = ()
    interrupted: bool = False  #: Ctrl-C stopped the leaf MILP (the bound is the one before it)
    #: the difference network's layer bounds here (sound on the children; an open box in a search
    #: keeps them as float32 rounded outwards, see _stored_layers)
    layers: Optional[tuple] = None
    slopes: Optional[dict] = None  #: best alpha-CROWN slopes per signed row (warm start of the children)
    #: the property's bound on the two halves along ``split`` from this box's linear functions
    #: (:func:`_child_bounds`; vectorised boxes that stay open), else None
    child_bounds: Optional[tuple] = None


@dataclass(frozen=True, eq=False)
class BabResult:
    """Outcome of :func:`branch_and_bound`: ``lower`` is attained at ``best_point`` (float64),
    ``upper`` proven over the whole domain; ``witness`` set iff the property is refuted."""

    status: Status
    lower: float
    upper: float
    witness: Optional[np.ndarray]
    best_point: Optional[np.ndarray]
    boxes_closed: int
    boxes_open: int
    largest_open: Optional[tuple]
    num_milps: int
    seconds: float
    notes: tuple = field(default_factory=tuple)
    peak_open: int = 0  #: the most boxes one search (in-process, or a worker's unit) held open at once

    def to_dict(self) -> dict:
        return {"status": str(self.status), "boxes_closed": self.boxes_closed, "boxes_open": self.boxes_open,
                "largest_open": None if self.largest_open is None else [v.tolist() for v in self.largest_open],
                "num_milps": self.num_milps, "seconds": self.seconds, "peak_open": self.peak_open}


# ---------------------------------------------------------------------------- one box
#: points a forward pass of the search takes at once: the activations stay in cache (1,088 points
#: through the two nets of the 5-input student pair: 5.9 ms in one piece, 2.7 ms in blocks of 512)
MEASURE_ROWS = 512


def _measure(pair: DiffPair, prop, X: np.ndarray) -> np.ndarray:
    """The property's float64 measure at the points X, in blocks of :data:`MEASURE_ROWS` points."""
    if len(X) <= MEASURE_ROWS:
        return prop.measure(pair.net_a.forward(X), pair.net_b.forward(X))
    return np.concatenate([_measure(pair, prop, X[s:s + MEASURE_ROWS]) for s in range(0, len(X), MEASURE_ROWS)])


def _forward_error(net, x: np.ndarray) -> float:
    """A bound on ``max_k |fl(f_k(x)) - f_k(x)|``, the rounding of a float64 forward pass at x:
    per layer ``e <- |W| e + gamma_{n+1} (|W| |h| + |b|)`` (Higham, Thm 3.5; any summation
    order or FMA), doubled for the rounding of this sum; ReLU is 1-Lipschitz and exact."""
    from mipnet.bounds import gamma

    h, e = np.asarray(x, dtype=np.float64), np.zeros(np.size(x))
    for i, (W, b) in enumerate(net.layers):
        aW = np.abs(W)
        y = W @ h + b
        e = 2.0 * (aW @ e + gamma(W.shape[1] + 1) * (aW @ np.abs(h) + np.abs(b)))
        h = np.maximum(y, 0.0) if i < len(net.layers) - 1 else y
    return float(np.max(e, initial=0.0))


def _refutes(pair: DiffPair, prop, x: np.ndarray, v: float) -> bool:
    """True if the float64 measure ``v`` at x exceeds the threshold by more than the rounding of
    the two forward passes can explain (twice each net's bound: a margin combines differences
    of two outputs), so that x is a counterexample of the real-valued networks too -- not a tie
    (e.g. two equal top logits) that rounding happened to break."""
    if not v > prop.threshold:
        return False
    return v - prop.threshold > 2.0 * (_forward_error(pair.net_a, x) + _forward_error(pair.net_b, x))


def _depth(key: int) -> int:
    """The depth of box ``key`` in the tree (root 0; children of ``k``: ``2k + 1``, ``2k + 2``)."""
    return (key + 1).bit_length() - 1


def _search_options(opts: BabOptions, key: int, n: int) -> BabOptions:
    """The search budget of box ``key`` (see ``BabOptions.deep_search``)."""
    if opts.deep_search is None or _depth(key) < opts.deep_search * n:
        return opts
    return _light_search(opts)


@functools.lru_cache(maxsize=16)
def _light_search(opts: BabOptions) -> BabOptions:
    """``opts`` with the light search of deep boxes (made once per options, not once per box):
    no random points and no ascent step, only the box's centre (and, in :func:`_search`, the
    gradient there, for ``split="grad"``)."""
    return dataclasses.replace(opts, samples=0, ascent_steps=0)


def _search(pair: DiffPair, prop, domain: Optional[Domain], lo, hi, opts: BabOptions, key: int):
    """Best verified point of the box: samples, then signed finite-difference ascent."""
    n = lo.size
    rng = np.random.default_rng([opts.seed, key])
    width = hi - lo
    parts = [((lo + hi) / 2)[None, :]]
    if opts.samples:
        parts.append(rng.uniform(lo, hi, size=(opts.samples, n)))
        parts.append(np.where(rng.integers(0, 2, size=(min(opts.samples, 2 ** min(n, 20)), n)).astype(bool), hi, lo))
    X = np.concatenate(parts)
    if domain is not None and not domain.is_box:
        X = X[in_domain(domain, X)]
    if not len(X):
        return -np.inf, None, np.zeros(n)
    v = _measure(pair, prop, X)
    j = int(np.argmax(v))
    x, best = X[j].copy(), float(v[j])
    grad = np.zeros(n)
    step = width / 4
    for it in range(opts.ascent_steps + 1):
        if it == opts.ascent_steps and it > 0:  # the last gradient would serve no step, nor the split
            break
        h = np.maximum(width * 1e-6, 1e-12)
        P = np.repeat(x[None, :], n, axis=0) + np.diag(np.where(x + h <= hi, h, -h))
        g = (_measure(pair, prop, P) - best) / np.where(x + h <= hi, h, -h)
        g[width <= 0] = 0.0  # a degenerate coordinate: no move, no split (its quotient is rounding noise)
        if it == 0:
            grad = g
        if it == opts.ascent_steps or not np.any(g):
            break
        y = np.clip(x + step * np.sign(g), lo, hi)
        if domain is not None and not domain.is_box and not in_domain(domain, y)[0]:
            break
        vy = float(_measure(pair, prop, y[None, :])[0])
        if vy > best:
            x, best = y, vy
        else:
            step = step / 2
    return best, x, grad


def _search_batch(pair: DiffPair, prop, L: np.ndarray, U: np.ndarray, opts: BabOptions, keys):
    """:func:`_search` on N boxes (no domain rows) at once: the same points (each box's own random
    stream) and the same ascent per box, each step one forward pass of both nets for all boxes.
    Returns ``(best (N,), x (N, n), grad (N, n))``."""
    N, n = L.shape
    W = U - L
    parts = [((L + U) / 2)[:, None, :]]
    if opts.samples:
        k = min(opts.samples, 2 ** min(n, 20))
        R = np.empty((N, opts.samples + k, n))
        for b, key in enumerate(keys):
            rng = np.random.default_rng([opts.seed, key])
            R[b, :opts.samples] = rng.uniform(L[b], U[b], size=(opts.samples, n))
            R[b, opts.samples:] = np.where(rng.integers(0, 2, size=(k, n)).astype(bool), U[b], L[b])
        parts.append(R)
    X = np.concatenate(parts, axis=1)
    v = _measure(pair, prop, X.reshape(-1, n)).reshape(N, -1)
    j = np.argmax(v, axis=1)
    rows = np.arange(N)
    x, best = X[rows, j].copy(), v[rows, j].copy()
    grad = np.zeros((N, n))
    step = W / 4
    live = np.ones(N, dtype=bool)
    eye = np.eye(n)
    for it in range(opts.ascent_steps + 1):
        idx = np.flatnonzero(live)
        if not idx.size or (it == opts.ascent_steps and it > 0):  # see _search: no step, no split left
            break
        xi = x[idx]
        h = np.maximum(W[idx] * 1e-6, 1e-12)
        hs = np.where(xi + h <= U[idx], h, -h)
        P = xi[:, None, :] + eye[None, :, :] * hs[:, None, :]
        g = (_measure(pair, prop, P.reshape(-1, n)).reshape(idx.size, n) - best[idx, None]) / hs
        g[W[idx] <= 0] = 0.0  # as in _search
        if it == 0:
            grad[idx] = g
        stop = ~np.any(g != 0, axis=1) if it < opts.ascent_steps else np.ones(idx.size, dtype=bool)
        live[idx[stop]] = False
        idx, g, xi = idx[~stop], g[~stop], xi[~stop]
        if not idx.size:
            break
        y = np.clip(xi + step[idx] * np.sign(g), L[idx], U[idx])
        vy = _measure(pair, prop, y)
        up = vy > best[idx]
        x[idx[up]], best[idx[up]] = y[up], vy[up]
        step[idx[~up]] = step[idx[~up]] / 2
    return best, x, grad


def _alpha_step(pair: DiffPair, prop, bb, lo, hi, opts: BabOptions, parent_slopes: Optional[dict]):
    """alpha-CROWN on the difference network over the box for the rows the property needs:
    ``(refined BoxBounds, slopes per signed row, input coefficients of the worst row)``."""
    from mipnet.bounds import AlphaOptions, alpha_spec_bounds

    rows = prop.bab_rows(bb)
    if not rows or bb.product_layers is None:
        return bb, None, None
    P = pair.product
    C = np.zeros((len(rows), P.output_dim))
    C[np.arange(len(rows)), [i for i, _ in rows]] = [float(sg) for _, sg in rows]
    hidden = bb.product_layers[:-1]
    init = None
    if parent_slopes:  # warm start: the parent's best slopes (NaN: CROWN's choice) per row
        init = [np.full((len(rows), lb.lower.size), np.nan) for lb in hidden]
        for r, key in enumerate(rows):
            got = parent_slopes.get(key)
            if got is not None:
                for j, a in enumerate(got):
                    init[j][r] = a
    lower, full, coef = alpha_spec_bounds(P, Domain(lo, hi), hidden, C, init=init,
                                          options=AlphaOptions(iterations=opts.alpha_iterations))
    bb2 = refine_rows(pair, bb, rows, lower)
    slopes = {key: [f[r] for f in full] for r, key in enumerate(rows)}
    worst = int(np.argmin(lower))  # the row whose bound -lower[r] is largest
    return bb2, slopes, coef[worst]


def _blas_limit(n: Optional[int]):
    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(n), user_api="blas")


def evaluate_box(pair: DiffPair, prop, lower, upper, opts: BabOptions, key: int, **kw) -> BoxOutcome:
    """:func:`_evaluate_box` with numpy's BLAS limited to ``opts.blas_threads`` threads."""
    with _blas_limit(opts.blas_threads):
        return _evaluate_box(pair, prop, lower, upper, opts, key, **kw)


def _evaluate_box(pair: DiffPair, prop, lower, upper, opts: BabOptions, key: int, *,
                  domain: Optional[Domain] = None, sensitivity: Optional[np.ndarray] = None,
                  time_limit: Optional[float] = None, parent_bound: float = np.inf,
                  parent_layers: Optional[tuple] = None, parent_slopes: Optional[dict] = None,
                  aligned: bool = True) -> BoxOutcome:
    """Bound, search and (on small boxes) solve the property on the box ``[lower, upper]``.

    Pure (no shared state): every argument is picklable, the result depends only on them.
    ``domain`` (optional): a non-box domain whose bounding box is split (points outside it are
    never witnesses). ``time_limit`` caps the leaf MILP. ``parent_layers``, ``parent_slopes``:
    the parent box's :attr:`BoxOutcome.layers` (intersected in: sound on a sub-box) and slopes
    (a warm start; any slopes in [0, 1] give a sound bound).

    Bounds, cheapest first: DeepPoly on the difference network and the aligned differential
    intervals (:func:`~mipnet.analyses.differential.box_bounds`); where they do not close the box
    and no counterexample is known, alpha-CROWN (Xu et al., ICLR 2021, arXiv:2011.13824) on the
    difference network with the property's rows as the specification
    (:func:`~mipnet.bounds.alpha_spec_bounds`); its final linear bound's input coefficients
    help choose the split (``width_i |a_i|``: how far the linear part of the worst row's bound
    drops when input i is halved, the input-split heuristic of Bunel et al., JMLR 2020), added to
    the relative width (see :class:`BabOptions`).
    """
    lo, hi = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    if _misses(domain, lo, hi):
        return BoxOutcome(key, lo, hi, -np.inf, -np.inf, None, None, True, 0, notes=())
    bb = box_bounds(pair, lo, hi, want_bounds=True, parent_layers=_used_layers(parent_layers), aligned=aligned)
    # bounds of the original nets (the aligned copy's error is inside); the parent's bound holds here too
    bound = min(prop.upper(bb), parent_bound)
    best, x, grad = _search(pair, prop, domain, lo, hi, _search_options(opts, key, lo.size), key)
    witness = x.copy() if x is not None and _refutes(pair, prop, x, best) else None
    closed = bound <= prop.proven
    slopes, coef = None, None
    if witness is None and not closed and (opts.alpha_iterations > 0 or opts.split == "bound"):
        bb, slopes, coef = _alpha_step(pair, prop, bb, lo, hi, opts, parent_slopes)
        bound = min(bound, prop.upper(bb))
        closed = bound <= prop.proven
    return _finish(pair, prop, lo, hi, opts, key, domain, sensitivity, time_limit, bb, bound, closed, best, x,
                   witness, grad, coef, slopes)


def _split_inputs(lo, hi, grad, sensitivity, coef, opts: BabOptions) -> np.ndarray:
    """The input each box (rows of ``lo``, ``hi``, ``grad``; ``coef``: rows of NaN where the box has
    none) is split along: the largest score, see ``BabOptions.split``. Row by row the same
    arithmetic, so one box or a chunk of them get the same splits."""
    width = hi - lo
    g = np.abs(grad)
    gmax = g.max(axis=1, keepdims=True)
    g = np.where(gmax > 0, g / np.where(gmax > 0, gmax, 1.0), g)
    score = width * (g + (0.0 if sensitivity is None else sensitivity))
    if opts.split == "bound":
        c = width * np.abs(coef)
        cmax = c.max(axis=1, keepdims=True)
        use = cmax > 0  # (NaN rows: no coefficients) the width first (BabOptions.split), the coefficients next
        wmax = width.max(axis=1, keepdims=True)
        score = np.where(use, width / np.where(use, wmax, 1.0) + 0.5 * c / np.where(use, cmax, 1.0), score)
    return np.argmax(np.where(width > 0, score + width * 1e-300, -1.0), axis=1)


_FROM_BB = object()


def _finish(pair: DiffPair, prop, lo, hi, opts: BabOptions, key: int, domain, sensitivity, time_limit, bb,
            bound: float, closed: bool, best: float, x, witness, grad, coef, slopes,
            split: Optional[int] = None, layers=_FROM_BB) -> BoxOutcome:
    """The end of a box's evaluation, shared by :func:`_evaluate_box` and :func:`_evaluate_batch`:
    the split input (``split``, if the caller chose it with :func:`_split_inputs` for many boxes),
    and the leaf MILP on a box with few unstable neurons. The outcome keeps ``layers`` (default:
    ``bb.product_layers``) for the children."""
    if split is None:
        c = np.full((1, lo.size), np.nan) if coef is None else np.asarray(coef, dtype=np.float64)[None, :]
        split = int(_split_inputs(lo[None, :], hi[None, :], np.asarray(grad)[None, :], sensitivity, c, opts)[0])
    milps, tried, notes, stopped = 0, False, [], False
    milp_unstable = opts.milp_unstable if opts.milp_unstable is not None else (48 if lo.size > 8 else 12)
    if (witness is None and not closed and milp_unstable > 0 and bb.unstable <= milp_unstable
            and (time_limit is None or time_limit > 0)):
        tried = True
        try:
            lower_m, upper_m, wit_m, milps = _leaf_milp(pair, prop, lo, hi, bb, domain, x, opts, time_limit, notes)
        except MipnetError as exc:  # a numerically awkward leaf: keep splitting it
            notes.append(f"leaf MILP failed: {exc}")
        except KeyboardInterrupt:
            milps, stopped = 1, True
        else:
            if wit_m is not None:
                v = float(_measure(pair, prop, wit_m[None, :])[0])
                if (_refutes(pair, prop, wit_m, v) and np.all(wit_m >= lo) and np.all(wit_m <= hi)
                        and (domain is None or in_domain(domain, wit_m)[0])):
                    witness, best, x = wit_m, v, wit_m
            if witness is None and upper_m < bound:
                bound = upper_m
                closed = bound <= prop.proven
    return BoxOutcome(key, lo, hi, float(bound), best, x, witness, bool(closed and witness is None), split, milps,
                      tried, tuple(notes), stopped, bb.product_layers if layers is _FROM_BB else layers, slopes)


def _batchable(pair: DiffPair, opts: BabOptions, domain, aligned: bool) -> bool:
    """Whether boxes may go through :func:`_evaluate_batch` (``opts.vectorize``; a box domain, no
    aligned intervals, no alpha-CROWN steps, both nets with hidden layers)."""
    from mipnet.analyses.differential import batch_eligible

    return (opts.vectorize and domain is None and not aligned and opts.alpha_iterations == 0
            and batch_eligible(pair))


def _evaluate_batch(pair: DiffPair, prop, opts: BabOptions, tasks) -> list:
    """:func:`_evaluate_box` on many boxes of one pair, property and options (a box domain, no
    aligned intervals, no alpha-CROWN steps; see :func:`_batchable`), with the bounds
    (:func:`~mipnet.analyses.differential.box_bounds_batch`) and the counterexample search
    (:func:`_search_batch`) vectorised over the boxes; the split input and the leaf MILP per
    box as in :func:`_evaluate_box` (the worst row's input coefficients come from the batched
    CROWN bound itself). Sound in the same way: the same bounds, widened the same way. One
    difference: the bounds come first, and a box they close gets no search (only its centre is
    evaluated; a point above ``threshold`` by less than the property's ``tol`` can then go
    unreported there, as the bound already proves ``<= threshold + tol``): in a proof about half
    of all boxes are such closed leaves, and the search's forward passes cost as much as the bounds."""
    from mipnet.analyses.differential import box_bounds_chunk

    out = []
    chunk = 64  # boxes per numpy call: the ragged matrices stay in cache
    for start in range(0, len(tasks), chunk):
        part = tasks[start:start + chunk]
        L = np.stack([np.asarray(a[2], dtype=np.float64) for a, _ in part])
        U = np.stack([np.asarray(a[3], dtype=np.float64) for a, _ in part])
        keys = [a[5] for a, _ in part]
        parents = [k.get("parent_layers") for _, k in part]
        bbs, Lu, Ll, M, sizes, lines = box_bounds_chunk(pair, L, U, None if any(p is None for p in parents)
                                                        else parents, rows=prop.box_rows(pair.m), lines=True)
        bounds = [min(prop.upper(bb), kw.get("parent_bound", np.inf)) for bb, (_, kw) in zip(bbs, part)]
        # the search only where the bound leaves the box open; a closed box: its centre
        X = (L + U) / 2
        best = _measure(pair, prop, X)
        grad = np.zeros_like(X)
        todo = np.flatnonzero(np.array(bounds) > prop.proven)
        light = np.array([_search_options(opts, keys[i], L.shape[1]) is not opts for i in todo], dtype=bool)
        # by depth alone; a light search is the centre, which every box has, plus the gradient there,
        # which only split="grad" reads (split="bound" takes the bound's coefficients)
        groups = [(todo[~light], opts)] + ([(todo[light], _light_search(opts))] if opts.split == "grad" else [])
        for group, o in groups:
            if group.size:
                best[group], X[group], grad[group] = _search_batch(pair, prop, L[group], U[group], o,
                                                                   [keys[i] for i in group])
        witnesses, COEF = [], np.full_like(L, np.nan)
        for b, bb in enumerate(bbs):
            x = X[b]
            witnesses.append(x.copy() if _refutes(pair, prop, x, float(best[b])) else None)
            if witnesses[-1] is None and not bounds[b] <= prop.proven and opts.split == "bound":
                rows = prop.bab_rows(bb)
                if rows:
                    lo_all, hi_all = bb.rows()
                    worst = max(rows, key=lambda r: -lo_all[r[0]] if r[1] > 0 else hi_all[r[0]])
                    COEF[b] = Ll[b, worst[0]] if worst[1] > 0 else Lu[b, worst[0]]
        sens = {id(kw.get("sensitivity")) for _, kw in part}
        splits = (_split_inputs(L, U, grad, part[0][1].get("sensitivity"), COEF, opts) if len(sens) == 1
                  else [None] * len(part))  # (one sensitivity per run: the common one)
        # the layer bounds of the boxes left open, as an open box keeps them (_stored_layers), converted
        # for the chunk at once (the leaf MILP computes its own bounds)
        S = _stored_rows(M)
        chunk_out = []
        for b, ((_, _, _, _, _, key), kw) in enumerate(part):
            coef = None if np.isnan(COEF[b, 0]) else COEF[b]
            closed = bounds[b] <= prop.proven
            keep = not closed and witnesses[b] is None
            o = _finish(pair, prop, L[b], U[b], opts, key, None, kw.get("sensitivity"), kw.get("time_limit"), bbs[b],
                        bounds[b], closed, float(best[b]), X[b], witnesses[b], grad[b], coef, None,
                        None if splits[b] is None else int(splits[b]),
                        layers=layer_views(S[b].copy(), sizes) if keep else None)
            chunk_out.append(o)
        _child_bounds(prop, pair, bbs, lines, chunk_out)
        out.extend(chunk_out)
    return out


def _child_bounds(prop, pair: DiffPair, bbs: list, lines, outs: list) -> None:
    """Set ``child_bounds`` of the open boxes among ``outs`` (their :class:`RowLines` ``lines``
    and bounds ``bbs``, chunk order): the property's bound on each half of the box along its
    split input, from the box's own linear functions concretised over the half (sound there: a
    half is a sub-box), intersected with the box's bounds. A half whose bound is already at most
    ``prop.proven`` closes without being evaluated (:meth:`_Search.round`): in the student pair's
    proof on [-0.3, 0.3]^5, 2,276 of the 9,793 boxes that closed (11.6 % of the boxes)."""
    idx = [b for b, o in enumerate(outs) if not o.closed and o.witness is None]
    if not idx:
        return
    # a half can close only if its rows can fall to the threshold: over a half, a row's bound is at
    # least the box's less |its coefficient of the split input| x half the input's width (both
    # sides; summed over the rows, so that this holds for a sum of rows too). Skipping a box
    # here only means its children are evaluated, as without these bounds.
    B = np.array(idx)
    D = np.array([outs[b].split for b in idx])
    half = np.array([(outs[b].upper[d] - outs[b].lower[d]) / 2 for b, d in zip(idx, D)])
    drop = np.maximum(np.abs(lines.Lu[B, :, D]), np.abs(lines.Ll[B, :, D])).sum(axis=1) * half
    reach = np.array([outs[b].bound for b in idx]) - drop <= prop.proven
    split = {b: _halves(outs[b]) for b, ok in zip(idx, reach) if ok}
    idx = [b for b, h in split.items() if h]  # (a box too small to split stays open as it is)
    if not idx:
        return
    halves = [h for b in idx for h in split[b]]
    rlo, rhi = lines.over(np.repeat(idx, 2), np.stack([h[0] for h in halves]), np.stack([h[1] for h in halves]))
    # every row's bounds on each half: the box's, the back-substituted rows tightened over the half
    rows = [bbs[b].rows() for b in idx]
    LO = np.repeat(np.stack([r[0] for r in rows]), 2, axis=0)
    HI = np.repeat(np.stack([r[1] for r in rows]), 2, axis=0)
    LO[:, lines.sel] = np.maximum(LO[:, lines.sel], rlo)
    HI[:, lines.sel] = np.minimum(HI[:, lines.sel], rhi)
    np.maximum(HI, LO, out=HI)
    for i, b in enumerate(idx):
        cb = [min(float(prop.upper(BoxBounds.from_rows(LO[r], HI[r], pair.m, bbs[b].unstable))), outs[b].bound)
              for r in (2 * i, 2 * i + 1)]
        object.__setattr__(outs[b], "child_bounds", (cb[0], cb[1]))


def _halves(o: BoxOutcome) -> tuple:
    """The two halves ``((lower, upper), (lower, upper))`` of box ``o`` along its split input, or
    () when its midpoint is not strictly inside (a box too small to split)."""
    d = o.split
    mid = o.lower[d] + (o.upper[d] - o.lower[d]) / 2
    if not (o.lower[d] < mid < o.upper[d]):
        return ()
    hi1, lo2 = o.upper.copy(), o.lower.copy()
    hi1[d], lo2[d] = mid, mid
    return (o.lower, hi1), (lo2, o.upper)


def _stored_rows(M: np.ndarray) -> np.ndarray:
    """The layer bounds of every row of ``M`` (laid out as :func:`layer_views` expects: lower
    bounds, then upper bounds) as :func:`_stored_layers` keeps them: float32, each bound moved one
    float32 step outwards where the cast rounded it inwards."""
    S = M.astype(np.float32)
    half = M.shape[1] // 2
    lo, hi = S[:, :half], S[:, half:]
    lo[...] = np.where(lo > M[:, :half], np.nextafter(lo, np.float32(-np.inf)), lo)
    hi[...] = np.where(hi < M[:, half:], np.nextafter(hi, np.float32(np.inf)), hi)
    return S


def _own_layers(o: BoxOutcome) -> BoxOutcome:
    """``o`` holding its own stored copy of its layer bounds if it stays open
    (:func:`_stored_layers`; the vectorised boxes come with theirs, :func:`_stored_rows`), none if
    not: its children will not need them."""
    if o.layers is None:
        return o
    never_split = o.closed or o.witness is not None  # its children will not need them
    object.__setattr__(o, "layers", None if never_split else _stored_layers(o.layers))
    return o


def _stored_layers(layers: tuple) -> tuple:
    """Layer bounds as an open box keeps them: float32 copies rounded outwards (sound, looser by at
    most one float32 ulp, ~6e-8 relative), half the memory of float64 (an open box of the 5-input
    student pair carries ~700 neurons' bounds: 11 KB in float64; a frontier holds up to
    ``max_open`` boxes per search). :func:`_used_layers` turns them back into float64 before they
    bound the children. Every path stores them so, in-process and on workers alike: the boxes
    closed do not depend on the executor. All layers are converted at once, into one buffer per
    box (:func:`layer_views`), which the children's batched bounds stack in one call."""
    if not layers or layers[0].lower.dtype == np.float32:
        return layers
    exact = np.concatenate([lb.lower for lb in layers] + [lb.upper for lb in layers])
    buf = _stored_rows(exact[None, :])[0].copy()  # a 1-D buffer of its own (see layer_buffer)
    return layer_views(buf, [lb.lower.size for lb in layers])


def _used_layers(layers: Optional[tuple]) -> Optional[tuple]:
    """Stored layer bounds (:func:`_stored_layers`) as the float64 bounds the children start from."""
    if layers is None:
        return None
    buf = layer_buffer(layers)
    if buf is not None:
        return layer_views(buf.astype(np.float64), [lb.lower.size for lb in layers])
    out = []
    for lb in layers:
        lo, hi = lb.lower.astype(np.float64), lb.upper.astype(np.float64)
        lo.setflags(write=False)
        hi.setflags(write=False)
        out.append(LayerBounds.trusted(lo, hi))
    return tuple(out)


def _sub_domain(domain: Optional[Domain], lo, hi) -> Domain:
    """The domain's part in the box ``[lo, hi]`` (its rows and its L1 ball kept)."""
    if domain is None or domain.is_box:
        return Domain(lo, hi)
    if isinstance(domain, L1BallDomain):
        return L1BallDomain(lo, hi, domain.A, domain.c, l1_center=domain.l1_center, l1_radius=domain.l1_radius)
    return Domain(lo, hi, domain.A, domain.c)


def _misses(domain: Optional[Domain], lo, hi) -> bool:
    """True if the box ``[lo, hi]`` provably misses the domain's L1 ball (the box is then empty of
    domain points and closed without bounds): the ball's centre is farther than its radius from
    the box in L1, with a relative margin for rounding."""
    if not isinstance(domain, L1BallDomain):
        return False
    c = domain.l1_center
    dist = float(np.sum(np.maximum(np.maximum(lo - c, c - hi), 0.0)))
    return dist > domain.l1_radius * (1.0 + 1e-9) + 1e-12 * float(np.sum(np.abs(c)) + 1.0)


def _leaf_milp(pair: DiffPair, prop, lo, hi, bb, domain, x, opts, time_limit, notes):
    """The property's MILP on the box, on the aligned nets when they exist (with differential rows)."""
    from mipnet.analyses.joint import GapProblem

    dom = _sub_domain(domain, lo, hi)
    if pair.aligned is not None and bb.bounds_a is not None:
        A, B = pair.aligned
        ba, bbb = bb.bounds_a, bb.bounds_b
    else:
        from mipnet.bounds import symbolic_bounds

        A, B = pair.net_a, pair.net_b
        ba, bbb = symbolic_bounds(A, dom), symbolic_bounds(B, dom)
    pts = np.atleast_2d(x) if x is not None else np.zeros((0, lo.size))
    problem = GapProblem.build(A, B, dom, bounds_a=ba, bounds_b=bbb, differential=A.widths == B.widths,
                               points=pts)
    limit = opts.milp_time if time_limit is None else min(opts.milp_time, time_limit)
    lower, upper, wit, n = prop.milp(problem, deadline_after(limit), notes)
    if A is pair.net_a:  # the original nets: no alignment error
        return lower, upper, wit, n
    if pair.align_err.size and np.any(pair.align_err):
        upper = prop.widen(upper, pair.align_err)
    return lower, upper, wit, n


# ---------------------------------------------------------------------------- the search
def _sensitivity(pair: DiffPair) -> np.ndarray:
    """``|W_L| ... |W_1|`` of the difference network's ``f - g`` rows, summed: a static score per input."""
    s = np.ones((1, pair.m))
    W_out = pair.product.layers[-1][0][:pair.m]
    s = s @ np.abs(W_out)
    for W, _ in reversed(pair.product.layers[:-1]):
        s = s @ np.abs(W)
    s = s.reshape(-1)
    tot = s.sum()
    return s / tot if tot > 0 else np.full(s.size, 1.0 / s.size)


def _use_aligned(pair: DiffPair, domain: Domain, opts: BabOptions) -> bool:
    """Whether the aligned differential intervals are worth their cost (``opts.aligned``): with
    ``"auto"``, iff at the root box they bound some gap ``f_k - g_k`` tighter than the difference
    network alone (a compressed or permuted copy: by orders of magnitude; an independently
    trained copy of the same shape: not at all)."""
    if pair.aligned is None or opts.aligned == "off":
        return False
    if opts.aligned == "on":
        return True
    plain = box_bounds(pair, domain.lower, domain.upper, aligned=False)
    both = box_bounds(pair, domain.lower, domain.upper)
    return bool(np.any(both.d_hi - both.d_lo < 0.9 * (plain.d_hi - plain.d_lo)))


def evaluate_boxes(tasks) -> list:
    """:func:`evaluate_box` on each ``(args, kwargs)`` of ``tasks``, in order (one work unit: the
    shared pair, property and options are pickled once per unit, not once per box). Where all
    tasks share the pair, property and options and :func:`_batchable` holds, the boxes are
    evaluated together (:func:`_evaluate_batch`, vectorised; the same outcomes up to rounding)."""
    if len(tasks) > 1:
        (pair, prop, _, _, opts, _), _ = tasks[0]
        same = all(a[0] is pair and a[1] is prop and a[4] is opts and k.get("domain") is None
                   and k.get("aligned", True) is False for a, k in tasks)
        if same and _batchable(pair, opts, None, False):
            with _blas_limit(opts.blas_threads):
                return _evaluate_batch(pair, prop, opts, tasks)
    return [evaluate_box(*a, **k) for a, k in tasks]


class OpenBoxes:
    """A sequence of open boxes (:class:`BoxOutcome`) that pickles as a few stacked arrays, one
    per field and layer, instead of some twelve small arrays per box: Dask sends every numpy
    array of a task or result as a frame of its own (and serialises the items of a list one by
    one, hence not a list subclass), and the frontiers that work units exchange hold thousands
    of boxes (measured: 1,273 boxes of a 300-ReLU pair, 15,277 frames, 0.6 s to serialise).

    Unpickled, the boxes stay in their stacked columns until something iterates them, and
    :meth:`select` and :meth:`order` work on the columns: the caller deals a returned frontier
    into units without making a Python object per box and stacking them again (which cost it
    ~1.6 s per minute of a 2-worker run at ~50,000 open boxes)."""

    __slots__ = ("_boxes", "_packed")

    def __init__(self, boxes=()):
        self._boxes = list(boxes)
        self._packed = None

    @classmethod
    def _of(cls, packed: tuple) -> "OpenBoxes":
        ob = cls.__new__(cls)
        ob._boxes, ob._packed = None, packed
        return ob

    @property
    def boxes(self) -> list:
        if self._boxes is None:
            self._boxes = _unpack_list(self._packed)
        return self._boxes

    def clear(self) -> None:
        self._boxes, self._packed = [], None

    def __len__(self) -> int:
        if self._boxes is None:
            kind, data = self._packed
            return len(data) if kind == "list" else int(data["key"].size)
        return len(self._boxes)

    def __iter__(self):
        return iter(self.boxes)

    def __getitem__(self, i):
        return self.boxes[i]

    def _columns(self) -> Optional[dict]:
        return self._packed[1] if self._boxes is None and self._packed[0] == "columns" else None

    def arrays(self, n: int) -> tuple:
        """``(keys, bounds, lower, upper)`` of the boxes as arrays (the stacked columns when packed;
        ``n``: the input dimension, for an empty group)."""
        c = self._columns()
        if c is not None:
            return c["key"], c["bound"], c["lower"], c["upper"]
        b = self.boxes
        if not b:
            return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((0, n)), np.zeros((0, n))
        return (np.array([o.key for o in b], dtype=np.int64), np.array([o.bound for o in b]),
                np.stack([o.lower for o in b]), np.stack([o.upper for o in b]))

    def order(self) -> np.ndarray:
        """Indices by decreasing bound, then increasing key."""
        c = self._columns()
        if c is not None:
            return np.lexsort((c["key"], -c["bound"]))
        b = self.boxes
        return np.array(sorted(range(len(b)), key=lambda i: (-b[i].bound, b[i].key)), dtype=np.int64)

    def select(self, idx) -> "OpenBoxes":
        """The boxes at positions ``idx``, as an OpenBoxes (stacked columns sliced as they are)."""
        idx = np.asarray(idx, dtype=np.int64)
        c = self._columns()
        if c is None:
            b = self.boxes
            return OpenBoxes(b[i] for i in idx)
        cols = {k: (v[idx] if isinstance(v, np.ndarray) else v) for k, v in c.items() if k != "layers"}
        cols["layers"] = None if c["layers"] is None else [(lo[idx], hi[idx]) for lo, hi in c["layers"]]
        return OpenBoxes._of(("columns", cols))

    def __reduce__(self):
        packed = self._packed if self._boxes is None else _pack_boxes(self._boxes)
        return OpenBoxes._of, (packed,)


def _pack_boxes(boxes, layers: bool = True) -> tuple:
    """``("columns", dict of stacked arrays)``, or ``("list", boxes)`` for boxes that do not stack
    (a witness, slopes, notes). ``layers=False`` packs the boxes without their layer bounds and
    slopes (what :func:`_without_layers` drops), without copying a box."""
    def plain():
        return "list", list(boxes) if layers else [_without_layers(o) for o in boxes]

    if not boxes or any(o.witness is not None or (layers and o.slopes is not None) or o.notes or o.interrupted
                        or not (0 <= o.key < 2 ** 62) for o in boxes):
        return plain()
    first = boxes[0].layers if layers else None
    shapes = None if first is None else [lb.lower.shape for lb in first]
    if layers and any((o.layers is None) != (first is None)
                      or (o.layers is not None and [lb.lower.shape for lb in o.layers] != shapes) for o in boxes):
        return plain()
    has_point = np.array([o.best_point is not None for o in boxes])
    n = boxes[0].lower.size
    points = np.full((len(boxes), n), np.nan)
    if has_point.any():
        points[has_point] = _rows([o.best_point for o in boxes if o.best_point is not None])
    cols = {"key": np.array([o.key for o in boxes], dtype=np.int64),
            "lower": _rows([o.lower for o in boxes]), "upper": _rows([o.upper for o in boxes]),
            "bound": np.array([o.bound for o in boxes]), "best": np.array([o.best for o in boxes]),
            "split": np.array([o.split for o in boxes], dtype=np.int64),
            "num_milps": np.array([o.num_milps for o in boxes], dtype=np.int64),
            "milp_tried": np.array([o.milp_tried for o in boxes]), "has_point": has_point, "points": points,
            "child_bounds": np.array([(np.nan, np.nan) if o.child_bounds is None else o.child_bounds for o in boxes],
                                     dtype=np.float64).reshape(len(boxes), 2),
            "layers": None if first is None else [(_rows([o.layers[k].lower for o in boxes]),
                                                  _rows([o.layers[k].upper for o in boxes]))
                                                 for k in range(len(first))]}
    return ("columns", cols)


def _rows(arrays: list) -> np.ndarray:
    """Equal-length 1-D arrays as the rows of a matrix (``np.stack``'s result, 3-4x faster on
    tens of thousands of short rows)."""
    return np.concatenate(arrays).reshape(len(arrays), -1)


def _unpack_list(packed: tuple) -> list:
    kind, data = packed
    if kind == "list":
        return list(data)
    c = data
    layers = c["layers"]
    for a in [c["lower"], c["upper"], c["points"]] + [x for pair in (layers or ()) for x in pair]:
        a.setflags(write=False)
    out = []
    cb = c["child_bounds"]
    for j in range(c["key"].size):
        lay = None if layers is None else tuple(LayerBounds.trusted(lo[j], hi[j]) for lo, hi in layers)
        out.append(BoxOutcome(int(c["key"][j]), c["lower"][j], c["upper"][j], float(c["bound"][j]),
                              float(c["best"][j]), c["points"][j] if c["has_point"][j] else None, None, False,
                              int(c["split"][j]), int(c["num_milps"][j]), bool(c["milp_tried"][j]), layers=lay,
                              child_bounds=None if np.isnan(cb[j, 0]) else (float(cb[j, 0]), float(cb[j, 1]))))
    return out


class _Search:
    """The state of one best-first input branch and bound: the open boxes (a heap by bound),
    what closed, the best point and the witness. The client runs one, and so does every
    :func:`subtree_unit` on a worker (from the boxes it was sent).

    A box's key fixes its random stream; the children of box ``k`` are ``2k + 1`` and ``2k + 2``,
    so every box has the same key (and outcome) whoever evaluates it.
    """

    def __init__(self, pair: DiffPair, prop, opts: BabOptions, common: dict, round_size: int):
        self.pair, self.prop, self.opts, self.common, self.round_size = pair, prop, opts, common, round_size
        self.heap: list = []
        self.closed, self.closed_max = 0, -np.inf
        self.best, self.best_point, self.witness = -np.inf, None, None
        self.num_milps, self.evaluated = 0, 0
        self.notes: list = []
        self.status = None
        self.pending: list = []  # boxes popped whose children are not absorbed yet
        self.deep_first = False  # the frontier outgrew opts.max_open: deepest boxes first
        # open boxes set aside when a distributed run ends (OpenBoxes groups as they came back:
        # they are only counted and measured, not split, so they stay in their stacked columns)
        self.parked: list = []
        self.peak_open = 0

    def running(self) -> bool:
        return bool(self.heap) and self.witness is None and self.status is None

    def push(self, o: BoxOutcome) -> None:
        heapq.heappush(self.heap, (self._priority(o), o.key, o))

    def _offer(self, best: float, best_point, witness) -> None:
        """Keep the larger best point, and the witness of larger measure."""
        if best > self.best:
            self.best, self.best_point = best, best_point
        if witness is not None:
            value = lambda x: float(_measure(self.pair, self.prop, x[None, :])[0])  # noqa: E731
            if self.witness is None or value(witness) > value(self.witness):
                self.witness = witness

    def absorb(self, outs) -> None:
        for o in outs:
            self.evaluated += 1
            if o.interrupted:
                self.status = Status.INTERRUPTED
            self.num_milps += o.num_milps
            self.notes.extend(o.notes)
            self._offer(o.best, o.best_point, o.witness)
            if o.closed:
                self.closed += 1
                self.closed_max = max(self.closed_max, o.bound)
            else:
                self.push(_own_layers(o))
        self.peak_open = max(self.peak_open, len(self.heap))

    def merge(self, v: dict) -> None:
        """Add what a :func:`subtree_unit` found (its open boxes excepted: the caller places them)."""
        self.closed += v["closed"]
        self.closed_max = max(self.closed_max, v["closed_max"])
        self.evaluated += v["evaluated"]
        self.num_milps += v["num_milps"]
        self.peak_open = max(self.peak_open, v["peak_open"])
        self.notes.extend(v["notes"])
        self._offer(v["best"], v["best_point"], v["witness"])
        if v["interrupted"]:
            self.status = Status.INTERRUPTED
        elif v["stuck"] and self.status is None:
            self.status = Status.INCOMPLETE

    def _pop(self) -> list:
        """The boxes to split this round: those of largest bound, or, while the frontier is over
        ``max_open`` (down to half of it), the deepest (the largest keys: box ``k``'s children are
        ``2k + 1`` and ``2k + 2``). The heap is re-ordered when the mode changes."""
        cap = max(int(self.opts.max_open), 2 * self.round_size)
        deep = len(self.heap) > cap or (self.deep_first and len(self.heap) > cap // 2)
        if deep != self.deep_first:
            self.deep_first = deep
            self.heap = [(self._priority(h[2]), h[1], h[2]) for h in self.heap]
            heapq.heapify(self.heap)
        return [heapq.heappop(self.heap)[2] for _ in range(min(self.round_size, len(self.heap)))]

    def _priority(self, o: BoxOutcome):
        return -o.key if self.deep_first else -o.bound

    def open_bound(self) -> float:
        """The largest bound of an open box (-inf when none is open)."""
        parked = max((float(g.arrays(0)[1].max()) for g in self.parked if len(g)), default=-np.inf)
        if not self.heap:
            return parked
        return max(parked, max(h[2].bound for h in self.heap) if self.deep_first else -self.heap[0][0])

    def open_count(self) -> int:
        return len(self.heap) + sum(len(g) for g in self.parked)

    def largest_open(self, n: int) -> Optional[tuple]:
        """The open box of largest volume (the smallest key among equals), vectorised: ~70,000 are
        open at a time limit of a minute on the 5-input student pair."""
        groups = [OpenBoxes(h[2] for h in self.heap)] + [g for g in self.parked if len(g)]
        cols = [g.arrays(n) for g in groups]
        K = np.concatenate([c[0] for c in cols])
        if not K.size:
            return None
        L, U = np.concatenate([c[2] for c in cols]), np.concatenate([c[3] for c in cols])
        vol = np.prod(np.maximum(U - L, 0.0), axis=1)
        top = np.flatnonzero(vol == vol.max())
        i = top[np.argmin(K[top])]
        return L[i].copy(), U[i].copy()

    def round(self, deadline: Optional[float]) -> None:
        """Split the ``round_size`` open boxes of largest bound and evaluate their children here."""
        popped = self._pop()
        self.pending = popped
        tasks, stuck, closed_now = [], [], []
        for o in popped:
            halves = _halves(o)
            if not halves:
                stuck.append(o)
                continue
            for j, (lo_c, hi_c) in enumerate(halves):
                key = 2 * o.key + 1 + j
                bound = o.bound if o.child_bounds is None else min(o.bound, o.child_bounds[j])
                if bound <= self.prop.proven:  # the parent's linear functions already close this half
                    closed_now.append(BoxOutcome(key, lo_c, hi_c, float(bound), -np.inf, None, None, True, o.split))
                    continue
                # (as stored: a box turns them into float64, the vectorised boxes once per chunk)
                tasks.append(((self.pair, self.prop, lo_c, hi_c, self.opts, key),
                              dict(self.common, time_limit=remaining(deadline), parent_bound=bound,
                                   parent_layers=o.layers, parent_slopes=o.slopes)))
        for o in stuck:
            self.push(o)
        if not tasks and not closed_now:
            self.status = Status.INCOMPLETE
            self.notes.append("boxes too small to split remain open")
            self.pending = []
            return
        outs = evaluate_boxes(tasks) if tasks else []
        self.pending = []
        self.absorb(closed_now + outs)

    def reopen_pending(self) -> None:
        """After Ctrl-C inside a round: the popped boxes' children were not absorbed, they stay open."""
        for o in self.pending:
            self.push(o)
        self.pending = []

    def summary(self, finished: bool) -> dict:
        return {"closed": self.closed, "closed_max": self.closed_max, "evaluated": self.evaluated,
                "num_milps": self.num_milps, "notes": tuple(dict.fromkeys(self.notes)), "best": self.best,
                "best_point": self.best_point, "witness": self.witness,
                "interrupted": self.status == Status.INTERRUPTED, "finished": finished,
                "stuck": self.status == Status.INCOMPLETE, "peak_open": self.peak_open,
                "open": OpenBoxes(h[2] for h in self.heap)}


#: seconds a :func:`subtree_unit` works before it returns its open boxes to be dealt out again
#: (executors that cannot signal an idle worker: a process or thread pool)
SLICE = 2.0
#: on Dask, where an idle worker is signalled (:func:`_distribute`): the least seconds a unit
#: works before it gives its open boxes up to idle workers; elsewhere, the most that a slice
#: doubles to while no worker waits
SLICE_MIN, SLICE_MAX = 0.25, 30.0
#: on Dask, the most seconds a unit works without being asked (it reports its progress meanwhile).
#: Every return ships the unit's whole frontier to the caller and out again: with 30 s (before
#: 2026-12-07 14:15) the two workers of the student pair's proof on [-1,1]^5 swapped ~25,000 boxes
#: every 30 s, and the proof took 305.1 s; 226.7 s with 600 s (one unit per open box to start),
#: 250.4 s with one unit per worker to start, which a time limit needs (see _distribute)
SLICE_MAX_ASKED = 600.0


def _hunger(name: Optional[str]):
    """The Dask event ``name`` (set while some worker has nothing to run), or None."""
    if name is None:
        return None
    from distributed import Event

    return Event(name)


def subtree_unit(task, deadline):
    """A work unit of the distributed branch and bound (:func:`mipnet.parallel.run_units`).

    ``task = (pair, prop, opts, common, roots, round_size, slice_s[, hunger])``: the same
    best-first search as in-process, from the open boxes ``roots``, for at most ``slice_s``
    seconds (and never past the run's wall-clock ``deadline``). With ``hunger`` (the name of a
    Dask event the caller sets while a worker idles) the unit works until its boxes are done or
    ``SLICE_MAX_ASKED`` seconds, and once ``slice_s`` seconds have passed it stops as soon as the
    event is set: the frontier then travels only when another worker needs a share of it. It
    reports its boxes closed and open to the run's progress bar after each round. Returns
    ``(finished, summary)``; the summary's ``"open"`` boxes are what is left (re-dealt by the
    caller: work stealing by re-splitting).
    """
    pair, prop, opts, common, roots, round_size, slice_s = task[:7]
    if deadline is not None and deadline - time.time() < UNTOUCHED_S + UNTOUCHED_PER_BOX * len(roots):
        # started at (or just before) the run's end: no round would fit after taking the boxes
        # in, and the caller still holds them (nothing to send back)
        return False, {**_Search(pair, prop, opts, common, round_size).summary(False), "open": OpenBoxes(),
                       "final": True, "untouched": True}
    from mipnet.parallel import report_progress

    hunger = _hunger(task[7] if len(task) > 7 else None)
    now = time.perf_counter()
    end = now + (SLICE_MAX_ASKED if hunger is not None else slice_s)
    # the run's end, and the seconds that packing the open boxes takes when the unit stops there
    run_end = now + (deadline - time.time()) if deadline is not None else np.inf
    end = min(end, run_end)
    s = _Search(pair, prop, opts, common, round_size)
    for o in roots:
        s.push(o)

    def packing():  # (without a deadline run_end is inf, and the final check below is not made)
        return FINAL_PACK_PER_BOX * len(s.heap)

    last = 0.0  # the last round's seconds: a round that would end past ``end`` is not started
    try:
        while s.running() and time.perf_counter() + last < min(end, run_end - packing()):
            t = time.perf_counter()
            s.round(end)
            last = time.perf_counter() - t
            report_progress(closed=s.closed, open=len(s.heap))
            if hunger is not None and t + last - now >= slice_s and s.running() and hunger.is_set():
                break
    except KeyboardInterrupt:  # in-process executors: Ctrl-C reaches the unit
        s.reopen_pending()
        s.status = Status.INTERRUPTED
    finished = not s.heap or s.witness is not None
    out = s.summary(finished)
    # the run is over (no round fits before the deadline): the boxes travel without the layer
    # bounds their children would have used (~15 KB a box on a 300-ReLU pair: 18,000 boxes with
    # them took 6 s to reach the caller) and are not dealt out again
    out["final"] = deadline is not None and time.time() + max(last, 0.5) + packing() >= deadline
    if out["final"]:  # packed here, from the boxes as they are (a copy of each cost ~1.3 s at 48,000)
        out["open"] = OpenBoxes._of(_pack_boxes(out["open"].boxes, layers=False))
    return finished, out


#: seconds per open box to pack a unit's frontier at the run's end (measured 0.45-0.48 s for
#: 44,000-46,000 boxes of the student pair): the last round leaves that much time before the deadline
FINAL_PACK_PER_BOX = 1e-5

#: a :func:`subtree_unit` that starts with less time left than these (seconds, and seconds per box
#: it was sent: taking ~18,000 boxes in took 0.8 s on the student pair) returns its boxes untouched
UNTOUCHED_S, UNTOUCHED_PER_BOX = 0.25, 5e-5


def _without_layers(o: BoxOutcome) -> BoxOutcome:
    """``o`` without its layer bounds and slopes (a field copy: ``dataclasses.replace`` re-runs
    ``__init__`` and costs ten times as much on 20,000 boxes)."""
    c = copy.copy(o)
    object.__setattr__(c, "layers", None)
    object.__setattr__(c, "slopes", None)
    return c


def _deal(boxes: OpenBoxes, n: int) -> list:
    """Open boxes dealt round-robin by bound (largest first) into at most ``n`` groups (OpenBoxes,
    cut from the stacked columns where the boxes are still in them)."""
    order = boxes.order()
    n = max(1, min(n, len(order)))
    return [boxes.select(order[i::n]) for i in range(n)]


def _distribute(s: _Search, executor, deadline: Optional[float], round_size: int, progress: bool) -> None:
    """Run the open boxes of ``s`` as :func:`subtree_unit` units on ``executor`` until none is left,
    a witness turns up or the time runs out; merge everything into ``s``, the boxes still open
    included."""
    from mipnet.parallel import is_dask_client, run_units, workers_of

    boxes = OpenBoxes(h[2] for h in s.heap)
    s.heap = []
    # on Dask, units work on until a worker idles (an event they poll after each round); then
    # the frontier is dealt out again. Elsewhere they return it every SLICE seconds.
    hunger = name = None
    if is_dask_client(executor):
        from distributed import Event

        name = f"mipnet-bab-hungry-{uuid.uuid4().hex}"
        hunger = Event(name, client=executor)

    # what is open and in no running unit's hands is open when the run ends: the roots of the units
    # not returned, and the boxes left by units whose boxes were not dealt out again (id -> OpenBoxes)
    outstanding: dict = {}

    def unit(roots: OpenBoxes, slice_s=SLICE if hunger is None else SLICE_MIN):
        outstanding[id(roots)] = roots
        return (s.pair, s.prop, s.opts, s.common, roots, round_size, slice_s, name)

    def consume(task, value) -> Optional[OpenBoxes]:
        """Merge a returned unit into ``s`` (once; None the second time): its roots are no longer
        outstanding, and its open boxes are returned. The run's records keep every unit and value:
        they are emptied of their boxes here (kept, they held every frontier ever exchanged: 8.5 GB
        in 4 minutes of a proof on 2 workers)."""
        if value.get("merged"):
            return None
        value["merged"] = True
        if value.get("untouched"):  # its roots stay outstanding, as the caller holds them
            return OpenBoxes()
        s.merge(value)
        outstanding.pop(id(task[4]), None)
        task[4].clear()
        left = value["open"]
        value["open"] = OpenBoxes()
        return left

    def follow(task, value, idle):
        left = consume(task, value)
        if left is None:
            return []
        if value["witness"] is not None or value["stuck"] or value["final"] or not len(left):
            units = []  # (stuck: what it left open are boxes too small to split; final: the run's end)
            if len(left):
                outstanding[id(left)] = left
        else:  # one unit per worker that would otherwise wait: smaller pieces only cost (a unit's
            # first rounds, from few roots, vectorise badly; every unit ships its boxes twice)
            groups = _deal(left, max(1, idle))
            # without the event, a unit that nobody waited for gets twice the time (its frontier
            # travels half as often); a unit dealt out to idle workers starts again from SLICE
            slice_s = task[6] if hunger is not None else SLICE if len(groups) > 1 else min(2 * task[6], SLICE_MAX)
            units = [unit(g, slice_s) for g in groups]
        if hunger is not None:  # a worker is left without a unit: ask the running ones to share
            (hunger.set if len(units) < idle else hunger.clear)()
        return units

    def stop(runs):
        return any(r.value["witness"] is not None or r.value["interrupted"] for r in runs)

    def describe(runs):
        closed = s.closed + sum(r.value["closed"] for r in runs if not r.value.get("merged"))
        return f"{closed} boxes closed"

    time_limit = None if deadline is None else max(0.0, deadline - time.perf_counter())
    try:
        # on Dask one unit per worker, which works until a worker idles (then it shares): a unit
        # queued behind a running one would wait up to SLICE_MAX_ASKED, and at a time limit its
        # untouched boxes would be the bound; elsewhere one unit per open box (the caller grew the
        # tree to at least two a worker): a worker whose unit ends takes a queued one at once
        first = _deal(boxes, workers_of(executor) if hunger is not None else len(boxes))
        rep = run_units(subtree_unit, [unit(g) for g in first], executor,
                        time_limit=time_limit, stop=stop, follow=follow, progress=progress, desc="equivalence B&B",
                        describe=describe)
    finally:
        if hunger is not None:
            with contextlib.suppress(Exception):  # (a client already closed: nothing left to free)
                hunger.clear()
    for r in rep.runs:  # the units that returned after the deadline or the stop (not followed)
        left = consume(r.unit, r.value)
        if left is not None and len(left):
            outstanding[id(left)] = left
    # including the roots of units that never returned, or returned untouched (never split again:
    # counted and measured in their stacked columns)
    s.parked.extend(g for g in outstanding.values() if len(g))
    if rep.status == "interrupted":
        s.status = Status.INTERRUPTED
    elif s.open_count() and s.witness is None and s.status is None:  # units stop unfinished only at the deadline
        s.status = Status.TIME_LIMIT


def branch_and_bound(pair: DiffPair, prop, domain: Domain, *, time_limit: Optional[float] = None,
                     executor=None, options: Optional[BabOptions] = None, progress: bool = False,
                     max_boxes: Optional[int] = None) -> BabResult:
    """Decide ``prop`` for ``pair`` on ``domain`` by input splitting (see the module docstring).

    ``executor``: None (in-process), any ``concurrent.futures.Executor`` or a
    ``dask.distributed.Client`` (:func:`mipnet.parallel.as_executor`). A ``ProcessPoolExecutor`` should use the ``spawn`` (or
    ``forkserver``) start method: a child *forked* from a process that already ran a HiGHS MILP
    inherits HiGHS's thread pool state and can hang in its first MILP. ``max_boxes``: stop
    (status ``incomplete``) after that many boxes. On Ctrl-C returns the partial result (status
    ``interrupted``).
    """
    t0 = time.perf_counter()
    opts = options or BabOptions()
    deadline = deadline_after(time_limit, t0)
    dom_arg = None if domain.is_box else domain
    sens = _sensitivity(pair)
    sens = sens / sens.max() if sens.max() > 0 else sens
    use_aligned = _use_aligned(pair, domain, opts)
    # a vectorised box costs ~1 ms: rounds of vector_batch boxes make the numpy calls pay
    round_size = opts.vector_batch if _batchable(pair, opts, dom_arg, use_aligned) else opts.batch
    common = dict(domain=dom_arg, sensitivity=sens, aligned=use_aligned)
    s = _Search(pair, prop, opts, common, round_size)
    bar = None
    if progress and executor is None:
        from tqdm.auto import tqdm

        bar = tqdm(desc="equivalence B&B", unit="box", file=sys.stderr, leave=False)
    # until its outcome is absorbed, the root is an open box with no bound
    s.pending = [BoxOutcome(0, domain.lower, domain.upper, np.inf, -np.inf, None, None, False, 0)]
    try:
        outs = evaluate_boxes([((pair, prop, domain.lower, domain.upper, opts, 0),
                                dict(common, time_limit=remaining(deadline)))])
        s.pending = []
        s.absorb(outs)
        # with workers: grow the tree here until every worker can get some open boxes
        from mipnet.parallel import workers_of

        spread = 0 if executor is None else 2 * workers_of(executor)
        last = 0.0  # the last round's seconds: a round that would end past the deadline is not started
        while s.running() and (executor is None or len(s.heap) < spread):
            if deadline is not None and time.perf_counter() + last >= deadline:
                s.status = Status.TIME_LIMIT
                break
            if max_boxes is not None and s.evaluated >= max_boxes:
                s.status = Status.INCOMPLETE
                s.notes.append(f"stopped after {s.evaluated} boxes (max_boxes)")
                break
            t_round = time.perf_counter()
            s.round(deadline)
            last = time.perf_counter() - t_round
            if bar is not None:
                bar.update(s.evaluated - bar.n)
                bar.set_postfix(closed=s.closed, open=len(s.heap),
                                bound=f"{max(s.closed_max, s.open_bound()):.4g}")
        if executor is not None and s.running():
            _distribute(s, executor, deadline, round_size, progress)
    except KeyboardInterrupt:
        s.status = Status.INTERRUPTED
        s.reopen_pending()
    finally:
        if bar is not None:
            bar.close()
    witness, status, notes = s.witness, s.status, s.notes
    closed, closed_max, best, best_point, num_milps = s.closed, s.closed_max, s.best, s.best_point, s.num_milps
    upper = max(closed_max, s.open_bound())
    n_open = s.open_count()
    largest = s.largest_open(domain.lower.size) if n_open else None
    if witness is not None:
        status = Status.COUNTEREXAMPLE
    elif not n_open and status != Status.INTERRUPTED:
        status = Status.PROVEN
    elif status is None:
        status = Status.INCOMPLETE
    return BabResult(status, float(best), float(upper), witness, best_point, closed, n_open, largest, num_milps,
                     time.perf_counter() - t0, tuple(dict.fromkeys(notes)), s.peak_open)
