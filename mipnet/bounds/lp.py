"""LP-relaxation bounds: each neuron's min and max over the triangle relaxation (Ehlers 2017)
of the layers before it, layer by layer (MIPVerify's "lp" step, Tjeng et al. ICLR 2019).

LP values are widened (:func:`lp_slack`) and intersected with the symbolic and interval
bounds; a solve that does not finish (time limit) keeps the previous (sound) bound, never an
unproven value.

How far an LP value may be from the true LP optimum: HiGHS stops when its primal and dual
residuals are below absolute tolerances (``tol`` = 1e-7 by default) of the *scaled* problem, and
its arithmetic rounds relative to the magnitudes of the objective. Measured against re-solves at
tolerance 1e-10 on random nets (weights scaled by 1e-3 .. 1e3, boxes up to 1e4), the error of
the default solve stayed below a seventh of the slack :func:`lp_slack` adds,
``tol (10 + ||w||_1) + 1e-12 (|w| |h| + |b| + |value|)``: an absolute floor of about
``tol`` (small weights), the feasibility tolerance times the coefficient norm, and a relative
part for large magnitudes. Primal infeasibility only errs on the safe side (a larger feasible
set); the slack covers suboptimality. (A rigorous alternative, Neumaier and Shcherbina's safe
dual bound, needs the LP's dual solution.)

**LP only where it pays** (``sign_only=True``, the default on nets where alpha-CROWN pays).
A hidden neuron only needs its sign (it decides a binary), so:

1. start from the optimised linear bounds of :mod:`mipnet.bounds.alpha` (alpha-CROWN), which
   settle almost every neuron the LP would (when enough neurons are open for it to pay,
   :func:`alpha_pays`; small nets start from the symbolic bounds and get exact LPs);
2. show neurons unstable with real inputs (:class:`Witnesses`): samples of the domain, a
   signed-gradient search for each sign not yet seen, and the input part of every LP optimum;
   a neuron seen positive and negative is unstable whatever the bounds, and gets no LP;
3. for a sign no input has shown, one LP *minimising* ``+-y`` with HiGHS's ``objective_bound``
   set to a small positive margin: the dual simplex stops as soon as its exact (unperturbed)
   dual objective passes the margin, which proves the sign without solving to optimality
   (HiGHS checks this bound for minimisations only; measured: a maximisation ignores it);
   otherwise the optimum is a valid bound, and its input a new witness;
4. the LPs of a layer are grouped by direction, so consecutive solves reuse nearby bases, on
   one model per call (warm starts), with power-of-two scaling (``simplex_scale_strategy=4``,
   2-3x fewer simplex iterations than HiGHS's default equilibration on these LPs; its error
   against re-solves at tolerance 1e-10, on the nets of the measurement above, stayed below a
   fifth of :func:`lp_slack`) and presolve off.

Neurons that stay unstable keep their alpha bounds (within a fraction of a percent of the LP
values); ``sign_only=False`` (the default on small nets, whose LPs are few and cheap) solves
every unstable neuron's min and max to optimality (the exact LP bounds). The output layer
(``output=True``) always gets its LPs solved to optimality, and so does the first layer of a
domain with linear constraints (small LPs over the input rows, which the starting bounds
ignore).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from mipnet.bounds.interval import interval_layer, rounding_error
from mipnet.bounds.symbolic import symbolic_layers
from mipnet.core.bounds import Bounds, LayerBounds
from mipnet.core.domain import Domain, as_domain
from mipnet.core.errors import Interrupted, InvalidArgumentError, InvalidDomainError, SolverError
from mipnet.core.network import Network
from mipnet.milp.encoding import HighsModel
from mipnet.solver.highs import INF, SolveStatus

__all__ = ["LP_FEASIBILITY", "LP_OPTIONS", "ALPHA_MIN_OPEN", "lp_slack", "lp_bounds", "tighten_neurons", "GroupBounds",
           "relaxation_basis", "chain_order", "alpha_pays", "Witnesses", "propagate_intervals"]

log = logging.getLogger(__name__)

#: HiGHS's default primal and dual feasibility tolerance, the default ``tol`` of :func:`lp_bounds`.
LP_FEASIBILITY = 1e-7
#: Relative slack on the magnitudes of an LP objective (far above float64 rounding).
_REL = 1e-12
#: HiGHS options of the bounding LPs (module docstring, point 4).
LP_OPTIONS = {"presolve": "off", "simplex_scale_strategy": 4}
#: ``start="auto"`` runs alpha-CROWN first when the symbolic bounds leave at least this many
#: hidden neurons open beyond the first layer (the ones LPs would be spent on). The optimiser runs
#: in numpy (no torch import on the CPU), so the threshold matters little: measured 2026-12-07 on
#: 14 nets with 22-200 open neurons, 16 or 1 instead of 64 changed ``auto``'s time by -3 to +13 ms
#: (7-60 ms in all) and left one neuron fewer unstable on 2 of them (alpha's tighter widths make
#: the later layers' LPs tighter); the exact LPs of ``lp_bounds`` on small nets stay the default.
ALPHA_MIN_OPEN = 64
#: A witness value must exceed this multiple of the magnitudes ``|W| |h| + |b|`` of its pre-activation.
_WITNESS_MARGIN = 1e-9


def lp_slack(value, w: np.ndarray, b, hmag: np.ndarray, *, tol: float = LP_FEASIBILITY):
    """How much an LP (or MILP dual) bound on ``w . h + b`` over ``|h| <= hmag`` is widened.

    ``tol (10 + ||w||_1) + 1e-12 (|w| hmag + |b| + |value|)`` plus the float64 rounding
    error of ``w . h + b`` (module docstring). ``w`` may be one row or a matrix (one row per
    objective; then ``b`` and ``value`` are vectors).
    """
    aw = np.abs(np.atleast_2d(w))
    ab = np.abs(np.atleast_1d(np.asarray(b, dtype=np.float64)))
    mag = aw @ hmag + ab
    out = tol * (10.0 + aw.sum(axis=1)) + _REL * (mag + np.abs(value)) + rounding_error(aw, hmag, ab)
    return out if np.ndim(w) == 2 else float(out[0])


def lp_bounds(
    net: Network,
    domain,
    *,
    initial: Optional[Bounds] = None,
    output: bool = True,
    tol: float = LP_FEASIBILITY,
    time_limit_per_lp: Optional[float] = None,
    progress: bool = False,
    sign_only: Optional[bool] = None,
    start: str = "auto",
    witnesses: int = 256,
    solver_options: Optional[dict] = None,
    alpha_options=None,
    deadline: Optional[float] = None,
) -> Bounds:
    """LP-relaxation bounds, layer by layer (see module docstring).

    Parameters
    ----------
    initial : Bounds, optional
        Bounds to start from and intersect with (default: by ``start``).
    output : bool
        Also tighten the output layer (default True).
    tol : float
        The solver's feasibility tolerance that the widening of every LP value assumes
        (:func:`lp_slack`; HiGHS's default 1e-7).
    time_limit_per_lp : float, optional
        Seconds per LP; a neuron whose LP does not finish keeps its previous (sound) bound
        (and a note says so).
    sign_only : bool, optional
        True: LPs only for the signs of hidden neurons that neither the bounds nor real inputs
        settle, each stopped once its sign is proven (module docstring). False: every unstable
        neuron's min and max to optimality (the exact LP bounds). Default: sign-only when the
        bounds start from alpha-CROWN (near the LP values already), else exact (a small net:
        few, cheap LPs, and the widths of unstable neurons stay LP-tight).
    start : {"auto", "alpha", "symbolic"}
        Where the bounds start when ``initial`` is None: alpha-CROWN, symbolic, or (default)
        alpha-CROWN when symbolic leaves at least :data:`ALPHA_MIN_OPEN` neurons open beyond
        the first layer (:func:`alpha_pays`), else symbolic.
    witnesses : int
        Random inputs (box vertices first) that show neurons unstable before any LP, followed
        by a signed-gradient search (sign-only mode; 0: no samples, no search).
    solver_options : dict, optional
        HiGHS options of the LPs (default :data:`LP_OPTIONS`; ``{}``: HiGHS's defaults).
    alpha_options : AlphaOptions, optional
        Settings of the alpha-CROWN start.
    deadline : float, optional
        A ``time.perf_counter()`` value (an analysis's time limit): no LP starts after it, and
        the neurons not tightened by then keep their starting bounds (sound; a note says so).

    Raises
    ------
    Interrupted
        On Ctrl-C; ``exc.partial`` holds the sound bounds reached so far (a :class:`Bounds`).
    """
    t0 = time.perf_counter()
    domain: Domain = as_domain(domain, net.input_dim)
    if start not in ("auto", "alpha", "symbolic"):
        raise InvalidArgumentError(f"start must be 'auto', 'alpha' or 'symbolic', got {start!r}")
    if not isinstance(witnesses, (int, np.integer)) or witnesses < 0:
        raise InvalidArgumentError(f"witnesses must be an integer >= 0, got {witnesses!r}")
    options = dict(LP_OPTIONS if solver_options is None else solver_options)
    model = HighsModel(domain, options=options, time_limit=time_limit_per_lp)
    notes: list[str] = []
    started_alpha = False
    if initial is not None:
        layers = list(initial.layers)
        started_alpha = initial.method in ("alpha", "auto")
    else:
        layers = symbolic_layers(net, domain)
        if start == "alpha" or (start == "auto" and alpha_pays(layers)):
            from mipnet.bounds.alpha import alpha_layers

            # the output layer gets its LPs anyway when output=True
            layers = alpha_layers(net, domain, initial=layers, output=not output,
                                  options=with_deadline(alpha_options, deadline))
            started_alpha = True
    if sign_only is None:
        sign_only = started_alpha
    wit = None
    if sign_only:
        wit = Witnesses.sampled(net, domain, layers, int(witnesses))
    prev_cols = model.input_cols
    hmag = np.maximum(np.abs(domain.lower), np.abs(domain.upper))
    solves = 0
    n_layers = len(net.layers)
    iterator = range(n_layers)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="LP bounds", unit="layer", file=None)
    l = 0
    stats = {"lp": 0, "stopped": 0, "skipped": 0}
    try:
        for l in iterator:
            W, b = net.layers[l]
            is_output = l == n_layers - 1
            first_on_box = l == 0 and domain.is_box
            if not first_on_box and (output or not is_output):
                # on a polytope the first layer's LPs (over the input rows alone) are cheap and the
                # starting bounds ignore the rows: those are solved to optimality
                if sign_only and not is_output and l > 0:
                    solves += _sign_layer(model, prev_cols, W, b, layers, l, hmag, tol, wit, bool(witnesses),
                                          notes, stats, deadline=deadline)
                else:
                    solves += _tighten_layer(model, prev_cols, W, b, layers, l, hmag, tol, is_output, notes,
                                             deadline=deadline)
            if not is_output:
                propagate_intervals(net, layers, l)
                prev_cols = model.add_layer(prev_cols, W, b, layers[l], relax=True).h_cols
                hmag = np.maximum(layers[l].upper, 0.0)
    except _OutOfTime as out:
        solves += out.solves
        notes.append(f"time limit reached in layer {l + 1}: the neurons not tightened keep their starting bounds")
    except KeyboardInterrupt:
        notes.append(f"interrupted in layer {l + 1}: later layers keep their starting bounds")
        partial = Bounds(tuple(layers), "lp", time.perf_counter() - t0, solves, tuple(notes))
        raise Interrupted("LP bounds interrupted", partial=partial) from None
    if sign_only:
        log.info("sign-only LP bounds: %d unstable neurons shown by %d inputs without an LP; %d sign LPs "
                 "(%d stopped at the objective bound)", stats["skipped"], wit.points, stats["lp"], stats["stopped"])
    return Bounds(tuple(layers), "lp", time.perf_counter() - t0, solves, tuple(notes))


@dataclass(frozen=True, eq=False)
class GroupBounds:
    """Result of :func:`tighten_neurons`: the bounds of ``neurons`` of affine layer ``layer``
    (0-based), the LPs solved, and notes (LPs that did not finish). Picklable."""

    layer: int
    neurons: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    lp_solves: int
    notes: tuple


def tighten_neurons(
    net: Network,
    domain,
    bounds,
    layer: int,
    neurons,
    *,
    sign_only: bool = False,
    tol: float = LP_FEASIBILITY,
    time_limit_per_lp: Optional[float] = None,
    solver_options: Optional[dict] = None,
    seen: Optional[tuple] = None,
    basis: Optional[tuple] = None,
) -> GroupBounds:
    """LP tightening of one group of neurons, as a pure function of picklable inputs.

    ``bounds`` (a :class:`Bounds` or one :class:`LayerBounds` per affine layer) are the sound
    bounds so far; the LPs run over the triangle relaxation of the layers before ``layer``
    built from them, one model for the group (warm starts along :func:`chain_order`). With
    ``sign_only`` only the signs of the group's unstable hidden neurons are settled (stopped
    LPs, the LP optima as witnesses), else each unstable neuron's min and max (every output's)
    to optimality; ``seen = (pos, neg)``, boolean masks over the layer, are the signs that real
    inputs have shown already (:class:`Witnesses`): a sign-only group solves no LP for them;
    ``basis``, from :func:`relaxation_basis`, starts the first LP warm (a cold start costs about
    ten warm LPs on a 784-input layer).
    Nothing is shared between calls, so groups of a layer can run in separate
    processes; :func:`lp_bounds` does the same work layer by layer on one reused model.
    Merge the results with ``max``/``min`` into the bounds so far (each is sound on its own).

    Examples
    --------
    >>> from mipnet.core.domain import Box
    >>> from mipnet.bounds import symbolic_bounds
    >>> net = Network.random([4, 16, 16, 2], seed=0)
    >>> dom = Box(-1, 1, dim=4)
    >>> g = tighten_neurons(net, dom, symbolic_bounds(net, dom), 1, range(8))
    >>> g.layer, bool(g.lower.size == g.upper.size == 8)
    (1, True)
    """
    domain = as_domain(domain, net.input_dim)
    layers = list(bounds.layers if isinstance(bounds, Bounds) else bounds)
    if len(layers) != len(net.layers) or not all(isinstance(lb, LayerBounds) for lb in layers):
        raise InvalidArgumentError("bounds must be a Bounds (or one LayerBounds per affine layer) of this network")
    if not (isinstance(layer, (int, np.integer)) and 0 <= layer < len(net.layers)):
        raise InvalidArgumentError(f"layer must be an affine layer index in [0, {len(net.layers)}), got {layer!r}")
    neurons = np.unique(np.asarray(list(neurons), dtype=np.int64))
    width = net.layers[layer][0].shape[0]
    if neurons.size and (neurons[0] < 0 or neurons[-1] >= width):
        raise InvalidArgumentError(f"neurons must be indices in [0, {width}) of layer {layer}")
    model, cols, hmag = _relaxation(net, domain, layers, layer, solver_options, time_limit_per_lp)
    W, b = net.layers[layer]
    is_output = layer == len(net.layers) - 1
    notes: list = []
    solves = 0
    if neurons.size:
        if basis is not None:
            model.set_basis(basis)  # rejected: the first LP starts cold, nothing else changes
        if sign_only and not is_output:
            stats = {"lp": 0, "stopped": 0, "skipped": 0}
            wit = Witnesses(net, domain, layers)
            if seen is not None:
                pos, neg = (np.asarray(m, dtype=bool) for m in seen)
                if pos.shape != (width,) or neg.shape != (width,):
                    raise InvalidArgumentError(f"seen must be two boolean masks of length {width}")
                wit.pos[layer] |= pos
                wit.neg[layer] |= neg
            solves = _sign_layer(model, cols, W, b, layers, layer, hmag, tol, wit, False, notes, stats,
                                 neurons=neurons)
        else:
            solves = _tighten_layer(model, cols, W, b, layers, layer, hmag, tol, is_output, notes, neurons=neurons)
    lb = layers[layer]
    return GroupBounds(int(layer), neurons, lb.lower[neurons].copy(), lb.upper[neurons].copy(), solves, tuple(notes))


def _relaxation(net: Network, domain: Domain, layers, layer: int, solver_options, time_limit):
    """A model of the triangle relaxation of the layers before ``layer``: ``(model, h_cols, hmag)``."""
    model = HighsModel(domain, options=dict(LP_OPTIONS if solver_options is None else solver_options),
                       time_limit=time_limit)
    cols = model.input_cols
    hmag = np.maximum(np.abs(domain.lower), np.abs(domain.upper))
    for j in range(layer):
        W, b = net.layers[j]
        cols = model.add_layer(cols, W, b, layers[j], relax=True).h_cols
        hmag = np.maximum(layers[j].upper, 0.0)
    return model, cols, hmag


def relaxation_basis(net: Network, domain, bounds, layer: int, neurons=None, *,
                     solver_options: Optional[dict] = None, start: Optional[tuple] = None) -> Optional[tuple]:
    """A simplex basis from which the LPs of ``layer``'s ``neurons`` (default all) start warm.

    The basis is optimal for the sum of the neurons' pre-activations, maximised over the model
    :func:`tighten_neurons` builds (same ``bounds``, same options), so every group of the layer
    can start from it instead of a cold start: the same start whatever worker runs the group,
    so the bounds do not depend on the executor. None if the LP did not solve.

    ``start``: this function's basis for an earlier layer with the same bounds before it (its
    model is the first columns and rows of this one), extended as a warm start
    (:meth:`~mipnet.solver.highs.LinearModel.set_basis`); on 784-100-100-10 the output layer's
    basis took 0.15-0.18 s from the second layer's instead of 0.29 s cold.
    """
    domain = as_domain(domain, net.input_dim)
    layers = list(bounds.layers if isinstance(bounds, Bounds) else bounds)
    model, cols, _ = _relaxation(net, domain, layers, layer, solver_options, None)
    W, b = net.layers[layer]
    rows = W if neurons is None else W[np.asarray(list(neurons), dtype=np.int64)]
    model.set_objective(np.asarray(cols), rows.sum(axis=0), maximize=True)
    if start is not None:
        model.set_basis(start, extend=True)  # (rejected: a cold start)
    if model.solve().status != SolveStatus.OPTIMAL:
        return None
    return model.get_basis()


def _points(domain: Domain, n: int, seed: int) -> np.ndarray:
    """``n`` points of the domain (vertices first) for the witness heuristics; none where rejection
    sampling gives up (a polytope of little or no volume, e.g. an equality ``a x = t``)."""
    try:
        return domain.sample(n, seed=seed, include_vertices=True)
    except InvalidDomainError:
        return np.zeros((0, domain.dim))


def alpha_pays(layers) -> bool:
    """True if bounds ``layers`` (hidden layers, then the output) leave at least
    :data:`ALPHA_MIN_OPEN` hidden neurons open beyond the first layer: then alpha-CROWN's
    optimisation costs less than the LPs it saves."""
    hidden = list(layers)[1:-1]
    return sum(int(np.sum((lb.lower < 0) & (lb.upper > 0))) for lb in hidden) >= ALPHA_MIN_OPEN


class Witnesses:
    """Signs of hidden neurons seen at real inputs of the domain (float64 forward passes).

    ``pos[l][i]``: some x in D has ``y^l_i(x) > 0`` (neuron i is not stably inactive);
    ``neg[l][i]``: some x has ``y^l_i(x) < 0`` (not stably active); a value counts only beyond
    ``1e-9 (|W| hmag + |b|)``, far above its rounding error (``hmag`` bounds ``|h|`` on D, from
    ``layers``). A neuron seen on both sides is unstable: no bound can settle it. Witnesses
    only ever save work: a stable claim always comes from a bound.
    """

    def __init__(self, net: Network, domain: Domain, layers) -> None:
        self.net, self.domain = net, domain
        self.pos = [np.zeros(n, dtype=bool) for n in net.hidden_widths]
        self.neg = [np.zeros(n, dtype=bool) for n in net.hidden_widths]
        self.points = 0
        self._margin = []
        hmag = np.maximum(np.abs(domain.lower), np.abs(domain.upper))
        for l, (W, b) in enumerate(net.layers[:-1]):
            self._margin.append(_WITNESS_MARGIN * (np.abs(W) @ hmag + np.abs(b)))
            hmag = np.maximum(layers[l].upper, 0.0)

    @classmethod
    def sampled(cls, net: Network, domain: Domain, layers, n: int) -> "Witnesses":
        """Witnesses of ``n`` points of the domain (vertices first, seed 0) and its centre; none if n = 0."""
        wit = cls(net, domain, layers)
        if n:
            wit.add(np.concatenate([_points(domain, n, 0), domain.center[None, :]]))
        return wit

    def add(self, X: np.ndarray, *, upto: Optional[int] = None) -> list:
        """Record the signs at the inputs X (clipped to the box; outside a polytope: dropped).

        Returns the masks ``y > 0`` of the hidden layers before ``upto`` (for a gradient).
        """
        X = np.clip(np.atleast_2d(np.asarray(X, dtype=np.float64)), self.domain.lower, self.domain.upper)
        if self.domain.has_constraints:
            X = X[self.domain.contains(X, tol=0.0)]
        masks = []
        if not len(X):
            return masks
        self.points += len(X)
        h = X
        for l, (W, b) in enumerate(self.net.layers[:-1]):
            y = h @ W.T + b
            self.pos[l] |= np.any(y > self._margin[l], axis=0)
            self.neg[l] |= np.any(y < -self._margin[l], axis=0)
            if upto is not None and l < upto:
                masks.append(y > 0)
            h = np.maximum(y, 0.0)
        return masks

    def unstable(self, l: int) -> np.ndarray:
        return self.pos[l] & self.neg[l]

    def search_open(self, l: int, open_: np.ndarray) -> None:
        """:meth:`search` for each sign of layer l's ``open_`` neurons (a mask) not seen yet, from
        64 samples of the domain (vertices first) and its centre."""
        if not np.any(open_ & ~self.unstable(l)):
            return
        need_pos = np.flatnonzero(open_ & ~self.pos[l])
        need_neg = np.flatnonzero(open_ & ~self.neg[l])
        X0 = np.concatenate([_points(self.domain, 64, l + 1), self.domain.center[None, :]])
        self.search(l, np.concatenate([need_pos, need_neg]),
                    np.concatenate([np.ones(need_pos.size), -np.ones(need_neg.size)]), X0)

    def search(self, l: int, targets: np.ndarray, signs: np.ndarray, X0: np.ndarray, *, steps: int = 10) -> None:
        """Signed-gradient ascent of ``sign * y^l_i`` over the box, one point per target, from the best
        of ``X0``; every iterate is recorded (it settles other neurons too), and a target leaves the
        search once its sign has been seen."""
        if targets.size == 0 or len(X0) == 0:
            return
        net, dom = self.net, self.domain
        ys = net.preactivations(X0)[l]
        Z = X0[np.argmax(signs[:, None] * ys[:, targets].T, axis=1)].copy()
        span = dom.upper - dom.lower
        for s in range(steps):
            if dom.has_constraints:  # a polytope drops points: recompute the masks on all of Z
                self.add(Z)
                h, masks = Z, []
                for W, b in net.layers[:l]:
                    y = h @ W.T + b
                    masks.append(y > 0)
                    h = np.maximum(y, 0.0)
            else:
                masks = self.add(Z, upto=l)
            need = np.where(signs > 0, ~self.pos[l][targets], ~self.neg[l][targets])
            if not np.any(need):
                return
            targets, signs, Z = targets[need], signs[need], Z[need]
            masks = [m[need] for m in masks]
            G = signs[:, None] * net.layers[l][0][targets]
            for j in range(l - 1, -1, -1):
                G = (G * masks[j]) @ net.layers[j][0]
            Z = np.clip(Z + 0.5 * span * (0.7 ** s) * np.sign(G), dom.lower, dom.upper)
        self.add(Z)


def _sign_lp(model, cols, w, b, sense: float, hmag, tol):
    """Minimise ``sense * (w . v + b)`` with HiGHS's objective bound at a small positive margin.

    Returns ``(bound, x)``: a proven lower bound on ``sense * y`` (None if the LP did not finish)
    and the LP's input point (None unless solved to optimality). Stopped at the objective bound,
    HiGHS has proven the exact dual objective above the margin: ``sense * y >= margin - slack > 0``.
    """
    nz = np.flatnonzero(w)
    model.set_objective(np.asarray(cols)[nz], sense * w[nz], offset=float(sense * b), maximize=False)
    margin = 2.0 * lp_slack(0.0, w, b, hmag, tol=tol)
    model.set_options({"objective_bound": float(margin)})
    try:
        res = model.solve()
    finally:
        model.set_options({"objective_bound": INF})
    if res.status == SolveStatus.OBJECTIVE_BOUND:
        return margin - lp_slack(margin, w, b, hmag, tol=tol), None
    if res.status == SolveStatus.OPTIMAL:
        v = res.dual_bound
        return v - lp_slack(v, w, b, hmag, tol=tol), res.values
    return None, None


def with_deadline(options, deadline: Optional[float]):
    """Alpha-CROWN options (``options``, else the defaults) that stop at ``deadline``."""
    from mipnet.bounds.alpha import AlphaOptions

    if deadline is None:
        return options
    return replace(options if options is not None else AlphaOptions(), deadline=deadline)


class _OutOfTime(Exception):
    """An LP layer stopped at the deadline (``solves``: the LPs it had solved)."""

    def __init__(self, solves: int) -> None:
        super().__init__("deadline")
        self.solves = solves


def _check_deadline(deadline: Optional[float], solves: int) -> None:
    if deadline is not None and time.perf_counter() >= deadline:
        raise _OutOfTime(solves)


def _sign_layer(model, prev_cols, W, b, layers, l, hmag, tol, wit: Witnesses, search: bool, notes, stats,
                neurons=None, deadline: Optional[float] = None) -> int:
    """Settle the signs of layer l's open neurons (of ``neurons``, default all): witnesses first,
    then one stopped LP per open sign, in :func:`chain_order`."""
    lo, hi = layers[l].lower.copy(), layers[l].upper.copy()
    open_ = (lo < 0) & (hi > 0)
    if neurons is not None:
        open_ &= np.isin(np.arange(lo.size), neurons)
    if search:
        wit.search_open(l, open_)
    stats["skipped"] += int(np.sum(open_ & wit.unstable(l)))
    solves = 0
    inputs = model.input_cols
    order = np.flatnonzero(open_)
    order = order[chain_order(W[order])]
    for sense in (-1.0, 1.0):  # -1: prove inactive (max y <= 0); +1: prove active (min y >= 0)
        for i in order:
            seen = wit.pos[l][i] if sense < 0 else wit.neg[l][i]
            if seen or lo[i] >= 0 or hi[i] <= 0:
                continue
            _check_deadline(deadline, solves)  # (layers[l] holds every bound proven so far)
            val, x = _sign_lp(model, prev_cols, W[i], b[i], sense, hmag, tol)
            solves += 1
            stats["lp"] += 1
            if val is None:
                notes.append(f"layer {l + 1} neuron {i}: LP not solved (time limit), kept the previous bound")
                continue
            if x is None:
                stats["stopped"] += 1
            if sense > 0:
                lo[i] = max(lo[i], val)
            else:
                hi[i] = min(hi[i], -val)
            if lo[i] > hi[i] + 1e-6 * (1 + abs(hi[i])):
                raise SolverError(
                    f"layer {l + 1}: LP bound contradicts earlier bounds (lower > upper); "
                    "the domain may be empty or the solver wrong"
                )
            layers[l] = LayerBounds(lo, np.maximum(hi, lo))
            if x is not None:
                wit.add(x[inputs][None, :])
    return solves


def _tighten_layer(model, prev_cols, W, b, layers, l, hmag, tol, is_output, notes, neurons=None,
                   deadline: Optional[float] = None) -> int:
    """Min and max of the neurons of layer l that matter (of ``neurons``, default all) over the
    model (the layers before l).

    Hidden neurons: only those not yet stable (their sign decides a binary), every min first,
    then the max of those the min left unstable (one direction at a time, so each LP starts
    from a nearby basis); outputs: every max, then every min. The raw LP values are widened by
    :func:`lp_slack` in one call per direction; ``layers[l]`` is updated after each direction,
    and also when an interrupt stops the layer, so it stays sound. Returns the number of LPs.
    """
    lo, hi = layers[l].lower.copy(), layers[l].upper.copy()
    solves = 0
    cols = np.asarray(prev_cols)
    senses = (1, -1) if is_output else (-1, 1)
    for sense in senses:
        if is_output:
            todo = np.arange(W.shape[0])
        else:
            todo = np.flatnonzero((lo < 0) & (hi > 0))
        if neurons is not None:
            todo = np.intersect1d(todo, neurons)
        todo = todo[chain_order(W[todo])]
        vals = np.full(todo.size, np.nan)
        try:
            for k, i in enumerate(todo):
                _check_deadline(deadline, solves)  # (the finally below keeps the values found so far)
                w = W[i]
                nz = np.flatnonzero(w)
                model.set_objective(cols[nz], w[nz], offset=float(b[i]), maximize=(sense == 1))
                res = model.solve()
                solves += 1
                if res.status == SolveStatus.OPTIMAL:
                    vals[k] = res.dual_bound
                else:
                    what = "max" if sense == 1 else "min"
                    why = "time limit" if res.status == SolveStatus.TIME_LIMIT else res.highs_status
                    notes.append(f"layer {l + 1} neuron {i}: {what} LP not solved ({why}), kept the previous bound")
        finally:  # also on an interrupt: the values found so far, widened
            done = np.isfinite(vals)
            if np.any(done):
                idx, v = todo[done], vals[done]
                slack = lp_slack(v, W[idx], b[idx], hmag, tol=tol)
                if sense == 1:
                    hi[idx] = np.minimum(hi[idx], v + slack)
                else:
                    lo[idx] = np.maximum(lo[idx], v - slack)
                bad = lo > hi + 1e-6 * (1 + np.abs(hi))
                if np.any(bad):
                    raise SolverError(
                        f"layer {l + 1}: LP bound contradicts interval bounds (lower > upper); "
                        "the domain may be empty or the solver wrong"
                    )
                layers[l] = LayerBounds(lo.copy(), np.maximum(hi, lo))
    return solves


def chain_order(rows: np.ndarray) -> np.ndarray:
    """An order of the objective vectors ``rows`` in which each is the most similar (cosine) to
    the one before it, greedily from the first: consecutive LPs then differ little, and each
    warm start begins near its optimum."""
    n = rows.shape[0]
    if n <= 2:
        return np.arange(n)
    norms = np.linalg.norm(rows, axis=1)
    U = rows / np.where(norms > 0, norms, 1.0)[:, None]
    G = U @ U.T
    order = np.empty(n, dtype=np.int64)
    seen = np.zeros(n, dtype=bool)
    cur = 0
    for k in range(n):
        order[k] = cur
        seen[cur] = True
        if k + 1 < n:
            g = np.where(seen, -np.inf, G[cur])
            cur = int(np.argmax(g))
    return order


def propagate_intervals(net: Network, layers: list, l: int) -> None:
    """Interval arithmetic from the tightened layer l to the later layers, keeping the tighter bound."""
    hl, hu = layers[l].post_activation()
    for k in range(l + 1, len(net.layers)):
        Wk, bk = net.layers[k]
        ia_lo, ia_hi = interval_layer(Wk, bk, hl, hu)
        lo_k = np.maximum(layers[k].lower, ia_lo)
        hi_k = np.minimum(layers[k].upper, ia_hi)
        layers[k] = LayerBounds(lo_k, np.maximum(hi_k, lo_k))
        hl, hu = layers[k].post_activation()
