"""Pruning of torch MLPs: magnitude (layer-wise, global, allocated), random, SiPP, SNIP.

Every method computes one 0/1 mask per ``nn.Linear`` weight and applies it with
:func:`torch.nn.utils.prune.custom_from_mask`: the mask is a buffer
(``weight_mask``), the trainable tensor becomes ``weight_orig`` and a forward
pre-hook sets ``weight = weight_orig * weight_mask``. Masks therefore stay
applied during fine-tuning (:func:`mipnet.nn.training.finetune`);
:func:`make_permanent` removes them with :func:`torch.nn.utils.prune.remove`,
leaving plain weights with exact zeros.

Counting rule
-------------
A layer of ``size`` weights at density ``d`` keeps exactly
``k = clip(floor(d * size + 1/2), 1, size)`` weights (round half up, and never
fewer than one, so no layer is cut off entirely by a per-layer method). Global
methods keep ``floor(d * total + 1/2)`` (at least 1) weights over all pruned
layers, which may leave a layer empty. Ties are broken deterministically (by
magnitude, then by position). By default the output layer is not pruned
(density 1); pass ``prune_output=True`` or a density for it.

Scores are computed from the *effective* weights (``weight_orig * weight_mask``),
so pruning an already pruned model prunes further; the masks multiply.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mipnet.core.errors import DatasetError, InvalidNetworkError, PruningError

__all__ = [
    "PruningError",
    "PRUNING_METHODS",
    "PruningReport",
    "prune",
    "layer_densities_uniform",
    "magnitude_prune",
    "global_magnitude_prune",
    "random_prune",
    "sipp_prune",
    "sipp_sensitivities",
    "sipp_sample_size",
    "snip_prune",
    "allocated_prune",
    "make_permanent",
    "masks",
    "achieved_densities",
    "kept_count",
]

log = logging.getLogger(__name__)



PRUNING_METHODS = ("magnitude", "global", "random", "sipp", "snip", "allocated")


# ---------------------------------------------------------------------------- helpers
def _linears(model) -> list:
    from torch import nn

    if not isinstance(model, nn.Module):
        raise InvalidNetworkError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    lins = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not lins:
        raise InvalidNetworkError("the model has no nn.Linear layer to prune")
    return lins


def _effective_weight(module):
    """``weight_orig * weight_mask`` under a mask (never stale), else ``weight``."""
    if hasattr(module, "weight_mask"):
        return module.weight_orig * module.weight_mask
    return module.weight


def _weight_np(module) -> np.ndarray:
    import torch

    with torch.no_grad():
        return _effective_weight(module).detach().to("cpu", torch.float64).numpy().copy()


def _check_density(density, what: str = "density") -> float:
    try:
        d = float(density)
    except (TypeError, ValueError):
        raise PruningError(f"{what} must be a number in (0, 1], got {density!r}") from None
    if not (0.0 < d <= 1.0):
        raise PruningError(f"{what} must lie in (0, 1] (fraction of weights kept), got {density!r}")
    return d


def _check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PruningError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def kept_count(density: float, size: int, *, at_least_one: bool = True) -> int:
    """Number of weights kept at ``density``: ``floor(density * size + 1/2)``, clipped to [1, size].

    >>> kept_count(0.5, 5), kept_count(0.0001, 100), kept_count(1.0, 7)
    (3, 1, 7)
    """
    d = _check_density(density)
    k = int(math.floor(d * size + 0.5))
    return min(size, max(1 if at_least_one else 0, k))


def _top_k_mask(score: np.ndarray, k: int, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the ``k`` largest scores; ties by ``tiebreak`` (larger first), then position."""
    flat = score.reshape(-1)
    n = flat.size
    pos = -np.arange(n)  # earlier position wins among full ties
    keys = (pos, flat) if tiebreak is None else (pos, tiebreak.reshape(-1), flat)
    order = np.lexsort(keys)  # ascending by the last key
    mask = np.zeros(n, dtype=bool)
    if k > 0:
        mask[order[n - k:]] = True
    return mask.reshape(score.shape)


