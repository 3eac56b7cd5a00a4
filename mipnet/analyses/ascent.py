"""Local maximisation of one neuron's pre-activation by DC ascent: a short sequence of LPs.

A falsification heuristic for the stable-neuron search: an input at which a neuron takes a sign
that no proof has excluded shows the neuron unstable. It proves nothing; every point it returns
is checked by the caller's float64 forward pass.

For a hidden layer ``l >= 1`` and a sign ``s``, the pre-activation is

    s y^l_i(x) = c . relu(z(x)) + c0,    z = y^{l-1},  c = s W_l[i],  c0 = s b_l[i],

a difference of convex functions (the ReLUs with ``c_k > 0`` minus those with ``c_k < 0``). The
DC algorithm (Pham Dinh and Le Thi, Acta Math. Vietnamica 22, 1997; the convex-concave procedure
of Yuille and Rangarajan, Neural Computation 15, 2003) replaces the convex part by a tangent at
the current point ``x_t``: ``relu(z_k) >= z_k`` where ``z_k(x_t) > 0`` and ``>= 0`` elsewhere, so
with ``S = {k : c_k > 0, z_k(x_t) > 0}`` the LP

    max  sum_{k in S} c_k z_k(x) + sum_{k : c_k < 0} c_k t_k + c0
    s.t. t >= z(x),  t >= 0,  x in D

has an objective below ``s y^l_i`` everywhere and equal to it at ``x_t``: its optimum
``x_{t+1}`` has ``s y^l_i(x_{t+1}) >= s y^l_i(x_t)``. Unlike a gradient step, each step optimises
exactly over the whole domain: the concave part (the ReLUs that pull the value down) is kept
whole. For ``l >= 2``, ``z`` is affine in ``x`` only within the linear region of ``x_t``'s
activation pattern on layers ``0 .. l-2``; the LP keeps that region as constraints and takes the
pattern of each new point.

On the 784-400-400-10 Fashion-MNIST nets of ``benchmarks/bench_bounds.py`` (part 3) these steps
found inputs of the open sign for neurons that 400 sign-gradient starts left open.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
import scipy.sparse as sp

from mipnet.core.domain import Domain
from mipnet.core.network import Network
from mipnet.milp.encoding import INF, HighsModel
from mipnet.solver.highs import SolveStatus

__all__ = ["NeuronAscent"]

#: LP options of the ascent: its LPs are re-solved from the last basis with a new objective, where
#: presolve would only rebuild the model; HiGHS's default tolerances (a heuristic: every point is re-checked)
ASCENT_OPTIONS = {"presolve": "off"}


def _difference_rows(n: int) -> sp.csr_matrix:
    """``[I, -I]``: rows ``a_k - b_k`` for columns ``(a, b)``."""
    return sp.hstack([sp.identity(n, format="csr"), -sp.identity(n, format="csr")], format="csr")


class NeuronAscent:
    """DC ascent of ``+- y^l_i`` over ``domain`` for the neurons of affine layer ``l = layer >= 1``.

    One LP model for the layer, built once (the input domain, the layers before ``layer`` with
    their activation pattern as switchable rows, the columns ``z = y^{l-1}`` and ``t >= z, t >= 0``);
    each step changes the objective (and, for ``layer >= 2``, the pattern's bounds) and
    re-solves from the last basis.

    Examples
    --------
    >>> import numpy as np
    >>> from mipnet import Network, Box
    >>> net = Network([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.array([-0.5])])
    >>> asc = NeuronAscent(net, Box(-1, 1, dim=1), 1)
    >>> x, v, _ = asc.run(0, 1.0, np.array([0.1]))    # y = |x| - 0.5: from 0.1 up to a corner
    >>> float(v)
    0.5
    """

    def __init__(self, net: Network, domain: Domain, layer: int) -> None:
        if not 1 <= layer < len(net.layers):
            raise ValueError(f"layer must be an affine layer index in [1, {len(net.layers)}), got {layer}")
        self.net, self.domain, self.layer = net, domain, int(layer)
        m = HighsModel(domain, options=dict(ASCENT_OPTIONS))
        prev = m.input_cols
        self.y_cols, self.h_cols, self.link_rows = [], [], []
        for j in range(layer - 1):  # the region's layers: y = W h + b, and h = y (active) or h = 0 (inactive)
            W, b = net.layers[j]
            n = W.shape[0]
            y = m.add_affine(prev, W, b)
            h = m.add_cols(np.full(n, -INF), np.full(n, INF))
            rows = m.add_rows(np.zeros(n), np.zeros(n), _difference_rows(n), cols=np.concatenate([h, y]))
            self.y_cols.append(y)
            self.h_cols.append(h)
            self.link_rows.append(rows)
            prev = h
        W, b = net.layers[layer - 1]
        self.z_cols = m.add_affine(prev, W, b)
        n = W.shape[0]
        self.t_cols = m.add_cols(np.zeros(n), np.full(n, INF))
        m.add_rows(np.zeros(n), np.full(n, INF), _difference_rows(n), cols=np.concatenate([self.t_cols, self.z_cols]))
        self.model = m
        self.lps = 0

    def _set_pattern(self, ys: list) -> None:
        """The linear region of a point's pattern on layers 0 .. layer-2 (``ys``: its pre-activations)
        as the LP's constraints."""
        for j in range(self.layer - 1):
            act = ys[j] > 0
            self.model.change_col_bounds(self.y_cols[j], np.where(act, 0.0, -INF), np.where(act, INF, 0.0))
            self.model.change_col_bounds(self.h_cols[j], np.where(act, -INF, 0.0), np.where(act, INF, 0.0))
            self.model.change_row_bounds(self.link_rows[j], np.where(act, 0.0, -INF), np.where(act, 0.0, INF))

    def value(self, X: np.ndarray, i: int, sign: float) -> np.ndarray:
        """``sign * y^layer_i`` at the rows of X (float64 forward pass)."""
        return sign * self.net.preactivations(np.atleast_2d(X))[self.layer][:, i]

    def run(self, i: int, sign: float, x0: np.ndarray, *, max_steps: int = 30,
            until: Optional[float] = None) -> tuple[np.ndarray, float, list]:
        """Ascend ``sign * y^layer_i`` from ``x0``: ``(best point, its value, the points visited)``.

        Stops when a step gains nothing (relative 1e-12), after ``max_steps`` LPs, at ``until``
        (a ``time.perf_counter()`` value), or when an LP does not solve to optimality.
        """
        W, b = self.net.layers[self.layer]
        c = float(sign) * W[int(i)]
        c0 = float(sign) * float(b[int(i)])
        pos, neg = c > 0, c < 0
        x = np.asarray(x0, dtype=np.float64).copy()
        ys = self.net.preactivations(x)  # one forward pass per point: its value, z and pattern
        val = float(sign * ys[self.layer][i])
        trail = []
        for _ in range(int(max_steps)):
            left = None if until is None else until - time.perf_counter()
            if left is not None and left <= 0:
                break
            S = pos & (ys[self.layer - 1] > 0)
            cols = np.concatenate([self.z_cols[S], self.t_cols[neg]])
            coefs = np.concatenate([c[S], c[neg]])
            if self.layer >= 2:
                self._set_pattern(ys)
            self.model.set_objective(cols, coefs, offset=c0, maximize=True)
            res = self.model.solve(time_limit=left)
            self.lps += 1
            if res.status != SolveStatus.OPTIMAL or res.values is None:
                break
            xn = np.clip(res.values[self.model.input_cols], self.domain.lower, self.domain.upper)
            ys_n = self.net.preactivations(xn)
            vn = float(sign * ys_n[self.layer][i])
            trail.append(xn)
            if not vn > val + 1e-12 * max(1.0, abs(val)):
                break
            x, val, ys = xn, vn, ys_n
        return x, val, trail
