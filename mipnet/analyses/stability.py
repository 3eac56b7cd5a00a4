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

Before either method (``branching=True``, the default), the open neurons of hidden layers 2..
go through a branch and bound on the ReLUs before them (beta-CROWN, Wang et al. NeurIPS 2021,
arXiv:2103.06624; :func:`mipnet.bounds.branching.sign_branch_and_bound`): a neuron is proven
stable when the sound bounds of all leaves settle its sign (proof ``"bab"``), shown unstable
when the minimiser of a branch's bound is an input of the other sign (a harvested witness);
what it leaves open goes to the MILPs.

Before that (``ascent=True``, the default), the open neurons of hidden layers 2.. get a local
search by LPs (:class:`mipnet.analyses.ascent.NeuronAscent`: DC ascent, each step optimal over
the whole domain for the tangent of the convex part), which finds inputs of the open sign that
sign-gradient steps miss on near-critical neurons.

Soundness rules: a neuron is called stable only by a sound bound or a finished
solve (never an incumbent); anything not settled within ``time_limit`` (or before
Ctrl-C) is *unknown*, never stable; every witness is re-checked by the snapped
float64 forward pass of :mod:`mipnet.core.numerics` before the result is returned,
and every stable claim and every reported bound against all inputs seen. The
threshold ``tol`` is the numerical tolerance of a proof: a neuron is stably
inactive when its proven maximum is ``<= tol`` (its removal changes ``h_i`` by at
most ``tol``). Such a neuron may still be positive (up to ``tol``), so the bounds
of the layers after it are computed with its true range: in the MILPs of later
layers it is relaxed to ``0 <= h_i <= upper_i`` (a stably active one to
``y_i <= h_i <= y_i - lower_i``) instead of being treated as exactly 0 (or y_i),
which keeps every reported bound sound for the network itself.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.sparse as sp

