"""LP-relaxation bounds: each neuron's min and max over the triangle relaxation (Ehlers 2017)
of the layers before it, layer by layer (MIPVerify's "lp" step, Tjeng et al. ICLR 2019).

LP values are widened (:func:`lp_slack`) and intersected with the symbolic and interval
bounds; a solve that does not finish (time limit) keeps the previous (sound) bound, never an
unproven value.

How far an LP value may be from the true LP optimum: HiGHS stops when its primal and dual
residuals are below absolute tolerances (``tol`` = 1e-7 by default) of the *scaled* problem, and
its arithmetic rounds relative to the magnitudes of the objective. Measured against re-solves at
tolerance 1e-10 on random nets (weights scaled by 1e-3 .. 1e3, boxes up to 1e4), the error of
the default solve stayed below a seventh of the slack :func:`lp_slack` adds,
``tol (10 + ||w||_1) + 1e-12 (|w| |h| + |b| + |value|)``: an absolute floor of about
``tol`` (small weights), the feasibility tolerance times the coefficient norm, and a relative
part for large magnitudes. Primal infeasibility only errs on the safe side (a larger feasible
set); the slack covers suboptimality. (A rigorous alternative, Neumaier and Shcherbina's safe
dual bound, needs the LP's dual solution.)
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import numpy as np

from mipnet.bounds.interval import interval_layer, rounding_error
from mipnet.bounds.symbolic import symbolic_layers
from mipnet.core.bounds import Bounds, LayerBounds
from mipnet.core.domain import Domain, as_domain
from mipnet.core.errors import Interrupted, SolverError
from mipnet.core.network import Network
from mipnet.milp.encoding import HighsModel

__all__ = ["LP_FEASIBILITY", "lp_slack", "lp_bounds"]

log = logging.getLogger(__name__)

#: HiGHS's default primal and dual feasibility tolerance, the default ``tol`` of :func:`lp_bounds`.
LP_FEASIBILITY = 1e-7
#: Relative slack on the magnitudes of an LP objective (far above float64 rounding).
_REL = 1e-12


def lp_slack(value, w: np.ndarray, b, hmag: np.ndarray, *, tol: float = LP_FEASIBILITY):
    """How much an LP (or MILP dual) bound on ``w . h + b`` over ``|h| <= hmag`` is widened.

    ``tol (10 + ||w||_1) + 1e-12 (|w| hmag + |b| + |value|)`` plus the float64 rounding
    error of ``w . h + b`` (module docstring). ``w`` may be one row or a matrix (one row per
    objective; then ``b`` and ``value`` are vectors).
    """
    aw = np.abs(np.atleast_2d(w))
    ab = np.abs(np.atleast_1d(np.asarray(b, dtype=np.float64)))
    mag = aw @ hmag + ab
    out = tol * (10.0 + aw.sum(axis=1)) + _REL * (mag + np.abs(value)) + rounding_error(aw, hmag, ab)
    return out if np.ndim(w) == 2 else float(out[0])


def lp_bounds(
    net: Network,
    domain,
    *,
    initial: Optional[Bounds] = None,
    output: bool = True,
    tol: float = LP_FEASIBILITY,
    time_limit_per_lp: Optional[float] = None,
    progress: bool = False,
) -> Bounds:
    """LP-relaxation bounds, layer by layer (see module docstring).

    Parameters
    ----------
    initial : Bounds, optional
        Bounds to start from and intersect with (default: :func:`symbolic_bounds`).
    output : bool
        Also tighten the output layer (default True).
    tol : float
        The solver's feasibility tolerance that the widening of every LP value assumes
        (:func:`lp_slack`; HiGHS's default 1e-7).
    time_limit_per_lp : float, optional
        Seconds per LP; a neuron whose LP does not finish keeps its previous (sound) bound
        (and a note says so).

    Raises
    ------
    Interrupted
        On Ctrl-C; ``exc.partial`` holds the sound bounds reached so far (a :class:`Bounds`).
    """
    t0 = time.perf_counter()
    domain: Domain = as_domain(domain, net.input_dim)
    if initial is not None:
        layers = list(initial.layers)
    else:
        layers = symbolic_layers(net, domain)
    model = HighsModel(domain, time_limit=time_limit_per_lp)
    prev_cols = model.input_cols
    hmag = np.maximum(np.abs(domain.lower), np.abs(domain.upper))
    solves = 0
    notes: list[str] = []
    n_layers = len(net.layers)
    iterator = range(n_layers)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="LP bounds", unit="layer", file=None)
    l = 0
    try:
        for l in iterator:
            W, b = net.layers[l]
            is_output = l == n_layers - 1
            first_on_box = l == 0 and domain.is_box
            if not first_on_box and (output or not is_output):
                solves += _tighten_layer(model, prev_cols, W, b, layers, l, hmag, tol, is_output, notes)
            if not is_output:
                _propagate(net, layers, l)
                prev_cols = model.add_layer(prev_cols, W, b, layers[l], relax=True).h_cols
                hmag = np.maximum(layers[l].upper, 0.0)
    except KeyboardInterrupt:
        notes.append(f"interrupted in layer {l + 1}: later layers keep their symbolic bounds")
        partial = Bounds(tuple(layers), "lp", time.perf_counter() - t0, solves, tuple(notes))
        raise Interrupted("LP bounds interrupted", partial=partial) from None
    return Bounds(tuple(layers), "lp", time.perf_counter() - t0, solves, tuple(notes))


def _tighten_layer(model, prev_cols, W, b, layers, l, hmag, tol, is_output, notes) -> int:
    """Min and max of the neurons of layer l that matter over the model (the layers before l).

    Hidden neurons: only those not yet stable (their sign decides a binary), stopping at the
    first direction that settles the sign; outputs: all. ``layers[l]`` is updated neuron by
    neuron, so an interrupt leaves it sound. Returns the number of LPs solved.
    """
    lo, hi = layers[l].lower.copy(), layers[l].upper.copy()
    solves = 0
    todo = np.arange(W.shape[0]) if is_output else np.flatnonzero((lo < 0) & (hi > 0))
    for i in todo:
        for sense in (1, -1) if is_output else (-1, 1):
            if not is_output and ((sense == 1 and lo[i] >= 0) or (sense == -1 and hi[i] <= 0)):
                continue  # sign already settled by the other direction
            val = model.optimize_affine(prev_cols, W[i], b[i], maximize=(sense == 1))
            solves += 1
            if val is None:
                what = "max" if sense == 1 else "min"
                notes.append(f"layer {l + 1} neuron {i}: {what} LP not solved (time limit), kept the previous bound")
                continue
            slack = lp_slack(val, W[i], b[i], hmag, tol=tol)
            if sense == 1:
                hi[i] = min(hi[i], val + slack)
            else:
                lo[i] = max(lo[i], val - slack)
        if lo[i] > hi[i] + 1e-6 * (1 + abs(hi[i])):
            raise SolverError(
                f"layer {l + 1}: LP bound contradicts interval bounds (lower > upper); "
                "the domain may be empty or the solver wrong"
            )
        layers[l] = LayerBounds(lo, np.maximum(hi, lo))
    return solves


def _propagate(net: Network, layers: list, l: int) -> None:
    """Interval arithmetic from the tightened layer l to the later layers, keeping the tighter bound."""
    hl, hu = layers[l].post_activation()
    for k in range(l + 1, len(net.layers)):
        Wk, bk = net.layers[k]
        ia_lo, ia_hi = interval_layer(Wk, bk, hl, hu)
        lo_k = np.maximum(layers[k].lower, ia_lo)
        hi_k = np.minimum(layers[k].upper, ia_hi)
        layers[k] = LayerBounds(lo_k, np.maximum(hi_k, lo_k))
        hl, hu = layers[k].post_activation()
