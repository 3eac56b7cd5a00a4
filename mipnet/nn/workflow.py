"""The pruning pipeline in one place: train dense → allocate → prune → fine-tune → evaluate.

The demo, the benchmarks, the notebooks and :mod:`mipnet.nn.sweeps` call these functions
instead of chaining :mod:`mipnet.nn.training`, :mod:`mipnet.sparsity` and
:mod:`mipnet.nn.pruning` themselves: :func:`prune_and_finetune` is *the* prune -> fine-tune
-> evaluate chain (with optional intermediate fine-tuning stages, see ``on_stage``).

Work units are pure functions of their inputs: :func:`prune_and_finetune` deep-copies
the model it is given, and :func:`sweep_seed` (one seed: train dense once, then every
(method, density) variant from a copy of it) depends only on its arguments, so a sweep
can be spread over processes or a Dask/Ray cluster seed by seed.
:func:`sparsity_sweep` runs the seeds one after another and gathers a :class:`SweepResult`.

Methods
-------
``"uniform"`` (or ``"magnitude"``, :func:`mipnet.nn.pruning.prune`'s name for it)
    Layer-wise magnitude pruning, the same density in every hidden layer (output layer dense).
``"allocated"``
    Layer-wise magnitude pruning at the per-layer densities of
    :func:`mipnet.sparsity.allocate_sparsity` (Cai et al. 2023).
``"global"``
    One magnitude threshold over all hidden layers.
``"random"``
    Random weights at the uniform per-layer densities (the control of Cai et al.).
``"sipp"``
    SiPP sensitivities (deterministic variant) at the uniform per-layer densities.
``"snip"``
    SNIP scores, one global top-k.

A *density* always means the fraction of the hidden layers' weights that is kept; the
output layer keeps all its weights, as in Cai et al.'s experiments.

Reference
---------
J. Cai, K.-N. Nguyen, N. Shrestha, A. Good, R. Tu, X. Yu, S. Zhe, T. Serra, "Getting away
with more network pruning: from sparsity to geometry and linear regions", CPAIOR 2023,
arXiv:2301.07966. Their protocol: train 15 epochs (SGD, lr 1e-2, batch 128), prune once,
fine-tune 15 epochs, average over seeds.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from mipnet.core.errors import DatasetError, InvalidArgumentError, InvalidNetworkError, PruningError

__all__ = [
    "WORKFLOW_METHODS",
    "METHOD_ALIASES",
    "DenseRun",
    "PruneRun",
    "train_cell",
    "prune_cell",
    "SweepResult",
    "train_dense",
    "prune_and_finetune",
    "sweep_seed",
    "sparsity_sweep",
    "allocation_for",
]

log = logging.getLogger(__name__)

#: Workflow method name -> :func:`mipnet.nn.pruning.prune` method.
WORKFLOW_METHODS = {
    "uniform": "magnitude",
    "allocated": "magnitude",
    "global": "global",
    "random": "random",
    "sipp": "sipp",
    "snip": "snip",
}

#: Names :func:`prune_and_finetune` also accepts: :func:`mipnet.nn.pruning.prune`'s own.
METHOD_ALIASES = {"magnitude": "uniform"}


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class DenseRun:
    """The dense model of one seed, before any pruning."""

    seed: int
    test_accuracy: float
    train_accuracy: float
    epochs: int
    seconds_per_epoch: float
    seconds: float
    device: str

    def to_dict(self) -> dict:
        return dict(seed=self.seed, test_accuracy=self.test_accuracy, train_accuracy=self.train_accuracy,
                    epochs=self.epochs, seconds_per_epoch=self.seconds_per_epoch, seconds=self.seconds,
                    device=self.device)

    def __str__(self) -> str:
        return (f"dense (seed {self.seed}): test accuracy {self.test_accuracy:.4f} after {self.epochs} epoch(s), "
                f"{self.seconds_per_epoch:.3f} s/epoch on {self.device}")


@dataclass(frozen=True, eq=False)
class PruneRun:
    """One pruned and fine-tuned variant of a dense model.

    Attributes
    ----------
    method : str
        One of :data:`WORKFLOW_METHODS`.
    density : float
        Requested fraction of hidden-layer weights kept.
    seed : int
    requested_densities : tuple of float or None
        Per weight matrix, for the layer-wise methods (``allocated``: those of
        :func:`mipnet.sparsity.allocate_sparsity`).
    achieved_densities : tuple of float
        Kept / all weights per weight matrix, read from the masks.
    kept, sizes : tuple of int
        Weights kept and weights in all, per weight matrix.
    hidden_density : float
        Kept / all weights over the hidden layers (the output layer excluded).
    accuracy_dense, accuracy_pruned, accuracy_finetuned : float
        Test accuracy before pruning, right after pruning, after fine-tuning.
    finetune_epochs : int
    finetune_seconds_per_epoch : float
    seconds : float
        Pruning, fine-tuning and evaluation together.
    model : torch.nn.Module or None
        The fine-tuned model with its masks made permanent (exact zeros), or None when
        the sweep was asked not to keep models. :meth:`network` converts it.
    report : PruningReport or None
        What :func:`mipnet.nn.pruning.prune` did (not part of :meth:`to_dict`).
    finetuning : tuple of dict
        :meth:`mipnet.nn.training.TrainingResult.to_dict` of each fine-tuning call, one
        per fine-tuning stage (empty without fine-tuning; not part of :meth:`to_dict`).
    """

    method: str
    density: float
    seed: int
    requested_densities: tuple | None
    achieved_densities: tuple
    kept: tuple
    sizes: tuple
    hidden_density: float
    accuracy_dense: float
    accuracy_pruned: float
    accuracy_finetuned: float
    finetune_epochs: int
    finetune_seconds_per_epoch: float
    seconds: float
    model: object = field(default=None, repr=False, compare=False)
    report: object = field(default=None, repr=False, compare=False)
    finetuning: tuple = field(default=(), repr=False, compare=False)

    def network(self):
        """The fine-tuned pruned model as a :class:`mipnet.Network` (float64)."""
        if self.model is None:
            raise InvalidArgumentError("this run kept no model; run it with keep_model=True (keep_models=True)")
        from mipnet.io.torch import from_torch

        return from_torch(self.model)

    def without_model(self) -> "PruneRun":
        """The same record with ``model=None`` (cheap to keep many of)."""
        return PruneRun(**{**self._fields(), "model": None})

    def _fields(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def to_dict(self) -> dict:
        d = self._fields()
        for k in ("model", "report", "finetuning"):
            d.pop(k)
        for k in ("requested_densities", "achieved_densities", "kept", "sizes"):
            d[k] = None if d[k] is None else list(d[k])
        return d

    def __str__(self) -> str:
        layers = ", ".join(f"{k}/{s}" for k, s in zip(self.kept, self.sizes))
        return (f"{self.method} at density {self.density:g} (seed {self.seed}): kept {layers}; test accuracy "
                f"dense {self.accuracy_dense:.4f}, pruned {self.accuracy_pruned:.4f}, "
                f"fine-tuned {self.accuracy_finetuned:.4f} ({self.seconds:.1f} s)")


def _mean_std(x) -> tuple[float, float]:
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


@dataclass(frozen=True, eq=False)
class SweepResult:
    """All runs of a sparsity sweep, with aggregation helpers.

    Attributes
    ----------
    dataset : str
    widths : tuple of int
    densities, methods, seeds : tuple
    epochs, finetune_epochs : int
    dense : tuple of DenseRun
        One per seed.
    runs : tuple of PruneRun
        One per (seed, method, density), in that order.
    allocations : dict
        ``{density: per-layer densities}`` from :func:`mipnet.sparsity.allocate_sparsity`
        (empty when ``"allocated"`` was not run).
    seconds : float
    """

    dataset: str
    widths: tuple
    densities: tuple
    methods: tuple
    seeds: tuple
    epochs: int
    finetune_epochs: int
    dense: tuple
    runs: tuple
    allocations: dict
    seconds: float

    def table(self, stage: str = "finetuned") -> list[dict]:
        """Mean and sample standard deviation (ddof 1; 0 for one seed) of the test accuracy
        over seeds, one row per (method, density) in the order of ``methods`` and ``densities``.

        ``stage``: ``"finetuned"`` (default) or ``"pruned"`` (before fine-tuning). Each row also
        carries the other stage's mean and the mean achieved hidden-layer density.
        """
        if stage not in ("finetuned", "pruned"):
            raise InvalidArgumentError(f"stage must be 'finetuned' or 'pruned', got {stage!r}")
        other = "pruned" if stage == "finetuned" else "finetuned"
        rows = []
        for m in self.methods:
            for d in self.densities:
                rs = [r for r in self.runs if r.method == m and r.density == d]
                mean, std = _mean_std([getattr(r, "accuracy_" + stage) for r in rs])
                rows.append({
                    "method": m,
                    "density": d,
                    "n": len(rs),
                    "mean": mean,
                    "std": std,
                    f"mean_{other}": _mean_std([getattr(r, "accuracy_" + other) for r in rs])[0],
                    "hidden_density": _mean_std([r.hidden_density for r in rs])[0],
                })
        return rows

    def compare(self, method: str = "allocated", baseline: str = "uniform", stage: str = "finetuned") -> list[dict]:
        """Paired comparison per density: ``method - baseline`` accuracy on the same seed.

        Returns one row per density with ``diff_mean``, ``diff_std`` (ddof 1), ``diff_sem``
        (standard error), ``wins``/``losses``/``ties`` over seeds, ``ratio`` (mean accuracy of
        ``method`` over that of ``baseline``) and ``n`` (seeds with both runs).
        """
        for name, v in (("method", method), ("baseline", baseline)):
            if v not in self.methods:
                raise InvalidArgumentError(f"{name} {v!r} was not run in this sweep; methods: {list(self.methods)}")
        key = "accuracy_" + stage
        out = []
        for d in self.densities:
            a = {r.seed: getattr(r, key) for r in self.runs if r.method == method and r.density == d}
            b = {r.seed: getattr(r, key) for r in self.runs if r.method == baseline and r.density == d}
            common = sorted(set(a) & set(b))
            diff = np.array([a[s] - b[s] for s in common])
            mean, std = _mean_std(diff)
            ma, mb = _mean_std([a[s] for s in common])[0], _mean_std([b[s] for s in common])[0]
            out.append({
                "density": d,
                "n": len(common),
                "method_mean": ma,
                "baseline_mean": mb,
                "diff_mean": mean,
                "diff_std": std,
                "diff_sem": std / math.sqrt(len(common)) if len(common) > 1 else float("nan"),
                "wins": int((diff > 0).sum()),
                "losses": int((diff < 0).sum()),
                "ties": int((diff == 0).sum()),
                "ratio": ma / mb if mb > 0 else float("nan"),
            })
        return out

    @property
    def dense_accuracy(self) -> tuple[float, float]:
        """Mean and std of the dense models' test accuracy over seeds."""
        return _mean_std([r.test_accuracy for r in self.dense])

    @property
    def seconds_per_epoch(self) -> float:
        """Mean seconds per dense training epoch."""
        return float(np.mean([r.seconds_per_epoch for r in self.dense])) if self.dense else float("nan")

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "widths": list(self.widths),
            "densities": list(self.densities),
            "methods": list(self.methods),
            "seeds": list(self.seeds),
            "epochs": self.epochs,
            "finetune_epochs": self.finetune_epochs,
            "dense": [r.to_dict() for r in self.dense],
            "runs": [r.to_dict() for r in self.runs],
            "allocations": {str(k): list(v) for k, v in self.allocations.items()},
            "table": self.table(),
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "SweepResult":
        """Rebuild a result from :meth:`to_dict` output (e.g. a saved JSON file); models are not kept."""
        try:
            runs = []
            for r in d["runs"]:
                r = dict(r)
                for k in ("requested_densities", "achieved_densities", "kept", "sizes"):
                    r[k] = None if r[k] is None else tuple(r[k])
                runs.append(PruneRun(**r))
            return cls(
                dataset=d["dataset"], widths=tuple(d["widths"]), densities=tuple(d["densities"]),
                methods=tuple(d["methods"]), seeds=tuple(d["seeds"]), epochs=int(d["epochs"]),
                finetune_epochs=int(d["finetune_epochs"]), dense=tuple(DenseRun(**x) for x in d["dense"]),
                runs=tuple(runs), allocations={float(k): tuple(v) for k, v in d["allocations"].items()},
                seconds=float(d["seconds"]),
            )
        except (KeyError, TypeError) as exc:
            raise InvalidArgumentError(f"not a SweepResult dictionary (from SweepResult.to_dict): {exc}") from None

    def __str__(self) -> str:
        dm, ds = self.dense_accuracy
        head = (f"sparsity sweep on {self.dataset}, {'-'.join(map(str, self.widths))}: {len(self.seeds)} seed(s), "
                f"{self.epochs}+{self.finetune_epochs} epochs; dense test accuracy {dm:.4f} ± {ds:.4f}")
        lines = [head, f"{'method':>10} " + " ".join(f"{d:>17g}" for d in self.densities)]
        rows = {(r["method"], r["density"]): r for r in self.table()}
        for m in self.methods:
            cells = [f"{rows[m, d]['mean']:.4f} ± {rows[m, d]['std']:.4f}" for d in self.densities]
            lines.append(f"{m:>10} " + " ".join(f"{c:>17}" for c in cells))
        lines.append(f"{self.seconds:.1f} s in all")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- validation