from mipnet.analyses.common import (
    Status,
    candidate_points,
    deadline_after,
    project_to_domain,
    remaining,
    solve_or_partial,
    witness_from_solution,
)
from mipnet.bounds import check_bounds_arg
from mipnet.bounds import Bounds, LayerBounds, NeuronState, compute_bounds, interval_bounds, interval_layer
from mipnet.core.domain import Domain, as_domain
from mipnet.core.errors import InvalidArgumentError, InvalidNetworkError, SolverError
from mipnet.core.network import Network
from mipnet.core.numerics import DEFAULT, in_domain, preactivation_scales, snapped_preactivations
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
        ``"milp"`` (per-neuron MILP), ``"one_milp"`` (the single MILP), ``"bab"`` (every
        branch of a branch and bound on earlier ReLUs bounded),
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

    ``status`` (a :class:`~mipnet.analyses.common.Status`) is ``"complete"`` when every
    neuron was settled; ``"time_limit"`` or ``"interrupted"`` (Ctrl-C) when some are unknown
    because the search stopped; ``"incomplete"`` when some are unknown although it did not
    (see ``notes``). ``witnesses`` holds the inputs that show neurons unstable (re-checked by
    the snapped float64 forward pass).
    """

    layers: tuple
    witnesses: np.ndarray
    method: str
    tol: float
    seconds: float
    num_milps: int
    status: Status
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
        return self.status == Status.COMPLETE

    @property
    def num_stable(self) -> int:
        return int(np.sum(np.isin(self.state_vector(), (NeuronState.ACTIVE, NeuronState.INACTIVE))))

    @property
    def num_unknown(self) -> int:
        return int(np.sum(self.state_vector() == UNKNOWN))

    def counts(self) -> list[dict]:
        return [ls.counts() for ls in self.layers]

    def to_bounds(self, bounds: Bounds) -> Bounds:
        """``bounds`` intersected with the proven bounds of the hidden layers (still sound).

        A stable neuron's bound may cross 0 by up to ``tol``; encode with ``tol=self.tol``
        (:meth:`mipnet.milp.encoding.HighsModel.add_network`) to give it no binary.
        """
        layers = list(bounds.layers)
        for l, ls in enumerate(self.layers):
            lo = np.maximum(layers[l].lower, ls.lower)
            hi = np.minimum(layers[l].upper, ls.upper)
            layers[l] = LayerBounds(lo, np.maximum(hi, lo))
        return Bounds(tuple(layers), bounds.method + "+stability", bounds.seconds, bounds.lp_solves, bounds.notes)

    # ------------------------------------------------------------ checks and output
    def check(self, net: Network, X=None, domain: Optional[Domain] = None) -> None:
        """Re-check the result: witnesses by the snapped float64 forward pass, stable claims and
        bounds on the inputs ``X``.

        Every stored witness must show its sign (snapped pre-activation > 0 or < 0, and lie
        in ``domain`` when given); every neuron called unstable needs witnesses of both signs;
        at every input of X (and every witness) a neuron called stably inactive has
        ``y <= tol``, a stably active one ``y >= -tol``, and every neuron lies within its
        reported bounds (up to the rounding noise of the forward pass).
        Raises :class:`~mipnet.core.errors.SolverError` on any contradiction.
        """
        if self.witnesses.shape[0]:
            if domain is not None and not np.all(in_domain(domain, self.witnesses)):
                raise SolverError("a stored witness lies outside the domain")
            ys = snapped_preactivations(net, self.witnesses)
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
        pts = [np.atleast_2d(np.asarray(X, dtype=np.float64))] if X is not None and len(X) else []
        if self.witnesses.shape[0]:
            pts.append(self.witnesses)
        if not pts:
            return
        P = np.concatenate(pts)
        ys = net.preactivations(P)[:-1]
        noise = [DEFAULT.noise * s for s in preactivation_scales(net, P)]
        for l, ls in enumerate(self.layers):
            y, e = ys[l], noise[l]
            ina = ls.states == NeuronState.INACTIVE
            act = ls.states == NeuronState.ACTIVE
            if np.any(y[:, ina] > self.tol + e[:, ina]) or np.any(y[:, act] < -self.tol - e[:, act]):
                raise SolverError(f"layer {l + 1}: a neuron called stable changes sign on the given inputs")
            if np.any(y > ls.upper + e) or np.any(y < ls.lower - e):
                raise SolverError(f"layer {l + 1}: an input violates a reported bound")

    def to_dict(self, *, arrays: bool = True) -> dict:
        d = {
            "method": self.method,
            "status": self.status.value,
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
    """Bookkeeping shared by both methods: proven bounds, witnesses, MILP counts.

    ``upper`` and ``lower`` are sound bounds of the network itself (never clamped at 0):
    a neuron is stably inactive when ``upper <= tol``, stably active when ``lower >= -tol``.
    """

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
            self.proof[l][self.stable(l)] = "bounds"
        self.wpos = [np.full(n, -1, dtype=np.int64) for n in net.hidden_widths]
        self.wneg = [np.full(n, -1, dtype=np.int64) for n in net.hidden_widths]
        self.witnesses: list[np.ndarray] = []
        self.num_milps = 0
        self.milp_seconds = 0.0
        self.bab_branches = 0
        self.ascent_lps = 0
        self.timed_out = False
        self.interrupted = False
        self.notes: list[str] = []

    # -------------------------------------------------------------- witnesses
    def harvest(self, X: np.ndarray) -> int:
        """Record witnesses from the inputs X (snapped float64 forward pass); return how many neurons gained one."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[0] == 0 or self.L == 0:
            return 0
        ys = snapped_preactivations(self.net, X)
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

    def gradient_search(self, X: np.ndarray, *, steps: int, starts: int = 8, seed=0,
                        until: Optional[float] = None) -> int:
        """Look for witnesses of the open neurons by projected sign-gradient ascent on ``+-y_i``.

        A falsification heuristic (it never proves anything): from the ``starts``
        inputs with the largest ``sign * y_i`` seen so far, step along the sign of
        the local gradient of ``sign * y_i`` (exact on the current linear region),
        with steps shrinking from a quarter of the box width; points leaving a
        polytope domain are dropped. Every iterate is harvested. It stops at ``until``
        (a ``time.perf_counter()`` value) or the search's deadline, leaving the rest to the MILPs.
        """
        if len(X) == 0:
            return 0
        width = self.domain.upper - self.domain.lower
        found = 0
        ys = None
        for l in range(self.L):
            for sign, needs in ((1.0, self.needs_pos(l)), (-1.0, self.needs_neg(l))):
                idx = np.flatnonzero(needs)
                if idx.size == 0:
                    continue
                if ys is None:
                    ys = self.net.preactivations(X)
                yl = ys[l]
                for i in idx:
                    if self.timed_up() or (until is not None and time.perf_counter() >= until):
                        return found
                    if not (self.needs_pos(l)[i] if sign > 0 else self.needs_neg(l)[i]):
                        continue  # settled by an earlier neuron's iterates
                    P = X[np.argsort(-sign * yl[:, i])[:starts]].copy()
                    trail = []
                    for t in range(steps):
                        g = self._grad(P, l, i) * sign
                        P, inside = project_to_domain(self.domain, P + (0.25 * 0.8 ** t) * width * np.sign(g))
                        P = P[inside]
                        if len(P) == 0:
                            break
                        trail.append(P)
                    if trail:
                        found += self.harvest(np.concatenate(trail))
        return found

    def dc_ascent(self, X: np.ndarray, *, starts: int = 4, until: Optional[float] = None) -> int:
        """Look for witnesses of the open neurons of hidden layers 2.. by DC ascent
        (:class:`mipnet.analyses.ascent.NeuronAscent`: a few LPs per start, each optimal over the
        whole domain for the tangent of the convex part), from the ``starts`` inputs of X with the
        largest ``sign * y_i``, round by round (every open question's best start first). A
        heuristic like :meth:`gradient_search`; every point visited is harvested. Stops at
        ``until`` or the search's deadline; returns the neurons that gained a witness.
        """
        from mipnet.analyses.ascent import NeuronAscent

        if len(X) == 0:
            return 0
        found = 0
        end = self.deadline if until is None else until
        for l in range(1, self.L):
            needs = {1.0: self.needs_pos, -1.0: self.needs_neg}
            questions = [(int(i), sign) for sign in (1.0, -1.0) for i in np.flatnonzero(needs[sign](l))]
            if not questions:
                continue
            asc = NeuronAscent(self.net, self.domain, l)
            yl = self.net.preactivations(X)[l]
            order = {q: np.argsort(-q[1] * yl[:, q[0]])[:starts] for q in questions}
            for k in range(starts):
                for q in questions:
                    if self.timed_up() or (until is not None and time.perf_counter() >= until):
                        return found
                    i, sign = q
                    if k >= order[q].size or not needs[sign](l)[i]:
                        continue  # settled by an earlier start or question's points
                    lps = asc.lps
                    _, _, trail = asc.run(i, sign, X[order[q][k]], until=end)
                    self.ascent_lps += asc.lps - lps
                    if trail:
                        P = np.asarray(trail)
                        found += self.harvest(P[in_domain(self.domain, P)])
        return found

    def branch_and_bound(self, until: Optional[float] = None, max_leaves: int = 4096) -> int:
        """Settle open neurons of hidden layers 2.. by branch and bound on the ReLUs before them
        (beta-CROWN style, :func:`mipnet.bounds.branching.sign_branch_and_bound`), layer by layer.

        A question proven by the branches' bounds gets proof ``"bab"``; the candidate inputs of
        open branches are harvested as witnesses (inside the domain only). Each layer gets an equal
        share of the time left before ``until`` for the layers left. Returns the number of
        neurons settled (proven or witnessed).
        """
        from mipnet.bounds.branching import sign_branch_and_bound

        settled = 0
        for l in range(1, self.L):
            if self.timed_up():
                break
            pos, neg = np.flatnonzero(self.needs_pos(l)), np.flatnonzero(self.needs_neg(l))
            if pos.size + neg.size == 0:
                continue
            neurons = np.concatenate([pos, neg])
            signs = np.concatenate([np.ones(pos.size), -np.ones(neg.size)])
            end = self.deadline if until is None else until
            if end is not None:
                end = time.perf_counter() + max(end - time.perf_counter(), 0.0) / (self.L - l)
            before = int(np.sum(self.stable(l) | ((self.wpos[l] >= 0) & (self.wneg[l] >= 0))))

            def on_points(P, q, l=l, neurons=neurons, signs=signs):
                P = P[in_domain(self.domain, P)]
                if len(P):
                    self.harvest(P)
                need = np.where(signs > 0, self.needs_pos(l)[neurons], self.needs_neg(l)[neurons])
                return ~need

            layers = [LayerBounds(self.lower[j], self.upper[j]) for j in range(l)]
            ans = sign_branch_and_bound(self.net, self.domain, layers, l, neurons, signs, tol=self.tol,
                                        deadline=end, on_points=on_points, max_leaves=max_leaves)
            for n in np.flatnonzero(np.isfinite(ans.bound)):
                self._prove(l, int(neurons[n]), int(signs[n]), float(ans.bound[n]), "bab")
            self.bab_branches += int(ans.branches.sum())
            after = int(np.sum(self.stable(l) | ((self.wpos[l] >= 0) & (self.wneg[l] >= 0))))
            settled += after - before
            if np.any(self.stable(l)):
                self.propagate(l)
        return settled

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

    def encode(self, model, upto: int):
        """Encode hidden layers ``0 .. upto-1`` into ``model`` with the bounds proven so far.

        Neurons stable within ``tol`` get no binary. One that is exactly stable (``upper <= 0``
        or ``lower >= 0``) is encoded exactly (h = 0, h = y); one whose bound crosses 0 by at
        most ``tol`` is *relaxed* to its true range (``0 <= h <= upper``, or
        ``y <= h <= y - lower`` with ``h >= 0``), so the MILPs of later layers bound the network
        itself, not a copy with those neurons cut. Returns ``(cols, prev_states, layer_vars)``:
        the columns and encoder states of layer ``upto - 1``'s outputs.
        """
        cols, prev_states = model.input_cols, None
        lvs = []
        for k in range(upto):
            W, b = self.net.layers[k]
            lv = model.add_layer(cols, W, b, LayerBounds(self.lower[k], self.upper[k]), prev_states=prev_states,
                                 tol=self.tol)
            lvs.append(lv)
            cols, prev_states = lv.h_cols, lv.states
            near_off = np.flatnonzero((lv.states == NeuronState.INACTIVE) & (self.upper[k] > 0))
            near_on = np.flatnonzero((lv.states == NeuronState.ACTIVE) & (self.lower[k] < 0))
            if near_off.size:
                # the encoder fixed h = 0: free it to [0, upper], and keep its weights in the next layer
                model.change_col_bounds(lv.h_cols[near_off], 0.0, self.upper[k][near_off])
                prev_states = prev_states.copy()
                prev_states[near_off] = NeuronState.UNSTABLE
            if near_on.size:
                # the encoder set h = y: a new h with 0 <= h - y <= -lower, h >= 0
                m = near_on.size
                h = model.add_cols(np.zeros(m), np.maximum(self.upper[k][near_on], 0.0))
                r = np.arange(m)
                A = sp.csr_matrix((np.concatenate([np.ones(m), -np.ones(m)]),
                                   (np.concatenate([r, r]), np.concatenate([h, lv.y_cols[near_on]]))),
                                  shape=(m, model.num_cols))
                model.add_rows(np.zeros(m), -self.lower[k][near_on], A)
                cols = cols.copy()
                cols[near_on] = h
        return cols, prev_states, lvs

    def layer_model(self, l: int):
        """A MILP of hidden layers ``0 .. l-1`` (:meth:`encode`) and layer ``l``'s pre-activations:
        ``(model, y_cols)``, the model of the per-neuron questions of layer ``l``."""
        from mipnet.milp.encoding import HighsModel

        model = HighsModel(self.domain, options=self.options)
        cols, prev_states, _ = self.encode(model, l)
        W, b = self.net.layers[l]
        y = model.add_affine(cols, W, b, LayerBounds(self.lower[l], self.upper[l]), prev_states=prev_states)
        return model, y

    def propagate(self, start: int) -> None:
        """Interval arithmetic from hidden layer ``start`` onwards, intersected with what is known.

        Uses the true ranges ``[max(0, lower), max(0, upper)]`` of the ReLUs (a neuron stable within
        ``tol`` may still be up to ``tol`` away from its state).
        """
        hl, hu = np.maximum(self.lower[start], 0.0), np.maximum(self.upper[start], 0.0)
        for k in range(start + 1, self.L):
            W, b = self.net.layers[k]
            lo, hi = interval_layer(W, b, hl, hu)
            was = self.stable(k)
            lo, hi = np.maximum(self.lower[k], lo), np.minimum(self.upper[k], hi)
            ok = lo <= hi  # two sound intervals that only touch by rounding: keep the old one
            self.lower[k] = np.where(ok, lo, self.lower[k])
            self.upper[k] = np.where(ok, hi, self.upper[k])
            self.proof[k][~was & self.stable(k)] = "bounds"
            hl, hu = np.maximum(self.lower[k], 0.0), np.maximum(self.upper[k], 0.0)

    def timed_up(self) -> bool:
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            self.timed_out = True
        return self.timed_out or self.interrupted

    # -------------------------------------------------------------- one sign question
    def settle(self, model, y_col: int, l: int, i: int, sign: int, proof: str,
               time_limit: Optional[float] = None) -> None:
        """Max ``sign * y_i`` with cutoff/target at ``tol``: a witness, a proof, or nothing (time, Ctrl-C).

        ``time_limit`` caps this solve below the time left (a slice of the search's budget);
        a solve stopped by its slice leaves the neuron open, and only the deadline ends the search.
        """
        model.set_objective([y_col], [float(sign)], maximize=True)
        left = remaining(self.deadline)
        limit = left if time_limit is None else (time_limit if left is None else min(left, time_limit))
        res, stopped = solve_or_partial(model, cutoff=self.tol, target=self.tol, time_limit=limit)
        self.interrupted |= stopped
        self.num_milps += 1
        self.milp_seconds += res.seconds
        if res.has_solution:
            x = witness_from_solution(res.values, model.input_cols, self.domain)
            if x is not None:
                self.harvest(x)
        if res.status == "infeasible":  # nothing reaches tol: proven
            self._prove(l, i, sign, self.tol, proof)
        elif res.dual_bound is not None and math.isfinite(res.dual_bound):
            # nodes below the cutoff were pruned, so the proven maximum is max(dual bound, cutoff)
            bound = max(res.dual_bound, self.tol) if model.is_mip else res.dual_bound
            self._prove(l, i, sign, bound, proof)  # a valid bound, maybe not decisive
        if res.status == "time_limit":
            self.timed_up()  # the deadline, or only this solve's slice
        elif not res.proven and res.status not in ("objective_target", "interrupted"):
            self.notes.append(f"layer {l + 1} neuron {i}: solver status {res.highs_status}")

    def _prove(self, l: int, i: int, sign: int, value: float, proof: str) -> None:
        was_stable = bool(self.stable(l)[i])
        if sign > 0:
            self.upper[l][i] = min(self.upper[l][i], value)
        else:
            self.lower[l][i] = max(self.lower[l][i], -value)
        if self.lower[l][i] > self.upper[l][i]:
            # both bounds proven up to tolerances: the neuron is (numerically) constant; keep the hull
            self.lower[l][i], self.upper[l][i] = self.upper[l][i], self.lower[l][i]
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
        if n_unknown == 0:
            status, msg = Status.COMPLETE, ""
        elif self.interrupted:
            status, msg = Status.INTERRUPTED, f"{n_unknown} neurons unknown: interrupted before they were settled"
        elif self.timed_out:
            status = Status.TIME_LIMIT
            msg = f"{n_unknown} neurons unknown: not settled within the time limit of {time_limit} s"
        else:
            status, msg = Status.INCOMPLETE, f"{n_unknown} neurons unknown: not settled (see notes)"
        return StabilityResult(tuple(layers), W, method, self.tol, time.perf_counter() - t0, self.num_milps,
                               status, msg, bounds_method, time_limit, self.milp_seconds, tuple(self.notes))


