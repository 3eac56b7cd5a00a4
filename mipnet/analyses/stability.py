"""Stably active and stably inactive ReLUs on a domain, with certificates.

A hidden neuron with pre-activation ``y_i(x)`` is *stably inactive* on D if
``max_{x in D} y_i(x) <= 0`` (then ``h_i = 0``), *stably active* if
``min_{x in D} y_i(x) >= 0`` (then ``h_i = y_i``), and *unstable* if D holds
inputs with ``y_i > 0`` and inputs with ``y_i < 0``. Stable neurons can be
removed or folded without changing the network on D (:mod:`mipnet.compression`).

Two exact methods, both on top of sound LP bounds (neurons whose bounds already
settle their sign need no MILP) and of *witness harvesting*: every input seen
(the domain's centre, random samples, the given data inside D, every MILP
solution) is pushed through a float64 forward pass, and each neuron that is
positive there (negative there) gets that input as a witness that it is not
stably inactive (not stably active).

``method="per_neuron"``
    Serra, Kumar and Ramalingam, "Lossless compression of deep neural
    networks", CPAIOR 2020, arXiv:2001.00218. Layer by layer, for each neuron
    without a witness, maximise ``y_i`` (or minimise it) over the MILP of the
    layers before it. Each solve stops early: a cutoff makes HiGHS prune every
    node whose bound is below ``tol`` (so an infeasible answer proves
    ``max y_i < tol``) and a target stops it at the first input with
    ``y_i >= tol`` (a witness). Neurons proven stable in layer l are encoded
    without binaries when layer l + 1 is examined, and their tighter bounds are
    propagated forward by interval arithmetic.
``method="one_milp"``
    Serra, Yu, Kumar and Ramalingam, "Scaling up exact neural network
    compression by ReLU stability", NeurIPS 2021, arXiv:2102.07804. One MILP
    over the candidate sets P (no witness of ``y_i > 0`` yet: possibly stably
    inactive) and Q (possibly stably active)::

        max  sum_{i in P} p_i + sum_{i in Q} q_i
        s.t. p_i <= z_i,  q_i <= 1 - z_i,  0 <= p, q <= 1,  network MILP.

    Every solution flips some candidates; the forward pass at its input removes
    them (their bounds p_i or q_i are fixed to 0) and the MILP is solved again.
    When it is infeasible under the cutoff ``objective >= 1/2`` (the optimum is
    an integer), the remaining candidates are proven stable.

Soundness rules: a neuron is called stable only by a sound bound or a finished
solve (never an incumbent); anything not settled within ``time_limit`` is
*unknown*, never stable; every witness is re-checked by a float64 forward pass
before the result is returned. The threshold ``tol`` is the numerical
tolerance of a proof: a neuron is stably inactive when its proven maximum is
``<= tol`` (its removal changes ``h_i`` by at most ``tol``).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.sparse as sp

from mipnet.bounds import Bounds, LayerBounds, NeuronState, lp_bounds
from mipnet.core.domain import Domain, as_domain
from mipnet.core.errors import InvalidDomainError, InvalidNetworkError, SolverError
from mipnet.core.network import Network
from mipnet.solver.highs import INF, check_options

__all__ = [
    "UNKNOWN",
    "LayerStability",
    "StabilityResult",
    "find_stable_neurons",
]

log = logging.getLogger(__name__)


#: Label of a neuron whose sign was not settled (time limit); next to the
#: :class:`~mipnet.bounds.NeuronState` values -1 (inactive), 0 (unstable), 1 (active).
UNKNOWN = 2
_LABELS = {-1: "inactive", 0: "unstable", 1: "active", UNKNOWN: "unknown"}
_METHODS = ("one_milp", "per_neuron")


def hidden_preactivations(net: Network, X) -> list[np.ndarray]:
    """Hidden pre-activations at the inputs X, with values inside their rounding error set to 0.

    A float64 forward pass computes ``y`` with an error of a few ulps of
    ``|W| |h| + |b|``; the sign of a smaller value can change with the batch
    size (BLAS kernels). Such values are neither positive nor negative witnesses.
    """
    h = np.atleast_2d(np.asarray(X, dtype=np.float64))
    out = []
    for W, b in net.layers[:-1]:
        y = h @ W.T + b
        margin = 1e-12 * (1.0 + np.abs(h) @ np.abs(W).T + np.abs(b))
        out.append(np.where(np.abs(y) > margin, y, 0.0))
        h = np.maximum(y, 0.0)
    return out


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    return max(deadline - time.perf_counter(), 0.0)


def _ia_layer(W, b, hl, hu) -> tuple[np.ndarray, np.ndarray]:
    """Interval arithmetic for ``W h + b`` with h in [hl, hu], widened by its rounding error."""
    mid = (hl + hu) / 2
    rad = (hu - hl) / 2
    c = W @ mid + b
    r = np.abs(W) @ rad
    eps = 8 * np.finfo(np.float64).eps * (np.abs(W) @ (np.abs(mid) + rad) + np.abs(b))
    return c - r - eps, c + r + eps


def _feasible_point(domain: Domain) -> np.ndarray:
    """A point of the domain found by an LP; raise if the domain is empty."""
    from mipnet.milp.encoding import HighsModel

    model = HighsModel(domain)
    res = model.solve()
    if res.status != "optimal":
        raise InvalidDomainError(f"the domain is empty (its LP is {res.highs_status}); check A x <= c and the box")
    return np.clip(res.values[model.input_cols], domain.lower, domain.upper)


def _domain_points(domain: Domain, data, samples: int, seed) -> np.ndarray:
    """Inputs of D to harvest witnesses from: the centre, ``samples`` random points, data inside D.

    Raises :class:`~mipnet.errors.InvalidDomainError` if the domain is empty: every
    MILP over an empty domain is infeasible, which would "prove" every neuron stable.
    """
    parts = []
    c = domain.center
    if domain.contains(c, tol=0.0):
        parts.append(c[None, :])
    if samples:
        try:
            parts.append(domain.sample(int(samples), seed=seed))
        except InvalidDomainError:  # a thin polytope: rejection sampling gives up
            pass
    if not parts:
        x = _feasible_point(domain)
        parts.append(x[None, :] if domain.contains(x, tol=1e-9) else np.zeros((0, domain.dim)))
    if data is not None:
        X = np.asarray(data, dtype=np.float64).reshape(len(data), -1)
        if X.shape[1] != domain.dim:
            raise InvalidDomainError(f"data has {X.shape[1]} features, the domain has {domain.dim} inputs")
        inside = domain.contains(X, tol=0.0)
        if not np.all(inside):
            log.info("%d of %d data points lie outside the domain and are ignored", int((~inside).sum()), len(X))
        parts.append(X[inside])
    return np.concatenate(parts) if parts else np.zeros((0, domain.dim))


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class LayerStability:
    """Stability of the neurons of one hidden layer.

    Attributes
    ----------
    layer : int
        1-based hidden layer index.
    states : int8 array
        -1 stably inactive, 1 stably active, 0 unstable, 2 unknown (:data:`UNKNOWN`).
    upper, lower : float arrays
        Proven bounds on the pre-activation over D. The certificate of a stably
        inactive neuron is ``upper <= tol``; of a stably active one ``lower >= -tol``.
    proof : array of str
        How each state was established: ``"bounds"`` (LP/interval bounds),
        ``"milp"`` (per-neuron MILP), ``"one_milp"`` (the single MILP),
        ``"witness"`` (unstable: inputs of both signs), ``""`` (unknown).
    witness_pos, witness_neg : int arrays
        Row of :attr:`StabilityResult.witnesses` where ``y_i > 0`` (``< 0``); -1 if none.
    """

    layer: int
    states: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    proof: np.ndarray
    witness_pos: np.ndarray
    witness_neg: np.ndarray

    @property
    def size(self) -> int:
        return int(self.states.size)

    def counts(self) -> dict:
        return {name: int(np.sum(self.states == v)) for v, name in _LABELS.items()}


@dataclass(frozen=True, eq=False)
class StabilityResult:
    """Stable, unstable and unknown neurons of every hidden layer on a domain.

    ``status`` is ``"complete"`` when every neuron was settled, ``"time_limit"``
    when some are unknown. ``witnesses`` holds the inputs that show neurons
    unstable (re-checked by a float64 forward pass).
    """

    layers: tuple
    witnesses: np.ndarray
    method: str
    tol: float
    seconds: float
    num_milps: int
    status: str
    message: str = ""
    bounds_method: str = "lp"
    time_limit: Optional[float] = None
    milp_seconds: float = 0.0
    notes: tuple = field(default_factory=tuple)

    # ------------------------------------------------------------ masks
    @property
    def states(self) -> list[np.ndarray]:
        return [ls.states for ls in self.layers]

    def state_vector(self) -> np.ndarray:
        return np.concatenate(self.states) if self.layers else np.zeros(0, dtype=np.int8)

    @property
    def stably_active(self) -> list[np.ndarray]:
        return [ls.states == NeuronState.ACTIVE for ls in self.layers]

    @property
    def stably_inactive(self) -> list[np.ndarray]:
        return [ls.states == NeuronState.INACTIVE for ls in self.layers]

    @property
    def unstable(self) -> list[np.ndarray]:
        return [ls.states == NeuronState.UNSTABLE for ls in self.layers]

    @property
    def unknown(self) -> list[np.ndarray]:
        return [ls.states == UNKNOWN for ls in self.layers]

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def num_stable(self) -> int:
        return int(np.sum(np.isin(self.state_vector(), (NeuronState.ACTIVE, NeuronState.INACTIVE))))

    @property
    def num_unknown(self) -> int:
        return int(np.sum(self.state_vector() == UNKNOWN))

    def counts(self) -> list[dict]:
        return [ls.counts() for ls in self.layers]

    def to_bounds(self, bounds: Bounds) -> Bounds:
        """``bounds`` tightened by the proven stable states (for encoders: no binaries there)."""
        layers = list(bounds.layers)
        for l, ls in enumerate(self.layers):
            lo, hi = layers[l].lower.copy(), layers[l].upper.copy()
            ina = ls.states == NeuronState.INACTIVE
            act = ls.states == NeuronState.ACTIVE
            hi[ina] = np.minimum(hi[ina], 0.0)
            lo[ina] = np.minimum(lo[ina], 0.0)
            lo[act] = np.maximum(lo[act], 0.0)
            hi[act] = np.maximum(hi[act], 0.0)
            layers[l] = LayerBounds(lo, hi)
        return Bounds(tuple(layers), bounds.method + "+stability", bounds.seconds, bounds.lp_solves, bounds.notes)

    # ------------------------------------------------------------ checks and output
    def check(self, net: Network, X=None) -> None:
        """Re-check every witness by a float64 forward pass, and every stable claim on ``X``.

        Raises :class:`~mipnet.errors.SolverError` on any contradiction.
        """
        if self.witnesses.shape[0]:
            ys = net.preactivations(self.witnesses)[:-1]
        for l, ls in enumerate(self.layers):
            for idx, sign in ((ls.witness_pos, 1.0), (ls.witness_neg, -1.0)):
                has = idx >= 0
                if np.any(has):
                    vals = ys[l][idx[has], np.flatnonzero(has)]
                    if np.any(sign * vals <= 0):
                        raise SolverError(f"layer {l + 1}: a stored witness does not have the claimed sign")
            uns = ls.states == NeuronState.UNSTABLE
            if np.any(uns & ((ls.witness_pos < 0) | (ls.witness_neg < 0))):
                raise SolverError(f"layer {l + 1}: a neuron is called unstable without witnesses of both signs")
        if X is not None and len(X):
            ys = net.preactivations(np.atleast_2d(X))[:-1]
            for l, ls in enumerate(self.layers):
                ina = ls.states == NeuronState.INACTIVE
                act = ls.states == NeuronState.ACTIVE
                if np.any(ys[l][:, ina] > self.tol) or np.any(ys[l][:, act] < -self.tol):
                    raise SolverError(f"layer {l + 1}: a neuron called stable changes sign on the given inputs")

    def to_dict(self, *, arrays: bool = True) -> dict:
        d = {
            "method": self.method,
            "status": self.status,
            "complete": self.complete,
            "message": self.message,
            "tol": self.tol,
            "seconds": self.seconds,
            "milp_seconds": self.milp_seconds,
            "num_milps": self.num_milps,
            "time_limit": self.time_limit,
            "bounds_method": self.bounds_method,
            "num_stable": self.num_stable,
            "num_unknown": self.num_unknown,
            "layers": [],
        }
        for ls in self.layers:
            entry = {"layer": ls.layer, "size": ls.size, **ls.counts()}
            if arrays:
                entry.update(
                    states=[_LABELS[int(s)] for s in ls.states],
                    upper=[float(v) for v in ls.upper],
                    lower=[float(v) for v in ls.lower],
                    proof=[str(p) for p in ls.proof],
                    witness_pos=ls.witness_pos.tolist(),
                    witness_neg=ls.witness_neg.tolist(),
                )
            d["layers"].append(entry)
        if arrays:
            d["witnesses"] = self.witnesses.tolist()
        if self.notes:
            d["notes"] = list(self.notes)
        return d

    def __str__(self) -> str:
        lines = [
            f"Stable neurons ({self.method}, {self.status}, {self.seconds:.2f} s, {self.num_milps} MILPs, "
            f"tol {self.tol:g})"
        ]
        for ls in self.layers:
            c = ls.counts()
            lines.append(
                f"  layer {ls.layer}: {ls.size:5d} neurons  inactive {c['inactive']:4d}  active {c['active']:4d}  "
                f"unstable {c['unstable']:4d}  unknown {c['unknown']:4d}"
            )
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- the search state
class _Search:
    """Bookkeeping shared by both methods: proven bounds, witnesses, MILP counts."""

    def __init__(self, net: Network, domain: Domain, bounds: Bounds, tol: float, deadline,
                 options: Optional[dict] = None) -> None:
        self.options = options
        self.net = net
        self.domain = domain
        self.tol = tol
        self.deadline = deadline
        self.L = net.num_hidden_layers
        self.upper = [lb.upper.copy() for lb in bounds.hidden]
        self.lower = [lb.lower.copy() for lb in bounds.hidden]
        self.proof = [np.full(n, "", dtype=object) for n in net.hidden_widths]
        for l in range(self.L):
            stable = (self.upper[l] <= tol) | (self.lower[l] >= -tol)
            self.proof[l][stable] = "bounds"
        self.wpos = [np.full(n, -1, dtype=np.int64) for n in net.hidden_widths]
        self.wneg = [np.full(n, -1, dtype=np.int64) for n in net.hidden_widths]
        self.witnesses: list[np.ndarray] = []
        self.num_milps = 0
        self.milp_seconds = 0.0
        self.timed_out = False
        self.notes: list[str] = []

    # -------------------------------------------------------------- witnesses
    def harvest(self, X: np.ndarray) -> int:
        """Record witnesses from the inputs X (float64 forward pass); return how many neurons gained one."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[0] == 0 or self.L == 0:
            return 0
        ys = hidden_preactivations(self.net, X)
        gained = 0
        used: dict[int, int] = {}

        def row(j: int) -> int:
            if j not in used:
                used[j] = len(self.witnesses)
                self.witnesses.append(X[j].copy())
            return used[j]

        for l, y in enumerate(ys):
            jmax = np.argmax(y, axis=0)
            jmin = np.argmin(y, axis=0)
            n = y.shape[1]
            ymax = y[jmax, np.arange(n)]
            ymin = y[jmin, np.arange(n)]
            new_pos = (ymax > 0) & (self.wpos[l] < 0)
            new_neg = (ymin < 0) & (self.wneg[l] < 0)
            # an input beyond a proven bound: within solver tolerances, widen the bound (the input is
            # the truth); far beyond, the bounds are wrong
            over = ymax - self.upper[l]
            under = self.lower[l] - ymin
            if np.any(over > 1e-4 * (1 + np.abs(self.upper[l]))) or np.any(
                under > 1e-4 * (1 + np.abs(self.lower[l]))
            ):
                raise SolverError(f"layer {l + 1}: an input of the domain violates a proven bound")
            if np.any(over > 0) or np.any(under > 0):
                for i in np.flatnonzero((over > 0) | (under > 0)):
                    self.notes.append(f"layer {l + 1} neuron {int(i)}: bound widened to an observed value "
                                      f"(solver tolerance)")
                self.upper[l] = np.maximum(self.upper[l], ymax)
                self.lower[l] = np.minimum(self.lower[l], ymin)
            for i in np.flatnonzero(new_pos):
                self.wpos[l][i] = row(int(jmax[i]))
            for i in np.flatnonzero(new_neg):
                self.wneg[l][i] = row(int(jmin[i]))
            gained += int(new_pos.sum() + new_neg.sum())
        return gained

    def gradient_search(self, X: np.ndarray, *, steps: int, starts: int = 8, seed=0) -> int:
        """Look for witnesses of the open neurons by projected sign-gradient ascent on ``+-y_i``.

        A falsification heuristic (it never proves anything): from the ``starts``
        inputs with the largest ``sign * y_i`` seen so far, step along the sign of
        the local gradient of ``sign * y_i`` (exact on the current linear region),
        with steps shrinking from a quarter of the box width; points leaving a
        polytope domain are dropped. Every iterate is harvested.
        """
        if len(X) == 0:
            return 0
        lo, hi = self.domain.lower, self.domain.upper
        width = hi - lo
        found = 0
        for l in range(self.L):
            for sign, needs in ((1.0, self.needs_pos(l)), (-1.0, self.needs_neg(l))):
                idx = np.flatnonzero(needs)
                if idx.size == 0:
                    continue
                yl = self.net.preactivations(X)[l]
                for i in idx:
                    if not (self.needs_pos(l)[i] if sign > 0 else self.needs_neg(l)[i]):
                        continue  # settled by an earlier neuron's iterates
                    P = X[np.argsort(-sign * yl[:, i])[:starts]].copy()
                    trail = []
                    for t in range(steps):
                        g = self._grad(P, l, i) * sign
                        P = np.clip(P + (0.25 * 0.8 ** t) * width * np.sign(g), lo, hi)
                        if self.domain.has_constraints:
                            P = P[self.domain.contains(P, tol=0.0)]
                            if len(P) == 0:
                                break
                        trail.append(P)
                    if trail:
                        found += self.harvest(np.concatenate(trail))
        return found

    def _grad(self, P: np.ndarray, l: int, i: int) -> np.ndarray:
        """Gradient of ``y_i^l`` with respect to the input at each row of P (its linear region's slope)."""
        hs = [P]
        h = P
        for W, b in self.net.layers[:l]:
            h = np.maximum(h @ W.T + b, 0.0)
            hs.append(h)
        g = np.broadcast_to(self.net.layers[l][0][i], (len(P), self.net.layers[l][0].shape[1]))
        for k in range(l - 1, -1, -1):
            g = (g * (hs[k + 1] > 0)) @ self.net.layers[k][0]
        return g

    def solution_input(self, values: np.ndarray, input_cols) -> Optional[np.ndarray]:
        x = np.clip(values[np.asarray(input_cols)], self.domain.lower, self.domain.upper)
        if self.domain.has_constraints and not self.domain.contains(x, tol=1e-9):
            return None
        return x

    # -------------------------------------------------------------- states
    def inactive(self, l: int) -> np.ndarray:
        return self.upper[l] <= self.tol

    def active(self, l: int) -> np.ndarray:
        return (self.lower[l] >= -self.tol) & ~self.inactive(l)

    def stable(self, l: int) -> np.ndarray:
        return self.inactive(l) | self.active(l)

    def needs_pos(self, l: int) -> np.ndarray:
        """Neurons that might be stably inactive: no witness of y > 0, not yet settled."""
        return ~self.stable(l) & (self.wpos[l] < 0)

    def needs_neg(self, l: int) -> np.ndarray:
        return ~self.stable(l) & (self.wneg[l] < 0)

    def layer_bounds(self) -> list[LayerBounds]:
        """Current bounds, with proven stable neurons clamped so the encoder drops their binaries."""
        out = []
        for l in range(self.L):
            lo, hi = self.lower[l].copy(), self.upper[l].copy()
            ina, act = self.inactive(l), self.active(l)
            hi[ina] = 0.0
            lo[ina] = np.minimum(lo[ina], 0.0)
            lo[act] = 0.0
            hi[act] = np.maximum(hi[act], 0.0)
            out.append(LayerBounds(lo, hi))
        return out

    def propagate(self, start: int) -> None:
        """Interval arithmetic from hidden layer ``start`` onwards, intersected with what is known."""
        lbs = self.layer_bounds()
        hl, hu = lbs[start].post_activation()
        for k in range(start + 1, self.L):
            W, b = self.net.layers[k]
            lo, hi = _ia_layer(W, b, hl, hu)
            newly = ~self.stable(k)
            self.lower[k] = np.maximum(self.lower[k], lo)
            self.upper[k] = np.minimum(self.upper[k], hi)
            self.upper[k] = np.maximum(self.upper[k], self.lower[k])
            self.proof[k][newly & self.stable(k)] = "bounds"
            hl, hu = self.layer_bounds()[k].post_activation()

    def timed_up(self) -> bool:
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.timed_out = True
        return self.timed_out

    # -------------------------------------------------------------- one sign question
    def settle(self, model, y_col: int, input_cols, l: int, i: int, sign: int, proof: str) -> None:
        """Max ``sign * y_i`` with cutoff/target at ``tol``: a witness, a proof, or nothing (time)."""
        model.set_objective([y_col], [float(sign)], maximize=True)
        res = model.solve(cutoff=self.tol, target=self.tol, time_limit=_remaining(self.deadline))
        self.num_milps += 1
        self.milp_seconds += res.seconds
        if res.has_solution:
            x = self.solution_input(res.values, input_cols)
            if x is not None:
                self.harvest(x)
        if res.status == "infeasible":  # nothing reaches tol: proven
            self._prove(l, i, sign, self.tol, proof)
        elif res.dual_bound is not None and math.isfinite(res.dual_bound):
            # nodes below the cutoff were pruned, so the proven maximum is max(dual bound, cutoff)
            bound = max(res.dual_bound, self.tol) if model.is_mip else res.dual_bound
            self._prove(l, i, sign, bound, proof)  # a valid bound, maybe not decisive
        if res.status == "time_limit":
            self.timed_out = True
        elif not res.proven and res.status != "objective_target":
            self.notes.append(f"layer {l + 1} neuron {i}: solver status {res.highs_status}")

    def _prove(self, l: int, i: int, sign: int, value: float, proof: str) -> None:
        was_stable = bool(self.stable(l)[i])
        if sign > 0:
            self.upper[l][i] = min(self.upper[l][i], value)
        else:
            self.lower[l][i] = max(self.lower[l][i], -value)
        if self.lower[l][i] > self.upper[l][i]:
            # both bounds proven with tolerances; the neuron is (numerically) constant
            self.upper[l][i] = self.lower[l][i] = (self.lower[l][i] + self.upper[l][i]) / 2
        if not was_stable and self.stable(l)[i]:
            self.proof[l][i] = proof

    # -------------------------------------------------------------- result
    def result(self, method: str, t0: float, time_limit, bounds_method: str) -> StabilityResult:
        layers = []
        W = np.array(self.witnesses) if self.witnesses else np.zeros((0, self.net.input_dim))
        for l in range(self.L):
            n = self.net.hidden_widths[l]
            states = np.full(n, UNKNOWN, dtype=np.int8)
            ina, act = self.inactive(l), self.active(l)
            uns = ~ina & ~act & (self.wpos[l] >= 0) & (self.wneg[l] >= 0)
            states[ina] = NeuronState.INACTIVE
            states[act] = NeuronState.ACTIVE
            states[uns] = NeuronState.UNSTABLE
            proof = self.proof[l].copy()
            proof[uns] = "witness"
            proof[states == UNKNOWN] = ""
            # witnesses are reported where they exist (a stable neuron keeps none by construction)
            layers.append(LayerStability(l + 1, states, self.upper[l].copy(), self.lower[l].copy(),
                                         proof.astype(str), self.wpos[l].copy(), self.wneg[l].copy()))
        n_unknown = sum(int(np.sum(ls.states == UNKNOWN)) for ls in layers)
        status = "complete" if n_unknown == 0 else "time_limit"
        msg = "" if n_unknown == 0 else (
            f"{n_unknown} neurons unknown: not settled within the time limit of {time_limit} s"
        )
        return StabilityResult(tuple(layers), W, method, self.tol, time.perf_counter() - t0, self.num_milps,
                               status, msg, bounds_method, time_limit, self.milp_seconds, tuple(self.notes))


