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

from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.sparse as sp

from mipnet.core.bounds import Bounds, LayerBounds, NeuronState
from mipnet.core.domain import Domain, L1BallDomain, as_domain
from mipnet.core.errors import InvalidNetworkError, SolverError
from mipnet.core.network import Network
from mipnet.solver.highs import INF, LinearModel, SolveResult

__all__ = ["HighsModel", "LayerVars", "NetworkVars"]



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


class HighsModel(LinearModel):
    """A HiGHS model over the input box of a domain, into which networks are encoded.

    Parameters
    ----------
    domain : Domain or (lower, upper)
        The input set; its box becomes the input columns' bounds and its
        linear constraints ``A x <= c`` become rows.
    options : dict, optional
        Extra HiGHS options, e.g. ``{"mip_feasibility_tolerance": 1e-7}``.
    time_limit : float, optional
        Default time limit of every solve of this model.
    """

    def __init__(self, domain, *, options: Optional[dict] = None, time_limit: Optional[float] = None) -> None:
        super().__init__(options=options, time_limit=time_limit)
        self.domain: Domain = as_domain(domain)
        self.input_cols = self.add_cols(self.domain.lower, self.domain.upper)
        if self.domain.has_constraints:
            self.add_rows(np.full(self.domain.A.shape[0], -INF), self.domain.c, self.domain.A, cols=self.input_cols)
        if isinstance(self.domain, L1BallDomain):
            self.add_l1_ball(self.input_cols, self.domain.l1_center, self.domain.l1_radius, self.domain.lower,
                             self.domain.upper)

    def add_l1_ball(self, cols, center, radius: float, lower, upper) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``sum_i |x_i - center_i| <= radius`` on the columns ``x = cols``; returns ``(p, q)``.

        ``x - center = p - q`` with ``p, q >= 0`` and ``sum(p + q) <= radius`` (the standard LP
        form of an L1 ball: exact, since some optimal point has ``p_i q_i = 0``). Each
        ``p_i`` / ``q_i`` is bounded by how far the box ``[lower, upper]`` of the columns lets
        ``x_i`` move above / below the centre (and by the radius).
        """
        cols = np.asarray(cols, dtype=np.int64)
        c = np.asarray(center, dtype=np.float64)
        n = cols.size
        lo, hi = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
        p = self.add_cols(np.zeros(n), np.clip(np.maximum(hi - c, 0.0), 0.0, radius))
        q = self.add_cols(np.zeros(n), np.clip(np.maximum(c - lo, 0.0), 0.0, radius))
        r = np.arange(n)
        one = np.ones(n)
        A = sp.csr_matrix((np.concatenate([one, -one, one, one, one]),
                           (np.concatenate([r, r, r, np.full(2 * n, n)]), np.concatenate([cols, p, q, p, q]))),
                          shape=(n + 1, self._num_cols))
        self.add_rows(np.concatenate([c, [-INF]]), np.concatenate([c, [float(radius)]]), A)
        return p, q

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
