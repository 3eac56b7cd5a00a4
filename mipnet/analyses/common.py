"""What the MILP analyses share: statuses, deadlines, candidate inputs, witnesses, interrupts, units.

* :class:`Status` and :class:`Verdict`: the run statuses and equivalence verdicts of every
  result object (``str`` enums: ``status == "complete"`` works and JSON holds the plain string).
* :func:`candidate_points`: the inputs of D tried before any MILP (the centre, random samples,
  the data inside D); raises if D is empty, where every MILP would be infeasible and would
  "prove" anything.
* :func:`witness_from_solution`: the input part of a solver solution, clipped to the box and
  kept only if it lies in D by the one rule of :func:`mipnet.core.numerics.in_domain`.
* :func:`solve_or_partial`: a solve that returns the partial result on Ctrl-C instead of
  raising, so an analysis records what the interrupted solve proved and then stops.
* :class:`Scaling`: an exact change of units (powers of two) that brings the inputs and the
  pre-activations of a pair of networks near 1, so HiGHS's absolute tolerances act as relative
  ones.

Every function takes validated objects (:class:`~mipnet.core.domain.Domain`,
:class:`~mipnet.core.network.Network`); the public analyses validate their arguments once.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np

from mipnet.core.bounds import Bounds, LayerBounds
from mipnet.core.domain import Domain
from mipnet.core.errors import Interrupted, InvalidDomainError
from mipnet.core.network import Network
from mipnet.core.numerics import DEFAULT, Tolerances, in_domain

__all__ = [
    "Status",
    "Verdict",
    "deadline_after",
    "remaining",
    "feasible_point",
    "candidate_points",
    "witness_from_solution",
    "project_to_domain",
    "solve_or_partial",
    "Scaling",
]

log = logging.getLogger(__name__)


class Status(str, enum.Enum):
    """How an analysis ended (a ``str`` too; JSON writes the value)."""

    COMPLETE = "complete"  #: everything settled
    PROVEN = "proven"  #: equivalence proven
    COUNTEREXAMPLE = "counterexample"  #: a counterexample found and re-checked
    TIME_LIMIT = "time_limit"  #: the time limit stopped it: the answer is a bound
    INCOMPLETE = "incomplete"  #: some parts ended without a decision (see the notes)
    STOPPED = "stopped"  #: stopped early on purpose (first violation found)
    INTERRUPTED = "interrupted"  #: Ctrl-C stopped it: the answer is a bound

    def __str__(self) -> str:
        return self.value


class Verdict(str, enum.Enum):
    """The answer of an equivalence check."""

    EQUIVALENT = "equivalent"
    NOT_EQUIVALENT = "not_equivalent"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


# ---------------------------------------------------------------------------- time
def deadline_after(time_limit: Optional[float], start: Optional[float] = None) -> Optional[float]:
    """The ``time.perf_counter()`` value at which a run of ``time_limit`` seconds ends (None: never)."""
    if time_limit is None:
        return None
    return (time.perf_counter() if start is None else start) + float(time_limit)


def remaining(deadline: Optional[float]) -> Optional[float]:
    """Seconds left until ``deadline`` (never negative; None without deadline)."""
    if deadline is None:
        return None
    return max(deadline - time.perf_counter(), 0.0)


# ---------------------------------------------------------------------------- inputs
def feasible_point(domain: Domain) -> np.ndarray:
    """A point of the domain found by an LP; raise :class:`InvalidDomainError` if it is empty."""
    from mipnet.milp.encoding import HighsModel

    model = HighsModel(domain)
    res = model.solve()
    if res.status != "optimal":
        raise InvalidDomainError(f"the domain is empty (its LP is {res.highs_status}); check A x <= c and the box")
    return np.clip(res.values[model.input_cols], domain.lower, domain.upper)


def candidate_points(domain: Domain, data: Optional[np.ndarray] = None, samples: int = 0, seed=None,
                     *, tol: Tolerances = DEFAULT) -> np.ndarray:
    """Inputs of D to try before any MILP: the centre, ``samples`` random points, the data inside D.

    A thin polytope (rejection sampling gives up) still yields a point found by an LP. Data
    points outside D are dropped (logged). Raises :class:`InvalidDomainError` if D is empty.

    Parameters
    ----------
    domain : Domain
    data : array (N, n), optional
        Already a float64 array with the domain's number of columns.
    samples : int
    seed : int or None
    """
    parts = []
    c = domain.center
    if in_domain(domain, c, tol)[0]:
        parts.append(c[None, :])
    if samples:
        try:
            parts.append(domain.sample(int(samples), seed=seed))
        except InvalidDomainError:  # a thin polytope: rejection sampling gives up
            pass
    if not parts:
        x = feasible_point(domain)
        if in_domain(domain, x, tol)[0]:
            parts.append(x[None, :])
    if data is not None and len(data):
        inside = in_domain(domain, data, tol)
        if not np.all(inside):
            log.info("%d of %d data points lie outside the domain and are ignored", int((~inside).sum()), len(data))
        parts.append(data[inside])
    return np.concatenate(parts) if parts else np.zeros((0, domain.dim))


def witness_from_solution(values: np.ndarray, cols, domain: Domain, *,
                          tol: Tolerances = DEFAULT) -> Optional[np.ndarray]:
    """The input ``values[cols]`` of a solver solution, clipped to the box; None if it is not in D.

    The solver may leave its box by its feasibility tolerance; clipping puts the point back,
    and a polytope's rows are then checked by :func:`~mipnet.core.numerics.in_domain`.
    """
    x = domain.clip(np.asarray(values)[np.asarray(cols)])
    return x if in_domain(domain, x, tol)[0] else None


def project_to_domain(domain: Domain, X: np.ndarray, *, tol: Tolerances = DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """``(X clipped to the box, mask of the rows in D)``: the projection step of a gradient search."""
    X = domain.clip(X)
    if domain.is_box:
        return X, np.ones(len(X), dtype=bool)
    return X, in_domain(domain, X, tol)


# ---------------------------------------------------------------------------- interrupts
def solve_or_partial(model, **kw):
    """``(result, interrupted)``: ``model.solve(**kw)``, or on Ctrl-C the interrupted solve's partial
    result (status ``interrupted``; its dual bound still holds) and True. A Ctrl-C without a partial
    result propagates.

    A MILP stopped before HiGHS's branch and bound started (in presolve: no node count, model
    status "Not Set") reports HiGHS's *unset* dual bound (0.0), which proves nothing: it is dropped.
    """
    try:
        return model.solve(**kw), False
    except Interrupted as exc:
        res = exc.partial
        if res is None:
            raise
        if res.dual_bound is not None and (res.nodes < 0 or res.highs_status.lower() == "not set"):
            res = replace(res, dual_bound=None)
        return res, True


# ---------------------------------------------------------------------------- units
def _power_of_two(m: float, band: float) -> float:
    """The power of two nearest to ``m`` if ``m`` lies outside [1/band, band], else 1."""
    if not (m > 0 and math.isfinite(m)) or 1.0 / band <= m <= band:
        return 1.0
    return math.ldexp(1.0, round(math.log2(m)))


@dataclass(frozen=True)
class Scaling:
    """An exact change of units: ``x = input_scale * u`` and ``f(x) = output_scale * f_s(u)``.

    Both scales are powers of two, so the scaled network ``f_s`` (first-layer weights times
    ``input_scale / output_scale``, every bias divided by ``output_scale``; ReLU is positively
    homogeneous) computes ``f(x) / output_scale`` with exactly the same roundings as ``f``
    (barring overflow and underflow): a proof or a witness in the scaled units is one in the
    original units, after multiplying back. With ``layer_scales`` (one network) neuron ``i`` of
    hidden layer ``l`` is measured in units ``s_li``: ``W_l[i, j]`` becomes
    ``W_l[i, j] s_(l-1)j / s_li`` and ``b_li`` becomes ``b_li / s_li``, again exact.
    """

    input_scale: float = 1.0
    output_scale: float = 1.0
    #: how far a MILP value may be off in the scaled units beyond the caller's tolerance: 0 when no
    #: rescaling was needed; else HiGHS's absolute tolerance (``RESOLUTION``) over the smallest
    #: layer magnitude, since a row violated by that much in a layer of small values is magnified
    #: to the output by the layers after it. Proofs from MILPs add it to their margins
    #: (:meth:`margin`), so a badly conditioned pair gets bounds, not false proofs.
    resolution: float = 0.0
    #: one array of scales per hidden layer of a single network (one power of two per neuron), or
    #: () for ``output_scale`` on every neuron (pairs of networks share their units)
    layer_scales: tuple = ()

    #: magnitudes within [1/BAND, BAND] are left alone
    BAND = 2.0**16
    #: HiGHS's feasibility tolerances, in units of the values they apply to
    RESOLUTION = 1e-6

    @property
    def identity(self) -> bool:
        return self.input_scale == 1.0 and self.output_scale == 1.0 and not self.layer_scales

    def margin(self, tol: float) -> float:
        """A tolerance ``tol`` of the original units as a proof margin in the scaled units."""
        return max(float(tol) / self.output_scale, self.resolution)

    @classmethod
    def for_problem(cls, nets: Sequence[Network], domain: Domain, *, per_layer: bool = False) -> "Scaling":
        """Scales that bring the box and the networks' pre-activations near 1 (identity when they are).

        The magnitude of a layer is the largest symbolic bound of its neurons that can be positive
        (a neuron with ``upper <= 0`` outputs 0 whatever its pre-activation: a dead neuron's large
        bias must not shrink the others' values below the solver's tolerances); every output counts.
        With ``per_layer`` (one network only) each hidden neuron gets the power of two nearest its
        own magnitude (ReLU is positively homogeneous, so ``h_i`` may be measured in units of its
        own), which keeps every layer of a net whose weights are all ~1e8, or whose rows differ by
        1e12, near 1; otherwise one scale serves every neuron, as two networks compared neuron by
        neuron need.
        """
        from mipnet.bounds.symbolic import symbolic_layers

        s_in = _power_of_two(float(np.max(np.maximum(np.abs(domain.lower), np.abs(domain.upper)))), cls.BAND)
        if s_in == 1.0 and all(_small_enough(net) for net in nets):
            return cls()
        dom_u = cls(s_in, 1.0).domain(domain)
        mags, per_net = [], []
        for net in nets:
            layers = symbolic_layers(cls(s_in, 1.0).net(net), dom_u)
            own = []
            for l, lb in enumerate(layers):
                live = np.ones(lb.upper.size, dtype=bool) if l == len(layers) - 1 else lb.upper > 0
                m = np.where(live, np.maximum(np.abs(lb.lower), np.abs(lb.upper)), 0.0)
                own.append(m)
                if np.any(live) and m.max() > 0 and math.isfinite(m.max()):
                    mags.append(float(m.max()))
            per_net.append(own)
        mags = mags or [1.0]
        s_out = _power_of_two(max(mags), cls.BAND)
        if s_in == 1.0 and s_out == 1.0 and min(mags) >= 1.0 / cls.BAND:
            return cls()
        if per_layer and len(nets) == 1:
            return cls(s_in, s_out, 0.0, _neuron_scales(per_net[0][:-1], s_out))
        smallest = min(1.0, min(mags) / s_out)
        return cls(s_in, s_out, cls.RESOLUTION / smallest)

    def _scales(self, num_layers: int) -> tuple:
        """The scale of every neuron, layer by layer (arrays or scalars; the output's is ``output_scale``)."""
        if self.layer_scales:
            return tuple(self.layer_scales) + (self.output_scale,)
        return (self.output_scale,) * num_layers

    def net(self, net: Network) -> Network:
        if self.identity:
            return net
        layers, prev = [], self.input_scale
        for (W, b), s in zip(net.layers, self._scales(len(net.layers))):
            s = np.broadcast_to(np.asarray(s, dtype=np.float64), b.shape)
            layers.append((W * (np.asarray(prev)[None] / s[:, None]), b / s))
            prev = s
        return Network.from_layers(layers)

    def bounds(self, bounds: Bounds) -> Bounds:
        """Pre-activation bounds in the scaled units (each neuron's divided by its scale)."""
        if self.identity:
            return bounds
        scales = self._scales(len(bounds.layers))
        return Bounds(tuple(LayerBounds(lb.lower / a, lb.upper / a) for lb, a in zip(bounds.layers, scales)),
                      bounds.method, bounds.seconds, bounds.lp_solves, bounds.notes)

    def domain(self, domain: Domain) -> Domain:
        if self.input_scale == 1.0:
            return domain
        return domain.rescaled(self.input_scale)

    def to_input(self, u: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """A point in the scaled input units back in the original ones."""
        return None if u is None else u * self.input_scale

    def to_output(self, v):
        """A value (or array) in the scaled output units back in the original ones."""
        return v * self.output_scale


def _neuron_scales(mags: Sequence[np.ndarray], fallback: float) -> tuple:
    """The power of two nearest each neuron's magnitude; a neuron that is never positive (its
    magnitude 0: it outputs 0) takes the largest scale of its layer, or ``fallback``."""
    out = []
    for m in mags:
        e = np.round(np.log2(np.where(m > 0, m, 1.0)))
        s = np.ldexp(1.0, e.astype(np.int64))
        live = (m > 0) & np.isfinite(m)
        out.append(np.where(live, s, s[live].max() if np.any(live) else fallback))
    return tuple(out)


def _small_enough(net: Network) -> bool:
    """True if weights and biases are moderate, so that no rescaling is needed on a unit-size box."""
    return all(np.max(np.abs(W), initial=0.0) <= 2.0**8 and np.max(np.abs(b), initial=0.0) <= 2.0**8
               for W, b in net.layers)
