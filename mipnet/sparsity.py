"""Per-layer sparsity allocation that maximises the expected-rank region bound.

Cai et al. (CPAIOR 2023) observe that, at the same global density, the expected number of
linear regions of a randomly pruned network (their expected-rank bound, see
:func:`mipnet.theory.expected_rank_bound`) depends strongly on how the kept weights are
spread over the layers, and that networks pruned with bound-maximising per-layer densities
keep their accuracy at lower densities. :func:`allocate_sparsity` chooses those densities.

Widths convention here: ``widths = (n0, n1, ..., nL, n_out)``, as ``Network.widths``: one
weight matrix per consecutive pair, the last one the affine output layer. Densities are
returned for every weight matrix, the output layer included (1.0 when it is kept dense).

Reference
---------
J. Cai, K.-N. Nguyen, N. Shrestha, A. Good, R. Tu, X. Yu, S. Zhe, T. Serra, "Getting away
with more network pruning: from sparsity to geometry and linear regions", CPAIOR 2023,
arXiv:2301.07966.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mipnet.core.errors import InvalidArgumentError
from mipnet.core.network import Network
from mipnet.theory import RANK_MODELS, binomial_rank_logpmf, layer_S, mix_rank, sample_ranks, widths_of

__all__ = [
    "SparsityAllocation",
    "allocate_sparsity",
    "sparse_log_bound",
    "density_curve",
    "plot_bound_vs_density",
    "parse_prunable",
]

log = logging.getLogger(__name__)

_EVALS_PER_CALL = 3000  # allocations evaluated exhaustively on the grid (sets the grid size)


# ---------------------------------------------------------------------------- result
@dataclass(frozen=True)
class SparsityAllocation:
    """Per-layer densities chosen to maximise the expected-rank bound.

    Attributes
    ----------
    widths : tuple of int
        ``(n0, n1, ..., nL, n_out)``.
    densities : tuple of float
        Fraction of weights kept, one per weight matrix (output layer last).
    log_bound : float
        ln of the expected-rank bound at ``densities``.
    uniform_densities : tuple of float
        The same budget spread uniformly over the prunable layers.
    uniform_log_bound : float
        ln of the bound at ``uniform_densities``.
    dense_log_bound : float
        ln of the bound with no pruning.
    grid_log_bound : float
        Best ln bound on the density grid, before the continuous refinement.
    parameters_kept : float
        Expected number of weights kept in the prunable layers, ``sum_l p_l |W^l|``.
    budget : float
        Number of weights allowed in the prunable layers.
    prunable : tuple of int
        Indices (0-based, into the weight matrices) of the layers that may be pruned.
    rank_model : str
    output_in_bound : bool
        Whether the output layer enters the bound as a last factor (Cai et al.'s convention).
    evaluations : int
        Allocations evaluated on the grid.
    seconds : float
    """

    widths: tuple
    densities: tuple
    log_bound: float
    uniform_densities: tuple
    uniform_log_bound: float
    dense_log_bound: float
    grid_log_bound: float
    parameters_kept: float
    budget: float
    prunable: tuple
    rank_model: str
    output_in_bound: bool
    evaluations: int
    seconds: float

    @property
    def density(self) -> float:
        """Global density of the prunable layers (budget / prunable weights)."""
        return self.budget / sum(_sizes(self.widths)[i] for i in self.prunable)

    @property
    def total_weights_kept(self) -> float:
        """Expected number of weights kept in all layers, dense ones included."""
        return float(sum(p * s for p, s in zip(self.densities, _sizes(self.widths))))

    def to_dict(self) -> dict:
        return {
            "widths": list(self.widths),
            "densities": list(self.densities),
            "log_bound": self.log_bound,
            "uniform_densities": list(self.uniform_densities),
            "uniform_log_bound": self.uniform_log_bound,
            "dense_log_bound": self.dense_log_bound,
            "grid_log_bound": self.grid_log_bound,
            "gain": self.log_bound - self.uniform_log_bound,
            "density": self.density,
            "parameters_kept": self.parameters_kept,
            "total_weights_kept": self.total_weights_kept,
            "budget": self.budget,
            "prunable": list(self.prunable),
            "rank_model": self.rank_model,
            "output_in_bound": self.output_in_bound,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
        }

    def __str__(self) -> str:
        sizes = _sizes(self.widths)
        total = sum(sizes[i] for i in self.prunable)
        lines = [
            f"sparsity allocation for {'-'.join(map(str, self.widths))} "
            f"({self.rank_model} rank model, output layer {'in' if self.output_in_bound else 'not in'} the bound)",
            f"budget: {self.budget:.6g} of {total} prunable weights (density {self.density:.6g})",
            f"{'layer':>5} {'shape':>11} {'weights':>9} {'prunable':>8} {'density':>10} {'kept':>10} {'uniform':>10}",
        ]
        for i, s in enumerate(sizes):
            shape = f"{self.widths[i + 1]}x{self.widths[i]}"
            lines.append(
                f"{'W' + str(i + 1):>5} {shape:>11} {s:>9} {'yes' if i in self.prunable else 'no':>8} "
                f"{self.densities[i]:>10.4g} {self.densities[i] * s:>10.4g} {self.uniform_densities[i]:>10.4g}"
            )
        lines += [
            f"ln B allocated: {self.log_bound:.3f}",
            f"ln B uniform:   {self.uniform_log_bound:.3f}  (gain {self.log_bound - self.uniform_log_bound:+.3f})",
            f"ln B dense:     {self.dense_log_bound:.3f}",
            f"{self.evaluations} grid allocations, {self.seconds:.3f} s",
        ]
        return "\n".join(lines)


# ---------------------------------------------------------------------------- helpers
def _sizes(widths) -> list[int]:
    return [widths[i] * widths[i + 1] for i in range(len(widths) - 1)]


def _full_widths(widths, output_width) -> tuple[int, ...]:
    if isinstance(widths, Network):
        w = tuple(int(x) for x in widths.widths)
        if output_width is not None:
            raise InvalidArgumentError("output_width is read from the Network; do not pass it as well")
    else:
        w = widths_of(widths)
        if output_width is not None:
            if isinstance(output_width, bool) or not isinstance(output_width, (int, np.integer)) or output_width < 1:
                raise InvalidArgumentError(f"output_width must be a positive integer, got {output_width!r}")
            w = w + (int(output_width),)
    if len(w) < 2:
        raise InvalidArgumentError(
            f"widths {w} describe no weight matrix; give (n0, n1, ..., nL, n_out), e.g. 784,100,100,10"
        )
    return w


def parse_prunable(spec, n_layers: int) -> tuple[int, ...]:
    """Indices of prunable weight matrices from ``None``/"hidden", "all", or a list / "0,1".

    Indices are 0-based into the weight matrices (``W^1`` is 0); negative ones count from the end.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "hidden"):
        idx = list(range(n_layers - 1)) if n_layers > 1 else [0]
    elif isinstance(spec, str) and spec.strip().lower() == "all":
        idx = list(range(n_layers))
    else:
        if isinstance(spec, str):
            parts = [p for p in spec.replace(" ", ",").split(",") if p]
            try:
                spec = [int(p) for p in parts]
            except ValueError:
                raise InvalidArgumentError(
                    f"prunable {spec!r}: give layer indices like 0,1 (0-based weight matrices), 'hidden' or 'all'"
                ) from None
        if np.isscalar(spec):
            spec = [spec]
        idx = []
        for v in spec:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise InvalidArgumentError(f"prunable entries must be integer layer indices, got {v!r}")
            v = int(v)
            if not -n_layers <= v < n_layers:
                raise InvalidArgumentError(
                    f"prunable index {v} is out of range: the network has {n_layers} weight matrices (0..{n_layers - 1})"
                )
            idx.append(v % n_layers)
    if not idx:
        raise InvalidArgumentError("no prunable layer: give at least one weight-matrix index")
    if len(set(idx)) != len(idx):
        raise InvalidArgumentError(f"prunable lists a layer twice: {list(spec)}")
    return tuple(sorted(idx))


