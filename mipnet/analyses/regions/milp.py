"""The MILP method (Serra, Tjandraatmadja and Ramalingam, ICML 2018): baseline and cross-check.

The MILP of the *normalised* network (:mod:`.problem`: inputs in the unit box, every
pre-activation in about [-1, 1]) plus an interior variable f with
``f <= h_i + (1 - z_i) F`` and ``f <= hbar_i + z_i F`` (``hbar_i = h_i - y_i``) for every
unstable neuron and ``f >= margin``; any solution is a pattern, excluded by the no-good cut
``sum_{z_i=0} z_i + sum_{z_i=1} (1 - z_i) >= 1``, and the MILP re-solved (HiGHS has no
solution pool) until it is infeasible: no pattern with margin ``f >= margin`` is left.
Because the network is normalised, the margin is relative: weights of 1e-6 or 1e6 and
boxes of any size give the same count.

A region whose margin is below ``margin`` (a sliver between near-duplicate neurons, or a
region on which an unstable neuron is identically zero, where f = 0) is invisible to the
MILP. So a *closure walk* crosses every facet of every found region (:class:`_Walk`) and
decides each neighbour not seen before with the certified Chebyshev LP of :mod:`.chebyshev`.
The walk runs as the MILP finds regions, and every region it certifies gets its no-good
cut at once: the MILP is re-solved once per group of regions the walk did not reach, not
once per region, and its final infeasibility is the same proof. A certified region that
the MILP could not have found (margin below ``margin``), or a neighbour that cannot be
decided, means the MILP's count is not complete (every missed group of regions borders a
found one, unless the MILP found none): such regions are counted (they are certified) and
the count is reported as not exact.

With every neuron stable (by the bounds) no MILP is solved: the domain is one region, whose
witness is the centre of its certified Chebyshev ball. A MILP that finds no pattern at all
(every region's margin below ``margin``, or a solver's false "infeasible") does not give a
count of 0: the region at the domain's centre is certified and walked from, and the count
is exact only if that region could not have been found by the MILP.
"""

from __future__ import annotations

import time

import numpy as np

from mipnet.core.errors import InvalidDomainError

from .chebyshev import Decision
from mipnet.core.numerics import snapped_pattern, snapped_preactivations

from .common import packed_keys
from .problem import Problem, reduced_bounds
from .sink import Sink, pattern_rows

__all__ = ["count_milp", "interior_milp", "MILP_OPTIONS"]

_INF = float("inf")

#: HiGHS options of the region MILPs. ``small_matrix_value`` at HiGHS's least allowed value: by
#: default HiGHS drops matrix entries of at most 1e-9, and in the normalised network a neuron
#: whose pre-activation varies over the domain by much less than its magnitude (tiny weights, a
#: tiny box) has all its input dependence in such entries; without them its pre-activation
#: column cannot meet its (tight) bounds and the MILP is infeasible.
MILP_OPTIONS = {
    "mip_feasibility_tolerance": 1e-9,
    "primal_feasibility_tolerance": 1e-9,
    "dual_feasibility_tolerance": 1e-9,
    "small_matrix_value": 1e-12,
}


