"""Pruning-gap sweeps: prune a trained model (methods x densities x seeds), fine-tune, and
certify each pruned copy with :func:`mipnet.analyses.gap.pruning_gap`.

The torch side of the pruning-gap study; the certificate itself lives in
:mod:`mipnet.analyses.gap`. Each cell (method, density, seed) is one :func:`gap_run`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
from torch import nn

from mipnet.analyses.gap import data_array, pruning_gap
from mipnet.core.domain import Domain, as_domain
from mipnet.core.errors import InvalidArgumentError, InvalidNetworkError
from mipnet.core.network import Network
from mipnet.core.results import json_float
from mipnet.io.torch import from_torch
from mipnet.nn.pruning import PRUNING_METHODS
from mipnet.nn.training import evaluate
from mipnet.nn.workflow import allocation_for, prune_and_finetune, torch_threads, train_dense
from mipnet.parallel import run_units

__all__ = ["GapSweep", "gap_run", "gap_cell", "gap_sweep", "LayerSensitivity", "layer_sensitivity", "GAP_METHODS"]

log = logging.getLogger(__name__)

#: Pruning methods of the sweeps (names of :func:`mipnet.nn.pruning.prune`).
GAP_METHODS = ("random", "magnitude", "sipp")


# ---------------------------------------------------------------------------- sweeps: validation
def _check_methods(methods) -> tuple:
    if isinstance(methods, str):
        methods = (methods,)
    ms = tuple(methods)
    bad = [m for m in ms if m not in ("random", "magnitude", "sipp")]
    if bad or not ms:
        hint = " (the others prune globally and take no per-layer densities)" if set(bad) & set(PRUNING_METHODS) else ""
        raise InvalidArgumentError(f"methods must be a non-empty list from {GAP_METHODS}, got {list(ms)}{hint}")
    if len(set(ms)) != len(ms):
        raise InvalidArgumentError(f"methods lists a value twice: {list(ms)}")
    return ms


def _check_density_spec(d, n_layers: int, name: str):
    """A float in (0, 1] (hidden layers; output dense) or one density per weight matrix."""
    if np.ndim(d) == 0:
        try:
            x = float(d)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"{name} must be a number in (0, 1] or a per-layer list, got {d!r}") from None
        if not (0 < x <= 1):
            raise InvalidArgumentError(f"{name} = {d!r} must lie in (0, 1] (the fraction of weights kept)")
        return x
    try:
        v = tuple(float(x) for x in d)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a number in (0, 1] or a per-layer list, got {d!r}") from None
    if len(v) == n_layers - 1:
        v = v + (1.0,)
    if len(v) != n_layers:
        raise InvalidArgumentError(f"{name} has {len(v)} entries, the model has {n_layers} weight matrices; give one "
                                   f"density per matrix (or {n_layers - 1}: the output layer then stays dense)")
    if not all(0 < x <= 1 for x in v):
        raise InvalidArgumentError(f"{name} = {list(v)}: every per-layer density must lie in (0, 1]")
    return v


def _check_stages(finetune_epochs) -> tuple:
    if isinstance(finetune_epochs, (int, np.integer)) and not isinstance(finetune_epochs, bool):
        finetune_epochs = (0, int(finetune_epochs)) if finetune_epochs > 0 else (0,)
    try:
        st = tuple(int(e) for e in finetune_epochs)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"finetune_epochs must be a list of epoch counts >= 0, e.g. (0, 10), "
                                   f"got {finetune_epochs!r}") from None
    if not st or any(e < 0 for e in st) or list(st) != sorted(set(st)):
        raise InvalidArgumentError(f"finetune_epochs must be increasing epoch counts >= 0, e.g. (0, 10), got {list(st)}")
    return st


def _linear_count(model) -> int:
    if not isinstance(model, nn.Module):
        raise InvalidNetworkError(f"model must be a trained torch MLP (nn.Module), got {type(model).__name__}")
    n = sum(1 for m in model.modules() if isinstance(m, nn.Linear))
    if n < 2:
        raise InvalidNetworkError("model must be an MLP with at least one hidden layer (two nn.Linear layers)")
    return n


def _density_label(d) -> str:
    return f"{d:g}" if np.ndim(d) == 0 else "/".join(f"{x:g}" for x in d)


# ---------------------------------------------------------------------------- the work unit
def gap_run(
    model,
    dataset,
    domain,
    *,
    method: str,
    density,
    seed: int = 0,
    finetune_epochs=(0,),
    data=None,
    epsilon: Optional[float] = None,
    time_limit: Optional[float] = None,
    time_limit_per_milp: Optional[float] = None,
    lr: float = 1e-2,
    batch_size: int = 128,
    num_threads: Optional[int] = 1,
    gap_kw: Optional[dict] = None,
    original: Optional[Network] = None,
    accuracy_dense: Optional[float] = None,
) -> list:
    """Prune a copy of ``model`` once, then measure its gaps at each fine-tuning stage.

    A pure function of its arguments (the unit a sweep distributes). Pruning and
    fine-tuning are :func:`mipnet.nn.workflow.prune_and_finetune`'s; this adds the
    certificate (:func:`mipnet.analyses.gap.pruning_gap`) at each stage.

    Parameters
    ----------
    model : torch.nn.Module
        The trained original (deep-copied, never changed).
    dataset : Dataset
        SiPP's batch and the fine-tuning data; its test split is the default ``data``.
    domain : Domain
    method : {"random", "magnitude", "sipp"}
    density : float or sequence of float
        A float prunes every hidden layer to it (output layer dense); a sequence gives
        one density per weight matrix.
    seed : int
        Seeds the random mask, SiPP's batch and the fine-tuning order.
    finetune_epochs : sequence of int
        Increasing epoch counts; the gap is measured after each (0: right after pruning).
    data : array, optional
        Points for the data gaps (default: the dataset's test split).
    epsilon, time_limit, time_limit_per_milp
        Passed to :func:`pruning_gap` (time limits per stage).
    lr, batch_size, num_threads
        Fine-tuning options (:func:`mipnet.nn.training.finetune`, SGD).
    gap_kw : dict, optional
        More options for :func:`pruning_gap`.
    original : Network, optional
        ``from_torch(model)`` if already converted.
    accuracy_dense : float, optional
        The original's test accuracy if already known (saves one evaluation).

    Returns
    -------
    list of dict
        One row per stage: method, density, seed, finetune_epochs, achieved per-layer
        densities, test accuracy, worst-case bounds, data gaps, ratios, time.
    """
    if method not in GAP_METHODS:
        raise InvalidArgumentError(f"method must be one of {GAP_METHODS}, got {method!r}")
    n_lin = _linear_count(model)
    dens = _check_density_spec(density, n_lin, "density")
    stages = _check_stages(finetune_epochs)
    f = original if original is not None else from_torch(model)
    X = data_array(data if data is not None else dataset, f.input_dim)
    dom = as_domain(domain, f.input_dim)
    rows = []
    t0 = time.perf_counter()

    def measure(e, snap, acc):
        g = from_torch(snap)
        res = pruning_gap(f, g, dom, data=X, epsilon=epsilon, time_limit=time_limit,
                          time_limit_per_milp=time_limit_per_milp, seed=int(seed), **(gap_kw or {}))
        d = res.data
        rows.append({
            "method": method,
            "density": dens if np.ndim(dens) == 0 else list(dens),
            "density_label": _density_label(dens),
            "seed": int(seed),
            "finetune_epochs": int(e),
            "achieved_densities": None,  # the masks' densities, filled in below
            "accuracy": float(acc),
            "lower": float(res.lower),
            "upper": float(res.upper),
            "exact": bool(res.exact),
            "status": res.status,
            "data_mean": d["mean"],
            "data_p50": d.get("p50"),
            "data_p90": d.get("p90"),
            "data_p99": d.get("p99"),
            "data_max": d["max"],
            "relative_mean": d["relative_mean"],
            "relative_max": d["relative_max"],
            "witness_relative": json_float(res.witness_relative_gap),
            "fraction_within": d["fraction_within"],
            "ratio_lower": json_float(res.ratio_lower),
            "ratio_upper": json_float(res.ratio_upper),
            "num_milps": res.num_milps,
            "seconds": res.seconds,
        })
        log.info("%s density %s seed %d, %d ft epochs: gap in [%.4g, %.4g], data max %.4g (%.1f s)", method,
                 _density_label(dens), seed, e, res.lower, res.upper, d["max"], res.seconds)

    layerwise = {} if np.ndim(dens) == 0 else {"densities": list(dens)}
    run = prune_and_finetune(model, dataset, method=method, density=dens if np.ndim(dens) == 0 else min(dens),
                       finetune_epochs=stages, seed=int(seed), lr=lr, batch_size=batch_size, num_threads=num_threads,
                       keep_model=False, accuracy_dense=accuracy_dense, on_stage=measure, **layerwise)
    for r in rows:
        r["achieved_densities"] = list(run.achieved_densities)
    log.debug("gap_run took %.1f s", time.perf_counter() - t0)
    return rows


def gap_cell(task, deadline=None):
    """One cell of a sweep as a work unit (:func:`mipnet.parallel.run_units`): ``(True, rows)``.

    ``task = (model, dataset, domain, kwargs)``; ``rows = gap_run(model, dataset, domain, **kwargs)``.
    """
    model, dataset, domain, kw = task
    return True, gap_run(model, dataset, domain, **kw)


def _run_cells(tasks: list, executor, *, progress: bool, desc: str) -> list:
    """The rows of every cell, in the order of ``tasks`` (Ctrl-C: KeyboardInterrupt, as in-process)."""
    rep = run_units(gap_cell, tasks, executor, progress=progress, desc=desc)
    if rep.status == "interrupted":
        raise KeyboardInterrupt
    return [r.value for r in rep.runs]


# ---------------------------------------------------------------------------- the sweep
def _agg(values):
    v = np.array([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return None, None, None
    return float(v.mean()), float(v.min()), float(v.max())


@dataclass(frozen=True, eq=False)
class GapSweep:
    """Worst-case vs data gaps of pruned networks over methods, densities, masks and fine-tuning.

    ``rows`` holds one dict per (method, density, mask seed, fine-tuning stage), as
    returned by :func:`gap_run`; :meth:`table` aggregates over the masks.
    """

    dataset: str
    widths: tuple
    domain: dict
    methods: tuple
    densities: tuple
    masks_per_rate: int
    finetune_epochs: tuple
    dense_accuracy: float
    rows: tuple
    seconds: float
    settings: dict = field(default_factory=dict)

    def table(self) -> list:
        """One row per (method, density, stage): mean/min/max over masks of the gaps and ratios."""
        groups: dict = {}
        for r in self.rows:
            groups.setdefault((r["method"], r["density_label"], r["finetune_epochs"]), []).append(r)
        out = []
        for (m, dl, e), rs in groups.items():
            lo, lo_min, lo_max = _agg(r["lower"] for r in rs)
            up, _, up_max = _agg(r["upper"] for r in rs)
            dm, _, _ = _agg(r["data_max"] for r in rs)
            dmean, _, _ = _agg(r["data_mean"] for r in rs)
            rl, rl_min, _ = _agg(r["ratio_lower"] for r in rs)
            ru, _, ru_max = _agg(r["ratio_upper"] for r in rs)
            acc, _, _ = _agg(r["accuracy"] for r in rs)
            rel, _, _ = _agg(r["relative_mean"] for r in rs)
            out.append({"method": m, "density": rs[0]["density"], "density_label": dl, "finetune_epochs": e,
                        "masks": len(rs), "accuracy": acc, "lower": lo, "lower_min": lo_min, "lower_max": lo_max,
                        "upper": up, "upper_max": up_max, "data_max": dm, "data_mean": dmean,
                        "relative_mean": rel, "ratio_lower": rl, "ratio_lower_min": rl_min, "ratio_upper": ru,
                        "ratio_upper_max": ru_max, "exact": sum(r["exact"] for r in rs),
                        "seconds": float(sum(r["seconds"] for r in rs))})
        return out

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "widths": list(self.widths), "domain": dict(self.domain),
                "methods": list(self.methods),
                "densities": [d if np.ndim(d) == 0 else list(d) for d in self.densities],
                "masks_per_rate": self.masks_per_rate, "finetune_epochs": list(self.finetune_epochs),
                "dense_accuracy": self.dense_accuracy, "rows": [dict(r) for r in self.rows],
                "seconds": self.seconds, "settings": dict(self.settings)}

    @classmethod
    def from_dict(cls, d: dict) -> "GapSweep":
        try:
            return cls(dataset=d["dataset"], widths=tuple(d["widths"]), domain=dict(d["domain"]),
                       methods=tuple(d["methods"]),
                       densities=tuple(x if np.ndim(x) == 0 else tuple(x) for x in d["densities"]),
                       masks_per_rate=int(d["masks_per_rate"]), finetune_epochs=tuple(d["finetune_epochs"]),
                       dense_accuracy=float(d["dense_accuracy"]), rows=tuple(dict(r) for r in d["rows"]),
                       seconds=float(d["seconds"]), settings=dict(d.get("settings", {})))
        except (KeyError, TypeError) as exc:
            raise InvalidArgumentError(f"not a GapSweep dictionary (from GapSweep.to_dict): {exc}") from None

    def plot(self, path=None, **kw):
        """:func:`mipnet.plotting.plot_gap_vs_density` of this sweep."""
        from mipnet.plotting import plot_gap_vs_density

        return plot_gap_vs_density(self, path=path, **kw)

    def __str__(self) -> str:
        lines = [f"pruning gap sweep on {self.dataset}, {'-'.join(map(str, self.widths))} "
                 f"(dense accuracy {self.dense_accuracy:.4f}), domain {self.domain.get('description', '')}; "
                 f"{self.seconds:.0f} s",
                 f"{'method':>9} {'density':>9} {'ft':>3} {'masks':>5} {'acc':>6} {'worst found':>11} "
                 f"{'proven <=':>10} {'data max':>9} {'data mean':>9} {'worst/data max':>15}"]
        for r in self.table():
            ratio = (f"{r['ratio_lower']:.3g}" if r["exact"] == r["masks"] else
                     f"{r['ratio_lower']:.3g}..{r['ratio_upper']:.3g}")
            lines.append(f"{r['method']:>9} {r['density_label']:>9} {r['finetune_epochs']:>3} {r['masks']:>5} "
                         f"{r['accuracy']:>6.3f} {r['lower']:>11.4g} {r['upper']:>10.4g} {r['data_max']:>9.4g} "
                         f"{r['data_mean']:>9.4g} {ratio:>15}")
        return "\n".join(lines)


def _domain_info(dom: Domain) -> dict:
    lo, hi = dom.lower, dom.upper
    if np.all(lo == lo[0]) and np.all(hi == hi[0]) and not dom.has_constraints:
        desc = f"box [{lo[0]:g}, {hi[0]:g}]^{dom.dim}"
    else:
        desc = f"{type(dom).__name__} in {dom.dim} dimensions"
    return {"description": desc, "dim": dom.dim, "lower_min": float(lo.min()), "upper_max": float(hi.max()),
            "constraints": 0 if dom.A is None else int(dom.A.shape[0])}


def gap_sweep(
    model,
    dataset,
    domain=None,
    *,
    widths: Optional[Sequence[int]] = None,
    epochs: int = 30,
    train_kw: Optional[dict] = None,
    methods: Sequence[str] = GAP_METHODS,
    densities: Sequence = (0.7, 0.5, 0.3),
    masks_per_rate: int = 3,
    finetune_epochs=(0, 10),
    epsilon: Optional[float] = None,
    time_limit: Optional[float] = None,
    time_limit_per_milp: Optional[float] = None,
    seed: int = 0,
    lr: float = 1e-2,
    batch_size: int = 128,
    num_threads: Optional[int] = 1,
    gap_kw: Optional[dict] = None,
    progress: bool = False,
    on_row=None,
    executor=None,
) -> GapSweep:
    """Worst-case vs data gaps over pruning methods, rates, random masks and fine-tuning.

    Parameters
    ----------
    model : torch.nn.Module or None
        The trained original; ``None`` trains ``make_mlp(widths)`` on ``dataset``
        first (:func:`mipnet.nn.workflow.train_dense`, ``epochs``, ``train_kw``).
    dataset : Dataset
    domain : Domain, optional
        Default: the dataset's ``input_range`` box.
    methods : sequence of {"random", "magnitude", "sipp"}
    densities : sequence of float or of per-layer sequences
        Kept fractions (a float: every hidden layer, output dense).
    masks_per_rate : int
        Masks per (method, density), seeds ``seed, seed + 1, ...``; a method whose mask
        does not depend on the seed (magnitude) is run once.
    finetune_epochs : sequence of int
        Stages at which the gap is measured (0 = right after pruning).
    epsilon, time_limit, time_limit_per_milp, gap_kw
        Passed to :func:`pruning_gap` (time limits per pruned network and stage).
    seed, lr, batch_size, num_threads
        Seeds and fine-tuning options.
    progress : bool
        A tqdm bar on stderr.
    on_row : callable, optional
        Called with each finished row.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Run the cells (method, density, mask seed: :func:`gap_run`) there; the rows are the
        same and in the same order as in-process (``on_row`` is then called at the end).

    Returns
    -------
    GapSweep

    Notes
    -----
    The typical-case guarantees this puts in perspective: SiPP (Baykal, Liebenwein et
    al., arXiv:1910.05422) and the random/magnitude pruning bounds of Qian and Klabjan
    (ICML 2021, arXiv:2105.10065).
    """

    t0 = time.perf_counter()
    ms = _check_methods(methods)
    stages = _check_stages(finetune_epochs)
    if isinstance(masks_per_rate, bool) or int(masks_per_rate) != masks_per_rate or masks_per_rate < 1:
        raise InvalidArgumentError(f"masks_per_rate must be an integer >= 1, got {masks_per_rate!r}")
    if isinstance(densities, (str, bytes)) or not hasattr(densities, "__iter__") or len(densities) == 0:
        raise InvalidArgumentError(f"densities must be a non-empty sequence (floats or per-layer lists), "
                                   f"got {densities!r}")
    if model is None:
        if widths is None:
            raise InvalidArgumentError("give a trained model, or model=None with widths=(n0, ..., n_out) to train one")
        model = train_dense(dataset, widths, epochs=epochs, seed=seed, num_threads=num_threads,
                            **(train_kw or {})).model
    n_lin = _linear_count(model)
    ds = tuple(_check_density_spec(d, n_lin, f"densities[{i}]") for i, d in enumerate(densities))
    f = from_torch(model)
    dom = as_domain(domain if domain is not None else
                    (np.full(f.input_dim, dataset.input_range[0]), np.full(f.input_dim, dataset.input_range[1])),
                    f.input_dim)

    with torch_threads(num_threads):
        dense_acc = float(evaluate(model, dataset))
    jobs = [(m, d, seed + i) for m in ms for d in ds for i in range(1 if m == "magnitude" else int(masks_per_rate))]
    bar = None
    if progress and executor is None:
        import sys

        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=f"gap sweep {dataset.name}", unit="mask", file=sys.stderr)
    rows = []
    kw = dict(finetune_epochs=stages, epsilon=epsilon, time_limit=time_limit, time_limit_per_milp=time_limit_per_milp,
              lr=lr, batch_size=batch_size, num_threads=num_threads, gap_kw=gap_kw, original=f,
              accuracy_dense=dense_acc)
    if executor is not None:  # the cells as units; rows in the order of the jobs
        tasks = [(model, dataset, dom, {**kw, "method": m, "density": d, "seed": s}) for m, d, s in jobs]
        for rs in _run_cells(tasks, executor, progress=progress, desc=f"gap sweep {dataset.name}"):
            rows.extend(rs)
            for r in rs if on_row is not None else ():
                on_row(r)
        jobs = []
    try:
        for m, d, s in jobs:
            rs = gap_run(model, dataset, dom, method=m, density=d, seed=s, **kw)
            rows.extend(rs)
            if on_row is not None:
                for r in rs:
                    on_row(r)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    settings = {"epsilon": epsilon, "time_limit": time_limit, "time_limit_per_milp": time_limit_per_milp,
                "seed": seed, "lr": lr, "batch_size": batch_size}
    return GapSweep(dataset=dataset.name, widths=tuple(f.widths), domain=_domain_info(dom), methods=ms,
                    densities=ds, masks_per_rate=int(masks_per_rate), finetune_epochs=stages,
                    dense_accuracy=dense_acc, rows=tuple(rows), seconds=time.perf_counter() - t0,
                    settings=settings)


# ---------------------------------------------------------------------------- per-layer sensitivity
@dataclass(frozen=True, eq=False)
class LayerSensitivity:
    """Worst-case gap when one weight matrix at a time is pruned to ``density``.

    ``rows[i]`` prunes matrix ``layers[i]`` only (1.0 elsewhere). ``uniform`` prunes every
    hidden layer to ``density``; ``allocated`` uses the per-layer densities of
    :func:`mipnet.sparsity.allocate_sparsity` for the same overall hidden density
    (``allocation``), both with the same method: the allocation's choice of where to
    keep weights can be read against the layers' measured tolerance.
    """

    widths: tuple
    density: float
    method: str
    rows: tuple
    uniform: Optional[dict]
    allocated: Optional[dict]
    allocation: Optional[tuple]
    dense_accuracy: float
    seconds: float

    @property
    def ranking(self) -> list:
        """Layers from most tolerant (smallest proven worst-case gap) to most sensitive."""
        return [r["layer"] for r in sorted(self.rows, key=lambda r: (r["upper"], r["lower"]))]

    def to_dict(self) -> dict:
        return {"widths": list(self.widths), "density": self.density, "method": self.method,
                "rows": [dict(r) for r in self.rows], "uniform": self.uniform, "allocated": self.allocated,
                "allocation": None if self.allocation is None else list(self.allocation),
                "ranking": self.ranking, "dense_accuracy": self.dense_accuracy, "seconds": self.seconds}

    def __str__(self) -> str:
        w = "-".join(map(str, self.widths))
        lines = [f"per-layer sensitivity of {w} ({self.method} pruning, one matrix at density {self.density:g}; "
                 f"dense accuracy {self.dense_accuracy:.4f})",
                 f"{'pruned':>18} {'acc':>6} {'worst found':>11} {'proven <=':>10} {'data max':>9} {'worst/data':>10}"]

        def line(name, r):
            return (f"{name:>18} {r['accuracy']:>6.3f} {r['lower']:>11.4g} {r['upper']:>10.4g} "
                    f"{r['data_max']:>9.4g} {(r['ratio_lower'] or float('nan')):>10.3g}")

        for r in self.rows:
            lines.append(line(f"layer {r['layer']} ({self.widths[r['layer']]}->{self.widths[r['layer'] + 1]})", r))
        if self.uniform is not None:
            lines.append(line("all hidden (unif.)", self.uniform))
        if self.allocated is not None:
            lines.append(line("allocated", self.allocated))
            lines.append("  allocation: " + ", ".join(f"{x:.3g}" for x in self.allocation))
        lines.append(f"  most tolerant first: layers {self.ranking}")
        return "\n".join(lines)


def layer_sensitivity(
    model,
    dataset,
    domain=None,
    *,
    density: float,
    method: str = "magnitude",
    layers: Optional[Sequence[int]] = None,
    compare: bool = True,
    seed: int = 0,
    finetune_epochs: int = 0,
    epsilon: Optional[float] = None,
    time_limit: Optional[float] = None,
    time_limit_per_milp: Optional[float] = None,
    num_threads: Optional[int] = 1,
    gap_kw: Optional[dict] = None,
    executor=None,
) -> LayerSensitivity:
    """Prune one weight matrix at a time to ``density`` and measure the worst-case gap.

    Parameters
    ----------
    model : torch.nn.Module
        The trained original.
    dataset : Dataset
    domain : Domain, optional
        Default: the dataset's ``input_range`` box.
    density : float in (0, 1]
    method : {"magnitude", "random", "sipp"}
    layers : sequence of int, optional
        Weight matrices to prune, 0-based (default: all, the output layer included).
    compare : bool
        Also prune all hidden layers uniformly and at the allocation of
        :func:`mipnet.sparsity.allocate_sparsity` (same overall hidden density).
    seed, finetune_epochs, epsilon, time_limit, time_limit_per_milp, num_threads, gap_kw
        As in :func:`gap_run` (one stage: after ``finetune_epochs``).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Run the pruned copies (one :func:`gap_run` each) there.

    Returns
    -------
    LayerSensitivity
    """

    t0 = time.perf_counter()
    if method not in GAP_METHODS:
        raise InvalidArgumentError(f"method must be one of {GAP_METHODS}, got {method!r}")
    n_lin = _linear_count(model)
    d = _check_density_spec(density, n_lin, "density")
    if np.ndim(d) != 0:
        raise InvalidArgumentError("density must be one number here: it is applied to one layer at a time")
    ls = list(range(n_lin)) if layers is None else [int(x) for x in layers]
    bad = [x for x in ls if not 0 <= x < n_lin]
    if bad or not ls:
        raise InvalidArgumentError(f"layers must be indices in [0, {n_lin}) of the model's weight matrices, got {bad or ls}")
    if isinstance(finetune_epochs, bool) or int(finetune_epochs) != finetune_epochs or finetune_epochs < 0:
        raise InvalidArgumentError(f"finetune_epochs must be an integer >= 0, got {finetune_epochs!r}")
    f = from_torch(model)
    dom = as_domain(domain if domain is not None else
                    (np.full(f.input_dim, dataset.input_range[0]), np.full(f.input_dim, dataset.input_range[1])),
                    f.input_dim)
    with torch_threads(num_threads):
        dense_acc = float(evaluate(model, dataset))
    common = dict(seed=seed, finetune_epochs=(int(finetune_epochs),), epsilon=epsilon, time_limit=time_limit,
                  time_limit_per_milp=time_limit_per_milp, num_threads=num_threads, gap_kw=gap_kw, original=f,
                  accuracy_dense=dense_acc)
    specs = []
    for layer in ls:
        vec = [1.0] * n_lin
        vec[layer] = d
        specs.append(vec)
    alloc = None
    if compare:
        alloc = tuple(allocation_for(f.widths, d))
        specs += [d, [max(x, 1e-12) for x in alloc]]
    tasks = [(model, dataset, dom, {**common, "method": method, "density": spec}) for spec in specs]
    results = [rs[-1] for rs in _run_cells(tasks, executor, progress=False, desc="layer sensitivity")]
    rows = results[:len(ls)]
    for layer, r in zip(ls, rows):
        r["layer"] = layer
    uniform = allocated = None
    if compare:
        uniform, allocated = results[len(ls):]
    return LayerSensitivity(widths=tuple(f.widths), density=float(d), method=method, rows=tuple(rows),
                            uniform=uniform, allocated=allocated, allocation=alloc, dense_accuracy=dense_acc,
                            seconds=time.perf_counter() - t0)
