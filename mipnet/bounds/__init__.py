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
* ``"lp"`` -- layer by layer, each neuron's min and max over the LP relaxation
  (the ReLU "triangle", Ehlers 2017) of the layers before it, with the tighter
  bounds found so far. LP values are widened by the solver's tolerance relative to
  the objective's magnitudes (:func:`lp_slack`) and always intersected with the
  symbolic and interval bounds; a solve that does not finish keeps the previous
  bound (never an unproven value).

Every bound is sound in floating point: interval and symbolic bounds are widened by a
bound on their float64 rounding error, relative to the magnitudes ``|W| |h| + |b|`` they
multiply (:func:`rounding_error`), never to the (possibly cancelled) result.

Bounds decide which neurons get binaries in a MILP: see :func:`classify_neurons`.
"""

from __future__ import annotations

from mipnet.bounds.interval import gamma, interval_bounds, interval_layer, interval_layers, rounding_error
from mipnet.bounds.lp import lp_bounds, lp_slack
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
    "lp_bounds",
    "lp_slack",
    "gamma",
    "rounding_error",
    "compute_bounds",
]


def compute_bounds(net: Network, domain, *, method: str = "lp", **kw) -> Bounds:
    """Bounds by name: ``"ia"`` (intervals), ``"symbolic"`` (back-substitution) or ``"lp"``."""
    if method == "ia":
        return interval_bounds(net, domain)
    if method == "symbolic":
        return symbolic_bounds(net, domain)
    if method == "lp":
        return lp_bounds(net, domain, **kw)
    raise InvalidArgumentError(f"unknown bounds method {method!r}; use 'ia', 'symbolic' or 'lp'")
