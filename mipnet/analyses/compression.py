"""Lossless compression of a ReLU network on a domain, from its stable neurons.

Serra, Kumar and Ramalingam, "Lossless compression of deep neural networks",
CPAIOR 2020, arXiv:2001.00218 (algorithm LEO); Serra, Yu, Kumar and
Ramalingam, NeurIPS 2021, arXiv:2102.07804 (LEO++). Given which neurons are
stable on D (:func:`mipnet.stability.find_stable_neurons`), every hidden layer
l is rewritten by four short rules, each exact on D:

1. *Stably inactive neuron i* (``h_i = 0`` on D): delete row i of ``W^l``,
   entry i of ``b^l`` and column i of ``W^{l+1}``.
2. *Rank-deficient stably active neurons* (``h_A = W_A h + b_A`` on D): if row i
   of ``W_A`` is ``alpha^T W_B`` for a basis B of the active rows, then
   ``h_i = alpha . h_B + (b_i - alpha . b_B)``; fold it into the next layer,
   ``W^{l+1}[:, B] += W^{l+1}[:, i] alpha^T``,
   ``b^{l+1} += W^{l+1}[:, i] (b_i - alpha . b_B)``, and delete i.
3. *A layer whose remaining neurons are all stably active* is affine on D:
   merge it into the next map, ``W' = W^{l+1} W^l``, ``b' = W^{l+1} b^l + b^{l+1}``
   (by default only when that does not add parameters).
4. *A layer whose neurons are all stably inactive* makes the network constant on
   D: the result is a single affine layer ``x -> f(x0)`` (zero weights).

Unstable and unknown neurons are kept. The compressed network equals the
original on D up to the tolerance of the stability proofs (``tol``): a neuron called
stably inactive may still reach ``upper <= tol`` (one called stably active
``lower >= -tol``), and :func:`compress` bounds what that changes at the outputs
(:func:`deviation_bound`), then checks both networks against each other in float64 on
the centre, random inputs of D and every witness of the stability analysis.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from mipnet.analyses.common import Status, candidate_points
from mipnet.analyses.stability import UNKNOWN, StabilityResult, find_stable_neurons
from mipnet.bounds import NeuronState
from mipnet.core.domain import as_domain
from mipnet.core.errors import InvalidNetworkError, SolverError
from mipnet.core.network import Network

__all__ = ["LayerReport", "CompressionReport", "CompressionResult", "compress", "compress_with_states",
           "deviation_bound", "neuron_map_path", "save_neuron_map", "load_neuron_map", "prove_neuron_claims"]

log = logging.getLogger(__name__)

_MERGE = ("auto", "always", "never")


@dataclass(frozen=True)
class LayerReport:
    """What happened to one hidden layer of the original network."""

    layer: int
    width: int
    kept: int
    removed_inactive: int
    folded_active: int
    merged: bool
    stably_active: int
    unstable: int
    unknown: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CompressionReport:
    """Neurons and parameters removed, per layer and in total."""

    layers: tuple
    widths_before: tuple
    widths_after: tuple
    parameters_before: int
    parameters_after: int
    constant: bool
    constant_value: Optional[tuple] = None
    notes: tuple = field(default_factory=tuple)
    neuron_map: tuple = field(default_factory=tuple)

    @property
    def neurons_before(self) -> int:
        return int(sum(self.widths_before[1:-1]))

    @property
    def neurons_after(self) -> int:
        return int(sum(self.widths_after[1:-1]))

    @property
    def neurons_removed(self) -> int:
        return self.neurons_before - self.neurons_after

    @property
    def parameters_removed(self) -> int:
        return self.parameters_before - self.parameters_after

    def to_dict(self) -> dict:
        return {
            "widths_before": list(self.widths_before),
            "widths_after": list(self.widths_after),
            "neurons_before": self.neurons_before,
            "neurons_after": self.neurons_after,
            "neurons_removed": self.neurons_removed,
            "parameters_before": self.parameters_before,
            "parameters_after": self.parameters_after,
            "parameters_removed": self.parameters_removed,
            "constant": self.constant,
            "constant_value": None if self.constant_value is None else list(self.constant_value),
            "layers": [r.to_dict() for r in self.layers],
            "notes": list(self.notes),
            "neuron_map": [dict(m) for m in self.neuron_map],
        }

    def __str__(self) -> str:
        lines = [
            f"Compression: {'-'.join(map(str, self.widths_before))} -> {'-'.join(map(str, self.widths_after))}; "
            f"{self.neurons_removed} of {self.neurons_before} hidden neurons and "
            f"{self.parameters_removed} of {self.parameters_before} parameters removed"
        ]
        if self.constant:
            lines.append(f"  the network is constant on the domain: {list(self.constant_value)}")
        for r in self.layers:
            lines.append(
                f"  layer {r.layer}: {r.width:5d} -> {r.kept:5d}  (inactive removed {r.removed_inactive}, "
                f"active folded {r.folded_active}{', merged into next layer' if r.merged else ''})"
            )
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class CompressionResult:
    """The compressed network, its report and the stability analysis it rests on.

    ``max_deviation`` is the largest ``|f_k(x) - g_k(x)|`` over the ``checked_points``
    inputs of D (centre, random points, stability witnesses) at which both networks were
    compared in float64; ``deviation_bound`` what the stability tolerance allows
    (:func:`deviation_bound`). ``status`` is the stability analysis's (``interrupted`` or
    ``time_limit``: the unsettled neurons were kept, the compression is still exact).
    """

    network: Network
    report: CompressionReport
    stability: Optional[StabilityResult] = None
    seconds: float = 0.0
    max_deviation: float = 0.0
    deviation_bound: float = 0.0
    checked_points: int = 0

    @property
    def status(self) -> Status:
        return Status.COMPLETE if self.stability is None else self.stability.status

    @property
    def neuron_map(self) -> tuple:
        """Per hidden layer of the original network: ``kept`` (the original index of each neuron
        of the compressed layer, in order; empty when ``merged``), ``removed_inactive``,
        ``folded_active`` (original indices) and ``merged``. Lets
        :func:`~mipnet.analyses.equivalence.verify_equivalence` align the two networks
        (``correspondence=``); saved next to the model by :func:`save_neuron_map`."""
        return self.report.neuron_map

    def to_dict(self) -> dict:
        d = {"report": self.report.to_dict(), "seconds": self.seconds, "widths": list(self.network.widths),
             "status": str(self.status), "max_deviation": self.max_deviation,
             "deviation_bound": self.deviation_bound, "checked_points": self.checked_points}
        if self.stability is not None:
            d["stability"] = self.stability.to_dict(arrays=False)
        return d

    def __str__(self) -> str:
        return str(self.report)



def _fold_dependent_active(W, b, Wn, bn, active_idx, rank_tol):
    """Rule 2: fold the active rows of W that depend linearly on other active rows.

    Returns (W, b, Wn, bn, removed indices). A row i is dependent if
    ``||W_i - alpha^T W_B|| <= rank_tol * (1 + ||W_i||)`` with alpha from least squares.
    The basis B is chosen greedily in index order (QR-like), keeping the first
    independent rows.
    """
    if active_idx.size < 2:
        return W, b, Wn, bn, np.zeros(0, dtype=int)
    basis: list[int] = []
    removed = []
    Wn = Wn.copy()
    bn = bn.copy()
    for i in active_idx:
        if basis:
            WB = W[basis]
            alpha, *_ = np.linalg.lstsq(WB.T, W[i], rcond=None)
            resid = np.linalg.norm(W[i] - alpha @ WB)
            if resid <= rank_tol * (1.0 + np.linalg.norm(W[i])):
                col = Wn[:, i].copy()
                Wn[:, basis] += np.outer(col, alpha)
                bn += col * (b[i] - alpha @ b[basis])
                Wn[:, i] = 0.0
                removed.append(int(i))
                continue
        basis.append(int(i))
    return W, b, Wn, bn, np.array(removed, dtype=int)


def compress_with_states(
    net: Network,
    states,
    *,
    merge: str = "auto",
    fold: bool = True,
    rank_tol: float = 1e-10,
) -> tuple[Network, CompressionReport]:
    """Apply the compression rules (module docstring) for given neuron states.

    Parameters
    ----------
    net : Network
    states : list of int arrays, one per hidden layer
        -1 stably inactive, 1 stably active, 0 unstable, 2 unknown (kept).
        Claims are trusted: pass states proven on the domain of interest.
    merge : {"auto", "always", "never"}
        Rule 3: merge affine layers ``"always"``, ``"never"``, or when the merged
        map has no more parameters than the two it replaces (``"auto"``).
    fold : bool
        Rule 2 on or off.
    rank_tol : float
        Relative residual below which an active row counts as a combination of others.

    Returns
    -------
    (Network, CompressionReport)
    """
    if merge not in _MERGE:
        raise ValueError(f"merge must be one of {_MERGE}, got {merge!r}")
    if not isinstance(net, Network):
        raise InvalidNetworkError(f"net must be a mipnet.Network, got {type(net).__name__}")
    states = [np.asarray(s) for s in states]
    if len(states) != net.num_hidden_layers or any(s.shape != (n,) for s, n in zip(states, net.hidden_widths)):
        raise ValueError(f"states must hold one array per hidden layer with shapes {net.hidden_widths}, "
                         f"got {[s.shape for s in states]}")
    layers = [(W.copy(), b.copy()) for W, b in net.layers]
    L = net.num_hidden_layers
    new_layers: list[tuple[np.ndarray, np.ndarray]] = []
    reports = []
    nmap = []
    notes = []
    pending = None  # affine map (A, c) of merged layers, to compose into the next one
    for l in range(L):
        W, b = layers[l]
        if pending is not None:
            A, c = pending
            W, b = W @ A, W @ c + b
            pending = None
        Wn, bn = layers[l + 1]
        s = states[l]
        n = s.size
        counts = dict(stably_active=int(np.sum(s == NeuronState.ACTIVE)), unstable=int(np.sum(s == 0)),
                      unknown=int(np.sum(s == UNKNOWN)))
        keep = s != NeuronState.INACTIVE
        if not np.any(keep):
            # rule 4: h^l = 0 on D, so the output is constant: the remaining layers evaluated at h^l = 0
            hk = np.zeros(n)
            for k in range(l + 1, len(layers)):
                Wk, bk = layers[k]
                yk = Wk @ hk + bk
                hk = np.maximum(yk, 0.0) if k < L else yk
            value = hk
            reports.append(LayerReport(l + 1, n, 0, n, 0, False, **counts))
            for k in range(l + 1, L):
                sk = states[k]
                reports.append(LayerReport(k + 1, sk.size, 0, 0, 0, False,
                                           stably_active=int(np.sum(sk == 1)), unstable=int(np.sum(sk == 0)),
                                           unknown=int(np.sum(sk == UNKNOWN))))
            const = Network([np.zeros((net.output_dim, net.input_dim))], [value])
            report = CompressionReport(tuple(reports), net.widths, const.widths, net.num_parameters,
                                       const.num_parameters, True, tuple(float(v) for v in value), tuple(notes))
            return const, report
        # rule 1: drop stably inactive neurons
        W, b, Wn = W[keep], b[keep], Wn[:, keep]
        sk = s[keep]
        orig = np.flatnonzero(keep)
        gone_orig = np.zeros(0, dtype=int)
        removed_inactive = int(n - keep.sum())
        # rule 2: fold dependent stably active rows
        folded = 0
        act = np.flatnonzero(sk == NeuronState.ACTIVE)
        if fold and act.size >= 2:
            W, b, Wn, bn, gone = _fold_dependent_active(W, b, Wn, bn, act, rank_tol)
            if gone.size:
                left = np.setdiff1d(np.arange(W.shape[0]), gone)
                W, b, Wn, sk = W[left], b[left], Wn[:, left], sk[left]
                folded = int(gone.size)
                gone_orig, orig = orig[gone], orig[left]
        layers[l + 1] = (Wn, bn)
        # rule 3: an all-active layer is affine on D
        merged = False
        if np.all(sk == NeuronState.ACTIVE):
            merged_params = Wn.shape[0] * W.shape[1]
            separate = W.size + Wn.size + b.size
            if merge == "always" or (merge == "auto" and merged_params <= separate):
                pending = (W, b)
                merged = True
        if not merged:
            new_layers.append((W, b))
        kept = 0 if merged else int(W.shape[0])
        reports.append(LayerReport(l + 1, n, kept, removed_inactive, folded, merged, **counts))
        nmap.append({"layer": l + 1, "kept": [] if merged else orig.tolist(),
                     "removed_inactive": np.flatnonzero(~keep).tolist(), "folded_active": sorted(gone_orig.tolist()),
                     "merged": merged})
    W, b = layers[L]
    if pending is not None:
        A, c = pending
        W, b = W @ A, W @ c + b
    new_layers.append((W, b))
    out = Network.from_layers(new_layers)
    report = CompressionReport(tuple(reports), net.widths, out.widths, net.num_parameters, out.num_parameters,
                               False, None, tuple(notes), tuple(nmap))
    return out, report


def neuron_map_path(model_path) -> str:
    """Where :func:`save_neuron_map` writes the map of a compressed model: ``MODEL.neurons.json``."""
    return f"{model_path}.neurons.json"


def save_neuron_map(result: "CompressionResult", model_path) -> str:
    """Write ``result.neuron_map`` (with the widths before and after) next to the saved model, atomically;
    returns the path. :func:`load_neuron_map` reads it back."""
    import json

    from mipnet.io.files import atomic_write

    path = neuron_map_path(model_path)
    doc = {"format": "mipnet-neuron-map/1", "widths_before": list(result.report.widths_before),
           "widths_after": list(result.report.widths_after), "layers": [dict(m) for m in result.neuron_map]}
    with atomic_write(path) as tmp:
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=1)
    return path


def load_neuron_map(path) -> list:
    """The per-layer map saved by :func:`save_neuron_map` (a list of dicts)."""
    import json

    from mipnet.core.errors import InvalidArgumentError

    try:
        with open(path) as fh:
            doc = json.load(fh)
        layers = doc["layers"]
        if not isinstance(layers, list) or not all(isinstance(m, dict) and "kept" in m for m in layers):
            raise KeyError("layers")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidArgumentError(f"{path}: not a mipnet neuron map ({exc})") from None
    return layers


def deviation_bound(net: Network, stability: StabilityResult) -> np.ndarray:
    """A bound on ``|f(x) - g(x)|`` per output over D for ``g`` compressed from ``stability``.

    A removed stably inactive neuron has ``0 <= h_i <= max(0, upper_i)`` in ``f`` and 0 in
    ``g``; a stably active one ``|relu(y_i) - y_i| <= max(0, -lower_i)``; differences of
    pre-activations propagate through ``|W|`` (ReLU is 1-Lipschitz). All zero when every
    stable neuron is exactly stable (``upper <= 0``, ``lower >= 0``).
    """
    dev = np.zeros(net.input_dim)
    for (W, _), ls in zip(net.layers[:-1], stability.layers):
        dy = np.abs(W) @ dev
        ina = ls.states == NeuronState.INACTIVE
        act = ls.states == NeuronState.ACTIVE
        dev = np.where(ina, np.maximum(ls.upper, 0.0), dy + np.where(act, np.maximum(-ls.lower, 0.0), 0.0))
    return np.abs(net.weights[-1]) @ dev


def _magnitudes(net: Network, X: np.ndarray) -> np.ndarray:
    """``|W| |h| + |b|`` carried to the outputs: the scale of the rounding errors of a forward pass."""
    s = np.abs(X)
    for W, b in net.layers:
        s = s @ np.abs(W).T + np.abs(b)
    return s


def _check_compressed(net: Network, out: Network, stability: StabilityResult, X: np.ndarray) -> tuple[float, float]:
    """Both networks in float64 at X: raise unless they agree within the deviation bound (plus rounding)."""
    bound = deviation_bound(net, stability)
    D = np.abs(net.forward(X) - out.forward(X))
    allowed = bound + 1e-9 * (1.0 + _magnitudes(net, X))
    if np.any(D > allowed):
        i, k = np.unravel_index(int(np.argmax(D - allowed)), D.shape)
        raise SolverError(f"internal error: the compressed network differs from the original by {D[i, k]:.3g} "
                          f"at output {k} of a point of the domain (allowed {allowed[i, k]:.3g})")
    return float(D.max(initial=0.0)), float(bound.max(initial=0.0))


def compress(
    net: Network,
    domain,
    *,
    stability: Optional[StabilityResult] = None,
    method: str = "per_neuron",
    time_limit: Optional[float] = None,
    merge: str = "auto",
    fold: bool = True,
    rank_tol: float = 1e-10,
    **stability_options,
) -> CompressionResult:
    """Compress ``net`` losslessly on ``domain`` (see the module docstring).

    Parameters
    ----------
    net : Network
    domain : Domain or (lower, upper)
    stability : StabilityResult, optional
        A stability analysis of ``net`` on ``domain``; computed with
        :func:`~mipnet.stability.find_stable_neurons` (``method``, ``time_limit``,
        ``stability_options``) when not given. Unknown neurons are kept.
    merge, fold, rank_tol
        See :func:`compress_with_states`.

    Returns
    -------
    CompressionResult
        ``network`` equals ``net`` on the domain (within the stability tolerance), checked in
        float64 at the centre, 1000 random inputs and every stability witness. After Ctrl-C
        during the stability analysis (``status == "interrupted"``) only the neurons proven
        by then are removed.

    Raises
    ------
    SolverError
        If the two networks disagree at a checked input beyond the deviation bound (never expected).

    Examples
    --------
    >>> import numpy as np
    >>> from mipnet import Network, Box
    >>> net = Network([np.array([[1.0], [1.0], [2.0]]), np.array([[1.0, 1.0, 1.0]])],
    ...               [np.array([-5.0, 3.0, 6.0]), np.zeros(1)])
    >>> res = compress(net, Box(-1, 1, dim=1))   # neuron 0 always off, 1 and 2 always on
    >>> res.network.widths, float(res.network.forward(np.array([0.5]))[0])
    ((1, 1), 10.5)
    """
    t0 = time.perf_counter()
    if not isinstance(net, Network):
        raise InvalidNetworkError(f"net must be a mipnet.Network, got {type(net).__name__}")
    domain = as_domain(domain, net.input_dim)
    if stability is None:
        stability = find_stable_neurons(net, domain, method=method, time_limit=time_limit, **stability_options)
    elif not isinstance(stability, StabilityResult):
        raise ValueError(f"stability must be a StabilityResult, got {type(stability).__name__}")
    elif len(stability.layers) != net.num_hidden_layers or any(
        ls.size != n for ls, n in zip(stability.layers, net.hidden_widths)
    ):
        raise ValueError("stability was computed for a network of other widths; pass the analysis of this net")
    out, report = compress_with_states(net, stability.states, merge=merge, fold=fold, rank_tol=rank_tol)
    X = candidate_points(domain, None, 1000, 0)
    if len(stability.witnesses):
        X = np.concatenate([X, stability.witnesses])
    worst, bound = _check_compressed(net, out, stability, X)
    log.info("%s", report)
    return CompressionResult(out, report, stability, time.perf_counter() - t0, worst, bound, int(len(X)))


def prove_neuron_claims(net: Network, domain, neuron_map, *, time_limit: Optional[float] = None) -> tuple:
    """Re-prove on ``domain`` the stability claims of a neuron map for ``net`` (the original network).

    Every ``removed_inactive`` neuron must have ``y <= c`` and every ``folded_active`` one
    ``y >= -c`` on D, with ``c = 1e-9 (1 + |bounds|)``: first from symbolic bounds, then by one
    early-stopped MILP of ``net`` alone per open claim (cutoff ``c``: an infeasible answer proves
    it). Returns ``(facts, proven, claimed)``: ``facts[l] = (lower, upper)`` per hidden layer
    (``-inf``/``inf`` where nothing was proven), valid for every input of D. The claims are never
    trusted: an unproven one is simply not a fact. Ctrl-C raises
    :class:`~mipnet.core.errors.Interrupted`.
    """
    import math

    from mipnet.analyses.common import deadline_after, remaining, solve_or_partial
    from mipnet.bounds import symbolic_bounds

    t0 = time.perf_counter()
    domain = as_domain(domain, net.input_dim)
    deadline = deadline_after(time_limit, t0)
    bounds = symbolic_bounds(net, domain)
    layers = [m for m in neuron_map if isinstance(m, dict)]
    facts = [(np.full(n, -np.inf), np.full(n, np.inf)) for n in net.hidden_widths]
    todo = []
    claimed = proven = 0
    for l, (entry, lb) in enumerate(zip(layers, bounds.hidden)):
        for sign, key in ((1, "removed_inactive"), (-1, "folded_active")):
            for i in entry.get(key, []):
                i = int(i)
                if not 0 <= i < lb.size:
                    continue
                claimed += 1
                cut = 1e-9 * (1.0 + max(abs(lb.lower[i]), abs(lb.upper[i])))
                if (sign > 0 and lb.upper[i] <= cut) or (sign < 0 and lb.lower[i] >= -cut):
                    proven += 1
                    _set_fact(facts, l, i, sign, max(0.0, lb.upper[i]) if sign > 0 else min(0.0, lb.lower[i]))
                else:
                    todo.append((l, i, sign, cut))
    if todo:
        from mipnet.core.bounds import Bounds, LayerBounds
        from mipnet.milp.encoding import HighsModel


        models: dict = {}
        for l, i, sign, cut in todo:
            if deadline is not None and time.perf_counter() >= deadline:
                break
            if l not in models:  # the net cut after layer l, only the claimed rows (later layers cannot matter)
                rows = np.unique([t[1] for t in todo if t[0] == l])
                W, b = net.layers[l]
                lb = bounds.layers[l]
                model = HighsModel(domain)
                sub = Network.from_layers(list(net.layers[:l]) + [(W[rows], b[rows])])
                nv = model.add_network(sub, Bounds(tuple(bounds.layers[:l]) + (LayerBounds(lb.lower[rows], lb.upper[rows]),),
                                                   bounds.method))
                models[l] = (model, nv, {int(r): k for k, r in enumerate(rows)})
            model, nv, pos = models[l]
            col = int(nv.output_cols[pos[i]])
            if col < 0:
                continue
            model.set_objective([col], [float(sign)], maximize=True)
            res, stopped = solve_or_partial(model, cutoff=cut, target=cut, time_limit=remaining(deadline))
            if res.status == "infeasible" or (res.status == "optimal" and res.dual_bound is not None
                                              and math.isfinite(res.dual_bound) and res.dual_bound <= cut):
                proven += 1
                _set_fact(facts, l, i, sign, cut if sign > 0 else -cut)
            if stopped:
                from mipnet.core.errors import Interrupted

                raise Interrupted("interrupted while proving the neuron map's claims")
    return tuple(facts), proven, claimed


def _set_fact(facts, l, i, sign, value) -> None:
    if sign > 0:
        facts[l][1][i] = min(facts[l][1][i], value)
    else:
        facts[l][0][i] = max(facts[l][0][i], value)