@contextlib.contextmanager
def torch_threads(n):
    """Temporarily set torch's CPU thread count (no-op for None)."""
    if n is None:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _check_method(method) -> str:
    if method not in WORKFLOW_METHODS and method not in METHOD_ALIASES:
        names = ", ".join([*WORKFLOW_METHODS, *METHOD_ALIASES])
        raise PruningError(f"method must be one of {names}, got {method!r}")
    return method


def _check_stages(finetune_epochs) -> tuple[int, ...]:
    """An epoch count >= 0, or increasing epoch counts >= 0 (the fine-tuning stages)."""
    if isinstance(finetune_epochs, (int, np.integer)) and not isinstance(finetune_epochs, bool):
        return (_check_count(finetune_epochs, "finetune_epochs"),)
    if isinstance(finetune_epochs, (str, bytes)) or not hasattr(finetune_epochs, "__iter__"):
        raise InvalidArgumentError(f"finetune_epochs must be an integer >= 0 or increasing integers >= 0, "
                                   f"got {finetune_epochs!r}")
    st = tuple(_check_count(e, f"finetune_epochs[{i}]") for i, e in enumerate(finetune_epochs))
    if not st or list(st) != sorted(set(st)):
        raise InvalidArgumentError(f"finetune_epochs must be increasing epoch counts >= 0, e.g. (0, 10), "
                                   f"got {list(st)}")
    return st