def interior_milp(prob: Problem, bounds, margin: float, *, zero_off: bool = False):
    """The normalised network's MILP with Serra et al.'s interior variable f >= margin.

    Returns ``(model, nv, f_col, unstable z columns)``; the objective is ``max f``. With
    ``zero_off`` an unstable neuron of a hidden layer after the first with bias exactly 0 may be
    off at pre-activation 0 (no ``f <= hbar`` row): on a region where all its inputs are off it
    is identically zero, which is no boundary (see :func:`~mipnet.core.numerics.check_witnesses`),
    yet f would be 0 there. A solution's point must then pass the strict witness check.
    """
    from mipnet.milp.encoding import HighsModel

    model = HighsModel(prob.rdomain(), options=MILP_OPTIONS)
    nv = model.add_network(prob.rnet, bounds, output_bounds=False)
    h_parts, y_parts, z_parts, F_parts, off_parts = [], [], [], [], []
    for l, (lv, lb) in enumerate(zip(nv.layers, bounds.hidden)):
        u = lv.unstable
        h_parts.append(lv.h_cols[u])
        y_parts.append(lv.y_cols[u])
        z_parts.append(lv.z_cols[u])
        F_parts.append(np.maximum(lb.upper[u], -lb.lower[u]))
        free = np.zeros(h_parts[-1].size, dtype=bool)
        if zero_off and l > 0:
            free = np.asarray(prob.rnet.layers[l][1][u] == 0.0, dtype=bool).reshape(-1)
        off_parts.append(free)
    hc, yc, zc = (np.concatenate(p).astype(np.int64) for p in (h_parts, y_parts, z_parts))
    Fv = np.concatenate(F_parts)
    keep_off = ~np.concatenate(off_parts) if off_parts else np.zeros(0, dtype=bool)
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
        keep = np.concatenate([np.ones(k, dtype=bool), keep_off])
        M = M[np.flatnonzero(keep)]
        model.add_rows(np.full(M.shape[0], -_INF), np.concatenate([np.full(k, F), np.zeros(k)])[keep], M)
    model.set_objective(fcol, [1.0], maximize=True)
    model.set_options({"mip_max_improving_sols": 1})  # any pattern with f >= margin will do
    return model, nv, fcol, zc


def _no_good(model, zc: np.ndarray, zv: np.ndarray) -> None:
    """The no-good cut of one pattern: ``sum_{z=0} z - sum_{z=1} z >= 1 - |{z = 1}|``."""
    coef = np.where(zv, -1.0, 1.0)
    model.add_rows(np.array([1.0 - zv.sum()]), np.array([_INF]), coef[None, :], cols=zc)


