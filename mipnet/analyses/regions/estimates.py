"""Estimates and bounds: sampled lower bounds, MIPBound, and the network-specific upper bound.

:func:`sample_regions` (distinct patterns seen at random inputs: a lower bound),
:func:`parity_lower_bound` (MIPBound, Serra and Ramalingam, AAAI 2020, arXiv:1810.03370:
a probabilistic lower bound from random XOR constraints on the MILP's binaries), and
:func:`network_specific_bound` (the upper bound of the same paper, with stable-neuron
counts and the MILP maximum of simultaneously active units per layer). The MILPs are those
of the normalised network (:mod:`.problem`); witnesses pass
:func:`mipnet.core.numerics.check_witnesses`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mipnet.core.domain import as_domain
from mipnet.core.errors import InvalidArgumentError, Interrupted
from mipnet.core.network import Network
from mipnet.core.numerics import check_witnesses, snapped_pattern

from .common import check_net, is_int, is_real
from .milp import MILP_OPTIONS, interior_milp
from .problem import Problem, prepare, reduced_bounds

__all__ = [
    "SampleCount",
    "sample_regions",
    "ParityBound",
    "parity_lower_bound",
    "NetworkSpecificBound",
    "network_specific_bound",
]

log = logging.getLogger("mipnet.analyses.regions")
_INF = float("inf")


# ============================================================================ estimates: sampling
@dataclass(frozen=True, eq=False)
class SampleCount:
    """Distinct activation patterns seen at random inputs: a lower bound on the region count.

    Attributes
    ----------
    regions : int
        Distinct patterns among the samples. With probability one a random sample lies in
        the interior of its region, so each pattern seen is a region with interior.
    samples : int
        Samples drawn. ``on_boundary`` of them had a pre-activation that is zero up to
        rounding (``|y| <= 1e-12`` times the magnitude of its terms): that happens where a
        neuron is identically zero on a region; it is then off, as in the exact counters.
    singletons : int
        Patterns seen exactly once (many singletons: the sample is far from exhaustive).
    patterns : bool array (regions, N) or None
        With ``return_patterns``.
    """

    regions: int
    samples: int
    seed: Optional[int]
    seconds: float
    singletons: int
    on_boundary: int = 0
    patterns: Optional[np.ndarray] = None

    @property
    def lower_bound(self) -> int:
        return self.regions

    def to_dict(self) -> dict:
        d = {
            "regions": int(self.regions),
            "lower_bound": True,
            "samples": int(self.samples),
            "seed": self.seed,
            "seconds": float(self.seconds),
            "singletons": int(self.singletons),
            "on_boundary": int(self.on_boundary),
        }
        if self.patterns is not None:
            d["patterns"] = ["".join("1" if b else "0" for b in p) for p in self.patterns]
        return d

    def __str__(self) -> str:
        return (f"at least {self.regions:,} activation regions: distinct patterns in {self.samples:,} samples "
                f"({self.singletons:,} seen once; {self.seconds:.3g} s)")


def sample_regions(net: Network, domain, n: int = 10_000, seed: Optional[int] = 0, *,
                   batch: int = 65_536, return_patterns: bool = False) -> SampleCount:
    """Lower bound on the number of regions: distinct activation patterns at ``n`` random inputs.

    Inputs are drawn by ``domain.sample`` (uniform in the box, rejection for constraints).
    With probability one a sample lies in the interior of its region (hyperplanes have
    measure zero), so every distinct pattern counted is a region with non-empty interior.
    Pre-activations within rounding noise of zero (``|y| <= 1e-12`` times the magnitude of
    the terms summed) count as zero, hence off: in exact arithmetic they are zero on a whole
    region of a degenerate network, and the plain float sign would invent patterns.

    Examples
    --------
    >>> import numpy as np
    >>> from mipnet import Box, Network
    >>> net = Network([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    >>> sample_regions(net, Box(-1, 1, dim=2), 1000, seed=0).regions
    4
    """
    net = check_net(net)
    domain = as_domain(domain, net.input_dim)
    if not is_int(n) or n < 1:
        raise InvalidArgumentError(f"n (number of samples) must be a positive integer, got {n!r}")
    if not is_int(batch) or batch < 1:
        raise InvalidArgumentError(f"batch must be a positive integer, got {batch!r}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    N = net.num_hidden_neurons
    width = max(1, (N + 7) // 8)
    keys, counts = np.zeros(0, dtype=np.dtype((np.void, width))), np.zeros(0, dtype=np.int64)
    boundary = 0
    done = 0
    while done < n:
        m = min(batch, n - done)
        X = domain.sample(m, seed=rng)
        if net.num_hidden_layers:
            Y, pat = snapped_pattern(net, X)
            boundary += int(np.count_nonzero(np.any(Y == 0, axis=1)))
            packed = np.packbits(pat, axis=1)
        else:
            packed = np.zeros((m, 1), dtype=np.uint8)
        if packed.shape[1] != width:
            packed = np.zeros((packed.shape[0], width), dtype=np.uint8)
        k = np.ascontiguousarray(packed).view(np.dtype((np.void, width))).reshape(-1)
        u, c = np.unique(k, return_counts=True)
        allk = np.concatenate([keys, u])
        allc = np.concatenate([counts, c])
        keys, inv = np.unique(allk, return_inverse=True)
        counts = np.bincount(inv.reshape(-1), weights=allc, minlength=keys.size).astype(np.int64)
        done += m
    patterns = None
    if return_patterns:
        raw = np.frombuffer(keys.tobytes(), dtype=np.uint8).reshape(keys.size, width)
        patterns = np.unpackbits(raw, axis=1, count=N).astype(bool) if N else np.zeros((keys.size, 0), bool)
    return SampleCount(int(keys.size), int(n), seed if isinstance(seed, (int, type(None))) else None,
                       time.perf_counter() - t0, int(np.sum(counts == 1)), boundary, patterns)


# ============================================================================ estimates: MIPBound
@dataclass(frozen=True, eq=False)
class ParityBound:
    """Probabilistic lower bound on the number of regions from random parity constraints.

    Attributes
    ----------
    lower_bound : float
        ``2^(k - alpha)``: with probability at least ``confidence`` the network has at
        least this many regions (Gomes, Sabharwal, Selman, AAAI 2006; Serra and
        Ramalingam, AAAI 2020, arXiv:1810.03370). With ``k = -1`` (no level finished) the
        certain count, at least 1, with confidence 1.
    log2_lower_bound : float
        ``k - alpha``.
    k : int
        Largest number of XOR constraints for which all ``trials`` stayed feasible (-1: none).
    certain_lower_bound : int
        Distinct verified patterns found by the trials: a deterministic lower bound.
    levels : tuple of dict
        Per k tried: trials run, feasible trials, seconds.
    """

    lower_bound: float
    log2_lower_bound: float
    confidence: float
    k: int
    alpha: float
    trials: int
    certain_lower_bound: int
    unstable: int
    seconds: float
    milp_solves: int
    status: str
    message: str
    levels: tuple = ()

    def to_dict(self) -> dict:
        return {
            "lower_bound": float(self.lower_bound),
            "log2_lower_bound": float(self.log2_lower_bound),
            "ln_lower_bound": float(self.log2_lower_bound * math.log(2.0)),
            "confidence": float(self.confidence),
            "k": int(self.k),
            "alpha": float(self.alpha),
            "trials": int(self.trials),
            "certain_lower_bound": int(self.certain_lower_bound),
            "unstable": int(self.unstable),
            "seconds": float(self.seconds),
            "milp_solves": int(self.milp_solves),
            "status": self.status,
            "message": self.message,
            "levels": list(self.levels),
        }

    def __str__(self) -> str:
        if self.k < 0:
            return (f"at least {self.lower_bound:,.0f} activation region(s), certainly (no parity level finished: "
                    f"{self.message}; {self.milp_solves} MILP solves, {self.seconds:.3g} s)")
        return (f"at least 2^{self.log2_lower_bound:g} = {self.lower_bound:,.6g} activation regions with "
                f"probability >= {self.confidence:.4f} (k = {self.k} XOR constraints, {self.trials} trials, "
                f"alpha = {self.alpha:g}); certainly at least {self.certain_lower_bound:,} "
                f"({self.milp_solves} MILP solves, {self.seconds:.3g} s)")


def _parity_trial(prob: Problem, bounds, unstable: int, margin: float, k: int, rng, time_limit: float):
    """One MIPBound trial: is there a region whose pattern satisfies k random XORs?

    ``unstable``: the bounds' unstable neurons (the XORs' columns). Returns
    ``(feasible, pattern, timed_out)``; a witness counts only after a float64
    forward pass confirms that its point lies in the interior of the region of a pattern
    (every unstable pre-activation non-zero, or identically zero on the region) that
    satisfies every XOR. When the MILP with Serra et al.'s margin on every unstable neuron is
    infeasible and some neuron after the first layer has bias 0 (a pruned net's, say), the
    trial is solved again letting those neurons be off at 0 (:func:`interior_milp`'s
    ``zero_off``): the margin MILP cannot see a region on which such a neuron is identically 0.
    """
    t0 = time.perf_counter()
    subsets = rng.random((k, unstable)) < 0.5
    parity = rng.integers(0, 2, size=k)
    if np.any(subsets.sum(axis=1) < parity):
        return False, None, False  # an empty XOR "0 = 1": infeasible by construction
    zero_bias = any(np.any(b == 0.0) for _, b in prob.rnet.layers[1:-1])
    for zero_off in (False, True) if zero_bias else (False,):
        left = max(time_limit - (time.perf_counter() - t0), 1e-3)
        ok, pattern, timed_out = _parity_solve(prob, bounds, margin, subsets, parity, left, zero_off)
        if ok or timed_out:
            return ok, pattern, timed_out
    return False, None, False


def _parity_solve(prob: Problem, bounds, margin: float, subsets, parity, time_limit: float, zero_off: bool):
    """The MILP of one trial (see :func:`_parity_trial`) and its witness check."""
    model, nv, fcol, zc = interior_milp(prob, bounds, margin, zero_off=zero_off)
    if subsets.shape[1] != zc.size:
        raise AssertionError(f"{subsets.shape[1]} XOR columns for {zc.size} unstable neurons")
    for S, r in zip(subsets, parity):
        size = int(S.sum())
        q = model.add_cols(np.array([0.0]), np.array([float((size - r) // 2)]), integer=True)
        cols = np.concatenate([zc[S], q])
        coef = np.concatenate([np.ones(size), [-2.0]])
        model.add_rows(np.array([float(r)]), np.array([float(r)]), coef[None, :], cols=cols)
    res = model.solve(time_limit=time_limit)
    if not res.has_solution:
        if res.status == "infeasible":
            return False, None, False
        return False, None, True
    x = np.clip(res.values[nv.input_cols], prob.lower, prob.upper)
    X = prob.lift(x[None, :])
    _, P = snapped_pattern(prob.net, X, prob.tol)
    pattern = P[0]
    unstable = nv.unstable_mask
    # the one witness check: in the domain, in the interior of the region of its own pattern
    ok = bool(check_witnesses(prob.net, prob.domain, X, P, strict=True, tol=prob.tol)[0])
    bits = pattern[unstable].astype(np.int64)
    ok &= bool(np.all((subsets.astype(np.int64) @ bits) % 2 == parity))
    if not ok:
        log.warning("a parity-trial witness failed the forward-pass check; the trial counts as infeasible")
        return False, None, False
    return True, pattern, False


def parity_lower_bound(
    net: Network,
    domain,
    *,
    k: Optional[int] = None,
    trials: int = 5,
    alpha: float = 1.0,
    seed: Optional[int] = 0,
    time_limit: Optional[float] = None,
    bounds=None,
    milp_margin: float = 1e-8,
) -> ParityBound:
    """MIPBound: a probabilistic lower bound on the number of regions (random XOR constraints).

    For a given k, each of ``trials`` trials adds k random parity constraints over the
    unstable neurons' binaries to the interior MILP of Serra et al. (2018) (each binary
    joins a constraint with probability 1/2; the parity bit is random; linearised as
    ``sum_{i in S} z_i = 2 q + r`` with q integer). If all trials stay feasible,
    ``#regions >= 2^(k - alpha)`` with probability ``>= 1 - 2^(-alpha trials)``.

    Parameters
    ----------
    k : int, optional
        Number of XOR constraints. Default: search k = 0, 1, 2, ... until a trial is
        infeasible, keeping the last k at which every trial was feasible; the confidence
        then accounts for the search, ``1 - 2^(-alpha t) / (1 - 2^(-t))``.
    trials : int
    alpha : float
        Slack of the bound (> 0): larger alpha, smaller bound, higher confidence.
    time_limit : float, optional
        Over all trials; a level interrupted by it does not count.
    milp_margin : float
        Interior margin of the MILP, relative (on the normalised network, see
        :func:`count_regions`).

    Notes
    -----
    T. Serra, S. Ramalingam, "Empirical bounds on linear regions of deep rectifier
    networks", AAAI 2020, arXiv:1810.03370; C. Gomes, A. Sabharwal, B. Selman, "Model
    counting: a new strategy for obtaining good bounds", AAAI 2006.
    """
    if k is not None and (not is_int(k) or k < 0):
        raise InvalidArgumentError(f"k must be a non-negative integer or None (search), got {k!r}")
    if not is_int(trials) or trials < 1:
        raise InvalidArgumentError(f"trials must be a positive integer, got {trials!r}")
    if not (is_real(alpha) and alpha > 0):
        raise InvalidArgumentError(f"alpha must be > 0, got {alpha!r}")
    if time_limit is not None and not (is_real(time_limit) and time_limit > 0):
        raise InvalidArgumentError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
    prob = prepare(net, domain, l1_box=True)
    t0 = time.perf_counter()
    deadline = t0 + time_limit if time_limit is not None else _INF
    rng = np.random.default_rng(seed)
    bounds = reduced_bounds(prob, bounds, deadline)
    unstable = int(sum(np.count_nonzero(s == 0) for s in bounds.states()))
    found: set = set()
    levels = []
    solves = 0
    best = -1
    status, message = "complete", ""
    ks = [int(k)] if k is not None else range(0, unstable + 64)
    for kk in ks:
        feas = 0
        t_level = time.perf_counter()
        interrupted = False
        for _ in range(trials):
            left = deadline - time.perf_counter()
            if left <= 0:
                interrupted = True
                break
            ok, pattern, timed_out = _parity_trial(prob, bounds, unstable, milp_margin, kk, rng, min(left, 1e9))
            solves += 1
            if timed_out:
                interrupted = True
                break
            if not ok:
                break
            feas += 1
            found.add(np.packbits(pattern).tobytes())
        levels.append({"k": kk, "trials_run": feas + (0 if interrupted or feas == trials else 1),
                       "feasible": feas, "all_feasible": feas == trials and not interrupted,
                       "seconds": time.perf_counter() - t_level})
        if interrupted:
            status = "time_limit"
            message = (f"time limit reached at k = {kk}; the bound uses k = {best}" if best >= 0
                       else f"time limit reached at k = {kk}, before any level finished")
            break
        if feas < trials:
            message = f"a trial with k = {kk} XOR constraints was infeasible"
            break
        best = kk
    if not message:
        message = "all levels tried were feasible"
    t = trials
    if k is not None:
        confidence = 1.0 - 2.0 ** (-alpha * t)
    else:
        confidence = 1.0 - 2.0 ** (-alpha * t) / (1.0 - 2.0 ** (-t))
    if best < 0:  # no level finished: only the certain count (a non-empty domain has a region)
        lower = float(max(len(found), 1))
        log2b, confidence = math.log2(lower), 1.0
    else:
        log2b = best - alpha
        lower = 2.0 ** log2b
    return ParityBound(lower, log2b, max(confidence, 0.0), best, float(alpha), int(trials), len(found), unstable,
                       time.perf_counter() - t0, solves, status, message, tuple(levels))


# ============================================================================ network-specific upper bound
@dataclass(frozen=True, eq=False)
class NetworkSpecificBound:
    """Serra and Ramalingam's (AAAI 2020) upper bound, with its inputs computed on the domain.

    Attributes
    ----------
    bound : mipnet.theory.RegionBound
    stable_inactive, stable_active : list of int
        Per hidden layer, neurons proven stable on the domain (by the bounds).
    max_active : list of int
        Per hidden layer, an upper bound on the units active at once (MILP dual bound).
    max_active_proven : list of bool
        True where the MILP finished (the bound is then the exact maximum).
    status : str
        ``"complete"``, ``"time_limit"`` (a MILP or the bounds stopped by the time limit) or
        ``"interrupted"`` (Ctrl-C: the bound from what was proven by then, still an upper bound).
    """

    bound: object
    widths: tuple
    stable_inactive: list
    stable_active: list
    max_active: list
    max_active_proven: list
    bounds_method: str
    seconds: float
    milp_solves: int
    status: str = "complete"

    @property
    def value(self) -> int:
        return self.bound.value

    @property
    def log_value(self) -> float:
        return self.bound.log_value

    def to_dict(self) -> dict:
        return {
            **self.bound.to_dict(),
            "widths": list(self.widths),
            "stable_inactive": list(self.stable_inactive),
            "stable_active": list(self.stable_active),
            "max_active": list(self.max_active),
            "max_active_proven": list(self.max_active_proven),
            "bounds_method": self.bounds_method,
            "seconds": float(self.seconds),
            "milp_solves": int(self.milp_solves),
            "status": self.status,
        }

    def __str__(self) -> str:
        return (f"{self.bound}; stably inactive {self.stable_inactive}, stably active {self.stable_active}, "
                f"max active {self.max_active} ({self.seconds:.3g} s)")


def network_specific_bound(
    net: Network,
    domain,
    *,
    bounds=None,
    max_active: bool = True,
    time_limit: Optional[float] = None,
) -> NetworkSpecificBound:
    """Upper bound on the regions of ``net`` on ``domain`` (Serra and Ramalingam, AAAI 2020).

    Inputs of :func:`mipnet.theory.serra_ramalingam2020_bound`, computed here:

    - stably inactive / active neurons per layer from ``bounds`` (default: LP bounds);
    - per layer, the most units active at once: ``max sum_i z_i`` over the layer's unstable
      binaries of the network's MILP on the domain, plus the stably active units. The
      MILP has no interior condition: its optimum counts neurons with ``y_i >= 0`` at any
      point of D, which is at least the number active (``y_i > 0``) in any region with
      interior, so the cap is sound without a tolerance. A solve stopped by the time
      limit contributes its dual bound (still an upper bound).

    The input dimension used is the number of free inputs (fixed inputs do not add regions).

    Notes
    -----
    T. Serra, S. Ramalingam, "Empirical bounds on linear regions of deep rectifier
    networks", AAAI 2020, arXiv:1810.03370.
    """
    from mipnet.milp.encoding import HighsModel
    from mipnet.theory import serra_ramalingam2020_bound

    if time_limit is not None and not (is_real(time_limit) and time_limit > 0):
        raise InvalidArgumentError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
    prob = prepare(net, domain, l1_box=True)
    t0 = time.perf_counter()
    deadline = t0 + time_limit if time_limit is not None else _INF
    status = "complete"
    try:
        bounds = reduced_bounds(prob, bounds, deadline)
    except KeyboardInterrupt as exc:  # Ctrl-C in the bounds: their sound part (or symbolic bounds), no MILP
        from mipnet.bounds import symbolic_bounds

        partial = exc.partial if isinstance(exc, Interrupted) else None
        bounds = partial if partial is not None else symbolic_bounds(prob.rnet, prob.rdomain())
        status, max_active = "interrupted", False
    if status == "complete" and any("time limit reached" in n for n in getattr(bounds, "notes", ())):
        status = "time_limit"
    states = bounds.states()
    s_in = [int(np.count_nonzero(s == -1)) for s in states]
    s_ac = [int(np.count_nonzero(s == 1)) for s in states]
    widths = (prob.n,) + tuple(prob.net.hidden_widths)
    L = len(states)
    caps = [widths[l + 1] - s_in[l] for l in range(L)]
    proven = [status != "interrupted"] * L
    solves = 0
    if max_active:
        model = HighsModel(prob.rdomain(), options=MILP_OPTIONS)
        nv = model.add_network(prob.rnet, bounds, output_bounds=False)
        for l, lv in enumerate(nv.layers):
            z = lv.z_cols[lv.unstable]
            if z.size == 0:
                caps[l] = s_ac[l]
                continue
            left = deadline - time.perf_counter()
            if left <= 0:
                proven[l] = False
                continue
            model.set_objective(z, np.ones(z.size), maximize=True)
            try:
                res = model.solve(time_limit=left / (L - l))
            except Interrupted as exc:  # Ctrl-C: this layer's partial dual bound, none for the rest
                res, status = exc.partial, "interrupted"
            solves += 1
            if res is not None and res.dual_bound is not None and math.isfinite(res.dual_bound):
                caps[l] = min(caps[l], s_ac[l] + int(math.floor(res.dual_bound + 1e-6)))
            proven[l] = res is not None and res.status == "optimal"
            if status == "interrupted":
                proven[l + 1:] = [False] * (L - l - 1)
                break
        caps = [max(c, s) for c, s in zip(caps, s_ac)]
        if status == "complete" and not all(proven):
            status = "time_limit"
    b = serra_ramalingam2020_bound(widths, stable_inactive=s_in, stable_active=s_ac,
                                   max_active=caps if max_active else None)
    return NetworkSpecificBound(b, widths, s_in, s_ac, caps, proven, bounds.method,
                                time.perf_counter() - t0, solves, status)
