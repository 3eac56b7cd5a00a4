"""The affine chain the importers build a :class:`~mipnet.core.network.Network` from."""

from __future__ import annotations

import numpy as np

from mipnet.core.network import Network

__all__ = ["AffineChain"]


class AffineChain:
    """The affine map since the last ReLU, and the layers closed so far.

    Shared by the importers. ``A, c`` map the input of the current block to the
    current value; ``A is None`` means the identity (nothing since the last ReLU).
    """

    def __init__(self) -> None:
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        self.A: np.ndarray | None = None
        self.c: np.ndarray | None = None

    def affine(self, W: np.ndarray, b: np.ndarray) -> None:
        """Apply ``x -> W x + b`` (exact when nothing precedes it in the block)."""
        if self.A is None:
            self.A, self.c = W, b
        else:
            self.A, self.c = W @ self.A, W @ self.c + b

    def diagonal(self, s: np.ndarray, t: np.ndarray) -> None:
        """Apply ``x -> s * x + t``."""
        if self.A is None:
            self.A, self.c = np.diag(s), t
        else:
            self.A, self.c = s[:, None] * self.A, s * self.c + t

    def shift(self, t: np.ndarray) -> None:
        """Apply ``x -> x + t``."""
        if self.A is None:
            self.A, self.c = np.eye(t.size), t
        else:
            self.c = self.c + t

    def relu(self, dim: int | None) -> bool:
        """Close a hidden layer; False if the size of a leading ReLU is unknown."""
        if self.A is None:
            if self.layers:  # ReLU right after ReLU: idempotent
                return True
            if dim is None:
                return False
            self.A, self.c = np.eye(dim), np.zeros(dim)  # a ReLU on the input itself
        self.layers.append((self.A, self.c))
        self.A = self.c = None
        return True

    @property
    def ends_with_relu(self) -> bool:
        return self.A is None and bool(self.layers)

    def network(self) -> Network:
        return Network.from_layers(self.layers + [(self.A, self.c)])