def _check_density(d, name="density") -> float:
    try:
        x = float(d)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a number in (0, 1], got {d!r}") from None
    if not (0.0 < x <= 1.0):
        raise InvalidArgumentError(f"{name} = {d!r} must lie in (0, 1]: the fraction of hidden-layer weights kept")
    return x


def _check_count(v, name, *, minimum=0) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise InvalidArgumentError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def _check_dataset(dataset):
    if not all(hasattr(dataset, a) for a in ("input_dim", "num_classes", "X_train")):
        raise DatasetError(f"dataset must be a mipnet.nn.data.Dataset (e.g. load_dataset('digits')), "
                           f"got {type(dataset).__name__}")
    return dataset


def _check_widths(widths, dataset) -> tuple[int, ...]:
    _check_dataset(dataset)
    try:
        w = tuple(int(x) for x in widths)
    except (TypeError, ValueError):
        raise InvalidNetworkError(f"widths must be a sequence of positive integers, got {widths!r}") from None
    if len(w) < 3 or min(w) < 1:
        raise InvalidNetworkError(f"widths must be (n0, n1, ..., n_out) with at least one hidden layer, got {w}")
    if w[0] != dataset.input_dim:
        raise InvalidNetworkError(f"widths start with {w[0]} but dataset {dataset.name!r} has {dataset.input_dim} "
                                  f"inputs; use widths starting at {dataset.input_dim}")
    if w[-1] != dataset.num_classes:
        raise InvalidNetworkError(f"widths end with {w[-1]} but dataset {dataset.name!r} has {dataset.num_classes} "
                                  f"classes; use widths ending at {dataset.num_classes}")
    return w