def _apply_masks(model, layer_masks: dict, scales: dict | None = None) -> None:
    """Apply boolean masks ``{layer index: mask}``; optionally rescale kept weights first."""
    import torch
    from torch.nn.utils import prune as tprune

    from mipnet.nn.training import refresh_masked_weights

    lins = _linears(model)
    for i, mask in layer_masks.items():
        m = lins[i]
        if scales and i in scales:
            p = m.weight_orig if hasattr(m, "weight_orig") else m.weight
            with torch.no_grad():
                p.mul_(torch.as_tensor(scales[i], dtype=p.dtype, device=p.device))
        w = m.weight_orig if hasattr(m, "weight_orig") else m.weight
        tprune.custom_from_mask(m, "weight", torch.as_tensor(mask, dtype=w.dtype, device=w.device))
    refresh_masked_weights(model)


def masks(model) -> list:
    """One boolean numpy mask per ``nn.Linear`` (``None`` where the layer carries no mask)."""
    out = []
    for m in _linears(model):
        out.append(m.weight_mask.detach().cpu().numpy() != 0 if hasattr(m, "weight_mask") else None)
    return out


def achieved_densities(model) -> list[float]:
    """Fraction of kept weights per ``nn.Linear``: the mask's where masked, else non-zeros."""
    out = []
    for m in _linears(model):
        if hasattr(m, "weight_mask"):
            mk = m.weight_mask.detach()
            out.append(float((mk != 0).sum()) / mk.numel())
        else:
            w = m.weight.detach()
            out.append(float((w != 0).sum()) / w.numel())
    return out


def make_permanent(model):
    """Remove every pruning re-parametrisation (:func:`torch.nn.utils.prune.remove`).

    The weights become plain parameters holding ``weight_orig * weight_mask``:
    the pruned entries are exact zeros and no hook is left. Returns the model.
    """
    from torch.nn.utils import prune as tprune

    for m in model.modules():
        for name in ("weight", "bias"):
            if hasattr(m, name + "_mask"):
                tprune.remove(m, name)
    return model


def layer_densities_uniform(model, density: float, *, prune_output: bool = False) -> list[float]:
    """``[density, ..., density, 1.0]``: one per ``nn.Linear``; the output layer kept unless asked."""
    d = _check_density(density)
    n = len(_linears(model))
    out = [d] * n
    if not prune_output:
        out[-1] = 1.0
    return out


def _check_densities(model, densities) -> list[float]:
    n = len(_linears(model))
    try:
        ds = [float(d) for d in densities]
    except (TypeError, ValueError):
        raise PruningError(f"densities must be a list of numbers, one per Linear layer, got {densities!r}") from None
    if len(ds) == n - 1:
        ds.append(1.0)
    if len(ds) != n:
        raise PruningError(
            f"densities has {len(ds)} entries, the model has {n} Linear layers; give one density per layer "
            f"(or {n - 1}, then the output layer keeps all its weights)"
        )
    return [_check_density(d, f"densities[{i}]") for i, d in enumerate(ds)]


# ---------------------------------------------------------------------------- report
@dataclass(frozen=True)
class PruningReport:
    """What a pruning call did.

    Attributes
    ----------
    method : str
    density : float
        Requested density (for global methods: over the pruned layers).
    requested_densities : tuple of float, or None
        Per layer, for layer-wise methods.
    kept, sizes : tuple of int
        Weights kept and weights in all, per ``nn.Linear`` (after this call).
    achieved_densities : tuple of float
        ``kept / sizes`` per layer.
    overall_density : float
        Kept over all weights of all layers.
    seed : int or None
    seconds : float
    details : dict
        Method-specific facts (SiPP: batch size and draws; SNIP: batch size and loss).
    """

    method: str
    density: float
    requested_densities: tuple | None
    kept: tuple
    sizes: tuple
    achieved_densities: tuple
    overall_density: float
    seed: int | None
    seconds: float
    details: dict

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "density": self.density,
            "requested_densities": None if self.requested_densities is None else list(self.requested_densities),
            "kept": list(self.kept),
            "sizes": list(self.sizes),
            "achieved_densities": list(self.achieved_densities),
            "overall_density": self.overall_density,
            "seed": self.seed,
            "seconds": self.seconds,
            "details": dict(self.details),
        }

    def __str__(self) -> str:
        layers = ", ".join(f"{k}/{s} ({d:.4g})" for k, s, d in zip(self.kept, self.sizes, self.achieved_densities))
        return (f"{self.method} pruning at density {self.density:g}: kept {sum(self.kept)}/{sum(self.sizes)} "
                f"weights (density {self.overall_density:.4g}); per layer: {layers}")


