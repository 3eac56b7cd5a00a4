"""Stable neurons: one-MILP vs per-neuron detection, and the L1 trend of lossless compression.

    python benchmarks/bench_stable.py            # full run (about 20-25 min on 2 busy cores)
    python benchmarks/bench_stable.py --quick    # smoke test (a few minutes)

Part A times ``find_stable_neurons(method="one_milp")`` (Serra, Yu, Kumar,
Ramalingam, NeurIPS 2021, arXiv:2102.07804) against ``method="per_neuron"``
(Serra, Kumar, Ramalingam, CPAIOR 2020, arXiv:2001.00218) on L1-trained digits
MLPs, in the same run, on two domains: the full input box [0,16]^64 and the box
spanned by the training data's per-pixel min/max. Where both methods finish,
their stable sets must be identical (asserted).

Part B replicates the trend of Table 1 of the CPAIOR 2020 paper: share of hidden
units removed by lossless compression (:func:`mipnet.compression.compress`) and
test accuracy against the L1 weight, on digits and Fashion-MNIST, over the input
box. Writes benchmarks/stable_l1_trend.png and the section "Stable neurons" of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, machine, markdown_table, write_section  # noqa: E402

from mipnet.analyses.compression import compress  # noqa: E402
from mipnet.nn.data import load_dataset  # noqa: E402
from mipnet.core.domain import Box  # noqa: E402
from mipnet.analyses.stability import find_stable_neurons  # noqa: E402
from mipnet.io.torch import from_torch  # noqa: E402
from mipnet.nn.training import make_mlp, train  # noqa: E402


def trained(ds, widths, *, l1, epochs, seed=0):
    model = make_mlp(widths, seed=seed)
    tr = train(model, ds, epochs=epochs, optimizer="adam", lr=1e-2 if ds.input_dim < 100 else 1e-3, l1=l1,
               seed=seed, progress=False, num_threads=1)
    return from_torch(model), tr.test_accuracy


def stable_sets(res):
    """(layer, neuron, state) of every proven stable neuron."""
    out = set()
    for ls in res.layers:
        for i in np.flatnonzero(np.isin(ls.states, (-1, 1))):
            out.add((ls.layer, int(i), int(ls.states[i])))
    return out


def fmt_counts(res):
    c = [ls.counts() for ls in res.layers]
    stable = sum(d["inactive"] + d["active"] for d in c)
    unk = sum(d["unknown"] for d in c)
    return f"{stable} ({'/'.join(str(d['inactive']) for d in c)} inact, {'/'.join(str(d['active']) for d in c)} act)", unk


def part_a(quick: bool):
    ds = load_dataset("digits")
    X = ds.X_train
    limit = 20.0 if quick else 100.0
    l1 = 3e-3
    nets = [[64, 100, 100, 10]] if quick else [[64, 100, 100, 10], [64, 100, 100, 100, 10]]
    domains = [("data box", Box(X.min(0), X.max(0))), ("box [0,16]^64", Box(0, 16, dim=64))]
    rows = []
    for widths in nets:
        net, acc = trained(ds, widths, l1=l1, epochs=30)
        name = "-".join(map(str, widths))
        for dname, dom in domains:
            res = {}
            for method in ("one_milp", "per_neuron"):
                r = find_stable_neurons(net, dom, method=method, data=X, time_limit=limit)
                r.check(net, X[dom.contains(X)] if hasattr(dom, "contains") else X)
                res[method] = r
                print(f"[A] {name} {dname} acc {acc:.3f}\n{r}\n  MILP s {r.milp_seconds:.2f}", flush=True)
            o, p = res["one_milp"], res["per_neuron"]
            agree = "n/a (a run hit the limit)"
            if o.complete and p.complete:
                if stable_sets(o) != stable_sets(p):
                    raise AssertionError(f"{name} on {dname}: one-MILP and per-neuron stable sets differ")
                agree = "identical"
            else:
                # never contradictory: a neuron proven stable by one is never shown unstable by the other
                for a, b in ((o, p), (p, o)):
                    for la, lb in zip(a.layers, b.layers):
                        st = np.isin(la.states, (-1, 1))
                        if np.any(st & (lb.states == 0)):
                            raise AssertionError(f"{name} on {dname}: a stable claim contradicts a witness")
                agree = "no contradiction (partial)"
            so, uo = fmt_counts(o)
            sp, up = fmt_counts(p)
            ratio = p.seconds / o.seconds
            rows.append([name, f"{acc:.3f}", dname, f"{o.status}", f"{o.seconds:.1f}", o.num_milps, so, uo,
                         f"{p.status}", f"{p.seconds:.1f}", p.num_milps, sp, up,
                         f"{ratio:.2f}" + ("" if o.complete and p.complete else " (bound)"), agree])
    header = ["net", "test acc", "domain", "one-MILP status", "one-MILP s", "MILPs", "stable", "unknown",
              "per-neuron status", "per-neuron s", "MILPs", "stable", "unknown", "per-neuron / one-MILP", "stable sets"]
    return header, rows, limit, l1


def part_b(quick: bool):
    configs = [
        ("digits", dict(), [64, 50, 50, 10], [0.0, 1e-3, 3e-3] if quick else [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
         30, Box(0, 16, dim=64)),
        ("fashion-mnist", dict(limit=2000 if quick else 20000), [784, 50, 50, 10],
         [0.0, 1e-4] if quick else [0.0, 1e-4, 3e-4, 1e-3, 3e-3], 2 if quick else 6, Box(0, 1, dim=784)),
    ]
    limit = 20.0 if quick else 60.0
    rows, curves = [], {}
    for dname, kw, widths, l1s, epochs, dom in configs:
        ds = load_dataset(dname, **kw)
        X = ds.X_train
        curves[dname] = []
        for l1 in l1s:
            t0 = time.perf_counter()
            net, acc = trained(ds, widths, l1=l1, epochs=epochs)
            t_train = time.perf_counter() - t0
            st = find_stable_neurons(net, dom, method="per_neuron", data=X, time_limit=limit)
            st.check(net, X)
            cr = compress(net, dom, stability=st)
            # lossless on the data: the compressed net must agree with the original
            Xt = ds.X_test
            diff = float(np.max(np.abs(cr.network.forward(Xt) - net.forward(Xt))))
            if diff > 1e-6 * max(1.0, float(np.max(np.abs(net.forward(Xt))))):
                raise AssertionError(f"{dname} l1={l1}: compressed net differs by {diff:g} on test inputs")
            rep = cr.report
            per_layer = "/".join(f"{lr.removed_inactive}+{lr.folded_active}" for lr in rep.layers)
            share = 100.0 * rep.neurons_removed / rep.neurons_before
            unk = st.num_unknown
            curves[dname].append((l1, acc, share, unk))
            rows.append([dname, "-".join(map(str, widths)), f"{l1:g}", f"{acc:.3f}", per_layer,
                         f"{rep.neurons_removed}/{rep.neurons_before}", f"{share:.1f}",
                         "-".join(map(str, rep.widths_after)), st.status, unk, f"{st.seconds:.1f}",
                         f"{t_train:.1f}", f"{diff:.1e}"])
            print("[B]", rows[-1], flush=True)
    header = ["dataset", "net", "l1", "test acc", "removed per layer (inactive+folded)", "units removed",
              "% removed", "widths after", "stability status", "unknown", "stability s", "train s",
              "max |diff| on test"]
    return header, rows, curves, limit


def plot(curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (dname, pts) in zip(axes, curves.items()):
        l1 = np.array([p[0] for p in pts])
        xs = np.arange(len(pts))
        ax.plot(xs, [p[2] for p in pts], "o-", color="C0", label="% hidden units removed")
        ax.set_xticks(xs, [f"{v:g}" for v in l1])
        ax.set_xlabel("L1 weight")
        ax.set_ylabel("% hidden units removed (lossless)", color="C0")
        ax2 = ax.twinx()
        ax2.plot(xs, [100 * p[1] for p in pts], "s--", color="C1", label="test accuracy")
        ax2.set_ylabel("test accuracy %", color="C1")
        ax.set_title(dname)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=["a", "b", "ab"], default="ab")
    args = ap.parse_args()
    t0 = time.perf_counter()
    text = []
    if "a" in args.part:
        ha, ra, limit_a, l1a = part_a(args.quick)
        ta = markdown_table(ha, ra)
        print(ta, flush=True)
        text.append((ta, limit_a, l1a))
    if "b" in args.part:
        hb, rb, curves, limit_b = part_b(args.quick)
        tb = markdown_table(hb, rb)
        print(tb, flush=True)
        plot(curves, HERE / ("stable_l1_trend_quick.png" if args.quick else "stable_l1_trend.png"))
    total = time.perf_counter() - t0
    print(f"total {total:.0f} s")
    if args.quick or args.part != "ab":
        return
    body = (
        f"`python benchmarks/bench_stable.py` on {machine()} (shared, busy: load average ~5-6 on 2 cores; "
        f"run with `nice -n 10`), {time.strftime('%Y-%m-%d')}, total {total / 60:.1f} min.\n\n"
        f"### A. One MILP (Serra et al. NeurIPS 2021) vs per-neuron MILPs (Serra et al. CPAIOR 2020)\n\n"
        f"Digits MLPs trained 30 epochs with Adam and L1 = {text[0][2]:g} (seed 0). Both methods get the training "
        f"data as `data=` (witnesses that prune candidates), LP bounds, 1000 random samples, and a time limit of "
        f"{text[0][1]:.0f} s for the whole search. *data box* = per-pixel [min, max] of the training inputs; "
        f"*box* = the full input box. Stable counts are inactive/active per hidden layer; a status `time_limit` "
        f"means the unknown neurons were not settled and the time is a lower bound. The ratio is per-neuron "
        f"seconds / one-MILP seconds in the same run (target in the issue: >= 20).\n\n"
        + text[0][0]
        + "\n\nThe issue's target (one-MILP >= 20x faster than per-neuron) is **not met** by mipnet's "
        "implementation: where both finish, per-neuron is the faster one. Reason: mipnet's per-neuron search "
        "harvests witnesses from the data, 1000 samples and every MILP solution, so few neurons need their own "
        "MILP (10-35 early-stopped solves); each is small (only the layers before the neuron, earlier stable "
        "neurons without binaries). The one-MILP encodes the whole net with every candidate's binary, and "
        "its last solve (the proof that no candidate can flip) is a hard MILP: on the 3x100 net its first "
        "solve did not finish in the limit. Stable counts agree exactly where both finish (asserted); "
        "elsewhere the one-MILP settles fewer neurons, and no stable claim of one method is contradicted by a witness of the other (asserted).\n\n"
        "### B. Lossless compression against the L1 weight (trend of Serra et al. CPAIOR 2020, Table 1)\n\n"
        f"2-layer MLPs, Adam (lr 1e-2 digits, 1e-3 Fashion-MNIST); digits 30 epochs on its 1437 training images, "
        f"Fashion-MNIST 6 epochs on 20000 training images (test on 10000). Domain = the input box ([0,16]^64, "
        f"[0,1]^784). Stable neurons by `per_neuron` with the training data as witnesses (time limit "
        f"{limit_b:.0f} s; unknown neurons are kept), then `compress` (delete stably inactive units, fold "
        f"linearly dependent stably active ones). Every compressed net is checked against the original on the "
        f"test inputs (last column). Plot: `benchmarks/stable_l1_trend.png`.\n\n"
        + tb
        + "\n\nTrend as in Serra et al. (2020, Table 1): without L1 no unit is stable on the input box; "
        "the share of removed units grows with L1 while accuracy falls once L1 is large. Only stably inactive "
        "units were removed: the stably active ones were linearly independent, so none could be folded. "
        "Digits comes close to the paper's range (8-31% removed at 95.8-98.1% accuracy on MNIST widths "
        "25-100); Fashion-MNIST, briefly trained and over the full box [0,1]^784, gives far less (5-10%), "
        "and at a larger accuracy cost.\n"
    )
    write_section("Stable neurons", body)


if __name__ == "__main__":
    main()
