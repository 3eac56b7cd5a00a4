"""Neuron bounds at the state of the art: ia, symbolic, alpha (alpha-CROWN), lp, auto, in one run.

    python benchmarks/bench_bounds.py            # full run (about 10 minutes on 2 cores)
    python benchmarks/bench_bounds.py --no-big   # without the 784-400-400-10 searches
    python benchmarks/bench_bounds.py --quick    # smoke test (about a minute; writes nothing)

1. Per net (random and trained, 64 and 784 inputs, 2 to 5 hidden layers): seconds, unstable
   neurons left and mean width of the hidden layers' bounds for every method; alpha's unstable
   count and time against the exact LP bounds (``lp_bounds(sign_only=False)``).
2. LP tightening of the random 784-100-100-10 on [0,1]^784: the previous lp.py (git 5231862,
   loaded into a temporary module: symbolic start, every unstable neuron's LP to optimality,
   HiGHS's defaults) against the new default (alpha start, witnesses, sign-only LPs with
   HiGHS's objective bound), same run.
3. Stable neurons of Fashion-MNIST 784-100-100-10 nets trained with L1 in 1e-5 .. 2e-4 (Serra
   et al. NeurIPS 2021) over [0,1]^784: find_stable_neurons per-neuron and one-MILP on these
   bounds, next to the published Gurobi times.
4. Soundness: every method's bounds contain the pre-activations of 10^5 points of the domain
   (random points and box vertices) and contain the exact LP bounds (up to the LP's slack).

Prints the tables and writes the section "Bounds" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this working tree's mipnet
from _common import machine, markdown_table, module_at, write_section  # noqa: E402

from mipnet.bounds import compute_bounds, lp_bounds  # noqa: E402
from mipnet.core.domain import Box, LinfBall  # noqa: E402
from mipnet.core.network import Network  # noqa: E402

METHODS = ("ia", "symbolic", "alpha", "lp", "auto")
#: The revision whose mipnet/bounds/lp.py is the baseline of part 2 (before issue 12).
BASELINE_REV = "5231862"


# ---------------------------------------------------------------------------- nets
def _train(ds, widths, *, l1, epochs, seed=0):
    from mipnet.io.torch import from_torch
    from mipnet.nn.training import make_mlp, train

    model = make_mlp(widths, seed=seed)
    tr = train(model, ds, epochs=epochs, optimizer="adam", lr=1e-2 if ds.input_dim < 100 else 1e-3, l1=l1,
               seed=seed, progress=False, num_threads=2)
    return from_torch(model), tr.test_accuracy


def _fashion(limit):
    from mipnet.core.errors import DatasetError
    from mipnet.nn.data import load_dataset

    try:
        return load_dataset("fashion-mnist", limit=limit)
    except DatasetError as exc:
        print(f"Fashion-MNIST not available ({exc}); its nets are skipped", flush=True)
        return None


def cases(quick: bool):
    """(name, network, domain name, domain, note) for part 1."""
    from mipnet.nn.data import load_dataset

    rng = np.random.default_rng(0)
    out = []
    r64 = Network.random([64, 100, 100, 10], seed=1)
    c64 = rng.uniform(0.2, 0.8, size=64)
    out.append(("random 64-100-100-10", r64, "ball r=0.05", LinfBall(c64, 0.05, 0, 1), "random"))
    r5 = Network.random([64, 50, 50, 50, 50, 50, 10], seed=2)
    out.append(("random 64-50x5-10", r5, "ball r=0.02", LinfBall(c64, 0.02, 0, 1), "random"))
    out.append(("random 784-100-100-10", Network.random([784, 100, 100, 10], seed=0), "[0,1]^784",
                Box(0, 1, dim=784), "random"))
    digits = load_dataset("digits")
    x0 = digits.X_test[0]
    net, acc = _train(digits, [64, 64, 64, 10], l1=1e-3, epochs=30)
    out.append(("digits 64-64-64-10 L1 1e-3", net, "[0,16]^64", Box(0, 16, dim=64), f"acc {acc:.3f}"))
    out.append(("digits 64-64-64-10 L1 1e-3", net, "ball r=1", LinfBall(x0, 1.0, 0, 16), f"acc {acc:.3f}"))
    if not quick:
        net, acc = _train(digits, [64, 50, 50, 50, 50, 50, 10], l1=1e-3, epochs=30)
        out.append(("digits 64-50x5-10 L1 1e-3", net, "ball r=1", LinfBall(x0, 1.0, 0, 16), f"acc {acc:.3f}"))
    fm = _fashion(2000 if quick else 10000)
    if fm is not None:
        widths = [784, 100, 100, 10]
        net, acc = _train(fm, widths, l1=1e-4, epochs=2 if quick else 5)
        out.append(("fashion 784-100-100-10 L1 1e-4", net, "[0,1]^784", Box(0, 1, dim=784), f"acc {acc:.3f}"))
        if not quick:
            net, acc = _train(fm, [784, 50, 50, 50, 10], l1=1e-4, epochs=5)
            out.append(("fashion 784-50x3-10 L1 1e-4", net, "ball r=0.02",
                        LinfBall(fm.X_test[0], 0.02, 0, 1), f"acc {acc:.3f}"))
    return out, fm


# ---------------------------------------------------------------------------- checks
def _sample_points(dom, n, seed=0):
    X = dom.sample(n, seed=seed, include_vertices=True)
    return np.concatenate([X, dom.center[None, :]])


def contains(net, b, X, chunk=10_000) -> bool:
    for s in range(0, len(X), chunk):
        if not b.contains(net, X[s:s + chunk], tol=0):
            return False
    return True


def outside_lp(b, exact, start) -> bool:
    """Every bound contains the exact LP bound, up to the LP's slack, wherever the LP ran (the
    sides the exact path moved from its symbolic start): a method claiming more than the LP
    relaxation allows would be a bug."""
    for a, e, s0 in zip(b.layers, exact.layers, start.layers):
        tol = 1e-5 * (1 + np.abs(e.lower) + np.abs(e.upper))  # the exact LP values carry lp_slack
        lo_lp, hi_lp = e.lower != s0.lower, e.upper != s0.upper
        if np.any(lo_lp & (a.lower > e.lower + tol)) or np.any(hi_lp & (a.upper < e.upper - tol)):
            return False
    return True


def mean_width(b) -> float:
    return float(np.mean(np.concatenate([lb.upper - lb.lower for lb in b.hidden])))


def run_method(net, dom, method):
    t0 = time.perf_counter()
    b = compute_bounds(net, dom, method=method)
    return b, time.perf_counter() - t0


# ---------------------------------------------------------------------------- parts
def part1(quick: bool):
    nets, fm = cases(quick)
    n_samples = 10_000 if quick else 100_000
    rows, summary = [], []
    # warm-up (torch import, first autograd call) outside the timings
    compute_bounds(Network.random([4, 8, 8, 2], seed=0), Box(-1, 1, dim=4), method="alpha")
    for name, net, dname, dom, note in nets:
        X = _sample_points(dom, n_samples)
        t0 = time.perf_counter()
        exact = lp_bounds(net, dom, sign_only=False, start="symbolic")
        t_exact = time.perf_counter() - t0
        start = compute_bounds(net, dom, method="symbolic")
        res = {}
        for m in METHODS:
            b, t = run_method(net, dom, m)
            res[m] = (b, t)
            ok_s, ok_lp = contains(net, b, X), outside_lp(b, exact, start)
            if not ok_s or not ok_lp:
                raise AssertionError(f"{name} {dname} {m}: unsound (samples {ok_s}, outside exact LP {ok_lp})")
        ok = contains(net, exact, X)
        if not ok:
            raise AssertionError(f"{name} {dname}: exact LP bounds miss a sample")
        n_hidden = net.num_hidden_neurons
        row = [name, dname, note, n_hidden]
        for m in METHODS:
            b, t = res[m]
            row.append(f"{t:.3g} / {b.num_unstable} / {mean_width(b):.3g}")
        row.append(f"{t_exact:.3g} / {exact.num_unstable} / {mean_width(exact):.3g}")
        a_b, a_t = res["alpha"]
        ratio_u = a_b.num_unstable / max(exact.num_unstable, 1)
        ratio_t = t_exact / a_t
        row += [f"{ratio_u:.3f}", f"{ratio_t:.1f}x"]
        rows.append(row)
        summary.append((name, dname, ratio_u, ratio_t, t_exact))
        print("[1]", " | ".join(map(str, row)), flush=True)
    header = ["net", "domain", "note", "hidden"] + [f"{m}: s / unstable / width" for m in METHODS] + [
        "exact LP: s / unstable / width", "alpha / LP unstable", "LP s / alpha s"]
    return header, rows, summary, fm, n_samples


def old_lp_bounds(rev: str = BASELINE_REV):
    """``lp_bounds`` of mipnet/bounds/lp.py at git revision ``rev`` (the code before this issue),
    loaded as a temporary module next to this tree's other modules."""
    return module_at(rev, "mipnet/bounds/lp.py").lp_bounds