class _RankModel:
    """Log rank pmf of one weight matrix as a function of its density."""

    def __init__(self, R: int, C: int, rank_model: str, *, p_min: float, n_samples: int, seed: int):
        self.R, self.C, self.K = R, C, min(R, C)
        self.model = rank_model
        self._n_samples, self._seed, self._p_min = n_samples, seed, p_min
        self.table_p = None

    def _build_table(self) -> None:
        # Monte-Carlo pmf on a log-spaced density table; in between, mix the two
        # neighbouring pmfs linearly in log p (still a pmf, monotone in p).
        lo = max(min(self._p_min, 1.0), 1e-12)
        self.table_p = np.unique(np.concatenate([np.geomspace(lo, 1.0, 65), [1.0]]))
        ranks = sample_ranks(self.R, self.C, self.table_p, n_samples=self._n_samples, seed=self._seed)
        self.table_pmf = np.stack([np.bincount(r, minlength=self.K + 1) for r in ranks]).astype(float) / self._n_samples
        self.table_logp = np.log(self.table_p)

    def logpmf(self, p) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        if self.model == "binomial":
            return binomial_rank_logpmf(self.R, self.C, p)
        if np.all(p >= 1.0):  # a full Gaussian matrix has full rank almost surely
            out = np.full(p.shape + (self.K + 1,), -np.inf)
            out[..., self.K] = 0.0
            return out
        if self.table_p is None:
            self._build_table()
        x = np.log(np.clip(p, self.table_p[0], 1.0))
        i = np.clip(np.searchsorted(self.table_logp, x, side="right") - 1, 0, len(self.table_p) - 2)
        t = (x - self.table_logp[i]) / (self.table_logp[i + 1] - self.table_logp[i])
        t = np.clip(t, 0.0, 1.0)[..., None]
        pmf = (1 - t) * self.table_pmf[i] + t * self.table_pmf[i + 1]
        with np.errstate(divide="ignore"):
            return np.log(pmf)