# ---------------------------------------------------------------------------- the two methods
def _per_neuron(s: _Search) -> None:
    """Serra, Kumar, Ramalingam (CPAIOR 2020): one early-stopped MILP per neuron and sign."""
    from mipnet.milp.encoding import HighsModel

    net = s.net
    for l in range(s.L):
        if s.timed_up():
            return
        todo = np.flatnonzero(s.needs_pos(l) | s.needs_neg(l))
        if todo.size:
            lbs = s.layer_bounds()
            model = HighsModel(s.domain, options=s.options)
            cols, prev_states = model.input_cols, None
            for k in range(l):
                W, b = net.layers[k]
                lv = model.add_layer(cols, W, b, lbs[k], prev_states=prev_states)
                cols, prev_states = lv.h_cols, lv.states
            W, b = net.layers[l]
            y = model.add_affine(cols, W, b, LayerBounds(s.lower[l], s.upper[l]), prev_states=prev_states)
            # neurons with the larger negative part are likelier inactive: ask max y first
            for i in todo:
                first = 1 if -s.lower[l][i] >= s.upper[l][i] else -1
                for sign in (first, -first):
                    if s.stable(l)[i] or s.timed_up():
                        break
                    need = s.needs_pos(l)[i] if sign > 0 else s.needs_neg(l)[i]
                    if need:
                        s.settle(model, int(y[i]), model.input_cols, l, int(i), sign, "milp")
        if np.any(s.stable(l)):
            s.propagate(l)


