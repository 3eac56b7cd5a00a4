"""Differential bounds on ``f - g`` for two networks of any structure, on a box.

Two complementary bounds, both sound in floating point, intersected per output:

* **Aligned differential intervals** (ReluDiff, Paulsen, Wang and Wang, ICSE 2020,
  arXiv:2001.03662; the case split per neuron on the sign states in *both* nets). A
  *neuron correspondence* (given, e.g. the map :func:`~mipnet.analyses.compression.compress`
  saves, or found by :func:`match_neurons`: rows equal up to a positive factor) aligns the
  two nets on a common hidden width (:func:`align`): matched neurons share a position (the
  factor moved into the next layer), unmatched ones get a zero row in the other net. Both
  aligned nets compute exactly the original functions (up to a rounding bound when a factor
  is not a power of two), and :func:`~mipnet.analyses.joint.differential_bounds`
  applies: ``dh = 0`` where both copies of a neuron are stable the same way and their
  pre-activations agree, so the bound is tight where the nets agree.
* **The difference network** (:func:`difference_network`): both nets side by side
  (block-diagonal hidden layers; the shallower padded with exact identity layers) with output
  rows ``f - g``, ``f``, ``g`` and any rows a property asks for (``f_c - f_j``...). DeepPoly /
  CROWN back-substitution (:func:`mipnet.bounds.symbolic_layers`) bounds every row as one
  linear function of x: the input correlations cancel (a folded or merged neuron, a stable
  layer), which intervals cannot see.

Splitting the input box (:mod:`mipnet.analyses.bab`) tightens both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from mipnet.bounds import LayerBounds, gamma, symbolic_layers
from mipnet.core.bounds import Bounds
from mipnet.core.domain import Domain
from mipnet.core.errors import InvalidNetworkError
from mipnet.core.network import Network

__all__ = ["Correspondence", "match_neurons", "correspondence_from_map", "align", "difference_network",
           "alignment_error", "DiffPair", "BoxBounds", "box_bounds", "refine_rows", "batch_eligible", "box_bounds_batch"]

_TINY = float(np.finfo(np.float64).tiny)


# ---------------------------------------------------------------------------- correspondence
@dataclass(frozen=True, eq=False)
class Correspondence:
    """Which neuron of ``net_a`` each hidden neuron of ``net_b`` copies, and by what factor.

    ``index[l][j]``: the neuron of layer l of ``net_a`` that neuron j of ``net_b`` matches
    (-1: none); ``scale[l][j] = c > 0`` with ``y_b_j = c y_a_i`` (1 for a plain copy). Any
    correspondence is sound (it only decides which neurons are compared); a good one makes the
    differential bounds tight.
    """

    index: tuple
    scale: tuple

    @property
    def matched(self) -> int:
        return int(sum(int(np.sum(i >= 0)) for i in self.index))

    def to_dict(self) -> dict:
        return {"index": [i.tolist() for i in self.index], "scale": [s.tolist() for s in self.scale]}


def _check_same_depth(net_a: Network, net_b: Network) -> None:
    if net_a.num_hidden_layers != net_b.num_hidden_layers:
        raise InvalidNetworkError(f"a neuron correspondence needs the same number of hidden layers; got "
                                  f"{net_a.num_hidden_layers} and {net_b.num_hidden_layers}")


def match_neurons(net_a: Network, net_b: Network, *, rtol: float = 1e-9) -> Optional[Correspondence]:
    """Match hidden neurons of ``net_b`` to those of ``net_a`` whose rows ``[W | b]`` agree up to a
    positive factor, layer by layer (inputs of later layers read through the matches so far).

    Columns of ``net_a``'s neurons that no neuron of ``net_b`` matches are ignored (a removed
    dead neuron); ``net_b``'s unmatched columns must be zero. None when the depths differ.
    """
    if net_a.num_hidden_layers != net_b.num_hidden_layers:
        return None
    index, scale = [], []
    prev_i = np.arange(net_a.input_dim)  # columns of b's layer -> columns of a's layer
    prev_c = np.ones(net_a.input_dim)
    for (Wa, ba), (Wb, bb) in zip(net_a.layers[:-1], net_b.layers[:-1]):
        ok_cols = prev_i >= 0
        Wb_m = np.zeros((Wb.shape[0], Wa.shape[1]))
        # b's row in a's coordinates: h_b,j' = c_j' h_a,i'  =>  W_b[j, j'] h_b,j' = (W_b[j, j'] c_j') h_a,i'
        Wb_m[:, prev_i[ok_cols]] = Wb[:, ok_cols] * prev_c[ok_cols]
        stray = np.abs(Wb[:, ~ok_cols]).sum(axis=1) if np.any(~ok_cols) else np.zeros(Wb.shape[0])
        used = np.zeros(Wa.shape[1], dtype=bool)
        used[prev_i[ok_cols]] = True
        Ra = np.concatenate([Wa[:, used], ba[:, None]], axis=1)
        Rb = np.concatenate([Wb_m[:, used], bb[:, None]], axis=1)
        na, nb = np.linalg.norm(Ra, axis=1), np.linalg.norm(Rb, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = (Rb @ Ra.T) / np.outer(np.where(nb > 0, nb, 1.0), np.where(na > 0, na, 1.0))
        cos[:, na == 0] = -1.0
        cos[nb == 0, :] = -1.0
        idx = np.full(Wb.shape[0], -1)
        c = np.ones(Wb.shape[0])
        taken = np.zeros(Wa.shape[0], dtype=bool)
        for j in np.argsort(-cos.max(axis=1) if cos.size else np.zeros(Wb.shape[0]), kind="stable"):
            if cos.shape[1] == 0 or stray[j] > 0:
                continue
            row = np.where(taken, -1.0, cos[j])
            cand = np.flatnonzero(row >= 1.0 - rtol)
            if cand.size:
                # several rows of a agree up to a factor (proportional neurons): the factor nearest 1
                # (an exact copy aligns without rounding), then the lowest index
                i = int(cand[np.argmin(np.abs(np.log(nb[j] / na[cand])))])
                idx[j], c[j] = i, nb[j] / na[i]
                taken[i] = True
        index.append(idx)
        scale.append(c)
        prev_i, prev_c = idx, c
    return Correspondence(tuple(index), tuple(scale))


def correspondence_from_map(net_a: Network, net_b: Network, neuron_map: Sequence) -> Correspondence:
    """A :class:`Correspondence` from a compression map (``kept`` original indices per layer,
    see :attr:`~mipnet.analyses.compression.CompressionResult.neuron_map`). Merged layers are not
    supported (the depths differ)."""
    _check_same_depth(net_a, net_b)
    layers = [m for m in neuron_map if not m.get("merged")]
    if len(layers) != net_b.num_hidden_layers:
        raise InvalidNetworkError("the neuron map does not fit these networks (merged layers or other depths)")
    index, scale = [], []
    for entry, n_a, n_b in zip(layers, net_a.hidden_widths, net_b.hidden_widths):
        idx = np.asarray(entry["kept"], dtype=int)
        if idx.shape != (n_b,) or (idx.size and (idx.min() < 0 or idx.max() >= n_a)):
            raise InvalidNetworkError("the neuron map does not fit these networks (kept indices out of range)")
        index.append(idx)
        scale.append(np.ones(n_b))
    return Correspondence(tuple(index), tuple(scale))


def _exact_power_of_two(c: np.ndarray) -> np.ndarray:
    m, _ = np.frexp(c)
    return m == 0.5


def align(net_a: Network, net_b: Network, corr: Correspondence) -> tuple[Network, Network, np.ndarray]:
    """Both nets on a common hidden width: ``(A, B, exact)``; ``A`` computes ``net_a`` exactly,
    ``B`` computes ``net_b`` exactly when ``exact`` (every factor a power of two), else within
    :func:`alignment_error`.

    Layer l of the aligned nets has ``n_a + u_l`` neurons (``u_l`` unmatched in ``net_b``):
    ``net_b``'s neuron j sits at ``index[l][j]`` with its row divided by its factor and its
    column in the next layer multiplied by it; unmatched ones at the end.
    """
    _check_same_depth(net_a, net_b)
    La, Lb = net_a.layers, net_b.layers
    A_layers, B_layers = [], []
    pos_prev = np.arange(net_a.input_dim)  # position of b's inputs in the aligned layer
    c_prev = np.ones(net_a.input_dim)
    width_prev = net_a.input_dim
    for l in range(net_a.num_hidden_layers + 1):
        (Wa, ba), (Wb, bb) = La[l], Lb[l]
        last = l == net_a.num_hidden_layers
        if last:
            pos = np.arange(Wb.shape[0])
            c = np.ones(Wb.shape[0])
            width = Wa.shape[0]
        else:
            idx, c = corr.index[l], np.asarray(corr.scale[l], dtype=np.float64)
            un = np.flatnonzero(idx < 0)
            pos = idx.copy()
            pos[un] = Wa.shape[0] + np.arange(un.size)
            width = Wa.shape[0] + un.size
            c = np.where(idx < 0, 1.0, c)
        WA = np.zeros((width, width_prev))
        WA[:Wa.shape[0], :Wa.shape[1]] = Wa
        bA = np.zeros(width)
        bA[:Wa.shape[0]] = ba
        WB = np.zeros((width, width_prev))
        # y~_j = y_b_j / c_j fed by h~ = h_b / c_prev: weight W_b[j, j'] c_prev[j'] / c_j
        WB[np.ix_(pos, pos_prev)] = Wb * c_prev[None, :] / c[:, None]
        bB = np.zeros(width)
        bB[pos] = bb / c
        A_layers.append((WA, bA))
        B_layers.append((WB, bB))
        pos_prev, c_prev, width_prev = pos, c, width
    A, B = Network.from_layers(A_layers), Network.from_layers(B_layers)
    exact = all(np.all(_exact_power_of_two(np.asarray(s))) for s in corr.scale)
    return A, B, exact


def alignment_error(net_b: Network, B: Network, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """A sound bound on ``|B(x) - net_b(x)|`` per output over the box, for ``B`` from :func:`align`.

    Each weight of ``B`` is a weight of ``net_b`` times a factor, rounded once or twice (relative
    error ``gamma_2``); so ``|W_B - W_exact| <= gamma_3 |W_B|`` entrywise, and the perturbation
    propagates as ``delta_y <= |W_B| delta_h + gamma_3 (|W_B| |h| + |b_B|)`` (ReLU is
    1-Lipschitz), with ``|h|`` from interval bounds of ``B`` (widened by the perturbation).
    """
    from mipnet.bounds import interval_layers

    ia = interval_layers(B, lower, upper)
    g3 = gamma(3)
    mag = np.maximum(np.abs(lower), np.abs(upper))
    delta = np.zeros_like(mag)
    for (W, b), lb in zip(B.layers, ia):
        aW = np.abs(W)
        n = W.shape[1]
        dy = (aW @ delta + g3 * (aW @ (mag + delta) + np.abs(b))) * (1 + gamma(n + 3)) + _TINY
        delta = dy
        mag = np.maximum(np.abs(lb.lower), np.abs(lb.upper))
    return delta


# ---------------------------------------------------------------------------- the difference network
def _pad_depth(net: Network, depth: int) -> Network:
    """``net`` with exact identity layers after its last hidden layer, up to ``depth`` hidden layers.

    A hidden layer's output is >= 0, so ``relu(I h) = h``; a net without hidden layers first gets
    the exact pair ``x = relu(x) - relu(-x)``.
    """
    layers = list(net.layers)
    if net.num_hidden_layers >= depth:
        return net
    if net.num_hidden_layers == 0:
        W, b = layers[0]
        n = W.shape[1]
        layers = [(np.vstack([np.eye(n), -np.eye(n)]), np.zeros(2 * n)), (np.hstack([W, -W]), b)]
    while len(layers) - 1 < depth:
        n = layers[-1][0].shape[1]
        layers.insert(len(layers) - 1, (np.eye(n), np.zeros(n)))
    return Network.from_layers(layers)


def difference_network(net_a: Network, net_b: Network, Ca: np.ndarray, Cb: np.ndarray):
    """Both nets side by side with output rows ``Ca f + Cb g``: ``(net, row_error_weights)``.

    Hidden layers are block-diagonal (exact); the output layer ``[Ca W_a, Cb W_b]``,
    ``Ca b_a + Cb b_b`` is rounded, so the second value ``(|Ca| |W_a| | |Cb| |W_b|,
    |Ca| |b_a| + |Cb| |b_b|, k)`` (k terms per sum) gives what :func:`box_bounds` widens each
    row by (``gamma_k`` times those magnitudes at ``|h|``).
    """
    depth = max(net_a.num_hidden_layers, net_b.num_hidden_layers, 1)
    a, b = _pad_depth(net_a, depth), _pad_depth(net_b, depth)
    layers = []
    for l in range(depth):
        (Wa, ba), (Wb, bb) = a.layers[l], b.layers[l]
        if l == 0:
            W = np.vstack([Wa, Wb])
        else:
            W = np.zeros((Wa.shape[0] + Wb.shape[0], Wa.shape[1] + Wb.shape[1]))
            W[:Wa.shape[0], :Wa.shape[1]] = Wa
            W[Wa.shape[0]:, Wa.shape[1]:] = Wb
        layers.append((W, np.concatenate([ba, bb])))
    (Wa, ba), (Wb, bb) = a.layers[-1], b.layers[-1]
    Wout = np.hstack([Ca @ Wa, Cb @ Wb])
    bout = Ca @ ba + Cb @ bb
    layers.append((Wout, bout))
    # the magnitudes of the rounded sums: |Ca| |W_a|, |Cb| |W_b|, |Ca| |b_a| + |Cb| |b_b|
    Mw = np.hstack([np.abs(Ca) @ np.abs(Wa), np.abs(Cb) @ np.abs(Wb)])
    Mb = np.abs(Ca) @ np.abs(ba) + np.abs(Cb) @ np.abs(bb)
    k = int(np.max(np.sum(Ca != 0, axis=1), initial=0) + np.max(np.sum(Cb != 0, axis=1), initial=0)) + 1
    return Network.from_layers(layers), (Mw, Mb, k)


# ---------------------------------------------------------------------------- one pair, one box
@dataclass(frozen=True, eq=False)
class DiffPair:
    """Two networks prepared for differential bounds on sub-boxes (picklable).

    ``net_a``, ``net_b``: the originals; ``aligned``: ``(A, B)`` on a common width or None;
    ``align_err``: bound on ``|B - net_b|`` per output on the whole domain (0 when exact);
    ``product``: the :func:`difference_network` with rows ``[f - g; f; g; spec]``.
    """

    net_a: Network
    net_b: Network
    aligned: Optional[tuple]
    align_err: np.ndarray
    product: Network
    row_mag: tuple
    m: int
    n_spec: int
    facts_a: Optional[tuple] = None

    @classmethod
    def build(cls, net_a: Network, net_b: Network, domain: Domain, *, correspondence: Optional[Correspondence] = None,
              spec: Optional[tuple] = None, match: bool = True, facts_a: Optional[tuple] = None) -> "DiffPair":
        """Prepare ``net_a`` vs ``net_b`` on ``domain``: align them (``correspondence``, or
        :func:`match_neurons` when ``match``) and build the difference network with the property's
        extra ``spec = (Ca, Cb)`` rows. ``facts_a``: per hidden layer ``(lower, upper)`` bounds of
        ``net_a``'s pre-activations proven on the whole domain (e.g.
        :func:`~mipnet.analyses.compression.prove_neuron_claims`), intersected into every box's bounds."""
        m = net_a.output_dim
        if correspondence is None and match:
            correspondence = match_neurons(net_a, net_b)
            if correspondence is not None and correspondence.matched == 0 and net_a.widths != net_b.widths:
                correspondence = None
        if correspondence is None and net_a.widths == net_b.widths:  # same shape: neuron i vs neuron i
            correspondence = Correspondence(tuple(np.arange(n) for n in net_b.hidden_widths),
                                            tuple(np.ones(n) for n in net_b.hidden_widths))
        aligned, err = None, np.zeros(m)
        if correspondence is not None:
            A, B, exact = align(net_a, net_b, correspondence)
            aligned = (A, B)
            if not exact:
                err = alignment_error(net_b, B, domain.lower, domain.upper)
        I = np.eye(m)
        Z = np.zeros((m, m))
        Ca = [I, I, Z]
        Cb = [-I, Z, I]
        n_spec = 0
        if spec is not None:
            Ca.append(np.asarray(spec[0], dtype=np.float64))
            Cb.append(np.asarray(spec[1], dtype=np.float64))
            n_spec = Ca[-1].shape[0]
        product, mag = difference_network(net_a, net_b, np.vstack(Ca), np.vstack(Cb))
        if facts_a is not None and aligned is not None:  # pad to the aligned widths (extra neurons: no fact)
            facts_a = tuple((np.concatenate([lo, np.full(n - lo.size, -np.inf)]),
                             np.concatenate([hi, np.full(n - hi.size, np.inf)]))
                            for (lo, hi), n in zip(facts_a, aligned[0].hidden_widths))
        return cls(net_a, net_b, aligned, err, product, mag, m, n_spec, facts_a if aligned is not None else None)


