"""Input domains: the set D of inputs over which an analysis holds.

Every domain is a polytope ``{x : lower <= x <= upper, A x <= c}``: a box, an
L-infinity ball clipped to a box, or general linear constraints inside a box.
The bounding box is always finite, which keeps every MILP bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from mipnet.core.errors import InvalidDomainError

__all__ = ["Domain", "Box", "LinfBall", "Polytope", "as_domain"]


def _vector(name: str, v, dim: Optional[int]) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidDomainError(f"{name} must be numeric, got {v!r}") from None
    if a.ndim == 0:
        if dim is None:
            raise InvalidDomainError(f"{name} is a scalar; give the dimension with dim=")
        a = np.full(int(dim), float(a))
    a = a.reshape(-1)
    if dim is not None and a.size != dim:
        raise InvalidDomainError(f"{name} has {a.size} entries, expected {dim}")
    if not np.all(np.isfinite(a)):
        raise InvalidDomainError(f"{name} must be finite; got NaN or inf (bound every input)")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Domain:
    """The polytope ``{x : lower <= x <= upper, A x <= c}`` (A, c optional)."""

    lower: np.ndarray
    upper: np.ndarray
    A: Optional[np.ndarray] = None
    c: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        lo = _vector("lower", self.lower, None if np.ndim(self.lower) else np.size(self.upper))
        hi = _vector("upper", self.upper, lo.size)
        if lo.size == 0:
            raise InvalidDomainError("a domain needs at least one input dimension")
        bad = np.flatnonzero(lo > hi)
        if bad.size:
            i = int(bad[0])
            raise InvalidDomainError(
                f"lower > upper at input {i} ({lo[i]} > {hi[i]}); every lower bound must be <= its upper bound"
            )
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        if (self.A is None) != (self.c is None):
            raise InvalidDomainError("give both A and c for linear constraints A x <= c, or neither")
        if self.A is not None:
            A = np.atleast_2d(np.asarray(self.A, dtype=np.float64))
            c = _vector("c", self.c, A.shape[0])
            if A.shape[1] != lo.size:
                raise InvalidDomainError(f"A has {A.shape[1]} columns, the domain has {lo.size} inputs")
            if not np.all(np.isfinite(A)):
                raise InvalidDomainError("A must be finite")
            A = A.copy()
            A.setflags(write=False)
            object.__setattr__(self, "A", A)
            object.__setattr__(self, "c", c)

    @property
    def dim(self) -> int:
        return self.lower.size

    @property
    def has_constraints(self) -> bool:
        return self.A is not None and self.A.shape[0] > 0

    @property
    def center(self) -> np.ndarray:
        return (self.lower + self.upper) / 2

    def check_dim(self, n: int) -> None:
        """Raise if the domain does not match a network with ``n`` inputs."""
        if self.dim != n:
            raise InvalidDomainError(f"the domain has {self.dim} inputs but the network takes {n}")

    def contains(self, x, *, tol: float = 1e-9) -> np.ndarray:
        """Boolean mask (or bool) of the points inside the domain, within ``tol``."""
        x = np.asarray(x, dtype=np.float64)
        single = x.ndim == 1
        X = np.atleast_2d(x)
        ok = np.all((X >= self.lower - tol) & (X <= self.upper + tol), axis=1)
        if self.has_constraints:
            ok &= np.all(X @ self.A.T <= self.c + tol, axis=1)
        return bool(ok[0]) if single else ok

    def sample(self, n: int, *, seed=None, include_vertices: bool = False) -> np.ndarray:
        """``n`` points of the domain: uniform in the box, rejection for constraints.

        With ``include_vertices`` box corners lead the sample: all 2^dim when that is at most
        ``n``, else n // 2 random corners.
        """
        rng = np.random.default_rng(seed)
        parts = []
        if include_vertices:
            if self.dim <= 20 and 2**self.dim <= n:  # every vertex
                bits = ((np.arange(2**self.dim)[:, None] >> np.arange(self.dim)) & 1).astype(bool)
            else:  # random vertices
                bits = rng.integers(0, 2, size=(n // 2, self.dim)).astype(bool)
            parts.append(np.where(bits, self.upper, self.lower))
        need = n - sum(len(p) for p in parts)
        tries = 0
        while need > 0:
            X = rng.uniform(self.lower, self.upper, size=(max(need * 2, 16), self.dim))
            X = X[self.contains(X)]
            parts.append(X[:need])
            need -= len(parts[-1])
            tries += 1
            if tries > 1000:
                raise InvalidDomainError("could not sample the domain: its constraints leave almost no volume")
        X = np.concatenate(parts)[:n] if parts else np.zeros((0, self.dim))
        return X[self.contains(X)] if include_vertices and self.has_constraints else X

    def to_dict(self) -> dict:
        d = {"lower": self.lower.tolist(), "upper": self.upper.tolist()}
        if self.has_constraints:
            d["A"] = self.A.tolist()
            d["c"] = self.c.tolist()
        return d

    def __repr__(self) -> str:
        extra = f", {self.A.shape[0]} constraints" if self.has_constraints else ""
        return f"{type(self).__name__}(dim={self.dim}{extra})"


def Box(lower, upper, dim: Optional[int] = None) -> Domain:
    """The box ``lower <= x <= upper``; scalars broadcast to ``dim`` inputs."""
    if dim is None and np.ndim(lower) == 0 and np.ndim(upper) == 0:
        raise InvalidDomainError("scalar bounds need the dimension: Box(lo, hi, dim=n)")
    if dim is None:
        dim = np.size(lower) if np.ndim(lower) else np.size(upper)
    return Domain(_vector("lower", lower, dim), _vector("upper", upper, dim))


def LinfBall(center, radius: float, lower=None, upper=None) -> Domain:
    """``{x : |x - center|_inf <= radius}``, clipped to the box [lower, upper] when given."""
    x0 = _vector("center", center, None)
    r = float(radius)
    if not np.isfinite(r) or r < 0:
        raise InvalidDomainError(f"radius must be finite and >= 0, got {radius}")
    lo, hi = x0 - r, x0 + r
    if lower is not None:
        lo = np.maximum(lo, _vector("lower", lower, x0.size))
    if upper is not None:
        hi = np.minimum(hi, _vector("upper", upper, x0.size))
    if np.any(lo > hi):
        raise InvalidDomainError("the ball does not meet the clipping box: the domain is empty")
    return Domain(lo, hi)


def Polytope(A, c, lower, upper) -> Domain:
    """``{x : A x <= c}`` inside the box [lower, upper]."""
    if np.ndim(lower) == 0 and np.ndim(upper) == 0:
        dim = np.shape(A)[-1]
        return Domain(_vector("lower", lower, dim), _vector("upper", upper, dim), A, c)
    box = Box(lower, upper)
    return Domain(box.lower, box.upper, A, c)


def as_domain(d, dim: Optional[int] = None) -> Domain:
    """Accept a Domain, a ``(lower, upper)`` pair, or raise a helpful error."""
    if isinstance(d, Domain):
        if dim is not None:
            d.check_dim(dim)
        return d
    if isinstance(d, (tuple, list)) and len(d) == 2:
        dom = Box(d[0], d[1], dim)
        if dim is not None:
            dom.check_dim(dim)
        return dom
    raise InvalidDomainError(
        f"expected a Domain (Box, LinfBall, Polytope) or a (lower, upper) pair, got {type(d).__name__}"
    )
