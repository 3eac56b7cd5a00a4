"""Exact counting of activation regions: speed against the MILP baseline, cross-checks, and the
bottleneck experiment of Serra, Tjandraatmadja and Ramalingam (ICML 2018, arXiv:1711.02114).

    python benchmarks/bench_regions.py            # the run recorded in RESULTS.md (~15 min, 2 cores)
    python benchmarks/bench_regions.py --quick    # smoke test (~2 min); writes nothing in benchmarks/
    /path/to/venv-with-relucent/bin/python benchmarks/bench_regions.py   # adds the relucent comparison

Part 1, speed. A suite of networks (random He-initialised nets on [-1, 1]^n0 and MLPs trained on
scikit-learn's digits, counted on small L-infinity balls around test images clipped to [0, 16]).
Each is counted by ``count_regions(method="fast")`` (the vertex method up to
``mipnet.regions.VERTEX_MAX_DIM`` inputs, the LP method beyond) and, in the same run, by the
MILP baseline (``method="milp"``, Serra et al. 2018: a re-solve loop with one no-good cut per
pattern) under a time limit. Since 2026-12-02 ``method="milp"`` runs that loop interleaved with a facet walk from
every region it finds (one MILP per group of regions the walk cannot reach), 10-20x faster than
the plain loop: the fast/MILP ratios recorded before that date are against the plain loop, and
a rerun compares against the faster MILP. The MILP's regions per
second come from its partial count: the loop gets slower as cuts accumulate, so the rate of a
partial run overstates its full-run rate and the ratio fast/MILP is a conservative estimate.
The MILP receives precomputed LP bounds (their time is not charged to it).

Part 2, cross-checks. Counts of independent routes must agree where each finishes: vertex == lp
(== milp, == relucent when installed); distinct patterns seen by sampling 20,000 random inputs
and the patterns the MILP found are subsets of the exact pattern set.

Part 3, bottleneck experiment (see ``BOTTLENECK_NOTE``): two hidden layers with n1 + n2 = 22,
trained on digits, counted exactly and set next to Theorem 1's bound (``serra2018_bound``).

relucent (Gaines and Bi, ICLR 2026; local search over the polyhedral complex with Gurobi LPs) is
compared when it can be imported; it is not a dependency of mipnet (``pip install relucent``
pulls gurobipy with its size-limited licence and plotly, not torch).

Writes the section "Regions" of benchmarks/RESULTS.md and benchmarks/regions_bottleneck.png
(with --quick: prints only, the picture goes to a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, machine, markdown_table, write_section  # noqa: E402

from mipnet import Box, LinfBall, Network  # noqa: E402
from mipnet.bounds import lp_bounds  # noqa: E402
from mipnet.nn.data import Dataset, load_dataset  # noqa: E402
from mipnet.analyses.regions import VERTEX_MAX_DIM, count_regions, sample_regions  # noqa: E402
from mipnet.theory import serra2018_bound  # noqa: E402
from mipnet.io.torch import from_torch  # noqa: E402
from mipnet.nn.training import make_mlp, train  # noqa: E402

SAMPLES = 20_000
#: the vertex method re-runs with return_regions=True (untimed) for the pattern checks below this count
PATTERN_CHECK_MAX = 20_000

BOTTLENECK_NOTE = """\
**Design.** The paper counts the regions of 784-n1-n2-10 MNIST nets on the input box [0,1]^784. \
With digits' 64 inputs the full box [0,16]^64 is out of reach for exact counting (the LP method \
runs at ~100 regions/s, and 22 neurons in 64 dimensions allow up to 2^22 - 1 regions). So the nets \
here read a d-dimensional PCA projection of digits (PCA fitted on the training images, coordinates \
divided by the first component's standard deviation; d = {d}) and are counted exactly on the \
bounding box of the projected training set, the analogue of the paper's input box. Theorem 1's \
bound is evaluated with n0 = d (a smaller n0 also makes the bound peak at an intermediate n1, \
unlike n0 = 784 where it grows up to 2^22 - 1 at n1 = 21). Training: Adam, lr 1e-2, batch 128, \
{epochs} epochs, seeds {seeds} (the seed sets the initialisation and the batch order). Every count \
is exact (vertex method) unless marked with >= (time limit {limit:g} s per net).\
"""


# ============================================================================ helpers
def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.2g}"


def fmt_count(rc) -> str:
    return f"{rc.regions:,}" if rc.exact else f">= {rc.regions:,}"


def pattern_set(P: np.ndarray) -> set:
    return {p.tobytes() for p in np.packbits(np.asarray(P, dtype=bool), axis=1)}


def train_net(widths, ds, *, epochs: int, seed: int):
    model = make_mlp(widths, seed=seed)
    tr = train(model, ds, epochs=epochs, optimizer="adam", lr=1e-2, seed=seed, num_threads=1, progress=False)
    return from_torch(model), tr.test_accuracy


@dataclass
class Case:
    name: str
    net: Network
    domain: object
    domain_text: str
    lp_check: bool = False  # also count with the LP method (cross-check of the vertex method)
    relucent: bool = False  # domain is [-1, 1]^n0: relucent's cube


def suite(quick: bool) -> list[Case]:
    cases = []
    rnd = [((2, 32, 32, 32, 1), 0, False, True), ((4, 16, 16, 1), 0, False, True)]
    if not quick:
        rnd += [((4, 16, 16, 1), 1, False, False), ((4, 16, 16, 1), 2, False, False),
                ((6, 16, 16, 1), 0, False, False), ((7, 10, 10, 1), 0, False, False),
                ((4, 32, 32, 1), 0, False, False)]
    for widths, seed, lp_check, rel in rnd:
        n0 = widths[0]
        cases.append(Case(f"random {'-'.join(map(str, widths))} (seed {seed})", Network.random(list(widths), seed=seed),
                          Box(-1.0, 1.0, dim=n0), f"[-1,1]^{n0}", lp_check, rel))
    ds = load_dataset("digits", seed=0)
    digits = [((64, 16, 16, 10), [(0, 1.5)] if quick else [(0, 1.5), (1, 1.25)]),
              ((64, 32, 32, 10), [] if quick else [(0, 0.5)])]
    for widths, balls in digits:
        if not balls:
            continue
        net, acc = train_net(widths, ds, epochs=30, seed=0)
        for i, r in balls:
            dom = LinfBall(ds.X_test[i].astype(np.float64), r, 0.0, 16.0)
            cases.append(Case(f"digits {'-'.join(map(str, widths))} (acc {acc:.3f})", net, dom,
                              f"L-inf ball r={r:g} around test image {i}, clipped to [0,16]"))
    return cases


# ============================================================================ part 1 + 2: suite
def run_suite(cases: list[Case], milp_time: float, checks: list) -> list[dict]:
    records = []
    for case in cases:
        net, dom = case.net, case.domain
        fast = count_regions(net, dom, method="fast", return_regions=net.input_dim > VERTEX_MAX_DIM)
        b = lp_bounds(net, dom, output=False)
        milp = count_regions(net, dom, method="milp", time_limit=milp_time, bounds=b, return_regions=True)
        smp = sample_regions(net, dom, SAMPLES, seed=0, return_patterns=True)
        rec = {"name": case.name, "domain": case.domain_text, "n0": net.input_dim, "hidden": list(net.hidden_widths),
               "regions": fast.regions, "exact": fast.exact, "algorithm": fast.algorithm, "seconds": fast.seconds,
               "milp_regions": milp.regions, "milp_exact": milp.exact, "milp_seconds": milp.seconds,
               "sampled": smp.regions}
        records.append(rec)
        print(" | ".join(map(str, suite_row(rec))), flush=True)
        # cross-checks -----------------------------------------------------------------------
        if fast.region_list is not None:
            exact_patterns = pattern_set(fast.patterns())
        elif fast.regions <= PATTERN_CHECK_MAX:
            exact_patterns = pattern_set(count_regions(net, dom, method=fast.algorithm, return_regions=True).patterns())
        else:
            exact_patterns = None
        add_check(checks, case.name, "sampled <= exact", f"{smp.regions:,} <= {fast.regions:,}",
                  smp.regions <= fast.regions)
        if exact_patterns is not None:
            add_check(checks, case.name, "sampled patterns in exact set", f"{smp.regions:,} patterns",
                      pattern_set(smp.patterns) <= exact_patterns)
            add_check(checks, case.name, "MILP patterns in exact set", f"{milp.regions:,} patterns",
                      pattern_set(milp.patterns()) <= exact_patterns)
        if milp.exact:
            add_check(checks, case.name, "fast == milp", f"{fast.regions:,} vs {milp.regions:,}",
                      fast.regions == milp.regions)
        else:
            add_check(checks, case.name, "milp (partial) <= fast", f"{milp.regions:,} <= {fast.regions:,}",
                      milp.regions <= fast.regions)
        add_check(checks, case.name, "every interior point verified", f"{fast.verified:,}/{fast.regions:,}",
                  fast.unverified == 0 and fast.verified == fast.regions)
        if case.lp_check:
            lp = count_regions(net, dom, method="lp")
            add_check(checks, case.name, "vertex == lp", f"{fast.regions:,} vs {lp.regions:,} (lp {lp.seconds:.1f} s)",
                      lp.exact and lp.regions == fast.regions)
    return records


def suite_row(rec: dict) -> list:
    fr = rate(rec["regions"], rec["seconds"])
    mr = rate(rec["milp_regions"], rec["milp_seconds"])
    if rec["milp_regions"]:
        ratio_text = f"{fr / mr:,.0f}x"
    else:
        ratio_text = f"> {fr * rec['milp_seconds']:,.0f}x (MILP found none)"
    count = f"{rec['regions']:,}" if rec["exact"] else f">= {rec['regions']:,}"
    milp = f"{rec['milp_regions']:,}{'' if rec['milp_exact'] else ' (partial)'} in {rec['milp_seconds']:.1f} s"
    return [rec["name"], rec["domain"], count, rec["algorithm"], f"{rec['seconds']:.2f}", fmt_rate(fr), milp,
            fmt_rate(mr), ratio_text, f"{rec['sampled']:,}"]


def add_check(checks: list, case: str, what: str, detail: str, ok: bool) -> None:
    checks.append([case, what, detail, "ok" if ok else "FAILED"])
    if not ok:
        print(f"CROSS-CHECK FAILED: {case}: {what}: {detail}", flush=True)


def small_exact_cases(quick: bool) -> list[Case]:
    """Nets small enough for the MILP to finish: vertex == lp == milp (== relucent)."""
    cases = []
    nets = [((2, 8, 8, 1), 0)] + ([] if quick else [((3, 6, 6, 1), 1), ((4, 8, 4, 1), 0)])
    for widths, seed in nets:
        n0 = widths[0]
        cases.append(Case(f"random {'-'.join(map(str, widths))} (seed {seed})", Network.random(list(widths), seed=seed),
                          Box(-1.0, 1.0, dim=n0), f"[-1,1]^{n0}", True, True))
    ds = load_dataset("digits", seed=0)
    net, acc = train_net((64, 16, 16, 10), ds, epochs=30, seed=0)
    cases.append(Case(f"digits 64-16-16-10 (acc {acc:.3f})", net,
                      LinfBall(ds.X_test[0].astype(np.float64), 0.75, 0.0, 16.0),
                      "L-inf ball r=0.75 around test image 0, clipped to [0,16]"))
    return cases


def run_exact_agreement(cases: list[Case], milp_limit: float, checks: list, relucent_mod) -> list[list]:
    rows = []
    for case in cases:
        net, dom = case.net, case.domain
        counts = {}
        if net.input_dim <= 8:
            counts["vertex"] = count_regions(net, dom, method="vertex")
        counts["lp"] = count_regions(net, dom, method="lp")
        counts["milp"] = count_regions(net, dom, method="milp", time_limit=milp_limit)
        exact = {k: v.regions for k, v in counts.items() if v.exact}
        partial = {k: v.regions for k, v in counts.items() if not v.exact}
        rel = None
        if relucent_mod is not None and case.relucent:
            rel = run_relucent(relucent_mod, net, max_polys=None)
            (exact if rel[2] else partial)["relucent"] = rel[0]
        # every finished route gives the same number, every unfinished one a number below it
        agree = (len(exact) >= 2 and len(set(exact.values())) == 1
                 and all(v <= min(exact.values()) for v in partial.values()))
        row = [case.name, case.domain_text]
        for k in ("vertex", "lp", "milp"):
            rc = counts.get(k)
            row.append("n/a (64 inputs)" if rc is None else f"{fmt_count(rc)} ({rc.seconds:.2f} s)")
        row.append("not installed" if relucent_mod is None else
                   ("n/a (not a cube)" if rel is None else
                    f"{'' if rel[2] else '>= '}{rel[0]:,} ({rel[1]:.1f} s)"))
        row.append(("yes" if not partial else "yes (" + ", ".join(partial) + " unfinished)") if agree else "NO")
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)
        detail = ", ".join(f"{k} {v:,}" for k, v in exact.items())
        if partial:
            detail += "; unfinished: " + ", ".join(f"{k} >= {v:,}" for k, v in partial.items())
        add_check(checks, case.name, "exact routes agree", detail, agree)
    return rows


# ============================================================================ relucent
def import_relucent():
    try:
        import relucent  # noqa: F401

        return relucent
    except Exception:  # not installed, or its import fails (e.g. gurobipy missing)
        return None


def run_relucent(relucent, net: Network, *, max_polys):
    """(regions, seconds, complete) of relucent's BFS over the cube [-1, 1]^n0, one worker."""
    import torch

    from mipnet.io.torch import to_torch

    model = to_torch(net, dtype=torch.float64)
    cplx = relucent.Complex(model)
    kw = {} if max_polys is None else {"max_polys": max_polys}
    t0 = time.perf_counter()
    res = cplx.bfs(np.zeros(net.input_dim), cube_radius=1.0, cube_mode="clipped", nworkers=1, verbose=0, **kw)
    seconds = time.perf_counter() - t0
    return len(cplx), seconds, bool(getattr(res, "complete", False))