@dataclass(frozen=True, eq=False)
class BoxBounds:
    """Sound bounds on one box: ``d = f - g``, ``f``, ``g`` and the property's spec rows,
    plus how many neurons are unstable in the two nets (the size of a MILP on the box)."""

    d_lo: np.ndarray
    d_hi: np.ndarray
    fa_lo: np.ndarray
    fa_hi: np.ndarray
    fb_lo: np.ndarray
    fb_hi: np.ndarray
    spec_lo: np.ndarray
    spec_hi: np.ndarray
    unstable: int
    bounds_a: Optional[Bounds] = None
    bounds_b: Optional[Bounds] = None
    product_layers: Optional[tuple] = None  #: the difference network's layer bounds (for alpha-CROWN, children)

    def rows(self) -> tuple:
        """``(lower, upper)`` of every output row of the difference network (:attr:`DiffPair.product`),
        in its order: ``d``, ``f``, ``g``, then the spec rows."""
        return (np.concatenate([self.d_lo, self.fa_lo, self.fb_lo, self.spec_lo]),
                np.concatenate([self.d_hi, self.fa_hi, self.fb_hi, self.spec_hi]))

    @classmethod
    def from_rows(cls, lo: np.ndarray, hi: np.ndarray, m: int, unstable: int, *rest) -> "BoxBounds":
        """The bounds of the product's output rows ``lo``, ``hi`` (laid out as :meth:`rows`; ``m``
        outputs per net) as a BoxBounds; ``rest``: ``bounds_a``, ``bounds_b``, ``product_layers``."""
        return cls(lo[:m], hi[:m], lo[m:2 * m], hi[m:2 * m], lo[2 * m:3 * m], hi[2 * m:3 * m], lo[3 * m:], hi[3 * m:],
                   unstable, *rest)


