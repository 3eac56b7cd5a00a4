"""LP bound tightening split into work units: groups of neurons of one layer (:mod:`mipnet.parallel`).

The LPs of one layer are independent given the bounds of the layers before it (the
relaxation they optimise over), so :func:`lp_bounds_parallel` tightens the network layer by
layer as :func:`mipnet.bounds.lp.lp_bounds` does, with each layer's neurons cut into groups
of at most ``group_size`` (and at least ``MIN_GROUPS`` groups); a group is one call of
:func:`mipnet.bounds.lp.tighten_neurons` (the triangle relaxation, Ehlers 2017, of the earlier
layers built once, warm-started along a chain, widened by :func:`mipnet.bounds.lp.lp_slack`):
each unstable neuron's min and max LP to optimality, or, where ``lp_bounds`` starts from
alpha-CROWN and stops at the sign (large nets), the same sign-only LPs. Two things are done once
per layer in the caller and sent to every group: the signs that real inputs show (samples and
the gradient search of :class:`mipnet.bounds.lp.Witnesses`: a sign seen gets no LP, as in the
serial pass), and a simplex basis to start from (:func:`mipnet.bounds.lp.relaxation_basis`: a
cold start cost about ten warm LPs on a 784-input layer, so without it small groups spent most
of their time starting). The groups depend only on the layer, never on the number of workers,
so the bounds are identical for any executor; they agree with the serial ``lp_bounds`` up to
the LP solver's tolerance (both are sound).
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from mipnet.bounds.lp import (LP_FEASIBILITY, Witnesses, alpha_pays, propagate_intervals, relaxation_basis,
                              tighten_neurons)
from mipnet.bounds.symbolic import symbolic_layers
from mipnet.core.bounds import Bounds, LayerBounds
from mipnet.core.domain import as_domain
from mipnet.core.errors import InvalidArgumentError, Interrupted, SolverError
from mipnet.core.network import Network
from mipnet.parallel import run_units

__all__ = ["lp_bounds_parallel", "lp_group_unit", "GROUP_SIZE"]

#: neurons per work unit (one model build per group)
GROUP_SIZE = 10
#: a layer is cut into at least this many groups (when it has that many neurons to tighten), so that
#: a narrow output layer (two LPs per output) does not run on one worker
MIN_GROUPS = 8


def lp_group_unit(task, deadline: Optional[float]):
    """Tighten one group of neurons of layer ``l``: ``(True, (lo, hi, solves, notes))``.

    ``task = (net, domain, layers, l, idx, options)``: ``layers`` the bounds of every affine
    layer so far (those before ``l`` define the relaxation), ``idx`` the group's neurons; the
    work is :func:`mipnet.bounds.lp.tighten_neurons` (sign-only where ``lp_bounds`` would stop at
    the sign, else every LP to optimality), whose bounds are
    intersected with the group's current ones.
    """
    net, domain, layers, l, idx, opts = task
    g = tighten_neurons(net, domain, layers, l, idx, sign_only=opts["sign_only"], tol=opts["tol"],
                        time_limit_per_lp=opts["time_limit_per_lp"], seen=opts.get("seen"),
                        basis=opts.get("basis"))
    lo = np.maximum(layers[l].lower[idx], g.lower)
    hi = np.minimum(layers[l].upper[idx], g.upper)
    return True, (lo, hi, g.lp_solves, list(g.notes))


def lp_bounds_parallel(
    net: Network,
    domain,
    *,
    executor=None,
    initial: Optional[Bounds] = None,
    output: bool = True,
    tol: float = LP_FEASIBILITY,
    time_limit_per_lp: Optional[float] = None,
    sign_only: Optional[bool] = None,
    start: str = "auto",
    progress: bool = False,
    group_size: int = GROUP_SIZE,
    witnesses: int = 256,
    report: Optional[list] = None,
) -> Bounds:
    """:func:`mipnet.bounds.lp.lp_bounds` with each layer's LPs run as groups on ``executor``.

    ``executor``: None (in-process), a ``concurrent.futures.Executor`` or a
    ``dask.distributed.Client``; ``sign_only`` and ``start`` as in ``lp_bounds`` (default:
    alpha-CROWN's start and sign-only LPs where alpha-CROWN pays, as there); ``group_size``
    neurons per unit; ``witnesses`` as in ``lp_bounds`` (the samples and the gradient search run
    here, before the groups: a sign they show gets no LP); ``report``, a list, receives
    each layer's :class:`mipnet.parallel.RunReport`. On Ctrl-C raises
    :class:`Interrupted` with the sound bounds reached so far in ``partial``.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise InvalidArgumentError(f"group_size must be a positive integer, got {group_size!r}")
    if isinstance(witnesses, bool) or not isinstance(witnesses, (int, np.integer)) or witnesses < 0:
        raise InvalidArgumentError(f"witnesses must be an integer >= 0, got {witnesses!r}")
    if start not in ("auto", "alpha", "symbolic"):
        raise InvalidArgumentError(f"start must be 'auto', 'alpha' or 'symbolic', got {start!r}")
    t0 = time.perf_counter()
    domain = as_domain(domain, net.input_dim)
    started_alpha = False  # the same start as lp_bounds: alpha-CROWN where it pays, then sign-only LPs
    if initial is not None:
        layers = list(initial.layers)
        started_alpha = initial.method in ("alpha", "auto")
    else:
        layers = symbolic_layers(net, domain)
        if start == "alpha" or (start == "auto" and alpha_pays(layers)):
            from mipnet.bounds.alpha import alpha_layers

            layers = alpha_layers(net, domain, initial=layers, output=not output)
            started_alpha = True
    if sign_only is None:
        sign_only = started_alpha
    # as lp_bounds: real inputs show most neurons unstable, so that no group spends LPs on them
    wit = Witnesses.sampled(net, domain, layers, int(witnesses)) if sign_only else None
    solves, notes = 0, []

    def interrupted(l):
        notes.append(f"interrupted in layer {l + 1}: later layers keep their symbolic bounds")
        partial = Bounds(tuple(layers), "lp", time.perf_counter() - t0, solves, tuple(notes))
        return Interrupted("LP bounds interrupted", partial=partial)

    n_layers = len(net.layers)
    last_basis: dict = {}
    for l in range(n_layers):
        is_output = l == n_layers - 1
        if (l == 0 and not domain.has_constraints) or (is_output and not output):
            if not is_output:
                propagate_intervals(net, layers, l)
            continue
        lo, hi = layers[l].lower.copy(), layers[l].upper.copy()
        todo = np.arange(lo.size) if is_output else np.flatnonzero((lo < 0) & (hi > 0))
        sign_layer = bool(sign_only) and not is_output and l > 0
        seen = None
        try:
            if sign_layer:
                if witnesses:
                    wit.search_open(l, (lo < 0) & (hi > 0))
                seen = (wit.pos[l].copy(), wit.neg[l].copy())
                todo = todo[~wit.unstable(l)[todo]]
            n_groups = min(todo.size, max(-(-todo.size // int(group_size)), MIN_GROUPS))
            groups = [g for g in np.array_split(todo, n_groups) if g.size] if todo.size else []
            # one warm start for every group (a cold start costs about ten warm LPs on a 784-input layer),
            # itself started from the last layer's (whose model is the first part of this one)
            basis = (relaxation_basis(net, domain, layers, l, todo, start=last_basis.get(l - 1))
                     if len(groups) > 1 else None)
            last_basis = {l: basis} if basis is not None else {}
        except KeyboardInterrupt:
            raise interrupted(l) from None
        opts = {"tol": float(tol), "time_limit_per_lp": time_limit_per_lp, "sign_only": sign_layer, "seen": seen,
                "basis": basis}
        tasks = [(net, domain, tuple(layers), l, g, opts) for g in groups]
        rep = run_units(lp_group_unit, tasks, executor, progress=progress, desc=f"LP bounds layer {l + 1}")
        if report is not None:
            report.append(rep)
        for r in rep.runs:  # sound whatever finished: every group keeps or tightens its bounds
            g = r.unit[4]
            glo, ghi, s, nts = r.value
            lo[g], hi[g] = np.maximum(lo[g], glo), np.minimum(hi[g], ghi)
            solves += s
            notes.extend(nts)
        bad = np.flatnonzero(lo > hi + 1e-6 * (1 + np.abs(hi)))
        if bad.size:
            raise SolverError(f"layer {l + 1}: LP bound contradicts interval bounds (lower > upper); "
                              "the domain may be empty or the solver wrong")
        layers[l] = LayerBounds(lo, np.maximum(hi, lo))
        if not rep.complete:
            raise interrupted(l)
        if not is_output:
            propagate_intervals(net, layers, l)
    return Bounds(tuple(layers), "lp", time.perf_counter() - t0, solves, tuple(notes))