def part2(quick: bool):
    net = Network.random([784, 100, 100, 10], seed=0)
    dom = Box(0, 1, dim=784)
    old_lp = old_lp_bounds()
    for f in (lp_bounds, old_lp):  # warm-up
        f(Network.random([4, 8, 8, 2], seed=0), Box(-1, 1, dim=4))
    t0 = time.perf_counter()
    old = old_lp(net, dom)
    t_old = time.perf_counter() - t0
    t0 = time.perf_counter()
    new = lp_bounds(net, dom)
    t_new = time.perf_counter() - t0
    t0 = time.perf_counter()
    new_h = lp_bounds(net, dom, output=False)
    t_new_h = time.perf_counter() - t0
    t0 = time.perf_counter()
    old_h = old_lp(net, dom, output=False)
    t_old_h = time.perf_counter() - t0
    X = _sample_points(dom, 10_000 if quick else 100_000)
    for b in (old, new, new_h, old_h):
        assert contains(net, b, X)
    assert new.num_unstable == old.num_unstable, (new.num_unstable, old.num_unstable)
    rows = [
        [f"previous lp.py (git {BASELINE_REV}): symbolic start, full LPs", "yes", f"{t_old:.2f}", old.lp_solves,
         old.num_unstable,
         f"{mean_width(old):.4g}", f"{float(np.mean(old.output.upper - old.output.lower)):.4g}", "1.0"],
        ["new default (alpha, witnesses, sign-only)", "yes", f"{t_new:.2f}", new.lp_solves, new.num_unstable,
         f"{mean_width(new):.4g}", f"{float(np.mean(new.output.upper - new.output.lower)):.4g}",
         f"{t_old / t_new:.1f}"],
        [f"previous lp.py (git {BASELINE_REV})", "no", f"{t_old_h:.2f}", old_h.lp_solves, old_h.num_unstable,
         f"{mean_width(old_h):.4g}",
         "-", "1.0"],
        ["new default", "no", f"{t_new_h:.2f}", new_h.lp_solves, new_h.num_unstable, f"{mean_width(new_h):.4g}",
         "-", f"{t_old_h / t_new_h:.1f}"],
    ]
    for r in rows:
        print("[2]", r, flush=True)
    header = ["LP tightening", "output LPs", "s", "LP solves", "unstable", "hidden mean width",
              "output mean width", "speed-up"]
    return header, rows, t_old / t_new