def _row_widening(row_mag: tuple, layers: list) -> np.ndarray:
    """Rounding of the product's output weights: ``2 gamma_{k+1} (M_W |h| + M_b)`` (Higham, Thm 3.1)."""
    Mw, Mb, k = row_mag
    hmag = np.maximum(layers[-2].upper, 0.0)
    m = Mw @ hmag + Mb
    return 2.0 * gamma(k + 2) * m * (1.0 + gamma(Mw.shape[1] + 2)) + np.where(m > 0, _TINY, 0.0)


def _meet(lb: LayerBounds, fact: tuple) -> LayerBounds:
    """``lb`` intersected with a proven fact (both sound; a numerical crossing keeps the fact's side)."""
    lo, hi = np.maximum(lb.lower, fact[0]), np.minimum(lb.upper, fact[1])
    return LayerBounds(np.minimum(lo, hi), hi)


def box_bounds(pair: DiffPair, lower: np.ndarray, upper: np.ndarray, *, want_bounds: bool = False,
               parent_layers: Optional[Sequence] = None, aligned: bool = True) -> BoxBounds:
    """:class:`BoxBounds` of the pair on the box ``[lower, upper]`` (see the module docstring).

    ``parent_layers``: sound bounds of the difference network's layers on a box containing this
    one (the parent box's ``product_layers``): intersected in, and its stable neurons are not
    bounded again (:func:`~mipnet.bounds.symbolic_layers`). ``aligned=False`` skips the aligned
    differential intervals (sound either way; they cost more than they give for unrelated nets).
    """
    from mipnet.analyses.joint import differential_layers

    dom = Domain(lower, upper)
    layers = symbolic_layers(pair.product, dom, initial=parent_layers)
    w = _row_widening(pair.row_mag, layers)
    lo, hi = layers[-1].lower - w, layers[-1].upper + w
    m = pair.m
    d_lo, d_hi = lo[:m], hi[:m]
    fa_lo, fa_hi, fb_lo, fb_hi = lo[m:2 * m], hi[m:2 * m], lo[2 * m:3 * m], hi[2 * m:3 * m]
    s_lo, s_hi = lo[3 * m:], hi[3 * m:]
    unstable = sum(int(np.sum((lb.lower < 0) & (lb.upper > 0))) for lb in layers[:-1])
    ba = bb = None
    if pair.aligned is not None and aligned:
        A, B = pair.aligned
        la = symbolic_layers(A, dom)
        if pair.facts_a is not None:
            la = [_meet(lb, f) for lb, f in zip(la, pair.facts_a)] + la[len(pair.facts_a):]
        ba = Bounds(tuple(la), "symbolic")
        bb = Bounds(tuple(symbolic_layers(B, dom)), "symbolic")
        diff = differential_layers(A, B, dom, ba, bb)
        e = pair.align_err
        d_lo = np.maximum(d_lo, diff.output.lower - e)
        d_hi = np.minimum(d_hi, diff.output.upper + e)
        fa_lo, fa_hi = np.maximum(fa_lo, ba.output.lower), np.minimum(fa_hi, ba.output.upper)
        fb_lo, fb_hi = np.maximum(fb_lo, bb.output.lower - e), np.minimum(fb_hi, bb.output.upper + e)
        d_hi = np.maximum(d_hi, d_lo)
    return BoxBounds(d_lo, d_hi, fa_lo, fa_hi, fb_lo, fb_hi, s_lo, s_hi, unstable,
                     ba if want_bounds else None, bb if want_bounds else None, tuple(layers))