def _report(model, method, density, requested, seed, t0, details=None) -> PruningReport:
    kept, sizes = [], []
    for m in _linears(model):
        if hasattr(m, "weight_mask"):
            kept.append(int((m.weight_mask != 0).sum()))
        else:
            kept.append(int((m.weight != 0).sum()))
        sizes.append(int(m.weight.numel()))
    return PruningReport(
        method=method,
        density=float(density),
        requested_densities=None if requested is None else tuple(float(d) for d in requested),
        kept=tuple(kept),
        sizes=tuple(sizes),
        achieved_densities=tuple(k / s for k, s in zip(kept, sizes)),
        overall_density=sum(kept) / sum(sizes),
        seed=seed,
        seconds=time.perf_counter() - t0,
        details=dict(details or {}),
    )


# ---------------------------------------------------------------------------- magnitude / random
def magnitude_prune(model, densities: Sequence[float]):
    """Layer-wise magnitude pruning: keep the ``k_l`` largest ``|w|`` of every layer.

    Parameters
    ----------
    model : torch.nn.Module
    densities : sequence of float
        One density per ``nn.Linear`` (a density of 1 leaves the layer unmasked);
        with one fewer entry the output layer keeps all weights.

    Returns the model (masked in place). The kept count follows :func:`kept_count`.
    Han et al., "Learning both weights and connections for efficient neural
    networks", NeurIPS 2015 (arXiv:1506.02626).
    """
    ds = _check_densities(model, densities)
    lins = _linears(model)
    layer_masks = {}
    for i, (m, d) in enumerate(zip(lins, ds)):
        if d >= 1.0:
            continue
        W = np.abs(_weight_np(m))
        layer_masks[i] = _top_k_mask(W, kept_count(d, W.size))
    _apply_masks(model, layer_masks)
    return model


def global_magnitude_prune(model, density: float, *, prune_output: bool = False):
    """Global magnitude pruning: one threshold on ``|w|`` over all pruned layers.

    Keeps the ``floor(density * total + 1/2)`` (at least one) largest ``|w|``
    among the weights of all hidden layers (and of the output layer with
    ``prune_output=True``); a layer may end up with very few or no weights.
    """
    d = _check_density(density)
    lins = _linears(model)
    idx = list(range(len(lins) if prune_output else len(lins) - 1))
    if not idx:
        raise InvalidNetworkError("the model has a single Linear layer; pass prune_output=True to prune it")
    Ws = [np.abs(_weight_np(lins[i])) for i in idx]
    flat = np.concatenate([W.reshape(-1) for W in Ws])
    keep = _top_k_mask(flat, kept_count(d, flat.size))
    layer_masks, off = {}, 0
    for i, W in zip(idx, Ws):
        layer_masks[i] = keep[off:off + W.size].reshape(W.shape)
        off += W.size
    _apply_masks(model, layer_masks)
    return model


def random_prune(model, densities: Sequence[float], *, seed: int = 0):
    """Keep a uniformly random subset of ``k_l`` weights per layer (the control of Cai et al.).

    Same per-layer counts as :func:`magnitude_prune` at the same densities.
    Weights already pruned are not drawn again while enough others remain.
    """
    ds = _check_densities(model, densities)
    rng = np.random.default_rng(_check_seed(seed))
    lins = _linears(model)
    layer_masks = {}
    for i, (m, d) in enumerate(zip(lins, ds)):
        if d >= 1.0:
            continue
        W = _weight_np(m)
        score = rng.random(W.shape) + (W != 0)  # weights still present come first
        layer_masks[i] = _top_k_mask(score, kept_count(d, W.size))
    _apply_masks(model, layer_masks)
    return model


