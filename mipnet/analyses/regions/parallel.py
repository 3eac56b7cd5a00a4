"""The exact region count split into work units: fixed sign prefixes (:mod:`mipnet.parallel`).

A unit is a *sign prefix* ``s`` of the hidden neurons in order (layer 1 first): the
sub-domain ``D_s = {x in D : neuron j is on (pre-activation >= 0) if s_j else off (<= 0)}``.
Each neuron of the prefix is affine on ``D_s`` (the layers before it are fixed), so ``D_s``
is a polytope and its regions are exactly the regions of D whose pattern starts with ``s``:
the sub-domains of the ``2^k`` prefixes partition the regions, and the count on D is the
sum of the counts of :func:`count_regions` on each ``D_s`` (Serra et al. 2018's count on a
polytope domain; a ``D_s`` without interior holds no region).

Load balancing: a unit counts at most ``unit_regions`` regions; one that reaches the budget
keeps the regions it found and hands on the cells its depth-first search had not reached
(``RegionCount.frontier``: each is again a sign prefix, and together they hold exactly the
regions not found), each as a new unit. Where the search gives no frontier (the LP and MILP
algorithms), the unit is split on its next neuron instead (two children, the one that cannot
hold a region drops out at once) and re-run, which repeats its work: on 5-18-18-1 (78,394
regions, 64 initial units, budget 5000) the re-runs were ~55,000 regions of extra work, the
units took ~1.4x the serial count. The split depends only on the network and the budget,
never on timing or on the number of workers, so the merged regions (patterns *and*
witnesses) are the same for 1, 2 or 64 workers. The merge keeps each pattern once (with the witness of the first
unit in key order), so prefixes that touch along a neuron identically zero on them cannot
count a region twice.

Every witness was certified by the unit's :func:`count_regions` (the one float64 check of
:mod:`mipnet.core.numerics`, on the whole network; the sub-domain lies in D); ``exact``
needs every unit exact and the run complete, otherwise the count is a lower bound.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from mipnet.core.domain import Domain, L1BallDomain, as_domain
from mipnet.core.errors import InvalidArgumentError, InvalidDomainError
from mipnet.core.network import Network
from mipnet.core.numerics import DEFAULT, Tolerances
from mipnet.parallel import run_units

from .common import RegionStatus, is_int
from .engine import check_method, count_arrays, region_objects
from .merge import merge_linear as merge_linear_regions
from .problem import prepare
from .results import RegionCount
from .sink import PatternLP

__all__ = ["count_regions_parallel", "prefix_domain", "region_unit", "split_prefix", "UNIT_REGIONS",
           "SPLIT_DEPTH"]

#: regions a unit may count before it is split (about 1 s of the vertex method)
UNIT_REGIONS = 5000
#: the initial units: every sign prefix of this many first neurons (independent of the workers; most are
#: empty and cost milliseconds)
SPLIT_DEPTH = 6

#: statuses of the merged count, the most severe first
_SEVERITY = (RegionStatus.INTERRUPTED, RegionStatus.TIME_LIMIT, RegionStatus.MAX_REGIONS,
             RegionStatus.INCOMPLETE, RegionStatus.UNVERIFIED, RegionStatus.COMPLETE)


def _prefix_rows(net: Network, prefix) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``G x <= h`` of the sign prefix (module docstring), one per prefix neuron."""
    s = np.asarray(prefix, dtype=bool)
    n0 = net.input_dim
    G = np.zeros((s.size, n0))
    h = np.zeros(s.size)
    A, c = np.eye(n0), np.zeros(n0)  # the previous layer's post-activation map h = A x + c
    done = 0
    for W, b in net.layers[:-1]:
        pa, pc = W @ A, W @ c + b  # pre-activations of this layer on the sub-domain
        k = min(W.shape[0], s.size - done)
        sign = np.where(s[done:done + k], -1.0, 1.0)  # on: -(a x + c) <= 0; off: a x + c <= 0
        G[done:done + k] = sign[:, None] * pa[:k]
        h[done:done + k] = -sign * pc[:k]
        done += k
        if done == s.size:
            break
        on = s[done - W.shape[0]:done]
        A, c = pa * on[:, None], pc * on
    return G, h


