"""The same MILP formulation as :mod:`mipnet.encoding`, as a Pyomo Block.

For users who compose models: the block exposes ``x`` (inputs), ``y[l, i]``
(pre-activations of live neurons), ``h[l, i]`` (post-activations), ``z[l, i]``
(binaries of unstable neurons) and ``out[k]`` (outputs), so any constraint or
objective can be added on top and the model solved with HiGHS through Pyomo
(``pyo.SolverFactory("appsi_highs")``). The formulation (big-M with bounds,
no binaries for stable neurons) is the one of Tjeng et al. ICLR 2019
(arXiv:1711.07356); tests keep the two builders in agreement.

Building a Pyomo model costs a Python loop over neurons; the fast array
builder in :mod:`mipnet.encoding` is what the analyses use.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyomo.environ as pyo

from mipnet.solver.highs import new_highs

from mipnet.bounds import Bounds, NeuronState, lp_bounds
from mipnet.core.domain import L1BallDomain, as_domain
from mipnet.core.errors import SolverError
from mipnet.core.network import Network

__all__ = ["build_pyomo_block", "build_pyomo_model", "solve_pyomo"]


def build_pyomo_block(
    net: Network,
    domain,
    *,
    bounds: Optional[Bounds] = None,
    block: Optional[pyo.Block] = None,
    relax: bool = False,
) -> pyo.Block:
    """Encode ``net`` on ``domain`` into a Pyomo Block (a new one unless given).

    Parameters
    ----------
    bounds : Bounds, optional
        Pre-activation bounds (default: :func:`mipnet.bounds.lp_bounds`).
    relax : bool
        Use the LP triangle relaxation instead of binaries.
    """
    domain = as_domain(domain, net.input_dim)
    if bounds is None:
        bounds = lp_bounds(net, domain)
    blk = block if block is not None else pyo.Block(concrete=True)
    n0 = net.input_dim
    blk.inputs = pyo.RangeSet(0, n0 - 1)
    blk.x = pyo.Var(blk.inputs, bounds=lambda m, j: (float(domain.lower[j]), float(domain.upper[j])))
    if domain.has_constraints:
        A, c = domain.A, domain.c
        blk.domain_rows = pyo.Constraint(
            range(A.shape[0]),
            rule=lambda m, r: sum(float(A[r, j]) * m.x[j] for j in np.flatnonzero(A[r])) <= float(c[r]),
        )
    if isinstance(domain, L1BallDomain):  # sum_j |x_j - c_j| <= r as x - c = p - q, p, q >= 0 (HighsModel.add_l1_ball)
        ctr, rad = domain.l1_center, float(domain.l1_radius)
        blk.l1_p = pyo.Var(blk.inputs, bounds=(0.0, rad))
        blk.l1_q = pyo.Var(blk.inputs, bounds=(0.0, rad))
        blk.l1_split = pyo.Constraint(blk.inputs, rule=lambda m, j: m.x[j] - float(ctr[j]) == m.l1_p[j] - m.l1_q[j])
        blk.l1_radius = pyo.Constraint(expr=sum(blk.l1_p[j] + blk.l1_q[j] for j in blk.inputs) <= rad)

    idx_h, idx_y, idx_z = [], [], []
    states = bounds.states()
    for l, s in enumerate(states):
        for i in range(s.size):
            idx_h.append((l, i))
            if s[i] != NeuronState.INACTIVE:
                idx_y.append((l, i))
            if s[i] == NeuronState.UNSTABLE and not relax:
                idx_z.append((l, i))

    def h_bounds(m, l, i):
        lb = bounds.hidden[l]
        return (0.0, float(max(lb.upper[i], 0.0)))

    blk.h = pyo.Var(idx_h, bounds=h_bounds)
    blk.y = pyo.Var(idx_y, bounds=lambda m, l, i: (float(bounds.hidden[l].lower[i]), float(bounds.hidden[l].upper[i])))
    blk.z = pyo.Var(idx_z, domain=pyo.Binary)
    K = net.output_dim
    blk.outputs = pyo.RangeSet(0, K - 1)
    blk.out = pyo.Var(
        blk.outputs, bounds=lambda m, k: (float(bounds.output.lower[k]), float(bounds.output.upper[k]))
    )

    def prev(m, l, j):
        return m.x[j] if l == 0 else m.h[l - 1, j]

    def affine(m, l, i):
        W, b = net.layers[l]
        row = W[i]
        keep = np.flatnonzero(row)
        if l > 0:
            keep = keep[states[l - 1][keep] != NeuronState.INACTIVE]
        return sum(float(row[j]) * prev(m, l, j) for j in keep) + float(b[i])

    blk.pre = pyo.Constraint(idx_y, rule=lambda m, l, i: m.y[l, i] == affine(m, l, i))
    blk.relu = pyo.ConstraintList()
    for l, s in enumerate(states):
        L, U = bounds.hidden[l].lower, bounds.hidden[l].upper
        for i in range(s.size):
            if s[i] == NeuronState.INACTIVE:
                blk.h[l, i].fix(0.0)
            elif s[i] == NeuronState.ACTIVE:
                blk.relu.add(blk.h[l, i] == blk.y[l, i])
            else:
                blk.relu.add(blk.h[l, i] >= blk.y[l, i])
                if relax:
                    slope = float(U[i] / (U[i] - L[i]))
                    blk.relu.add(blk.h[l, i] <= slope * (blk.y[l, i] - float(L[i])))
                else:
                    blk.relu.add(blk.h[l, i] <= float(U[i]) * blk.z[l, i])
                    blk.relu.add(blk.h[l, i] <= blk.y[l, i] - float(L[i]) * (1 - blk.z[l, i]))
    last = net.num_hidden_layers
    blk.output_rows = pyo.Constraint(blk.outputs, rule=lambda m, k: m.out[k] == affine(m, last, k))
    blk._mipnet_net = None if relax else net  # what solve_pyomo re-checks a solution against
    return blk


def build_pyomo_model(net: Network, domain, **kw) -> pyo.ConcreteModel:
    """A ConcreteModel whose ``nn`` block encodes the network (see :func:`build_pyomo_block`)."""
    m = pyo.ConcreteModel()
    m.nn = pyo.Block(concrete=True)
    build_pyomo_block(net, domain, block=m.nn, **kw)
    return m


def solve_pyomo(model: pyo.ConcreteModel, *, time_limit: Optional[float] = None):
    """Solve with HiGHS through Pyomo (``appsi_highs``); return Pyomo's ``SolverResults``.

    A solution, if one was found, is loaded into the model; ``results.problem``
    holds the proven bound (``upper_bound`` for a maximisation). The outputs of every network
    block (:func:`build_pyomo_block`, not relaxed) in a loaded solution are checked against a
    float64 forward pass at its inputs: :class:`~mipnet.core.errors.SolverError` if they differ by
    more than 1e-5 relative, which happens when HiGHS's absolute tolerances are coarse for the
    network's values (weights ~1e8; :func:`mipnet.maximize_output` rescales such networks).
    """
    new_highs()  # the first Highs of a process prints a banner on stdout: absorb it silently
    solver = pyo.SolverFactory("appsi_highs")
    if time_limit is not None:
        solver.config.time_limit = float(time_limit)
    try:
        res = solver.solve(model, load_solutions=False)
    except IndexError as exc:  # appsi reading a solution shorter than its variables (seen on weights ~1e8)
        raise SolverError(f"Pyomo's HiGHS interface could not read the solution ({exc}); the model may be badly "
                          "scaled (rescale the weights; mipnet.maximize_output does so)") from exc
    if len(res.solution):
        model.solutions.load_from(res)
        _check_network_blocks(model)
    return res


def _check_network_blocks(model: pyo.ConcreteModel) -> None:
    """Raise SolverError if a network block's solution outputs are not the network's at its inputs."""
    for blk in [model] + list(model.component_data_objects(pyo.Block, descend_into=True)):
        net = getattr(blk, "_mipnet_net", None)
        if net is None:
            continue
        # an input in no row the solver saw (zero weights) has no value: the outputs do not depend on it
        x = np.array([blk.x[j].value if blk.x[j].value is not None else blk.x[j].lb for j in blk.inputs],
                     dtype=np.float64)
        out = np.array([pyo.value(blk.out[k]) for k in blk.outputs], dtype=np.float64)
        ref = net.forward(x)
        err = float(np.max(np.abs(out - ref)))
        if not err <= 1e-5 * (1.0 + float(np.max(np.abs(ref)))):
            raise SolverError(
                f"block {blk.name!r}: the solution's outputs {out.tolist()} differ from the network's forward pass at "
                f"its inputs, {ref.tolist()}: HiGHS's tolerances are too coarse for this network's values "
                "(rescale the weights; mipnet.maximize_output does so)")