def refine_rows(pair: DiffPair, bb: BoxBounds, rows, lower: np.ndarray) -> BoxBounds:
    """``bb`` intersected with sound bounds on single rows of the difference network's output.

    ``rows``: ``(i, s)`` pairs (output row i of :attr:`DiffPair.product`, sign s = +1 or -1);
    ``lower[r]``: a sound lower bound of ``s y_i`` of the product network as stored (e.g. from
    :func:`~mipnet.bounds.alpha_spec_bounds` with ``bb.product_layers``). Each is widened by the
    rounding of the product's output weights (as in :func:`box_bounds`), so the result bounds
    the rows ``Ca f + Cb g`` of the original nets.
    """
    layers = list(bb.product_layers)
    w = _row_widening(pair.row_mag, layers)
    lo, hi = bb.rows()
    for (i, s), v in zip(rows, np.asarray(lower, dtype=np.float64)):
        if s > 0:
            lo[i] = max(lo[i], v - w[i])
        else:
            hi[i] = min(hi[i], -v + w[i])
    hi = np.maximum(hi, lo)
    return BoxBounds.from_rows(lo, hi, pair.m, bb.unstable, bb.bounds_a, bb.bounds_b, bb.product_layers)


# ---------------------------------------------------------------------------- one pair, many boxes
def layer_views(buf: np.ndarray, sizes) -> tuple:
    """Layer bounds held in one buffer: ``buf`` is every layer's lower bounds, then every layer's
    upper bounds (layer sizes ``sizes``); returns a LayerBounds per layer whose arrays are
    read-only views of it (:func:`layer_buffer` finds it again)."""
    buf.setflags(write=False)
    half = buf.size // 2
    out, at = [], 0
    for m in sizes:
        out.append(LayerBounds.trusted(buf[at:at + m], buf[half + at:half + at + m]))
        at += m
    return tuple(out)


