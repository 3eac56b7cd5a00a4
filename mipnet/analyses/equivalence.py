"""Equivalence of two ReLU networks on a domain, and the largest gap between them.

Both networks are encoded in one MILP on a shared input vector (Kleine Büning,
Kern and Sinz, "Verifying equivalence properties of neural networks with ReLU
activation functions", CP 2020). Properties, for f = ``net_a`` and g = ``net_b``:

``exact`` / ``epsilon`` (L-infinity)
    ``max_k |f_k(x) - g_k(x)| <= eps`` for all x in D. One MILP per output k and
    sign (``max f_k - g_k`` and ``max g_k - f_k``), each early-stopped: a cutoff
    at ``eps + tol`` lets HiGHS prune every node that cannot exceed it (an
    infeasible answer proves the output) and a target stops it at the first
    input that exceeds it. Exact equivalence is epsilon-equivalence with
    ``eps = tol`` (a stated numerical tolerance).
``epsilon`` with ``norm="l1"``
    ``sum_k |f_k - g_k| <= eps``: one MILP with one binary per output for the
    absolute values.
``top1``
    ``argmax f(x) == argmax g(x)`` for all x in D (ties, a null set, ignored). For
    each class c that f can rank first and each k != c, maximise ``t`` subject to
    ``f_c - f_j >= t`` (all j != c) and ``g_k - g_c >= t``; an input with ``t > 0``
    is a strict disagreement, and ``t* <= tol`` for every pair proves equivalence
    (up to disagreements of margin ``tol``). Classes that f never ranks first are
    skipped after a small MILP over f alone.

What makes these MILPs fast: LP bounds of both networks (fewer binaries,
smaller big-M), and for networks of the same shape (a net and its pruned or
perturbed copy) *differential* bounds on ``y_a - y_b`` layer by layer
(the ReluDiff idea: Paulsen, Wang and Wang, ICSE 2020, arXiv:2001.03662),
added as rows linking the two encodings; they bound the output gap before any
MILP and often settle it.

Every counterexample is re-checked by a float64 forward pass of both networks, and
every proven bound against every input evaluated on the way (a bound beaten by a
verified input is dropped for the sound bound before any MILP, and the answer is
not called proven); an answer under a time limit or after Ctrl-C is ``unknown``
with the bounds reached (status ``time_limit`` / ``interrupted``).

Units: where the box or the networks' values are far from 1 (beyond 2^16 or below
2^-16), both networks and the domain are rescaled exactly by powers of two
(:class:`~mipnet.analyses.common.Scaling`) before any bound or MILP, so that HiGHS's
absolute tolerances act as relative ones; every reported value is in the original units.
"""


from __future__ import annotations

import logging
import math
import time
from typing import Optional

import numpy as np

from mipnet.analyses.common import Status, Verdict, deadline_after, remaining
from mipnet.analyses.joint import (  # re-exported: the joint MILP's public names
    DifferentialBounds,
    EntryStatus,
    EquivalenceResult,
    GapProblem,
    GapResult,
    OutputGap,
    check_bounds,
    check_samples,
    check_time_limit,
    check_tol,
    differential_bounds,
    differential_layers,
    gap_search,
    interval_gap_bounds,
    l1_milps,
    l1_search,
    max_output_gap,
    reconcile_bound,
    top1_margin,
    top1_milps,
    top1_search,
    validate_pair,
)
from mipnet.bounds import gamma
from mipnet.core.errors import InvalidNetworkError, SolverError
from mipnet.core.network import Network
from mipnet.core.numerics import in_domain
from mipnet.core.results import json_float
from mipnet.solver.highs import check_options

__all__ = [
    "EntryStatus",
    "GapProblem",
    "gap_search",
    "interval_gap_bounds",
    "reconcile_bound",
    "OutputGap",
    "GapResult",
    "EquivalenceResult",
    "DifferentialBounds",
    "differential_bounds",
    "differential_layers",
    "max_output_gap",
    "top1_margin",
    "l1_search",
    "top1_search",
    "verify_equivalence",
]

log = logging.getLogger(__name__)