def run_relucent_speed(relucent, quick: bool) -> list[list]:
    rows = []
    cap = 150 if quick else 400
    net = Network.random([4, 16, 16, 1], seed=0)
    dom = Box(-1.0, 1.0, dim=4)
    fast = count_regions(net, dom)
    n, s, complete = run_relucent(relucent, net, max_polys=cap)
    rows.append(["random 4-16-16-1 (seed 0)", f"{fast.regions:,}", f"{fast.seconds:.2f}",
                 fmt_rate(fast.regions_per_second), f"{n:,}{'' if complete else ' (capped)'} in {s:.1f} s",
                 fmt_rate(rate(n, s)), f"{fast.regions_per_second / rate(n, s):,.0f}x"])
    print(" | ".join(map(str, rows[-1])), flush=True)
    return rows


# ============================================================================ part 3: bottleneck
def pca_dataset(d: int):
    from sklearn.decomposition import PCA

    ds = load_dataset("digits", seed=0)
    pca = PCA(n_components=d, random_state=0).fit(ds.X_train)
    scale = float(np.sqrt(pca.explained_variance_[0]))
    Ztr = pca.transform(ds.X_train) / scale
    Zte = pca.transform(ds.X_test) / scale
    pds = Dataset(Ztr, ds.y_train, Zte, ds.y_test, (d,), 10, f"digits-pca{d}",
                  (float(Ztr.min()), float(Ztr.max())))
    dom = Box(Ztr.min(axis=0).astype(np.float64), Ztr.max(axis=0).astype(np.float64))
    return pds, dom, float(np.sum(pca.explained_variance_ratio_))