def layer_buffer(layers) -> Optional[np.ndarray]:
    """The buffer of layer bounds made by :func:`layer_views`, or None if ``layers`` are not such
    views (every layer's bounds views of one 1-D array, laid out as :func:`layer_views` does)."""
    base = layers[0].lower.base if layers else None
    if base is None or base.ndim != 1 or base.size != 2 * sum(lb.lower.size for lb in layers):
        return None
    # every layer's lower and upper bounds views of this one 1-D array: only layer_views makes
    # such layers (the batched bounds' rows are views of 2-D arrays, a stacked frontier's columns
    # are separate arrays per layer and bound)
    return base if all(lb.lower.base is base and lb.upper.base is base for lb in layers) else None


def _stacked_layers(parents) -> list:
    """Per layer, ``(lower, upper)`` of shape (N, n_k), float64, stacked over the boxes' ``parents``
    (each a tuple of LayerBounds, float64 or as an open box stores them, float32): one stack of
    their buffers, converted once, when :func:`layer_views` made them all."""
    bufs = [layer_buffer(p) for p in parents]
    if all(b is not None for b in bufs):
        B = np.stack(bufs).astype(np.float64, copy=False)
        half, at, out = B.shape[1] // 2, 0, []
        for lb in parents[0]:
            m = lb.lower.size
            out.append((B[:, at:at + m], B[:, half + at:half + at + m]))
            at += m
        return out
    return [(np.stack([p[k].lower for p in parents]).astype(np.float64, copy=False),
             np.stack([p[k].upper for p in parents]).astype(np.float64, copy=False)) for k in range(len(parents[0]))]


