"""Training and fine-tuning of ReLU MLPs in torch, with pruning masks kept in place.

Input scale
-----------
The analyses read a network as a function of the *raw* inputs (digits pixels in
0..16), so the model this module returns always takes raw inputs. For better
conditioning, training feeds ``s * x`` with a power-of-two factor ``s``
(``input_scale="auto"``: ``s = 2**-ceil(log2(max |x|))`` over the dataset's
``input_range``, i.e. 1/16 for digits and 1 for IDX images in [0, 1]). While
training, the first Linear layer holds ``W / s``; at the end (also on error)
it is folded back, ``W = s * (W / s)``. A power of two makes the fold exact in
floating point, so the returned model is exactly the network that was trained.

Masks
-----
Pruning masks from :mod:`torch.nn.utils.prune` are forward pre-hooks that
recompute ``weight = weight_orig * weight_mask`` before every forward pass, so
training a pruned model keeps the pruned weights at exactly zero (the gradient
reaching ``weight_orig`` is masked too). After the last optimiser step the
cached ``weight`` attribute is refreshed, so readers that look at
``module.weight`` directly see the trained values.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mipnet.core.errors import DatasetError, DeviceUnavailableError, InvalidNetworkError, TrainingError

__all__ = [
    "make_mlp",
    "train",
    "finetune",
    "evaluate",
    "resolve_device",
    "TrainingResult",
    "EpochStats",
    "DeviceUnavailableError",
    "TrainingError",
]

log = logging.getLogger(__name__)




# ---------------------------------------------------------------------------- models
def make_mlp(widths: Sequence[int], *, seed: int | None = None):
    """A fully connected ReLU network ``Linear, ReLU, ..., Linear`` as ``nn.Sequential``.

    Parameters
    ----------
    widths : sequence of int
        ``(n0, n1, ..., n_out)``: input size, hidden sizes, number of outputs.
    seed : int, optional
        Seeds torch's default initialisation (Kaiming-uniform) without touching
        the global random state.

    Examples
    --------
    >>> make_mlp([2, 3, 1])
    Sequential(
      (0): Linear(in_features=2, out_features=3, bias=True)
      (1): ReLU()
      (2): Linear(in_features=3, out_features=1, bias=True)
    )
    """
    import torch
    from torch import nn

    try:
        ws = [int(w) for w in widths]
    except (TypeError, ValueError):
        raise InvalidNetworkError(f"widths must be a sequence of positive integers, got {widths!r}") from None
    if len(ws) < 2 or min(ws) < 1 or any(int(w) != w for w in widths):
        raise InvalidNetworkError(
            f"widths must list the input size, any hidden sizes and the output size, all >= 1; got {list(widths)}"
        )

    def build():
        layers = []
        for i, (m, n) in enumerate(zip(ws[:-1], ws[1:])):
            layers.append(nn.Linear(m, n))
            if i < len(ws) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


def resolve_device(device=None):
    """``None``/``"auto"`` gives CUDA when available, else CPU; anything else is checked.

    Raises
    ------
    DeviceUnavailableError
        CUDA was asked for but torch sees no GPU (or the device string is invalid).
    """
    import torch

    if device is None or (isinstance(device, str) and device.lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceUnavailableError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {device!r} asked for, but torch {torch.__version__} sees no CUDA GPU here; "
                "use device='cpu' or 'auto'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {device!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif dev.type != "cpu":
        raise DeviceUnavailableError(f"device type {dev.type!r} is not supported; use 'auto', 'cpu' or 'cuda'")
    return dev


def _auto_input_scale(dataset) -> float:
    lo, hi = dataset.input_range
    m = max(abs(lo), abs(hi))
    if not math.isfinite(m) or m == 0:
        return 1.0
    return 2.0 ** (-math.ceil(math.log2(m)))


def _first_linear(model):
    from torch import nn

    mods = list(model.children()) if isinstance(model, nn.Sequential) else []
    for m in mods:
        if isinstance(m, nn.Flatten):
            continue
        if isinstance(m, nn.Linear):
            return m
        break
    return None


def _weight_param(module):
    """The trainable weight tensor: ``weight_orig`` under a pruning mask, else ``weight``."""
    return module.weight_orig if hasattr(module, "weight_orig") else module.weight


def refresh_masked_weights(model) -> None:
    """Recompute ``weight = weight_orig * weight_mask`` for every pruned module now.

    The pruning pre-hook only runs at the next forward pass; call this after an
    in-place change of ``weight_orig`` so ``module.weight`` is current.
    """
    import torch
    from torch.nn.utils import prune

    with torch.no_grad():
        for module in model.modules():
            for hook in list(module._forward_pre_hooks.values()):
                if isinstance(hook, prune.BasePruningMethod):
                    hook(module, None)


def _scale_first_layer(model, factor: float) -> None:
    import torch

    lin = _first_linear(model)
    with torch.no_grad():
        _weight_param(lin).mul_(factor)
    refresh_masked_weights(model)


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class EpochStats:
    """Loss and accuracies after one epoch."""

    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float

    def to_dict(self) -> dict:
        return dict(epoch=self.epoch, loss=self.loss, train_accuracy=self.train_accuracy,
                    test_accuracy=self.test_accuracy, seconds=self.seconds)


@dataclass(frozen=True, eq=False)
class TrainingResult:
    """What :func:`train` did.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model (trained in place), on the CPU, taking raw inputs.
    history : tuple of EpochStats
    test_accuracy, train_accuracy : float
        Of the returned model, on the raw inputs.
    seconds : float
        Wall time of the whole call; ``seconds_per_epoch`` counts the
        optimisation passes only (no evaluation).
    device : str
    input_scale : float
        The factor the inputs were multiplied by during training (folded back).
    """

    model: object = field(repr=False)
    history: tuple
    test_accuracy: float
    train_accuracy: float
    seconds: float
    seconds_per_epoch: float
    device: str
    epochs: int
    seed: int
    input_scale: float
    optimizer: str
    lr: float
    l1: float
    dataset: str

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "epochs": self.epochs,
            "seed": self.seed,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "l1": self.l1,
            "input_scale": self.input_scale,
            "device": self.device,
            "test_accuracy": self.test_accuracy,
            "train_accuracy": self.train_accuracy,
            "seconds": self.seconds,
            "seconds_per_epoch": self.seconds_per_epoch,
            "history": [h.to_dict() for h in self.history],
        }

    def __str__(self) -> str:
        return (f"trained {self.epochs} epoch(s) on {self.dataset} ({self.device}): "
                f"test accuracy {self.test_accuracy:.4f}, train accuracy {self.train_accuracy:.4f}, "
                f"{self.seconds_per_epoch:.3f} s/epoch, {self.seconds:.2f} s in all")


# ---------------------------------------------------------------------------- evaluation
def _predict_accuracy(model, X, y, device, batch_size: int = 4096) -> float:
    import torch

    if len(y) == 0:
        return float("nan")
    correct = 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, X.shape[0], batch_size):
            xb = X[i:i + batch_size]
            out = model(xb)
            correct += int((out.argmax(dim=1) == y[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / len(y)


def evaluate(model, dataset, split: str = "test", *, device=None, batch_size: int = 4096) -> float:
    """Top-1 accuracy of ``model`` (taking raw inputs) on a dataset split.

    Parameters
    ----------
    model : torch.nn.Module
    dataset : Dataset
    split : {"test", "train"}
    device : str, optional
        Default: the device the model's parameters are on.
    """
    import torch
    from torch import nn

    if not isinstance(model, nn.Module):
        raise InvalidNetworkError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not (hasattr(dataset, "X_test") and callable(getattr(dataset, "split", None))):
        raise DatasetError(f"dataset must be a mipnet.nn.data.Dataset, got {type(dataset).__name__}")
    X, y = dataset.split(split)
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None else torch.float32
    if device is None:
        dev = p.device if p is not None else torch.device("cpu")
    else:
        dev = resolve_device(device)
        model.to(dev)
    Xt = torch.from_numpy(np.array(X)).to(dev, dtype).reshape(len(y), -1)
    yt = torch.from_numpy(np.array(y, dtype=np.int64)).to(dev)
    return _predict_accuracy(model, Xt, yt, dev, batch_size)


# ---------------------------------------------------------------------------- training
_OPTIMIZERS = ("sgd", "adam")


# The two update rules below are those of torch.optim.SGD and torch.optim.Adam with their
# defaults (no dampening, no Nesterov, no amsgrad, L2 weight decay added to the gradient);
# tests compare them with torch.optim. Written out because constructing a torch.optim
# optimiser imports torch._dynamo, which costs seconds per process (the CLI, the tests).
class _SGD:
    def __init__(self, params, *, lr, momentum, weight_decay):
        self.params, self.lr, self.momentum, self.wd = params, lr, momentum, weight_decay
        self.buf = [None] * len(params)

    def step(self, grads):
        import torch

        with torch.no_grad():
            for i, (p, g) in enumerate(zip(self.params, grads)):
                if self.wd:
                    g = g.add(p, alpha=self.wd)
                if self.momentum:
                    if self.buf[i] is None:
                        self.buf[i] = g.clone()
                    else:
                        self.buf[i].mul_(self.momentum).add_(g)
                    g = self.buf[i]
                p.add_(g, alpha=-self.lr)


class _Adam:
    def __init__(self, params, *, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
        import torch

        self.params, self.lr, self.wd, self.betas, self.eps = params, lr, weight_decay, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads):
        import torch

        b1, b2 = self.betas
        self.t += 1
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        with torch.no_grad():
            for p, g, m, v in zip(self.params, grads, self.m, self.v):
                if self.wd:
                    g = g.add(p, alpha=self.wd)
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v.sqrt() / math.sqrt(c2)).add_(self.eps)
                p.addcdiv_(m, denom, value=-self.lr / c1)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) \
        and math.isfinite(v)


def _validate_train(model, dataset, epochs, lr, batch_size, optimizer, momentum, l1, input_scale, seed=0):
    from torch import nn

    if not isinstance(model, nn.Module):
        raise InvalidNetworkError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not hasattr(dataset, "X_train"):
        raise DatasetError(f"dataset must be a mipnet.nn.data.Dataset, got {type(dataset).__name__}")
    if not _is_int(epochs) or epochs < 0:
        raise TrainingError(f"epochs must be a non-negative integer, got {epochs!r}")
    if not (_is_real(lr) and lr > 0):
        raise TrainingError(f"lr must be a positive number, got {lr!r}")
    if not _is_int(batch_size) or batch_size < 1:
        raise TrainingError(f"batch_size must be a positive integer, got {batch_size!r}")
    if optimizer not in _OPTIMIZERS:
        raise TrainingError(f"optimizer must be one of {_OPTIMIZERS}, got {optimizer!r}")
    if not (_is_real(momentum) and 0 <= momentum < 1):
        raise TrainingError(f"momentum must lie in [0, 1), got {momentum!r}")
    if not (_is_real(l1) and l1 >= 0):
        raise TrainingError(f"l1 must be a non-negative number, got {l1!r}")
    if not (input_scale == "auto" or (_is_real(input_scale) and input_scale > 0)):
        raise TrainingError(f"input_scale must be 'auto' or a positive number, got {input_scale!r}")
    if not _is_int(seed) or seed < 0:
        raise TrainingError(f"seed must be an integer >= 0, got {seed!r}")
    first = _first_linear(model)
    if first is not None and first.in_features != dataset.input_dim:
        raise InvalidNetworkError(
            f"the model takes {first.in_features} inputs but dataset {dataset.name!r} has "
            f"{dataset.input_dim}; build the model with widths starting at {dataset.input_dim}"
        )


def train(
    model,
    dataset,
    *,
    epochs: int,
    lr: float = 1e-2,
    batch_size: int = 128,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    l1: float = 0.0,
    seed: int = 0,
    device=None,
    progress: bool = True,
    input_scale="auto",
    num_threads: int | None = None,
) -> TrainingResult:
    """Train ``model`` in place with cross-entropy; pruning masks stay applied.

    Parameters
    ----------
    model : torch.nn.Module
        Usually from :func:`make_mlp`; may carry :mod:`torch.nn.utils.prune` masks.
    dataset : Dataset
    epochs : int
    lr, batch_size : float, int
        Defaults follow the protocol of Cai et al. (SGD, lr 1e-2, batch 128).
    optimizer : {"sgd", "adam"}
    momentum : float
        SGD momentum (ignored by Adam).
    weight_decay : float
        L2 penalty passed to the optimiser.
    l1 : float
        Adds ``l1 * sum |W|`` over all Linear weights to the loss; Serra, Kumar,
        Ramalingam, "Lossless compression of deep neural networks", CPAIOR 2020
        (arXiv:2001.00218), use it to make many neurons stable.
    seed : int
        Seeds the batch order (and any torch randomness); on the CPU the same
        seed gives bit-identical weights.
    device : {"auto", "cpu", "cuda", "cuda:N"}, optional
        Default ``"auto"``: CUDA when torch sees a GPU, else CPU.
    progress : bool
        A tqdm bar on stderr (only when stderr is a terminal).
    input_scale : "auto" or float
        Training multiplies inputs by this factor and folds it into the first
        layer afterwards (see the module notes); ``"auto"`` picks a power of two.
    num_threads : int, optional
        CPU threads torch may use during this call (restored afterwards). Small
        MLPs gain little from more than one, and on a busy machine torch's
        default (one per core) can be ten times slower than 1.

    Returns
    -------
    TrainingResult
        The model is moved back to the CPU and takes raw inputs.
    """
    import torch

    _validate_train(model, dataset, epochs, lr, batch_size, optimizer, momentum, l1, input_scale, seed)
    if num_threads is not None and (int(num_threads) != num_threads or num_threads < 1):
        raise TrainingError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    dev = resolve_device(device)
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _train(model, dataset, dev, epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
                      momentum=momentum, weight_decay=weight_decay, l1=l1, seed=seed, progress=progress,
                      input_scale=input_scale)
    finally:
        if num_threads is not None:
            torch.set_num_threads(old_threads)


def _train(model, dataset, dev, *, epochs, lr, batch_size, optimizer, momentum, weight_decay, l1, seed,
           progress, input_scale) -> TrainingResult:
    import torch
    import torch.nn.functional as F
    from torch import nn

    t0 = time.perf_counter()
    scale = _auto_input_scale(dataset) if input_scale == "auto" else float(input_scale)
    first = _first_linear(model)
    if scale != 1.0 and first is None:
        raise InvalidNetworkError(
            "input_scale != 1 needs a model whose first layer is nn.Linear (to fold the scale into it); "
            "pass input_scale=1.0"
        )
    epochs = int(epochs)
    gen = torch.Generator().manual_seed(int(seed))

    model.to(dev)
    n = dataset.n_train
    p0 = next(model.parameters(), None)
    dtype = p0.dtype if p0 is not None else torch.float32
    Xtr = torch.from_numpy(np.array(dataset.X_train)).to(dev, dtype).reshape(n, -1) * scale
    ytr = torch.from_numpy(np.array(dataset.y_train)).to(dev)
    Xte = torch.from_numpy(np.array(dataset.X_test)).to(dev, dtype).reshape(dataset.n_test, -1) * scale
    yte = torch.from_numpy(np.array(dataset.y_test)).to(dev)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]

    if scale != 1.0:
        _scale_first_layer(model, 1.0 / scale)
    history = []
    train_time = 0.0
    try:
        params = [p for p in model.parameters() if p.requires_grad]
        opt = (_SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay) if optimizer == "sgd"
               else _Adam(params, lr=lr, weight_decay=weight_decay))
        from tqdm.auto import tqdm

        bar = tqdm(range(epochs), desc=f"train ({dev.type})", unit="epoch", file=sys.stderr,
                   disable=not progress, leave=False)
        # the batch order is the only randomness; it comes from `gen`
        for epoch in bar:
            te = time.perf_counter()
            model.train()
            perm = torch.randperm(n, generator=gen).to(dev)
            tot_loss = torch.zeros((), device=dev)
            tot_correct = torch.zeros((), device=dev, dtype=torch.int64)
            for i in range(0, n, batch_size):
                idx = perm[i:i + batch_size]
                xb, yb = Xtr[idx], ytr[idx]
                out = model(xb)
                loss = F.cross_entropy(out, yb)
                obj = loss
                if l1 > 0:
                    obj = loss + l1 * sum(m.weight.abs().sum() for m in linears)
                grads = torch.autograd.grad(obj, params)
                opt.step(grads)
                tot_loss += loss.detach() * len(idx)
                tot_correct += (out.detach().argmax(1) == yb).sum()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            dt = time.perf_counter() - te
            train_time += dt
            test_acc = _predict_accuracy(model, Xte, yte, dev)
            stats = EpochStats(epoch + 1, float(tot_loss) / max(n, 1), int(tot_correct) / max(n, 1),
                               test_acc, dt)
            history.append(stats)
            bar.set_postfix(loss=f"{stats.loss:.4f}", test=f"{test_acc:.4f}")
            log.info("epoch %d: loss %.4f, train acc %.4f, test acc %.4f (%.2fs)",
                     stats.epoch, stats.loss, stats.train_accuracy, test_acc, dt)
        bar.close()
    finally:
        if scale != 1.0:
            _scale_first_layer(model, scale)
        refresh_masked_weights(model)
    model.to("cpu")
    refresh_masked_weights(model)
    model.eval()
    del Xtr, Xte
    test_acc = evaluate(model, dataset, "test")
    train_acc = evaluate(model, dataset, "train")
    return TrainingResult(
        model=model,
        history=tuple(history),
        test_accuracy=test_acc,
        train_accuracy=train_acc,
        seconds=time.perf_counter() - t0,
        seconds_per_epoch=train_time / epochs if epochs else 0.0,
        device=str(dev),
        epochs=epochs,
        seed=int(seed),
        input_scale=scale,
        optimizer=optimizer,
        lr=float(lr),
        l1=float(l1),
        dataset=dataset.name,
    )


def finetune(model, dataset, *, epochs: int, **kwargs) -> TrainingResult:
    """Retrain a pruned model; its masks stay applied so pruned weights stay exactly zero.

    Same options as :func:`train`, which it calls: masks are forward pre-hooks
    (``weight = weight_orig * weight_mask``), so no special handling is needed;
    this twin exists to say so. A model without masks is simply trained.
    """
    if not any(hasattr(m, "weight_mask") for m in model.modules()):
        log.info("finetune: the model carries no pruning mask; training it as it is")
    return train(model, dataset, epochs=epochs, **kwargs)