def allocated_prune(model, density: float, *, allocation_kw: dict | None = None):
    """Layer-wise magnitude pruning at the per-layer densities of :func:`mipnet.sparsity.allocate_sparsity`.

    The allocation reads the widths ``(n0, ..., n_out)`` of the model's Linear
    chain and returns one density per weight matrix (output layer included)
    whose overall density is ``density``. Returns ``(model, densities)``.
    """
    from mipnet.sparsity import allocate_sparsity

    d = _check_density(density)
    lins = _linears(model)
    widths = [lins[0].in_features] + [m.out_features for m in lins]
    alloc = allocate_sparsity(widths, density=d, **(allocation_kw or {}))
    ds = [float(x) for x in alloc.densities]
    if len(ds) != len(lins):
        raise InvalidNetworkError(
            f"allocate_sparsity returned {len(ds)} densities for {len(lins)} Linear layers (widths {widths})"
        )
    ds = [min(1.0, max(x, 1e-12)) for x in ds]
    magnitude_prune(model, ds)
    return model, ds


# ---------------------------------------------------------------------------- SiPP
def sipp_sample_size(widths: Sequence[int], *, delta: float = 0.1) -> int:
    """``|S| = ceil(3 ln(8 eta eta* / delta))`` inputs for SiPP's sensitivities.

    ``eta``: number of neurons of all layers after the input (output included),
    ``eta*``: the largest of those layers; Baykal, Liebenwein et al.,
    arXiv:1910.05422.

    >>> sipp_sample_size([64, 32, 16, 10])
    36
    """
    try:
        ws = [int(w) for w in widths][1:]
        ok = bool(ws) and min(ws) >= 1 and 0 < float(delta) < 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise PruningError(f"need widths (n0, ..., n_out) of positive integers and 0 < delta < 1; "
                           f"got {widths!r}, {delta!r}")
    eta, eta_star = sum(ws), max(ws)
    return int(math.ceil(3.0 * math.log(8.0 * eta * eta_star / delta)))