def _model_widths(model) -> tuple[int, ...]:
    from torch import nn

    lins = [m for m in model.modules() if isinstance(m, nn.Linear)] if isinstance(model, nn.Module) else []
    if not lins:
        raise InvalidNetworkError(f"model must be a torch MLP with nn.Linear layers, got {type(model).__name__}")
    return (lins[0].in_features,) + tuple(m.out_features for m in lins)


@functools.lru_cache(maxsize=256)
def _allocation(widths: tuple, density: float) -> tuple:
    from mipnet.sparsity import allocate_sparsity

    return tuple(float(x) for x in allocate_sparsity(widths, density=density).densities)


def allocation_for(widths: Sequence[int], density: float) -> tuple[float, ...]:
    """Per-layer densities of :func:`mipnet.sparsity.allocate_sparsity` (hidden layers pruned,
    output dense, binomial rank model), cached per (widths, density)."""
    try:
        w = tuple(int(x) for x in widths)
    except (TypeError, ValueError):
        raise InvalidNetworkError(f"widths must be a sequence of positive integers, got {widths!r}") from None
    return _allocation(w, _check_density(density))


# ---------------------------------------------------------------------------- work units
def train_dense(dataset, widths: Sequence[int], *, epochs: int = 15, seed: int = 0, lr: float = 1e-2,
                batch_size: int = 128, device=None, progress: bool = False, num_threads: int | None = None,
                **train_kw):
    """Build ``make_mlp(widths, seed=seed)`` and train it (Cai et al.: 15 epochs, SGD lr 1e-2, batch 128).

    Returns the :class:`mipnet.nn.training.TrainingResult` (its ``model`` is the trained MLP).
    Extra keyword arguments go to :func:`mipnet.nn.training.train`.
    """
    from mipnet.nn.training import make_mlp, train

    w = _check_widths(widths, dataset)
    _check_count(epochs, "epochs")
    _check_count(seed, "seed")
    model = make_mlp(w, seed=seed)
    return train(model, dataset, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device=device,
                 progress=progress, num_threads=num_threads, **train_kw)


