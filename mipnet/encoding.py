"""The MILP of a ReLU network, built from numpy arrays straight into HiGHS.

Formulation (big-M, Tjeng et al. ICLR 2019, arXiv:1711.07356; Serra et al.
ICML 2018, arXiv:1711.02114), per hidden neuron i of layer l with
pre-activation ``y_i = W_i h^{l-1} + b_i`` bounded by ``L_i <= y_i <= U_i``:

* stably inactive (U_i <= 0):  h_i = 0 (column fixed, no rows, no binary);
* stably active  (L_i >= 0):   h_i = y_i (one equality row, no binary);
* unstable:  h_i >= y_i,  h_i <= U_i z_i,  h_i <= y_i - L_i (1 - z_i),
  0 <= h_i <= U_i,  z_i in {0, 1}  (z_i = 1 iff the neuron is active).

With ``relax=True`` an unstable neuron gets the LP "triangle" instead of the
binary: h_i >= 0, h_i >= y_i, h_i <= U_i (y_i - L_i) / (U_i - L_i).

Every layer is added with one ``addCols`` and one ``addRows`` call from CSR
arrays; there is no Python loop over neurons or non-zeros. Several networks
can share one input vector (equivalence checking): call :meth:`HighsModel.add_network`
twice with the same ``input_cols``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional

import highspy
import numpy as np
import scipy.sparse as sp

from .bounds import Bounds, LayerBounds, NeuronState
from .domain import Domain, as_domain
from .errors import InvalidNetworkError, SolverError
from .network import Network

__all__ = ["HighsModel", "LayerVars", "NetworkVars", "SolveResult", "maximize_output"]

INF = highspy.kHighsInf


@dataclass(frozen=True, eq=False)
class LayerVars:
    """Columns of one hidden layer.

    ``h_cols``: post-activation per neuron; ``z_cols``: binary per neuron (-1
    where stable or relaxed); ``y_cols``: pre-activation per neuron (-1 where
    stably inactive); for a stably active neuron ``h_cols == y_cols``.
    """

    h_cols: np.ndarray
    z_cols: np.ndarray
    states: np.ndarray
    y_cols: np.ndarray

    @property
    def unstable(self) -> np.ndarray:
        """Indices of the unstable neurons of this layer."""
        return np.flatnonzero(self.z_cols >= 0)


@dataclass(frozen=True, eq=False)
class NetworkVars:
    """Where a network lives inside a :class:`HighsModel`."""

    input_cols: np.ndarray
    layers: tuple
    output_cols: np.ndarray
    bounds: Bounds

    @property
    def z_cols(self) -> np.ndarray:
        """Binary columns of all unstable neurons, layer by layer."""
        parts = [lv.z_cols[lv.z_cols >= 0] for lv in self.layers]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    @property
    def unstable_mask(self) -> np.ndarray:
        """Boolean mask over all hidden neurons: True where a binary exists."""
        parts = [lv.z_cols >= 0 for lv in self.layers]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)

    def pattern_from_solution(self, values: np.ndarray) -> np.ndarray:
        """Activation pattern of all hidden neurons implied by a solution vector.

        Stable neurons take their fixed state; unstable ones read z (rounded).
        """
        parts = []
        for lv in self.layers:
            on = lv.states == NeuronState.ACTIVE
            u = lv.z_cols >= 0
            on = on.copy()
            on[u] = values[lv.z_cols[u]] > 0.5
            parts.append(on)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


@dataclass(frozen=True, eq=False)
class SolveResult:
    """The outcome of one HiGHS solve, free of solver objects.

    ``status`` is one of ``optimal``, ``infeasible``, ``time_limit``,
    ``unbounded``, ``interrupted``, ``other``; ``highs_status`` keeps HiGHS's
    own text. For a maximisation, ``dual_bound`` is a proven upper bound on the
    optimum (a lower bound for minimisation); ``objective`` is the best value
    found (an attained value, if any). ``proven`` means the solve finished.
    """

    status: str
    highs_status: str
    objective: Optional[float]
    dual_bound: Optional[float]
    values: Optional[np.ndarray]
    seconds: float
    maximize: bool
    mip_gap: Optional[float] = None
    nodes: int = 0

    @property
    def proven(self) -> bool:
        return self.status in ("optimal", "infeasible")

    @property
    def has_solution(self) -> bool:
        return self.values is not None

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "highs_status": self.highs_status,
            "objective": self.objective,
            "dual_bound": self.dual_bound,
            "proven": self.proven,
            "seconds": self.seconds,
            "mip_gap": self.mip_gap,
            "nodes": self.nodes,
        }


_STATUS = {
    highspy.HighsModelStatus.kOptimal: "optimal",
    highspy.HighsModelStatus.kInfeasible: "infeasible",
    highspy.HighsModelStatus.kTimeLimit: "time_limit",
    highspy.HighsModelStatus.kUnbounded: "unbounded",
    highspy.HighsModelStatus.kUnboundedOrInfeasible: "unbounded_or_infeasible",
    highspy.HighsModelStatus.kInterrupt: "interrupted",
    highspy.HighsModelStatus.kSolutionLimit: "solution_limit",
    highspy.HighsModelStatus.kIterationLimit: "iteration_limit",
    highspy.HighsModelStatus.kObjectiveBound: "objective_bound",
    highspy.HighsModelStatus.kObjectiveTarget: "objective_target",
}


class HighsModel:
    """A HiGHS model over the input box of a domain, into which networks are encoded.

    Parameters
    ----------
    domain : Domain or (lower, upper)
        The input set; its box becomes the input columns' bounds and its
        linear constraints ``A x <= c`` become rows.
    options : dict, optional
        Extra HiGHS options, e.g. ``{"mip_feasibility_tolerance": 1e-7}``.
    """

    def __init__(self, domain, *, options: Optional[dict] = None) -> None:
        self.domain: Domain = as_domain(domain)
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("random_seed", 0)
        for k, v in (options or {}).items():
            self.highs.setOptionValue(k, v)
        self._num_cols = 0
        self._integer_cols = 0
        self._obj_cols = np.zeros(0, dtype=np.int64)
        self.input_cols = self.add_cols(self.domain.lower, self.domain.upper)
        if self.domain.has_constraints:
            A = sp.csr_matrix(self.domain.A)
            self.add_rows(np.full(A.shape[0], -INF), self.domain.c, A, cols=self.input_cols)

    # ---------------------------------------------------------------- raw building
    @property
    def num_cols(self) -> int:
        return self._num_cols

    @property
    def num_rows(self) -> int:
        return int(self.highs.getNumRow())

    @property
    def is_mip(self) -> bool:
        return self._integer_cols > 0

    def add_cols(self, lower, upper, *, integer: bool = False) -> np.ndarray:
        """Add columns with the given bounds (zero cost); return their indices."""
        lower = np.ascontiguousarray(lower, dtype=np.float64)
        upper = np.ascontiguousarray(upper, dtype=np.float64)
        n = lower.size
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        start = self._num_cols
        self.highs.addCols(
            n, np.zeros(n), lower, upper, 0, np.zeros(n, dtype=np.int32), np.zeros(0, dtype=np.int32), np.zeros(0)
        )
        idx = np.arange(start, start + n, dtype=np.int64)
        self._num_cols += n
        if integer:
            self.highs.changeColsIntegrality(
                n, idx.astype(np.int32), np.full(n, highspy.HighsVarType.kInteger)
            )
            self._integer_cols += n
        return idx

    def add_binaries(self, n: int) -> np.ndarray:
        return self.add_cols(np.zeros(n), np.ones(n), integer=True)

    def add_rows(self, lower, upper, A, *, cols=None) -> None:
        """Add rows ``lower <= A v <= upper``.

        ``A`` is a scipy sparse matrix (or dense array) whose columns are either
        all model columns, or the columns listed in ``cols``.
        """
        A = sp.csr_matrix(A)
        if cols is not None:
            cols = np.asarray(cols, dtype=np.int64)
            if A.shape[1] != cols.size:
                raise ValueError(f"A has {A.shape[1]} columns but {cols.size} column indices were given")
            indices = cols[A.indices]
        else:
            if A.shape[1] > self._num_cols:
                raise ValueError(f"A has {A.shape[1]} columns, the model {self._num_cols}")
            indices = A.indices
        m = A.shape[0]
        if m == 0:
            return
        lower = np.broadcast_to(np.asarray(lower, dtype=np.float64), (m,)).copy()
        upper = np.broadcast_to(np.asarray(upper, dtype=np.float64), (m,)).copy()
        self.highs.addRows(
            m,
            lower,
            upper,
            int(A.nnz),
            A.indptr[:-1].astype(np.int32),
            np.asarray(indices, dtype=np.int32),
            A.data.astype(np.float64),
        )

    # ---------------------------------------------------------------- network layers
    def add_layer(
        self,
        prev_cols: np.ndarray,
        W: np.ndarray,
        b: np.ndarray,
        bounds: LayerBounds,
        *,
        relax: bool = False,
        prev_states: Optional[np.ndarray] = None,
        tol: float = 0.0,
    ) -> LayerVars:
        """Encode one hidden ReLU layer on top of ``prev_cols`` (see module docstring).

        Pre-activations get explicit columns ``y = W h_prev + b`` (one row each,
        the only dense rows), so the ReLU rows have 2-3 non-zeros. A stably
        active neuron's ``h`` *is* its ``y`` column; a stably inactive one has
        neither row nor ``y`` column, only ``h`` fixed at 0.
        """
        W = np.asarray(W, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        n, m = W.shape
        if m != len(prev_cols):
            raise InvalidNetworkError(f"layer takes {m} inputs but {len(prev_cols)} columns were given")
        L, U = bounds.lower, bounds.upper
        states = bounds.states(tol)
        inactive = states == NeuronState.INACTIVE
        active = states == NeuronState.ACTIVE
        unstable = states == NeuronState.UNSTABLE
        live = np.flatnonzero(~inactive)
        uns = np.flatnonzero(unstable)
        k = uns.size

        # y columns (bounded by L, U) for live neurons, defined by y - W h_prev = b
        y_cols = np.full(n, -1, dtype=np.int64)
        if live.size:
            y_cols[live] = self.add_affine(prev_cols, W[live], b[live], LayerBounds(L[live], U[live]),
                                           prev_states=prev_states)
        h_cols = np.full(n, -1, dtype=np.int64)
        h_cols[active] = y_cols[active]
        if np.any(inactive):
            h_cols[inactive] = self.add_cols(np.zeros(int(inactive.sum())), np.zeros(int(inactive.sum())))
        if k:
            h_cols[uns] = self.add_cols(np.zeros(k), U[uns])
        z_cols = np.full(n, -1, dtype=np.int64)
        if k and not relax:
            z_cols[uns] = self.add_binaries(k)
        if k:
            Lu, Uu = L[uns], U[uns]
            hu, yu, zu = h_cols[uns], y_cols[uns], z_cols[uns]
            r = np.arange(k)
            one = np.ones(k)
            if relax:
                s = Uu / (Uu - Lu)
                # h - y >= 0 ;  h - s y <= -s L
                rows_r = np.concatenate([r, r, k + r, k + r])
                rows_c = np.concatenate([hu, yu, hu, yu])
                rows_v = np.concatenate([one, -one, one, -s])
                lo = np.concatenate([np.zeros(k), np.full(k, -INF)])
                hi = np.concatenate([np.full(k, INF), -s * Lu])
                nrows = 2 * k
            else:
                # h - y >= 0 ;  h - U z <= 0 ;  h - y - L z <= -L
                rows_r = np.concatenate([r, r, k + r, k + r, 2 * k + r, 2 * k + r, 2 * k + r])
                rows_c = np.concatenate([hu, yu, hu, zu, hu, yu, zu])
                rows_v = np.concatenate([one, -one, one, -Uu, one, -one, -Lu])
                lo = np.concatenate([np.zeros(k), np.full(2 * k, -INF)])
                hi = np.concatenate([np.full(k, INF), np.zeros(k), -Lu])
                nrows = 3 * k
            A = sp.csr_matrix((rows_v, (rows_r, rows_c)), shape=(nrows, self._num_cols))
            self.add_rows(lo, hi, A)
        return LayerVars(h_cols, z_cols, states, y_cols)

    def add_affine(
        self, prev_cols, W, b, bounds: Optional[LayerBounds] = None, *, prev_states=None
    ) -> np.ndarray:
        """Columns y = W v + b (one equality row each), bounded by ``bounds`` when given.

        Entries of W on columns of stably inactive neurons (``prev_states``) are dropped.
        """
        W = np.asarray(W, dtype=np.float64)
        if prev_states is not None and np.any(prev_states == NeuronState.INACTIVE):
            W = W * (prev_states != NeuronState.INACTIVE)
        n = W.shape[0]
        lo = bounds.lower if bounds is not None else np.full(n, -INF)
        hi = bounds.upper if bounds is not None else np.full(n, INF)
        y = self.add_cols(lo, hi)
        A = sp.hstack([sp.identity(n, format="csr"), -sp.csr_matrix(W)], format="csr")
        self.add_rows(b, b, A, cols=np.concatenate([y, np.asarray(prev_cols, dtype=np.int64)]))
        return y

    def add_network(
        self,
        net: Network,
        bounds: Bounds,
        *,
        input_cols: Optional[np.ndarray] = None,
        relax: bool = False,
        tol: float = 0.0,
        output_bounds: bool = True,
    ) -> NetworkVars:
        """Encode ``net`` (with its bounds on this model's domain); return its columns."""
        if len(bounds.layers) != len(net.layers):
            raise InvalidNetworkError(
                f"bounds have {len(bounds.layers)} layers, the network {len(net.layers)}; "
                "compute the bounds for this network"
            )
        cols = self.input_cols if input_cols is None else np.asarray(input_cols, dtype=np.int64)
        if cols.size != net.input_dim:
            raise InvalidNetworkError(f"the network takes {net.input_dim} inputs, the model has {cols.size}")
        layers = []
        prev_states = None
        for (W, b), lb in zip(net.layers[:-1], bounds.hidden):
            lv = self.add_layer(cols, W, b, lb, relax=relax, prev_states=prev_states, tol=tol)
            layers.append(lv)
            cols, prev_states = lv.h_cols, lv.states
        W, b = net.layers[-1]
        out = self.add_affine(cols, W, b, bounds.output if output_bounds else None, prev_states=prev_states)
        return NetworkVars(
            self.input_cols if input_cols is None else np.asarray(input_cols), tuple(layers), out, bounds
        )

    # ---------------------------------------------------------------- objective and solving
    def set_objective(self, cols, coefs, *, offset: float = 0.0, maximize: bool = True) -> None:
        """Replace the objective by ``sum coefs * v[cols] + offset``."""
        cols = np.asarray(cols, dtype=np.int64)
        coefs = np.broadcast_to(np.asarray(coefs, dtype=np.float64), cols.shape)
        if self._obj_cols.size:
            self.highs.changeColsCost(
                self._obj_cols.size, self._obj_cols.astype(np.int32), np.zeros(self._obj_cols.size)
            )
        # duplicates in cols add up
        uniq, inv = np.unique(cols, return_inverse=True)
        c = np.zeros(uniq.size)
        np.add.at(c, inv, coefs)
        if uniq.size:
            self.highs.changeColsCost(uniq.size, uniq.astype(np.int32), c)
        self._obj_cols = uniq
        self.highs.changeObjectiveOffset(float(offset))
        self.highs.changeObjectiveSense(
            highspy.ObjSense.kMaximize if maximize else highspy.ObjSense.kMinimize
        )

    def optimize_affine(self, cols, w, b: float = 0.0, *, maximize: bool = True) -> Optional[float]:
        """Optimal value of ``w . v[cols] + b`` (an LP or MILP); None unless solved to optimality.

        For a MILP the proven dual bound is returned (sound), not the incumbent.
        """
        w = np.asarray(w, dtype=np.float64)
        nz = np.flatnonzero(w)
        self.set_objective(np.asarray(cols)[nz], w[nz], offset=float(b), maximize=maximize)
        res = self.solve()
        if res.status != "optimal":
            return None
        return res.dual_bound

    def solve(
        self,
        *,
        time_limit: Optional[float] = None,
        mip_rel_gap: Optional[float] = None,
        objective_bound: Optional[float] = None,
    ) -> SolveResult:
        """Run HiGHS and return a :class:`SolveResult` (values of all columns).

        ``objective_bound`` stops a maximisation as soon as the dual bound drops
        below it (useful when only the sign of the optimum matters).
        """
        h = self.highs
        h.setOptionValue("time_limit", float(time_limit) if time_limit is not None else INF)
        if mip_rel_gap is not None:
            h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
        if objective_bound is not None:
            h.setOptionValue("objective_bound", float(objective_bound))
        t0 = time.perf_counter()
        h.run()
        seconds = time.perf_counter() - t0
        if objective_bound is not None:
            h.setOptionValue("objective_bound", INF)
        ms = h.getModelStatus()
        status = _STATUS.get(ms, "other")
        info = h.getInfo()
        maximize = h.getObjectiveSense()[1] == highspy.ObjSense.kMaximize
        has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
        values = np.array(h.getSolution().col_value, dtype=np.float64) if has_sol else None
        objective = float(info.objective_function_value) if has_sol else None
        if self.is_mip:
            db = float(info.mip_dual_bound)
            dual_bound = db if math.isfinite(db) else None
            gap = float(info.mip_gap) if math.isfinite(info.mip_gap) else None
            nodes = int(info.mip_node_count)
        else:
            dual_bound = objective if status == "optimal" else None
            gap, nodes = (0.0 if status == "optimal" else None), 0
        if status == "infeasible":
            dual_bound = -INF if maximize else INF
        if status == "optimal" and dual_bound is None:
            dual_bound = objective
        if status == "optimal" and objective is None:
            raise SolverError(f"HiGHS reported {h.modelStatusToString(ms)} without a solution")
        return SolveResult(
            status, h.modelStatusToString(ms), objective, dual_bound, values, seconds, maximize, gap, nodes
        )


def maximize_output(
    net: Network,
    domain,
    c,
    *,
    bounds: Optional[Bounds] = None,
    time_limit: Optional[float] = None,
) -> tuple[SolveResult, Optional[np.ndarray]]:
    """Maximise ``c . f(x)`` over the domain with the MILP; return the result and the best input.

    The input is checked by a float64 forward pass: raise :class:`SolverError`
    if the solver's objective and ``c . f(x)`` disagree by more than 1e-5 relative.
    """
    from .bounds import lp_bounds

    domain = as_domain(domain, net.input_dim)
    if bounds is None:
        bounds = lp_bounds(net, domain)
    model = HighsModel(domain)
    nv = model.add_network(net, bounds)
    c = np.asarray(c, dtype=np.float64).reshape(-1)
    if c.size != net.output_dim:
        raise InvalidNetworkError(f"c has {c.size} entries, the network has {net.output_dim} outputs")
    model.set_objective(nv.output_cols, c, maximize=True)
    res = model.solve(time_limit=time_limit)
    x = None
    if res.has_solution:
        x = np.clip(res.values[nv.input_cols], domain.lower, domain.upper)
        val = float(c @ net.forward(x))
        if abs(val - res.objective) > 1e-5 * (1 + abs(val)):
            raise SolverError(
                f"MILP objective {res.objective} but the forward pass at its input gives {val}"
            )
    return res, x
