"""Optimised linear bounds: alpha-CROWN (Xu et al., ICLR 2021, arXiv:2011.13824).

CROWN (Zhang et al. NeurIPS 2018) bounds a linear function ``c . y^k`` of a layer's
pre-activations by pushing it back to the input through linear ReLU relaxations: an unstable
neuron (``L < 0 < U``) is bounded above by its chord ``U (y - L) / (U - L)`` and below by
``alpha y`` for a slope ``alpha`` in [0, 1]. *Any* slope in [0, 1] gives a valid bound, so the
slopes are free parameters: alpha-CROWN maximises the lower bound over them by projected
gradient ascent (Adam, then clamp to [0, 1]). As in the paper, each bounded quantity has its
own slopes: the lower bound and the upper bound (the lower bound of ``-y_i``) of every neuron
of layer k get separate slopes for every unstable neuron of every earlier layer, all of a
layer's quantities optimised in one batch (a tensor of shape (quantities, neurons) per earlier
layer). The gradient of the sum of the lower bounds is the gradient of each one (they do not
share slopes).

Layer by layer: the bounds of layer k use the (already optimised) bounds of the layers before
it, which fix the chords and the set of unstable neurons; only neurons left unstable by the
bounds known so far are bounded (a stable neuron's sign is settled and its relaxation exact).

Soundness. The optimisation runs in float64, in numpy on the CPU (the gradient derived by hand,
:class:`_Chain`) or in torch with autograd (``device="cuda"``, or ``backend="torch"``), but its
result is not trusted: the best slopes found are clamped to [0, 1] and the bound they give is
re-evaluated in float64 numpy, widened by a bound on its rounding error relative to the
magnitudes it multiplies (the accounting of :mod:`mipnet.bounds.symbolic`), and intersected
with the interval and symbolic bounds. Because the iteration-0 slopes are CROWN's, and the best
iterate per quantity is kept (by its float64 value), the result is never looser than CROWN with
the same intermediate bounds, up to the difference of the two rounding widenings (a few ulps of
the magnitudes summed: the final evaluation does not re-evaluate CROWN's slopes beside the best
ones). The
final minimisation over the input uses the domain's box (sound for a polytope domain, which lies
inside it).

Also here: :func:`difference_network` (``f - g`` as one ReLU network over a shared input, for
the equivalence engine), :func:`alpha_difference_bounds` (bounds on ``f(x) - g(x)``) and
:func:`alpha_output_bounds` (bounds on ``C f(x)``).

torch is imported inside the functions that need it (``import mipnet.bounds`` stays light, and
alpha-CROWN on the CPU does not load it); this module is the only one below :mod:`mipnet.nn`
that uses torch, as a tensor library only.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from mipnet.bounds.interval import UNIT_ROUNDOFF, gamma, interval_layer
from mipnet.bounds.symbolic import symbolic_layers
from mipnet.core.bounds import Bounds, LayerBounds, NeuronState
from mipnet.core.domain import Domain, as_domain
from mipnet.core.errors import DeviceUnavailableError, InvalidArgumentError, InvalidNetworkError
from mipnet.core.network import Network

__all__ = [
    "AlphaOptions",
    "alpha_bounds",
    "alpha_layers",
    "alpha_output_bounds",
    "alpha_difference_bounds",
    "alpha_spec_bounds",
    "difference_network",
    "crown_lower",
    "SplitBounds",
    "split_lower_bounds",
    "envelope_lines",
    "optimise_envelope",
]

_TINY = float(np.finfo(np.float64).tiny)
#: Row-wise dot products (numpy >= 2 has a ufunc for them).
_rowdot = getattr(np, "vecdot", None) or (lambda a, b: np.einsum("ij,ij->i", a, b))


#: the output layer's ``rel_tol`` at least, under ``stop_on_states`` (see :class:`AlphaOptions`)
FAST_OUTPUT_REL_TOL = 1e-3


@dataclass(frozen=True)
class AlphaOptions:
    """Settings of the slope optimisation.

    iterations : projected-gradient steps per layer (0: plain CROWN with the bounds so far).
    lr : Adam's step size on the slopes (they live in [0, 1]).
    lr_decay : the step size is multiplied by this after every step.
    patience, rel_tol : every ``patience`` steps, a bounded quantity whose best bound gained less
        than ``rel_tol`` times its magnitude (or its gain so far) leaves the batch.
    device : "cpu", "cuda" or None (cpu).
    max_batch : quantities optimised together at most (larger layers are split into chunks).
    threads : torch CPU threads during a torch optimisation (default 1: the tensors are small, and
        torch's thread pool next to numpy's BLAS threads ran 5-20x slower on 2 cores); the numpy
        optimiser uses numpy's BLAS as configured.
    stop_on_states : for the bounds of hidden neurons (pairs of rows ``y_i``, ``-y_i``), stop a
        batch as soon as ``patience`` steps pass without a new neuron settled (a lower bound
        turning positive): when only the neurons' states matter, not their widths. The output
        layer's rows keep the per-row rule, with ``rel_tol`` at least :data:`FAST_OUTPUT_REL_TOL`
        (on the nets of benchmarks/bench_bounds.py: output widths within 0.05 % of 1e-4's, and
        the last rows of a batch no longer run alone for 5-10 steps).
    backend : "numpy", "torch" or None (numpy on the CPU, torch on CUDA). The numpy path runs the
        same projected Adam with the gradient derived by hand (:class:`_Chain`): no autograd
        overhead per step (about 0.6 ms per backward pass in torch on small nets).
    deadline : a ``time.perf_counter()`` value (an analysis's time limit) after which no more
        steps run: the best slopes so far are evaluated soundly as usual.
    """

    iterations: int = 25
    lr: float = 0.25
    lr_decay: float = 0.97
    patience: int = 5
    rel_tol: float = 1e-4
    device: Optional[str] = None
    max_batch: int = 4096
    threads: Optional[int] = 1
    stop_on_states: bool = False
    backend: Optional[str] = None
    deadline: Optional[float] = None

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def __post_init__(self) -> None:
        if not (isinstance(self.iterations, (int, np.integer)) and self.iterations >= 0):
            raise InvalidArgumentError(f"iterations must be an integer >= 0, got {self.iterations!r}")
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise InvalidArgumentError(f"lr must be > 0, got {self.lr!r}")
        if not (0 < self.lr_decay <= 1):
            raise InvalidArgumentError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if not (isinstance(self.max_batch, (int, np.integer)) and self.max_batch >= 1):
            raise InvalidArgumentError(f"max_batch must be an integer >= 1, got {self.max_batch!r}")
        if self.threads is not None and not (isinstance(self.threads, (int, np.integer)) and self.threads >= 1):
            raise InvalidArgumentError(f"threads must be an integer >= 1 or None, got {self.threads!r}")
        if self.device not in (None, "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise InvalidArgumentError(f"device must be 'cpu', 'cuda' or None, got {self.device!r}")
        if self.backend not in (None, "numpy", "torch"):
            raise InvalidArgumentError(f"backend must be 'numpy', 'torch' or None, got {self.backend!r}")
        if self.backend == "numpy" and self.device not in (None, "cpu"):
            raise InvalidArgumentError(f"backend 'numpy' runs on the CPU, not on device {self.device!r}")


# ---------------------------------------------------------------------------- relaxations
@dataclass(frozen=True, eq=False)
class _Relax:
    """The fixed part of one hidden layer's relaxation (from its pre-activation bounds).

    ``sl``: the lower slope of stable neurons (1 active, 0 inactive) and CROWN's adaptive
    choice for unstable ones; ``su, tu``: upper line ``su y + tu``; ``uns``: indices of the
    unstable neurons (whose lower slope is free); ``e_line``: how far the float64 chord may lie
    below the exact one; ``ymag``: a bound on ``|y|``; ``wmag``: ``|W| |h_prev| + |b|``.
    """

    sl: np.ndarray
    su: np.ndarray
    tu: np.ndarray
    uns: np.ndarray
    e_line: np.ndarray
    ymag: np.ndarray
    wmag: np.ndarray


def _relaxation(lb: LayerBounds, W: np.ndarray, b: np.ndarray, hmag_prev: np.ndarray) -> _Relax:
    L, U = lb.lower, lb.upper
    states = lb.states()
    unstable = states == NeuronState.UNSTABLE
    active = states == NeuronState.ACTIVE
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(unstable, U / np.where(unstable, U - L, 1.0), 0.0)
    su = np.where(unstable, s, np.where(active, 1.0, 0.0))
    tu = np.where(unstable, -s * L, 0.0)
    sl = np.where(active | (unstable & (U >= -L)), 1.0, 0.0)
    ymag = np.maximum(np.abs(L), np.abs(U))
    # s = U / (U - L) and t = -s L carry three roundings: the line moves by <= 3 gamma_3 s m on |y| <= m
    e_line = np.where(unstable, 4.0 * gamma(3) * su * ymag, 0.0)
    wmag = np.abs(W) @ hmag_prev + np.abs(b)
    return _Relax(sl, su, tu, np.flatnonzero(unstable), e_line, ymag, wmag)


def _relaxations(net, layers, k, xl, xu):
    """The relaxations of the hidden layers before layer k from their bounds ``layers[:k]``, and
    the bound on ``|h^{k-1}|`` (``|x|`` for k = 0)."""
    relax, hmag = [], np.maximum(np.abs(xl), np.abs(xu))
    for j in range(k):
        W, b = net.layers[j]
        relax.append(_relaxation(layers[j], W, b, hmag))
        hmag = np.maximum(layers[j].upper, 0.0)
    return relax, hmag


def _is_signed_selection(C: np.ndarray) -> bool:
    """Every row has exactly one non-zero, +1 or -1 (then ``C W`` and ``C b`` are exact)."""
    nz = C != 0
    return bool(np.all(nz.sum(axis=1) == 1) and np.all(np.abs(C[nz]) == 1.0))


# ---------------------------------------------------------------------------- the sound evaluation
def crown_lower(net: Network, layers, k: int, C: np.ndarray, slopes, domain: Domain) -> np.ndarray:
    """Sound lower bounds of ``C y^k`` over the domain's box, in float64 numpy.

    ``layers[j]`` (j < k) are sound pre-activation bounds of the hidden layers before layer k
    (0-based index of the affine layer). ``slopes[j]`` has shape (len(C), #unstable of layer j):
    the lower-relaxation slope of each unstable neuron for each row of C (clamped to [0, 1]
    here); None uses CROWN's adaptive slopes. The result is widened by a bound on its float64
    rounding error (module docstring), so it holds for the real-valued network.
    """
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    xl, xu = domain.lower, domain.upper
    relax, hmag = _relaxations(net, layers, k, xl, xu)
    return _crown_lower_np(net, relax, k, C, slopes, xl, xu, hmag)


def _crown_lower_np(net, relax, k, C, slopes, xl, xu, hmag_prev) -> np.ndarray:
    u = UNIT_ROUNDOFF
    q = C.shape[0]
    Lam, c, err = _lower_start(net, k, C, hmag_prev)
    for j in range(k - 1, -1, -1):
        r = relax[j]
        g = gamma(r.su.size + 1)
        pos, neg = np.maximum(Lam, 0.0), np.minimum(Lam, 0.0)
        # negative coefficients take the upper line su y + tu, positive ones the lower line sl y
        err += -neg @ (r.e_line + g * r.tu) + g * np.abs(c)
        c = c + neg @ r.tu
        if slopes is not None and slopes[j] is not None and r.uns.size:
            S = np.broadcast_to(r.sl, (q, r.sl.size)).copy()
            S[:, r.uns] = np.clip(np.asarray(slopes[j], dtype=np.float64), 0.0, 1.0)
            Lam = pos * S + neg * r.su
        else:
            Lam = pos * r.sl + neg * r.su
        # y^j = W_j h^{j-1} + b_j: the products Lambda W_j and Lambda b_j, and the rounded Lambda
        step = u * r.ymag + g * r.wmag
        err += np.abs(Lam) @ step + g * np.abs(c)
        Wj, bj = net.layers[j]
        c = c + Lam @ bj
        Lam = Lam @ Wj
    return _lower_end(Lam, c, err, xl, xu)


def _lower_start(net, k, C, hmag_prev):
    """``(C W_k, C b_k, rounding error)``: the start of a sound lower bound of ``C y^k`` (the
    products are exact for a signed selection; else their error on ``|h^{k-1}| <= hmag_prev``)."""
    W, b = net.layers[k]
    err = np.zeros(C.shape[0])
    if not _is_signed_selection(C):
        err += gamma(W.shape[0]) * (np.abs(C) @ (np.abs(W) @ hmag_prev + np.abs(b)))
    return C @ W, C @ b, err


def _lower_end(Lam, c, err, xl, xu):
    """The minimum of ``Lam x + c`` over the box, less twice the accumulated error ``err`` (the
    error sums are rounded too) and its last product's error."""
    g0 = gamma(xl.size + 2)
    lo = np.maximum(Lam, 0.0) @ xl + np.minimum(Lam, 0.0) @ xu + c
    err = err + g0 * (np.abs(Lam) @ np.maximum(np.abs(xl), np.abs(xu)) + np.abs(c))
    return lo - 2.0 * err - np.where(err > 0, _TINY, 0.0)


# ---------------------------------------------------------------------------- the optimisation
def _torch_device(device):
    import torch

    if device is None or device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(f"device {device!r} was asked for but CUDA is not available")
    return torch.device(device)


@contextlib.contextmanager
def _torch_threads(opts: AlphaOptions):
    """torch's CPU thread count set to ``opts.threads`` for the block (restored after)."""
    if opts.threads is None or opts.iterations == 0:
        yield
        return
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(int(opts.threads))
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class _Schedule:
    """When a batch of rows stops and which rows leave it, for both optimisers.

    Every ``patience`` steps: with ``stop_on_states``, the batch stops when no row's best bound
    turned positive since the last check; and a row whose best bound gained less than
    ``rel_tol`` times its magnitude (or its gain since iteration 0) leaves the batch.
    """

    def __init__(self, opts: AlphaOptions, first: np.ndarray):
        self.opts = opts
        self.first = first.copy()  # the bounds at iteration 0 (CROWN's slopes or the warm start)
        self.mark = first.copy()  # the best bounds at the last check
        self.settled = int((first > 0).sum())  # rows with a positive bound at the last check

    def due(self, it: int) -> bool:
        return it > 0 and it % self.opts.patience == 0

    def keep(self, best: np.ndarray, rows: np.ndarray) -> Optional[np.ndarray]:
        """None: all the batch's rows go on; else which of them do (none: stop the batch)."""
        if self.opts.stop_on_states:
            settled = int((best > 0).sum())
            if settled <= self.settled:
                return np.zeros(rows.size, dtype=bool)
            self.settled = settled
        cur = best[rows]
        scale = np.maximum(np.abs(cur), np.abs(cur - self.first[rows]))
        keep = (cur - self.mark[rows]) > self.opts.rel_tol * scale + 1e-300
        self.mark[rows] = cur
        return None if keep.all() else keep


def _optimise_slopes_torch(net, relax, k, C, xl, xu, opts: AlphaOptions, init_full=None):
    """Best slopes found per row of C (list per hidden layer j < k of arrays (q, #unstable_j)).

    Lower bounds of ``C y^k`` are maximised by Adam on the slopes, projected to [0, 1]; the
    best iterate of each row is kept (iteration 0 is CROWN's adaptive choice). Every
    ``patience`` steps, rows whose best bound gained less than ``rel_tol`` (relative to the
    bound's magnitude and to its gain so far) leave the batch, so the steps get cheaper as
    rows converge; each row's result depends on that row alone. No rounding analysis here:
    :func:`_crown_lower_np` re-evaluates the result.
    """
    import torch

    free = [j for j in range(k) if relax[j].uns.size]
    if not free or opts.iterations == 0:
        return None
    dev = _torch_device(opts.device)
    dt = torch.float64
    q = C.shape[0]
    T = lambda a: torch.as_tensor(np.array(a, dtype=np.float64), dtype=dt, device=dev)  # noqa: E731
    W, b = net.layers[k]
    Lam0 = T(C @ W)
    c0 = T(C @ b)
    Ws = [T(net.layers[j][0]) for j in range(k)]
    bs = [T(net.layers[j][1]) for j in range(k)]
    sl = [T(r.sl) for r in relax]
    su = [T(r.su) for r in relax]
    tu = [T(r.tu) for r in relax]
    uns = [torch.as_tensor(r.uns, dtype=torch.long, device=dev) for r in relax]
    center, radius = T((xl + xu) / 2), T((xu - xl) / 2)
    if init_full is None:
        init = {j: T(np.broadcast_to(relax[j].sl[relax[j].uns], (q, relax[j].uns.size))) for j in free}
    else:
        init = {j: T(np.clip(np.asarray(init_full[j], dtype=np.float64)[:, relax[j].uns], 0.0, 1.0)) for j in free}

    def bound(Lam, c, alphas):
        n = Lam.shape[0]
        for j in range(k - 1, -1, -1):
            pos, neg = Lam.clamp(min=0), Lam.clamp(max=0)
            c = c + neg @ tu[j]
            if j in alphas:
                S = sl[j].expand(n, -1).index_copy(1, uns[j], alphas[j])
                Lam = pos * S + neg * su[j]
            else:
                Lam = pos * sl[j] + neg * su[j]
            c = c + Lam @ bs[j]
            Lam = Lam @ Ws[j]
        return Lam @ center - Lam.abs() @ radius + c

    # Adam (Kingma and Ba 2015) by hand: torch.optim's first use imports its compiler stack (seconds)
    beta1, beta2, eps = 0.9, 0.999, 1e-12
    rows = torch.arange(q, device=dev)  # the rows still in the batch
    alphas = {j: init[j].clone().requires_grad_(True) for j in free}
    m1 = {j: torch.zeros_like(init[j]) for j in free}
    m2 = {j: torch.zeros_like(init[j]) for j in free}
    best = torch.full((q,), -np.inf, dtype=dt, device=dev)
    best_alpha = {j: init[j].clone() for j in free}
    sched = None
    lr = opts.lr
    for it in range(opts.iterations + 1):
        lo = bound(Lam0[rows], c0[rows], alphas)
        with torch.no_grad():
            better = lo > best[rows]
            if bool(better.any()):
                idx = rows[better]
                best[idx] = lo[better]
                for j in free:
                    best_alpha[j][idx] = alphas[j][better].detach()
            if sched is None:
                sched = _Schedule(opts, best.cpu().numpy())
            if it == opts.iterations or opts.out_of_time():
                break
            if sched.due(it):
                keep = sched.keep(best.cpu().numpy(), rows.cpu().numpy())
                if keep is not None:
                    if not keep.any():
                        break
                    keep = torch.as_tensor(keep, device=dev)
                    rows = rows[keep]
                    alphas = {j: alphas[j].detach()[keep].clone().requires_grad_(True) for j in free}
                    m1 = {j: m1[j][keep] for j in free}
                    m2 = {j: m2[j][keep] for j in free}
                    lo = None
        if lo is None:
            lo = bound(Lam0[rows], c0[rows], alphas)
        params = [alphas[j] for j in free]
        grads = torch.autograd.grad(-lo.sum(), params)
        with torch.no_grad():
            t = it + 1
            for j, g in zip(free, grads):
                a, ma, va = alphas[j], m1[j], m2[j]
                ma.mul_(beta1).add_(g, alpha=1 - beta1)
                va.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (va / (1 - beta2 ** t)).sqrt_().add_(eps)
                a.addcdiv_(ma, denom, value=-lr / (1 - beta1 ** t))
                a.clamp_(0.0, 1.0)
            lr *= opts.lr_decay
    return [best_alpha[j].cpu().numpy() if j in best_alpha else None for j in range(k)]


def _optimise_slopes(net, relax, k, C, xl, xu, opts: AlphaOptions, init_full=None, cache=None):
    """Best slopes per row of C: :func:`_optimise_slopes_np` or :func:`_optimise_slopes_torch`
    by ``opts.backend`` (None: numpy on the CPU, torch on CUDA). On the CPU numpy was faster on
    every net measured, from 1.1x (784-400-400-10) to 5x (64-input nets; benchmarks/RESULTS.md,
    "Bounds", and benchmarks/bench_alpha_backends.py)."""
    if opts.iterations == 0 or not any(relax[j].uns.size for j in range(k)):
        return None
    if (opts.backend or ("numpy" if opts.device in (None, "cpu") else "torch")) == "numpy":
        return _optimise_slopes_np(net, relax, k, C, xl, xu, opts, init_full, cache)
    with _torch_threads(opts):
        return _optimise_slopes_torch(net, relax, k, C, xl, xu, opts, init_full)


class _Chain:
    """The CROWN bound of rows of ``C y^k`` as a function of the lower slopes, and its gradient,
    in numpy (alpha-CROWN, Xu et al. ICLR 2021, arXiv:2011.13824, Sec. 3; CROWN: Zhang et al.
    NeurIPS 2018).

    The bound of a row is a backward pass from ``Lam = C W_k``, ``c = C b_k``: at hidden layer j,
    with ``Lam`` the coefficients of ``h^j``, ``D = S_j`` (the lower slopes: alpha on unstable
    neurons) where ``Lam > 0`` and ``su_j`` elsewhere, and ``T = tu_j`` where ``Lam <= 0``, 0
    elsewhere,

        c += (D Lam) . b_j + Lam . T,    Lam <- (D Lam) W_j,

    and finally ``lo = Lam . x* + c`` with ``x* = center - sign(Lam) radius`` (the box's
    minimiser). With the signs fixed the bound is linear in every ``D Lam``, so its gradient is a
    forward pass of the minimiser through the chosen relaxation lines: ``yhat^0 = W_0 x* + b_0``,
    ``hhat^j = D yhat^j + T``, ``yhat^{j+1} = W_{j+1} hhat^j + b_{j+1}``, and

        d lo / d alpha_{j,i} = max(Lam_{j,i}, 0) yhat^j_i

    (the coefficient of neuron i at its lower line times the relaxed pre-activation the bound's
    minimiser induces there). This is what autograd computes on the torch path (tested to 1e-8).
    The same forward pass gives the bound itself, ``lo = c_top + Lam_{k-2} . hhat^{k-2}`` (the
    relaxed network's linear function at its minimiser), so the backward pass only carries the
    coefficients, not the constant.

    Inactive neurons (both lines 0) are left out of the weights, and each layer's unstable
    neurons come first (their slopes are the first ``nu[j]`` columns, in ``relax[j].uns`` order):
    only those columns change from step to step. The top layer's coefficients ``C W_k`` do not
    depend on the slopes, so their active part is multiplied through once (:meth:`start`).
    No rounding analysis: :func:`_crown_lower_np` re-evaluates whatever slopes come out.
    """

    def __init__(self, net, relax, k, xl, xu, cache=None):
        self.k = k
        self.nu = [r.uns.size for r in relax[:k]]
        self.off = np.concatenate([[0], np.cumsum(self.nu)]).astype(int)
        layers = [_Chain.layer(net, relax, j, cache) for j in range(k)]
        self.Ws, self.WTs, self.bs, self.su, self.tu = [], [], [], [], []
        for j, (_, Wj, WTj, WTu, bj, su, tu, _) in enumerate(layers):
            n = self.nu[j]
            if j < k - 1:
                self.Ws.append(Wj)
                self.WTs.append(WTj)
                self.bs.append(bj)
            else:  # only the unstable rows of the top layer change with the slopes
                self.Ws.append(Wj[:n])
                self.WTs.append(WTu)
                self.bs.append(bj[:n])
                self.Wtop_act, self.btop_act = Wj[n:], bj[n:]
            self.su.append(su)
            self.tu.append(tu)
        self.a0 = np.concatenate([lay[7] for lay in layers])  # CROWN's slopes
        self.Wk = net.layers[k][0][:, layers[k - 1][0]]
        self.bk = net.layers[k][1]
        self.center, self.radius = (xl + xu) / 2, (xu - xl) / 2
        # the layers below the top one, downwards (coefficients) and upwards (the minimiser)
        self.down = [(j, self.nu[j], self.Ws[j], self.su[j], self.tu[j]) for j in range(k - 2, -1, -1)]
        self.up = [(j, self.nu[j], self.WTs[j], self.bs[j]) for j in range(k - 1)]

    @staticmethod
    def layer(net, relax, j, cache=None):
        """Hidden layer j without its inactive neurons, unstable ones first: (order, W, W^T, the
        unstable rows' W^T, b, and su, tu and CROWN's lower slope of the unstable neurons), kept
        in ``cache`` (a dict) for the same relaxations."""
        key = (relax[j], relax[j - 1] if j else None)
        hit = cache.get(j) if cache is not None else None
        if hit is not None and hit[0][0] is key[0] and hit[0][1] is key[1]:
            return hit[1]
        r = relax[j]
        rest = r.su > 0
        rest[r.uns] = False
        order = np.concatenate([r.uns, np.flatnonzero(rest)])
        Wj, bj = net.layers[j]
        Wj = np.ascontiguousarray(Wj[order] if j == 0 else Wj[order][:, _Chain.layer(net, relax, j - 1, cache)[0]])
        n = r.uns.size
        out = (order, Wj, np.ascontiguousarray(Wj.T), np.ascontiguousarray(Wj[:n].T), bj[order],
               r.su[order][:n], r.tu[order][:n], r.sl[r.uns])
        if cache is not None:
            cache[j] = (key, out)
        return out

    def start(self, C):
        """The slope-free part of the rows of C: at the top hidden layer, the positive parts of
        the unstable neurons' coefficients and the negative parts times their upper slopes, the
        active neurons' coefficients multiplied through ``W_{k-1}``, and the constant (a list of
        row arrays)."""
        j, n = self.k - 1, self.nu[self.k - 1]
        Lam = C @ self.Wk
        pos = np.maximum(Lam[:, :n], 0.0)
        neg = Lam[:, :n] - pos
        fixed = Lam[:, n:] @ self.Wtop_act
        c = C @ self.bk + Lam[:, n:] @ self.btop_act + neg @ self.tu[j]
        return [pos, neg * self.su[j], fixed, c]

    def views(self, A):
        """Per hidden layer, the columns of A (q, sum of nu) that hold its slopes."""
        return [A[:, self.off[j]:self.off[j + 1]] for j in range(self.k)]

    def evaluate(self, rows, Av, Gv):
        """The bounds of the rows (from :meth:`start`) with the slopes ``Av`` (:meth:`views`);
        their gradient in the slopes is written into ``Gv`` (the same views of another array)."""
        pos, negsu, Lam, c = rows
        k, nu = self.k, self.nu
        top = k - 1
        tape = [None] * k
        if nu[top]:
            Lt = pos * Av[top]
            Lt += negsu
            Lam = Lam + Lt @ self.Ws[top]
            c = c + Lt @ self.bs[top]
        Lam_mid = Lam  # the coefficients of h^{k-2} (of x for k = 1)
        if k > 1 and nu[k - 2]:
            Lam = Lam.copy()  # relaxed in place below
        for j, n, W, su, tu in self.down:  # backward: the coefficients and the lines they take
            if n:
                Lu = Lam[:, :n]
                mask = Lu > 0
                D = np.where(mask, Av[j], su)  # the slope each coefficient takes
                T = np.where(mask, 0.0, tu)  # and the intercept
                tape[j] = (np.maximum(Lu, 0.0), D, T)
                Lu *= D
            Lam = Lam @ W
        Y = self.center - np.sign(Lam) * self.radius  # the box's minimiser of the final function
        for j, n, WT, b in self.up:  # forward: the minimiser through the chosen lines
            Y = Y @ WT
            Y += b
            if n:
                Yu = Y[:, :n]
                p, D, T = tape[j]
                np.multiply(p, Yu, out=Gv[j])
                Yu *= D
                Yu += T
        if nu[top]:
            np.multiply(pos, Y @ self.WTs[top] + self.bs[top], out=Gv[top])
        return _rowdot(Lam_mid, Y) + c


def _crown_gradient_np(net, relax, k, C, slopes, xl, xu):
    """The float64 CROWN bound of the rows of ``C y^k`` with the given slopes (per layer (q,
    #unstable) or None), and its gradient in the slopes (per layer, None where none is free)."""
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    ch = _Chain(net, relax, k, xl, xu)
    q = C.shape[0]
    A = np.concatenate([np.broadcast_to(relax[j].sl[relax[j].uns], (q, ch.nu[j]))
                        if slopes is None or slopes[j] is None else np.asarray(slopes[j], dtype=np.float64)
                        for j in range(k)], axis=1)
    G = np.zeros(A.shape)
    lo = ch.evaluate(ch.start(C), ch.views(A), ch.views(G))
    return lo, [G[:, ch.off[j]:ch.off[j + 1]] if ch.nu[j] else None for j in range(k)]


def _optimise_slopes_np(net, relax, k, C, xl, xu, opts: AlphaOptions, init_full=None, cache=None):
    """:func:`_optimise_slopes_torch` in numpy: the same projected Adam, best-iterate bookkeeping
    and dropping of converged rows, with the gradient of :class:`_Chain` (derived by hand)
    instead of autograd, which costs about 0.6 ms per backward pass in torch on small nets.
    ``cache``: a dict kept across the layers of one network (:meth:`_Chain.layer`)."""
    ch = _Chain(net, relax, k, xl, xu, cache)
    nu, off = ch.nu, ch.off
    free = [j for j in range(k) if nu[j]]
    if not free or opts.iterations == 0:
        return None
    q = C.shape[0]
    if init_full is None:
        A = np.repeat(ch.a0[None], q, axis=0)
    else:
        A = np.concatenate([np.clip(np.asarray(init_full[j], dtype=np.float64)[:, relax[j].uns], 0.0, 1.0)
                            for j in range(k)], axis=1)
    state = ch.start(C)
    beta1, beta2, eps = 0.9, 0.999, 1e-12
    rows = np.arange(q)  # the rows still in the batch
    # Adam's moments without their (1 - beta) factors, which the step size absorbs
    m1, m2, G, step = np.zeros_like(A), np.zeros_like(A), np.zeros_like(A), np.zeros_like(A)
    Av, Gv = ch.views(A), ch.views(G)
    best = np.full(q, -np.inf)  # of all rows
    best_A = A.copy()
    cur, cur_A = best.copy(), best_A.copy()  # of the rows in the batch
    sched = None
    lr = opts.lr
    for it in range(opts.iterations + 1):
        lo = ch.evaluate(state, Av, Gv)  # and G: its gradient, which Adam below ascends
        better = lo > cur
        np.maximum(cur, lo, out=cur)
        np.copyto(cur_A, A, where=better[:, None])
        if sched is None:
            sched = _Schedule(opts, cur)
        if it == opts.iterations or opts.out_of_time():
            break
        if it % opts.patience == 0 and sched.due(it):
            best[rows], best_A[rows] = cur, cur_A
            keep = sched.keep(best, rows)
            if keep is not None:
                if not keep.any():
                    break
                rows = rows[keep]
                A, m1, m2, G, step = A[keep], m1[keep], m2[keep], G[keep], step[keep]
                cur, cur_A = cur[keep], cur_A[keep]
                Av, Gv = ch.views(A), ch.views(G)
                state = [v[keep] for v in state]
        t = it + 1
        m1 *= beta1
        m1 += G
        m2 *= beta2
        np.multiply(G, G, out=step)
        m2 += step
        r = math.sqrt((1 - beta2 ** t) / (1 - beta2))
        np.sqrt(m2, out=step)
        step += eps * r
        np.divide(m1, step, out=step)
        step *= lr * (1 - beta1) / (1 - beta1 ** t) * r
        A += step
        np.minimum(np.maximum(A, 0.0, out=A), 1.0, out=A)
        lr *= opts.lr_decay
    best[rows], best_A[rows] = cur, cur_A
    return [best_A[:, off[j]:off[j + 1]] if nu[j] else None for j in range(k)]


def _bound_rows(net, relax, k, C, xl, xu, hmag_prev, opts: AlphaOptions, cache=None) -> np.ndarray:
    """Sound lower bounds of ``C y^k`` with optimised slopes, in chunks of ``opts.max_batch`` rows
    (``cache``: see :meth:`_Chain.layer`)."""
    out = np.empty(C.shape[0])
    for s in range(0, C.shape[0], opts.max_batch):
        Cs = C[s:s + opts.max_batch]
        q = Cs.shape[0]
        slopes = _optimise_slopes(net, relax, k, Cs, xl, xu, opts, cache=cache)
        # the best iterate counts iteration 0 (CROWN's slopes): a row keeps other slopes only where
        # they gave a larger float64 bound, so no second evaluation with CROWN's slopes is needed
        lo = _crown_lower_np(net, relax, k, Cs, slopes, xl, xu, hmag_prev)
        out[s:s + q] = lo
    return out


def _options(options, kw) -> AlphaOptions:
    if options is not None and kw:
        raise InvalidArgumentError("give either options= or keyword settings, not both")
    if options is None:
        return AlphaOptions(**kw)
    if not isinstance(options, AlphaOptions):
        raise InvalidArgumentError(f"options must be an AlphaOptions, got {type(options).__name__}")
    return options


def alpha_layers(net: Network, domain: Domain, *, initial=None, output: bool = True,
                 options: Optional[AlphaOptions] = None, only_unstable: bool = True) -> list[LayerBounds]:
    """alpha-CROWN bounds of every affine layer on a validated domain (see :func:`alpha_bounds`)."""
    opts = options or AlphaOptions()
    if initial is not None:
        base = list(initial)
    elif output and opts.iterations and len(net.layers) > 1 and domain.is_box:
        # every output row is optimised below: the symbolic pass need not bound the output layer
        # (on a box: elsewhere symbolic_layers also takes the domain's support, which this does not)
        base = symbolic_layers(Network.from_layers(net.layers[:-1]), domain) + [None]
    else:
        base = symbolic_layers(net, domain)
    xl, xu = domain.lower, domain.upper
    layers: list[LayerBounds] = []
    relax: list[_Relax] = []
    cache: dict = {}  # the compressed layers of the numpy optimiser, shared by the layers' batches
    hmag = np.maximum(np.abs(xl), np.abs(xu))
    n_layers = len(net.layers)
    for k, (W, b) in enumerate(net.layers):
        if base[k] is None:
            lo, hi = np.full(W.shape[0], -np.inf), np.full(W.shape[0], np.inf)
        else:
            lo, hi = base[k].lower.copy(), base[k].upper.copy()
        if k > 0:  # intervals from the optimised layer before
            ia_lo, ia_hi = interval_layer(W, b, *layers[k - 1].post_activation())
            lo, hi = np.maximum(lo, ia_lo), np.minimum(hi, ia_hi)
            hi = np.maximum(hi, lo)
        is_output = k == n_layers - 1
        if k > 0 and (output or not is_output):
            if is_output or not only_unstable:
                idx = np.arange(W.shape[0])
            else:
                idx = np.flatnonzero((lo < 0) & (hi > 0))
            if idx.size:
                n = idx.size
                C = np.zeros((2 * n, W.shape[0]))
                C[np.arange(n), idx] = 1.0
                C[n + np.arange(n), idx] = -1.0
                # the output layer's widths matter: stop_on_states is for hidden neurons only
                o = opts
                if is_output and opts.stop_on_states:
                    o = replace(opts, stop_on_states=False, rel_tol=max(opts.rel_tol, FAST_OUTPUT_REL_TOL))
                v = _bound_rows(net, relax, k, C, xl, xu, hmag, o, cache)
                lo[idx] = np.maximum(lo[idx], v[:n])
                hi[idx] = np.minimum(hi[idx], -v[n:])
                hi = np.maximum(hi, lo)
        lb = LayerBounds(lo, hi)
        layers.append(lb)
        if not is_output:
            relax.append(_relaxation(lb, W, b, hmag))
            hmag = np.maximum(lb.upper, 0.0)
    return layers


def alpha_bounds(net: Network, domain, *, initial: Optional[Bounds] = None, output: bool = True,
                 options: Optional[AlphaOptions] = None, **kw) -> Bounds:
    """Optimised linear (alpha-CROWN) bounds of every layer, intersected with symbolic and interval bounds.

    Parameters
    ----------
    net, domain : the network and its input domain (a box, ball or polytope; the final
        minimisation uses its box).
    initial : Bounds, optional
        Sound bounds to start from and intersect with (default: symbolic bounds; on a box domain,
        of the hidden layers only when the output layer is optimised: its optimised bound is never
        looser than CROWN's with the optimised hidden bounds, and was never looser than the
        symbolic one on the nets of tests/ and benchmarks/bench_alpha_backends.py).
    output : bool
        Also optimise the output layer's bounds (default True).
    options : AlphaOptions, optional
        Or its fields as keywords: ``iterations``, ``lr``, ``device`` ("cuda" for a GPU), ...

    Examples
    --------
    >>> from mipnet.core.domain import Box
    >>> net = Network.random([4, 16, 16, 2], seed=0)
    >>> b = alpha_bounds(net, Box(-1, 1, dim=4))
    >>> b.method, len(b.layers)
    ('alpha', 3)
    """
    t0 = time.perf_counter()
    opts = _options(options, kw)
    domain = as_domain(domain, net.input_dim)
    if initial is not None and (not isinstance(initial, Bounds) or len(initial.layers) != len(net.layers)):
        raise InvalidArgumentError("initial must be a Bounds computed for this network")
    layers = alpha_layers(net, domain, initial=initial.layers if initial is not None else None,
                          output=output, options=opts)
    return Bounds(tuple(layers), "alpha", time.perf_counter() - t0)


def alpha_output_bounds(net: Network, domain, spec=None, *, bounds: Optional[Bounds] = None,
                        options: Optional[AlphaOptions] = None, **kw) -> LayerBounds:
    """Sound bounds on ``spec @ f(x)`` over the domain (``spec`` of shape (m, outputs); default: the
    identity), alpha-CROWN with the spec folded into the last layer (Xu et al. 2021, Sec. 3.1).

    Each row of ``spec`` gets its own optimised slopes, for its lower and its upper bound, so a
    row such as ``e_i - e_j`` (a margin) is bounded far tighter than by subtracting output
    bounds. ``bounds`` are the hidden layers' bounds to use (default: :func:`alpha_bounds`
    without the output layer); the result is also intersected with the interval bound of
    ``spec`` over ``bounds.output``.

    Examples
    --------
    >>> from mipnet.core.domain import Box
    >>> net = Network.random([4, 16, 16, 3], seed=0)
    >>> m = alpha_output_bounds(net, Box(-1, 1, dim=4), spec=[[1.0, -1.0, 0.0]])  # y_0 - y_1
    >>> m.lower.shape
    (1,)
    """
    opts = _options(options, kw)
    domain = as_domain(domain, net.input_dim)
    C = np.eye(net.output_dim) if spec is None else np.atleast_2d(np.asarray(spec, dtype=np.float64))
    if C.ndim != 2 or C.shape[1] != net.output_dim:
        raise InvalidArgumentError(f"spec has shape {C.shape}; it needs {net.output_dim} columns (the outputs)")
    if not np.all(np.isfinite(C)):
        raise InvalidArgumentError("spec must be finite")
    if bounds is None:
        bounds = alpha_bounds(net, domain, output=False, options=opts)
    elif not isinstance(bounds, Bounds) or len(bounds.layers) != len(net.layers):
        raise InvalidArgumentError("bounds must be a Bounds computed for this network")
    k = len(net.layers) - 1
    xl, xu = domain.lower, domain.upper
    relax, hmag = _relaxations(net, bounds.layers, k, xl, xu)
    m = C.shape[0]
    v = _bound_rows(net, relax, k, np.concatenate([C, -C]), xl, xu, hmag, opts)
    lo, hi = v[:m], -v[m:]
    # and the interval bound of C y from the output layer's bounds
    ob = bounds.output
    ia_lo, ia_hi = interval_layer(C, np.zeros(m), ob.lower, ob.upper)
    lo, hi = np.maximum(lo, ia_lo), np.minimum(hi, ia_hi)
    return LayerBounds(lo, np.maximum(hi, lo))


def alpha_spec_bounds(net: Network, domain: Domain, layers, C, *, init=None,
                      options: Optional[AlphaOptions] = None):
    """Sound lower bounds of ``C y^out`` (rows of ``C`` over the output layer) with optimised
    slopes, given sound bounds ``layers`` of the hidden layers (alpha-CROWN with a fixed
    specification, Xu et al., ICLR 2021, arXiv:2011.13824, Sec. 3.1).

    Returns ``(lower, slopes, coef)``: ``lower`` (q,) sound in float64 (the re-evaluation of
    :func:`crown_lower`, never looser than CROWN's adaptive slopes); ``slopes``: per hidden layer
    a (q, n_j) array of the best slopes (CROWN's choice on stable neurons), to warm-start a
    sub-domain (``init``: the same shape; an input branch and bound passes the parent box's
    slopes); ``coef``: (q, n0) the input coefficients of the final linear bound of each row
    with those slopes (for a split heuristic; not part of the bound).
    """
    opts = options or AlphaOptions()
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    k = len(net.layers) - 1
    xl, xu = domain.lower, domain.upper
    relax, hmag = _relaxations(net, layers, k, xl, xu)
    best = None
    if opts.iterations > 0 and any(r.uns.size for r in relax):  # else torch is not even imported
        best = _optimise_slopes(net, relax, k, C, xl, xu, opts, init_full=init)
    q = C.shape[0]
    full = []
    for j in range(k):
        S = np.broadcast_to(relax[j].sl, (q, relax[j].sl.size)).copy()
        if best is not None and best[j] is not None and relax[j].uns.size:
            S[:, relax[j].uns] = np.clip(best[j], 0.0, 1.0)
        full.append(S)
    lo = _crown_lower_np(net, relax, k, C, [f[:, r.uns] for f, r in zip(full, relax)], xl, xu, hmag)
    crown = _crown_lower_np(net, relax, k, C, None, xl, xu, hmag)
    worse = crown > lo
    if np.any(worse):
        lo = np.maximum(lo, crown)
        for j in range(k):
            full[j][worse] = relax[j].sl
    # the input coefficients of the final linear functions with CROWN's slopes (float64, no error
    # analysis: a split heuristic; measured better for splitting than those of the optimised slopes)
    Lam = C @ net.layers[k][0]
    for j in range(k - 1, -1, -1):
        pos, neg = np.maximum(Lam, 0.0), np.minimum(Lam, 0.0)
        Lam = (pos * relax[j].sl + neg * relax[j].su) @ net.layers[j][0]
    return lo, full, Lam


# ---------------------------------------------------------------------------- f - g
def difference_network(f: Network, g: Network) -> Network:
    """One ReLU network computing ``f(x) - g(x)`` on the shared input x.

    The hidden layers of f and g are stacked block-diagonally (the first layer shares the
    input: ``[W_f^1; W_g^1]``); the output layer is ``[W_f^out, -W_g^out]`` with bias
    ``b_f - b_g`` (the joint net ``[f; g]`` followed by ``[I, -I]``, folded). When the depths
    differ, the shallower net's last hidden layer is carried forward by identity layers
    (``relu(h) = h`` for ``h >= 0``); a net without hidden layers gets the exact hidden layer
    ``[I; -I] x`` first (``x = relu(x) - relu(-x)``).
    """
    if not isinstance(f, Network) or not isinstance(g, Network):
        raise InvalidNetworkError("difference_network needs two mipnet Networks")
    if f.input_dim != g.input_dim or f.output_dim != g.output_dim:
        raise InvalidNetworkError(f"the networks differ in input or output size: {f.widths} vs {g.widths}")

    def hidden_of(net):
        if net.num_hidden_layers:
            return [list(l) for l in net.layers[:-1]], list(net.layers[-1])
        n = net.input_dim
        W, b = net.layers[-1]
        return [[np.vstack([np.eye(n), -np.eye(n)]), np.zeros(2 * n)]], [np.hstack([W, -W]), b]

    hf, of = hidden_of(f)
    hg, og = hidden_of(g)
    depth = max(len(hf), len(hg))
    for h in (hf, hg):
        while len(h) < depth:
            n = h[-1][0].shape[0]
            h.append([np.eye(n), np.zeros(n)])
    layers = [(np.vstack([hf[0][0], hg[0][0]]), np.concatenate([hf[0][1], hg[0][1]]))]
    for l in range(1, depth):
        Wf, bf = hf[l]
        Wg, bg = hg[l]
        W = np.zeros((Wf.shape[0] + Wg.shape[0], Wf.shape[1] + Wg.shape[1]))
        W[:Wf.shape[0], :Wf.shape[1]] = Wf
        W[Wf.shape[0]:, Wf.shape[1]:] = Wg
        layers.append((W, np.concatenate([bf, bg])))
    layers.append((np.hstack([of[0], -og[0]]), of[1] - og[1]))
    return Network.from_layers(layers)


def alpha_difference_bounds(f: Network, g: Network, domain, *, spec=None, options: Optional[AlphaOptions] = None,
                            **kw) -> LayerBounds:
    """Sound bounds on ``spec @ (f(x) - g(x))`` (default: per output) over the domain: alpha-CROWN
    on the joint network ``[f; g]`` with the spec ``spec @ [I, -I]`` (:func:`difference_network`
    folds ``[I, -I]`` into its last layer), so the shared input couples the two nets (tighter
    than subtracting separate bounds).

    Each ReLU of f and of g is relaxed on its own, so the correlation between a neuron of f and
    its counterpart in a structurally similar g (a pruned copy) is lost: for such pairs the
    differential (ReluDiff) bounds of :func:`mipnet.analyses.equivalence.differential_bounds`,
    which bound ``y_f - y_g`` neuron by neuron, are far tighter (measured on a digits
    64-64-64-10 net and a 30 %-pruned copy: mean width 0.034 vs 3.1 here, 11.2 by subtraction).
    For unrelated nets of equal widths this bound was slightly tighter (38.3 vs 39.2).
    """
    opts = _options(options, kw)
    d = difference_network(f, g)
    if spec is None:
        return alpha_bounds(d, domain, options=opts).output
    return alpha_output_bounds(d, domain, spec=spec, options=opts)


# ---------------------------------------------------------------------------- bounds under ReLU splits
@dataclass(frozen=True, eq=False)
class SplitBounds:
    """What :func:`split_lower_bounds` returns for a batch of (row, split) pairs.

    lower : sound lower bounds of ``C_r . y^k`` over the domain's box restricted by row r's splits.
    points : (B, n0) the box minimiser of each row's final linear function (a candidate witness).
    scores : per hidden layer j < k, (B, n_j) branching scores (the BaBSR intercept score,
        Bunel et al. JMLR 2020: how much the relaxation of each free unstable neuron can cost the
        bound; -inf where a neuron is stable or already split).
    alt_points : with envelope lines, the box minimisers of the chord-based bound (other candidates).
    """

    lower: np.ndarray
    points: np.ndarray
    scores: list
    alt_points: Optional[np.ndarray] = None


def _split_relax(relax, splits):
    """Per-row relaxations: a neuron split active is exactly ``h = y``, split inactive ``h = 0``."""
    out = []
    for r, s in zip(relax, splits):
        act, ina = s > 0, s < 0
        split = act | ina
        sl = np.where(act, 1.0, np.where(ina, 0.0, r.sl))
        su = np.where(act, 1.0, np.where(ina, 0.0, r.su))
        tu = np.where(split, 0.0, r.tu)
        e_line = np.where(split, 0.0, r.e_line)
        free = np.zeros(s.shape, dtype=bool)
        free[:, r.uns] = True
        free &= ~split
        out.append((sl, su, tu, e_line, free, s.astype(np.float64)))
    return out


def _split_lower_np(net, relax, prow, k, C, alphas, betas, xl, xu, hmag_prev, env=None):
    """Sound float64 lower bounds of the rows of ``C y^k`` under per-row splits (see
    :func:`_crown_lower_np` for the rounding accounting; the beta terms add one rounding per entry)."""
    u = UNIT_ROUNDOFF
    Lam, c, err = _lower_start(net, k, C, hmag_prev)
    scores: list = [None] * k
    for j in range(k - 1, -1, -1):
        r = relax[j]
        sl, su, tu, e_line, free, sgn = prow[j]
        g = gamma(r.su.size + 1)
        pos, neg = np.maximum(Lam, 0.0), np.minimum(Lam, 0.0)
        # BaBSR-style score: the intercept a negative coefficient pays on the chord, plus a small
        # share of the lower line's worst gap for positive ones (so that every free neuron ranks)
        scores[j] = np.where(free, -neg * tu + 1e-3 * pos * r.ymag, -np.inf)
        negf = None
        if j == 0 and env is not None:  # free unstable first-layer ReLUs take their envelope lines
            negf = np.where(free, neg, 0.0)
            neg = neg - negf
        err += np.einsum("bn,bn->b", -neg, e_line + g * tu) + g * np.abs(c)
        c = c + np.einsum("bn,bn->b", neg, tu)
        S = sl if alphas is None or alphas[j] is None else np.where(free, np.clip(alphas[j], 0.0, 1.0), sl)
        Lam = pos * S + neg * su
        if betas is not None and betas[j] is not None:
            Lam = Lam - np.maximum(betas[j], 0.0) * sgn
        step = 2.0 * u * r.ymag + g * r.wmag
        err += np.abs(Lam) @ step + g * np.abs(c)
        Wj, bj = net.layers[j]
        c = c + Lam @ bj
        Lam = Lam @ Wj
        if negf is not None:
            A, t, group = env
            xmag = np.maximum(np.abs(xl), np.abs(xu))
            ge = gamma(r.su.size + 2)
            for gi in np.unique(group):
                rows = np.flatnonzero(group == gi)
                nf = negf[rows]
                Lam[rows] += nf @ A[gi]
                c[rows] += nf @ t[gi]
                err[rows] += ge * (np.abs(nf) @ (np.abs(A[gi]) @ xmag + np.abs(t[gi])))
            err += gamma(2) * (np.abs(Lam) @ xmag + np.abs(c))
    return _lower_end(Lam, c, err, xl, xu), np.where(Lam > 0, xl, xu), scores


def _optimise_split(net, relax, prow, k, C, xl, xu, opts: AlphaOptions, init=None, env=None):
    """Slopes and split multipliers (beta-CROWN, Wang et al. NeurIPS 2021) maximising each row's
    lower bound by projected Adam; the best iterate per row is kept. Not trusted: re-evaluated
    by :func:`_split_lower_np`."""
    import torch

    dev = _torch_device(opts.device)
    dt = torch.float64
    q = C.shape[0]
    T = lambda a: torch.as_tensor(np.array(a, dtype=np.float64), dtype=dt, device=dev)  # noqa: E731
    W, b = net.layers[k]
    Lam0, c0 = T(C @ W), T(C @ b)
    Ws = [T(net.layers[j][0]) for j in range(k)]
    bs = [T(net.layers[j][1]) for j in range(k)]
    sl = [T(p[0]) for p in prow]
    su = [T(p[1]) for p in prow]
    tu = [T(p[2]) for p in prow]
    free = [torch.as_tensor(p[4], device=dev) for p in prow]
    sgn = [T(p[5]) for p in prow]
    center, radius = T((xl + xu) / 2), T((xu - xl) / 2)
    # warm start where given (nan: none; CROWN's slopes and zero multipliers)
    a0 = [T(p[0] if init is None else np.where(np.isnan(init[0][j]), p[0], init[0][j])) for j, p in enumerate(prow)]
    b0 = [T(np.zeros(p[5].shape) if init is None else np.nan_to_num(init[1][j], nan=0.0)) for j, p in enumerate(prow)]
    has_split = [bool((p[5] != 0).any()) for p in prow]
    params = [a.clone().requires_grad_(True) for a in a0] + [
        bb.clone().requires_grad_(True) for bb in b0]

    if env is not None:
        groups = [(torch.as_tensor(np.flatnonzero(env[2] == g), device=dev), T(env[0][g]), T(env[1][g]))
                  for g in np.unique(env[2])]

    def bound(ps):
        al, be = ps[:k], ps[k:]
        Lam, c = Lam0, c0
        for j in range(k - 1, -1, -1):
            pos, neg = Lam.clamp(min=0), Lam.clamp(max=0)
            negf = None
            if j == 0 and env is not None:
                negf = torch.where(free[0], neg, torch.zeros_like(neg))
                neg = neg - negf
            c = c + (neg * tu[j]).sum(1)
            Lam = pos * torch.where(free[j], al[j], sl[j]) + neg * su[j]
            if has_split[j]:
                Lam = Lam - be[j] * sgn[j]
            c = c + Lam @ bs[j]
            Lam = Lam @ Ws[j]
            if negf is not None:
                extra_L = torch.zeros_like(Lam)
                extra_c = torch.zeros_like(c)
                for rows, A, t in groups:
                    nf = negf[rows]
                    extra_L = extra_L.index_add(0, rows, nf @ A)
                    extra_c = extra_c.index_add(0, rows, nf @ t)
                Lam, c = Lam + extra_L, c + extra_c
        return Lam @ center - Lam.abs() @ radius + c

    beta1, beta2, eps = 0.9, 0.999, 1e-12
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    best = torch.full((q,), -np.inf, dtype=dt, device=dev)
    best_p = [p.detach().clone() for p in params]
    lr = opts.lr
    for it in range(opts.iterations + 1):
        lo = bound(params)
        with torch.no_grad():
            better = lo > best
            if bool(better.any()):
                best[better] = lo[better]
                for bp, p in zip(best_p, params):
                    bp[better] = p.detach()[better]
        if it == opts.iterations:
            break
        grads = torch.autograd.grad(-lo.sum(), params, allow_unused=True)
        with torch.no_grad():
            t = it + 1
            for n, (p, g) in enumerate(zip(params, grads)):
                if g is None:
                    continue
                m1[n].mul_(beta1).add_(g, alpha=1 - beta1)
                m2[n].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (m2[n] / (1 - beta2 ** t)).sqrt_().add_(eps)
                p.addcdiv_(m1[n], denom, value=-lr / (1 - beta1 ** t))
                p.clamp_(0.0, 1.0) if n < k else p.clamp_(min=0.0)
            lr *= opts.lr_decay
    out = [p.cpu().numpy() for p in best_p]
    return out[:k], out[k:]


def split_lower_bounds(net: Network, layers, k: int, C, splits, domain: Domain, *,
                       options: Optional[AlphaOptions] = None, init=None, envelope=None
                       ) -> tuple[SplitBounds, tuple]:
    """Sound lower bounds of ``C_r . y^k`` for a batch of rows, each under its own ReLU splits:
    the bounding step of beta-CROWN (Wang, Zhang, Xu, Lin, Jana, Hsieh and Kolter, NeurIPS 2021,
    arXiv:2103.06624).

    ``layers[j]`` (j < k) are sound bounds of the hidden layers before layer k over the whole
    domain (valid in every branch); ``splits[j]`` is an int8 array (B, n_j): +1 where row r's
    branch assumes ``y^j >= 0`` (the ReLU is then exactly ``h = y``), -1 where it assumes
    ``y^j <= 0`` (``h = 0``), 0 elsewhere. The split constraints enter the back-substitution
    with multipliers ``beta >= 0`` (``C y >= C y - beta s y^j`` on the branch), and the lower
    slopes of the free unstable neurons are ``alpha`` in [0, 1]; both are optimised per row by
    projected Adam in torch (``options.iterations`` steps, from ``init`` = (alphas, betas) when
    given), then the bound is re-evaluated and widened for rounding in float64 numpy
    (:func:`_split_lower_np`), so it is valid for any slopes and multipliers. Returns the
    :class:`SplitBounds` and the (alphas, betas) found (to warm-start the children of a branch).

    ``envelope = (A, t, group)``: sound first-layer lines from :func:`envelope_lines` (G sets of
    (n1, n0) and (n1,)) and the set ``group[r]`` each row uses: the free unstable ReLUs of the
    first hidden layer then take ``h <= A x + t`` instead of their chords (in the sound evaluation;
    the slopes and multipliers are optimised with the chords).
    """
    opts = options or AlphaOptions()
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    xl, xu = domain.lower, domain.upper
    relax, hmag = _relaxations(net, layers, k, xl, xu)
    prow = _split_relax(relax, [np.asarray(s) for s in splits])
    found = (None, None)
    if opts.iterations:
        with _torch_threads(opts):
            found = _optimise_split(net, relax, prow, k, C, xl, xu, opts, init, envelope)
    lo, points, scores = _split_lower_np(net, relax, prow, k, C, found[0], found[1], xl, xu, hmag)
    alt = None
    if envelope is not None:
        lo_e, p_e, _ = _split_lower_np(net, relax, prow, k, C, found[0], found[1], xl, xu, hmag, env=envelope)
        better = lo_e > lo
        lo = np.where(better, lo_e, lo)
        alt = points
        points = np.where(better[:, None], p_e, points)
    if found[0] is not None:  # CROWN's own slopes without multipliers: never worse than them
        lo0, p0, _ = _split_lower_np(net, relax, prow, k, C, None, None, xl, xu, hmag)
        worse = lo0 > lo
        lo = np.where(worse, lo0, lo)
        points = np.where(worse[:, None], p0, points)
    return SplitBounds(lo, points, scores, alt), found


def envelope_lines(net: Network, domain: Domain, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sound linear upper lines of the first layer's ReLUs over the domain's box, one per slope set.

    ``sigma`` (G, n1, n0) in [0, 1]: line g of neuron j is ``h_j <= A_gj . x + t_gj`` with
    ``A_gj = sigma_gj * W_j`` (per input coordinate) and the smallest ``t_gj`` that keeps the line
    above ``0`` and above ``W_j x + b_j`` on the box (both minimised in closed form), widened for
    rounding. ``sigma_gj = U/(U-L)`` everywhere gives the chord; other slopes give the other
    valid lines, whose lower envelope over all ``sigma`` is the convex hull of the ReLU over the box
    (the ideal single-neuron relaxation of Anderson, Huchette, Ma, Tjandraatmadja and Vielma,
    Math. Programming 2020, whose facets have coefficients ``w_i`` or 0 per coordinate).
    """
    W, b = net.layers[0]
    xl, xu = domain.lower, domain.upper
    xmag = np.maximum(np.abs(xl), np.abs(xu))
    A = np.clip(sigma, 0.0, 1.0) * W[None]
    n0 = W.shape[1]
    m1 = np.minimum(A * xl, A * xu).sum(-1)
    e1 = gamma(n0 + 2) * (np.abs(A) @ xmag)
    D = A - W[None]
    m2 = np.minimum(D * xl, D * xu).sum(-1)
    e2 = gamma(n0 + 3) * (np.abs(D) @ xmag)
    t = np.maximum(-(m1 - e1), b[None] - (m2 - e2))
    t = t + gamma(4) * (np.abs(b)[None] + np.abs(m1) + e1 + np.abs(m2) + e2) + _TINY
    return A, t


def optimise_envelope(net: Network, layers, k: int, C, domain: Domain, *, iterations: int = 30,
                      lr: float = 0.15, threads: Optional[int] = 1, until: Optional[float] = None) -> np.ndarray:
    """Per-row first-layer slopes ``sigma`` (q, n1, n0) that minimise the CROWN bound of ``-C y^k``...

    i.e. maximise the lower bound of each row of ``C y^k`` when the free unstable ReLUs of the
    first hidden layer take the lines of :func:`envelope_lines` instead of their chords (the other
    layers keep alpha slopes, optimised jointly). Projected Adam from the chords; the best iterate
    per row is kept; no step starts after ``until`` (a ``time.perf_counter()`` value). Not trusted:
    the caller evaluates the lines with :func:`envelope_lines` and the bound with
    :func:`split_lower_bounds`.
    """
    import torch

    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    xl, xu = domain.lower, domain.upper
    relax, hmag = _relaxations(net, layers, k, xl, xu)
    q = C.shape[0]
    dt = torch.float64
    T = lambda a: torch.as_tensor(np.array(a, dtype=np.float64), dtype=dt)  # noqa: E731
    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        W, b = net.layers[k]
        Lam0, c0 = T(C @ W), T(C @ b)
        Ws = [T(net.layers[j][0]) for j in range(k)]
        bs = [T(net.layers[j][1]) for j in range(k)]
        sl = [T(r.sl) for r in relax]
        su = [T(r.su) for r in relax]
        tu = [T(r.tu) for r in relax]
        free = []
        for r in relax:
            f = np.zeros(r.sl.size, dtype=bool)
            f[r.uns] = True
            free.append(torch.as_tensor(f))
        lo_x, hi_x = T(xl), T(xu)
        center, radius = (lo_x + hi_x) / 2, (hi_x - lo_x) / 2
        W0, b0 = Ws[0], bs[0]
        # the first-layer ReLUs that take envelope lines: free unstable ones with a negative
        # coefficient under CROWN's slopes (the others keep their chords; any line is valid)
        Lh = C @ W
        for j in range(k - 1, 0, -1):
            Lh = (np.maximum(Lh, 0.0) * relax[j].sl + np.minimum(Lh, 0.0) * relax[j].su) @ net.layers[j][0]
        free0 = np.zeros(relax[0].sl.size, dtype=bool)
        free0[relax[0].uns] = True
        sel = (Lh < 0) & free0[None]
        m = max(int(sel.sum(1).max()) if q else 0, 1)
        order = np.argsort(~sel, axis=1, kind="stable")[:, :m]  # selected neurons first
        valid = np.take_along_axis(sel, order, 1)
        idx = torch.as_tensor(order)
        vt = T(valid.astype(np.float64))
        P = (W0 * center - W0.abs() * radius)[idx]  # (q, m, n0)
        Q = (W0 * center + W0.abs() * radius)[idx]
        Qs = Q.sum(-1)
        Wg, bg = W0[idx], b0[idx]
        selt = torch.as_tensor(sel)
        sig = su[0][idx][:, :, None].expand(-1, -1, W0.shape[1]).clone().requires_grad_(True)
        al = [sl[j].expand(q, -1).clone().requires_grad_(True) for j in range(k)]
        params = [sig] + al

        def bound(sig, al):
            Lam, c = Lam0, c0
            for j in range(k - 1, -1, -1):
                pos, neg = Lam.clamp(min=0), Lam.clamp(max=0)
                S = torch.where(free[j], al[j], sl[j])
                if j == 0:
                    negf = torch.where(selt, neg, torch.zeros_like(neg))
                    neg = neg - negf
                    nf = negf.gather(1, idx) * vt
                    # min over the box of (sigma W) x and of (sigma W - W) x, for sigma in [0, 1]
                    m1 = (sig * P).sum(-1)
                    m2 = (sig * Q).sum(-1) - Qs
                    t = torch.maximum(-m1, bg - m2)
                    c = c + (neg * tu[0]).sum(1) + (nf * t).sum(1)
                    Lz = pos * S + neg * su[0]
                    c = c + Lz @ b0
                    Lam = Lz @ W0 + ((nf[:, :, None] * sig) * Wg).sum(1)
                else:
                    c = c + (neg * tu[j]).sum(1)
                    Lam = pos * S + neg * su[j]
                    c = c + Lam @ bs[j]
                    Lam = Lam @ Ws[j]
            return Lam @ center - Lam.abs() @ radius + c

        m1s = [torch.zeros_like(p) for p in params]
        m2s = [torch.zeros_like(p) for p in params]
        best = torch.full((q,), -np.inf, dtype=dt)
        best_sig = sig.detach().clone()
        for it in range(iterations + 1):
            lo = bound(sig, al)
            with torch.no_grad():
                better = lo > best
                if bool(better.any()):
                    best[better] = lo[better]
                    best_sig[better] = sig.detach()[better]
            if it == iterations or (until is not None and time.perf_counter() >= until):
                break
            grads = torch.autograd.grad(-lo.sum(), params)
            with torch.no_grad():
                for n, (p, g) in enumerate(zip(params, grads)):
                    m1s[n].mul_(0.9).add_(g, alpha=0.1)
                    m2s[n].mul_(0.999).addcmul_(g, g, value=0.001)
                    denom = (m2s[n] / (1 - 0.999 ** (it + 1))).sqrt_().add_(1e-12)
                    p.addcdiv_(m1s[n], denom, value=-lr / (1 - 0.9 ** (it + 1)))
                    p.clamp_(0.0, 1.0)
        out = np.broadcast_to(relax[0].su[None, :, None], (q, W0.shape[0], W0.shape[1])).copy()
        bs_np = best_sig.numpy()
        for r in range(q):
            out[r, order[r][valid[r]]] = bs_np[r][valid[r]]
        return out
    finally:
        torch.set_num_threads(saved)