def prune_and_finetune(model, dataset, *, method: str, density: float, finetune_epochs=15, seed: int = 0,
                       densities: Sequence[float] | None = None, prune_output: bool = False,
                       prune_kw: dict | None = None, lr: float = 1e-2, batch_size: int = 128, device=None,
                       num_threads: int | None = None, progress: bool = False, keep_model: bool = True,
                       accuracy_dense: float | None = None,
                       on_stage: Callable[[int, object, float], None] | None = None, **train_kw) -> PruneRun:
    """Prune a copy of ``model`` once, fine-tune it with its mask fixed, and evaluate it.

    The one prune -> fine-tune -> evaluate chain of mipnet: the sweeps, the pruning-gap
    study (:func:`mipnet.nn.sweeps.gap_run`), the demo and the notebooks call it.

    Parameters
    ----------
    model : torch.nn.Module
        A trained MLP (e.g. ``train_dense(...).model``); it is deep-copied, never changed.
    dataset : Dataset
    method : str
        One of :data:`WORKFLOW_METHODS` (see the module notes), or ``"magnitude"``
        (:func:`mipnet.nn.pruning.prune`'s name for ``"uniform"``).
    density : float in (0, 1]
        Fraction of the hidden layers' weights kept; the output layer stays dense
        unless ``prune_output``.
    finetune_epochs : int or sequence of int
        Epochs of fine-tuning (SGD with the masks applied; 0 skips it). Increasing
        counts such as ``(0, 5, 10)`` fine-tune in stages and call ``on_stage`` after
        each (0: right after pruning); the result describes the last stage.
    seed : int
        Seeds the random methods, SiPP's/SNIP's batch and the fine-tuning batch order
        (every stage is seeded with it).
    densities : sequence of float, optional
        Per-weight-matrix densities for ``uniform``/``magnitude``, ``random`` and ``sipp``
        (one per matrix, or one fewer: the output layer then stays dense), overriding
        ``density``.
    prune_output : bool
        Prune the output layer too (layer-wise and global methods).
    prune_kw : dict, optional
        More options for :func:`mipnet.nn.pruning.prune` (``batch_size`` of SiPP's/SNIP's
        data batch, SiPP's ``variant`` and ``delta``).
    lr, batch_size, device, num_threads, progress, **train_kw
        Passed to :func:`mipnet.nn.training.finetune` (e.g. ``optimizer``, ``l1``);
        ``num_threads`` also applies to pruning and evaluation.
    keep_model : bool
        Keep the fine-tuned model (masks made permanent) in the result.
    accuracy_dense : float, optional
        The dense model's test accuracy if already known (otherwise evaluated).
    on_stage : callable, optional
        ``on_stage(epochs, model, accuracy)`` after each stage of ``finetune_epochs``:
        the epochs of fine-tuning done, the pruned model at that point with its masks
        made permanent (read it, do not change it), and its test accuracy.

    Returns
    -------
    PruneRun

    Raises
    ------
    PruningError
        For an unknown ``method``, or per-layer ``densities`` with a method that takes none.
    InvalidArgumentError
        For a density outside (0, 1] or bad epoch counts.
    InvalidNetworkError
        When ``model`` is not an MLP matching ``dataset``.
    """
    from mipnet.nn.pruning import make_permanent, prune
    from mipnet.nn.training import evaluate, finetune

    _check_method(method)
    d = _check_density(density)
    stages = _check_stages(finetune_epochs)
    _check_count(seed, "seed")
    _check_dataset(dataset)
    widths = _check_widths(_model_widths(model), dataset)
    if densities is not None:
        if method not in ("uniform", "magnitude", "random", "sipp"):
            raise PruningError(f"per-layer densities apply to uniform (magnitude), random and sipp, not to {method!r}")
        if isinstance(densities, (str, bytes)) or not hasattr(densities, "__iter__"):
            raise PruningError(f"densities must be a list of numbers in (0, 1], one per weight matrix, "
                               f"got {densities!r}")
    requested = allocation_for(widths, d) if method == "allocated" else None  # validates before any work
    t0 = time.perf_counter()
    with torch_threads(num_threads):
        if accuracy_dense is None:
            accuracy_dense = evaluate(model, dataset)
        m = copy.deepcopy(model)
        kw = dict(prune_kw or {}, seed=seed, prune_output=prune_output)
        if method == "allocated":
            kw["densities"] = [max(x, 1e-12) for x in requested]
        elif densities is not None:
            kw["densities"] = list(densities)
        if method in ("sipp", "snip"):
            kw["data"] = dataset
        _, report = prune(m, WORKFLOW_METHODS[METHOD_ALIASES.get(method, method)], d, **kw)
        acc = acc_pruned = evaluate(m, dataset)
    done, opt_seconds, history = 0, 0.0, []
    for i, e in enumerate(stages):
        if e > done:
            res = finetune(m, dataset, epochs=e - done, lr=lr, batch_size=batch_size, seed=seed, device=device,
                           progress=progress, num_threads=num_threads, **train_kw)
            acc = res.test_accuracy
            opt_seconds += res.seconds_per_epoch * (e - done)
            history.append(res.to_dict())
            done = e
        if on_stage is not None:
            last = i == len(stages) - 1
            on_stage(int(e), make_permanent(m if last else copy.deepcopy(m)), float(acc))
    make_permanent(m)
    hidden = range(len(report.sizes) - 1)
    run = PruneRun(
        method=method,
        density=d,
        seed=int(seed),
        requested_densities=None if report.requested_densities is None else tuple(report.requested_densities),
        achieved_densities=tuple(report.achieved_densities),
        kept=tuple(report.kept),
        sizes=tuple(report.sizes),
        hidden_density=sum(report.kept[i] for i in hidden) / sum(report.sizes[i] for i in hidden),
        accuracy_dense=float(accuracy_dense),
        accuracy_pruned=float(acc_pruned),
        accuracy_finetuned=float(acc),
        finetune_epochs=int(done),
        finetune_seconds_per_epoch=opt_seconds / done if done else 0.0,
        seconds=time.perf_counter() - t0,
        model=m if keep_model else None,
        report=report,
        finetuning=tuple(history),
    )
    log.info("%s", run)
    return run


