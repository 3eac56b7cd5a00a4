"""The ``mipnet demo``: a tour of the library on scikit-learn's digits, in about a minute.

Each step calls the public API the way a user would, prints what it found, and
collects a JSON-serialisable summary. Pictures and networks go to ``out_dir``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["run_demo"]


def _say(echo: Optional[Callable[[str], None]], msg: str) -> None:
    if echo is not None:
        echo(msg)


def _check_demo_args(*, seed, epochs, radius, time_limit) -> None:
    from mipnet.core.errors import InvalidArgumentError

    for name, v, lo in (("seed", seed, 0), ("epochs", epochs, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise InvalidArgumentError(f"{name} must be an integer >= {lo}, got {v!r}")
    for name, v in (("radius", radius), ("time_limit", time_limit)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not (0 < v < np.inf):
            raise InvalidArgumentError(f"{name} must be a positive number, got {v!r}")


def run_demo(
    out_dir="mipnet-demo",
    *,
    seed: int = 0,
    epochs: int = 30,
    radius: float = 1.0,
    time_limit: float = 60.0,
    echo: Optional[Callable[[str], None]] = print,
) -> dict:
    """Train a 64-16-16-10 digits net and run every analysis on it.

    Parameters
    ----------
    out_dir : path
        Where the pictures and ONNX files are written.
    radius : float
        Radius of the L-infinity ball (pixel units, clipped to [0, 16]) around a
        test image that serves as the input domain of the exact analyses.
    time_limit : float
        Time limit of each solver-backed step; results reached under it are
        reported as bounds.
    """
    from mipnet.bounds import lp_bounds, symbolic_bounds
    from mipnet.core.domain import LinfBall
    from mipnet.nn.data import load_dataset
    from mipnet.io import save_network
    from mipnet.plotting import plot_plane_partition
    from mipnet.analyses.regions import count_regions, sample_regions
    from mipnet.analyses.slices import plane_through_points
    from mipnet.sparsity import allocate_sparsity
    from mipnet.theory import all_bounds
    from mipnet.io.torch import from_torch
    from mipnet.nn.training import make_mlp, train
    from mipnet.nn.workflow import prune_and_finetune

    _check_demo_args(seed=seed, epochs=epochs, radius=radius, time_limit=time_limit)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"out_dir": str(out)}
    t_start = time.perf_counter()

    # 1. train ---------------------------------------------------------------------------
    _say(echo, "== 1. Train a 64-16-16-10 ReLU net on scikit-learn's digits (pixels 0..16)")
    ds = load_dataset("digits", seed=seed)
    model = make_mlp([64, 16, 16, 10], seed=seed)
    tr = train(model, ds, epochs=epochs, optimizer="adam", lr=1e-2, seed=seed, progress=False, num_threads=1)
    net = from_torch(model)
    save_network(net, out / "digits_64-16-16-10.onnx")
    _say(echo, f"   {net}: test accuracy {tr.test_accuracy:.3f} after {epochs} epochs ({tr.seconds:.1f} s)")
    summary["train"] = {"widths": list(net.widths), "test_accuracy": tr.test_accuracy, "seconds": tr.seconds}

    x0 = ds.X_test[0].astype(np.float64)
    dom = LinfBall(x0, radius, 0, 16)
    label = int(ds.y_test[0])
    _say(echo, f"   domain: the L-inf ball of radius {radius} around test image 0 (a '{label}'), clipped to [0, 16]")

    # 2. bounds --------------------------------------------------------------------------
    _say(echo, "\n== 2. Sound pre-activation bounds on the domain")
    sym = symbolic_bounds(net, dom)
    lp = lp_bounds(net, dom, initial=sym)
    for name, b in (("symbolic", sym), ("LP", lp)):
        c = b.counts()
        _say(echo, f"   {name:8s}: unstable per layer {[k['unstable'] for k in c]}, "
                   f"stably inactive {[k['inactive'] for k in c]}, active {[k['active'] for k in c]}")
    summary["bounds"] = {"symbolic": sym.counts(), "lp": lp.counts()}

    # 3. regions -------------------------------------------------------------------------
    _say(echo, "\n== 3. Linear regions: exact count, sampling, closed-form bounds, a 2-D slice")
    rc = count_regions(net, dom, bounds=lp, time_limit=time_limit)
    kind = "exactly" if rc.exact else "at least (time limit)"
    _say(echo, f"   {rc.regions} activation regions {kind} in the ball ({rc.method}, {rc.seconds:.2f} s)")
    sc = sample_regions(net, dom, 20_000, seed=seed)
    _say(echo, f"   sampling 20000 points finds {sc.regions} of them (a lower bound)")
    bounds_global = all_bounds(net)
    for rb in bounds_global:
        if rb.name in ("montufar2014", "montufar2017", "serra2018"):
            _say(echo, f"   upper bound {rb.name:13s} on all of R^64: {np.exp(rb.log_value):.3g} (ln {rb.log_value:.2f})")
    i1, i2, i3 = [int(np.flatnonzero(ds.y_test == k)[0]) for k in (0, 1, 7)]
    plane = plane_through_points(ds.X_test[i1], ds.X_test[i2], ds.X_test[i3])
    part = plane.regions(net)
    slice_png = out / "slice_0_1_7.png"
    plot_plane_partition(
        part, color_by="class", show_points=dict(zip(("0", "1", "7"), plane.points_st)),
        path=slice_png, title="digits net: regions on the plane through a 0, a 1 and a 7",
    )
    _say(echo, f"   the plane through a 0, a 1 and a 7 holds {part.count_regions()} regions "
               f"({part.count_linear_regions()} linear regions): picture in {slice_png}")
    summary["regions"] = {
        "ball": rc.to_dict(),
        "sampled": sc.regions,
        "slice_regions": part.count_regions(),
        "slice_picture": str(slice_png),
        "closed_form": [rb.to_dict() for rb in bounds_global],
    }

    # 4. sparsity ------------------------------------------------------------------------
    density = 0.1
    _say(echo, "\n== 4. Sparsity: per-layer densities that maximise the expected region bound (Cai et al. 2023)")
    ref = allocate_sparsity((784, 100, 100, 10), density=0.001)
    _say(echo, f"   784-100-100-10 at density 0.001: allocation {[float(f'{d:.2g}') for d in ref.densities]}, "
               f"ln bound {ref.log_bound:.1f} vs {ref.uniform_log_bound:.1f} uniform")
    alloc = allocate_sparsity(net.widths, density=density)
    _say(echo, f"   our net at density {density}: allocation {[round(d, 3) for d in alloc.densities]}, "
               f"ln bound {alloc.log_bound:.2f} vs {alloc.uniform_log_bound:.2f} uniform; prune both, fine-tune:")
    runs = {}
    for method in ("uniform", "allocated"):
        run = prune_and_finetune(model, ds, method=method, density=density, finetune_epochs=10, seed=seed,
                                 num_threads=1, optimizer="adam", lr=3e-3)
        runs[method] = run
        _say(echo, f"   {method:9s}: accuracy {run.accuracy_dense:.3f} -> {run.accuracy_pruned:.3f} pruned "
                   f"-> {run.accuracy_finetuned:.3f} fine-tuned")
    pruned = from_torch(runs["allocated"].model)
    save_network(pruned, out / "digits_pruned_allocated.onnx")
    summary["sparsity"] = {
        "allocation": alloc.to_dict(),
        "reference_784_100_100_10": ref.to_dict(),
        "runs": {k: {"accuracy_pruned": r.accuracy_pruned, "accuracy_finetuned": r.accuracy_finetuned,
                     "achieved_densities": list(r.achieved_densities)} for k, r in runs.items()},
    }

    # 5. equivalence, stability, compression --------------------------------------------
    summary.update(_verify_steps(net, pruned, ds, dom, x0=x0, radius=radius, seed=seed, time_limit=time_limit,
                                 echo=echo, out=out))

    summary["seconds"] = time.perf_counter() - t_start
    _say(echo, f"\nDone in {summary['seconds']:.1f} s. Files in {out}/")
    return summary


def _verify_steps(net, pruned, ds, dom, *, x0, radius, seed, time_limit, echo, out) -> dict:
    """Equivalence of the pruned net, then stability and lossless compression of an L1-trained net."""
    try:
        from mipnet.analyses.compression import compress, save_neuron_map
        from mipnet.analyses.equivalence import verify_equivalence
        from mipnet.analyses.stability import find_stable_neurons
    except ImportError:  # pragma: no cover - capability not installed
        return {}
    from mipnet.io import save_network
    from mipnet.io.torch import from_torch
    from mipnet.nn.training import make_mlp, train

    res = {}
    _say(echo, "\n== 5. Is the pruned net equivalent to the original on the ball? (top-1)")
    eq = verify_equivalence(net, pruned, dom, mode="top1", time_limit=time_limit)
    _say(echo, f"   verdict: {eq.verdict} ({eq.seconds:.2f} s)")
    if eq.counterexample is not None:
        x = np.asarray(eq.counterexample)
        _say(echo, f"   counterexample: original says {int(np.argmax(net.forward(x)))}, "
                   f"pruned says {int(np.argmax(pruned.forward(x)))} (checked by a float64 forward pass)")
    res["equivalence_pruned"] = eq.to_dict()
    # top-k on an L1 ball (Kleine Buning et al., CP 2020): a few pixels may change a lot
    from mipnet.analyses.properties import TopK
    from mipnet.core.domain import L1Ball

    r1 = 8 * radius
    tk = verify_equivalence(net, pruned, L1Ball(x0, r1, 0, 16), mode=TopK(2), time_limit=time_limit)
    _say(echo, f"   top-2 (the original's class among the pruned net's top 2) on the L1 ball |x - x0|_1 <= {r1:g}: "
               f"{tk.verdict} ({tk.seconds:.2f} s, {tk.num_milps} MILPs)")
    if tk.counterexample is not None:
        x = np.asarray(tk.counterexample)
        c = int(np.argmax(net.forward(x)))
        rank = 1 + int(np.sum(pruned.forward(x) > pruned.forward(x)[c]))
        _say(echo, f"   counterexample: {int(np.sum(np.abs(x - x0) > 1e-9))} pixels changed, |x - x0|_1 = "
                   f"{np.abs(x - x0).sum():.3g}; the original says {c}, the pruned net ranks it #{rank} "
                   "(checked by a float64 forward pass)")
    res["topk_l1"] = tk.to_dict()
    from mipnet.analyses.gap import pruning_gap

    inside = ds.X_test[dom.contains(ds.X_test.astype(np.float64))]
    pg = pruning_gap(net, pruned, dom, data=inside if len(inside) else None, time_limit=time_limit)
    _say(echo, "   worst-case output gap |f - g|_inf of the pruned net on the ball (pruning certificate):")
    for line in str(pg).splitlines():
        _say(echo, f"   {line.strip()}")
    res["pruning_gap"] = pg.to_dict()

    _say(echo, "\n== 6. Stable neurons and lossless compression of an L1-regularised net")
    model = make_mlp([64, 16, 16, 10], seed=seed)
    train(model, ds, epochs=30, optimizer="adam", lr=1e-2, l1=3e-3, seed=seed, progress=False, num_threads=1)
    l1net = from_torch(model)
    st = find_stable_neurons(l1net, dom, time_limit=time_limit)
    for line in str(st).splitlines():
        _say(echo, f"   {line.strip()}")
    for note in st.notes:  # the witness search by LPs (DC ascent) on the neurons samples left open
        if note.startswith("DC ascent"):
            _say(echo, f"   {note}")
    # the DC ascent itself (one LP per step, optimal over the ball for the tangent of the convex part),
    # from the ball's centre on the layer-2 neuron with the smallest proven maximum that is positive
    from mipnet.analyses.ascent import NeuronAscent

    up2 = st.layers[1].upper
    cand = np.flatnonzero(up2 > st.tol)
    if cand.size:
        j = int(cand[np.argmin(up2[cand])])
        asc = NeuronAscent(l1net, dom, 1)
        y0 = float(asc.value(dom.center, j, 1.0)[0])
        x, v, _ = asc.run(j, 1.0, dom.center)
        _say(echo, f"   DC ascent from the centre, layer 2 neuron {j}: y = {y0:.4g} -> {v:.4g} in {asc.lps} LPs "
                   f"(proven max <= {up2[j]:.4g})")
        res["ascent"] = {"neuron": j, "start": y0, "value": v, "point": x.tolist(), "lps": asc.lps,
                         "proven_max": float(up2[j])}
    comp = compress(l1net, dom, stability=st)
    _say(echo, f"   compressed {l1net} -> {comp.network}")
    save_network(comp.network, out / "digits_l1_compressed.onnx")
    save_neuron_map(comp, out / "digits_l1_compressed.onnx")  # which neurons were kept: `mipnet verify` reads it
    # the neuron map lets the differential bounds align the two nets of different widths
    eq2 = verify_equivalence(l1net, comp.network, dom, mode="exact", time_limit=time_limit,
                             correspondence=list(comp.neuron_map))
    how = f"{eq2.search['engine']} engine" if eq2.search else "MILP engine"
    _say(echo, f"   compressed vs original on the ball: {eq2.verdict} (max gap {eq2.max_gap:.2e}; {how}, "
               f"{eq2.num_milps} MILPs, {eq2.seconds:.2f} s, through the compressor's neuron map)")
    res["stability"] = st.to_dict()
    res["compression"] = {"widths": list(comp.network.widths), "equivalence": eq2.to_dict()}
    return res
