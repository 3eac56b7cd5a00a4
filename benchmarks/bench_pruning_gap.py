"""Pruning gap: the exact worst-case output gap of pruned networks against their gap on data.

    python benchmarks/bench_pruning_gap.py            # the run recorded in RESULTS.md (~15-20 min, 2 cores)
    python benchmarks/bench_pruning_gap.py --quick    # smoke test (~1-2 min); writes nothing in benchmarks/
    python benchmarks/bench_pruning_gap.py --json /tmp/gap.json   # also keep every row

What it measures (mipnet.gap): for an original net f and a pruned net g,
worst case = max_{x in D} ||f(x) - g(x)||_inf by MILP (mipnet.equivalence.max_output_gap; a found
lower bound at a float64-checked input and a proven upper bound, equal when the search finished),
and the gap on the test data (mean, quantiles, max). The baseline in the same run is the data
gap itself: the ratio worst case / max over the data says how far the typical case (what SiPP,
arXiv:1910.05422, and Qian and Klabjan, ICML 2021, arXiv:2105.10065, bound) is from the worst case.

Parts:
1. digits, 64-10-10 on the box [0, 16]^64: random / magnitude / SiPP at several densities, several
   masks per density (magnitude has one mask), before and after fine-tuning (gap_sweep).
2. digits, worst case in L-inf balls of radius 0.5, 1, 2 (pixel levels, of 16) around test points, against
   the gap at the centre point.
3. digits, 64-10-10-10: per-layer sensitivity (one weight matrix at a time) next to the allocation of
   mipnet.sparsity.allocate_sparsity (layer_sensitivity).
4. Fashion-MNIST, 784-10-10 on [0, 1]^784 (random / magnitude / SiPP, two densities, two masks).
5. The published pruned-and-retrained 8x8 digit nets of Kleine Büning et al. (CP 2020)
   in /work/shared/models/pruned8x8 (64-32-16-10, hard MILPs): time-limited bounds on the box,
   exact worst cases in small balls around test images.

Writes the section "Pruning gap" of benchmarks/RESULTS.md and benchmarks/gap_worst_vs_data.png
(digits) and benchmarks/gap_fashion.png.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, SHARED_MODELS, machine, markdown_table, write_section  # noqa: E402

from mipnet.nn.data import load_dataset  # noqa: E402
from mipnet.core.domain import Box, LinfBall  # noqa: E402
from mipnet.analyses.gap import pruning_gap  # noqa: E402
from mipnet.nn.sweeps import gap_sweep, layer_sensitivity  # noqa: E402
from mipnet.nn.pruning import make_permanent, prune  # noqa: E402
from mipnet.io.torch import from_torch  # noqa: E402
from mipnet.nn.workflow import train_dense  # noqa: E402

METHODS = ("random", "magnitude", "sipp")

FULL = {
    "digits": dict(widths=(64, 10, 10), epochs=60, lr=1e-2, densities=(0.7, 0.5, 0.3), masks=3, stages=(0, 10),
                   time_limit=90.0, per_milp=15.0),
    "balls": dict(points=20, radii=(0.5, 1.0, 2.0), density=0.5, time_limit=30.0),
    "sensitivity": dict(widths=(64, 10, 10, 10), epochs=60, lr=1e-2, density=0.3, time_limit=60.0, per_milp=10.0),
    "fashion": dict(widths=(784, 10, 10), epochs=10, lr=1e-3, limit=10000, densities=(0.5, 0.25), masks=2,
                    stages=(0, 2), time_limit=30.0, per_milp=6.0),
    "shared": dict(names=("20p", "50p", "90p"), time_limit=20.0, ball_points=10, ball_radius=0.5,
                   ball_time_limit=20.0),
}
QUICK = {
    "digits": dict(widths=(64, 6, 10), epochs=20, lr=1e-2, densities=(0.5, 0.3), masks=2, stages=(0, 2),
                   time_limit=10.0, per_milp=3.0),
    "balls": dict(points=3, radii=(1.0,), density=0.5, time_limit=5.0),
    "sensitivity": dict(widths=(64, 6, 6, 10), epochs=20, lr=1e-2, density=0.3, time_limit=10.0, per_milp=3.0),
    "fashion": dict(widths=(784, 6, 10), epochs=2, lr=1e-3, limit=2000, densities=(0.5,), masks=1, stages=(0,),
                    time_limit=10.0, per_milp=3.0),
    "shared": dict(names=("50p",), time_limit=5.0, ball_points=2, ball_radius=0.5, ball_time_limit=5.0),
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: tiny settings, writes nothing in benchmarks/")
    p.add_argument("--parts", default="digits,balls,sensitivity,fashion,shared",
                   help="comma-separated parts to run (default: all)")
    p.add_argument("--json", type=Path, help="also write every row to this JSON file")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    return p.parse_args(argv)


def _fmt(v, digits=4):
    return "-" if v is None else f"{v:.{digits}g}"


def _bounds(lo, up, exact):
    return f"{lo:.4g}" if exact else f"{lo:.4g} .. {up:.4g}"


def _ratio(lo, up, exact):
    return f"{lo:.3g}" if exact else f"{lo:.3g} .. {up:.3g}"


# ---------------------------------------------------------------------------- parts
def sweep_part(name, ds, cfg, threads, out_png, log):
    t0 = time.perf_counter()
    dense = train_dense(ds, cfg["widths"], epochs=cfg["epochs"], seed=0, num_threads=threads, optimizer="adam",
                        lr=cfg["lr"])
    log(f"== {name}: dense {'-'.join(map(str, cfg['widths']))} test accuracy {dense.test_accuracy:.4f} "
        f"({time.perf_counter() - t0:.1f} s)")

    def on_row(r):
        log(f"  {r['method']:>9} d={r['density_label']:<5} seed {r['seed']} ft {r['finetune_epochs']:>2}: "
            f"acc {r['accuracy']:.3f} worst [{r['lower']:.4g}, {r['upper']:.4g}] data max {r['data_max']:.4g} "
            f"mean {r['data_mean']:.3g} ({r['seconds']:.1f} s, {r['num_milps']} MILPs)")

    sw = gap_sweep(dense.model, ds, methods=METHODS, densities=cfg["densities"], masks_per_rate=cfg["masks"],
                   finetune_epochs=cfg["stages"], time_limit=cfg["time_limit"],
                   time_limit_per_milp=cfg["per_milp"], num_threads=threads, on_row=on_row)
    log(str(sw))
    sw.plot(out_png)
    return dense, sw


def sweep_table(sw) -> str:
    rows = []
    for r in sw.table():
        exact = r["exact"] == r["masks"]
        worst = (f"{r['lower']:.4g}" if exact else f"{r['lower']:.4g} (proven <= {r['upper_max']:.4g})")
        ratio = (f"{r['ratio_lower']:.3g} (min {r['ratio_lower_min']:.3g})" if exact else
                 f"{r['ratio_lower']:.3g} .. {r['ratio_upper']:.3g}")
        rows.append([r["method"], r["density_label"], r["finetune_epochs"], r["masks"], f"{r['accuracy']:.3f}",
                     worst, f"{r['exact']}/{r['masks']}", f"{r['data_max']:.4g}", f"{r['data_mean']:.3g}",
                     _fmt(r["relative_mean"], 3), ratio, f"{r['seconds']:.0f}"])
    return markdown_table(["method", "density", "ft epochs", "masks", "accuracy", "worst case on D (mean)",
                           "exact", "data max", "data mean", "relative gap on data (mean)",
                           "worst / data max (mean)", "s"], rows)


def balls_part(dense, ds, cfg, log):
    f = from_torch(dense.model)
    X = ds.X_test.astype(np.float64)
    lo, hi = ds.input_range
    idx = np.random.default_rng(0).choice(len(X), size=cfg["points"], replace=False)
    rows = []
    for method in METHODS:
        m = copy.deepcopy(dense.model)
        kw = {"seed": 0}
        if method == "sipp":
            kw["data"] = ds
        prune(m, method, cfg["density"], **kw)
        g = from_torch(make_permanent(m))
        for radius in cfg["radii"]:
            ratios_lo, ratios_up, worst, centre, secs, exact = [], [], [], [], [], 0
            for i in idx:
                res = pruning_gap(f, g, LinfBall(X[i], radius, lo, hi), data=X[i], time_limit=cfg["time_limit"])
                worst.append(res.lower)
                centre.append(res.data["max"])
                ratios_lo.append(res.ratio_lower)
                ratios_up.append(res.ratio_upper)
                secs.append(res.seconds)
                exact += res.exact
            log(f"  ball r={radius:g} {method}: worst/centre mean {np.mean(ratios_lo):.3g} "
                f"max {np.max(ratios_lo):.3g}; {np.mean(secs):.1f} s per ball, {exact}/{len(idx)} exact")
            rows.append(dict(method=method, density=cfg["density"], radius=radius, points=len(idx), exact=exact,
                             centre_mean=float(np.mean(centre)), worst_mean=float(np.mean(worst)),
                             worst_max=float(np.max(worst)), ratio_mean=float(np.mean(ratios_lo)),
                             ratio_median=float(np.median(ratios_lo)), ratio_max=float(np.max(ratios_lo)),
                             ratio_upper_max=float(np.max(ratios_up)), seconds_per_ball=float(np.mean(secs))))
    return rows


def sensitivity_part(ds, cfg, threads, log):
    t0 = time.perf_counter()
    dense = train_dense(ds, cfg["widths"], epochs=cfg["epochs"], seed=0, num_threads=threads, optimizer="adam",
                        lr=cfg["lr"])
    log(f"== sensitivity: dense {'-'.join(map(str, cfg['widths']))} test accuracy {dense.test_accuracy:.4f} "
        f"({time.perf_counter() - t0:.1f} s)")
    sens = layer_sensitivity(dense.model, ds, density=cfg["density"], method="magnitude",
                             time_limit=cfg["time_limit"], time_limit_per_milp=cfg["per_milp"], num_threads=threads)
    log(str(sens))
    return sens


def sensitivity_table(sens) -> str:
    w = sens.widths
    rows = []

    def add(name, dens, r):
        rows.append([name, dens, f"{r['accuracy']:.3f}", _bounds(r["lower"], r["upper"], r["exact"]),
                     f"{r['data_max']:.4g}", _ratio(r["ratio_lower"], r["ratio_upper"], r["exact"])])

    for r in sens.rows:
        ell = r["layer"]
        add(f"layer {ell + 1} only ({w[ell]}x{w[ell + 1]})", r["density_label"], r)
    add("all hidden layers (uniform)", sens.uniform["density_label"], sens.uniform)
    add("allocate_sparsity", "/".join(f"{x:.3g}" for x in sens.allocation), sens.allocated)
    return markdown_table(["magnitude-pruned", "densities per matrix", "accuracy", "worst case on D", "data max",
                           "worst / data max"], rows)


def shared_part(cfg, log):
    from mipnet.io import load_network

    folder = SHARED_MODELS / "pruned8x8"
    if not folder.exists():
        log(f"  {folder} not found: part skipped")
        return []
    ds = load_dataset("digits")
    X = np.concatenate([ds.X_train, ds.X_test]).astype(np.float64)
    f = load_network(folder / "mnist8x8_lin.onnx")
    rows = []
    for name in cfg["names"]:
        g = load_network(folder / f"mnist8x8_{name}_retrain.onnx")
        res = pruning_gap(f, g, Box(0, 16, dim=64), data=X, time_limit=cfg["time_limit"])
        log(f"  lin vs {name}_retrain: worst [{res.lower:.4g}, {res.upper:.4g}] data max {res.data['max']:.4g} "
            f"({res.seconds:.1f} s)")
        Xt = ds.X_test.astype(np.float64)
        idx = np.random.default_rng(0).choice(len(Xt), size=cfg["ball_points"], replace=False)
        balls = [pruning_gap(f, g, LinfBall(Xt[i], cfg["ball_radius"], 0, 16), data=Xt[i],
                             time_limit=cfg["ball_time_limit"]) for i in idx]
        br = [b.ratio_lower for b in balls]
        log(f"    balls r={cfg['ball_radius']:g}: worst/centre median {np.median(br):.3g} max {np.max(br):.3g}, "
            f"{sum(b.exact for b in balls)}/{len(balls)} exact, {np.mean([b.seconds for b in balls]):.1f} s per ball")
        rows.append(dict(name=name, lower=res.lower, upper=res.upper, exact=res.exact, data_max=res.data["max"],
                         data_mean=res.data["mean"], relative_mean=res.data["relative_mean"],
                         ratio_lower=res.ratio_lower, ratio_upper=res.ratio_upper, seconds=res.seconds,
                         ball_ratio_median=float(np.median(br)), ball_ratio_max=float(np.max(br)),
                         ball_ratio_upper_max=float(max(b.ratio_upper for b in balls)),
                         ball_exact=int(sum(b.exact for b in balls)), ball_points=len(balls)))
    return rows


# ---------------------------------------------------------------------------- report
def summary_lines(sw) -> list:
    """Per method: median ratio over all rows (exact rows only) and the range."""
    out = []
    for m in sw.methods:
        rs = [r for r in sw.rows if r["method"] == m]
        ex = [r["ratio_lower"] for r in rs if r["exact"]]
        lo = [r["ratio_lower"] for r in rs]
        if ex:
            out.append(f"{m}: worst case / data max = {np.median(ex):.2f} (median of {len(ex)} exact runs; range "
                       f"{min(lo):.2f} .. {max(lo):.2f} over all {len(rs)} runs)")
        else:
            out.append(f"{m}: no run finished; found worst case / data max >= {min(lo):.2f} .. {max(lo):.2f}")
    return out


def findings(sw) -> list:
    """Per density, right after pruning: the method with the smallest mean data gap vs the smallest worst case."""
    out = []
    tab = [r for r in sw.table() if r["finetune_epochs"] == 0 and np.ndim(r["density"]) == 0]
    for d in sorted({r["density"] for r in tab}, reverse=True):
        rs = [r for r in tab if r["density"] == d]
        by_data = min(rs, key=lambda r: r["data_mean"])
        by_worst = min(rs, key=lambda r: r["upper"])
        line = (f"density {d:g}, right after pruning: smallest mean data gap: {by_data['method']} "
                f"({by_data['data_mean']:.3g}); smallest worst case: {by_worst['method']} "
                f"({by_worst['upper']:.4g} proven)")
        if by_data["method"] != by_worst["method"]:
            line += (f"; {by_data['method']}'s worst case is {by_data['lower'] / by_worst['upper']:.2f}x that "
                     f"(at least)")
        out.append(line)
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = QUICK if args.quick else FULL
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    out_dir = Path(tempfile.mkdtemp(prefix="bench_gap_")) if args.quick else HERE
    t_all = time.perf_counter()

    def log(msg):
        print(msg, flush=True)

    saved, body = {}, []
    digits = load_dataset("digits")
    dense_digits = sw_digits = None
    if "digits" in parts or "balls" in parts:
        dense_digits, sw_digits = sweep_part("digits", digits, cfg["digits"], args.threads,
                                             out_dir / "gap_worst_vs_data.png", log)
        saved["digits"] = sw_digits.to_dict()
    balls = balls_part(dense_digits, digits, cfg["balls"], log) if "balls" in parts else None
    sens = sensitivity_part(digits, cfg["sensitivity"], args.threads, log) if "sensitivity" in parts else None
    sw_fashion = None
    if "fashion" in parts:
        fc = cfg["fashion"]
        fm = load_dataset("fashion-mnist", limit=fc["limit"])
        _, sw_fashion = sweep_part("fashion-mnist", fm, fc, args.threads, out_dir / "gap_fashion.png", log)
        saved["fashion"] = sw_fashion.to_dict()
    shared = shared_part(cfg["shared"], log) if "shared" in parts else None
    total = time.perf_counter() - t_all
    if args.json:
        saved.update(balls=balls, sensitivity=None if sens is None else sens.to_dict(), shared=shared)
        args.json.write_text(json.dumps(saved, indent=1))

    # ------------------------------------------------------------------ RESULTS.md
    d = cfg["digits"]
    body.append(
        f"`python benchmarks/bench_pruning_gap.py` on {machine()}, {datetime.date.today()}, "
        f"{total / 60:.1f} min in all (CPU, torch 1 thread, HiGHS via mipnet.equivalence.max_output_gap; the "
        "machine shared with other jobs). Worst case = max over the domain D of ||f(x) - g(x)||_inf between the "
        "original f and the pruned g (`mipnet.gap.pruning_gap`): a value attained at an input re-checked by a "
        "float64 forward pass, and a proven upper bound; one number where they meet (*exact*), both where a time "
        "limit stopped the search. Data gap = the same quantity on the test points (all inside D). The baseline "
        "in the same run is the data gap itself: *worst / data max* says how far the typical case - what SiPP "
        "(arXiv:1910.05422) and Qian and Klabjan (ICML 2021, arXiv:2105.10065) bound, for most inputs or with high "
        "probability - is from the worst case. Relative gap on data: ||f - g||_inf / ||f||_inf per point. "
        "Densities = fraction of hidden-layer weights kept, output layer dense; magnitude = layer-wise magnitude "
        "(its mask does not depend on the seed: one mask), random = random weights at the same per-layer counts, "
        "sipp = SiPP (deterministic, batch drawn by the seed). Fine-tuning: SGD lr 1e-2, momentum 0.9, batch 128, "
        "mask fixed. Dense nets: Adam, seed 0.")
    if sw_digits is not None:
        body.append(f"### digits, {'-'.join(map(str, sw_digits.widths))}, D = [0, 16]^64\n\n"
                    f"Dense test accuracy {sw_digits.dense_accuracy:.4f} ({d['epochs']} epochs). {d['masks']} masks "
                    f"per density for random and SiPP; time limit {d['time_limit']:g} s per network and stage "
                    f"({d['per_milp']:g} s per output). Whole sweep {sw_digits.seconds:.0f} s.\n\n"
                    + sweep_table(sw_digits) + "\n\n"
                    + "\n".join(f"- {x}" for x in summary_lines(sw_digits) + findings(sw_digits))
                    + "\n\n![worst case vs data](gap_worst_vs_data.png)")
    if balls:
        b = cfg["balls"]
        rows = [[r["method"], f"{r['density']:g}", f"{r['radius']:g}", f"{r['exact']}/{r['points']}",
                 f"{r['centre_mean']:.3g}", f"{r['worst_mean']:.3g}", f"{r['ratio_median']:.3g}",
                 f"{r['ratio_mean']:.3g}", f"{r['ratio_max']:.3g}", f"{r['seconds_per_ball']:.1f}"] for r in balls]
        body.append(f"### digits, worst case near the data: L-inf balls around {b['points']} test points\n\n"
                    "Same dense net, pruned once at the density shown (mask seed 0), no fine-tuning; radius in pixel "
                    "levels (of 16), clipped to [0, 16]; ratio = worst case in the ball / gap at its centre (the "
                    f"test point); time limit {b['time_limit']:g} s per ball.\n\n"
                    + markdown_table(["method", "density", "radius", "exact", "gap at centre (mean)",
                                      "worst in ball (mean)", "ratio median", "ratio mean", "ratio max",
                                      "s per ball"], rows))
    if sens is not None:
        s = cfg["sensitivity"]
        body.append(f"### digits, per-layer sensitivity, {'-'.join(map(str, sens.widths))}, D = [0, 16]^64\n\n"
                    f"Dense test accuracy {sens.dense_accuracy:.4f}. One weight matrix at a time magnitude-pruned to "
                    f"density {sens.density:g} (the others dense), no fine-tuning; then all hidden layers at "
                    f"{sens.density:g}, and magnitude pruning at the per-layer densities of `allocate_sparsity` for "
                    f"the same overall hidden density. Most tolerant first: layers "
                    f"{[x + 1 for x in sens.ranking]} (1 = first hidden). Time limit {s['time_limit']:g} s each; "
                    f"{sens.seconds:.0f} s in all.\n\n" + sensitivity_table(sens))
    if sw_fashion is not None:
        fc = cfg["fashion"]
        body.append(f"### Fashion-MNIST, {'-'.join(map(str, sw_fashion.widths))}, D = [0, 1]^784\n\n"
                    f"{fc['limit']} training and {fc['limit']} test images, dense test accuracy "
                    f"{sw_fashion.dense_accuracy:.4f} ({fc['epochs']} epochs). {fc['masks']} masks per density for "
                    f"random and SiPP; time limit {fc['time_limit']:g} s per network and stage ({fc['per_milp']:g} s "
                    f"per output). Whole sweep {sw_fashion.seconds:.0f} s. Wider nets were measured first "
                    "(magnitude pruning to 0.5, no fine-tuning, same machine): 784-16-10 with 60 s per output left "
                    "bounds 5.1 .. 12.3 after 514 s, 784-32-10 with 5 s per output bounds 5.4 .. 14.8 after 53 s; "
                    "784-10-10 finished every instance in 17-39 s: on the full 784-dimensional box the MILP becomes "
                    "hard beyond ~10 hidden units.\n\n"
                    + sweep_table(sw_fashion) + "\n\n"
                    + "\n".join(f"- {x}" for x in summary_lines(sw_fashion) + findings(sw_fashion))
                    + "\n\n![Fashion-MNIST](gap_fashion.png)")
    if shared:
        rows = [[f"mnist8x8_lin vs {r['name']}_retrain", _bounds(r["lower"], r["upper"], r["exact"]),
                 f"{r['data_max']:.4g}", f"{r['data_mean']:.3g}", _fmt(r["relative_mean"], 3),
                 _ratio(r["ratio_lower"], r["ratio_upper"], r["exact"]), f"{r['seconds']:.0f}",
                 f"{r['ball_ratio_median']:.3g}", f"{r['ball_ratio_max']:.3g}" if r["ball_exact"] == r["ball_points"]
                 else f"{r['ball_ratio_max']:.3g} .. {r['ball_ratio_upper_max']:.3g}",
                 f"{r['ball_exact']}/{r['ball_points']}"] for r in shared]
        sc = cfg["shared"]
        body.append("### Published pruned-and-retrained nets (Kleine Büning, Kern and Sinz, CP 2020)\n\n"
                    "`/work/shared/models/pruned8x8`: the original 64-32-16-10 `mnist8x8_lin` against its copies "
                    "with 20/50/90% of every layer's weights zeroed and retrained; D = [0, 16]^64, data = all 1797 "
                    f"`load_digits` images; time limit {sc['time_limit']:g} s each (these 2 x 48 ReLU "
                    "MILPs do not finish on the box: bounds). Near the data: L-inf balls of radius "
                    f"{sc['ball_radius']:g} around {sc['ball_points']} test images ({sc['ball_time_limit']:g} s "
                    "each), ratio = worst case in the ball / gap at the image.\n\n"
                    + markdown_table(["pair", "worst case on D", "data max", "data mean", "relative gap (mean)",
                                      "worst / data max", "s", "ball ratio median", "ball ratio max",
                                      "balls exact"], rows))
    text = "\n\n".join(body)
    if args.quick:
        print(text)
        print(f"(quick run: pictures in {out_dir}; RESULTS.md untouched)")
    else:
        write_section("Pruning gap", text)
        print(f"RESULTS.md updated ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