def _check_sweep(dataset, widths, densities, methods, seeds, epochs, finetune_epochs):
    w = _check_widths(widths, dataset)
    if isinstance(densities, (str, bytes)) or not hasattr(densities, "__iter__"):
        raise InvalidArgumentError(f"densities must be a sequence of numbers in (0, 1], got {densities!r}")
    ds = tuple(_check_density(x, f"densities[{i}]") for i, x in enumerate(densities))
    if isinstance(methods, str):
        methods = (methods,)
    ms = tuple(_check_method(m) for m in methods)
    if isinstance(seeds, (int, np.integer)):
        seeds = (seeds,)
    ss = tuple(_check_count(s, "seeds[...]") for s in seeds)
    for name, v in (("densities", ds), ("methods", ms), ("seeds", ss)):
        if not v:
            raise InvalidArgumentError(f"{name} is empty; give at least one")
        if len(set(v)) != len(v):
            raise InvalidArgumentError(f"{name} lists a value twice: {list(v)}")
    _check_count(epochs, "epochs")
    _check_count(finetune_epochs, "finetune_epochs")
    if "allocated" in ms:
        for d in ds:  # fail now, not after an hour of training
            allocation_for(w, d)
    return w, ds, ms, ss


def train_cell(task, deadline=None):
    """One training run of a sweep as a work unit (:func:`mipnet.parallel.run_units`).

    ``task = (dataset, widths, seed, train_kw)``; returns ``(True, (DenseRun, TrainingResult))``.
    """
    dataset, w, seed, kw = task
    dense = train_dense(dataset, w, seed=seed, **kw)
    drun = DenseRun(seed=int(seed), test_accuracy=dense.test_accuracy, train_accuracy=dense.train_accuracy,
                    epochs=int(kw["epochs"]), seconds_per_epoch=dense.seconds_per_epoch, seconds=dense.seconds,
                    device=dense.device)
    log.info("%s", drun)
    return True, (drun, dense)