# ---------------------------------------------------------------------------- the two methods
#: Under a time limit, the witness search before the MILPs takes at most this share of the time left.
SEARCH_SHARE = 0.2
#: Under a time limit, the branch and bound before the MILPs takes at most this share of the time left.
BAB_SHARE = 0.75
#: Under a time limit, the first round of per-neuron MILPs gives each question at most this
#: share of the layer's time (and at least MIN_SLICE seconds): one hard neuron no longer takes
#: the whole budget from the easy ones; later rounds split what is left among the open questions.
SLICE_SHARE = 0.5
MIN_SLICE = 0.5


def _questions(s: _Search, l: int, todo: np.ndarray) -> list:
    """The sign questions of layer ``l``'s open neurons; the likelier answer first (a neuron with the
    larger negative part is likelier inactive: ask max y first)."""
    questions = []
    for i in todo:
        first = 1 if -s.lower[l][i] >= s.upper[l][i] else -1
        questions += [(int(i), first), (int(i), -first)]
    return questions


def _per_neuron(s: _Search, executor=None, progress: bool = False) -> None:
    """Serra, Kumar, Ramalingam (CPAIOR 2020): one early-stopped MILP per neuron and sign.

    Without a time limit each MILP runs to its answer. With one, each layer gets an equal share
    of the time left for the layers left, and its questions are asked in rounds: first with a
    slice of that share each (:data:`SLICE_SHARE`), then again for those still open with the
    rest of the layer's share split among them, and last with all the time left (so a neuron
    is reported unknown only when the time limit is reached). With an ``executor`` the
    questions of a layer go out in groups (:func:`stability_unit`), each group with the time left.
    """
    for l in range(s.L):
        if s.timed_up():
            return
        todo = np.flatnonzero(s.needs_pos(l) | s.needs_neg(l))
        if todo.size and executor is not None:
            _layer_on_executor(s, l, _questions(s, l, todo), executor, progress)
        elif todo.size:
            model, y = s.layer_model(l)
            questions = _questions(s, l, todo)

            def open_(q) -> bool:
                i, sign = q
                return not s.stable(l)[i] and bool(s.needs_pos(l)[i] if sign > 0 else s.needs_neg(l)[i])

            left = remaining(s.deadline)
            layer_end = None if left is None else time.perf_counter() + left / (s.L - l)
            for rnd in range(3):
                pending = [q for q in questions if open_(q)]
                if not pending or s.timed_up():
                    break
                for q in pending:
                    if s.timed_up():
                        break
                    if not open_(q):
                        continue
                    if s.deadline is None or rnd == 2:
                        cap = None  # to its answer, or to the deadline
                    else:
                        share = max(layer_end - time.perf_counter(), 0.0) * (SLICE_SHARE if rnd == 0 else 1.0)
                        cap = max(MIN_SLICE, share / max(sum(open_(p) for p in pending), 1))
                    s.settle(model, int(y[q[0]]), l, q[0], q[1], "milp", time_limit=cap)
                if s.deadline is None:
                    break
        if np.any(s.stable(l)):
            s.propagate(l)


