"""The MILP optimum of a linear function of a network's output, with a checked witness."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Optional

import numpy as np

from mipnet.analyses.common import Scaling, deadline_after, solve_or_partial, witness_from_solution
from mipnet.bounds import lp_bounds
from mipnet.core.bounds import Bounds, LayerBounds
from mipnet.core.domain import as_domain
from mipnet.core.errors import InvalidArgumentError, InvalidDomainError, InvalidNetworkError, SolverError
from mipnet.core.network import Network
from mipnet.core.numerics import in_domain
from mipnet.milp.encoding import HighsModel
from mipnet.solver.highs import SolveResult, SolveStatus

__all__ = ["maximize_output"]


def maximize_output(
    net: Network,
    domain,
    c,
    *,
    bounds: Optional[Bounds] = None,
    time_limit: Optional[float] = None,
) -> tuple[SolveResult, Optional[np.ndarray]]:
    """Maximise ``c . f(x)`` over the domain with the MILP; return the result and the best input.

    Where the box or the network's values are far from 1 (weights of 1e8, a box of width 1e6),
    the MILP is built on an exact power-of-two rescaling of the network and the domain
    (:class:`~mipnet.analyses.common.Scaling`) so that HiGHS's absolute tolerances act as relative
    ones; the result's ``objective`` and ``dual_bound`` are in the original units (the dual bound
    widened by the solver's resolution in those units), its ``values`` are the MILP's columns.

    The input is checked by a float64 forward pass: raise :class:`SolverError`
    if the solver's objective and ``c . f(x)`` disagree by more than 1e-5 relative (to 1 in the
    scaled units, i.e. to the outputs' magnitude on the domain when rescaled), or if the
    solver calls the MILP infeasible although the domain has points.
    The bound is checked against 256 points of the domain (box vertices first): one above it
    by more than 1e-6 relative means HiGHS's MIP feasibility tolerance (1e-6) cut the optimum
    off (seen with LP bounds tight to 1e-15 at a box corner), and the MILP is solved again with
    tolerances of 1e-9; a bound still beaten raises :class:`SolverError`.
    The returned ``objective`` is ``c . f(x)`` of the returned input in float64 (the MILP's, or a
    checked point that beats it within the solver's tolerance), and ``dual_bound`` is never below it.
    ``time_limit`` (seconds) covers the LP bounds (computed when ``bounds`` is None; no LP starts
    after it) and the MILP; a MILP stopped by it reports ``time_limit`` with its dual bound.
    On Ctrl-C during the MILP the interrupted solve's result is returned (status
    ``interrupted``; its ``dual_bound`` still bounds the maximum) with its best input.
    """
    t0 = time.perf_counter()
    if not isinstance(net, Network):
        raise InvalidNetworkError(f"net must be a mipnet.Network, got {type(net).__name__}")
    if time_limit is not None and not (time_limit > 0):
        raise InvalidArgumentError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
    domain = as_domain(domain, net.input_dim)
    c = np.asarray(c, dtype=np.float64).reshape(-1)
    if c.size != net.output_dim:
        raise InvalidNetworkError(f"c has {c.size} entries, the network has {net.output_dim} outputs")
    folded = _folded(net, c)  # one output, c . f: its own scale, not that of the largest output
    sc = Scaling.for_problem([folded], domain, per_layer=True)
    net_s, dom_s = sc.net(folded), sc.domain(domain)
    deadline = deadline_after(time_limit, t0)
    bounds = (lp_bounds(net_s, dom_s, deadline=deadline) if bounds is None
              else sc.bounds(_folded_bounds(bounds, c)))
    model = HighsModel(dom_s)
    nv = model.add_network(net_s, bounds)
    model.set_objective(nv.output_cols, np.ones(1), maximize=True)
    res, stopped = solve_or_partial(model, time_limit=_left(deadline))
    res = _in_original_units(res, sc)
    unit = sc.output_scale  # tolerances are relative to 1 in the scaled units
    best, best_x = (-np.inf, None) if stopped else _best_sampled(net, domain, c)
    if _beaten(res, best, unit):
        model.set_options({"mip_feasibility_tolerance": 1e-9, "primal_feasibility_tolerance": 1e-9})
        res, stopped = solve_or_partial(model, time_limit=_left(deadline))
        res = _in_original_units(res, sc)
        if not stopped and _beaten(res, best, unit):
            raise SolverError(f"the MILP's bound {res.dual_bound} is below c . f(x) = {best} at a point of the domain, "
                              "also with tolerances of 1e-9")
    if res.status == SolveStatus.INFEASIBLE and np.isfinite(best):
        raise SolverError(f"HiGHS called the MILP infeasible, but the domain has points (c . f(x) = {best:.9g} at one)")
    x = None
    if res.has_solution:
        x = witness_from_solution(res.values, nv.input_cols, dom_s)
        if x is None:
            raise SolverError("the MILP's best input lies outside the domain")
        x = sc.to_input(x)
        val = float(c @ net.forward(x))
        if abs(val - res.objective) > 1e-5 * (unit + abs(val)):
            raise SolverError(
                f"MILP objective {res.objective} but the forward pass at its input gives {val}"
            )
    # the reported optimum is a value attained in float64; a sampled point that beats the MILP's
    # (within the solver's tolerance, else _beaten raised) replaces it, and the bound covers it
    if best_x is not None and (x is None or best > val):
        x, val = best_x, best
    if x is not None:
        db = res.dual_bound
        res = replace(res, objective=val, dual_bound=val if db is not None and np.isfinite(db) and db < val else db)
    return res, x


def _left(deadline: Optional[float]) -> Optional[float]:
    """Seconds left to ``deadline`` for a solve (a small positive floor: HiGHS takes no 0)."""
    return None if deadline is None else max(deadline - time.perf_counter(), 1e-3)


def _folded(net: Network, c: np.ndarray) -> Network:
    """The network ``x -> c . f(x)``: the output layer replaced by the one row ``c W_L``, ``c . b_L``."""
    W, b = net.layers[-1]
    return Network.from_layers(list(net.layers[:-1]) + [(c[None, :] @ W, np.array([c @ b]))])


def _folded_bounds(bounds: Bounds, c: np.ndarray) -> Bounds:
    """Given bounds with the output's replaced by their interval image under ``c``."""
    out = bounds.output
    lo = np.maximum(c, 0.0) @ out.lower + np.minimum(c, 0.0) @ out.upper
    hi = np.maximum(c, 0.0) @ out.upper + np.minimum(c, 0.0) @ out.lower
    return Bounds(tuple(bounds.hidden) + (LayerBounds(np.array([lo]), np.array([hi])),), bounds.method,
                  bounds.seconds, bounds.lp_solves, bounds.notes)