def prune_cell(task, deadline=None):
    """One cell (method, density, seed) of a sweep as a work unit: ``(True, PruneRun)``.

    ``task = (model, dataset, kwargs)`` for :func:`prune_and_finetune` (the model is copied).
    """
    model, dataset, kw = task
    return True, prune_and_finetune(model, dataset, **kw)


def _sweep_on(executor, dataset, w, ds, ms, ss, *, epochs, finetune_epochs, lr, batch_size, device, num_threads,
              keep_models, progress, on_run):
    """:func:`sparsity_sweep` on an executor: the training runs, then the cells (same order as in-process)."""
    from mipnet.parallel import run_units

    train_kw = dict(epochs=epochs, lr=lr, batch_size=batch_size, device=device, num_threads=num_threads)
    rep = run_units(train_cell, [(dataset, w, s, train_kw) for s in ss], executor, progress=progress,
                    desc=f"sweep {dataset.name}: training")
    if rep.status == "interrupted":
        raise KeyboardInterrupt
    trained = [r.value for r in rep.runs]
    tasks = [(dense.model, dataset, dict(method=m, density=d, finetune_epochs=finetune_epochs, seed=s, lr=lr,
                                         batch_size=batch_size, device=device, num_threads=num_threads,
                                         keep_model=keep_models, accuracy_dense=dense.test_accuracy))
             for s, (_, dense) in zip(ss, trained) for m in ms for d in ds]
    rep = run_units(prune_cell, tasks, executor, progress=progress, desc=f"sweep {dataset.name}: pruning")
    if rep.status == "interrupted":
        raise KeyboardInterrupt
    runs = [r.value for r in rep.runs]
    if on_run is not None:
        for r in runs:
            on_run(r)
    return [d for d, _ in trained], runs


def sweep_seed(dataset, widths: Sequence[int], *, seed: int, densities: Sequence[float], methods: Sequence[str],
               epochs: int = 15, finetune_epochs: int = 15, lr: float = 1e-2, batch_size: int = 128, device=None,
               num_threads: int | None = None, keep_models: bool = False,
               on_run: Callable[[PruneRun], None] | None = None) -> tuple[DenseRun, list[PruneRun]]:
    """One seed of a sweep: train the dense model once, then prune and fine-tune a copy of it
    for every (method, density). A pure function of its arguments (the unit to distribute).

    Returns ``(DenseRun, [PruneRun, ...])`` with runs ordered by method, then density.
    ``on_run`` is called after each run (e.g. to print progress).
    """
    w, ds, ms, _ = _check_sweep(dataset, widths, densities, methods, (seed,), epochs, finetune_epochs)
    _, (drun, dense) = train_cell((dataset, w, int(seed), dict(epochs=epochs, lr=lr, batch_size=batch_size,
                                                               device=device, num_threads=num_threads)))
    runs = []
    for m in ms:
        for d in ds:
            r = prune_and_finetune(dense.model, dataset, method=m, density=d, finetune_epochs=finetune_epochs,
                                   seed=seed, lr=lr, batch_size=batch_size, device=device, num_threads=num_threads,
                                   keep_model=keep_models, accuracy_dense=dense.test_accuracy)
            runs.append(r)
            if on_run is not None:
                on_run(r)
    return drun, runs


