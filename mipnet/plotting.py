"""All of mipnet's pictures.

Every function draws with matplotlib on the Agg canvas (no pyplot state, no
windows, nothing shown), takes an optional ``ax`` to draw into and an optional
``path`` to save a PNG (or any format matplotlib knows from the suffix), and
returns the :class:`matplotlib.figure.Figure`.

Contents
--------
plot_plane_partition
    Activation regions of a 2-D plane section (:func:`mipnet.analyses.slices.plane_regions`).
plot_segment_partition
    Outputs along a 1-D segment with its breakpoints (:func:`mipnet.analyses.slices.segment_regions`).
region_colors
    Pleasant, distinguishable random colours for many regions.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from mipnet.core.errors import PlotError

__all__ = ["plot_plane_partition", "plot_segment_partition", "region_colors"]



# ============================================================================ shared helpers
def _figure(ax, figsize):
    """A new Agg-backed figure and axes, or the given axes and its figure."""
    if ax is not None:
        return ax.figure, ax
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path, dpi) -> None:
    if path is not None:
        fig.savefig(str(path), dpi=dpi, bbox_inches="tight")


def region_colors(n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` RGBA colours: spread hues (golden-ratio steps) in shuffled order, soft saturation.

    Neighbouring regions rarely get similar colours and the palette stays light enough
    for thin dark boundaries to show.
    """
    from matplotlib.colors import hsv_to_rgb

    n = int(n)
    if n < 0:
        raise PlotError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    h = (np.arange(n) * 0.618033988749895 + rng.uniform()) % 1.0
    rng.shuffle(h)
    s = rng.uniform(0.30, 0.62, n)
    v = rng.uniform(0.80, 0.97, n)
    rgb = hsv_to_rgb(np.stack([h, s, v], axis=1)) if n else np.zeros((0, 3))
    return np.concatenate([rgb, np.ones((n, 1))], axis=1)


def _class_colors(k: int) -> np.ndarray:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if k <= 10 else "tab20"]
    return np.array([cmap(i % cmap.N) for i in range(k)])


def _labelled_points(show_points) -> list[tuple[str, np.ndarray]]:
    """Accept {label: (s, t)}, [(label, (s, t)), ...] or an (k, 2) array."""
    if show_points is None:
        return []
    if isinstance(show_points, dict):
        items = list(show_points.items())
    else:
        arr = None
        try:
            arr = np.asarray(show_points, dtype=np.float64)
        except (TypeError, ValueError):
            pass
        if arr is not None and arr.ndim == 2 and arr.shape[1] == 2:
            items = [(f"x{i + 1}", p) for i, p in enumerate(arr)]
        else:
            items = list(show_points)
    out = []
    for item in items:
        try:
            label, p = item
            p = np.asarray(p, dtype=np.float64).reshape(2)
        except (TypeError, ValueError):
            raise PlotError(
                "show_points must be {label: (s, t)}, a list of (label, (s, t)) pairs or an (k, 2) array"
            ) from None
        out.append((str(label), p))
    return out