class _LayerBoundsList:
    """The ``hidden`` of a :class:`Bounds` from arrays (what :class:`_Search` reads)."""

    def __init__(self, lower, upper) -> None:
        self.hidden = [LayerBounds(lo, hi) for lo, hi in zip(lower, upper)]


#: questions per unit: at least this many units per worker and layer (the rest is load balance)
UNITS_PER_WORKER = 4


def stability_unit(task, deadline):
    """A group of sign questions of one layer as a work unit (:func:`mipnet.parallel.run_units`).

    ``task = (net, domain, lower, upper, l, questions, tol, options)``: the bounds proven so far
    (every hidden layer), the layer, its ``(neuron, sign)`` questions. The unit encodes layers
    ``0 .. l-1`` with those bounds (as the serial search does) and settles its questions with
    early-stopped MILPs. ``finished`` is False if the deadline cut it short. The value holds the
    proven bounds of layer ``l`` and the inputs the MILPs found (re-checked by the caller's
    float64 forward pass before any of them counts as a witness).
    """
    net, domain, lower, upper, l, questions, tol, options = task
    dl = None if deadline is None else time.perf_counter() + max(deadline - time.time(), 0.0)
    s = _Search(net, domain, _LayerBoundsList(lower, upper), tol, dl, options)
    model, y = s.layer_model(l)
    asked = 0
    for i, sign in questions:
        if s.timed_up():
            break
        if bool(s.needs_pos(l)[i] if sign > 0 else s.needs_neg(l)[i]):
            s.settle(model, int(y[i]), l, i, sign, "milp")
        asked += 1
    X = np.array(s.witnesses) if s.witnesses else np.zeros((0, net.input_dim))
    value = {"upper": s.upper[l], "lower": s.lower[l], "X": X, "num_milps": s.num_milps,
             "milp_seconds": s.milp_seconds, "notes": s.notes}
    if s.interrupted:  # Ctrl-C in this process: stop the whole run (run_units returns what finished)
        raise KeyboardInterrupt
    return asked == len(questions), value


