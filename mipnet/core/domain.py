"""Input domains: the set D of inputs over which an analysis holds.

Every domain is a polytope ``{x : lower <= x <= upper, A x <= c}``: a box, an
L-infinity ball clipped to a box, or general linear constraints inside a box;
or an L1 (Manhattan) ball clipped to a box (:func:`L1Ball`), a polytope with
2^n facets that the MILPs encode with 2n auxiliary columns instead.
The bounding box is always finite, which keeps every MILP bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from mipnet.core.errors import InvalidDomainError

__all__ = ["Domain", "Box", "LinfBall", "L1Ball", "L1BallDomain", "Polytope", "as_domain"]


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

    @property
    def is_box(self) -> bool:
        """True if the domain is its bounding box (no rows, no ball)."""
        return not self.has_constraints

    def clip(self, X) -> np.ndarray:
        """X (N, n) or (n,) moved into the bounding box (an L1 ball also pulls points into the ball)."""
        return np.clip(np.asarray(X, dtype=np.float64), self.lower, self.upper)

    def rescaled(self, s: float) -> "Domain":
        """The image ``{x / s : x in D}`` (``s`` a power of two keeps it exact)."""
        if self.has_constraints:
            return Domain(self.lower / s, self.upper / s, self.A, self.c / s)
        return Domain(self.lower / s, self.upper / s)

    def support(self, W) -> np.ndarray:
        """``max_{x in box} W x`` per row of W (the box's support function; ignores ``A x <= c``).

        Sound for every domain (the box contains it); :class:`L1BallDomain` overrides it
        with the exact value over ball ∩ box.
        """
        W = np.atleast_2d(np.asarray(W, dtype=np.float64))
        return np.where(W > 0, W * self.upper, W * self.lower).sum(axis=1)

    def linear_maximizer(self, W) -> Optional[np.ndarray]:
        """A point ``argmax_{x in D} W x`` per row of W (a Frank-Wolfe step's target), or None
        where the domain has constraints ``A x <= c`` (that would take an LP). On a box: the
        vertex ``upper`` where ``w > 0``, else ``lower``."""
        if self.has_constraints:
            return None
        W = np.atleast_2d(np.asarray(W, dtype=np.float64))
        return np.where(W > 0, self.upper, self.lower)

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
    x0, r, lo, hi = _ball_box(center, radius, lower, upper)
    return Domain(lo, hi)


def _ball_box(center, radius, lower, upper):
    """``(center, radius, lo, hi)``: the box ``center +- radius`` clipped to [lower, upper] (validated)."""
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
    return x0, r, lo, hi


@dataclass(frozen=True, eq=False)
class L1BallDomain(Domain):
    """``{x : lower <= x <= upper, A x <= c, sum_i |x_i - l1_center_i| <= l1_radius}``.

    The box is the ball's enclosing box ``center +- radius`` intersected with the given one, so
    any analysis that only reads ``lower``/``upper`` stays sound (a superset). MILPs add
    ``x - center = p - q``, ``p, q >= 0``, ``sum(p + q) <= radius``
    (:meth:`~mipnet.milp.encoding.HighsModel` does it for every model on this domain).
    """

    l1_center: Optional[np.ndarray] = None
    l1_radius: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        x0 = _vector("center", self.l1_center, self.dim)
        r = float(self.l1_radius)
        if not np.isfinite(r) or r < 0:
            raise InvalidDomainError(f"radius must be finite and >= 0, got {self.l1_radius}")
        object.__setattr__(self, "l1_center", x0)
        object.__setattr__(self, "l1_radius", r)
        if float(np.abs(np.clip(x0, self.lower, self.upper) - x0).sum()) > r * (1 + 1e-12):
            raise InvalidDomainError("the L1 ball does not meet the clipping box: the domain is empty")

    @property
    def is_box(self) -> bool:
        return False

    @property
    def anchor(self) -> np.ndarray:
        """The point of the box nearest to the centre (in the domain; the centre itself when inside)."""
        return np.clip(self.l1_center, self.lower, self.upper)

    @property
    def center(self) -> np.ndarray:
        return self.anchor

    def l1_distance(self, X) -> np.ndarray:
        """``sum_i |x_i - center_i|`` per row of X."""
        return np.abs(np.atleast_2d(np.asarray(X, dtype=np.float64)) - self.l1_center).sum(axis=1)

    def contains(self, x, *, tol: float = 1e-9) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        ok = np.atleast_1d(super().contains(np.atleast_2d(x), tol=tol))
        ok &= self.l1_distance(x) <= self.l1_radius + tol * (1.0 + self.l1_radius)
        return bool(ok[0]) if x.ndim == 1 else ok

    def clip(self, X) -> np.ndarray:
        """Clip to the box, then pull each point towards :attr:`anchor` until it is in the ball.

        ``x <- a + t (x - a)`` with the largest ``t <= 1`` that convexity of the distance
        guarantees: ``t = (r - d(a)) / (d(x) - d(a))``; it stays in the box (convex, a in it).
        """
        X = np.asarray(X, dtype=np.float64)
        single = X.ndim == 1
        X = np.clip(np.atleast_2d(X), self.lower, self.upper)
        a = self.anchor
        da = float(np.abs(a - self.l1_center).sum())
        d = self.l1_distance(X)
        over = d > self.l1_radius
        if np.any(over):
            t = (self.l1_radius - da) / (d[over] - da) * (1 - 4 * np.finfo(np.float64).eps)
            X = X.copy()
            X[over] = a + t[:, None] * (X[over] - a)
        return X[0] if single else X

    def rescaled(self, s: float) -> "Domain":
        base = super().rescaled(s)
        return L1BallDomain(base.lower, base.upper, base.A, base.c, self.l1_center / s, self.l1_radius / s)

    def support(self, W) -> np.ndarray:
        """Exact ``max_{x in ball ∩ box} W x`` per row (rows ``A x <= c`` ignored: an upper bound).

        From ``a`` = :attr:`anchor` (the cheapest point; every move inside the box goes away
        from the centre, at cost 1 per unit) the budget ``r - |a - center|_1`` is spent on the
        coordinates by decreasing ``|w_i|``, each up to its box end: a fractional knapsack,
        solved greedily (Dantzig 1957), vectorised over the rows of W. The budget is rounded
        up by the rounding error of its sums (the value is never below the exact one by more
        than the rounding of the final dot products, which callers widen).
        """
        W = np.atleast_2d(np.asarray(W, dtype=np.float64))
        order, take = self._fill(W, rounded_up=True)
        return W @ self.anchor + (np.take_along_axis(np.abs(W), order, axis=1) * take).sum(axis=1)

    def _fill(self, W: np.ndarray, *, rounded_up: bool = False) -> tuple:
        """The greedy fractional knapsack of :meth:`support`: ``(order, take)``, the coordinates of
        each row by decreasing ``|w_i|`` and how far each moves from :attr:`anchor` towards its
        box end in that order. ``rounded_up``: the budget plus the rounding error of the sums it is
        compared with (never under the exact value, for a sound support)."""
        a = self.anchor
        cost = float(np.abs(a - self.l1_center).sum())
        budget = max(0.0, self.l1_radius - cost)
        room = np.abs(np.where(W > 0, self.upper, self.lower) - a)
        order = np.argsort(-np.abs(W), axis=1, kind="stable")
        pr = np.take_along_axis(room, order, axis=1)
        extra = 0.0
        if rounded_up:
            extra = (2 * (self.dim + 2) * np.finfo(np.float64).eps * (self.l1_radius + cost + pr.sum(axis=1)))[:, None]
        return order, np.clip(budget + extra - (np.cumsum(pr, axis=1) - pr), 0.0, pr)

    def linear_maximizer(self, W) -> Optional[np.ndarray]:
        """A point ``argmax_{x in ball ∩ box} W x`` per row of W: the greedy fractional knapsack of
        :meth:`support` (from :attr:`anchor`, the budget spent on the coordinates by decreasing
        ``|w_i|``, each up to its box end), as a point; pulled into the ball by :meth:`clip`
        against rounding. None with constraints ``A x <= c``."""
        if self.has_constraints:
            return None
        W = np.atleast_2d(np.asarray(W, dtype=np.float64))
        order, sorted_take = self._fill(W)
        take = np.empty_like(W)
        np.put_along_axis(take, order, sorted_take, axis=1)
        return self.clip(self.anchor + np.sign(W) * take)

    def sample(self, n: int, *, seed=None, include_vertices: bool = False) -> np.ndarray:
        """``n`` points of ball ∩ box.

        Uniform in the ball (Laplace directions ``|e| / sum|e|`` times ``r U^(1/n)``, signs at
        random), pulled into the box by :meth:`clip`; with ``include_vertices`` the ball's
        vertices ``center +- r e_i`` (clipped) lead the sample.
        """
        rng = np.random.default_rng(seed)
        parts = []
        if include_vertices:
            E = np.concatenate([np.eye(self.dim), -np.eye(self.dim)]) * self.l1_radius
            parts.append(self.clip(self.l1_center + E)[: n])
        need = n - sum(len(p) for p in parts)
        if need > 0:
            e = rng.exponential(size=(need, self.dim)) * rng.choice([-1.0, 1.0], size=(need, self.dim))
            e /= np.maximum(np.abs(e).sum(axis=1, keepdims=True), 1e-300)
            rad = self.l1_radius * rng.uniform(size=(need, 1)) ** (1.0 / self.dim)
            parts.append(self.clip(self.l1_center + rad * e))
        X = np.concatenate(parts)[:n] if parts else np.zeros((0, self.dim))
        if self.has_constraints:
            X = X[super().contains(X)]
        return X

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["l1_center"] = self.l1_center.tolist()
        d["l1_radius"] = self.l1_radius
        return d

    def __repr__(self) -> str:
        return f"L1Ball(dim={self.dim}, radius={self.l1_radius:g})"


def L1Ball(center, radius: float, lower=None, upper=None) -> L1BallDomain:
    """``{x : sum_i |x_i - center_i| <= radius}``, clipped to the box [lower, upper] when given.

    Example: ``L1Ball(c, 0.05 * d, 0, 16)`` is the Manhattan ball of the CP 2020 benchmarks
    (Kleine Büning, Kern and Sinz) around a cluster centre c of [0, 16]^64.
    """
    x0, r, lo, hi = _ball_box(center, radius, lower, upper)
    return L1BallDomain(lo, hi, None, None, x0, r)


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