# ============================================================================ slices
def plot_plane_partition(
    partition,
    *,
    color_by: str = "region",
    show_points=None,
    ax=None,
    path=None,
    title: Optional[str] = None,
    class_names: Optional[Sequence[str]] = None,
    edgecolor="0.15",
    linewidth: float = 0.25,
    boundaries: bool = True,
    seed: int = 0,
    figsize=(6.4, 6.0),
    dpi: int = 150,
):
    """Draw the activation regions of a plane section.

    Parameters
    ----------
    partition : mipnet.analyses.slices.PlanePartition
    color_by : {"region", "linear", "class"}
        ``"region"``: a random pleasant colour per activation region; ``"linear"``: one per
        linear region (adjacent regions with equal affine maps merged); ``"class"``: the
        exact predicted class (argmax of the output; decision boundaries run through
        regions), with a legend.
    show_points : dict, list of (label, (s, t)) or (k, 2) array, optional
        Points to mark, e.g. ``plane.points_st`` of :func:`mipnet.analyses.slices.plane_through_points`.
    ax : matplotlib Axes, optional
        Draw into it instead of a new figure.
    path : str or Path, optional
        Save the figure there.
    title : str, optional
        Defaults to the region count.
    boundaries : bool
        Draw the activation regions' edges (``edgecolor``, ``linewidth``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch, Polygon

    if color_by not in ("region", "linear", "class"):
        raise PlotError(f"color_by must be 'region', 'linear' or 'class', got {color_by!r}")
    if not hasattr(partition, "polygons") or not hasattr(partition, "classes"):
        raise PlotError(f"partition must be a PlanePartition (from plane_regions), got {type(partition).__name__}")
    points = _labelled_points(show_points)
    fig, ax = _figure(ax, figsize)
    polys = partition.polygons
    P = len(polys)
    legend = []
    if color_by == "region":
        faces = region_colors(P, seed=seed)
    elif color_by == "linear":
        lab = partition.linear_region_labels()
        faces = region_colors(int(lab.max()) + 1, seed=seed)[lab]
    else:
        k = int(partition.maps_m.shape[1])
        names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
        if len(names) != k:
            raise PlotError(f"class_names has {len(names)} names, the network has {k} outputs")
        cc = _class_colors(k)
        # exact decision regions (each activation region split by argmax), region edges on top
        cpolys, classes, _ = partition.class_regions()
        ax.add_collection(PolyCollection(cpolys, facecolors=cc[classes], edgecolors=cc[classes],
                                         linewidths=0.3, antialiased=True))
        faces = "none"
        for c in np.unique(classes):
            legend.append(Patch(facecolor=cc[c], edgecolor=edgecolor, label=names[c]))
    coll = PolyCollection(polys, facecolors=faces, edgecolors=edgecolor if boundaries else "none",
                          linewidths=linewidth, antialiased=True)
    ax.add_collection(coll)
    ax.add_patch(Polygon(partition.domain, closed=True, fill=False, edgecolor="0.1", linewidth=1.0))
    lo, hi = partition.domain.min(axis=0), partition.domain.max(axis=0)
    pad = 0.02 * (hi - lo)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    ax.set_aspect("equal")
    ax.set_xlabel("s")
    ax.set_ylabel("t")
    for label, p in points:
        ax.plot(p[0], p[1], marker="o", markersize=7, markerfacecolor="white", markeredgecolor="black",
                markeredgewidth=1.5, linestyle="none", zorder=5)
        ax.annotate(label, p, xytext=(6, 6), textcoords="offset points", fontsize=10, zorder=6,
                    bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="0.3", alpha=0.85))
    if legend:
        ax.legend(handles=legend, title="predicted class", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize=8, frameon=False)
    if title is None:
        title = f"{partition.num_regions} activation regions on a 2-D slice"
        if color_by == "linear":
            title = f"{int(lab.max()) + 1} linear regions ({partition.num_regions} activation regions)"
    ax.set_title(title)
    _save(fig, path, dpi)
    return fig


def plot_segment_partition(
    partition,
    *,
    outputs: Optional[Sequence[int]] = None,
    ax=None,
    path=None,
    title: Optional[str] = None,
    class_names: Optional[Sequence[str]] = None,
    endpoint_labels: Sequence[str] = ("a", "b"),
    max_lines: int = 300,
    seed: int = 0,
    figsize=(8.0, 4.0),
    dpi: int = 150,
):
    """Draw the network's outputs along a segment, with its breakpoints and pieces.

    The outputs are exact: the piecewise affine maps evaluated at the breakpoints.
    Breakpoints are drawn as thin vertical lines (as a rug when there are more than
    ``max_lines``); a strip at the bottom colours each activation region.

    Parameters
    ----------
    partition : mipnet.analyses.slices.SegmentPartition
    outputs : sequence of int, optional
        Which outputs (logits) to draw; all by default.
    ax, path, title : see :func:`plot_plane_partition`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.collections import PolyCollection

    if not hasattr(partition, "breakpoints") or not hasattr(partition, "slopes"):
        raise PlotError(f"partition must be a SegmentPartition (from segment_regions), got {type(partition).__name__}")
    k_out = int(partition.offsets.shape[1])
    if outputs is None:
        outputs = list(range(k_out))
    outputs = [int(o) for o in outputs]
    bad = [o for o in outputs if not 0 <= o < k_out]
    if bad:
        raise PlotError(f"outputs {bad} out of range; the network has {k_out} outputs (0..{k_out - 1})")
    names = list(class_names) if class_names is not None else [f"output {i}" for i in range(k_out)]
    if len(names) != k_out:
        raise PlotError(f"class_names has {len(names)} names, the network has {k_out} outputs")
    fig, ax = _figure(ax, figsize)
    t = partition.breakpoints
    k = partition.num_pieces
    # value at each breakpoint from the piece on its left (continuous), plus t = 0
    y = np.concatenate([partition.offsets[:1], partition.offsets + t[1:, None] * partition.slopes])
    cc = _class_colors(k_out)
    for o in outputs:
        ax.plot(t, y[:, o], color=cc[o], linewidth=1.4, label=names[o])
    inner = t[1:-1]
    trans = ax.get_xaxis_transform()
    if len(inner) <= max_lines:
        ax.vlines(inner, 0, 1, transform=trans, colors="0.5", linewidths=0.4, alpha=0.6, zorder=0)
    else:
        ax.vlines(inner, 0.04, 0.07, transform=trans, colors="0.3", linewidths=0.3, zorder=0)
    strips = [[(t[i], 0.0), (t[i + 1], 0.0), (t[i + 1], 0.035), (t[i], 0.035)] for i in range(k)]
    ax.add_collection(PolyCollection(strips, facecolors=region_colors(k, seed=seed), edgecolors="none",
                                     transform=trans, zorder=1))
    ax.set_xlim(0.0, 1.0)
    shown = y[:, outputs]
    lo, hi = float(shown.min()), float(shown.max())
    span = hi - lo if hi > lo else 1.0
    ax.set_ylim(lo - 0.1 * span, hi + 0.05 * span)  # room for the region strip
    ax.set_xlabel("t  (x = a + t (b - a))")
    ax.set_ylabel("output")
    if endpoint_labels:
        ax.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0])
        ax.set_xticklabels([f"0\n{endpoint_labels[0]}", "0.25", "0.5", "0.75", f"1\n{endpoint_labels[1]}"])
    if len(outputs) <= 12:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title is None:
        title = f"{k} activation regions, {partition.count_linear_pieces()} linear pieces along the segment"
    ax.set_title(title)
    _save(fig, path, dpi)
    return fig