def _layer_on_executor(s: _Search, l: int, questions: list, executor, progress: bool) -> None:
    """Layer ``l``'s questions as :func:`stability_unit` groups on ``executor``; merged in key order."""
    from mipnet.parallel import run_units, workers_of

    n_units = max(1, min(len(questions), UNITS_PER_WORKER * workers_of(executor)))
    groups = [list(g) for g in np.array_split(np.array(questions, dtype=np.int64), n_units) if len(g)]
    lower, upper = [a.copy() for a in s.lower], [a.copy() for a in s.upper]
    tasks = [(s.net, s.domain, lower, upper, l, [(int(i), int(g)) for i, g in grp], s.tol, s.options)
             for grp in groups]
    rep = run_units(stability_unit, tasks, executor, time_limit=remaining(s.deadline), progress=progress,
                    desc=f"stable neurons layer {l + 1}")
    for run in rep.runs:  # key order: the same merge whatever finished first
        v = run.value
        for i, sign in run.unit[5]:
            s._prove(l, i, sign, float(v["upper"][i]) if sign > 0 else -float(v["lower"][i]), "milp")
        s.harvest(v["X"])
        s.num_milps += v["num_milps"]
        s.milp_seconds += v["milp_seconds"]
        s.notes.extend(v["notes"])
    if rep.status == "interrupted":
        s.interrupted = True
    elif not rep.complete:
        s.timed_out = True


