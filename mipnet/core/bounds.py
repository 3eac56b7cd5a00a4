"""Bounds as values: per-layer pre-activation bounds, neuron states, the neuron classifier.

``Bounds.layers[l]`` bounds the pre-activation ``y^{l+1} = W^{l+1} h^l + b^{l+1}`` of
affine layer l + 1 over an input domain (hidden layers first, the output layer last).
How they are computed lives in :mod:`mipnet.bounds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from mipnet.core.errors import InvalidArgumentError
from mipnet.core.network import Network

__all__ = ["NeuronState", "LayerBounds", "Bounds", "classify_neurons"]


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
        raise InvalidArgumentError(f"lower and upper shapes differ: {lower.shape} vs {upper.shape}")
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
            raise InvalidArgumentError(f"lower has {lo.size} entries, upper {hi.size}")
        if np.any(np.isnan(lo)) or np.any(np.isnan(hi)):
            raise InvalidArgumentError("bounds contain NaN (do the network's values overflow float64 on the domain?)")
        if np.any(lo > hi + 1e-9 * (1 + np.abs(hi))):
            i = int(np.flatnonzero(lo > hi)[0])
            raise InvalidArgumentError(f"lower > upper at neuron {i}: {lo[i]} > {hi[i]}")
        hi = np.maximum(hi, lo)
        lo.setflags(write=False)
        hi.setflags(write=False)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @classmethod
    def trusted(cls, lower: np.ndarray, upper: np.ndarray) -> "LayerBounds":
        """``LayerBounds(lower, upper)`` for float64 read-only arrays already checked (no NaN,
        ``upper >= lower``, as the batched bounds make them): without the constructor's copies
        and checks, which cost a fifth of a vectorised box of the equivalence branch and bound."""
        lb = object.__new__(cls)
        object.__setattr__(lb, "lower", lower)
        object.__setattr__(lb, "upper", upper)
        return lb

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