# ============================================================================ sparsity and pruning
_METHOD_STYLE = {
    "uniform": dict(color="tab:blue", marker="o"),
    "allocated": dict(color="tab:red", marker="s"),
    "global": dict(color="tab:green", marker="^"),
    "random": dict(color="0.45", marker="x"),
    "sipp": dict(color="tab:purple", marker="D"),
    "snip": dict(color="tab:orange", marker="v"),
}


def _sweep_rows(sweep, stage):
    """Table rows (method, density, mean, std) and the dense accuracy (mean, std) or None."""
    if hasattr(sweep, "table"):
        rows = sweep.table(stage)
        dense = getattr(sweep, "dense_accuracy", None)
        return rows, dense
    try:
        rows = [dict(r) for r in sweep]
    except (TypeError, ValueError):
        raise PlotError("sweep must be a SweepResult (mipnet.nn.workflow) or a list of rows with keys "
                        "'method', 'density', 'mean', 'std'") from None
    for r in rows:
        missing = {"method", "density", "mean"} - set(r)
        if missing:
            raise PlotError(f"a row lacks the keys {sorted(missing)}; rows need 'method', 'density', 'mean' (and 'std')")
    return rows, None


def plot_accuracy_vs_density(
    sweep,
    *,
    stage: str = "finetuned",
    methods: Optional[Sequence[str]] = None,
    dense_accuracy=None,
    ax=None,
    path=None,
    title: Optional[str] = None,
    jitter: float = 0.04,
    figsize=(6.4, 4.4),
    dpi: int = 150,
):
    """Test accuracy against density (log x axis): one line per pruning method, error bars.

    Parameters
    ----------
    sweep : mipnet.nn.workflow.SweepResult or list of dict
        A sweep, or rows with ``method``, ``density``, ``mean`` and optionally ``std``
        (e.g. ``SweepResult.table()``).
    stage : {"finetuned", "pruned"}
        Accuracy after fine-tuning (default) or right after pruning (SweepResult only).
    methods : sequence of str, optional
        Which methods to draw, in this order (default: all, in the sweep's order).
    dense_accuracy : float or (mean, std), optional
        Drawn as a dashed horizontal line (band for the std); read from the sweep when
        it is a SweepResult.
    jitter : float
        Methods are shifted by ``exp(+-jitter)`` along x so that error bars do not overlap.
    ax, path, title, figsize, dpi
        See :func:`plot_plane_partition`.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    The picture of Cai et al., CPAIOR 2023 (arXiv:2301.07966), Fig. 3: error bars are one
    standard deviation over seeds.
    """
    if stage not in ("finetuned", "pruned"):
        raise PlotError(f"stage must be 'finetuned' or 'pruned', got {stage!r}")
    rows, dense = _sweep_rows(sweep, stage)
    if dense_accuracy is not None:
        dense = dense_accuracy if np.ndim(dense_accuracy) else (float(dense_accuracy), 0.0)
    order = list(dict.fromkeys(r["method"] for r in rows))
    if methods is not None:
        unknown = [m for m in methods if m not in order]
        if unknown:
            raise PlotError(f"methods {unknown} are not in the sweep; it has {order}")
        order = list(methods)
    if not order:
        raise PlotError("nothing to plot: the sweep has no rows")
    fig, ax = _figure(ax, figsize)
    k = len(order)
    for j, m in enumerate(order):
        rs = sorted((r for r in rows if r["method"] == m), key=lambda r: r["density"])
        x = np.array([r["density"] for r in rs], dtype=float) * np.exp(jitter * (j - (k - 1) / 2))
        y = np.array([r["mean"] for r in rs], dtype=float)
        e = np.array([r.get("std", 0.0) or 0.0 for r in rs], dtype=float)
        style = _METHOD_STYLE.get(m, {})
        ax.errorbar(x, y, yerr=e, label=m, capsize=3, linewidth=1.4, markersize=5, **style)
    if dense is not None and np.isfinite(dense[0]):
        ax.axhline(dense[0], color="black", linestyle="--", linewidth=1.0, label="dense")
        if dense[1] > 0:
            ax.axhspan(dense[0] - dense[1], dense[0] + dense[1], color="0.5", alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    ax.set_xlabel("density of the hidden layers (fraction of weights kept)")
    ax.set_ylabel("test accuracy" + (" after fine-tuning" if stage == "finetuned" else " right after pruning"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if title is None and hasattr(sweep, "widths"):
        title = f"{sweep.dataset}, {'-'.join(map(str, sweep.widths))}: {len(sweep.seeds)} seed(s)"
    if title:
        ax.set_title(title)
    _save(fig, path, dpi)
    return fig


def plot_log_bound_vs_density(
    widths,
    *,
    densities=None,
    allocated: bool = True,
    mark=None,
    ax=None,
    path=None,
    title: Optional[str] = None,
    rank_model: str = "binomial",
    figsize=(6.4, 4.2),
    dpi: int = 150,
):
    """ln of the expected-rank region bound against the density of the hidden layers.

    One curve for the uniform density and, with ``allocated=True``, one for the
    bound-maximising per-layer allocation (:func:`mipnet.sparsity.allocate_sparsity`);
    the dense bound as a dashed line. Like :func:`mipnet.sparsity.plot_bound_vs_density`
    but drawing into an ``ax`` and returning the figure.

    Parameters
    ----------
    widths : sequence of int or Network
        ``(n0, n1, ..., n_out)``.
    densities : sequence of float, optional
        Default: 25 log-spaced values from the smallest feasible density to 1.
    mark : float or sequence of float, optional
        Densities to mark with vertical dotted lines.

    Notes
    -----
    The bound of Cai et al., CPAIOR 2023 (arXiv:2301.07966), see
    :func:`mipnet.theory.expected_rank_bound`.
    """
    from mipnet.sparsity import allocate_sparsity, density_curve
    from mipnet.theory import widths_of

    w = tuple(int(x) for x in (widths.widths if hasattr(widths, "widths") else widths_of(widths)))
    if len(w) < 3:
        raise PlotError(f"widths must have at least one hidden layer, got {w}")
    hidden = sum(w[i] * w[i + 1] for i in range(len(w) - 2))
    if densities is None:
        densities = np.geomspace((len(w) - 2) / hidden * 1.01, 1.0, 25)
    ds = np.asarray(densities, dtype=float).reshape(-1)
    if ds.size == 0 or not np.all((ds > 0) & (ds <= 1)):
        raise PlotError("densities must be numbers in (0, 1]")
    uni = density_curve(w, ds, rank_model=rank_model)
    dense = float(density_curve(w, [1.0], rank_model=rank_model)[0])
    fig, ax = _figure(ax, figsize)
    ax.plot(ds, uni, "o-", ms=3, color=_METHOD_STYLE["uniform"]["color"], label="uniform density")
    if allocated:
        al = [allocate_sparsity(w, density=float(x), rank_model=rank_model).log_bound for x in ds]
        ax.plot(ds, al, "s-", ms=3, color=_METHOD_STYLE["allocated"]["color"], label="bound-maximising allocation")
    ax.axhline(dense, color="black", linestyle="--", linewidth=1.0, label="dense")
    for m in ([] if mark is None else np.atleast_1d(mark)):
        ax.axvline(float(m), color="grey", linestyle=":", linewidth=1.0)
    ax.set_xscale("log")
    ax.set_xlabel("density of the hidden layers (fraction of weights kept)")
    ax.set_ylabel("ln(expected-rank bound on #regions)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title if title is not None else f"{'-'.join(map(str, w))}, {rank_model} rank model")
    _save(fig, path, dpi)
    return fig


__all__ += ["plot_accuracy_vs_density", "plot_log_bound_vs_density"]


# ============================================================================ pruning gaps
def plot_gap_vs_density(
    sweep,
    *,
    stages: Optional[Sequence[int]] = None,
    methods: Optional[Sequence[str]] = None,
    show_mean: bool = True,
    path=None,
    title: Optional[str] = None,
    figsize=None,
    dpi: int = 150,
):
    """Worst-case gap on the domain vs the gap on data, against density: one panel per fine-tuning stage.

    Parameters
    ----------
    sweep : mipnet.nn.sweeps.GapSweep or list of dict
        A sweep, or its ``rows`` (keys ``method``, ``density``, ``finetune_epochs``,
        ``lower``, ``upper``, ``data_max``, ``data_mean``).
    stages : sequence of int, optional
        Fine-tuning stages to draw (default: all).
    methods : sequence of str, optional
        Methods to draw, in this order (default: all).
    show_mean : bool
        Also draw the mean gap on data (dotted).
    path, title, figsize, dpi
        See :func:`plot_plane_partition`.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    Per method: solid line = mean over masks of the worst-case gap found (a verified
    input); the band runs from the smallest found to the largest proven bound over the
    masks (it is thin where every MILP finished); dashed = largest gap on the data;
    dotted = mean gap on the data. Rows with per-layer density vectors are not drawn
    (no single density to place them at). Log y axis.
    """
    try:
        rows = list(sweep.rows) if hasattr(sweep, "rows") else [dict(r) for r in sweep]
    except (TypeError, ValueError):
        raise PlotError(f"sweep must be a GapSweep or a list of its row dicts, got {type(sweep).__name__}") from None
    need = {"method", "density", "finetune_epochs", "lower", "upper", "data_max", "data_mean"}
    for r in rows:
        if need - set(r):
            raise PlotError(f"a row lacks the keys {sorted(need - set(r))}; pass a GapSweep or its rows")
    rows = [r for r in rows if np.ndim(r["density"]) == 0]
    if not rows:
        raise PlotError("nothing to plot: no row with a single (uniform) density")
    all_stages = sorted({int(r["finetune_epochs"]) for r in rows})
    st = all_stages if stages is None else [int(s) for s in stages]
    if [s for s in st if s not in all_stages]:
        raise PlotError(f"stages {st} not all in the sweep; it has {all_stages}")
    order = list(dict.fromkeys(r["method"] for r in rows))
    if methods is not None:
        unknown = [m for m in methods if m not in order]
        if unknown:
            raise PlotError(f"methods {unknown} are not in the sweep; it has {order}")
        order = list(methods)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize or (5.2 * len(st), 4.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(st), sharey=True, squeeze=False)[0]
    for ax, s in zip(axes, st):
        for m in order:
            rs = [r for r in rows if r["method"] == m and int(r["finetune_epochs"]) == s]
            ds = sorted({float(r["density"]) for r in rs})
            if not ds:
                continue
            def col(key, how):
                return np.array([how([r[key] for r in rs if float(r["density"]) == d]) for d in ds], dtype=float)
            style = {**_METHOD_STYLE, "magnitude": _METHOD_STYLE["uniform"]}.get(m, dict(color="tab:brown", marker="*"))
            c = style["color"]
            ax.plot(ds, col("lower", np.mean), "-", marker=style["marker"], color=c, ms=5, lw=1.6,
                    label=f"{m}: worst case on D")
            ax.fill_between(ds, col("lower", np.min), col("upper", np.max), color=c, alpha=0.15, lw=0)
            ax.plot(ds, col("data_max", np.mean), "--", color=c, lw=1.2, label=f"{m}: max on data")
            if show_mean:
                ax.plot(ds, col("data_mean", np.mean), ":", color=c, lw=1.2, label=f"{m}: mean on data")
        ax.set_yscale("log")
        ax.set_xlabel("density (fraction of hidden-layer weights kept)")
        ax.set_title("right after pruning" if s == 0 else f"after {s} fine-tuning epoch(s)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.invert_xaxis()
    axes[0].set_ylabel("output gap ||f(x) - g(x)||_inf")
    axes[-1].legend(fontsize=7, loc="best")
    if title is None and hasattr(sweep, "widths"):
        title = (f"{sweep.dataset}, {'-'.join(map(str, sweep.widths))} on {sweep.domain.get('description', 'D')}: "
                 f"worst case vs data")
    if title:
        fig.suptitle(title, fontsize=11)
    _save(fig, path, dpi)
    return fig


__all__ += ["plot_gap_vs_density"]