def count_milp(prob: Problem, sink: Sink, *, deadline: float, margin: float, bounds, stats: dict,
               interleave: bool = True):
    """Returns ``(status, message)``; ``stats`` gets ``milp_solves`` and ``closure`` facts.

    The MILP loop and the closure walk (module docstring) run interleaved: each region the
    MILP finds is walked from at once, and every region the walk certifies gets its no-good
    cut too, so the MILP is re-solved once per group of regions the walk cannot reach rather
    than once per region. The final infeasible MILP is the same proof: no pattern with
    margin ``f >= margin`` is left. A region found by the walk counts as one the MILP would
    have missed (``closure_added``, status ``incomplete``) unless it has margin ``f >= margin``
    -- at its certified witness, or else by the MILP with its binaries fixed to the pattern --
    so the status is the one the MILP loop followed by the closure check would report.
    ``interleave=False`` runs the plain loop (Serra et al.: one MILP per region) and walks
    only after it (a cross-check of the loop itself).
    """
    bounds = reduced_bounds(prob, bounds, deadline)
    model, nv, fcol, zc = interior_milp(prob, bounds, margin)
    stats["milp_solves"] = 0
    unstable = nv.unstable_mask
    stats["unstable"] = unstable
    sink.keep_patterns = True
    if zc.size == 0:
        return _single_region(prob, sink, nv.pattern_from_solution(np.zeros(model.num_cols)))

    def solve(time_left: float):
        res = model.solve(time_limit=min(time_left, 1e9))
        stats["milp_solves"] += 1
        if not res.has_solution and res.status == "solution_limit":
            # HiGHS stopped at its first improving solution but does not report it as feasible
            # (a tolerance corner): re-solve without the limit
            model.set_options({"mip_max_improving_sols": 2 ** 30})
            res = model.solve(time_limit=max(deadline - time.perf_counter(), 1e-3) if deadline < _INF else None)
            stats["milp_solves"] += 1
            model.set_options({"mip_max_improving_sols": 1})
        return res

    zeros, ones = np.zeros(zc.size), np.ones(zc.size)
    invisible = 0

    def visible(q: np.ndarray, u: np.ndarray) -> bool:
        """Whether the MILP admits the pattern q with margin f >= margin (its cut not yet added)."""
        Y = np.concatenate(snapped_preactivations(prob.rnet, u[None, :], prob.tol), axis=1)[0]
        if float(np.min(np.where(q, Y, -Y)[unstable])) >= margin:
            return True  # (u, f = its margin, z = q) is a solution
        zq = q[unstable].astype(np.float64)
        model.change_col_bounds(zc, zq, zq)
        try:
            res = solve(max(deadline - time.perf_counter(), 1e-3))
        finally:
            model.change_col_bounds(zc, zeros, ones)
        return bool(res.has_solution)

    def found(q: np.ndarray, u: np.ndarray) -> None:
        nonlocal invisible
        if not visible(q, u):
            invisible += 1
        _no_good(model, zc, q[unstable])

    walk = _Walk(prob, sink, unstable, deadline, found)
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return "time_limit", "time limit reached: the count is a lower bound"
        res = solve(left)
        if res.status == "infeasible":
            break
        if not res.has_solution:
            if res.status == "time_limit":
                return "time_limit", "time limit reached inside a MILP solve: the count is a lower bound"
            # HiGHS gave up (numerical trouble): what was certified so far is a lower bound
            return "unverified", (f"a MILP re-solve ended with status {res.highs_status!r} and no solution: "
                                  "the count (certified regions) is a lower bound")
        vals = res.values
        pattern = nv.pattern_from_solution(vals)
        _no_good(model, zc, vals[zc] > 0.5)
        walk.seen.add(packed_keys(pattern)[0])
        before = sink.count
        sink.add(np.clip(vals[nv.input_cols], prob.lower, prob.upper), pattern)
        sink.flush()
        if sink.full:
            return "max_regions", "region budget reached: the count is a lower bound"
        if interleave and sink.count > before and not walk.explore(pattern):
            stats["closure_added"], stats["closure_ambiguous"] = invisible, walk.ambiguous
            return _stopped(sink)
        sink.tick()
    sink.flush()
    contradicted = False
    if sink.count == 0:
        # The MILP found no pattern at all, yet a domain with interior holds a region. Either every
        # region has a margin below milp_margin, or HiGHS's "infeasible" is numerical (tolerances,
        # or matrix entries below its small_matrix_value dropped from a badly scaled network). Walk
        # from the region of the domain's centre; its region decides which (``found``), and a
        # visible one means the MILP's proof does not hold.
        seed = _centre_region(prob, sink)
        if seed is not None:
            q, u = seed
            walk.seen.add(packed_keys(q[None, :])[0])
            before = invisible
            found(q, u)
            contradicted = invisible == before
            if not walk.explore(q):
                stats["closure_added"], stats["closure_ambiguous"] = invisible, walk.ambiguous
                return _stopped(sink)
    if not interleave and not sink.full:
        for p in list(sink.pattern_array()):
            if not walk.explore(p):
                stats["closure_added"], stats["closure_ambiguous"] = invisible, walk.ambiguous
                return _stopped(sink)
    stats["closure_added"], stats["closure_ambiguous"] = invisible, walk.ambiguous
    if contradicted:
        return "unverified", ("the MILP found no pattern with f >= milp_margin, but the region at the domain's "
                              "centre has one (numerical trouble in the solver): the count (regions reached from "
                              "there) is a lower bound")
    if sink.full:
        return "complete", "the MILP proved that no further pattern has f >= milp_margin"
    if invisible or walk.ambiguous:
        msg = (f"the MILP proved that no further pattern has f >= milp_margin, but {invisible} regions with a "
               f"smaller margin were found next to the MILP's regions and {walk.ambiguous} neighbours could not "
               "be decided: the count is a lower bound")
        return ("incomplete" if invisible else "unverified"), msg
    return "complete", "the MILP proved that no further pattern has f >= milp_margin; no neighbour of a " \
                       "found region is a missed region"


def _domain_decision(plp):
    """``(decision, centre)`` of the domain alone: its certified Chebyshev ball, without pattern rows."""
    lp = plp.lp
    lp.truncate(lp.base)
    d0, u0, _ = lp.decide(plp.floor())
    return d0, u0


def _centre_region(prob: Problem, sink: Sink):
    """``(pattern, u)`` of a certified region at the domain's Chebyshev centre, counted by the sink;
    None if the domain or that region has no certified interior."""
    plp = sink.pattern_lp
    d0, u0 = _domain_decision(plp)
    if d0 is not Decision.FULL:
        return None
    _, Q = snapped_pattern(prob.net, prob.lift(u0[None, :]), prob.tol)
    dec, u, _ = plp.decide(Q[0])
    if dec is not Decision.FULL:
        return None
    before = sink.count
    sink.add(u, Q[0])
    sink.flush()
    return (Q[0], u) if sink.count > before else None


