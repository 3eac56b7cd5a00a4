"""Sound pre-activation bounds and the one neuron classifier.

For every affine layer l (hidden layers and the output layer) we bound the
pre-activation ``y^l = W^l h^{l-1} + b^l`` over the input domain D:
``lower^l <= y^l(x) <= upper^l`` for every x in D.

Methods (MIPVerify's progression, Tjeng, Xiao and Tedrake, ICLR 2019,
arXiv:1711.07356):

* ``"ia"`` -- interval arithmetic: with h in [hl, hu], mid = (hl + hu) / 2,
  rad = (hu - hl) / 2, y in [W mid + b - |W| rad, W mid + b + |W| rad].
* ``"symbolic"`` -- back-substitution of linear ReLU relaxations to the input
  (DeepPoly, Singh et al. POPL 2019; CROWN, Zhang et al. NeurIPS 2018,
  arXiv:1811.00866): each bound is a linear function of x maximised over the
  box; matrix products only, usually far tighter than intervals.
* ``"alpha"`` -- optimised linear bounds (alpha-CROWN, Xu et al. ICLR 2021,
  arXiv:2011.13824): the lower ReLU slopes of the back-substitution optimised by
  projected gradient, per neuron and per bounded quantity, in torch; the result is
  re-evaluated and widened soundly in numpy (:mod:`mipnet.bounds.alpha`). Close to
  the LP bounds at a fraction of their cost.
* ``"lp"`` -- layer by layer, each neuron's min and max over the LP relaxation
  (the ReLU "triangle", Ehlers 2017) of the layers before it, with the tighter
  bounds found so far. LP values are widened by the solver's tolerance relative to
  the objective's magnitudes (:func:`lp_slack`) and always intersected with the
  symbolic and interval bounds; a solve that does not finish keeps the previous
  bound (never an unproven value). By default only where it pays: from the alpha
  bounds, for the signs of hidden neurons that no real input shows, each LP stopped
  once the sign is proven (:mod:`mipnet.bounds.lp`); ``sign_only=False`` gives the
  exact LP bounds.
* ``"auto"`` -- the cheapest route that settles the most neurons: symbolic; alpha
  if neurons are left unstable; sign-only LPs only for the neurons alpha leaves
  unstable and no input shows unstable (the output layer keeps alpha's bounds).

Every bound is sound in floating point: interval and symbolic bounds are widened by a
bound on their float64 rounding error, relative to the magnitudes ``|W| |h| + |b|`` they
multiply (:func:`rounding_error`), never to the (possibly cancelled) result.

Bounds decide which neurons get binaries in a MILP: see :func:`classify_neurons`.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from mipnet.bounds.alpha import AlphaOptions, alpha_bounds, alpha_difference_bounds, alpha_output_bounds, alpha_spec_bounds
from mipnet.bounds.alpha import difference_network
from mipnet.bounds.interval import gamma, interval_bounds, interval_layer, interval_layers, rounding_error
from mipnet.bounds.lp import LP_OPTIONS, GroupBounds, lp_bounds, lp_slack, tighten_neurons
from mipnet.bounds.symbolic import symbolic_bounds, symbolic_layers
from mipnet.core.bounds import Bounds, LayerBounds, NeuronState, classify_neurons
from mipnet.core.errors import InvalidArgumentError
from mipnet.core.network import Network

__all__ = [
    "NeuronState",
    "LayerBounds",
    "Bounds",
    "classify_neurons",
    "interval_bounds",
    "interval_layer",
    "interval_layers",
    "symbolic_bounds",
    "symbolic_layers",
    "alpha_spec_bounds",
    "lp_bounds",
    "lp_slack",
    "LP_OPTIONS",
    "tighten_neurons",
    "GroupBounds",
    "AlphaOptions",
    "alpha_bounds",
    "alpha_output_bounds",
    "alpha_difference_bounds",
    "difference_network",
    "auto_bounds",
    "METHODS",
    "check_bounds_arg",
    "gamma",
    "rounding_error",
    "compute_bounds",
]


#: The names :func:`compute_bounds` accepts, cheapest first.
METHODS = ("ia", "symbolic", "alpha", "lp", "auto")


def check_bounds_arg(name: str, bounds, net: Network) -> None:
    """Validate an analysis's ``bounds`` argument: None, a :data:`METHODS` name, or Bounds of ``net``."""
    if isinstance(bounds, str):
        if bounds not in METHODS:
            raise InvalidArgumentError(f"{name}: unknown bounds method {bounds!r}; use one of "
                                       f"{', '.join(METHODS)} or a mipnet.bounds.Bounds")
    elif bounds is not None and (not isinstance(bounds, Bounds) or len(bounds.layers) != len(net.layers)):
        raise InvalidArgumentError(f"{name} must be a mipnet.bounds.Bounds computed for this network (one "
                                   f"LayerBounds per affine layer) or a method name ({', '.join(METHODS)})")