@dataclass
class _Problem:
    widths: tuple
    sizes: list
    in_bound: list
    prunable: tuple
    models: list = field(default_factory=list)

    def log_bound(self, densities: Sequence[float]) -> float:
        """ln of the expected-rank bound for one full density vector."""
        Bn = np.zeros(1)
        for i in reversed(range(len(self.sizes))):
            if not self.in_bound[i]:
                continue
            n, C = self.widths[i + 1], self.widths[i]
            S = layer_S(Bn, n, min(n, C))
            Bn = mix_rank(S, self.models[i].logpmf(densities[i]))
        return float(Bn[min(self.widths[0], Bn.shape[-1] - 1)])


def _check_density(x: float, name: str) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a number in (0, 1], got {x!r}") from None
    if not (0.0 < x <= 1.0) or not math.isfinite(x):
        raise InvalidArgumentError(
            f"{name} = {x} must be in (0, 1]: it is the fraction of prunable weights kept (e.g. 0.01 keeps 1%)"
        )
    return x


def _setup(widths, *, prunable, rank_model, output_width, output_in_bound, n_samples, seed, p_min):
    w = _full_widths(widths, output_width)
    M = len(w) - 1
    if rank_model not in RANK_MODELS:
        raise InvalidArgumentError(f"rank_model must be one of {RANK_MODELS}, got {rank_model!r}")
    pr = () if prunable is None else parse_prunable(prunable, M)  # None: evaluation only
    in_bound = [i < M - 1 or bool(output_in_bound) for i in range(M)]
    if M - 1 in pr and not in_bound[M - 1]:
        raise InvalidArgumentError(
            "the output layer is prunable but does not enter the bound (output_in_bound=False); "
            "the allocation cannot weigh it: drop it from prunable or set output_in_bound=True"
        )
    sizes = _sizes(w)
    prob = _Problem(w, sizes, in_bound, pr)
    prob.models = [
        _RankModel(w[i + 1], w[i], rank_model, p_min=min(p_min, 1.0 / sizes[i]), n_samples=n_samples, seed=seed + i)
        for i in range(M)
    ]
    return prob