def _single_region(prob: Problem, sink: Sink, pattern: np.ndarray):
    """Every neuron is stable on the domain (by the bounds): the domain is one region, ``pattern``.

    There is nothing for the MILP to decide, and it is not asked: its model holds the
    stable neurons' pre-activation columns bounded by their (tight) bounds, and HiGHS drops
    matrix entries below its ``small_matrix_value`` -- in a normalised network whose
    neuron varies over the domain by much less than its magnitude (tiny weights, a tiny
    box), those entries are the neuron's whole dependence on the input, and the model
    became infeasible. The region's witness is the centre of the certified Chebyshev ball
    of the pattern (the domain itself), checked by the sink's float64 forward pass.
    """
    plp = sink.pattern_lp
    dec, u, _ = plp.decide(pattern)
    if dec is Decision.FULL:
        sink.add(u, pattern)
        return "complete", "no unstable neuron: a single region"
    # the stable pattern has no certified interior: has the domain any?
    d0, _ = _domain_decision(plp)
    if d0 is Decision.EMPTY:
        raise InvalidDomainError("the domain has no interior (its Chebyshev radius is ~0)")
    if d0 is Decision.FULL:
        # the bounds call a neuron stable that is not (user-supplied bounds): count the region at the
        # domain's centre (certified by the sink), as a lower bound
        _centre_region(prob, sink)
    return "unverified", ("every neuron is stable by the bounds, but their pattern's region could not be "
                          "certified: the count (certified regions) is a lower bound")


def _stopped(sink: Sink):
    if sink.full:
        return "max_regions", "region budget reached: the count is a lower bound"
    return "time_limit", "time limit reached in the closure walk: the count is a lower bound"


class _Walk:
    """The closure walk across the facets of found regions (module docstring).

    For a found region and each unstable neuron whose hyperplane bounds it, the centre of
    the largest ball inside that facet (:meth:`.sink.PatternLP.facet`, leaving out the
    hyperplanes that coincide with it) is moved just across it; the float64 pattern there
    is the neighbour's (every neuron whose hyperplane coincides with the facet flips with
    it). A neighbour pattern not seen before is decided by the certified Chebyshev LP; a
    region is certified by the sink, handed to ``found(pattern, witness)`` and walked from.
    """

    def __init__(self, prob: Problem, sink: Sink, unstable: np.ndarray, deadline: float, found) -> None:
        self.prob, self.sink, self.unstable, self.deadline, self.found = prob, sink, unstable, deadline, found
        self.seen: set = set()
        self.ambiguous = 0

    def explore(self, start: np.ndarray) -> bool:
        """Walk from the region of ``start`` until no new neighbour is left; False on the deadline
        or a full sink."""
        prob, sink, plp = self.prob, self.sink, self.sink.pattern_lp
        fl = plp.floor()
        queue = [start]
        qi = 0
        while qi < len(queue):
            p = queue[qi]
            qi += 1
            rows = pattern_rows(prob, p)
            pts = []
            for k in np.flatnonzero(self.unstable[rows.neuron]):
                if time.perf_counter() > self.deadline:
                    return False
                u, t = plp.facet(rows, int(k))
                if u is None or not t > fl:
                    continue
                a, _ = rows.plane(int(k))
                # step to the other side of the facet by half the facet ball's radius
                pts.append(np.clip(u + rows.side[k] * a * (-0.5 * t), prob.lower, prob.upper))
            if not pts:
                continue
            _, Q = snapped_pattern(prob.net, prob.lift(np.array(pts)), prob.tol)
            for q, key in zip(Q, packed_keys(Q)):
                if key in self.seen:
                    continue
                self.seen.add(key)
                dec, u, _ = plp.decide(q)
                if dec is Decision.EMPTY:
                    continue
                if dec is Decision.AMBIGUOUS:
                    self.ambiguous += 1
                    continue
                before = sink.count
                sink.add(u, q)
                sink.flush()
                if sink.count > before:
                    self.found(q, u)
                    queue.append(q)
                    if sink.full:
                        return False
                else:
                    self.ambiguous += 1
        return True