def _in_original_units(res: SolveResult, sc: Scaling) -> SolveResult:
    """A solve on the rescaled network with its objective and dual bound in the original units.

    The dual bound grows by the solver's resolution (:attr:`Scaling.resolution`, in the scaled
    units): how far the MILP's values may be off.
    """
    if sc.identity:
        return res
    a = sc.output_scale
    obj = None if res.objective is None else res.objective * a
    db = res.dual_bound
    if db is not None and np.isfinite(db):
        db = (db + sc.resolution) * a
    return replace(res, objective=obj, dual_bound=db)


def _best_sampled(net: Network, domain, c: np.ndarray) -> tuple[float, Optional[np.ndarray]]:
    """The largest ``c . f(x)`` over 256 points of the domain (box vertices first; none in a thin
    polytope) and its point."""
    try:
        X = domain.sample(256, seed=0, include_vertices=True)
    except InvalidDomainError:
        return -np.inf, None
    X = X[in_domain(domain, X)]
    if not len(X):
        return -np.inf, None
    v = net.forward(X) @ c
    i = int(np.argmax(v))
    return float(v[i]), X[i].copy()


def _beaten(res: SolveResult, best: float, unit: float) -> bool:
    """True if a value attained in the domain exceeds the solve's proven bound beyond its tolerance."""
    db = res.dual_bound
    return db is not None and np.isfinite(db) and best > db + 1e-6 * (unit + abs(best))