def sparse_log_bound(widths, densities, *, rank_model: str = "binomial", output_width: int | None = None,
                     output_in_bound: bool = True, n_samples: int = 128, seed: int = 0) -> float:
    """ln of the expected-rank bound for ``widths = (n0, ..., nL, n_out)`` and one density
    per weight matrix (the output layer's last; ignored when ``output_in_bound`` is False).

    Equals :func:`mipnet.theory.expected_rank_bound` with the output layer as last factor.

    Examples
    --------
    >>> round(sparse_log_bound((784, 100, 100, 10), [0.001, 0.001, 1.0]), 1)
    119.8
    """
    w = _full_widths(widths, output_width)
    M = len(w) - 1
    if np.isscalar(densities):
        densities = [densities] * M
    densities = [float(x) for x in densities]
    if len(densities) != M:
        raise InvalidArgumentError(f"densities has {len(densities)} entries; give one per weight matrix ({M})")
    for i, x in enumerate(densities):
        if not (0.0 <= x <= 1.0):
            raise InvalidArgumentError(f"densities[{i}] = {x} must be in [0, 1]")
    prob = _setup(w, prunable=None, rank_model=rank_model, output_width=None, output_in_bound=output_in_bound,
                  n_samples=n_samples, seed=seed, p_min=max(min([x for x in densities if x > 0] or [1.0]), 1e-9))
    return prob.log_bound(densities)