def run_bottleneck(d: int, n1s, seeds, epochs: int, limit: float, checks: list):
    pds, dom, evr = pca_dataset(d)
    results = []  # {n1, seed, regions, exact, seconds, acc}
    for n1 in n1s:
        for seed in seeds:
            net, acc = train_net((d, n1, 22 - n1, 10), pds, epochs=epochs, seed=seed)
            rc = count_regions(net, dom, time_limit=limit)
            # fraction of test images on which some second-layer unit is on (0: the net is constant there)
            alive = float(np.mean(net.activation_pattern(np.asarray(pds.X_test, dtype=np.float64))[:, n1:].any(axis=1)))
            results.append({"n1": n1, "seed": seed, "regions": rc.regions, "exact": rc.exact,
                            "seconds": rc.seconds, "acc": acc, "alive": alive})
            smp = sample_regions(net, dom, SAMPLES, seed=seed)
            add_check(checks, f"bottleneck d={d} n1={n1} seed {seed}", "sampled <= exact",
                      f"{smp.regions:,} <= {rc.regions:,}", smp.regions <= rc.regions)
            if rc.regions <= 400 and seed == seeds[0]:
                lp = count_regions(net, dom, method="lp")
                add_check(checks, f"bottleneck d={d} n1={n1} seed {seed}", "vertex == lp",
                          f"{rc.regions:,} vs {lp.regions:,}", lp.exact and rc.exact and lp.regions == rc.regions)
            print(f"bottleneck d={d} n1={n1:2d} n2={22 - n1:2d} seed {seed}: {fmt_count(rc)} regions "
                  f"({rc.seconds:.1f} s), acc {acc:.3f}, bound {serra2018_bound((d, n1, 22 - n1)).value:,}", flush=True)
    return results, evr


