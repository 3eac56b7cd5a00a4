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
  bounds found so far. LP values are widened by a small tolerance and always
  intersected with interval bounds; a solve that does not finish keeps the
  interval bound (never an unproven value).

Bounds decide which neurons get binaries in a MILP: see :func:`classify_neurons`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Optional

import numpy as np

from .domain import as_domain
from .errors import SolverError
from .network import Network

__all__ = [
    "NeuronState",
    "LayerBounds",
    "Bounds",
    "classify_neurons",
    "interval_bounds",
    "symbolic_bounds",
    "lp_bounds",
    "compute_bounds",
]

log = logging.getLogger(__name__)


class NeuronState(IntEnum):
    """How a ReLU behaves on the whole domain."""

    INACTIVE = -1  #: upper <= 0: h = 0 everywhere
    UNSTABLE = 0  #: lower < 0 < upper: needs a binary
    ACTIVE = 1  #: lower >= 0: h = y everywhere


def classify_neurons(lower, upper, *, tol: float = 0.0) -> np.ndarray:
    """Classify neurons from pre-activation bounds.

    Stably inactive iff ``upper <= tol``, stably active iff ``lower >= -tol``,
    unstable otherwise. Returns an int8 array of :class:`NeuronState` values.
    The default ``tol = 0`` is exact for sound bounds; a positive tol treats
    neurons within tol of zero as stable (the ReLU error is then at most tol).
    """
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    if lower.shape != upper.shape:
        raise ValueError(f"lower and upper shapes differ: {lower.shape} vs {upper.shape}")
    state = np.zeros(lower.shape, dtype=np.int8)
    state[lower >= -tol] = NeuronState.ACTIVE
    state[upper <= tol] = NeuronState.INACTIVE
    return state


