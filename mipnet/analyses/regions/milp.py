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
MILP. So, when the loop ends, a *closure check* walks across every facet of every found
region (:func:`closure_check`) and decides each neighbour the MILP did not find with the
certified Chebyshev LP of :mod:`.chebyshev`: a neighbour that is a region, or one that
cannot be decided, means the MILP's count is not complete (every missed group of regions
borders a found one, unless the MILP found none). Such regions are added (they are
certified) and the count is reported as not exact.
"""

from __future__ import annotations

import time

import numpy as np

from mipnet.core.errors import SolverError

from .chebyshev import Decision
from mipnet.core.numerics import snapped_pattern

from .common import packed_keys
from .problem import Problem, reduced_bounds
from .sink import Sink, pattern_rows

__all__ = ["count_milp", "interior_milp", "MILP_OPTIONS"]

_INF = float("inf")

MILP_OPTIONS = {
    "mip_feasibility_tolerance": 1e-9,
    "primal_feasibility_tolerance": 1e-9,
    "dual_feasibility_tolerance": 1e-9,
}


def interior_milp(prob: Problem, bounds, margin: float):
    """The normalised network's MILP with Serra et al.'s interior variable f >= margin.

    Returns ``(model, nv, f_col, unstable z columns)``; the objective is ``max f``.
    """
    from mipnet.milp.encoding import HighsModel

    model = HighsModel(prob.rdomain(), options=MILP_OPTIONS)
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


def count_milp(prob: Problem, sink: Sink, *, deadline: float, margin: float, bounds, stats: dict):
    """Returns ``(status, message)``; ``stats`` gets ``milp_solves`` and ``closure`` facts."""
    bounds = reduced_bounds(prob, bounds)
    model, nv, fcol, zc = interior_milp(prob, bounds, margin)
    stats["milp_solves"] = 0
    stats["unstable"] = nv.unstable_mask
    sink.keep_patterns = True
    if zc.size == 0:
        # no unstable neuron: one pattern, no binaries
        res = model.solve()
        stats["milp_solves"] += 1
        if not res.has_solution:
            raise SolverError(f"the MILP of a network without unstable neurons ended with {res.highs_status}")
        sink.add(np.clip(res.values[nv.input_cols], prob.lower, prob.upper), nv.pattern_from_solution(res.values))
        return "complete", "no unstable neuron: a single region"
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return "time_limit", "time limit reached: the count is a lower bound"
        res = model.solve(time_limit=min(left, 1e9))
        stats["milp_solves"] += 1
        if not res.has_solution and res.status == "solution_limit":
            # HiGHS stopped at its first improving solution but does not report it as feasible
            # (a tolerance corner): re-solve without the limit
            model.set_options({"mip_max_improving_sols": 2 ** 30})
            res = model.solve(time_limit=max(deadline - time.perf_counter(), 1e-3) if deadline < _INF else None)
            stats["milp_solves"] += 1
            model.set_options({"mip_max_improving_sols": 1})
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
        sink.add(np.clip(vals[nv.input_cols], prob.lower, prob.upper), pattern)
        zv = vals[zc] > 0.5
        # no-good cut: sum_{z=0} z - sum_{z=1} z >= 1 - |{z = 1}|
        coef = np.where(zv, -1.0, 1.0)
        model.add_rows(np.array([1.0 - zv.sum()]), np.array([_INF]), coef[None, :], cols=zc)
        if sink.full:
            return "max_regions", "region budget reached: the count is a lower bound"
        sink.tick()
    sink.flush()
    if sink.full:
        return "complete", "the MILP proved that no further pattern has f >= milp_margin"
    return closure_check(prob, sink, nv.unstable_mask, deadline=deadline, stats=stats)


def closure_check(prob: Problem, sink: Sink, unstable: np.ndarray, *, deadline: float, stats: dict):
    """Walk across every facet of every found region (module docstring).

    For a found region and each unstable neuron whose hyperplane bounds it, the centre of
    the largest ball inside that facet (:meth:`.sink.PatternLP.facet`, leaving out the
    hyperplanes that coincide with it) is moved just across it; the float64 pattern there
    is the neighbour's (every neuron whose hyperplane coincides with the facet flips with
    it). A neighbour pattern not found by the MILP is decided by the certified Chebyshev LP.
    """
    P = sink.pattern_array()
    seen = set(sink.keys)
    queue = list(P)
    added = ambiguous = 0
    plp = sink.pattern_lp
    fl = plp.floor()
    qi = 0
    while qi < len(queue):
        p = queue[qi]
        qi += 1
        rows = pattern_rows(prob, p)
        cand = np.flatnonzero(unstable[rows.neuron])
        pts = []
        for k in cand:
            if time.perf_counter() > deadline:
                stats["closure_added"], stats["closure_ambiguous"] = added, ambiguous
                return "time_limit", "time limit reached in the closure check: the count is a lower bound"
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
            if key in seen:
                continue
            seen.add(key)
            dec, u, _ = plp.decide(q)
            if dec is Decision.EMPTY:
                continue
            if dec is Decision.AMBIGUOUS:
                ambiguous += 1
                continue
            before = sink.count
            sink.add(u, q)
            sink.flush()
            if sink.count > before:
                added += 1
                queue.append(q)
            else:
                ambiguous += 1
    stats["closure_added"], stats["closure_ambiguous"] = added, ambiguous
    if added or ambiguous:
        msg = (f"the MILP proved that no further pattern has f >= milp_margin, but {added} regions with a "
               f"smaller margin were found next to the MILP's regions and {ambiguous} neighbours could not be "
               "decided: the count is a lower bound")
        return ("incomplete" if added else "unverified"), msg
    return "complete", "the MILP proved that no further pattern has f >= milp_margin; no neighbour of a " \
                       "found region is a missed region"