def bottleneck_table(d: int, n1s, results) -> tuple[list[list], dict]:
    rows = []
    summary = {"n1": [], "mean": [], "min": [], "max": [], "bound": [], "acc": [], "alive": [], "all_exact": []}
    for n1 in n1s:
        rs = [r for r in results if r["n1"] == n1]
        counts = np.array([r["regions"] for r in rs], dtype=float)
        exact = all(r["exact"] for r in rs)
        bound = serra2018_bound((d, n1, 22 - n1)).value
        mean = float(counts.mean())
        acc = float(np.mean([r["acc"] for r in rs]))
        alive = float(np.mean([r["alive"] for r in rs]))
        ge = "" if exact else ">= "
        rows.append([n1, 22 - n1, f"{bound:,}", f"{ge}{mean:,.0f}", f"{ge}{counts.min():,.0f} .. {counts.max():,.0f}",
                     f"{mean / bound:.3f}", f"{acc:.3f}", f"{alive:.0%}", f"{sum(r['seconds'] for r in rs):.1f}"])
        for k, v in (("n1", n1), ("mean", mean), ("min", counts.min()), ("max", counts.max()), ("bound", bound),
                     ("acc", acc), ("alive", alive), ("all_exact", exact)):
            summary[k].append(v)
    return rows, summary