def _one_milp(s: _Search) -> None:
    """Serra, Yu, Kumar, Ramalingam (NeurIPS 2021): one MILP over all candidates, re-solved."""
    from mipnet.milp.encoding import HighsModel

    net = s.net
    lbs = s.layer_bounds()
    model = HighsModel(s.domain, options=s.options)
    cols, prev_states = model.input_cols, None
    lvs = []
    for k in range(s.L):
        W, b = net.layers[k]
        lv = model.add_layer(cols, W, b, lbs[k], prev_states=prev_states)
        lvs.append(lv)
        cols, prev_states = lv.h_cols, lv.states
    # candidate binaries: p_i = 1 only where y_i >= eps (i in P), q_i = 1 only where y_i <= -eps (i in Q):
    #   p_i <= z_i,  y_i - (eps - L_i) p_i >= L_i ;   q_i + z_i <= 1,  y_i + (eps + U_i) q_i <= U_i.
    # (Binary rather than continuous p, q: a continuous p_i <= z_i lets the solver "flip" a neuron at
    # y_i = 0 exactly, which is no witness.)
    eps = max(s.tol, 1e-9)
    cand = []  # (layer, neuron, sign, col)
    blocks = []
    for l, lv in enumerate(lvs):
        for sign, mask in ((1, s.needs_pos(l)), (-1, s.needs_neg(l))):
            idx = np.flatnonzero(mask)
            if idx.size == 0:
                continue
            zc, yc = lv.z_cols[idx], lv.y_cols[idx]
            if np.any(zc < 0) or np.any(yc < 0):
                raise SolverError(f"layer {l + 1}: a candidate neuron has no binary; bounds and states disagree")
            c = model.add_binaries(idx.size)
            cand.extend((l, int(i), sign, int(cc)) for i, cc in zip(idx, c))
            blocks.append((sign, c, zc, yc, s.lower[l][idx], s.upper[l][idx]))
    if not cand:
        return
    rows_r, rows_c, rows_v, lo, hi = [], [], [], [], []
    r0 = 0
    for sign, c, zc, yc, Lb, Ub in blocks:
        k = c.size
        r = np.arange(k)
        one = np.ones(k)
        if sign > 0:   # p - z <= 0 ;  y - (eps - L) p >= L
            rows_r += [r0 + r, r0 + r, r0 + k + r, r0 + k + r]
            rows_c += [c, zc, yc, c]
            rows_v += [one, -one, one, -(eps - Lb)]
            lo += [np.full(k, -INF), Lb]
            hi += [np.zeros(k), np.full(k, INF)]
        else:          # q + z <= 1 ;  y + (eps + U) q <= U
            rows_r += [r0 + r, r0 + r, r0 + k + r, r0 + k + r]
            rows_c += [c, zc, yc, c]
            rows_v += [one, one, one, eps + Ub]
            lo += [np.full(k, -INF), np.full(k, -INF)]
            hi += [np.ones(k), Ub]
        r0 += 2 * k
    A = sp.csr_matrix((np.concatenate(rows_v), (np.concatenate(rows_r), np.concatenate(rows_c))),
                      shape=(r0, model.num_cols))
    model.add_rows(np.concatenate(lo), np.concatenate(hi), A)
    cand_cols = np.array([c[3] for c in cand], dtype=np.int64)
    alive = np.ones(len(cand), dtype=bool)

    def still_needed(j: int) -> bool:
        l, i, sign, _ = cand[j]
        return bool(s.needs_pos(l)[i] if sign > 0 else s.needs_neg(l)[i])

    def retire(mask: np.ndarray) -> None:
        idx = np.flatnonzero(mask & alive)
        if idx.size:
            model.change_col_bounds(cand_cols[idx], 0.0, 0.0)
            alive[idx] = False

    while alive.any():
        if s.timed_up():
            return
        model.set_objective(cand_cols[alive], 1.0, maximize=True)
        res = model.solve(cutoff=0.5, target=0.5, time_limit=_remaining(s.deadline))
        s.num_milps += 1
        s.milp_seconds += res.seconds
        if res.status == "infeasible" or (res.status == "optimal" and res.dual_bound is not None
                                          and res.dual_bound < 0.5):
            # no candidate can flip: every remaining candidate is proven stable
            for j in np.flatnonzero(alive):
                l, i, sign, _ = cand[j]
                s._prove(l, i, sign, 0.0, "one_milp")
            alive[:] = False
            return
        if not res.has_solution:
            # time limit (or a solver failure) without a decision: the remaining candidates stay unknown
            s.timed_out = True
            if res.status != "time_limit":
                s.notes.append(f"one-MILP stopped with solver status {res.highs_status}")
            return
        x = s.solution_input(res.values, model.input_cols)
        gained = s.harvest(x) if x is not None else 0
        retire(np.array([not still_needed(j) for j in range(len(cand))]))
        if gained == 0:
            # the claimed flips are numerical ties (y_i ~ 0): settle those candidates one by one
            claimed = np.flatnonzero(alive & (res.values[cand_cols] > 0.5))
            if claimed.size == 0:
                raise SolverError("the one-MILP reported flips that its solution does not show")
            for j in claimed:
                l, i, sign, _ = cand[j]
                if s.timed_up():
                    return
                # the one-MILP model serves as the per-neuron model (p, q = 0 is always feasible)
                s.settle(model, int(lvs[l].y_cols[i]), model.input_cols, l, i, sign, "milp")
                if still_needed(j):  # neither witness nor proof: leave it unknown
                    s.notes.append(f"layer {l + 1} neuron {i}: not settled by its own MILP")
                one = np.zeros(len(cand), dtype=bool)
                one[j] = True
                retire(one)
            retire(np.array([not still_needed(j) for j in range(len(cand))]))