# ---------------------------------------------------------------------------- allocation
def _grid_search(prob: _Problem, budget: float, lo: dict, hi: dict, G: int, uniform: float):
    """Exhaustive search: every grid layer on its grid, the remainder layer takes the rest.

    The remainder layer is the first prunable layer; it receives ``budget - cost`` weights
    (capped at density 1), so every evaluated allocation spends the whole budget (the bound
    is non-decreasing in each density). The recurrence is evaluated backwards in batch:
    the state is ``B(l, .)`` for every partial assignment of the layers after l.
    Returns (best ln B, best densities, number of allocations evaluated).
    """
    w, sizes = prob.widths, prob.sizes
    M = len(sizes)
    r = prob.prunable[0]
    grid_layers = [i for i in prob.prunable if i != r]
    grids = {}
    for i in grid_layers:
        g = np.geomspace(lo[i], hi[i], G) if hi[i] > lo[i] else np.array([lo[i]])
        if lo[i] <= uniform <= hi[i]:
            g = np.concatenate([g, [uniform]])
        grids[i] = np.unique(g)
    min_rest = {}  # cheapest spend of the prunable layers before i (processed later)
    acc = 0.0
    for i in range(M):
        min_rest[i] = acc
        if i in prob.prunable:
            acc += lo[i] * sizes[i]
    Bs = np.zeros((1, 1))
    cost = np.zeros(1)
    assign = np.zeros((1, M))
    for i in reversed(range(M)):
        n, C = w[i + 1], w[i]
        S = layer_S(Bs, n, min(n, C)) if prob.in_bound[i] else None
        if i in grids:
            g = grids[i]
            lp = prob.models[i].logpmf(g)  # (G, K+1)
            Bs = mix_rank(S[:, None, :], lp[None, :, :]).reshape(-1, lp.shape[-1])
            cost = (cost[:, None] + g[None, :] * sizes[i]).reshape(-1)
            assign = np.repeat(assign, len(g), axis=0)
            assign[:, i] = np.tile(g, len(assign) // len(g))
            ok = cost + min_rest[i] <= budget * (1 + 1e-12)
            Bs, cost, assign = Bs[ok], cost[ok], assign[ok]
            if not len(cost):
                raise InvalidArgumentError("no grid allocation fits the budget; increase the budget or the density")
        elif i == r:
            p = np.minimum((budget - cost) / sizes[i], 1.0)
            p = np.maximum(p, lo[i])
            assign[:, i] = p
            Bs = mix_rank(S, prob.models[i].logpmf(p))
        else:
            assign[:, i] = 1.0
            if prob.in_bound[i]:
                Bs = mix_rank(S, prob.models[i].logpmf(1.0)[None, :])
    vals = Bs[:, min(w[0], Bs.shape[-1] - 1)]
    # Ties (the bound saturates at high density): spend the most budget, then stay
    # closest to uniform, so that equal bounds give the least surprising allocation.
    best = float(np.max(vals))
    tie = np.flatnonzero(vals >= best - 1e-9 * max(1.0, abs(best)))
    pr = list(prob.prunable)
    spent = assign[tie][:, pr] @ np.asarray([sizes[i] for i in pr], dtype=float)
    dev = np.abs(np.log(assign[tie][:, pr] / uniform)).sum(axis=1)
    k = int(tie[np.lexsort((dev, -np.round(spent, 9)))[0]])
    return float(vals[k]), [float(x) for x in assign[k]], int(len(vals))


def _refine(prob: _Problem, budget: float, lo: dict, x0: list[float]):
    """Continuous refinement with SLSQP over log-densities of the non-remainder prunable layers."""
    from scipy.optimize import minimize

    sizes = prob.sizes
    r = prob.prunable[0]
    free = [i for i in prob.prunable if i != r]
    if not free:
        return prob.log_bound(x0), x0

    def full(z):
        d = list(x0)
        for i, zi in zip(free, z):
            d[i] = float(min(1.0, math.exp(zi)))
        rest = budget - sum(d[i] * sizes[i] for i in free)
        d[r] = min(1.0, rest / sizes[r])
        return d

    def slack(z):
        d = full(z)
        return (d[r] - lo[r]) * sizes[r] / max(budget, 1.0)

    def fun(z):
        d = full(z)
        if d[r] < lo[r] * (1 - 1e-9):
            return 1e6
        return -prob.log_bound(d)

    z0 = np.log([x0[i] for i in free])
    bounds = [(math.log(lo[i]), 0.0) for i in free]
    try:
        res = minimize(fun, z0, method="SLSQP", bounds=bounds,
                       constraints=[{"type": "ineq", "fun": slack}],
                       options={"maxiter": 200, "ftol": 1e-12, "eps": 1e-6})
        z = res.x
    except (ValueError, FloatingPointError) as exc:  # pragma: no cover - defensive
        log.info("refinement failed (%s); keeping the grid optimum", exc)
        return prob.log_bound(x0), x0
    d = full(z)
    if d[r] < lo[r] * (1 - 1e-9):
        return prob.log_bound(x0), x0
    return -fun(z), d


def allocate_sparsity(widths, *, density: float | None = None, budget: float | None = None,
                      prunable=None, rank_model: str = "binomial", output_width: int | None = None,
                      output_in_bound: bool = True, grid: int | None = None, refine: bool = True,
                      n_samples: int = 64, seed: int = 0) -> SparsityAllocation:
    """Choose per-layer densities that maximise the expected-rank bound under a weight budget.

    Parameters
    ----------
    widths : Network or sequence of int
        ``(n0, n1, ..., nL, n_out)`` as ``Network.widths`` (or a Network).
    density : float in (0, 1], optional
        Global density: fraction of the prunable weights kept. Give this or ``budget``.
    budget : float, optional
        Number of weights kept in the prunable layers (at least one per prunable layer).
    prunable : "hidden", "all" or sequence of int, optional
        0-based indices of the weight matrices that may be pruned; default every hidden
        layer, output layer dense (Cai et al.). Other layers keep density 1.
    rank_model : {"binomial", "sampled"}
        Rank distribution of a pruned matrix (see :func:`mipnet.theory.rank_distribution`).
    output_width : int, optional
        If given, ``widths`` lists only ``(n0, ..., nL)`` and this is ``n_out``.
    output_in_bound : bool
        Multiply the output layer in as the last factor of the bound (Cai et al.'s code).
    grid : int, optional
        Grid points per grid layer; default chosen so that about 3000 allocations are
        evaluated (120 for two prunable layers, 55 for three, 14 for four, ...).
    refine : bool
        Refine the grid optimum continuously (SLSQP on log-densities).
    n_samples, seed : int
        Monte-Carlo settings of the ``"sampled"`` rank model.

    Returns
    -------
    SparsityAllocation

    Notes
    -----
    Maximise ``ln B(p)`` subject to ``sum_{l prunable} p_l |W^l| <= budget``,
    ``1/|W^l| <= p_l <= 1`` (at least one weight per layer; lower if the uniform density is
    lower). B is non-decreasing in every p_l, so the whole budget is spent: the first
    prunable layer takes what the others leave. The other prunable layers range over a
    log-spaced grid (plus the uniform density, so the result is never worse than uniform)
    and every combination is evaluated, exactly, with the bound's recurrence batched over
    combinations; the grid optimum is then refined continuously. Because the recurrence
    couples the layers through the dimension d, the objective is not separable and a
    budget-indexed dynamic program over layers would only give an upper bound; the
    exhaustive grid is exact on the grid.

    Examples
    --------
    >>> a = allocate_sparsity((784, 100, 100, 10), density=0.001)
    >>> round(a.log_bound, 1), round(a.uniform_log_bound, 1)
    (137.8, 119.8)
    """
    import scipy.optimize  # noqa: F401  (imported before the clock starts)
    import scipy.special  # noqa: F401

    t0 = time.perf_counter()
    w = _full_widths(widths, output_width)
    sizes = _sizes(w)
    M = len(sizes)
    pr = parse_prunable(prunable, M)
    total = float(sum(sizes[i] for i in pr))
    if (density is None) == (budget is None):
        raise InvalidArgumentError("give either density (fraction of prunable weights kept) or budget (number of weights), not both or neither")
    if density is not None:
        density = _check_density(density, "density")
        budget = density * total
    else:
        try:
            budget = float(budget)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"budget must be a number of weights, got {budget!r}") from None
        if not math.isfinite(budget) or budget > total:
            raise InvalidArgumentError(
                f"budget {budget:g} exceeds the {int(total)} prunable weights; give at most {int(total)} (density 1)"
            )
    if len(pr) - 1e-9 * total <= budget < len(pr):  # round-off of density * total
        budget = float(len(pr))
    if budget < len(pr):
        raise InvalidArgumentError(
            f"budget {budget:g} is too small: keep at least one weight per prunable layer ({len(pr)}); "
            f"the smallest density is {len(pr) / total:.3g}"
        )
    if grid is not None and (isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 2):
        raise InvalidArgumentError(f"grid must be an integer >= 2 (points per layer), got {grid!r}")
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise InvalidArgumentError(f"n_samples must be a positive integer, got {n_samples!r}")
    uniform = budget / total
    prob = _setup(w, prunable=pr, rank_model=rank_model, output_width=None, output_in_bound=output_in_bound,
                  n_samples=n_samples, seed=seed, p_min=uniform)
    lo = {i: min(uniform, 1.0 / sizes[i]) for i in pr}
    min_all = sum(lo[i] * sizes[i] for i in pr)
    hi = {i: min(1.0, (budget - (min_all - lo[i] * sizes[i])) / sizes[i]) for i in pr}
    n_grid_layers = len(pr) - 1
    if grid is None:
        G = int(min(120, max(5, round(_EVALS_PER_CALL ** (1.0 / n_grid_layers))))) if n_grid_layers else 1
    else:
        G = int(grid)
    uniform_d = [uniform if i in pr else 1.0 for i in range(M)]
    uniform_lb = prob.log_bound(uniform_d)
    dense_lb = prob.log_bound([1.0] * M)
    grid_lb, best, evals = _grid_search(prob, budget, lo, hi, G, uniform)
    if grid_lb < uniform_lb:  # the uniform point is on the grid; guard against round-off
        grid_lb, best = uniform_lb, uniform_d
    final_lb, final = grid_lb, best
    if refine and n_grid_layers:
        lb, d = _refine(prob, budget, lo, best)
        if lb > final_lb + 1e-9 * max(1.0, abs(final_lb)):
            final_lb, final = lb, d
    kept = float(sum(final[i] * sizes[i] for i in pr))
    res = SparsityAllocation(
        widths=w,
        densities=tuple(float(x) for x in final),
        log_bound=float(final_lb),
        uniform_densities=tuple(float(x) for x in uniform_d),
        uniform_log_bound=float(uniform_lb),
        dense_log_bound=float(dense_lb),
        grid_log_bound=float(grid_lb),
        parameters_kept=kept,
        budget=float(budget),
        prunable=pr,
        rank_model=rank_model,
        output_in_bound=bool(output_in_bound),
        evaluations=evals,
        seconds=time.perf_counter() - t0,
    )
    log.info("allocated %s: ln B %.3f (uniform %.3f) in %.3f s", res.densities, res.log_bound,
             res.uniform_log_bound, res.seconds)
    return res