def plot_bottleneck(d: int, summary: dict, results, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n1 = np.array(summary["n1"])
    fig = Figure(figsize=(7.0, 6.2))
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    ax.semilogy(n1, summary["bound"], "s--", color="0.35", label=f"Theorem 1 bound (n0 = {d})")
    big = [serra2018_bound((784, k, 22 - k)).value for k in n1]
    ax.semilogy(n1, big, ":", color="0.65", label="Theorem 1 bound (n0 = 784, the paper's MNIST)")
    ax.semilogy(n1, summary["mean"], "o-", color="C0", label="exact count, mean over seeds")
    ax.fill_between(n1, summary["min"], summary["max"], color="C0", alpha=0.2, label="min .. max over seeds")
    xs = [r["n1"] for r in results]
    ys = [r["regions"] for r in results]
    ax.plot(xs, ys, ".", color="C0", alpha=0.5, markersize=4)
    ax.set_ylabel("activation regions")
    ax.set_title(f"{d}-n1-(22-n1)-10 nets on PCA-{d} digits: activation regions\n"
                 "in the bounding box of the projected training data", fontsize=11)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, which="major", alpha=0.3)
    ax2.plot(n1, summary["acc"], "o-", color="C2")
    ax2.set_ylabel("test accuracy")
    ax2.set_xlabel("n1 (first hidden layer width; n2 = 22 - n1)")
    ax2.set_xticks(n1)
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