def batch_eligible(pair: DiffPair) -> bool:
    """Whether :func:`box_bounds_batch` applies: both nets have hidden layers (the difference
    network's hidden layers are then the two nets' own, side by side, plus exact identity
    layers after the shallower one's last)."""
    return pair.net_a.num_hidden_layers > 0 and pair.net_b.num_hidden_layers > 0


def box_bounds_batch(pair: DiffPair, lower: np.ndarray, upper: np.ndarray, parent_layers=None, rows=None):
    """:func:`box_bounds_chunk` with each box's layer bounds as its ``BoxBounds.product_layers``
    (read-only views of the chunk's matrix): ``(list of BoxBounds, Lu, Ll)``."""
    out, Lu, Ll, M, sizes = box_bounds_chunk(pair, lower, upper, parent_layers, rows)
    M.setflags(write=False)
    for j, bb in enumerate(out):
        object.__setattr__(bb, "product_layers", layer_views(M[j], sizes))
    return out, Lu, Ll


def box_bounds_chunk(pair: DiffPair, lower: np.ndarray, upper: np.ndarray, parent_layers=None, rows=None,
                     lines: bool = False):
    """:func:`box_bounds` (``aligned=False``) on N boxes at once (``lower``, ``upper``: (N, n0)):
    ``(list of BoxBounds, Lu, Ll, M, sizes)`` where ``Lu[b], Ll[b]`` (rows x n0) are the input
    coefficients of the upper and lower linear bounds of the difference network's output rows
    on box b (the split heuristic's ``a``), and row b of ``M`` holds box b's layer bounds (every
    layer's lower bounds, then every layer's upper bounds; layer sizes ``sizes``: the layout of
    :func:`layer_views`). The BoxBounds carry no ``product_layers`` (a tuple of arrays per box
    costs more than its bounds in a branch and bound; :func:`box_bounds_batch` adds them).

    The difference network's hidden layers are block-diagonal, so each net's hidden bounds are
    its own back-substitution bounds (:func:`~mipnet.bounds.batch.symbolic_layers_batch`, on
    ``net_a`` and ``net_b`` separately: a third of the arithmetic of the joint network for
    100- and 200-wide layers); the padding identity layers are exact (``relu(h) = h``, bounds
    ``[max(l, 0), max(u, 0)]``) and skipped. Each output row ``W_A h_A + W_B h_B + b`` (the
    product's rounded output weights) is back-substituted through each net to a linear
    function of x; the two are added (their rounding added to the error) and only then
    maximised over the box, so the input correlations cancel as in :func:`box_bounds`. The
    rows are widened by the same rounding bound of the product's output weights.
    ``parent_layers``: None or, per box, its parent's ``BoxBounds.product_layers`` (sound on
    the box; intersected in, and only the parent's unstable neurons are back-substituted).
    ``rows``: None or the indices of the output rows to back-substitute (a property's
    ``box_rows``: an epsilon gap reads only ``f - g``); the others keep their interval bounds
    and zero coefficients in ``Lu``, ``Ll``. ``lines=True`` appends :class:`RowLines`: the
    back-substituted rows' linear functions with their error terms, which bound those rows on
    every sub-box too (:meth:`RowLines.over`).
    """
    from mipnet.bounds.batch import concretize_batch, linear_bounds_batch, symbolic_layers_batch

    xl = np.atleast_2d(np.asarray(lower, dtype=np.float64))
    xu = np.atleast_2d(np.asarray(upper, dtype=np.float64))
    N = xl.shape[0]
    A, B = pair.net_a, pair.net_b
    P = pair.product
    depth = P.num_hidden_layers
    parents = None if parent_layers is None or any(p is None for p in parent_layers) else parent_layers

    def widths(net):  # per hidden layer of the product: this net's width (identity layers: its last)
        w = list(net.hidden_widths)
        return w + [w[-1]] * (depth - len(w))

    wa, wb = widths(A), widths(B)

    stacked = None if parents is None else _stacked_layers(parents)

    def initial(net, first):
        if parents is None:
            return None
        out = []
        for k in range(net.num_hidden_layers):
            s = slice(0, wa[k]) if first else slice(wa[k], wa[k] + wb[k])
            out.append((stacked[k][0][:, s], stacked[k][1][:, s]))
        return out

    la, ra = symbolic_layers_batch(A, xl, xu, initial(A, True), hidden_only=True)
    lb, rb = symbolic_layers_batch(B, xl, xu, initial(B, False), hidden_only=True)

    def padded(net_layers):  # the product's hidden layers of one net: its own, then identity layers
        out = list(net_layers)
        lo, hi = net_layers[-1]
        while len(out) < depth:
            out.append((np.maximum(lo, 0.0), np.maximum(hi, 0.0)))
        return out

    hidden = [(np.concatenate([a[0], b[0]], axis=1), np.concatenate([a[1], b[1]], axis=1))
              for a, b in zip(padded(la), padded(lb))]
    Wout, bout = P.layers[-1]
    n_rows = Wout.shape[0]
    sel = np.arange(n_rows) if rows is None else np.asarray(rows, dtype=np.int64)
    ka = wa[-1]
    LuA, LlA, cuA, clA, euA, elA, bi = linear_bounds_batch(A, ra, Wout[sel, :ka], bout[sel], N)
    LuB, LlB, cuB, clB, euB, elB, _ = linear_bounds_batch(B, rb, Wout[sel, ka:], np.zeros(sel.size), N)
    # the sum of the two linear functions, and the rounding of that sum (relative u per term)
    xmag = np.maximum(np.abs(xl), np.abs(xu))[bi]
    g2 = gamma(2)
    eu = euA + euB + g2 * (np.einsum("rn,rn->r", np.abs(LuA) + np.abs(LuB), xmag) + np.abs(cuA) + np.abs(cuB))
    el = elA + elB + g2 * (np.einsum("rn,rn->r", np.abs(LlA) + np.abs(LlB), xmag) + np.abs(clA) + np.abs(clB))
    Lu, Ll, cu, cl = LuA + LuB, LlA + LlB, cuA + cuB, clA + clB
    lo_r, hi_r = concretize_batch(Lu, Ll, cu, cl, eu, el, xl, xu, bi)
    lo_r, hi_r = lo_r.reshape(N, sel.size), hi_r.reshape(N, sel.size)
    # intervals of the output layer from the last hidden layer's (as symbolic_layers intersects)
    hl = np.maximum(hidden[-1][0], 0.0)
    hu = np.maximum(hidden[-1][1], 0.0)
    absW = np.abs(Wout)
    mid, rad = (hl + hu) / 2, (hu - hl) / 2
    c, r = mid @ Wout.T + bout, rad @ absW.T
    m = (np.abs(mid) + rad) @ absW.T + np.abs(bout)
    e = 2.0 * gamma(Wout.shape[1] + 2) * m + np.where(m > 0, (Wout.shape[1] + 2) * _TINY, 0.0)
    out_lo, out_hi = c - r - e, c + r + e
    out_lo[:, sel] = np.maximum(out_lo[:, sel], lo_r)
    out_hi[:, sel] = np.minimum(out_hi[:, sel], hi_r)
    if parents is not None:
        out_lo = np.maximum(out_lo, stacked[-1][0])
        out_hi = np.minimum(out_hi, stacked[-1][1])
    out_hi = np.maximum(out_hi, out_lo)
    # the rounding of the product's output weights (_row_widening, batched)
    Mw, Mb, kk = pair.row_mag
    mm = np.maximum(hidden[-1][1], 0.0) @ Mw.T + Mb
    w = 2.0 * gamma(kk + 2) * mm * (1.0 + gamma(Mw.shape[1] + 2)) + np.where(mm > 0, _TINY, 0.0)
    lo, hi = out_lo - w, out_hi + w
    unstable = sum(np.sum((h[0] < 0) & (h[1] > 0), axis=1) for h in hidden)
    mo = pair.m
    every = hidden + [(out_lo, out_hi)]
    M = np.concatenate([lo_k for lo_k, _ in every] + [hi_k for _, hi_k in every], axis=1)
    sizes = [lo_k.shape[1] for lo_k, _ in every]
    out = [BoxBounds.from_rows(lo[j], hi[j], mo, int(unstable[j])) for j in range(N)]
    n0 = xl.shape[1]
    extra = (RowLines(sel, Lu.reshape(N, sel.size, n0), Ll.reshape(N, sel.size, n0), cu.reshape(N, sel.size),
                      cl.reshape(N, sel.size), eu.reshape(N, sel.size), el.reshape(N, sel.size), w[:, sel]),) \
        if lines else ()
    if sel.size == n_rows:
        return (out, Lu.reshape(N, n_rows, n0), Ll.reshape(N, n_rows, n0), M, sizes) + extra
    Lu_all, Ll_all = np.zeros((N, n_rows, n0)), np.zeros((N, n_rows, n0))
    Lu_all[:, sel], Ll_all[:, sel] = Lu.reshape(N, sel.size, n0), Ll.reshape(N, sel.size, n0)
    return (out, Lu_all, Ll_all, M, sizes) + extra


