"""Back-substitution bounds: DeepPoly (Singh et al. POPL 2019) / CROWN (Zhang et al. NeurIPS 2018).

Each bound is a linear function of x obtained by pushing the linear ReLU relaxations back to
the input, maximised over the domain's box in closed form; intersected with interval bounds.
"""

from __future__ import annotations

import time

import numpy as np

from mipnet.bounds.interval import interval_bounds
from mipnet.core.bounds import Bounds, LayerBounds, NeuronState
from mipnet.core.domain import as_domain
from mipnet.core.network import Network

__all__ = ["symbolic_bounds", "relu_relaxation"]


def relu_relaxation(lb: LayerBounds):
    """Linear ReLU relaxation per neuron: slopes/intercepts of lower and upper lines."""
    L, U = lb.lower, lb.upper
    states = lb.states()
    unstable = states == NeuronState.UNSTABLE
    active = states == NeuronState.ACTIVE
    su = np.where(active, 1.0, 0.0)
    tu = np.zeros_like(L)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(unstable, U / np.where(unstable, U - L, 1.0), 0.0)
    su = np.where(unstable, s, su)
    tu = np.where(unstable, -s * L, tu)
    # CROWN's adaptive lower line: h >= y when U >= -L, else h >= 0
    sl = np.where(active | (unstable & (U >= -L)), 1.0, 0.0)
    return sl, su, tu


def symbolic_bounds(net: Network, domain) -> Bounds:
    """Back-substitution (DeepPoly/CROWN) bounds, intersected with interval bounds.

    For layer k, ``y^k = Lambda h^{k-1} + const`` is pushed back through every
    earlier layer, replacing each ReLU by its upper line where the coefficient
    is positive (lower line where negative) for the upper bound, and the other
    way round for the lower bound; the final linear function of x is
    maximised/minimised over the domain's box in closed form.
    """
    t0 = time.perf_counter()
    domain = as_domain(domain, net.input_dim)
    ia = interval_bounds(net, domain)
    xl, xu = domain.lower, domain.upper
    layers: list[LayerBounds] = []
    relax = []
    for k, (W, b) in enumerate(net.layers):
        # upper: Lu h + cu ; lower: Ll h + cl, over h = h^{k-1}
        Lu, Ll = W.copy(), W.copy()
        cu, cl = b.copy(), b.copy()
        for j in range(k - 1, -1, -1):
            sl, su, tu = relax[j]
            Lu_p, Lu_n = np.maximum(Lu, 0), np.minimum(Lu, 0)
            Ll_p, Ll_n = np.maximum(Ll, 0), np.minimum(Ll, 0)
            cu = cu + Lu_p @ tu
            cl = cl + Ll_n @ tu
            Lu = Lu_p * su + Lu_n * sl
            Ll = Ll_p * sl + Ll_n * su
            Wj, bj = net.layers[j]
            cu, cl = cu + Lu @ bj, cl + Ll @ bj
            Lu, Ll = Lu @ Wj, Ll @ Wj
        hi = np.maximum(Lu, 0) @ xu + np.minimum(Lu, 0) @ xl + cu
        lo = np.maximum(Ll, 0) @ xl + np.minimum(Ll, 0) @ xu + cl
        # widen for floating-point error of the products
        slack = 1e-12 * (np.abs(Lu) @ np.maximum(np.abs(xl), np.abs(xu)) + np.abs(cu) + 1.0)
        slack_l = 1e-12 * (np.abs(Ll) @ np.maximum(np.abs(xl), np.abs(xu)) + np.abs(cl) + 1.0)
        lo = np.maximum(lo - slack_l, ia.layers[k].lower)
        hi = np.minimum(hi + slack, ia.layers[k].upper)
        lb = LayerBounds(lo, np.maximum(hi, lo))
        layers.append(lb)
        relax.append(relu_relaxation(lb))
    return Bounds(tuple(layers), "symbolic", time.perf_counter() - t0)
