"""The MILP optimum of a linear function of a network's output, with a checked witness."""

from __future__ import annotations

from typing import Optional

import numpy as np

from mipnet.analyses.common import solve_or_partial, witness_from_solution
from mipnet.bounds import lp_bounds
from mipnet.core.bounds import Bounds
from mipnet.core.domain import as_domain
from mipnet.core.errors import InvalidDomainError, InvalidNetworkError, SolverError
from mipnet.core.network import Network
from mipnet.core.numerics import in_domain
from mipnet.milp.encoding import HighsModel
from mipnet.solver.highs import SolveResult

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

    The input is checked by a float64 forward pass: raise :class:`SolverError`
    if the solver's objective and ``c . f(x)`` disagree by more than 1e-5 relative.
    The bound is checked against 256 points of the domain (box vertices first): one above it
    by more than 1e-6 relative means HiGHS's MIP feasibility tolerance (1e-6) cut the optimum
    off (seen with LP bounds tight to 1e-15 at a box corner), and the MILP is solved again with
    tolerances of 1e-9; a bound still beaten raises :class:`SolverError`.
    On Ctrl-C during the MILP the interrupted solve's result is returned (status
    ``interrupted``; its ``dual_bound`` still bounds the maximum) with its best input.
    """
    if not isinstance(net, Network):
        raise InvalidNetworkError(f"net must be a mipnet.Network, got {type(net).__name__}")
    domain = as_domain(domain, net.input_dim)
    c = np.asarray(c, dtype=np.float64).reshape(-1)
    if c.size != net.output_dim:
        raise InvalidNetworkError(f"c has {c.size} entries, the network has {net.output_dim} outputs")
    if bounds is None:
        bounds = lp_bounds(net, domain)
    model = HighsModel(domain)
    nv = model.add_network(net, bounds)
    model.set_objective(nv.output_cols, c, maximize=True)
    res, stopped = solve_or_partial(model, time_limit=time_limit)
    best = -np.inf if stopped else _best_sampled(net, domain, c)
    if _beaten(res, best):
        model.set_options({"mip_feasibility_tolerance": 1e-9, "primal_feasibility_tolerance": 1e-9})
        res, stopped = solve_or_partial(model, time_limit=time_limit)
        if not stopped and _beaten(res, best):
            raise SolverError(f"the MILP's bound {res.dual_bound} is below c . f(x) = {best} at a point of the domain, "
                              "also with tolerances of 1e-9")
    x = None
    if res.has_solution:
        x = witness_from_solution(res.values, nv.input_cols, domain)
        if x is None:
            raise SolverError("the MILP's best input lies outside the domain")
        val = float(c @ net.forward(x))
        if abs(val - res.objective) > 1e-5 * (1 + abs(val)):
            raise SolverError(
                f"MILP objective {res.objective} but the forward pass at its input gives {val}"
            )
    return res, x


def _best_sampled(net: Network, domain, c: np.ndarray) -> float:
    """The largest ``c . f(x)`` over 256 points of the domain (box vertices first; none in a thin polytope)."""
    try:
        X = domain.sample(256, seed=0, include_vertices=True)
    except InvalidDomainError:
        return -np.inf
    X = X[in_domain(domain, X)]
    return float((net.forward(X) @ c).max()) if len(X) else -np.inf


def _beaten(res: SolveResult, best: float) -> bool:
    """True if a value attained in the domain exceeds the solve's proven bound beyond its tolerance."""
    db = res.dual_bound
    return db is not None and np.isfinite(db) and best > db + 1e-6 * (1 + abs(best))
