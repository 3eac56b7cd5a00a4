"""The exact count in this process: the search algorithms' driver, whose certified regions come
back as arrays (:func:`count_arrays`). :func:`mipnet.analyses.regions.count_regions` validates,
dispatches to an executor and builds the ``Region`` objects; the parallel units
(:mod:`.parallel`) call this module directly, as they read only patterns and witnesses."""

from __future__ import annotations

import gc
import logging
import time
from typing import Optional

import numpy as np

from mipnet.core.domain import L1BallDomain
from mipnet.core.errors import InvalidArgumentError, InvalidDomainError
from mipnet.core.network import Network
from mipnet.core.numerics import DEFAULT, Tolerances

from .chebyshev import Decision
from .common import RegionStatus, readonly
from .lp import count_lp
from .merge import merge_linear as _merge_linear
from .merge import output_maps
from .milp import count_milp
from .problem import L1_MAX_FREE, Problem, prepare
from .results import Region, RegionCount
from .sink import PatternLP, Sink
from .vertex import count_vertex

__all__ = ["count_arrays", "check_method", "region_objects", "METHODS", "VERTEX_MAX_DIM"]

log = logging.getLogger("mipnet.analyses.regions")

METHODS = ("fast", "vertex", "lp", "milp")
#: the vertex method is used by "fast" up to this input dimension (the box has 2^n vertices)
VERTEX_MAX_DIM = 7
_INF = float("inf")
#: after Ctrl-C, at most this long is spent checking the witnesses already found
_INTERRUPT_GRACE = 0.5

_MESSAGES = {
    RegionStatus.COMPLETE: "search finished: the count is exact",
    RegionStatus.TIME_LIMIT: "time limit reached: the count is a lower bound",
    RegionStatus.MAX_REGIONS: "region budget reached: the count is a lower bound",
    RegionStatus.INTERRUPTED: "interrupted (Ctrl-C): the count is a lower bound",
    RegionStatus.UNVERIFIED: "some candidate regions could not be certified: the count (certified regions) "
                             "is a lower bound",
    RegionStatus.INCOMPLETE: "the search missed regions that a later check found: the count is a lower bound",
}


def _settle_solver_threads(timeout: float = 1.0) -> None:
    """After Ctrl-C: let an interrupted HiGHS worker thread finish, then free its model.

    On CPython 3.11 a KeyboardInterrupt inside ``Thread.join(timeout)`` can mark a running
    thread as stopped, so the solver layer may return while HiGHS still winds down in its
    worker (``mipnet-highs``); a HiGHS object still alive at interpreter exit aborts the
    process. Wait (at most ``timeout``) until no such worker is registered as running, then
    collect the interrupted model's reference cycle (its interrupt callback holds it).
    """
    import threading

    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        live = [t for t in threading.enumerate() if t.name == "mipnet-highs"]
        if not live:
            break
        time.sleep(0.01)
    gc.collect()


def check_method(prob: Problem, method: str) -> None:
    """Error if ``method`` cannot count on the (prepared) problem's domain."""
    if method == "vertex" and prob.n > 16:
        raise InvalidArgumentError(
            f"method='vertex' needs at most 16 free inputs (the box has 2^n vertices), got {prob.n}; "
            "use method='lp' or 'fast'"
        )
    if method == "vertex" and isinstance(prob.domain, L1BallDomain) and prob.n > VERTEX_MAX_DIM:
        raise InvalidArgumentError(
            f"method='vertex' takes an L1Ball domain with at most {VERTEX_MAX_DIM} free inputs (each of the "
            f"ball's 2^n facets cuts the box's vertex set), got {prob.n}; use method='lp', 'milp' or 'fast' "
            f"(they take an L1 ball with up to {L1_MAX_FREE} free inputs)"
        )