def auto_bounds(net: Network, domain, *, output: bool = False, alpha_options=None, deadline: Optional[float] = None,
                **lp_kw) -> Bounds:
    """The cheapest route that settles the most neurons (``notes[0]`` says which):

    1. symbolic bounds; done if they settle every hidden neuron that later steps could (on a
       box the first layer's bounds are already exact);
    2. alpha-CROWN when it pays (:func:`~mipnet.bounds.lp.alpha_pays`: enough open neurons for
       the LPs it saves to outweigh its optimisation), stopped once no neuron settles any more (``stop_on_states``;
       give ``alpha_options`` to choose);
    3. sign-only LPs (:func:`lp_bounds`) for the neurons still open that no input shows unstable.

    ``output=True`` also solves the output layer's LPs; by default the output layer keeps the
    bounds of the last step that bounded it (alpha's, or symbolic). ``deadline`` (a
    ``time.perf_counter()`` value) stops alpha's steps and the LPs: what is left keeps the
    bounds of the step before (sound).
    """
    from mipnet.bounds.lp import alpha_pays, with_deadline
    from mipnet.core.domain import as_domain

    t0 = time.perf_counter()
    domain = as_domain(domain, net.input_dim)
    b = symbolic_bounds(net, domain)
    route = ["symbolic"]
    notes: list = []
    solves = 0

    def open_neurons(bounds) -> int:
        hidden = bounds.hidden if domain.has_constraints else bounds.hidden[1:]
        return sum(int(np.sum((lb.lower < 0) & (lb.upper > 0))) for lb in hidden)

    if open_neurons(b) or output:
        if alpha_pays(b.layers):
            # only the states matter before the sign-only LPs: stop once no neuron settles any more
            opts = with_deadline(alpha_options if alpha_options is not None else AlphaOptions(stop_on_states=True),
                                 deadline)
            b = alpha_bounds(net, domain, initial=b, output=not output, options=opts)
            route.append("alpha")
        if open_neurons(b) or output:
            b = lp_bounds(net, domain, initial=b, output=output, sign_only=True, deadline=deadline, **lp_kw)
            route.append("sign-only LPs")
            solves, notes = b.lp_solves, list(b.notes)
    notes.insert(0, "route: " + " -> ".join(route))
    return Bounds(b.layers, "auto", time.perf_counter() - t0, solves, tuple(notes))


def compute_bounds(net: Network, domain, *, method: str = "lp", deadline: Optional[float] = None, **kw) -> Bounds:
    """Bounds by name (:data:`METHODS`): ``"ia"`` (intervals), ``"symbolic"`` (back-substitution),
    ``"alpha"`` (optimised back-substitution, :func:`alpha_bounds`), ``"lp"`` (:func:`lp_bounds`)
    or ``"auto"`` (:func:`auto_bounds`). Keywords go to the chosen function. ``deadline`` (a
    ``time.perf_counter()`` value, an analysis's time limit) stops the LPs of ``"lp"`` and
    ``"auto"``: the neurons not tightened by then keep their earlier, sound bounds.

    Examples
    --------
    >>> from mipnet.core.domain import Box
    >>> net = Network.random([3, 8, 8, 2], seed=0)
    >>> [compute_bounds(net, Box(-1, 1, dim=3), method=m).method for m in METHODS]
    ['ia', 'symbolic', 'alpha', 'lp', 'auto']
    """
    if method not in METHODS:
        raise InvalidArgumentError(f"unknown bounds method {method!r}; use one of {', '.join(METHODS)}")
    if method in ("ia", "symbolic") and kw:
        raise InvalidArgumentError(f"method {method!r} takes no options, got {sorted(kw)}")
    if method == "ia":
        return interval_bounds(net, domain)
    if method == "symbolic":
        return symbolic_bounds(net, domain)
    if method == "alpha":
        return alpha_bounds(net, domain, **kw)
    if method == "lp":
        return lp_bounds(net, domain, deadline=deadline, **kw)
    return auto_bounds(net, domain, deadline=deadline, **kw)
