"""LP-relaxation bounds: each neuron's min and max over the triangle relaxation (Ehlers 2017)
of the layers before it, layer by layer (MIPVerify's "lp" step, Tjeng et al. ICLR 2019).

LP values are widened by a small tolerance and intersected with interval bounds; a solve that
does not finish keeps the previous (sound) bound, never an unproven value.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import numpy as np

from mipnet.bounds.interval import interval_layer
from mipnet.bounds.symbolic import symbolic_bounds
from mipnet.core.bounds import Bounds, LayerBounds
from mipnet.core.domain import as_domain
from mipnet.core.errors import SolverError
from mipnet.core.network import Network
from mipnet.milp.encoding import HighsModel

__all__ = ["lp_bounds"]

log = logging.getLogger(__name__)


def lp_bounds(
    net: Network,
    domain,
    *,
    initial: Optional[Bounds] = None,
    output: bool = True,
    tol: float = 1e-7,
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
        Absolute widening of every LP value, covering solver tolerances.
    time_limit_per_lp : float, optional
        A neuron whose LP does not finish keeps its previous (sound) bound.
    """
    t0 = time.perf_counter()
    domain = as_domain(domain, net.input_dim)
    base = initial if initial is not None else symbolic_bounds(net, domain)
    layers = list(base.layers)
    model = HighsModel(domain, time_limit=time_limit_per_lp)
    prev_cols = model.input_cols
    solves = 0
    notes = []
    n_layers = len(net.layers)
    iterator = range(n_layers)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="LP bounds", unit="layer", file=None)
    for l in iterator:
        W, b = net.layers[l]
        is_output = l == n_layers - 1
        first_on_box = l == 0 and not domain.has_constraints
        lo, hi = layers[l].lower.copy(), layers[l].upper.copy()
        if not first_on_box and (output or not is_output):
            # the previous layers are in the model; only bound neurons that matter:
            # hidden neurons not yet stable (their sign decides a binary); outputs all.
            todo = np.arange(W.shape[0]) if is_output else np.flatnonzero((lo < 0) & (hi > 0))
            for i in todo:
                for sense in (1, -1) if is_output else (-1, 1):
                    if not is_output:
                        # early exit: sign already settled by the other direction
                        if sense == 1 and lo[i] >= 0:
                            continue
                        if sense == -1 and hi[i] <= 0:
                            continue
                    val = model.optimize_affine(prev_cols, W[i], b[i], maximize=(sense == 1))
                    solves += 1
                    if val is None:
                        notes.append(f"layer {l + 1} neuron {i}: LP not solved, kept previous bound")
                        continue
                    if sense == 1:
                        hi[i] = min(hi[i], val + tol * (1 + abs(val)))
                    else:
                        lo[i] = max(lo[i], val - tol * (1 + abs(val)))
            if np.any(lo > hi + 1e-6 * (1 + np.abs(hi))):
                raise SolverError(
                    f"layer {l + 1}: LP bound contradicts interval bounds (lower > upper); "
                    "the domain may be empty or the solver wrong"
                )
            hi = np.maximum(hi, lo)
        layers[l] = LayerBounds(lo, hi)
        if not is_output:
            # propagate IA from the tightened layer to later layers, keep the tighter
            hl, hu = layers[l].post_activation()
            for k in range(l + 1, n_layers):
                Wk, bk = net.layers[k]
                ia_lo, ia_hi = interval_layer(Wk, bk, hl, hu)
                lo_k = np.maximum(layers[k].lower, ia_lo)
                hi_k = np.minimum(layers[k].upper, ia_hi)
                layers[k] = LayerBounds(lo_k, np.maximum(hi_k, lo_k))
                hl, hu = layers[k].post_activation()
            prev_cols = model.add_layer(prev_cols, W, b, layers[l], relax=True).h_cols
    return Bounds(tuple(layers), "lp", time.perf_counter() - t0, solves, tuple(notes))