def _one_milp(s: _Search) -> None:
    """Serra, Yu, Kumar, Ramalingam (NeurIPS 2021): one MILP over all candidates, re-solved."""
    from mipnet.milp.encoding import HighsModel

    model = HighsModel(s.domain, options=s.options)
    _, _, lvs = s.encode(model, s.L)
    # candidate binaries: p_i = 1 only where y_i >= eps (i in P), q_i = 1 only where y_i <= -eps (i in Q):
    #   p_i <= z_i,  y_i - (eps - L_i) p_i >= L_i ;   q_i + z_i <= 1,  y_i + (eps + U_i) q_i <= U_i.
    # (Binary rather than continuous p, q: a continuous p_i <= z_i lets the solver "flip" a neuron at
    # y_i = 0 exactly, which is no witness.) Infeasibility proves max y_i < eps for every candidate.
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

    def settle_one(j: int) -> None:
        """The per-neuron question on this model (p, q = 0 is always feasible)."""
        l, i, sign, _ = cand[j]
        s.settle(model, int(lvs[l].y_cols[i]), l, i, sign, "milp")
        if still_needed(j) and not s.timed_up():  # neither witness nor proof: leave it unknown
            s.notes.append(f"layer {l + 1} neuron {i}: not settled by its own MILP")
        one = np.zeros(len(cand), dtype=bool)
        one[j] = True
        retire(one)

    while alive.any():
        if s.timed_up():
            return
        model.set_objective(cand_cols[alive], 1.0, maximize=True)
        res, stopped = solve_or_partial(model, cutoff=0.5, target=0.5, time_limit=remaining(s.deadline))
        s.interrupted |= stopped
        s.num_milps += 1
        s.milp_seconds += res.seconds
        if res.status == "infeasible" or (res.status == "optimal" and res.dual_bound is not None
                                          and res.dual_bound < 0.5):
            # no candidate can flip: every remaining candidate has max sign * y_i < eps
            left = np.flatnonzero(alive)
            for j in left:
                l, i, sign, _ = cand[j]
                s._prove(l, i, sign, eps, "one_milp")
            alive[:] = False
            if eps > s.tol:  # tol below the one-MILP's resolution: ask the open ones one by one
                for j in left:
                    if still_needed(j) and not s.timed_up():
                        alive[j] = True
                        settle_one(j)
            return
        if not res.has_solution:
            # time limit, Ctrl-C (or a solver failure) without a decision: the remaining candidates stay unknown
            if res.status == "time_limit":
                s.timed_out = True
            elif not s.interrupted:
                s.timed_out = True
                s.notes.append(f"one-MILP stopped with solver status {res.highs_status}")
            return
        x = witness_from_solution(res.values, model.input_cols, s.domain)
        gained = s.harvest(x) if x is not None else 0
        retire(np.array([not still_needed(j) for j in range(len(cand))]))
        if s.interrupted:
            return
        if gained == 0:
            # the claimed flips are numerical ties (y_i ~ 0): settle those candidates one by one
            claimed = np.flatnonzero(alive & (res.values[cand_cols] > 0.5))
            if claimed.size == 0:
                raise SolverError("the one-MILP reported flips that its solution does not show")
            for j in claimed:
                if s.timed_up():
                    return
                settle_one(j)
            retire(np.array([not still_needed(j) for j in range(len(cand))]))