def part3(quick: bool, fm, big: bool, baseline: bool = True):
    from mipnet.analyses.stability import find_stable_neurons

    if fm is None:
        return None
    dom = Box(0, 1, dim=784)
    X = fm.X_train
    configs = [([784, 100, 100, 10], l1) for l1 in ((1e-4,) if quick else (1e-5, 1e-4, 2e-4))]
    if big and not quick:
        configs += [([784, 400, 400, 10], l1) for l1 in (1e-5, 2e-4)]
    limit = 30.0 if quick else 60.0
    rows = []
    for widths, l1 in configs:
        net, acc = _train(fm, widths, l1=l1, epochs=2 if quick else 5)
        t0 = time.perf_counter()
        b = compute_bounds(net, dom, method="auto")
        t_b = time.perf_counter() - t0
        runs = [(m, True) for m in ("per_neuron", "one_milp")]
        if baseline:  # the same searches without the branch and bound (the path before it), same run
            runs += [(m, False) for m in ("per_neuron", "one_milp")]
        for method, branching in runs:
            r = find_stable_neurons(net, dom, method=method, data=X, bounds=b, time_limit=limit,
                                    branching=branching)
            r.check(net, X)
            c = [ls.counts() for ls in r.layers]
            stable = sum(d["inactive"] + d["active"] for d in c)
            unk = sum(d["unknown"] for d in c)
            nb = sum(int(np.sum(ls.proof == "bab")) for ls in r.layers)
            bab = next((n for n in r.notes if n.startswith("branch and bound")), "")
            branches = bab.split(":")[1].split(" branches")[0].strip() if bab else "0"
            rows.append(["-".join(map(str, widths)), f"{l1:g}", f"{acc:.3f}", f"{t_b:.2f}", b.num_unstable,
                         method.replace("_", "-") + ("" if branching else " (no BaB)"), r.status,
                         f"{r.seconds:.2f}", f"{t_b + r.seconds:.2f}", branches, nb,
                         r.num_milps, f"{stable} ({'/'.join(str(d['inactive']) for d in c)} inact, "
                         f"{'/'.join(str(d['active']) for d in c)} act)", unk])
            print("[3]", rows[-1], flush=True)
    header = ["net", "L1", "test acc", "bounds s (auto)", "unstable after bounds", "method", "status",
              "search s", "total s", "BaB branches", "proven by BaB", "MILPs", "stable", "unknown"]
    return header, rows, limit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smoke test: fewer nets and samples; writes nothing")
    ap.add_argument("--no-big", action="store_true", help="skip the 784-400-400-10 stable-neuron searches")
    ap.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    args = ap.parse_args()
    t0 = time.perf_counter()
    h1, r1, summary, fm, n_samples = part1(args.quick)
    print(markdown_table(h1, r1), flush=True)
    h2, r2, speedup = part2(args.quick)
    print(markdown_table(h2, r2), flush=True)
    p3 = part3(args.quick, fm, not args.no_big)
    if p3 is not None:
        print(markdown_table(p3[0], p3[1]), flush=True)
    total = time.perf_counter() - t0
    print(f"total {total:.0f} s", flush=True)
    if args.quick or args.no_write:
        return
    worst_u = max(s[2] for s in summary)
    import os

    # small matrix products with OpenBLAS's threads on a shared 2-core machine ran up to 50x slower
    blas = "".join(f"{k}={os.environ[k]} " for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if k in os.environ)
    big = [s[3] for s in summary if s[4] >= 1.0] or [float("nan")]
    small = [s[3] for s in summary if s[4] < 1.0] or [float("nan")]
    body = (
        f"`{blas}python benchmarks/bench_bounds.py{' --no-big' if args.no_big else ''}` on {machine()}, "
        f"{time.strftime('%Y-%m-%d')}, total {total / 60:.1f} min.\n\n"
        "### 1. Methods per net\n\n"
        "Each cell: seconds / unstable hidden neurons left / mean width of the hidden layers' bounds. "
        "*ia* intervals; *symbolic* DeepPoly/CROWN back-substitution; *alpha* alpha-CROWN (Xu et al. ICLR 2021: "
        "the lower ReLU slopes optimised by projected Adam, per neuron and per bounded quantity, torch float64, "
        "re-evaluated soundly in numpy); *lp* the default LP tightening (alpha start, witnesses, sign-only LPs, "
        "full LPs on the outputs); *auto* symbolic -> alpha -> sign-only LPs only where neurons are left open; "
        "*exact LP* every unstable neuron's min and max over the triangle relaxation, to optimality "
        "(`lp_bounds(sign_only=False, start='symbolic')`). Trained nets: Adam, seed 0 (digits 30 epochs, "
        "Fashion-MNIST 5 epochs on 10,000 images).\n\n"
        + markdown_table(h1, r1)
        + f"\n\nalpha vs exact LP: unstable-count ratio at most {worst_u:.3f} (target: within 10 %). Time "
          f"(target: alpha >= 10x faster): {min(big):.1f}x to {max(big):.1f}x where the exact LP takes a second or "
          f"more; {min(small):.1f}x to {max(small):.1f}x where it takes less (few open neurons or small nets: "
          "there `lp` and `auto` skip alpha, see `alpha_pays`).\n\n"
        "### 2. LP tightening of 784-100-100-10, previous lp.py vs new\n\n"
        f"Random net (seed 0) on [0,1]^784, both in this run; the baseline is mipnet/bounds/lp.py of git "
        f"{BASELINE_REV} "
        "loaded into a temporary module. The new path starts from the alpha bounds, "
        "shows most neurons unstable with real inputs (samples and a signed-gradient search; an LP's optimal "
        "input is another), solves an LP only for a sign that no input has shown, minimising with HiGHS's "
        "`objective_bound` (the dual simplex stops once the exact dual objective proves the sign), groups the "
        "LPs by direction in a warm-start chain (each objective the nearest in angle to the one before) and "
        "uses power-of-two scaling (`simplex_scale_strategy=4`).\n\n"
        + markdown_table(h2, r2)
        + f"\n\nSpeed-up with output LPs: {speedup:.1f}x (target >= 5x). Same unstable count (asserted); "
          "the hidden widths of the new path are alpha's for neurons that stay unstable.\n"
    )
    if p3 is not None:
        body += (
            "\n### 3. Stable neurons of Fashion-MNIST nets on [0,1]^784\n\n"
            f"784-100-100-10 and 784-400-400-10 trained 5 epochs (Adam, 10,000 images) with L1 in 1e-5 .. 2e-4 "
            f"as in Serra, Yu, "
            f"Kumar and Ramalingam (NeurIPS 2021); bounds by `compute_bounds(method='auto')`; the training images "
            f"as witnesses; time limit {p3[2]:.0f} s per search.\n\n"
            + markdown_table(p3[0], p3[1])
            + "\n\n"
            "Before any MILP, `find_stable_neurons` settles open neurons of the second hidden layer by branch "
            "and bound on the first layer's ReLUs (`branching=True`, beta-CROWN bounds per branch with "
            "first-layer envelope lines, `mipnet.bounds.branching`); rows marked *(no BaB)* are the same "
            "searches without it, in the same run. Under the time limit the witness search takes at most a "
            "fifth of it, the branch and bound three quarters of what is left, the MILPs the rest; rows with "
            "status `time_limit` leave the *unknown* neurons open (the stable counts are proven). HiGHS "
            "overshoots short time limits on these 784-input MILPs (one 0.5 s slice took 14.7 s), hence search "
            "times above the limit. " + "Published "
            "(Serra et al. 2021, Gurobi, MNIST nets of the same widths): their one-MILP ISA takes "
              "a few seconds for 2x100 up to about a minute for 2x800; their per-neuron method hundreds to "
              "thousands of seconds. Different data (MNIST vs Fashion-MNIST), training and machine: an order "
              "of magnitude comparison.\n"
        )
    body += (
        f"\n### Soundness\n\nEvery bound of every method above contains the pre-activations of {n_samples:,} "
        "points of its domain (uniform points, box vertices, the centre) and contains the exact LP bound up to "
        "1e-5 relative (the LP values are widened by `lp_slack`) wherever the exact path solved an LP "
        "(asserted; the run stops otherwise).\n"
    )
    write_section("Bounds", body)


if __name__ == "__main__":
    main()