_MODES = ("exact", "epsilon", "top1")
_NORMS = ("linf", "l1")


# ---------------------------------------------------------------------------- verify
def _validate_verify(net_a, net_b, domain, mode, epsilon, norm, time_limit, tol, samples, bounds_a, bounds_b,
                     top1_strategy, solver_options):
    domain = validate_pair(net_a, net_b, domain)
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    if mode == "epsilon":
        if epsilon is None:
            raise ValueError("mode='epsilon' needs epsilon=E (the allowed output difference, >= 0)")
        if not (epsilon >= 0 and math.isfinite(epsilon)):
            raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    elif epsilon is not None:
        raise ValueError(f"epsilon is only used with mode='epsilon'; mode={mode!r} takes no epsilon "
                         "(exact equivalence uses tol)")
    check_time_limit(time_limit)
    check_tol(tol)
    check_samples(samples)
    check_bounds("bounds_a", bounds_a, net_a)
    check_bounds("bounds_b", bounds_b, net_b)
    if top1_strategy not in ("class", "pair"):
        raise ValueError(f"top1_strategy must be 'class' or 'pair', got {top1_strategy!r}")
    return domain, check_options(solver_options)


def verify_equivalence(
    net_a: Network,
    net_b: Network,
    domain,
    *,
    mode: str = "exact",
    epsilon: Optional[float] = None,
    norm: str = "linf",
    time_limit: Optional[float] = None,
    tol: float = 1e-6,
    bounds_a=None,
    bounds_b=None,
    differential: bool = True,
    samples: int = 1000,
    seed: int = 0,
    top1_strategy: str = "pair",
    solver_options: Optional[dict] = None,
    engine: str = "auto",
    correspondence=None,
    executor=None,
    bab_options=None,
    progress: bool = False,
) -> EquivalenceResult:
    """Decide whether two networks are equivalent on a domain (see the module docstring).

    Parameters
    ----------
    net_a, net_b : Network
        Same input and output sizes; any hidden widths.
    domain : Domain or (lower, upper)
    mode : {"exact", "epsilon", "top1"} or Property
        ``exact``: ``|f - g|_inf <= tol`` everywhere; ``epsilon``:
        ``|f - g| <= epsilon`` in ``norm``; ``top1``: same argmax everywhere. A
        :class:`~mipnet.analyses.properties.Property` (``TopK(k)``, ``DeltaTop1(d)``, a
        VNN-LIB property) is decided by :func:`~mipnet.analyses.properties.verify_property`
        (the MILP), or with ``engine="bab"`` (or an executor or correspondence) by the input
        branch and bound on the property's branch-and-bound face.
    epsilon : float
        Required by (and only allowed with) ``mode="epsilon"``.
    norm : {"linf", "l1"}
        Norm of the output difference for ``mode="epsilon"``.
    time_limit : float, optional
        Seconds in all; past it the verdict is ``unknown`` with the bounds reached.
    tol : float
        Numerical tolerance. Equivalent means proven gap ``<= epsilon + tol``
        (``<= 2 tol`` for exact mode, ``<= tol`` margin for top1); a counterexample
        must exceed ``epsilon`` (``tol`` for exact) in a float64 forward pass
        (top1: a strict disagreement).
    bounds_a, bounds_b : Bounds or str, optional
        Bounds of each net on the domain, or the name of a :func:`mipnet.bounds.compute_bounds`
        method (``"ia"``, ``"symbolic"``, ``"alpha"``, ``"lp"``, ``"auto"``); default LP bounds.
        They decide which neurons of the joint MILP get binaries.
    differential : bool
        Use differential bounds when both nets have the same widths.
    samples, seed : int
        Random inputs tried first (a cheap search for counterexamples).
    top1_strategy : {"pair", "class"}
        Top-1 decomposition: one MILP per pair (c, k) (default; much faster with
        HiGHS on the shared benchmarks) or one per class c (binaries pick the rival k).
    engine : {"auto", "bab", "milp"}
        ``milp``: the joint MILPs on the whole domain. ``bab``: branch and bound over the
        input box (:mod:`mipnet.analyses.bab`) with differential bounds
        (:mod:`mipnet.analyses.differential`) and MILPs on small leaves (an L1 ball: its
        enclosing box is split, boxes that miss the ball are dropped, witnesses must lie in
        the ball). ``auto`` (default): the differential bounds on the whole box first; if they
        do not settle it, ``bab`` for inputs of dimension <= 16 and ``milp`` otherwise (an L1
        ball and a Property: ``milp``).
    correspondence : Correspondence, neuron map or None
        Which hidden neuron of ``net_b`` copies which of ``net_a`` (a
        :class:`~mipnet.analyses.differential.Correspondence`, or the ``neuron_map`` list that
        :func:`~mipnet.analyses.compression.compress` returns and saves); None: found by
        matching weight rows up to a positive factor. Only tightness depends on it.
    executor : concurrent.futures.Executor, optional
        Runs the boxes of ``bab`` in parallel (None: in-process); same verdict either way.
    bab_options : BabOptions, optional
    progress : bool
        A progress bar (boxes closed / open, current bound) on stderr for ``bab``.

    Returns
    -------
    EquivalenceResult
        On Ctrl-C: verdict ``unknown`` (unless a verified counterexample was already in
        hand) with the bounds proven so far, status ``"interrupted"``.

    Examples
    --------
    >>> import numpy as np
    >>> from mipnet import Network, Box
    >>> f = Network([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.zeros(1)])
    >>> print(verify_equivalence(f, f, Box(-1, 1, dim=1)).verdict)
    equivalent
    """
    from mipnet.analyses.properties import trivially_true

    trivial = trivially_true(net_a, net_b, domain, mode, tol)
    if trivial is not None:
        return trivial
    if hasattr(mode, "verify"):  # a Property (top-k, delta-top-1, VNN-LIB) of mipnet.analyses.properties
        if epsilon is not None or norm != "linf":
            raise ValueError("epsilon and norm are not used with a Property mode (the property carries its own)")
        if engine not in ("auto", "bab", "milp"):
            raise ValueError(f"engine must be 'auto', 'bab' or 'milp', got {engine!r}")
        if engine == "bab" or correspondence is not None or executor is not None:
            if engine == "milp":
                raise ValueError("correspondence and executor belong to engine='bab'")
            return _verify_property_bab(net_a, net_b, domain, mode, tol, correspondence, executor, bab_options,
                                        time_limit, progress, samples)
        return mode.verify(net_a, net_b, domain, time_limit=time_limit, tol=tol, bounds_a=bounds_a,
                           bounds_b=bounds_b, differential=differential, samples=samples, seed=seed,
                           solver_options=solver_options)
    t0 = time.perf_counter()
    domain, options = _validate_verify(net_a, net_b, domain, mode, epsilon, norm, time_limit, tol, samples,
                                       bounds_a, bounds_b, top1_strategy, solver_options)
    deadline = deadline_after(time_limit, t0)
    tol = float(tol)
    eps = float(epsilon) if mode == "epsilon" else (tol if mode == "exact" else 0.0)
    proven_bound = tol if mode == "top1" else eps + tol
    notes: list[str] = []
    if engine not in ("auto", "bab", "milp"):
        raise ValueError(f"engine must be 'auto', 'bab' or 'milp', got {engine!r}")
    from mipnet.core.domain import L1BallDomain

    # an L1 ball: engine "bab" splits its enclosing box (boxes that miss the ball are dropped);
    # "auto" keeps the MILP, which encodes the ball exactly
    if engine == "bab" or (engine == "auto" and not isinstance(domain, L1BallDomain)):
        r = _verify_bab(net_a, net_b, domain, mode, epsilon, norm, tol, engine, correspondence, executor,
                        bab_options, deadline, time_limit, progress, t0, samples)
        if r is not None:
            return r
        notes.append("engine auto: differential bounds did not settle the whole box; MILP on the domain")
    try:
        pair = GapProblem.build(net_a, net_b, domain, bounds_a=bounds_a, bounds_b=bounds_b,
                                differential=differential, samples=samples, seed=seed, options=options,
                                deadline=deadline)
    except KeyboardInterrupt:
        upper = np.inf
        if mode != "top1":
            lo, hi = interval_gap_bounds(net_a, net_b, domain)
            gaps = np.maximum(np.abs(lo), np.abs(hi))
            upper = float(gaps.max() if norm == "linf" or mode == "exact" else gaps.sum() * (1 + 2 * gamma(gaps.size)))
        return _verdict(net_a, net_b, domain, mode, eps, norm, tol, proven_bound, -np.inf, upper, None, (), t0, 0,
                        False, True, time_limit, ["interrupted (Ctrl-C) while computing bounds"])
    sc = pair.scaling
    a = sc.output_scale
    if mode == "top1" or norm == "l1":  # these searches work in the problem's units
        if mode == "top1":
            r = top1_milps(pair, deadline, sc.margin(tol), notes, strategy=top1_strategy)
            per_output = tuple(dict(p, status=str(p["status"]), upper=json_float(None if p["upper"] is None
                                                                               else p["upper"] * a))
                               for p in r["pairs"])
        else:
            r = l1_milps(pair, eps / a, deadline, sc.margin(tol), notes)
            per_output = ()
        lower, upper, witness = r["lower"] * a, r["upper"] * a, sc.to_input(r["witness"])
        num_milps, timed_out, interrupted = r["num_milps"], r["timed_out"], r["interrupted"]
    else:  # gap_search reports in the original units
        g = gap_search(pair, threshold=eps, stop_on_violation=True, tol=tol, deadline=deadline, start=t0)
        lower, upper, witness = g.lower, g.upper, (g.witness if g.lower > eps else None)
        num_milps, timed_out, interrupted = g.num_milps, g.status == Status.TIME_LIMIT, g.status == Status.INTERRUPTED
        per_output = tuple(e.to_dict() for e in g.entries)
        notes.extend(g.notes)
    return _verdict(net_a, net_b, domain, mode, eps, norm, tol, proven_bound, lower, upper, witness, per_output, t0,
                    num_milps, timed_out, interrupted, time_limit, notes)


