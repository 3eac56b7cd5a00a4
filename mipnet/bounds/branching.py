"""Sign questions settled by branch and bound on ReLU splits (beta-CROWN style).

A *sign question* asks whether ``sign * y_i^k`` (a pre-activation of layer k) can exceed ``tol``
on the domain. Bounds alone (alpha-CROWN, LPs) leave some neurons open because their linear
relaxation is loose; a MILP closes the gap with one binary per unstable ReLU but may take long.
This module closes it the way beta-CROWN does (Wang, Zhang, Xu, Lin, Jana, Hsieh and Kolter,
"Beta-CROWN: efficient bound propagation with per-neuron split constraints", NeurIPS 2021,
arXiv:2103.06624):

* a *branch* assumes a sign for some unstable ReLUs of the layers before k (``y_j >= 0``: the
  ReLU is the identity there; ``y_j <= 0``: it is zero); the root assumes nothing;
* every branch is bounded by :func:`mipnet.bounds.alpha.split_lower_bounds` (slopes ``alpha``
  and split multipliers ``beta`` optimised per branch, all branches of all questions of one layer
  in one batch, warm-started from the parent, and re-evaluated soundly in float64);
* a branch whose bound proves ``sign * y_i <= tol`` is closed; the box point that minimises an
  open branch's linear bound is tried as a witness (a real input where ``sign * y_i > 0``
  answers the question the other way); an open branch is split on its free unstable ReLU of
  largest BaBSR score (the intercept its chord costs the bound; Bunel, Lu, Turkaslan, Torr,
  Kohli and Kumar, "Branch and bound for piecewise linear neural network verification", JMLR
  2020) into two children;
* the first hidden layer reads the input box directly, so its ReLUs get tighter upper lines than
  their chords: ``h_j <= (sigma_j * w_j) . x + t_j`` with per-input slopes ``sigma_j`` in [0, 1]
  and the smallest valid ``t_j`` (the convex hull of one ReLU over a box, Anderson, Huchette, Ma,
  Tjandraatmadja and Vielma, Math. Programming 2020, has facets of this form); the slopes are tuned
  per question at its root (:func:`mipnet.bounds.alpha.optimise_envelope`) and the lines shared by
  all its branches;
* a question is *proven* when all its branches are closed (the branches cover the domain, so
  the largest of their bounds bounds ``sign * y_i`` everywhere), *witnessed* when an input
  shows the sign, and *open* when the deadline, the leaf budget, or a branch with no free ReLU
  left (its bound is then the LP value of a linear piece) stops it first.

Only numpy here; the bounding (torch for the optimisation) lives in :mod:`mipnet.bounds.alpha`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from mipnet.bounds.alpha import AlphaOptions, envelope_lines, optimise_envelope, split_lower_bounds
from mipnet.core.domain import Domain
from mipnet.core.network import Network
from mipnet.core.numerics import in_domain

__all__ = ["SignAnswers", "BAB_OPTIONS", "ENVELOPE_MAX", "ENVELOPE_SHARE", "sign_branch_and_bound"]

#: Slope/multiplier optimisation per batch of branches: fewer steps than a root alpha-CROWN
#: (children start from their parent's values).
BAB_OPTIONS = AlphaOptions(iterations=12, lr=0.1, lr_decay=0.95)


#: Under a deadline, the envelope slopes of the roots take at most this share of the time.
ENVELOPE_SHARE = 0.25
#: Envelope lines are used only when questions x first-layer weights stay below this many numbers
#: (each question keeps its own (n1, n0) lines; 2e7 float64 is 160 MB).
ENVELOPE_MAX = 20_000_000
#: ... and, under a deadline, only when the lines' set-up (about 1 s per 5e6 of those numbers, the
#: slopes' steps excluded) fits in the time left: else the chords alone.
ENVELOPE_NUMBERS_PER_S = 5_000_000


@dataclass(frozen=True, eq=False)
class SignAnswers:
    """Answers to the sign questions ``max sign_q * y^k_{neuron_q} <= tol ?`` (one entry per question).

    status : array of str: ``"proven"`` (all branches closed: ``bound <= tol``), ``"witness"``
        (an input with ``sign * y > 0`` was found and passed to ``on_points``), ``"open"``.
    bound : a sound upper bound of ``sign * y`` over the domain for every question not
        witnessed (the largest bound of its leaves, open ones included); nan for witnessed ones.
    branches : bounded branches per question.
    seconds : wall time of the whole search.
    """

    status: np.ndarray
    bound: np.ndarray
    branches: np.ndarray
    seconds: float

    @property
    def proven(self) -> np.ndarray:
        return self.status == "proven"


def _default_check(net: Network, domain: Domain, k: int, neurons, signs):
    def check(points: np.ndarray, q: np.ndarray) -> np.ndarray:
        ok = in_domain(domain, points)
        y = net.preactivations(points)[k]
        hit = ok & (signs[q] * y[np.arange(len(q)), neurons[q]] > 0)
        out = np.zeros(len(neurons), dtype=bool)
        out[q[hit]] = True
        return out
    return check


def sign_branch_and_bound(net: Network, domain: Domain, layers, k: int, neurons, signs, *, tol: float = 0.0,
                          deadline: Optional[float] = None,
                          on_points: Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]] = None,
                          max_batch: int = 512, max_leaves: int = 1 << 14,
                          options: Optional[AlphaOptions] = None, root_options: Optional[AlphaOptions] = None,
                          envelope_iterations: int = 60) -> SignAnswers:
    """Branch and bound on ReLU splits for sign questions of layer ``k`` (module docstring).

    Parameters
    ----------
    net, domain : the network and its (validated) domain; bounds use the domain's box.
    layers : sound pre-activation bounds (LayerBounds) of the hidden layers ``0 .. k-1`` over D.
    k : 0-based index of the affine layer whose neurons are asked about.
    neurons, signs : the questions: neuron index and sign (+1: can ``y > tol``? -1: can ``y < -tol``?).
    tol : a question is proven when ``sign * y <= tol`` is.
    deadline : ``time.perf_counter()`` value after which no new batch starts (open questions stay open).
    on_points : ``(points, q) -> bool array over the questions``: called with candidate inputs
        (the minimisers of open branches' bounds; ``q`` the question each was found for); returns
        which questions those points settle (default: a float64 forward pass, ``sign * y > 0``
        inside the domain). The caller may harvest the points for other purposes too.
    max_batch : branches bounded together. max_leaves : branches per question before it gives up.
    options, root_options : the optimisation of the branches and of the roots (default
        :data:`BAB_OPTIONS`, and ``AlphaOptions()`` for the roots).
    envelope_iterations : steps of :func:`~mipnet.bounds.alpha.optimise_envelope` for the
        first-layer envelope lines of each question (0: chords only; skipped when the lines would
        exceed :data:`ENVELOPE_MAX` numbers, or under a deadline when their set-up would not fit in
        :data:`ENVELOPE_SHARE` of the time left; their slopes' steps take at most that share).
    """
    t0 = time.perf_counter()
    neurons = np.asarray(neurons, dtype=np.int64)
    signs = np.asarray(signs, dtype=np.float64)
    nq = neurons.size
    envelope = None
    W0 = net.layers[0][0]
    if envelope_iterations and k >= 1 and nq and nq * W0.size > ENVELOPE_MAX:
        envelope_iterations = 0  # one (n1, n0) set of lines per question would not fit: chords only
    if (envelope_iterations and deadline is not None
            and nq * W0.size / ENVELOPE_NUMBERS_PER_S > ENVELOPE_SHARE * (deadline - t0)):
        envelope_iterations = 0  # their set-up alone would overrun the time left: chords only
    if envelope_iterations and k >= 1 and nq:
        # one set of first-layer envelope lines per question, tuned at its root, shared by its branches
        Cq = np.zeros((nq, net.layers[k][0].shape[0]))
        Cq[np.arange(nq), neurons] = -signs
        until = None if deadline is None else t0 + ENVELOPE_SHARE * max(deadline - t0, 0.0)
        sigma = optimise_envelope(net, layers, k, Cq, domain, iterations=envelope_iterations, until=until)
        A, t = envelope_lines(net, domain, sigma)
        del sigma
    opts = options or BAB_OPTIONS
    ropts = root_options or AlphaOptions()
    check = on_points or _default_check(net, domain, k, neurons, signs)
    widths = [net.layers[j][0].shape[0] for j in range(k)]
    n_k = net.layers[k][0].shape[0]
    status = np.full(nq, "open", dtype=object)
    done = np.zeros(nq, dtype=bool)  # witnessed or given up: no more branching
    worst = np.full(nq, -np.inf)     # largest bound of the closed leaves
    branches = np.zeros(nq, dtype=np.int64)
    leaves = np.ones(nq, dtype=np.int64)
    # the frontier: question, splits per layer, warm start, parent bound
    fq = np.arange(nq)
    fs = [np.zeros((nq, w), dtype=np.int8) for w in widths]
    fa = [np.full((nq, w), np.nan) for w in widths]  # warm start (nan: none, CROWN's slopes)
    fb = [np.full((nq, w), np.nan) for w in widths]
    fup = np.full(nq, np.inf)
    root = np.full(nq, np.inf)  # each root's bound: what an open question reports
    while fq.size:
        keep = ~done[fq]
        if not keep.all():
            fq, fs, fup = fq[keep], [s[keep] for s in fs], fup[keep]
            fa, fb = [a[keep] for a in fa], [b[keep] for b in fb]
        if fq.size == 0 or (deadline is not None and time.perf_counter() >= deadline):
            break
        B = min(max_batch, fq.size)
        q = fq[:B]
        splits = [s[:B] for s in fs]
        C = np.zeros((B, n_k))
        C[np.arange(B), neurons[q]] = -signs[q]
        init = ([a[:B] for a in fa], [b[:B] for b in fb])
        is_root = branches[q] == 0
        if envelope_iterations and k >= 1:
            envelope = (A, t, q)
        sb, found = split_lower_bounds(net, layers, k, C, splits, domain,
                                       options=ropts if is_root.any() else opts, init=init, envelope=envelope)
        parent = fup[:B]
        fq, fs, fup = fq[B:], [s[B:] for s in fs], fup[B:]
        fa, fb = [a[B:] for a in fa], [b[B:] for b in fb]
        np.add.at(branches, q, 1)
        up = np.minimum(-sb.lower, parent)  # the parent's bound holds on its children too
        root[q[is_root]] = up[is_root]
        closed = up <= tol
        np.maximum.at(worst, q[closed], up[closed])
        op = np.flatnonzero(~closed)
        if op.size:
            if sb.alt_points is None:
                settled = check(sb.points[op], q[op]) & ~done
            else:  # the chord-based minimisers too: other candidates, as cheap
                settled = check(np.concatenate([sb.points[op], sb.alt_points[op]]),
                                np.concatenate([q[op], q[op]])) & ~done
            status[settled] = "witness"
            done |= settled
            op = op[~done[q[op]]]
        if op.size == 0:
            continue
        # split each open branch on its free ReLU of best score (over all layers before k)
        best = np.full(op.size, -np.inf)
        layer = np.zeros(op.size, dtype=np.int64)
        idx = np.zeros(op.size, dtype=np.int64)
        for j in range(k):
            sc = sb.scores[j][op]
            a = np.argmax(sc, axis=1)
            v = sc[np.arange(op.size), a]
            better = v > best
            best, layer, idx = np.where(better, v, best), np.where(better, j, layer), np.where(better, a, idx)
        np.add.at(leaves, q[op], 1)
        give_up = np.zeros(nq, dtype=bool)
        give_up[q[op[~np.isfinite(best)]]] = True  # a linear piece that its bound cannot settle
        give_up |= leaves > max_leaves
        give_up &= ~done
        done |= give_up
        go = ~done[q[op]]
        op, layer, idx = op[go], layer[go], idx[go]
        if op.size == 0:
            continue
        m = op.size
        cq = np.concatenate([q[op], q[op]])
        cs = []
        for j in range(k):
            s = np.concatenate([splits[j][op], splits[j][op]])
            on = np.flatnonzero(layer == j)
            s[on, idx[on]] = 1
            s[m + on, idx[on]] = -1
            cs.append(s)
        fq = np.concatenate([fq, cq])
        fs = [np.concatenate([a, b]) for a, b in zip(fs, cs)]
        fup = np.concatenate([fup, up[op], up[op]])
        for j in range(k):
            a = found[0][j][op] if found[0] is not None else np.full((m, widths[j]), np.nan)
            b = found[1][j][op] if found[1] is not None else np.full((m, widths[j]), np.nan)
            fa[j] = np.concatenate([fa[j], a, a])
            fb[j] = np.concatenate([fb[j], b, b])
    # proven: every leaf closed (none left in the frontier, no give-up, no witness)
    proven = ~done & ~np.isin(np.arange(nq), fq) & (worst <= tol) & (branches > 0)
    status[proven] = "proven"
    # an open question reports its root's bound (sound over the whole domain)
    bound = np.where(proven, worst, np.where(status == "witness", np.nan, root))
    return SignAnswers(status.astype(str), bound, branches, time.perf_counter() - t0)