# ---------------------------------------------------------------------------- entry point
def _validate(net, domain, method, data, time_limit, bounds, tol, samples, search_steps, solver_options):
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
    check_bounds_arg("bounds", bounds, net)
    if data is not None:
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != net.input_dim:
            raise ValueError(f"data must have shape (N, {net.input_dim}), got {data.shape}")
    return domain, method, data, check_options(solver_options)


def find_stable_neurons(
    net: Network,
    domain,
    *,
    method: str = "per_neuron",
    data=None,
    time_limit: Optional[float] = None,
    bounds=None,
    tol: float = 1e-6,
    samples: int = 1000,
    seed: int = 0,
    search_steps: int = 20,
    solver_options: Optional[dict] = None,
    branching: bool = True,
    ascent: bool = True,
    executor=None,
    progress: bool = False,
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
    bounds : Bounds or str, optional
        Pre-activation bounds of ``net`` on ``domain``, or the name of a
        :func:`~mipnet.bounds.compute_bounds` method to compute them with (``"ia"``,
        ``"symbolic"``, ``"alpha"``, ``"lp"``, ``"auto"``). Default ``"auto"``: symbolic, then
        alpha-CROWN, then sign-only LPs only for the neurons those leave open (the output
        layer's bounds are not needed here).
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
    branching : bool
        Before any MILP, settle the open neurons of hidden layers 2.. by branch and bound on the
        ReLUs before them with optimised linear bounds per branch (beta-CROWN, Wang et al.
        NeurIPS 2021, arXiv:2103.06624; :func:`mipnet.bounds.branching.sign_branch_and_bound`):
        proofs rest on sound bounds of every leaf, witnesses are re-checked inputs. Under a time
        limit it takes at most :data:`BAB_SHARE` of the time left (and at most 16384 branches per
        question); without one, at most 1024 branches per question. Default True.
    ascent : bool
        Before the branch and bound, a local search for witnesses of the open neurons of hidden
        layers 2..: DC ascent by LPs (:class:`mipnet.analyses.ascent.NeuronAscent`) from the 4
        best inputs seen per question; within :data:`SEARCH_SHARE` of the time left, with the
        gradient search. Default True.
    executor : None, concurrent.futures.Executor or dask.distributed.Client
        Where the per-neuron MILPs run (:func:`stability_unit` groups per layer, merged in a
        fixed order); None: in this process. ``method="per_neuron"`` only.
    progress : bool
        A progress bar of the groups on stderr (with ``executor``).

    Returns
    -------
    StabilityResult
        On Ctrl-C: the neurons settled so far, the rest unknown, status ``"interrupted"``.

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
    domain, method, data, options = _validate(net, domain, method, data, time_limit, bounds, tol, samples,
                                              search_steps, solver_options)
    if executor is not None and method != "per_neuron":
        raise InvalidArgumentError(f"executor= runs the per-neuron MILPs; method={method!r} is one MILP: "
                                   "use method='per_neuron' or no executor")
    deadline = deadline_after(time_limit, t0)
    X = candidate_points(domain, data, samples, seed)  # raises if the domain is empty
    s = None
    try:
        if bounds is None or isinstance(bounds, str):
            bounds = compute_bounds(net, domain, method=bounds or "auto", deadline=deadline)
        s = _Search(net, domain, bounds, float(tol), deadline, options)
        s.harvest(X)
        # heuristics: at most SEARCH_SHARE of the time left (half of it for the gradient search when
        # the ascent follows), the rest for the proofs
        left = remaining(deadline)
        until = None if left is None else time.perf_counter() + SEARCH_SHARE * left
        if search_steps:
            half = None if left is None else time.perf_counter() + SEARCH_SHARE * left * (0.5 if ascent else 1.0)
            s.gradient_search(X, steps=int(search_steps), seed=seed, until=half)
        if ascent:
            ta = time.perf_counter()
            n = s.dc_ascent(X, until=until)
            if s.ascent_lps:
                s.notes.append(f"DC ascent: {n} neurons shown unstable, {s.ascent_lps} LPs, "
                               f"{time.perf_counter() - ta:.2f} s")
        if branching and not s.timed_up():
            left = remaining(deadline)
            until = None if left is None else time.perf_counter() + BAB_SHARE * left
            tb = time.perf_counter()
            n = s.branch_and_bound(until, max_leaves=1 << 14 if deadline is not None else 1024)
            if s.bab_branches:
                s.notes.append(f"branch and bound: {s.bab_branches} branches bounded, {n} neurons settled, "
                               f"{time.perf_counter() - tb:.2f} s")
        log.info("after %d inputs: %d neurons still open", len(X),
                 sum(int(np.sum(s.needs_pos(l) | s.needs_neg(l))) for l in range(s.L)))
        if method == "per_neuron":
            _per_neuron(s, executor, progress)
        else:
            _one_milp(s)
    except KeyboardInterrupt as exc:
        if s is None:  # during the bounds: the LP bounds reached so far (or intervals) are sound
            partial = getattr(exc, "partial", None)
            bounds = partial if isinstance(partial, Bounds) else interval_bounds(net, domain)
            s = _Search(net, domain, bounds, float(tol), deadline, options)
            s.harvest(X)
        s.interrupted = True
        s.notes.append("interrupted (Ctrl-C): neurons not settled by then are unknown")
    result = s.result(method, t0, time_limit, bounds.method)
    result.check(net, X, domain)
    return result