def prefix_domain(net: Network, domain: Domain, prefix) -> Domain:
    """The sub-domain ``D_s`` of a sign prefix (a polytope inside ``domain``)."""
    if len(prefix) == 0:
        return domain
    G, h = _prefix_rows(net, prefix)
    if domain.has_constraints:
        G, h = np.vstack([domain.A, G]), np.concatenate([domain.c, h])
    if isinstance(domain, L1BallDomain):
        return L1BallDomain(domain.lower, domain.upper, G, h, domain.l1_center, domain.l1_radius)
    return Domain(domain.lower, domain.upper, G, h)


def split_prefix(net: Network, domain: Domain, prefix) -> list:
    """The two children of a prefix: the next neuron on and off (skipping neurons constant on ``D_s``)."""
    N = net.num_hidden_neurons
    p = tuple(prefix)
    while len(p) < N:
        G, h = _prefix_rows(net, p + (False,))
        g = G[-1]
        mag = np.abs(G).sum() + abs(h[-1]) + 1.0
        if np.abs(g).max(initial=0.0) > 1e-12 * mag:
            return [p + (False,), p + (True,)]
        # constant on the sub-domain: its sign is decided, no branch (both children would hold the same regions)
        p = p + (bool(h[-1] < 0),)
    return []


def region_unit(task, deadline: Optional[float]):
    """Count the regions of one sign prefix: ``(finished, value)`` for :func:`mipnet.parallel.run_units`.

    ``task = (net, domain, prefix, options)``. The unit counts with
    :func:`~mipnet.analyses.regions.engine.count_arrays` (the patterns and witnesses without
    ``Region`` objects); ``options["counter"]`` is :func:`count_regions`, for the certified
    interior test of an empty sub-domain. ``finished`` is False when the
    deadline stopped it, or the unit's region budget where the search left no frontier. ``value``
    holds the packed patterns, the witnesses, the counters of the unit's :class:`RegionCount`
    and ``frontier``: the sign prefixes of the cells the budget left (:func:`_follow` makes them units).
    """
    net, domain, prefix, opts = task
    t0 = time.perf_counter()
    empty = {"P": np.zeros((0, (net.num_hidden_neurons + 7) // 8), dtype=np.uint8), "X": np.zeros((0, net.input_dim)),
             "status": RegionStatus.COMPLETE.value, "lp_solves": 0, "milp_solves": 0, "nodes": 0, "unverified": 0,
             "rejected": 0, "repaired": 0, "undecided": 0, "algorithm": "", "seconds": 0.0, "frontier": ()}
    time_limit = None
    if deadline is not None:
        time_limit = deadline - time.time()
        if time_limit <= 0:
            return False, {**empty, "status": RegionStatus.TIME_LIMIT.value}
    sub = prefix_domain(net, domain, prefix)
    try:
        r, X, P = count_arrays(net, sub, method=opts["method"], time_limit=time_limit, max_regions=opts["unit_regions"],
                               keep=True, tol=opts["tol"], milp_margin=opts["milp_margin"],
                               tolerances=opts["tolerances"], bounds=opts.get("bounds"))
        if r.regions == 0 and r.status is RegionStatus.UNVERIFIED:
            # the MILP finds nothing in a sub-domain without interior; decide that with the certified
            # interior test of a network without hidden layer (one region, or "no interior")
            opts["counter"](Network([np.zeros((1, net.input_dim))], [np.zeros(1)]), sub, tol=opts["tol"],
                            tolerances=opts["tolerances"])
    except InvalidDomainError as e:
        if "no interior" in str(e) or "empty" in str(e):
            return True, {**empty, "seconds": time.perf_counter() - t0}
        raise
    if r.status is RegionStatus.INTERRUPTED:  # Ctrl-C: stop the whole run (run_units returns what finished)
        raise KeyboardInterrupt
    frontier = ()
    status = RegionStatus(r.status)
    if status is RegionStatus.MAX_REGIONS and r.frontier is not None:
        # the budget stopped the search: its regions stay, the cells it had not reached become units
        frontier = tuple(tuple(bool(v) for v in f) for f in r.frontier)
        status = RegionStatus.COMPLETE if not (r.unverified or r.undecided) else RegionStatus.UNVERIFIED
    value = {"P": np.packbits(P, axis=1), "X": X, "status": status.value, "frontier": frontier,
             "lp_solves": r.lp_solves, "milp_solves": r.milp_solves, "nodes": r.nodes, "unverified": r.unverified,
             "rejected": r.rejected, "repaired": r.repaired, "undecided": r.undecided, "algorithm": r.algorithm,
             "seconds": r.seconds}
    finished = status not in (RegionStatus.MAX_REGIONS, RegionStatus.TIME_LIMIT)
    return finished, value


def _follow(task, value, idle):
    """``follow`` for :func:`run_units`: the frontier a unit handed on, one unit per cell."""
    net, domain, _, opts = task
    return [(net, domain, p, opts) for p in value.get("frontier", ())]


class _Splitter:
    """``split`` for :func:`run_units` (a unit is a task tuple)."""

    def __init__(self, net, domain):
        self.net, self.domain = net, domain

    def __call__(self, task):
        net, domain, prefix, opts = task
        return [(net, domain, p, opts) for p in split_prefix(self.net, self.domain, prefix)]


def _initial_prefixes(net: Network, domain: Domain, depth: int) -> list:
    level = [()]
    for _ in range(depth):
        nxt = []
        for p in level:
            kids = split_prefix(net, domain, p)
            nxt.extend(kids if kids else [p])
        if nxt == level:
            break
        level = nxt
    return level


def count_regions_parallel(
    net: Network,
    domain,
    *,
    counter,
    executor=None,
    method: str = "fast",
    time_limit: Optional[float] = None,
    max_regions: Optional[int] = None,
    return_regions: bool = False,
    merge_linear: bool = False,
    progress: bool = False,
    tol: float = 1e-12,
    milp_margin: float = 1e-8,
    tolerances: Optional[Tolerances] = None,
    unit_regions: int = UNIT_REGIONS,
    split_depth: int = SPLIT_DEPTH,
    report: Optional[list] = None,
    bounds: Optional[str] = None,
) -> RegionCount:
    """:func:`count_regions` on an executor, split into sign-prefix units (module docstring).

    Parameters are those of :func:`count_regions` (``bounds`` by name only: each unit computes
    the MILP's bounds on its own sub-domain), plus

    counter : callable
        :func:`mipnet.analyses.regions.count_regions` (``count_regions(..., executor=...)``
        passes itself), the serial count each unit runs on its sub-domain.
    executor : None, concurrent.futures.Executor or dask.distributed.Client
        Where the units run (``None``: in this process, the same units in turn).
    unit_regions : int
        A unit that finds this many regions is split in two (default 5000).
    split_depth : int
        The run starts from every sign prefix of this many neurons (default 6: at most 64 units).
    report : list, optional
        The run's :class:`mipnet.parallel.RunReport` (units, splits, unit seconds) is appended.

    The count, the patterns and the witnesses do not depend on the executor nor on its
    number of workers. ``seconds`` is the wall-clock time; ``nodes`` and the solve counters
    add up the units'.
    """
    if not (is_int(unit_regions) and unit_regions >= 1):
        raise InvalidArgumentError(f"unit_regions must be a positive integer, got {unit_regions!r}")
    if not (is_int(split_depth) and split_depth >= 0):
        raise InvalidArgumentError(f"split_depth must be an integer >= 0, got {split_depth!r}")
    if max_regions is not None and not (is_int(max_regions) and max_regions >= 1):
        raise InvalidArgumentError(f"max_regions must be a positive integer or None, got {max_regions!r}")
    t0 = time.perf_counter()
    tols = tolerances if tolerances is not None else DEFAULT
    prob = prepare(net, domain, tols, geo=float(tol))  # validates the network and the domain
    check_method(prob, method)
    net, dom = prob.net, as_domain(domain, prob.net.input_dim)
    if net.num_hidden_layers == 0:
        return counter(net, dom, method=method, time_limit=time_limit, max_regions=max_regions,
                             return_regions=return_regions, merge_linear=merge_linear, progress=progress, tol=tol,
                             milp_margin=milp_margin, tolerances=tolerances)
    opts = {"counter": counter, "method": method, "unit_regions": int(unit_regions), "tol": float(tol), "milp_margin": float(milp_margin),
            "tolerances": tolerances, "bounds": bounds}
    tasks = [(net, dom, p, opts) for p in _initial_prefixes(net, dom, int(split_depth))]

    def found(runs) -> int:
        return sum(r.value["P"].shape[0] for r in runs)

    stop = None if max_regions is None else (lambda runs: found(runs) >= max_regions)
    rep = run_units(region_unit, tasks, executor, split=_Splitter(net, dom), follow=_follow, time_limit=time_limit,
                    stop=stop, progress=progress, desc="regions", describe=lambda runs: f"{found(runs):,} regions")
    if report is not None:
        report.append(rep)

    # ---- deterministic merge: units in key order, each pattern once (its first witness)
    runs = rep.runs
    P = np.concatenate([r.value["P"] for r in runs]) if runs else np.zeros((0, 0), dtype=np.uint8)
    X = np.concatenate([r.value["X"] for r in runs]) if runs else np.zeros((0, net.input_dim))
    if P.shape[0]:
        _, first = np.unique(P, axis=0, return_index=True)
        first = np.sort(first)
        P, X = P[first], X[first]
    algorithm = next((r.value["algorithm"] for r in runs if r.value["algorithm"]), method)
    statuses = {RegionStatus(r.value["status"]) for r in runs}
    status = next(s for s in _SEVERITY if s in statuses) if statuses else RegionStatus.COMPLETE
    keys = {r.key for r in runs}
    if status is RegionStatus.COMPLETE and any(r.key + (j,) not in keys for r in runs
                                               for j in range(len(r.value.get("frontier", ())))):
        status = RegionStatus.TIME_LIMIT  # a frontier not counted: run_units skips it only past the time limit
    if rep.status == "interrupted":
        status = RegionStatus.INTERRUPTED
    elif rep.status == "time_limit":
        status = RegionStatus.TIME_LIMIT
    elif rep.status == "stopped":
        status = RegionStatus.MAX_REGIONS
    elif status is RegionStatus.MAX_REGIONS:  # a unit at its budget that could not be split
        status = RegionStatus.UNVERIFIED
    if max_regions is not None and P.shape[0] > max_regions:
        P, X = P[:max_regions], X[:max_regions]
        status = RegionStatus.MAX_REGIONS if status is RegionStatus.COMPLETE else status
    n = int(P.shape[0])
    if status is RegionStatus.COMPLETE and n == 0:
        status = RegionStatus.UNVERIFIED
    total = lambda k: int(sum(r.value[k] for r in runs))  # noqa: E731
    B = np.unpackbits(P, axis=1, count=net.num_hidden_neurons).astype(bool) if n else \
        np.zeros((0, net.num_hidden_neurons), dtype=bool)
    linear = None
    if merge_linear and status is not RegionStatus.INTERRUPTED:
        linear = merge_linear_regions(prob, B, PatternLP(prob))
    region_list = None
    if return_regions:
        region_list = region_objects(net, B, X)
    exact = status is RegionStatus.COMPLETE
    message = (f"{len(runs)} units ({rep.splits} splits, {rep.retries} retries) on {rep.workers} workers: "
               + ("the count is exact" if exact else f"{status.value}: the count is a lower bound"))
    return RegionCount(
        regions=n, exact=exact, method=method, algorithm=algorithm, seconds=time.perf_counter() - t0,
        lp_solves=total("lp_solves"), milp_solves=total("milp_solves"), status=status, message=message,
        linear_regions=linear, region_list=region_list, verified=n, unverified=total("unverified"),
        nodes=total("nodes"), tol=float(tol), widths=net.widths, free_inputs=prob.n, rejected=total("rejected"),
        repaired=total("repaired"), undecided=total("undecided"),
    )