@dataclass(frozen=True, eq=False)
class RowLines:
    """The linear bounds of output rows ``sel`` of the difference network on N boxes (from
    :func:`box_bounds_chunk`): ``Ll x + cl - 2 el <= y_r(x) <= Lu x + cu + 2 eu`` for x in box b,
    before the rounding of the concretisation and of the product's output weights (``w``, from
    the box's last hidden layer, valid on its sub-boxes). Over a sub-box the same functions give
    sound bounds at the cost of one concretisation (:meth:`over`): a parent's bound on its child."""

    sel: np.ndarray
    Lu: np.ndarray  #: (N, rows, n0)
    Ll: np.ndarray
    cu: np.ndarray  #: (N, rows)
    cl: np.ndarray
    eu: np.ndarray
    el: np.ndarray
    w: np.ndarray

    def over(self, boxes: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple:
        """Sound ``(lo, hi)``, each (K, rows), of rows ``sel`` on the sub-boxes ``[lower[i],
        upper[i]]`` of boxes ``boxes[i]`` (K of them)."""
        from mipnet.bounds.batch import concretize_batch

        boxes = np.asarray(boxes, dtype=np.int64)
        K, r, n0 = boxes.size, self.sel.size, self.Lu.shape[2]
        lo, hi = concretize_batch(self.Lu[boxes].reshape(K * r, n0), self.Ll[boxes].reshape(K * r, n0),
                                  self.cu[boxes].reshape(-1), self.cl[boxes].reshape(-1),
                                  self.eu[boxes].reshape(-1), self.el[boxes].reshape(-1),
                                  np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64),
                                  np.repeat(np.arange(K), r))
        return lo.reshape(K, r) - self.w[boxes], hi.reshape(K, r) + self.w[boxes]