def sipp_sensitivities(W: np.ndarray, A: np.ndarray, *, chunk_elems: int = 4_000_000) -> np.ndarray:
    """Empirical sensitivities of the weights of one layer.

    Parameters
    ----------
    W : array (n_out, n_in)
    A : array (m, n_in)
        The layer's inputs ``a(x)`` for the ``m`` points ``x`` of the batch S.

    Returns
    -------
    s : array (n_out, n_in), entries in [0, 1]

    Notes
    -----
    With ``z_ij(x) = w_ij a_j(x)``, split into positive and negative parts,

        s_ij = max_{x in S} z_ij(x)^+ / sum_k z_ik(x)^+   (weights pushing neuron i up)
        s_ij = max_{x in S} z_ij(x)^- / sum_k z_ik(x)^-   (weights pushing it down),

    with 0/0 = 0. For non-negative inputs (post-ReLU activations, images) the
    sign of ``z_ij`` is the sign of ``w_ij`` and this is the sensitivity of
    Baykal, Liebenwein et al., "SiPPing Neural Networks: Sensitivity-informed
    Provable Pruning of Neural Networks", arXiv:1910.05422 (SIAM J. Math. Data
    Sci. 2022), computed separately for positive and negative weights.
    """
    W = np.asarray(W, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    if W.ndim != 2 or A.ndim != 2 or A.shape[1] != W.shape[1]:
        raise PruningError(f"W must be (n_out, n_in) and A (m, n_in); got {W.shape} and {A.shape}")
    s = np.zeros_like(W)
    step = max(1, chunk_elems // max(W.size, 1))
    for i in range(0, A.shape[0], step):
        Z = A[i:i + step, None, :] * W[None, :, :]  # (m, n_out, n_in)
        P = np.maximum(Z, 0.0)
        N = np.maximum(-Z, 0.0)
        sp = P.sum(axis=2, keepdims=True)
        sn = N.sum(axis=2, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            rp = np.where(sp > 0, P / np.where(sp > 0, sp, 1.0), 0.0)
            rn = np.where(sn > 0, N / np.where(sn > 0, sn, 1.0), 0.0)
        s = np.maximum(s, np.maximum(rp, rn).max(axis=0))
    return s


def _layer_inputs(model, X) -> list[np.ndarray]:
    """The input of every nn.Linear for the batch X (float64 numpy)."""
    import torch

    lins = _linears(model)
    got: dict[int, np.ndarray] = {}
    handles = []
    for i, m in enumerate(lins):
        def hook(mod, inputs, i=i):
            got[i] = inputs[0].detach().reshape(inputs[0].shape[0], -1).to("cpu", torch.float64).numpy()
        handles.append(m.register_forward_pre_hook(hook))
    try:
        p = next(model.parameters())
        was = model.training
        model.eval()
        with torch.no_grad():
            model(torch.as_tensor(np.asarray(X), dtype=p.dtype, device=p.device))
        model.train(was)
    finally:
        for h in handles:
            h.remove()
    return [got[i] for i in range(len(lins))]


def _sipp_sample_layer(W, s, k, rng, max_draws):
    """Importance sampling of SiPP for one layer: returns (mask, scale, draws).

    Draw weights i.i.d. with probability ``p_ij = s_ij / sum s`` (equivalently:
    a neuron-sign group g with probability ``S_g / sum S`` and a weight in it with
    ``q_ij = s_ij / S_g``) until exactly ``k`` distinct weights are drawn. A kept
    weight is rescaled by ``count_ij / (m_g q_ij)``, ``m_g`` the draws that fell
    in its group, so that, given ``m_g``, the group's contribution is estimated
    without bias. If ``max_draws`` draws give fewer than ``k`` distinct weights
    (or fewer than ``k`` have positive sensitivity), the rest of the budget goes
    to the largest remaining sensitivities (then magnitudes), unscaled.
    """
    flat_s = s.reshape(-1)
    total = flat_s.sum()
    n = flat_s.size
    positive = int((flat_s > 0).sum())
    target = min(k, positive)
    draws = np.empty(0, dtype=np.int64)
    if target > 0:
        p = flat_s / total
        batch = max(4 * target, 1024)
        while True:
            draws = np.concatenate([draws, rng.choice(n, size=batch, p=p)])
            uniq, first = np.unique(draws, return_index=True)
            if uniq.size >= target:
                cut = np.sort(first)[target - 1]
                draws = draws[:cut + 1]
                break
            if draws.size >= max_draws:
                break
            batch = min(2 * batch, max_draws - draws.size)
    counts = np.bincount(draws, minlength=n).astype(np.float64)
    group = np.arange(n) // W.shape[1] * 2 + (W.reshape(-1) < 0)  # (neuron, sign of w)
    # group sensitivity totals S_g and draws m_g
    S_g = np.bincount(group, weights=flat_s, minlength=2 * W.shape[0])
    m_g = np.bincount(group[draws], minlength=2 * W.shape[0]).astype(np.float64)
    sampled = counts > 0
    scale = np.ones(n)
    q = flat_s[sampled] / S_g[group[sampled]]
    scale[sampled] = counts[sampled] / (m_g[group[sampled]] * q)
    mask = sampled.copy()
    short = k - int(mask.sum())
    if short > 0:
        rest = _top_k_mask(np.where(mask, -np.inf, flat_s), short, tiebreak=np.where(mask, -np.inf, np.abs(W.reshape(-1))))
        mask |= rest
    return mask.reshape(W.shape), scale.reshape(W.shape), int(draws.size)


def sipp_prune(model, densities: Sequence[float], data_batch, *, variant: str = "deterministic",
               seed: int = 0, max_draws_factor: int = 200):
    """SiPP: prune each layer by the empirical sensitivities of its weights.

    Parameters
    ----------
    model : torch.nn.Module
    densities : sequence of float
        One per ``nn.Linear`` (see :func:`magnitude_prune`).
    data_batch : array (m, n0)
        The batch S of raw inputs; :func:`sipp_sample_size` gives the
        recommended size.
    variant : {"deterministic", "random"}
        ``"deterministic"`` keeps the ``k_l`` largest sensitivities of each
        layer (ties by magnitude). ``"random"`` samples weights with probability
        proportional to sensitivity and rescales the kept ones by
        ``count / (m q)`` (see :func:`_sipp_sample_layer`), like SiPP's
        sampling scheme.
    seed : int
        Seeds the random variant.

    Returns
    -------
    (model, details) : the masked model and a dict with the draws per layer.

    Notes
    -----
    Sensitivities: :func:`sipp_sensitivities`. Baykal, Liebenwein, Gilitschenski,
    Feldman, Rus, "SiPPing Neural Networks", arXiv:1910.05422.
    """
    if variant not in ("deterministic", "random"):
        raise PruningError(f"variant must be 'deterministic' or 'random', got {variant!r}")
    ds = _check_densities(model, densities)
    X = _check_batch(model, data_batch, "data_batch")
    lins = _linears(model)
    inputs = _layer_inputs(model, X)
    rng = np.random.default_rng(_check_seed(seed))
    layer_masks, scales, draws = {}, {}, []
    for i, (m, d) in enumerate(zip(lins, ds)):
        if d >= 1.0:
            draws.append(0)
            continue
        W = _weight_np(m)
        s = sipp_sensitivities(W, inputs[i])
        k = kept_count(d, W.size)
        if variant == "deterministic":
            layer_masks[i] = _top_k_mask(s, k, tiebreak=np.abs(W))
            draws.append(0)
        else:
            mask, scale, nd = _sipp_sample_layer(W, s, k, rng, max_draws_factor * max(k, 1))
            layer_masks[i] = mask
            scales[i] = scale
            draws.append(nd)
    _apply_masks(model, layer_masks, scales)
    return model, {"variant": variant, "batch_size": int(X.shape[0]), "draws": draws}


# ---------------------------------------------------------------------------- SNIP
def snip_prune(model, density: float, data_batch, labels, *, prune_output: bool = False):
    """SNIP connection sensitivity: keep the global top-k of ``|w * dL/dw|``.

    ``L`` is the cross-entropy on one batch. Lee, Ajanthan, Torr, "SNIP:
    Single-shot network pruning based on connection sensitivity", ICLR 2019
    (arXiv:1810.02340); applied here to a trained model. Counting as in
    :func:`global_magnitude_prune`; ties by ``|w|``. Returns ``(model, loss)``.
    """
    import torch
    import torch.nn.functional as F

    d = _check_density(density)
    X = _check_batch(model, data_batch, "data_batch")
    y = np.array(labels)
    if y.ndim != 1 or y.shape[0] != X.shape[0] or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"labels must be {X.shape[0]} integers (one per row of data_batch), got shape {y.shape}")
    lins = _linears(model)
    idx = list(range(len(lins) if prune_output else len(lins) - 1))
    if not idx:
        raise InvalidNetworkError("the model has a single Linear layer; pass prune_output=True to prune it")
    p = next(model.parameters())
    params = [lins[i].weight_orig if hasattr(lins[i], "weight_orig") else lins[i].weight for i in idx]
    was = model.training
    model.eval()
    out = model(torch.as_tensor(X, dtype=p.dtype, device=p.device))
    loss = F.cross_entropy(out, torch.as_tensor(y, dtype=torch.int64, device=p.device))
    grads = torch.autograd.grad(loss, params)
    model.train(was)
    scores, mags = [], []
    for i, g in zip(idx, grads):
        W = _weight_np(lins[i])
        G = g.detach().to("cpu", torch.float64).numpy()
        scores.append(np.abs(W * G).reshape(-1))
        mags.append(np.abs(W).reshape(-1))
    flat = np.concatenate(scores)
    keep = _top_k_mask(flat, kept_count(d, flat.size), tiebreak=np.concatenate(mags))
    layer_masks, off = {}, 0
    for i in idx:
        size = lins[i].weight.numel()
        layer_masks[i] = keep[off:off + size].reshape(lins[i].weight.shape)
        off += size
    _apply_masks(model, layer_masks)
    return model, float(loss.detach())


def _check_batch(model, X, name) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    n0 = _linears(model)[0].in_features
    if X.ndim != 2:
        X = X.reshape(X.shape[0], -1) if X.ndim > 2 else X
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] != n0:
        raise DatasetError(f"{name} must be an array of shape (m, {n0}) with m >= 1, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise DatasetError(f"{name} contains NaN or inf")
    return X


# ---------------------------------------------------------------------------- dispatcher
def _data_arrays(data, name):
    if data is None:
        raise DatasetError(f"method {name!r} needs data: pass data=Dataset or (X, y)")
    if hasattr(data, "X_train"):
        return np.asarray(data.X_train), np.asarray(data.y_train)
    if isinstance(data, tuple) and len(data) == 2:
        return np.asarray(data[0]), np.asarray(data[1])
    return np.asarray(data), None


def prune(model, method: str, density: float, *, data=None, seed: int = 0, prune_output: bool = False,
          densities: Sequence[float] | None = None, batch_size: int | None = None,
          variant: str = "deterministic", delta: float = 0.1, allocation_kw: dict | None = None):
    """Prune ``model`` in place by one of :data:`PRUNING_METHODS`; returns ``(model, PruningReport)``.

    Parameters
    ----------
    model : torch.nn.Module
        An MLP taking raw inputs (e.g. from :func:`mipnet.nn.training.train`).
    method : {"magnitude", "global", "random", "sipp", "snip", "allocated"}
        ``magnitude``: layer-wise, same density in every hidden layer (or
        ``densities``); ``global``: one magnitude threshold; ``random``: random
        weights at the layer-wise densities; ``sipp``: SiPP sensitivities
        (``variant``); ``snip``: global ``|w dL/dw|``; ``allocated``: layer-wise
        magnitude at the densities of :func:`mipnet.sparsity.allocate_sparsity`.
    density : float in (0, 1]
        Fraction of weights kept.
    data : Dataset or (X, y) or X
        Needed by ``sipp`` (a random batch of ``batch_size`` or
        :func:`sipp_sample_size` training inputs) and ``snip`` (a random batch
        of ``batch_size``, default 128, with labels).
    seed : int
        Seeds the batch choice and the random methods.
    prune_output : bool
        Prune the output layer too (default: it keeps all weights).
    densities : sequence of float, optional
        Per-layer densities for ``magnitude``, ``random`` and ``sipp``,
        overriding the uniform ones.
    """
    if method not in PRUNING_METHODS:
        raise PruningError(f"method must be one of {', '.join(PRUNING_METHODS)}, got {method!r}")
    d = _check_density(density)
    seed = _check_seed(seed)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise PruningError(f"batch_size must be a positive integer, got {batch_size!r}")
    if densities is not None and method not in ("magnitude", "random", "sipp"):
        raise PruningError(f"per-layer densities apply to magnitude, random and sipp, not to {method!r}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    requested = None
    details: dict = {}
    if method in ("magnitude", "random", "sipp"):
        requested = (_check_densities(model, densities) if densities is not None
                     else layer_densities_uniform(model, d, prune_output=prune_output))
    if method == "magnitude":
        magnitude_prune(model, requested)
    elif method == "random":
        random_prune(model, requested, seed=seed)
    elif method == "global":
        global_magnitude_prune(model, d, prune_output=prune_output)
    elif method == "allocated":
        _, requested = allocated_prune(model, d, allocation_kw=allocation_kw)
    elif method == "sipp":
        X, _ = _data_arrays(data, method)
        lins = _linears(model)
        widths = [lins[0].in_features] + [m.out_features for m in lins]
        m = batch_size or sipp_sample_size(widths, delta=delta)
        m = min(m, X.shape[0])
        rows = np.sort(rng.choice(X.shape[0], size=m, replace=False))
        _, details = sipp_prune(model, requested, X[rows].reshape(m, -1), variant=variant, seed=seed)
    elif method == "snip":
        X, y = _data_arrays(data, method)
        if y is None:
            raise DatasetError("snip needs labels: pass data=Dataset or (X, y)")
        m = min(batch_size or 128, X.shape[0])
        rows = np.sort(rng.choice(X.shape[0], size=m, replace=False))
        _, loss = snip_prune(model, d, X[rows].reshape(m, -1), y[rows], prune_output=prune_output)
        details = {"batch_size": int(m), "loss": loss}
    report = _report(model, method, d, requested, seed, t0, details)
    log.info("%s", report)
    return model, report