def _verify_bab(net_a, net_b, domain, mode, epsilon, norm, tol, engine, correspondence, executor, bab_options,
                deadline, time_limit, progress, t0, samples, prop=None) -> Optional[EquivalenceResult]:
    """``engine="bab"`` (or ``"auto"`` where it applies): None when auto hands over to the MILP.
    ``prop``: a Property object instead of a mode (then ``mode`` is that object)."""
    from dataclasses import replace

    from mipnet.analyses.bab import BabOptions, branch_and_bound
    from mipnet.analyses.differential import Correspondence, DiffPair, correspondence_from_map
    from mipnet.analyses.properties import property_for_mode

    as_property = prop is not None
    if prop is None:
        prop = property_for_mode(mode, epsilon=epsilon, norm=norm, tol=tol)
    notes: list[str] = []
    facts = None
    opts = bab_options if bab_options is not None else BabOptions()
    if samples == 0:  # no search before the proof: only each box's centre is evaluated
        opts = replace(opts, samples=0, ascent_steps=0)
    try:
        if correspondence is not None and not isinstance(correspondence, Correspondence):
            nmap = list(correspondence)
            try:
                correspondence = correspondence_from_map(net_a, net_b, nmap)
            except InvalidNetworkError as exc:
                notes.append(f"neuron map not used: {exc}; weight rows matched instead")
                correspondence = None
            else:  # the map's claims (removed neurons stably inactive...) re-proven on the domain
                from mipnet.analyses.compression import prove_neuron_claims

                facts, proven, claimed = prove_neuron_claims(net_a, domain, nmap, time_limit=remaining(deadline))
                notes.append(f"neuron map: {proven} of {claimed} stability claims proven on the domain")
        elif correspondence is None:
            from mipnet.analyses.differential import match_neurons

            correspondence = match_neurons(net_a, net_b)
            if correspondence is not None:
                facts = _unmatched_facts(net_a, domain, correspondence, deadline, notes)
        pair = DiffPair.build(net_a, net_b, domain, correspondence=correspondence, spec=prop.spec(net_a.output_dim),
                              facts_a=facts)
        r = None
        if engine == "auto":
            root = branch_and_bound(pair, prop, domain, options=replace(opts, milp_unstable=0), max_boxes=1)
            if root.status in (Status.PROVEN, Status.COUNTEREXAMPLE, Status.INTERRUPTED):
                r = root
            elif net_a.input_dim > 16:
                return None
        if r is None:
            r = branch_and_bound(pair, prop, domain, time_limit=remaining(deadline), executor=executor,
                                 options=opts, progress=progress)
    except KeyboardInterrupt:
        if as_property:
            return _property_verdict(net_a, net_b, domain, prop, -np.inf, np.inf, None, t0, 0, False, True,
                                     time_limit, ["interrupted (Ctrl-C) while preparing the differential bounds"], None)
        return _verdict(net_a, net_b, domain, mode, prop.threshold, norm, tol, prop.proven, -np.inf, np.inf, None, (),
                        t0, 0, False, True, time_limit, ["interrupted (Ctrl-C) while preparing the differential bounds"])
    notes.extend(r.notes)
    search = dict(engine="bab", **r.to_dict(), aligned=pair.aligned is not None)
    if as_property:
        return _property_verdict(net_a, net_b, domain, prop, r.lower, r.upper, r.witness, t0, r.num_milps,
                                 r.status == Status.TIME_LIMIT, r.status == Status.INTERRUPTED, time_limit, notes,
                                 search)
    res = _verdict(net_a, net_b, domain, mode, prop.threshold, norm, tol, prop.proven, r.lower, r.upper, r.witness, (),
                   t0, r.num_milps, r.status == Status.TIME_LIMIT, r.status == Status.INTERRUPTED, time_limit, notes)
    if r.status == Status.INCOMPLETE and res.verdict == Verdict.UNKNOWN:
        res = replace(res, message="not decided: " + "; ".join(r.notes) if r.notes else res.message)
    return replace(res, search=search)