@dataclass(frozen=True, eq=False)
class LayerBounds:
    """Bounds ``lower <= y <= upper`` on one layer's pre-activations."""

    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self) -> None:
        lo = np.array(self.lower, dtype=np.float64).reshape(-1)
        hi = np.array(self.upper, dtype=np.float64).reshape(-1)
        if lo.shape != hi.shape:
            raise ValueError(f"lower has {lo.size} entries, upper {hi.size}")
        if np.any(np.isnan(lo)) or np.any(np.isnan(hi)):
            raise ValueError("bounds contain NaN")
        if np.any(lo > hi + 1e-9 * (1 + np.abs(hi))):
            i = int(np.flatnonzero(lo > hi)[0])
            raise ValueError(f"lower > upper at neuron {i}: {lo[i]} > {hi[i]}")
        hi = np.maximum(hi, lo)
        lo.setflags(write=False)
        hi.setflags(write=False)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @property
    def size(self) -> int:
        return self.lower.size

    def states(self, tol: float = 0.0) -> np.ndarray:
        return classify_neurons(self.lower, self.upper, tol=tol)

    def post_activation(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of h = max(0, y)."""
        return np.maximum(self.lower, 0.0), np.maximum(self.upper, 0.0)


@dataclass(frozen=True, eq=False)
class Bounds:
    """Pre-activation bounds of every layer of a network on a domain.

    ``layers[l]`` holds the bounds of affine layer l + 1 (hidden layers first,
    the output layer last), so ``len(layers) == net.num_hidden_layers + 1``.
    """

    layers: tuple
    method: str
    seconds: float = 0.0
    lp_solves: int = 0
    notes: tuple = field(default_factory=tuple)

    @property
    def hidden(self) -> tuple:
        return self.layers[:-1]

    @property
    def output(self) -> LayerBounds:
        return self.layers[-1]

    def states(self, tol: float = 0.0) -> list[np.ndarray]:
        """Neuron states (:class:`NeuronState` values) per hidden layer."""
        return [lb.states(tol) for lb in self.hidden]

    def state_vector(self, tol: float = 0.0) -> np.ndarray:
        """Neuron states of all hidden neurons, concatenated."""
        s = self.states(tol)
        return np.concatenate(s) if s else np.zeros(0, dtype=np.int8)

    def counts(self, tol: float = 0.0) -> list[dict]:
        out = []
        for s in self.states(tol):
            out.append(
                {
                    "inactive": int(np.sum(s == NeuronState.INACTIVE)),
                    "active": int(np.sum(s == NeuronState.ACTIVE)),
                    "unstable": int(np.sum(s == NeuronState.UNSTABLE)),
                }
            )
        return out

    @property
    def num_unstable(self) -> int:
        return int(np.sum(self.state_vector() == NeuronState.UNSTABLE))

    def contains(self, net: Network, X, *, tol: float = 1e-9) -> bool:
        """True if every pre-activation of ``net`` at the inputs X lies inside the bounds."""
        ys = net.preactivations(np.atleast_2d(X))
        return all(
            np.all(y >= lb.lower - tol * (1 + np.abs(lb.lower)))
            and np.all(y <= lb.upper + tol * (1 + np.abs(lb.upper)))
            for y, lb in zip(ys, self.layers)
        )

    def tighter_or_equal(self, other: "Bounds", *, tol: float = 1e-9) -> bool:
        """True if these bounds are inside ``other`` everywhere."""
        return all(
            np.all(a.lower >= b.lower - tol) and np.all(a.upper <= b.upper + tol)
            for a, b in zip(self.layers, other.layers)
        )

    def to_dict(self, *, arrays: bool = True) -> dict:
        d = {
            "method": self.method,
            "seconds": self.seconds,
            "lp_solves": self.lp_solves,
            "layers": [],
        }
        states = self.states()
        for l, lb in enumerate(self.layers):
            entry = {"layer": l + 1, "size": lb.size, "output": l == len(self.layers) - 1}
            if l < len(states):
                s = states[l]
                entry.update(
                    inactive=int(np.sum(s == -1)), active=int(np.sum(s == 1)), unstable=int(np.sum(s == 0))
                )
            entry["mean_width"] = float(np.mean(lb.upper - lb.lower))
            if arrays:
                entry["lower"] = lb.lower.tolist()
                entry["upper"] = lb.upper.tolist()
            d["layers"].append(entry)
        return d

    def __str__(self) -> str:
        lines = [f"Bounds ({self.method}, {self.seconds:.3f} s, {self.lp_solves} LP solves)"]
        states = self.states()
        for l, lb in enumerate(self.layers):
            if l < len(states):
                s = states[l]
                lines.append(
                    f"  layer {l + 1}: {lb.size:5d} neurons  inactive {np.sum(s == -1):4d}  "
                    f"active {np.sum(s == 1):4d}  unstable {np.sum(s == 0):4d}  "
                    f"mean width {np.mean(lb.upper - lb.lower):.4g}"
                )
            else:
                lines.append(
                    f"  output : {lb.size:5d} values   range [{lb.lower.min():.4g}, {lb.upper.max():.4g}]"
                )
        return "\n".join(lines)


def _interval_layer(W, b, hl, hu) -> tuple[np.ndarray, np.ndarray]:
    mid = (hl + hu) / 2
    rad = (hu - hl) / 2
    c = W @ mid + b
    r = np.abs(W) @ rad
    # widen by the rounding error of the two products (sound in floating point)
    eps = 8 * np.finfo(np.float64).eps * (np.abs(W) @ (np.abs(mid) + rad) + np.abs(b))
    return c - r - eps, c + r + eps


def interval_bounds(net: Network, domain) -> Bounds:
    """Interval-arithmetic bounds of every layer over the domain's bounding box."""
    t0 = time.perf_counter()
    domain = as_domain(domain, net.input_dim)
    hl, hu = domain.lower, domain.upper
    layers = []
    for l, (W, b) in enumerate(net.layers):
        lo, hi = _interval_layer(W, b, hl, hu)
        layers.append(LayerBounds(lo, hi))
        hl, hu = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    return Bounds(tuple(layers), "ia", time.perf_counter() - t0)


def _relaxation(lb: LayerBounds):
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
        relax.append(_relaxation(lb))
    return Bounds(tuple(layers), "symbolic", time.perf_counter() - t0)


def lp_bounds(
    net: Network,
    domain,
    *,
    initial: Optional[Bounds] = None,
    output: bool = True,
    tol: float = 1e-7,
    time_limit_per_lp: Optional[float] = None,
    progress: bool = False,
) -> Bounds:
    """LP-relaxation bounds, layer by layer (see module docstring).

    Parameters
    ----------
    initial : Bounds, optional
        Bounds to start from and intersect with (default: :func:`symbolic_bounds`).
    output : bool
        Also tighten the output layer (default True).
    tol : float
        Absolute widening of every LP value, covering solver tolerances.
    time_limit_per_lp : float, optional
        A neuron whose LP does not finish keeps its previous (sound) bound.
    """
    from .encoding import HighsModel  # local: keeps the import graph one-way

    t0 = time.perf_counter()
    domain = as_domain(domain, net.input_dim)
    base = initial if initial is not None else symbolic_bounds(net, domain)
    layers = list(base.layers)
    model = HighsModel(domain)
    if time_limit_per_lp is not None:
        model.highs.setOptionValue("time_limit", float(time_limit_per_lp))
    prev_cols = model.input_cols
    solves = 0
    notes = []
    n_layers = len(net.layers)
    iterator = range(n_layers)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="LP bounds", unit="layer", file=None)
    for l in iterator:
        W, b = net.layers[l]
        is_output = l == n_layers - 1
        first_on_box = l == 0 and not domain.has_constraints
        lo, hi = layers[l].lower.copy(), layers[l].upper.copy()
        if not first_on_box and (output or not is_output):
            # the previous layers are in the model; only bound neurons that matter:
            # hidden neurons not yet stable (their sign decides a binary); outputs all.
            todo = np.arange(W.shape[0]) if is_output else np.flatnonzero((lo < 0) & (hi > 0))
            for i in todo:
                for sense in (1, -1) if is_output else (-1, 1):
                    if not is_output:
                        # early exit: sign already settled by the other direction
                        if sense == 1 and lo[i] >= 0:
                            continue
                        if sense == -1 and hi[i] <= 0:
                            continue
                    val = model.optimize_affine(prev_cols, W[i], b[i], maximize=(sense == 1))
                    solves += 1
                    if val is None:
                        notes.append(f"layer {l + 1} neuron {i}: LP not solved, kept previous bound")
                        continue
                    if sense == 1:
                        hi[i] = min(hi[i], val + tol * (1 + abs(val)))
                    else:
                        lo[i] = max(lo[i], val - tol * (1 + abs(val)))
            if np.any(lo > hi + 1e-6 * (1 + np.abs(hi))):
                raise SolverError(
                    f"layer {l + 1}: LP bound contradicts interval bounds (lower > upper); "
                    "the domain may be empty or the solver wrong"
                )
            hi = np.maximum(hi, lo)
        layers[l] = LayerBounds(lo, hi)
        if not is_output:
            # propagate IA from the tightened layer to later layers, keep the tighter
            hl, hu = layers[l].post_activation()
            for k in range(l + 1, n_layers):
                Wk, bk = net.layers[k]
                ia_lo, ia_hi = _interval_layer(Wk, bk, hl, hu)
                lo_k = np.maximum(layers[k].lower, ia_lo)
                hi_k = np.minimum(layers[k].upper, ia_hi)
                layers[k] = LayerBounds(lo_k, np.maximum(hi_k, lo_k))
                hl, hu = layers[k].post_activation()
            prev_cols = model.add_layer(prev_cols, W, b, layers[l], relax=True).h_cols
    return Bounds(tuple(layers), "lp", time.perf_counter() - t0, solves, tuple(notes))


def compute_bounds(net: Network, domain, *, method: str = "lp", **kw) -> Bounds:
    """Bounds by name: ``"ia"`` (intervals), ``"symbolic"`` (back-substitution) or ``"lp"``."""
    if method == "ia":
        return interval_bounds(net, domain)
    if method == "symbolic":
        return symbolic_bounds(net, domain)
    if method == "lp":
        return lp_bounds(net, domain, **kw)
    raise ValueError(f"unknown bounds method {method!r}; use 'ia', 'symbolic' or 'lp'")
