"""LP bound tightening split into work units: groups of neurons of one layer (:mod:`mipnet.parallel`).

The LPs of one layer are independent given the bounds of the layers before it (the
relaxation they optimise over), so :func:`lp_bounds_parallel` tightens the network layer by
layer as :func:`mipnet.bounds.lp.lp_bounds` does, with each layer's neurons cut into groups
of at most ``group_size`` (and at least ``MIN_GROUPS`` groups); a group builds the triangle
relaxation (Ehlers 2017) of the earlier layers once and solves its neurons' LPs in turn, with the same rules (hidden neurons: only unstable
ones, stopping at the direction that settles the sign; outputs: both directions) and the same
widening (:func:`mipnet.bounds.lp.lp_slack`). The groups depend only on the layer, never on
the number of workers, so the bounds are identical for any executor; they agree with the
serial ``lp_bounds`` up to the LP solver's tolerance (both are sound).
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from mipnet.bounds.interval import interval_layer
from mipnet.bounds.lp import LP_FEASIBILITY, lp_slack
from mipnet.bounds.symbolic import symbolic_layers
from mipnet.core.bounds import Bounds, LayerBounds
from mipnet.core.domain import as_domain
from mipnet.core.errors import InvalidArgumentError, Interrupted, SolverError
from mipnet.core.network import Network
from mipnet.milp.encoding import HighsModel
from mipnet.parallel import run_units

__all__ = ["lp_bounds_parallel", "lp_group_unit", "GROUP_SIZE"]

#: neurons per work unit (one model build per group)
GROUP_SIZE = 10
#: a layer is cut into at least this many groups (when it has that many neurons to tighten), so that
#: a narrow output layer (two LPs per output) does not run on one worker
MIN_GROUPS = 8


def lp_group_unit(task, deadline: Optional[float]):
    """Tighten one group of neurons of layer ``l``: ``(True, (lo, hi, solves, notes))``.

    ``task = (layers, domain, hidden_bounds, l, idx, options)``: ``layers`` the ``(W, b)`` of
    layers ``0..l``, ``hidden_bounds`` the bounds of layers ``0..l-1``, ``idx`` the group's
    neurons (with their current bounds in ``options``).
    """
    layers, domain, hidden, l, idx, opts = task
    model = HighsModel(domain, time_limit=opts["time_limit_per_lp"])
    cols = model.input_cols
    hmag = np.maximum(np.abs(domain.lower), np.abs(domain.upper))
    for k in range(l):
        W, b = layers[k]
        cols = model.add_layer(cols, W, b, hidden[k], relax=True).h_cols
        hmag = np.maximum(hidden[k].upper, 0.0)
    W, b = layers[l]
    is_output, tol = opts["is_output"], opts["tol"]
    lo, hi = opts["lo"].copy(), opts["hi"].copy()
    solves, notes = 0, []
    for j, i in enumerate(idx):
        for sense in (1, -1) if is_output else (-1, 1):
            if not is_output and ((sense == 1 and lo[j] >= 0) or (sense == -1 and hi[j] <= 0)):
                continue  # sign already settled by the other direction
            val = model.optimize_affine(cols, W[i], b[i], maximize=(sense == 1))
            solves += 1
            if val is None:
                what = "max" if sense == 1 else "min"
                notes.append(f"layer {l + 1} neuron {i}: {what} LP not solved (time limit), kept the previous bound")
                continue
            slack = lp_slack(val, W[i], b[i], hmag, tol=tol)
            if sense == 1:
                hi[j] = min(hi[j], val + slack)
            else:
                lo[j] = max(lo[j], val - slack)
    return True, (lo, hi, solves, notes)


def _propagate(net: Network, layers: list, l: int) -> None:
    """Interval arithmetic from the tightened layer l to the later layers, keeping the tighter bound."""
    hl, hu = layers[l].post_activation()
    for k in range(l + 1, len(net.layers)):
        ia_lo, ia_hi = interval_layer(*net.layers[k], hl, hu)
        lo_k = np.maximum(layers[k].lower, ia_lo)
        layers[k] = LayerBounds(lo_k, np.maximum(np.minimum(layers[k].upper, ia_hi), lo_k))
        hl, hu = layers[k].post_activation()


def lp_bounds_parallel(
    net: Network,
    domain,
    *,
    executor=None,
    initial: Optional[Bounds] = None,
    output: bool = True,
    tol: float = LP_FEASIBILITY,
    time_limit_per_lp: Optional[float] = None,
    progress: bool = False,
    group_size: int = GROUP_SIZE,
    report: Optional[list] = None,
) -> Bounds:
    """:func:`mipnet.bounds.lp.lp_bounds` with each layer's LPs run as groups on ``executor``.

    ``executor``: None (in-process), a ``concurrent.futures.Executor`` or a
    ``dask.distributed.Client``; ``group_size`` neurons per unit; ``report``, a list, receives
    each layer's :class:`mipnet.parallel.RunReport`. On Ctrl-C raises
    :class:`Interrupted` with the sound bounds reached so far in ``partial``.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise InvalidArgumentError(f"group_size must be a positive integer, got {group_size!r}")
    t0 = time.perf_counter()
    domain = as_domain(domain, net.input_dim)
    layers = list(initial.layers) if initial is not None else symbolic_layers(net, domain)
    solves, notes = 0, []
    n_layers = len(net.layers)
    for l in range(n_layers):
        is_output = l == n_layers - 1
        if (l == 0 and not domain.has_constraints) or (is_output and not output):
            if not is_output:
                _propagate(net, layers, l)
            continue
        lo, hi = layers[l].lower.copy(), layers[l].upper.copy()
        todo = np.arange(lo.size) if is_output else np.flatnonzero((lo < 0) & (hi > 0))
        n_groups = min(todo.size, max(-(-todo.size // int(group_size)), MIN_GROUPS))
        groups = [g for g in np.array_split(todo, n_groups) if g.size] if todo.size else []
        base = {"is_output": is_output, "tol": float(tol), "time_limit_per_lp": time_limit_per_lp}
        tasks = [(net.layers[:l + 1], domain, tuple(layers[:l]), l, g,
                  {**base, "lo": lo[g], "hi": hi[g]}) for g in groups]
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
            notes.append(f"interrupted in layer {l + 1}: later layers keep their symbolic bounds")
            partial = Bounds(tuple(layers), "lp", time.perf_counter() - t0, solves, tuple(notes))
            raise Interrupted("LP bounds interrupted", partial=partial)
        if not is_output:
            _propagate(net, layers, l)
    return Bounds(tuple(layers), "lp", time.perf_counter() - t0, solves, tuple(notes))
