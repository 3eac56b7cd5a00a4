"""The one network representation every mipnet analysis reads.

A feed-forward ReLU network is a chain of affine maps with a ReLU after every
map but the last:

    h^0 = x,   h^l = max(0, W^l h^{l-1} + b^l)  (l = 1..L),   f(x) = W^{L+1} h^L + b^{L+1}.

Weights are float64 in PyTorch orientation (out, in). Importers
(:mod:`mipnet.torch_io`, :mod:`mipnet.onnx_io`) convert everything else into
this form at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from mipnet.core.errors import InvalidNetworkError

__all__ = ["Network"]


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False, repr=False)
class Network:
    """An affine chain with ReLU on every hidden layer and an affine output.

    Parameters
    ----------
    weights : sequence of arrays, shapes (n_l, n_{l-1})
        ``W^1 .. W^{L+1}``; the last one is the output layer (no ReLU).
    biases : sequence of arrays, shapes (n_l,)

    Examples
    --------
    >>> import numpy as np
    >>> net = Network([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])],
    ...               [np.zeros(2), np.zeros(1)])
    >>> net.widths
    (1, 2, 1)
    >>> float(net.forward(np.array([-3.0]))[0])   # |x|
    3.0
    """

    weights: tuple
    biases: tuple

    def __post_init__(self) -> None:
        weights = tuple(self.weights)
        biases = tuple(self.biases)
        if len(weights) == 0:
            raise InvalidNetworkError("a network needs at least one affine layer; got none")
        if len(weights) != len(biases):
            raise InvalidNetworkError(
                f"got {len(weights)} weight matrices but {len(biases)} bias vectors; "
                "give one bias per layer"
            )
        ws, bs = [], []
        for i, (W, b) in enumerate(zip(weights, biases)):
            W = np.asarray(W)
            b = np.asarray(b)
            if W.ndim != 2:
                raise InvalidNetworkError(f"layer {i}: weight must be 2-D (out, in), got shape {W.shape}")
            if b.ndim != 1 or b.shape[0] != W.shape[0]:
                raise InvalidNetworkError(
                    f"layer {i}: bias shape {b.shape} does not match weight shape {W.shape}; "
                    f"expected ({W.shape[0]},)"
                )
            if W.shape[0] == 0 or W.shape[1] == 0:
                raise InvalidNetworkError(f"layer {i}: empty weight matrix of shape {W.shape}")
            if ws and W.shape[1] != ws[-1].shape[0]:
                raise InvalidNetworkError(
                    f"layer {i}: weight takes {W.shape[1]} inputs but layer {i - 1} "
                    f"has {ws[-1].shape[0]} outputs"
                )
            try:
                W = _frozen(W)
                b = _frozen(b)
            except (TypeError, ValueError) as exc:
                raise InvalidNetworkError(f"layer {i}: weights are not numeric ({exc})") from None
            if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
                raise InvalidNetworkError(f"layer {i}: weights or bias contain NaN or inf")
            ws.append(W)
            bs.append(b)
        object.__setattr__(self, "weights", tuple(ws))
        object.__setattr__(self, "biases", tuple(bs))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_layers(cls, layers: Iterable[tuple[np.ndarray, np.ndarray]]) -> "Network":
        """Build from ``[(W^1, b^1), ..., (W^{L+1}, b^{L+1})]`` with W of shape (out, in)."""
        layers = list(layers)
        return cls(tuple(W for W, _ in layers), tuple(b for _, b in layers))

    @classmethod
    def random(cls, widths: Sequence[int], *, seed: int = 0, bias_scale: float = 0.5) -> "Network":
        """A network with He-scaled Gaussian weights; for tests and examples."""
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise InvalidNetworkError(f"widths must list at least input and output sizes >= 1, got {widths}")
        rng = np.random.default_rng(seed)
        ws = [rng.normal(0.0, np.sqrt(2.0 / m), size=(n, m)) for m, n in zip(widths[:-1], widths[1:])]
        bs = [rng.normal(0.0, bias_scale, size=n) for n in widths[1:]]
        return cls(tuple(ws), tuple(bs))

    def replace_layers(self, layers: Iterable[tuple[np.ndarray, np.ndarray]]) -> "Network":
        """A new network with the given layers (convenience twin of :meth:`from_layers`)."""
        return type(self).from_layers(layers)

    # ------------------------------------------------------------------ shape facts
    @property
    def layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(W, b), ...]`` for all affine layers, output layer last."""
        return list(zip(self.weights, self.biases))

    @property
    def widths(self) -> tuple[int, ...]:
        """``(n_0, n_1, ..., n_L, n_{L+1})``: input, hidden and output sizes."""
        return (self.weights[0].shape[1],) + tuple(W.shape[0] for W in self.weights)

    @property
    def input_dim(self) -> int:
        return self.weights[0].shape[1]

    @property
    def output_dim(self) -> int:
        return self.weights[-1].shape[0]

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        return tuple(W.shape[0] for W in self.weights[:-1])

    @property
    def num_hidden_layers(self) -> int:
        return len(self.weights) - 1

    @property
    def num_hidden_neurons(self) -> int:
        return int(sum(self.hidden_widths))

    @property
    def hidden_offsets(self) -> tuple[int, ...]:
        """Start of each hidden layer in a concatenated activation pattern (length L + 1)."""
        return tuple(int(v) for v in np.concatenate([[0], np.cumsum(self.hidden_widths, dtype=int)]))

    @property
    def num_parameters(self) -> int:
        return int(sum(W.size + b.size for W, b in self.layers))

    @property
    def num_nonzero_weights(self) -> int:
        return int(sum(np.count_nonzero(W) for W in self.weights))

    @property
    def density(self) -> float:
        """Fraction of non-zero weights (biases not counted)."""
        return self.num_nonzero_weights / sum(W.size for W in self.weights)

    def layer_densities(self) -> list[float]:
        return [float(np.count_nonzero(W)) / W.size for W in self.weights]

    def __repr__(self) -> str:
        return f"Network({'-'.join(map(str, self.widths))})"

    def summary(self) -> dict:
        """Plain-dict description: widths, parameters, densities."""
        return {
            "widths": list(self.widths),
            "hidden_layers": self.num_hidden_layers,
            "hidden_neurons": self.num_hidden_neurons,
            "parameters": self.num_parameters,
            "nonzero_weights": self.num_nonzero_weights,
            "density": self.density,
            "layer_densities": self.layer_densities(),
        }

    def allclose(self, other: "Network", *, rtol: float = 0.0, atol: float = 0.0) -> bool:
        """Same widths and weights equal within tolerance (exact by default)."""
        return self.widths == other.widths and all(
            np.allclose(a, b, rtol=rtol, atol=atol) and np.allclose(c, d, rtol=rtol, atol=atol)
            for (a, c), (b, d) in zip(self.layers, other.layers)
        )

    # ------------------------------------------------------------------ evaluation
    def _as_batch(self, x) -> tuple[np.ndarray, bool]:
        x = np.asarray(x, dtype=np.float64)
        single = x.ndim == 1
        if single:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise InvalidNetworkError(
                f"input has shape {x.shape if not single else x.shape[1:]}, "
                f"expected (N, {self.input_dim}) or ({self.input_dim},)"
            )
        return x, single

    def preactivations(self, x) -> list[np.ndarray]:
        """Pre-activations ``W^l h^{l-1} + b^l`` of every layer, output layer last.

        ``x`` has shape (N, n0) (or (n0,), then every entry has shape (n_l,)).
        """
        h, single = self._as_batch(x)
        out = []
        for l, (W, b) in enumerate(self.layers):
            y = h @ W.T + b
            out.append(y[0] if single else y)
            h = np.maximum(y, 0.0)
        return out

    def forward(self, x) -> np.ndarray:
        """The network's output f(x), batched, in float64."""
        h, single = self._as_batch(x)
        for W, b in self.layers[:-1]:
            h = np.maximum(h @ W.T + b, 0.0)
        W, b = self.layers[-1]
        y = h @ W.T + b
        return y[0] if single else y

    __call__ = forward

    def activation_pattern(self, x) -> np.ndarray:
        """Concatenated on/off pattern (pre-activation > 0) of all hidden neurons.

        Shape (N, num_hidden_neurons) of bool, or (num_hidden_neurons,) for one input.
        """
        ys = self.preactivations(x)[:-1]
        if not ys:
            x, single = self._as_batch(x)
            return np.zeros((0,) if single else (x.shape[0], 0), dtype=bool)
        return np.concatenate([y > 0 for y in ys], axis=-1)

    def local_affine_map(self, x) -> tuple[np.ndarray, np.ndarray]:
        """``(A, c)`` with f(z) = A z + c on the activation region of the single input x."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        pattern = self.activation_pattern(x)
        return self.affine_map_of_pattern(pattern)

    def affine_map_of_pattern(self, pattern) -> tuple[np.ndarray, np.ndarray]:
        """``(A, c)``: the affine map f(x) = A x + c of the region with this activation pattern."""
        pattern = np.asarray(pattern, dtype=bool).reshape(-1)
        if pattern.size != self.num_hidden_neurons:
            raise InvalidNetworkError(
                f"pattern has {pattern.size} entries, the network has {self.num_hidden_neurons} hidden neurons"
            )
        A = np.eye(self.input_dim)
        c = np.zeros(self.input_dim)
        off = self.hidden_offsets
        for l, (W, b) in enumerate(self.layers):
            A, c = W @ A, W @ c + b
            if l < self.num_hidden_layers:
                on = pattern[off[l]:off[l + 1]].astype(np.float64)
                A, c = A * on[:, None], c * on
        return A, c