def count_arrays(net: Network, domain, *, method: str = "fast", time_limit: Optional[float] = None,
                 max_regions: Optional[int] = None, keep: bool = False, merge_linear: bool = False,
                 progress: bool = False, tol: float = 1e-12, milp_margin: float = 1e-8, bounds=None,
                 tolerances: Optional[Tolerances] = None):
    """:func:`count_regions` in this process without its ``Region`` objects: ``(RegionCount,
    witnesses X, patterns P)``, with ``region_list`` None and X, P the certified regions' arrays
    when ``keep`` (else empty). For callers that read only the patterns and witnesses (the work
    units of :mod:`.parallel`): the affine maps and the objects cost ~11 % of a unit. The options
    are those of :func:`count_regions`, already checked."""
    prob = prepare(net, domain, tolerances if tolerances is not None else DEFAULT, geo=float(tol))
    check_method(prob, method)
    algorithm = method if method != "fast" else ("vertex" if prob.n <= VERTEX_MAX_DIM else "lp")
    t0 = time.perf_counter()
    deadline = t0 + time_limit if time_limit is not None else _INF
    plp = PatternLP(prob)
    keep = keep or merge_linear
    sink = Sink(prob, keep=keep, max_regions=max_regions, progress=progress, pattern_lp=plp)
    stats: dict = {}
    message = ""
    status = RegionStatus.COMPLETE
    try:
        try:
            if prob.rnet.num_hidden_layers == 0:
                dec, u, _ = plp.decide(np.zeros(0, dtype=bool))
                if dec is not Decision.FULL:
                    raise InvalidDomainError("the domain has no interior")
                sink.add(u, np.zeros(0, dtype=bool))
                st, message = "complete", "no hidden layer: one region"
            elif algorithm == "vertex":
                st = count_vertex(prob, sink, deadline=deadline, stats=stats)
            elif algorithm == "lp":
                st = count_lp(prob, sink, deadline=deadline, stats=stats)
            else:
                st, message = count_milp(prob, sink, deadline=deadline, margin=milp_margin, bounds=bounds,
                                         stats=stats)
            status = RegionStatus(st)
            sink.close(deadline=deadline if time_limit is not None else _INF)
        except KeyboardInterrupt:
            status, message = RegionStatus.INTERRUPTED, ""
            sink.repair = False
            try:
                sink.close(deadline=time.perf_counter() + _INTERRUPT_GRACE)
            except KeyboardInterrupt:  # a second Ctrl-C: drop what is still pending
                sink._bu, sink._bp = [], []
    finally:
        if sink._bar is not None:
            sink._bar.close()
    if status is RegionStatus.INTERRUPTED:
        _settle_solver_threads()
    undecided = int(stats.get("ambiguous", 0)) + int(stats.get("closure_ambiguous", 0))
    if status is RegionStatus.COMPLETE and sink.count == 0:
        # a domain with interior holds at least one region: a search that found none failed
        status = RegionStatus.UNVERIFIED
        message = "the search ended without a single certified region: the count is only a lower bound"

    if status is RegionStatus.COMPLETE and (sink.unverified or undecided):
        status = RegionStatus.UNVERIFIED
        message = (f"the search finished, but {sink.unverified} candidate regions failed the witness check "
                   f"and {undecided} cells were at the resolution limit: the count (certified regions) is "
                   "a lower bound")
    exact = status is RegionStatus.COMPLETE
    if not message or status is RegionStatus.INTERRUPTED:
        message = _MESSAGES[status]
    linear = None
    X, P = np.zeros((0, prob.net.input_dim)), np.zeros((0, prob.net.num_hidden_neurons), dtype=bool)
    if keep:
        X, P = sink.arrays()
        if merge_linear and status is not RegionStatus.INTERRUPTED:
            linear = _merge_linear(prob, P, plp)
    if sink.repaired:
        log.info("%d witnesses were re-centred by a certified LP before passing the check", sink.repaired)
    if sink.unverified:
        log.warning("%d candidate regions failed the witness check and are not counted", sink.unverified)
    lp = stats.get("lp")
    return RegionCount(
        regions=sink.count,
        exact=exact,
        method=method,
        algorithm=algorithm,
        seconds=time.perf_counter() - t0,
        lp_solves=(lp.solves if lp is not None else 0) + plp.solves,
        milp_solves=int(stats.get("milp_solves", 0)),
        status=status,
        message=message,
        linear_regions=linear,
        verified=sink.verified,
        unverified=sink.unverified,
        nodes=int(stats.get("nodes", 0)),
        tol=float(tol),
        widths=prob.net.widths,
        free_inputs=prob.n,
        rejected=sink.rejected,
        repaired=sink.repaired,
        undecided=undecided,
        frontier=(tuple(readonly(np.asarray(f, dtype=bool)) for f in stats["frontier"])
                  if status is RegionStatus.MAX_REGIONS and "frontier" in stats else None),
    ), X, P


def region_objects(net: Network, P: np.ndarray, X: np.ndarray) -> tuple:
    """The ``Region`` of each certified pattern P[i] (bool) with its witness X[i], and its affine map
    (what ``count_regions(return_regions=True)`` returns, serial or parallel)."""
    A, c = output_maps(net, P) if P.shape[0] else (np.zeros((0,)), np.zeros((0,)))
    return tuple(Region(readonly(P[i]), readonly(X[i]), readonly(A[i]), readonly(c[i])) for i in range(P.shape[0]))