# ============================================================================ main
def compute(args) -> dict:
    """Run everything; return a JSON-serialisable record of the measurements."""
    quick = args.quick
    milp_time = args.milp_time or (5.0 if quick else 15.0)
    t_start = time.perf_counter()
    checks: list = []
    relucent = import_relucent()
    data = {"quick": quick, "date": time.strftime("%Y-%m-%d"), "machine": machine(), "milp_time": milp_time,
            "vertex_max_dim": VERTEX_MAX_DIM, "samples": SAMPLES,
            "relucent_version": getattr(relucent, "__version__", None)}
    if not args.skip_suite:
        print("== speed: fast vs MILP baseline", flush=True)
        data["suite"] = run_suite(suite(quick), milp_time, checks)
        print("== exact agreement on small nets", flush=True)
        data["agree_milp_limit"] = 60.0 if quick else 120.0
        data["agree_rows"] = run_exact_agreement(small_exact_cases(quick), data["agree_milp_limit"], checks, relucent)
        if relucent is not None:
            print("== relucent speed", flush=True)
            data["relucent_rows"] = run_relucent_speed(relucent, quick)
    if not args.skip_bottleneck:
        d = args.pca_dim or (4 if quick else 6)
        seeds = list(range(args.seeds or (1 if quick else 3)))
        n1s = [1, 2, 4, 8, 11, 14, 17, 20, 21] if quick else list(range(1, 22))
        epochs, limit = 40, (30.0 if quick else 120.0)
        print(f"== bottleneck experiment: d = {d}, seeds {seeds}", flush=True)
        results, evr = run_bottleneck(d, n1s, seeds, epochs, limit, checks)
        data["bottleneck"] = {"d": d, "seeds": seeds, "n1s": n1s, "epochs": epochs, "limit": limit,
                              "explained_variance": evr, "results": results}
    data["checks"] = checks
    data["total_seconds"] = time.perf_counter() - t_start
    return data