# ---------------------------------------------------------------------------- curves and plots
def density_curve(widths, densities, *, prunable=None, rank_model: str = "binomial",
                  output_width: int | None = None, output_in_bound: bool = True,
                  n_samples: int = 128, seed: int = 0) -> np.ndarray:
    """ln B at uniform density over the prunable layers, for each global density given.

    Returns
    -------
    ndarray of float, one ln B per entry of ``densities``.

    Examples
    --------
    >>> np.round(density_curve((784, 100, 100, 10), [1e-4, 1e-3, 1.0]), 1)
    array([ 62.8, 119.8, 144.9])
    """
    w = _full_widths(widths, output_width)
    M = len(w) - 1
    pr = parse_prunable(prunable, M)
    ds = [_check_density(x, f"densities[{k}]") for k, x in enumerate(np.atleast_1d(densities))]
    if not ds:
        raise InvalidArgumentError("densities is empty; give at least one density in (0, 1]")
    prob = _setup(w, prunable=pr, rank_model=rank_model, output_width=None, output_in_bound=output_in_bound,
                  n_samples=n_samples, seed=seed, p_min=min(ds))
    return np.array([prob.log_bound([x if i in pr else 1.0 for i in range(M)]) for x in ds])


def plot_bound_vs_density(widths, path, *, densities=None, allocated: bool = True, mark: float | None = None,
                          prunable=None, rank_model: str = "binomial", output_width: int | None = None,
                          output_in_bound: bool = True, title: str | None = None):
    """Plot ln B against global density (uniform, and bound-maximising allocation) to a PNG.

    Parameters
    ----------
    widths : Network or sequence of int
        ``(n0, ..., nL, n_out)``.
    path : str or path-like
        Output file (PNG recommended).
    densities : sequence of float, optional
        Global densities on the x axis (default: 25 log-spaced values from the smallest
        feasible density to 1).
    allocated : bool
        Also plot the bound of :func:`allocate_sparsity` at each density.
    mark : float, optional
        Draw a vertical line at this density.

    Returns
    -------
    str
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = _full_widths(widths, output_width)
    M = len(w) - 1
    pr = parse_prunable(prunable, M)
    sizes = _sizes(w)
    total = sum(sizes[i] for i in pr)
    if densities is None:
        densities = np.geomspace(max(len(pr) / total, 1e-6) * 1.01, 1.0, 25)
    ds = np.asarray([_check_density(x, "densities") for x in np.atleast_1d(densities)])
    uni = density_curve(w, ds, prunable=pr, rank_model=rank_model, output_in_bound=output_in_bound)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(ds, uni, "o-", ms=3, label="uniform density")
    if allocated:
        alloc = [allocate_sparsity(w, density=float(x), prunable=pr, rank_model=rank_model,
                                   output_in_bound=output_in_bound).log_bound for x in ds]
        ax.plot(ds, alloc, "s-", ms=3, label="bound-maximising allocation")
    if mark is not None:
        ax.axvline(float(mark), color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("global density of prunable layers (fraction of weights kept)")
    ax.set_ylabel("ln(expected-rank bound on #regions)")
    ax.set_title(title or f"{'-'.join(map(str, w))}, {rank_model} rank model")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(str(path), dpi=120)
    plt.close(fig)
    return str(path)