def sparsity_sweep(dataset, widths: Sequence[int], *, densities: Sequence[float],
                   methods: Sequence[str] = ("uniform", "allocated", "global", "random", "sipp"),
                   seeds: Sequence[int] = (0, 1, 2, 3, 4), epochs: int = 15, finetune_epochs: int = 15,
                   lr: float = 1e-2, batch_size: int = 128, device=None, num_threads: int | None = None,
                   keep_models: bool = False, progress: bool = False,
                   on_run: Callable[[PruneRun], None] | None = None, executor=None) -> SweepResult:
    """Cai et al.'s experiment: accuracy of pruned-and-fine-tuned MLPs per method and density.

    For every seed (see :func:`sweep_seed`): train ``make_mlp(widths, seed=seed)`` for
    ``epochs`` (SGD, ``lr``, ``batch_size``), then for every method and density prune a copy
    once and fine-tune it for ``finetune_epochs``; record test accuracies.

    Parameters
    ----------
    dataset : Dataset
    widths : sequence of int
        ``(n0, n1, ..., n_out)``; must match the dataset's inputs and classes.
    densities : sequence of float
        Fractions of hidden-layer weights kept.
    methods : sequence of str
        From :data:`WORKFLOW_METHODS`.
    seeds : sequence of int
    epochs, finetune_epochs : int
        Cai et al. use 15 and 15.
    lr, batch_size, device, num_threads
        Training options (:func:`mipnet.nn.training.train`).
    keep_models : bool
        Keep every fine-tuned model in its :class:`PruneRun` (memory grows with the sweep).
    progress : bool
        A tqdm bar over the runs on stderr.
    on_run : callable, optional
        Called with each finished :class:`PruneRun`.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Run the training runs (one per seed), then the cells (seed, method, density) there;
        the result is the one in-process (give ``num_threads``: float sums depend on it).

    Returns
    -------
    SweepResult

    Notes
    -----
    Every dense model is deep-copied before each variant is pruned, so all variants of a
    seed start from the same weights and differences between methods are paired by seed
    (:meth:`SweepResult.compare`).
    """
    w, ds, ms, ss = _check_sweep(dataset, widths, densities, methods, seeds, epochs, finetune_epochs)
    t0 = time.perf_counter()
    bar = None
    if progress and executor is None:
        import sys

        from tqdm.auto import tqdm

        bar = tqdm(total=len(ss) * len(ms) * len(ds), desc=f"sweep {dataset.name}", unit="run", file=sys.stderr)

    def hook(r):
        if bar is not None:
            bar.update(1)
            bar.set_postfix(seed=r.seed, method=r.method, density=f"{r.density:g}", acc=f"{r.accuracy_finetuned:.3f}")
        if on_run is not None:
            on_run(r)

    dense, runs = [], []
    if executor is not None:
        dense, runs = _sweep_on(executor, dataset, w, ds, ms, ss, epochs=epochs, finetune_epochs=finetune_epochs,
                                lr=lr, batch_size=batch_size, device=device, num_threads=num_threads,
                                keep_models=keep_models, progress=progress, on_run=on_run)
    try:
        for s in ss if executor is None else ():
            drun, rs = sweep_seed(dataset, w, seed=s, densities=ds, methods=ms, epochs=epochs,
                                  finetune_epochs=finetune_epochs, lr=lr, batch_size=batch_size, device=device,
                                  num_threads=num_threads, keep_models=keep_models, on_run=hook)
            dense.append(drun)
            runs.extend(rs)
    finally:
        if bar is not None:
            bar.close()
    allocations = {d: allocation_for(w, d) for d in ds} if "allocated" in ms else {}
    return SweepResult(dataset=dataset.name, widths=w, densities=ds, methods=ms, seeds=ss, epochs=int(epochs),
                       finetune_epochs=int(finetune_epochs), dense=tuple(dense), runs=tuple(runs),
                       allocations=allocations, seconds=time.perf_counter() - t0)