def render(data: dict, png: Path) -> str:
    """The RESULTS.md section (and the bottleneck picture) from a record made by :func:`compute`."""
    milp_time = data["milp_time"]
    sections = [f"`python benchmarks/bench_regions.py{' --quick' if data['quick'] else ''}` on {data['machine']}, "
                f"{data['date']}; the machine was shared with other jobs (run under `nice`), so absolute times are "
                "noisy, while each ratio compares two runs made minutes apart."]
    if "suite" in data:
        recs = data["suite"]
        header = ["network", "domain", "regions (fast)", "algorithm", "fast s", "fast regions/s",
                  f"MILP in {milp_time:g} s", "MILP regions/s", "fast / MILP", f"sampled ({data['samples']:,} pts)"]
        target = [r for r in recs if r["n0"] == 4 and r["hidden"] == [16, 16]]
        low = [r for r in recs if r["algorithm"] == "lp"]

        def ratio(r):
            return rate(r["regions"], r["seconds"]) / max(rate(r["milp_regions"], r["milp_seconds"]), 1e-300)

        summary = ""
        if target:
            rates = [rate(r["regions"], r["seconds"]) for r in target]
            ratios = [ratio(r) for r in target if r["milp_regions"]] or [float("inf")]  # inf: MILP found none
            ok = min(rates) > 2000 and min(ratios) >= 100
            summary += (f"**Targets** (4 inputs, two layers of 16: > 2,000 regions/s and >= 100x the MILP): "
                        f"{'met' if ok else 'NOT met'}: {min(rates):,.0f} to {max(rates):,.0f} regions/s, "
                        f"{min(ratios):,.0f}x to {max(ratios):,.0f}x the MILP's partial rate. ")
        if low:
            lr = [ratio(r) for r in low if r["milp_regions"]] or [float("inf")]
            summary += (f"With 64 inputs (digits, LP method) the fast method is {min(lr):,.0f}x to {max(lr):,.0f}x "
                        f"the MILP's partial rate{': below 100x' if max(lr) < 100 else ''}; there each region costs "
                        "several Chebyshev LPs (profiled separately: about 5.6 LPs per region on the first digits "
                        "net, ~3 ms each, 70% of the time inside HiGHS).")
        sections.append(
            "### Speed: fast method vs the MILP baseline\n\n"
            f"*fast* = `count_regions(method=\"fast\")` (vertex method up to {data['vertex_max_dim']} inputs, LP "
            "method beyond), run to completion, one run each. *MILP* = `method=\"milp\"` (Serra et al. 2018: "
            "interior MILP re-solved with a no-good cut per pattern; HiGHS has no solution pool), given precomputed "
            f"LP bounds and stopped after {milp_time:g} s: its regions/s is the partial count over the time, and "
            "since every cut makes the next solve harder, the full-run rate would be lower, so *fast / MILP* "
            "understates the speed-up. Random nets: `Network.random` (He initialisation). Digits nets: 30 epochs "
            "of Adam (lr 1e-2), one thread; the balls keep the counts in range (on the full box [0,16]^64 they are "
            f"far beyond reach). *sampled*: distinct patterns at {data['samples']:,} uniform random points of the "
            "domain (a lower bound; in 64 dimensions it finds only a few percent of the regions).\n\n"
            + markdown_table(header, [suite_row(r) for r in recs]) + ("\n\n" + summary if summary else ""))
        header = ["network", "domain", "vertex", "lp", "milp", "relucent", "agree"]
        sections.append(
            "### Cross-check: independent routes to the same count\n\n"
            f"Nets small enough for the MILP to finish (limit {data['agree_milp_limit']:g} s). vertex (double "
            "description, no LP), lp (Chebyshev-ball branching), milp (Serra et al.) and relucent (local search over "
            "the complex, its own LPs; cube [-1,1]^n0 with `cube_mode=\"clipped\"`, one worker) are four independent "
            "algorithms.\n\n" + markdown_table(header, data["agree_rows"]))
        if data.get("relucent_rows"):
            header = ["network", "regions (fast)", "fast s", "fast regions/s", "relucent", "relucent regions/s",
                      "fast / relucent"]
            sections.append(
                f"### relucent {data['relucent_version']}\n\n"
                "relucent is not a mipnet dependency (AGPL; needs gurobipy, whose pip licence is size-limited). "
                "It was installed for this run in a separate virtual environment with the system packages visible "
                "(`pip install relucent` added gurobipy 13, plotly and relucent; it left torch alone). Its BFS "
                "(one worker, cube [-1,1]^4 clipped) was stopped after a fixed number of regions (`max_polys`) and "
                "its rate taken from that partial run. (In a separate run, its full BFS of this net took 584 s and "
                "found the same 8,706 regions.)\n\n" + markdown_table(header, data["relucent_rows"]))
        else:
            sections.append("### relucent\n\nNot installed in this interpreter: `pip install relucent` works "
                            "(it brings gurobipy and plotly, not torch), but it is not a mipnet dependency; run this "
                            "script with an interpreter that has it to add the comparison.")
    if "bottleneck" in data:
        bn = data["bottleneck"]
        d, n1s, results = bn["d"], bn["n1s"], bn["results"]
        rows, summary = bottleneck_table(d, n1s, results)
        header = ["n1", "n2", f"Theorem 1 bound (n0={d})", "count, mean", "min .. max", "mean / bound",
                  "test acc", "layer 2 alive", "count s (all seeds)"]
        table = markdown_table(header, rows)
        plot_bottleneck(d, summary, results, png)
        mean = np.array(summary["mean"])
        bound = np.array(summary["bound"], dtype=float)
        acc = np.array(summary["acc"])
        i_max = int(np.argmax(mean))
        k_max, k_bmax = n1s[i_max], n1s[int(np.argmax(bound))]
        k_acc = n1s[int(np.argmax(acc))]
        peak = float(mean[i_max])
        pairs = [(k, 22 - k) for k in n1s if k > 11 and (22 - k) in n1s]
        wider = sum(mean[n1s.index(a)] > mean[n1s.index(b)] for a, b in pairs)
        interior = 0 < i_max < len(n1s) - 1
        finding = (
            f"**Findings.** (1) Bottleneck: narrow first layers cap the count, n1 = {n1s[0]} gives {mean[0]:,.0f} "
            f"regions and n1 = {n1s[1]} gives {mean[1]:,.0f}, close to the bound there (count/bound "
            f"{mean[0] / bound[0]:.2f}, {mean[1] / bound[1]:.2f}), while at the bound's peak (n1 = {k_bmax}) the "
            f"nets reach only {mean[n1s.index(k_bmax)] / bound[n1s.index(k_bmax)]:.1%} of it. (2) Wider first "
            f"layer, more regions: in {wider} of {len(pairs)} mirrored pairs (n1, n2) vs (n2, n1) with n1 > n2 the "
            f"net with the wider first layer has more regions. (3) Peak: the mean count is largest at n1 = {k_max} "
            f"(n2 = {22 - k_max}; {peak:,.0f} regions)"
            + (", an intermediate width, as in the paper. " if interior else
               ", the widest first layer: unlike the paper's MNIST nets, the mean count has no interior maximum "
               "here. ")
            + f"(4) Test accuracy peaks at n1 = {k_acc} ({acc.max():.3f}) "
            f"and falls for n2 <= 2 (n2 = 1: {acc[-1]:.3f}) although those nets have the most regions. With n2 = 1 "
            f"the single second-layer unit is on for {summary['alive'][-1]:.0%} of the test images (*layer 2 "
            "alive*): the net is constant on them, and its tens of thousands of activation regions (all cut by the "
            "first layer) share (almost) one affine map. Activation regions are not linear regions, and a count "
            "says nothing about accuracy by itself.")
        sections.append(
            "### Bottleneck experiment (Serra, Tjandraatmadja, Ramalingam 2018, Section 7)\n\n"
            + BOTTLENECK_NOTE.format(d=d, epochs=bn["epochs"], seeds=", ".join(map(str, bn["seeds"])),
                                     limit=bn["limit"])
            + f" The {d} components keep {100 * bn['explained_variance']:.0f}% of the pixel variance.\n\n" + table
            + f"\n\n![bottleneck]({png.name})\n\n" + finding)
    checks = data["checks"]
    bad = [c for c in checks if c[3] != "ok"]
    sections.append(f"### Cross-checks run by this script\n\n{len(checks) - len(bad)} of {len(checks)} passed "
                    "(per net: sampled <= exact count; sampled and MILP patterns inside the exact pattern set where "
                    "it was kept, i.e. counts <= 20,000 or LP method; MILP partial count <= exact; every interior "
                    "point verified by a float64 forward pass; vertex == lp on the bottleneck nets with <= 400 "
                    "regions; the agreement table above)"
                    + (":" if bad else ".") + ("\n\n" + markdown_table(["case", "check", "detail", "result"], bad)
                                               if bad else ""))
    sections.append(f"Total run time {data['total_seconds'] / 60:.1f} min.")
    return "\n\n".join(sections)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test; writes nothing in benchmarks/")
    p.add_argument("--milp-time", type=float, help="time limit of each MILP baseline run (s)")
    p.add_argument("--skip-suite", action="store_true", help="only the bottleneck experiment")
    p.add_argument("--skip-bottleneck", action="store_true", help="only the speed suite and cross-checks")
    p.add_argument("--pca-dim", type=int, help="input dimension d of the bottleneck nets (PCA of digits)")
    p.add_argument("--seeds", type=int, help="seeds per bottleneck configuration")
    p.add_argument("--json", type=Path, help="also save the measurements as JSON here")
    p.add_argument("--from-json", type=Path, help="re-render RESULTS.md and the picture from a saved JSON")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
    else:
        data = compute(args)
        if args.json:
            args.json.write_text(json.dumps(data, indent=1))
    quick = data["quick"]
    png = (Path(tempfile.mkdtemp()) if quick else HERE) / "regions_bottleneck.png"
    body = render(data, png)
    bad = [c for c in data["checks"] if c[3] != "ok"]
    print(f"cross-checks: {len(data['checks']) - len(bad)}/{len(data['checks'])} passed; "
          f"total {data['total_seconds']:.0f} s; picture {png}", flush=True)
    if quick:
        print(body)
    else:
        write_section("Regions", body)
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