# ---------------------------------------------------------------------------- entry point
def _validate(net, domain, method, data, time_limit, bounds, tol, samples, search_steps=0):
    if not isinstance(net, Network):
        raise InvalidNetworkError(f"net must be a mipnet.Network, got {type(net).__name__}; "
                                  "load a model with mipnet.io.load_network")
    if net.num_hidden_layers == 0:
        raise InvalidNetworkError("the network has no hidden layer, so no ReLU can be stable or unstable")
    domain = as_domain(domain, net.input_dim)
    method = str(method).replace("-", "_")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if time_limit is not None and not (time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
    if not (tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if int(samples) != samples or samples < 0:
        raise ValueError(f"samples must be a non-negative integer, got {samples!r}")
    if int(search_steps) != search_steps or search_steps < 0:
        raise ValueError(f"search_steps must be a non-negative integer, got {search_steps!r}")
    if bounds is not None:
        if not isinstance(bounds, Bounds) or len(bounds.layers) != len(net.layers):
            raise ValueError("bounds must be a mipnet.bounds.Bounds computed for this network "
                             "(one LayerBounds per affine layer)")
    if data is not None:
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != net.input_dim:
            raise ValueError(f"data must have shape (N, {net.input_dim}), got {data.shape}")
    return domain, method, data


def find_stable_neurons(
    net: Network,
    domain,
    *,
    method: str = "per_neuron",
    data=None,
    time_limit: Optional[float] = None,
    bounds: Optional[Bounds] = None,
    tol: float = 1e-6,
    samples: int = 1000,
    seed: int = 0,
    search_steps: int = 20,
    solver_options: Optional[dict] = None,
) -> StabilityResult:
    """Find the stably active and stably inactive neurons of ``net`` on ``domain``.

    Parameters
    ----------
    net : Network
    domain : Domain or (lower, upper)
    method : {"per_neuron", "one_milp"}
        Early-stopped MILPs per neuron, layer by layer (Serra et al., CPAIOR
        2020, arXiv:2001.00218; the default: with HiGHS, which has no lazy
        constraints to keep one search tree alive across solutions, it was 3-10
        times faster than the alternative on every net we measured), or one MILP
        over all candidates (Serra et al., NeurIPS 2021, arXiv:2102.07804). See
        the module docstring.
    data : array (N, n0), optional
        Inputs (e.g. training data); those inside the domain serve as witnesses
        of instability before any MILP is built.
    time_limit : float, optional
        Seconds for the whole search. Neurons not settled in time are reported as
        unknown (never as stable).
    bounds : Bounds, optional
        Pre-activation bounds of ``net`` on ``domain`` (default: :func:`~mipnet.bounds.lp_bounds`).
    tol : float
        Numerical tolerance of a proof: stably inactive means proven ``max y <= tol``,
        stably active proven ``min y >= -tol``.
    samples : int
        Random inputs of the domain used as witnesses (plus the centre).
    seed : int
        Seed of those samples.
    search_steps : int
        Before any MILP, a cheap projected sign-gradient ascent (this many steps,
        from the best inputs seen) looks for witnesses of the open neurons; 0 turns it off.
    solver_options : dict, optional
        HiGHS options for the MILPs, on top of :data:`mipnet.solver.MILP_OPTIONS`.

    Returns
    -------
    StabilityResult

    Examples
    --------
    >>> import numpy as np
    >>> from mipnet import Network, Box
    >>> net = Network([np.array([[1.0], [1.0]]), np.array([[1.0, 1.0]])],
    ...               [np.array([-5.0, 0.5]), np.zeros(1)])
    >>> res = find_stable_neurons(net, Box(-1, 1, dim=1))
    >>> res.states[0].tolist()   # first neuron always off, second changes sign
    [-1, 0]
    """
    t0 = time.perf_counter()
    domain, method, data = _validate(net, domain, method, data, time_limit, bounds, tol, samples, search_steps)
    deadline = None if time_limit is None else t0 + float(time_limit)
    if bounds is None:
        bounds = lp_bounds(net, domain)
    s = _Search(net, domain, bounds, float(tol), deadline, check_options(solver_options))
    X = _domain_points(domain, data, samples, seed)
    s.harvest(X)
    if search_steps:
        s.gradient_search(X, steps=int(search_steps), seed=seed)
    log.info("after %d inputs: %d neurons still open", len(X),
             sum(int(np.sum(s.needs_pos(l) | s.needs_neg(l))) for l in range(s.L)))
    if method == "per_neuron":
        _per_neuron(s)
    else:
        _one_milp(s)
    result = s.result(method, t0, time_limit, bounds.method)
    result.check(net, X)
    return result