def _verify_property_bab(net_a, net_b, domain, prop, tol, correspondence, executor, bab_options, time_limit,
                         progress, samples) -> EquivalenceResult:
    """A :class:`~mipnet.analyses.properties.Property` (top-k, delta-top-1, VNN-LIB output
    disjunction) on the input branch and bound: the property's branch-and-bound face (measure,
    sound per-box bound from the difference network with its ``spec`` rows, leaf MILP). The
    verdict's witness is re-checked here: ``prop.margin > 0`` in a float64 forward pass of both
    networks, inside the domain."""
    from mipnet.analyses.properties import check_property_pair
    from mipnet.core.domain import as_domain

    t0 = time.perf_counter()
    check_property_pair(net_a, net_b, prop, time_limit)
    domain = as_domain(domain, net_a.input_dim)
    deadline = deadline_after(time_limit, t0)
    p = prop.with_tol(float(tol))
    r = _verify_bab(net_a, net_b, domain, p, None, "linf", float(tol), "bab", correspondence, executor, bab_options,
                    deadline, time_limit, progress, t0, samples, prop=p)
    return r
def _property_verdict(net_a, net_b, domain, prop, lower, upper, witness, t0, num_milps, timed_out, interrupted,
                      time_limit, notes, search) -> EquivalenceResult:
    """The verdict of a Property on the B&B (measure = margin + offset, in the property's units),
    after the float64 re-check of any counterexample (``margin > 0``, inside the domain)."""
    from dataclasses import replace

    fa = fb = None
    off = prop.offset
    if witness is not None:
        fa, fb = net_a.forward(witness), net_b.forward(witness)
        if not (float(prop.margin(fa, fb)[0]) > 0 and in_domain(domain, witness)[0]):
            raise SolverError("internal error: a counterexample failed its float64 re-check")
        verdict, status, msg, gap = Verdict.NOT_EQUIVALENT, Status.COUNTEREXAMPLE, (
            "counterexample found and re-checked by a float64 forward pass of both networks"), lower - off
    elif upper <= prop.proven:
        verdict, status, msg, gap = Verdict.EQUIVALENT, Status.PROVEN, "", upper - off
    else:
        verdict, gap = Verdict.UNKNOWN, upper - off
        if interrupted:
            status, msg = Status.INTERRUPTED, "interrupted (Ctrl-C) before a decision"
        elif timed_out:
            status, msg = Status.TIME_LIMIT, f"time limit of {time_limit} s reached before a decision"
        else:
            status, msg = Status.INCOMPLETE, "not decided: " + ("; ".join(notes) if notes else "boxes left open")
    eps = float(getattr(prop, "delta", getattr(prop, "eps", 0.0)))
    res = EquivalenceResult(verdict, prop.name, eps, "linf", prop.tol, float(gap) + 0.0, float(lower - off) + 0.0,
                            float(upper - off) + 0.0, witness, fa, fb, (), time.perf_counter() - t0, int(num_milps),
                            status, msg, tuple(dict.fromkeys(notes)))
    return replace(res, search=search) if search is not None else res


def _unmatched_facts(net_a, domain, corr, deadline, notes):
    """When most neurons of ``net_a`` have a copy in ``net_b`` (a compressed or pruned copy), the few
    without one are candidates for removed dead neurons: try to prove them stably inactive."""
    from mipnet.analyses.compression import prove_neuron_claims

    unmatched = [np.setdiff1d(np.arange(n), idx[idx >= 0]) for n, idx in zip(net_a.hidden_widths, corr.index)]
    count = sum(u.size for u in unmatched)
    if count == 0 or count > 64 or corr.matched < 2 * count:
        return None
    claims = [{"removed_inactive": u.tolist()} for u in unmatched]
    # a try, not the analysis: at most a tenth of the time left (5 s without a limit)
    left = remaining(deadline)
    facts, proven, claimed = prove_neuron_claims(net_a, domain, claims, time_limit=5.0 if left is None else left / 10)
    notes.append(f"{proven} of the {claimed} neurons of net_a without a copy in net_b proven stably inactive")
    return facts if proven else None


def _verdict(net_a, net_b, domain, mode, eps, norm, tol, proven_bound, lower, upper, witness, per_output, t0,
             num_milps, timed_out, interrupted, time_limit, notes) -> EquivalenceResult:
    """The verdict from the bounds reached, after the float64 re-check of any counterexample."""
    fa = fb = None
    if witness is not None:
        fa, fb = net_a.forward(witness), net_b.forward(witness)
        # the independent float64 re-check of the counterexample (original networks, original units)
        if mode == "top1":
            ok = float(top1_margin(fa, fb)[0]) > 0
        elif norm == "l1" and mode == "epsilon":
            ok = float(np.abs(fa - fb).sum()) > eps
        else:
            ok = float(np.abs(fa - fb).max()) > eps
        if not ok or not in_domain(domain, witness)[0]:
            raise SolverError("internal error: a counterexample failed its float64 re-check")
    if witness is not None:
        verdict, status = Verdict.NOT_EQUIVALENT, Status.COUNTEREXAMPLE
        max_gap = lower
        msg = "counterexample found and re-checked by a float64 forward pass of both networks"
        if interrupted:
            notes.append("interrupted (Ctrl-C) after the counterexample was found")
    elif upper <= proven_bound:
        verdict, status = Verdict.EQUIVALENT, Status.PROVEN
        max_gap = upper
        msg = ""
    else:
        verdict = Verdict.UNKNOWN
        max_gap = upper
        if interrupted:
            status, msg = Status.INTERRUPTED, "interrupted (Ctrl-C) before a decision; the gap bounds are those reached"
        elif timed_out:
            status, msg = Status.TIME_LIMIT, f"time limit of {time_limit} s reached before a decision"
        else:
            status = Status.INCOMPLETE
            msg = "not decided: some subproblems ended without proof or verified counterexample (see notes)"
    return EquivalenceResult(verdict, mode, eps, norm, tol, float(max_gap) + 0.0, float(lower) + 0.0,
                             float(upper) + 0.0, witness, fa, fb, tuple(per_output), time.perf_counter() - t0,
                             int(num_milps), status, msg, tuple(notes))
